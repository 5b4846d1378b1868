import Foundation
import MockProvider
import Support
import Testing

@Suite("Mock provider: Luma, ElevenLabs, Stability, scenarios")
struct MockProviderMediaTests {
  static let bearer = ["Authorization": "Bearer test-token"]
  static let elevenLabsKey = ["xi-api-key": "test-key"]

  // MARK: Luma

  @Test func lumaHappyPath() async throws {
    try await withMockProvider { mock in
      let base = mock.baseURL
      var headers = Self.bearer
      headers["X-Mock-Scenario"] = "polls=2"
      let create = try await TestHTTP.send(
        "POST", "\(base)/luma/dream-machine/v1/generations/video", headers: headers,
        json: #"{"prompt":"waves","model":"ray-2"}"#)
      #expect(create.status == 201)
      let created = try create.json()
      let id = try #require(created["id"]?.stringValue)
      #expect(created["state"] == "queued")
      #expect(created["assets"] == .null)
      #expect(created["failure_reason"] == .null)
      #expect(created["generation_type"] == "video")
      #expect(created["model"] == "ray-2")
      #expect(created["request"] == ["prompt": "waves", "model": "ray-2"])

      let url = "\(base)/luma/dream-machine/v1/generations/\(id)"
      var states: [String] = []
      var last = JSONValue.null
      for _ in 0..<3 {
        last = try await TestHTTP.send("GET", url, headers: Self.bearer).json()
        states.append(last["state"]?.stringValue ?? "?")
      }
      #expect(states == ["queued", "dreaming", "completed"])
      #expect(last.at("assets.video") == .string("\(base)/files/luma/\(id)/video.mp4"))
      let video = try await TestHTTP.send("GET", "\(base)/files/luma/\(id)/video.mp4")
      #expect(video.header("content-type") == "video/mp4")
      #expect(video.body.count == 8_192)
    }
  }

  @Test func lumaFailureAndDelete() async throws {
    try await withMockProvider { mock in
      let base = mock.baseURL
      var headers = Self.bearer
      headers["X-Mock-Scenario"] = "polls=0;outcome=fail;reason=Advanced moderation failed"
      let create = try await TestHTTP.send(
        "POST", "\(base)/luma/dream-machine/v1/generations", headers: headers, json: "{}")
      let id = try #require(try create.json()["id"]?.stringValue)
      let url = "\(base)/luma/dream-machine/v1/generations/\(id)"
      let failed = try await TestHTTP.send("GET", url, headers: Self.bearer).json()
      #expect(failed["state"] == "failed")
      #expect(failed["failure_reason"] == "Advanced moderation failed")

      let delete = try await TestHTTP.send("DELETE", url, headers: Self.bearer)
      #expect(delete.status == 204)
      let gone = try await TestHTTP.send("GET", url, headers: Self.bearer)
      #expect(gone.status == 404)
      #expect(try gone.json()["detail"] == "Generation not found")
    }
  }

  @Test func lumaRejectsMissingToken() async throws {
    try await withMockProvider { mock in
      let response = try await TestHTTP.send(
        "POST", "\(mock.baseURL)/luma/dream-machine/v1/generations", json: "{}")
      #expect(response.status == 401)
      #expect(try response.json()["detail"] == "Invalid API key")
    }
  }

  @Test func lumaHTMLBadGateway() async throws {
    try await withMockProvider { mock in
      var headers = Self.bearer
      headers["X-Mock-Scenario"] = "polls=0;fault=html"
      let create = try await TestHTTP.send(
        "POST", "\(mock.baseURL)/luma/dream-machine/v1/generations", headers: headers, json: "{}")
      let id = try #require(try create.json()["id"]?.stringValue)
      let url = "\(mock.baseURL)/luma/dream-machine/v1/generations/\(id)"
      let page = try await TestHTTP.send("GET", url, headers: Self.bearer)
      #expect(page.status == 502)
      #expect(page.header("content-type") == "text/html")
      #expect(page.text.contains("502 Bad Gateway"))
      #expect(
        try await TestHTTP.send("GET", url, headers: Self.bearer).json()["state"] == "completed")
    }
  }

  // MARK: ElevenLabs

