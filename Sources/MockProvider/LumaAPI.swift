import HTTPServer
import Support

/// Luma's Dream Machine API (api.lumalabs.ai/dream-machine/v1) under `/luma/dream-machine/v1`.
///
/// Create returns 201 with the whole Generation in state `queued`; polls move it to
/// `dreaming` and then `completed` (with `assets.video`) or `failed` (with `failure_reason`).
/// Luma has no cancel: DELETE removes the generation, after which GET returns 404.
struct LumaAPI: ProviderAPI {
  let name = "luma"
  let prefix = "luma"
  let supportedOutcomes: Set<Scenario.Outcome> = [.succeed, .fail]

  func error(_ status: Int, _ message: String) -> HTTPResponse {
    .json(status, ["detail": .string(message)])
  }

  func handle(_ request: HTTPRequest, segments: [String], mock: MockContext) -> HTTPResponse {
    guard let token = request.header("authorization"), token.hasPrefix("Bearer "), token.count > 7
    else {
      return error(401, "Invalid API key")
    }
    guard segments.count >= 3, segments[0] == "dream-machine", segments[1] == "v1",
      segments[2] == "generations"
    else {
      return error(404, "Not Found")
    }

    let rest = Array(segments.dropFirst(3))
    switch (request.method, rest.count) {
    case ("POST", 0):
      return create(request, type: "video", mock: mock)
    case ("POST", 1) where rest[0] == "video" || rest[0] == "image":
      return create(request, type: rest[0], mock: mock)
    case ("GET", 1):
      return get(rest[0], mock: mock)
    case ("DELETE", 1):
      return delete(rest[0], mock: mock)
    default:
      return error(405, "Method Not Allowed")
    }
  }

  private func create(_ request: HTTPRequest, type: String, mock: MockContext) -> HTTPResponse {
    let scenario: Scenario
    switch mock.submitScenario(request, api: self) {
    case .success(let parsed): scenario = parsed
    case .failure(let failure): return failure.response
    }
    guard let input = SubmitInput.parse(request), input.objectValue != nil else {
      return error(400, "Invalid request body: expected a JSON object")
    }
    let job = MockJob(
      id: mock.store.uuid(), provider: name, scenario: scenario,
      createdAt: MockFormats.timestamp(), input: input, attributes: ["type": type])
    mock.store.add(job)
    return .json(201, generation(job, .inFlight(index: -1, count: scenario.polls), mock: mock))
  }

  private func get(_ id: String, mock: MockContext) -> HTTPResponse {
    let response = mock.poll(id, api: self) { job, phase in
      .json(200, generation(job, phase, mock: mock))
    }
    return response ?? error(404, "Generation not found")
  }

  private func delete(_ id: String, mock: MockContext) -> HTTPResponse {
    let found: Void? = mock.store.update(id, provider: name) { job in
      job.deletedAfterFinish = job.isFinished
      job.deleted = true
    }
    guard found != nil else { return error(404, "Generation not found") }
    return HTTPResponse(status: 204)
  }

  /// Renders the Generation object. Index -1 of an in-flight phase is the state at create.
  private func generation(_ job: MockJob, _ phase: JobPhase, mock: MockContext) -> JSONValue {
    let type = job.attributes["type"] ?? "video"
    var body: [String: JSONValue] = [
      "id": .string(job.id),
      "generation_type": .string(type),
      "assets": .null,
      "failure_reason": .null,
      "created_at": .string(job.createdAt),
      "model": job.input["model"] ?? "ray-2",
      "request": job.input,
    ]
    switch phase {
    case .inFlight(let index, _):
      if index < 0 {
        body["state"] = "queued"
      } else {
        body["state"] = .string(
          job.scenario.unknownStatus ?? phase.inFlightStatus(["queued", "dreaming"]) ?? "dreaming")
      }
    case .finished(.succeed):
      body["state"] = "completed"
      let asset =
        type == "image"
        ? ["image": JSONValue.string(mock.url("/files/luma/\(job.id)/image.jpg"))]
        : ["video": JSONValue.string(mock.url("/files/luma/\(job.id)/video.mp4"))]
      body["assets"] = .object(asset)
    case .finished, .cancelled:
      body["state"] = "failed"
      body["failure_reason"] = .string(job.scenario.reason ?? "Advanced moderation failed")
    }
    return .object(body)
  }
}
