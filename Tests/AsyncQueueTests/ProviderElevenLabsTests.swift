import LuaRuntime
import Support
import Testing

@Suite struct ProviderElevenLabsTests {
  static let target = "http://127.0.0.1:9/elevenlabs/v1/dubbing"
  static let dubbingUrl = "http://127.0.0.1:9/elevenlabs/v1/dubbing/dub-1"
  static let forwarded: JSONValue = ["xi-api-key": "xi-test"]

  func submitted(body: String, contentType: String) throws -> ProviderHarness {
    var harness = try ProviderHarness(
      provider: "elevenlabs-dubbing",
      task: providerTask(
        targetUrl: Self.target, headers: ["xi-api-key": "xi-test", "Content-Type": contentType],
        body: body, provider: "elevenlabs-dubbing"))
    let verdict = try harness.submit(
      ProviderResponse(200, #"{"dubbing_id":"dub-1","expected_duration_sec":12.5}"#))
    #expect(verdict["state"] == "polling")
    return harness
  }

  @Test func jsonBodyLanguageDrivesAudioFetch() throws {
    var harness = try submitted(
      body: #"{"source_url":"https://x.test/a.mp4","target_lang":"es"}"#,
      contentType: "application/json")
    #expect(
      try harness.request("poll")
        == ["method": "GET", "url": .string(Self.dubbingUrl), "headers": Self.forwarded])
    #expect(
      try harness.poll(ProviderResponse(200, #"{"dubbing_id":"dub-1","status":"dubbing"}"#))
        == ["state": "running", "status": "dubbing"])
    #expect(
      try harness.poll(
        ProviderResponse(
          200, #"{"dubbing_id":"dub-1","status":"dubbed","target_languages":["fr"]}"#))
        == [
          "state": "fetch",
          "request": [
            "method": "GET", "url": .string(Self.dubbingUrl + "/audio/es"),
            "headers": Self.forwarded,
          ],
        ])
  }

  @Test func multipartLanguageFound() throws {
    let body =
      "--b0\r\nContent-Disposition: form-data; name=\"source_url\"\r\n\r\nhttps://x.test/a.mp4\r\n"
      + "--b0\r\nContent-Disposition: form-data; name=\"target_lang\"\r\n\r\nde\r\n--b0--\r\n"
    var harness = try submitted(body: body, contentType: "multipart/form-data; boundary=b0")
    let verdict = try harness.poll(ProviderResponse(200, #"{"status":"dubbed"}"#))
    #expect(verdict["request"]?["url"] == .string(Self.dubbingUrl + "/audio/de"))
  }

  @Test func metadataLanguageIsFallback() throws {
    var harness = try submitted(body: "not json", contentType: "text/plain")
    let verdict = try harness.poll(
      ProviderResponse(200, #"{"status":"dubbed","target_languages":["ja","ko"]}"#))
    #expect(verdict["request"]?["url"] == .string(Self.dubbingUrl + "/audio/ja"))
  }

  @Test func tooEarlyRetriesThenAudioCompletes() throws {
    let harness = try submitted(body: #"{"target_lang":"es"}"#, contentType: "application/json")
    #expect(
      try harness.verdict(
        "on_result",
        ProviderResponse(425, #"{"detail":{"status":"dubbing_not_dubbed","message":"not done"}}"#))
        == ["state": "retry", "error": "audio is not ready yet (HTTP 425)", "after": 10])
    let audio = ProviderResponse(
      200, bytes: [0x49, 0x44, 0x33, 0, 1], headers: ["content-type": "audio/mpeg"])
    #expect(
      try harness.verdict("on_result", audio)
        == [
          "state": "completed", "file": ["contentType": "audio/mpeg"],
          "result": ["dubbing_id": "dub-1", "language": "es"],
        ])
  }

  @Test func failedCarriesErrorAndUnknownKeepsRunning() throws {
    var harness = try submitted(body: #"{"target_lang":"es"}"#, contentType: "application/json")
    #expect(
      try harness.poll(ProviderResponse(200, #"{"status":"failed","error":"No speech detected"}"#))
        == ["state": "failed", "error": "No speech detected"])
    #expect(
      try harness.poll(ProviderResponse(200, #"{"status":"preparing"}"#))
        == ["state": "running", "status": "preparing", "unknown": true])
  }

  @Test func submitQuotaErrorCarriesDetailMessage() throws {
    var harness = try ProviderHarness(
      provider: "elevenlabs-dubbing",
      task: providerTask(targetUrl: Self.target, headers: [:], provider: "elevenlabs-dubbing"))
    let verdict = try harness.submit(
      ProviderResponse(
        401, #"{"detail":{"status":"quota_exceeded","message":"You have 0 credits left."}}"#))
    #expect(
      verdict
        == [
          "state": "failed",
          "error": "submit failed with HTTP 401: quota_exceeded: You have 0 credits left.",
        ])
  }
}
