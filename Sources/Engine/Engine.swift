import Foundation
import HTTPClient
import LuaRuntime
import Storage
import Support

/// Settings the engine runs with.
public struct EngineConfig: Sendable {
  public var dataDirectory: String
  /// The service's own base URL, used in result file links, e.g. `http://127.0.0.1:8080`.
  public var publicURL: String
  public var allowPrivateNetwork: Bool
  public var webhookSecret: String
  public var scriptLimits: ScriptLimits
  /// Lua states that run hooks in parallel.
  public var scriptStates: Int
  /// Task steps (HTTP exchanges with their hook calls) in flight at once.
  public var maxConcurrentSteps: Int
  /// Seconds after a task ends during which an undelivered webhook is retried.
  public var webhookRetention: Double
  /// Seconds allowed for each webhook attempt.
  public var webhookTimeout: Double
  /// Largest provider or target response the engine reads, in bytes.
  public var maxResponseBytes: Int
  /// Multiplies every delay the engine waits (poll intervals, retry and webhook backoff,
  /// Retry-After, maxDuration, the spacing of rate-limited requests). 1 in production; tests
  /// and benchmarks shrink it to run templates quickly.
  public var delayScale: Double = 1
  /// Returns the webhook signing secret of a team; see `signingSecret(forTeam:)`. Nil signs
  /// every team's requests with `webhookSecret`.
  public var secretForTeam: (@Sendable (String) -> String)?
  /// Counters and histograms the engine updates, rendered at `GET /metrics`.
  public var metrics = ServiceMetrics()
  /// Operator overrides of template limits, by template id.
  public var providerLimits: [String: ProviderLimits] = [:]
  /// Seconds `stop()` lets in-flight steps finish before it abandons them.
  public var shutdownGrace: Double = 10
  /// The 32-byte key that encrypts vault tokens at rest.
  public var vaultKey: [UInt8] = Array(repeating: 0, count: 32)
  /// This node's name in task leases and logs, when the store is shared by several nodes. The
  /// engine adds a random suffix at each start, so two processes never share a lease owner.
  public var nodeId: String = "node-" + Crypto.randomHex(bytes: 6)
  /// Tasks read from the store in one batch at start-up; the first batch runs while the rest
  /// loads.
  public var loadBatch = 5_000
  /// Seconds a node's claim on a task lasts without renewal: how long the tasks of a node that
  /// died wait before another node takes them over.
  public var leaseTimeout: Double = 15

  public init(
    dataDirectory: String, publicURL: String, allowPrivateNetwork: Bool, webhookSecret: String,
    scriptLimits: ScriptLimits = ScriptLimits(), scriptStates: Int = 2,
    maxConcurrentSteps: Int = 2048, webhookRetention: Double = 86400, webhookTimeout: Double = 10,
    maxResponseBytes: Int = 256 << 20
  ) {
    self.dataDirectory = dataDirectory
    self.publicURL = publicURL
    self.allowPrivateNetwork = allowPrivateNetwork
    self.webhookSecret = webhookSecret
    self.scriptLimits = scriptLimits
    self.scriptStates = scriptStates
    self.maxConcurrentSteps = maxConcurrentSteps
    self.webhookRetention = webhookRetention
    self.webhookTimeout = webhookTimeout
    self.maxResponseBytes = maxResponseBytes
  }
}

/// Runs tasks: keeps each active task's next step time, takes due steps in priority order and
/// commits every state change to the store before acting on it.
public final class Engine: @unchecked Sendable {
  public let store: TaskStore
  public let config: EngineConfig
  let client: CurlClient
  let logger: Logger
  let webhooks: WebhookDispatcher

