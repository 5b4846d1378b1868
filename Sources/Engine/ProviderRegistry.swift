import Foundation
import LuaRuntime
import Support

/// A provider template loaded from a Lua file.
public struct ProviderTemplate: Sendable {
  public let id: String
  public let name: String
  public let description: String
  /// The template's pollConfig in the hosted API's shape.
  public let pollConfig: JSONValue
  /// The file the template came from.
  public let file: String
  /// The file of the template with the same id that this one replaced, if any.
  public let overrides: String?
  /// Whether a submit whose outcome is unknown after a crash may be sent again.
  public let resubmit: Bool
  public let hooks: [String]
  /// The template's default limits on requests to its provider.
  public let limits: ProviderLimits
  let source: String

  /// Limits for templates that declare none, and for custom pollConfigs (per target host).
  public static let defaultLimits = ProviderLimits(concurrency: 32, requestsPerSecond: 20)

  public var interval: Double { pollConfig["interval"]?.doubleValue ?? 5 }
  public var maxDuration: Double { pollConfig["maxDuration"]?.doubleValue ?? 600 }
}

/// The script key under which the generic pollConfig hooks run custom-pollConfig tasks.
let customTemplateKey = "__custom"

/// Loads provider templates and shared Lua modules from layered directories.
///
/// Directories load in order; a later template with the same id replaces the earlier one, and a
/// `lib/NAME.lua` file becomes the module `lib.NAME` for `require`.
public struct ProviderCatalog: Sendable {
  public let templates: [String: ProviderTemplate]
  /// Module name to (source, file).
  let modules: [String: (source: String, file: String)]

  static let requiredHooks = ["on_submit", "poll", "on_poll"]
  static let knownHooks: Set<String> = [
    "submit", "on_submit", "poll", "on_poll", "on_result", "cancel", "on_cancel",
  ]
  static let knownFields: Set<String> = [
    "id", "name", "description", "pollConfig", "resubmit", "limits",
  ]

  public var sortedTemplates: [ProviderTemplate] {
    templates.values.sorted { $0.id < $1.id }
  }

  /// The files of the loaded templates and modules.
  public var files: [String] {
    (templates.values.map(\.file) + modules.values.map(\.file)).sorted()
  }

  /// Loads every directory. A file that fails to load or validate is reported in `problems`.
  /// When `previous` is given (a reload), a rejected file that `previous` had loaded keeps its
  /// previous version, so one bad edit never takes a working template or module away. A file
  /// that no longer exists is dropped.
  public static func load(
    directories: [String], limits: ScriptLimits, previous: ProviderCatalog? = nil
  ) -> (ProviderCatalog, problems: [TemplateError]) {
    let found = ScriptFiles.find(in: directories)
    var problems = found.problems
    var modules: [String: (source: String, file: String)] = [:]
    for (name, module) in found.modules { modules[name] = module }

    let runtime: LuaRuntime
    do {
      runtime = try LuaRuntime(limits: limits, log: { _, _, _ in })
    } catch {
      problems.append(TemplateError(file: "lib", message: error.message))
      return (ProviderCatalog(templates: previous?.templates ?? [:], modules: modules), problems)
    }
    for name in modules.keys.sorted() {
      guard let module = modules[name] else { continue }
      if let problem = checkModule(name: name, module: module, runtime: runtime) {
        problems.append(problem)
        if let kept = previous?.modules[name], kept.file == module.file {
          modules[name] = kept
          try? runtime.addModule(name: name, source: kept.source, chunkName: kept.file)
        } else {
          modules[name] = nil
        }
      }
    }

    var templates: [String: ProviderTemplate] = [:]
    let previousByFile = Dictionary(
      (previous?.templates.values).map { $0.map { ($0.file, $0) } } ?? [],
      uniquingKeysWith: { first, _ in first })
    for (file, source) in found.sources {
      switch check(file: file, source: source, runtime: runtime, previous: { templates[$0] }) {
      case .success(let template):
        templates[template.id] = template
      case .failure(let failure):
        problems += failure.problems
        if let kept = previousByFile[file] {
          templates[kept.id] = kept.replacing(overrides: templates[kept.id]?.file)
        }
      }
    }
    return (ProviderCatalog(templates: templates, modules: modules), problems)
  }

  /// Loads a module and runs its first `require`, which reports syntax and load errors.
  private static func checkModule(
    name: String, module: (source: String, file: String), runtime: LuaRuntime
  ) -> TemplateError? {
    do {
      try runtime.addModule(name: name, source: module.source, chunkName: module.file)
      let probe = "local _ = require(\"\(name)\") return {}"
      _ = try runtime.loadScript(key: "check-module", source: probe, chunkName: module.file)
      return nil
    } catch {
      return TemplateError(file: module.file, luaMessage: error.message)
    }
  }

