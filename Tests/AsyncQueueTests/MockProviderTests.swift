import Foundation
import MockProvider
import Support
import Testing

@Suite("Mock provider: fal, Replicate, Runway")
struct MockProviderTests {
  static let falAuth = ["Authorization": "Key test-id:test-secret"]
  static let bearer = ["Authorization": "Bearer r8_test"]
  static let runwayHeaders = [
    "Authorization": "Bearer key_0123abcd", "X-Runway-Version": "2024-11-06",
  ]

  // MARK: fal

  @Test func falHappyPath() async throws {
    try await withMockProvider { mock in
      let base = mock.baseURL
      var headers = Self.falAuth
      headers["X-Mock-Scenario"] = "polls=2"
      let submit = try await TestHTTP.send(
        "POST", "\(base)/fal/fal-ai/flux/dev", headers: headers, json: #"{"prompt":"a cat"}"#)
      #expect(submit.status == 200)
      let queued = try submit.json()
      let id = try #require(queued["request_id"]?.stringValue)
      #expect(queued["status"] == "IN_QUEUE")
      #expect(queued["queue_position"] == 0)
      #expect(queued["status_url"] == .string("\(base)/fal/fal-ai/flux/requests/\(id)/status"))
      #expect(queued["response_url"] == .string("\(base)/fal/fal-ai/flux/requests/\(id)"))
      #expect(queued["cancel_url"] == .string("\(base)/fal/fal-ai/flux/requests/\(id)/cancel"))

      let statusURL = "\(base)/fal/fal-ai/flux/requests/\(id)/status?logs=1"
      let first = try await TestHTTP.send("GET", statusURL, headers: Self.falAuth)
      #expect(first.status == 202)
      #expect(try first.json()["status"] == "IN_QUEUE")
      #expect(try first.json()["queue_position"] == 0)
      let second = try await TestHTTP.send("GET", statusURL, headers: Self.falAuth)
      #expect(second.status == 202)
      #expect(try second.json()["status"] == "IN_PROGRESS")
      #expect(try second.json()["logs"]?.arrayValue?.count == 2)
      let done = try await TestHTTP.send("GET", statusURL, headers: Self.falAuth)
      #expect(done.status == 200)
      #expect(try done.json()["status"] == "COMPLETED")
      #expect(try done.json()["error"] == nil)

      let result = try await TestHTTP.send(
        "GET", "\(base)/fal/fal-ai/flux/requests/\(id)", headers: Self.falAuth)
      #expect(result.status == 200)
      let output = try result.json()
      #expect(output.at("images.0.content_type") == "image/jpeg")
      #expect(output["seed"] == 42)
      let imageURL = try #require(output.at("images.0.url")?.stringValue)
      let image = try await TestHTTP.send("GET", imageURL)
      #expect(image.status == 200)
      #expect(image.header("content-type") == "image/jpeg")
      #expect(Array(image.body.prefix(2)) == [0xFF, 0xD8])

      let late = try await TestHTTP.send(
        "PUT", "\(base)/fal/fal-ai/flux/requests/\(id)/cancel", headers: Self.falAuth)
      #expect(late.status == 400)
      #expect(try late.json()["status"] == "ALREADY_COMPLETED")
      let unknown = try await TestHTTP.send(
        "PUT", "\(base)/fal/fal-ai/flux/requests/nope/cancel", headers: Self.falAuth)
      #expect(unknown.status == 404)
      #expect(try unknown.json()["status"] == "NOT_FOUND")

      #expect(mock.submitCount(provider: "fal") == 1)
      let recorded = mock.requests()
      #expect(recorded.first?.headers["authorization"] == "Key test-id:test-secret")
      #expect(recorded.first?.path == "/fal/fal-ai/flux/dev")
      #expect(recorded.first?.provider == "fal")
    }
  }

  @Test func falFailureShapes() async throws {
    try await withMockProvider { mock in
      let base = mock.baseURL
      var headers = Self.falAuth
      headers["X-Mock-Scenario"] = "polls=0;outcome=fail;reason=flagged prompt"
      let submit = try await TestHTTP.send(
        "POST", "\(base)/fal/fal-ai/flux", headers: headers, json: "{}")
      let id = try #require(try submit.json()["request_id"]?.stringValue)
      let status = try await TestHTTP.send(
        "GET", "\(base)/fal/fal-ai/flux/requests/\(id)/status", headers: Self.falAuth)
      #expect(status.status == 200)
      #expect(try status.json()["status"] == "COMPLETED")
      #expect(try status.json()["error"] == "flagged prompt")
      #expect(try status.json()["error_type"] == "content_policy_violation")
      let result = try await TestHTTP.send(
        "GET", "\(base)/fal/fal-ai/flux/requests/\(id)", headers: Self.falAuth)
      #expect(result.status == 422)
      #expect(try result.json().at("detail.0.loc") == ["body", "prompt"])
      #expect(try result.json().at("detail.0.msg") == "flagged prompt")
      #expect(try result.json().at("detail.0.type") == "content_policy_violation")

      headers["X-Mock-Scenario"] = "polls=0;outcome=fail500"
      let second = try await TestHTTP.send(
        "POST", "\(base)/fal/fal-ai/flux", headers: headers, json: "{}")
      let secondID = try #require(try second.json()["request_id"]?.stringValue)
      _ = try await TestHTTP.send(
        "GET", "\(base)/fal/fal-ai/flux/requests/\(secondID)/status", headers: Self.falAuth)
      let crashed = try await TestHTTP.send(
        "GET", "\(base)/fal/fal-ai/flux/requests/\(secondID)", headers: Self.falAuth)
      #expect(crashed.status == 500)
      #expect(crashed.header("x-fal-error-type") == "runner_disconnected")
      #expect(try crashed.json()["error_type"] == "runner_disconnected")
      #expect(try crashed.json()["detail"]?.stringValue != nil)
    }
  }

  @Test func falCancelInFlight() async throws {
    try await withMockProvider { mock in
      let base = mock.baseURL
      let submit = try await TestHTTP.send(
        "POST", "\(base)/fal/fal-ai/flux", headers: Self.falAuth, json: "{}")
      let id = try #require(try submit.json()["request_id"]?.stringValue)
      let cancel = try await TestHTTP.send(
        "PUT", "\(base)/fal/fal-ai/flux/requests/\(id)/cancel", headers: Self.falAuth)
      #expect(cancel.status == 202)
      #expect(try cancel.json()["status"] == "CANCELLATION_REQUESTED")
      let status = try await TestHTTP.send(
        "GET", "\(base)/fal/fal-ai/flux/requests/\(id)/status", headers: Self.falAuth)
      #expect(try status.json()["status"] == "COMPLETED")
      #expect(try status.json()["error_type"] == "request_cancelled")
    }
  }

  @Test func falRejectsMissingKey() async throws {
    try await withMockProvider { mock in
      let missing = try await TestHTTP.send("POST", "\(mock.baseURL)/fal/fal-ai/flux", json: "{}")
      #expect(missing.status == 401)
      #expect(try missing.json()["detail"]?.stringValue != nil)
      let wrongScheme = try await TestHTTP.send(
        "POST", "\(mock.baseURL)/fal/fal-ai/flux", headers: Self.bearer, json: "{}")
      #expect(wrongScheme.status == 401)
      #expect(mock.submitCount(provider: "fal") == 2)
    }
  }

  @Test func falStatusRateLimited() async throws {
    try await withMockProvider { mock in
      let base = mock.baseURL
      var headers = Self.falAuth
      headers["X-Mock-Scenario"] = "polls=1;fault=429;faults=2"
      let submit = try await TestHTTP.send(
        "POST", "\(base)/fal/fal-ai/flux", headers: headers, json: "{}")
      let id = try #require(try submit.json()["request_id"]?.stringValue)
      let statusURL = "\(base)/fal/fal-ai/flux/requests/\(id)/status"
      var codes: [Int] = []
      var retryAfter: [String?] = []
      for _ in 0..<4 {
        let response = try await TestHTTP.send("GET", statusURL, headers: Self.falAuth)
        codes.append(response.status)
        retryAfter.append(response.header("retry-after"))
      }
      #expect(codes == [429, 429, 202, 200])
      #expect(retryAfter == ["1", "1", nil, nil])
    }
  }

  // MARK: Replicate

  @Test func replicateHappyPath() async throws {
    try await withMockProvider { mock in
      let base = mock.baseURL
      var headers = Self.bearer
      headers["X-Mock-Scenario"] = "polls=2"
      let create = try await TestHTTP.send(
        "POST", "\(base)/replicate/v1/models/black-forest-labs/flux-schnell/predictions",
        headers: headers, json: #"{"input":{"prompt":"a cat"}}"#)
      #expect(create.status == 201)
      let created = try create.json()
      let id = try #require(created["id"]?.stringValue)
      #expect(id.count == 26)
      #expect(created["status"] == "starting")
      #expect(created["model"] == "black-forest-labs/flux-schnell")
      #expect(created["input"] == ["prompt": "a cat"])
      #expect(created["output"] == .null)
      #expect(created["error"] == .null)
      #expect(created["logs"] == "")
      #expect(created.at("urls.get") == .string("\(base)/replicate/v1/predictions/\(id)"))
      #expect(created.at("urls.cancel") == .string("\(base)/replicate/v1/predictions/\(id)/cancel"))
      #expect(created.at("urls.stream") == nil)

      let getURL = "\(base)/replicate/v1/predictions/\(id)"
      let first = try await TestHTTP.send("GET", getURL, headers: Self.bearer).json()
      #expect(first["status"] == "starting")
      let second = try await TestHTTP.send("GET", getURL, headers: Self.bearer).json()
      #expect(second["status"] == "processing")
      let logs = try #require(second["logs"]?.stringValue)
      #expect(logs.contains(" 60%|██████    | 30/50"))
      let done = try await TestHTTP.send("GET", getURL, headers: Self.bearer).json()
      #expect(done["status"] == "succeeded")
      #expect(done["output"] == [.string("\(base)/files/replicate/\(id)/output.mp4")])
      #expect(done["logs"]?.stringValue?.contains("100%|██████████| 50/50") == true)

      let cancel = try await TestHTTP.send("POST", "\(getURL)/cancel", headers: Self.bearer)
      #expect(cancel.status == 200)
      #expect(try cancel.json()["status"] == "succeeded")
    }
  }

  @Test func replicateFailureAndCancel() async throws {
    try await withMockProvider { mock in
      let base = mock.baseURL
      var headers = Self.bearer
      headers["X-Mock-Scenario"] = "polls=0;outcome=fail;reason="
      let create = try await TestHTTP.send(
        "POST", "\(base)/replicate/v1/predictions", headers: headers,
        json: #"{"version":"owner/model:abc123","input":{}}"#)
      #expect(create.status == 201)
      #expect(try create.json()["model"] == "owner/model")
      #expect(try create.json()["version"] == "abc123")
      let id = try #require(try create.json()["id"]?.stringValue)
      let failed = try await TestHTTP.send(
        "GET", "\(base)/replicate/v1/predictions/\(id)", headers: Self.bearer
      ).json()
      #expect(failed["status"] == "failed")
      #expect(failed["error"] == .null)

      headers["X-Mock-Scenario"] = "polls=0;outcome=abort"
      let aborted = try await TestHTTP.send(
        "POST", "\(base)/replicate/v1/models/o/m/predictions", headers: headers,
        json: #"{"input":{}}"#)
      let abortedID = try #require(try aborted.json()["id"]?.stringValue)
      let abortedState = try await TestHTTP.send(
        "GET", "\(base)/replicate/v1/predictions/\(abortedID)", headers: Self.bearer
      ).json()
      #expect(abortedState["status"] == "aborted")

      let running = try await TestHTTP.send(
        "POST", "\(base)/replicate/v1/models/o/m/predictions", headers: Self.bearer,
        json: #"{"input":{}}"#)
      let runningID = try #require(try running.json()["id"]?.stringValue)
      let cancel = try await TestHTTP.send(
        "POST", "\(base)/replicate/v1/predictions/\(runningID)/cancel", headers: Self.bearer)
      #expect(try cancel.json()["status"] == "canceled")
      let after = try await TestHTTP.send(
        "GET", "\(base)/replicate/v1/predictions/\(runningID)", headers: Self.bearer
      ).json()
      #expect(after["status"] == "canceled")
      #expect(mock.submitCount(provider: "replicate") == 3)
    }
  }

  @Test func replicatePreferWait() async throws {
    try await withMockProvider { mock in
      var headers = Self.bearer
      headers["X-Mock-Scenario"] = "polls=0"
      headers["Prefer"] = "wait=60"
      let create = try await TestHTTP.send(
        "POST", "\(mock.baseURL)/replicate/v1/models/o/m/predictions", headers: headers,
        json: #"{"input":{},"stream":true}"#)
      #expect(create.status == 201)
      #expect(try create.json()["status"] == "succeeded")
      #expect(try create.json()["output"]?.arrayValue?.count == 1)
      #expect(try create.json().at("urls.stream")?.stringValue != nil)
    }
  }

  @Test func replicateRejectsMissingToken() async throws {
    try await withMockProvider { mock in
      let response = try await TestHTTP.send(
        "POST", "\(mock.baseURL)/replicate/v1/predictions", json: #"{"input":{}}"#)
      #expect(response.status == 401)
      #expect(response.header("content-type") == "application/problem+json")
      #expect(try response.json()["status"] == 401)
      #expect(try response.json()["title"] == "Unauthenticated")
    }
  }

  @Test func replicateTruncatedStatus() async throws {
    try await withMockProvider { mock in
      var headers = Self.bearer
      headers["X-Mock-Scenario"] = "polls=1;fault=truncated"
      let create = try await TestHTTP.send(
        "POST", "\(mock.baseURL)/replicate/v1/models/o/m/predictions", headers: headers,
        json: #"{"input":{}}"#)
      let id = try #require(try create.json()["id"]?.stringValue)
      let getURL = "\(mock.baseURL)/replicate/v1/predictions/\(id)"
      let truncated = try await TestHTTP.send("GET", getURL, headers: Self.bearer)
      #expect(truncated.status == 200)
      #expect(throws: JSONParseError.self) { try truncated.json() }
      let next = try await TestHTTP.send("GET", getURL, headers: Self.bearer)
      #expect(try next.json()["status"] == "processing")
    }
  }

  // MARK: Runway

  @Test func runwayHappyPath() async throws {
    try await withMockProvider { mock in
      let base = mock.baseURL
      var headers = Self.runwayHeaders
      headers["X-Mock-Scenario"] = "polls=3"
      let submit = try await TestHTTP.send(
        "POST", "\(base)/runway/v1/image_to_video", headers: headers,
        json: #"{"promptImage":"https://example.com/a.png","model":"gen4_turbo"}"#)
      #expect(submit.status == 200)
      let created = try submit.json()
      #expect(created.objectValue?.keys.sorted() == ["id"])
      let id = try #require(created["id"]?.stringValue)
      #expect(id.count == 36)

      var statuses: [String] = []
      var progress: JSONValue?
      var last = JSONValue.null
      for _ in 0..<4 {
        last = try await TestHTTP.send(
          "GET", "\(base)/runway/v1/tasks/\(id)", headers: Self.runwayHeaders
        )
        .json()
        statuses.append(last["status"]?.stringValue ?? "?")
        if last["status"] == "RUNNING" { progress = last["progress"] }
      }
      #expect(statuses == ["PENDING", "THROTTLED", "RUNNING", "SUCCEEDED"])
      #expect(progress == 0.75)
      #expect(last["output"] == [.string("\(base)/files/runwayml/\(id)/output.mp4")])
      #expect(last["createdAt"]?.stringValue != nil)
    }
  }

  @Test func runwayFailureAndVersion() async throws {
    try await withMockProvider { mock in
      let base = mock.baseURL
      var headers = Self.runwayHeaders
      headers["X-Mock-Scenario"] = "polls=0;outcome=fail;reason=Moderated;code=SAFETY.INPUT.TEXT"
      let submit = try await TestHTTP.send(
        "POST", "\(base)/runway/v1/text_to_video", headers: headers, json: "{}")
      let id = try #require(try submit.json()["id"]?.stringValue)
      let failed = try await TestHTTP.send(
        "GET", "\(base)/runway/v1/tasks/\(id)", headers: Self.runwayHeaders
      ).json()
      #expect(failed["status"] == "FAILED")
      #expect(failed["failure"] == "Moderated")
      #expect(failed["failureCode"] == "SAFETY.INPUT.TEXT")

      let noVersion = try await TestHTTP.send(
        "POST", "\(base)/runway/v1/image_to_video", headers: ["Authorization": "Bearer key_1"],
        json: "{}")
      #expect(noVersion.status == 400)
      #expect(try noVersion.json()["error"]?.stringValue?.contains("X-Runway-Version") == true)

      let wrongKey = try await TestHTTP.send(
        "POST", "\(base)/runway/v1/image_to_video",
        headers: ["Authorization": "Bearer sk-1", "X-Runway-Version": "2024-11-06"], json: "{}")
      #expect(wrongKey.status == 401)
      #expect(try wrongKey.json()["error"]?.stringValue != nil)
    }
  }

  @Test func runwayDeleteSemantics() async throws {
    try await withMockProvider { mock in
      let base = mock.baseURL
      var headers = Self.runwayHeaders
      headers["X-Mock-Scenario"] = "polls=0"
      let finished = try await TestHTTP.send(
        "POST", "\(base)/runway/v1/image_to_video", headers: headers, json: "{}")
      let finishedID = try #require(try finished.json()["id"]?.stringValue)
      let done = try await TestHTTP.send(
        "GET", "\(base)/runway/v1/tasks/\(finishedID)", headers: Self.runwayHeaders)
      #expect(try done.json()["status"] == "SUCCEEDED")
      let delete = try await TestHTTP.send(
        "DELETE", "\(base)/runway/v1/tasks/\(finishedID)", headers: Self.runwayHeaders)
      #expect(delete.status == 204)
      let gone = try await TestHTTP.send(
        "GET", "\(base)/runway/v1/tasks/\(finishedID)", headers: Self.runwayHeaders)
      #expect(gone.status == 404)
      #expect(mock.deletedFinishedJobs(provider: "runwayml") == [finishedID])

      let running = try await TestHTTP.send(
        "POST", "\(base)/runway/v1/image_to_video", headers: Self.runwayHeaders, json: "{}")
      let runningID = try #require(try running.json()["id"]?.stringValue)
      let cancel = try await TestHTTP.send(
        "DELETE", "\(base)/runway/v1/tasks/\(runningID)", headers: Self.runwayHeaders)
      #expect(cancel.status == 204)
      let cancelled = try await TestHTTP.send(
        "GET", "\(base)/runway/v1/tasks/\(runningID)", headers: Self.runwayHeaders)
      #expect(try cancelled.json()["status"] == "CANCELLED")
      #expect(mock.deletedFinishedJobs(provider: "runway") == [finishedID])
      #expect(mock.requests().filter { $0.method == "DELETE" }.count == 2)
    }
  }

  @Test func runwayServerErrorFault() async throws {
    try await withMockProvider { mock in
      var headers = Self.runwayHeaders
      headers["X-Mock-Scenario"] = "polls=1;fault=500"
      let submit = try await TestHTTP.send(
        "POST", "\(mock.baseURL)/runway/v1/image_to_video", headers: headers, json: "{}")
      let id = try #require(try submit.json()["id"]?.stringValue)
      let url = "\(mock.baseURL)/runway/v1/tasks/\(id)"
      let failed = try await TestHTTP.send("GET", url, headers: Self.runwayHeaders)
      #expect(failed.status == 500)
      #expect(try failed.json()["error"] == "internal server error")
      let running = try await TestHTTP.send("GET", url, headers: Self.runwayHeaders)
      #expect(try running.json()["status"] == "RUNNING")
    }
  }
}
