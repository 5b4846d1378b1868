import Foundation
import Support

/// Idempotency keys, the token vault, one-time task handles and pending resolutions.
extension PostgresStore {
  // MARK: Idempotency keys

  private static let idempotencySelect = """
    SELECT task_id, request_hash FROM idempotency_keys
    WHERE team_id = $1 AND key = $2 AND created_at > $3
    """

  public func idempotentTask(teamId: String, key: String, since: Double) throws(StorageError)
    -> (taskId: String, requestHash: String)?
  {
    let rows = try withConnection("idempotentTask") { connection throws(StorageError) in
      try connection.query(Self.idempotencySelect, [.text(teamId), .text(key), .real(since)])
    }
    guard let row = rows.first, let taskId = row[0].text, let hash = row[1].text else {
      return nil
    }
    return (taskId, hash)
  }

  public func insertTask(
    _ task: TaskRecord, idempotencyKey: String, requestHash: String, since: Double
  ) throws(StorageError) -> (taskId: String, requestHash: String)? {
    let document = try StoreRows.encode(task)
    let key: [SQLValue] = [.text(task.teamId), .text(idempotencyKey)]
    return try transaction("insertTask") { connection throws(StorageError) -> (String, String)? in
      // The row lock (or, for a new key, the primary key) makes a concurrent request with the
      // same key wait here until this transaction ends.
      try connection.query(
        """
        INSERT INTO idempotency_keys(team_id, key, request_hash, task_id, created_at)
        VALUES ($1, $2, '', '', 0) ON CONFLICT (team_id, key) DO NOTHING
        """, key)
      let existing = try connection.query(
        Self.idempotencySelect + " FOR UPDATE", key + [.real(since)])
      if let row = existing.first, let taskId = row[0].text, let hash = row[1].text {
        return (taskId, hash)
      }
      // A new or expired key is replaced.
      try connection.update(
        """
        UPDATE idempotency_keys SET request_hash = $3, task_id = $4, created_at = $5
        WHERE team_id = $1 AND key = $2
        """, key + [.text(requestHash), .text(task.id), .real(task.createdAt)])
      try connection.query(Self.insertTaskSQL, Self.taskParameters(task, document: document))
      try notify(.workDue, connection)
      return nil
    }
  }

  // MARK: Vault

  public func insertToken(_ token: VaultToken) throws(StorageError) {
    try transaction("insertToken") { connection throws(StorageError) in
      try connection.query(
        """
        INSERT INTO vault_tokens(id, team_id, name, sealed_value, created_at)
        VALUES ($1, $2, $3, $4, $5)
        """,
        [
          .text(token.id), .text(token.teamId), .text(token.name), .text(token.sealedValue),
          .real(token.createdAt),
        ])
    }
  }

  public func token(id: String) throws(StorageError) -> VaultToken? {
    let rows = try withConnection("token") { connection throws(StorageError) in
      try connection.query(
        "SELECT id, team_id, name, sealed_value, created_at FROM vault_tokens WHERE id = $1",
        [.text(id)])
    }
    return rows.first.map(StoreRows.token)
  }

  public func tokens(teamId: String) throws(StorageError) -> [VaultToken] {
    let rows = try withConnection("tokens") { connection throws(StorageError) in
      try connection.query(
        """
        SELECT id, team_id, name, sealed_value, created_at FROM vault_tokens
        WHERE team_id = $1 ORDER BY created_at DESC
        """, [.text(teamId)])
    }
    return rows.map(StoreRows.token)
  }

  /// Deletes a team's token; returns whether it existed.
  public func deleteToken(id: String, teamId: String) throws(StorageError) -> Bool {
    try transaction("deleteToken") { connection throws(StorageError) in
      try connection.update(
        "DELETE FROM vault_tokens WHERE id = $1 AND team_id = $2", [.text(id), .text(teamId)])
        == 1
    }
  }

  // MARK: Handles and resolutions

  /// Inserts a task with its one-time handles (hashes of signal tokens and callback ids).
  public func insertTask(_ task: TaskRecord, handles: [(hash: String, kind: String)])
    throws(StorageError)
  {
    let document = try StoreRows.encode(task)
    try transaction("insertTask") { connection throws(StorageError) in
      try connection.query(Self.insertTaskSQL, Self.taskParameters(task, document: document))
      try insertHandles(handles, taskId: task.id, connection)
      try notify(.workDue, connection)
    }
  }

  /// Stores one-time handles for a task that already exists.
  public func insertHandles(_ handles: [(hash: String, kind: String)], taskId: String)
    throws(StorageError)
  {
    try transaction("insertHandles") { connection throws(StorageError) in
      try insertHandles(handles, taskId: taskId, connection)
    }
  }

  private func insertHandles(
    _ handles: [(hash: String, kind: String)], taskId: String, _ connection: PostgresConnection
  ) throws(StorageError) {
    for handle in handles {
      try connection.query(
        "INSERT INTO task_handles(handle_hash, task_id, kind, used_at) VALUES ($1, $2, $3, NULL)",
        [.text(handle.hash), .text(taskId), .text(handle.kind)])
    }
  }

  /// Marks a handle used and records the resolution, in one transaction. Returns the task id,
  /// or nil when the handle is unknown, of another kind, or already used.
  public func consumeHandle(hash: String, kind: String, resolution: (String) -> TaskResolution)
    throws(StorageError) -> String?
  {
    try transaction("consumeHandle") { connection throws(StorageError) -> String? in
      // One statement marks the handle used, so two requests with one token cannot both win.
      let rows = try connection.query(
        """
        UPDATE task_handles SET used_at = $3
        WHERE handle_hash = $1 AND kind = $2 AND used_at IS NULL
        RETURNING task_id
        """, [.text(hash), .text(kind), .real(Timestamp.now())])
      guard let taskId = rows.first?.first?.text else { return nil }
      let record = resolution(taskId)
      try connection.query(
        """
        INSERT INTO task_resolutions(task_id, kind, status, result, error)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (task_id) DO UPDATE SET kind = excluded.kind, status = excluded.status,
          result = excluded.result, error = excluded.error
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
    let rows = try withConnection("pendingResolution") { connection throws(StorageError) in
      try connection.query(
        "SELECT kind, status, result, error FROM task_resolutions WHERE task_id = $1",
        [.text(taskId)])
    }
    return rows.first.map { StoreRows.resolution($0, taskId: taskId) }
  }

  public func deleteResolution(taskId: String) throws(StorageError) {
    try transaction("deleteResolution") { connection throws(StorageError) in
      try connection.update("DELETE FROM task_resolutions WHERE task_id = $1", [.text(taskId)])
    }
  }
}
