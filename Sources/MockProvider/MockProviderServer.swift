import Foundation
import HTTPServer
import Support

/// A request that a mock server received.
public struct RecordedRequest: Sendable {
  public let method: String
  /// The path with the query string, if any, appended after "?".
  public let path: String
  /// Header fields keyed by lowercased name.
  public let headers: [String: String]
  public let body: [UInt8]
  /// The provider the path belongs to ("fal", "replicate", "runwayml", "luma",
  /// "elevenlabs-dubbing", "stability-video"), "files" for artifact downloads, "webhook" for
  /// webhook deliveries, or "" for an unknown path.
  public let provider: String
  /// When the request arrived, in seconds of system uptime.
  public var receivedAt: Double = ProcessInfo.processInfo.systemUptime
}

/// A loopback imitation of the six providers' HTTP APIs, each under its own path prefix:
/// `/fal`, `/replicate`, `/runway`, `/luma`, `/elevenlabs` and `/stability`. Output files that
/// the providers link to are served under `/files`.
///
/// The `X-Mock-Scenario` header on a submit request sets how that job behaves (see
/// `Scenario`). Every request is recorded for assertions.
public final class MockProviderServer: @unchecked Sendable {
  private let apis: [any ProviderAPI] = [
    FalAPI(), ReplicateAPI(), RunwayAPI(), LumaAPI(), ElevenLabsAPI(), StabilityAPI(),
  ]
  private let store = JobStore()
  private let lock = NSLock()
  private var recorded: [RecordedRequest] = []
  // Submits per provider name, counted even when requests are not recorded.
  private var submits: [String: Int] = [:]
  // Requests being handled now, and the peak, per provider name.
  private var inFlight: [String: Int] = [:]
  private var peakInFlight: [String: Int] = [:]
  // Reads (GET) of each job path being handled now, and the paths read twice at once.
  private var readsInFlight: [String: Int] = [:]
  private var overlapping: [String] = []
  private var server: HTTPServer?
  private let requestedPort: UInt16
  private let recordsRequests: Bool
  private let statistics: MockStatistics

  /// Port 0 picks a free port. Without recording, `requests()` stays empty, which keeps memory
  /// flat in long benchmark runs. `tracksPollGaps` makes `GET /stats` report the gaps between
  /// consecutive status polls of each job, at the cost of one map entry per job.
  public init(port: UInt16 = 0, recordsRequests: Bool = true, tracksPollGaps: Bool = false) {
    self.requestedPort = port
    self.recordsRequests = recordsRequests
    self.statistics = MockStatistics(tracksGaps: tracksPollGaps)
  }

  deinit {
    stop()
  }

  /// Starts listening on 127.0.0.1. Does nothing when already running.
  public func start() throws {
    if lock.withLock({ self.server != nil }) { return }
    let server = HTTPServer(host: "127.0.0.1", port: requestedPort, maxBodyBytes: 64 << 20) {
      [weak self] in
      self?.handle($0) ?? .text(503, "mock provider stopped")
    }
    try server.start()
    lock.withLock { self.server = server }
  }

  public func stop() {
    let running = lock.withLock { () -> HTTPServer? in
      defer { server = nil }
      return server
    }
    running?.stop()
  }

  /// The server's URL without a trailing slash, for example "http://127.0.0.1:40123".
  public var baseURL: String {
    "http://127.0.0.1:\(lock.withLock { server?.port ?? 0 })"
  }

  /// Every request received since start or the last reset, in arrival order.
  public func requests() -> [RecordedRequest] {
    lock.withLock { recorded }
  }

  /// Returns how many submit requests reached a provider, including rejected ones. Accepts
  /// the provider's name ("runwayml") or its path prefix ("runway").
  public func submitCount(provider: String) -> Int {
    guard let api = api(named: provider) else { return 0 }
    return lock.withLock { submits[api.name] ?? 0 }
  }

