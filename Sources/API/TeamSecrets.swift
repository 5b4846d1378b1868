import Foundation
import Storage
import Support

/// Webhook signing secrets per team. Team `default` signs with the service-wide secret;
/// every other team gets its own, generated and stored on first use.
public final class TeamSecrets: Sendable {
  public static let defaultTeam = "default"

  private let store: any TaskStore
  private let defaultSecret: String
  private let logger: Logger
  private let cache = LockedValue<[String: String]>([:])

  public init(store: any TaskStore, defaultSecret: String, logger: Logger) {
    self.store = store
    self.defaultSecret = defaultSecret
    self.logger = logger
  }

  /// Returns the team's secret. When the database cannot be read or written, returns the
  /// service-wide secret and logs the error, so a webhook is never sent unsigned.
  public func secret(forTeam team: String) -> String {
    if team == Self.defaultTeam { return defaultSecret }
    if let cached = cache.withLock({ $0[team] }) { return cached }
    do {
      let secret = try store.teamSecret(team, makeSecret: Self.makeSecret)
      Redactor.shared.register(secret)
      cache.withLock { $0[team] = secret }
      return secret
    } catch {
      logger.error(
        "cannot read team webhook secret; signing with the service-wide secret",
        [("team", team), ("error", "\(error)")])
      return defaultSecret
    }
  }

  public static func makeSecret() -> String { "whsec_" + Crypto.randomHex(bytes: 32) }
}
