import Engine
import Foundation
import HTTPClient
import LuaRuntime
import Storage
import Support

/// Settings for running plugins: the data directory, the links, the network rule and limits.
public struct PluginHostSettings: Sendable {
  public var dataDirectory: String
  /// The service's base URL, for links to archived files and tasks.
  public var publicURL: String
  /// Whether plugins' downloads and requests may reach loopback and private addresses; the
  /// same rule as the engine's.
  public var allowPrivateNetwork: Bool
  public var limits: ScriptLimits
  /// Lua states that run plugin hooks in parallel.
  public var states: Int

  public init(
    dataDirectory: String, publicURL: String, allowPrivateNetwork: Bool,
    limits: ScriptLimits = ScriptLimits(), states: Int = 2
  ) {
    self.dataDirectory = dataDirectory
    self.publicURL = publicURL
    self.allowPrivateNetwork = allowPrivateNetwork
    self.limits = limits
    self.states = states
  }
}

/// Runs the enabled Lua plugins at the engine's hook points.
///
/// A plugin runs only when its settings object has `"enabled": true`. A plugin hook that
/// raises, runs out of its limits or returns an unusable value is logged with the plugin's name
/// and skipped. The task and the service go on as if the plugin were absent.
public final class PluginHost: EnginePlugins, @unchecked Sendable {
  let settings: PluginHostSettings
  /// Plugin name to its settings object, passed to hooks as `ctx.config`.
  let configuration: [String: JSONValue]
  let store: TaskStore
  let logger: Logger
  let client: CurlClient
  /// Runs the notification hooks (task_created, status_changed, after_delivery) in order, off
  /// the engine's threads.
  private let notifications = DispatchQueue(label: "asyncqueue-plugin-notifications")
  private let lock = NSLock()
  // Guarded by `lock`: the loaded plugins and the states that run them, replaced whole.
  private var loadedCatalog: PluginCatalog
  private var pool: PluginStatePool

  public init(
    catalog: PluginCatalog, configuration: [String: JSONValue], settings: PluginHostSettings,
    store: TaskStore, logger: Logger
  ) throws(ScriptFailure) {
    self.settings = settings
    self.configuration = configuration
    self.store = store
    self.logger = logger
    self.loadedCatalog = catalog
    self.pool = try PluginStatePool(
      catalog: catalog, size: settings.states, limits: settings.limits, logger: logger)
    self.client = CurlClient(
      allowPrivateNetwork: settings.allowPrivateNetwork, userAgent: "asyncqueue-plugins/0.1")
    for name in configuration.keys.sorted() where catalog.plugins[name] == nil {
      logger.warn("settings given for a plugin that is not loaded", [("plugin", name)])
    }
  }

  /// The plugins in force.
  public var catalog: PluginCatalog { lock.withLock { loadedCatalog } }

  /// The names of the loaded plugins whose settings enable them, sorted.
  public var enabledPlugins: [String] {
    catalog.sortedPlugins.map(\.name).filter(isEnabled)
  }

  /// Swaps in a new set of plugins; each later hook call uses it.
  public func replace(_ catalog: PluginCatalog) throws(ScriptFailure) {
    let states = try PluginStatePool(
      catalog: catalog, size: settings.states, limits: settings.limits, logger: logger)
    lock.withLock {
      loadedCatalog = catalog
      pool = states
    }
  }

  /// Waits for queued notification hooks and stops the HTTP client.
  public func stop() {
    notifications.sync {}
    client.shutdown()
  }

  // MARK: EnginePlugins

  public func taskCreated(_ task: TaskRecord) {
    notifications.async { [self] in
      for plugin in enabled(with: "task_created") {
        _ = call(plugin, "task_created", context(plugin, task), task: task.id)
      }
    }
  }

  public func statusChanged(_ task: TaskRecord, from previous: TaskStatus?) {
    notifications.async { [self] in
      for plugin in enabled(with: "status_changed") {
        var ctx = context(plugin, task)
        ctx["previousStatus"] = previous.map { .string($0.rawValue) } ?? .null
        _ = call(plugin, "status_changed", .object(ctx), task: task.id)
      }
    }
  }

