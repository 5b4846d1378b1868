import CSQLite
import Foundation

/// One SQLite connection with a cache of prepared statements.
///
/// Not thread-safe: `SQLiteStore` confines each connection behind a lock.
final class SQLiteConnection {
  private var handle: OpaquePointer?
  private var statements: [String: OpaquePointer] = [:]
  let path: String

  init(path: String) throws(StorageError) {
    self.path = path
    let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
    let status = sqlite3_open_v2(path, &handle, flags, nil)
    guard status == SQLITE_OK else {
      let reason = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
      sqlite3_close(handle)
      throw StorageError("cannot open database \(path): \(reason)")
    }
    sqlite3_busy_timeout(handle, 5000)
  }

  /// Registers SQLite's commit hook for WAL mode, which replaces its automatic checkpoint.
  /// A nil `hook` removes it.
  func setWALHook(
    _ hook: (
      @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, Int32)
        -> Int32
    )?,
    context: UnsafeMutableRawPointer?
  ) {
    _ = sqlite3_wal_hook(handle, hook, context)
  }

  deinit {
    for statement in statements.values { sqlite3_finalize(statement) }
    sqlite3_close(handle)
  }

  func execute(_ sql: String) throws(StorageError) {
    var errorMessage: UnsafeMutablePointer<CChar>?
    let status = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
    guard status == SQLITE_OK else {
      let reason = errorMessage.map { String(cString: $0) } ?? "error \(status)"
      sqlite3_free(errorMessage)
      throw StorageError("\(reason) in: \(sql.prefix(200))")
    }
  }

  /// Runs a statement and returns every row.
  @discardableResult
  func query(_ sql: String, _ parameters: [SQLValue] = []) throws(StorageError) -> [[SQLValue]] {
    let statement = try prepare(sql)
    defer { sqlite3_reset(statement) }
    sqlite3_clear_bindings(statement)
    for (offset, value) in parameters.enumerated() {
      try bind(value, at: Int32(offset + 1), in: statement, sql: sql)
    }
    var rows: [[SQLValue]] = []
    while true {
      let status = sqlite3_step(statement)
      if status == SQLITE_DONE { break }
      guard status == SQLITE_ROW else { throw failure(sql) }
      let count = sqlite3_column_count(statement)
      rows.append((0..<count).map { column(statement, $0) })
    }
    return rows
  }

  var changes: Int { Int(sqlite3_changes(handle)) }

  private func prepare(_ sql: String) throws(StorageError) -> OpaquePointer {
    if let cached = statements[sql] { return cached }
    var statement: OpaquePointer?
    guard
      sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        == SQLITE_OK, let statement
    else { throw failure(sql) }
    statements[sql] = statement
    return statement
  }

  private func bind(_ value: SQLValue, at index: Int32, in statement: OpaquePointer, sql: String)
    throws(StorageError)
  {
    let status: Int32
    switch value {
    case .null: status = sqlite3_bind_null(statement, index)
    case .integer(let number): status = sqlite3_bind_int64(statement, index, number)
    case .real(let number): status = sqlite3_bind_double(statement, index, number)
    case .text(let text):
      var copy = text
      status = copy.withUTF8 { buffer in
        buffer.withMemoryRebound(to: CChar.self) {
          aq_sqlite_bind_text(statement, index, $0.baseAddress, Int32($0.count))
        }
      }
    case .blob(let bytes):
      status = bytes.withUnsafeBytes {
        aq_sqlite_bind_blob(statement, index, $0.baseAddress, Int32($0.count))
      }
    }
    guard status == SQLITE_OK else { throw failure(sql) }
  }

  private func column(_ statement: OpaquePointer, _ index: Int32) -> SQLValue {
    switch sqlite3_column_type(statement, index) {
    case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, index))
    case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, index))
    case SQLITE_TEXT:
      guard let text = sqlite3_column_text(statement, index) else { return .text("") }
      let length = Int(sqlite3_column_bytes(statement, index))
      return .text(
        String(decoding: UnsafeBufferPointer(start: text, count: length), as: UTF8.self))
    case SQLITE_BLOB:
      let length = Int(sqlite3_column_bytes(statement, index))
      guard let data = sqlite3_column_blob(statement, index), length > 0 else { return .blob([]) }
      return .blob(Array(UnsafeRawBufferPointer(start: data, count: length)))
    default: return .null
    }
  }

  private func failure(_ sql: String) -> StorageError {
    let reason = String(cString: sqlite3_errmsg(handle))
    return StorageError("\(reason) in: \(sql.prefix(200))")
  }
}
