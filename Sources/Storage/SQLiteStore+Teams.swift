import Foundation
import Support

/// An API key as listed to operators: everything but the key, which only exists as a hash.
public struct APIKeyRecord: Sendable, Equatable {
  /// A short random identifier, `key_` and 16 hex digits, used to revoke the key.
  public var id: String
  public var teamId: String
  public var label: String
  public var createdAt: Double
  public var revokedAt: Double?

  public init(id: String, teamId: String, label: String, createdAt: Double, revokedAt: Double?) {
    self.id = id
    self.teamId = teamId
    self.label = label
    self.createdAt = createdAt
    self.revokedAt = revokedAt
  }

  static func newID() -> String { "key_" + Crypto.randomHex(bytes: 8) }
}

extension SQLiteStore {
  /// Stores the hash of a new key and returns its record.
  public func createAPIKey(hash: String, teamId: String, label: String) throws(StorageError)
    -> APIKeyRecord
  {
    let record = APIKeyRecord(
      id: APIKeyRecord.newID(), teamId: teamId, label: label, createdAt: Timestamp.now(),
      revokedAt: nil)
    try withConnection { database throws(StorageError) in
      try database.query(
        "INSERT INTO api_keys(hash, team_id, label, created_at, id) VALUES (?, ?, ?, ?, ?)",
        [
          .text(hash), .text(teamId), .text(label), .real(record.createdAt), .text(record.id),
        ])
    }
    return record
  }

  /// Returns every key, revoked ones included, oldest first.
  public func apiKeys() throws(StorageError) -> [APIKeyRecord] {
    let rows = try withConnection { database throws(StorageError) in
      try database.query(
        "SELECT id, team_id, label, created_at, revoked_at FROM api_keys ORDER BY created_at, id")
    }
    return rows.map(StoreRows.apiKey)
  }

  /// Marks a key revoked; returns false when no key has this id. Revoking twice keeps the
  /// first time.
  @discardableResult
  public func revokeAPIKey(id: String) throws(StorageError) -> Bool {
    try withConnection { database throws(StorageError) in
      try database.query(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
        [.real(Timestamp.now()), .text(id)])
      return database.changes == 1
    }
  }

  /// Returns the team's webhook signing secret, created with `makeSecret` and stored on first
  /// use.
  public func teamSecret(_ teamId: String, makeSecret: () -> String) throws(StorageError)
    -> String
  {
    try transaction { database throws(StorageError) in
      let rows = try database.query(
        "SELECT webhook_secret FROM teams WHERE id = ?", [.text(teamId)])
      if let stored = rows.first?.first?.text { return stored }
      let secret = makeSecret()
      try database.query(
        "INSERT INTO teams(id, webhook_secret, created_at) VALUES (?, ?, ?)",
        [.text(teamId), .text(secret), .real(Timestamp.now())])
      return secret
    }
  }

  /// Returns the team's stored webhook secret, or nil when the team has none yet.
  public func storedTeamSecret(_ teamId: String) throws(StorageError) -> String? {
    try withConnection { database throws(StorageError) in
      try database.query("SELECT webhook_secret FROM teams WHERE id = ?", [.text(teamId)])
    }.first?.first?.text
  }

  /// Task counts grouped by status and provider; a nil provider is a plain call or a task
  /// with its own pollConfig.
  public func taskCounts() throws(StorageError) -> [(status: String, provider: String?, count: Int)]
  {
    let rows = try withConnection { database throws(StorageError) in
      try database.query("SELECT status, provider, count(*) FROM tasks GROUP BY status, provider")
    }
    return rows.map { ($0[0].text ?? "", $0[1].text, Int($0[2].integer ?? 0)) }
  }

  /// Runs a trivial query, to check that the database responds.
  public func ping() throws(StorageError) {
    try withConnection { database throws(StorageError) in
      _ = try database.query("SELECT 1")
    }
  }
}
