import Foundation
import HTTPClient
import Support
import Testing

/// Finds the `asyncqueue` executable built beside the tests: `ASYNCQUEUE_BINARY`, then the
/// test bundle's directory, then the repository's `.build/debug`.
func asyncqueueBinary() -> String? {
  var candidates: [String] = []
  if let path = ProcessInfo.processInfo.environment["ASYNCQUEUE_BINARY"] {
    candidates.append(path)
  }
  if let runner = CommandLine.arguments.first {
    var directory = URL(fileURLWithPath: runner).resolvingSymlinksInPath()
    for _ in 0..<4 {
      directory = directory.deletingLastPathComponent()
      candidates.append(directory.appendingPathComponent("asyncqueue").path)
    }
  }
  candidates.append(repositoryRoot + "/.build/debug/asyncqueue")
  return candidates.first { path in
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
      && !isDirectory.boolValue && FileManager.default.isExecutableFile(atPath: path)
  }
}

/// The service as a real process, for tests where the process matters (kill -9, signals).
/// Under `ASYNCQUEUE_TEST_DATABASE` it stores its tasks in PostgreSQL, in the schema of its
/// data directory; see `TestDatabase`.
final class ServiceProcess: @unchecked Sendable {
  let process = Process()
  let dataDirectory: String
  private let errors = Pipe()
  private let lock = NSLock()
  private var stderrText = ""
  private(set) var port: UInt16 = 0

  /// `database` overrides the data directory's own test database (cluster tests give several
  /// nodes one schema); `arguments` are added to `serve`'s.
  init(
    binary: String, dataDirectory: String, delayScale: Double, database: String? = nil,
    arguments: [String] = [], environment extraEnvironment: [String: String] = [:]
  ) throws {
    self.dataDirectory = dataDirectory
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = [
      "serve", "--port", "0", "--data-dir", dataDirectory, "--api-key", TestService.apiKey,
      "--webhook-secret", TestService.webhookSecret, "--allow-private-network",
      "--builtin-providers-dir", repositoryRoot + "/providers",
      // The tests create tasks faster than the default per-team limit allows.
      "--rate-limit", "0",
    ]
    var environment = ProcessInfo.processInfo.environment
    environment["ASYNCQUEUE_DELAY_SCALE"] = String(delayScale)
    // Small batches, so restarts in crash tests load most tasks while the first ones run.
    environment["ASYNCQUEUE_LOAD_BATCH"] = "50"
    // Passed in the environment rather than as a flag, so the password stays out of `ps`.
    environment["ASYNCQUEUE_DATABASE"] =
      try database ?? TestDatabase.database(forDataDirectory: dataDirectory)
    environment.merge(extraEnvironment) { _, given in given }
    if TestDatabase.isPostgres {
      // A node that was killed keeps its claims until they expire; the default of 15 s would
      // stall every crash test.
      process.arguments! += ["--lease-timeout", "2"]
    }
    process.arguments! += arguments
    process.environment = environment
    process.standardOutput = FileHandle.nullDevice
    process.standardError = errors
    errors.fileHandleForReading.readabilityHandler = { [weak self] handle in
      let text = String(decoding: handle.availableData, as: UTF8.self)
      guard let self, !text.isEmpty else { return }
      self.lock.withLock { self.stderrText += text }
    }
    try process.run()
    let deadline = Date().addingTimeInterval(20)
    while Date() < deadline && port == 0 && process.isRunning {
      if let match = log.range(of: #"listening host=\S+ port=(\d+)"#, options: .regularExpression) {
        let line = log[match]
        port = UInt16(line.split(separator: "=").last ?? "") ?? 0
      }
      Thread.sleep(forTimeInterval: 0.02)
    }
    if port == 0 {
      process.terminate()
      throw ProcessFailure(message: "service did not start; stderr: \(log)")
    }
  }

  var log: String { lock.withLock { stderrText } }
  var baseURL: String { "http://127.0.0.1:\(port)" }

  func kill() {
    Foundation.kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
  }

  /// Sends `signal` and waits up to `timeout` seconds; returns the exit status, or nil.
  func stop(signal: Int32, timeout: Double) async -> Int32? {
    Foundation.kill(process.processIdentifier, signal)
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
    if process.isRunning {
      kill()
      return nil
    }
    return process.terminationStatus
  }
}

struct ProcessFailure: Error, CustomStringConvertible {
  let message: String
  var description: String { message }
}

/// A small API client for a service in another process.
struct APIClient: Sendable {
  let baseURL: String
  let client: CurlClient

  func call(_ method: String, _ path: String, body: JSONValue? = nil) async -> (Int, JSONValue)? {
    var headers = [("Authorization", "Bearer \(TestService.apiKey)")]
    if body != nil { headers.append(("Content-Type", "application/json")) }
    let outcome = await client.send(
      ClientRequest(
        method: method, url: baseURL + path, headers: headers,
        body: body.map { Array($0.serialized().utf8) }, timeout: 30))
    guard case .success(let response) = outcome else { return nil }
    return (response.statusCode, (try? JSONValue.parse(response.body)) ?? .null)
  }
}
