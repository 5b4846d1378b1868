import Foundation
import LuaRuntime
import Support
import Testing

/// The repository's providers/ folder, found from this file's path.
let providersDirectory = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  .appendingPathComponent("providers")

/// A recorded-style HTTP response handed to an `on_*` hook.
struct ProviderResponse {
  var statusCode: Int
  var headers: [String: String] = ["content-type": "application/json"]
  var body: [UInt8]

  init(_ statusCode: Int, _ body: String, headers: [String: String]? = nil) {
    self.statusCode = statusCode
    self.body = Array(body.utf8)
    if let headers { self.headers = headers }
  }

  init(_ statusCode: Int, bytes: [UInt8], headers: [String: String]) {
    self.statusCode = statusCode
    self.body = bytes
    self.headers = headers
  }
}

/// Loads one provider script into a real runtime and drives its hooks the way the engine does.
struct ProviderHarness {
  let runtime: LuaRuntime
  let key: String
  let pollConfig: JSONValue
  var task: JSONValue
  var job: JSONValue? = nil
  var pollCount = 0

  init(provider: String, task: JSONValue) throws {
    runtime = try LuaRuntime { _, _, _ in }
    let library = try String(
      contentsOf: providersDirectory.appendingPathComponent("lib/pollconfig.lua"), encoding: .utf8)
    try runtime.addModule(
      name: "lib.pollconfig", source: library, chunkName: "providers/lib/pollconfig.lua")
    let source = try String(
      contentsOf: providersDirectory.appendingPathComponent("\(provider).lua"), encoding: .utf8)
    let loaded = try runtime.loadScript(
      key: provider, source: source, chunkName: "providers/\(provider).lua")
    key = provider
    pollConfig = try JSONValue.parse(loaded.metadataJSON)["pollConfig"] ?? .null
    self.task = task
  }

  /// Loads a script given as source, with lib.pollconfig available, for custom pollConfig tasks.
  init(source: String, key: String, task: JSONValue, pollConfig: JSONValue) throws {
    runtime = try LuaRuntime { _, _, _ in }
    let library = try String(
      contentsOf: providersDirectory.appendingPathComponent("lib/pollconfig.lua"), encoding: .utf8)
    try runtime.addModule(
      name: "lib.pollconfig", source: library, chunkName: "providers/lib/pollconfig.lua")
    _ = try runtime.loadScript(key: key, source: source, chunkName: "\(key).lua")
    self.key = key
    self.pollConfig = pollConfig
    self.task = task
  }

  func context(_ response: ProviderResponse?) -> JSONValue {
    var members: [String: JSONValue] = [
      "task": task, "pollConfig": pollConfig, "pollCount": .int(Int64(pollCount)),
    ]
    if let job { members["job"] = job }
    if let response {
      members["response"] = [
        "statusCode": .int(Int64(response.statusCode)),
        "headers": .object(response.headers.mapValues { .string($0) }),
      ]
    }
    return .object(members)
  }

  /// Calls a hook that builds a request (submit, poll, cancel) and returns its value.
  func request(_ hook: String) throws -> JSONValue {
    let output = try runtime.call(
      key: key, hook: hook, argumentJSON: context(nil).serialized(), body: nil)
    return try JSONValue.parse(output)
  }

  /// Calls an `on_*` hook with `response` and returns its verdict.
  func verdict(_ hook: String, _ response: ProviderResponse) throws -> JSONValue {
    let output = try runtime.call(
      key: key, hook: hook, argumentJSON: context(response).serialized(), body: response.body)
    return try JSONValue.parse(output)
  }

  /// Calls on_submit and keeps the job it returns, as the engine does.
  mutating func submit(_ response: ProviderResponse) throws -> JSONValue {
    let verdict = try verdict("on_submit", response)
    if verdict["state"] == "polling" { job = verdict["job"] }
    return verdict
  }

  /// Calls on_poll and counts the poll.
  mutating func poll(_ response: ProviderResponse) throws -> JSONValue {
    pollCount += 1
    return try verdict("on_poll", response)
  }
}

/// Builds a task as the engine passes it to hooks.
func providerTask(
  id: String = "7b0c4a52-0000-4000-8000-000000000001", targetUrl: String,
  headers: [String: String], body: String? = "{}", provider: String
) -> JSONValue {
  [
    "id": .string(id), "targetUrl": .string(targetUrl), "method": "POST",
    "headers": .object(headers.mapValues { .string($0) }),
    "body": body.map { .string($0) } ?? .null, "provider": .string(provider),
  ]
}
