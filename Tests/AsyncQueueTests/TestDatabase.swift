import API
import Foundation
import Support

@testable import Storage

/// The PostgreSQL database the suite runs its services on when `ASYNCQUEUE_TEST_DATABASE`
/// contains a URL (scripts/test.sh sets it for its second pass); otherwise every service uses
/// SQLite in its data directory.
///
/// Each data directory gets its own schema `t_<16 hex digits>`, created over libpq and named
/// in the file `schemaFile` inside the directory, so a service restarted on the same directory
/// finds its tasks again. Services reach their schema through the URL parameter
/// `options=-csearch_path=SCHEMA`, which libpq passes to the server.
enum TestDatabase {
  static let url: String? = {
    let value = ProcessInfo.processInfo.environment["ASYNCQUEUE_TEST_DATABASE"] ?? ""
    return value.isEmpty ? nil : value
  }()

  static var isPostgres: Bool { url != nil }

  /// The file in a data directory that names the directory's schema.
  static let schemaFile = "test-postgres-schema"

  private static let lock = NSLock()
  // Guarded by `lock`: schemas this process created and has not dropped yet.
  nonisolated(unsafe) private static var liveSchemas: Set<String> = []

  /// Returns the `database` setting for a service on `directory`: nil under SQLite, else the
  /// test database's URL with the search path set to the directory's schema, which is created
  /// on first use.
  static func database(forDataDirectory directory: String) throws -> String? {
    guard let url else { return nil }
    let schema = try schema(forDataDirectory: directory)
    let separator = url.contains("?") ? "&" : "?"
    return url + separator + "options=-csearch_path%3D" + schema
  }

  /// Returns the data directory's schema, creating it and its file when missing.
  static func schema(forDataDirectory directory: String) throws -> String {
    guard let url else { throw ProcessFailure(message: "ASYNCQUEUE_TEST_DATABASE is not set") }
    let path = (directory as NSString).appendingPathComponent(schemaFile)
    return try lock.withLock {
      if let text = try? String(contentsOfFile: path, encoding: .utf8) {
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
      }
      let schema = "t_" + Crypto.randomHex(bytes: 8)
      try runAdminSQL("CREATE SCHEMA \(schema)", url: url)
      try FileManager.default.createDirectory(
        atPath: directory, withIntermediateDirectories: true)
      try Data(schema.utf8).write(to: URL(fileURLWithPath: path))
      if liveSchemas.isEmpty { atexit { TestDatabase.dropLiveSchemas() } }
      liveSchemas.insert(schema)
      return schema
    }
  }

  /// Drops the data directory's schema, when it has one. Best effort: a failure leaves the
  /// schema for the drop at process exit.
  static func dropSchema(forDataDirectory directory: String) {
    guard let url else { return }
    let path = (directory as NSString).appendingPathComponent(schemaFile)
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
    let schema = text.trimmingCharacters(in: .whitespacesAndNewlines)
    guard (try? runAdminSQL("DROP SCHEMA IF EXISTS \(schema) CASCADE", url: url)) != nil else {
      return
    }
    try? FileManager.default.removeItem(atPath: path)
    lock.withLock { _ = liveSchemas.remove(schema) }
  }

  /// Drops the schemas of data directories that tests kept, such as those a test restarts a
  /// service on; registered with `atexit`.
  private static func dropLiveSchemas() {
    guard let url else { return }
    let schemas = lock.withLock { liveSchemas.sorted() }
    guard !schemas.isEmpty else { return }
    let list = schemas.joined(separator: ", ")
    try? runAdminSQL("DROP SCHEMA IF EXISTS \(list) CASCADE", url: url)
  }

  /// Returns everything stored for a data directory, to search for secrets in plain text: the
  /// SQLite files, or a `pg_dump` of the directory's schema.
  static func storedBytes(dataDirectory directory: String) throws -> Data {
    guard let url else {
      let database = directory + "/asyncqueue.db"
      let wal = (try? Data(contentsOf: URL(fileURLWithPath: database + "-wal"))) ?? Data()
      return try Data(contentsOf: URL(fileURLWithPath: database)) + wal
    }
    let schema = try schema(forDataDirectory: directory)
    let result = runTool(["pg_dump", "--schema=\(schema)", "--data-only", url])
    guard result.status == 0 else {
      throw ProcessFailure(message: "pg_dump of schema \(schema) failed: \(result.output)")
    }
    return Data(result.output.utf8)
  }
}

/// Runs a command found on PATH and returns its exit status with its stdout and stderr.
///
/// This uses `posix_spawnp` rather than `Process`, whose output pipe a large `pg_dump` could
/// fill and block. The output goes through a temporary file instead.
func runTool(_ arguments: [String]) -> (status: Int32, output: String) {
  let outputPath = NSTemporaryDirectory() + "asyncqueue-tool-\(UUID().uuidString)"
  defer { unlink(outputPath) }
  var actions = posix_spawn_file_actions_t()
  posix_spawn_file_actions_init(&actions)
  defer { posix_spawn_file_actions_destroy(&actions) }
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
  posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
  posix_spawn_file_actions_adddup2(&actions, 1, 2)
  let argv = arguments.map { strdup($0) } + [nil]
  defer { argv.forEach { free($0) } }
  var environment = ProcessInfo.processInfo.environment
  environment["PGCONNECT_TIMEOUT"] = "10"
  let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
  defer { envp.forEach { free($0) } }
  var pid: pid_t = 0
  let spawned = posix_spawnp(&pid, arguments[0], &actions, nil, argv, envp)
  guard spawned == 0 else {
    return (-1, "cannot run \(arguments[0]): \(String(cString: strerror(spawned)))")
  }
  var status: Int32 = 0
  while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
  let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
  // WIFEXITED and WEXITSTATUS are macros Swift cannot import.
  let exited = status & 0x7f == 0
  return (exited ? (status >> 8) & 0xff : -1, output)
}

/// Opens a store in a fresh data directory on the backend the suite runs on, as
/// `asyncqueue serve` would. Returns the directory too, so a test can open the store again.
func makeTestStore(_ name: String) throws -> (store: any TaskStore, directory: String) {
  let directory = temporaryDirectory(name)
  return (try openTestStore(directory), directory)
}

/// Opens the store of a data directory on the backend the suite runs on.
func openTestStore(_ directory: String) throws -> any TaskStore {
  try Service.openStore(
    database: TestDatabase.database(forDataDirectory: directory), dataDirectory: directory)
}
