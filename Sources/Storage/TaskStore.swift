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
  /// Saves a task; queues `delivery` and appends `events` in the same transaction.
  func saveTask(_ task: TaskRecord, delivery: DeliveryRecord?, events: [TaskEvent])
    throws(StorageError)
  func task(id: String) throws(StorageError) -> TaskRecord?
  /// Returns every task that is not terminal.
  func activeTasks() throws(StorageError) -> [TaskRecord]
  /// Returns up to `limit` tasks that are not terminal and whose ids sort after `id` (from the
  /// first when nil), in id order: the start-up load, one batch at a time.
  func activeTasks(after id: String?, limit: Int) throws(StorageError) -> [TaskRecord]
  func listTasks(_ query: TaskQuery) throws(StorageError) -> (tasks: [TaskRecord], total: Int)

  func pendingDeliveries() throws(StorageError) -> [DeliveryRecord]
  func saveDelivery(_ delivery: DeliveryRecord, attempt: DeliveryAttempt?) throws(StorageError)
  func deliveries(taskId: String) throws(StorageError) -> [DeliveryRecord]
  func attempts(deliveryId: Int64) throws(StorageError) -> [DeliveryAttempt]

  /// Returns a task's timeline, oldest first.
  func events(taskId: String) throws(StorageError) -> [TaskEvent]
  /// Deliveries of a team's tasks: `pending` (will be tried again), `delivered` or `abandoned`
  /// (gave up after the retention period), newest first.
  func deliveries(teamId: String, state: String, limit: Int) throws(StorageError)
    -> [DeliveryRecord]
  /// Queues a new delivery of the same payload; returns it with its id.
  func insertDelivery(_ delivery: DeliveryRecord) throws(StorageError) -> DeliveryRecord

  /// Returns the task created earlier with this idempotency key and the hash of its request, if the key
  /// was used after `since`.
  func idempotentTask(teamId: String, key: String, since: Double) throws(StorageError)
    -> (taskId: String, requestHash: String)?
  /// Inserts a task and records its idempotency key in one transaction, unless the key was
  /// used after `since`: then nothing is inserted and the earlier task id and request hash
  /// are returned.
  func insertTask(
    _ task: TaskRecord, idempotencyKey: String, requestHash: String, since: Double
  ) throws(StorageError) -> (taskId: String, requestHash: String)?

  func insertToken(_ token: VaultToken) throws(StorageError)
  func token(id: String) throws(StorageError) -> VaultToken?
  func tokens(teamId: String) throws(StorageError) -> [VaultToken]
  func deleteToken(id: String, teamId: String) throws(StorageError) -> Bool
  func insertTask(_ task: TaskRecord, handles: [(hash: String, kind: String)]) throws(StorageError)
  func insertHandles(_ handles: [(hash: String, kind: String)], taskId: String)
    throws(StorageError)
  func consumeHandle(hash: String, kind: String, resolution: (String) -> TaskResolution)
    throws(StorageError) -> String?
  func pendingResolution(taskId: String) throws(StorageError) -> TaskResolution?
  func deleteResolution(taskId: String) throws(StorageError)

  func setting(_ key: String) throws(StorageError) -> String?
  func setSetting(_ key: String, _ value: String) throws(StorageError)

  func addAPIKey(hash: String, teamId: String, label: String) throws(StorageError)
  /// Returns the team of the key with this SHA-256 hash, or nil.
  func team(forKeyHash hash: String) throws(StorageError) -> String?
  func apiKeyCount() throws(StorageError) -> Int
  /// Stores the hash of a new key and returns its record.
  func createAPIKey(hash: String, teamId: String, label: String) throws(StorageError)
    -> APIKeyRecord
  /// Returns every key, revoked ones included, oldest first.
  func apiKeys() throws(StorageError) -> [APIKeyRecord]
  /// Marks a key revoked; returns false when no key has this id. Revoking twice keeps the
  /// first time.
  @discardableResult
  func revokeAPIKey(id: String) throws(StorageError) -> Bool
  /// Returns the team's webhook signing secret, created with `makeSecret` and stored on first
  /// use.
  func teamSecret(_ teamId: String, makeSecret: () -> String) throws(StorageError) -> String
  /// Returns the team's stored webhook secret, or nil when the team has none yet.
  func storedTeamSecret(_ teamId: String) throws(StorageError) -> String?
  /// Task counts grouped by status and provider; a nil provider is a plain call or a task
  /// with its own pollConfig.
  func taskCounts() throws(StorageError) -> [(status: String, provider: String?, count: Int)]
  /// Runs a trivial query, to check that the database responds.
  func ping() throws(StorageError)
  /// The schema version the store's database is at after opening.
  var schemaVersion: Int { get }
}

extension TaskStore {
  public func saveTask(_ task: TaskRecord, delivery: DeliveryRecord?) throws(StorageError) {
    try saveTask(task, delivery: delivery, events: [])
  }
}
