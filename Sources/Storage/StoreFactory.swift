import Foundation
import Support

/// Opens the store that a `--database` value names.
public enum StoreFactory {
  /// The accepted `--database` forms, for help text and errors.
  public static let acceptedForms =
    "a file path, sqlite://PATH, or postgres://USER:PASSWORD@HOST:PORT/DATABASE "
    + "(postgresql:// also works)"

  /// Opens and migrates the store. Nil or empty opens `asyncqueue.db` in `dataDirectory`.
  /// `sqlite://PATH` or a plain path opens that SQLite file. `postgres://…` or
  /// `postgresql://…` opens a `PostgresStore` with a pool of `poolSize` connections.
  public static func open(
    database: String?, dataDirectory: String, poolSize: Int = 8, logger: Logger? = nil
  ) throws(StorageError) -> any TaskStore {
    switch try location(database: database, dataDirectory: dataDirectory) {
    case .sqlite(let path): return try SQLiteStore(path: path, logger: logger)
    case .postgres(let url): return try PostgresStore(url: url, poolSize: poolSize, logger: logger)
    }
  }

  /// The location of a migrated store and its schema version.
  public struct MigrationReport: Sendable, Equatable {
    /// `sqlite` or `postgres`.
    public var backend: String
    /// The file path, or the URL with its password masked.
    public var location: String
    public var schemaVersion: Int
  }

  /// Opens the store, which applies missing migrations, closes it and reports the version.
  public static func migrate(database: String?, dataDirectory: String) throws(StorageError)
    -> MigrationReport
  {
    switch try location(database: database, dataDirectory: dataDirectory) {
    case .sqlite(let path):
      let store = try SQLiteStore(path: path)
      return MigrationReport(backend: "sqlite", location: path, schemaVersion: store.schemaVersion)
    case .postgres(let url):
      let store = try PostgresStore(url: url, poolSize: 1)
      defer { store.close() }
      return MigrationReport(
        backend: "postgres", location: store.maskedURL, schemaVersion: store.schemaVersion)
    }
  }

  enum Location: Equatable {
    case sqlite(path: String)
    case postgres(url: String)
  }

  static func location(database: String?, dataDirectory: String) throws(StorageError) -> Location {
    let value = database?.trimmingCharacters(in: .whitespaces) ?? ""
    if value.isEmpty { return .sqlite(path: dataDirectory + "/asyncqueue.db") }
    if value.hasPrefix("postgres://") || value.hasPrefix("postgresql://") {
      return .postgres(url: value)
    }
    if value.hasPrefix("sqlite://") {
      let path = String(value.dropFirst("sqlite://".count))
      guard !path.isEmpty else {
        throw StorageError("invalid --database value 'sqlite://': expected \(acceptedForms)")
      }
      return .sqlite(path: path)
    }
    if let scheme = value.range(of: "://") {
      throw StorageError(
        "invalid --database value: the scheme '\(value[..<scheme.lowerBound])' is not "
          + "supported; expected \(acceptedForms)")
    }
    return .sqlite(path: value)
  }
}
