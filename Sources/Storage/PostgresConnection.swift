import CPostgres
import Foundation

/// One libpq connection. Not thread-safe: `PostgresPool` lends it to one caller at a time, and
/// a listener keeps its own.
final class PostgresConnection {
  private let handle: OpaquePointer
  let target: PostgresTarget
  /// Set once this use of the connection sent a COMMIT, after which a lost connection leaves
  /// the outcome unknown and the call must not run again.
  var commitSent = false
  /// SQL its pool runs on the connection when it opens, run again after a reconnect.
  var setup: String?

  init(target: PostgresTarget) throws(StorageError) {
    self.target = target
    let opened = target.connect()
    guard let opened else {
      throw StorageError("cannot connect to \(target.maskedURL): out of memory")
    }
    guard PQstatus(opened) == CONNECTION_OK else {
      let reason = target.mask(Self.text(PQerrorMessage(opened)))
      PQfinish(opened)
      throw StorageError("cannot connect to \(target.maskedURL): \(reason)")
    }
    // libpq prints server notices ("relation already exists, skipping") to standard error
    // by default, and the store has no use for them.
    PQsetNoticeProcessor(opened, { _, _ in }, nil)
    handle = opened
  }

  deinit { PQfinish(handle) }

  var isBroken: Bool { PQstatus(handle) != CONNECTION_OK }

  /// Reconnects with the same parameters, after the server closed the connection.
  func reset() throws(StorageError) {
    PQreset(handle)
    guard PQstatus(handle) == CONNECTION_OK else {
      let reason = target.mask(Self.text(PQerrorMessage(handle)))
      throw StorageError("cannot reconnect to \(target.maskedURL): \(reason)")
    }
    if let setup { try execute(setup) }
  }

  /// Runs SQL without parameters. The text may contain several statements.
  func execute(_ sql: String) throws(StorageError) {
    guard let result = PQexec(handle, sql) else { throw failure(nil, sql) }
    defer { PQclear(result) }
    let status = PQresultStatus(result)
    guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
      throw failure(result, sql)
    }
  }

  /// Runs one statement with `$1`, `$2`, … bound to `parameters` in text format and returns
  /// every row.
  @discardableResult
  func query(_ sql: String, _ parameters: [SQLValue] = []) throws(StorageError) -> [[SQLValue]] {
    try run(sql, parameters).rows
  }

  /// Runs one statement and returns the number of rows it changed.
  @discardableResult
  func update(_ sql: String, _ parameters: [SQLValue] = []) throws(StorageError) -> Int {
    try run(sql, parameters).changes
  }

  private func run(_ sql: String, _ parameters: [SQLValue]) throws(StorageError) -> (
    rows: [[SQLValue]], changes: Int
  ) {
    let values = parameters.map(Self.parameterText)
    let copies = values.map { $0.map { strdup($0) } ?? nil }
    defer { for copy in copies { free(copy) } }
    let pointers = copies.map { UnsafePointer<CChar>($0) }
    let result = pointers.withUnsafeBufferPointer { buffer in
      PQexecParams(
        handle, sql, Int32(buffer.count), nil, buffer.baseAddress, nil, nil, 0)
    }
    guard let result else { throw failure(nil, sql) }
    defer { PQclear(result) }
    switch PQresultStatus(result) {
    case PGRES_TUPLES_OK: return (Self.rows(result), Int(Self.text(PQcmdTuples(result))) ?? 0)
    case PGRES_COMMAND_OK: return ([], Int(Self.text(PQcmdTuples(result))) ?? 0)
    default: throw failure(result, sql)
    }
  }

  /// The socket, which the listener waits on together with its stop pipe.
  var socket: Int32 { PQsocket(handle) }

  /// Reads what the server sent. Returns false when the connection is lost.
  func consumeInput() -> Bool { PQconsumeInput(handle) == 1 }

  /// Returns the notifications received so far, as (channel, payload) pairs.
  func notifications() -> [(channel: String, payload: String)] {
    var received: [(String, String)] = []
    while let notice = PQnotifies(handle) {
      received.append(
        (String(cString: notice.pointee.relname), String(cString: notice.pointee.extra)))
      PQfreemem(notice)
    }
    return received
  }

  // MARK: Values

  private static func parameterText(_ value: SQLValue) -> String? {
    switch value {
    case .null: return nil
    case .integer(let number): return String(number)
    case .real(let number): return "\(number)"
    case .text(let text): return text
    case .blob(let bytes): return hexText(bytes)
    }
  }

  private static func rows(_ result: OpaquePointer) -> [[SQLValue]] {
    let rowCount = PQntuples(result)
    let columnCount = PQnfields(result)
    let types = (0..<columnCount).map { PQftype(result, $0) }
    return (0..<rowCount).map { row in
      (0..<columnCount).map { column in
        guard PQgetisnull(result, row, column) == 0 else { return .null }
        let text = String(cString: PQgetvalue(result, row, column))
        return value(text, type: types[Int(column)])
      }
    }
  }

  /// Converts a column from text format by its type OID (from `pg_type`).
  private static func value(_ text: String, type: Oid) -> SQLValue {
    switch type {
    case 16: return .integer(text == "t" ? 1 : 0)  // boolean
    case 20, 21, 23: return Int64(text).map { .integer($0) } ?? .text(text)  // integers
    case 700, 701, 1700: return Double(text).map { .real($0) } ?? .text(text)  // float, numeric
    case 17: return .blob(bytes(fromHex: text))  // bytea, hex output format
    default: return .text(text)
    }
  }

  /// Renders bytes in bytea's hex input format, `\\x` and two digits per byte; result files
  /// run to megabytes, so this avoids a string per byte.
  private static func hexText(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = [UInt8(ascii: "\\"), UInt8(ascii: "x")]
    text.reserveCapacity(2 + bytes.count * 2)
    for byte in bytes {
      text.append(digits[Int(byte >> 4)])
      text.append(digits[Int(byte & 0x0f)])
    }
    return String(decoding: text, as: UTF8.self)
  }

  private static func bytes(fromHex text: String) -> [UInt8] {
    let digits = Array(text.utf8.dropFirst(2))
    var bytes: [UInt8] = []
    bytes.reserveCapacity(digits.count / 2)
    var index = 0
    while index + 1 < digits.count {
      bytes.append(UInt8(hexDigit(digits[index]) << 4 | hexDigit(digits[index + 1])))
      index += 2
    }
    return bytes
  }

  private static func hexDigit(_ character: UInt8) -> UInt8 {
    switch character {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return character - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return character - UInt8(ascii: "a") + 10
    default: return character &- UInt8(ascii: "A") &+ 10
    }
  }

  // MARK: Errors

  static func text(_ pointer: UnsafePointer<CChar>?) -> String {
    pointer.map { String(cString: $0) } ?? ""
  }

  private func failure(_ result: OpaquePointer?, _ sql: String) -> StorageError {
    var reason = Self.text(result.map { PQresultErrorMessage($0) } ?? PQerrorMessage(handle))
    if reason.isEmpty { reason = Self.text(PQerrorMessage(handle)) }
    let lines = reason.split(whereSeparator: \.isNewline).map {
      $0.trimmingCharacters(in: .whitespaces)
    }
    let state = result.flatMap { aq_pq_sqlstate($0) }.map { " (SQLSTATE \(String(cString: $0)))" }
    return StorageError(
      target.mask(lines.joined(separator: "; ")) + (state ?? "") + " in: \(sql.prefix(200))")
  }
}
