import Foundation
import Testing

@testable import Storage

@Suite struct SQLiteCheckpointTests {
  @Test func timerCopiesLogIntoDatabase() throws {
    let path = temporaryDirectory("checkpoint") + "/asyncqueue.db"
    let store = try SQLiteStore(path: path)
    let before = fileSize(path)
    for index in 0..<200 {
      try store.setSetting("key\(index)", String(repeating: "v", count: 500))
    }
    // 200 small commits stay far below any page threshold, so only the timer copies them.
    let deadline = Date(timeIntervalSinceNow: 5)
    while fileSize(path) == before, Date() < deadline {
      Thread.sleep(forTimeInterval: 0.05)
    }
    #expect(fileSize(path) > before, "the checkpoint thread should copy the log within seconds")
    #expect(try store.setting("key199") == String(repeating: "v", count: 500))
  }

  @Test func commitsSurviveReopen() throws {
    let path = temporaryDirectory("checkpoint-reopen") + "/asyncqueue.db"
    do {
      let store = try SQLiteStore(path: path)
      for index in 0..<50 { try store.setSetting("key\(index)", "value\(index)") }
    }
    let reopened = try SQLiteStore(path: path)
    #expect(try reopened.setting("key0") == "value0")
    #expect(try reopened.setting("key49") == "value49")
  }

  private func fileSize(_ path: String) -> Int {
    let attributes = try? FileManager.default.attributesOfItem(atPath: path)
    return (attributes?[.size] as? Int) ?? 0
  }
}
