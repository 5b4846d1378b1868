import Foundation
import Support

/// Task and delivery leases: how nodes divide the due work between them.
extension PostgresStore {
  /// Returns the SQL condition for a lease that is free or expired at `now`.
  private static func leaseIsFree(now placeholder: String) -> String {
    "(lease_owner IS NULL OR lease_until IS NULL OR lease_until <= \(placeholder))"
  }

  public func claimDueTasks(
    node: String, dueBy: Double, now: Double, leaseUntil: Double, limit: Int
  ) throws(StorageError) -> [ClaimedTask] {
    // SKIP LOCKED passes over rows another node is claiming in this moment, and the row locks
    // make the two claims disjoint.
    let rows = try transaction("claimDueTasks") { connection throws(StorageError) in
      try connection.query(
        """
        UPDATE tasks SET lease_owner = $1, lease_until = $2, cancel_requested = false,
          wake_requested = false
        FROM (
          SELECT id, cancel_requested FROM tasks
          WHERE next_run_at <= $3 AND status NOT IN \(StoreRows.terminalStatuses)
            AND \(Self.leaseIsFree(now: "$4"))
          ORDER BY next_run_at, priority DESC LIMIT $5
          FOR UPDATE SKIP LOCKED
        ) AS due
        WHERE tasks.id = due.id
        RETURNING tasks.doc, due.cancel_requested, tasks.next_run_at, tasks.priority
        """,
        [.text(node), .real(leaseUntil), .real(dueBy), .real(now), .integer(Int64(limit))])
    }
    // RETURNING has no order of its own.
    let ordered = rows.sorted {
      ($0[2].real ?? 0, -($0[3].integer ?? 0)) < ($1[2].real ?? 0, -($1[3].integer ?? 0))
    }
    var claimed: [ClaimedTask] = []
    for row in ordered {
      var task = try StoreRows.decode(row[0].text ?? "")
      // A wake or cancel from another node moves the column, not the document.
      task.nextRunAt = row[2].real
      claimed.append(ClaimedTask(task: task, cancelRequested: row[1].integer == 1))
    }
    return claimed
  }

  public func claimTask(id: String, node: String, now: Double, leaseUntil: Double)
    throws(StorageError) -> ClaimedTask?
  {
    // A node may claim again a task it already holds, which extends its lease.
    let rows = try transaction("claimTask") { connection throws(StorageError) in
      try connection.query(
        """
        UPDATE tasks SET lease_owner = $2, lease_until = $3, cancel_requested = false,
          wake_requested = false
        FROM (
          SELECT id, cancel_requested FROM tasks
          WHERE id = $1 AND status NOT IN \(StoreRows.terminalStatuses)
            AND (lease_owner = $2 OR \(Self.leaseIsFree(now: "$4")))
          FOR UPDATE
        ) AS free
        WHERE tasks.id = free.id
        RETURNING tasks.doc, free.cancel_requested, tasks.next_run_at
        """, [.text(id), .text(node), .real(leaseUntil), .real(now)])
    }
    guard let row = rows.first else { return nil }
    var task = try StoreRows.decode(row[0].text ?? "")
    // A wake or cancel from another node moves the column, not the document.
    task.nextRunAt = row[2].real
    return ClaimedTask(task: task, cancelRequested: row[1].integer == 1)
  }

  public func renewLeases(node: String, leaseUntil: Double) throws(StorageError) -> Set<String> {
    let rows = try transaction("renewLeases") { connection throws(StorageError) in
      try connection.query(
        "UPDATE tasks SET lease_until = $2 WHERE lease_owner = $1 RETURNING id",
        [.text(node), .real(leaseUntil)])
    }
    return Set(rows.compactMap { $0.first?.text })
  }

  public func saveHeldTask(
    _ task: TaskRecord, node: String, delivery: DeliveryRecord?, events: [TaskEvent]
  ) throws(StorageError) -> Bool {
    let document = try StoreRows.encode(task)
    return try transaction("saveHeldTask") { connection throws(StorageError) -> Bool in
      let rows = try connection.query(
        "SELECT status FROM tasks WHERE id = $1 AND lease_owner = $2 FOR UPDATE",
        [.text(task.id), .text(node)])
      guard let previous = rows.first?.first?.text else { return false }
      try write(task, document: document, previousStatus: previous, connection)
      try queue(delivery, events: events, connection)
      return true
    }
  }

  public func releaseTask(id: String, node: String) throws(StorageError) -> HeldTaskRequests? {
    try transaction("releaseTask") { connection throws(StorageError) -> HeldTaskRequests? in
      let rows = try connection.query(
        """
        SELECT cancel_requested, wake_requested FROM tasks
        WHERE id = $1 AND lease_owner = $2 FOR UPDATE
        """, [.text(id), .text(node)])
      guard let row = rows.first else { return nil }
      let requests = HeldTaskRequests(cancel: row[0].integer == 1, wake: row[1].integer == 1)
      if requests.isEmpty {
        try connection.update(
          "UPDATE tasks SET lease_owner = NULL, lease_until = NULL WHERE id = $1", [.text(id)])
      } else {
        try connection.update(
          "UPDATE tasks SET cancel_requested = false, wake_requested = false WHERE id = $1",
          [.text(id)])
      }
      return requests
    }
  }

