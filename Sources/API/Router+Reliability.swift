import Engine
import Foundation
import HTTPServer
import Storage
import Support

/// Cancellation, timelines and webhook deliveries.
extension APIRouter {
  func cancelTask(id: String, team: String) -> HTTPResponse {
    let outcome: CancelOutcome
    do {
      outcome = try engine.cancel(id: id, teamId: team)
    } catch {
      logger.error("cannot cancel task", [("task", id), ("error", "\(error)")])
      return errorResponse(500, "storage_error", "the cancellation could not be stored; try again")
    }
    switch outcome {
    case .notFound:
      return errorResponse(404, "not_found", "task \(id) not found")
    case .finished(let task):
      return errorResponse(
        409, "task_finished",
        "task \(id) already ended with status '\(task.status.rawValue)'; there is nothing to cancel"
      )
    case .cancelled(let task):
      return taskResponse(200, task)
    case .requested(let task):
      return taskResponse(202, task)
    }
  }

  func taskEvents(id: String, team: String) -> HTTPResponse {
    guard let task = (try? engine.task(id: id, teamId: team)) ?? nil else {
      return errorResponse(404, "not_found", "task \(id) not found")
    }
    guard let events = try? engine.store.events(taskId: id) else {
      return errorResponse(500, "storage_error", "the timeline could not be read; try again")
    }
    let scrub = engine.scrubber(for: task)
    let items: [JSONValue] = events.map { event in
      [
        "at": .string(Timestamp.iso8601(seconds: event.at)), "kind": .string(event.kind),
        "statusCode": event.statusCode.map { .int(Int64($0)) } ?? .null,
        "state": event.state.map { .string($0) } ?? .null,
        "latencyMs": event.latencyMs.map { .int(Int64($0)) } ?? .null,
        // Stored errors can quote a URL with its password, so they are scrubbed when shown.
        "error": event.error.map { .string(scrub($0)) } ?? .null,
      ]
    }
    return .json(200, JSONValue.object(["events": .array(items)]).serialized())
  }

  func taskDeliveries(id: String, team: String) -> HTTPResponse {
    guard let task = (try? engine.task(id: id, teamId: team)) ?? nil else {
      return errorResponse(404, "not_found", "task \(id) not found")
    }
    guard let deliveries = try? engine.store.deliveries(taskId: id) else {
      return errorResponse(500, "storage_error", "deliveries could not be read; try again")
    }
    let items = deliveries.map { deliveryJSON($0, task: task, withAttempts: true) }
    return .json(200, JSONValue.object(["deliveries": .array(items)]).serialized())
  }

  func redeliver(id: String, team: String) -> HTTPResponse {
    guard let task = try? engine.task(id: id, teamId: team) else {
      return errorResponse(404, "not_found", "task \(id) not found")
    }
    guard task.status.isTerminal else {
      return errorResponse(
        409, "task_not_finished",
        "task \(id) is '\(task.status.rawValue)'; its webhook is sent when it ends")
    }
    guard task.onCompleteUrl != nil else {
      return errorResponse(409, "no_webhook", "task \(id) has no onCompleteUrl")
    }
    guard let delivery = try? engine.redeliver(id: id, teamId: team) else {
      return errorResponse(500, "storage_error", "the delivery could not be queued; try again")
    }
    return .json(
      202,
      JSONValue.object(["delivery": deliveryJSON(delivery, task: task, withAttempts: false)])
        .serialized())
  }

  func listDeliveries(_ request: HTTPRequest, team: String) -> HTTPResponse {
    let state = request.query["state"] ?? "abandoned"
    guard ["pending", "delivered", "abandoned"].contains(state) else {
      return errorResponse(
        400, "invalid_parameter", "'state' must be pending, delivered or abandoned")
    }
    var limit = 100
    if let text = request.query["limit"] {
      guard let value = Int(text), (1...100).contains(value) else {
        return errorResponse(400, "invalid_parameter", "'limit' must be an integer from 1 to 100")
      }
      limit = value
    }
    guard let deliveries = try? engine.store.deliveries(teamId: team, state: state, limit: limit)
    else {
      return errorResponse(500, "storage_error", "deliveries could not be read; try again")
    }
    let items = deliveries.map { delivery in
      let task = (try? engine.task(id: delivery.taskId, teamId: team)) ?? nil
      return deliveryJSON(delivery, task: task, withAttempts: false)
    }
    return .json(200, JSONValue.object(["deliveries": .array(items)]).serialized())
  }

  /// Returns the delivery as the API shows it, with the URL's password masked and the
  /// credentials of `task` scrubbed from stored errors, which can quote the URL.
  private func deliveryJSON(_ delivery: DeliveryRecord, task: TaskRecord?, withAttempts: Bool)
    -> JSONValue
  {
    let url = TaskPresenter.maskedURL(delivery.url)
    let scrubTask = task.map { engine.scrubber(for: $0) }
    let scrub = { (text: String) -> String in
      let scrubbed = scrubTask?(text) ?? text
      // Without the task, the delivery's own URL is still masked wherever the text quotes it.
      return scrubbed.replacingOccurrences(of: delivery.url, with: url)
    }
    let state =
      delivery.deliveredAt != nil
      ? "delivered" : delivery.nextAttemptAt != nil ? "pending" : "abandoned"
    var fields: [String: JSONValue] = [
      "id": .int(delivery.id), "taskId": .string(delivery.taskId),
      "event": .string(delivery.event), "url": .string(url), "state": .string(state),
      "attempts": .int(Int64(delivery.attempts)),
      "createdAt": .string(Timestamp.iso8601(seconds: delivery.createdAt)),
      "deliveredAt": delivery.deliveredAt.map { .string(Timestamp.iso8601(seconds: $0)) }
        ?? .null,
      "nextAttemptAt": delivery.nextAttemptAt.map { .string(Timestamp.iso8601(seconds: $0)) }
        ?? .null,
      "lastStatus": delivery.lastStatus.map { .int(Int64($0)) } ?? .null,
      "lastError": delivery.lastError.map { .string(scrub($0)) } ?? .null,
    ]
    if withAttempts {
      let attempts = (try? engine.store.attempts(deliveryId: delivery.id)) ?? []
      fields["attemptLog"] = .array(
        attempts.map { attempt in
          [
            "at": .string(Timestamp.iso8601(seconds: attempt.at)),
            "statusCode": attempt.statusCode.map { .int(Int64($0)) } ?? .null,
            "latencyMs": .int(Int64(attempt.latencyMs)),
            "error": attempt.error.map { .string(scrub($0)) } ?? .null,
          ]
        })
    }
    return .object(fields)
  }

  func taskResponse(_ status: Int, _ task: TaskRecord) -> HTTPResponse {
    .json(
      status, JSONValue.object(["task": TaskPresenter.json(task, baseURL: publicURL)]).serialized())
  }

  func errorResponse(_ status: Int, _ code: String, _ message: String) -> HTTPResponse {
    .json(
      status, JSONValue.object(["error": .string(message), "code": .string(code)]).serialized())
  }
}
