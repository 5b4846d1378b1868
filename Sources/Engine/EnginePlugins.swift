import HTTPClient
import Storage

/// Hooks on every task's lifecycle, called by the engine. An implementation must not throw or
/// fail a task: it logs its own failures and returns the input unchanged.
public protocol EnginePlugins: Sendable {
  /// After a new task is stored.
  func taskCreated(_ task: TaskRecord)
  /// After a status change is committed; `previous` is nil when the engine had no earlier
  /// state in memory (a task resumed at start-up).
  func statusChanged(_ task: TaskRecord, from previous: TaskStatus?)
  /// Before a terminal state is committed; returns the task to store, whose result may carry
  /// extra fields. Runs before the webhook is built, so the webhook sees those fields.
  func taskFinishing(_ task: TaskRecord) async -> TaskRecord
  /// Before each request sent for a task (call, submit, poll, result fetch); may add or change
  /// headers.
  func beforeRequest(_ task: TaskRecord, _ request: inout ClientRequest)
  /// After each webhook delivery attempt is made.
  func afterDelivery(_ delivery: DeliveryRecord, attempt: DeliveryAttempt)
}