  let lock = NSLock()
  // Guarded by `lock`: the loaded templates and the Lua states that run them, replaced whole
  // by `replaceScripts`.
  private var loadedCatalog: ProviderCatalog
  private var loadedScripts: ScriptPool
  // Guarded by `lock`. In shared mode `active` holds only the tasks this node has claimed.
  var active: [String: TaskRecord] = [:]
  var queue = DueQueue()
  var running: Set<String> = []
  var waiters: [String: [DispatchSemaphore]] = [:]
  private var reportedStatuses: Set<String> = []
  var stopping = false
  // Events of a step not yet committed, by task id; `commitNow` writes them with the task.
  private var pendingEvents: [String: [TaskEvent]] = [:]
  // Cancellations that arrived while the task's step was running; applied when it returns.
  var cancelWhenIdle: Set<String> = []
  // Tasks to run again as soon as their running step returns (a signal or callback arrived).
  var wakeAfterStep: Set<String> = []
  // Shared mode: claimed tasks another node asked to cancel, cancelled instead of a step.
  var cancelBeforeStep: Set<String> = []
  // Shared mode: tasks whose lease another node took over, which this node drops from memory.
  var lostLeases: Set<String> = []
  let limiter = ProviderLimiter()
  /// The store as several nodes share it, or nil when this process is its only user. With a
  /// shared store the engine claims due tasks with leases instead of loading every active task.
  let shared: SharedTaskStore?
  let sharedLimiter: SharedLimiter?
  /// Entered while the tasks active at start-up are loading; see `waitUntilLoaded`.
  let loading = DispatchGroup()
  let claimWake = DispatchSemaphore(value: 0)
  let claimStopped = DispatchSemaphore(value: 0)
  var claimThread: Thread?
  /// Runs every step and webhook attempt; see `EngineExecutor` for why not the global pool.
  public static let executor = EngineExecutor(threads: 4, name: "asyncqueue-engine")

  let wake = DispatchSemaphore(value: 0)
  private var schedulerThread: Thread?
  private let schedulerStopped = DispatchSemaphore(value: 0)

  /// Lifecycle hooks run for every task; set before `start()`.
  public var plugins: (any EnginePlugins)? {
    get { lock.withLock { installedPlugins } }
    set {
      lock.withLock { installedPlugins = newValue }
      webhooks.plugins = newValue
    }
  }
  private var installedPlugins: (any EnginePlugins)?

  public init(
    config given: EngineConfig, store: TaskStore, catalog: ProviderCatalog, logger: Logger
  )
    throws
  {
    var config = given
    // Leases name this process, not only the node: two processes started with one node id by
    // mistake, or a node restarted within the lease timeout, never take each other's leases
    // for their own.
    config.nodeId += "." + Crypto.randomHex(bytes: 3)
    self.config = config
    self.store = store
    self.logger = logger
    let shared = store as? SharedTaskStore
    self.shared = shared
    self.sharedLimiter = shared.map {
      SharedLimiter(
        store: $0, node: config.nodeId, leaseTimeout: config.leaseTimeout, logger: logger)
    }
    self.loadedCatalog = catalog
    self.loadedScripts = try ScriptPool(
      catalog: catalog, size: config.scriptStates, limits: config.scriptLimits, logger: logger)
    self.client = CurlClient(
      allowPrivateNetwork: config.allowPrivateNetwork, userAgent: "asyncqueue/0.1")
    self.webhooks = WebhookDispatcher(
      store: store, client: client,
      secretForTeam: { [config] team in config.signingSecret(forTeam: team) },
      metrics: config.metrics, logger: logger,
      retention: config.webhookRetention, timeout: config.webhookTimeout,
      delayScale: config.delayScale,
      shared: shared.map { ($0, config.nodeId, config.leaseTimeout) })
    Redactor.shared.register(config.webhookSecret)
  }

  /// Loads unfinished work from the store and starts the scheduler and webhook delivery.
  public func start() throws(StorageError) {
    if let shared {
      try startShared(shared)
      startScheduler()
      return
    }
    // The first batch loads before the scheduler starts, so an unreadable database still
    // fails the start. The rest loads while the first tasks already run.
    let first = try store.activeTasks(after: nil, limit: config.loadBatch)
    try webhooks.start()
    try adoptLoaded(first)
    startScheduler()
    guard first.count == config.loadBatch, let last = first.last?.id else {
      if !first.isEmpty {
        logger.info("resuming unfinished tasks", [("count", String(first.count))])
      }
      return
    }
    loading.enter()
    // Holds the engine until the load ends, even when the service stops first.
    let loader = Thread { [self] in
      self.loadRemaining(after: last, loaded: first.count)
      self.loading.leave()
    }
    loader.name = "asyncqueue-loader"
    loader.start()
  }

