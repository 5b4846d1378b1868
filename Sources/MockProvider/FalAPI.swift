import HTTPServer
import Support

/// fal.ai's queue API (queue.fal.run) under `/fal`.
///
/// Submit is `POST /fal/{owner}/{app}[/{subpath}]`; the returned status, result and cancel
/// URLs use only owner/app, as fal's do. A failed request still reports COMPLETED on the
/// status URL, with `error` and `error_type`, and its result URL returns 422 or 500.
struct FalAPI: ProviderAPI {
  let name = "fal"
  let prefix = "fal"
  let supportedOutcomes: Set<Scenario.Outcome> = [.succeed, .fail, .fail500]

  func error(_ status: Int, _ message: String) -> HTTPResponse {
    .json(status, ["detail": .string(message)])
  }

  func handle(_ request: HTTPRequest, segments: [String], mock: MockContext) -> HTTPResponse {
    guard let key = request.header("authorization"), key.hasPrefix("Key "), key.count > 4 else {
      return error(401, "No user found for Key ID and Secret")
    }
    guard segments.count >= 2 else { return error(404, "Application not found") }

    let app = "\(segments[0])/\(segments[1])"
    let rest = Array(segments.dropFirst(2))
    switch (request.method, rest.count) {
    case ("POST", _):
      return submit(request, app: app, mock: mock)
    case ("GET", 3) where rest[0] == "requests" && rest[2] == "status":
      return status(rest[1], app: app, withLogs: request.query["logs"] == "1", mock: mock)
    case ("GET", 2) where rest[0] == "requests":
      return result(rest[1], app: app, mock: mock)
    case ("PUT", 3) where rest[0] == "requests" && rest[2] == "cancel":
      return cancel(rest[1], app: app, mock: mock)
    default:
      return error(405, "Method Not Allowed")
    }
  }

  private func urls(_ id: String, app: String, mock: MockContext) -> [String: JSONValue] {
    let base = mock.url("/fal/\(app)/requests/\(id)")
    return [
      "request_id": .string(id),
      "response_url": .string(base),
      "status_url": .string(base + "/status"),
      "cancel_url": .string(base + "/cancel"),
    ]
  }

  private func submit(_ request: HTTPRequest, app: String, mock: MockContext) -> HTTPResponse {
    let scenario: Scenario
    switch mock.submitScenario(request, api: self) {
    case .success(let parsed): scenario = parsed
    case .failure(let failure): return failure.response
    }
    guard let input = SubmitInput.parse(request) else { return error(422, "Invalid JSON body") }

    let id = mock.store.uuid()
    let job = MockJob(
      id: id, provider: name, scenario: scenario, createdAt: MockFormats.timestamp(), input: input,
      attributes: ["app": app])
    mock.store.add(job)
    var body = urls(id, app: app, mock: mock)
    body["status"] = "IN_QUEUE"
    body["queue_position"] = 0
    return .json(200, .object(body))
  }

  private func status(_ id: String, app: String, withLogs: Bool, mock: MockContext)
    -> HTTPResponse
  {
    guard mock.store.job(id, provider: name)?.attributes["app"] == app else {
      return error(404, "Request not found")
    }
    let response = mock.poll(id, api: self) { job, phase in
      var body = urls(id, app: app, mock: mock)
      switch phase {
      case .inFlight(let index, _):
        if let unknown = job.scenario.unknownStatus {
          body["status"] = .string(unknown)
        } else if phase.inFlightStatus(["IN_QUEUE", "IN_PROGRESS"]) == "IN_QUEUE" {
          body["status"] = "IN_QUEUE"
          body["queue_position"] = 0
          return .json(202, .object(body))
        } else {
          body["status"] = "IN_PROGRESS"
        }
        body["logs"] = withLogs ? logs(upTo: index + 1) : .null
        return .json(202, .object(body))
      case .finished(let outcome):
        body["status"] = "COMPLETED"
        body["logs"] = withLogs ? logs(upTo: job.scenario.polls + 1) : .null
        body["metrics"] = ["inference_time": 1.25]
        if let failure = failure(job, outcome) {
          body["error"] = .string(failure.message)
          body["error_type"] = .string(failure.type)
        }
        return .json(200, .object(body))
      case .cancelled:
        // NOTE: fal does not document what the status URL reports after a cancellation; this
        // imitation reports COMPLETED with an error, like other failed requests.
        body["status"] = "COMPLETED"
        body["logs"] = withLogs ? logs(upTo: 1) : .null
        body["error"] = "Request was cancelled"
        body["error_type"] = "request_cancelled"
        return .json(200, .object(body))
      }
    }
    return response ?? error(404, "Request not found")
  }

  private func logs(upTo count: Int) -> JSONValue {
    .array(
      (0..<count).map { step -> JSONValue in
        [
          "timestamp": .string("2025-01-01T00:00:0\(min(step, 9)).000000"),
          "level": "INFO",
          "source": "USER",
          "message": .string("step \(step + 1)"),
        ]
      })
  }

  private func failure(_ job: MockJob, _ outcome: Scenario.Outcome) -> (
    message: String, type: String
  )? {
    switch outcome {
    case .fail:
      return (
        job.scenario.reason ?? "Input failed the content checker",
        job.scenario.code ?? "content_policy_violation"
      )
    case .fail500:
      return (
        job.scenario.reason ?? "The runner disconnected", job.scenario.code ?? "runner_disconnected"
      )
    default:
      return nil
    }
  }

  private func result(_ id: String, app: String, mock: MockContext) -> HTTPResponse {
    guard let job = mock.store.job(id, provider: name), job.attributes["app"] == app else {
      return error(404, "Request not found")
    }
    guard job.isFinished else { return error(400, "Request is still in progress") }
    if job.cancelRequested { return error(400, "Request was cancelled") }

    switch failure(job, job.scenario.outcome) {
    case .some(let failure) where job.scenario.outcome == .fail500:
      return .json(
        500, ["detail": .string(failure.message), "error_type": .string(failure.type)],
        headers: [("X-Fal-Error-Type", failure.type)])
    case .some(let failure):
      let detail: JSONValue = [
        "loc": ["body", "prompt"],
        "msg": .string(failure.message),
        "type": .string(failure.type),
        "input": job.input["prompt"] ?? .null,
      ]
      return .json(422, ["detail": [detail]])
    case .none:
      let image: JSONValue = [
        "url": .string(mock.url("/files/fal/\(id)/image.jpg")),
        "content_type": "image/jpeg",
        "width": 1024,
        "height": 768,
      ]
      return .json(
        200,
        [
          "images": [image],
          "seed": 42,
          "has_nsfw_concepts": [false],
          "prompt": job.input["prompt"] ?? .null,
        ])
    }
  }

  private func cancel(_ id: String, app: String, mock: MockContext) -> HTTPResponse {
    guard mock.store.job(id, provider: name)?.attributes["app"] == app else {
      return .json(404, ["status": "NOT_FOUND"])
    }
    let wasFinished = mock.store.update(id, provider: name) { job -> Bool in
      if job.isFinished { return true }
      job.cancelRequested = true
      return false
    }
    if wasFinished == true { return .json(400, ["status": "ALREADY_COMPLETED"]) }
    return .json(202, ["status": "CANCELLATION_REQUESTED"])
  }
}