  public func beforeRequest(_ task: TaskRecord, _ request: inout ClientRequest) {
    for plugin in enabled(with: "before_request") {
      var ctx = context(plugin, task)
      let headers = request.headers.reduce(into: [String: String]()) { $0[$1.0] = $1.1 }
      ctx["request"] = [
        "method": .string(request.method), "url": .string(request.url),
        "headers": TaskPresenter.maskedHeaders(headers),
      ]
      guard let value = call(plugin, "before_request", .object(ctx), task: task.id) else {
        continue
      }
      do {
        try HeaderChanges(value).apply(to: &request)
      } catch {
        reportInvalidReturn(plugin, "before_request", task: task.id, error)
      }
    }
  }

  public func taskFinishing(_ task: TaskRecord) async -> TaskRecord {
    var current = task
    for plugin in enabled(with: "task_finished") {
      guard let value = call(plugin, "task_finished", context(plugin, current), task: task.id)
      else { continue }
      let actions: FinishActions
      do {
        actions = try FinishActions(value)
      } catch {
        reportInvalidReturn(plugin, "task_finished", task: task.id, error)
        continue
      }
      await perform(actions, plugin: plugin, task: &current)
    }
    return current
  }

  public func afterDelivery(_ delivery: DeliveryRecord, attempt: DeliveryAttempt) {
    notifications.async { [self] in
      let plugins = enabled(with: "after_delivery")
      guard !plugins.isEmpty, let task = try? store.task(id: delivery.taskId) else { return }
      for plugin in plugins {
        var ctx = context(plugin, task)
        ctx["delivery"] = [
          "id": .int(delivery.id), "url": .string(delivery.url), "event": .string(delivery.event),
          "attempts": .int(Int64(delivery.attempts)),
          "delivered": .bool(delivery.deliveredAt != nil),
        ]
        ctx["attempt"] = [
          "at": .string(Timestamp.iso8601(seconds: attempt.at)),
          "statusCode": attempt.statusCode.map { .int(Int64($0)) } ?? .null,
          "latencyMs": .int(Int64(attempt.latencyMs)),
          "error": attempt.error.map { .string($0) } ?? .null,
        ]
        _ = call(plugin, "after_delivery", .object(ctx), task: task.id)
      }
    }
  }

  // MARK: Calling hooks

  private func isEnabled(_ name: String) -> Bool {
    configuration[name]?["enabled"]?.boolValue == true
  }

  private func enabled(with hook: String) -> [PluginScript] {
    catalog.sortedPlugins.filter { isEnabled($0.name) && $0.hooks.contains(hook) }
  }

  /// The fields every hook gets: the task as the API shows it, the plugin's settings and the
  /// service's base URL.
  func context(_ plugin: PluginScript, _ task: TaskRecord) -> [String: JSONValue] {
    [
      "task": TaskPresenter.json(task, baseURL: settings.publicURL),
      "taskUrl": .string("\(settings.publicURL)/v1/tasks/\(task.id)"),
      "config": configuration[plugin.name] ?? .object([:]),
      "publicURL": .string(settings.publicURL),
    ]
  }

  private func call(
    _ plugin: PluginScript, _ hook: String, _ context: [String: JSONValue], task: String
  )
    -> JSONValue?
  {
    call(plugin, hook, .object(context), task: task)
  }

  /// Calls a hook; returns nil when it returned nothing or failed, after logging the failure.
  func call(_ plugin: PluginScript, _ hook: String, _ context: JSONValue, task: String)
    -> JSONValue?
  {
    let states = lock.withLock { pool }
    do {
      let value = try states.call(plugin: plugin.name, hook: hook, context: context)
      // Not a conditional expression: `nil` there would become JSONValue.null.
      guard !value.isNull else { return nil }
      return value
    } catch {
      logger.error(
        "plugin hook failed; the task goes on without it",
        [("plugin", plugin.name), ("hook", hook), ("task", task), ("error", error.message)])
      return nil
    }
  }

  func reportInvalidReturn(_ plugin: PluginScript, _ hook: String, task: String, _ error: Error) {
    logger.error(
      "plugin hook returned an invalid value; ignored",
      [("plugin", plugin.name), ("hook", hook), ("task", task), ("error", "\(error)")])
  }
}
