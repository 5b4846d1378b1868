import Foundation
import MockProvider
import Storage
import Support
import Testing

@Suite(.serialized) struct EndToEndExternalTests {
  @Test func vaultTokenIsReplacedAtSendTime() async throws {
    let mock = MockProviderServer()
    try mock.start()
    let service = try TestService()
    defer {
      service.stop()
      mock.stop()
    }
    let secret = "Key fal-vault-secret-4455667788"
    let (created, tokenJSON) = try await service.call(
      "POST", "/v1/tokens",
      body: JSONValue.object(["name": "fal key", "value": .string(secret)]).serialized())
    #expect(created == 201)
    let tokenId = try #require(tokenJSON["token"]?["id"]?.stringValue)
    #expect(tokenId.hasPrefix("tok_"))
    #expect(!tokenJSON.serialized().contains("fal-vault-secret"))

    let fal = ProviderCase.all.first { $0.id == "fal" }!
    let id = try await service.createTask([
      "targetUrl": .string(mock.baseURL + fal.path), "provider": "fal",
      "headers": ["Authorization": .string(tokenId), "X-Mock-Scenario": "polls=1"],
      "body": .string(fal.body),
    ])
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
    let sent = mock.requests().filter { $0.provider == "fal" }
    #expect(!sent.isEmpty)
    #expect(sent.allSatisfy { $0.headers["authorization"] == secret })
    #expect(!service.logLines.all.joined().contains("fal-vault-secret"))

    let stored = try TestDatabase.storedBytes(dataDirectory: service.dataDirectory)
    #expect(!stored.isEmpty)
    #expect(stored.range(of: Data("fal-vault-secret".utf8)) == nil, "secret stored in plain text")

    let (listed, list) = try await service.call("GET", "/v1/tokens")
    #expect(listed == 200)
    #expect(list["tokens"]?.arrayValue?.first?["id"]?.stringValue == tokenId)
    #expect(!list.serialized().contains("fal-vault-secret"))

    let (unknown, error) = try await service.call(
      "POST", "/v1/tasks",
      body: JSONValue.object([
        "targetUrl": .string(mock.baseURL + fal.path), "provider": "fal",
        "headers": ["Authorization": "tok_doesnotexist"],
      ]).serialized())
    #expect(unknown == 400)
    #expect(error["code"]?.stringValue == "token_not_found")

    let (deleted, _) = try await service.call("DELETE", "/v1/tokens/\(tokenId)")
    #expect(deleted == 200)
    let (gone, _) = try await service.call("GET", "/v1/tokens/\(tokenId)")
    #expect(gone == 404)
  }

  @Test func signalCompletesWaitingTask() async throws {
    let target = WebhookReceiver()
    try target.start()
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
    }
    let (status, created) = try await service.call(
      "POST", "/v1/tasks",
      body: JSONValue.object([
        "targetUrl": .string(target.url), "waitForSignal": true, "maxWaitTime": 3600,
      ]).serialized())
    #expect(status == 201)
    let id = try #require(created["task"]?["id"]?.stringValue)
    let token = try #require(created["signalToken"]?.stringValue)
    #expect(token.count == 64)

    var waiting = false
    for _ in 0..<200 where !waiting {
      let (_, json) = try await service.call("GET", "/v1/tasks/\(id)")
      waiting = json["task"]?["status"]?.stringValue == "waiting"
      if !waiting { try await Task.sleep(for: .milliseconds(10)) }
    }
    #expect(waiting)
    let (_, fetched) = try await service.call("GET", "/v1/tasks/\(id)")
    #expect(fetched["task"]?["signalToken"] == nil, "the token is shown only at create")

