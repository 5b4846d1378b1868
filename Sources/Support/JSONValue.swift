import Foundation

/// A JSON document as a value: keeps `null` distinct from an absent key and integers distinct
/// from floating-point numbers, which `JSONSerialization` does not promise on Linux.
public enum JSONValue: Sendable, Equatable, Hashable {
  case null
  case bool(Bool)
  case int(Int64)
  case double(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])
}

extension JSONValue: Codable {
  public init(from decoder: Decoder) throws {
    let container = try decoder.singleValueContainer()
    if container.decodeNil() {
      self = .null
    } else if let value = try? container.decode(Bool.self) {
      self = .bool(value)
    } else if let value = try? container.decode(Int64.self) {
      self = .int(value)
    } else if let value = try? container.decode(Double.self) {
      self = .double(value)
    } else if let value = try? container.decode(String.self) {
      self = .string(value)
    } else if let value = try? container.decode([JSONValue].self) {
      self = .array(value)
    } else {
      self = .object(try container.decode([String: JSONValue].self))
    }
  }

  public func encode(to encoder: Encoder) throws {
    var container = encoder.singleValueContainer()
    switch self {
    case .null: try container.encodeNil()
    case .bool(let value): try container.encode(value)
    case .int(let value): try container.encode(value)
    case .double(let value): try container.encode(value)
    case .string(let value): try container.encode(value)
    case .array(let value): try container.encode(value)
    case .object(let value): try container.encode(value)
    }
  }
}

/// The error thrown when text is not valid JSON.
public struct JSONParseError: Error, CustomStringConvertible, Sendable {
  /// The problem and its position, as Foundation's parser reports them, without a prefix.
  public let reason: String
  public var description: String { "invalid JSON: \(reason)" }
}

extension JSONValue {
  /// Parses JSON text. Top-level scalars are accepted.
  public static func parse(_ data: Data) throws(JSONParseError) -> JSONValue {
    let fast = data.withUnsafeBytes { raw in
      JSONText.parse(
        UnsafeBufferPointer(
          start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count))
    }
    if let fast { return fast }
    return try parseWithFoundation(data)
  }

  /// Parses with `JSONDecoder`, the reference that `JSONText` matches. Used for text the fast
  /// reader declines, so unusual input and every error message stay as Foundation has them.
  static func parseWithFoundation(_ data: Data) throws(JSONParseError) -> JSONValue {
    do {
      return try JSONDecoder().decode(JSONValue.self, from: data)
    } catch {
      throw JSONParseError(reason: Self.describeInvalid(data))
    }
  }

  /// Explains why `data` is not JSON. JSONSerialization's message names the problem and its
  /// position; JSONDecoder's only reports that the data is invalid.
  private static func describeInvalid(_ data: Data) -> String {
    do {
      _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
      return "a value is out of range"
    } catch {
      if let reason = (error as NSError).userInfo["NSDebugDescription"] as? String {
        return reason
      }
      return "the text is not JSON"
    }
  }

  public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
    var copy = text
    let fast = copy.withUTF8 { JSONText.parse($0) }
    if let fast { return fast }
    return try parseWithFoundation(Data(text.utf8))
  }

  public static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
    let fast = bytes.withUnsafeBufferPointer { JSONText.parse($0) }
    if let fast { return fast }
    return try parseWithFoundation(Data(bytes))
  }

  /// Serializes to compact JSON text with sorted keys, so equal values give equal bytes.
  public func serialized() -> String {
    String(decoding: serializedBytes(), as: UTF8.self)
  }

  public func serializedData() -> Data {
    Data(serializedBytes())
  }

  /// The compact JSON text as UTF-8 bytes. A non-finite double, which JSON cannot represent
  /// and the reader never produces, makes the whole text `null`, as `JSONEncoder` failing did.
  public func serializedBytes() -> [UInt8] {
    var output: [UInt8] = []
    output.reserveCapacity(256)
    guard JSONText.write(self, into: &output) else { return Array("null".utf8) }
    return output
  }

  /// Serializes with `JSONEncoder`, the reference that `JSONText` matches.
  func serializedWithFoundation() -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Every case maps to a JSON value, except a non-finite double, which makes the encoder
    // throw. The decoder never produces one, and the fallback for a hand-built one is null.
    return (try? encoder.encode(self)) ?? Data("null".utf8)
  }
}

extension JSONValue {
  public subscript(key: String) -> JSONValue? {
    if case .object(let members) = self { return members[key] }
    return nil
  }

  public var stringValue: String? {
    if case .string(let value) = self { return value }
    return nil
  }

  public var boolValue: Bool? {
    if case .bool(let value) = self { return value }
    return nil
  }

  public var objectValue: [String: JSONValue]? {
    if case .object(let value) = self { return value }
    return nil
  }

  public var arrayValue: [JSONValue]? {
    if case .array(let value) = self { return value }
    return nil
  }

  /// The value as a number, from an integer or a floating-point case.
  public var doubleValue: Double? {
    switch self {
    case .int(let value): return Double(value)
    case .double(let value): return value
    default: return nil
    }
  }

  /// The value as an integer, from an integer or an integral floating-point case.
  public var intValue: Int? {
    switch self {
    case .int(let value): return Int(exactly: value)
    case .double(let value): return Int(exactly: value)
    default: return nil
    }
  }

  public var isNull: Bool { self == .null }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
  ExpressibleByBooleanLiteral,
  ExpressibleByDictionaryLiteral, ExpressibleByArrayLiteral, ExpressibleByNilLiteral,
  ExpressibleByFloatLiteral
{
  public init(stringLiteral value: String) { self = .string(value) }
  public init(integerLiteral value: Int64) { self = .int(value) }
  public init(booleanLiteral value: Bool) { self = .bool(value) }
  public init(floatLiteral value: Double) { self = .double(value) }
  public init(nilLiteral: ()) { self = .null }
  public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
  public init(dictionaryLiteral elements: (String, JSONValue)...) {
    self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
  }
}
