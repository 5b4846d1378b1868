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

  /// The schema version of the database, after the migrations applied at open.
  public let schemaVersion: Int

  private let checkpointer: SQLiteCheckpointer

  /// Opens or creates the database at `path` and applies missing migrations. `logger` receives
  /// checkpoint failures.
  public init(path: String, logger: Logger? = nil) throws(StorageError) {
    self.path = path
    let opened = try SQLiteConnection(path: path)
    try opened.execute("PRAGMA journal_mode=WAL")
    try opened.execute("PRAGMA synchronous=NORMAL")
    try opened.execute("PRAGMA foreign_keys=ON")
    schemaVersion = try Self.migrate(opened)
    checkpointer = try SQLiteCheckpointer(path: path, logger: logger)
    opened.setWALHook(walCommitHook, context: Unmanaged.passUnretained(checkpointer).toOpaque())
    connection = opened
  }

  deinit {
    // The hook points at the checkpointer, so it goes before the checkpointer stops.
    connection.setWALHook(nil, context: nil)
    checkpointer.stop()
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
    return try StoreRows.decode(text)
  }

  public func activeTasks() throws(StorageError) -> [TaskRecord] {
    let rows = try withConnection { database throws(StorageError) in
      try database.query(
        "SELECT doc FROM tasks WHERE status NOT IN \(StoreRows.terminalStatuses)")
    }
    return try StoreRows.decodeAll(rows)
  }

  public func activeTasks(after id: String?, limit: Int) throws(StorageError) -> [TaskRecord] {
    let rows = try withConnection { database throws(StorageError) in
      try database.query(
        """
        SELECT doc FROM tasks WHERE id > ? AND status NOT IN \(StoreRows.terminalStatuses)
        ORDER BY id LIMIT ?
        """, [.text(id ?? ""), .integer(Int64(limit))])
    }
    return try StoreRows.decodeAll(rows)
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
    return (try StoreRows.decodeAll(rows), Int(countRows.first?.first?.integer ?? 0))
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

  public func pendingDeliveries() throws(StorageError) -> [DeliveryRecord] {
    let rows = try withConnection { database throws(StorageError) in
      try database.query(
        "SELECT \(StoreRows.deliveryColumns) FROM deliveries WHERE next_attempt_at IS NOT NULL")
    }
    return rows.map(StoreRows.delivery)
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
        "SELECT \(StoreRows.deliveryColumns) FROM deliveries WHERE task_id = ? ORDER BY id",
        [.text(taskId)])
    }
    return rows.map(StoreRows.delivery)
  }

  public func attempts(deliveryId: Int64) throws(StorageError) -> [DeliveryAttempt] {
    let rows = try withConnection { database throws(StorageError) in
      try database.query(
        "SELECT at, status_code, latency_ms, error FROM delivery_attempts "
          + "WHERE delivery_id = ? ORDER BY at",
        [.integer(deliveryId)])
    }
    return rows.map { StoreRows.attempt($0, deliveryId: deliveryId) }
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

  func encode(_ task: TaskRecord) throws(StorageError) -> String {
    try StoreRows.encode(task)
  }
}
