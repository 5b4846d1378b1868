import Foundation
import Support

/// A task a node has claimed, with what another node asked of it while no node held it.
public struct ClaimedTask: Sendable {
  public var task: TaskRecord
  /// Another node asked for the task's cancellation.
  public var cancelRequested: Bool

  public init(task: TaskRecord, cancelRequested: Bool) {
    self.task = task
    self.cancelRequested = cancelRequested
  }
}

/// Requests other nodes made of a task while this node held its lease.
public struct HeldTaskRequests: Sendable, Equatable {
  public var cancel: Bool
  public var wake: Bool

  public init(cancel: Bool, wake: Bool) {
    self.cancel = cancel
    self.wake = wake
  }

  public var isEmpty: Bool { !cancel && !wake }
}

/// A provider limit slot taken for one request.
public struct LimitGrant: Sendable, Equatable {
  public var slot: Int
  /// Seconds to wait before sending, so the key's requests keep their spacing; 0 to send now.
  public var wait: Double

  public init(slot: Int, wait: Double) {
    self.slot = slot
    self.wait = wait
  }
}

/// A change another node made, announced through the database.
public enum StoreNotice: Sendable, Equatable {
  /// A task's status changed; long polls on it return.
  case statusChanged(taskId: String)
  /// Work became due sooner than the claim loops would look: a new task, a wake, a
  /// cancellation or a webhook delivery.
  case workDue
}

/// Storage shared by several engine nodes, which claim due work with leases instead of
/// keeping every active task in memory.
///
/// A lease names its node and expires at `leaseUntil` (seconds since 1970, the node's clock;
/// nodes keep their clocks in sync). A node may write a task only while it holds the task's
/// lease; an expired lease may be taken by any node. Every method commits before it returns.
public protocol SharedTaskStore: TaskStore {
  // MARK: Task leases

  /// Claims up to `limit` active tasks with `next_run_at <= dueBy` whose lease is free or
  /// expired at `now`, earliest first, skipping rows other nodes are claiming at the same
  /// moment. Sets each lease to `node` until `leaseUntil`, clears both request flags and
  /// returns the tasks with the cancel flag they had. A returned task's `nextRunAt` is the
  /// row's due time, which a wake or cancellation may have moved.
  func claimDueTasks(node: String, dueBy: Double, now: Double, leaseUntil: Double, limit: Int)
    throws(StorageError) -> [ClaimedTask]
  /// Claims one active task whatever its due time, as `claimDueTasks` does. Returns nil when
  /// the task is missing or terminal, or another node has a live lease on it.
  func claimTask(id: String, node: String, now: Double, leaseUntil: Double)
    throws(StorageError) -> ClaimedTask?
  /// Extends every lease `node` holds, on tasks, pending deliveries and provider limit slots,
  /// to `leaseUntil`; returns the ids of the tasks it holds.
  func renewLeases(node: String, leaseUntil: Double) throws(StorageError) -> Set<String>
  /// Saves a task as `saveTask` does, but only while `node` holds its lease; returns false,
  /// writing nothing, when it does not. Announces `statusChanged` when the stored status
  /// differs from the task's.
  func saveHeldTask(
    _ task: TaskRecord, node: String, delivery: DeliveryRecord?, events: [TaskEvent]
  ) throws(StorageError) -> Bool
  /// Gives up `node`'s lease on a task and returns the requests other nodes made meanwhile.
  /// With a cancel or wake request the lease is kept and the flags are cleared, so the node
  /// acts on them; without, the lease is cleared. Returns nil when `node` has no lease on it.
  func releaseTask(id: String, node: String) throws(StorageError) -> HeldTaskRequests?
  /// Clears the task leases of `node` except those in `keeping`, and its limit slots when
  /// `keeping` is empty, so other nodes take the work at once after a clean stop. A kept lease
  /// (a step still running) expires on its own, so no other node runs that task meanwhile.
  func releaseAllTasks(node: String, keeping: Set<String>) throws(StorageError)
  /// Asks for an active task's cancellation: sets its cancel flag and, when no live lease
  /// holds it, makes it due at `now`. Announces `workDue`.
  func requestCancel(id: String, now: Double) throws(StorageError)
  /// Requests a step of an active task now. Sets its wake flag when a node has a live lease on
  /// it, or else its next run to `now`. Announces `workDue`.
  func requestWake(id: String, now: Double) throws(StorageError)

  // MARK: Webhook deliveries

  /// Claims up to `limit` pending deliveries due at `now` whose lease is free or expired.
  /// `saveDelivery` clears a delivery's lease.
  func claimDueDeliveries(node: String, now: Double, leaseUntil: Double, limit: Int)
    throws(StorageError) -> [DeliveryRecord]

  // MARK: Provider limits across nodes

  /// Takes one of the `limit` concurrency slots of `key` until `leaseUntil` (extended by
  /// `renewLeases`) and, in the same statement, reserves the request's send time, spacing the
  /// requests of `key` `interval` seconds apart across all nodes by the database's clock.
  /// Nil when all slots are taken by live leases.
  func acquireLimitSlot(
    key: String, limit: Int, interval: Double, node: String, now: Double, leaseUntil: Double
  ) throws(StorageError) -> LimitGrant?
  func releaseLimitSlot(key: String, slot: Int, node: String) throws(StorageError)

  // MARK: Result files

  /// Stores a task's result file (an image or audio a provider returned), replacing one of the
  /// same name, so every node can serve it.
  func saveResultFile(taskId: String, name: String, bytes: [UInt8]) throws(StorageError)
  /// Returns a stored result file's bytes, or nil.
  func resultFile(taskId: String, name: String) throws(StorageError) -> [UInt8]?

  // MARK: Notices

  /// Starts a connection that receives notices from every node (this one included) and
  /// calls `handler` on its own thread; reconnects after a failure.
  func startListening(_ handler: @escaping @Sendable (StoreNotice) -> Void) throws(StorageError)
  func stopListening()
}
