import Foundation
import HTTPClient
import MockProvider
import Support
import Testing

@Suite(.serialized) struct CrashRecoveryTests {
  /// Creates `count` tasks spread over the providers and plain calls; returns (id, kind).
  func createTasks(
    _ api: APIClient, count: Int, mock: MockProviderServer, receiver: WebhookReceiver
  ) async throws -> [(id: String, kind: String)] {
    var created: [(String, String)] = []
    var generator = SystemRandomNumberGenerator()
    for index in 0..<count {
      let fields: JSONValue
      let kind: String
      if index % 7 == 6 {
        kind = "plain"
        fields = [
          "targetUrl": .string(receiver.url + "/call"), "onCompleteUrl": .string(receiver.url),
        ]
      } else {
        let provider = ProviderCase.all[index % ProviderCase.all.count]
        kind = provider.id
        var headers = provider.headers.mapValues { JSONValue.string($0) }
        headers["X-Mock-Scenario"] = .string("polls=\(Int.random(in: 2...6, using: &generator))")
        fields = [
          "targetUrl": .string(mock.baseURL + provider.path), "headers": .object(headers),
          "body": .string(provider.body), "provider": .string(provider.id),
          "onCompleteUrl": .string(receiver.url),
        ]
      }
      let answer = await api.call("POST", "/v1/tasks", body: fields)
      let id = try #require(
        answer?.1["task"]?["id"]?.stringValue, "create failed: \(String(describing: answer))")
      created.append((id, kind))
    }
    return created
  }

  @Test func killNineAtRandomLosesNothing() async throws {
    let binary = try #require(asyncqueueBinary(), "build the asyncqueue product first")
    let mock = MockProviderServer()
    try mock.start()
    let receiver = WebhookReceiver()
    try receiver.start()
    let client = CurlClient(allowPrivateNetwork: true)
    defer {
      mock.stop()
      receiver.stop()
      client.shutdown()
    }
    let data = temporaryDirectory("crash")
    var service = try ServiceProcess(binary: binary, dataDirectory: data, delayScale: 0.05)
    var api = APIClient(baseURL: service.baseURL, client: client)
    let tasks = try await createTasks(api, count: 280, mock: mock, receiver: receiver)

    var activeAtKills: [Int] = []
    for _ in 0..<4 {
      try await Task.sleep(for: .milliseconds(Int.random(in: 100...700)))
      let polling = await api.call("GET", "/v1/tasks?status=polling&limit=1")
      activeAtKills.append(polling?.1["pagination"]?["total"]?.intValue ?? 0)
      service.kill()
      service = try ServiceProcess(binary: binary, dataDirectory: data, delayScale: 0.05)
      api = APIClient(baseURL: service.baseURL, client: client)
    }
    #expect(
      activeAtKills.first ?? 0 > 0, "the first kill must hit tasks in flight: \(activeAtKills)")
    defer { service.kill() }

    // Every task must end; read them back one by one.
    var final: [String: JSONValue] = [:]
    let deadline = Date().addingTimeInterval(90)
    for task in tasks {
      while Date() < deadline {
        let answer = await api.call("GET", "/v1/tasks/\(task.id)?wait=5")
        let record = answer?.1["task"] ?? .null
        let status = record["status"]?.stringValue ?? ""
        if ["completed", "failed", "timeout", "cancelled"].contains(status) {
          final[task.id] = record
          break
        }
      }
    }
    #expect(final.count == tasks.count, "tasks not finished: \(tasks.count - final.count)")

    var unknownByProvider: [String: Int] = [:]
    var completedByProvider: [String: Int] = [:]
    for task in tasks {
      guard let record = final[task.id] else { continue }
      let status = record["status"]?.stringValue
      if status == "completed" {
        completedByProvider[task.kind, default: 0] += 1
      } else {
        // The one documented way a provider task may fail here: its submit was in flight
        // when the process died.
        #expect(task.kind != "plain", "plain task \(task.id) ended \(status ?? "?")")
        #expect(
          record["errorCode"]?.stringValue == "submit_outcome_unknown",
          "task \(task.id) ended \(status ?? "?"): \(record["error"]?.stringValue ?? "")")
        unknownByProvider[task.kind, default: 0] += 1
      }
    }
    for provider in ProviderCase.all.map(\.id) {
      let submits = mock.submitCount(provider: provider)
      let completed = completedByProvider[provider] ?? 0
      let unknown = unknownByProvider[provider] ?? 0
      // Each completed task submitted exactly once; a task in the submit window at most once.
      #expect(submits >= completed, "\(provider): \(submits) submits, \(completed) completed")
      #expect(
        submits <= completed + unknown,
        "\(provider): \(submits) submits for \(completed) completed and \(unknown) unknown")
    }

    let delivered = await receiver.webhooks(for: Set(tasks.map(\.id)), timeout: 30)
    let missing = tasks.filter { !delivered.contains($0.id) }
    #expect(missing.isEmpty, "no webhook for \(missing.count) tasks")
  }

  @Test func sigtermFinishesInFlightWorkAndExitsZero() async throws {
    let binary = try #require(asyncqueueBinary(), "build the asyncqueue product first")
    let mock = MockProviderServer()
    try mock.start()
    let receiver = WebhookReceiver()
    try receiver.start()
    let client = CurlClient(allowPrivateNetwork: true)
    defer {
      mock.stop()
      receiver.stop()
      client.shutdown()
    }
    let data = temporaryDirectory("sigterm")
    let service = try ServiceProcess(binary: binary, dataDirectory: data, delayScale: 0.05)
    let api = APIClient(baseURL: service.baseURL, client: client)
    let luma = ProviderCase.all.first { $0.id == "luma" }!
    var ids: [String] = []
    for _ in 0..<20 {
      let answer = await api.call(
        "POST", "/v1/tasks",
        body: [
          "targetUrl": .string(mock.baseURL + luma.path),
          "headers": [
            "Authorization": "Bearer luma_secret_774",
            "X-Mock-Scenario": "polls=2;fault=slow:400;faults=100",
          ],
          "body": .string(luma.body), "provider": "luma", "onCompleteUrl": .string(receiver.url),
        ])
      ids.append(try #require(answer?.1["task"]?["id"]?.stringValue))
    }
    try await Task.sleep(for: .milliseconds(300))
    let status = await service.stop(signal: SIGTERM, timeout: 20)
    #expect(
      status == 0, "exit status \(String(describing: status)); log: \(service.log.suffix(2000))")
    #expect(!service.log.contains("still in flight"), "steps were abandoned at shutdown")

    let restarted = try ServiceProcess(binary: binary, dataDirectory: data, delayScale: 0.05)
    defer { restarted.kill() }
    let again = APIClient(baseURL: restarted.baseURL, client: client)
    for id in ids {
      var status = ""
      for _ in 0..<20 where status != "completed" {
        status =
          await again.call("GET", "/v1/tasks/\(id)?wait=5")?.1["task"]?["status"]?
          .stringValue ?? ""
      }
      #expect(status == "completed", "task \(id)")
    }
    #expect(mock.submitCount(provider: "luma") == ids.count)
  }
}
