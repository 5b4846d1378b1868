import Foundation
import Storage
import Support

/// Maps API keys to teams. Keys are stored only as SHA-256 hashes.
///
/// A key seen before is trusted for `cacheSeconds` without reading the database, so a key
/// revoked with `asyncqueue keys revoke` while the service runs stops working within that time.
public final class Authenticator: @unchecked Sendable {
  private let store: TaskStore
  private let cacheSeconds: Double
  private let lock = NSLock()
  // Guarded by `lock`: hash to team and the time the entry expires, for keys seen before.
  private var cache: [String: (team: String, expires: Double)] = [:]

  public init(store: TaskStore, cacheSeconds: Double = 10) {
    self.store = store
    self.cacheSeconds = cacheSeconds
  }

  /// The outcome of checking a request's key.
  public enum Verdict: Equatable, Sendable {
    case team(String)
    /// No key, or one that is unknown or revoked.
    case rejected
    /// The database did not respond, so the key could not be checked.
    case unavailable
  }

  /// The team of the key in `Authorization: Bearer …` or `X-API-Key`, or nil.
  public func team(authorization: String?, apiKey: String?) -> String? {
    if case .team(let team) = check(authorization: authorization, apiKey: apiKey) { return team }
    return nil
  }

  /// Checks the key in `Authorization: Bearer …` or `X-API-Key`.
  public func check(authorization: String?, apiKey: String?) -> Verdict {
    var key = apiKey?.trimmingCharacters(in: .whitespaces)
    if key == nil || key!.isEmpty, let authorization {
      let parts = authorization.split(separator: " ", maxSplits: 1)
      if parts.count == 2, parts[0].lowercased() == "bearer" {
        key = parts[1].trimmingCharacters(in: .whitespaces)
      }
    }
    guard let key, !key.isEmpty, key.count <= 512 else { return .rejected }
    // Looking up the hash, not the key, keeps the comparison's timing independent of the key.
    let hash = Crypto.sha256Hex(key)
    let now = Timestamp.now()
    if let entry = lock.withLock({ cache[hash] }), entry.expires > now { return .team(entry.team) }
    let found: String?
    do {
      found = try store.team(forKeyHash: hash)
    } catch {
      return .unavailable
    }
    guard let team = found else {
      lock.withLock { cache[hash] = nil }
      return .rejected
    }
    lock.withLock {
      if cache.count > 10_000 { cache = cache.filter { $0.value.expires > now } }
      cache[hash] = (team, now + cacheSeconds)
    }
    return .team(team)
  }
}
