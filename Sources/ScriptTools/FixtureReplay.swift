import Engine
import Foundation
import LuaRuntime
import Support

/// Replays a recorded provider exchange through a template's hooks, without the provider.
///
/// A fixture is `{"provider": id, "scenarios": [{"name", "task", "steps": [...]}]}`. Each step
/// names a `hook`. A request hook (`submit`, `poll`, `cancel`) has no response. An `on_*` hook
/// has a `response`: `{statusCode, headers, body}` with `body` as text, or `bodyBase64` for
/// binary bytes. An optional `expect` is the exact value the hook must return. The job of a
/// "polling" verdict from `on_submit` is passed to later steps, and each `on_poll` counts one
/// poll, as in the engine.
public struct FixtureReplay {
  /// The outcome of one scenario.
  public struct Scenario: Sendable {
    public var name: String
    /// `hook state` per step, such as `on_poll running` or `poll GET`.
    public var steps: [String] = []
    /// The result of the last `completed` verdict, if any.
    public var result: JSONValue?
    /// Steps whose value differed from `expect`, or whose hook failed.
    public var mismatches: [String] = []
  }

  public let templateFile: String
  let runtime: LuaRuntime
  let pollConfig: JSONValue

  /// Loads the template with the modules of `moduleDirectories` (each one's `lib/`) available
  /// to `require`.
  public init(templateFile: String, moduleDirectories: [String]) throws {
    runtime = try LuaRuntime(limits: ScriptLimits(), log: { _, _, _ in })
    for directory in moduleDirectories {
      let libDirectory = (directory as NSString).appendingPathComponent("lib")
      for path in ScriptFiles.luaFiles(in: libDirectory) {
        let name = "lib." + ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        try runtime.addModule(
          name: name, source: try String(contentsOfFile: path, encoding: .utf8), chunkName: path)
      }
    }
    let source = try String(contentsOfFile: templateFile, encoding: .utf8)
    let loaded = try runtime.loadScript(key: "template", source: source, chunkName: templateFile)
    self.templateFile = templateFile
    pollConfig = try JSONValue.parse(loaded.metadataJSON)["pollConfig"] ?? .object([:])
  }

  /// Replays every scenario of the fixture.
  public func run(fixture: JSONValue) throws -> [Scenario] {
    guard let scenarios = fixture["scenarios"]?.arrayValue, !scenarios.isEmpty else {
      throw ScriptFailure(message: "the fixture has no 'scenarios' list")
    }
    return scenarios.map(replay)
  }

  private func replay(_ scenario: JSONValue) -> Scenario {
    var report = Scenario(name: scenario["name"]?.stringValue ?? "unnamed")
    var job: JSONValue?
    var pollCount = 0
    for (index, step) in (scenario["steps"]?.arrayValue ?? []).enumerated() {
      let hook = step["hook"]?.stringValue ?? "?"
      let response = step["response"]
      if hook == "on_poll" { pollCount += 1 }
      var context: [String: JSONValue] = [
        "task": scenario["task"] ?? .object([:]), "pollConfig": pollConfig,
        "pollCount": .int(Int64(pollCount)),
      ]
      if let job { context["job"] = job }
      var body: [UInt8]?
      if let response {
        context["response"] = [
          "statusCode": response["statusCode"] ?? .null,
          "headers": response["headers"] ?? .object([:]),
        ]
        body = Self.body(of: response)
      }
      let value: JSONValue
      do {
        let output = try runtime.call(
          key: "template", hook: hook, argumentJSON: JSONValue.object(context).serialized(),
          body: body)
        value = try JSONValue.parse(output)
      } catch {
        report.steps.append("\(hook) error")
        report.mismatches.append("step \(index + 1) (\(hook)) failed: \(error)")
        break
      }
      if hook == "on_submit", value["state"]?.stringValue == "polling" { job = value["job"] }
      if value["state"]?.stringValue == "completed" { report.result = value["result"] ?? .null }
      report.steps.append("\(hook) \(Self.summary(value, response: response))")
      if let expected = step["expect"], expected != value {
        report.mismatches.append(
          "step \(index + 1) (\(hook)): expected \(expected.serialized()), got \(value.serialized())"
        )
      }
    }
    return report
  }

  private static func body(of response: JSONValue) -> [UInt8] {
    if let encoded = response["bodyBase64"]?.stringValue, let data = Data(base64Encoded: encoded) {
      return Array(data)
    }
    return Array((response["body"]?.stringValue ?? "").utf8)
  }

  /// Summarizes a verdict as its state plus the detail that matters (status, request, error),
  /// or a request as `METHOD url`.
  static func summary(_ value: JSONValue, response: JSONValue?) -> String {
    guard let state = value["state"]?.stringValue else {
      let method = value["method"]?.stringValue ?? "?"
      return "\(method) \(value["url"]?.stringValue ?? "")"
    }
    var text = state
    if let code = response?["statusCode"]?.intValue { text = "\(code) -> " + text }
    if let status = value["status"]?.stringValue { text += " (\(status))" }
    if let request = value["request"] {
      text += " \(request["method"]?.stringValue ?? "GET") \(request["url"]?.stringValue ?? "")"
    }
    if let error = value["error"]?.stringValue { text += ": \(error)" }
    return text
  }

  /// Renders the scenarios as the `providers test` command prints them.
  public static func render(_ scenarios: [Scenario], fixtureName: String) -> String {
    var lines: [String] = []
    for scenario in scenarios {
      lines.append("\(fixtureName) / \(scenario.name)")
      for (index, step) in scenario.steps.enumerated() {
        lines.append("  \(index + 1). \(step)")
      }
      if let result = scenario.result { lines.append("  result: \(result.serialized())") }
      if scenario.mismatches.isEmpty {
        lines.append("  ok: every step matches the fixture")
      } else {
        lines += scenario.mismatches.map { "  MISMATCH \($0)" }
      }
    }
    return lines.joined(separator: "\n")
  }
}
