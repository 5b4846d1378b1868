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

/// The error for a provider or module script that cannot be used.
public struct TemplateError: Error, CustomStringConvertible, Sendable {
  public let file: String
  public let message: String
  public var description: String { "\(file): \(message)" }
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

  /// Loads every directory. A file that fails to load is reported in `problems` and skipped.
  public static func load(directories: [String], limits: ScriptLimits) -> (
    ProviderCatalog, problems: [TemplateError]
  ) {
    var modules: [String: (source: String, file: String)] = [:]
    var sources: [(file: String, source: String)] = []
    var problems: [TemplateError] = []
    let files = FileManager.default
    for directory in directories {
      let libDirectory = (directory as NSString).appendingPathComponent("lib")
      for name in ((try? files.contentsOfDirectory(atPath: libDirectory)) ?? []).sorted()
      where name.hasSuffix(".lua") {
        let path = (libDirectory as NSString).appendingPathComponent(name)
        guard let source = try? String(contentsOfFile: path, encoding: .utf8) else {
          problems.append(TemplateError(file: path, message: "cannot read file"))
          continue
        }
        modules["lib." + String(name.dropLast(4))] = (source, path)
      }
      for name in ((try? files.contentsOfDirectory(atPath: directory)) ?? []).sorted()
      where name.hasSuffix(".lua") {
        let path = (directory as NSString).appendingPathComponent(name)
        guard let source = try? String(contentsOfFile: path, encoding: .utf8) else {
          problems.append(TemplateError(file: path, message: "cannot read file"))
          continue
        }
        sources.append((path, source))
      }
    }

    var templates: [String: ProviderTemplate] = [:]
    let runtime: LuaRuntime
    do {
      runtime = try LuaRuntime(limits: limits, log: { _, _, _ in })
      for (name, module) in modules {
        try runtime.addModule(name: name, source: module.source, chunkName: module.file)
      }
    } catch {
      problems.append(TemplateError(file: "lib", message: error.message))
      return (ProviderCatalog(templates: [:], modules: modules), problems)
    }
    for (file, source) in sources {
      do {
        let template = try validate(
          file: file, source: source, runtime: runtime, previous: { templates[$0] })
        templates[template.id] = template
      } catch let error as TemplateError {
        problems.append(error)
      } catch {
        problems.append(TemplateError(file: file, message: "\(error)"))
      }
    }
    return (ProviderCatalog(templates: templates, modules: modules), problems)
  }

  private static func validate(
    file: String, source: String, runtime: LuaRuntime,
    previous: (String) -> ProviderTemplate?
  ) throws -> ProviderTemplate {
    let loaded: LoadedScript
    do {
      loaded = try runtime.loadScript(key: "check:" + file, source: source, chunkName: file)
    } catch {
      throw TemplateError(file: file, message: error.message)
    }
    let metadata = (try? JSONValue.parse(loaded.metadataJSON)) ?? .object([:])
    guard let fields = metadata.objectValue else {
      throw TemplateError(file: file, message: "the script must return a table")
    }
    for key in fields.keys.sorted() where !knownFields.contains(key) {
      throw TemplateError(
        file: file,
        message:
          "unknown field '\(key)'; allowed fields are \(knownFields.sorted().joined(separator: ", "))"
      )
    }
    for hook in loaded.hooks where !knownHooks.contains(hook) {
      throw TemplateError(
        file: file,
        message: "unknown hook '\(hook)'; hooks are \(knownHooks.sorted().joined(separator: ", "))")
    }
    guard let id = fields["id"]?.stringValue, isValidID(id) else {
      throw TemplateError(
        file: file, message: "field 'id' must be a string of lowercase letters, digits and '-'")
    }
    guard let name = fields["name"]?.stringValue, !name.isEmpty else {
      throw TemplateError(file: file, message: "field 'name' must be a non-empty string")
    }
    for hook in requiredHooks where !loaded.hooks.contains(hook) {
      throw TemplateError(file: file, message: "hook '\(hook)' is missing")
    }
    guard let pollConfig = fields["pollConfig"], pollConfig.objectValue != nil else {
      throw TemplateError(file: file, message: "field 'pollConfig' must be a table")
    }
    if let problem = PollConfigRules.problem(in: pollConfig, requireURLTemplate: false) {
      throw TemplateError(file: file, message: "pollConfig: \(problem)")
    }
    var limits = ProviderTemplate.defaultLimits
    if let declared = fields["limits"] {
      guard let parsed = ProviderLimits(declared),
        Set(declared.objectValue?.keys.map { $0 } ?? []).isSubset(of: [
          "concurrency", "requestsPerSecond",
        ])
      else {
        throw TemplateError(
          file: file,
          message:
            "field 'limits' must be {concurrency = N, requestsPerSecond = R} with N >= 1 and R > 0"
        )
      }
      limits = parsed
    }
    return ProviderTemplate(
      id: id, name: name, description: fields["description"]?.stringValue ?? "",
      pollConfig: pollConfig, file: file, overrides: previous(id)?.file,
      resubmit: fields["resubmit"]?.boolValue ?? false, hooks: loaded.hooks, limits: limits,
      source: source)
  }

  static func isValidID(_ id: String) -> Bool {
    !id.isEmpty && id.count <= 64
      && id.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" }
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
    guard let fields = config.objectValue else { return "must be a JSON object" }
    for key in fields.keys.sorted() where !keys.contains(key) {
      return "unknown key '\(key)'; allowed keys are \(keys.sorted().joined(separator: ", "))"
    }
    if requireURLTemplate {
      for key in ["urlTemplate", "statusPath", "doneValues", "failValues"] where fields[key] == nil
      {
        return "required key '\(key)' is missing"
      }
    }
    for key in ["urlTemplate", "statusPath", "resultPath", "resultUrlTemplate", "errorPath"] {
      if let value = fields[key], value.stringValue == nil {
        return "'\(key)' must be a string"
      }
    }
    for key in ["doneValues", "failValues"] {
      if let value = fields[key] {
        guard let items = value.arrayValue,
          items.allSatisfy({ $0.stringValue != nil || $0.intValue != nil })
        else { return "'\(key)' must be an array of strings" }
      }
    }
    if let interval = fields["interval"] {
      guard let seconds = interval.doubleValue, seconds >= 0.1, seconds <= 3600 else {
        return "'interval' must be a number of seconds between 0.1 and 3600"
      }
    }
    if let duration = fields["maxDuration"] {
      guard let seconds = duration.doubleValue, seconds >= 1, seconds <= 7 * 86400 else {
        return "'maxDuration' must be a number of seconds between 1 and 604800"
      }
    }
    if let forward = fields["forwardAuth"], forward.boolValue == nil {
      return "'forwardAuth' must be true or false"
    }
    return nil
  }
}
