import Foundation
import Support

/// The embedded store: one SQLite file in WAL mode.
///
/// One connection serves every call under a lock. `synchronous=NORMAL` in WAL mode keeps every
/// commit across a process crash (`kill -9`); only a power loss can drop the last commits.
public final class SQLiteStore: TaskStore, @unchecked Sendable {
  // Guards `connection`, which is used only while the lock is held.
  private let lock = NSLock()
  private let connection: SQLiteConnection
  public let path: String

  private static let schemaVersion = 2

  public init(path: String) throws(StorageError) {
    self.path = path
    let opened = try SQLiteConnection(path: path)
    try opened.execute("PRAGMA journal_mode=WAL")
    try opened.execute("PRAGMA synchronous=NORMAL")
    try opened.execute("PRAGMA foreign_keys=ON")
    try Self.migrate(opened)
    try Self.migrateTimeline(opened)
    try Self.migrateExternal(opened)
    connection = opened
  }

  private static func migrate(_ database: SQLiteConnection) throws(StorageError) {
    try database.execute(
      """
      CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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
      """)
    let rows = try database.query("SELECT value FROM settings WHERE key = 'schema_version'")
    if let stored = rows.first?.first?.text, let version = Int(stored), version > schemaVersion {
      throw StorageError(
        "database schema version \(version) is newer than this binary supports (\(schemaVersion)); "
          + "run a newer asyncqueue")
    }
    let stored = Int(rows.first?.first?.text ?? "1") ?? 1
    if stored < 2 { try migrateToTeams(database) }
    try database.query(
      "INSERT OR REPLACE INTO settings(key, value) VALUES ('schema_version', ?)",
      [.text(String(schemaVersion))])
  }

  @discardableResult
  func withConnection<T>(_ body: (SQLiteConnection) throws(StorageError) -> T)
    throws(StorageError) -> T
  {
    lock.lock()
    defer { lock.unlock() }
    return try body(connection)
  }

  /// Runs `body` in one transaction, rolled back when it throws.
  func transaction<T>(_ body: (SQLiteConnection) throws(StorageError) -> T)
    throws(StorageError) -> T
  {
    try withConnection { database throws(StorageError) -> T in
      try database.execute("BEGIN IMMEDIATE")
      do throws(StorageError) {
        let value = try body(database)
        try database.execute("COMMIT")
        return value
      } catch {
        try? database.execute("ROLLBACK")
        throw error
      }
    }
  }

  // MARK: Tasks

  public func insertTask(_ task: TaskRecord) throws(StorageError) {
    let document = try encode(task)
    try withConnection { database throws(StorageError) in
      try database.query(
        """
        INSERT INTO tasks(id, team_id, status, provider, created_at, next_run_at, doc)
        VALUES (?, ?, ?, ?, ?, ?, ?)
        """,
        [
          .text(task.id), .text(task.teamId), .text(task.status.rawValue),
          task.provider.map { .text($0) } ?? .null, .real(task.createdAt),
          task.nextRunAt.map { .real($0) } ?? .null, .text(document),
        ])
    }
  }

  public func saveTask(_ task: TaskRecord, delivery: DeliveryRecord?, events: [TaskEvent])
    throws(StorageError)
  {
    let document = try encode(task)
    try transaction { database throws(StorageError) in
      try database.query(
        "UPDATE tasks SET status = ?, next_run_at = ?, doc = ? WHERE id = ?",
        [
          .text(task.status.rawValue), task.nextRunAt.map { .real($0) } ?? .null,
          .text(document), .text(task.id),
        ])
      guard database.changes == 1 else { throw StorageError("task \(task.id) not found") }
      if let delivery { try insertDelivery(delivery, database) }
      for event in events { try insertEvent(event, database) }
    }
  }

  public func task(id: String) throws(StorageError) -> TaskRecord? {
    let rows = try withConnection { database throws(StorageError) in
      try database.query("SELECT doc FROM tasks WHERE id = ?", [.text(id)])
    }
    guard let text = rows.first?.first?.text else { return nil }
    return try decode(text)
  }

