import Foundation
import Support
import Testing

@testable import Storage

/// Notices, migrations, reconnection and password masking against a real PostgreSQL server.
@Suite(.serialized, .enabled(if: testDatabaseURL != nil)) struct PostgresNoticeTests {
  func task(_ id: String) -> TaskRecord {
    var record = TaskRecord(
      id: id, teamId: "t1", status: .pending, targetUrl: "https://example.com", method: "POST",
      headers: [:], body: nil, provider: nil, pollConfig: nil, onCompleteUrl: nil, timeout: 30,
      maxRetries: 3, retryBackoff: "exponential", priority: 5, delayUntil: nil, createdAt: 1)
    record.nextRunAt = 10
    return record
  }

  @Test func listenerHearsOtherNodeOnly() throws {
    try TestSchema.with { schema in
      try TestSchema.with { elsewhere in
        let listening = try schema.makeStore()
        let writer = try schema.makeStore()
        let stranger = try elsewhere.makeStore()
        let notices = LockedList<StoreNotice>()
        try listening.startListening { notices.append($0) }
        defer { listening.stopListening() }

        try stranger.insertTask(task("foreign"))
        var foreign = task("foreign")
        foreign.status = .processing
        try stranger.saveTask(foreign, delivery: nil)

        try writer.insertTask(task("a"))
        #expect(notices.wait(timeout: 5) { $0.contains(.workDue) })
        var update = task("a")
        update.status = .processing
        try writer.saveTask(update, delivery: nil)
        #expect(notices.wait(timeout: 5) { $0.contains(.statusChanged(taskId: "a")) })
        let count = notices.all.count
        try writer.saveTask(update, delivery: nil)  // Same status: no notice.
        _ = writer.claimTaskQuietly("a")
        #expect(try writer.saveHeldTask(task("a"), node: "n", delivery: nil, events: []))
        #expect(notices.wait(timeout: 5) { $0.count > count })
        #expect(notices.all.dropFirst(count).first == .statusChanged(taskId: "a"))
        #expect(!notices.all.contains(.statusChanged(taskId: "foreign")))
      }
    }
  }

  @Test func stopListeningClosesConnection() throws {
    try TestSchema.with { schema in
      let store = try schema.makeStore(poolSize: 1)
      try store.startListening { _ in }
      let listening = try schema.query(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND state = 'idle' "
          + "AND application_name = 'asyncqueue'")
      #expect((listening.first?.first?.integer ?? 0) >= 1)
      let started = Date()
      store.stopListening()
      #expect(Date().timeIntervalSince(started) < 1)
    }
  }

  @Test func listenerReconnectsAndReportsWorkDue() throws {
    try TestSchema.with { schema in
      let store = try schema.makeStore()
      let notices = LockedList<StoreNotice>()
      try store.startListening { notices.append($0) }
      defer { store.stopListening() }
      try schema.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
          + "WHERE query LIKE 'LISTEN \"\(store.channel)\"%' AND pid <> pg_backend_pid()")
      #expect(notices.wait(timeout: 10) { $0.contains(.workDue) })
      try store.insertTask(task("after"))
      #expect(notices.wait(timeout: 5) { $0.filter { $0 == .workDue }.count >= 2 })
    }
  }

  @Test func lostPoolConnectionIsRetried() throws {
    try TestSchema.with { schema in
      let store = try schema.makeStore(poolSize: 1)
      try store.insertTask(task("a"))
      try terminateConnection(of: store, schema)
      #expect(try store.task(id: "a")?.id == "a")
      try terminateConnection(of: store, schema)
      try store.insertTask(task("b"))
      #expect(try store.task(id: "b")?.id == "b")
    }
  }

  /// Ends the server process behind the only connection of a store with a pool of one.
  func terminateConnection(of store: PostgresStore, _ schema: TestSchema) throws {
    let rows = try store.withConnection("pid") { connection throws(StorageError) in
      try connection.query("SELECT pg_backend_pid()")
    }
    let pid = try #require(rows.first?.first?.integer)
    try schema.execute("SELECT pg_terminate_backend(\(pid))")
    Thread.sleep(forTimeInterval: 0.1)
  }

  @Test func concurrentMigrationsApplyOnce() throws {
    try TestSchema.with { schema in
      let versions = LockedList<Int>()
      let failures = LockedList<String>()
      runConcurrently(6) { _ in
        do {
          let store = try schema.makeStore(poolSize: 1)
          versions.append(store.schemaVersion)
          store.close()
        } catch {
          failures.append("\(error)")
        }
      }
      #expect(failures.all.isEmpty)
      #expect(versions.all == Array(repeating: PostgresStore.latestSchemaVersion, count: 6))
      let rows = try schema.query("SELECT version FROM schema_migrations ORDER BY version")
      #expect(
        rows.compactMap { $0.first?.integer }
          == (1...PostgresStore.latestSchemaVersion).map { Int64($0) })
    }
  }

  @Test func newerSchemaIsRejected() throws {
    try TestSchema.with { schema in
      _ = try schema.makeStore(poolSize: 1)
      try schema.execute(
        "INSERT INTO schema_migrations VALUES (\(PostgresStore.latestSchemaVersion + 1), 0)")
      let error = #expect(throws: StorageError.self) { try schema.makeStore(poolSize: 1) }
      #expect(error?.message.contains("run a newer asyncqueue") == true)
    }
  }

  @Test func passwordStaysOutOfErrors() throws {
    let base = try #require(testDatabaseURL)
    let password = "wrong-Pa55word-\(Crypto.randomHex(bytes: 4))"
    let url = base.replacingOccurrences(
      of: #"//([^:/@]+):[^@]*@"#, with: "//$1:\(password)@", options: .regularExpression)
    #expect(url.contains(password))
    let error = #expect(throws: StorageError.self) { try PostgresStore(url: url, poolSize: 1) }
    #expect(error?.message.contains(password) == false)
    #expect(error?.message.contains("***") == true)
    #expect(Redactor.shared.redact("x \(password) y") == "x *** y")

    try TestSchema.with { schema in
      let store = try schema.makeStore(poolSize: 1)
      let failure = #expect(throws: StorageError.self) {
        try store.saveTask(task("none"), delivery: nil)
      }
      #expect(failure?.message.contains("saveTask") == true)
      #expect(failure?.message.contains("asyncqueue:asyncqueue@") == false)
    }
  }

  @Test func factoryOpensPostgres() throws {
    try TestSchema.with { schema in
      let store = try StoreFactory.open(database: schema.url, dataDirectory: "/nonexistent")
      #expect(store is PostgresStore)
      let report = try StoreFactory.migrate(database: schema.url, dataDirectory: "/nonexistent")
      #expect(report.backend == "postgres")
      #expect(report.schemaVersion == PostgresStore.latestSchemaVersion)
      #expect(!report.location.contains(":asyncqueue@"))
    }
  }
}

extension PostgresStore {
  /// Claims a task for node `n` in tests that only need it held.
  fileprivate func claimTaskQuietly(_ id: String) -> ClaimedTask? {
    try? claimTask(id: id, node: "n", now: 0, leaseUntil: 1e12)
  }
}
