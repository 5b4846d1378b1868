import Foundation
import Support

/// Settings, API keys, team secrets and task counts.
extension PostgresStore {
  public func setting(_ key: String) throws(StorageError) -> String? {
    try withConnection("setting") { connection throws(StorageError) in
      try connection.query("SELECT value FROM settings WHERE key = $1", [.text(key)])
    }.first?.first?.text
  }

  public func setSetting(_ key: String, _ value: String) throws(StorageError) {
    try transaction("setSetting") { connection throws(StorageError) in
      try connection.query(
        """
        INSERT INTO settings(key, value) VALUES ($1, $2)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value
        """, [.text(key), .text(value)])
    }
  }

  public func addAPIKey(hash: String, teamId: String, label: String) throws(StorageError) {
    try transaction("addAPIKey") { connection throws(StorageError) in
      try connection.query(
        """
        INSERT INTO api_keys(hash, team_id, label, created_at, id)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING
        """,
        [
          .text(hash), .text(teamId), .text(label), .real(Timestamp.now()),
          .text(APIKeyRecord.newID()),
        ])
    }
  }

  public func team(forKeyHash hash: String) throws(StorageError) -> String? {
    try withConnection("team") { connection throws(StorageError) in
      try connection.query(
        "SELECT team_id, hash FROM api_keys WHERE hash = $1 AND revoked_at IS NULL",
        [.text(hash)])
    }.first.flatMap { row in
      // As in SQLiteStore: the whole hash is compared again in constant time.
      Crypto.constantTimeEqual(row[1].text ?? "", hash) ? row[0].text : nil
    }
  }

  public func apiKeyCount() throws(StorageError) -> Int {
    let rows = try withConnection("apiKeyCount") { connection throws(StorageError) in
      try connection.query("SELECT count(*) FROM api_keys")
    }
    return Int(rows.first?.first?.integer ?? 0)
  }

  public func createAPIKey(hash: String, teamId: String, label: String) throws(StorageError)
    -> APIKeyRecord
  {
    let record = APIKeyRecord(
      id: APIKeyRecord.newID(), teamId: teamId, label: label, createdAt: Timestamp.now(),
      revokedAt: nil)
    try transaction("createAPIKey") { connection throws(StorageError) in
      try connection.query(
        "INSERT INTO api_keys(hash, team_id, label, created_at, id) VALUES ($1, $2, $3, $4, $5)",
        [
          .text(hash), .text(teamId), .text(label), .real(record.createdAt), .text(record.id),
        ])
    }
    return record
  }

  public func apiKeys() throws(StorageError) -> [APIKeyRecord] {
    let rows = try withConnection("apiKeys") { connection throws(StorageError) in
      try connection.query(
        """
        SELECT id, team_id, label, created_at, revoked_at FROM api_keys
        ORDER BY created_at, id COLLATE "C"
        """)
    }
    return rows.map(StoreRows.apiKey)
  }

  @discardableResult
  public func revokeAPIKey(id: String) throws(StorageError) -> Bool {
    try transaction("revokeAPIKey") { connection throws(StorageError) in
      try connection.update(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2",
        [.real(Timestamp.now()), .text(id)]) == 1
    }
  }

  public func teamSecret(_ teamId: String, makeSecret: () -> String) throws(StorageError)
    -> String
  {
    if let stored = try storedTeamSecret(teamId) { return stored }
    let secret = makeSecret()
    // Two nodes may create a team's first secret at once; the first insert wins and both
    // return it.
    let rows = try transaction("teamSecret") { connection throws(StorageError) in
      try connection.query(
        """
        INSERT INTO teams(id, webhook_secret, created_at) VALUES ($1, $2, $3)
        ON CONFLICT (id) DO UPDATE SET id = excluded.id
        RETURNING webhook_secret
        """, [.text(teamId), .text(secret), .real(Timestamp.now())])
    }
    return rows.first?.first?.text ?? secret
  }

  public func storedTeamSecret(_ teamId: String) throws(StorageError) -> String? {
    try withConnection("storedTeamSecret") { connection throws(StorageError) in
      try connection.query("SELECT webhook_secret FROM teams WHERE id = $1", [.text(teamId)])
    }.first?.first?.text
  }

  public func taskCounts() throws(StorageError) -> [(status: String, provider: String?, count: Int)]
  {
    let rows = try withConnection("taskCounts") { connection throws(StorageError) in
      try connection.query("SELECT status, provider, count(*) FROM tasks GROUP BY status, provider")
    }
    return rows.map { ($0[0].text ?? "", $0[1].text, Int($0[2].integer ?? 0)) }
  }

  public func ping() throws(StorageError) {
    try withConnection("ping") { connection throws(StorageError) in
      try connection.query("SELECT 1")
    }
  }
}
