import HTTPServer
import Support

/// ElevenLabs' dubbing API (api.elevenlabs.io) under `/elevenlabs`.
///
/// Create takes multipart/form-data (or JSON) and returns `{dubbing_id,
/// expected_duration_sec}`. The metadata status moves from `dubbing` to `dubbed` or `failed`.
/// The result is audio bytes from `/audio/{lang}`, which returns 425 until the dub is done.
struct ElevenLabsAPI: ProviderAPI {
  let name = "elevenlabs-dubbing"
  let prefix = "elevenlabs"
  let supportedOutcomes: Set<Scenario.Outcome> = [.succeed, .fail]

  func error(_ status: Int, _ message: String) -> HTTPResponse {
    let codes = [
      400: "invalid_parameters", 401: "invalid_api_key", 404: "not_found",
      425: "dubbing_not_dubbed", 429: "system_busy", 500: "internal_error",
    ]
    return error(status, code: codes[status] ?? "error", message)
  }

  private func error(_ status: Int, code: String, _ message: String) -> HTTPResponse {
    .json(status, ["detail": ["status": .string(code), "message": .string(message)]])
  }

  func handle(_ request: HTTPRequest, segments: [String], mock: MockContext) -> HTTPResponse {
    guard let key = request.header("xi-api-key"), !key.isEmpty else {
      return error(401, "Invalid API key")
    }
    guard segments.count >= 2, segments[0] == "v1", segments[1] == "dubbing" else {
      return error(404, "Not found")
    }

    let rest = Array(segments.dropFirst(2))
    switch (request.method, rest.count) {
    case ("POST", 0):
      return create(request, mock: mock)
    case ("GET", 1):
      return metadata(rest[0], mock: mock)
    case ("GET", 3) where rest[1] == "audio":
      return audio(rest[0], language: rest[2], mock: mock)
    default:
      return error(405, code: "method_not_allowed", "Method Not Allowed")
    }
  }

  private func create(_ request: HTTPRequest, mock: MockContext) -> HTTPResponse {
    let scenario: Scenario
    switch mock.submitScenario(request, api: self) {
    case .success(let parsed): scenario = parsed
    case .failure(let failure): return failure.response
    }
    guard let input = SubmitInput.parse(request), input.objectValue != nil else {
      return error(400, "Invalid request body: expected multipart/form-data or a JSON object")
    }
    guard let language = input["target_lang"]?.stringValue, !language.isEmpty else {
      let missing: JSONValue = [
        "loc": ["body", "target_lang"], "msg": "field required", "type": "value_error.missing",
      ]
      return .json(422, ["detail": [missing]])
    }
    guard input["file"] != nil || input["source_url"] != nil else {
      return error(400, "Provide either file or source_url")
    }

    let id = mock.store.elevenLabsID()
    mock.store.add(
      MockJob(
        id: id, provider: name, scenario: scenario, createdAt: MockFormats.timestamp(),
        input: input, attributes: ["language": language]))
    return .json(200, ["dubbing_id": .string(id), "expected_duration_sec": 12.5])
  }

  private func metadata(_ id: String, mock: MockContext) -> HTTPResponse {
    let response = mock.poll(id, api: self) { job, phase in
      var body: [String: JSONValue] = [
        "dubbing_id": .string(job.id),
        "name": job.input["name"] ?? "",
        "target_languages": [.string(job.attributes["language"] ?? "")],
        "source_language": .null,
        "editable": false,
        "created_at": .string(job.createdAt),
      ]
      switch phase {
      case .inFlight:
        body["status"] = .string(job.scenario.unknownStatus ?? "dubbing")
      case .finished(.succeed):
        body["status"] = "dubbed"
        body["source_language"] = .string(job.input["source_lang"]?.stringValue ?? "en")
        body["media_metadata"] = ["content_type": "audio/mpeg", "duration": 12.5]
      case .finished, .cancelled:
        body["status"] = "failed"
        body["error"] = .string(job.scenario.reason ?? "Dubbing failed: no speech detected")
      }
      return .json(200, .object(body))
    }
    return response ?? error(404, code: "dubbing_not_found", "Dubbing \(id) not found")
  }

  private func audio(_ id: String, language: String, mock: MockContext) -> HTTPResponse {
    guard let job = mock.store.job(id, provider: name) else {
      return error(404, code: "dubbing_not_found", "Dubbing \(id) not found")
    }
    guard job.attributes["language"] == language else {
      return error(
        404, code: "language_not_found", "Language \(language) not found for dubbing \(id)")
    }
    // NOTE: the response for a failed dub is not documented, so it gets the same 425 as one
    // still in progress.
    guard job.isFinished, job.scenario.outcome == .succeed, !job.cancelRequested else {
      return error(425, "Dubbing \(id) is not finished, so its audio is not available yet")
    }
    return HTTPResponse(
      status: 200, headers: [("Content-Type", "audio/mpeg")], body: MockFormats.mp3)
  }
}
