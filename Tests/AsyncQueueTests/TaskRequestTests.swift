import Engine
import Foundation
import Storage
import Support
import Testing

@Suite struct TaskRequestTests {
  let parser = TaskRequestParser(knownProviders: ["fal", "replicate"], now: 1_800_000_000)

  func parse(_ json: String) throws(RequestError) -> TaskRecord {
    try parser.parse(Array(json.utf8), teamId: "team-a")
  }

  func rejection(_ json: String) -> RequestError? {
    do {
      _ = try parse(json)
      return nil
    } catch {
      return error
    }
  }

  @Test func plainTaskGetsHostedDefaults() throws {
    let task = try parse(#"{"targetUrl": "https://example.com/hook"}"#)
    #expect(task.method == "POST")
    #expect(task.timeout == 30)
    #expect(task.maxRetries == 3)
    #expect(task.retryBackoff == "exponential")
    #expect(task.priority == 5)
    #expect(task.status == .pending)
    #expect(task.teamId == "team-a")
    #expect(task.nextRunAt == 1_800_000_000)
    #expect(UUID(uuidString: task.id) != nil)
  }

  @Test func objectBodyIsSerialized() throws {
    let task = try parse(#"{"targetUrl": "https://example.com", "body": {"prompt": "cat"}}"#)
    #expect(task.body == #"{"prompt":"cat"}"#)
  }

  @Test func delayUntilInFutureMakesTaskDelayed() throws {
    let task = try parse(
      #"{"targetUrl": "https://example.com", "delayUntil": "2030-01-01T00:00:00Z"}"#)
    #expect(task.status == .delayed)
    #expect(task.nextRunAt == 1_893_456_000)
  }

  @Test func malformedJSONIsRejected() {
    let error = rejection(#"{"targetUrl": "#)
    #expect(error?.code == "invalid_json")
    #expect(error?.status == 400)
    let message = error?.message ?? ""
    #expect(message.hasPrefix("request body is not valid JSON: "), "\(message)")
    #expect(!message.contains("invalid JSON"), "the reason is not prefixed twice: \(message)")
    #expect(message.contains("send one JSON object"), "\(message)")
    #expect(!message.contains(".;"), "\(message)")
  }

  @Test func trailingTextAfterObjectIsRejected() {
    let error = rejection(#"{"targetUrl": "https://example.com"} xyz"#)
    #expect(error?.code == "invalid_json")
    #expect(error?.message.contains("must be a JSON object") == false, "\(error?.message ?? "")")
  }

  @Test func nonObjectBodyNamesItsShape() {
    let error = rejection("[1, 2]")
    #expect(error?.code == "invalid_json")
    #expect(
      error?.message.contains("must be a JSON object; got") == true, "\(error?.message ?? "")")
  }

  @Test func missingTargetUrlIsNamed() {
    let error = rejection(#"{"method": "GET"}"#)
    #expect(error?.code == "missing_field")
    #expect(error?.message.contains("targetUrl") == true)
  }

  @Test func nonHTTPTargetUrlIsRejected() {
    let error = rejection(#"{"targetUrl": "ftp://example.com/file"}"#)
    #expect(error?.code == "invalid_field")
    #expect(error?.message.contains("targetUrl") == true)
  }

  @Test func unknownMethodIsRejected() {
    let error = rejection(#"{"targetUrl": "https://example.com", "method": "BREW"}"#)
    #expect(error?.code == "invalid_field")
    #expect(error?.message.contains("method") == true)
  }

  @Test func unknownProviderListsKnownIds() {
    let error = rejection(#"{"targetUrl": "https://example.com", "provider": "midjourney"}"#)
    #expect(error?.code == "unknown_provider")
    #expect(error?.message.contains("fal, replicate") == true)
  }

  @Test func providerAndPollConfigConflict() {
    let error = rejection(
      #"""
      {"targetUrl": "https://example.com", "provider": "fal",
       "pollConfig": {"urlTemplate": "x", "statusPath": "s", "doneValues": [], "failValues": []}}
      """#)
    #expect(error?.code == "conflicting_fields")
  }

  @Test func pollConfigMissingKeyIsNamed() {
    let error = rejection(
      #"""
      {"targetUrl": "https://example.com",
       "pollConfig": {"urlTemplate": "https://x/{startResult.body.id}", "doneValues": ["ok"], "failValues": []}}
      """#)
    #expect(error?.code == "invalid_poll_config")
    #expect(error?.message.contains("statusPath") == true)
  }

  @Test func maxRetriesOutOfRangeIsRejected() {
    let error = rejection(#"{"targetUrl": "https://example.com", "maxRetries": 11}"#)
    #expect(error?.code == "invalid_field")
    #expect(error?.message.contains("maxRetries") == true)
  }

  @Test func unknownFieldIsRejected() {
    let error = rejection(#"{"targetUrl": "https://example.com", "targetURL": "x"}"#)
    #expect(error?.code == "unknown_field")
    #expect(error?.message.contains("targetURL") == true)
  }

  @Test func headerWithLineBreakIsRejected() {
    let error = rejection(#"{"targetUrl": "https://example.com", "headers": {"X-A": "a\r\nB: c"}}"#)
    #expect(error?.code == "invalid_field")
  }
}
