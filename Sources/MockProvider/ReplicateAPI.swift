import HTTPServer
import Support

/// Replicate's predictions API under `/replicate`.
///
/// Create returns 201 with the whole prediction in `starting`; polls move it to `processing`,
/// with tqdm progress lines in `logs`, and then to succeeded, failed, canceled or aborted.
/// Cancel returns the prediction as it now is, so a finished one stays unchanged.
struct ReplicateAPI: ProviderAPI {
  let name = "replicate"
  let prefix = "replicate"
  let supportedOutcomes: Set<Scenario.Outcome> = [.succeed, .fail, .cancel, .abort]
  private let version = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"

  /// Returns an RFC 7807 problem-details body, as Replicate's API errors are.
  func error(_ status: Int, _ message: String) -> HTTPResponse {
    let titles = [
      400: "Bad request", 401: "Unauthenticated", 404: "Not found", 422: "Invalid input",
      429: "Request was throttled", 500: "Internal server error",
    ]
    let body: JSONValue = [
      "type": "https://replicate.com/docs/reference/http#errors",
      "title": .string(titles[status] ?? "Error"),
      "status": .int(Int64(status)),
      "detail": .string(message),
    ]
    return .json(status, body).replacingContentType("application/problem+json")
  }

  func handle(_ request: HTTPRequest, segments: [String], mock: MockContext) -> HTTPResponse {
    guard let token = request.header("authorization"), token.hasPrefix("Bearer "), token.count > 7
    else {
      return error(401, "You did not pass a valid authentication token")
    }
    switch (request.method, segments.count) {
    case ("POST", 2) where segments == ["v1", "predictions"]:
      return create(request, model: nil, mock: mock)
    case ("POST", 5)
    where segments[0] == "v1" && segments[1] == "models" && segments[4] == "predictions":
      return create(request, model: "\(segments[2])/\(segments[3])", mock: mock)
    case ("GET", 3) where segments[0] == "v1" && segments[1] == "predictions":
      return get(segments[2], mock: mock)
    case ("POST", 4)
    where segments[0] == "v1" && segments[1] == "predictions" && segments[3] == "cancel":
      return cancel(segments[2], mock: mock)
    default:
      return error(404, "The requested resource could not be found")
    }
  }

  private func create(_ request: HTTPRequest, model: String?, mock: MockContext) -> HTTPResponse {
    let scenario: Scenario
    switch mock.submitScenario(request, api: self) {
    case .success(let parsed): scenario = parsed
    case .failure(let failure): return failure.response
    }
    guard let body = SubmitInput.parse(request), body.objectValue != nil else {
      return error(400, "The request body is not valid JSON")
    }
    guard let input = body["input"], input.objectValue != nil else {
      return error(422, "input is required")
    }

    var attributes: [String: String] = [:]
    if let model {
      attributes["model"] = model
      attributes["version"] = version
    } else {
      guard let requested = body["version"]?.stringValue, !requested.isEmpty else {
        return error(422, "version is required")
      }
      let parts = requested.split(separator: ":", maxSplits: 1).map(String.init)
      attributes["model"] = parts.count == 2 ? parts[0] : "replicate/model"
      attributes["version"] = parts.last ?? requested
    }
    if body["stream"]?.boolValue == true { attributes["stream"] = "true" }

    let id = mock.store.replicateID()
    var job = MockJob(
      id: id, provider: name, scenario: scenario, createdAt: MockFormats.timestamp(), input: input,
      attributes: attributes)
    // `Prefer: wait` keeps the request open until the prediction finishes. A job that needs no
    // in-flight polls is finished at once, so create returns it in its end state.
    if scenario.polls == 0, request.header("prefer")?.hasPrefix("wait") == true {
      job.statusPolls = 1
      mock.store.add(job)
      return .json(201, prediction(job, .finished(scenario.outcome), mock: mock))
    }
    mock.store.add(job)
    return .json(201, prediction(job, .inFlight(index: -1, count: scenario.polls), mock: mock))
  }

