import Foundation
import HTTPClient
import MockProvider
import Support
import Testing

/// Three `asyncqueue serve` processes on one PostgreSQL schema, as operators run a cluster.
/// Runs only in the PostgreSQL pass (`ASYNCQUEUE_TEST_DATABASE`).
@Suite(.serialized, .enabled(if: TestDatabase.isPostgres, "needs ASYNCQUEUE_TEST_DATABASE"))
struct ClusterTests {
  static let delayScale = 0.05

  /// A cluster of nodes sharing one schema, each with its own data directory.
  final class Cluster: @unchecked Sendable {
    let binary: String
    let database: String
    let environment: [String: String]
    let client = CurlClient(allowPrivateNetwork: true)
    var nodes: [ServiceProcess] = []
    private var started = 0

    init(size: Int, environment: [String: String] = [:]) throws {
      binary = try #require(asyncqueueBinary(), "build the asyncqueue product first")
      let holder = temporaryDirectory("cluster")
      database = try #require(try TestDatabase.database(forDataDirectory: holder))
      self.environment = environment
      for _ in 0..<size { nodes.append(try startNode()) }
    }

    func startNode(id: String? = nil) throws -> ServiceProcess {
      started += 1
      return try ServiceProcess(
        binary: binary, dataDirectory: temporaryDirectory("node\(started)"),
        delayScale: ClusterTests.delayScale, database: database,
        arguments: ["--node-id", id ?? "node\(started)", "--vault-key", Self.vaultKey],
        environment: environment)
    }

    /// Nodes of one cluster share their vault key, as the service requires.
    static let vaultKey = String(repeating: "5a", count: 32)

    func api(_ index: Int) -> APIClient {
      APIClient(baseURL: nodes[index % nodes.count].baseURL, client: client)
    }

    /// Kills node `index` with SIGKILL and starts a new process in its place.
    func killAndRestart(_ index: Int) throws {
      nodes[index].kill()
      nodes[index] = try startNode()
    }

    func stop() {
      for node in nodes { node.kill() }
      client.shutdown()
    }
  }

