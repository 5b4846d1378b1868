import API
import Foundation
import MockProvider
import Support
import Testing

@Suite(.serialized) struct LogRedactionTests {
  /// Runs one task per provider against the mock with credentials in its headers, in JSON log
  /// format at debug level, then checks every log line.
  @Test func logsNeverContainCredentials() async throws {
    let mock = MockProviderServer()
    try mock.start()
    let receiver = WebhookReceiver()
    try receiver.start()
    let service = try TestService(logFormat: .json)
    defer {
      service.stop()
      mock.stop()
      receiver.stop()
    }
    var ids: [String] = []
    for provider in ProviderCase.all {
      var headers = provider.headers.mapValues { JSONValue.string($0) }
      headers["X-Mock-Scenario"] = "polls=1"
      ids.append(
        try await service.createTask([
          "targetUrl": .string(mock.baseURL + provider.path), "headers": .object(headers),
          "body": .string(provider.body), "provider": .string(provider.id),
          "onCompleteUrl": .string(receiver.url),
        ]))
    }
    for id in ids { _ = try await service.waitForEnd(id) }
    _ = receiver.waitForDeliveries(count: ids.count, timeout: 10)

    let lines = service.logLines.all
    #expect(lines.count > ids.count)
    let forbidden =
      ProviderCase.all.map(\.secret) + [TestService.apiKey, TestService.webhookSecret]
    for line in lines {
      for secret in forbidden {
        #expect(!line.contains(secret), "log line leaks a credential: \(line)")
      }
      let json = try? JSONValue.parse(line)
      #expect(json?["level"]?.stringValue != nil, "not a JSON log line: \(line)")
    }
    for id in ids {
      let taskLines = lines.compactMap { try? JSONValue.parse($0) }.filter {
        $0["task"]?.stringValue == id
      }
      #expect(!taskLines.isEmpty, "no log line carries task \(id)")
      #expect(taskLines.allSatisfy { $0["team"]?.stringValue == "default" })
      #expect(taskLines.contains { $0["provider"]?.stringValue != nil })
    }
  }
}

@Suite struct LogLineTests {
  @Test func everyTextEntryStaysOnOneLine() {
    let lines = LogCapture()
    let logger = Logger(minimumLevel: .debug, format: .text, sink: { lines.append($0) })
    logger.warn(
      "cannot claim\nwork", [("error", "connection lost\nserver closed the connection\r\n")])
    #expect(lines.all.count == 1)
    let line = lines.all.first ?? ""
    #expect(!line.contains("\n"), "\(line)")
    #expect(line.contains(#"error="connection lost\nserver closed the connection\n""#), "\(line)")
  }
}
