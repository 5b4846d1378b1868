import Engine
import Foundation
import LuaRuntime
import Plugins
import ScriptTools
import Support
import Testing

/// A valid template that needs no module; the rejection cases below each change one line.
let tinyTemplate = """
  return {
    id = "tiny",
    name = "Tiny v1",
    description = "A template for tests.",
    pollConfig = { interval = 1 },
    on_submit = function(ctx) return { state = "polling", job = {} } end,
    poll = function(ctx) return { method = "GET", url = ctx.task.targetUrl } end,
    on_poll = function(ctx) return { state = "completed", result = "v1" } end,
  }
  """

/// Writes `source` to `directory/name` and returns the path.
@discardableResult
func writeScript(_ directory: String, _ name: String, _ source: String) throws -> String {
  let path = (directory as NSString).appendingPathComponent(name)
  try FileManager.default.createDirectory(
    atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
  try source.write(toFile: path, atomically: true, encoding: .utf8)
  return path
}

struct RejectionCase: CustomStringConvertible, Sendable {
  let name: String
  let replace: String
  let with: String
  let field: String?
  let line: Int?
  let message: String

  var description: String { name }
}

@Suite struct ScriptCatalogTests {
  static let rejections: [RejectionCase] = [
    RejectionCase(
      name: "syntax error", replace: "name = \"Tiny v1\",", with: "name = \"Tiny v1\"",
      field: nil, line: 4, message: "'}' expected"),
    RejectionCase(
      name: "error while loading", replace: "return {", with: "local x = nil\nx.y = 1\nreturn {",
      field: nil, line: 2, message: "attempt to index a nil value"),
    RejectionCase(
      name: "unknown field", replace: "name = \"Tiny v1\",",
      with: "name = \"Tiny v1\", colour = 1,",
      field: "colour", line: 3, message: "unknown field"),
    RejectionCase(
      name: "unknown hook", replace: "  on_poll =",
      with: "  on_finish = function() end,\n  on_poll =",
      field: "on_finish", line: 8, message: "unknown hook"),
    RejectionCase(
      name: "hook that is not a function", replace: "  poll = function(ctx)",
      with: "  poll = 5, unused = function(ctx)", field: nil, line: nil,
      message: "field 'poll' must be a function, got number"),
    RejectionCase(
      name: "invalid id", replace: "id = \"tiny\"", with: "id = \"Tiny Template\"", field: "id",
      line: 2, message: "lowercase letters"),
    RejectionCase(
      name: "missing name", replace: "name = \"Tiny v1\",", with: "", field: "name", line: nil,
      message: "must be a non-empty string"),
    RejectionCase(
      name: "description not a string", replace: "description = \"A template for tests.\"",
      with: "description = 5", field: "description", line: 4, message: "must be a string"),
    RejectionCase(
      name: "resubmit not a boolean", replace: "name = \"Tiny v1\",",
      with: "name = \"Tiny v1\", resubmit = \"yes\",", field: "resubmit", line: 3,
      message: "must be true or false"),
    RejectionCase(
      name: "required hook missing",
      replace: "  on_poll = function(ctx) return { state = \"completed\", result = \"v1\" } end,\n",
      with: "", field: "on_poll", line: nil,
      message: "required hook is missing"),
    RejectionCase(
      name: "pollConfig not a table", replace: "pollConfig = { interval = 1 }",
      with: "pollConfig = \"fast\"", field: "pollConfig", line: 5, message: "must be a table"),
    RejectionCase(
      name: "pollConfig unknown key", replace: "pollConfig = { interval = 1 }",
      with: "pollConfig = { interval = 1,\n bogus = true }", field: "pollConfig.bogus", line: 6,
      message: "unknown key 'bogus'"),
    RejectionCase(
      name: "pollConfig interval out of range", replace: "interval = 1",
      with: "interval = 0", field: "pollConfig.interval", line: 5,
      message: "between 0.1 and 3600"),
    RejectionCase(
      name: "pollConfig doneValues not a list", replace: "interval = 1",
      with: "interval = 1, doneValues = \"done\"", field: "pollConfig.doneValues", line: 5,
      message: "must be an array of strings"),
  ]

  @Test(arguments: rejections)
  func templateRejectionNamesFileFieldLine(_ rejection: RejectionCase) throws {
    #expect(tinyTemplate.contains(rejection.replace), "case does not apply")
    let directory = temporaryDirectory("check")
    let file = try writeScript(
      directory, "tiny.lua",
      tinyTemplate.replacingOccurrences(of: rejection.replace, with: rejection.with))

    let problems = ScriptChecks.providers(files: [file], moduleDirectories: [])
    let problem = try #require(problems.first, "no problem reported")
    #expect(problems.count == 1, "\(problems)")
    #expect(problem.file == file)
    #expect(problem.field == rejection.field)
    #expect(problem.line == rejection.line)
    #expect(problem.message.contains(rejection.message), "message was: \(problem.message)")
  }

  @Test func everyProblemOfOneFileReported() throws {
    let directory = temporaryDirectory("check")
    let source =
      tinyTemplate
      .replacingOccurrences(of: "id = \"tiny\"", with: "id = 7")
      .replacingOccurrences(of: "interval = 1", with: "interval = 1, bogus = 1")
    let file = try writeScript(directory, "tiny.lua", source)
    let fields = ScriptChecks.providers(files: [file], moduleDirectories: []).map(\.field)
    #expect(fields == ["id", "pollConfig.bogus"])
  }

  @Test func validTemplateHasNoProblems() throws {
    let file = try writeScript(temporaryDirectory("check"), "tiny.lua", tinyTemplate)
    #expect(ScriptChecks.providers(files: [file], moduleDirectories: []).isEmpty)
  }

  @Test func builtinTemplatesAndModulePassCheck() {
    let root = providersDirectory.path
    let files = ScriptFiles.luaFiles(in: root) + [root + "/lib/pollconfig.lua"]
    #expect(files.count == 7)
    #expect(ScriptChecks.providers(files: files, moduleDirectories: [root]).isEmpty)
  }

  @Test func laterDirectoryOverridesEarlierTemplate() throws {
    let first = temporaryDirectory("layer")
    let second = temporaryDirectory("layer")
    let firstFile = try writeScript(first, "tiny.lua", tinyTemplate)
    let secondFile = try writeScript(
      second, "tiny-copy.lua", tinyTemplate.replacingOccurrences(of: "Tiny v1", with: "Tiny v2"))
    let (catalog, problems) = ProviderCatalog.load(
      directories: [first, second], limits: ScriptLimits())
    #expect(problems.isEmpty)
    #expect(catalog.templates["tiny"]?.name == "Tiny v2")
    #expect(catalog.templates["tiny"]?.file == secondFile)
    #expect(catalog.templates["tiny"]?.overrides == firstFile)
  }

  @Test func reloadKeepsPreviousVersionOfBrokenFile() throws {
    let directory = temporaryDirectory("reload")
    let file = try writeScript(directory, "tiny.lua", tinyTemplate)
    let (first, _) = ProviderCatalog.load(directories: [directory], limits: ScriptLimits())
    #expect(first.templates["tiny"]?.name == "Tiny v1")

    try writeScript(directory, "tiny.lua", "return {\n  id = \"tiny\"\n  oops\n}")
    let (second, problems) = ProviderCatalog.load(
      directories: [directory], limits: ScriptLimits(), previous: first)
    #expect(second.templates["tiny"]?.name == "Tiny v1")
    #expect(problems.map(\.file) == [file])
    #expect(problems.first?.line == 3)
  }

  @Test func reloadDropsRemovedFile() throws {
    let directory = temporaryDirectory("reload")
    try writeScript(directory, "tiny.lua", tinyTemplate)
    let other = try writeScript(
      directory, "other.lua", tinyTemplate.replacingOccurrences(of: "\"tiny\"", with: "\"other\""))
    let (first, _) = ProviderCatalog.load(directories: [directory], limits: ScriptLimits())
    #expect(first.templates.keys.sorted() == ["other", "tiny"])

    try FileManager.default.removeItem(atPath: other)
    let (second, problems) = ProviderCatalog.load(
      directories: [directory], limits: ScriptLimits(), previous: first)
    #expect(problems.isEmpty)
    #expect(second.templates.keys.sorted() == ["tiny"])
  }

  @Test func reloadKeepsPreviousVersionOfBrokenModule() throws {
    let directory = temporaryDirectory("reload")
    try writeScript(directory, "lib/answer.lua", "return { value = 42 }")
    let usingModule = tinyTemplate.replacingOccurrences(
      of: "return {", with: "local answer = require(\"lib.answer\")\nreturn {")
    try writeScript(directory, "tiny.lua", usingModule)
    let (first, firstProblems) = ProviderCatalog.load(
      directories: [directory], limits: ScriptLimits())
    #expect(firstProblems.isEmpty)

    let module = try writeScript(directory, "lib/answer.lua", "return { value = }")
    let (second, problems) = ProviderCatalog.load(
      directories: [directory], limits: ScriptLimits(), previous: first)
    #expect(problems.map(\.file) == [module])
    #expect(problems.first?.line == 1)
    #expect(second.templates["tiny"] != nil)
    #expect(second.files.contains(module))
  }

  @Test func fieldLineFoundBySearch() {
    let source = "local x = 1\nreturn {\n  [\"id\"] = 'a',\n  name == 3,\n  name = 'b',\n}"
    #expect(ScriptFiles.line(of: "id", in: source) == 3)
    #expect(ScriptFiles.line(of: "name", in: source) == 5)
    #expect(ScriptFiles.line(of: "absent", in: source) == nil)
  }
}

@Suite struct PluginCatalogTests {
  static let validPlugin = """
    return {
      name = "tiny-plugin",
      description = "A plugin for tests.",
      task_finished = function(ctx) return nil end,
    }
    """

  static let rejections: [RejectionCase] = [
    RejectionCase(
      name: "no hook", replace: "  task_finished = function(ctx) return nil end,\n", with: "",
      field: nil, line: nil, message: "defines no hook"),
    RejectionCase(
      name: "unknown hook", replace: "task_finished = function",
      with: "status_changed = function() end, task_done = function",
      field: "task_done", line: 4, message: "unknown hook"),
    RejectionCase(
      name: "hook that is not a function", replace: "task_finished = function(ctx) return nil end",
      with: "task_finished = true, status_changed = function() end", field: "task_finished",
      line: 4, message: "must be a function"),
    RejectionCase(
      name: "unknown field", replace: "description =", with: "colour = 1, description =",
      field: "colour", line: 3, message: "unknown field"),
    RejectionCase(
      name: "invalid name", replace: "\"tiny-plugin\"", with: "\"Tiny Plugin\"", field: "name",
      line: 2, message: "lowercase letters"),
    RejectionCase(
      name: "syntax error", replace: "description = \"A plugin for tests.\",",
      with: "description = \"A plugin for tests.\"", field: nil, line: 4, message: "'}' expected"),
  ]

  @Test(arguments: rejections)
  func pluginRejectionNamesFileFieldLine(_ rejection: RejectionCase) throws {
    #expect(Self.validPlugin.contains(rejection.replace), "case does not apply")
    let file = try writeScript(
      temporaryDirectory("plugin"), "tiny-plugin.lua",
      Self.validPlugin.replacingOccurrences(of: rejection.replace, with: rejection.with))
    let problems = ScriptChecks.plugins(files: [file], moduleDirectories: [])
    let problem = try #require(problems.first, "no problem reported")
    #expect(problems.count == 1, "\(problems)")
    #expect(problem.file == file)
    #expect(problem.field == rejection.field)
    #expect(problem.line == rejection.line)
    #expect(problem.message.contains(rejection.message), "message was: \(problem.message)")
  }

  @Test func shippedPluginsPassCheck() {
    let files = ScriptFiles.luaFiles(in: repositoryRoot + "/plugins")
    #expect(files.count == 2)
    #expect(ScriptChecks.plugins(files: files, moduleDirectories: []).isEmpty)
  }

  @Test func laterDirectoryOverridesEarlierPlugin() throws {
    let first = temporaryDirectory("plugin-layer")
    let second = temporaryDirectory("plugin-layer")
    let firstFile = try writeScript(first, "a.lua", Self.validPlugin)
    let secondFile = try writeScript(second, "b.lua", Self.validPlugin)
    let (catalog, problems) = PluginCatalog.load(
      directories: [first, second], limits: ScriptLimits())
    #expect(problems.isEmpty)
    #expect(catalog.plugins["tiny-plugin"]?.file == secondFile)
    #expect(catalog.plugins["tiny-plugin"]?.overrides == firstFile)
  }

  @Test func reloadKeepsPreviousPluginVersion() throws {
    let directory = temporaryDirectory("plugin-reload")
    let file = try writeScript(directory, "tiny.lua", Self.validPlugin)
    let (first, _) = PluginCatalog.load(directories: [directory], limits: ScriptLimits())
    try writeScript(directory, "tiny.lua", "return { name = ")
    let (second, problems) = PluginCatalog.load(
      directories: [directory], limits: ScriptLimits(), previous: first)
    #expect(problems.map(\.file) == [file])
    #expect(second.plugins["tiny-plugin"]?.file == file)
  }
}
