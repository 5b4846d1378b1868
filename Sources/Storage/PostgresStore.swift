import Foundation
import Support

/// The shared store: tables in one PostgreSQL schema that several engine nodes use at once.
///
/// Calls borrow one of `poolSize` connections, so API threads and engine threads do not wait
/// for each other. Every write runs in a transaction that commits before the method returns
/// and rolls back when it fails. A call whose connection was lost (a server restart)
/// reconnects and runs once more, unless it had already sent its COMMIT.
public final class PostgresStore: SharedTaskStore, @unchecked Sendable {
  let pool: PostgresPool
  /// Connections whose commits do not wait for the write-ahead log to reach the disk, for
  /// the writes a server crash may lose without harm: claims, releases, lease renewals,
  /// limit slots and send times. A lost claim or release only makes a lease expire later, and
  /// every task save, which is what counts, goes through `pool` and waits.
  let relaxedPool: PostgresPool
  /// The schema the tables are in: the first existing schema of the connection's search path.
  public let schema: String
  /// The schema version of the database, after the migrations applied at open.
  public let schemaVersion: Int
  /// The `LISTEN`/`NOTIFY` channel of this schema, so stores of other schemas in the same
  /// database do not hear each other.
  let channel: String
  let logger: Logger?
  // Guards `listener`.
  let listenerLock = NSLock()
  var listener: PostgresListener?
  // Guards `slotRows`: per limiter key, the number of slot rows this store has created.
  let slotRowsLock = NSLock()
  var slotRows: [String: Int] = [:]

  /// Opens the store at a libpq connection URI (`postgres://` or `postgresql://`) and applies
  /// missing migrations. A `?options=-csearch_path%3Dname` parameter selects the schema.
  public init(url: String, poolSize: Int = 8, logger: Logger? = nil) throws(StorageError) {
    let target = try PostgresTarget(url: url)
    let pool = PostgresPool(target: target, size: poolSize)
    let connection = try pool.borrow()
    defer { pool.giveBack(connection) }
    let schema = try Self.currentSchema(connection)
    schemaVersion = try Self.migrate(connection)
    self.pool = pool
    relaxedPool = PostgresPool(
      target: target, size: max(2, poolSize / 2), setup: "SET synchronous_commit TO off")
    self.schema = schema
    self.logger = logger
    channel = Self.channelName(schema: schema)
  }

  deinit { close() }

  /// The URL with its password replaced by `***`.
  public var maskedURL: String { pool.target.maskedURL }

  /// Stops listening and closes every connection. Calls made afterwards fail.
  public func close() {
    stopListening()
    pool.close()
    relaxedPool.close()
  }

  private static func currentSchema(_ connection: PostgresConnection) throws(StorageError)
    -> String
  {
    let rows = try connection.query("SELECT current_schema()")
    guard let schema = rows.first?.first?.text else {
      throw StorageError(
        "no schema of the search path exists in \(connection.target.maskedURL). Create the "
          + "schema or fix the search_path option of the URL")
    }
    return schema
  }

  /// Channel names are identifiers of at most 63 bytes, so a long schema name is hashed.
  static func channelName(schema: String) -> String {
    let name = "asyncqueue_" + schema
    guard name.utf8.count > 63 else { return name }
    return "asyncqueue_" + Crypto.sha256Hex(schema).prefix(40)
  }

  // MARK: Running statements

  /// Runs `body` on a pooled connection. After a lost connection it reconnects and runs `body`
  /// once more, unless `body` had sent a COMMIT, whose outcome is then unknown.
  @discardableResult
  func withConnection<T>(
    _ operation: String, relaxed: Bool = false,
    _ body: (PostgresConnection) throws(StorageError) -> T
  ) throws(StorageError) -> T {
    let pool = relaxed ? relaxedPool : self.pool
    let connection = try pool.borrow()
    defer { pool.giveBack(connection) }
    do {
      return try body(connection)
    } catch {
      guard connection.isBroken, !connection.commitSent else {
        throw Self.failure(operation, error)
      }
      logger?.warn(
        "PostgreSQL connection lost; reconnecting and retrying",
        [("operation", operation), ("database", maskedURL)])
      do {
        try connection.reset()
        return try body(connection)
      } catch {
        throw Self.failure(operation, error)
      }
    }
  }

