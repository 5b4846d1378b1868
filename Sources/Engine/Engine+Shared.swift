import Foundation
import Storage
import Support

/// Shared mode: several nodes on one database. Each node claims due tasks with a lease, runs
/// their steps, and gives each lease back when the task's next step is not due soon, so any
/// node may take it next. A node that dies stops renewing its leases. Once they expire, the
/// others claim its tasks and handle a request in flight as after a restart.
extension Engine {
  /// How often a node looks for due work when no notice wakes it.
  static let claimInterval = 0.1
  /// Tasks due within this many seconds are claimed early and kept between steps.
  /// NOTE: an estimate, not measured: longer saves commits per poll, shorter spreads tasks
  /// over the nodes more often.
  static let claimHorizon = 0.25
  /// Tasks claimed in one statement, at most.
  static let claimBatch = 128

  func startShared(_ shared: SharedTaskStore) throws(StorageError) {
    try shared.startListening { [weak self] notice in self?.handleNotice(notice) }
    try webhooks.start()
    let thread = Thread { [unowned self] in self.claimLoop(shared) }
    thread.name = "asyncqueue-claims"
    claimThread = thread
    thread.start()
    logger.info(
      "sharing work with other nodes through the database",
      [("node", config.nodeId), ("leaseTimeout", String(config.leaseTimeout))])
  }

  /// Gives the leases of idle tasks back after a clean stop, so the other nodes take them at
  /// once. A step still running past the grace period keeps its lease until it expires, so
  /// no other node runs the task while it might still send a request.
  func stopShared(_ shared: SharedTaskStore) {
    shared.stopListening()
    sharedLimiter?.stop()
    let busy = lock.withLock { running }
    do {
      try shared.releaseAllTasks(node: config.nodeId, keeping: busy)
    } catch {
      logger.warn(
        "cannot release task leases; other nodes take the tasks when the leases expire",
        [("error", "\(error)")])
    }
  }

  private func handleNotice(_ notice: StoreNotice) {
    switch notice {
    case .workDue:
      claimWake.signal()
      webhooks.wakeUp()
    case .statusChanged(let taskId):
      let released = lock.withLock { waiters.removeValue(forKey: taskId) ?? [] }
      released.forEach { $0.signal() }
    }
  }

  // MARK: Claims

  private func claimLoop(_ shared: SharedTaskStore) {
    var renewedAt = 0.0
    var reportedFailure = false
    while !lock.withLock({ stopping }) {
      let now = Timestamp.now()
      var full = false
      do {
        if now - renewedAt >= config.leaseTimeout / 3 {
          try renewLeases(shared, now: now)
          renewedAt = now
        }
        full = try claimDue(shared, now: now)
        if reportedFailure {
          logger.info("database reachable again; claiming work", [("node", config.nodeId)])
          reportedFailure = false
        }
      } catch {
        if !reportedFailure {
          logger.error(
            "cannot claim work from the database; retrying", [("error", "\(error)")])
          reportedFailure = true
        }
      }
      if !full { _ = claimWake.wait(timeout: .now() + Self.claimInterval) }
    }
    claimStopped.signal()
  }

  /// Extends this node's leases and drops from memory the idle tasks another node took over.
  private func renewLeases(_ shared: SharedTaskStore, now: Double) throws(StorageError) {
    let renewed = try shared.renewLeases(
      node: config.nodeId, leaseUntil: now + config.leaseTimeout)
    let lost = lock.withLock {
      let lost = active.keys.filter { !renewed.contains($0) && !running.contains($0) }
      for id in lost { active[id] = nil }
      return lost
    }
    if !lost.isEmpty {
      logger.warn("leases taken over by other nodes", [("count", String(lost.count))])
    }
  }

