import API
import Foundation
import Storage
import Support

/// Flags of the commands that work on the service's database directly.
let dataDirectoryFlags: [FlagSpec] = [
  configFlag,
  FlagSpec(
    name: "data-dir", environment: "ASYNCQUEUE_DATA_DIR", valueName: "DIR",
    help: "Data directory of the service. Default: dataDir of the config file, else ./data."),
  FlagSpec(
    name: "database", environment: "ASYNCQUEUE_DATABASE", valueName: "URL",
    help: """
      Database of the service: empty for SQLite in the data directory, or a postgres:// URL.
      Default: database of the config file, else empty.
      """),
]

let keysHelp = """
  Usage: asyncqueue keys <create|list|revoke> [options]

  Manage API keys in the service's database (SQLite in the data directory, or the
  PostgreSQL database of --database). The service need not be stopped: a revoked key stops
  working within 10 seconds.

    keys create --team TEAM [--label LABEL]   Create a key; prints it once.
    keys list [--json]                        List keys: id, team, label, created, revoked.
    keys revoke ID                            Revoke the key with this id.

  Options: --data-dir DIR, --database URL, --config FILE (see 'asyncqueue serve --help').
  """

/// The store a command works on, opened as `asyncqueue serve` opens it.
struct OpenedStore {
  let store: any TaskStore
  let settings: ServiceSettings
  /// Names the database in messages: the data directory, or the masked PostgreSQL URL.
  let name: String
}

/// Opens the database named by the flags, the environment or the config file. With `create`
/// false, a missing SQLite database ends the program.
func openStore(_ flags: ParsedFlags, create: Bool) -> OpenedStore {
  let settings = resolveSettings(flags)
  let directory = settings.string("dataDir") ?? "./data"
  let database = settings.string("database")
  let isSQLite = database == nil
  let name = database.map(DatabaseURL.masked) ?? directory
  let path = (directory as NSString).appendingPathComponent(Service.sqliteFileName)
  if isSQLite && !create && !FileManager.default.fileExists(atPath: path) {
    fail("no database in \(directory); start 'asyncqueue serve --data-dir \(directory)' once")
  }
  // Key hashes and team secrets live here, so new files are readable by the owner only.
  umask(0o077)
  do {
    if isSQLite {
      try FileManager.default.createDirectory(
        atPath: directory, withIntermediateDirectories: true)
    }
    let store = try Service.openStore(database: database, dataDirectory: directory)
    return OpenedStore(store: store, settings: settings, name: name)
  } catch {
    if isSQLite { fail("cannot open the database in \(directory): \(error)") }
    fail(
      "cannot open the database given by \(settings.sources["database"] ?? "--database"): \(error)")
  }
}

private func parseDataFlags(_ arguments: [String], extra: [FlagSpec], positional: Int)
  -> ParsedFlags
{
  do {
    return try ParsedFlags(
      arguments: arguments, specs: dataDirectoryFlags + extra,
      environment: ProcessInfo.processInfo.environment, positionalLimit: positional)
  } catch {
    fail("\(error)")
  }
}

func runKeys(_ arguments: [String]) {
  let rest = Array(arguments.dropFirst())
  if arguments.isEmpty || rest.contains("--help") || arguments.first == "--help" {
    print(keysHelp)
    return
  }
  switch arguments.first {
  case "create": createKey(rest)
  case "list": listKeys(rest)
  case "revoke": revokeKey(rest)
  case let other?: fail("unknown keys command '\(other)'; run 'asyncqueue keys --help'")
  case nil: print(keysHelp)
  }
}

/// Team ids appear in URLs, logs and metrics, so they are kept to a safe alphabet.
func checkTeamName(_ team: String) {
  let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_."))
  guard !team.isEmpty, team.count <= 64, team.unicodeScalars.allSatisfy(allowed.contains)
  else {
    fail("invalid team '\(team)': use 1 to 64 letters, digits, '-', '_' or '.'")
  }
}

