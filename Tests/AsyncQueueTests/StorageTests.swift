import Foundation
import Storage
import Support
import Testing

func temporaryDirectory(_ name: String) -> String {
  let path = NSTemporaryDirectory() + "asyncqueue-\(name)-\(UUID().uuidString.prefix(8))"
  try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

@Suite struct StorageTests {
  func sampleTask(id: String = UUID().uuidString, team: String = "t1") -> TaskRecord {
    TaskRecord(
      id: id, teamId: team, status: .pending, targetUrl: "https://example.com", method: "POST",
      headers: ["Authorization": "Key secret"], body: "{}", provider: "fal", pollConfig: nil,
      onCompleteUrl: "https://example.com/done", timeout: 30, maxRetries: 3,
      retryBackoff: "exponential", priority: 5, delayUntil: nil, createdAt: 1000)
  }

  @Test(arguments: StoreBackend.available) func taskSurvivesReopen(_ backend: StoreBackend)
    throws
  {
    try backend.withDatabase { open in
      var task = sampleTask()
      task.job = ["request_id": "abc", "status_url": .null]
      // Every optional field is set, so a field missing from the stored document fails the
      // comparison.
      task.body = "{}"
      task.provider = "fal"
      task.pollConfig = ["interval": 5]
      task.onCompleteUrl = "https://example.com/done"
      task.delayUntil = 1001
      task.result = ["ok": true]
      task.error = "e"
      task.errorCode = "c"
      task.startedAt = 1002
      task.completedAt = 1003
      task.providerStatus = "IN_PROGRESS"
      task.progress = 0.5
      task.nextRunAt = 1004
      task.step = .poll
      task.deadlineAt = 1005
      task.fetchRequest = ["url": "https://example.com/r"]
      task.resultFile = ResultFile(name: "a.png", contentType: "image/png", size: 3)
      task.requestInFlight = true
      task.cancelRequested = true
      task.waitForSignal = true
      task.maxWaitTime = 60
      task.callbackUrl = "https://example.com/cb"
      let unset = Mirror(reflecting: task).children.filter { child in
        let value = Mirror(reflecting: child.value)
        return value.displayStyle == .optional && value.children.isEmpty
      }
      #expect(unset.isEmpty, "set these in the test too: \(unset.compactMap(\.label))")
      do {
        let store = try open()
        try store.insertTask(task)
      }
      let reopened = try open()
      #expect(try reopened.task(id: task.id) == task)
      #expect(try reopened.activeTasks().map(\.id) == [task.id])
    }
  }

  @Test(arguments: StoreBackend.available) func terminalTaskLeavesActiveSet(
    _ backend: StoreBackend
  ) throws {
    try backend.withStore { store in
      var task = sampleTask()
      try store.insertTask(task)
      task.status = .completed
      task.nextRunAt = nil
      let delivery = DeliveryRecord(
        taskId: task.id, teamId: task.teamId, url: "https://example.com/done",
        event: "task.completed", payload: Array("{}".utf8), createdAt: 1001)
      try store.saveTask(task, delivery: delivery)
      #expect(try store.activeTasks().isEmpty)
      let pending = try store.pendingDeliveries()
      #expect(pending.count == 1)
      #expect(pending.first?.event == "task.completed")
      #expect(pending.first?.payload == Array("{}".utf8))
    }
  }

  @Test(arguments: StoreBackend.available) func saveOfUnknownTaskFailsAndQueuesNothing(
    _ backend: StoreBackend
  ) throws {
    try backend.withStore { store throws in
      let task = sampleTask()
      let delivery = DeliveryRecord(
        taskId: task.id, teamId: task.teamId, url: "https://example.com/done",
        event: "task.completed", payload: [], createdAt: 1)
      #expect(throws: StorageError.self) { try store.saveTask(task, delivery: delivery) }
      #expect(try store.pendingDeliveries().isEmpty)
    }
  }

  @Test(arguments: StoreBackend.available) func listFiltersByTeamAndStatus(
    _ backend: StoreBackend
  ) throws {
    try backend.withStore { store in
      for index in 0..<5 {
        var task = sampleTask(team: index < 3 ? "a" : "b")
        task.createdAt = Double(index)
        try store.insertTask(task)
      }
      let page = try store.listTasks(TaskQuery(teamId: "a", status: .pending, limit: 2))
      #expect(page.total == 3)
      #expect(page.tasks.count == 2)
      #expect(page.tasks.allSatisfy { $0.teamId == "a" })
    }
  }

  @Test(arguments: StoreBackend.available) func apiKeyHashMapsToTeam(_ backend: StoreBackend)
    throws
  {
    try backend.withStore { store in
      try store.addAPIKey(hash: Crypto.sha256Hex("k1"), teamId: "team-x", label: "test")
      #expect(try store.team(forKeyHash: Crypto.sha256Hex("k1")) == "team-x")
      #expect(try store.team(forKeyHash: Crypto.sha256Hex("k2")) == nil)
    }
  }
}

@Suite struct SupportTests {
  @Test func signatureVerifiesAndRejectsTampering() {
    let body = Array(#"{"event":"task.completed"}"#.utf8)
    let header = WebhookSignature.header(secret: "s3cret", timestamp: 1_700_000_000, body: body)
    #expect(header.hasPrefix("t=1700000000,v1="))
    #expect(
      WebhookSignature.verify(header: header, secret: "s3cret", body: body, now: 1_700_000_010))
    #expect(
      !WebhookSignature.verify(
        header: header, secret: "s3cret", body: body + [32], now: 1_700_000_010))
    #expect(
      !WebhookSignature.verify(header: header, secret: "other", body: body, now: 1_700_000_010))
    #expect(
      !WebhookSignature.verify(header: header, secret: "s3cret", body: body, now: 1_700_000_400))
  }

  @Test func hmacMatchesKnownVector() {
    // RFC 4231 test case 2.
    let mac = Crypto.hmacSHA256Hex(key: "Jefe", message: Array("what do ya want for nothing?".utf8))
    #expect(mac == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
  }

  @Test func jsonKeepsNullDistinctFromAbsent() throws {
    let value = try JSONValue.parse(#"{"a": null, "b": 1, "c": 1.5}"#)
    #expect(value["a"] == .null)
    #expect(value["z"] == nil)
    #expect(value["b"] == .int(1))
    #expect(value["c"] == .double(1.5))
    #expect(value.serialized() == #"{"a":null,"b":1,"c":1.5}"#)
  }

  @Test func redactorMasksRegisteredSecret() {
    Redactor.shared.register("sk-live-abcdef123456")
    #expect(Redactor.shared.redact("auth sk-live-abcdef123456 here") == "auth *** here")
  }
}