  /// Claims due tasks up to this node's capacity; returns true when a full batch came back,
  /// so more may be waiting.
  private func claimDue(_ shared: SharedTaskStore, now: Double) throws(StorageError) -> Bool {
    let capacity = lock.withLock { config.maxConcurrentSteps - active.count }
    guard capacity > 0 else { return false }
    let limit = min(capacity, Self.claimBatch)
    let claimed = try shared.claimDueTasks(
      node: config.nodeId, dueBy: now + Self.claimHorizon,
      now: now, leaseUntil: now + config.leaseTimeout, limit: limit)
    for item in claimed { adopt(item) }
    if !claimed.isEmpty { wake.signal() }
    return claimed.count == limit
  }

  /// Takes a claimed task into the scheduler. A request that was in flight when its last node
  /// stopped renewing is handled as after a restart.
  private func adopt(_ item: ClaimedTask) {
    var task = item.task
    for secret in task.secrets { Redactor.shared.register(secret) }
    lock.withLock {
      active[task.id] = task
      if item.cancelRequested { cancelBeforeStep.insert(task.id) }
    }
    if recoverAfterRestart(&task) != nil {
      // The claim runs like a step, so the recovery commits under this node's lease.
      lock.withLock { _ = running.insert(task.id) }
      Task.detached(executorPreference: Self.executor) { [self] in
        do {
          try commitNow(task)
        } catch {
          logger.error(
            "cannot save a recovered task; the next claim recovers it again",
            fields(task) + [("error", "\(error)")])
          lock.withLock { _ = active.removeValue(forKey: task.id) }
        }
        await endClaim(task.id)
      }
      return
    }
    lock.withLock {
      queue.push(id: task.id, at: task.nextRunAt ?? Timestamp.now(), priority: task.priority)
    }
  }

  /// Ends a claim in shared mode; returns false when the task stays on this node and the
  /// caller schedules it as a single node would.
  func endSharedClaim(_ id: String, _ shared: SharedTaskStore) async -> Bool {
    while true {
      let horizon = Timestamp.now() + Self.claimHorizon
      let (keep, lost) = lock.withLock { () -> (Bool, Bool) in
        if lostLeases.remove(id) != nil { return (false, true) }
        guard let task = active[id] else { return (false, false) }
        if wakeAfterStep.contains(id) || cancelWhenIdle.contains(id) { return (true, false) }
        return ((task.nextRunAt ?? .infinity) <= horizon, false)
      }
      if keep { return false }
      var requests: HeldTaskRequests?
      if !lost {
        do {
          requests = try shared.releaseTask(id: id, node: config.nodeId)
        } catch {
          // The lease expires on its own; until then no node runs the task.
          if !lock.withLock({ stopping }) {
            logger.warn("cannot release a task lease", [("task", id), ("error", "\(error)")])
          }
        }
      }
      if let requests, !requests.isEmpty, let task = lock.withLock({ active[id] }) {
        if requests.cancel {
          do {
            _ = try await startCancel(task)
          } catch {
            logger.error(
              "cannot save a cancellation", fields(task) + [("error", "\(error)")])
          }
          continue
        }
        lock.withLock { _ = wakeAfterStep.insert(id) }
        return false
      }
      lock.withLock {
        running.remove(id)
        active[id] = nil
        wakeAfterStep.remove(id)
        cancelBeforeStep.remove(id)
      }
      return true
    }
  }

  // MARK: Requests from other nodes' API calls

  /// Cancels a task this node has not claimed. Claims it when its lease is free, and otherwise
  /// sets its cancel flag for the node that has the lease.
  func cancelElsewhere(_ task: TaskRecord, _ shared: SharedTaskStore) throws(StorageError)
    -> CancelOutcome
  {
    let now = Timestamp.now()
    if let claimed = try shared.claimTask(
      id: task.id, node: config.nodeId, now: now, leaseUntil: now + config.leaseTimeout)
    {
      lock.withLock {
        active[task.id] = claimed.task
        running.insert(task.id)
      }
      return try cancelClaimed(claimed.task)
    }
    try shared.requestCancel(id: task.id, now: now)
    claimWake.signal()
    guard let current = try store.task(id: task.id) else { return .notFound }
    if current.status.isTerminal { return .finished(current) }
    var reported = current
    reported.cancelRequested = true
    return .requested(reported)
  }

