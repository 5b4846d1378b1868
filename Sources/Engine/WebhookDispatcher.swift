import Foundation
import HTTPClient
import Storage
import Support

/// Delivers completion webhooks: signed POSTs retried with backoff until a 2xx response or until
/// the retention period after the task ended passes. Every attempt is recorded.
final class WebhookDispatcher: @unchecked Sendable {
  private let store: TaskStore
  private let client: CurlClient
  private let secretForTeam: @Sendable (String) -> String
  private let metrics: ServiceMetrics
  private let logger: Logger
  private let retention: Double
  private let timeout: Double
  private let delayScale: Double
  /// Shared mode: deliveries are claimed from the store with leases instead of kept here.
  private let shared: (store: SharedTaskStore, node: String, leaseTimeout: Double)?
  /// Deliveries attempted at once in shared mode.
  private static let sharedBatch = 64
  // Guarded by `lock`: a failed claim was logged, and the next success logs the recovery.
  private var claimFailing = false

  private let lock = NSLock()
  // Guarded by `lock`.
  private var pending: [Int64: DeliveryRecord] = [:]
  private var inFlight: Set<Int64> = []
  private var stopping = false
  private let wake = DispatchSemaphore(value: 0)
  private let stopped = DispatchSemaphore(value: 0)
  private var started = false
  // Guarded by `lock`.
  private var installedPlugins: (any EnginePlugins)?

  var plugins: (any EnginePlugins)? {
    get { lock.withLock { installedPlugins } }
    set { lock.withLock { installedPlugins = newValue } }
  }

  init(
    store: TaskStore, client: CurlClient, secretForTeam: @escaping @Sendable (String) -> String,
    metrics: ServiceMetrics, logger: Logger, retention: Double, timeout: Double,
    delayScale: Double, shared: (SharedTaskStore, String, Double)? = nil
  ) {
    self.delayScale = delayScale
    self.shared = shared
    self.store = store
    self.client = client
    self.secretForTeam = secretForTeam
    self.metrics = metrics
    self.logger = logger
    self.retention = retention
    self.timeout = timeout
  }

  func makeDelivery(for task: TaskRecord, url: String, baseURL: String) -> DeliveryRecord {
    let event = "task." + task.status.rawValue
    let payload: JSONValue = [
      "event": .string(event), "task": TaskPresenter.json(task, baseURL: baseURL),
    ]
    return DeliveryRecord(
      taskId: task.id, teamId: task.teamId, url: url, event: event,
      payload: Array(payload.serializedData()), createdAt: Timestamp.now())
  }

  /// Loads undelivered webhooks and starts the delivery thread.
  func start() throws(StorageError) {
    let stored = shared == nil ? try store.pendingDeliveries() : []
    lock.withLock {
      for delivery in stored { pending[delivery.id] = delivery }
      started = true
    }
    let thread = Thread { [unowned self] in self.loop() }
    thread.name = "asyncqueue-webhooks"
    thread.start()
  }

  func stop() {
    let wasStarted = lock.withLock {
      stopping = true
      return started
    }
    guard wasStarted else { return }
    wake.signal()
    stopped.wait()
  }

  /// Queues a delivery that is already committed to the store. Deliveries are re-read from the
  /// store to learn their ids, so this takes the task id and looks the new row up.
  func enqueue(_ delivery: DeliveryRecord) {
    guard shared == nil else {
      wakeUp()
      return
    }
    guard let stored = try? store.deliveries(taskId: delivery.taskId) else { return }
    lock.withLock {
      for record in stored where record.nextAttemptAt != nil && record.deliveredAt == nil {
        if pending[record.id] == nil && !inFlight.contains(record.id) {
          pending[record.id] = record
        }
      }
    }
    wake.signal()
  }

  /// Looks for due deliveries now.
  func wakeUp() { wake.signal() }

  private func loop() {
    while true {
      let now = Timestamp.now()
      var due: [DeliveryRecord] = []
      var nextAt = now + 1
      if let shared {
        due = claimShared(shared, now: now)
        nextAt = now + 0.1
      }
      let shouldStop = lock.withLock {
        if stopping { return true }
        for (id, delivery) in pending where !inFlight.contains(id) {
          let at = delivery.nextAttemptAt ?? now
          if at <= now {
            due.append(delivery)
            inFlight.insert(id)
          } else {
            nextAt = min(nextAt, at)
          }
        }
        return false
      }
      if shouldStop { break }
      for delivery in due {
        Task.detached(executorPreference: Engine.executor) { [self] in await self.attempt(delivery)
        }
      }
      _ = wake.wait(timeout: .now() + max(0.005, min(nextAt - Timestamp.now(), 1)))
    }
    stopped.signal()
  }

