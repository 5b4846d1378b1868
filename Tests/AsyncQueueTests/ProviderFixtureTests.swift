import Foundation
import LuaRuntime
import Support
import Testing

/// Replays providers/fixtures/<id>.json through the real provider script.
///
/// A fixture is `{"provider": id, "scenarios": [{"name", "task", "steps": [...]}]}`. Each step
/// names a `hook`. A request hook (`poll`, `cancel`) has only `expect`, the request it must
/// return. An `on_*` hook also has a `response`: `{statusCode, headers, body}` with `body` as
/// text, or `bodyBase64` for binary bytes. `expect` is the exact verdict, and the job of a
/// "polling" verdict from on_submit is passed to the later steps.
@Suite struct ProviderFixtureTests {
  static let fixturesDirectory = providersDirectory.appendingPathComponent("fixtures")

  static func response(_ fixture: JSONValue) throws -> ProviderResponse {
    let statusCode = try #require(fixture["statusCode"]?.intValue)
    let headers = (fixture["headers"]?.objectValue ?? [:]).compactMapValues { $0.stringValue }
    if let encoded = fixture["bodyBase64"]?.stringValue {
      let bytes = try #require(Data(base64Encoded: encoded))
      return ProviderResponse(statusCode, bytes: Array(bytes), headers: headers)
    }
    return ProviderResponse(statusCode, fixture["body"]?.stringValue ?? "", headers: headers)
  }

  @Test(arguments: [
    "fal", "replicate", "runwayml", "luma", "elevenlabs-dubbing", "stability-video",
  ])
  func fixtureReplays(provider: String) throws {
    let data = try Data(
      contentsOf: Self.fixturesDirectory.appendingPathComponent("\(provider).json"))
    let fixture = try JSONValue.parse(data)
    let scenarios = try #require(fixture["scenarios"]?.arrayValue)
    #expect(!scenarios.isEmpty)

    for scenario in scenarios {
      let name = scenario["name"]?.stringValue ?? "?"
      var harness = try ProviderHarness(
        provider: provider, task: try #require(scenario["task"]))
      for (index, step) in (scenario["steps"]?.arrayValue ?? []).enumerated() {
        let hook = try #require(step["hook"]?.stringValue)
        let expected = try #require(step["expect"])
        let actual: JSONValue
        if let response = step["response"] {
          switch hook {
          case "on_submit": actual = try harness.submit(try Self.response(response))
          case "on_poll": actual = try harness.poll(try Self.response(response))
          default: actual = try harness.verdict(hook, try Self.response(response))
          }
        } else {
          actual = try harness.request(hook)
        }
        #expect(actual == expected, "\(provider) / \(name) / step \(index) (\(hook))")
      }
    }
  }
}