  /// Requests a step now from whichever node has the task's lease, to apply a signal or
  /// callback. A task whose call has not gone out keeps its schedule, as on a single node.
  func wakeElsewhere(_ id: String) {
    guard let shared, let task = try? store.task(id: id), !task.status.isTerminal else { return }
    guard task.step != .call || task.requestInFlight else { return }
    do {
      try shared.requestWake(id: id, now: Timestamp.now())
    } catch {
      logger.warn(
        "cannot wake a task; it applies the signal at its next step",
        [("task", id), ("error", "\(error)")])
    }
    claimWake.signal()
  }

  /// Long polls in shared mode: a status change on any node releases the waiter through the
  /// store's notices.
  func waitForSharedStatusChange(id: String, from status: TaskStatus, timeout: Double) {
    let signal = DispatchSemaphore(value: 0)
    lock.withLock { waiters[id, default: []].append(signal) }
    let current = lock.withLock { active[id] } ?? (try? store.task(id: id)) ?? nil
    if let current, current.status == status {
      _ = signal.wait(timeout: .now() + timeout)
    }
    lock.withLock {
      waiters[id]?.removeAll { $0 === signal }
      if waiters[id]?.isEmpty == true { waiters[id] = nil }
    }
  }
}

/// Provider limits across the cluster: concurrency slots and request spacing kept in the
/// database, in front of the node's own limiter, which keeps the waiting local.
final class SharedLimiter: @unchecked Sendable {
  private let store: SharedTaskStore
  private let node: String
  private let leaseTimeout: Double
  private let logger: Logger
  private let local = ProviderLimiter()
  private let lock = NSLock()
  // Guarded by `lock`: slot numbers this node holds, by limiter key.
  private var heldSlots: [String: [Int]] = [:]
  // Guarded by `lock`: set when the node stops; slots left then expire on their own.
  private var stopped = false

  /// Stops reporting failures: the store closes as the node stops.
  func stop() { lock.withLock { stopped = true } }

  init(store: SharedTaskStore, node: String, leaseTimeout: Double, logger: Logger) {
    self.store = store
    self.node = node
    self.leaseTimeout = leaseTimeout
    self.logger = logger
  }

  /// Waits until a request under `key` may start. The slot's lease is renewed with the node's
  /// task leases, so a node that dies holding it frees it within the lease timeout.
  func acquire(_ key: String, limits: ProviderLimits) async {
    // The node's own limiter lets at most `concurrency` of its requests compete for slots.
    var nodeLimits = limits
    nodeLimits.requestsPerSecond = 1e9
    await local.acquire(key, limits: nodeLimits)
    var pause = 0.002
    while true {
      let now = Timestamp.now()
      do {
        if let grant = try store.acquireLimitSlot(
          key: key, limit: limits.concurrency, interval: 1 / limits.requestsPerSecond,
          node: node, now: now, leaseUntil: now + leaseTimeout)
        {
          lock.withLock { heldSlots[key, default: []].append(grant.slot) }
          if grant.wait > 0 { try? await Task.sleep(nanoseconds: UInt64(grant.wait * 1e9)) }
          return
        }
      } catch {
        // After a stop the store is closed and the step waits here until the process ends.
        if !lock.withLock({ stopped }) {
          logger.warn("cannot take a provider limit slot; retrying", [("error", "\(error)")])
        }
        pause = 0.5
      }
      try? await Task.sleep(nanoseconds: UInt64(pause * 1e9))
      pause = min(pause * 2, 0.05)
    }
  }

  /// Ends a request started with `acquire`.
  func release(_ key: String) {
    let slot = lock.withLock { heldSlots[key]?.popLast() }
    if let slot {
      do {
        try store.releaseLimitSlot(key: key, slot: slot, node: node)
      } catch {
        if !lock.withLock({ stopped }) {
          logger.warn("cannot release a provider limit slot", [("error", "\(error)")])
        }
      }
    }
    local.release(key)
  }
}