  /// Claims due deliveries from the shared store, up to the batch size.
  private func claimShared(
    _ shared: (store: SharedTaskStore, node: String, leaseTimeout: Double), now: Double
  ) -> [DeliveryRecord] {
    let room = Self.sharedBatch - lock.withLock { inFlight.count }
    guard room > 0 else { return [] }
    do {
      let claimed = try shared.store.claimDueDeliveries(
        node: shared.node, now: now, leaseUntil: now + shared.leaseTimeout, limit: room)
      let recovered = lock.withLock {
        for delivery in claimed { inFlight.insert(delivery.id) }
        defer { claimFailing = false }
        return claimFailing
      }
      if recovered { logger.info("claiming webhook deliveries again") }
      return claimed
    } catch {
      // Once per outage, not ten times a second.
      let first = lock.withLock {
        defer { claimFailing = true }
        return !claimFailing
      }
      if first {
        logger.warn("cannot claim webhook deliveries; retrying", [("error", "\(error)")])
      }
      return []
    }
  }

  private func attempt(_ original: DeliveryRecord) async {
    var delivery = original
    let started = Timestamp.now()
    let timestamp = Int(started)
    let request = ClientRequest(
      method: "POST", url: delivery.url,
      headers: [
        ("Content-Type", "application/json"),
        (
          "X-AsyncQueue-Signature",
          WebhookSignature.header(
            secret: secretForTeam(delivery.teamId), timestamp: timestamp,
            body: delivery.payload)
        ),
        ("X-AsyncQueue-Task-Id", delivery.taskId),
        ("X-AsyncQueue-Event", delivery.event),
        ("X-AsyncQueue-Delivery-Id", String(delivery.id)),
      ],
      body: delivery.payload, timeout: timeout, maxResponseBytes: 1 << 20, followRedirects: false)
    let outcome = await client.send(request)
    let latency = Int((Timestamp.now() - started) * 1000)
    metrics.webhookLatency.observe([], Timestamp.now() - started)
    delivery.attempts += 1
    var statusCode: Int?
    var failure: String?
    // A request that can never succeed (a refused address, an invalid URL) is not retried.
    var permanent = false
    switch outcome {
    case .success(let response):
      statusCode = response.statusCode
      if !(200..<300).contains(response.statusCode) {
        failure = "HTTP \(response.statusCode)"
      }
    case .failure(let error):
      failure = error.message
      permanent = error.kind == .addressNotAllowed || error.kind == .invalidRequest
    }
    delivery.lastStatus = statusCode
    delivery.lastError = failure
    let fields = [
      ("task", delivery.taskId), ("team", delivery.teamId), ("url", delivery.url),
      ("attempt", String(delivery.attempts)),
    ]
    if failure == nil {
      delivery.deliveredAt = Timestamp.now()
      delivery.nextAttemptAt = nil
      metrics.webhookDeliveries.increment(["delivered"])
      logger.info("webhook delivered", fields + [("status", String(statusCode ?? 0))])
    } else {
      let next = Timestamp.now() + Backoff.webhookDelay(attempt: delivery.attempts) * delayScale
      if permanent || next > delivery.createdAt + retention {
        delivery.nextAttemptAt = nil
        metrics.webhookDeliveries.increment(["abandoned"])
        logger.error(
          "webhook abandoned after retention period", fields + [("error", failure ?? "")])
      } else {
        delivery.nextAttemptAt = next
        metrics.webhookDeliveries.increment(["retrying"])
        logger.warn("webhook failed; will retry", fields + [("error", failure ?? "")])
      }
    }
    let attempt = DeliveryAttempt(
      deliveryId: delivery.id, at: started, statusCode: statusCode, latencyMs: latency,
      error: failure)
    plugins?.afterDelivery(delivery, attempt: attempt)
    do {
      try store.saveDelivery(delivery, attempt: attempt)
    } catch {
      logger.error("cannot record webhook attempt", fields + [("error", "\(error)")])
    }
    let record = delivery
    lock.withLock {
      inFlight.remove(record.id)
      if record.nextAttemptAt == nil {
        pending[record.id] = nil
      } else {
        pending[record.id] = record
      }
    }
    wake.signal()
  }
}
