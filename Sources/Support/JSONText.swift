/// A JSON writer and reader for `JSONValue` that work on UTF-8 bytes directly.
///
/// The engine turns JSON into values and back on every hook call and every task save, and going
/// through `JSONEncoder`/`JSONDecoder` (Codable containers, dynamic casts, boxed values) cost
/// about a third of the CPU per status poll. Both match Foundation's output and results: the
/// writer sorts keys by their UTF-8 bytes, leaves `/` unescaped and prints doubles as Swift
/// does without a trailing `.0`; the reader turns every integral number that fits in `Int64`
/// into `.int`, as decoding `Int64` first did. The reader declines (returns nil) on anything
/// unusual, such as a lone surrogate escape, a number out of range or deep nesting, and the
/// caller then falls back to Foundation, which also produces the error message.
enum JSONText {
  // MARK: Writing

  /// Appends the value's compact JSON text; returns false when a double is not finite, which
  /// JSON cannot represent.
  static func write(_ value: JSONValue, into output: inout [UInt8]) -> Bool {
    switch value {
    case .null: output.append(contentsOf: "null".utf8)
    case .bool(let flag): output.append(contentsOf: (flag ? "true" : "false").utf8)
    case .int(let number): output.append(contentsOf: String(number).utf8)
    case .double(let number):
      guard number.isFinite else { return false }
      var text = number.description
      if text.hasSuffix(".0") { text.removeLast(2) }
      output.append(contentsOf: text.utf8)
    case .string(let text): writeString(text, into: &output)
    case .array(let items):
      output.append(UInt8(ascii: "["))
      for (index, item) in items.enumerated() {
        if index > 0 { output.append(UInt8(ascii: ",")) }
        guard write(item, into: &output) else { return false }
      }
      output.append(UInt8(ascii: "]"))
    case .object(let members):
      output.append(UInt8(ascii: "{"))
      // Sorting the pairs, not the keys, saves a dictionary lookup per member.
      let sorted = members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
      for (index, (key, member)) in sorted.enumerated() {
        if index > 0 { output.append(UInt8(ascii: ",")) }
        writeString(key, into: &output)
        output.append(UInt8(ascii: ":"))
        guard write(member, into: &output) else { return false }
      }
      output.append(UInt8(ascii: "}"))
    }
    return true
  }

  private static let hexDigits = Array("0123456789abcdef".utf8)

  static func writeString(_ text: String, into output: inout [UInt8]) {
    output.append(UInt8(ascii: "\""))
    // withUTF8 copies a string only when it is not already contiguous UTF-8.
    var text = text
    text.withUTF8 { writeEscaped($0, into: &output) }
    output.append(UInt8(ascii: "\""))
  }

