import LuaRuntime
import Support
import Testing

@Suite struct ProviderLumaTests {
  static let target = "http://127.0.0.1:9/luma/dream-machine/v1/generations/video"
  static let generationUrl = "http://127.0.0.1:9/luma/dream-machine/v1/generations/g-1"

  func submitted() throws -> ProviderHarness {
    var harness = try ProviderHarness(
      provider: "luma",
      task: providerTask(
        targetUrl: Self.target, headers: ["Authorization": "Bearer luma-test"], provider: "luma"))
    let verdict = try harness.submit(
      ProviderResponse(201, #"{"id":"g-1","state":"queued","assets":null,"failure_reason":null}"#))
    #expect(
      verdict == [
        "state": "polling", "job": ["id": "g-1", "generationUrl": .string(Self.generationUrl)],
      ])
    return harness
  }

  @Test func pollUrlDerivedFromTarget() throws {
    let harness = try submitted()
    #expect(
      try harness.request("poll")
        == [
          "method": "GET", "url": .string(Self.generationUrl),
          "headers": ["Authorization": "Bearer luma-test"],
        ])
  }

  @Test func dreamingThenCompletedVideo() throws {
    var harness = try submitted()
    #expect(
      try harness.poll(ProviderResponse(200, #"{"id":"g-1","state":"dreaming"}"#))
        == ["state": "running", "status": "dreaming"])
    #expect(
      try harness.poll(
        ProviderResponse(
          200, #"{"id":"g-1","state":"completed","assets":{"video":"https://luma.test/v.mp4"}}"#))
        == ["state": "completed", "result": "https://luma.test/v.mp4"])
  }

  @Test func imageGenerationUsesImageAsset() throws {
    var harness = try submitted()
    let body =
      #"{"state":"completed","generation_type":"image","assets":{"image":"https://luma.test/i.jpg"}}"#
    #expect(
      try harness.poll(ProviderResponse(200, body))
        == ["state": "completed", "result": "https://luma.test/i.jpg"])
  }

  @Test func completedWithoutAssetFails() throws {
    var harness = try submitted()
    #expect(
      try harness.poll(ProviderResponse(200, #"{"state":"completed","assets":null}"#))
        == ["state": "failed", "error": "completed without an asset"])
  }

  @Test func failedCarriesReason() throws {
    var harness = try submitted()
    #expect(
      try harness.poll(
        ProviderResponse(200, #"{"state":"failed","failure_reason":"Advanced moderation failed"}"#))
        == ["state": "failed", "error": "Advanced moderation failed"])
  }

  @Test func missingFieldsDoNotCrash() throws {
    var harness = try submitted()
    #expect(try harness.poll(ProviderResponse(200, "{}")) == ["state": "running", "unknown": true])
    #expect(
      try harness.poll(ProviderResponse(200, #"{"state":"failed"}"#))
        == ["state": "failed", "error": "generation failed without a reason"])
    #expect(!harness.runtime.hasHook(key: "luma", hook: "cancel"))
  }
}
