import Foundation
import MockProvider
import Storage
import Support
import Testing

@Suite(.serialized) struct EndToEndRecoveryTests {
  @Test func restartResumesPollingWithoutResubmit() async throws {
    let mock = MockProviderServer()
    try mock.start()
    let receiver = WebhookReceiver()
    try receiver.start()
    defer {
      mock.stop()
      receiver.stop()
    }
    let data = temporaryDirectory("restart")
    // fal polls every 3 s; at a 0.1 scale that is 0.3 s, slow enough to stop mid-job.
    let first = try TestService(dataDirectory: data, delayScale: 0.1)
    let fal = ProviderCase.all.first { $0.id == "fal" }!
    let id = try await first.createTask([
      "targetUrl": .string(mock.baseURL + fal.path),
      "headers": ["Authorization": "Key fal-key-id:fal-secret-771", "X-Mock-Scenario": "polls=6"],
      "body": .string(fal.body), "provider": "fal", "onCompleteUrl": .string(receiver.url),
    ])
    var polled = false
    for _ in 0..<100 {
      let (_, json) = try await first.call("GET", "/v1/tasks/\(id)")
      if (json["task"]?["pollCount"]?.intValue ?? 0) >= 1 {
        polled = true
        break
      }
      try await Task.sleep(for: .milliseconds(50))
    }
    #expect(polled)
    first.stop()

    let second = try TestService(dataDirectory: data, delayScale: 0.1)
    defer { second.stop() }
    let task = try await second.waitForEnd(id)
    #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
    #expect(mock.submitCount(provider: "fal") == 1)
    #expect(await receiver.deliveries(count: 1, timeout: 10).count == 1)
  }

  @Test func restartLoadsTasksInBatchesWhileTheFirstRun() async throws {
    let receiver = WebhookReceiver()
    try receiver.start()
    defer { receiver.stop() }
    let data = temporaryDirectory("batches")
    var ids: [String] = []
    let later: String
    do {
      let first = try TestService(dataDirectory: data)
      // Due in 2 s: still waiting when the service stops.
      let due = Timestamp.iso8601(seconds: Timestamp.now() + 2)
      for index in 0..<22 {
        ids.append(
          try await first.createTask([
            "targetUrl": .string(receiver.url + "/t\(index)"), "delayUntil": .string(due),
          ]))
      }
      later = try await first.createTask([
        "targetUrl": .string(receiver.url + "/later"),
        "delayUntil": .string(Timestamp.iso8601(seconds: Timestamp.now() + 600)),
      ])
      first.stop()
    }
    // Batches of 4: the first loads before the API opens, five more while tasks run.
    let second = try TestService(dataDirectory: data) { $0.loadBatch = 4 }
    defer { second.stop() }
    // A cancel right after the start waits for the load, if the task is still loading,
    // instead of taking it for one that ended.
    let (status, cancelled) = try await second.call("POST", "/v1/tasks/\(later)/cancel")
    #expect(status == 200, "\(cancelled.serialized())")
    #expect(cancelled["task"]?["status"]?.stringValue == "cancelled")
    for id in ids {
      let task = try await second.waitForEnd(id)
      #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
    }
    // Plain calls are at least once: one cut off by the first stop may arrive twice.
    #expect(await receiver.deliveries(count: 22, timeout: 10).count >= 22)
  }

  @Test func providerSubmitInFlightAtCrashFailsAsUnknown() async throws {
    let receiver = WebhookReceiver()
    try receiver.start()
    defer { receiver.stop() }
    let data = temporaryDirectory("inflight")
    // Write the state a crash leaves behind: a provider submit marked in flight.
    do {
      let store = try openTestStore(data)
      var task = TaskRecord(
        id: UUID().uuidString.lowercased(), teamId: "default", status: .processing,
        targetUrl: "http://127.0.0.1:9/fal-ai/flux", method: "POST", headers: [:], body: "{}",
        provider: "fal", pollConfig: nil, onCompleteUrl: receiver.url, timeout: 30,
        maxRetries: 3, retryBackoff: "exponential", priority: 5, delayUntil: nil,
        createdAt: Timestamp.now())
      task.requestInFlight = true
      task.nextRunAt = Timestamp.now()
      try store.insertTask(task)
    }
    let service = try TestService(dataDirectory: data)
    defer { service.stop() }
    let (_, list) = try await service.call("GET", "/v1/tasks")
    let id = try #require(list["tasks"]?.arrayValue?.first?["id"]?.stringValue)
    // A single node recovers before its API opens; a node on a shared database when it claims
    // the task, moments later.
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "failed")
    #expect(task["errorCode"]?.stringValue == "submit_outcome_unknown")
    let deliveries = await receiver.deliveries(count: 1, timeout: 10)
    #expect(deliveries.first.flatMap(verifiedWebhook)?["event"]?.stringValue == "task.failed")
  }

  @Test func webhookIsRetriedUntilAccepted() async throws {
    let target = WebhookReceiver()
    try target.start()
    let hook = WebhookReceiver()
    try hook.start()
    hook.setStatus(500)
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
      hook.stop()
    }
    let id = try await service.createTask([
      "targetUrl": .string(target.url), "onCompleteUrl": .string(hook.url),
    ])
    _ = try await service.waitForEnd(id)
    #expect(await hook.deliveries(count: 2, timeout: 10).count >= 2)
    hook.setStatus(200)
    let deadline = Date().addingTimeInterval(15)
    var delivered: DeliveryRecord?
    while Date() < deadline {
      delivered = try service.service.store.deliveries(taskId: id).first
      if delivered?.deliveredAt != nil { break }
      try await Task.sleep(for: .milliseconds(50))
    }
    let record = try #require(delivered)
    #expect(record.deliveredAt != nil)
    let attempts = try service.service.store.attempts(deliveryId: record.id)
    #expect(attempts.count == record.attempts)
    #expect(attempts.last?.statusCode == 200)
    #expect(attempts.dropLast().allSatisfy { $0.statusCode == 500 })
    let ids = Set(hook.deliveries().compactMap { $0.headers["x-asyncqueue-delivery-id"] })
    #expect(ids == [String(record.id)])
  }
}
