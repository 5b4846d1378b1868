import Foundation
import Support

/// Filters for listing tasks.
public struct TaskQuery: Sendable {
  public var teamId: String
  public var status: TaskStatus?
  public var provider: String?
  public var createdAfter: Double?
  public var createdBefore: Double?
  public var limit: Int
  public var offset: Int

  public init(
    teamId: String, status: TaskStatus? = nil, provider: String? = nil,
    createdAfter: Double? = nil, createdBefore: Double? = nil, limit: Int = 20, offset: Int = 0
  ) {
    self.teamId = teamId
    self.status = status
    self.provider = provider
    self.createdAfter = createdAfter
    self.createdBefore = createdBefore
    self.limit = limit
    self.offset = offset
  }
}

/// Durable storage for tasks, webhook deliveries, API keys and service settings.
///
/// Every method commits before it returns, so a caller may act on a change once the call is
/// back: the engine relies on that to survive a crash at any point.
public protocol TaskStore: Sendable {
  func insertTask(_ task: TaskRecord) throws(StorageError)
  /// Saves a task; when `delivery` is given, queues it in the same transaction.
  func saveTask(_ task: TaskRecord, delivery: DeliveryRecord?) throws(StorageError)
  func task(id: String) throws(StorageError) -> TaskRecord?
  /// Every task that is not terminal.
  func activeTasks() throws(StorageError) -> [TaskRecord]
  func listTasks(_ query: TaskQuery) throws(StorageError) -> (tasks: [TaskRecord], total: Int)

  func pendingDeliveries() throws(StorageError) -> [DeliveryRecord]
  func saveDelivery(_ delivery: DeliveryRecord, attempt: DeliveryAttempt?) throws(StorageError)
  func deliveries(taskId: String) throws(StorageError) -> [DeliveryRecord]
  func attempts(deliveryId: Int64) throws(StorageError) -> [DeliveryAttempt]

  func setting(_ key: String) throws(StorageError) -> String?
  func setSetting(_ key: String, _ value: String) throws(StorageError)

  func addAPIKey(hash: String, teamId: String, label: String) throws(StorageError)
  /// The team of the key with this SHA-256 hash, or nil.
  func team(forKeyHash hash: String) throws(StorageError) -> String?
  func apiKeyCount() throws(StorageError) -> Int
}
