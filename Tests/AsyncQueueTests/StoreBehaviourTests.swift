import Foundation
import Support
import Testing

@testable import Storage

/// TaskStore behaviour that both backends must share.
@Suite struct StoreBehaviourTests {
  func task(_ id: String, team: String = "t1", created: Double = 1000) -> TaskRecord {
    TaskRecord(
      id: id, teamId: team, status: .pending, targetUrl: "https://example.com", method: "POST",
      headers: [:], body: nil, provider: "fal", pollConfig: nil, onCompleteUrl: nil, timeout: 30,
      maxRetries: 3, retryBackoff: "exponential", priority: 5, delayUntil: nil,
      createdAt: created)
  }

  @Test(arguments: StoreBackend.available) func idempotencyKeyReturnsFirstTask(
    _ backend: StoreBackend
  ) throws {
    try backend.withStore { store in
      #expect(
        try store.insertTask(task("a"), idempotencyKey: "k", requestHash: "h1", since: 0) == nil)
      let again = try store.insertTask(task("b"), idempotencyKey: "k", requestHash: "h2", since: 0)
      #expect(again?.taskId == "a")
      #expect(again?.requestHash == "h1")
      #expect(try store.task(id: "b") == nil)
      #expect(try store.idempotentTask(teamId: "t1", key: "k", since: 0)?.taskId == "a")
      #expect(try store.idempotentTask(teamId: "t1", key: "k", since: 2000) == nil)
      let expired = try store.insertTask(
        task("c"), idempotencyKey: "k", requestHash: "h3", since: 2000)
      #expect(expired == nil)
      #expect(try store.idempotentTask(teamId: "t1", key: "k", since: 0)?.taskId == "c")
    }
  }

  @Test(arguments: StoreBackend.available) func handleIsConsumedOnce(_ backend: StoreBackend)
    throws
  {
    try backend.withStore { store in
      try store.insertTask(task("a"), handles: [("h1", "signal"), ("h2", "callback")])
      let resolve = { (id: String) in
        TaskResolution(
          taskId: id, kind: "signal", status: "completed", result: ["x": 1], error: nil)
      }
      #expect(try store.consumeHandle(hash: "h1", kind: "callback", resolution: resolve) == nil)
      #expect(try store.consumeHandle(hash: "h1", kind: "signal", resolution: resolve) == "a")
      #expect(try store.consumeHandle(hash: "h1", kind: "signal", resolution: resolve) == nil)
      let pending = try store.pendingResolution(taskId: "a")
      #expect(pending?.result == ["x": 1])
      #expect(pending?.status == "completed")
      try store.deleteResolution(taskId: "a")
      #expect(try store.pendingResolution(taskId: "a") == nil)
      try store.insertHandles([("h3", "signal")], taskId: "a")
      #expect(try store.consumeHandle(hash: "h3", kind: "signal", resolution: resolve) == "a")
    }
  }

  @Test(arguments: StoreBackend.available) func vaultTokensAreScopedToTeam(
    _ backend: StoreBackend
  ) throws {
    try backend.withStore { store in
      let first = VaultToken(id: "v1", teamId: "t1", name: "a", sealedValue: "s1", createdAt: 1)
      let second = VaultToken(id: "v2", teamId: "t1", name: "b", sealedValue: "s2", createdAt: 2)
      try store.insertToken(first)
      try store.insertToken(second)
      #expect(try store.token(id: "v1") == first)
      #expect(try store.tokens(teamId: "t1") == [second, first])
      #expect(try store.deleteToken(id: "v1", teamId: "t2") == false)
      #expect(try store.deleteToken(id: "v1", teamId: "t1"))
      #expect(try store.token(id: "v1") == nil)
    }
  }

  @Test(arguments: StoreBackend.available) func timelineAndDeliveriesRoundTrip(
    _ backend: StoreBackend
  ) throws {
    try backend.withStore { store in
      var record = task("a")
      try store.insertTask(record)
      record.status = .completed
      let events = [
        TaskEvent(taskId: "a", at: 5, kind: "submit", statusCode: 200, state: "running"),
        TaskEvent(taskId: "a", at: 5, kind: "poll", latencyMs: 12, error: "slow"),
      ]
      let payload: [UInt8] = [0, 1, 2, 255, 34, 92]
      let delivery = DeliveryRecord(
        taskId: "a", teamId: "t1", url: "https://hook", event: "task.completed",
        payload: payload, createdAt: 6)
      try store.saveTask(record, delivery: delivery, events: events)
      #expect(try store.events(taskId: "a") == events)
      var stored = try #require(try store.deliveries(taskId: "a").first)
      #expect(stored.payload == payload)
      stored.attempts = 1
      stored.nextAttemptAt = nil
      stored.deliveredAt = 7
      stored.lastStatus = 204
      let attempt = DeliveryAttempt(
        deliveryId: stored.id, at: 7, statusCode: 204, latencyMs: 3, error: nil)
      try store.saveDelivery(stored, attempt: attempt)
      #expect(try store.attempts(deliveryId: stored.id) == [attempt])
      #expect(try store.pendingDeliveries().isEmpty)
      #expect(try store.deliveries(teamId: "t1", state: "delivered", limit: 10) == [stored])
      let again = try store.insertDelivery(delivery)
      #expect(again.id > stored.id)
      #expect(
        try store.deliveries(teamId: "t1", state: "pending", limit: 10).map(\.id) == [again.id])
    }
  }

  @Test(arguments: StoreBackend.available) func listTasksFiltersProviderAndDates(
    _ backend: StoreBackend
  ) throws {
    try backend.withStore { store in
      var custom = task("custom", created: 10)
      custom.provider = nil
      custom.pollConfig = ["statusUrl": "https://x"]
      var plain = task("plain", created: 20)
      plain.provider = nil
      try store.insertTask(custom)
      try store.insertTask(plain)
      try store.insertTask(task("fal-b", created: 30))
      try store.insertTask(task("fal-a", created: 30))
      let all = try store.listTasks(TaskQuery(teamId: "t1"))
      #expect(all.tasks.map(\.id) == ["fal-a", "fal-b", "plain", "custom"])
      #expect(all.total == 4)
      let customOnly = try store.listTasks(TaskQuery(teamId: "t1", provider: "custom"))
      #expect(customOnly.tasks.map(\.id) == ["custom"])
      let fal = try store.listTasks(TaskQuery(teamId: "t1", provider: "fal", offset: 1))
      #expect(fal.tasks.map(\.id) == ["fal-b"])
      #expect(fal.total == 2)
      let window = try store.listTasks(
        TaskQuery(teamId: "t1", createdAfter: 10, createdBefore: 30))
      #expect(window.tasks.map(\.id) == ["plain"])
      let counts = try store.taskCounts().sorted { ($0.provider ?? "") < ($1.provider ?? "") }
      #expect(counts.map(\.count) == [2, 2])
      #expect(counts.map(\.provider) == [nil, "fal"])
    }
  }

  @Test(arguments: StoreBackend.available) func settingsAndKeysRoundTrip(_ backend: StoreBackend)
    throws
  {
    try backend.withStore { store in
      #expect(try store.setting("x") == nil)
      try store.setSetting("x", "1")
      try store.setSetting("x", "2")
      #expect(try store.setting("x") == "2")
      try store.addAPIKey(hash: "h", teamId: "a", label: "one")
      try store.addAPIKey(hash: "h", teamId: "b", label: "again")
      #expect(try store.apiKeyCount() == 1)
      #expect(try store.team(forKeyHash: "h") == "a")
      #expect(try store.storedTeamSecret("a") == nil)
      #expect(try store.teamSecret("a", makeSecret: { "whsec_first" }) == "whsec_first")
      #expect(try store.teamSecret("a", makeSecret: { "whsec_second" }) == "whsec_first")
      try store.ping()
    }
  }
}

