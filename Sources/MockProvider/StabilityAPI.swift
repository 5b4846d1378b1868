import Foundation
import HTTPServer
import Support

/// Stability AI's image-to-video API (api.stability.ai/v2beta) under `/stability`.
///
/// Start returns `{"id": <64 hex>}`. The result endpoint carries the job state in its HTTP
/// status: 202 while running, 200 with MP4 bytes (or base64 JSON for `Accept:
/// application/json`) when done, and a 4xx error body when the generation failed. A 200 can
/// still be unusable: `finish-reason: CONTENT_FILTERED`.
struct StabilityAPI: ProviderAPI {
  let name = "stability-video"
  let prefix = "stability"
  let supportedOutcomes: Set<Scenario.Outcome> = [.succeed, .fail, .filtered]

  func error(_ status: Int, _ message: String) -> HTTPResponse {
    let names = [
      400: "bad_request", 401: "unauthorized", 402: "payment_required", 403: "content_moderation",
      404: "not_found", 429: "rate_limit_exceeded", 500: "internal_error",
    ]
    return error(status, name: names[status] ?? "error", message)
  }

  private func error(_ status: Int, name errorName: String, _ message: String) -> HTTPResponse {
    // Stability's error id identifies the error for support, and is not a generation id.
    let errorID = String(format: "%032llx", UInt64(status) &* 0x9E37_79B9_7F4A_7C15)
    return .json(
      status, ["id": .string(errorID), "name": .string(errorName), "errors": [.string(message)]])
  }

  func handle(_ request: HTTPRequest, segments: [String], mock: MockContext) -> HTTPResponse {
    guard let token = request.header("authorization"), token.hasPrefix("Bearer "), token.count > 7
    else {
      return error(401, "authorization: missing or invalid API key")
    }
    switch (request.method, segments.count) {
    case ("POST", 2) where segments == ["v2beta", "image-to-video"]:
      return start(request, mock: mock)
    case ("GET", 4)
    where segments[0] == "v2beta" && segments[1] == "image-to-video" && segments[2] == "result":
      return result(segments[3], accept: request.header("accept") ?? "video/*", mock: mock)
    default:
      return error(404, "Not found: \(request.method) \(request.path)")
    }
  }

  private func start(_ request: HTTPRequest, mock: MockContext) -> HTTPResponse {
    let scenario: Scenario
    switch mock.submitScenario(request, api: self) {
    case .success(let parsed): scenario = parsed
    case .failure(let failure): return failure.response
    }
    guard let input = SubmitInput.parse(request), input.objectValue != nil else {
      return error(400, "Invalid request body: expected multipart/form-data or a JSON object")
    }
    guard input["image"] != nil else { return error(400, "image: required") }

    let id = mock.store.hexID()
    mock.store.add(
      MockJob(
        id: id, provider: name, scenario: scenario, createdAt: MockFormats.timestamp(),
        input: input, attributes: [:]))
    return .json(200, ["id": .string(id)])
  }

  private func result(_ id: String, accept: String, mock: MockContext) -> HTTPResponse {
    let response = mock.poll(id, api: self) { job, phase in
      switch phase {
      case .inFlight:
        let status = job.scenario.unknownStatus ?? "in-progress"
        return .json(202, ["id": .string(job.id), "status": .string(status)])
      case .finished(.fail), .cancelled:
        let reason = job.scenario.reason ?? "The generation failed: invalid image dimensions"
        let failureName = job.scenario.code ?? "bad_request"
        return error(failureName == "content_moderation" ? 403 : 400, name: failureName, reason)
      case .finished(let outcome):
        let finishReason = outcome == .filtered ? "CONTENT_FILTERED" : "SUCCESS"
        if accept.lowercased().contains("application/json") {
          let video = Data(MockFormats.mp4).base64EncodedString()
          return .json(
            200,
            ["video": .string(video), "finish_reason": .string(finishReason), "seed": 42])
        }
        return HTTPResponse(
          status: 200,
          headers: [
            ("Content-Type", "video/mp4"), ("finish-reason", finishReason), ("seed", "42"),
          ],
          body: MockFormats.mp4)
      }
    }
    return response ?? error(404, "Generation \(id) not found")
  }
}