  /// Returns the ids of jobs that a DELETE removed after they had finished, which destroys
  /// the result on Runway. Accepts the provider's name or its path prefix.
  public func deletedFinishedJobs(provider: String) -> [String] {
    guard let api = api(named: provider) else { return [] }
    return store.deletedAfterFinish(provider: api.name)
  }

  /// Forgets every job and recorded request.
  public func reset() {
    store.removeAll()
    lock.withLock {
      recorded = []
      submits = [:]
      peakInFlight = [:]
    }
  }

  private func api(named name: String) -> (any ProviderAPI)? {
    apis.first { $0.name == name || $0.prefix == name }
  }

  private func isSubmit(_ request: RecordedRequest, api: any ProviderAPI) -> Bool {
    guard request.method == "POST" else { return false }
    let path = request.path.split(separator: "?").first.map(String.init) ?? request.path
    switch api.prefix {
    case "replicate": return path.hasSuffix("/predictions")
    default: return true
    }
  }

  private func handle(_ request: HTTPRequest) -> HTTPResponse {
    let segments = request.path.split(separator: "/").map(String.init)
    // Reading or resetting the counters is not counted, so a driver can poll them.
    if segments.first != "stats" { statistics.countRequest() }
    if let answer = statistics.handle(request, segments: segments) { return answer }
    let api = segments.first.flatMap { prefix in apis.first { $0.prefix == prefix } }
    if api != nil, request.method == "GET" { statistics.countStatusPoll(path: request.path) }
    record(request, provider: api?.name ?? (segments.first == "files" ? "files" : ""))

    guard let api else {
      if segments.first == "files" { return file(segments) }
      return .json(
        404, "{\"error\":\"no mock provider route for \(request.method) \(request.path)\"}")
    }
    let mock = MockContext(store: store, baseURL: baseURL)
    let isRead = request.method == "GET"
    lock.withLock {
      let now = (inFlight[api.name] ?? 0) + 1
      inFlight[api.name] = now
      peakInFlight[api.name] = max(peakInFlight[api.name] ?? 0, now)
      if isRead {
        let reads = (readsInFlight[request.path] ?? 0) + 1
        readsInFlight[request.path] = reads
        if reads > 1 { overlapping.append(request.path) }
      }
    }
    defer {
      lock.withLock {
        inFlight[api.name, default: 1] -= 1
        if isRead {
          let reads = (readsInFlight[request.path] ?? 1) - 1
          readsInFlight[request.path] = reads > 0 ? reads : nil
        }
      }
    }
    return api.handle(request, segments: Array(segments.dropFirst()), mock: mock)
  }

  /// Job paths that two status or result reads hit at the same time: a task polled twice at
  /// once, which the engine must never do.
  public func overlappingReads() -> [String] {
    lock.withLock { overlapping }
  }

  /// The most requests to one provider that were being handled at the same time.
  public func peakConcurrentRequests(provider: String) -> Int {
    guard let api = api(named: provider) else { return 0 }
    return lock.withLock { peakInFlight[api.name] ?? 0 }
  }

  private func record(_ request: HTTPRequest, provider: String) {
    var path = request.path
    if !request.query.isEmpty {
      path +=
        "?"
        + request.query.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        .joined(separator: "&")
    }
    let entry = RecordedRequest(
      method: request.method, path: path, headers: request.headers, body: request.body,
      provider: provider)
    let api = api(named: provider)
    let isSubmitRequest = api.map { isSubmit(entry, api: $0) } ?? false
    lock.withLock {
      if isSubmitRequest { submits[provider, default: 0] += 1 }
      if recordsRequests { recorded.append(entry) }
    }
  }

  /// Serves `/files/{provider}/{id}/{name}` with deterministic fake bytes.
  private func file(_ segments: [String]) -> HTTPResponse {
    guard segments.count == 4, let artifact = MockFormats.artifact(named: segments[3]) else {
      return .text(404, "file not found")
    }
    return HTTPResponse(
      status: 200, headers: [("Content-Type", artifact.contentType)], body: artifact.bytes)
  }
}
