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
  let rateLimiter: RateLimiter
  let checkReadiness: @Sendable () -> String?
  let openAPIDocument: [UInt8]?
  /// The callback endpoint's limit per source address, as the hosted service documents it.
  let callbackLimiter = RateLimiter(limit: RateLimit(requests: 30, perSeconds: 60))
  var metrics: ServiceMetrics { engine.config.metrics }
  /// The largest accepted request body, in bytes.
  public static let maxBodyBytes = 1 << 20

  /// Creates the router. `readiness` returns nil when the service can take work, else the
  /// reason it cannot; `openAPIDocument` is the text served at `/openapi.json`.
  public init(
    engine: Engine, authenticator: Authenticator, logger: Logger,
    rateLimit: RateLimit = .standard, readiness: @escaping @Sendable () -> String? = { nil },
    openAPIDocument: [UInt8]? = nil
  ) {
    self.engine = engine
    self.authenticator = authenticator
    self.logger = logger
    self.publicURL = engine.config.publicURL
    self.rateLimiter = RateLimiter(limit: rateLimit)
    self.checkReadiness = readiness
    self.openAPIDocument = openAPIDocument
  }

  public func handle(_ request: HTTPRequest) -> HTTPResponse {
    let segments = request.path.split(separator: "/", omittingEmptySubsequences: true)
    var matched: (route: Route, parameters: [String: String])?
    var allowedMethods: [String] = []
    for route in Self.routes {
      guard let parameters = route.match(segments) else { continue }
      allowedMethods.append(route.method)
      if route.method == request.method {
        matched = (route, parameters)
        break
      }
    }
    let isAPI = segments.first == "v1"
    var response: HTTPResponse
    if let (route, parameters) = matched {
      response = dispatch(request, route: route, parameters: parameters, limited: isAPI)
    } else {
      if !allowedMethods.isEmpty {
        response = methodNotAllowed(request)
        response.headers.append(("Allow", allowedMethods.joined(separator: ", ")))
      } else {
        response = error(404, "not_found", "no route for \(request.method) \(request.path)")
      }
      if isAPI {
        response = applyRateLimit(client: clientKey(request, team: nil), request, response)
      }
    }
    let label = matched?.route.pattern ?? "unmatched"
    // Only standard methods become label values, so arbitrary methods cannot add series.
    let standard = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    let method = standard.contains(request.method) ? request.method : "OTHER"
    metrics.httpRequests.increment([method, label, String(response.status)])
    return response
  }

  private func dispatch(
    _ request: HTTPRequest, route: Route, parameters: [String: String], limited: Bool
  ) -> HTTPResponse {
    var team = ""
    if route.access == .team {
      let verdict = authenticator.check(
        authorization: request.header("authorization"), apiKey: request.header("x-api-key"))
      if verdict == .unavailable {
        // A client must not take a database outage for a revoked key.
        return error(
          503, "storage_unavailable",
          "the database is not reachable, so the API key could not be checked; try again")
      }
      guard case .team(let found) = verdict else {
        let response = error(
          401, "unauthorized",
          "missing or invalid API key; send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        )
        return limited
          ? applyRateLimit(client: clientKey(request, team: nil), request, response) : response
      }
      team = found
    }
    let context = RouteContext(request: request, parameters: parameters, team: team)
    let client = clientKey(request, team: route.access == .team ? team : nil)
    guard limited, let decision = rateLimiter.admit(client) else {
      return route.handler(self, context)
    }
    guard decision.allowed else { return rateLimited(decision, client: client, request) }
    var response = route.handler(self, context)
    response.headers += decision.headers
    return response
  }

  private func rateLimited(
    _ decision: RateLimiter.Decision, client: String, _ request: HTTPRequest
  ) -> HTTPResponse {
    metrics.rateLimited.increment()
    logger.debug("request rate limited", [("client", client), ("path", request.path)])
    let window = Self.seconds(rateLimiter.limit.perSeconds)
    var response = error(
      429, "rate_limited",
      "rate limit of \(decision.limit) requests per \(window) exceeded; "
        + "retry after \(decision.retryAfter) s")
    response.headers += decision.headers + [("Retry-After", String(decision.retryAfter))]
    return response
  }

  /// Counts a request that matched no handler (401, 404, 405) against its client, so probing
  /// unknown keys or paths spends the same budget and gets 429 once it is spent.
  private func applyRateLimit(
    client: String, _ request: HTTPRequest, _ response: HTTPResponse
  ) -> HTTPResponse {
    guard let decision = rateLimiter.admit(client) else { return response }
    guard decision.allowed else { return rateLimited(decision, client: client, request) }
    var limited = response
    limited.headers += decision.headers
    return limited
  }

  /// Returns the rate-limit bucket: the team for authenticated requests, else the client
  /// address.
  private func clientKey(_ request: HTTPRequest, team: String?) -> String {
    if let team { return "team:" + team }
    return "address:" + request.remoteAddress
  }

  private static func seconds(_ value: Double) -> String {
    value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
  }

  func methodNotAllowed(_ request: HTTPRequest) -> HTTPResponse {
    error(405, "method_not_allowed", "\(request.method) is not allowed on \(request.path)")
  }

  // MARK: Tasks

  func createTask(_ request: HTTPRequest, team: String) -> HTTPResponse {
    let store = engine.store
    let parser = TaskRequestParser(
      knownProviders: Array(engine.catalog.templates.keys), now: Timestamp.now(),
      allowPrivateNetwork: engine.config.allowPrivateNetwork,
      callbackBase: publicURL + "/v1/callbacks/",
      tokenOwner: { id in (try? store.token(id: id))?.teamId })
    let parsed: TaskRequestParser.Parsed
    do {
      parsed = try parser.parseRequest(request.body, teamId: team)
    } catch {
      return self.error(error.status, error.code, error.message)
    }
    let task = parsed.task
    let idempotencyKey = request.header("idempotency-key")
    if let key = idempotencyKey, key.isEmpty || key.utf8.count > 255 {
      return error(
        400, "invalid_header", "'Idempotency-Key' must be 1 to 255 characters")
    }
    do {
      // Hash the parsed document, so whitespace and key order do not make a repeat a conflict.
      let canonical = (try? JSONValue.parse(request.body))?.serialized() ?? ""
      let requestHash = Crypto.sha256Hex(canonical)
      if let earlier = try engine.createTask(
        parsed, idempotencyKey: idempotencyKey, requestHash: requestHash)
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
        return .json(200, createdBody(original).serialized())
      }
    } catch {
      logger.error(
        "cannot store new task", [("task", task.id), ("team", team), ("error", "\(error)")])
      return self.error(500, "storage_error", "the task could not be stored; try again")
    }
    return .json(201, createdBody(task).serialized())
  }

  /// The create response: the task, with its signal token and callback URL beside it. The
  /// token appears only here; the task's other views leave it out.
  private func createdBody(_ task: TaskRecord) -> JSONValue {
    var shown = TaskPresenter.json(task, baseURL: publicURL).objectValue ?? [:]
    var body: [String: JSONValue] = [:]
    if let token = engine.signalToken(for: task) {
      shown["signalToken"] = .string(token)
      body["signalToken"] = .string(token)
    }
    if let url = task.callbackUrl { body["callbackUrl"] = .string(url) }
    body["task"] = .object(shown)
    return .object(body)
  }

  func getTask(_ request: HTTPRequest, id: String, team: String) -> HTTPResponse {
    guard var task = lookUp(id, team: team) else { return taskNotFound(id) }
    if let waitText = request.query["wait"] {
      guard let wait = Double(waitText), wait >= 0, wait <= 25 else {
        return error(400, "invalid_parameter", "'wait' must be a number of seconds from 0 to 25")
      }
      // A wake-up without a change (a notice about another step of the task) waits again.
      let deadline = Date().addingTimeInterval(wait)
      let status = task.status
      while !status.isTerminal, task.status == status, deadline.timeIntervalSinceNow > 0 {
        engine.waitForStatusChange(id: id, from: status, timeout: deadline.timeIntervalSinceNow)
        guard let current = lookUp(id, team: team) else { break }
        task = current
      }
    }
    return .json(
      200, JSONValue.object(["task": TaskPresenter.json(task, baseURL: publicURL)]).serialized())
  }

  func listTasks(_ request: HTTPRequest, team: String) -> HTTPResponse {
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

  func resultFile(id: String, team: String) -> HTTPResponse {
    guard let task = lookUp(id, team: team) else { return taskNotFound(id) }
    guard let file = task.resultFile, let data = engine.resultFileData(task) else {
      return error(404, "not_found", "task \(id) has no stored result file")
    }
    return HTTPResponse(
      status: 200,
      headers: [
        ("Content-Type", file.contentType),
        ("Content-Disposition", "inline; filename=\"\(file.name)\""),
      ], body: data)
  }

  private func lookUp(_ id: String, team: String) -> TaskRecord? {
    try? engine.task(id: id, teamId: team)
  }

  private func taskNotFound(_ id: String) -> HTTPResponse {
    error(404, "not_found", "task \(id) not found")
  }

  // MARK: Providers

  func listProviders() -> HTTPResponse {
    let providers = engine.catalog.sortedTemplates.map(providerJSON)
    return .json(200, JSONValue.object(["providers": .array(providers)]).serialized())
  }

  func provider(_ id: String) -> HTTPResponse {
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

  func error(_ status: Int, _ code: String, _ message: String) -> HTTPResponse {
    .json(
      status, JSONValue.object(["error": .string(message), "code": .string(code)]).serialized())
  }
}