  public func activeTasks() throws(StorageError) -> [TaskRecord] {
    let rows = try withConnection { database throws(StorageError) in
      try database.query(
        "SELECT doc FROM tasks WHERE status NOT IN ('completed', 'failed', 'timeout', 'cancelled')")
    }
    var tasks: [TaskRecord] = []
    for row in rows { if let text = row.first?.text { tasks.append(try decode(text)) } }
    return tasks
  }

  public func listTasks(_ query: TaskQuery) throws(StorageError) -> (
    tasks: [TaskRecord], total: Int
  ) {
    var conditions = ["team_id = ?"]
    var parameters: [SQLValue] = [.text(query.teamId)]
    if let status = query.status {
      conditions.append("status = ?")
      parameters.append(.text(status.rawValue))
    }
    if query.provider == "custom" {
      // Tasks with a custom pollConfig have no template id.
      conditions.append("provider IS NULL AND json_extract(doc, '$.pollConfig') IS NOT NULL")
    } else if let provider = query.provider {
      conditions.append("provider = ?")
      parameters.append(.text(provider))
    }
    if let after = query.createdAfter {
      conditions.append("created_at > ?")
      parameters.append(.real(after))
    }
    if let before = query.createdBefore {
      conditions.append("created_at < ?")
      parameters.append(.real(before))
    }
    let filter = conditions.joined(separator: " AND ")
    let (rows, countRows) = try withConnection { database throws(StorageError) in
      let rows = try database.query(
        "SELECT doc FROM tasks WHERE \(filter) ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
        parameters + [.integer(Int64(query.limit)), .integer(Int64(query.offset))])
      let count = try database.query("SELECT count(*) FROM tasks WHERE \(filter)", parameters)
      return (rows, count)
    }
    var tasks: [TaskRecord] = []
    for row in rows { if let text = row.first?.text { tasks.append(try decode(text)) } }
    return (tasks, Int(countRows.first?.first?.integer ?? 0))
  }

  // MARK: Deliveries

  func insertDelivery(_ delivery: DeliveryRecord, _ database: SQLiteConnection)
    throws(StorageError)
  {
    try database.query(
      """
      INSERT INTO deliveries(task_id, team_id, url, event, payload, attempts, next_attempt_at,
        delivered_at, created_at, last_status, last_error)
      VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL, NULL)
      """,
      [
        .text(delivery.taskId), .text(delivery.teamId), .text(delivery.url),
        .text(delivery.event), .blob(delivery.payload), .integer(Int64(delivery.attempts)),
        delivery.nextAttemptAt.map { .real($0) } ?? .null, .real(delivery.createdAt),
      ])
  }

  static let deliveryColumns = """
    id, task_id, team_id, url, event, payload, attempts, next_attempt_at, delivered_at,
    created_at, last_status, last_error
    """

  func deliveryRecord(_ row: [SQLValue]) -> DeliveryRecord {
    var payload: [UInt8] = []
    if case .blob(let bytes) = row[5] { payload = bytes }
    if case .text(let text) = row[5] { payload = Array(text.utf8) }
    var record = DeliveryRecord(
      id: row[0].integer ?? 0, taskId: row[1].text ?? "", teamId: row[2].text ?? "",
      url: row[3].text ?? "", event: row[4].text ?? "", payload: payload,
      createdAt: row[9].real ?? 0)
    record.attempts = Int(row[6].integer ?? 0)
    record.nextAttemptAt = row[7].real
    record.deliveredAt = row[8].real
    record.lastStatus = row[10].integer.map { Int($0) }
    record.lastError = row[11].text
    return record
  }

  public func pendingDeliveries() throws(StorageError) -> [DeliveryRecord] {
    let rows = try withConnection { database throws(StorageError) in
      try database.query(
        "SELECT \(Self.deliveryColumns) FROM deliveries WHERE next_attempt_at IS NOT NULL")
    }
    return rows.map(deliveryRecord)
  }

