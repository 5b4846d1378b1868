import Engine
import Foundation
import LuaRuntime
import Plugins
import Storage
import Support

/// The outcome of one reload: the scripts in force afterwards and the files it rejected.
public struct ScriptReloadReport: Sendable {
  /// The provider ids in force after the reload.
  public var providers: [String]
  /// The plugin names in force after the reload.
  public var plugins: [String]
  /// Every rejected file; each one's previous version, if any, keeps serving.
  public var problems: [TemplateError]
}

/// Loads provider templates and plugins, swaps in new versions on reload, and watches their
/// directories for changes.
///
/// A reload works per file. A script that fails to load or validate is logged with its file,
/// line and reason, and the version loaded before keeps serving. A removed file removes its
/// template or plugin.
final class ScriptReloader: @unchecked Sendable {
  let providerDirectories: [String]
  let pluginDirectories: [String]
  let limits: ScriptLimits
  let logger: Logger
  /// Serializes reloads and guards the fields below.
  private let lock = NSLock()
  private var engine: Engine?
  private(set) var pluginHost: PluginHost?
  private var fingerprint: [String: String] = [:]
  private var timer: DispatchSourceTimer?

  init(
    providerDirectories: [String], pluginDirectories: [String], limits: ScriptLimits,
    logger: Logger
  ) {
    self.providerDirectories = providerDirectories
    self.pluginDirectories = pluginDirectories
    self.limits = limits
    self.logger = logger
    self.fingerprint = ScriptFiles.fingerprint(of: providerDirectories + pluginDirectories)
  }

  /// Loads the plugins and installs them on the engine; call before `engine.start()`.
  func attach(
    engine: Engine, configuration: [String: JSONValue], settings: PluginHostSettings,
    store: TaskStore
  ) throws {
    let (catalog, problems) = PluginCatalog.load(directories: pluginDirectories, limits: limits)
    report(problems, reloading: false)
    let host = try PluginHost(
      catalog: catalog, configuration: configuration, settings: settings, store: store,
      logger: logger)
    engine.plugins = host
    lock.withLock {
      self.engine = engine
      self.pluginHost = host
    }
    for plugin in catalog.sortedPlugins {
      var fields = [("plugin", plugin.name), ("file", plugin.file)]
      fields.append(("enabled", host.enabledPlugins.contains(plugin.name) ? "true" : "false"))
      logger.debug("plugin loaded", fields)
    }
  }

  /// Reloads every provider and plugin directory now.
  func reload() -> ScriptReloadReport {
    lock.lock()
    defer { lock.unlock() }
    fingerprint = ScriptFiles.fingerprint(of: providerDirectories + pluginDirectories)
    var problems: [TemplateError] = []
    var providers: [String] = []
    if let engine {
      let (catalog, found) = ProviderCatalog.load(
        directories: providerDirectories, limits: limits, previous: engine.catalog)
      problems += found
      do {
        try engine.replaceScripts(catalog)
      } catch {
        logger.error(
          "cannot start the reloaded provider scripts; the previous set keeps serving",
          [("error", "\(error)")])
      }
      providers = engine.catalog.templates.keys.sorted()
    }
    var plugins: [String] = []
    if let pluginHost {
      let (catalog, found) = PluginCatalog.load(
        directories: pluginDirectories, limits: limits, previous: pluginHost.catalog)
      problems += found
      do {
        try pluginHost.replace(catalog)
      } catch {
        logger.error(
          "cannot start the reloaded plugins; the previous set keeps serving",
          [("error", error.message)])
      }
      plugins = pluginHost.catalog.plugins.keys.sorted()
    }
    report(problems, reloading: true)
    logger.info(
      "scripts reloaded",
      [
        ("providers", providers.joined(separator: ",")),
        ("plugins", plugins.joined(separator: ",")),
        ("rejected", String(problems.count)),
      ])
    return ScriptReloadReport(providers: providers, plugins: plugins, problems: problems)
  }

  /// Checks the files' modification times and sizes every `interval` seconds and reloads when
  /// any script or module was added, changed or removed. An interval of 0 turns the check off.
  func startWatching(interval: Double) {
    guard interval > 0 else { return }
    let source = DispatchSource.makeTimerSource(queue: .global())
    source.schedule(deadline: .now() + interval, repeating: interval)
    source.setEventHandler { [weak self] in self?.reloadIfChanged() }
    lock.withLock { timer = source }
    source.resume()
  }

  func stop() {
    let running = lock.withLock { () -> DispatchSourceTimer? in
      defer { timer = nil }
      return timer
    }
    running?.cancel()
    pluginHost?.stop()
  }

  private func reloadIfChanged() {
    let current = ScriptFiles.fingerprint(of: providerDirectories + pluginDirectories)
    guard lock.withLock({ current != fingerprint }) else { return }
    logger.info("script files changed; reloading")
    _ = reload()
  }

  func report(_ problems: [TemplateError], reloading: Bool) {
    let message =
      reloading
      ? "script rejected; the version loaded before, if any, keeps serving" : "script rejected"
    for problem in problems {
      var fields = [("file", problem.file)]
      if let line = problem.line { fields.append(("line", String(line))) }
      if let field = problem.field { fields.append(("field", field)) }
      fields.append(("error", problem.message))
      logger.error(message, fields)
    }
  }
}

extension Service {
  /// Reloads the provider templates and plugins from their directories now, as SIGHUP and
  /// the periodic check do.
  @discardableResult
  public func reloadScripts() -> ScriptReloadReport {
    scriptReloader.reload()
  }

  /// The running plugin host; nil before `start()`.
  public var pluginHost: PluginHost? { scriptReloader.pluginHost }

  /// Returns the built-in `plugins/` folder, the `plugins` sibling of the built-in providers
  /// folder, or nil when it does not exist.
  static func builtinPluginsDirectory(besides providers: String?) -> String? {
    guard let providers else { return nil }
    let candidate = ((providers as NSString).deletingLastPathComponent as NSString)
      .appendingPathComponent("plugins")
    var isDirectory: ObjCBool = false
    let exists = FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory)
    return exists && isDirectory.boolValue ? candidate : nil
  }
}