  /// Creates provider tasks through the nodes in turn. Their polls take 80 ms, so two nodes
  /// polling one job at once would overlap at the mock.
  func createTasks(
    _ cluster: Cluster, count: Int, mock: MockProviderServer, receiver: WebhookReceiver,
    providers: [ProviderCase] = ProviderCase.all
  ) async throws -> [(id: String, kind: String)] {
    var created: [(String, String)] = []
    for index in 0..<count {
      let provider = providers[index % providers.count]
      var headers = provider.headers.mapValues { JSONValue.string($0) }
      headers["X-Mock-Scenario"] = .string(
        "polls=\(2 + index % 4);fault=slow:80;faults=100")
      let fields: JSONValue = [
        "targetUrl": .string(mock.baseURL + provider.path), "headers": .object(headers),
        "body": .string(provider.body), "provider": .string(provider.id),
        "onCompleteUrl": .string(receiver.url),
      ]
      let answer = await cluster.api(index).call("POST", "/v1/tasks", body: fields)
      let id = try #require(
        answer?.1["task"]?["id"]?.stringValue, "create failed: \(String(describing: answer))")
      created.append((id, provider.id))
    }
    return created
  }

  /// Reads every task back until it ends, asking the nodes in turn.
  func waitForAll(_ cluster: Cluster, _ tasks: [(id: String, kind: String)], seconds: Double)
    async -> [String: JSONValue]
  {
    var final: [String: JSONValue] = [:]
    let deadline = Date().addingTimeInterval(seconds)
    for (index, task) in tasks.enumerated() {
      while Date() < deadline {
        let answer = await cluster.api(index).call("GET", "/v1/tasks/\(task.id)?wait=5")
        let record = answer?.1["task"] ?? .null
        if ["completed", "failed", "timeout", "cancelled"].contains(
          record["status"]?.stringValue ?? "")
        {
          final[task.id] = record
          break
        }
      }
    }
    return final
  }

  @Test func threeNodesSurviveRandomKills() async throws {
    let mock = MockProviderServer()
    try mock.start()
    let receiver = WebhookReceiver()
    try receiver.start()
    let cluster = try Cluster(size: 3)
    defer {
      cluster.stop()
      mock.stop()
      receiver.stop()
    }
    let tasks = try await createTasks(cluster, count: 240, mock: mock, receiver: receiver)

    for _ in 0..<5 {
      try await Task.sleep(for: .milliseconds(Int.random(in: 300...900)))
      try cluster.killAndRestart(Int.random(in: 0..<3))
    }

    let final = await waitForAll(cluster, tasks, seconds: 120)
    #expect(final.count == tasks.count, "tasks not finished: \(tasks.count - final.count)")
    var completed: [String: Int] = [:]
    var unknown: [String: Int] = [:]
    for task in tasks {
      guard let record = final[task.id] else { continue }
      if record["status"]?.stringValue == "completed" {
        completed[task.kind, default: 0] += 1
      } else {
        // As on one node: only a submit in flight when its node died may end this way.
        #expect(
          record["errorCode"]?.stringValue == "submit_outcome_unknown",
          "task \(task.id): \(record["status"]?.stringValue ?? "?") \(record["error"] ?? .null)")
        unknown[task.kind, default: 0] += 1
      }
    }
    for provider in ProviderCase.all.map(\.id) {
      let submits = mock.submitCount(provider: provider)
      let done = completed[provider] ?? 0
      let lost = unknown[provider] ?? 0
      #expect(submits >= done, "\(provider): \(submits) submits, \(done) completed")
      #expect(
        submits <= done + lost,
        "\(provider): \(submits) submits for \(done) completed and \(lost) unknown")
    }
    #expect(mock.overlappingReads().isEmpty, "polled twice at once: \(mock.overlappingReads())")

    let delivered = await receiver.webhooks(for: Set(tasks.map(\.id)), timeout: 30)
    let missing = tasks.filter { !delivered.contains($0.id) }
    #expect(missing.isEmpty, "no webhook for \(missing.count) tasks")
  }

  @Test func twoProcessesWithOneNodeIdStrandNothing() async throws {
    let mock = MockProviderServer()
    try mock.start()
    let receiver = WebhookReceiver()
    try receiver.start()
    let cluster = try Cluster(size: 0)
    defer {
      cluster.stop()
      mock.stop()
      receiver.stop()
    }
    // An operator's mistake: a second process with the same --node-id.
    cluster.nodes = [try cluster.startNode(id: "twin"), try cluster.startNode(id: "twin")]
    let tasks = try await createTasks(cluster, count: 40, mock: mock, receiver: receiver)
    try await Task.sleep(for: .milliseconds(400))
    cluster.nodes[1].kill()
    cluster.nodes.removeLast()
    // The survivor must not renew the dead twin's leases as its own.
    let final = await waitForAll(cluster, tasks, seconds: 40)
    #expect(final.count == tasks.count, "tasks not finished: \(tasks.count - final.count)")
  }

  @Test func longPollOnAnotherNodeReturnsWhenTheTaskChanges() async throws {
    let mock = MockProviderServer()
    try mock.start()
    let cluster = try Cluster(size: 2)
    defer {
      cluster.stop()
      mock.stop()
    }
    let luma = ProviderCase.all.first { $0.id == "luma" }!
    // Due in 1.5 s: the long poll on the other node must return when it starts, not at 20 s.
    let answer = await cluster.api(0).call(
      "POST", "/v1/tasks",
      body: [
        "targetUrl": .string(mock.baseURL + luma.path),
        "headers": .object(luma.headers.mapValues { .string($0) }),
        "body": .string(luma.body), "provider": "luma",
        "delayUntil": .string(Timestamp.iso8601(seconds: Timestamp.now() + 1.5)),
      ])
    let id = try #require(answer?.1["task"]?["id"]?.stringValue)
    let started = Date()
    let waited = await cluster.api(1).call("GET", "/v1/tasks/\(id)?wait=20")
    let elapsed = Date().timeIntervalSince(started)
    let status = waited?.1["task"]?["status"]?.stringValue
    #expect(status != "delayed", "status \(status ?? "?") after \(elapsed) s")
    #expect(elapsed > 1, "long poll returned after \(elapsed) s")
    #expect(elapsed < 6, "long poll returned after \(elapsed) s")
  }

  @Test func providerLimitsHoldAcrossNodes() async throws {
    let mock = MockProviderServer()
    try mock.start()
    let receiver = WebhookReceiver()
    try receiver.start()
    // 2 at once and 1 request per second, which the delay scale turns into 20 per second.
    let cluster = try Cluster(
      size: 3,
      environment: [
        "ASYNCQUEUE_PROVIDER_LIMITS": "luma=2/1"
      ])
    defer {
      cluster.stop()
      mock.stop()
      receiver.stop()
    }
    let luma = ProviderCase.all.filter { $0.id == "luma" }
    let tasks = try await createTasks(
      cluster, count: 36, mock: mock, receiver: receiver, providers: luma)
    let final = await waitForAll(cluster, tasks, seconds: 90)
    #expect(final.values.filter { $0["status"]?.stringValue == "completed" }.count == tasks.count)

    #expect(mock.peakConcurrentRequests(provider: "luma") <= 2)
    let times = mock.requests().filter { $0.provider == "luma" }.map(\.receivedAt).sorted()
    var busiest = 0
    for (index, start) in times.enumerated() {
      let inWindow = times[index...].prefix { $0 < start + 1 }.count
      busiest = max(busiest, inWindow)
    }
    // Requests are spaced 50 ms apart across the nodes: at most 20 start in any second, plus
    // one for the window's edges.
    #expect(busiest <= 21, "\(busiest) luma requests within one second")

    // Every node took part in the work.
    for (index, node) in cluster.nodes.enumerated() {
      let steps = ["task polling", "task completed"].reduce(0) {
        $0 + node.log.components(separatedBy: $1).count - 1
      }
      #expect(steps > 0, "node \(index) ran no step; log: \(node.log.suffix(500))")
    }
  }
}