  private func get(_ id: String, mock: MockContext) -> HTTPResponse {
    let response = mock.poll(id, api: self) { job, phase in
      .json(200, prediction(job, phase, mock: mock))
    }
    return response ?? error(404, "Prediction not found")
  }

  private func cancel(_ id: String, mock: MockContext) -> HTTPResponse {
    let job = mock.store.update(id, provider: name) { job -> MockJob in
      if !job.isFinished { job.cancelRequested = true }
      return job
    }
    guard let job else { return error(404, "Prediction not found") }
    let phase = job.cancelRequested ? JobPhase.cancelled : .finished(job.scenario.outcome)
    return .json(200, prediction(job, phase, mock: mock))
  }

  /// Renders the prediction object. Index -1 of an in-flight phase is the state at create.
  private func prediction(_ job: MockJob, _ phase: JobPhase, mock: MockContext) -> JSONValue {
    let base = mock.url("/replicate/v1/predictions/\(job.id)")
    var urls: [String: JSONValue] = ["get": .string(base), "cancel": .string(base + "/cancel")]
    if job.attributes["stream"] != nil {
      urls["stream"] = .string(mock.url("/replicate/v1/stream/\(job.id)"))
    }

    var body: [String: JSONValue] = [
      "id": .string(job.id),
      "model": .string(job.attributes["model"] ?? ""),
      "version": .string(job.attributes["version"] ?? ""),
      "input": job.input,
      "output": .null,
      "logs": "",
      "error": .null,
      "data_removed": false,
      "source": "api",
      "created_at": .string(job.createdAt),
      "urls": .object(urls),
    ]
    switch phase {
    case .inFlight(let index, _):
      let status: String
      if index < 0 {
        status = "starting"
      } else if let unknown = job.scenario.unknownStatus {
        status = unknown
      } else {
        status = phase.inFlightStatus(["starting", "processing"]) ?? "processing"
      }
      body["status"] = .string(status)
      if status == "processing" {
        body["started_at"] = .string(job.createdAt)
        body["logs"] = .string(progressLogs(percent: Int(phase.progress * 100)))
      }
    case .finished(let outcome):
      body["started_at"] = outcome == .abort ? .null : .string(job.createdAt)
      body["completed_at"] = .string(MockFormats.timestamp())
      body["metrics"] = outcome == .abort ? [:] : ["predict_time": 1.5, "total_time": 2.25]
      switch outcome {
      case .succeed:
        body["status"] = "succeeded"
        body["logs"] = .string(progressLogs(percent: 100))
        body["output"] = [.string(mock.url("/files/replicate/\(job.id)/output.mp4"))]
      case .fail:
        body["status"] = "failed"
        let reason = job.scenario.reason ?? "CUDA out of memory"
        body["error"] = reason.isEmpty ? .null : .string(reason)
      case .cancel:
        body["status"] = "canceled"
      default:
        body["status"] = "aborted"
      }
    case .cancelled:
      body["status"] = "canceled"
      body["completed_at"] = .string(MockFormats.timestamp())
    }
    return .object(body)
  }

  /// Returns tqdm-style progress lines up to `percent`, over 50 steps, the format that
  /// Replicate's Python client parses progress from.
  private func progressLogs(percent: Int) -> String {
    var lines = ["Using seed: 42"]
    for done in stride(from: 20, through: percent, by: 20) {
      let steps = done / 2
      let bar =
        String(repeating: "█", count: done / 10) + String(repeating: " ", count: 10 - done / 10)
      lines.append(
        "\(String(repeating: " ", count: 3 - String(done).count))\(done)%|\(bar)| \(steps)/50")
    }
    return lines.joined(separator: "\n") + "\n"
  }
}

extension HTTPResponse {
  /// Returns a copy whose Content-Type header is `contentType` alone.
  func replacingContentType(_ contentType: String) -> HTTPResponse {
    var copy = self
    copy.headers =
      headers.filter { $0.0.lowercased() != "content-type" } + [("Content-Type", contentType)]
    return copy
  }
}
