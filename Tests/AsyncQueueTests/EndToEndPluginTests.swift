import Foundation
import MockProvider
import Support
import Testing

/// The shipped plugins and plugin isolation, against a real service and the mock provider.
@Suite(.serialized) struct EndToEndPluginTests {
  func withStack(
    plugins: [String: JSONValue], pluginScripts: [String: String] = [:],
    allowPrivateNetwork: Bool = true,
    _ body: (TestService, MockProviderServer, WebhookReceiver) async throws -> Void
  ) async throws {
    let directory = temporaryDirectory("plugins")
    for (name, source) in pluginScripts { try writeScript(directory, name, source) }
    let mock = MockProviderServer()
    try mock.start()
    let receiver = WebhookReceiver()
    try receiver.start()
    let service = try TestService(
      allowPrivateNetwork: allowPrivateNetwork, pluginDirectories: [directory], plugins: plugins)
    defer {
      service.stop()
      mock.stop()
      receiver.stop()
    }
    try await body(service, mock, receiver)
  }

  func taskFields(_ providerId: String, mock: MockProviderServer, scenario: String = "polls=1")
    -> JSONValue
  {
    let provider = ProviderCase.all.first { $0.id == providerId }!
    var headers = provider.headers.mapValues { JSONValue.string($0) }
    headers["X-Mock-Scenario"] = .string(scenario)
    return [
      "targetUrl": .string(mock.baseURL + provider.path), "method": "POST",
      "headers": .object(headers), "body": .string(provider.body),
      "provider": .string(provider.id),
    ]
  }

  // MARK: result-archive

  @Test(arguments: ["replicate", "runwayml", "luma", "fal"])
  func resultArchiveStoresMediaFiles(provider: String) async throws {
    try await withStack(plugins: ["result-archive": ["enabled": true]]) {
      service, mock, receiver in
      var fields = taskFields(provider, mock: mock).objectValue!
      fields["onCompleteUrl"] = .string(receiver.url)
      let id = try await service.createTask(.object(fields))
      let task = try await service.waitForEnd(id)
      #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
      let result = task["result"] ?? .null
      let archived = try #require(result["archivedFiles"]?.arrayValue, "\(result.serialized())")
      #expect(archived.count == 1)
      #expect(result["archiveErrors"] == nil)

      let file = try #require(archived.first)
      let name = try #require(file["name"]?.stringValue)
      #expect(file["url"]?.stringValue == "\(service.baseURL)/v1/tasks/\(id)/files/\(name)")
      #expect(file["sourceUrl"]?.stringValue?.hasPrefix(mock.baseURL + "/files/") == true)
      let download = try await service.raw("/v1/tasks/\(id)/files/\(name)")
      #expect(download.statusCode == 200)
      #expect(download.body.count == file["size"]?.intValue)
      #expect(download.headers["content-type"] == file["contentType"]?.stringValue)

      // The original output stays in the result: an object result keeps its keys, any other
      // result moves under "value".
      switch provider {
      case "fal": #expect(result["images"]?.arrayValue?.isEmpty == false)
      case "luma": #expect(result["value"]?.stringValue == file["sourceUrl"]?.stringValue)
      default: #expect(result["value"]?.arrayValue?.first == file["sourceUrl"])
      }

      let deliveries = receiver.waitForDeliveries(count: 1, timeout: 10)
      let webhook = try #require(deliveries.first.flatMap(verifiedWebhook))
      #expect(webhook["task"]?["result"]?["archivedFiles"] == .array(archived))
    }
  }

  @Test func resultArchiveReportsFileOverMaxBytes() async throws {
    try await withStack(plugins: ["result-archive": ["enabled": true, "maxBytes": 100]]) {
      service, mock, _ in
      let id = try await service.createTask(taskFields("replicate", mock: mock))
      let task = try await service.waitForEnd(id)
      #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
      #expect(task["result"]?["archivedFiles"]?.arrayValue?.isEmpty == true)
      let errors = try #require(task["result"]?["archiveErrors"]?.arrayValue)
      #expect(errors.count == 1)
      #expect(errors.first?["sourceUrl"]?.stringValue?.hasSuffix("output.mp4") == true)
      #expect(errors.first?["error"]?.stringValue?.isEmpty == false)
    }
  }