  /// Loads and validates one template script against the modules already in `runtime`, and
  /// returns the template or every problem found in it.
  public static func check(
    file: String, source: String, runtime: LuaRuntime,
    previous: (String) -> ProviderTemplate? = { _ in nil }
  ) -> Result<ProviderTemplate, TemplateProblems> {
    let loaded: LoadedScript
    do {
      loaded = try runtime.loadScript(key: "check:" + file, source: source, chunkName: file)
    } catch {
      return .failure(TemplateProblems([TemplateError(file: file, luaMessage: error.message)]))
    }
    var problems = TemplateProblems()
    func reject(_ field: String?, _ message: String) {
      problems.append(
        TemplateError(
          file: file, line: field.flatMap { ScriptFiles.line(of: $0, in: source) }, field: field,
          message: message))
    }
    let metadata = (try? JSONValue.parse(loaded.metadataJSON)) ?? .object([:])
    let fields = metadata.objectValue ?? [:]
    for key in fields.keys.sorted() where !knownFields.contains(key) {
      reject(
        key, "unknown field; allowed fields are \(knownFields.sorted().joined(separator: ", "))")
    }
    for hook in loaded.hooks where !knownHooks.contains(hook) {
      reject(hook, "unknown hook; hooks are \(knownHooks.sorted().joined(separator: ", "))")
    }
    let id = fields["id"]?.stringValue
    if id == nil || !isValidID(id!) {
      reject("id", "must be a string of 1 to 64 lowercase letters, digits and '-'")
    }
    let name = fields["name"]?.stringValue
    if name?.isEmpty ?? true {
      reject("name", "must be a non-empty string")
    }
    if let description = fields["description"], description.stringValue == nil {
      reject("description", "must be a string")
    }
    if let resubmit = fields["resubmit"], resubmit.boolValue == nil {
      reject("resubmit", "must be true or false")
    }
    for hook in requiredHooks where !loaded.hooks.contains(hook) {
      reject(hook, "required hook is missing")
    }
    let pollConfig = fields["pollConfig"] ?? .null
    if pollConfig.objectValue == nil {
      reject("pollConfig", "must be a table")
    } else {
      for problem in PollConfigRules.problems(in: pollConfig, requireURLTemplate: false) {
        problems.append(
          TemplateError(
            file: file, line: ScriptFiles.line(of: problem.key, in: source),
            field: "pollConfig." + problem.key, message: problem.message))
      }
    }
    var limits = ProviderTemplate.defaultLimits
    if let declared = fields["limits"] {
      let keysValid = Set(declared.objectValue?.keys.map { $0 } ?? []).isSubset(of: [
        "concurrency", "requestsPerSecond",
      ])
      if let parsed = ProviderLimits(declared), keysValid {
        limits = parsed
      } else {
        reject(
          "limits",
          "must be {concurrency = N, requestsPerSecond = R} with N >= 1 and R > 0")
      }
    }
    guard problems.isEmpty, let id, let name else { return .failure(problems) }
    return .success(
      ProviderTemplate(
        id: id, name: name, description: fields["description"]?.stringValue ?? "",
        pollConfig: pollConfig, file: file, overrides: previous(id)?.file,
        resubmit: fields["resubmit"]?.boolValue ?? false, hooks: loaded.hooks, limits: limits,
        source: source))
  }

  static func isValidID(_ id: String) -> Bool {
    !id.isEmpty && id.count <= 64
      && id.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" }
  }
}

extension ProviderTemplate {
  /// Returns the same template with another `overrides` value, for one kept across a reload.
  func replacing(overrides: String?) -> ProviderTemplate {
    ProviderTemplate(
      id: id, name: name, description: description, pollConfig: pollConfig, file: file,
      overrides: overrides, resubmit: resubmit, hooks: hooks, limits: limits, source: source)
  }
}

/// The rules a pollConfig must follow, for templates and for custom pollConfigs on tasks.
public enum PollConfigRules {
  static let keys: Set<String> = [
    "urlTemplate", "interval", "statusPath", "doneValues", "failValues", "resultPath",
    "resultUrlTemplate", "errorPath", "forwardAuth", "maxDuration",
  ]

  /// Returns the first problem found, naming the key and the fix, or nil when the pollConfig is
  /// valid.
  public static func problem(in config: JSONValue, requireURLTemplate: Bool) -> String? {
    problems(in: config, requireURLTemplate: requireURLTemplate).first?.message
  }

  /// Returns every problem found, each with the key it is about.
  public static func problems(in config: JSONValue, requireURLTemplate: Bool) -> [(
    key: String, message: String
  )] {
    guard let fields = config.objectValue else { return [("", "must be a JSON object")] }
    var found: [(key: String, message: String)] = []
    for key in fields.keys.sorted() where !keys.contains(key) {
      found.append(
        (key, "unknown key '\(key)'; allowed keys are \(keys.sorted().joined(separator: ", "))"))
    }
    if requireURLTemplate {
      for key in ["urlTemplate", "statusPath", "doneValues", "failValues"] where fields[key] == nil
      {
        found.append((key, "required key '\(key)' is missing"))
      }
    }
    for key in ["urlTemplate", "statusPath", "resultPath", "resultUrlTemplate", "errorPath"] {
      if let value = fields[key], value.stringValue == nil {
        found.append((key, "'\(key)' must be a string"))
      }
    }
    for key in ["doneValues", "failValues"] {
      if let value = fields[key] {
        let items = value.arrayValue ?? []
        if value.arrayValue == nil
          || !items.allSatisfy({ $0.stringValue != nil || $0.intValue != nil })
        {
          found.append((key, "'\(key)' must be an array of strings"))
        }
      }
    }
    if let interval = fields["interval"] {
      if !(interval.doubleValue.map { $0 >= 0.1 && $0 <= 3600 } ?? false) {
        found.append(("interval", "'interval' must be a number of seconds between 0.1 and 3600"))
      }
    }
    if let duration = fields["maxDuration"] {
      if !(duration.doubleValue.map { $0 >= 1 && $0 <= 7 * 86400 } ?? false) {
        found.append(
          ("maxDuration", "'maxDuration' must be a number of seconds between 1 and 604800"))
      }
    }
    if let forward = fields["forwardAuth"], forward.boolValue == nil {
      found.append(("forwardAuth", "'forwardAuth' must be true or false"))
    }
    return found
  }
}
