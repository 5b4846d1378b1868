import API
import Foundation
import HTTPClient
import MockProvider
import Support
import Testing

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent().path

/// A real service on a loopback port with a fresh data directory, plus a client for its API.
/// Under `ASYNCQUEUE_TEST_DATABASE` it stores its tasks in PostgreSQL; see `TestDatabase`.
final class TestService: @unchecked Sendable {
  static let apiKey = "test-key-e2e-0123456789"
  static let webhookSecret = "whsec_test_0123456789abcdef"
  /// Tests send requests far faster than clients would, so the harness turns the limit off
  /// unless a test passes one.
  static let noRateLimit = RateLimit(requests: 0, perSeconds: 1)

  let service: Service
  let baseURL: String
  let dataDirectory: String
  /// True when the harness made the data directory, so no later service can reuse it and
  /// `stop()` drops its PostgreSQL schema.
  private let ownsDataDirectory: Bool
  let logLines = LogCapture()
  let client = CurlClient(allowPrivateNetwork: true)

  /// `plugins` maps plugin names to their settings; `scriptReloadInterval` 0 leaves the
  /// periodic script check off, so tests reload with `service.reloadScripts()`.
  init(
    providerDirectories: [String] = [], dataDirectory: String? = nil, delayScale: Double = 0.01,
    allowPrivateNetwork: Bool = true, rateLimit: RateLimit = TestService.noRateLimit,
    builtinProvidersDirectory: String = repositoryRoot + "/providers",
    logFormat: Logger.Format = .text,
    pluginDirectories: [String] = [], plugins: [String: JSONValue] = [:],
    scriptReloadInterval: Double = 0,
    configure: (inout ServiceOptions) -> Void = { _ in }
  ) throws {
    self.dataDirectory = dataDirectory ?? temporaryDirectory("service")
    ownsDataDirectory = dataDirectory == nil
    var options = ServiceOptions()
    options.port = 0
    options.dataDirectory = self.dataDirectory
    options.database = try TestDatabase.database(forDataDirectory: self.dataDirectory)
    options.builtinProvidersDirectory = builtinProvidersDirectory
    options.rateLimit = rateLimit
    options.providerDirectories = providerDirectories
    options.apiKeys = [Self.apiKey]
    options.webhookSecret = Self.webhookSecret
    options.allowPrivateNetwork = allowPrivateNetwork
    options.delayScale = delayScale
    options.pluginDirectories = pluginDirectories
    options.plugins = plugins
    options.scriptReloadInterval = scriptReloadInterval
    // Tests stop the service from Swift's cooperative pool, which its steps also need, so a
    // long grace period would only stall the test.
    options.shutdownGrace = 1
    configure(&options)
    let capture = logLines
    let logger = Logger(minimumLevel: .debug, format: logFormat, sink: { capture.append($0) })
    do {
      service = try Service(options: options, logger: logger)
      try service.start()
    } catch {
      if ownsDataDirectory { TestDatabase.dropSchema(forDataDirectory: self.dataDirectory) }
      throw error
    }
    baseURL = "http://127.0.0.1:\(service.port)"
  }

  func stop() {
    service.stop()
    client.shutdown()
    if ownsDataDirectory { TestDatabase.dropSchema(forDataDirectory: dataDirectory) }
  }

  /// Sends a request to the API and returns the status and parsed JSON body.
  func call(
    _ method: String, _ path: String, body: String? = nil, key: String? = TestService.apiKey,
    headers: [(String, String)] = []
  ) async throws -> (status: Int, json: JSONValue) {
    var allHeaders = headers
    if let key { allHeaders.append(("Authorization", "Bearer \(key)")) }
    if body != nil { allHeaders.append(("Content-Type", "application/json")) }
    let outcome = await client.send(
      ClientRequest(
        method: method, url: baseURL + path, headers: allHeaders,
        body: body.map { Array($0.utf8) }, timeout: 40))
    let response = try outcome.get()
    let json =
      (try? JSONValue.parse(response.body))
      ?? .string(String(decoding: response.body, as: UTF8.self))
    return (response.statusCode, json)
  }

  func raw(_ path: String) async throws -> ClientResponse {
    try await client.send(
      ClientRequest(
        method: "GET", url: baseURL + path,
        headers: [("Authorization", "Bearer \(Self.apiKey)")], timeout: 20)
    ).get()
  }

  /// Creates a task and returns its id; records an issue when creation fails.
  func createTask(_ fields: JSONValue) async throws -> String {
    let (status, json) = try await call("POST", "/v1/tasks", body: fields.serialized())
    #expect(status == 201, "create failed: \(json.serialized())")
    return json["task"]?["id"]?.stringValue ?? ""
  }

  /// Long-polls until the task is terminal or `timeout` seconds pass; returns the task.
  func waitForEnd(_ id: String, timeout: Double = 30) async throws -> JSONValue {
    let deadline = Date().addingTimeInterval(timeout)
    var task: JSONValue = .null
    while Date() < deadline {
      let (_, json) = try await call("GET", "/v1/tasks/\(id)?wait=5")
      task = json["task"] ?? .null
      let status = task["status"]?.stringValue ?? ""
      if ["completed", "failed", "timeout", "cancelled"].contains(status) { return task }
    }
    Issue.record("task \(id) did not finish within \(timeout) s: \(task.serialized())")
    return task
  }
}

/// Collects log lines for assertions.
final class LogCapture: @unchecked Sendable {
  private let lock = NSLock()
  private var lines: [String] = []

  func append(_ line: String) { lock.withLock { lines.append(line) } }
  var all: [String] { lock.withLock { lines } }
}

/// Parses a webhook delivery body and checks its signature with the test secret.
func verifiedWebhook(_ delivery: RecordedRequest) -> JSONValue? {
  guard let header = delivery.headers["x-asyncqueue-signature"] else { return nil }
  let valid = WebhookSignature.verify(
    header: header, secret: TestService.webhookSecret, body: delivery.body,
    now: Int(Date().timeIntervalSince1970))
  guard valid else { return nil }
  return try? JSONValue.parse(delivery.body)
}