private func createKey(_ arguments: [String]) {
  let flags = parseDataFlags(
    arguments,
    extra: [
      FlagSpec(name: "team", environment: nil, valueName: "TEAM", help: "Team of the key."),
      FlagSpec(name: "label", environment: nil, valueName: "LABEL", help: "A note for people."),
    ], positional: 0)
  guard let team = flags.string("team") else {
    fail("missing --team: asyncqueue keys create --team TEAM [--label LABEL]")
  }
  checkTeamName(team)
  let store = openStore(flags, create: true).store
  let key = "aq_" + Crypto.randomHex(bytes: 24)
  do {
    let record = try store.createAPIKey(
      hash: Crypto.sha256Hex(key), teamId: team, label: flags.string("label") ?? "")
    if team != TeamSecrets.defaultTeam {
      _ = try store.teamSecret(team, makeSecret: TeamSecrets.makeSecret)
    }
    print("Created key \(record.id) for team \(team). The key is shown only this once:")
    print(key)
  } catch {
    fail("cannot store the key: \(error)")
  }
}

private func listKeys(_ arguments: [String]) {
  let flags = parseDataFlags(
    arguments,
    extra: [FlagSpec(name: "json", environment: nil, valueName: nil, help: "Print JSON.")],
    positional: 0)
  let store = openStore(flags, create: false).store
  let keys: [APIKeyRecord]
  do {
    keys = try store.apiKeys()
  } catch {
    fail("cannot read keys: \(error)")
  }
  if flags.bool("json") {
    let list: [JSONValue] = keys.map { key in
      [
        "id": .string(key.id), "team": .string(key.teamId), "label": .string(key.label),
        "createdAt": .string(Timestamp.iso8601(Date(timeIntervalSince1970: key.createdAt))),
        "revokedAt": key.revokedAt.map {
          .string(Timestamp.iso8601(Date(timeIntervalSince1970: $0)))
        } ?? .null,
      ]
    }
    print(prettyJSON(["keys": .array(list)]))
    return
  }
  let rows = keys.map { key in
    [
      key.id, key.teamId, key.label, Timestamp.iso8601(Date(timeIntervalSince1970: key.createdAt)),
      key.revokedAt.map { Timestamp.iso8601(Date(timeIntervalSince1970: $0)) } ?? "-",
    ]
  }
  print(table(header: ["ID", "TEAM", "LABEL", "CREATED", "REVOKED"], rows: rows), terminator: "")
}

private func revokeKey(_ arguments: [String]) {
  let flags = parseDataFlags(arguments, extra: [], positional: 1)
  guard let id = flags.positional.first else { fail("missing key id: asyncqueue keys revoke ID") }
  let store = openStore(flags, create: false).store
  do {
    guard try store.revokeAPIKey(id: id) else {
      fail("no key with id '\(id)'; see 'asyncqueue keys list'")
    }
    print("Revoked key \(id).")
  } catch {
    fail("cannot revoke the key: \(error)")
  }
}

func runSecret(_ arguments: [String]) {
  let usage =
    "usage: asyncqueue secret show [--team TEAM] [--data-dir DIR] [--database URL] [--config FILE]"
  if arguments.first == "--help" || arguments.first == "-h" {
    print(usage)
    print(
      "\nSubcommands:\n  show    Print a team's webhook signing secret (see 'secret show --help').")
    return
  }
  guard arguments.first == "show" else { fail(usage) }
  let teamFlag = FlagSpec(
    name: "team", environment: nil, valueName: "TEAM",
    help: "Team whose secret to print; created when the team has none yet. Default: default.")
  let rest = Array(arguments.dropFirst())
  if rest.contains("--help") {
    print(
      helpText(
        usage: "asyncqueue secret show [--team TEAM] [options]",
        summary: "Print a team's webhook signing secret stored in the service's database.",
        specs: dataDirectoryFlags + [teamFlag]))
    return
  }
  let flags = parseDataFlags(rest, extra: [teamFlag], positional: 0)
  let team = flags.string("team") ?? TeamSecrets.defaultTeam
  checkTeamName(team)
  let opened = openStore(flags, create: false)
  let store = opened.store
  do {
    if team == TeamSecrets.defaultTeam {
      guard let secret = try Service.storedWebhookSecret(in: store) else {
        fail("no webhook secret stored in \(opened.name); start 'asyncqueue serve' once")
      }
      print(secret)
    } else {
      print(try store.teamSecret(team, makeSecret: TeamSecrets.makeSecret))
    }
  } catch {
    fail("cannot read the secret: \(error)")
  }
}
