import Foundation

/// Delays between retries.
enum Backoff {
  /// Returns the delay before retry number `attempt` (1-based) of a plain call: exponential doubles
  /// from 1 s (1, 2, 4, 8, 16 s), linear adds 1 s each time (1, 2, 3 s). Jitter of up to ±20 %
  /// spreads retries of many tasks that failed together.
  static func callDelay(attempt: Int, mode: String) -> Double {
    let base = mode == "linear" ? Double(attempt) : pow(2, Double(max(0, attempt - 1)))
    return jittered(min(base, 300))
  }

  /// Returns the delay after `errors` failed polls in a row: the interval, doubled per error, at most
  /// 60 s (or the interval, when that is longer).
  static func pollDelay(interval: Double, errors: Int) -> Double {
    let doubled = interval * pow(2, Double(min(max(errors - 1, 0), 6)))
    return jittered(min(doubled, max(60, interval)))
  }

  /// Returns the delay before webhook attempt `attempt + 1`: 2, 4, 8 s … doubling to at most one hour.
  static func webhookDelay(attempt: Int) -> Double {
    jittered(min(pow(2, Double(attempt)), 3600))
  }

  static func jittered(_ seconds: Double) -> Double {
    seconds * Double.random(in: 0.8...1.2)
  }

  /// Seconds to wait according to `retry-after-ms` or `Retry-After` (seconds or an HTTP date),
  /// capped at `limit`; nil when neither header is usable.
  static func retryAfter(_ headers: [String: String], now: Double, limit: Double = 300) -> Double? {
    if let milliseconds = headers["retry-after-ms"].flatMap(Double.init), milliseconds >= 0 {
      return min(milliseconds / 1000, limit)
    }
    guard let value = headers["retry-after"]?.trimmingCharacters(in: .whitespaces) else {
      return nil
    }
    if let seconds = Double(value), seconds >= 0 { return min(seconds, limit) }
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "GMT")
    formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
    guard let date = formatter.date(from: value) else { return nil }
    return min(max(0, date.timeIntervalSince1970 - now), limit)
  }
}