  /// Runs one writing statement in its own implicit transaction: one round trip instead of
  /// three. A lost connection leaves its outcome unknown, so it is not run again.
  @discardableResult
  func autocommit<T>(
    _ operation: String, relaxed: Bool = false,
    _ body: (PostgresConnection) throws(StorageError) -> T
  ) throws(StorageError) -> T {
    try withConnection(operation, relaxed: relaxed) { connection throws(StorageError) -> T in
      connection.commitSent = true
      return try body(connection)
    }
  }

  /// Runs `body` in one transaction, rolled back when it throws.
  @discardableResult
  func transaction<T>(
    _ operation: String, relaxed: Bool = false,
    _ body: (PostgresConnection) throws(StorageError) -> T
  ) throws(StorageError) -> T {
    try withConnection(operation, relaxed: relaxed) { connection throws(StorageError) -> T in
      try connection.execute("BEGIN")
      do throws(StorageError) {
        let value = try body(connection)
        connection.commitSent = true
        try connection.execute("COMMIT")
        return value
      } catch {
        if !connection.isBroken { try? connection.execute("ROLLBACK") }
        throw error
      }
    }
  }

  private static func failure(_ operation: String, _ error: StorageError) -> StorageError {
    StorageError("PostgreSQL \(operation) failed: \(error.message)")
  }

  /// Queues a notice, sent to every listener of the schema when the transaction commits.
  func notify(_ notice: StoreNotice, _ connection: PostgresConnection) throws(StorageError) {
    let payload: String
    switch notice {
    case .statusChanged(let taskId): payload = Self.statusPayloadPrefix + taskId
    case .workDue: payload = Self.workDuePayload
    }
    try connection.query("SELECT pg_notify($1, $2)", [.text(channel), .text(payload)])
  }

  static let statusPayloadPrefix = "status:"
  static let workDuePayload = "due"

  // MARK: Tasks

  static let insertTaskSQL = """
    INSERT INTO tasks(id, team_id, status, provider, created_at, next_run_at, doc, priority)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    """

  static func taskParameters(_ task: TaskRecord, document: String) -> [SQLValue] {
    [
      .text(task.id), .text(task.teamId), .text(task.status.rawValue),
      task.provider.map { .text($0) } ?? .null, .real(task.createdAt),
      task.nextRunAt.map { .real($0) } ?? .null, .text(document),
      .integer(Int64(task.priority)),
    ]
  }

  public func insertTask(_ task: TaskRecord) throws(StorageError) {
    let document = try StoreRows.encode(task)
    try transaction("insertTask") { connection throws(StorageError) in
      try connection.query(Self.insertTaskSQL, Self.taskParameters(task, document: document))
      try notify(.workDue, connection)
    }
  }

  public func saveTask(_ task: TaskRecord, delivery: DeliveryRecord?, events: [TaskEvent])
    throws(StorageError)
  {
    let document = try StoreRows.encode(task)
    try transaction("saveTask") { connection throws(StorageError) in
      let rows = try connection.query(
        "SELECT status FROM tasks WHERE id = $1 FOR UPDATE", [.text(task.id)])
      guard let previous = rows.first?.first?.text else {
        throw StorageError("task \(task.id) not found")
      }
      try write(task, document: document, previousStatus: previous, connection)
      try queue(delivery, events: events, connection)
    }
  }