  @Test func elevenLabsHappyPath() async throws {
    try await withMockProvider { mock in
      let base = mock.baseURL
      let form = multipartBody(
        fields: [("target_lang", "es"), ("source_lang", "en"), ("name", "intro")],
        files: [(name: "file", fileName: "intro.mp4", bytes: [1, 2, 3])])
      var headers = Self.elevenLabsKey
      headers["Content-Type"] = form.contentType
      headers["X-Mock-Scenario"] = "polls=2"
      let create = try await TestHTTP.send(
        "POST", "\(base)/elevenlabs/v1/dubbing", headers: headers, body: form.body)
      #expect(create.status == 200)
      let created = try create.json()
      let id = try #require(created["dubbing_id"]?.stringValue)
      #expect(id.count == 20)
      #expect(created["expected_duration_sec"] == 12.5)

      let audioURL = "\(base)/elevenlabs/v1/dubbing/\(id)/audio/es"
      let early = try await TestHTTP.send("GET", audioURL, headers: Self.elevenLabsKey)
      #expect(early.status == 425)
      #expect(try early.json().at("detail.status") == "dubbing_not_dubbed")

      var statuses: [String] = []
      var last = JSONValue.null
      for _ in 0..<3 {
        last = try await TestHTTP.send(
          "GET", "\(base)/elevenlabs/v1/dubbing/\(id)", headers: Self.elevenLabsKey
        )
        .json()
        statuses.append(last["status"]?.stringValue ?? "?")
      }
      #expect(statuses == ["dubbing", "dubbing", "dubbed"])
      #expect(last["target_languages"] == ["es"])
      #expect(last["name"] == "intro")

      let audio = try await TestHTTP.send("GET", audioURL, headers: Self.elevenLabsKey)
      #expect(audio.status == 200)
      #expect(audio.header("content-type") == "audio/mpeg")
      #expect(Array(audio.body.prefix(3)) == Array("ID3".utf8))
      #expect(audio.body.count == 4_096)
      let otherLanguage = try await TestHTTP.send(
        "GET", "\(base)/elevenlabs/v1/dubbing/\(id)/audio/fr", headers: Self.elevenLabsKey)
      #expect(otherLanguage.status == 404)
    }
  }

