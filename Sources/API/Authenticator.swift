import Foundation
import Storage
import Support

/// Maps API keys to teams. Keys are stored only as SHA-256 hashes.
public final class Authenticator: @unchecked Sendable {
  private let store: TaskStore
  private let lock = NSLock()
  // Guarded by `lock`: hash to team, for keys seen before.
  private var cache: [String: String] = [:]

  public init(store: TaskStore) { self.store = store }

  /// The team of the key in `Authorization: Bearer …` or `X-API-Key`, or nil.
  public func team(authorization: String?, apiKey: String?) -> String? {
    var key = apiKey?.trimmingCharacters(in: .whitespaces)
    if key == nil || key!.isEmpty, let authorization {
      let parts = authorization.split(separator: " ", maxSplits: 1)
      if parts.count == 2, parts[0].lowercased() == "bearer" {
        key = parts[1].trimmingCharacters(in: .whitespaces)
      }
    }
    guard let key, !key.isEmpty, key.count <= 512 else { return nil }
    // Looking up the hash, not the key, keeps the comparison's timing independent of the key.
    let hash = Crypto.sha256Hex(key)
    if let team = lock.withLock({ cache[hash] }) { return team }
    guard let team = try? store.team(forKeyHash: hash) else { return nil }
    lock.withLock { cache[hash] = team }
    return team
  }
}