  /// Loads the active tasks after the first batch, one batch at a time.
  private func loadRemaining(after first: String, loaded: Int) {
    var after = first
    var count = loaded
    while !lock.withLock({ stopping }) {
      do {
        let batch = try store.activeTasks(after: after, limit: config.loadBatch)
        try adoptLoaded(batch)
        count += batch.count
        guard batch.count == config.loadBatch, let last = batch.last?.id else { break }
        after = last
      } catch {
        // NOTE: one unreadable row stops the load here, so later tasks wait for the next start
        // instead of only that row being skipped.
        logger.error(
          "cannot load the unfinished tasks after this one; they resume at the next start",
          [("task", after), ("error", "\(error)")])
        break
      }
    }
    logger.info("resuming unfinished tasks", [("count", String(count))])
  }

  /// Schedules tasks read at start-up; one whose request was in flight is recovered first.
  private func adoptLoaded(_ tasks: [TaskRecord]) throws(StorageError) {
    var ready: [TaskRecord] = []
    ready.reserveCapacity(tasks.count)
    for var task in tasks {
      registerSecrets(task)
      if let ended = recoverAfterRestart(&task) {
        try store.saveTask(task, delivery: ended)
        if let ended { webhooks.enqueue(ended) }
        if task.status.isTerminal { continue }
      }
      ready.append(task)
    }
    lock.withLock {
      for task in ready where active[task.id] == nil {
        active[task.id] = task
        queue.push(id: task.id, at: task.nextRunAt ?? Timestamp.now(), priority: task.priority)
      }
    }
    wake.signal()
  }

  /// Waits until every task active at start-up is in memory, so a cancel, a signal or a long
  /// poll does not take a task still loading for one that ended.
  func waitUntilLoaded() { loading.wait() }

  private func startScheduler() {
    let thread = Thread { [unowned self] in self.schedulerLoop() }
    thread.name = "asyncqueue-scheduler"
    schedulerThread = thread
    thread.start()
  }

  /// Stops taking new steps and waits for the scheduler thread; steps in flight are abandoned
  /// and resume at the next start.
  /// Stops taking new steps, lets the steps in flight finish and commit for up to
  /// `shutdownGrace` seconds, then stops webhook delivery and the HTTP client. Work cut off at
  /// the deadline resumes at the next start.
  public func stop() {
    lock.lock()
    let alreadyStopping = stopping
    stopping = true
    lock.unlock()
    guard !alreadyStopping, schedulerThread != nil else { return }
    wake.signal()
    schedulerStopped.wait()
    if claimThread != nil {
      claimWake.signal()
      claimStopped.wait()
    }
    let deadline = Date().addingTimeInterval(config.shutdownGrace)
    while Date() < deadline, lock.withLock({ !running.isEmpty }) {
      Thread.sleep(forTimeInterval: 0.01)
    }
    let abandoned = lock.withLock { running.count }
    if abandoned > 0 {
      logger.warn(
        "stopping with steps still in flight; they resume at the next start",
        [("count", String(abandoned))])
    }
    if let shared { stopShared(shared) }
    webhooks.stop()
    client.shutdown()
  }

  /// The templates in force.
  public var catalog: ProviderCatalog { lock.withLock { loadedCatalog } }

  var scripts: ScriptPool { lock.withLock { loadedScripts } }

  /// Swaps in a new set of templates. Each hook call takes the set in force when it starts, so
  /// a task in flight runs its next hook with the new version of its template.
  public func replaceScripts(_ catalog: ProviderCatalog) throws {
    let pool = try ScriptPool(
      catalog: catalog, size: config.scriptStates, limits: config.scriptLimits, logger: logger)
    lock.withLock {
      loadedCatalog = catalog
      loadedScripts = pool
    }
  }

  // MARK: Tasks from the API