@Suite struct RedactorTests {
  @Test func masksEachRegisteredSecretAmongMany() {
    let redactor = Redactor()
    for index in 0..<5000 { redactor.register("token-\(index)-abcdefgh") }
    redactor.register("Bearer sk-live-123456789")
    redactor.register("sk-live-123456789")
    let line = "call failed with token-4321-abcdefgh and Bearer sk-live-123456789 here"
    #expect(redactor.redact(line) == "call failed with *** and *** here")
    #expect(redactor.redact("nothing secret") == "nothing secret")
    #expect(redactor.redact("abc") == "abc")
  }

  @Test func ignoresShortValuesAndWords() {
    let redactor = Redactor()
    redactor.register("failed")
    redactor.register("completed")
    #expect(redactor.redact("task failed, then completed") == "task failed, then completed")
  }
}

@Suite struct TimestampTests {
  @Test func formatsUTCWithMilliseconds() {
    #expect(Timestamp.iso8601(seconds: 1_764_868_358.12) == "2025-12-04T17:12:38.120Z")
    #expect(Timestamp.iso8601(seconds: 0) == "1970-01-01T00:00:00.000Z")
  }

  @Test func parsesRFC3339Forms() {
    #expect(Timestamp.parse("2026-12-04T17:12:38Z")?.timeIntervalSince1970 == 1_796_404_358)
    #expect(Timestamp.parse("2026-12-04T17:12:38.5Z")?.timeIntervalSince1970 == 1_796_404_358.5)
    #expect(Timestamp.parse("2026-12-04T19:12:38+02:00")?.timeIntervalSince1970 == 1_796_404_358)
    #expect(Timestamp.parse("2026-12-04T15:12:38-02:00")?.timeIntervalSince1970 == 1_796_404_358)
    #expect(Timestamp.parse("2028-02-29T00:00:00Z") != nil)
  }

  @Test func rejectsMalformedDates() {
    for text in [
      "2027-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-12-04", "2026-12-04T17:12:38",
      "2026-12-04T25:00:00Z", "yesterday", "2026-12-04T17:12:38.Z", "2026-12-04T17:12:38Zjunk",
    ] {
      #expect(Timestamp.parse(text) == nil, "\(text)")
    }
  }

  @Test func roundTripsThroughFormatter() {
    let now = Timestamp.now()
    let parsed = Timestamp.parse(Timestamp.iso8601(seconds: now))?.timeIntervalSince1970 ?? 0
    #expect(abs(parsed - now) < 0.001)
  }
}
