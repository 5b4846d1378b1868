import API
import Foundation
import Storage

let migrateHelp = """
  Usage: asyncqueue migrate [--data-dir DIR] [--database URL] [--config FILE]

  Create the service's database or bring its schema up to date, then print the backend and
  the schema version. 'asyncqueue serve' does the same at each start; run this before
  starting a new version on several services that share a PostgreSQL database. Several
  services or migrate commands may migrate one database at the same time.

  Options: --data-dir DIR, --database URL, --config FILE (see 'asyncqueue serve --help').
  """

func runMigrate(_ arguments: [String]) {
  if arguments.contains("--help") || arguments.contains("-h") {
    print(migrateHelp)
    return
  }
  let flags: ParsedFlags
  do {
    flags = try ParsedFlags(
      arguments: arguments, specs: dataDirectoryFlags,
      environment: ProcessInfo.processInfo.environment)
  } catch {
    fail("\(error)")
  }
  let opened = openStore(flags, create: true)
  let version = String(opened.store.schemaVersion)
  let database = opened.settings.string("database")
  let directory = opened.settings.string("dataDir") ?? "./data"
  let fields =
    Service.describeDatabase(database, dataDirectory: directory)
    + [("schema_version", version)]
  print(fields.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
}
