import Foundation
import MockProvider
import Support
import Testing

@Suite(.serialized) struct EndToEndAPITests {
  @Test func plainCallCompletesWithResponse() async throws {
    let target = WebhookReceiver()
    try target.start()
    let hook = WebhookReceiver()
    try hook.start()
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
      hook.stop()
    }
    let id = try await service.createTask([
      "targetUrl": .string(target.url), "method": "POST", "body": #"{"n": 1}"#,
      "headers": ["X-Custom": "yes"], "onCompleteUrl": .string(hook.url),
    ])
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "completed")
    #expect(task["result"]?["statusCode"]?.intValue == 200)
    #expect(task["result"]?["duration"]?.intValue != nil)

    let calls = target.deliveries()
    #expect(calls.count == 1)
    #expect(calls.first?.method == "POST")
    #expect(calls.first?.headers["x-custom"] == "yes")
    #expect(calls.first?.headers["idempotency-key"] == id)
    #expect(String(decoding: calls.first?.body ?? [], as: UTF8.self) == #"{"n": 1}"#)
    #expect(calls.first.flatMap(verifiedWebhook) != nil, "call signature must verify")

    let webhooks = await hook.deliveries(count: 1, timeout: 10)
    #expect(webhooks.first.flatMap(verifiedWebhook)?["event"]?.stringValue == "task.completed")
  }

  @Test func plainCallRetriesServerErrorsThenFails() async throws {
    let target = WebhookReceiver()
    try target.start()
    target.setStatus(503)
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
    }
    let id = try await service.createTask([
      "targetUrl": .string(target.url), "maxRetries": 2, "retryBackoff": "linear",
    ])
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "failed")
    #expect(task["retryCount"]?.intValue == 2)
    #expect(task["result"]?["statusCode"]?.intValue == 503)
    #expect(target.deliveries().count == 3)
  }

  @Test func clientErrorCompletesWithoutRetry() async throws {
    let target = WebhookReceiver()
    try target.start()
    target.setStatus(404)
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
    }
    let id = try await service.createTask(["targetUrl": .string(target.url)])
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "completed")
    #expect(task["result"]?["statusCode"]?.intValue == 404)
    #expect(target.deliveries().count == 1)
  }

  @Test func missingOrWrongKeyGets401() async throws {
    let service = try TestService()
    defer { service.stop() }
    let (missing, body) = try await service.call("GET", "/v1/tasks", key: nil)
    #expect(missing == 401)
    #expect(body["code"]?.stringValue == "unauthorized")
    let (wrong, _) = try await service.call("POST", "/v1/tasks", body: "{}", key: "nope-0000000")
    #expect(wrong == 401)
    let (viaHeader, _) = try await service.call(
      "GET", "/v1/tasks", key: nil, headers: [("X-API-Key", TestService.apiKey)])
    #expect(viaHeader == 200)
  }

  @Test func validationErrorsName400() async throws {
    let service = try TestService()
    defer { service.stop() }
    let cases: [(String, String, String)] = [
      (#"{"targetUrl": "#, "invalid_json", "JSON"),
      (#"{"method": "GET"}"#, "missing_field", "targetUrl"),
      (#"{"targetUrl": "file:///etc/passwd"}"#, "invalid_field", "targetUrl"),
      (#"{"targetUrl": "https://x.example", "method": "FETCH"}"#, "invalid_field", "method"),
      (
        #"{"targetUrl": "https://x.example", "provider": "dalle"}"#, "unknown_provider",
        "stability-video"
      ),
      (
        #"{"targetUrl": "https://x.example", "provider": "fal", "pollConfig": {"urlTemplate": "u", "statusPath": "s", "doneValues": [], "failValues": []}}"#,
        "conflicting_fields", "pollConfig"
      ),
      (
        #"{"targetUrl": "https://x.example", "pollConfig": {"urlTemplate": "u", "statusPath": "s", "doneValues": []}}"#,
        "invalid_poll_config", "failValues"
      ),
    ]
    for (body, code, mention) in cases {
      let (status, json) = try await service.call("POST", "/v1/tasks", body: body)
      #expect(status == 400, "\(body)")
      #expect(json["code"]?.stringValue == code, "\(body) → \(json.serialized())")
      #expect(json["error"]?.stringValue?.contains(mention) == true, "\(json.serialized())")
    }
    let (_, list) = try await service.call("GET", "/v1/tasks")
    #expect(list["pagination"]?["total"]?.intValue == 0, "nothing invalid may be stored")
  }

  @Test func oversizeBodyGets413() async throws {
    let service = try TestService()
    defer { service.stop() }
    let big = String(repeating: "a", count: 2 << 20)
    let (status, json) = try await service.call(
      "POST", "/v1/tasks", body: #"{"targetUrl": "https://x.example", "body": "\#(big)"}"#)
    #expect(status == 413)
    #expect(json["code"]?.stringValue == "payload_too_large")
  }

  @Test func providersListShowsTemplates() async throws {
    let service = try TestService()
    defer { service.stop() }
    let (status, json) = try await service.call("GET", "/v1/providers", key: nil)
    #expect(status == 200)
    let providers = json["providers"]?.arrayValue ?? []
    let ids = providers.compactMap { $0["id"]?.stringValue }
    #expect(
      ids == ["elevenlabs-dubbing", "fal", "luma", "replicate", "runwayml", "stability-video"])
    let fal = try #require(providers.first { $0["id"]?.stringValue == "fal" })
    #expect(fal["pollConfig"]?["interval"]?.intValue == 3)
    #expect(fal["pollConfig"]?["maxDuration"]?.intValue == 600)
    #expect(fal["file"]?.stringValue?.hasSuffix("providers/fal.lua") == true)
    let eleven = try #require(providers.first { $0["id"]?.stringValue == "elevenlabs-dubbing" })
    #expect(eleven["pollConfig"]?["interval"]?.intValue == 10)
    #expect(eleven["pollConfig"]?["maxDuration"]?.intValue == 1800)
    let (one, single) = try await service.call("GET", "/v1/providers/luma", key: nil)
    #expect(one == 200)
    #expect(single["provider"]?["pollConfig"]?["statusPath"]?.stringValue == "state")
  }

  @Test func privateTargetRefusedWithoutFlag() async throws {
    let service = try TestService(allowPrivateNetwork: false)
    defer { service.stop() }
    for url in [
      "http://127.0.0.1:9/never", "http://localhost:9/", "http://[::1]:9/", "http://10.0.0.8/",
    ] {
      let (status, json) = try await service.call(
        "POST", "/v1/tasks", body: JSONValue.object(["targetUrl": .string(url)]).serialized())
      #expect(status == 400, "\(url)")
      #expect(json["code"]?.stringValue == "address_not_allowed")
      #expect(json["error"]?.stringValue?.contains("allow-private-network") == true)
    }
    // A form of 127.0.0.1 that only the connection-time check recognises.
    let id = try await service.createTask([
      "targetUrl": "http://0x7f000001:9/never", "maxRetries": 0,
    ])
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "failed")
    #expect(task["errorCode"]?.stringValue == "address_not_allowed")
    #expect(task["error"]?.stringValue?.contains("allow-private-network") == true)
  }

  @Test func unknownTaskIs404() async throws {
    let service = try TestService()
    defer { service.stop() }
    let (status, json) = try await service.call("GET", "/v1/tasks/\(UUID().uuidString)")
    #expect(status == 404)
    #expect(json["code"]?.stringValue == "not_found")
  }
}
