import Foundation
import HTTPServer

/// A loopback endpoint that records webhook deliveries and responds to them with a settable
/// status (200 unless changed), so tests can check payloads, signatures and retries.
public final class WebhookReceiver: @unchecked Sendable {
  private let condition = NSCondition()
  private var received: [RecordedRequest] = []
  private var status = 200
  private var server: HTTPServer?

  public init() {}

  deinit {
    stop()
  }

  /// Starts listening on a free port on 127.0.0.1. Does nothing when already running.
  public func start() throws {
    if condition.withLock({ self.server != nil }) { return }
    let server = HTTPServer(host: "127.0.0.1", port: 0, maxBodyBytes: 16 << 20) { [weak self] in
      self?.handle($0) ?? .text(503, "webhook receiver stopped")
    }
    try server.start()
    condition.withLock { self.server = server }
  }

  public func stop() {
    let running = condition.withLock { () -> HTTPServer? in
      defer { server = nil }
      return server
    }
    running?.stop()
  }

  /// The delivery URL, for example "http://127.0.0.1:40123/hook".
  public var url: String {
    "http://127.0.0.1:\(condition.withLock { server?.port ?? 0 })/hook"
  }

  /// Every POST received so far, in arrival order.
  public func deliveries() -> [RecordedRequest] {
    condition.withLock { received }
  }

  /// Blocks until at least `count` deliveries arrived or `timeout` seconds passed, and returns
  /// the deliveries so far either way.
  public func waitForDeliveries(count: Int, timeout: Double) -> [RecordedRequest] {
    let deadline = Date(timeIntervalSinceNow: timeout)
    condition.lock()
    defer { condition.unlock() }
    while received.count < count {
      if !condition.wait(until: deadline) { break }
    }
    return received
  }

  /// Waits like `waitForDeliveries` without blocking a thread of Swift's cooperative pool,
  /// which the service under test needs to make progress.
  public func deliveries(count: Int, timeout: Double) async -> [RecordedRequest] {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while Date() < deadline {
      let current = deliveries()
      if current.count >= count { return current }
      try? await Task.sleep(for: .milliseconds(10))
    }
    return deliveries()
  }

  /// Waits until a webhook for each of `taskIds` arrived (by its `X-AsyncQueue-Task-Id`
  /// header) or `timeout` seconds passed; returns the ids that have one.
  public func webhooks(for taskIds: Set<String>, timeout: Double) async -> Set<String> {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while true {
      let seen = Set(deliveries().compactMap { $0.headers["x-asyncqueue-task-id"] })
      let covered = taskIds.intersection(seen)
      if covered.count == taskIds.count || Date() >= deadline { return covered }
      try? await Task.sleep(for: .milliseconds(20))
    }
  }

  /// Sets the HTTP status for every later delivery, for example 500 to make the sender retry.
  public func setStatus(_ code: Int) {
    condition.withLock { status = code }
  }

  private func handle(_ request: HTTPRequest) -> HTTPResponse {
    guard request.method == "POST" else {
      return HTTPResponse(status: 405, headers: [("Allow", "POST")])
    }
    let entry = RecordedRequest(
      method: request.method, path: request.path, headers: request.headers, body: request.body,
      provider: "webhook")
    let code = condition.withLock {
      received.append(entry)
      condition.broadcast()
      return status
    }
    return .json(
      code, code < 300 ? "{\"ok\":true}" : "{\"error\":\"webhook receiver set to \(code)\"}")
  }
}
