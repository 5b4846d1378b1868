import HTTPServer
import Support

/// RunwayML's API (api.dev.runwayml.com) under `/runway`.
///
/// Every request needs `Authorization: Bearer key_…` and `X-Runway-Version: 2024-11-06`.
/// A generation endpoint returns `{"id"}`, and the task moves PENDING → THROTTLED → RUNNING →
/// SUCCEEDED, FAILED or CANCELLED. DELETE cancels a task in flight but deletes a finished one,
/// after which it is gone (404); the store records such deletes.
struct RunwayAPI: ProviderAPI {
  let name = "runwayml"
  let prefix = "runway"
  let supportedOutcomes: Set<Scenario.Outcome> = [.succeed, .fail, .cancel]
  static let version = "2024-11-06"
  private let generationEndpoints: Set<String> = [
    "image_to_video", "text_to_video", "video_to_video", "text_to_image", "character_performance",
    "video_upscale", "sound_effect", "text_to_speech",
  ]

  func error(_ status: Int, _ message: String) -> HTTPResponse {
    .json(status, ["error": .string(message)])
  }

  func handle(_ request: HTTPRequest, segments: [String], mock: MockContext) -> HTTPResponse {
    guard let token = request.header("authorization"), token.hasPrefix("Bearer key_") else {
      return error(
        401, "Invalid API key. Check that the key starts with key_ and is for this host.")
    }
    guard let version = request.header("x-runway-version") else {
      return error(400, "Missing X-Runway-Version header. Set it to \(Self.version).")
    }
    guard version == Self.version else {
      return error(400, "Invalid X-Runway-Version header \"\(version)\". Use \(Self.version).")
    }
    guard segments.first == "v1", segments.count >= 2 else { return error(404, "Not found") }

    switch (request.method, segments.count) {
    case ("POST", 2) where generationEndpoints.contains(segments[1]):
      return submit(request, mock: mock)
    case ("GET", 3) where segments[1] == "tasks":
      return task(segments[2], mock: mock)
    case ("DELETE", 3) where segments[1] == "tasks":
      return delete(segments[2], mock: mock)
    case (_, 2) where generationEndpoints.contains(segments[1]),
      (_, 3) where segments[1] == "tasks":
      return error(405, "Method not allowed")
    default:
      return error(404, "Not found")
    }
  }

  private func submit(_ request: HTTPRequest, mock: MockContext) -> HTTPResponse {
    let scenario: Scenario
    switch mock.submitScenario(request, api: self) {
    case .success(let parsed): scenario = parsed
    case .failure(let failure): return failure.response
    }
    guard let input = SubmitInput.parse(request), input.objectValue != nil else {
      return error(400, "Invalid request body: expected a JSON object")
    }
    let id = mock.store.uuid()
    mock.store.add(
      MockJob(
        id: id, provider: name, scenario: scenario, createdAt: MockFormats.timestamp(),
        input: input, attributes: [:]))
    return .json(200, ["id": .string(id)])
  }

  private func task(_ id: String, mock: MockContext) -> HTTPResponse {
    let response = mock.poll(id, api: self) { job, phase in
      var body: [String: JSONValue] = ["id": .string(job.id), "createdAt": .string(job.createdAt)]
      switch phase {
      case .inFlight:
        let status =
          job.scenario.unknownStatus ?? phase.inFlightStatus(["PENDING", "THROTTLED", "RUNNING"])
          ?? "RUNNING"
        body["status"] = .string(status)
        if status == "RUNNING" {
          body["progress"] = .double((phase.progress * 100).rounded() / 100)
        }
      case .finished(.succeed):
        body["status"] = "SUCCEEDED"
        body["output"] = [.string(mock.url("/files/runwayml/\(job.id)/output.mp4"))]
      case .finished(.fail):
        body["status"] = "FAILED"
        body["failure"] = .string(job.scenario.reason ?? "An unexpected error occurred.")
        let code = job.scenario.code ?? "INTERNAL.BAD_OUTPUT.CODE01"
        if !code.isEmpty { body["failureCode"] = .string(code) }
      case .finished, .cancelled:
        body["status"] = "CANCELLED"
      }
      return .json(200, .object(body))
    }
    return response ?? error(404, "Task not found")
  }

  private func delete(_ id: String, mock: MockContext) -> HTTPResponse {
    let found: Void? = mock.store.update(id, provider: name) { job in
      if job.isFinished {
        job.deleted = true
        job.deletedAfterFinish = true
      } else {
        job.cancelRequested = true
      }
    }
    guard found != nil else { return error(404, "Task not found") }
    return HTTPResponse(status: 204)
  }
}
