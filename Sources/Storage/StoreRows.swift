import Foundation
import Support

/// Row and document conversions that both backends share, so a task or delivery reads the
/// same from SQLite and PostgreSQL.
enum StoreRows {
  /// The SQL list of terminal statuses, for `status NOT IN (…)`.
  static let terminalStatuses = "('completed', 'failed', 'timeout', 'cancelled')"

  static let deliveryColumns = """
    id, task_id, team_id, url, event, payload, attempts, next_attempt_at, delivered_at,
    created_at, last_status, last_error
    """

  /// Returns the SQL condition that selects deliveries in `state`: pending, delivered, or
  /// abandoned for any other value.
  static func deliveryCondition(state: String) -> String {
    switch state {
    case "pending": return "next_attempt_at IS NOT NULL"
    case "delivered": return "delivered_at IS NOT NULL"
    default: return "next_attempt_at IS NULL AND delivered_at IS NULL"
    }
  }

  static func delivery(_ row: [SQLValue]) -> DeliveryRecord {
    var payload: [UInt8] = []
    if case .blob(let bytes) = row[5] { payload = bytes }
    if case .text(let text) = row[5] { payload = Array(text.utf8) }
    var record = DeliveryRecord(
      id: row[0].integer ?? 0, taskId: row[1].text ?? "", teamId: row[2].text ?? "",
      url: row[3].text ?? "", event: row[4].text ?? "", payload: payload,
      createdAt: row[9].real ?? 0)
    record.attempts = Int(row[6].integer ?? 0)
    record.nextAttemptAt = row[7].real
    record.deliveredAt = row[8].real
    record.lastStatus = row[10].integer.map { Int($0) }
    record.lastError = row[11].text
    return record
  }

  /// Reads `id, team_id, name, sealed_value, created_at`.
  static func token(_ row: [SQLValue]) -> VaultToken {
    VaultToken(
      id: row[0].text ?? "", teamId: row[1].text ?? "", name: row[2].text ?? "",
      sealedValue: row[3].text ?? "", createdAt: row[4].real ?? 0)
  }

  /// Reads `at, kind, status_code, state, latency_ms, error`.
  static func event(_ row: [SQLValue], taskId: String) -> TaskEvent {
    TaskEvent(
      taskId: taskId, at: row[0].real ?? 0, kind: row[1].text ?? "",
      statusCode: row[2].integer.map { Int($0) }, state: row[3].text,
      latencyMs: row[4].integer.map { Int($0) }, error: row[5].text)
  }

  /// Reads `at, status_code, latency_ms, error`.
  static func attempt(_ row: [SQLValue], deliveryId: Int64) -> DeliveryAttempt {
    DeliveryAttempt(
      deliveryId: deliveryId, at: row[0].real ?? 0, statusCode: row[1].integer.map { Int($0) },
      latencyMs: Int(row[2].integer ?? 0), error: row[3].text)
  }

  /// Reads `id, team_id, label, created_at, revoked_at`.
  static func apiKey(_ row: [SQLValue]) -> APIKeyRecord {
    APIKeyRecord(
      id: row[0].text ?? "", teamId: row[1].text ?? "", label: row[2].text ?? "",
      createdAt: row[3].real ?? 0, revokedAt: row[4].real)
  }

  /// Reads `kind, status, result, error`.
  static func resolution(_ row: [SQLValue], taskId: String) -> TaskResolution {
    TaskResolution(
      taskId: taskId, kind: row[0].text ?? "", status: row[1].text ?? "",
      result: row[2].text.flatMap { try? JSONValue.parse($0) }, error: row[3].text)
  }

  static func encode(_ task: TaskRecord) throws(StorageError) -> String {
    // Only a non-finite double makes the writer fall back to "null"; the engine never stores one.
    let bytes = task.document.serializedBytes()
    guard bytes != Array("null".utf8) else {
      throw StorageError("cannot encode task \(task.id): a number is not finite")
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  static func decode(_ text: String) throws(StorageError) -> TaskRecord {
    do {
      return try TaskRecord(document: try JSONValue.parse(text))
    } catch let error as StorageError {
      throw error
    } catch {
      throw StorageError("stored task is unreadable: \(error)")
    }
  }

  /// Decodes the first column of each row, in order. Many rows (all active tasks at start-up)
  /// are split over the processor's cores.
  static func decodeAll(_ rows: [[SQLValue]]) throws(StorageError) -> [TaskRecord] {
    let texts = rows.compactMap { $0.first?.text }
    let parts = texts.count < 2_000 ? 1 : ProcessInfo.processInfo.activeProcessorCount
    guard parts > 1 else {
      var tasks: [TaskRecord] = []
      tasks.reserveCapacity(texts.count)
      for text in texts { tasks.append(try decode(text)) }
      return tasks
    }
    let size = (texts.count + parts - 1) / parts
    let results = DecodedParts(count: parts)
    DispatchQueue.concurrentPerform(iterations: parts) { part in
      let range = (part * size)..<min(texts.count, (part + 1) * size)
      var tasks: [TaskRecord] = []
      tasks.reserveCapacity(range.count)
      do throws(StorageError) {
        for index in range { tasks.append(try decode(texts[index])) }
        results.set(part, .success(tasks))
      } catch {
        results.set(part, .failure(error))
      }
    }
    var tasks: [TaskRecord] = []
    tasks.reserveCapacity(texts.count)
    for part in results.all() { tasks.append(contentsOf: try part.get()) }
    return tasks
  }
}

/// The decoded parts of `decodeAll`, written by several threads.
private final class DecodedParts: @unchecked Sendable {
  private let lock = NSLock()
  // Guarded by `lock`.
  private var parts: [Result<[TaskRecord], StorageError>]

  init(count: Int) { parts = Array(repeating: .success([]), count: count) }

  func set(_ index: Int, _ value: Result<[TaskRecord], StorageError>) {
    lock.withLock { parts[index] = value }
  }

  func all() -> [Result<[TaskRecord], StorageError>] { lock.withLock { parts } }
}
