import Foundation
import LuaRuntime
import Support

/// A fixed set of Lua states, each with every template loaded, lent out one caller at a time.
///
/// Lua states are not thread-safe, so each hook call borrows a whole state. Hook calls are short
/// (microseconds to a few milliseconds), so a handful of states serves many tasks.
final class ScriptPool: @unchecked Sendable {
  private let lock = NSLock()
  // Guarded by `lock`: states not lent out.
  private var idle: [LuaRuntime]
  private let available: DispatchSemaphore

  init(catalog: ProviderCatalog, size: Int, limits: ScriptLimits, logger: Logger) throws {
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
          logger.log(mapped, message, [("script", key)])
        })
      for (name, module) in catalog.modules {
        try runtime.addModule(name: name, source: module.source, chunkName: module.file)
      }
      for template in catalog.templates.values {
        _ = try runtime.loadScript(
          key: template.id, source: template.source, chunkName: template.file)
      }
      _ = try runtime.loadScript(
        key: customTemplateKey, source: "return require(\"lib.pollconfig\").template({})",
        chunkName: "custom pollConfig")
      states.append(runtime)
    }
    idle = states
    available = DispatchSemaphore(value: states.count)
  }

  func hasHook(key: String, hook: String) -> Bool {
    (try? withState { $0.hasHook(key: key, hook: hook) }) ?? false
  }

  /// Calls a hook and parses what it returned.
  func call(key: String, hook: String, context: JSONValue, body: [UInt8]?) throws(HookError)
    -> JSONValue
  {
    let argument = context.serialized()
    let output: String
    do {
      output = try withState { state throws(ScriptFailure) in
        try state.call(key: key, hook: hook, argumentJSON: argument, body: body)
      }
    } catch {
      throw HookError(message: error.message)
    }
    do {
      return try JSONValue.parse(output)
    } catch {
      throw HookError(message: "hook \(hook) returned a value that is not JSON: \(error)")
    }
  }

  private func withState<T>(_ body: (LuaRuntime) throws(ScriptFailure) -> T) throws(ScriptFailure)
    -> T
  {
    available.wait()
    lock.lock()
    let state = idle.removeLast()
    lock.unlock()
    defer {
      lock.lock()
      idle.append(state)
      lock.unlock()
      available.signal()
    }
    return try body(state)
  }
}

/// A hook that raised an error, ran out of its limits or returned something unusable.
struct HookError: Error, CustomStringConvertible {
  let message: String
  var description: String { message }
}
