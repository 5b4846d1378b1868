import API
import Foundation
import MockProvider
import Storage
import Support
import Testing

@Suite(.serialized) struct EndToEndHardeningTests {
  @Test func scriptErrorNeverEchoesCredentials() async throws {
    let overrides = temporaryDirectory("leaky-template")
    try """
    -- Builds a status URL that can never be sent, with the credential inside it.
    return {
      id = "leaky", name = "Leaky",
      pollConfig = { interval = 1, maxDuration = 60 },
      on_submit = function(ctx) return { state = "polling", job = {} } end,
      poll = function(ctx)
        return { method = "GET", url = "ftp://x/" .. ctx.task.headers.Authorization,
                 headers = ctx.task.headers }
      end,
      on_poll = function(ctx) return { state = "running" } end,
    }
    """.write(toFile: overrides + "/leaky.lua", atomically: true, encoding: .utf8)
    let receiver = WebhookReceiver()
    try receiver.start()
    let service = try TestService(providerDirectories: [overrides])
    defer {
      service.stop()
      receiver.stop()
    }
    let secret = "Key leak-check-secret-98765"
    let id = try await service.createTask([
      "targetUrl": .string(receiver.url), "provider": "leaky",
      "headers": ["Authorization": .string(secret)], "onCompleteUrl": .string(receiver.url),
    ])
    let task = try await service.waitForEnd(id)
    #expect(task["errorCode"]?.stringValue == "script_error")
    #expect(!task.serialized().contains("leak-check-secret"), "\(task.serialized())")
    let webhooks = await receiver.deliveries(count: 2, timeout: 10)
    for webhook in webhooks {
      #expect(!String(decoding: webhook.body, as: UTF8.self).contains("leak-check-secret"))
    }
    #expect(!service.logLines.all.joined().contains("leak-check-secret"))
  }

  @Test func urlPasswordIsMasked() async throws {
    let service = try TestService()
    defer { service.stop() }
    let id = try await service.createTask([
      "targetUrl": "https://user:hunter2-password@x.example/path",
      "delayUntil": "2099-01-01T00:00:00Z",
    ])
    let (_, json) = try await service.call("GET", "/v1/tasks/\(id)")
    #expect(json["task"]?["targetUrl"]?.stringValue == "https://user:***@x.example/path")
  }

  @Test func badRequestsAreRejectedAtCreate() async throws {
    let service = try TestService()
    defer { service.stop() }
    let cases: [(JSONValue, String)] = [
      (["targetUrl": "https://x.example", "headers": ["Content-Length": "5"]], "Content-Length"),
      (["targetUrl": "https://x.example", "headers": ["Host": "evil.example"]], "Host"),
      (["targetUrl": "https://x.example", "headers": ["X-A": "a\u{0}b"]], "X-A"),
      (["targetUrl": "http://x.example/a b"], "targetUrl"),
      (["targetUrl": "http://x.example:99999/"], "targetUrl"),
      (["targetUrl": "https://x.example", "delayUntil": "2027-02-30T00:00:00Z"], "delayUntil"),
      (["targetUrl": "https://x.example", "waitForSignal": "yes"], "waitForSignal"),
      (["targetUrl": "https://x.example", "maxWaitTime": "banana"], "maxWaitTime"),
      (
        [
          "targetUrl": "https://x.example",
          "pollConfig": [
            "urlTemplate": "ftp://x/{startResult.body.id}", "statusPath": "s",
            "doneValues": ["ok"], "failValues": [],
          ],
        ], "urlTemplate"
      ),
      (
        [
          "targetUrl": "https://x.example",
          "pollConfig": [
            "urlTemplate": "https://x/{startResult.body.id}", "statusPath": "s",
            "doneValues": [], "failValues": [],
          ],
        ], "doneValues"
      ),
    ]
    for (body, field) in cases {
      let (status, json) = try await service.call("POST", "/v1/tasks", body: body.serialized())
      #expect(status == 400, "\(body.serialized())")
      #expect(json["error"]?.stringValue?.contains(field) == true, "\(json.serialized())")
    }
    let (_, list) = try await service.call("GET", "/v1/tasks")
    #expect(list["pagination"]?["total"]?.intValue == 0)
  }

  @Test func binaryPlainResponseIsBase64() async throws {
    let mock = MockProviderServer()
    try mock.start()
    let service = try TestService()
    defer {
      service.stop()
      mock.stop()
    }
    let id = try await service.createTask([
      "targetUrl": .string(mock.baseURL + "/files/stability/abc/video.mp4"), "method": "GET",
    ])
    let task = try await service.waitForEnd(id)
    let result = task["result"] ?? .null
    #expect(result["statusCode"]?.intValue == 200, "\(task.serialized())")
    #expect(result["bodyEncoding"]?.stringValue == "base64")
    let decoded = Data(base64Encoded: result["body"]?.stringValue ?? "") ?? Data()
    #expect(decoded.count > 100)
  }

  @Test func secondServiceOnSameDataDirectoryIsRefused() throws {
    let data = temporaryDirectory("locked")
    let first = try TestService(dataDirectory: data)
    defer { first.stop() }
    #expect(throws: (any Error).self) { _ = try TestService(dataDirectory: data) }
  }

  @Test func failedFirstStartStoresNoKey() throws {
    let data = temporaryDirectory("first-start")
    let holder = try TestService()
    defer { holder.stop() }
    var options = ServiceOptions()
    options.port = holder.service.port  // already taken
    options.dataDirectory = data
    options.builtinProvidersDirectory = repositoryRoot + "/providers"
    options.database = try TestDatabase.database(forDataDirectory: data)
    let service = try Service(options: options, logger: Logger(sink: { _ in }))
    #expect(service.generatedAPIKey != nil)
    #expect(throws: (any Error).self) { try service.start() }
    service.stop()
    #expect(try openTestStore(data).apiKeyCount() == 0)
  }
}
