import API
import Foundation
import MockProvider
import Support
import Testing

@Suite(.serialized) struct OperationsEndpointTests {
  @Test func rateLimitHeadersAnd429() async throws {
    // An hour-long window, so the three requests cannot straddle a window boundary.
    let service = try TestService(rateLimit: RateLimit(requests: 3, perSeconds: 3600))
    defer { service.stop() }
    var remaining: [String] = []
    for _ in 0..<3 {
      let before = Int(Date().timeIntervalSince1970)
      let response = try await service.raw("/v1/tasks")
      #expect(response.statusCode == 200)
      #expect(response.headers["x-ratelimit-limit"] == "3")
      remaining.append(response.headers["x-ratelimit-remaining"] ?? "")
      let reset = Int(response.headers["x-ratelimit-reset"] ?? "") ?? 0
      #expect(reset >= before)
      #expect(reset <= Int(Date().timeIntervalSince1970) + 3601)
    }
    #expect(remaining == ["2", "1", "0"])

    let limited = try await service.raw("/v1/tasks")
    #expect(limited.statusCode == 429)
    #expect(Int(limited.headers["retry-after"] ?? "") ?? 0 >= 1)
    #expect(limited.headers["x-ratelimit-remaining"] == "0")
    let json = try JSONValue.parse(limited.body)
    #expect(json["code"]?.stringValue == "rate_limited")
    #expect(json["error"]?.stringValue?.contains("retry after") == true)

    let otherKey = "aq_other_team_key_1"
    _ = try service.service.store.createAPIKey(
      hash: Crypto.sha256Hex(otherKey), teamId: "other", label: "test")
    let (otherStatus, _) = try await service.call("GET", "/v1/tasks", key: otherKey)
    #expect(otherStatus == 200, "another team has its own budget")

    var unauthorized: [Int] = []
    for _ in 0..<4 {
      unauthorized.append(
        try await service.call("GET", "/v1/tasks", key: "aq_guess_0000000").status)
    }
    #expect(unauthorized == [401, 401, 401, 429], "guessing keys spends the address's budget")

    let health = try await service.raw("/healthz")
    #expect(health.statusCode == 200, "only /v1 routes are limited")
    #expect(health.headers["x-ratelimit-limit"] == nil)
  }

  @Test func readyzIs200WhenReady() async throws {
    let service = try TestService()
    defer { service.stop() }
    let response = try await service.raw("/readyz")
    #expect(response.statusCode == 200)
  }

  @Test func readyzIs503WithoutTemplates() async throws {
    // The shared Lua modules without any template: the service starts but has no providers.
    let empty = temporaryDirectory("no-providers")
    try FileManager.default.copyItem(
      atPath: repositoryRoot + "/providers/lib", toPath: empty + "/lib")
    let service = try TestService(builtinProvidersDirectory: empty)
    defer { service.stop() }
    let response = try await service.raw("/readyz")
    #expect(response.statusCode == 503)
    let json = try JSONValue.parse(response.body)
    #expect(json["reason"]?.stringValue?.contains("no provider templates") == true)
  }

  @Test func metricsCountTasksAndWebhooks() async throws {
    let target = WebhookReceiver()
    try target.start()
    let hook = WebhookReceiver()
    try hook.start()
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
    _ = hook.waitForDeliveries(count: 1, timeout: 10)
    // The delivery's counter is updated after the receiver responds, so give it a moment.
    try await Task.sleep(nanoseconds: 300_000_000)

    let response = try await service.raw("/metrics")
    #expect(response.statusCode == 200)
    #expect(response.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
    let text = String(decoding: response.body, as: UTF8.self)
    let lines = Set(text.split(separator: "\n").map(String.init))
    let expected = [
      #"asyncqueue_tasks{status="completed",provider="none"} 1"#,
      #"asyncqueue_task_transitions_total{status="completed",provider="none"} 1"#,
      #"asyncqueue_webhook_deliveries_total{outcome="delivered"} 1"#,
      #"asyncqueue_provider_requests_total{provider="none",step="call",outcome="2xx"} 1"#,
      #"asyncqueue_http_requests_total{method="POST",route="/v1/tasks",status="201"} 1"#,
      "asyncqueue_queue_depth 0",
      "# TYPE asyncqueue_poll_seconds histogram",
      "# TYPE asyncqueue_scheduler_lag_seconds histogram",
      "# TYPE asyncqueue_hook_seconds histogram",
    ]
    for line in expected {
      #expect(lines.contains(line), "missing \(line)")
    }
    #expect(lines.contains { $0.hasPrefix("asyncqueue_webhook_seconds_count 1") })
  }

  @Test func metricsCountProviderPolls() async throws {
    let mock = MockProviderServer()
    try mock.start()
    let service = try TestService()
    defer {
      service.stop()
      mock.stop()
    }
    let fal = try #require(ProviderCase.all.first { $0.id == "fal" })
    var headers = fal.headers.mapValues { JSONValue.string($0) }
    headers["X-Mock-Scenario"] = "polls=2"
    let id = try await service.createTask([
      "targetUrl": .string(mock.baseURL + fal.path), "headers": .object(headers),
      "body": .string(fal.body), "provider": "fal",
    ])
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "completed")

    let text = String(decoding: try await service.raw("/metrics").body, as: UTF8.self)
    func value(_ series: String) -> Int {
      let line = text.split(separator: "\n").first { $0.hasPrefix(series + " ") }
      return Int(line?.split(separator: " ").last ?? "") ?? 0
    }
    let polls = task["pollCount"]?.intValue ?? 0
    #expect(polls >= 2)
    #expect(value(#"asyncqueue_polls_total{provider="fal",outcome="2xx"}"#) == polls)
    #expect(value(#"asyncqueue_poll_seconds_count{provider="fal"}"#) == polls)
    #expect(
      value(#"asyncqueue_provider_requests_total{provider="fal",step="submit",outcome="2xx"}"#)
        == 1)
    #expect(value(#"asyncqueue_tasks{status="completed",provider="fal"}"#) == 1)
  }

  @Test func registryRendersPrometheusText() {
    let registry = MetricsRegistry()
    let counter = registry.counter("demo_total", help: "Demo counter.", labels: ["name"])
    let histogram = registry.histogram("demo_seconds", help: "Demo.", buckets: [0.3, 1])
    counter.increment(["a \"quoted\"\\path\nline"])
    counter.increment(["b"], by: 2)
    histogram.observe([], 0.25)
    histogram.observe([], 0.5)
    histogram.observe([], 5)
    let text = registry.render()
    #expect(text.contains("# TYPE demo_total counter\n"))
    #expect(text.contains(#"demo_total{name="a \"quoted\"\\path\nline"} 1"#))
    #expect(text.contains(#"demo_total{name="b"} 2"#))
    #expect(text.contains(#"demo_seconds_bucket{le="0.3"} 1"#))
    #expect(text.contains(#"demo_seconds_bucket{le="1"} 2"#))
    #expect(text.contains(#"demo_seconds_bucket{le="+Inf"} 3"#))
    #expect(text.contains("demo_seconds_sum 5.75"))
    #expect(text.contains("demo_seconds_count 3"))
  }
}