  /// Stores a new task and schedules its first step. With an idempotency key that the team
  /// used in the last 24 hours, nothing is created and the earlier task id and request hash
  /// are returned instead.
  @discardableResult
  public func createTask(
    _ task: TaskRecord, idempotencyKey: String? = nil, requestHash: String = "",
    handles: [(hash: String, kind: String)] = []
  ) throws(StorageError) -> (taskId: String, requestHash: String)? {
    registerSecrets(task)
    if !handles.isEmpty {
      try store.insertTask(task, handles: handles)
    } else if let idempotencyKey {
      let earlier = try store.insertTask(
        task, idempotencyKey: idempotencyKey, requestHash: requestHash,
        since: Timestamp.now() - 86400)
      if let earlier { return earlier }
    } else {
      try store.insertTask(task)
    }
    plugins?.taskCreated(task)
    if shared != nil {
      // Whichever node claims it first runs it.
      claimWake.signal()
      logger.debug("task created", fields(task))
      return nil
    }
    lock.lock()
    active[task.id] = task
    queue.push(id: task.id, at: task.nextRunAt ?? Timestamp.now(), priority: task.priority)
    lock.unlock()
    wake.signal()
    logger.debug("task created", fields(task))
    return nil
  }

  /// Returns the task, from memory while active, else from the store; nil for another team's
  /// task.
  public func task(id: String, teamId: String) throws(StorageError) -> TaskRecord? {
    lock.lock()
    let cached = active[id]
    lock.unlock()
    var found = cached
    if found == nil { found = try store.task(id: id) }
    guard let found, found.teamId == teamId else { return nil }
    return found
  }

  /// Blocks until the task's status differs from `status` or `timeout` seconds pass.
  public func waitForStatusChange(id: String, from status: TaskStatus, timeout: Double) {
    if shared != nil {
      waitForSharedStatusChange(id: id, from: status, timeout: timeout)
      return
    }
    if lock.withLock({ active[id] == nil }) { waitUntilLoaded() }
    let signal = DispatchSemaphore(value: 0)
    lock.lock()
    if let current = active[id], current.status == status {
      waiters[id, default: []].append(signal)
      lock.unlock()
    } else {
      lock.unlock()
      return
    }
    _ = signal.wait(timeout: .now() + timeout)
    lock.lock()
    waiters[id]?.removeAll { $0 === signal }
    if waiters[id]?.isEmpty == true { waiters[id] = nil }
    lock.unlock()
  }

  /// Returns the path of a task's stored result file.
  public func resultFilePath(_ task: TaskRecord) -> String? {
    guard let file = task.resultFile else { return nil }
    return (resultDirectory(task.id) as NSString).appendingPathComponent(file.name)
  }

  /// Returns the bytes of a task's stored result file, or nil.
  public func resultFileData(_ task: TaskRecord) -> [UInt8]? {
    guard let file = task.resultFile else { return nil }
    if let shared { return (try? shared.resultFile(taskId: task.id, name: file.name)) ?? nil }
    guard let path = resultFilePath(task), let data = FileManager.default.contents(atPath: path)
    else { return nil }
    return Array(data)
  }

  func resultDirectory(_ taskId: String) -> String {
    ((config.dataDirectory as NSString).appendingPathComponent("results") as NSString)
      .appendingPathComponent(taskId)
  }

  public var activeTaskCount: Int {
    lock.lock()
    defer { lock.unlock() }
    return active.count
  }

  // MARK: Commit

  /// Commits a task change, queues its webhook when it ended and wakes long-poll waiters. A
  /// task that ends passes through the plugins' `taskFinishing` first, which may add to its
  /// result.
  func commit(_ task: inout TaskRecord) async throws(StorageError) {
    if task.status.isTerminal, let plugins {
      task = await plugins.taskFinishing(task)
    }
    try commitNow(task)
  }

