import Foundation
import MockProvider
import Support
import Testing

/// A template for the mock's Replicate API whose `on_poll` is given as Lua source.
func replicateTemplate(id: String, name: String, onPoll: String) -> String {
  """
  local pollconfig = require("lib.pollconfig")

  local function on_poll(ctx)
  \(onPoll)
  end

  return pollconfig.template({
    id = "\(id)",
    name = "\(name)",
    pollConfig = { urlTemplate = "{startResult.body.urls.get}", interval = 5, maxDuration = 600 },
    on_poll = on_poll,
  })
  """
}

/// Reload, in-flight tasks and script limits, against a real service and the mock provider.
@Suite(.serialized) struct EndToEndScriptTests {
  static let runningForever = "  return { state = \"running\", status = \"v1\" }"
  static let completesV2 = "  return { state = \"completed\", result = \"v2\" }"

  func replicateTask(_ provider: String, mock: MockProviderServer, scenario: String = "polls=2")
    -> JSONValue
  {
    [
      "targetUrl": .string(mock.baseURL + "/replicate/v1/predictions"),
      "headers": [
        "Authorization": "Bearer r8_script_secret_901", "X-Mock-Scenario": .string(scenario),
      ],
      "body": #"{"version": "abc", "input": {"prompt": "x"}}"#,
      "provider": .string(provider),
    ]
  }

  /// Waits until the task has polled at least once.
  func waitForPolling(_ service: TestService, _ id: String) async throws {
    for _ in 0..<100 {
      let (_, json) = try await service.call("GET", "/v1/tasks/\(id)")
      if json["task"]?["pollCount"]?.intValue ?? 0 >= 1 { return }
      try await Task.sleep(nanoseconds: 20_000_000)
    }
    Issue.record("task \(id) never polled")
  }

  func withService(
    providers: [String: String], interval: Double = 0,
    _ body: (TestService, MockProviderServer, String) async throws -> Void
  ) async throws {
    let directory = temporaryDirectory("providers")
    for (name, source) in providers { try writeScript(directory, name, source) }
    let mock = MockProviderServer()
    try mock.start()
    let service = try TestService(
      providerDirectories: [directory], scriptReloadInterval: interval)
    defer {
      service.stop()
      mock.stop()
    }
    try await body(service, mock, directory)
  }

  @Test func inFlightTaskRunsNextHookWithNewVersion() async throws {
    let v1 = replicateTemplate(id: "inflight", name: "In flight v1", onPoll: Self.runningForever)
    try await withService(providers: ["inflight.lua": v1]) { service, mock, directory in
      let id = try await service.createTask(replicateTask("inflight", mock: mock))
      try await waitForPolling(service, id)

      let v2 = replicateTemplate(id: "inflight", name: "In flight v2", onPoll: Self.completesV2)
      try writeScript(directory, "inflight.lua", v2)
      let report = service.service.reloadScripts()
      #expect(report.problems.isEmpty)
      #expect(report.providers.contains("inflight"))

      let task = try await service.waitForEnd(id, timeout: 20)
      #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
      #expect(task["result"]?.stringValue == "v2")
      let (_, provider) = try await service.call("GET", "/v1/providers/inflight")
      #expect(provider["provider"]?["name"]?.stringValue == "In flight v2")
    }
  }

  @Test func inFlightTaskOfRemovedTemplateFails() async throws {
    let v1 = replicateTemplate(id: "inflight", name: "In flight v1", onPoll: Self.runningForever)
    try await withService(providers: ["inflight.lua": v1]) { service, mock, directory in
      let id = try await service.createTask(replicateTask("inflight", mock: mock))
      try await waitForPolling(service, id)

      try FileManager.default.removeItem(atPath: directory + "/inflight.lua")
      let report = service.service.reloadScripts()
      #expect(!report.providers.contains("inflight"))

      let task = try await service.waitForEnd(id, timeout: 20)
      #expect(task["status"]?.stringValue == "failed", "\(task.serialized())")
      #expect(task["errorCode"]?.stringValue == "script_error")
      let error = task["error"]?.stringValue ?? ""
      #expect(error.contains("no script is loaded with key 'inflight'"), "error was: \(error)")
      let (status, _) = try await service.call("GET", "/v1/providers/inflight")
      #expect(status == 404)
    }
  }

