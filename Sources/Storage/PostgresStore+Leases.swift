import Foundation
import Support

/// Task and delivery leases: how nodes divide the due work between them.
extension PostgresStore {
  /// Returns the SQL condition for a lease that is free or expired at `now`.
  /// NOTE: `now` is the caller's clock, so a node whose clock runs ahead by more than the
  /// lease timeout takes leases that are still live.
  private static func leaseIsFree(now placeholder: String) -> String {
    "(lease_owner IS NULL OR lease_until IS NULL OR lease_until <= \(placeholder))"
  }

  public func claimDueTasks(
    node: String, dueBy: Double, now: Double, leaseUntil: Double, limit: Int
  ) throws(StorageError) -> [ClaimedTask] {
    // SKIP LOCKED passes over rows another node is claiming in this moment, and the row locks
    // make the two claims disjoint.
    let rows = try autocommit("claimDueTasks", relaxed: true) { connection throws(StorageError) in
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
    let rows = try autocommit("claimTask", relaxed: true) { connection throws(StorageError) in
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
    let rows = try transaction("renewLeases", relaxed: true) { connection throws(StorageError) in
      let rows = try connection.query(
        "UPDATE tasks SET lease_until = $2 WHERE lease_owner = $1 RETURNING id",
        [.text(node), .real(leaseUntil)])
      // Provider limit slots and webhook deliveries in flight live as long as their node.
      try connection.update(
        "UPDATE limit_slots SET lease_until = $2 WHERE owner = $1 AND lease_until > 0",
        [.text(node), .real(leaseUntil)])
      try connection.update(
        "UPDATE deliveries SET lease_until = $2 WHERE lease_owner = $1 "
          + "AND next_attempt_at IS NOT NULL", [.text(node), .real(leaseUntil)])
      return rows
    }
    return Set(rows.compactMap { $0.first?.text })
  }

  public func saveHeldTask(
    _ task: TaskRecord, node: String, delivery: DeliveryRecord?, events: [TaskEvent]
  ) throws(StorageError) -> Bool {
    let document = try StoreRows.encode(task)
    let write = { (connection: PostgresConnection) throws(StorageError) -> Bool in
      // Locks the row while this node holds the lease, writes it and announces a status
      // change, in one statement.
      let rows = try connection.query(
        """
        WITH held AS (
          SELECT id, status FROM tasks WHERE id = $4 AND lease_owner = $5 FOR UPDATE
        ), saved AS (
          UPDATE tasks SET status = $1, next_run_at = $2, doc = $3
          FROM held WHERE tasks.id = held.id RETURNING held.status AS previous
        )
        SELECT previous, CASE WHEN previous <> $1 THEN pg_notify($6, $7) END FROM saved
        """,
        [
          .text(task.status.rawValue), task.nextRunAt.map { .real($0) } ?? .null,
          .text(document), .text(task.id), .text(node), .text(self.channel),
          .text(Self.statusPayloadPrefix + task.id),
        ])
      return !rows.isEmpty
    }
    if delivery == nil && events.isEmpty {
      return try autocommit("saveHeldTask", write)
    }
    return try transaction("saveHeldTask") { connection throws(StorageError) -> Bool in
      guard try write(connection) else { return false }
      try queue(delivery, events: events, connection)
      return true
    }
  }

  public func releaseTask(id: String, node: String) throws(StorageError) -> HeldTaskRequests? {
    let rows = try autocommit("releaseTask", relaxed: true) { connection throws(StorageError) in
      // Keeps the lease when another node asked for something meanwhile, in one statement.
      try connection.query(
        """
        WITH held AS (
          SELECT id, cancel_requested, wake_requested FROM tasks
          WHERE id = $1 AND lease_owner = $2 FOR UPDATE
        )
        UPDATE tasks SET
          lease_owner = CASE WHEN held.cancel_requested OR held.wake_requested
            THEN tasks.lease_owner END,
          lease_until = CASE WHEN held.cancel_requested OR held.wake_requested
            THEN tasks.lease_until END,
          cancel_requested = false, wake_requested = false
        FROM held WHERE tasks.id = held.id
        RETURNING held.cancel_requested, held.wake_requested
        """, [.text(id), .text(node)])
    }
    guard let row = rows.first else { return nil }
    return HeldTaskRequests(cancel: row[0].integer == 1, wake: row[1].integer == 1)
  }

  /// Clears the task leases `node` holds but those of `keeping`, and announces `workDue` when
  /// there were any. Its delivery leases are left to expire, and so are its limit slots while
  /// it keeps a task.
  public func releaseAllTasks(node: String, keeping: Set<String>) throws(StorageError) {
    // Task ids are UUIDs or letters and digits, so the array literal needs no quoting.
    let keptIds = "{" + keeping.sorted().map { "\"\($0)\"" }.joined(separator: ",") + "}"
    try transaction("releaseAllTasks") { connection throws(StorageError) in
      let released = try connection.update(
        """
        UPDATE tasks SET lease_owner = NULL, lease_until = NULL
        WHERE lease_owner = $1 AND NOT (id = ANY($2::text[]))
        """, [.text(node), .text(keptIds)])
      if keeping.isEmpty {
        try connection.update(
          "UPDATE limit_slots SET lease_until = 0 WHERE owner = $1", [.text(node)])
      }
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
    let rows = try autocommit("claimDueDeliveries", relaxed: true) {
      connection throws(StorageError) in
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
    key: String, limit: Int, interval: Double, node: String, now: Double, leaseUntil: Double
  ) throws(StorageError) -> LimitGrant? {
    guard limit > 0 else { return nil }
    if slotRowsLock.withLock({ slotRows[key] ?? 0 }) < limit {
      // A slot is a row, created free (lease_until 0) the first time a limit is seen.
      try autocommit("acquireLimitSlot", relaxed: true) { connection throws(StorageError) in
        try connection.update(
          """
          INSERT INTO limit_slots(key, slot, owner, lease_until)
          SELECT $1, s, '', 0 FROM generate_series(0, $2::integer - 1) AS s
          ON CONFLICT (key, slot) DO NOTHING
          """, [.text(key), .integer(Int64(limit))])
      }
      slotRowsLock.withLock { slotRows[key] = max(slotRows[key] ?? 0, limit) }
    }
    // SKIP LOCKED lets concurrent takers pick different free rows, and no more than `limit`
    // rows below `limit` exist. The send time is reserved only when a slot was taken: the
    // row lock of its upsert orders the reservations of a key, each one `interval` after the
    // previous one or now, whichever is later.
    let rows = try autocommit("acquireLimitSlot", relaxed: true) {
      connection throws(StorageError) in
      try connection.query(
        """
        WITH taken AS (
          UPDATE limit_slots SET owner = $3, lease_until = $5
          WHERE (key, slot) = (
            SELECT key, slot FROM limit_slots
            WHERE key = $1 AND slot < $2 AND lease_until <= $4
            ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED
          )
          RETURNING slot
        ), reserved AS (
          INSERT INTO send_times AS reserved (key, next_at)
          SELECT $1::text, extract(epoch FROM clock_timestamp())::double precision
            + $6::double precision
          FROM taken
          ON CONFLICT (key) DO UPDATE SET next_at = greatest(
            reserved.next_at, extract(epoch FROM clock_timestamp())::double precision
          ) + $6::double precision
          RETURNING greatest(0, reserved.next_at - $6::double precision
            - extract(epoch FROM clock_timestamp())::double precision) AS wait
        )
        SELECT taken.slot, reserved.wait FROM taken LEFT JOIN reserved ON true
        """,
        [
          .text(key), .integer(Int64(limit)), .text(node), .real(now), .real(leaseUntil),
          .real(interval),
        ])
    }
    guard let row = rows.first, let slot = row[0].integer else { return nil }
    return LimitGrant(slot: Int(slot), wait: row[1].real ?? 0)
  }

  public func releaseLimitSlot(key: String, slot: Int, node: String) throws(StorageError) {
    try autocommit("releaseLimitSlot", relaxed: true) { connection throws(StorageError) in
      try connection.update(
        "UPDATE limit_slots SET lease_until = 0 WHERE key = $1 AND slot = $2 AND owner = $3",
        [.text(key), .integer(Int64(slot)), .text(node)])
    }
  }

}
