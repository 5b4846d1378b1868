import CPostgres
import Foundation
import Support

/// A libpq connection URI, with its password kept out of messages.
struct PostgresTarget: Sendable {
  let url: String
  /// The URL with its passwords replaced by `***`, for messages and logs.
  let maskedURL: String
  let password: String?
  /// The passwords as written in the URL, which libpq may quote in its messages.
  let rawPasswords: [String]

  init(url: String) throws(StorageError) {
    guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") else {
      throw StorageError(
        "invalid PostgreSQL URL \(Self.masked(url)): expected postgres://user:password@host/database"
      )
    }
    self.url = url
    maskedURL = Self.masked(url)
    rawPasswords = DatabaseURL.rawPasswords(in: url)
    password = try Self.password(in: url, masked: maskedURL, rawPasswords: rawPasswords)
    if let password { Redactor.shared.register(password) }
  }

  /// Replaces every occurrence of the passwords in `text` with `***`.
  func mask(_ text: String) -> String {
    Self.mask(text, secrets: rawPasswords + (password.map { [$0] } ?? []))
  }

  static func mask(_ text: String, secrets: [String]) -> String {
    var result = text
    for secret in secrets.sorted(by: { $0.count > $1.count }) where !secret.isEmpty {
      result = result.replacingOccurrences(of: secret, with: "***")
    }
    return result
  }

  /// Opens a connection, blocking until it is ready or has failed. Settings the URL names win,
  /// except the client encoding, which the row decoding needs to be UTF-8.
  func connect() -> OpaquePointer? {
    let keywords = ["application_name", "connect_timeout", "dbname", "client_encoding"]
    let values = ["asyncqueue", "10", url, "UTF8"]
    let keywordCopies = keywords.map { strdup($0) } + [nil]
    let valueCopies = values.map { strdup($0) } + [nil]
    defer {
      for copy in keywordCopies + valueCopies { free(copy) }
    }
    let keywordPointers = keywordCopies.map { UnsafePointer<CChar>($0) }
    let valuePointers = valueCopies.map { UnsafePointer<CChar>($0) }
    return keywordPointers.withUnsafeBufferPointer { keywordBuffer in
      valuePointers.withUnsafeBufferPointer { valueBuffer in
        PQconnectdbParams(keywordBuffer.baseAddress, valueBuffer.baseAddress, 1)
      }
    }
  }

  /// Reads the password the way libpq does, from the user information or a `password`
  /// parameter, percent-decoded.
  private static func password(in url: String, masked: String, rawPasswords: [String])
    throws(StorageError) -> String?
  {
    var message: UnsafeMutablePointer<CChar>?
    guard let options = PQconninfoParse(url, &message) else {
      // libpq quotes the token it could not read, which may be the password.
      let reason = mask(
        message.map { String(cString: $0) } ?? "out of memory", secrets: rawPasswords)
      PQfreemem(message)
      throw StorageError(
        "invalid PostgreSQL URL \(masked): "
          + reason.trimmingCharacters(in: .whitespacesAndNewlines))
    }
    defer { PQconninfoFree(options) }
    var option = options
    while let keyword = option.pointee.keyword {
      if String(cString: keyword) == "password", let value = option.pointee.val {
        return String(cString: value)
      }
      option += 1
    }
    return nil
  }

  static func masked(_ url: String) -> String { DatabaseURL.masked(url) }
}

/// Up to `size` connections, each lent to one caller at a time; a caller waits when all are
/// lent.
final class PostgresPool: @unchecked Sendable {
  let target: PostgresTarget
  let size: Int
  /// SQL run on each new connection, such as a session setting.
  let setup: String?
  // Guards every property below.
  private let condition = NSCondition()
  private var idle: [PostgresConnection] = []
  private var openCount = 0
  private var isClosed = false

  init(target: PostgresTarget, size: Int, setup: String? = nil) {
    precondition(size > 0, "a connection pool needs at least one connection")
    self.target = target
    self.size = size
    self.setup = setup
  }

  /// Takes an idle connection, opens one while fewer than `size` are open, or waits.
  func borrow() throws(StorageError) -> PostgresConnection {
    condition.lock()
    while true {
      if isClosed {
        condition.unlock()
        throw StorageError("the PostgreSQL store for \(target.maskedURL) is closed")
      }
      if let connection = idle.popLast() {
        condition.unlock()
        connection.commitSent = false
        return connection
      }
      if openCount < size { break }
      condition.wait()
    }
    openCount += 1
    condition.unlock()
    do {
      let connection = try PostgresConnection(target: target)
      connection.setup = setup
      if let setup { try connection.execute(setup) }
      return connection
    } catch {
      condition.lock()
      openCount -= 1
      condition.signal()
      condition.unlock()
      throw error
    }
  }

  /// Returns a connection; a broken one, or any after `close()`, is closed instead.
  func giveBack(_ connection: PostgresConnection) {
    condition.lock()
    defer { condition.unlock() }
    if isClosed || connection.isBroken {
      openCount -= 1
    } else {
      idle.append(connection)
    }
    condition.signal()
  }

  /// Closes the idle connections now and lent ones when they come back.
  func close() {
    condition.lock()
    defer { condition.unlock() }
    isClosed = true
    openCount -= idle.count
    idle.removeAll()
    condition.broadcast()
  }
}
