import Engine
import Foundation
import MockProvider
import Support
import Testing

@Suite(.serialized) struct EndToEndReliabilityTests {
  func withStack(
    configure: (inout ServiceOptionsProxy) -> Void = { _ in },
    _ body: (TestService, MockProviderServer, WebhookReceiver) async throws -> Void
  ) async throws {
    let mock = MockProviderServer()
    try mock.start()
    let receiver = WebhookReceiver()
    try receiver.start()
    var proxy = ServiceOptionsProxy()
    configure(&proxy)
    let settings = proxy
    let service = try TestService { options in
      options.providerLimits = settings.providerLimits
      options.webhookRetention = settings.webhookRetention
      options.maxConcurrentSteps = settings.maxConcurrentSteps
    }
    defer {
      service.stop()
      mock.stop()
      receiver.stop()
    }
    try await body(service, mock, receiver)
  }

  func fields(
    _ providerId: String, scenario: String, mock: MockProviderServer, receiver: WebhookReceiver,
    extra: [String: JSONValue] = [:]
  ) -> JSONValue {
    let provider = ProviderCase.all.first { $0.id == providerId }!
    var headers = provider.headers.mapValues { JSONValue.string($0) }
    headers["X-Mock-Scenario"] = .string(scenario)
    var object: [String: JSONValue] = [
      "targetUrl": .string(mock.baseURL + provider.path), "headers": .object(headers),
      "body": .string(provider.body), "provider": .string(provider.id),
      "onCompleteUrl": .string(receiver.url),
    ]
    for (key, value) in extra { object[key] = value }
    return .object(object)
  }

  // MARK: Provider faults

  @Test(arguments: [
    ("replicate", "fault=429;faults=4"), ("luma", "fault=html;faults=2"),
    ("replicate", "fault=truncated;faults=2"), ("fal", "fault=drop;faults=2"),
    ("runwayml", "fault=500;faults=3"),
  ])
  func pollFaultIsRetriedAndCounted(provider: String, fault: String) async throws {
    try await withStack { service, mock, receiver in
      let id = try await service.createTask(
        fields(provider, scenario: "polls=1;" + fault, mock: mock, receiver: receiver))
      let task = try await service.waitForEnd(id)
      #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
      let faults = Int(fault.split(separator: "=").last!)!
      let errors = task["pollErrors"]?.intValue ?? 0
      if fault.contains("drop") {
        // curl resends a GET once when a reused connection turns out dead, which hides some
        // dropped connections; at least one still shows.
        #expect(errors >= 1)
        #expect(errors <= faults)
      } else {
        #expect(errors == faults)
      }
      #expect((task["pollCount"]?.intValue ?? 0) >= errors + 2)
    }
  }

  @Test func pollSlowerThanTimeoutIsRetried() async throws {
    try await withStack { service, mock, receiver in
      let id = try await service.createTask(
        fields(
          "luma", scenario: "polls=1;fault=slow:2500;faults=1", mock: mock, receiver: receiver,
          extra: ["timeout": 1]))
      let task = try await service.waitForEnd(id)
      #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
      #expect(task["pollErrors"]?.intValue == 1)
    }
  }

  @Test func unknownStatusKeepsPollingAndLogsOnce() async throws {
    try await withStack { service, mock, receiver in
      var ids: [String] = []
      for _ in 0..<2 {
        ids.append(
          try await service.createTask(
            fields("runwayml", scenario: "polls=4;status=WEIRD", mock: mock, receiver: receiver)))
      }
      for id in ids {
        let task = try await service.waitForEnd(id)
        #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
      }
      let warnings = service.logLines.all.filter {
        $0.contains("does not know") && $0.contains("WEIRD")
      }
      #expect(warnings.count == 1, "\(warnings)")
    }
  }

  @Test func submitServerErrorIsRetried() async throws {
    try await withStack { service, mock, receiver in
      let id = try await service.createTask(
        fields("luma", scenario: "polls=1;submitfault=500", mock: mock, receiver: receiver))
      let task = try await service.waitForEnd(id)
      #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
      #expect(task["retryCount"]?.intValue == 1)
      #expect(mock.submitCount(provider: "luma") == 2)
    }
  }

