import Foundation
import Support

/// A credential stored in the token vault. `sealedValue` is the encrypted secret.
public struct VaultToken: Sendable, Equatable {
  public var id: String
  public var teamId: String
  public var name: String
  public var sealedValue: String
  public var createdAt: Double

  public init(id: String, teamId: String, name: String, sealedValue: String, createdAt: Double) {
    self.id = id
    self.teamId = teamId
    self.name = name
    self.sealedValue = sealedValue
    self.createdAt = createdAt
  }
}

/// A signal or callback that arrived for a task and is not yet applied to it.
public struct TaskResolution: Sendable, Equatable {
  public var taskId: String
  /// `signal` or `callback`.
  public var kind: String
  /// `completed` or `failed`.
  public var status: String
  public var result: JSONValue?
  public var error: String?

  public init(taskId: String, kind: String, status: String, result: JSONValue?, error: String?) {
    self.taskId = taskId
    self.kind = kind
    self.status = status
    self.result = result
    self.error = error
  }
}

/// The token vault, one-time task handles (signal tokens, callback ids) and pending
/// resolutions.
extension SQLiteStore {
  // MARK: Vault

  public func insertToken(_ token: VaultToken) throws(StorageError) {
    try withConnection { database throws(StorageError) in
      try database.query(
        "INSERT INTO vault_tokens(id, team_id, name, sealed_value, created_at) VALUES (?, ?, ?, ?, ?)",
        [
          .text(token.id), .text(token.teamId), .text(token.name), .text(token.sealedValue),
          .real(token.createdAt),
        ])
    }
  }

  public func token(id: String) throws(StorageError) -> VaultToken? {
    let rows = try withConnection { database throws(StorageError) in
      try database.query(
        "SELECT id, team_id, name, sealed_value, created_at FROM vault_tokens WHERE id = ?",
        [.text(id)])
    }
    return rows.first.map(StoreRows.token)
  }

  public func tokens(teamId: String) throws(StorageError) -> [VaultToken] {
    let rows = try withConnection { database throws(StorageError) in
      try database.query(
        """
        SELECT id, team_id, name, sealed_value, created_at FROM vault_tokens
        WHERE team_id = ? ORDER BY created_at DESC
        """, [.text(teamId)])
    }
    return rows.map(StoreRows.token)
  }

  /// Deletes a team's token; returns whether it existed.
  public func deleteToken(id: String, teamId: String) throws(StorageError) -> Bool {
    try withConnection { database throws(StorageError) in
      try database.query(
        "DELETE FROM vault_tokens WHERE id = ? AND team_id = ?", [.text(id), .text(teamId)])
      return database.changes == 1
    }
  }

  // MARK: Handles and resolutions

  /// Inserts a task with its one-time handles (hashes of signal tokens and callback ids).
  public func insertTask(_ task: TaskRecord, handles: [(hash: String, kind: String)])
    throws(StorageError)
  {
    let document = try encode(task)
    try transaction { database throws(StorageError) in
      try database.query(
        """
        INSERT INTO tasks(id, team_id, status, provider, created_at, next_run_at, doc)
        VALUES (?, ?, ?, ?, ?, ?, ?)
        """,
        [
          .text(task.id), .text(task.teamId), .text(task.status.rawValue),
          task.provider.map { .text($0) } ?? .null, .real(task.createdAt),
          task.nextRunAt.map { .real($0) } ?? .null, .text(document),
        ])
      for handle in handles {
        try database.query(
          "INSERT INTO task_handles(handle_hash, task_id, kind, used_at) VALUES (?, ?, ?, NULL)",
          [.text(handle.hash), .text(task.id), .text(handle.kind)])
      }
    }
  }

  /// Stores one-time handles for a task that already exists.
  public func insertHandles(_ handles: [(hash: String, kind: String)], taskId: String)
    throws(StorageError)
  {
    try transaction { database throws(StorageError) in
      for handle in handles {
        try database.query(
          "INSERT INTO task_handles(handle_hash, task_id, kind, used_at) VALUES (?, ?, ?, NULL)",
          [.text(handle.hash), .text(taskId), .text(handle.kind)])
      }
    }
  }

  /// Marks a handle used and records the resolution, in one transaction. Returns the task id,
  /// or nil when the handle is unknown, of another kind, or already used.
  public func consumeHandle(hash: String, kind: String, resolution: (String) -> TaskResolution)
    throws(StorageError) -> String?
  {
    try transaction { database throws(StorageError) -> String? in
      let rows = try database.query(
        "SELECT task_id FROM task_handles WHERE handle_hash = ? AND kind = ? AND used_at IS NULL",
        [.text(hash), .text(kind)])
      guard let taskId = rows.first?.first?.text else { return nil }
      try database.query(
        "UPDATE task_handles SET used_at = ? WHERE handle_hash = ?",
        [.real(Timestamp.now()), .text(hash)])
      let record = resolution(taskId)
      try database.query(
        """
        INSERT OR REPLACE INTO task_resolutions(task_id, kind, status, result, error)
        VALUES (?, ?, ?, ?, ?)
        """,
        [
          .text(taskId), .text(record.kind), .text(record.status),
          record.result.map { .text($0.serialized()) } ?? .null,
          record.error.map { .text($0) } ?? .null,
        ])
      return taskId
    }
  }

  public func pendingResolution(taskId: String) throws(StorageError) -> TaskResolution? {
    let rows = try withConnection { database throws(StorageError) in
      try database.query(
        "SELECT kind, status, result, error FROM task_resolutions WHERE task_id = ?",
        [.text(taskId)])
    }
    return rows.first.map { StoreRows.resolution($0, taskId: taskId) }
  }

  public func deleteResolution(taskId: String) throws(StorageError) {
    try withConnection { database throws(StorageError) in
      try database.query("DELETE FROM task_resolutions WHERE task_id = ?", [.text(taskId)])
    }
  }
}
