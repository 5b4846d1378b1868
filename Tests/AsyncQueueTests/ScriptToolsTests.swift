import Engine
import Foundation
import LuaRuntime
import ScriptTools
import Support
import Testing

/// Runs the library behind `asyncqueue providers test` on the six shipped fixtures.
@Suite struct ScriptToolsTests {
  /// The `hook state` sequence each shipped fixture's scenarios must print, in order.
  static let expectedSequences: [String: [[String]]] = [
    "fal": [
      [
        "on_submit polling", "poll GET", "on_poll running", "on_poll running", "on_poll fetch",
        "on_result completed",
      ],
      ["on_submit polling", "on_poll fetch", "on_result failed"],
    ],
    "replicate": [
      ["on_submit polling", "poll GET", "on_poll running", "on_poll completed"],
      ["on_submit polling", "on_poll failed"],
    ],
    "runwayml": [
      ["on_submit polling", "poll GET", "on_poll running", "on_poll running", "on_poll completed"],
      ["on_submit polling", "on_poll failed"],
    ],
    "luma": [
      ["on_submit polling", "poll GET", "on_poll running", "on_poll completed"],
      ["on_submit polling", "on_poll failed"],
    ],
    "elevenlabs-dubbing": [
      [
        "on_submit polling", "poll GET", "on_poll running", "on_poll fetch", "on_result retry",
        "on_result completed",
      ]
    ],
    "stability-video": [
      ["on_submit polling", "poll GET", "on_poll running", "on_poll completed"],
      ["on_submit polling", "on_poll failed"],
    ],
  ]

  /// Reduces a printed step (`on_poll 202 -> running (IN_QUEUE)`) to `hook state`.
  static func hookAndState(_ step: String) -> String {
    let words = step.split(separator: " ").map(String.init)
    guard let arrow = words.firstIndex(of: "->") else {
      return words.prefix(2).joined(separator: " ")
    }
    let state = arrow + 1 < words.count ? words[arrow + 1] : ""
    return "\(words[0]) \(state.trimmingCharacters(in: CharacterSet(charactersIn: ":")))"
  }

  func replay(_ provider: String) throws -> [FixtureReplay.Scenario] {
    let replay = try FixtureReplay(
      templateFile: providersDirectory.appendingPathComponent("\(provider).lua").path,
      moduleDirectories: [providersDirectory.path])
    let fixture = try JSONValue.parse(
      Data(contentsOf: providersDirectory.appendingPathComponent("fixtures/\(provider).json")))
    return try replay.run(fixture: fixture)
  }

  @Test(arguments: [
    "fal", "replicate", "runwayml", "luma", "elevenlabs-dubbing", "stability-video",
  ])
  func shippedFixtureReplaysCleanly(provider: String) throws {
    let scenarios = try replay(provider)
    let expected = try #require(Self.expectedSequences[provider])
    #expect(scenarios.map { $0.steps.map(Self.hookAndState) } == expected)
    for scenario in scenarios {
      #expect(scenario.mismatches.isEmpty, "\(provider) / \(scenario.name): \(scenario.mismatches)")
    }
    #expect(scenarios.first?.result != nil, "first scenario extracted no result")

    let text = FixtureReplay.render(scenarios, fixtureName: "\(provider).json")
    #expect(text.contains("\(provider).json / \(scenarios[0].name)"))
    #expect(text.contains("  result: "))
    #expect(!text.contains("MISMATCH"))
  }

  @Test func replayPrintsStepsAndResult() throws {
    let text = FixtureReplay.render(try replay("replicate"), fixtureName: "replicate.json")
    let lines = text.split(separator: "\n").map(String.init)
    #expect(lines.first == "replicate.json / succeeds with output")
    #expect(lines.contains("  1. on_submit 201 -> polling"), "\(text)")
    #expect(lines.contains { $0.hasPrefix("  2. poll GET http://") }, "\(text)")
    #expect(lines.contains { $0.hasPrefix("  result: [\"") }, "\(text)")
  }

  @Test func replayReportsStepThatDiffers() throws {
    let path = providersDirectory.appendingPathComponent("fixtures/luma.json")
    var text = try String(contentsOf: path, encoding: .utf8)
    text = text.replacingOccurrences(of: "\"state\": \"completed\"", with: "\"state\": \"running\"")
    let fixture = try JSONValue.parse(text)
    let replay = try FixtureReplay(
      templateFile: providersDirectory.appendingPathComponent("luma.lua").path,
      moduleDirectories: [providersDirectory.path])
    let scenarios = try replay.run(fixture: fixture)
    #expect(scenarios[0].mismatches.count == 1)
    #expect(scenarios[0].mismatches.first?.hasPrefix("step 4 (on_poll): expected") == true)
  }

  @Test func replayReportsHookFailure() throws {
    let directory = temporaryDirectory("replay")
    let file = try writeScript(
      directory, "tiny.lua",
      tinyTemplate.replacingOccurrences(
        of: "return { state = \"completed\", result = \"v1\" }",
        with: "error(\"broken on purpose\")"))
    let fixture: JSONValue = [
      "scenarios": [
        [
          "name": "one poll", "task": ["id": "t", "targetUrl": "http://127.0.0.1:9/x"],
          "steps": [["hook": "on_poll", "response": ["statusCode": 200, "body": "{}"]]],
        ]
      ]
    ]
    let scenarios = try FixtureReplay(templateFile: file, moduleDirectories: []).run(
      fixture: fixture)
    #expect(scenarios[0].steps == ["on_poll error"])
    #expect(scenarios[0].mismatches.first?.contains("tiny.lua:8: broken on purpose") == true)
  }

  @Test func providerListingShowsOverrides() throws {
    let directory = temporaryDirectory("listing")
    let file = try writeScript(
      directory, "fal.lua",
      tinyTemplate.replacingOccurrences(of: "id = \"tiny\"", with: "id = \"fal\""))
    let (catalog, _) = ProviderCatalog.load(
      directories: [providersDirectory.path, directory], limits: ScriptLimits())
    let table = ProviderListing.table(catalog).split(separator: "\n").map(String.init)
    #expect(table.first?.hasPrefix("ID") == true)
    let falRow = try #require(table.first { $0.hasPrefix("fal ") })
    #expect(falRow.contains(file))
    #expect(falRow.hasSuffix(providersDirectory.appendingPathComponent("fal.lua").path))
    #expect(falRow.contains("1 s"))

    let json = ProviderListing.json(catalog)
    let fal = json["providers"]?.arrayValue?.first { $0["id"] == "fal" }
    #expect(
      fal?["overrides"]?.stringValue == providersDirectory.appendingPathComponent("fal.lua").path)
    #expect(fal?["interval"]?.doubleValue == 1)
    #expect(fal?["maxDuration"]?.doubleValue == 600)
  }
}
