import Foundation
import Support

/// Task timelines, idempotency keys and delivery listings.
extension SQLiteStore {
  func insertEvent(_ event: TaskEvent, _ database: SQLiteConnection) throws(StorageError) {
    try database.query(
      """
      INSERT INTO task_events(task_id, at, kind, status_code, state, latency_ms, error)
      VALUES (?, ?, ?, ?, ?, ?, ?)
      """,
      [
        .text(event.taskId), .real(event.at), .text(event.kind),
        event.statusCode.map { .integer(Int64($0)) } ?? .null,
        event.state.map { .text($0) } ?? .null,
        event.latencyMs.map { .integer(Int64($0)) } ?? .null,
        event.error.map { .text($0) } ?? .null,
      ])
  }

  public func events(taskId: String) throws(StorageError) -> [TaskEvent] {
    let rows = try withConnection { database throws(StorageError) in
      try database.query(
        """
        SELECT at, kind, status_code, state, latency_ms, error FROM task_events
        WHERE task_id = ? ORDER BY at, rowid
        """, [.text(taskId)])
    }
    return rows.map { StoreRows.event($0, taskId: taskId) }
  }

  public func deliveries(teamId: String, state: String, limit: Int) throws(StorageError)
    -> [DeliveryRecord]
  {
    let condition = StoreRows.deliveryCondition(state: state)
    let rows = try withConnection { database throws(StorageError) in
      try database.query(
        """
        SELECT \(StoreRows.deliveryColumns) FROM deliveries WHERE team_id = ? AND \(condition)
        ORDER BY id DESC LIMIT ?
        """, [.text(teamId), .integer(Int64(limit))])
    }
    return rows.map(StoreRows.delivery)
  }

  public func insertDelivery(_ delivery: DeliveryRecord) throws(StorageError) -> DeliveryRecord {
    try transaction { database throws(StorageError) in
      try insertDelivery(delivery, database)
      let rows = try database.query("SELECT last_insert_rowid()")
      var stored = delivery
      stored.id = rows.first?.first?.integer ?? 0
      return stored
    }
  }

  public func idempotentTask(teamId: String, key: String, since: Double) throws(StorageError)
    -> (taskId: String, requestHash: String)?
  {
    let rows = try withConnection { database throws(StorageError) in
      try database.query(
        """
        SELECT task_id, request_hash FROM idempotency_keys
        WHERE team_id = ? AND key = ? AND created_at > ?
        """, [.text(teamId), .text(key), .real(since)])
    }
    guard let row = rows.first, let taskId = row[0].text, let hash = row[1].text else {
      return nil
    }
    return (taskId, hash)
  }

  public func insertTask(
    _ task: TaskRecord, idempotencyKey: String, requestHash: String, since: Double
  ) throws(StorageError) -> (taskId: String, requestHash: String)? {
    let document = try encode(task)
    return try transaction { database throws(StorageError) -> (String, String)? in
      let existing = try database.query(
        """
        SELECT task_id, request_hash FROM idempotency_keys
        WHERE team_id = ? AND key = ? AND created_at > ?
        """, [.text(task.teamId), .text(idempotencyKey), .real(since)])
      if let row = existing.first, let taskId = row[0].text, let hash = row[1].text {
        return (taskId, hash)
      }
      // An expired key is replaced.
      try database.query(
        "DELETE FROM idempotency_keys WHERE team_id = ? AND key = ?",
        [.text(task.teamId), .text(idempotencyKey)])
      try database.query(
        """
        INSERT INTO idempotency_keys(team_id, key, request_hash, task_id, created_at)
        VALUES (?, ?, ?, ?, ?)
        """,
        [
          .text(task.teamId), .text(idempotencyKey), .text(requestHash), .text(task.id),
          .real(task.createdAt),
        ])
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
      return nil
    }
  }
}