  // MARK: Limits

  @Test func providerConcurrencyLimitHolds() async throws {
    try await withStack(configure: {
      $0.providerLimits = ["luma": ProviderLimits(concurrency: 2, requestsPerSecond: 1000)]
    }) { service, mock, receiver in
      var ids: [String] = []
      for _ in 0..<8 {
        ids.append(
          try await service.createTask(
            fields(
              "luma", scenario: "polls=1;fault=slow:150;faults=100", mock: mock,
              receiver: receiver)))
      }
      for id in ids {
        let task = try await service.waitForEnd(id)
        #expect(task["status"]?.stringValue == "completed")
      }
      #expect(mock.peakConcurrentRequests(provider: "luma") <= 2)
      #expect(mock.peakConcurrentRequests(provider: "luma") >= 1)
    }
  }

  @Test func priorityOrdersDueTasks() async throws {
    try await withStack(configure: { $0.maxConcurrentSteps = 1 }) { service, _, receiver in
      // Far enough ahead that all seven exist before the first is due, even on a busy machine.
      let due = Timestamp.iso8601(seconds: Timestamp.now() + 2)
      let priorities = [3, 9, 1, 7, 5, 10, 2]
      for priority in priorities {
        _ = try await service.createTask([
          "targetUrl": .string(receiver.url + "/p\(priority)"), "priority": .int(Int64(priority)),
          "delayUntil": .string(due),
        ])
      }
      let calls = await receiver.deliveries(count: priorities.count, timeout: 15)
      let order = calls.compactMap { $0.path.split(separator: "p").last.flatMap { Int($0) } }
      #expect(order == priorities.sorted(by: >), "\(calls.map(\.path))")
    }
  }

  // MARK: Idempotent create

  @Test func idempotencyKeyReturnsOriginalTask() async throws {
    try await withStack { service, _, receiver in
      let body = JSONValue.object(["targetUrl": .string(receiver.url)]).serialized()
      let headers = [("Idempotency-Key", "order-42")]
      let (first, created) = try await service.call(
        "POST", "/v1/tasks", body: body, headers: headers)
      let (second, repeated) = try await service.call(
        "POST", "/v1/tasks", body: body, headers: headers)
      #expect(first == 201)
      #expect(second == 200)
      #expect(created["task"]?["id"] == repeated["task"]?["id"])
      let other = JSONValue.object(["targetUrl": .string(receiver.url + "/x")]).serialized()
      let (conflict, error) = try await service.call(
        "POST", "/v1/tasks", body: other, headers: headers)
      #expect(conflict == 409)
      #expect(error["code"]?.stringValue == "idempotency_conflict")
      let (list, page) = try await service.call("GET", "/v1/tasks")
      #expect(list == 200)
      #expect(page["pagination"]?["total"]?.intValue == 1)
    }
  }

  // MARK: Timeline and deliveries

  @Test func timelineRecordsEachExchange() async throws {
    try await withStack { service, mock, receiver in
      let id = try await service.createTask(
        fields("fal", scenario: "polls=2", mock: mock, receiver: receiver))
      _ = try await service.waitForEnd(id)
      let (status, json) = try await service.call("GET", "/v1/tasks/\(id)/events")
      #expect(status == 200)
      let events = json["events"]?.arrayValue ?? []
      let kinds = events.compactMap { $0["kind"]?.stringValue }
      #expect(kinds.first == "submit")
      #expect(kinds.filter { $0 == "poll" }.count == 3)
      #expect(kinds.last == "fetch")
      #expect(events.first?["state"]?.stringValue == "polling")
      #expect(events.last?["state"]?.stringValue == "completed")
      #expect(events.allSatisfy { $0["latencyMs"]?.intValue != nil })
    }
  }

