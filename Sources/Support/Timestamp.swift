import Foundation

/// Times as the API shows them: ISO 8601 in UTC with milliseconds, e.g. `2026-12-04T17:12:38.120Z`.
///
/// Formatting and parsing are written out by hand: Foundation's date formatters go through ICU
/// and cost tens of microseconds per call, which showed at the top of the create path's
/// profile.
public enum Timestamp {
  public static func iso8601(_ date: Date) -> String {
    iso8601(seconds: date.timeIntervalSince1970)
  }

  public static func iso8601(seconds value: Double) -> String {
    // Round to the nearest millisecond: 0.12 s is stored as 0.11999… in binary.
    let totalMilliseconds = Int64((value * 1000).rounded())
    var seconds = time_t(totalMilliseconds.quotientAndRemainder(dividingBy: 1000).quotient)
    var milliseconds = Int(totalMilliseconds.quotientAndRemainder(dividingBy: 1000).remainder)
    if milliseconds < 0 {
      milliseconds += 1000
      seconds -= 1
    }
    var parts = tm()
    gmtime_r(&seconds, &parts)
    var text = ""
    text.reserveCapacity(24)
    append(Int(parts.tm_year) + 1900, digits: 4, to: &text)
    text.append("-")
    append(Int(parts.tm_mon) + 1, digits: 2, to: &text)
    text.append("-")
    append(Int(parts.tm_mday), digits: 2, to: &text)
    text.append("T")
    append(Int(parts.tm_hour), digits: 2, to: &text)
    text.append(":")
    append(Int(parts.tm_min), digits: 2, to: &text)
    text.append(":")
    append(Int(parts.tm_sec), digits: 2, to: &text)
    text.append(".")
    append(milliseconds, digits: 3, to: &text)
    text.append("Z")
    return text
  }

  private static func append(_ number: Int, digits: Int, to text: inout String) {
    let written = String(number)
    if written.count < digits { text.append(String(repeating: "0", count: digits - written.count)) }
    text.append(written)
  }

  /// Parses an ISO 8601 date-time, `YYYY-MM-DDTHH:MM:SS`, with optional fractional seconds and
  /// `Z` or a `±HH:MM` offset (RFC 3339). Returns nil for anything else, including an
  /// impossible date such as February 30.
  public static func parse(_ text: String) -> Date? {
    let bytes = Array(text.utf8)
    func number(_ start: Int, _ count: Int) -> Int? {
      guard start + count <= bytes.count else { return nil }
      var value = 0
      for byte in bytes[start..<(start + count)] {
        guard byte >= 48 && byte <= 57 else { return nil }
        value = value * 10 + Int(byte - 48)
      }
      return value
    }
    func byte(_ index: Int) -> UInt8? { index < bytes.count ? bytes[index] : nil }

    guard let year = number(0, 4), byte(4) == 45, let month = number(5, 2), byte(7) == 45,
      let day = number(8, 2), byte(10) == 84 || byte(10) == 116 || byte(10) == 32,
      let hour = number(11, 2), byte(13) == 58, let minute = number(14, 2), byte(16) == 58,
      let second = number(17, 2)
    else { return nil }
    guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day),
      hour < 24, minute < 60, second < 61
    else { return nil }

    var index = 19
    var fraction = 0.0
    if byte(index) == 46 {
      index += 1
      var scale = 0.1
      let start = index
      while let digit = byte(index), digit >= 48 && digit <= 57 {
        fraction += Double(digit - 48) * scale
        scale /= 10
        index += 1
      }
      guard index > start else { return nil }
    }
    var offset = 0
    switch byte(index) {
    case 90, 122:  // Z, z
      index += 1
    case 43, 45:  // +, -
      guard let hours = number(index + 1, 2), byte(index + 3) == 58,
        let minutes = number(index + 4, 2), hours < 24, minutes < 60
      else { return nil }
      offset = (hours * 3600 + minutes * 60) * (byte(index) == 45 ? -1 : 1)
      index += 6
    default:
      return nil
    }
    guard index == bytes.count else { return nil }

    var parts = tm()
    parts.tm_year = Int32(year - 1900)
    parts.tm_mon = Int32(month - 1)
    parts.tm_mday = Int32(day)
    parts.tm_hour = Int32(hour)
    parts.tm_min = Int32(minute)
    parts.tm_sec = Int32(second)
    let epoch = timegm(&parts)
    return Date(timeIntervalSince1970: Double(epoch - offset) + fraction)
  }

  private static func daysIn(month: Int, year: Int) -> Int {
    switch month {
    case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
    case 4, 6, 9, 11: return 30
    default: return 31
    }
  }

  /// Seconds since the Unix epoch.
  public static func now() -> Double { Date().timeIntervalSince1970 }
}
