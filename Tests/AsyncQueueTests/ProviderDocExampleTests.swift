import Foundation
import LuaRuntime
import Support
import Testing

@Suite struct ProviderDocExampleTests {
  /// Reads the last ```lua block of docs/provider-scripting.md: the complete example template.
  static func exampleSource() throws -> String {
    let document = try String(
      contentsOf: providersDirectory.deletingLastPathComponent()
        .appendingPathComponent("docs/provider-scripting.md"), encoding: .utf8)
    let blocks = document.components(separatedBy: "```lua\n").dropFirst()
    let last = try #require(blocks.last)
    return try #require(last.components(separatedBy: "```").first)
  }

  @Test func documentedExampleRuns() throws {
    var harness = try ProviderHarness(
      source: try Self.exampleSource(), key: "example-jobs",
      task: providerTask(
        targetUrl: "http://127.0.0.1:9/jobs-api/v1/jobs", headers: ["Authorization": "Bearer e"],
        provider: "example-jobs"),
      pollConfig: [:])
    #expect(
      try harness.submit(ProviderResponse(202, #"{"job":{"id":"j1"}}"#))["state"] == "polling")
    #expect(
      try harness.request("poll")
        == [
          "method": "GET", "url": "http://127.0.0.1:9/jobs-api/v1/jobs/j1",
          "headers": ["Authorization": "Bearer e"],
        ])
    #expect(
      try harness.poll(ProviderResponse(200, #"{"state":"working"}"#))
        == ["state": "running", "status": "working"])
    #expect(
      try harness.poll(ProviderResponse(200, #"{"state":"paused"}"#))
        == ["state": "running", "status": "paused", "unknown": true])
    #expect(
      try harness.poll(
        ProviderResponse(200, #"{"state":"done","output":{"url":"https://x.test/o"}}"#))
        == ["state": "completed", "result": "https://x.test/o"])
    #expect(
      try harness.poll(ProviderResponse(200, #"{"state":"error","error":"GPU lost"}"#))
        == ["state": "failed", "error": "GPU lost"])
  }
}