  public func saveDelivery(_ delivery: DeliveryRecord, attempt: DeliveryAttempt?)
    throws(StorageError)
  {
    try transaction { database throws(StorageError) in
      try database.query(
        """
        UPDATE deliveries SET attempts = ?, next_attempt_at = ?, delivered_at = ?,
          last_status = ?, last_error = ?
        WHERE id = ?
        """,
        [
          .integer(Int64(delivery.attempts)), delivery.nextAttemptAt.map { .real($0) } ?? .null,
          delivery.deliveredAt.map { .real($0) } ?? .null,
          delivery.lastStatus.map { .integer(Int64($0)) } ?? .null,
          delivery.lastError.map { .text($0) } ?? .null, .integer(delivery.id),
        ])
      if let attempt {
        try database.query(
          "INSERT INTO delivery_attempts(delivery_id, at, status_code, latency_ms, error) "
            + "VALUES (?, ?, ?, ?, ?)",
          [
            .integer(attempt.deliveryId), .real(attempt.at),
            attempt.statusCode.map { .integer(Int64($0)) } ?? .null,
            .integer(Int64(attempt.latencyMs)), attempt.error.map { .text($0) } ?? .null,
          ])
      }
    }
  }

  public func deliveries(taskId: String) throws(StorageError) -> [DeliveryRecord] {
    let rows = try withConnection { database throws(StorageError) in
      try database.query(
        "SELECT \(Self.deliveryColumns) FROM deliveries WHERE task_id = ? ORDER BY id",
        [.text(taskId)])
    }
    return rows.map(deliveryRecord)
  }

  public func attempts(deliveryId: Int64) throws(StorageError) -> [DeliveryAttempt] {
    let rows = try withConnection { database throws(StorageError) in
      try database.query(
        "SELECT at, status_code, latency_ms, error FROM delivery_attempts "
          + "WHERE delivery_id = ? ORDER BY at",
        [.integer(deliveryId)])
    }
    return rows.map { row in
      DeliveryAttempt(
        deliveryId: deliveryId, at: row[0].real ?? 0, statusCode: row[1].integer.map { Int($0) },
        latencyMs: Int(row[2].integer ?? 0), error: row[3].text)
    }
  }

  // MARK: Settings and keys

  public func setting(_ key: String) throws(StorageError) -> String? {
    try withConnection { database throws(StorageError) in
      try database.query("SELECT value FROM settings WHERE key = ?", [.text(key)])
    }.first?.first?.text
  }

  public func setSetting(_ key: String, _ value: String) throws(StorageError) {
    try withConnection { database throws(StorageError) in
      try database.query(
        "INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", [.text(key), .text(value)])
    }
  }

  public func addAPIKey(hash: String, teamId: String, label: String) throws(StorageError) {
    try withConnection { database throws(StorageError) in
      try database.query(
        """
        INSERT OR IGNORE INTO api_keys(hash, team_id, label, created_at, id)
        VALUES (?, ?, ?, ?, ?)
        """,
        [
          .text(hash), .text(teamId), .text(label), .real(Timestamp.now()),
          .text(APIKeyRecord.newID()),
        ])
    }
  }

  public func team(forKeyHash hash: String) throws(StorageError) -> String? {
    try withConnection { database throws(StorageError) in
      try database.query(
        "SELECT team_id, hash FROM api_keys WHERE hash = ? AND revoked_at IS NULL", [.text(hash)])
    }.first.flatMap { row in
      // The index lookup found the row; comparing the whole hash again in constant time
      // keeps a collation or prefix quirk from ever matching a different key.
      Crypto.constantTimeEqual(row[1].text ?? "", hash) ? row[0].text : nil
    }
  }

  public func apiKeyCount() throws(StorageError) -> Int {
    let rows = try withConnection { database throws(StorageError) in
      try database.query("SELECT count(*) FROM api_keys")
    }
    return Int(rows.first?.first?.integer ?? 0)
  }

  // MARK: Encoding

  func encode(_ task: TaskRecord) throws(StorageError) -> String {
    // Only a non-finite double makes the writer fall back to "null"; the engine never stores one.
    let bytes = task.document.serializedBytes()
    guard bytes != Array("null".utf8) else {
      throw StorageError("cannot encode task \(task.id): a number is not finite")
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  private func decode(_ text: String) throws(StorageError) -> TaskRecord {
    do {
      return try TaskRecord(document: try JSONValue.parse(text))
    } catch let error as StorageError {
      throw error
    } catch {
      throw StorageError("stored task is unreadable: \(error)")
    }
  }
}