  @Test func brokenEditKeepsPreviousVersionServing() async throws {
    let v1 = replicateTemplate(id: "inflight", name: "In flight v1", onPoll: Self.runningForever)
    try await withService(providers: ["inflight.lua": v1]) { service, mock, directory in
      let id = try await service.createTask(replicateTask("inflight", mock: mock))
      try await waitForPolling(service, id)

      let file = try writeScript(
        directory, "inflight.lua", "return {\n  id = \"inflight\",\n  (\n}")
      let report = service.service.reloadScripts()
      let problem = try #require(report.problems.first)
      #expect(problem.file == file)
      #expect(problem.line == 4)
      let logs = service.logLines.all.joined(separator: "\n")
      #expect(logs.contains("script rejected"))
      #expect(logs.contains("file=\(file) line=4"))

      let (status, provider) = try await service.call("GET", "/v1/providers/inflight")
      #expect(status == 200)
      #expect(provider["provider"]?["name"]?.stringValue == "In flight v1")
      let pollsBefore = try await service.call("GET", "/v1/tasks/\(id)").json["task"]?["pollCount"]
      try await Task.sleep(nanoseconds: 300_000_000)
      let (_, json) = try await service.call("GET", "/v1/tasks/\(id)")
      #expect(json["task"]?["status"]?.stringValue == "polling")
      #expect(json["task"]?["pollCount"]?.intValue ?? 0 > pollsBefore?.intValue ?? 0)

      try writeScript(
        directory, "inflight.lua",
        replicateTemplate(id: "inflight", name: "In flight v2", onPoll: Self.completesV2))
      #expect(service.service.reloadScripts().problems.isEmpty)
      let task = try await service.waitForEnd(id, timeout: 20)
      #expect(task["result"]?.stringValue == "v2", "\(task.serialized())")
    }
  }

  @Test func periodicCheckPicksUpAddedAndRemovedFiles() async throws {
    try await withService(providers: [:], interval: 0.2) { service, _, directory in
      let file = try writeScript(
        directory, "added.lua",
        replicateTemplate(id: "added", name: "Added", onPoll: Self.completesV2))
      #expect(try await waitForProviderStatus(service, "added", 200))

      try FileManager.default.removeItem(atPath: file)
      #expect(try await waitForProviderStatus(service, "added", 404))
    }
  }

  func waitForProviderStatus(_ service: TestService, _ id: String, _ expected: Int) async throws
    -> Bool
  {
    for _ in 0..<50 {
      if try await service.call("GET", "/v1/providers/\(id)").status == expected { return true }
      try await Task.sleep(nanoseconds: 100_000_000)
    }
    return false
  }

  @Test func runawayHooksFailOnlyTheirTasks() async throws {
    let loop = replicateTemplate(
      id: "loop", name: "Loops forever", onPoll: "  while true do end")
    let hog = replicateTemplate(
      id: "hog", name: "Allocates without bound",
      onPoll: """
          local parts = {}
          local i = 0
          while true do
            i = i + 1
            parts[i] = string.rep("x", 1024) .. i
          end
        """)
    try await withService(providers: ["loop.lua": loop, "hog.lua": hog]) {
      service, mock, directory in
      let loopId = try await service.createTask(replicateTask("loop", mock: mock))
      let hogId = try await service.createTask(replicateTask("hog", mock: mock))
      let fineId = try await service.createTask(replicateTask("replicate", mock: mock))

      let looped = try await service.waitForEnd(loopId, timeout: 30)
      #expect(looped["status"]?.stringValue == "failed", "\(looped.serialized())")
      #expect(looped["errorCode"]?.stringValue == "script_error")
      let loopError = looped["error"]?.stringValue ?? ""
      #expect(
        loopError.contains("\(directory)/loop.lua:4: script exceeded its budget of"),
        "error was: \(loopError)")

      let hogged = try await service.waitForEnd(hogId, timeout: 30)
      #expect(hogged["status"]?.stringValue == "failed", "\(hogged.serialized())")
      #expect(hogged["errorCode"]?.stringValue == "script_error")
      let hogError = hogged["error"]?.stringValue ?? ""
      #expect(hogError.contains("\(directory)/hog.lua:"), "error was: \(hogError)")
      #expect(hogError.contains("script exceeded the memory limit of"), "error was: \(hogError)")

      let fine = try await service.waitForEnd(fineId, timeout: 30)
      #expect(fine["status"]?.stringValue == "completed", "\(fine.serialized())")
    }
  }
}
