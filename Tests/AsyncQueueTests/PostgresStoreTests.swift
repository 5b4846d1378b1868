import API
import Foundation
import Support
import Testing

@testable import Storage

/// The SharedTaskStore methods against a real PostgreSQL server: two stores on one schema are
/// two nodes. Serialized, because each test opens several connections and the server allows
/// 100 in all.
@Suite(.serialized, .enabled(if: testDatabaseURL != nil)) struct PostgresStoreTests {
  func task(_ id: String, nextRunAt: Double? = 10) -> TaskRecord {
    var record = TaskRecord(
      id: id, teamId: "t1", status: .pending, targetUrl: "https://example.com", method: "POST",
      headers: [:], body: nil, provider: "fal", pollConfig: nil, onCompleteUrl: nil, timeout: 30,
      maxRetries: 3, retryBackoff: "exponential", priority: 5, delayUntil: nil, createdAt: 1)
    record.nextRunAt = nextRunAt
    return record
  }

  @Test func concurrentClaimsAreDisjoint() throws {
    try TestSchema.with { schema in
      let nodes = [try schema.makeStore(), try schema.makeStore()]
      for index in 0..<500 { try nodes[0].insertTask(task("task-\(index)", nextRunAt: 1)) }
      let claimed = LockedList<String>()
      let failures = LockedList<String>()
      runConcurrently(8) { thread in
        let node = nodes[thread % 2]
        while true {
          do {
            let batch = try node.claimDueTasks(
              node: "node-\(thread)", dueBy: 5, now: 5, leaseUntil: 100, limit: 7)
            if batch.isEmpty { return }
            claimed.append(contentsOf: batch.map(\.task.id))
          } catch {
            failures.append("\(error)")
            return
          }
        }
      }
      #expect(failures.all.isEmpty)
      #expect(claimed.all.count == 500)
      #expect(Set(claimed.all).count == 500)
    }
  }

  @Test func expiredLeaseIsTakenOver() throws {
    try TestSchema.with { schema in
      let (first, second) = (try schema.makeStore(), try schema.makeStore())
      try first.insertTask(task("a"))
      #expect(
        try first.claimDueTasks(node: "a", dueBy: 20, now: 20, leaseUntil: 50, limit: 5).count == 1)
      #expect(
        try second.claimDueTasks(node: "b", dueBy: 20, now: 40, leaseUntil: 90, limit: 5).isEmpty)
      #expect(try second.claimTask(id: "a", node: "b", now: 40, leaseUntil: 90) == nil)
      let taken = try second.claimDueTasks(node: "b", dueBy: 60, now: 60, leaseUntil: 90, limit: 5)
      #expect(taken.map(\.task.id) == ["a"])

      var update = task("a")
      update.status = .processing
      #expect(try first.saveHeldTask(update, node: "a", delivery: nil, events: []) == false)
      #expect(try first.task(id: "a")?.status == .pending)
      #expect(try second.saveHeldTask(update, node: "b", delivery: nil, events: []))
      #expect(try first.task(id: "a")?.status == .processing)
      #expect(try first.renewLeases(node: "b", leaseUntil: 200) == ["a"])
      #expect(try first.renewLeases(node: "a", leaseUntil: 200).isEmpty)
    }
  }

  @Test func claimTaskChecksStateAndLease() throws {
    try TestSchema.with { schema in
      let store = try schema.makeStore()
      #expect(try store.claimTask(id: "missing", node: "a", now: 1, leaseUntil: 9) == nil)
      var done = task("done", nextRunAt: nil)
      done.status = .completed
      try store.insertTask(done)
      #expect(try store.claimTask(id: "done", node: "a", now: 1, leaseUntil: 9) == nil)
      try store.insertTask(task("later", nextRunAt: 1000))
      #expect(
        try store.claimTask(id: "later", node: "a", now: 1, leaseUntil: 9)?.task.id == "later")
      #expect(try store.claimTask(id: "later", node: "b", now: 2, leaseUntil: 9) == nil)
      #expect(try store.claimTask(id: "later", node: "a", now: 2, leaseUntil: 9) != nil)
      #expect(try store.claimTask(id: "later", node: "b", now: 10, leaseUntil: 20) != nil)
    }
  }

  @Test func releaseReturnsRequestsFirst() throws {
    try TestSchema.with { schema in
      let (holder, other) = (try schema.makeStore(), try schema.makeStore())
      try holder.insertTask(task("a"))
      _ = try holder.claimDueTasks(node: "a", dueBy: 20, now: 20, leaseUntil: 100, limit: 1)
      #expect(try other.releaseTask(id: "a", node: "b") == nil)

      try other.requestCancel(id: "a", now: 30)
      try other.requestWake(id: "a", now: 30)
      #expect(try holder.task(id: "a")?.nextRunAt == 10, "a live lease keeps the due time")
      let requests = try holder.releaseTask(id: "a", node: "a")
      #expect(requests == HeldTaskRequests(cancel: true, wake: true))
      #expect(try other.claimTask(id: "a", node: "b", now: 40, leaseUntil: 90) == nil)
      #expect(
        try holder.releaseTask(id: "a", node: "a") == HeldTaskRequests(cancel: false, wake: false))
      let claimed = try other.claimTask(id: "a", node: "b", now: 40, leaseUntil: 90)
      #expect(claimed?.cancelRequested == false)
    }
  }

  @Test func requestsOnFreeTaskMakeItDue() throws {
    try TestSchema.with { schema in
      let store = try schema.makeStore()
      try store.insertTask(task("a", nextRunAt: 500))
      try store.insertTask(task("b", nextRunAt: 500))
      try store.requestCancel(id: "a", now: 30)
      try store.requestWake(id: "b", now: 30)
      let due = try store.claimDueTasks(node: "n", dueBy: 30, now: 30, leaseUntil: 60, limit: 5)
      #expect(due.map(\.task.id).sorted() == ["a", "b"])
      #expect(due.first { $0.task.id == "a" }?.cancelRequested == true)
      #expect(due.first { $0.task.id == "b" }?.cancelRequested == false)
      #expect(
        try store.releaseTask(id: "b", node: "n") == HeldTaskRequests(cancel: false, wake: false))

      _ = try store.claimTask(id: "b", node: "n", now: 30, leaseUntil: 60)
      try store.releaseAllTasks(node: "n", keeping: ["b"])
      #expect(try store.claimTask(id: "a", node: "m", now: 31, leaseUntil: 60) != nil)
      #expect(try store.claimTask(id: "b", node: "m", now: 31, leaseUntil: 60) == nil)
    }
  }

  @Test func keyCheckWithoutDatabaseIsUnavailableNotRejected() throws {
    try TestSchema.with { schema in
      let store = try schema.makeStore()
      try store.addAPIKey(hash: Crypto.sha256Hex("aq_outage_key_1"), teamId: "t", label: "x")
      let authenticator = Authenticator(store: store, cacheSeconds: 0)
      #expect(
        authenticator.check(authorization: "Bearer aq_outage_key_1", apiKey: nil) == .team("t"))
      store.close()
      #expect(
        authenticator.check(authorization: "Bearer aq_outage_key_1", apiKey: nil) == .unavailable)
    }
  }

  @Test func deliveriesAreClaimedOnce() throws {
    try TestSchema.with { schema in
      let (first, second) = (try schema.makeStore(), try schema.makeStore())
      try first.insertTask(task("a"))
      let delivery = try first.insertDelivery(
        DeliveryRecord(
          taskId: "a", teamId: "t1", url: "https://hook", event: "e", payload: [1], createdAt: 5))
      #expect(try first.claimDueDeliveries(node: "a", now: 4, leaseUntil: 50, limit: 5).isEmpty)
      let claimed = try first.claimDueDeliveries(node: "a", now: 6, leaseUntil: 50, limit: 5)
      #expect(claimed.map(\.id) == [delivery.id])
      #expect(try second.claimDueDeliveries(node: "b", now: 7, leaseUntil: 50, limit: 5).isEmpty)
      var retry = delivery
      retry.attempts = 1
      retry.nextAttemptAt = 8
      try first.saveDelivery(retry, attempt: nil)
      let again = try second.claimDueDeliveries(node: "b", now: 9, leaseUntil: 50, limit: 5)
      #expect(again.map(\.attempts) == [1])
      #expect(try first.claimDueDeliveries(node: "a", now: 60, leaseUntil: 90, limit: 5).count == 1)
    }
  }

  @Test func limitSlotsNeverExceedLimit() throws {
    try TestSchema.with { schema in
      let nodes = [try schema.makeStore(), try schema.makeStore()]
      #expect(
        try nodes[0].acquireLimitSlot(
          key: "k", limit: 2, interval: 0, node: "a", now: 1, leaseUntil: 10)?.slot == 0)
      #expect(
        try nodes[1].acquireLimitSlot(
          key: "k", limit: 2, interval: 0, node: "b", now: 1, leaseUntil: 30)?.slot == 1)
      #expect(
        try nodes[1].acquireLimitSlot(
          key: "k", limit: 2, interval: 0, node: "b", now: 2, leaseUntil: 10)?.slot == nil)
      #expect(
        try nodes[1].acquireLimitSlot(
          key: "k", limit: 2, interval: 0, node: "b", now: 11, leaseUntil: 20)?.slot == 0)
      try nodes[0].releaseLimitSlot(key: "k", slot: 1, node: "a")
      #expect(
        try nodes[1].acquireLimitSlot(
          key: "k", limit: 2, interval: 0, node: "b", now: 12, leaseUntil: 20)?.slot == nil
      )
      try nodes[1].releaseLimitSlot(key: "k", slot: 1, node: "b")
      #expect(
        try nodes[0].acquireLimitSlot(
          key: "k", limit: 2, interval: 0, node: "a", now: 12, leaseUntil: 20)?.slot == 1)

      let held = HeldSlots()
      let failures = LockedList<String>()
      let now = 1_000.0
      runConcurrently(8) { thread in
        let node = nodes[thread % 2]
        for _ in 0..<30 {
          do {
            guard
              let slot = try node.acquireLimitSlot(
                key: "busy", limit: 3, interval: 0, node: "n\(thread)", now: now,
                leaseUntil: now + 100)?.slot
            else { continue }
            held.enter()
            Thread.sleep(forTimeInterval: 0.002)
            held.leave()
            try node.releaseLimitSlot(key: "busy", slot: slot, node: "n\(thread)")
          } catch {
            failures.append("\(error)")
          }
        }
      }
      #expect(failures.all.isEmpty)
      #expect(held.maximum <= 3)
      #expect(held.maximum >= 1)
      // Released slots stay as free rows.
      let rows = try schema.query(
        "SELECT count(*) FROM limit_slots WHERE key = 'busy' AND lease_until > 0")
      #expect(rows.first?.first?.integer == 0)
    }
  }

  @Test func sendTimesAreSpacedAcrossNodes() throws {
    try TestSchema.with { schema in
      let nodes = [try schema.makeStore(), try schema.makeStore()]
      var waits: [Double] = []
      for index in 0..<10 {
        let grant = try nodes[index % 2].acquireLimitSlot(
          key: "k", limit: 100, interval: 0.2, node: "n\(index % 2)", now: 1, leaseUntil: 50)
        waits.append(try #require(grant).wait)
      }
      #expect(waits[0] == 0)
      for index in 1..<10 {
        // Each reservation waits one interval more than the one before, less the time the
        // calls took. The bound allows 0.1 s of scheduling delay.
        #expect(waits[index] > waits[index - 1] + 0.1, "reservation \(index): \(waits)")
        #expect(waits[index] <= Double(index) * 0.2 + 0.001, "reservation \(index): \(waits)")
      }
      let other = try nodes[0].acquireLimitSlot(
        key: "other", limit: 1, interval: 0.2, node: "a", now: 1, leaseUntil: 50)
      #expect(other?.wait == 0)
      // No slot, no reservation: a refused request does not push the next send time back.
      #expect(
        try nodes[1].acquireLimitSlot(
          key: "other", limit: 1, interval: 0.2, node: "b", now: 1, leaseUntil: 50) == nil)
      try nodes[0].releaseLimitSlot(key: "other", slot: 0, node: "a")
      let next = try nodes[1].acquireLimitSlot(
        key: "other", limit: 1, interval: 0.2, node: "b", now: 1, leaseUntil: 50)
      #expect((next?.wait ?? 1) <= 0.2 + 0.001)
    }
  }
}

/// Counts slots held at once and the maximum reached.
final class HeldSlots: @unchecked Sendable {
  private let lock = NSLock()
  private var current = 0
  private var highest = 0

  func enter() {
    lock.withLock {
      current += 1
      highest = max(highest, current)
    }
  }

  func leave() { lock.withLock { current -= 1 } }
  var maximum: Int { lock.withLock { highest } }
}