  /// Clears the task leases `node` holds and announces `workDue` when there were any. Its
  /// delivery leases are left to expire.
  public func releaseAllTasks(node: String) throws(StorageError) {
    try transaction("releaseAllTasks") { connection throws(StorageError) in
      let released = try connection.update(
        "UPDATE tasks SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
        [.text(node)])
      if released > 0 { try notify(.workDue, connection) }
    }
  }

  public func requestCancel(id: String, now: Double) throws(StorageError) {
    try transaction("requestCancel") { connection throws(StorageError) in
      let changed = try connection.update(
        """
        UPDATE tasks SET cancel_requested = true,
          next_run_at = CASE WHEN \(Self.leaseIsFree(now: "$2"))
            THEN least(coalesce(next_run_at, $2), $2) ELSE next_run_at END
        WHERE id = $1 AND status NOT IN \(StoreRows.terminalStatuses)
        """, [.text(id), .real(now)])
      if changed > 0 { try notify(.workDue, connection) }
    }
  }

  public func requestWake(id: String, now: Double) throws(StorageError) {
    try transaction("requestWake") { connection throws(StorageError) in
      let changed = try connection.update(
        """
        UPDATE tasks SET
          wake_requested = CASE WHEN \(Self.leaseIsFree(now: "$2"))
            THEN wake_requested ELSE true END,
          next_run_at = CASE WHEN \(Self.leaseIsFree(now: "$2"))
            THEN least(coalesce(next_run_at, $2), $2) ELSE next_run_at END
        WHERE id = $1 AND status NOT IN \(StoreRows.terminalStatuses)
        """, [.text(id), .real(now)])
      if changed > 0 { try notify(.workDue, connection) }
    }
  }

  // MARK: Deliveries

  public func claimDueDeliveries(node: String, now: Double, leaseUntil: Double, limit: Int)
    throws(StorageError) -> [DeliveryRecord]
  {
    let rows = try transaction("claimDueDeliveries") { connection throws(StorageError) in
      try connection.query(
        """
        UPDATE deliveries SET lease_owner = $1, lease_until = $2
        WHERE id IN (
          SELECT id FROM deliveries
          WHERE next_attempt_at <= $3 AND \(Self.leaseIsFree(now: "$3"))
          ORDER BY next_attempt_at, id LIMIT $4
          FOR UPDATE SKIP LOCKED
        )
        RETURNING \(StoreRows.deliveryColumns)
        """, [.text(node), .real(leaseUntil), .real(now), .integer(Int64(limit))])
    }
    return rows.map(StoreRows.delivery).sorted {
      ($0.nextAttemptAt ?? 0, $0.id) < ($1.nextAttemptAt ?? 0, $1.id)
    }
  }

  // MARK: Provider limits

  public func acquireLimitSlot(
    key: String, limit: Int, node: String, now: Double, leaseUntil: Double
  ) throws(StorageError) -> Int? {
    guard limit > 0 else { return nil }
    return try transaction("acquireLimitSlot") { connection throws(StorageError) -> Int? in
      // The lock serializes takers of one key, so the count and the insert see the same slots.
      try connection.query(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        [.integer(Int64(Self.limitLockKey)), .text(key)])
      let rows = try connection.query(
        """
        WITH live AS (
          SELECT slot FROM limit_slots WHERE key = $1 AND lease_until > $4
        ), free AS (
          SELECT s AS slot FROM generate_series(0, $2::integer - 1) AS s
          WHERE s NOT IN (SELECT slot FROM live) AND (SELECT count(*) FROM live) < $2::integer
          ORDER BY s LIMIT 1
        )
        INSERT INTO limit_slots(key, slot, owner, lease_until)
        SELECT $1, slot, $3, $5 FROM free
        ON CONFLICT (key, slot) DO UPDATE SET owner = excluded.owner,
          lease_until = excluded.lease_until
        RETURNING slot
        """,
        [.text(key), .integer(Int64(limit)), .text(node), .real(now), .real(leaseUntil)])
      return rows.first?.first?.integer.map { Int($0) }
    }
  }

  /// The first key of the advisory lock that serializes takers of a limit's slots.
  static let limitLockKey: Int32 = 0x6171_6c6d

  public func releaseLimitSlot(key: String, slot: Int, node: String) throws(StorageError) {
    try transaction("releaseLimitSlot") { connection throws(StorageError) in
      try connection.update(
        "DELETE FROM limit_slots WHERE key = $1 AND slot = $2 AND owner = $3",
        [.text(key), .integer(Int64(slot)), .text(node)])
    }
  }

  public func reserveSendTime(key: String, interval: Double) throws(StorageError) -> Double {
    // One statement: the row lock of the upsert orders concurrent reservations of a key, and
    // each takes the slot after the previous one or now, whichever is later.
    let rows = try transaction("reserveSendTime") { connection throws(StorageError) in
      try connection.query(
        """
        INSERT INTO send_times AS reserved (key, next_at)
        SELECT $1::text, extract(epoch FROM clock_timestamp())::double precision + $2::double precision
        ON CONFLICT (key) DO UPDATE SET next_at = greatest(
          reserved.next_at, extract(epoch FROM clock_timestamp())::double precision
        ) + $2::double precision
        RETURNING greatest(0, reserved.next_at - $2::double precision
          - extract(epoch FROM clock_timestamp())::double precision)
        """, [.text(key), .real(interval)])
    }
    return rows.first?.first?.real ?? 0
  }
}
