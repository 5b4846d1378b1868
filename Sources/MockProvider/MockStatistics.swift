import Foundation
import HTTPServer

/// Counters that benchmarks read from a standalone mock through `GET /stats`: requests served,
/// status polls, webhooks received at `/hooks`, and, when enabled, the gaps between
/// consecutive status polls of each job.
final class MockStatistics: @unchecked Sendable {
  private let lock = NSLock()
  // Guarded by `lock`.
  private var requests = 0
  private var statusPolls = 0
  private var webhooks = 0
  private var lastPollAt: [String: Double] = [:]
  // Gap counts in whole milliseconds; the last bucket collects every longer gap.
  private var gapCounts: [Int]
  private let tracksGaps: Bool

  static let maxGapMilliseconds = 120_000

  init(tracksGaps: Bool) {
    self.tracksGaps = tracksGaps
    gapCounts = tracksGaps ? Array(repeating: 0, count: Self.maxGapMilliseconds + 1) : []
  }

  func countRequest() {
    lock.withLock { requests += 1 }
  }

  /// Counts a status poll of the job at `path` and, when gaps are tracked, records the time
  /// since that job's previous poll.
  func countStatusPoll(path: String) {
    let now = ProcessInfo.processInfo.systemUptime
    lock.withLock {
      statusPolls += 1
      guard tracksGaps else { return }
      if let previous = lastPollAt[path] {
        let milliseconds = min(Int((now - previous) * 1000), Self.maxGapMilliseconds)
        gapCounts[milliseconds] += 1
      }
      lastPollAt[path] = now
    }
  }

  /// Answers `POST /hooks` (a webhook sink that accepts everything) and `GET /stats`.
  func handle(_ request: HTTPRequest, segments: [String]) -> HTTPResponse? {
    switch (request.method, segments) {
    case ("POST", ["hooks"]):
      lock.withLock { webhooks += 1 }
      return .json(200, #"{"ok":true}"#)
    case ("GET", ["stats"]):
      return .json(200, report())
    case ("POST", ["stats", "reset"]):
      lock.withLock {
        requests = 0
        statusPolls = 0
        webhooks = 0
        lastPollAt = [:]
        if tracksGaps { gapCounts = Array(repeating: 0, count: Self.maxGapMilliseconds + 1) }
      }
      return .json(200, #"{"ok":true}"#)
    default:
      return nil
    }
  }

  /// Renders the counters and the gap percentiles (in milliseconds) as JSON.
  private func report() -> String {
    lock.withLock {
      var text =
        #"{"requests":\#(requests),"statusPolls":\#(statusPolls),"webhooks":\#(webhooks)"#
      if tracksGaps {
        let total = gapCounts.reduce(0, +)
        text += #","gaps":{"count":\#(total)"#
        for (name, fraction) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
          text += #","\#(name)":\#(percentile(fraction, total: total))"#
        }
        text += "}"
      }
      return text + "}"
    }
  }

  private func percentile(_ fraction: Double, total: Int) -> Int {
    guard total > 0 else { return 0 }
    let rank = max(1, Int((fraction * Double(total)).rounded(.up)))
    var seen = 0
    for (milliseconds, count) in gapCounts.enumerated() {
      seen += count
      if seen >= rank { return milliseconds }
    }
    return Self.maxGapMilliseconds
  }
}