  /// Sends a request on behalf of a task: applies the plugins' `beforeRequest`, waits for the
  /// provider's limits, and records the exchange in the task's timeline.
  func send(
    _ request: ClientRequest, for task: TaskRecord, kind: String, holdingLimit: Bool = false
  ) async -> Result<ClientResponse, ClientError> {
    var outgoing = request
    plugins?.beforeRequest(task, &outgoing)
    if let failure = resolveVaultTokens(&outgoing, teamId: task.teamId) {
      return .failure(failure)
    }
    if let body = outgoing.body, !body.isEmpty,
      !outgoing.headers.contains(where: { $0.0.lowercased() == "content-type" })
    {
      // Without this, curl labels a body application/x-www-form-urlencoded.
      let isJSON = (try? JSONValue.parse(body)) != nil
      outgoing.headers.append(
        ("Content-Type", isJSON ? "application/json" : "text/plain; charset=utf-8"))
    }
    let limited = limitKey(task)
    if let (key, limits) = limited, !holdingLimit {
      await acquireLimit(key, limits)
    }
    let started = Timestamp.now()
    let outcome = await client.send(outgoing)
    if let (key, _) = limited { releaseLimit(key) }
    config.metrics.recordRequest(
      for: task, step: kind, outcome: outcome, seconds: Timestamp.now() - started)
    var event = TaskEvent(
      taskId: task.id, at: started, kind: kind,
      latencyMs: Int(((Timestamp.now() - started) * 1000).rounded()))
    switch outcome {
    case .success(let response): event.statusCode = response.statusCode
    case .failure(let error): event.error = error.message
    }
    lock.withLock { pendingEvents[task.id, default: []].append(event) }
    return outcome
  }

  /// Waits for the task's provider limits ahead of `send(_:for:kind:holdingLimit:)`, so a
  /// submit is marked in flight only once it may leave.
  func acquireLimit(for task: TaskRecord) async {
    if let (key, limits) = limitKey(task) { await acquireLimit(key, limits) }
  }

  func releaseLimit(for task: TaskRecord) {
    if let (key, _) = limitKey(task) { releaseLimit(key) }
  }

  /// Waits for a limit slot, on this node or across the cluster.
  private func acquireLimit(_ key: String, _ limits: ProviderLimits) async {
    if let sharedLimiter {
      await sharedLimiter.acquire(key, limits: limits)
    } else {
      await limiter.acquire(key, limits: limits)
    }
  }

  private func releaseLimit(_ key: String) {
    if let sharedLimiter { sharedLimiter.release(key) } else { limiter.release(key) }
  }

  /// Sets the mapped state on the task's latest uncommitted event.
  func noteEventState(_ taskId: String, _ state: String) {
    lock.withLock {
      guard var events = pendingEvents[taskId], !events.isEmpty else { return }
      events[events.count - 1].state = state
      pendingEvents[taskId] = events
    }
  }

  /// The `providerLimits` id whose override applies to custom pollConfig tasks.
  public static let customLimitsId = "custom"

  /// Returns the limiter key and limits for a task's requests: its template's (or the operator's
  /// override), or per target host for a custom pollConfig. Plain calls are not limited.
  private func limitKey(_ task: TaskRecord) -> (String, ProviderLimits)? {
    var key: String
    var limits: ProviderLimits
    if let provider = task.provider {
      key = provider
      limits =
        config.providerLimits[provider] ?? catalog.templates[provider]?.limits
        ?? ProviderTemplate.defaultLimits
    } else if task.pollConfig != nil {
      key = "custom:" + (URLComponents(string: task.targetUrl)?.host ?? "?")
      // An override under the id "custom" applies to each target host separately.
      limits = config.providerLimits[Self.customLimitsId] ?? ProviderTemplate.defaultLimits
    } else {
      return nil
    }
    // The pause between rate-limited requests is a delay like any other.
    limits.requestsPerSecond /= config.delayScale
    return (key, limits)
  }

