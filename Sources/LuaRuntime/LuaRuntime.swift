// Temporary stand-in with the agreed API, replaced by the real runtime on merge.
import CLuaHost

public struct ScriptLimits: Sendable {
  public var memoryBytes: Int
  public var instructionBudget: Int
  public init(memoryBytes: Int = 64 << 20, instructionBudget: Int = 20_000_000) {
    self.memoryBytes = memoryBytes
    self.instructionBudget = instructionBudget
  }
}
public struct ScriptFailure: Error, CustomStringConvertible, Sendable {
  public let message: String
  public var description: String { message }
}
public enum ScriptLogLevel: String, Sendable { case debug, info, warn, error }
public struct LoadedScript: Sendable {
  public let metadataJSON: String
  public let hooks: [String]
}
public final class LuaRuntime {
  public init(
    limits: ScriptLimits = ScriptLimits(),
    log: @escaping @Sendable (ScriptLogLevel, _ scriptKey: String, _ message: String) -> Void
  ) throws(ScriptFailure) {}
  public func addModule(name: String, source: String, chunkName: String) throws(ScriptFailure) {}
  public func loadScript(key: String, source: String, chunkName: String) throws(ScriptFailure)
    -> LoadedScript
  { LoadedScript(metadataJSON: "{}", hooks: []) }
  public func hasHook(key: String, hook: String) -> Bool { false }
  public func call(key: String, hook: String, argumentJSON: String, body: [UInt8]?)
    throws(ScriptFailure) -> String
  { "null" }
}