  @Test func deliveriesListAndRedeliver() async throws {
    try await withStack { service, _, receiver in
      let id = try await service.createTask([
        "targetUrl": .string(receiver.url), "onCompleteUrl": .string(receiver.url),
      ])
      _ = try await service.waitForEnd(id)
      _ = await receiver.deliveries(count: 2, timeout: 10)
      // The receiver has the webhook a moment before the service records the response.
      var status = 0
      var json: JSONValue = .null
      for _ in 0..<200 {
        (status, json) = try await service.call("GET", "/v1/tasks/\(id)/deliveries")
        if json["deliveries"]?.arrayValue?.first?["state"]?.stringValue == "delivered" { break }
        try await Task.sleep(for: .milliseconds(10))
      }
      #expect(status == 200)
      let first = try #require(json["deliveries"]?.arrayValue?.first)
      #expect(first["state"]?.stringValue == "delivered")
      #expect(first["attemptLog"]?.arrayValue?.count == 1)
      #expect(first["attemptLog"]?.arrayValue?.first?["statusCode"]?.intValue == 200)

      let (queued, redelivery) = try await service.call("POST", "/v1/tasks/\(id)/redeliver")
      #expect(queued == 202)
      #expect(redelivery["delivery"]?["id"] != first["id"])
      let all = await receiver.deliveries(count: 3, timeout: 10)
      let webhookIds = all.compactMap { $0.headers["x-asyncqueue-delivery-id"] }
      #expect(Set(webhookIds).count == 2)
    }
  }

  /// Returns the abandoned deliveries once there are any, polling for up to 5 s.
  func abandonedDeliveries(_ service: TestService) async throws -> [JSONValue] {
    var abandoned: [JSONValue] = []
    for _ in 0..<200 {
      let (_, json) = try await service.call("GET", "/v1/deliveries?state=abandoned")
      abandoned = json["deliveries"]?.arrayValue ?? []
      if !abandoned.isEmpty { break }
      try await Task.sleep(for: .milliseconds(25))
    }
    return abandoned
  }

  @Test func urlPasswordsMaskedInHistoryViews() async throws {
    try await withStack(configure: { $0.webhookRetention = 0.5 }) { service, _, _ in
      // A receiver that is stopped leaves a port that refuses connections, so the stored
      // errors quote each URL with its password.
      let closed = WebhookReceiver()
      try closed.start()
      let port = URL(string: closed.url)?.port ?? 0
      closed.stop()
      let id = try await service.createTask([
        "targetUrl": .string("http://user:TGTPASS_1234@127.0.0.1:\(port)/submit"),
        "onCompleteUrl": .string("http://hook:HOOKPASS_5678@127.0.0.1:\(port)/hooks"),
      ])
      _ = try await service.waitForEnd(id)
      let abandoned = try await abandonedDeliveries(service)
      #expect(abandoned.count == 1)

      let (_, events) = try await service.call("GET", "/v1/tasks/\(id)/events")
      let (_, deliveries) = try await service.call("GET", "/v1/tasks/\(id)/deliveries")
      let (_, redelivered) = try await service.call("POST", "/v1/tasks/\(id)/redeliver")
      let texts = [
        events.serialized(), deliveries.serialized(), redelivered.serialized(),
        JSONValue.array(abandoned).serialized(),
      ]
      #expect(events.serialized().contains("cannot connect"), "\(events.serialized())")
      #expect(deliveries.serialized().contains("***"), "\(deliveries.serialized())")
      for text in texts {
        #expect(!text.contains("TGTPASS_1234"), "\(text)")
        #expect(!text.contains("HOOKPASS_5678"), "\(text)")
      }
    }
  }

  @Test func abandonedDeliveryIsListed() async throws {
    try await withStack(configure: { $0.webhookRetention = 0.5 }) { service, _, receiver in
      receiver.setStatus(500)
      let target = WebhookReceiver()
      try target.start()
      defer { target.stop() }
      let id = try await service.createTask([
        "targetUrl": .string(target.url), "onCompleteUrl": .string(receiver.url),
      ])
      let task = try await service.waitForEnd(id)
      #expect(task["status"]?.stringValue == "completed", "a failing webhook changes nothing")
      let abandoned = try await abandonedDeliveries(service)
      #expect(abandoned.first?["taskId"]?.stringValue == id)
      #expect(abandoned.first?["lastStatus"]?.intValue == 500)
    }
  }
}

/// Service settings a reliability test may change.
struct ServiceOptionsProxy {
  var providerLimits: [String: ProviderLimits] = [:]
  var webhookRetention: Double = 86400
  var maxConcurrentSteps = 2048
}
