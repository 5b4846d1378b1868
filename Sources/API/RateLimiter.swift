import Foundation
import Support

/// A request budget: `requests` per window of `perSeconds`; 0 requests means no limit.
public struct RateLimit: Sendable, Equatable {
  public var requests: Int
  public var perSeconds: Double

  public init(requests: Int, perSeconds: Double) {
    self.requests = requests
    self.perSeconds = perSeconds
  }

  public static let standard = RateLimit(requests: 100, perSeconds: 1)
}

/// Counts requests per client (a team, or an address for requests without a key) in fixed
/// windows aligned to multiples of `perSeconds` since the Unix epoch.
///
/// A fixed window lets a client spend up to twice the budget across a window boundary. In
/// exchange, each client costs one counter and `X-RateLimit-Reset` is the window's end.
final class RateLimiter: Sendable {
  /// The outcome for one request, with the values of the `X-RateLimit-*` headers.
  struct Decision {
    let allowed: Bool
    let limit: Int
    let remaining: Int
    /// Unix seconds at which the window ends.
    let reset: Int
    /// Seconds until the window ends, at least 1.
    let retryAfter: Int

    var headers: [(String, String)] {
      [
        ("X-RateLimit-Limit", String(limit)), ("X-RateLimit-Remaining", String(remaining)),
        ("X-RateLimit-Reset", String(reset)),
      ]
    }
  }

  private struct Window {
    var start: Double
    var count: Int
  }

  let limit: RateLimit
  private let windows = LockedValue<[String: Window]>([:])

  init(limit: RateLimit) { self.limit = limit }

  /// Counts one request of `client` at time `now`; nil when the limit is off.
  func admit(_ client: String, now: Double = Timestamp.now()) -> Decision? {
    guard limit.requests > 0 else { return nil }
    let start = (now / limit.perSeconds).rounded(.down) * limit.perSeconds
    let end = start + limit.perSeconds
    let count = windows.withLock { table in
      if table.count > 10_000 { table = table.filter { $0.value.start >= start } }
      var window = table[client] ?? Window(start: start, count: 0)
      if window.start != start { window = Window(start: start, count: 0) }
      if window.count < limit.requests {
        window.count += 1
      } else {
        window.count = limit.requests + 1
      }
      table[client] = window
      return window.count
    }
    let allowed = count <= limit.requests
    return Decision(
      allowed: allowed, limit: limit.requests, remaining: max(0, limit.requests - count),
      reset: Int(end.rounded(.up)), retryAfter: max(1, Int((end - now).rounded(.up))))
  }
}
