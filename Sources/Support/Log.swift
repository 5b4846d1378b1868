import Foundation

/// Severity of a log line, in increasing order.
public enum LogLevel: Int, Sendable, Comparable, CustomStringConvertible {
  case debug, info, warn, error

  public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }

  public var description: String {
    switch self {
    case .debug: "debug"
    case .info: "info"
    case .warn: "warn"
    case .error: "error"
    }
  }

  public init?(name: String) {
    switch name.lowercased() {
    case "debug": self = .debug
    case "info": self = .info
    case "warn", "warning": self = .warn
    case "error": self = .error
    default: return nil
    }
  }
}

/// Writes one line per event to stderr: `time level message key=value …`.
///
/// Fields ride beside the message (`task=… provider=…`) so log tools can filter on them. Values
/// pass through `Redactor` first, so a credential that reaches a field or a message is printed
/// as `***`.
public final class Logger: Sendable {
  public let minimumLevel: LogLevel
  public let format: Format
  private let sink: @Sendable (String) -> Void

  public enum Format: String, Sendable { case text, json }

  public init(
    minimumLevel: LogLevel = .info, format: Format = .text,
    sink: @escaping @Sendable (String) -> Void = Logger.standardError
  ) {
    self.minimumLevel = minimumLevel
    self.format = format
    self.sink = sink
  }

  public static let standardError: @Sendable (String) -> Void = { line in
    FileHandle.standardError.write(Data((line + "\n").utf8))
  }

  public func log(_ level: LogLevel, _ message: String, _ fields: [(String, String)] = []) {
    guard level >= minimumLevel else { return }
    let time = Timestamp.iso8601(Date())
    let safeMessage = Redactor.shared.redact(message)
    let safeFields = fields.map { ($0.0, Redactor.shared.redact($0.1)) }
    switch format {
    case .text:
      var line = "\(time) \(level) \(safeMessage.replacingOccurrences(of: "\n", with: " "))"
      for (key, value) in safeFields {
        line += " \(key)=\(Self.quoteIfNeeded(value))"
      }
      sink(line)
    case .json:
      var object: [String: JSONValue] = [
        "time": .string(time), "level": .string(level.description), "msg": .string(safeMessage),
      ]
      for (key, value) in safeFields { object[key] = .string(value) }
      sink(JSONValue.object(object).serialized())
    }
  }

  public func debug(_ message: String, _ fields: [(String, String)] = []) {
    log(.debug, message, fields)
  }
  public func info(_ message: String, _ fields: [(String, String)] = []) {
    log(.info, message, fields)
  }
  public func warn(_ message: String, _ fields: [(String, String)] = []) {
    log(.warn, message, fields)
  }
  public func error(_ message: String, _ fields: [(String, String)] = []) {
    log(.error, message, fields)
  }

  /// Quotes a field value that contains a space, quote, equals sign or line break. Line breaks
  /// become `\n`, so every entry stays on one line.
  private static func quoteIfNeeded(_ value: String) -> String {
    if value.isEmpty
      || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline })
    {
      let escaped = value.replacingOccurrences(of: "\\", with: "\\\\")
        .replacingOccurrences(of: "\"", with: "\\\"")
        .replacingOccurrences(of: "\r\n", with: "\\n")
        .replacingOccurrences(of: "\n", with: "\\n")
        .replacingOccurrences(of: "\r", with: "\\n")
      return "\"\(escaped)\""
    }
    return value
  }
}

/// Replaces every registered secret with `***` in text bound for logs.
///
/// The engine registers each credential it handles (API keys, webhook secrets, provider auth
/// header values) so that no code path can print one, even through an error message that quotes
/// a request.
public final class Redactor: Sendable {
  public static let shared = Redactor()

  public init() {}

  /// Registered secrets keyed by their first four UTF-8 bytes, so redacting a line looks up
  /// each position of the line once instead of scanning every secret.
  private let secrets = LockedValue<[UInt32: Set<String>]>([:])

  /// Registers a secret. Values shorter than 8 characters and plain lowercase words are
  /// ignored, because masking them would garble ordinary log text (a header such as
  /// `X-Auth-Mode: failed` must not hide the word "failed").
  public func register(_ secret: String) {
    guard secret.count >= 8, !Self.isLowercaseWord(secret) else { return }
    let key = Self.prefixKey(Array(secret.utf8), at: 0)
    secrets.withLock { table in _ = table[key, default: []].insert(secret) }
  }

  private static func isLowercaseWord(_ text: String) -> Bool {
    // An ASCII byte outside a-z settles it without the slow Unicode character properties,
    // because every create registers its credentials.
    if text.utf8.contains(where: { $0 < 0x80 && !(0x61...0x7A).contains($0) }) { return false }
    return text.allSatisfy { $0.isLowercase && $0.isLetter }
  }

  public func redact(_ text: String) -> String {
    let bytes = Array(text.utf8)
    guard bytes.count >= 4 else { return text }
    var found: Set<String> = []
    secrets.withLock { table in
      guard !table.isEmpty else { return }
      for index in 0...(bytes.count - 4) {
        guard let candidates = table[Self.prefixKey(bytes, at: index)] else { continue }
        for secret in candidates where Self.matches(secret, in: bytes, at: index) {
          found.insert(secret)
        }
      }
    }
    guard !found.isEmpty else { return text }
    var result = text
    // Longest first, so a whole credential is masked before a token inside it.
    for secret in found.sorted(by: { $0.utf8.count > $1.utf8.count }) {
      result = result.replacingOccurrences(of: secret, with: "***")
    }
    return result
  }

  private static func prefixKey(_ bytes: [UInt8], at index: Int) -> UInt32 {
    UInt32(bytes[index]) << 24 | UInt32(bytes[index + 1]) << 16 | UInt32(bytes[index + 2]) << 8
      | UInt32(bytes[index + 3])
  }

  private static func matches(_ secret: String, in bytes: [UInt8], at index: Int) -> Bool {
    let needle = Array(secret.utf8)
    guard index + needle.count <= bytes.count else { return false }
    return bytes[index..<(index + needle.count)].elementsEqual(needle)
  }
}
