import Foundation

/// Times as the API shows them: ISO 8601 in UTC with milliseconds, e.g. `2026-12-04T17:12:38.120Z`.
public enum Timestamp {
  public static func iso8601(_ date: Date) -> String {
    var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
    let milliseconds = Int((date.timeIntervalSince1970 - Double(seconds)) * 1000)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    return String(
      format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900,
      Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min),
      Int(parts.tm_sec), min(milliseconds, 999))
  }

  public static func iso8601(seconds: Double) -> String {
    iso8601(Date(timeIntervalSince1970: seconds))
  }

  /// Parses an ISO 8601 date-time with or without fractional seconds and with `Z` or an offset.
  public static func parse(_ text: String) -> Date? {
    let withFraction = ISO8601DateFormatter()
    withFraction.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let date = withFraction.date(from: text) { return date }
    let plain = ISO8601DateFormatter()
    plain.formatOptions = [.withInternetDateTime]
    return plain.date(from: text)
  }

  /// Seconds since the Unix epoch.
  public static func now() -> Double { Date().timeIntervalSince1970 }
}