  /// Appends `bytes` escaped for a JSON string, copying each run that needs no escape at once.
  private static func writeEscaped(_ bytes: UnsafeBufferPointer<UInt8>, into output: inout [UInt8])
  {
    var runStart = bytes.startIndex
    var index = bytes.startIndex
    while index < bytes.endIndex {
      let byte = bytes[index]
      if byte >= 0x20 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
        index += 1
        continue
      }
      output.append(contentsOf: bytes[runStart..<index])
      output.append(0x5C)
      switch byte {
      case UInt8(ascii: "\""): output.append(UInt8(ascii: "\""))
      case UInt8(ascii: "\\"): output.append(0x5C)
      case 0x0A: output.append(UInt8(ascii: "n"))
      case 0x0D: output.append(UInt8(ascii: "r"))
      case 0x09: output.append(UInt8(ascii: "t"))
      case 0x08: output.append(UInt8(ascii: "b"))
      case 0x0C: output.append(UInt8(ascii: "f"))
      default:
        output.append(UInt8(ascii: "u"))
        output.append(0x30)
        output.append(0x30)
        output.append(hexDigits[Int(byte >> 4)])
        output.append(hexDigits[Int(byte & 0x0F)])
      }
      index += 1
      runStart = index
    }
    output.append(contentsOf: bytes[runStart..<index])
  }

  // MARK: Reading

  /// Parses a whole document; nil when the text is not plain, valid JSON that this reader
  /// accepts.
  static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> JSONValue? {
    var reader = Reader(bytes: bytes)
    reader.skipWhitespace()
    guard let value = reader.value(depth: 0) else { return nil }
    reader.skipWhitespace()
    // Not a conditional expression: JSONValue is ExpressibleByNilLiteral, so `nil` there would
    // become JSONValue.null and text after the document would parse as null.
    guard reader.index == bytes.count else { return nil }
    return value
  }

  private struct Reader {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    static let maxDepth = 512

    mutating func skipWhitespace() {
      while index < bytes.count {
        switch bytes[index] {
        case 0x20, 0x0A, 0x0D, 0x09: index += 1
        default: return
        }
      }
    }

    mutating func value(depth: Int) -> JSONValue? {
      guard index < bytes.count, depth < Self.maxDepth else { return nil }
      switch bytes[index] {
      case UInt8(ascii: "{"): return object(depth: depth)
      case UInt8(ascii: "["): return array(depth: depth)
      case UInt8(ascii: "\""): return string().map { .string($0) }
      case UInt8(ascii: "t"): return literal("true", .bool(true))
      case UInt8(ascii: "f"): return literal("false", .bool(false))
      case UInt8(ascii: "n"): return literal("null", .null)
      default: return number()
      }
    }

    mutating func literal(_ word: StaticString, _ value: JSONValue) -> JSONValue? {
      let count = word.utf8CodeUnitCount
      guard index + count <= bytes.count else { return nil }
      for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
        return nil
      }
      index += count
      return value
    }

    mutating func object(depth: Int) -> JSONValue? {
      index += 1
      var members: [String: JSONValue] = [:]
      skipWhitespace()
      if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
        index += 1
        return .object(members)
      }
      while true {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\""), let key = string() else {
          return nil
        }
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
        index += 1
        skipWhitespace()
        guard let member = value(depth: depth + 1) else { return nil }
        // Foundation rejects an object with a repeated key; so does this reader, by declining.
        guard members.updateValue(member, forKey: key) == nil else { return nil }
        skipWhitespace()
        guard index < bytes.count else { return nil }
        if bytes[index] == UInt8(ascii: ",") {
          index += 1
          continue
        }
        guard bytes[index] == UInt8(ascii: "}") else { return nil }
        index += 1
        return .object(members)
      }
    }

    mutating func array(depth: Int) -> JSONValue? {
      index += 1
      var items: [JSONValue] = []
      skipWhitespace()
      if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
        index += 1
        return .array(items)
      }
      while true {
        skipWhitespace()
        guard let item = value(depth: depth + 1) else { return nil }
        items.append(item)
        skipWhitespace()
        guard index < bytes.count else { return nil }
        if bytes[index] == UInt8(ascii: ",") {
          index += 1
          continue
        }
        guard bytes[index] == UInt8(ascii: "]") else { return nil }
        index += 1
        return .array(items)
      }
    }

    /// Reads a string starting at its opening quote. Raw bytes must be valid UTF-8 and escapes
    /// must not leave a lone surrogate.
    mutating func string() -> String? {
      index += 1
      let start = index
      // The common case: no escapes, so the bytes are the string.
      while index < bytes.count {
        let byte = bytes[index]
        if byte == UInt8(ascii: "\"") {
          let text = String(
            validating: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
          index += 1
          return text
        }
        if byte == UInt8(ascii: "\\") { break }
        if byte < 0x20 { return nil }
        index += 1
      }
      var decoded = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
      while index < bytes.count {
        let byte = bytes[index]
        if byte == UInt8(ascii: "\"") {
          index += 1
          return String(validating: decoded, as: UTF8.self)
        }
        if byte < 0x20 { return nil }
        guard byte == UInt8(ascii: "\\") else {
          decoded.append(byte)
          index += 1
          continue
        }
        guard index + 1 < bytes.count else { return nil }
        let escape = bytes[index + 1]
        index += 2
        switch escape {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escape)
        case UInt8(ascii: "n"): decoded.append(0x0A)
        case UInt8(ascii: "r"): decoded.append(0x0D)
        case UInt8(ascii: "t"): decoded.append(0x09)
        case UInt8(ascii: "b"): decoded.append(0x08)
        case UInt8(ascii: "f"): decoded.append(0x0C)
        case UInt8(ascii: "u"):
          guard var scalar = hexQuad() else { return nil }
          if (0xD800..<0xDC00).contains(scalar) {
            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
              bytes[index + 1] == UInt8(ascii: "u")
            else { return nil }
            index += 2
            guard let low = hexQuad(), (0xDC00..<0xE000).contains(low) else { return nil }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
          } else if (0xDC00..<0xE000).contains(scalar) {
            return nil
          }
          guard let character = Unicode.Scalar(scalar) else { return nil }
          decoded.append(contentsOf: String(Character(character)).utf8)
        default:
          return nil
        }
      }
      return nil
    }

    mutating func hexQuad() -> UInt32? {
      guard index + 4 <= bytes.count else { return nil }
      var value: UInt32 = 0
      for _ in 0..<4 {
        let byte = bytes[index]
        let digit: UInt8
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
        default: return nil
        }
        value = value << 4 | UInt32(digit)
        index += 1
      }
      return value
    }

    /// Reads a number in the strict JSON grammar.
    mutating func number() -> JSONValue? {
      let start = index
      if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
      guard index < bytes.count, isDigit(bytes[index]) else { return nil }
      if bytes[index] == UInt8(ascii: "0") {
        index += 1
        if index < bytes.count, isDigit(bytes[index]) { return nil }
      } else {
        while index < bytes.count, isDigit(bytes[index]) { index += 1 }
      }
      var isInteger = true
      if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
        isInteger = false
        index += 1
        guard index < bytes.count, isDigit(bytes[index]) else { return nil }
        while index < bytes.count, isDigit(bytes[index]) { index += 1 }
      }
      if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E")
      {
        isInteger = false
        index += 1
        if index < bytes.count,
          bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-")
        {
          index += 1
        }
        guard index < bytes.count, isDigit(bytes[index]) else { return nil }
        while index < bytes.count, isDigit(bytes[index]) { index += 1 }
      }
      let text = String(
        decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
      if isInteger, let integer = Int64(text) { return .int(integer) }
      guard let double = Double(text), double.isFinite else { return nil }
      if let integer = Int64(exactly: double) { return .int(integer) }
      return .double(double)
    }

    func isDigit(_ byte: UInt8) -> Bool {
      byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }
  }
}
