import Foundation
import Storage
import Support

extension Service {
  /// The SQLite database's file name inside the data directory.
  public static let sqliteFileName = "asyncqueue.db"

  /// Opens the store the `database` setting names and applies its schema migrations. That is
  /// SQLite in `dataDirectory` when `database` is nil or empty, else the PostgreSQL database
  /// of a `postgres://` or `postgresql://` URL. Every command that touches stored data opens
  /// its store here. The caller creates `dataDirectory`. `logger` receives the store's
  /// background failures.
  public static func openStore(database: String?, dataDirectory: String, logger: Logger? = nil)
    throws -> any TaskStore
  {
    guard let database, !database.isEmpty else {
      let path = (dataDirectory as NSString).appendingPathComponent(sqliteFileName)
      return try SQLiteStore(path: path, logger: logger)
    }
    DatabaseURL.registerSecrets(database)
    guard DatabaseURL.isPostgres(database) else {
      throw ServiceError(
        message:
          "invalid database URL \(DatabaseURL.masked(database)): expected postgres:// or "
          + "postgresql://, or leave --database empty for SQLite")
    }
    return try StoreFactory.open(database: database, dataDirectory: dataDirectory, logger: logger)
  }

  /// Returns the backend name and location of a `database` setting for logs and
  /// `asyncqueue migrate`, with any password masked.
  public static func describeDatabase(_ database: String?, dataDirectory: String? = nil)
    -> [(String, String)]
  {
    guard let database, !database.isEmpty else {
      var fields = [("backend", "sqlite")]
      if let dataDirectory {
        fields.append(
          ("path", (dataDirectory as NSString).appendingPathComponent(sqliteFileName)))
      }
      return fields
    }
    return [("backend", "postgresql"), ("url", DatabaseURL.masked(database))]
  }
}
