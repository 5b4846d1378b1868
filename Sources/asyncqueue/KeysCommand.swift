import API
import Foundation
import Storage
import Support

/// Flags of the commands that work on the data directory directly.
let dataDirectoryFlags: [FlagSpec] = [
  configFlag,
  FlagSpec(
    name: "data-dir", environment: "ASYNCQUEUE_DATA_DIR", valueName: "DIR",
    help: "Data directory of the service. Default: dataDir of the config file, else ./data."),
]

let keysHelp = """
  Usage: asyncqueue keys <create|list|revoke> [options]

  Manage API keys in the data directory. The service need not be stopped: a revoked key
  stops working within 10 seconds.

    keys create --team TEAM [--label LABEL]   Create a key; prints it once.
    keys list [--json]                        List keys: id, team, label, created, revoked.
    keys revoke ID                            Revoke the key with this id.

  Options: --data-dir DIR, --config FILE (see 'asyncqueue serve --help').
  """

/// Opens the database of the data directory named by the flags, the environment or the
/// config file. With `create` false, a missing database ends the program.
private func openStore(_ flags: ParsedFlags, create: Bool) -> (SQLiteStore, String) {
  let settings = resolveSettings(flags)
  let directory = settings.string("dataDir") ?? "./data"
  let path = (directory as NSString).appendingPathComponent("asyncqueue.db")
  if !create && !FileManager.default.fileExists(atPath: path) {
    fail("no database in \(directory); start 'asyncqueue serve --data-dir \(directory)' once")
  }
  // Key hashes and team secrets live here, so new files are readable by the owner only.
  umask(0o077)
  do {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    return (try SQLiteStore(path: path), directory)
  } catch {
    fail("cannot open the database in \(directory): \(error)")
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
  let (store, _) = openStore(flags, create: true)
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
  let (store, _) = openStore(flags, create: false)
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
  let (store, _) = openStore(flags, create: false)
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
  let usage = "usage: asyncqueue secret show [--team TEAM] [--data-dir DIR] [--config FILE]"
  guard arguments.first == "show" else { fail(usage) }
  let teamFlag = FlagSpec(
    name: "team", environment: nil, valueName: "TEAM",
    help: "Team whose secret to print; created when the team has none yet. Default: default.")
  let rest = Array(arguments.dropFirst())
  if rest.contains("--help") {
    print(
      helpText(
        usage: "asyncqueue secret show [--team TEAM] [options]",
        summary: "Print a team's webhook signing secret stored in the data directory.",
        specs: dataDirectoryFlags + [teamFlag]))
    return
  }
  let flags = parseDataFlags(rest, extra: [teamFlag], positional: 0)
  let team = flags.string("team") ?? TeamSecrets.defaultTeam
  checkTeamName(team)
  let (store, directory) = openStore(flags, create: false)
  do {
    if team == TeamSecrets.defaultTeam {
      guard let secret = try Service.storedWebhookSecret(dataDirectory: directory) else {
        fail("no webhook secret stored in \(directory); start 'asyncqueue serve' once")
      }
      print(secret)
    } else {
      print(try store.teamSecret(team, makeSecret: TeamSecrets.makeSecret))
    }
  } catch {
    fail("cannot read the secret: \(error)")
  }
}
