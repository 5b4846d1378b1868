import Foundation
import MockProvider
import Support
import Testing

/// How to address one provider of the mock.
struct ProviderCase: CustomStringConvertible, Sendable {
  let id: String
  let path: String
  let headers: [String: String]
  let body: String
  /// A credential from `headers` that must never show up in responses, webhooks or logs.
  let secret: String

  var description: String { id }

  static let all: [ProviderCase] = [
    ProviderCase(
      id: "fal", path: "/fal/fal-ai/flux/dev",
      headers: ["Authorization": "Key fal-key-id:fal-secret-771"],
      body: #"{"prompt": "a cat riding a skateboard"}"#, secret: "fal-key-id:fal-secret-771"),
    ProviderCase(
      id: "replicate", path: "/replicate/v1/models/black-forest-labs/flux-schnell/predictions",
      headers: ["Authorization": "Bearer r8_replicate_secret_772"],
      body: #"{"input": {"prompt": "an astronaut riding a horse"}}"#,
      secret: "r8_replicate_secret_772"),
    ProviderCase(
      id: "runwayml", path: "/runway/v1/image_to_video",
      headers: [
        "Authorization": "Bearer key_runway_secret_773", "X-Runway-Version": "2024-11-06",
      ],
      body: #"{"model": "gen4", "promptImage": "https://example.com/a.jpg", "duration": 5}"#,
      secret: "key_runway_secret_773"),
    ProviderCase(
      id: "luma", path: "/luma/dream-machine/v1/generations",
      headers: ["Authorization": "Bearer luma_secret_774"],
      body: #"{"prompt": "a drone flyover of a mountain lake", "model": "ray-2"}"#,
      secret: "luma_secret_774"),
    ProviderCase(
      id: "elevenlabs-dubbing", path: "/elevenlabs/v1/dubbing",
      headers: ["xi-api-key": "el_secret_775", "Content-Type": "application/json"],
      body: #"{"source_url": "https://example.com/video.mp4", "target_lang": "es"}"#,
      secret: "el_secret_775"),
    ProviderCase(
      id: "stability-video", path: "/stability/v2beta/image-to-video",
      headers: ["Authorization": "Bearer sk-stability-secret-776"],
      body: #"{"image": "aGVsbG8=", "seed": 42}"#, secret: "sk-stability-secret-776"),
  ]
}

@Suite(.serialized) struct EndToEndProviderTests {
  /// Starts a mock, a webhook receiver and the service; runs `body`; stops everything.
  func withStack(
    _ body: (TestService, MockProviderServer, WebhookReceiver) async throws -> Void
  ) async throws {
    let mock = MockProviderServer()
    try mock.start()
    let receiver = WebhookReceiver()
    try receiver.start()
    let service = try TestService()
    defer {
      service.stop()
      mock.stop()
      receiver.stop()
    }
    try await body(service, mock, receiver)
  }

  func taskFields(
    _ provider: ProviderCase, mock: MockProviderServer, receiver: WebhookReceiver,
    scenario: String
  ) -> JSONValue {
    var headers = provider.headers.mapValues { JSONValue.string($0) }
    headers["X-Mock-Scenario"] = .string(scenario)
    return [
      "targetUrl": .string(mock.baseURL + provider.path), "method": "POST",
      "headers": .object(headers), "body": .string(provider.body),
      "provider": .string(provider.id), "onCompleteUrl": .string(receiver.url),
    ]
  }

  @Test(arguments: ProviderCase.all)
  func providerJobCompletes(provider: ProviderCase) async throws {
    try await withStack { service, mock, receiver in
      let id = try await service.createTask(
        taskFields(provider, mock: mock, receiver: receiver, scenario: "polls=2"))
      let task = try await service.waitForEnd(id)
      #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
      #expect(task["pollCount"]?.intValue ?? 0 >= 2)
      #expect(task["providerJob"]?.objectValue?.isEmpty == false)
      let finalStatus: [String: String] = [
        "fal": "COMPLETED", "replicate": "succeeded", "runwayml": "SUCCEEDED", "luma": "completed",
        "elevenlabs-dubbing": "dubbed",
      ]
      if let expected = finalStatus[provider.id] {
        #expect(task["providerStatus"]?.stringValue == expected)
      }
      let result = task["result"] ?? .null
      try await checkResult(provider.id, result, service: service, id: id)

      let deliveries = await receiver.deliveries(count: 1, timeout: 10)
      #expect(deliveries.count == 1)
      let webhook = try #require(deliveries.first.flatMap(verifiedWebhook))
      #expect(webhook["event"]?.stringValue == "task.completed")
      #expect(webhook["task"]?["id"]?.stringValue == id)
      #expect(webhook["task"]?["result"] == result)
      #expect(deliveries.first?.headers["x-asyncqueue-task-id"] == id)

      let body = String(decoding: deliveries.first?.body ?? [], as: UTF8.self)
      #expect(!body.contains(provider.secret))
      #expect(!task.serialized().contains(provider.secret))
      #expect(!service.logLines.all.joined(separator: "\n").contains(provider.secret))

      let polls = mock.requests().filter { $0.method == "GET" }
      #expect(!polls.isEmpty)
      for poll in polls {
        let forwarded = provider.headers.filter { $0.key.lowercased() != "content-type" }
        for (name, value) in forwarded {
          #expect(poll.headers[name.lowercased()] == value, "\(name) not forwarded on \(poll.path)")
        }
      }
      #expect(mock.submitCount(provider: provider.id == "runwayml" ? "runwayml" : provider.id) == 1)
    }
  }

  func checkResult(_ provider: String, _ result: JSONValue, service: TestService, id: String)
    async throws
  {
    switch provider {
    case "fal":
      #expect(result["images"]?.arrayValue?.isEmpty == false, "\(result.serialized())")
    case "replicate", "runwayml":
      let urls = result.arrayValue ?? []
      #expect(!urls.isEmpty, "\(result.serialized())")
      #expect(urls.allSatisfy { $0.stringValue?.hasPrefix("http") == true })
    case "luma":
      #expect(result.stringValue?.hasPrefix("http") == true, "\(result.serialized())")
    case "elevenlabs-dubbing", "stability-video":
      let expectedType = provider == "stability-video" ? "video/mp4" : "audio/mpeg"
      #expect(result["contentType"]?.stringValue == expectedType, "\(result.serialized())")
      let url = try #require(result["url"]?.stringValue)
      #expect(url == service.baseURL + "/v1/tasks/\(id)/result")
      let file = try await service.raw("/v1/tasks/\(id)/result")
      #expect(file.statusCode == 200)
      #expect(file.headers["content-type"] == expectedType)
      #expect(file.body.count == result["size"]?.intValue)
      #expect(file.body.count > 100)
    default:
      Issue.record("no result check for \(provider)")
    }
  }

  @Test(arguments: ProviderCase.all)
  func providerFailureCarriesReason(provider: ProviderCase) async throws {
    try await withStack { service, mock, receiver in
      let id = try await service.createTask(
        taskFields(
          provider, mock: mock, receiver: receiver,
          scenario: "polls=1;outcome=fail;reason=mock-failure-reason-\(provider.id)"))
      let task = try await service.waitForEnd(id)
      #expect(task["status"]?.stringValue == "failed", "\(task.serialized())")
      let error = task["error"]?.stringValue ?? ""
      #expect(error.contains("mock-failure-reason-\(provider.id)"), "error was: \(error)")
      #expect(task["errorCode"]?.stringValue == "provider_error")

      let deliveries = await receiver.deliveries(count: 1, timeout: 10)
      let webhook = try #require(deliveries.first.flatMap(verifiedWebhook))
      #expect(webhook["event"]?.stringValue == "task.failed")
    }
  }

  @Test func customPollConfigCompletes() async throws {
    try await withStack { service, mock, receiver in
      let id = try await service.createTask([
        "targetUrl": .string(mock.baseURL + "/replicate/v1/predictions"),
        "headers": ["Authorization": "Bearer r8_custom_secret_777", "X-Mock-Scenario": "polls=2"],
        "body": #"{"version": "abc", "input": {"prompt": "x"}}"#,
        "pollConfig": [
          "urlTemplate": .string(mock.baseURL + "/replicate/v1/predictions/{startResult.body.id}"),
          "statusPath": "status", "doneValues": ["succeeded"],
          "failValues": ["failed", "canceled"], "resultPath": "output", "errorPath": "error",
          "interval": 1, "maxDuration": 60,
        ],
        "onCompleteUrl": .string(receiver.url),
      ])
      let task = try await service.waitForEnd(id)
      #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
      #expect(task["result"]?.arrayValue?.isEmpty == false)
      let deliveries = await receiver.deliveries(count: 1, timeout: 10)
      #expect(deliveries.first.flatMap(verifiedWebhook)?["event"]?.stringValue == "task.completed")
    }
  }

  @Test func jobThatNeverEndsTimesOut() async throws {
    try await withStack { service, mock, receiver in
      // Stability answers 202 forever: the task must still end at maxDuration (600 s, scaled
      // by the test service's delay scale to 6 s).
      let stability = ProviderCase.all.first { $0.id == "stability-video" }!
      let id = try await service.createTask(
        taskFields(stability, mock: mock, receiver: receiver, scenario: "polls=100000"))
      let task = try await service.waitForEnd(id, timeout: 40)
      #expect(task["status"]?.stringValue == "timeout", "\(task.serialized())")
      let deliveries = await receiver.deliveries(count: 1, timeout: 10)
      #expect(deliveries.first.flatMap(verifiedWebhook)?["event"]?.stringValue == "task.timeout")
    }
  }

  @Test func transientPollFaultsAreRetried() async throws {
    try await withStack { service, mock, receiver in
      let runway = ProviderCase.all.first { $0.id == "runwayml" }!
      let id = try await service.createTask(
        taskFields(runway, mock: mock, receiver: receiver, scenario: "polls=2;fault=500;faults=2"))
      let task = try await service.waitForEnd(id)
      #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
      #expect(task["pollErrors"]?.intValue == 2)
    }
  }
}
