import CSQLite
import Foundation
import Support

/// Copies the write-ahead log back into the database file on its own thread and connection.
///
/// SQLite's automatic checkpoint runs inside a commit, under the store's lock, so every queued
/// caller waited for the copy and its fsync. A passive checkpoint here runs beside the writers.
final class SQLiteCheckpointer: @unchecked Sendable {
  /// WAL size in pages that wakes the thread before its timer. SQLite's default is 1,000, but
  /// 10,000 gave about 14 % more polls on B1, as a page that commits keep changing is copied once.
  static let pageThreshold: Int32 = 10_000
  /// Maximum seconds between checkpoints while commits are few.
  static let interval: TimeInterval = 1

  private let connection: SQLiteConnection
  private let logger: Logger?
  private let condition = NSCondition()
  // Guarded by `condition`.
  private var requested = false
  private var stopping = false
  // Used by the checkpoint thread only.
  private var lastFailure: String?
  private let finished = DispatchSemaphore(value: 0)

  init(path: String, logger: Logger?) throws(StorageError) {
    connection = try SQLiteConnection(path: path)
    self.logger = logger
    let thread = Thread { [self] in run() }
    thread.name = "asyncqueue-sqlite-checkpoint"
    thread.start()
  }

  /// Wakes the thread for a checkpoint soon. Called from the WAL hook after a commit.
  func request() {
    condition.lock()
    requested = true
    condition.signal()
    condition.unlock()
  }

  /// Ends the thread after any checkpoint in progress. Call once.
  func stop() {
    condition.lock()
    stopping = true
    condition.signal()
    condition.unlock()
    finished.wait()
  }

  private func run() {
    condition.lock()
    while !stopping {
      if !requested { _ = condition.wait(until: Date(timeIntervalSinceNow: Self.interval)) }
      if stopping { break }
      requested = false
      condition.unlock()
      checkpoint()
      condition.lock()
    }
    condition.unlock()
    finished.signal()
  }

  private func checkpoint() {
    do throws(StorageError) {
      try connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
      if lastFailure != nil {
        lastFailure = nil
        logger?.info("SQLite checkpoint succeeded again", [("database", connection.path)])
      }
    } catch {
      // Each distinct failure is logged once. The next round retries, and the write-ahead log
      // grows meanwhile.
      guard error.message != lastFailure else { return }
      lastFailure = error.message
      logger?.warn(
        "SQLite checkpoint failed; the write-ahead log grows until one succeeds",
        [("database", connection.path), ("error", error.message)])
    }
  }
}

/// Called by SQLite after each commit with the WAL's size in pages. It runs inside the commit,
/// so it only signals the checkpoint thread.
let walCommitHook:
  @convention(c) (
    UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, Int32
  ) -> Int32 = { context, _, _, pages in
    guard let context, pages >= SQLiteCheckpointer.pageThreshold else { return SQLITE_OK }
    Unmanaged<SQLiteCheckpointer>.fromOpaque(context).takeUnretainedValue().request()
    return SQLITE_OK
  }
