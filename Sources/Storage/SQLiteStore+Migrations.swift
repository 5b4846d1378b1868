import Foundation

/// The SQLite schema as numbered steps. The version is stored in `settings.schema_version`,
/// where binaries before the numbered steps also read it, so they too reject a newer database.
extension SQLiteStore {
  /// Step N brings a database from version N - 1 to N. Never edit a released step: add one.
  static let migrations: [(version: Int, sql: String)] = [
    (1, baseTables), (2, teamsAndKeyIDs), (3, tablesCreatedAtOpen),
  ]

  /// The schema version this binary writes.
  public static var latestSchemaVersion: Int { migrations.count }

  /// Applies the missing steps in one `BEGIN IMMEDIATE` transaction, which also keeps two
  /// processes opening one file from applying a step twice. Returns the version reached.
  static func migrate(_ database: SQLiteConnection) throws(StorageError) -> Int {
    try database.execute("BEGIN IMMEDIATE")
    do throws(StorageError) {
      let version = try applyMissingSteps(database)
      try database.execute("COMMIT")
      return version
    } catch {
      try? database.execute("ROLLBACK")
      throw error
    }
  }

  private static func applyMissingSteps(_ database: SQLiteConnection) throws(StorageError) -> Int {
    try database.execute(
      "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    let rows = try database.query("SELECT value FROM settings WHERE key = 'schema_version'")
    // A database without the setting is new or older than the setting. Both take every
    // step, because the first step only creates what is missing.
    let stored = rows.first?.first?.text.flatMap { Int($0) } ?? 0
    guard stored <= latestSchemaVersion else {
      throw StorageError(
        "database schema version \(stored) is newer than this binary supports "
          + "(\(latestSchemaVersion)); run a newer asyncqueue")
    }
    for step in migrations where step.version > stored {
      try database.execute(step.sql)
      try database.query(
        "INSERT OR REPLACE INTO settings(key, value) VALUES ('schema_version', ?)",
        [.text(String(step.version))])
    }
    return latestSchemaVersion
  }

  /// Version 1: keys, tasks and settings.
  private static let baseTables = """
    CREATE TABLE IF NOT EXISTS api_keys (
      hash TEXT PRIMARY KEY, team_id TEXT NOT NULL, label TEXT NOT NULL, created_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS tasks (
      id TEXT PRIMARY KEY,
      team_id TEXT NOT NULL,
      status TEXT NOT NULL,
      provider TEXT,
      created_at REAL NOT NULL,
      next_run_at REAL,
      doc TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS tasks_active ON tasks(next_run_at) WHERE next_run_at IS NOT NULL;
    CREATE INDEX IF NOT EXISTS tasks_team_created ON tasks(team_id, created_at);
    """

  /// Version 2: key ids, revocation and the per-team table of webhook secrets. Keys stored
  /// before get a random id.
  private static let teamsAndKeyIDs = """
    ALTER TABLE api_keys ADD COLUMN id TEXT;
    ALTER TABLE api_keys ADD COLUMN revoked_at REAL;
    UPDATE api_keys SET id = 'key_' || lower(hex(randomblob(8))) WHERE id IS NULL;
    CREATE UNIQUE INDEX IF NOT EXISTS api_keys_id ON api_keys(id);
    CREATE TABLE IF NOT EXISTS teams (
      id TEXT PRIMARY KEY, webhook_secret TEXT NOT NULL, created_at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS tasks_status_provider ON tasks(status, provider);
    """

  /// Version 3: deliveries, timelines, idempotency keys, the token vault, task handles and
  /// resolutions. Binaries before the numbered steps created these tables at every open, so a
  /// database at version 1 or 2 may have any of them already.
  private static let tablesCreatedAtOpen = """
    CREATE TABLE IF NOT EXISTS deliveries (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      task_id TEXT NOT NULL REFERENCES tasks(id),
      team_id TEXT NOT NULL,
      url TEXT NOT NULL,
      event TEXT NOT NULL,
      payload BLOB NOT NULL,
      attempts INTEGER NOT NULL,
      next_attempt_at REAL,
      delivered_at REAL,
      created_at REAL NOT NULL,
      last_status INTEGER,
      last_error TEXT
    );
    CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries(next_attempt_at)
      WHERE next_attempt_at IS NOT NULL;
    CREATE INDEX IF NOT EXISTS deliveries_task ON deliveries(task_id);
    CREATE TABLE IF NOT EXISTS delivery_attempts (
      delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
      at REAL NOT NULL,
      status_code INTEGER,
      latency_ms INTEGER NOT NULL,
      error TEXT
    );
    CREATE INDEX IF NOT EXISTS delivery_attempts_delivery ON delivery_attempts(delivery_id);
    CREATE TABLE IF NOT EXISTS task_events (
      task_id TEXT NOT NULL,
      at REAL NOT NULL,
      kind TEXT NOT NULL,
      status_code INTEGER,
      state TEXT,
      latency_ms INTEGER,
      error TEXT
    );
    CREATE INDEX IF NOT EXISTS task_events_task ON task_events(task_id, at);
    CREATE TABLE IF NOT EXISTS idempotency_keys (
      team_id TEXT NOT NULL,
      key TEXT NOT NULL,
      request_hash TEXT NOT NULL,
      task_id TEXT NOT NULL,
      created_at REAL NOT NULL,
      PRIMARY KEY (team_id, key)
    );
    CREATE TABLE IF NOT EXISTS vault_tokens (
      id TEXT PRIMARY KEY,
      team_id TEXT NOT NULL,
      name TEXT NOT NULL,
      sealed_value TEXT NOT NULL,
      created_at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS vault_tokens_team ON vault_tokens(team_id, created_at);
    CREATE TABLE IF NOT EXISTS task_handles (
      handle_hash TEXT PRIMARY KEY,
      task_id TEXT NOT NULL,
      kind TEXT NOT NULL,
      used_at REAL
    );
    CREATE TABLE IF NOT EXISTS task_resolutions (
      task_id TEXT PRIMARY KEY,
      kind TEXT NOT NULL,
      status TEXT NOT NULL,
      result TEXT,
      error TEXT
    );
    """
}