    let (signalled, answer) = try await service.call(
      "POST", "/v1/signals/\(token)",
      body: #"{"status": "completed", "result": {"approved": true}}"#,
      key: nil)
    #expect(signalled == 200, "\(answer.serialized())")
    #expect(answer["status"]?.stringValue == "completed")
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "completed")
    #expect(task["result"]?["approved"]?.boolValue == true)

    let (again, _) = try await service.call(
      "POST", "/v1/signals/\(token)", body: #"{"status": "completed"}"#, key: nil)
    #expect(again == 404)
  }

  @Test func signalCanFailTask() async throws {
    let target = WebhookReceiver()
    try target.start()
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
    }
    let (_, created) = try await service.call(
      "POST", "/v1/tasks",
      body: JSONValue.object([
        // The default maxWaitTime (30 s) is 0.3 s at the test's delay scale, which a loaded
        // machine can spend between the call and the signal.
        "targetUrl": .string(target.url), "waitForSignal": true, "maxWaitTime": 3600,
      ]).serialized())
    let id = try #require(created["task"]?["id"]?.stringValue)
    let token = try #require(created["signalToken"]?.stringValue)
    _ = await target.deliveries(count: 1, timeout: 10)
    _ = try await service.call(
      "POST", "/v1/signals/\(token)",
      body: #"{"status": "failed", "error": "rejected by reviewer"}"#,
      key: nil)
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "failed")
    #expect(task["error"]?.stringValue == "rejected by reviewer")
    #expect(task["errorCode"]?.stringValue == "signal_failed")
  }

  @Test func waitingTaskTimesOutWithoutSignal() async throws {
    let target = WebhookReceiver()
    try target.start()
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
    }
    // maxWaitTime 30 s at the test's 0.01 delay scale is 0.3 s.
    let id = try await service.createTask([
      "targetUrl": .string(target.url), "waitForSignal": true, "maxWaitTime": 30,
    ])
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "timeout", "\(task.serialized())")
    #expect(task["error"]?.stringValue?.contains("no signal") == true)
  }

  @Test func callbackCompletesPlainCall() async throws {
    let target = WebhookReceiver()
    try target.start()
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
    }
    let (_, created) = try await service.call(
      "POST", "/v1/tasks",
      body: JSONValue.object([
        "targetUrl": .string(target.url), "maxWaitTime": 3600,
        "body": #"{"webhook": "{asyncqueue_callback_url}"}"#,
      ]).serialized())
    let id = try #require(created["task"]?["id"]?.stringValue)
    let callbackUrl = try #require(created["callbackUrl"]?.stringValue)
    #expect(callbackUrl.hasPrefix(service.baseURL + "/v1/callbacks/"))

    let calls = await target.deliveries(count: 1, timeout: 10)
    let sentBody = try JSONValue.parse(calls.first?.body ?? [])
    #expect(sentBody["webhook"]?.stringValue == callbackUrl)

    let path = String(callbackUrl.dropFirst(service.baseURL.count))
    let (status, _) = try await service.call(
      "POST", path, body: #"{"status": "succeeded", "output": ["https://cdn.example/x.png"]}"#,
      key: nil)
    #expect(status == 200)
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "completed")
    #expect(task["result"]?["output"]?.arrayValue?.count == 1)
    let (again, _) = try await service.call("POST", path, body: "{}", key: nil)
    #expect(again == 404)
  }

  @Test func providerCallbackWinsOverPolling() async throws {
    let mock = MockProviderServer()
    try mock.start()
    let service = try TestService(delayScale: 0.05)
    defer {
      service.stop()
      mock.stop()
    }
    let replicate = ProviderCase.all.first { $0.id == "replicate" }!
    let (_, created) = try await service.call(
      "POST", "/v1/tasks",
      body: JSONValue.object([
        "targetUrl": .string(mock.baseURL + replicate.path), "provider": "replicate",
        "headers": [
          "Authorization": "Bearer r8_callback_secret_1", "X-Mock-Scenario": "polls=100000",
        ],
        "body": #"{"input": {"prompt": "x"}, "webhook": "{asyncqueue_callback_url}"}"#,
      ]).serialized())
    let id = try #require(created["task"]?["id"]?.stringValue)
    let callbackUrl = try #require(created["callbackUrl"]?.stringValue)
    var polled = false
    for _ in 0..<200 where !polled {
      let (_, json) = try await service.call("GET", "/v1/tasks/\(id)")
      polled = (json["task"]?["pollCount"]?.intValue ?? 0) >= 1
      if !polled { try await Task.sleep(for: .milliseconds(10)) }
    }
    #expect(polled, "polling runs as the fallback until the callback arrives")
    let path = String(callbackUrl.dropFirst(service.baseURL.count))
    let (status, _) = try await service.call(
      "POST", path,
      body: #"{"id": "p1", "status": "succeeded", "output": ["https://cdn.example/y.png"]}"#,
      key: nil)
    #expect(status == 200)
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "completed")
    #expect(task["result"]?["status"]?.stringValue == "succeeded")
  }

  @Test func finishedTaskRejectsLateCallback() async throws {
    let mock = MockProviderServer()
    try mock.start()
    let service = try TestService()
    defer {
      service.stop()
      mock.stop()
    }
    let replicate = ProviderCase.all.first { $0.id == "replicate" }!
    let (_, created) = try await service.call(
      "POST", "/v1/tasks",
      body: JSONValue.object([
        "targetUrl": .string(mock.baseURL + replicate.path), "provider": "replicate",
        "headers": ["Authorization": "Bearer r8_callback_secret_2", "X-Mock-Scenario": "polls=1"],
        "body": #"{"input": {"prompt": "x"}, "webhook": "{asyncqueue_callback_url}"}"#,
      ]).serialized())
    let id = try #require(created["task"]?["id"]?.stringValue)
    let callbackUrl = try #require(created["callbackUrl"]?.stringValue)
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "completed")
    let polledResult = task["result"]
    let path = String(callbackUrl.dropFirst(service.baseURL.count))
    let (status, _) = try await service.call("POST", path, body: #"{"late": true}"#, key: nil)
    #expect(status == 409)
    let (_, after) = try await service.call("GET", "/v1/tasks/\(id)")
    #expect(after["task"]?["result"] == polledResult, "the first outcome stands")
  }

  @Test func earlySignalWaitsForTheCall() async throws {
    let target = WebhookReceiver()
    try target.start()
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
    }
    let due = Timestamp.iso8601(seconds: Timestamp.now() + 1)
    let (_, created) = try await service.call(
      "POST", "/v1/tasks",
      body: JSONValue.object([
        "targetUrl": .string(target.url), "waitForSignal": true, "maxWaitTime": 3600,
        "delayUntil": .string(due),
      ]).serialized())
    let id = try #require(created["task"]?["id"]?.stringValue)
    let token = try #require(created["signalToken"]?.stringValue)
    let (status, _) = try await service.call(
      "POST", "/v1/signals/\(token)", body: #"{"status": "completed", "result": {"early": true}}"#,
      key: nil)
    #expect(status == 200 || status == 202)
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "completed")
    #expect(task["result"]?["early"]?.boolValue == true)
    #expect(target.deliveries().count == 1, "the call must still be made")
  }

  @Test func callbackPlaceholderInObjectBody() async throws {
    let target = WebhookReceiver()
    try target.start()
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
    }
    let (_, created) = try await service.call(
      "POST", "/v1/tasks",
      body: JSONValue.object([
        "targetUrl": .string(target.url), "body": ["notifyUrl": "{asyncqueue_callback_url}"],
      ]).serialized())
    let callbackUrl = try #require(created["callbackUrl"]?.stringValue)
    let calls = await target.deliveries(count: 1, timeout: 10)
    let sent = try JSONValue.parse(calls.first?.body ?? [])
    #expect(sent["notifyUrl"]?.stringValue == callbackUrl)
  }

  @Test func echoedVaultSecretIsScrubbed() async throws {
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
    func token(_ value: String) async throws -> String {
      let (_, json) = try await service.call(
        "POST", "/v1/tokens",
        body: JSONValue.object(["name": "t", "value": .string(value)]).serialized())
      return json["token"]?["id"]?.stringValue ?? ""
    }
    let auth = try await token("Bearer r8_VAULTECHO_SECRET_123")
    // The mock puts the scenario's reason into its error, so the provider echoes the secret.
    let scenario = try await token(
      "polls=1;outcome=fail;reason=key r8_VAULTECHO_SECRET_123 rejected")
    let replicate = ProviderCase.all.first { $0.id == "replicate" }!
    let id = try await service.createTask([
      "targetUrl": .string(mock.baseURL + replicate.path), "provider": "replicate",
      "headers": ["Authorization": .string(auth), "X-Mock-Scenario": .string(scenario)],
      "body": .string(replicate.body), "onCompleteUrl": .string(receiver.url),
    ])
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "failed")
    #expect(task["error"]?.stringValue?.contains("***") == true, "\(task.serialized())")
    #expect(!task.serialized().contains("VAULTECHO"))
    let webhooks = await receiver.deliveries(count: 1, timeout: 10)
    let webhookText = String(decoding: webhooks.first?.body ?? [], as: UTF8.self)
    #expect(!webhookText.contains("VAULTECHO"))
    #expect(!service.logLines.all.joined().contains("VAULTECHO"))
  }

  @Test func repeatedCreateShowsSignalTokenAgain() async throws {
    let target = WebhookReceiver()
    try target.start()
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
    }
    let body = JSONValue.object([
      "targetUrl": .string(target.url), "waitForSignal": true, "maxWaitTime": 3600,
    ]).serialized()
    let headers = [("Idempotency-Key", "signal-once")]
    let (first, created) = try await service.call("POST", "/v1/tasks", body: body, headers: headers)
    let (second, repeated) = try await service.call(
      "POST", "/v1/tasks", body: body, headers: headers)
    #expect(first == 201)
    #expect(second == 200)
    let token = try #require(created["signalToken"]?.stringValue)
    #expect(repeated["signalToken"]?.stringValue == token)
  }
}