  @Test func elevenLabsFailureAndValidation() async throws {
    try await withMockProvider { mock in
      let base = mock.baseURL
      var headers = Self.elevenLabsKey
      headers["X-Mock-Scenario"] = "polls=0;outcome=fail;reason=no speech"
      let create = try await TestHTTP.send(
        "POST", "\(base)/elevenlabs/v1/dubbing", headers: headers,
        json: #"{"target_lang":"de","source_url":"https://example.com/v.mp4"}"#)
      let id = try #require(try create.json()["dubbing_id"]?.stringValue)
      let failed = try await TestHTTP.send(
        "GET", "\(base)/elevenlabs/v1/dubbing/\(id)", headers: Self.elevenLabsKey
      ).json()
      #expect(failed["status"] == "failed")
      #expect(failed["error"] == "no speech")

      let missingLanguage = try await TestHTTP.send(
        "POST", "\(base)/elevenlabs/v1/dubbing", headers: Self.elevenLabsKey,
        json: #"{"source_url":"https://example.com/v.mp4"}"#)
      #expect(missingLanguage.status == 422)
      #expect(try missingLanguage.json().at("detail.0.loc") == ["body", "target_lang"])
    }
  }

  @Test func elevenLabsRejectsMissingKey() async throws {
    try await withMockProvider { mock in
      let response = try await TestHTTP.send(
        "GET", "\(mock.baseURL)/elevenlabs/v1/dubbing/abc", headers: Self.bearer)
      #expect(response.status == 401)
      #expect(try response.json().at("detail.status") == "invalid_api_key")
    }
  }

  @Test func elevenLabsDroppedConnection() async throws {
    try await withMockProvider { mock in
      var headers = Self.elevenLabsKey
      headers["X-Mock-Scenario"] = "polls=0;fault=drop"
      // A GET on a reused connection that drops is sent again by the HTTP client, which would
      // hide the fault, so the create leaves no connection to reuse.
      headers["Connection"] = "close"
      let create = try await TestHTTP.send(
        "POST", "\(mock.baseURL)/elevenlabs/v1/dubbing", headers: headers,
        json: #"{"target_lang":"es","source_url":"https://example.com/v.mp4"}"#)
      let id = try #require(try create.json()["dubbing_id"]?.stringValue)
      let url = "\(mock.baseURL)/elevenlabs/v1/dubbing/\(id)"
      await #expect(throws: (any Error).self) {
        try await TestHTTP.send("GET", url, headers: Self.elevenLabsKey)
      }
      let after = try await TestHTTP.send("GET", url, headers: Self.elevenLabsKey)
      #expect(try after.json()["status"] == "dubbed")
    }
  }

  // MARK: Stability

  @Test func stabilityHappyPath() async throws {
    try await withMockProvider { mock in
      let base = mock.baseURL
      let form = multipartBody(
        fields: [("seed", "0"), ("motion_bucket_id", "127")],
        files: [(name: "image", fileName: "in.png", bytes: [0x89, 0x50, 0x4E, 0x47])])
      var headers = Self.bearer
      headers["Content-Type"] = form.contentType
      headers["X-Mock-Scenario"] = "polls=2"
      let start = try await TestHTTP.send(
        "POST", "\(base)/stability/v2beta/image-to-video", headers: headers, body: form.body)
      #expect(start.status == 200)
      let id = try #require(try start.json()["id"]?.stringValue)
      #expect(id.count == 64)
      #expect(id.allSatisfy { $0.isHexDigit })

      let url = "\(base)/stability/v2beta/image-to-video/result/\(id)"
      for _ in 0..<2 {
        let running = try await TestHTTP.send("GET", url, headers: Self.bearer)
        #expect(running.status == 202)
        #expect(try running.json() == ["id": .string(id), "status": "in-progress"])
      }
      let video = try await TestHTTP.send("GET", url, headers: Self.bearer)
      #expect(video.status == 200)
      #expect(video.header("content-type") == "video/mp4")
      #expect(video.header("finish-reason") == "SUCCESS")
      #expect(video.header("seed") == "42")
      #expect(Array(video.body.prefix(12)) == [0, 0, 0, 0x18] + Array("ftypmp42".utf8))

      var jsonHeaders = Self.bearer
      jsonHeaders["Accept"] = "application/json"
      let encoded = try await TestHTTP.send("GET", url, headers: jsonHeaders).json()
      #expect(encoded["finish_reason"] == "SUCCESS")
      #expect(encoded["seed"] == 42)
      let decoded = Data(base64Encoded: encoded["video"]?.stringValue ?? "")
      #expect(decoded.map(Array.init) == video.body)
    }
  }

  @Test func stabilityFailureShapes() async throws {
    try await withMockProvider { mock in
      let base = mock.baseURL
      var headers = Self.bearer
      headers["X-Mock-Scenario"] = "polls=0;outcome=fail;reason=image: invalid dimensions"
      let start = try await TestHTTP.send(
        "POST", "\(base)/stability/v2beta/image-to-video", headers: headers, json: #"{"image":"x"}"#
      )
      let id = try #require(try start.json()["id"]?.stringValue)
      let failed = try await TestHTTP.send(
        "GET", "\(base)/stability/v2beta/image-to-video/result/\(id)", headers: Self.bearer)
      #expect(failed.status == 400)
      #expect(try failed.json()["name"] == "bad_request")
      #expect(try failed.json()["errors"] == ["image: invalid dimensions"])
      #expect(try failed.json()["id"] != .string(id))

      headers["X-Mock-Scenario"] = "polls=0;outcome=filtered"
      let filteredStart = try await TestHTTP.send(
        "POST", "\(base)/stability/v2beta/image-to-video", headers: headers, json: #"{"image":"x"}"#
      )
      let filteredID = try #require(try filteredStart.json()["id"]?.stringValue)
      let filtered = try await TestHTTP.send(
        "GET", "\(base)/stability/v2beta/image-to-video/result/\(filteredID)", headers: Self.bearer)
      #expect(filtered.status == 200)
      #expect(filtered.header("finish-reason") == "CONTENT_FILTERED")

      let unknown = try await TestHTTP.send(
        "GET",
        "\(base)/stability/v2beta/image-to-video/result/\(String(repeating: "0", count: 64))",
        headers: Self.bearer)
      #expect(unknown.status == 404)
      #expect(try unknown.json()["name"] == "not_found")
      #expect(try unknown.json()["errors"]?.arrayValue?.count == 1)
    }
  }

  @Test func stabilityRejectsMissingToken() async throws {
    try await withMockProvider { mock in
      let response = try await TestHTTP.send(
        "POST", "\(mock.baseURL)/stability/v2beta/image-to-video", json: #"{"image":"x"}"#)
      #expect(response.status == 401)
      #expect(try response.json()["name"] == "unauthorized")
    }
  }

  @Test func stabilitySlowStatus() async throws {
    try await withMockProvider { mock in
      var headers = Self.bearer
      headers["X-Mock-Scenario"] = "polls=1;fault=slow:400"
      let start = try await TestHTTP.send(
        "POST", "\(mock.baseURL)/stability/v2beta/image-to-video", headers: headers,
        json: #"{"image":"x"}"#)
      let id = try #require(try start.json()["id"]?.stringValue)
      let url = "\(mock.baseURL)/stability/v2beta/image-to-video/result/\(id)"
      let began = Date()
      let slow = try await TestHTTP.send("GET", url, headers: Self.bearer)
      #expect(Date().timeIntervalSince(began) >= 0.4)
      #expect(slow.status == 202)
      // Only the first poll is slowed (faults defaults to 1); the next one completes. Its speed
      // is not asserted, because wall-clock bounds fail on a loaded machine.
      let done = try await TestHTTP.send("GET", url, headers: Self.bearer)
      #expect(done.status == 200)
    }
  }

  // MARK: Scenarios and recording

  @Test func scenarioRejectsTypos() async throws {
    try await withMockProvider { mock in
      var headers = Self.bearer
      headers["X-Mock-Scenario"] = "pols=3"
      let typo = try await TestHTTP.send(
        "POST", "\(mock.baseURL)/luma/dream-machine/v1/generations", headers: headers, json: "{}")
      #expect(typo.status == 400)
      #expect(
        try typo.json()["detail"]?.stringValue?.contains("unknown X-Mock-Scenario key \"pols\"")
          == true)

      headers["X-Mock-Scenario"] = "outcome=abort"
      let unsupported = try await TestHTTP.send(
        "POST", "\(mock.baseURL)/luma/dream-machine/v1/generations", headers: headers, json: "{}")
      #expect(unsupported.status == 400)

      headers["X-Mock-Scenario"] = "fault=slow:soon"
      let badValue = try await TestHTTP.send(
        "POST", "\(mock.baseURL)/luma/dream-machine/v1/generations", headers: headers, json: "{}")
      #expect(badValue.status == 400)
    }
  }

  @Test func submitFaultThenSuccess() async throws {
    try await withMockProvider { mock in
      var headers = Self.bearer
      headers["X-Mock-Scenario"] = "submitfault=429"
      let url = "\(mock.baseURL)/stability/v2beta/image-to-video"
      let limited = try await TestHTTP.send("POST", url, headers: headers, json: #"{"image":"x"}"#)
      #expect(limited.status == 429)
      #expect(limited.header("retry-after") == "1")
      let accepted = try await TestHTTP.send("POST", url, headers: headers, json: #"{"image":"x"}"#)
      #expect(accepted.status == 200)
      #expect(mock.submitCount(provider: "stability-video") == 2)
      #expect(mock.submitCount(provider: "stability") == 2)

      mock.reset()
      #expect(mock.requests().isEmpty)
      #expect(mock.submitCount(provider: "stability") == 0)
    }
  }

  @Test func unknownStatusValue() async throws {
    try await withMockProvider { mock in
      var headers = Self.bearer
      headers["X-Mock-Scenario"] = "polls=1;status=WARMING_UP"
      let create = try await TestHTTP.send(
        "POST", "\(mock.baseURL)/luma/dream-machine/v1/generations", headers: headers, json: "{}")
      let id = try #require(try create.json()["id"]?.stringValue)
      let url = "\(mock.baseURL)/luma/dream-machine/v1/generations/\(id)"
      #expect(
        try await TestHTTP.send("GET", url, headers: Self.bearer).json()["state"] == "WARMING_UP")
      #expect(
        try await TestHTTP.send("GET", url, headers: Self.bearer).json()["state"] == "completed")
    }
  }

  // MARK: Webhook receiver

  @Test func webhookReceiverRecordsAndFails() async throws {
    let receiver = WebhookReceiver()
    try receiver.start()
    defer { receiver.stop() }
    #expect(receiver.url.hasSuffix("/hook"))

    let first = try await TestHTTP.send(
      "POST", receiver.url, headers: ["Webhook-Signature": "v1,abc"], json: #"{"task":"t1"}"#)
    #expect(first.status == 200)
    receiver.setStatus(500)
    let second = try await TestHTTP.send("POST", receiver.url, json: #"{"task":"t2"}"#)
    #expect(second.status == 500)

    let deliveries = await receiver.deliveries(count: 2, timeout: 5)
    #expect(deliveries.count == 2)
    #expect(deliveries.first?.headers["webhook-signature"] == "v1,abc")
    #expect(deliveries.first.map { String(decoding: $0.body, as: UTF8.self) } == #"{"task":"t1"}"#)
    #expect(deliveries.first?.path == "/hook")

    let began = Date()
    #expect(await receiver.deliveries(count: 3, timeout: 0.3).count == 2)
    #expect(Date().timeIntervalSince(began) >= 0.3)
  }
}
