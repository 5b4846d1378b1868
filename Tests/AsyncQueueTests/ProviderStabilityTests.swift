import LuaRuntime
import Support
import Testing

@Suite struct ProviderStabilityTests {
  static let target = "http://127.0.0.1:9/stability/v2beta/image-to-video"
  static let generationId = "a6dc6c6e20acda010fe14d71f180658f2896ed9b4ec25aa99a6ff06c796987c4"
  static let resultUrl = "\(target)/result/\(generationId)"

  func submitted(headers: [String: String] = ["Authorization": "Bearer sk-test"]) throws
    -> ProviderHarness
  {
    var harness = try ProviderHarness(
      provider: "stability-video",
      task: providerTask(targetUrl: Self.target, headers: headers, provider: "stability-video"))
    let verdict = try harness.submit(ProviderResponse(200, #"{"id":"\#(Self.generationId)"}"#))
    #expect(verdict["state"] == "polling")
    return harness
  }

  @Test func pollAsksForVideoWithAuth() throws {
    let harness = try submitted()
    #expect(
      try harness.request("poll")
        == [
          "method": "GET", "url": .string(Self.resultUrl),
          "headers": ["Authorization": "Bearer sk-test", "Accept": "video/*"],
        ])
  }

  @Test func inProgressThenVideo() throws {
    var harness = try submitted()
    #expect(
      try harness.poll(
        ProviderResponse(202, #"{"id":"\#(Self.generationId)","status":"in-progress"}"#))
        == ["state": "running", "status": "in-progress"])
    let video = ProviderResponse(
      200, bytes: [0, 0, 0, 0x18, 0x66, 0x74, 0x79, 0x70],
      headers: ["content-type": "video/mp4", "finish-reason": "SUCCESS", "seed": "343940597"])
    #expect(
      try harness.poll(video)
        == [
          "state": "completed", "file": ["contentType": "video/mp4", "name": "output.mp4"],
          "result": ["finishReason": "SUCCESS", "seed": 343_940_597],
        ])
  }

  @Test func contentFilteredFails() throws {
    var harness = try submitted()
    let video = ProviderResponse(
      200, bytes: [0], headers: ["content-type": "video/mp4", "finish-reason": "CONTENT_FILTERED"])
    #expect(try harness.poll(video) == ["state": "failed", "error": "content filtered"])
    let json = ProviderResponse(
      200, #"{"video":"AAAA","finish_reason":"CONTENT_FILTERED","seed":1}"#)
    #expect(try harness.poll(json) == ["state": "failed", "error": "content filtered"])
  }

  @Test func jsonResultWhenClientAsksJson() throws {
    var harness = try submitted(headers: [
      "Authorization": "Bearer sk-test", "Accept": "application/json",
    ])
    #expect(try harness.request("poll")["headers"]?["Accept"] == "application/json")
    #expect(
      try harness.poll(
        ProviderResponse(200, #"{"video":"AAAA","finish_reason":"SUCCESS","seed":7}"#))
        == [
          "state": "completed", "result": ["video": "AAAA", "finish_reason": "SUCCESS", "seed": 7],
        ])
  }

  @Test func notFoundMeansExpired() throws {
    var harness = try submitted()
    let body = #"{"id":"0b5c0c1e-error-id","name":"not_found","errors":["generation not found"]}"#
    #expect(
      try harness.poll(ProviderResponse(404, body))
        == ["state": "failed", "error": "generation not found or expired (results are kept 24 h)"])
  }

  @Test func clientErrorAndRateLimit() throws {
    var harness = try submitted()
    let bad =
      #"{"id":"e1","name":"bad_request","errors":["image: must be 1024x576","seed: too large"]}"#
    #expect(
      try harness.poll(ProviderResponse(400, bad))
        == [
          "state": "failed",
          "error":
            "result poll failed with HTTP 400: bad_request: image: must be 1024x576; seed: too large",
        ])
    let limited = try harness.poll(
      ProviderResponse(
        429, #"{"id":"e2","name":"rate_limited","errors":["slow down"]}"#,
        headers: ["content-type": "application/json", "retry-after": "10"]))
    #expect(limited["state"] == "retry")
    #expect(limited["after"] == 10)
  }
}
