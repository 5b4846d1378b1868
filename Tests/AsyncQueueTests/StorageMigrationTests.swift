import Foundation
import Support
import Testing

@testable import Storage

@Suite struct StorageMigrationTests {
  /// Builds a database as schema version 1 wrote it: keys without ids or revocation.
  func versionOneDatabase() throws -> String {
    let path = temporaryDirectory("schema-v1") + "/asyncqueue.db"
    let database = try SQLiteConnection(path: path)
    try database.execute(
      """
      CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE api_keys (
        hash TEXT PRIMARY KEY, team_id TEXT NOT NULL, label TEXT NOT NULL, created_at REAL NOT NULL
      );
      CREATE TABLE tasks (
        id TEXT PRIMARY KEY, team_id TEXT NOT NULL, status TEXT NOT NULL, provider TEXT,
        created_at REAL NOT NULL, next_run_at REAL, doc TEXT NOT NULL
      );
      INSERT INTO settings VALUES ('schema_version', '1');
      INSERT INTO settings VALUES ('webhook_secret', 'whsec_old');
      """)
    try database.query(
      "INSERT INTO api_keys VALUES (?, 'default', 'first start', 1700000000)",
      [.text(Crypto.sha256Hex("aq_old_key_123"))])
    return path
  }

  @Test func versionOneKeysSurviveUpgrade() throws {
    let path = try versionOneDatabase()
    let store = try SQLiteStore(path: path)
    #expect(try store.setting("schema_version") == String(SQLiteStore.latestSchemaVersion))
    #expect(try store.setting("webhook_secret") == "whsec_old")
    #expect(try store.team(forKeyHash: Crypto.sha256Hex("aq_old_key_123")) == "default")
    let keys = try store.apiKeys()
    #expect(keys.count == 1)
    #expect(keys.first?.id.hasPrefix("key_") == true)
    #expect(keys.first?.revokedAt == nil)
    #expect(try store.revokeAPIKey(id: keys.first?.id ?? ""))
    #expect(try store.team(forKeyHash: Crypto.sha256Hex("aq_old_key_123")) == nil)
    #expect(try store.teamSecret("media", makeSecret: { "whsec_new" }) == "whsec_new")
  }

  @Test func upgradedDatabaseReopens() throws {
    let path = try versionOneDatabase()
    let first = try SQLiteStore(path: path).apiKeys()
    let second = try SQLiteStore(path: path).apiKeys()
    #expect(first == second, "a second open must not migrate again or change key ids")
  }

  @Test func versionTwoDatabaseOpens() throws {
    let path = try versionOneDatabase()
    do {
      let database = try SQLiteConnection(path: path)
      try database.execute(SQLiteStore.migrations[1].sql)
      try database.execute(SQLiteStore.migrations[2].sql)
      try database.execute("UPDATE settings SET value = '2' WHERE key = 'schema_version'")
    }
    let store = try SQLiteStore(path: path)
    #expect(store.schemaVersion == SQLiteStore.latestSchemaVersion)
    #expect(try store.team(forKeyHash: Crypto.sha256Hex("aq_old_key_123")) == "default")
    #expect(try store.tokens(teamId: "default").isEmpty)
  }

  @Test func newerDatabaseIsRejected() throws {
    let path = temporaryDirectory("schema-new") + "/asyncqueue.db"
    _ = try SQLiteStore(path: path)
    try SQLiteStore(path: path).setSetting(
      "schema_version", String(SQLiteStore.latestSchemaVersion + 1))
    let error = #expect(throws: StorageError.self) { try SQLiteStore(path: path) }
    #expect(error?.message.contains("run a newer asyncqueue") == true)
  }
}
