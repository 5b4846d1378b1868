import Foundation
import Storage
import Support

/// The public JSON shape of a task, shared by the API and the completion webhook.
public enum TaskPresenter {
  /// Header names whose values are credentials; the API and webhooks show them as `***`.
  static let sensitiveHeaderParts = [
    "auth", "key", "token", "secret", "password", "cookie", "signature", "credential",
  ].map { Array($0.utf8) }

  public static func isSensitiveHeader(_ name: String) -> Bool {
    // Searches bytes, because firstRange(of:) was 9 % of the create path's CPU time. A non-ASCII
    // name is lowercased as Unicode first, because the Kelvin sign lowercases to an ASCII "k".
    let ascii = name.utf8.allSatisfy { $0 < 0x80 } ? name : name.lowercased()
    let lowered = ascii.utf8.map { (65...90).contains($0) ? $0 | 0x20 : $0 }
    return sensitiveHeaderParts.contains { part in
      guard lowered.count >= part.count else { return false }
      return (0...(lowered.count - part.count)).contains { start in
        lowered[start..<start + part.count].elementsEqual(part)
      }
    }
  }

  public static func maskedHeaders(_ headers: [String: String]) -> JSONValue {
    .object(
      headers.reduce(into: [:]) { masked, header in
        masked[header.key] = .string(isSensitiveHeader(header.key) ? "***" : header.value)
      })
  }

  public static func json(_ task: TaskRecord, baseURL: String) -> JSONValue {
    var fields: [String: JSONValue] = [
      "id": .string(task.id),
      "teamId": .string(task.teamId),
      "status": .string(task.status.rawValue),
      "targetUrl": .string(maskedURL(task.targetUrl)),
      "method": .string(task.method),
      "headers": maskedHeaders(task.headers),
      "body": task.body.map { .string($0) } ?? .null,
      "priority": .int(Int64(task.priority)),
      "provider": task.provider.map { .string($0) } ?? .null,
      "pollConfig": task.pollConfig ?? .null,
      "onCompleteUrl": task.onCompleteUrl.map { .string(maskedURL($0)) } ?? .null,
      "timeout": number(task.timeout),
      "maxRetries": .int(Int64(task.maxRetries)),
      "retryBackoff": .string(task.retryBackoff),
      "retryCount": .int(Int64(task.retryCount)),
      "pollCount": .int(Int64(task.pollCount)),
      "pollErrors": .int(Int64(task.pollErrors)),
      "result": task.result ?? .null,
      "error": task.error.map { .string($0) } ?? .null,
      "errorCode": task.errorCode.map { .string($0) } ?? .null,
      "createdAt": .string(Timestamp.iso8601(seconds: task.createdAt)),
      "startedAt": task.startedAt.map { .string(Timestamp.iso8601(seconds: $0)) } ?? .null,
      "completedAt": task.completedAt.map { .string(Timestamp.iso8601(seconds: $0)) } ?? .null,
      "delayUntil": task.delayUntil.map { .string(Timestamp.iso8601(seconds: $0)) } ?? .null,
      "providerJob": task.job ?? .null,
      "providerStatus": task.providerStatus.map { .string($0) } ?? .null,
      "progress": task.progress.map { .double($0) } ?? .null,
      "cancelRequested": .bool(task.cancelRequested),
      "waitForSignal": .bool(task.waitForSignal == true),
    ]
    if !task.status.isTerminal, let next = task.nextRunAt {
      fields["nextRunAt"] = .string(Timestamp.iso8601(seconds: next))
    }
    if let maxWaitTime = task.maxWaitTime {
      fields["maxWaitTime"] = number(maxWaitTime)
    }
    if let callbackUrl = task.callbackUrl { fields["callbackUrl"] = .string(callbackUrl) }
    if let file = task.resultFile {
      fields["resultFile"] = .object([
        "url": .string(resultURL(task.id, baseURL: baseURL)),
        "contentType": .string(file.contentType), "size": .int(Int64(file.size)),
      ])
    }
    return .object(fields)
  }

  public static func resultURL(_ taskId: String, baseURL: String) -> String {
    "\(baseURL)/v1/tasks/\(taskId)/result"
  }

  private static func number(_ value: Double) -> JSONValue {
    value.rounded() == value ? .int(Int64(value)) : .double(value)
  }
}