  func commitNow(_ task: TaskRecord) throws(StorageError) {
    var delivery: DeliveryRecord?
    if task.status.isTerminal, let url = task.onCompleteUrl {
      delivery = webhooks.makeDelivery(for: task, url: url, baseURL: config.publicURL)
    }
    let events = lock.withLock { pendingEvents.removeValue(forKey: task.id) ?? [] }
    do throws(StorageError) {
      if let shared {
        guard try shared.saveHeldTask(task, node: config.nodeId, delivery: delivery, events: events)
        else {
          lock.withLock { _ = lostLeases.insert(task.id) }
          throw StorageError(
            "another node took over task \(task.id) after this node's lease expired")
        }
      } else {
        try store.saveTask(task, delivery: delivery, events: events)
      }
    } catch {
      lock.withLock { pendingEvents[task.id] = events + (pendingEvents[task.id] ?? []) }
      throw error
    }
    lock.lock()
    let previous = active[task.id]
    if task.status.isTerminal {
      active[task.id] = nil
    } else {
      active[task.id] = task
    }
    var released: [DispatchSemaphore] = []
    if previous?.status != task.status {
      released = waiters.removeValue(forKey: task.id) ?? []
    }
    lock.unlock()
    released.forEach { $0.signal() }
    if let delivery { webhooks.enqueue(delivery) }
    if previous?.status != task.status {
      config.metrics.recordTransition(of: task)
      logger.info("task \(task.status.rawValue)", fields(task) + statusFields(task))
      plugins?.statusChanged(task, from: previous?.status)
    }
  }

  private func statusFields(_ task: TaskRecord) -> [(String, String)] {
    var extra: [(String, String)] = []
    if let error = task.error, task.status.isTerminal { extra.append(("error", error)) }
    return extra
  }

  func fields(_ task: TaskRecord) -> [(String, String)] {
    var list = [("task", task.id), ("team", task.teamId)]
    if let provider = task.provider { list.append(("provider", provider)) }
    if task.pollConfig != nil { list.append(("provider", "custom")) }
    return list
  }

  /// Logs an unknown provider status value once per provider and value.
  func reportUnknownStatus(_ task: TaskRecord, value: String) {
    let key = (task.provider ?? "custom") + "\u{0}" + value
    lock.lock()
    let isNew = reportedStatuses.insert(key).inserted
    lock.unlock()
    if isNew {
      logger.warn(
        "provider reported a status value the template does not know; polling continues",
        fields(task) + [("status", value)])
    }
  }

  /// Registers the task's credentials with the log redactor.
  private func registerSecrets(_ task: TaskRecord) {
    for secret in task.secrets { Redactor.shared.register(secret) }
  }

  enum CancelClaim {
    case claimed(TaskRecord)
    case busy(TaskRecord)
    case gone
  }

  /// Takes the task out of the scheduler's hands for a cancellation, unless a step runs now,
  /// in which case the cancellation is queued for when it returns.
  func claimForCancel(_ id: String) -> CancelClaim {
    lock.withLock {
      guard let task = active[id] else { return .gone }
      if running.contains(id) {
        cancelWhenIdle.insert(id)
        return .busy(task)
      }
      running.insert(id)
      return .claimed(task)
    }
  }

  /// Makes a task due now so it applies a signal or callback: at once when no step runs, else
  /// right after the running one. A task whose call has not gone out keeps its schedule, and
  /// the call's step applies the resolution once the call returns.
  func wakeForResolution(_ id: String) {
    if lock.withLock({ active[id] == nil }) { waitUntilLoaded() }
    let (held, wake) = lock.withLock {
      (active[id] != nil, running.contains(id) || active[id]?.step != .call)
    }
    if shared != nil && !held {
      wakeElsewhere(id)
    } else if wake {
      wakeNow(id)
    }
  }

  /// Makes a task due now: at once when no step runs, else right after the running one.
  func wakeNow(_ id: String) {
    lock.withLock {
      guard var task = active[id] else { return }
      task.nextRunAt = Timestamp.now()
      active[id] = task
      if running.contains(id) {
        wakeAfterStep.insert(id)
      } else {
        queue.push(id: id, at: Timestamp.now(), priority: task.priority)
      }
    }
    wake.signal()
  }

  // MARK: Scheduler

