import API
import Foundation
import MockProvider
import Support
import Testing

struct CommandOutput {
  let status: Int32
  let stdout: String
  let stderr: String
}

/// Runs the executable with a time limit; the environment holds only PATH and `environment`.
func runCommand(
  _ arguments: [String], environment: [String: String] = [:], input: String? = nil,
  timeout: Double = 60
) throws -> CommandOutput {
  let binary = try #require(asyncqueueBinary(), "build the asyncqueue executable first")
  let process = Process()
  process.executableURL = URL(fileURLWithPath: binary)
  process.arguments = arguments
  process.environment = ["PATH": "/usr/bin:/bin"].merging(environment) { $1 }
  let output = Pipe()
  let errors = Pipe()
  let stdin = Pipe()
  process.standardOutput = output
  process.standardError = errors
  process.standardInput = stdin
  try process.run()
  if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
  try stdin.fileHandleForWriting.close()
  let finished = DispatchSemaphore(value: 0)
  process.terminationHandler = { _ in finished.signal() }
  if process.isRunning, finished.wait(timeout: .now() + timeout) == .timedOut {
    process.terminate()
    Issue.record("asyncqueue \(arguments.joined(separator: " ")) ran longer than \(timeout) s")
  }
  process.waitUntilExit()
  return CommandOutput(
    status: process.terminationStatus,
    stdout: String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
    stderr: String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
}

@Suite(.serialized, .enabled(if: asyncqueueBinary() != nil)) struct CommandLineTests {
  func writeConfig(_ text: String) -> String {
    let path = temporaryDirectory("cli-config") + "/asyncqueue.json"
    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    return path
  }

  @Test func everyCommandHasHelp() throws {
    // The top-level help lists '<command> --help' for each of these.
    for command in ["serve", "keys", "secret", "migrate", "tasks", "providers", "plugins"] {
      let result = try runCommand([command, "--help"])
      #expect(result.status == 0, "\(command) --help: \(result.stderr)")
      #expect(
        result.stdout.contains("asyncqueue \(command)"), "\(command) --help: \(result.stdout)")
    }
  }

  @Test func printConfigMasksSecretsAndMerges() throws {
    let file = writeConfig(
      #"{"port": 9100, "apiKeys": ["cli-secret-key-1"], "webhookSecret": "whsec_cli_hidden"}"#)
    let result = try runCommand(
      ["serve", "--config", file, "--print-config", "--log-level", "warn"],
      environment: ["ASYNCQUEUE_PORT": "9200"])
    #expect(result.status == 0, "\(result.stderr)")
    let json = try JSONValue.parse(result.stdout)
    #expect(json["port"] == 9200)
    #expect(json["logLevel"] == "warn")
    #expect(json["apiKeys"] == ["***"])
    #expect(json["webhookSecret"] == "***")
    #expect(!result.stdout.contains("hidden"))
    #expect(!result.stdout.contains("cli-secret-key-1"))
  }

  @Test func invalidConfigStopsStartup() throws {
    let file = writeConfig(#"{"port": 8080, "rateLimt": {"requests": 5}}"#)
    let result = try runCommand(["serve", "--config", file], timeout: 20)
    #expect(result.status == 2)
    #expect(result.stderr.contains("unknown key 'rateLimt'"))
    #expect(result.stderr.contains("did you mean 'rateLimit'?"))
    let fromEnvironment = try runCommand(
      ["serve", "--print-config"], environment: ["ASYNCQUEUE_CONFIG": file], timeout: 20)
    #expect(fromEnvironment.status == 2)
  }

  /// Returns `--database URL` for the data directory's schema when the suite runs on
  /// PostgreSQL, else nothing.
  func databaseArguments(_ data: String) throws -> [String] {
    try TestDatabase.database(forDataDirectory: data).map { ["--database", $0] } ?? []
  }

  @Test func printConfigMasksDatabasePassword() throws {
    let url = "postgres://aq:db-hidden-pass@127.0.0.1:5432/queue?password=db-hidden-other"
    let result = try runCommand(
      ["serve", "--print-config", "--lease-timeout", "4", "--node-id", "node-a"],
      environment: ["ASYNCQUEUE_DATABASE": url])
    #expect(result.status == 0, "\(result.stderr)")
    let json = try JSONValue.parse(result.stdout)
    #expect(json["database"] == "postgres://aq:***@127.0.0.1:5432/queue?password=***")
    #expect(json["leaseTimeout"] == 4)
    #expect(json["nodeId"] == "node-a")
    #expect(!result.stdout.contains("hidden"))
  }

  @Test func migrateReportsSchemaVersion() throws {
    let data = temporaryDirectory("cli-migrate")
    let arguments = ["migrate", "--data-dir", data] + (try databaseArguments(data))
    let first = try runCommand(arguments)
    #expect(first.status == 0, "\(first.stderr)")
    let backend = TestDatabase.isPostgres ? "backend=postgresql" : "backend=sqlite"
    #expect(first.stdout.hasPrefix(backend), "\(first.stdout)")
    #expect(first.stdout.contains("schema_version="))
    #expect(!first.stdout.contains("schema_version=unknown"))
    let again = try runCommand(arguments)
    #expect(again.status == 0, "\(again.stderr)")
    #expect(again.stdout == first.stdout)
  }

  @Test func migrateRejectsInvalidDatabase() throws {
    let data = temporaryDirectory("cli-migrate")
    let result = try runCommand([
      "migrate", "--data-dir", data, "--database", "mysql://aq:db-hidden-pass@127.0.0.1/queue",
    ])
    #expect(result.status == 2)
    #expect(result.stderr.contains("--database"))
    #expect(!result.stderr.contains("db-hidden-pass"))
    #expect(result.stdout.isEmpty)
  }

  @Test func keysCreateListRevoke() throws {
    let data = temporaryDirectory("cli-keys")
    let database = try databaseArguments(data)
    let created = try runCommand(
      ["keys", "create", "--team", "ops", "--label", "ci", "--data-dir", data] + database)
    #expect(created.status == 0, "\(created.stderr)")
    let lines = created.stdout.split(separator: "\n").map(String.init)
    let key = try #require(lines.last)
    #expect(key.hasPrefix("aq_"))
    let id = try #require(lines.first?.split(separator: " ").dropFirst(2).first.map(String.init))
    #expect(id.hasPrefix("key_"))

    let listed = try runCommand(["keys", "list", "--data-dir", data] + database)
    #expect(listed.status == 0)
    #expect(listed.stdout.contains(id))
    #expect(listed.stdout.contains("ops"))
    #expect(listed.stdout.contains("ci"))
    #expect(!listed.stdout.contains(key))

    let revoked = try runCommand(["keys", "revoke", id, "--data-dir", data] + database)
    #expect(revoked.status == 0, "\(revoked.stderr)")
    let json = try JSONValue.parse(
      try runCommand(["keys", "list", "--json", "--data-dir", data] + database).stdout)
    let entry = json["keys"]?.arrayValue?.first { $0["id"]?.stringValue == id }
    #expect(entry?["revokedAt"]?.stringValue != nil)
    #expect(!json.serialized().contains(key))

    let unknown = try runCommand(["keys", "revoke", "key_0000", "--data-dir", data] + database)
    #expect(unknown.status == 2)
    #expect(unknown.stderr.contains("no key with id"))

    let missingTeam = try runCommand(["keys", "create", "--data-dir", data] + database)
    #expect(missingTeam.status == 2)
    #expect(missingTeam.stderr.contains("--team"))
  }

  @Test func secretShowPerTeam() throws {
    let data = temporaryDirectory("cli-secret")
    let database = try databaseArguments(data)
    _ = try runCommand(["keys", "create", "--team", "media", "--data-dir", data] + database)
    let first = try runCommand(
      ["secret", "show", "--team", "media", "--data-dir", data] + database)
    let second = try runCommand(
      ["secret", "show", "--team", "media", "--data-dir", data] + database)
    #expect(first.status == 0, "\(first.stderr)")
    #expect(first.stdout.hasPrefix("whsec_"))
    #expect(first.stdout == second.stdout)
    let other = try runCommand(
      ["secret", "show", "--team", "other", "--data-dir", data] + database)
    #expect(other.stdout != first.stdout)
    let invalid = try runCommand(
      ["secret", "show", "--team", "a b", "--data-dir", data] + database)
    #expect(invalid.status == 2)
  }

  @Test func tasksCommandsAgainstServer() async throws {
    let target = WebhookReceiver()
    try target.start()
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
    }
    let environment = [
      "ASYNCQUEUE_URL": service.baseURL, "ASYNCQUEUE_API_KEY": TestService.apiKey,
    ]
    let created = try runCommand(
      [
        "tasks", "create", "--target", target.url, "--header", "X-Trace: cli",
        "--body", #"{"n": 1}"#, "--wait", "--timeout", "30",
      ], environment: environment)
    #expect(created.status == 0, "\(created.stdout) \(created.stderr)")
    let id = try #require(created.stdout.split(separator: "\n").first.map(String.init))
    #expect(created.stdout.contains("completed"))
    #expect(target.deliveries().first?.headers["x-trace"] == "cli")

    let got = try runCommand(["tasks", "get", id, "--json"], environment: environment)
    #expect(try JSONValue.parse(got.stdout)["task"]?["status"] == "completed")
    let table = try runCommand(["tasks", "get", id], environment: environment)
    #expect(table.stdout.contains("status"))

    let listed = try runCommand(
      ["tasks", "list", "--status", "completed"], environment: environment)
    #expect(listed.status == 0)
    #expect(listed.stdout.hasPrefix("ID"))
    #expect(listed.stdout.contains(id))

    let missing = try runCommand(["tasks", "get", UUID().uuidString], environment: environment)
    #expect(missing.status == 2)
    #expect(missing.stderr.contains("not found"))

    let wrongKey = try runCommand(
      ["tasks", "list", "--api-key", "aq_wrong_key_000"], environment: environment)
    #expect(wrongKey.status == 2)
    #expect(wrongKey.stderr.contains("--api-key"))

    let delayed = try await service.createTask([
      "targetUrl": .string(target.url), "delayUntil": "2099-01-01T00:00:00Z",
    ])
    let cancelled = try runCommand(["tasks", "cancel", delayed], environment: environment)
    #expect(cancelled.status == 0, "\(cancelled.stderr)")
    #expect(cancelled.stdout == "task \(delayed): cancelled\n", "\(cancelled.stdout)")

    for command in ["cancel", "events"] {
      let result = try runCommand(["tasks", command, id], environment: environment)
      #expect(result.stderr.isEmpty || result.stderr.hasPrefix("asyncqueue: "), "\(result.stderr)")
      #expect(!result.stderr.contains("HTTP 404"), "a 404 is explained, not passed through")
    }
  }

  @Test func tasksWaitExitStatus() async throws {
    let target = WebhookReceiver()
    try target.start()
    target.setStatus(503)
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
    }
    let environment = [
      "ASYNCQUEUE_URL": service.baseURL, "ASYNCQUEUE_API_KEY": TestService.apiKey,
    ]
    let created = try runCommand(
      ["tasks", "create", "-"], environment: environment,
      input: #"{"targetUrl": "\#(target.url)", "maxRetries": 0}"#)
    #expect(created.status == 0, "\(created.stderr)")
    let id = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    let waited = try runCommand(["tasks", "wait", id], environment: environment)
    #expect(waited.status == 1, "a failed task exits 1: \(waited.stdout) \(waited.stderr)")
    #expect(waited.stdout.contains("failed"))
  }

  @Test func clientReadsConfigFile() async throws {
    let service = try TestService()
    defer { service.stop() }
    let file = writeConfig(
      #"{"publicUrl": "\#(service.baseURL)", "apiKeys": ["\#(TestService.apiKey)"]}"#)
    let listed = try runCommand(["tasks", "list", "--json", "--config", file])
    #expect(listed.status == 0, "\(listed.stderr)")
    #expect(try JSONValue.parse(listed.stdout)["pagination"]?["total"] == 0)
  }
}
