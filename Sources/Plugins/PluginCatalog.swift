import Engine
import Foundation
import LuaRuntime
import Support

/// A plugin loaded from a Lua file.
public struct PluginScript: Sendable {
  public let name: String
  public let description: String
  /// The hook functions the script defines, sorted.
  public let hooks: [String]
  /// The file the plugin came from.
  public let file: String
  /// The file of the plugin with the same name that this one replaced, if any.
  public let overrides: String?
  let source: String

  func replacing(overrides: String?) -> PluginScript {
    PluginScript(
      name: name, description: description, hooks: hooks, file: file, overrides: overrides,
      source: source)
  }
}

/// Loads plugin scripts and their shared `lib/` modules from layered directories, the built-in
/// `plugins/` first and then each extra directory. A later plugin with the same name replaces
/// the earlier one.
public struct PluginCatalog: Sendable {
  public let plugins: [String: PluginScript]
  let modules: [String: (source: String, file: String)]

  public static let knownHooks: Set<String> = [
    "task_created", "status_changed", "task_finished", "downloads_finished", "before_request",
    "after_delivery",
  ]
  static let knownFields: Set<String> = ["name", "description"]

  public init() {
    plugins = [:]
    modules = [:]
  }

  init(plugins: [String: PluginScript], modules: [String: (source: String, file: String)]) {
    self.plugins = plugins
    self.modules = modules
  }

  public var sortedPlugins: [PluginScript] {
    plugins.values.sorted { $0.name < $1.name }
  }

  /// Loads every directory. A rejected file is reported in `problems`; on a reload (`previous`
  /// given) it keeps the version `previous` loaded from the same file.
  public static func load(
    directories: [String], limits: ScriptLimits, previous: PluginCatalog? = nil
  ) -> (PluginCatalog, problems: [TemplateError]) {
    let found = ScriptFiles.find(in: directories)
    var problems = found.problems
    let runtime: LuaRuntime
    do {
      runtime = try LuaRuntime(limits: limits, log: { _, _, _ in })
      for (name, module) in found.modules {
        try runtime.addModule(name: name, source: module.source, chunkName: module.file)
      }
    } catch {
      problems.append(TemplateError(file: "plugins", message: error.message))
      return (previous ?? PluginCatalog(), problems)
    }
    let previousByFile = Dictionary(
      (previous?.plugins.values).map { $0.map { ($0.file, $0) } } ?? [],
      uniquingKeysWith: { first, _ in first })
    var plugins: [String: PluginScript] = [:]
    for (file, source) in found.sources {
      switch check(file: file, source: source, runtime: runtime) {
      case .success(let plugin):
        plugins[plugin.name] = plugin.replacing(overrides: plugins[plugin.name]?.file)
      case .failure(let failure):
        problems += failure.problems
        if let kept = previousByFile[file] {
          plugins[kept.name] = kept.replacing(overrides: plugins[kept.name]?.file)
        }
      }
    }
    return (PluginCatalog(plugins: plugins, modules: found.modules), problems)
  }

  /// Loads and validates one plugin script against the modules already in `runtime`.
  public static func check(file: String, source: String, runtime: LuaRuntime) -> Result<
    PluginScript, TemplateProblems
  > {
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
    let fields = (try? JSONValue.parse(loaded.metadataJSON))?.objectValue ?? [:]
    for key in fields.keys.sorted() where !knownFields.contains(key) {
      if knownHooks.contains(key) {
        reject(key, "must be a function")
      } else {
        reject(key, "unknown field; allowed fields are description, name and the hooks")
      }
    }
    for hook in loaded.hooks where !knownHooks.contains(hook) {
      reject(hook, "unknown hook; hooks are \(knownHooks.sorted().joined(separator: ", "))")
    }
    let name = fields["name"]?.stringValue
    if name == nil || !isValidName(name!) {
      reject("name", "must be a string of 1 to 64 lowercase letters, digits and '-'")
    }
    if let description = fields["description"], description.stringValue == nil {
      reject("description", "must be a string")
    }
    if !loaded.hooks.contains(where: knownHooks.contains) {
      reject(
        nil,
        "the plugin defines no hook; define at least one of \(knownHooks.sorted().joined(separator: ", "))"
      )
    }
    guard problems.isEmpty, let name else { return .failure(problems) }
    return .success(
      PluginScript(
        name: name, description: fields["description"]?.stringValue ?? "", hooks: loaded.hooks,
        file: file, overrides: nil, source: source))
  }

  static func isValidName(_ name: String) -> Bool {
    !name.isEmpty && name.count <= 64
      && name.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" }
  }
}
