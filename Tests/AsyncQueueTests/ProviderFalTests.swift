import LuaRuntime
import Support
import Testing

@Suite struct ProviderFalTests {
  static let target = "http://127.0.0.1:9/fal/fal-ai/flux/dev"
  static let statusUrl = "http://127.0.0.1:9/fal/fal-ai/flux/requests/req-1/status"
  static let responseUrl = "http://127.0.0.1:9/fal/fal-ai/flux/requests/req-1"
  static let cancelUrl = "http://127.0.0.1:9/fal/fal-ai/flux/requests/req-1/cancel"
  static let submitBody = """
    {"request_id":"req-1","status":"IN_QUEUE","status_url":"\(statusUrl)",
     "response_url":"\(responseUrl)","cancel_url":"\(cancelUrl)","queue_position":0}
    """
  static let forwarded: JSONValue = ["Authorization": "Key abc:def"]

  func submitted() throws -> ProviderHarness {
    var harness = try ProviderHarness(
      provider: "fal",
      task: providerTask(
        targetUrl: Self.target,
        headers: [
          "Authorization": "Key abc:def", "Content-Type": "application/json",
          "X-AsyncQueue-Task-Id": "t1", "Idempotency-Key": "k1",
        ], body: #"{"prompt":"a cat"}"#, provider: "fal"))
    let verdict = try harness.submit(ProviderResponse(200, Self.submitBody))
    #expect(verdict["state"] == "polling")
    return harness
  }

  @Test func metadataMatchesHostedTemplate() throws {
    let harness = try submitted()
    #expect(harness.pollConfig["interval"] == 3)
    #expect(harness.pollConfig["maxDuration"] == 600)
    #expect(harness.pollConfig["failValues"] == [])
    #expect(harness.pollConfig["urlTemplate"] == "{startResult.body.status_url}")
  }

  @Test func pollUsesStatusUrlVerbatimWithAuth() throws {
    let harness = try submitted()
    let request = try harness.request("poll")
    #expect(
      request == ["method": "GET", "url": .string(Self.statusUrl), "headers": Self.forwarded])
  }

  @Test func queuedThenRunningThenFetchThenCompleted() throws {
    var harness = try submitted()
    let queued = try harness.poll(
      ProviderResponse(202, #"{"status":"IN_QUEUE","queue_position":3}"#))
    #expect(queued == ["state": "running", "status": "IN_QUEUE", "queuePosition": 3])
    let running = try harness.poll(
      ProviderResponse(202, #"{"status":"IN_PROGRESS","logs":null}"#))
    #expect(running == ["state": "running", "status": "IN_PROGRESS"])
    let done = try harness.poll(ProviderResponse(200, #"{"status":"COMPLETED","logs":[]}"#))
    #expect(
      done
        == [
          "state": "fetch",
          "request": [
            "method": "GET", "url": .string(Self.responseUrl), "headers": Self.forwarded,
          ],
        ])
    let result = try harness.verdict(
      "on_result",
      ProviderResponse(200, #"{"images":[{"url":"https://cdn.test/a.png"}],"seed":42}"#))
    #expect(
      result
        == [
          "state": "completed",
          "result": ["images": [["url": "https://cdn.test/a.png"]], "seed": 42],
        ])
  }

  @Test func completedWithErrorFailsThroughResult422() throws {
    var harness = try submitted()
    let done = try harness.poll(
      ProviderResponse(
        200, #"{"status":"COMPLETED","error":"Input validation failed","error_type":"validation"}"#)
    )
    #expect(done["state"] == "fetch")
    let result = try harness.verdict(
      "on_result",
      ProviderResponse(
        422,
        #"{"detail":[{"loc":["body","prompt"],"msg":"field required","type":"value_error.missing"}]}"#
      ))
    #expect(
      result
        == [
          "state": "failed",
          "error": "body.prompt: field required (value_error.missing) (HTTP 422)",
        ])
  }

  @Test func result500WithDetailFails() throws {
    let harness = try submitted()
    let result = try harness.verdict(
      "on_result",
      ProviderResponse(
        500, #"{"detail":"Runner crashed","error_type":"runner_disconnected"}"#,
        headers: ["content-type": "application/json", "x-fal-request-id": "req-1"]))
    #expect(
      result == ["state": "failed", "error": "Runner crashed (HTTP 500, runner_disconnected)"])
  }

  @Test func resultIngressPageRetries() throws {
    let harness = try submitted()
    let result = try harness.verdict(
      "on_result",
      ProviderResponse(
        502, "<html><body><center>nginx</center></body></html>",
        headers: ["content-type": "text/html", "retry-after": "4"]))
    #expect(result == ["state": "retry", "error": "result fetch failed: HTTP 502", "after": 4])
  }

  @Test func pollTransientAndHtmlRetry() throws {
    var harness = try submitted()
    let limited = try harness.poll(
      ProviderResponse(429, #"{"detail":"Too many requests"}"#, headers: ["retry-after": "7"]))
    #expect(
      limited
        == [
          "state": "retry", "error": "status poll failed with HTTP 429: Too many requests",
          "after": 7,
        ])
    let html = try harness.poll(
      ProviderResponse(
        200, "<!DOCTYPE html><p>maintenance</p>", headers: ["content-type": "text/html"]))
    #expect(html["state"] == "retry")
  }

  @Test func unknownStatusKeepsRunning() throws {
    var harness = try submitted()
    let verdict = try harness.poll(ProviderResponse(200, #"{"status":"RESCHEDULED"}"#))
    #expect(verdict == ["state": "running", "status": "RESCHEDULED", "unknown": true])
  }

  @Test func cancelSendsPutAndReadsStatus() throws {
    let harness = try submitted()
    #expect(
      try harness.request("cancel")
        == ["method": "PUT", "url": .string(Self.cancelUrl), "headers": Self.forwarded])
    #expect(
      try harness.verdict("on_cancel", ProviderResponse(200, #"{"status":"OK"}"#))
        == ["state": "cancelled"])
    #expect(
      try harness.verdict(
        "on_cancel", ProviderResponse(202, #"{"status":"CANCELLATION_REQUESTED"}"#))
        == ["state": "running", "status": "CANCELLATION_REQUESTED"])
    #expect(
      try harness.verdict("on_cancel", ProviderResponse(400, #"{"status":"ALREADY_COMPLETED"}"#))
        == ["state": "running", "status": "ALREADY_COMPLETED"])
    #expect(
      try harness.verdict("on_cancel", ProviderResponse(404, #"{"status":"NOT_FOUND"}"#))
        == ["state": "failed", "error": "fal has no request to cancel (NOT_FOUND)"])
  }

  @Test func submitRejectionCarriesReason() throws {
    var harness = try ProviderHarness(
      provider: "fal",
      task: providerTask(targetUrl: Self.target, headers: [:], provider: "fal"))
    let verdict = try harness.submit(
      ProviderResponse(401, #"{"detail":"Invalid API key"}"#))
    #expect(verdict == ["state": "failed", "error": "submit failed: Invalid API key (HTTP 401)"])
  }
}