  /// Writes a task's row whose lock the transaction holds, announcing a status change.
  func write(
    _ task: TaskRecord, document: String, previousStatus: String,
    _ connection: PostgresConnection
  ) throws(StorageError) {
    try connection.update(
      "UPDATE tasks SET status = $1, next_run_at = $2, doc = $3 WHERE id = $4",
      [
        .text(task.status.rawValue), task.nextRunAt.map { .real($0) } ?? .null,
        .text(document), .text(task.id),
      ])
    if previousStatus != task.status.rawValue {
      try notify(.statusChanged(taskId: task.id), connection)
    }
  }

  /// Inserts a delivery and timeline events in the caller's transaction.
  func queue(_ delivery: DeliveryRecord?, events: [TaskEvent], _ connection: PostgresConnection)
    throws(StorageError)
  {
    if let delivery {
      try insertDelivery(delivery, connection)
      try notify(.workDue, connection)
    }
    try insertEvents(events, connection)
  }

  public func task(id: String) throws(StorageError) -> TaskRecord? {
    let rows = try withConnection("task") { connection throws(StorageError) in
      try connection.query("SELECT doc FROM tasks WHERE id = $1", [.text(id)])
    }
    guard let text = rows.first?.first?.text else { return nil }
    return try StoreRows.decode(text)
  }

  public func activeTasks() throws(StorageError) -> [TaskRecord] {
    let rows = try withConnection("activeTasks") { connection throws(StorageError) in
      try connection.query(
        "SELECT doc FROM tasks WHERE status NOT IN \(StoreRows.terminalStatuses)")
    }
    return try StoreRows.decodeAll(rows)
  }

  public func activeTasks(after id: String?, limit: Int) throws(StorageError) -> [TaskRecord] {
    let rows = try withConnection("activeTasks") { connection throws(StorageError) in
      // The C collation orders ids by bytes, as SQLite does.
      try connection.query(
        """
        SELECT doc FROM tasks WHERE id COLLATE "C" > $1
          AND status NOT IN \(StoreRows.terminalStatuses)
        ORDER BY id COLLATE "C" LIMIT $2
        """, [.text(id ?? ""), .integer(Int64(limit))])
    }
    return try StoreRows.decodeAll(rows)
  }

  public func listTasks(_ query: TaskQuery) throws(StorageError) -> (
    tasks: [TaskRecord], total: Int
  ) {
    var parameters: [SQLValue] = []
    func bind(_ value: SQLValue) -> String {
      parameters.append(value)
      return "$\(parameters.count)"
    }
    var conditions = ["team_id = \(bind(.text(query.teamId)))"]
    if let status = query.status {
      conditions.append("status = \(bind(.text(status.rawValue)))")
    }
    if query.provider == "custom" {
      // Tasks with a custom pollConfig have no template id, and `->>` reads a JSON null as NULL.
      conditions.append("provider IS NULL AND (doc::jsonb ->> 'pollConfig') IS NOT NULL")
    } else if let provider = query.provider {
      conditions.append("provider = \(bind(.text(provider)))")
    }
    if let after = query.createdAfter {
      conditions.append("created_at > \(bind(.real(after)))")
    }
    if let before = query.createdBefore {
      conditions.append("created_at < \(bind(.real(before)))")
    }
    let filter = conditions.joined(separator: " AND ")
    let filterParameters = parameters
    let page =
      "LIMIT \(bind(.integer(Int64(query.limit)))) "
      + "OFFSET \(bind(.integer(Int64(query.offset))))"
    let pageParameters = parameters
    let (rows, countRows) = try withConnection("listTasks") { connection throws(StorageError) in
      // The C collation orders ids by bytes, as SQLite does.
      let rows = try connection.query(
        "SELECT doc FROM tasks WHERE \(filter) ORDER BY created_at DESC, id COLLATE \"C\" \(page)",
        pageParameters)
      let count = try connection.query(
        "SELECT count(*) FROM tasks WHERE \(filter)", filterParameters)
      return (rows, count)
    }
    return (try StoreRows.decodeAll(rows), Int(countRows.first?.first?.integer ?? 0))
  }
}
