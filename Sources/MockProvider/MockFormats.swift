import Foundation
import HTTPServer
import Support

/// Id formats that imitate each provider's, generated from the store's reproducible sequence.
extension JobStore {
  /// Returns a lowercase UUID such as fal, Runway and Luma use.
  func uuid() -> String {
    let high = nextRandom()
    let low = nextRandom()
    let hex = String(format: "%016llx%016llx", high, low)
    let characters = Array(hex)
    let groups = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }
    return groups.joined(separator: "-")
  }

  /// Returns a 26-character lowercase base-32 id such as Replicate prediction ids.
  func replicateID() -> String {
    randomString(length: 26, alphabet: Array("abcdefghijklmnopqrstuvwxyz234567"))
  }

  /// Returns a 20-character alphanumeric id such as ElevenLabs dubbing ids.
  func elevenLabsID() -> String {
    randomString(
      length: 20, alphabet: Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
  }

  /// Returns a 64-character hexadecimal id such as Stability generation ids.
  func hexID() -> String {
    (0..<4).map { _ in String(format: "%016llx", nextRandom()) }.joined()
  }

  private func randomString(length: Int, alphabet: [Character]) -> String {
    var text = ""
    var bits = nextRandom()
    for index in 0..<length {
      if index % 8 == 7 { bits = nextRandom() }
      text.append(alphabet[Int(bits % UInt64(alphabet.count))])
      bits /= UInt64(alphabet.count)
    }
    return text
  }
}

enum MockFormats {
  /// Returns the current time as ISO 8601 with milliseconds, for example "2025-01-31T12:00:00.000Z".
  static func timestamp() -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.string(from: Date())
  }

  /// Returns `count` bytes that start with `header` and continue with a repeating pattern, so
  /// downloads are deterministic and checkable.
  static func fakeBytes(header: [UInt8], count: Int) -> [UInt8] {
    var bytes = header
    var value: UInt8 = 0
    while bytes.count < count {
      bytes.append(value)
      value &+= 7
    }
    return bytes
  }

  /// Fake MP3 audio: an ID3v2 tag header and a pattern, 4 KiB in all.
  static let mp3 = fakeBytes(header: Array("ID3".utf8) + [4, 0, 0, 0, 0, 0, 0], count: 4_096)

  /// Fake MP4 video: an `ftyp` box naming the mp42 brand and a pattern, 8 KiB in all.
  static let mp4 = fakeBytes(
    header: [0, 0, 0, 0x18] + Array("ftypmp42".utf8) + [0, 0, 0, 0] + Array("mp42isom".utf8),
    count: 8_192)

  /// Fake JPEG image: the SOI and JFIF APP0 markers and a pattern, 2 KiB in all.
  static let jpeg = fakeBytes(
    header: [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10] + Array("JFIF".utf8) + [0], count: 2_048)

  /// Returns the fake file and content type for an artifact name such as "output.mp4".
  static func artifact(named name: String) -> (bytes: [UInt8], contentType: String)? {
    if name.hasSuffix(".mp4") { return (mp4, "video/mp4") }
    if name.hasSuffix(".mp3") { return (mp3, "audio/mpeg") }
    if name.hasSuffix(".jpg") || name.hasSuffix(".jpeg") { return (jpeg, "image/jpeg") }
    return nil
  }
}

/// The fields of a submit body, from JSON or multipart/form-data.
enum SubmitInput {
  /// Returns the body as a JSON value: the parsed JSON, or an object of the form's text
  /// fields, where file parts appear as "<file NAME, N bytes>". Returns nil when the body
  /// cannot be read.
  static func parse(_ request: HTTPRequest) -> JSONValue? {
    let contentType = request.header("content-type") ?? ""
    if contentType.lowercased().hasPrefix("multipart/form-data") {
      guard let boundary = boundary(of: contentType) else { return nil }
      return multipartFields(request.body, boundary: boundary).map { .object($0) }
    }
    if request.body.isEmpty { return .object([:]) }
    return try? JSONValue.parse(request.body)
  }

  private static func boundary(of contentType: String) -> String? {
    for parameter in contentType.split(separator: ";").dropFirst() {
      let pair = parameter.trimmingCharacters(in: .whitespaces)
      guard pair.lowercased().hasPrefix("boundary=") else { continue }
      let value = pair.dropFirst("boundary=".count)
      return value.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }
    return nil
  }

  private static func multipartFields(_ body: [UInt8], boundary: String) -> [String: JSONValue]? {
    let delimiter = Array(("--" + boundary).utf8)
    let parts = split(body, on: delimiter)
    guard parts.count >= 2 else { return nil }

    var fields: [String: JSONValue] = [:]
    for part in parts.dropFirst() {
      // The closing delimiter is followed by "--".
      if part.starts(with: Array("--".utf8)) { break }
      guard let headEnd = firstIndex(of: Array("\r\n\r\n".utf8), in: part) else { continue }
      let head = String(decoding: part[..<headEnd], as: UTF8.self)
      var content = Array(part[(headEnd + 4)...])
      if content.suffix(2) == [13, 10] { content.removeLast(2) }
      guard let name = dispositionParameter("name", in: head) else { continue }
      if let fileName = dispositionParameter("filename", in: head) {
        fields[name] = .string("<file \(fileName), \(content.count) bytes>")
      } else {
        fields[name] = .string(String(decoding: content, as: UTF8.self))
      }
    }
    return fields
  }

  private static func dispositionParameter(_ parameter: String, in head: String) -> String? {
    for line in head.components(separatedBy: "\r\n")
    where line.lowercased().hasPrefix("content-disposition:") {
      for item in line.split(separator: ";").dropFirst() {
        let pair = item.trimmingCharacters(in: .whitespaces)
        guard pair.lowercased().hasPrefix(parameter + "=") else { continue }
        return pair.dropFirst(parameter.count + 1).trimmingCharacters(
          in: CharacterSet(charactersIn: "\""))
      }
    }
    return nil
  }

  private static func split(_ bytes: [UInt8], on delimiter: [UInt8]) -> [[UInt8]] {
    var parts: [[UInt8]] = []
    var start = 0
    var index = 0
    while index + delimiter.count <= bytes.count {
      if bytes[index..<index + delimiter.count].elementsEqual(delimiter) {
        parts.append(Array(bytes[start..<index]))
        index += delimiter.count
        start = index
      } else {
        index += 1
      }
    }
    parts.append(Array(bytes[start...]))
    return parts.map { part in
      part.starts(with: [13, 10]) ? Array(part.dropFirst(2)) : part
    }
  }

  private static func firstIndex(of pattern: [UInt8], in bytes: [UInt8]) -> Int? {
    guard bytes.count >= pattern.count else { return nil }
    for index in 0...(bytes.count - pattern.count)
    where bytes[index..<index + pattern.count].elementsEqual(pattern) {
      return index
    }
    return nil
  }
}
