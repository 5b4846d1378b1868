import Foundation
import MockProvider
import Support
import Testing

/// Runs the webhook verification examples in `examples/webhook-verification` and the Swift one
/// in `WebhookVerificationExample.swift` against webhooks that a real service delivered.
@Suite(.serialized) struct WebhookVerificationExampleTests {
  static let exampleDirectory = repositoryRoot + "/examples/webhook-verification"

  @Test(.enabled(if: executablePath("python3") != nil))
  func pythonVerifierChecksDelivery() async throws {
    let python = try #require(executablePath("python3"))
    try await checkScript([python, Self.exampleDirectory + "/verify.py"])
  }

  @Test(.enabled(if: executablePath("node") != nil))
  func nodeVerifierChecksDelivery() async throws {
    let node = try #require(executablePath("node"))
    try await checkScript([node, Self.exampleDirectory + "/verify.mjs"])
  }

  @Test func swiftVerifierChecksDelivery() async throws {
    let delivery = try await receiveDelivery()
    let header = try #require(delivery.headers["x-asyncqueue-signature"])
    let secret = TestService.webhookSecret

    let valid = AsyncQueueWebhookVerifier.verify(
      secret: secret, header: header, body: delivery.body)
    #expect(valid == .valid, "\(valid)")

    let tampered = AsyncQueueWebhookVerifier.verify(
      secret: secret, header: header, body: tamper(delivery.body))
    #expect(tampered == .invalid(reason: "the signature does not match the body and secret"))

    let wrongSecret = AsyncQueueWebhookVerifier.verify(
      secret: secret + "x", header: header, body: delivery.body)
    #expect(wrongSecret == .invalid(reason: "the signature does not match the body and secret"))

    let stale = AsyncQueueWebhookVerifier.verify(
      secret: secret, header: header, body: delivery.body,
      now: Int(Date().timeIntervalSince1970) + 301)
    #expect(stale.description.hasPrefix("invalid: the timestamp is"), "\(stale)")

    let missingTimestamp = AsyncQueueWebhookVerifier.verify(
      secret: secret, header: "v1=00", body: delivery.body)
    #expect(missingTimestamp == .invalid(reason: "the header has no t=<unix seconds> part"))
  }

  @Test func swiftHMACMatchesRFC4231Vectors() {
    // Test cases 1, 2 and 6 of RFC 4231, section 4: a short key, a text key, and a key longer
    // than the 64-byte block, which HMAC hashes first.
    let cases: [(key: [UInt8], message: String, mac: String)] = [
      (
        [UInt8](repeating: 0x0b, count: 20), "Hi There",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
      ),
      (
        Array("Jefe".utf8), "what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
      ),
      (
        [UInt8](repeating: 0xaa, count: 131),
        "Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
      ),
    ]
    for testCase in cases {
      let mac = AsyncQueueWebhookVerifier.hmacSHA256(
        key: testCase.key, message: Array(testCase.message.utf8))
      #expect(hex(mac) == testCase.mac, "message '\(testCase.message)'")
    }
  }

  @Test func swiftHMACMatchesOpenSSL() {
    // Lengths around the padding edges (55, 56, 63, 64 bytes) and over several blocks.
    var generator = SystemRandomNumberGenerator()
    for length in 0...200 {
      let message = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
      let expected = Crypto.hmacSHA256Hex(key: TestService.webhookSecret, message: message)
      let actual = AsyncQueueWebhookVerifier.hmacSHA256(
        key: Array(TestService.webhookSecret.utf8), message: message)
      #expect(hex(actual) == expected, "message of \(length) bytes")
    }
  }

  /// Runs a verifier script on a real delivery: as received, with one body byte changed, with
  /// a wrong secret and with a timestamp over 300 s old.
  private func checkScript(_ command: [String]) async throws {
    let delivery = try await receiveDelivery()
    let header = try #require(delivery.headers["x-asyncqueue-signature"])
    let directory = temporaryDirectory("webhook-verification")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let bodyPath = directory + "/body.json"
    let tamperedPath = directory + "/tampered.json"
    try Data(delivery.body).write(to: URL(fileURLWithPath: bodyPath))
    try Data(tamper(delivery.body)).write(to: URL(fileURLWithPath: tamperedPath))

    // The Swift verifier checks the same bytes, so all three examples agree on this delivery.
    let swiftOutcome = AsyncQueueWebhookVerifier.verify(
      secret: TestService.webhookSecret, header: header, body: delivery.body)
    #expect(swiftOutcome == .valid, "\(swiftOutcome)")

    let valid = try await runProcess(
      command + [bodyPath],
      environment: signatureEnvironment(secret: TestService.webhookSecret, header: header))
    #expect(valid.status == 0, "\(valid)")
    #expect(valid.output == "valid\n", "\(valid)")

    let tampered = try await runProcess(
      command + [tamperedPath],
      environment: signatureEnvironment(secret: TestService.webhookSecret, header: header))
    #expect(tampered.status == 1, "\(tampered)")
    #expect(tampered.output == "invalid: the signature does not match the body and secret\n")

    let wrongSecret = try await runProcess(
      command + [bodyPath],
      environment: signatureEnvironment(secret: TestService.webhookSecret + "x", header: header))
    #expect(wrongSecret.status == 1, "\(wrongSecret)")
    #expect(wrongSecret.output == "invalid: the signature does not match the body and secret\n")

    let staleHeader = try staleSignature(header)
    let stale = try await runProcess(
      command + [bodyPath],
      environment: signatureEnvironment(secret: TestService.webhookSecret, header: staleHeader))
    #expect(stale.status == 1, "\(stale)")
    #expect(stale.output.hasPrefix("invalid: the timestamp is"), "\(stale)")

    let missingSecret = try await runProcess(command + [bodyPath], environment: [:])
    #expect(missingSecret.status == 2, "\(missingSecret)")
  }

