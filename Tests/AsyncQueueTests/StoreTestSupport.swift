import Foundation
import Support

@testable import Storage

/// The PostgreSQL server for tests, from `ASYNCQUEUE_TEST_DATABASE`; nil skips those tests.
let testDatabaseURL = TestDatabase.url

/// Runs administrative SQL (creating or dropping a schema) on a connection of its own.
func runAdminSQL(_ sql: String, url: String) throws {
  let connection = try PostgresConnection(target: try PostgresTarget(url: url))
  try connection.execute(sql)
}

/// A backend that store tests run against.
enum StoreBackend: String, CustomStringConvertible, Sendable {
  case sqlite, postgres

  var description: String { rawValue }

  /// SQLite always; PostgreSQL when `ASYNCQUEUE_TEST_DATABASE` is set.
  static var available: [StoreBackend] {
    testDatabaseURL == nil ? [.sqlite] : [.sqlite, .postgres]
  }

  /// Calls `body` with a function that opens a store on one fresh database, which is removed
  /// afterwards. Every call of the function opens that same database again.
  func withDatabase(_ body: (_ open: () throws -> any TaskStore) throws -> Void) throws {
    switch self {
    case .sqlite:
      let path = temporaryDirectory("store") + "/asyncqueue.db"
      try body { try SQLiteStore(path: path) }
    case .postgres:
      try TestSchema.with { schema in try body { try schema.makeStore() } }
    }
  }

  /// Calls `body` with a store on a fresh database.
  func withStore(_ body: (any TaskStore) throws -> Void) throws {
    try withDatabase { open in try body(try open()) }
  }
}

/// A schema of its own on the test server, so tests that run at once do not share tables.
final class TestSchema: Sendable {
  let name: String
  let url: String

  init() throws {
    let base = try requireTestDatabaseURL()
    name = "t_" + Crypto.randomHex(bytes: 6)
    url = base + (base.contains("?") ? "&" : "?") + "options=-csearch_path%3D" + name
    try runAdminSQL("CREATE SCHEMA \(name)", url: base)
  }

  /// Creates a schema, calls `body` and drops the schema, also when `body` throws.
  static func with(_ body: (TestSchema) throws -> Void) throws {
    let schema = try TestSchema()
    defer { schema.drop() }
    try body(schema)
  }

  func makeStore(poolSize: Int = 4) throws -> PostgresStore {
    try PostgresStore(url: url, poolSize: poolSize)
  }

  /// Runs SQL in this schema on a connection of its own.
  func execute(_ sql: String) throws {
    try runAdminSQL(sql, url: url)
  }

  func query(_ sql: String, _ parameters: [SQLValue] = []) throws -> [[SQLValue]] {
    let connection = try PostgresConnection(target: try PostgresTarget(url: url))
    return try connection.query(sql, parameters)
  }

  func drop() {
    guard let base = testDatabaseURL else { return }
    try? runAdminSQL("DROP SCHEMA IF EXISTS \(name) CASCADE", url: base)
  }
}

private func requireTestDatabaseURL() throws -> String {
  guard let url = testDatabaseURL else { throw StorageError("ASYNCQUEUE_TEST_DATABASE is not set") }
  return url
}

/// Values that test threads add to and the test reads.
final class LockedList<Element: Sendable>: @unchecked Sendable {
  private let lock = NSLock()
  private var elements: [Element] = []

  func append(_ element: Element) { lock.withLock { elements.append(element) } }
  func append(contentsOf more: [Element]) { lock.withLock { elements.append(contentsOf: more) } }
  var all: [Element] { lock.withLock { elements } }

  /// Waits until `condition` holds for the elements, up to `timeout` seconds.
  @discardableResult
  func wait(timeout: Double, until condition: ([Element]) -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      if condition(all) { return true }
      Thread.sleep(forTimeInterval: 0.01)
    }
    return condition(all)
  }
}

/// Runs `body(index)` on `count` threads of their own and waits for all of them.
func runConcurrently(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
  let group = DispatchGroup()
  for index in 0..<count {
    group.enter()
    Thread {
      body(index)
      group.leave()
    }.start()
  }
  group.wait()
}
