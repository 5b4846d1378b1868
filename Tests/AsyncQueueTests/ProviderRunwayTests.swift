import LuaRuntime
import Support
import Testing

@Suite struct ProviderRunwayTests {
  static let target = "http://127.0.0.1:9/runway/v1/image_to_video"
  static let taskUrl = "http://127.0.0.1:9/runway/v1/tasks/17f20503-6c24-4c16-946b-35dbbce2af2f"
  static let forwarded: JSONValue = [
    "Authorization": "Bearer key_test", "X-Runway-Version": "2024-11-06",
  ]

  func submitted() throws -> ProviderHarness {
    var harness = try ProviderHarness(
      provider: "runwayml",
      task: providerTask(
        targetUrl: Self.target,
        headers: [
          "Authorization": "Bearer key_test", "X-Runway-Version": "2024-11-06",
          "Content-Type": "application/json",
        ], provider: "runwayml"))
    let verdict = try harness.submit(
      ProviderResponse(200, #"{"id":"17f20503-6c24-4c16-946b-35dbbce2af2f"}"#))
    #expect(verdict["state"] == "polling")
    return harness
  }

  @Test func pollUrlDerivedFromTargetWithHeaders() throws {
    let harness = try submitted()
    #expect(
      try harness.request("poll")
        == ["method": "GET", "url": .string(Self.taskUrl), "headers": Self.forwarded])
  }

  @Test func pendingThrottledRunningThenSucceeded() throws {
    var harness = try submitted()
    #expect(
      try harness.poll(ProviderResponse(200, #"{"id":"x","status":"PENDING"}"#))
        == ["state": "running", "status": "PENDING"])
    #expect(
      try harness.poll(ProviderResponse(200, #"{"id":"x","status":"THROTTLED"}"#))
        == ["state": "running", "status": "THROTTLED"])
    #expect(
      try harness.poll(ProviderResponse(200, #"{"id":"x","status":"RUNNING","progress":0.25}"#))
        == ["state": "running", "status": "RUNNING", "progress": 0.25])
    #expect(
      try harness.poll(
        ProviderResponse(
          200, #"{"id":"x","status":"SUCCEEDED","output":["https://rw.test/v.mp4"]}"#))
        == ["state": "completed", "result": ["https://rw.test/v.mp4"]])
  }

  @Test func failedCarriesFailureCode() throws {
    var harness = try submitted()
    let body =
      #"{"status":"FAILED","failure":"Input rejected by moderation","failureCode":"SAFETY.INPUT.IMAGE"}"#
    #expect(
      try harness.poll(ProviderResponse(200, body))
        == ["state": "failed", "error": "Input rejected by moderation (SAFETY.INPUT.IMAGE)"])
    #expect(
      try harness.poll(ProviderResponse(200, #"{"status":"FAILED","failure":"Bad output"}"#))
        == ["state": "failed", "error": "Bad output"])
  }

  @Test func cancelledIsTerminal() throws {
    var harness = try submitted()
    #expect(
      try harness.poll(ProviderResponse(200, #"{"status":"CANCELLED"}"#))
        == ["state": "failed", "error": "cancelled at the provider"])
  }

  @Test func submitBadRequestFailsWithReason() throws {
    var harness = try ProviderHarness(
      provider: "runwayml",
      task: providerTask(targetUrl: Self.target, headers: [:], provider: "runwayml"))
    #expect(
      try harness.submit(ProviderResponse(400, #"{"error":"promptImage: invalid URL"}"#))
        == ["state": "failed", "error": "submit failed with HTTP 400: promptImage: invalid URL"])
  }

  @Test func cancelReadsTaskBeforeDeleting() throws {
    let harness = try submitted()
    #expect(
      try harness.request("cancel")
        == ["method": "GET", "url": .string(Self.taskUrl), "headers": Self.forwarded])
    var deleteHeaders = Self.forwarded.objectValue!
    deleteHeaders["Accept"] = "*/*"
    #expect(
      try harness.verdict(
        "on_cancel", ProviderResponse(200, #"{"status":"RUNNING","progress":0.5}"#))
        == [
          "state": "fetch",
          "request": [
            "method": "DELETE", "url": .string(Self.taskUrl), "headers": .object(deleteHeaders),
          ],
        ])
    #expect(
      try harness.verdict("on_cancel", ProviderResponse(204, "", headers: [:]))
        == ["state": "cancelled"])
  }

  @Test func cancelNeverDeletesSucceededTask() throws {
    let harness = try submitted()
    #expect(
      try harness.verdict(
        "on_cancel",
        ProviderResponse(200, #"{"status":"SUCCEEDED","output":["https://rw.test/v.mp4"]}"#))
        == ["state": "completed", "result": ["https://rw.test/v.mp4"]])
    #expect(
      try harness.verdict("on_cancel", ProviderResponse(200, #"{"status":"CANCELLED"}"#))
        == ["state": "failed", "error": "cancelled at the provider"])
  }

  @Test func gatewayErrorPageRetries() throws {
    var harness = try submitted()
    let verdict = try harness.poll(
      ProviderResponse(504, "<html>Gateway Timeout</html>", headers: ["content-type": "text/html"]))
    #expect(verdict == ["state": "retry", "error": "poll failed with HTTP 504 (an HTML page)"])
  }
}
