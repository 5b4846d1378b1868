import CLuaHost

/// Limits applied to every script call: the memory a state may hold and the number of VM
/// instructions a single call (a hook, a script load or a module load) may run.
public struct ScriptLimits: Sendable {
  public var memoryBytes: Int
  public var instructionBudget: Int

  public init(memoryBytes: Int = 64 << 20, instructionBudget: Int = 20_000_000) {
    self.memoryBytes = memoryBytes
    self.instructionBudget = instructionBudget
  }
}

/// A script that failed to load or a hook that raised, ran out of budget or memory, or returned
/// a value JSON cannot represent. `message` carries the chunk name and line when Lua has them.
public struct ScriptFailure: Error, CustomStringConvertible, Sendable {
  public let message: String

  public init(message: String) {
    self.message = message
  }

  public var description: String { message }
}

public enum ScriptLogLevel: String, Sendable {
  case debug, info, warn, error
}

/// The description of a loaded script, built from the table its chunk returned.
public struct LoadedScript: Sendable {
  /// The returned table's non-function fields as a JSON object.
  public let metadataJSON: String
  /// The names of the returned table's function fields, sorted.
  public let hooks: [String]
}

/// One sandboxed Lua 5.4 state. Not thread-safe: use it from one thread at a time.
public final class LuaRuntime {
  private let handle: OpaquePointer
  private let logSink: Unmanaged<LogSink>
  private var hooksByKey: [String: Set<String>] = [:]

  public init(
    limits: ScriptLimits = ScriptLimits(),
    log: @escaping @Sendable (ScriptLogLevel, _ scriptKey: String, _ message: String) -> Void
  ) throws(ScriptFailure) {
    let sink = Unmanaged.passRetained(LogSink(log))
    var error: UnsafeMutablePointer<CChar>? = nil
    let prelude = Array(luaPrelude.utf8)
    let handle = prelude.withUnsafeBufferPointer { bytes in
      bytes.withMemoryRebound(to: CChar.self) { chars in
        aq_lua_open(
          max(limits.memoryBytes, 0), Int64(limits.instructionBudget), chars.baseAddress,
          chars.count, forwardLog, sink.toOpaque(), &error)
      }
    }
    guard let handle else {
      sink.release()
      throw ScriptFailure(message: takeString(error) ?? "failed to create the Lua state")
    }
    self.handle = handle
    self.logSink = sink
  }

  deinit {
    aq_lua_close(handle)
    logSink.release()
  }

  /// Registers a module that scripts can load with `require(name)`. It is compiled and run on
  /// the first `require`, and its value is cached for the life of this runtime.
  public func addModule(name: String, source: String, chunkName: String) throws(ScriptFailure) {
    _ = try run("add_module", [Array(name.utf8), Array(source.utf8), Array(chunkName.utf8)], 0)
  }

  /// Runs a script chunk, which must return a table, and keeps that table under `key`,
  /// replacing any script loaded earlier under the same key.
  public func loadScript(key: String, source: String, chunkName: String) throws(ScriptFailure)
    -> LoadedScript
  {
    let results = try run(
      "load_script", [Array(key.utf8), Array(source.utf8), Array(chunkName.utf8)], 2)
    let hookList = results[1].map { String(decoding: $0, as: UTF8.self) } ?? ""
    let hooks = hookList.isEmpty ? [] : hookList.split(separator: "\n").map(String.init)
    hooksByKey[key] = Set(hooks)
    let metadata = results[0].map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    return LoadedScript(metadataJSON: metadata, hooks: hooks)
  }

  public func hasHook(key: String, hook: String) -> Bool {
    hooksByKey[key]?.contains(hook) ?? false
  }

  /// Calls hook `hook` of script `key` with `argumentJSON` decoded into a Lua table `ctx`.
  /// A non-nil `body` becomes the Lua string ctx.response.body byte for byte, and ctx.response is
  /// created when missing. Returns the hook's return value as JSON text ("null" for nil).
  public func call(key: String, hook: String, argumentJSON: String, body: [UInt8]?)
    throws(ScriptFailure) -> String
  {
    let results = try run(
      "call", [Array(key.utf8), Array(hook.utf8), Array(argumentJSON.utf8), body], 1)
    guard let encoded = results[0] else {
      throw ScriptFailure(message: "hook '\(hook)' of script '\(key)' returned no JSON text")
    }
    return String(decoding: encoded, as: UTF8.self)
  }

  private func run(_ operation: String, _ arguments: [[UInt8]?], _ resultCount: Int)
    throws(ScriptFailure) -> [[UInt8]?]
  {
    // Copies keep the argument pointers valid for the whole C call.
    let copies: [UnsafeMutableBufferPointer<CChar>?] = arguments.map { argument in
      guard let argument else { return nil }
      let copy = UnsafeMutableBufferPointer<CChar>.allocate(capacity: max(argument.count, 1))
      argument.withUnsafeBytes { bytes in
        UnsafeMutableRawBufferPointer(copy).copyMemory(from: bytes)
      }
      return copy
    }
    defer {
      for copy in copies { copy?.deallocate() }
    }
    var pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0.baseAddress!) } }
    var lengths: [Int] = arguments.map { $0?.count ?? 0 }
    var results = [UnsafeMutablePointer<CChar>?](repeating: nil, count: max(resultCount, 1))
    var resultLengths = [Int](repeating: 0, count: max(resultCount, 1))
    var error: UnsafeMutablePointer<CChar>? = nil

    let status = aq_lua_run(
      handle, operation, &pointers, &lengths, Int32(arguments.count), Int32(resultCount),
      &results, &resultLengths, &error)

    var output: [[UInt8]?] = []
    for index in 0..<resultCount {
      guard let pointer = results[index] else {
        output.append(nil)
        continue
      }
      let bytes = UnsafeRawBufferPointer(start: pointer, count: resultLengths[index])
      output.append(Array(bytes))
      aq_lua_free(pointer)
    }
    if status != 0 {
      throw ScriptFailure(message: takeString(error) ?? "unknown Lua error")
    }
    return output
  }
}

/// Holds the Swift log closure for the C callback.
private final class LogSink {
  let log: @Sendable (ScriptLogLevel, String, String) -> Void

  init(_ log: @escaping @Sendable (ScriptLogLevel, String, String) -> Void) {
    self.log = log
  }
}

private func forwardLog(
  context: UnsafeMutableRawPointer?, level: Int32, key: UnsafePointer<CChar>?,
  message: UnsafePointer<CChar>?
) {
  guard let context else { return }
  let sink = Unmanaged<LogSink>.fromOpaque(context).takeUnretainedValue()
  let logLevel: ScriptLogLevel
  switch level {
  case 0: logLevel = .debug
  case 1: logLevel = .info
  case 2: logLevel = .warn
  default: logLevel = .error
  }
  sink.log(
    logLevel, key.map { String(cString: $0) } ?? "", message.map { String(cString: $0) } ?? "")
}

/// Returns the C string as a Swift string and frees it.
private func takeString(_ pointer: UnsafeMutablePointer<CChar>?) -> String? {
  guard let pointer else { return nil }
  defer { aq_lua_free(pointer) }
  return String(cString: pointer)
}