  /// Makes a real service deliver a `task.completed` webhook to a receiver; returns it.
  private func receiveDelivery() async throws -> RecordedRequest {
    let receiver = WebhookReceiver()
    try receiver.start()
    let service = try TestService()
    defer {
      service.stop()
      receiver.stop()
    }
    // The task is a plain GET of the service's own health check. Its non-ASCII body is stored
    // on the task and shown in the webhook, so the signed bytes include multi-byte UTF-8.
    let id = try await service.createTask([
      "targetUrl": .string(service.baseURL + "/healthz"), "method": "GET",
      "body": "{\"prompt\": \"café ☕ naïve\"}", "onCompleteUrl": .string(receiver.url),
    ])
    let task = try await service.waitForEnd(id)
    #expect(task["status"]?.stringValue == "completed", "\(task.serialized())")
    let deliveries = await receiver.deliveries(count: 1, timeout: 30)
    let delivery = try #require(deliveries.first, "no webhook arrived for task \(id)")
    #expect(String(decoding: delivery.body, as: UTF8.self).contains(id))
    return delivery
  }

  /// Returns the body with its first byte changed from `{` to a space: still JSON, other bytes.
  private func tamper(_ body: [UInt8]) -> [UInt8] {
    var changed = body
    if !changed.isEmpty { changed[0] = changed[0] == UInt8(ascii: " ") ? 0x09 : 0x20 }
    return changed
  }

  /// Returns the header with its timestamp moved 301 s into the past.
  private func staleSignature(_ header: String) throws -> String {
    let parts = header.split(separator: ",").map(String.init)
    let timestampPart = try #require(parts.first { $0.hasPrefix("t=") }, "header \(header)")
    let timestamp = try #require(Int(timestampPart.dropFirst(2)), "header \(header)")
    return parts.map { $0.hasPrefix("t=") ? "t=\(timestamp - 301)" : $0 }.joined(separator: ",")
  }

  private func signatureEnvironment(secret: String, header: String) -> [String: String] {
    ["ASYNCQUEUE_WEBHOOK_SECRET": secret, "ASYNCQUEUE_SIGNATURE": header]
  }

  private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
  }
}

/// Returns the first executable called `name` in the directories of `PATH`, or nil.
func executablePath(_ name: String) -> String? {
  let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
  for directory in path.split(separator: ":") where !directory.isEmpty {
    let candidate = directory + "/" + name
    if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
  }
  return nil
}

/// The exit status and output of a finished process.
struct ProcessOutcome: CustomStringConvertible {
  let status: Int32
  let output: String
  let errorOutput: String

  var description: String {
    "exit \(status), stdout \(output.debugDescription), stderr \(errorOutput.debugDescription)"
  }
}

/// Runs `command` with `environment` added to this process's environment. Polls for the exit
/// with `Task.sleep`, so it blocks no thread of Swift's cooperative pool while it waits, and
/// terminates the process after `timeout` seconds.
func runProcess(_ command: [String], environment: [String: String], timeout: Double = 60)
  async throws -> ProcessOutcome
{
  let process = Process()
  process.executableURL = URL(fileURLWithPath: command[0])
  process.arguments = Array(command.dropFirst())
  var merged = ProcessInfo.processInfo.environment
  merged["ASYNCQUEUE_WEBHOOK_SECRET"] = nil
  merged["ASYNCQUEUE_SIGNATURE"] = nil
  merged.merge(environment) { _, new in new }
  process.environment = merged
  // The verifiers print one line, far below a pipe's buffer, so reading after the exit cannot
  // deadlock.
  let output = Pipe()
  let errorOutput = Pipe()
  process.standardOutput = output
  process.standardError = errorOutput
  process.standardInput = FileHandle.nullDevice
  try process.run()

  let deadline = Date().addingTimeInterval(timeout)
  while process.isRunning && Date() < deadline {
    try await Task.sleep(for: .milliseconds(20))
  }
  if process.isRunning {
    process.terminate()
    Issue.record("\(command.joined(separator: " ")) did not exit within \(timeout) s")
  }
  process.waitUntilExit()
  return ProcessOutcome(
    status: process.terminationStatus,
    output: String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
    errorOutput: String(
      decoding: errorOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
}
