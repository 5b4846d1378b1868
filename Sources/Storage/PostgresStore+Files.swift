import Foundation
import Support

/// Result files (images, audio) kept in the database, so every node can serve them.
extension PostgresStore {
  public func saveResultFile(taskId: String, name: String, bytes: [UInt8]) throws(StorageError) {
    try withConnection("saveResultFile") { connection throws(StorageError) in
      try connection.query(
        """
        INSERT INTO result_files(task_id, name, bytes) VALUES ($1, $2, $3)
        ON CONFLICT (task_id, name) DO UPDATE SET bytes = excluded.bytes
        """, [.text(taskId), .text(name), .blob(bytes)])
    }
  }

  public func resultFile(taskId: String, name: String) throws(StorageError) -> [UInt8]? {
    let rows = try withConnection("resultFile") { connection throws(StorageError) in
      try connection.query(
        "SELECT bytes FROM result_files WHERE task_id = $1 AND name = $2",
        [.text(taskId), .text(name)])
    }
    guard case .blob(let bytes) = rows.first?.first else { return nil }
    return bytes
  }
}
