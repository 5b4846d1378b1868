import Foundation
import MockProvider
import Support
import Testing

@Suite(.serialized) struct EndToEndCancelTests {
  func withStack(
    delayScale: Double,
    _ body: (TestService, MockProviderServer, WebhookReceiver) async throws -> Void
  ) async throws {
    let mock = MockProviderServer()
    try mock.start()
    let receiver = WebhookReceiver()
    try receiver.start()
    let service = try TestService(delayScale: delayScale)
    defer {
      service.stop()
      mock.stop()
      receiver.stop()
    }
    try await body(service, mock, receiver)
  }

  func create(
    _ providerId: String, scenario: String, service: TestService, mock: MockProviderServer,
    receiver: WebhookReceiver
  ) async throws -> String {
    let provider = ProviderCase.all.first { $0.id == providerId }!
    var headers = provider.headers.mapValues { JSONValue.string($0) }
    headers["X-Mock-Scenario"] = .string(scenario)
    return try await service.createTask([
      "targetUrl": .string(mock.baseURL + provider.path), "headers": .object(headers),
      "body": .string(provider.body), "provider": .string(provider.id),
      "onCompleteUrl": .string(receiver.url),
    ])
  }

  /// Waits until the task has been polled at least `count` times.
  func waitForPolls(_ service: TestService, _ id: String, count: Int) async throws {
    for _ in 0..<400 {
      let (_, json) = try await service.call("GET", "/v1/tasks/\(id)")
      if (json["task"]?["pollCount"]?.intValue ?? 0) >= count { return }
      try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("task \(id) was not polled \(count) times")
  }

  @Test func cancelPollingFalJobEndsCancelled() async throws {
    try await withStack(delayScale: 0.05) { service, mock, receiver in
      let id = try await create(
        "fal", scenario: "polls=200", service: service, mock: mock, receiver: receiver)
      try await waitForPolls(service, id, count: 1)
      let (status, json) = try await service.call("POST", "/v1/tasks/\(id)/cancel")
      #expect(status == 202, "\(json.serialized())")
      #expect(json["task"]?["cancelRequested"]?.boolValue == true)
      let task = try await service.waitForEnd(id)
      #expect(task["status"]?.stringValue == "cancelled", "\(task.serialized())")
      #expect(mock.requests().contains { $0.method == "PUT" && $0.path.hasSuffix("/cancel") })
      let deliveries = await receiver.deliveries(count: 1, timeout: 10)
      #expect(deliveries.first.flatMap(verifiedWebhook)?["event"]?.stringValue == "task.cancelled")
    }
  }

  @Test func cancelAfterRunwayJobFinishedKeepsResult() async throws {
    // Runway polls every 5 s; at a 0.2 scale, 1 s. With polls=1 the job is running after the
    // first poll and finishes at the next status read, which is the cancel step's read.
    try await withStack(delayScale: 0.2) { service, mock, receiver in
      let id = try await create(
        "runwayml", scenario: "polls=1", service: service, mock: mock, receiver: receiver)
      try await waitForPolls(service, id, count: 1)
      let (status, _) = try await service.call("POST", "/v1/tasks/\(id)/cancel")
      #expect(status == 202 || status == 409)
      let task = try await service.waitForEnd(id)
      #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
      #expect(task["result"]?.arrayValue?.isEmpty == false)
      #expect(!mock.requests().contains { $0.method == "DELETE" }, "a finished job was deleted")
      #expect(mock.deletedFinishedJobs(provider: "runwayml").isEmpty)
    }
  }

  @Test func cancelRunningRunwayJobDeletesIt() async throws {
    try await withStack(delayScale: 0.05) { service, mock, receiver in
      let id = try await create(
        "runwayml", scenario: "polls=200", service: service, mock: mock, receiver: receiver)
      try await waitForPolls(service, id, count: 1)
      let (status, _) = try await service.call("POST", "/v1/tasks/\(id)/cancel")
      #expect(status == 202)
      let task = try await service.waitForEnd(id)
      #expect(task["status"]?.stringValue == "cancelled", "\(task.serialized())")
      #expect(mock.requests().contains { $0.method == "DELETE" })
      #expect(mock.deletedFinishedJobs(provider: "runwayml").isEmpty)
    }
  }

  @Test func cancelLumaJobStopsLocally() async throws {
    try await withStack(delayScale: 0.05) { service, mock, receiver in
      let id = try await create(
        "luma", scenario: "polls=200", service: service, mock: mock, receiver: receiver)
      try await waitForPolls(service, id, count: 1)
      let (status, json) = try await service.call("POST", "/v1/tasks/\(id)/cancel")
      // 202 when a poll step was running at that moment; the cancel then applies after it.
      #expect(status == 200 || status == 202, "\(json.serialized())")
      let task = status == 200 ? json["task"] ?? .null : try await service.waitForEnd(id)
      #expect(task["status"]?.stringValue == "cancelled", "\(task.serialized())")
      #expect(task["error"]?.stringValue?.contains("no cancel endpoint") == true)
      #expect(!mock.requests().contains { $0.method == "DELETE" })
    }
  }

  @Test func cancelDelayedTaskAtOnce() async throws {
    try await withStack(delayScale: 0.05) { service, _, receiver in
      let id = try await service.createTask([
        "targetUrl": .string(receiver.url), "delayUntil": "2099-01-01T00:00:00Z",
        "onCompleteUrl": .string(receiver.url),
      ])
      let (status, json) = try await service.call("POST", "/v1/tasks/\(id)/cancel")
      #expect(status == 200)
      #expect(json["task"]?["status"]?.stringValue == "cancelled")
      let deliveries = await receiver.deliveries(count: 1, timeout: 10)
      #expect(deliveries.count == 1, "the target must not be called, only the webhook")
      #expect(deliveries.first.flatMap(verifiedWebhook)?["event"]?.stringValue == "task.cancelled")
      let (again, error) = try await service.call("POST", "/v1/tasks/\(id)/cancel")
      #expect(again == 409)
      #expect(error["code"]?.stringValue == "task_finished")
    }
  }

  @Test func cancelUnknownTaskIs404() async throws {
    try await withStack(delayScale: 0.05) { service, _, _ in
      let (status, _) = try await service.call("POST", "/v1/tasks/\(UUID().uuidString)/cancel")
      #expect(status == 404)
    }
  }
}
