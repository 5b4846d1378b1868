import Engine
import Foundation
import HTTPServer
import Storage
import Support

/// The public HTTP API: routes requests to the engine and renders its values as JSON.
public final class APIRouter: Sendable {
  let engine: Engine
  let authenticator: Authenticator
  let logger: Logger
  let publicURL: String
  /// The largest accepted request body, in bytes.
  public static let maxBodyBytes = 1 << 20

  public init(engine: Engine, authenticator: Authenticator, logger: Logger) {
    self.engine = engine
    self.authenticator = authenticator
    self.logger = logger
    self.publicURL = engine.config.publicURL
  }

  public func handle(_ request: HTTPRequest) -> HTTPResponse {
    let path = request.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    let method = request.method
    if method == "GET" && path == ["healthz"] {
      return .json(200, #"{"status":"ok"}"#)
    }
    if path.count >= 2 && path[0] == "v1" && path[1] == "providers" {
      guard method == "GET" else { return methodNotAllowed(request) }
      if path.count == 2 { return listProviders() }
      if path.count == 3 { return provider(path[2]) }
    }
    if path == ["v1", "deliveries"] {
      guard method == "GET" else { return methodNotAllowed(request) }
      return withTeam(request) { team in self.listDeliveries(request, team: team) }
    }
    if path.count >= 2 && path[0] == "v1" && path[1] == "tasks" {
      return withTeam(request) { team in self.routeTasks(request, Array(path.dropFirst(2)), team) }
    }
    return error(404, "not_found", "no route for \(method) \(request.path)")
  }

  private func routeTasks(_ request: HTTPRequest, _ rest: [String], _ team: String) -> HTTPResponse
  {
    let method = request.method
    switch rest.count {
    case 0:
      if method == "POST" { return createTask(request, team: team) }
      if method == "GET" { return listTasks(request, team: team) }
      return methodNotAllowed(request)
    case 1:
      if method == "GET" { return getTask(request, id: rest[0], team: team) }
      return methodNotAllowed(request)
    case 2 where rest[1] == "result":
      if method == "GET" { return resultFile(id: rest[0], team: team) }
      return methodNotAllowed(request)
    case 2 where rest[1] == "cancel":
      if method == "POST" { return cancelTask(id: rest[0], team: team) }
      return methodNotAllowed(request)
    case 2 where rest[1] == "events":
      if method == "GET" { return taskEvents(id: rest[0], team: team) }
      return methodNotAllowed(request)
    case 2 where rest[1] == "deliveries":
      if method == "GET" { return taskDeliveries(id: rest[0], team: team) }
      return methodNotAllowed(request)
    case 2 where rest[1] == "redeliver":
      if method == "POST" { return redeliver(id: rest[0], team: team) }
      return methodNotAllowed(request)
    case 3 where rest[1] == "files":
      if method == "GET" { return archivedFile(id: rest[0], name: rest[2], team: team) }
      return methodNotAllowed(request)
    default:
      return error(404, "not_found", "no route for \(method) \(request.path)")
    }
  }

  private func methodNotAllowed(_ request: HTTPRequest) -> HTTPResponse {
    error(405, "method_not_allowed", "\(request.method) is not allowed on \(request.path)")
  }

  private func withTeam(_ request: HTTPRequest, _ body: (String) -> HTTPResponse) -> HTTPResponse {
    guard
      let team = authenticator.team(
        authorization: request.header("authorization"), apiKey: request.header("x-api-key"))
    else {
      return error(
        401, "unauthorized",
        "missing or invalid API key; send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
      )
    }
    return body(team)
  }

  // MARK: Tasks

  private func createTask(_ request: HTTPRequest, team: String) -> HTTPResponse {
    let parser = TaskRequestParser(
      knownProviders: Array(engine.catalog.templates.keys), now: Timestamp.now(),
      allowPrivateNetwork: engine.config.allowPrivateNetwork)
    let task: TaskRecord
    do {
      task = try parser.parse(request.body, teamId: team)
    } catch {
      return self.error(error.status, error.code, error.message)
    }
    let idempotencyKey = request.header("idempotency-key")
    if let key = idempotencyKey, key.isEmpty || key.utf8.count > 255 {
      return error(
        400, "invalid_header", "'Idempotency-Key' must be 1 to 255 characters")
    }
    do {
      let requestHash = Crypto.sha256Hex(String(decoding: request.body, as: UTF8.self))
      if let earlier = try engine.createTask(
        task, idempotencyKey: idempotencyKey, requestHash: requestHash)
      {
        guard earlier.requestHash == requestHash else {
          return error(
            409, "idempotency_conflict",
            "Idempotency-Key '\(idempotencyKey ?? "")' was used with a different request body "
              + "in the last 24 hours; use a new key for a new task")
        }
        guard let original = lookUp(earlier.taskId, team: team) else {
          return taskNotFound(earlier.taskId)
        }
        return .json(
          200,
          JSONValue.object(["task": TaskPresenter.json(original, baseURL: publicURL)])
            .serialized())
      }
    } catch {
      logger.error("cannot store new task", [("task", task.id), ("error", "\(error)")])
      return self.error(500, "storage_error", "the task could not be stored; try again")
    }
    return .json(
      201, JSONValue.object(["task": TaskPresenter.json(task, baseURL: publicURL)]).serialized())
  }

  private func getTask(_ request: HTTPRequest, id: String, team: String) -> HTTPResponse {
    guard var task = lookUp(id, team: team) else { return taskNotFound(id) }
    if let waitText = request.query["wait"] {
      guard let wait = Double(waitText), wait >= 0, wait <= 25 else {
        return error(400, "invalid_parameter", "'wait' must be a number of seconds from 0 to 25")
      }
      if wait > 0 && !task.status.isTerminal {
        engine.waitForStatusChange(id: id, from: task.status, timeout: wait)
        task = lookUp(id, team: team) ?? task
      }
    }
    return .json(
      200, JSONValue.object(["task": TaskPresenter.json(task, baseURL: publicURL)]).serialized())
  }

  private func listTasks(_ request: HTTPRequest, team: String) -> HTTPResponse {
    var query = TaskQuery(teamId: team)
    if let status = request.query["status"] {
      guard let parsed = TaskStatus(rawValue: status) else {
        let known = TaskStatus.allCases.map(\.rawValue).joined(separator: ", ")
        return error(400, "invalid_parameter", "'status' must be one of \(known)")
      }
      query.status = parsed
    }
    query.provider = request.query["provider"]
    if let limit = request.query["limit"] {
      guard let value = Int(limit), (1...100).contains(value) else {
        return error(400, "invalid_parameter", "'limit' must be an integer from 1 to 100")
      }
      query.limit = value
    }
    if let offset = request.query["offset"] {
      guard let value = Int(offset), value >= 0 else {
        return error(400, "invalid_parameter", "'offset' must be a non-negative integer")
      }
      query.offset = value
    }
    for (name, assign) in [
      ("createdAfter", { (q: inout TaskQuery, v: Double) in q.createdAfter = v }),
      ("createdBefore", { (q: inout TaskQuery, v: Double) in q.createdBefore = v }),
    ] {
      if let text = request.query[name] {
        guard let date = Timestamp.parse(text) else {
          return error(400, "invalid_parameter", "'\(name)' must be an ISO 8601 date-time")
        }
        assign(&query, date.timeIntervalSince1970)
      }
    }
    let page: (tasks: [TaskRecord], total: Int)
    do {
      page = try engine.store.listTasks(query)
    } catch {
      logger.error("cannot list tasks", [("error", "\(error)")])
      return self.error(500, "storage_error", "tasks could not be read; try again")
    }
    let body: JSONValue = [
      "tasks": .array(page.tasks.map { TaskPresenter.json($0, baseURL: publicURL) }),
      "pagination": [
        "total": .int(Int64(page.total)), "limit": .int(Int64(query.limit)),
        "offset": .int(Int64(query.offset)),
        "hasMore": .bool(query.offset + page.tasks.count < page.total),
      ],
    ]
    return .json(200, body.serialized())
  }

  private func resultFile(id: String, team: String) -> HTTPResponse {
    guard let task = lookUp(id, team: team) else { return taskNotFound(id) }
    guard let file = task.resultFile, let path = engine.resultFilePath(task),
      let data = FileManager.default.contents(atPath: path)
    else {
      return error(404, "not_found", "task \(id) has no stored result file")
    }
    return HTTPResponse(
      status: 200,
      headers: [
        ("Content-Type", file.contentType),
        ("Content-Disposition", "inline; filename=\"\(file.name)\""),
      ], body: Array(data))
  }

  private func lookUp(_ id: String, team: String) -> TaskRecord? {
    try? engine.task(id: id, teamId: team)
  }

  private func taskNotFound(_ id: String) -> HTTPResponse {
    error(404, "not_found", "task \(id) not found")
  }

  // MARK: Providers

  private func listProviders() -> HTTPResponse {
    let providers = engine.catalog.sortedTemplates.map(providerJSON)
    return .json(200, JSONValue.object(["providers": .array(providers)]).serialized())
  }

  private func provider(_ id: String) -> HTTPResponse {
    guard let template = engine.catalog.templates[id] else {
      let known = engine.catalog.templates.keys.sorted().joined(separator: ", ")
      return error(404, "not_found", "provider '\(id)' not found; known providers are \(known)")
    }
    return .json(200, JSONValue.object(["provider": providerJSON(template)]).serialized())
  }

  private func providerJSON(_ template: ProviderTemplate) -> JSONValue {
    [
      "id": .string(template.id), "name": .string(template.name),
      "description": .string(template.description), "pollConfig": template.pollConfig,
      "file": .string(template.file),
      "overrides": template.overrides.map { .string($0) } ?? .null,
    ]
  }

  private func error(_ status: Int, _ code: String, _ message: String) -> HTTPResponse {
    .json(
      status, JSONValue.object(["error": .string(message), "code": .string(code)]).serialized())
  }
}
