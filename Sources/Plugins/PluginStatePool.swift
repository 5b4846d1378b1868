import Foundation
import LuaRuntime
import Support

/// A few Lua states, each with every plugin loaded, lent to one hook call at a time.
///
/// Plugins get their own states, apart from the provider templates', so a plugin that fills its
/// memory or budget never slows a provider hook.
final class PluginStatePool: @unchecked Sendable {
  private let lock = NSLock()
  // Guarded by `lock`: states not lent out.
  private var idle: [LuaRuntime]
  private let available: DispatchSemaphore

  init(catalog: PluginCatalog, size: Int, limits: ScriptLimits, logger: Logger)
    throws(ScriptFailure)
  {
    var states: [LuaRuntime] = []
    for _ in 0..<max(1, size) {
      let runtime = try LuaRuntime(
        limits: limits,
        log: { level, key, message in
          let mapped: LogLevel =
            switch level {
            case .debug: .debug
            case .info: .info
            case .warn: .warn
            case .error: .error
            }
          logger.log(mapped, message, [("plugin", key)])
        })
      for (name, module) in catalog.modules {
        try runtime.addModule(name: name, source: module.source, chunkName: module.file)
      }
      for plugin in catalog.plugins.values {
        _ = try runtime.loadScript(key: plugin.name, source: plugin.source, chunkName: plugin.file)
      }
      states.append(runtime)
    }
    idle = states
    available = DispatchSemaphore(value: states.count)
  }

  /// Calls a plugin's hook and parses what it returned.
  func call(plugin: String, hook: String, context: JSONValue) throws(ScriptFailure) -> JSONValue {
    available.wait()
    let state = lock.withLock { idle.removeLast() }
    defer {
      lock.withLock { idle.append(state) }
      available.signal()
    }
    let output = try state.call(
      key: plugin, hook: hook, argumentJSON: context.serialized(), body: nil)
    do {
      return try JSONValue.parse(output)
    } catch {
      throw ScriptFailure(message: "hook \(hook) returned a value that is not JSON: \(error)")
    }
  }
}
