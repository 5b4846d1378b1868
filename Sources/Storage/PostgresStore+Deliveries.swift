import Foundation
import Support

/// Webhook deliveries, their attempts and task timelines.
extension PostgresStore {
  @discardableResult
  func insertDelivery(_ delivery: DeliveryRecord, _ connection: PostgresConnection)
    throws(StorageError) -> Int64
  {
    let rows = try connection.query(
      """
      INSERT INTO deliveries(task_id, team_id, url, event, payload, attempts, next_attempt_at,
        delivered_at, created_at, last_status, last_error)
      VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, NULL, NULL)
      RETURNING id
      """,
      [
        .text(delivery.taskId), .text(delivery.teamId), .text(delivery.url),
        .text(delivery.event), .blob(delivery.payload), .integer(Int64(delivery.attempts)),
        delivery.nextAttemptAt.map { .real($0) } ?? .null, .real(delivery.createdAt),
      ])
    return rows.first?.first?.integer ?? 0
  }

  public func insertDelivery(_ delivery: DeliveryRecord) throws(StorageError) -> DeliveryRecord {
    try transaction("insertDelivery") { connection throws(StorageError) in
      var stored = delivery
      stored.id = try insertDelivery(delivery, connection)
      try notify(.workDue, connection)
      return stored
    }
  }

  public func pendingDeliveries() throws(StorageError) -> [DeliveryRecord] {
    let rows = try withConnection("pendingDeliveries") { connection throws(StorageError) in
      try connection.query(
        "SELECT \(StoreRows.deliveryColumns) FROM deliveries WHERE next_attempt_at IS NOT NULL")
    }
    return rows.map(StoreRows.delivery)
  }

  /// Saves a delivery's progress and clears its lease.
  public func saveDelivery(_ delivery: DeliveryRecord, attempt: DeliveryAttempt?)
    throws(StorageError)
  {
    try transaction("saveDelivery") { connection throws(StorageError) in
      try connection.update(
        """
        UPDATE deliveries SET attempts = $1, next_attempt_at = $2, delivered_at = $3,
          last_status = $4, last_error = $5, lease_owner = NULL, lease_until = NULL
        WHERE id = $6
        """,
        [
          .integer(Int64(delivery.attempts)), delivery.nextAttemptAt.map { .real($0) } ?? .null,
          delivery.deliveredAt.map { .real($0) } ?? .null,
          delivery.lastStatus.map { .integer(Int64($0)) } ?? .null,
          delivery.lastError.map { .text($0) } ?? .null, .integer(delivery.id),
        ])
      if let attempt {
        try connection.query(
          "INSERT INTO delivery_attempts(delivery_id, at, status_code, latency_ms, error) "
            + "VALUES ($1, $2, $3, $4, $5)",
          [
            .integer(attempt.deliveryId), .real(attempt.at),
            attempt.statusCode.map { .integer(Int64($0)) } ?? .null,
            .integer(Int64(attempt.latencyMs)), attempt.error.map { .text($0) } ?? .null,
          ])
      }
    }
  }

  public func deliveries(taskId: String) throws(StorageError) -> [DeliveryRecord] {
    let rows = try withConnection("deliveries") { connection throws(StorageError) in
      try connection.query(
        "SELECT \(StoreRows.deliveryColumns) FROM deliveries WHERE task_id = $1 ORDER BY id",
        [.text(taskId)])
    }
    return rows.map(StoreRows.delivery)
  }

  public func deliveries(teamId: String, state: String, limit: Int) throws(StorageError)
    -> [DeliveryRecord]
  {
    let condition = StoreRows.deliveryCondition(state: state)
    let rows = try withConnection("deliveries") { connection throws(StorageError) in
      try connection.query(
        """
        SELECT \(StoreRows.deliveryColumns) FROM deliveries WHERE team_id = $1 AND \(condition)
        ORDER BY id DESC LIMIT $2
        """, [.text(teamId), .integer(Int64(limit))])
    }
    return rows.map(StoreRows.delivery)
  }

  public func attempts(deliveryId: Int64) throws(StorageError) -> [DeliveryAttempt] {
    let rows = try withConnection("attempts") { connection throws(StorageError) in
      try connection.query(
        "SELECT at, status_code, latency_ms, error FROM delivery_attempts "
          + "WHERE delivery_id = $1 ORDER BY at, seq",
        [.integer(deliveryId)])
    }
    return rows.map { StoreRows.attempt($0, deliveryId: deliveryId) }
  }

  // MARK: Timeline

  /// Inserts timeline events with one statement.
  func insertEvents(_ events: [TaskEvent], _ connection: PostgresConnection)
    throws(StorageError)
  {
    guard !events.isEmpty else { return }
    var rows: [String] = []
    var parameters: [SQLValue] = []
    for event in events {
      let base = parameters.count
      rows.append("(" + (1...7).map { "$\(base + $0)" }.joined(separator: ", ") + ")")
      parameters += [
        .text(event.taskId), .real(event.at), .text(event.kind),
        event.statusCode.map { .integer(Int64($0)) } ?? .null,
        event.state.map { .text($0) } ?? .null,
        event.latencyMs.map { .integer(Int64($0)) } ?? .null,
        event.error.map { .text($0) } ?? .null,
      ]
    }
    try connection.query(
      "INSERT INTO task_events(task_id, at, kind, status_code, state, latency_ms, error) VALUES "
        + rows.joined(separator: ", "), parameters)
  }

  public func events(taskId: String) throws(StorageError) -> [TaskEvent] {
    let rows = try withConnection("events") { connection throws(StorageError) in
      try connection.query(
        """
        SELECT at, kind, status_code, state, latency_ms, error FROM task_events
        WHERE task_id = $1 ORDER BY at, seq
        """, [.text(taskId)])
    }
    return rows.map { StoreRows.event($0, taskId: taskId) }
  }
}
