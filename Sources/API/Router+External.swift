import Engine
import Foundation
import HTTPServer
import Storage
import Support

/// The token vault, signals and provider callbacks.
extension APIRouter {
  // MARK: Vault

  func createToken(_ request: HTTPRequest, team: String) -> HTTPResponse {
    guard let body = try? JSONValue.parse(request.body), let fields = body.objectValue else {
      return error(
        400, "invalid_json", "request body must be a JSON object with 'name' and 'value'")
    }
    for key in fields.keys.sorted() where key != "name" && key != "value" {
      return error(400, "unknown_field", "unknown field '\(key)'; send 'name' and 'value'")
    }
    guard let name = fields["name"]?.stringValue, !name.isEmpty, name.count <= 100 else {
      return error(400, "invalid_field", "'name' must be a string of 1 to 100 characters")
    }
    guard let value = fields["value"]?.stringValue, !value.isEmpty, value.utf8.count <= 8192,
      !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f })
    else {
      return error(
        400, "invalid_field",
        "'value' must be a non-empty string of at most 8192 bytes without control characters")
    }
    do {
      let token = try engine.storeToken(name: name, value: value, teamId: team)
      logger.info("vault token created", [("token", token.id), ("team", team)])
      return .json(201, JSONValue.object(["token": tokenJSON(token)]).serialized())
    } catch {
      logger.error("cannot store vault token", [("team", team), ("error", "\(error)")])
      return self.error(500, "storage_error", "the token could not be stored; try again")
    }
  }

  func listTokens(team: String) -> HTTPResponse {
    guard let tokens = try? engine.store.tokens(teamId: team) else {
      return error(500, "storage_error", "tokens could not be read; try again")
    }
    return .json(200, JSONValue.object(["tokens": .array(tokens.map(tokenJSON))]).serialized())
  }

  func getToken(id: String, team: String) -> HTTPResponse {
    guard let token = try? engine.store.token(id: id), token.teamId == team else {
      return error(404, "not_found", "token \(id) not found")
    }
    return .json(200, JSONValue.object(["token": tokenJSON(token)]).serialized())
  }

  func deleteToken(id: String, team: String) -> HTTPResponse {
    guard let deleted = try? engine.store.deleteToken(id: id, teamId: team) else {
      return error(500, "storage_error", "the token could not be deleted; try again")
    }
    guard deleted else { return error(404, "not_found", "token \(id) not found") }
    logger.info("vault token deleted", [("token", id), ("team", team)])
    return .json(200, JSONValue.object(["deleted": true, "id": .string(id)]).serialized())
  }

  /// Returns a token's metadata; the value is never shown.
  private func tokenJSON(_ token: VaultToken) -> JSONValue {
    [
      "id": .string(token.id), "name": .string(token.name),
      "createdAt": .string(Timestamp.iso8601(seconds: token.createdAt)),
    ]
  }

  // MARK: Signals and callbacks

  func signal(_ request: HTTPRequest, token: String) -> HTTPResponse {
    guard let body = try? JSONValue.parse(request.body), let fields = body.objectValue else {
      return error(
        400, "invalid_json",
        "request body must be a JSON object such as {\"status\": \"completed\", \"result\": …}")
    }
    let status = fields["status"]?.stringValue ?? ""
    guard status == "completed" || status == "failed" else {
      return error(400, "invalid_field", "'status' must be 'completed' or 'failed'")
    }
    if let message = fields["error"], !message.isNull, message.stringValue == nil {
      return error(400, "invalid_field", "'error' must be a string")
    }
    return resolve(
      secret: token, kind: "signal", status: status, result: fields["result"],
      error: fields["error"]?.stringValue)
  }

  func callback(_ request: HTTPRequest, id: String) -> HTTPResponse {
    if let decision = callbackLimiter.admit("address:" + request.remoteAddress),
      !decision.allowed
    {
      var response = error(
        429, "rate_limited",
        "the callback endpoint takes 30 requests per 60 s from one address; retry after "
          + "\(decision.retryAfter) s")
      response.headers += [("Retry-After", String(decision.retryAfter))]
      return response
    }
    // An empty push keeps the call's response as the result.
    let result: JSONValue?
    if request.body.isEmpty {
      result = nil
    } else if let parsed = try? JSONValue.parse(request.body) {
      result = parsed
    } else {
      return error(400, "invalid_json", "the callback body must be JSON")
    }
    return resolve(secret: id, kind: "callback", status: "completed", result: result, error: nil)
  }

  private func resolve(
    secret: String, kind: String, status: String, result: JSONValue?, error message: String?
  ) -> HTTPResponse {
    guard secret.count == 64, secret.allSatisfy(\.isHexDigit) else {
      return error(404, "not_found", "no task waits for this \(kind)")
    }
    let outcome: ResolutionOutcome
    do {
      outcome = try engine.resolve(
        secret: secret, kind: kind, status: status, result: result, error: message)
    } catch {
      logger.error("cannot record \(kind)", [("error", "\(error)")])
      return self.error(500, "storage_error", "the \(kind) could not be recorded; try again")
    }
    if case .finished(let task) = outcome {
      return error(
        409, "task_finished",
        "task \(task.id) already ended with status '\(task.status.rawValue)'; the \(kind) was ignored"
      )
    }
    guard case .accepted(let task) = outcome, let task else {
      return error(
        404, "not_found", "no task waits for this \(kind), or it was already used")
    }
    // The task ends at its next step, usually within milliseconds (after its call's response,
    // when that is still out); report its state once it does, or after 2 s.
    let deadline = Date().addingTimeInterval(2)
    var current = task
    while !current.status.isTerminal, Date() < deadline {
      engine.waitForStatusChange(
        id: task.id, from: current.status, timeout: deadline.timeIntervalSinceNow)
      current = (try? engine.store.task(id: task.id)) ?? current
    }
    return .json(
      current.status.isTerminal ? 200 : 202,
      JSONValue.object([
        "accepted": true, "taskId": .string(task.id), "status": .string(current.status.rawValue),
      ]).serialized())
  }
}
