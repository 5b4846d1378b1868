import LuaRuntime
import Support
import Testing

@Suite struct ProviderReplicateTests {
  static let target = "http://127.0.0.1:9/replicate/v1/predictions"
  static let getUrl = "http://127.0.0.1:9/replicate/v1/predictions/p1"
  static let forwarded: JSONValue = ["Authorization": "Bearer r8_test"]

  static func prediction(_ status: String, extra: String = "") -> String {
    """
    {"id":"p1","status":"\(status)","urls":{"get":"\(getUrl)","cancel":"\(getUrl)/cancel"}\(extra)}
    """
  }

  func submitted() throws -> ProviderHarness {
    var harness = try ProviderHarness(
      provider: "replicate",
      task: providerTask(
        targetUrl: Self.target,
        headers: ["Authorization": "Bearer r8_test", "Content-Type": "application/json"],
        provider: "replicate"))
    let verdict = try harness.submit(ProviderResponse(201, Self.prediction("starting")))
    #expect(verdict["state"] == "polling")
    return harness
  }

  @Test func pollUsesUrlsGet() throws {
    let harness = try submitted()
    #expect(
      try harness.request("poll")
        == ["method": "GET", "url": .string(Self.getUrl), "headers": Self.forwarded])
  }

  @Test func processingWithProgressThenSucceeded() throws {
    var harness = try submitted()
    let logs = #","logs":"  5%|▌ | 1/20 [00:01]\n 45%|████▌ | 9/20 [00:05]\n""#
    let running = try harness.poll(
      ProviderResponse(200, Self.prediction("processing", extra: logs)))
    #expect(running == ["state": "running", "status": "processing", "progress": 0.45])
    let done = try harness.poll(
      ProviderResponse(
        200, Self.prediction("succeeded", extra: #","output":["https://replicate.test/out.png"]"#)))
    #expect(done == ["state": "completed", "result": ["https://replicate.test/out.png"]])
  }

  @Test func failedWithAndWithoutReason() throws {
    var harness = try submitted()
    let failed = try harness.poll(
      ProviderResponse(200, Self.prediction("failed", extra: #","error":"CUDA out of memory""#)))
    #expect(failed == ["state": "failed", "error": "CUDA out of memory"])
    let silent = try harness.poll(
      ProviderResponse(200, Self.prediction("failed", extra: #","error":null"#)))
    #expect(silent == ["state": "failed", "error": "prediction failed without a reason"])
  }

  @Test func abortedAndCanceledAreTerminal() throws {
    var harness = try submitted()
    #expect(
      try harness.poll(ProviderResponse(200, Self.prediction("aborted")))
        == [
          "state": "failed",
          "error": "prediction was aborted: its deadline passed before it started",
        ])
    #expect(
      try harness.poll(ProviderResponse(200, Self.prediction("canceled")))
        == ["state": "failed", "error": "prediction was canceled at the provider"])
  }

  @Test func syncSubmitCompletesAtOnce() throws {
    var harness = try ProviderHarness(
      provider: "replicate",
      task: providerTask(targetUrl: Self.target, headers: ["Prefer": "wait"], provider: "replicate")
    )
    let verdict = try harness.submit(
      ProviderResponse(
        200, Self.prediction("succeeded", extra: #","output":"https://r.test/x.mp4""#)))
    #expect(verdict == ["state": "completed", "result": "https://r.test/x.mp4"])
  }

  @Test func missingUrlsDerivedFromTarget() throws {
    var harness = try ProviderHarness(
      provider: "replicate",
      task: providerTask(targetUrl: Self.target, headers: [:], provider: "replicate"))
    let verdict = try harness.submit(ProviderResponse(201, #"{"id":"p 2","status":"starting"}"#))
    #expect(
      verdict
        == [
          "state": "polling",
          "job": [
            "id": "p 2", "getUrl": "http://127.0.0.1:9/replicate/v1/predictions/p%202",
            "cancelUrl": "http://127.0.0.1:9/replicate/v1/predictions/p%202/cancel",
          ],
        ])
  }

  @Test func cancelReadsReturnedPrediction() throws {
    let harness = try submitted()
    #expect(
      try harness.request("cancel")
        == ["method": "POST", "url": .string(Self.getUrl + "/cancel"), "headers": Self.forwarded])
    #expect(
      try harness.verdict("on_cancel", ProviderResponse(200, Self.prediction("canceled")))
        == ["state": "cancelled"])
    #expect(
      try harness.verdict(
        "on_cancel", ProviderResponse(200, Self.prediction("succeeded", extra: #","output":"o""#)))
        == ["state": "completed", "result": "o"])
    #expect(
      try harness.verdict("on_cancel", ProviderResponse(200, Self.prediction("processing")))
        == ["state": "running", "status": "processing"])
  }

  @Test func rateLimitedPollRetries() throws {
    var harness = try submitted()
    let verdict = try harness.poll(
      ProviderResponse(
        429, #"{"detail":"Request was throttled. Expected available in 3 seconds."}"#,
        headers: ["content-type": "application/json", "retry-after": "3"]))
    #expect(
      verdict
        == [
          "state": "retry",
          "error":
            "poll failed with HTTP 429: Request was throttled. Expected available in 3 seconds.",
          "after": 3,
        ])
  }
}
