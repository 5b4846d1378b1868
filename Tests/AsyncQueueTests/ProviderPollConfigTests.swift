import LuaRuntime
import Support
import Testing

@Suite struct ProviderPollConfigTests {
  static let pollConfig: JSONValue = [
    "urlTemplate": "http://127.0.0.1:9/custom/jobs/{startResult.body.job.id}?task={task.id}",
    "interval": 2, "statusPath": "data.state", "doneValues": ["done"],
    "failValues": ["error", "rejected"], "resultPath": "data.outputs.0",
    "errorPath": "data.problem", "forwardAuth": true, "maxDuration": 120,
  ]

  func submitted(pollConfig: JSONValue = Self.pollConfig) throws -> ProviderHarness {
    var harness = try ProviderHarness(
      source: #"return require("lib.pollconfig").template{}"#, key: "custom",
      task: providerTask(
        id: "t-9", targetUrl: "http://127.0.0.1:9/custom/jobs",
        headers: [
          "X-Api-Key": "secret", "Content-Type": "application/json",
          "X-AsyncQueue-Signature": "t=1,v1=00", "Content-Length": "2",
        ], provider: "custom"),
      pollConfig: pollConfig)
    let verdict = try harness.submit(
      ProviderResponse(201, #"{"job":{"id":"j 1"}}"#, headers: ["content-type": "application/json"])
    )
    #expect(verdict["state"] == "polling")
    return harness
  }

  @Test func pollExpandsTemplateAndForwardsAuth() throws {
    let harness = try submitted()
    #expect(
      try harness.request("poll")
        == [
          "method": "GET", "url": "http://127.0.0.1:9/custom/jobs/j 1?task=t-9",
          "headers": ["X-Api-Key": "secret"],
        ])
  }

  @Test func statusValuesMapToVerdicts() throws {
    var harness = try submitted()
    #expect(
      try harness.poll(ProviderResponse(200, #"{"data":{"state":"warming"}}"#))
        == ["state": "running", "status": "warming"])
    #expect(
      try harness.poll(ProviderResponse(200, #"{"data":{"state":"done","outputs":["a","b"]}}"#))
        == ["state": "completed", "result": "a"])
    #expect(
      try harness.poll(ProviderResponse(200, #"{"data":{"state":"rejected","problem":"nsfw"}}"#))
        == ["state": "failed", "error": "nsfw"])
    #expect(
      try harness.poll(ProviderResponse(200, #"{"data":{"state":"error"}}"#))
        == ["state": "failed", "error": "provider reported status error"])
  }

  @Test func resultUrlTemplateFetchesResult() throws {
    var config = Self.pollConfig.objectValue!
    config["resultUrlTemplate"] = "http://127.0.0.1:9/custom/results/{startResult.body.job.id}"
    config["resultPath"] = "output"
    var harness = try submitted(pollConfig: .object(config))
    #expect(
      try harness.poll(ProviderResponse(200, #"{"data":{"state":"done"}}"#))
        == [
          "state": "fetch",
          "request": [
            "method": "GET", "url": "http://127.0.0.1:9/custom/results/j 1",
            "headers": ["X-Api-Key": "secret"],
          ],
        ])
    #expect(
      try harness.verdict("on_result", ProviderResponse(200, #"{"output":{"url":"u"}}"#))
        == ["state": "completed", "result": ["url": "u"]])
  }

  @Test func transientAndNonJsonRetry() throws {
    var harness = try submitted()
    #expect(
      try harness.poll(ProviderResponse(503, "busy", headers: ["retry-after": "30"]))
        == ["state": "retry", "error": "poll failed with HTTP 503: busy", "after": 30])
    let proxyPage = try harness.poll(
      ProviderResponse(403, "<html>Access denied</html>", headers: ["content-type": "text/html"]))
    #expect(proxyPage == ["state": "retry", "error": "poll failed with HTTP 403 (an HTML page)"])
    #expect(
      try harness.poll(ProviderResponse(404, #"{"message":"no such job"}"#))
        == ["state": "failed", "error": "poll failed with HTTP 404: no such job"])
    let notJson = try harness.poll(
      ProviderResponse(200, "ok", headers: ["content-type": "text/plain"]))
    #expect(notJson["state"] == "retry")
  }

  @Test func submitStatusesDecideRetryOrFailure() throws {
    var harness = try submitted()
    #expect(
      try harness.submit(ProviderResponse(408, ""))
        == ["state": "retry", "error": "submit failed with HTTP 408"])
    #expect(
      try harness.submit(ProviderResponse(422, #"{"message":"prompt is required"}"#))
        == ["state": "failed", "error": "submit failed with HTTP 422: prompt is required"])
  }

  @Test func missingPlaceholderIsScriptFailure() throws {
    var config = Self.pollConfig.objectValue!
    config["urlTemplate"] = "http://127.0.0.1:9/custom/{startResult.body.nothing}"
    let harness = try submitted(pollConfig: .object(config))
    #expect(throws: ScriptFailure.self) { try harness.request("poll") }
    do {
      _ = try harness.request("poll")
    } catch let failure as ScriptFailure {
      #expect(
        failure.message
          == "pollConfig.urlTemplate: placeholder {startResult.body.nothing} has no value")
    }
  }
}