@Suite struct StoreFactoryTests {
  @Test func locationsOfDatabaseValues() throws {
    #expect(
      try StoreFactory.location(database: nil, dataDirectory: "/d")
        == .sqlite(path: "/d/asyncqueue.db"))
    #expect(
      try StoreFactory.location(database: " ", dataDirectory: "/d")
        == .sqlite(path: "/d/asyncqueue.db"))
    #expect(
      try StoreFactory.location(database: "sqlite:///x/a.db", dataDirectory: "/d")
        == .sqlite(path: "/x/a.db"))
    #expect(
      try StoreFactory.location(database: "rel/a.db", dataDirectory: "/d")
        == .sqlite(path: "rel/a.db"))
    #expect(
      try StoreFactory.location(database: "postgresql://u@h/db", dataDirectory: "/d")
        == .postgres(url: "postgresql://u@h/db"))
  }

  @Test func unknownSchemeNamesOption() {
    let error = #expect(throws: StorageError.self) {
      try StoreFactory.open(database: "mysql://u:p@h/db", dataDirectory: "/d")
    }
    #expect(error?.message.contains("--database") == true)
    #expect(error?.message.contains("postgres://") == true)
  }

  @Test func migrateReportsSQLiteVersion() throws {
    let directory = temporaryDirectory("factory")
    let report = try StoreFactory.migrate(database: nil, dataDirectory: directory)
    #expect(report.backend == "sqlite")
    #expect(report.schemaVersion == SQLiteStore.latestSchemaVersion)
    let store = try StoreFactory.open(database: nil, dataDirectory: directory)
    #expect(store is SQLiteStore)
  }

  @Test func passwordIsMaskedInURL() {
    #expect(PostgresTarget.masked("postgres://u:s3cret@h:5432/db") == "postgres://u:***@h:5432/db")
    #expect(
      PostgresTarget.masked("postgres://u@h/db?password=s3cret&x=1")
        == "postgres://u@h/db?password=***&x=1")
    #expect(PostgresTarget.masked("postgres://h/db") == "postgres://h/db")
    #expect(
      PostgresTarget.masked("postgres://u@h/db?sslpassword=k3y")
        == "postgres://u@h/db?sslpassword=***")
  }

  @Test func unreadablePasswordStaysOutOfTheError() {
    // libpq quotes the token it cannot percent-decode: here, the password.
    var message = ""
    do {
      _ = try PostgresTarget(url: "postgres://u:Hunter2%Secret@127.0.0.1:1/db")
    } catch {
      message = error.message
    }
    #expect(message.contains("invalid"), "\(message)")
    #expect(!message.contains("Hunter2"), "\(message)")
  }
}