  @Test func archivedFileRouteChecksTeamAndName() async throws {
    try await withStack(plugins: ["result-archive": ["enabled": true]]) { service, mock, _ in
      let id = try await service.createTask(taskFields("luma", mock: mock))
      let task = try await service.waitForEnd(id)
      let name = try #require(
        task["result"]?["archivedFiles"]?.arrayValue?.first?["name"]?.stringValue)

      let otherKey = "other-team-key-0123456789"
      try service.service.store.addAPIKey(
        hash: Crypto.sha256Hex(otherKey), teamId: "other", label: "test")
      let otherTeam = try await service.call(
        "GET", "/v1/tasks/\(id)/files/\(name)", key: otherKey)
      #expect(otherTeam.status == 404)
      let noKey = try await service.call("GET", "/v1/tasks/\(id)/files/\(name)", key: nil)
      #expect(noKey.status == 401)
      let missing = try await service.call("GET", "/v1/tasks/\(id)/files/absent.mp4")
      #expect(missing.status == 404)
      let hidden = try await service.call("GET", "/v1/tasks/\(id)/files/.\(name).partial")
      #expect(hidden.status == 404)
      #expect(hidden.json["error"]?.stringValue?.contains("not a valid file name") == true)
      let escape = try await service.call("GET", "/v1/tasks/\(id)/files/..%2F..%2Fasyncqueue.db")
      #expect(escape.status == 404)
    }
  }

  // MARK: failure-notifier

  @Test func failureNotifierPostsSlackSummary() async throws {
    let notified = WebhookReceiver()
    try notified.start()
    defer { notified.stop() }
    let settings: JSONValue = ["enabled": true, "url": .string(notified.url)]
    try await withStack(plugins: ["failure-notifier": settings]) { service, mock, _ in
      let failing = try await service.createTask(
        taskFields("replicate", mock: mock, scenario: "polls=1;outcome=fail;reason=gpu-melted-451"))
      let succeeding = try await service.createTask(taskFields("fal", mock: mock))
      _ = try await service.waitForEnd(failing)
      _ = try await service.waitForEnd(succeeding)

      let posts = notified.waitForDeliveries(count: 1, timeout: 10)
      #expect(posts.count == 1)
      let body = try JSONValue.parse(try #require(posts.first?.body))
      let text = try #require(body["text"]?.stringValue)
      #expect(text.contains(failing))
      #expect(text.contains("(replicate) ended failed [provider_error]"), "\(text)")
      #expect(text.contains("gpu-melted-451"))
      #expect(text.contains("\(service.baseURL)/v1/tasks/\(failing)"))
      #expect(posts.first?.headers["content-type"] == "application/json")
      try await Task.sleep(nanoseconds: 300_000_000)
      #expect(notified.deliveries().count == 1, "a completed task must not be reported")
    }
  }

  @Test func failureNotifierPostsJSONFormat() async throws {
    let notified = WebhookReceiver()
    try notified.start()
    defer { notified.stop() }
    let settings: JSONValue = [
      "enabled": true, "url": .string(notified.url), "format": "json",
      "headers": ["X-Team": "render"],
    ]
    try await withStack(plugins: ["failure-notifier": settings]) { service, mock, _ in
      let id = try await service.createTask(
        taskFields("luma", mock: mock, scenario: "polls=1;outcome=fail;reason=nsfw-filter"))
      _ = try await service.waitForEnd(id)
      let posts = notified.waitForDeliveries(count: 1, timeout: 10)
      let body = try JSONValue.parse(try #require(posts.first?.body))
      #expect(body["event"]?.stringValue == "task.failed")
      #expect(body["task"]?["id"]?.stringValue == id)
      #expect(body["task"]?["provider"]?.stringValue == "luma")
      #expect(body["task"]?["errorCode"]?.stringValue == "provider_error")
      #expect(body["task"]?["error"]?.stringValue?.contains("nsfw-filter") == true)
      #expect(posts.first?.headers["x-team"] == "render")
    }
  }

  @Test func pluginRequestObeysPrivateNetworkRule() async throws {
    let notified = WebhookReceiver()
    try notified.start()
    defer { notified.stop() }
    let settings: JSONValue = ["enabled": true, "url": .string(notified.url)]
    try await withStack(plugins: ["failure-notifier": settings], allowPrivateNetwork: false) {
      service, mock, _ in
      // The submit to the loopback mock is refused, so the task fails, and the notifier's
      // POST to a loopback address must be refused in the same way.
      // 0x7f000001 is 127.0.0.1 written so that only the connection-time check catches it.
      var fields = taskFields("replicate", mock: mock).objectValue ?? [:]
      fields["targetUrl"] = .string(
        (fields["targetUrl"]?.stringValue ?? "").replacingOccurrences(
          of: "127.0.0.1", with: "0x7f000001"))
      let id = try await service.createTask(.object(fields))
      let task = try await service.waitForEnd(id)
      #expect(task["errorCode"]?.stringValue == "address_not_allowed")
      var refused = false
      for _ in 0..<50 where !refused {
        refused = service.logLines.all.contains {
          $0.contains("plugin request failed") && $0.contains("plugin=failure-notifier")
        }
        try await Task.sleep(nanoseconds: 100_000_000)
      }
      #expect(refused)
      #expect(notified.deliveries().isEmpty)
    }
  }

  // MARK: Hooks and isolation

  static let observer = """
    -- Records what each hook saw, in the log and in the result.
    local function task_created(ctx)
      log.info("observer created", ctx.task.status)
    end

    local function status_changed(ctx)
      log.info("observer status", tostring(ctx.previousStatus), "->", ctx.task.status)
    end

    local function before_request(ctx)
      return { headers = { ["X-Observer"] = ctx.config.tag } }
    end

    local function task_finished(ctx)
      return { result_fields = {
        seenAuthorization = ctx.task.headers.Authorization,
        seenTag = ctx.config.tag,
        seenTaskUrl = ctx.taskUrl,
      } }
    end

    local function after_delivery(ctx)
      log.info("observer delivery", ctx.delivery.event, ctx.attempt.statusCode)
    end

    return {
      name = "observer",
      description = "Test plugin that uses every hook.",
      task_created = task_created,
      status_changed = status_changed,
      before_request = before_request,
      task_finished = task_finished,
      after_delivery = after_delivery,
    }
    """

  @Test func everyHookRunsWithItsContext() async throws {
    try await withStack(
      plugins: ["observer": ["enabled": true, "tag": "blue-42"]],
      pluginScripts: ["observer.lua": Self.observer]
    ) { service, mock, receiver in
      var fields = taskFields("replicate", mock: mock).objectValue!
      fields["onCompleteUrl"] = .string(receiver.url)
      let id = try await service.createTask(.object(fields))
      let task = try await service.waitForEnd(id)
      let result = task["result"] ?? .null
      #expect(result["seenAuthorization"]?.stringValue == "***")
      #expect(result["seenTag"]?.stringValue == "blue-42")
      #expect(result["seenTaskUrl"]?.stringValue == "\(service.baseURL)/v1/tasks/\(id)")
      #expect(result["value"]?.arrayValue?.isEmpty == false)

      let providerRequests = mock.requests().filter { $0.provider == "replicate" }
      #expect(!providerRequests.isEmpty)
      #expect(providerRequests.allSatisfy { $0.headers["x-observer"] == "blue-42" })

      _ = receiver.waitForDeliveries(count: 1, timeout: 10)
      var logs = ""
      for _ in 0..<50 where !logs.contains("observer delivery task.completed 200") {
        try await Task.sleep(nanoseconds: 100_000_000)
        logs = service.logLines.all.joined(separator: "\n")
      }
      #expect(logs.contains("observer created pending plugin=observer"))
      #expect(logs.contains("observer status pending -> processing"))
      #expect(logs.contains("observer status polling -> completed"))
      #expect(logs.contains("observer delivery task.completed 200"))
    }
  }

  static let misbehaving: [String: String] = [
    "raises.lua": """
    return {
      name = "raises",
      task_finished = function(ctx) error("plugin broke on purpose") end,
    }
    """,
    "loops.lua": """
    return {
      name = "loops",
      before_request = function(ctx) while true do end end,
    }
    """,
    "bad-return.lua": """
    return {
      name = "bad-return",
      task_finished = function(ctx) return { result_fields = 5 } end,
      before_request = function(ctx) return { headers = { ["X-Bad"] = 7 } } end,
    }
    """,
    "splits-header.lua": """
    return {
      name = "splits-header",
      before_request = function(ctx) return { headers = { ["X-Evil"] = "a\\r\\nX-Injected: 1" } } end,
    }
    """,
    "disabled.lua": """
    return {
      name = "disabled",
      task_finished = function(ctx) return { result_fields = { disabledRan = true } } end,
    }
    """,
  ]

  @Test func failingPluginsNeverFailTheTask() async throws {
    try await withStack(
      plugins: [
        "raises": ["enabled": true], "loops": ["enabled": true], "bad-return": ["enabled": true],
        "splits-header": ["enabled": true], "disabled": ["enabled": false],
      ],
      pluginScripts: Self.misbehaving
    ) { service, mock, _ in
      let id = try await service.createTask(taskFields("luma", mock: mock))
      let task = try await service.waitForEnd(id, timeout: 60)
      #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
      #expect(task["result"]?.stringValue?.hasPrefix("http") == true, "\(task.serialized())")

      let logs = service.logLines.all.joined(separator: "\n")
      #expect(logs.contains("plugin broke on purpose"))
      #expect(logs.contains("plugin hook failed; the task goes on without it plugin=raises"))
      #expect(logs.contains("plugin=loops hook=before_request"))
      #expect(logs.contains("script exceeded its budget"))
      #expect(logs.contains("plugin hook returned an invalid value; ignored plugin=bad-return"))
      #expect(logs.contains("header 'X-Evil' contains a line break"))
      #expect(
        mock.requests().allSatisfy {
          $0.headers["x-injected"] == nil && $0.headers["x-evil"] == nil
        })
      #expect(!task.serialized().contains("disabledRan"))
      #expect(!logs.contains("plugin=disabled hook="))
    }
  }
}