  private func schedulerLoop() {
    while true {
      let now = Timestamp.now()
      lock.lock()
      if stopping {
        lock.unlock()
        break
      }
      var due: [(id: String, priority: Int)] = []
      var lags: [Double] = []
      let capacity = config.maxConcurrentSteps - running.count
      while due.count < capacity, let entry = queue.peek(), entry.at <= now {
        queue.pop()
        guard let task = active[entry.id], !running.contains(entry.id) else { continue }
        // A task rescheduled to a later time has another entry; this one is stale.
        if let next = task.nextRunAt, next > now + 0.001 { continue }
        running.insert(entry.id)
        due.append((entry.id, task.priority))
        lags.append(max(0, now - entry.at))
      }
      let nextAt = queue.peek()?.at
      lock.unlock()

      for lag in lags { config.metrics.schedulerLag.observe([], lag) }
      due.sort { $0.priority > $1.priority }
      for item in due {
        Task.detached(executorPreference: Self.executor) { [self] in await self.runStep(item.id) }
      }
      let wait = nextAt.map { max(0, min($0 - Timestamp.now(), 1)) } ?? 1
      _ = self.wake.wait(timeout: .now() + wait)
    }
    schedulerStopped.signal()
  }

  private func runStep(_ id: String) async {
    let snapshot = lock.withLock { active[id] }
    if var task = snapshot {
      do {
        if lock.withLock({ cancelBeforeStep.remove(id) != nil }) {
          _ = try await startCancel(task)
        } else {
          try await advance(&task)
        }
        let cancelNow = lock.withLock { cancelWhenIdle.remove(id) != nil && active[id] != nil }
        if cancelNow, let current = lock.withLock({ active[id] }) {
          try await cancelAfterStep(current)
        }
      } catch {
        if lock.withLock({ stopping }) {
          // The store closes as the service stops; the task resumes at the next claim.
          logger.debug("step cut off by the stop", fields(task) + [("error", "\(error)")])
          lock.withLock { _ = active.removeValue(forKey: id) }
          await endClaim(id)
          return
        }
        if lock.withLock({ lostLeases.remove(id) != nil }) {
          logger.warn("lease lost; another node runs the task now", fields(task))
          lock.withLock { _ = active.removeValue(forKey: id) }
          await endClaim(id)
          return
        }
        logger.error(
          "cannot save task state; retrying in 5 s", fields(task) + [("error", "\(error)")])
        lock.withLock {
          if var current = active[id] {
            current.nextRunAt = Timestamp.now() + 5
            active[id] = current
          }
        }
      }
    }
    await endClaim(id)
  }

  /// Ends this node's work on a task (a step or a cancellation) and schedules its next step.
  /// In shared mode, a task not due soon goes back to the store for any node to claim.
  func endClaim(_ id: String) async {
    if let shared, await endSharedClaim(id, shared) { return }
    lock.withLock {
      running.remove(id)
      if wakeAfterStep.remove(id) != nil, var task = active[id] {
        task.nextRunAt = Timestamp.now()
        active[id] = task
      }
      if let task = active[id], let next = task.nextRunAt {
        queue.push(id: id, at: next, priority: task.priority)
      }
    }
    wake.signal()
  }
}

/// A min-heap of (time, id) entries: the scheduler's timer queue.
struct DueQueue {
  struct Entry {
    let at: Double
    let priority: Int
    let id: String
  }

  private var heap: [Entry] = []

  var count: Int { heap.count }

  func peek() -> Entry? { heap.first }

  mutating func push(id: String, at: Double, priority: Int) {
    heap.append(Entry(at: at, priority: priority, id: id))
    var child = heap.count - 1
    while child > 0 {
      let parent = (child - 1) / 2
      guard precedes(heap[child], heap[parent]) else { break }
      heap.swapAt(child, parent)
      child = parent
    }
  }

  mutating func pop() {
    guard !heap.isEmpty else { return }
    heap.swapAt(0, heap.count - 1)
    heap.removeLast()
    var parent = 0
    while true {
      let left = 2 * parent + 1
      let right = left + 1
      var first = parent
      if left < heap.count && precedes(heap[left], heap[first]) { first = left }
      if right < heap.count && precedes(heap[right], heap[first]) { first = right }
      if first == parent { break }
      heap.swapAt(parent, first)
      parent = first
    }
  }

  private func precedes(_ lhs: Entry, _ rhs: Entry) -> Bool {
    lhs.at < rhs.at || (lhs.at == rhs.at && lhs.priority > rhs.priority)
  }
}
