import Foundation
import Storage
import Testing

@testable import Support

/// The hand-written JSON reader and writer must give what Foundation gives.
@Suite struct JSONTextTests {
  static let documents = [
    #"{"b":1,"a":[true,false,null],"B":"x","_":{},"é":[],"a10":2,"a2":3}"#,
    #"[1.0, 1e2, 1.5, -0, -0.0, 0.1, 1e-7, 123456789.123, 12345678901234567890]"#,
    #"{"s":"a\"b\\c\/d\n\t\r\b\f\u0001\u00e9\ud83d\ude00 \u2028"}"#,
    #"  {"nested": {"deeper": [[[{"x": -12.5e3}]]]}}  "#,
    #""just a string""#, "42", "-7.25", "true", "null",
    #"{"id":"x","pollCount":3,"createdAt":1733333333.123456,"progress":0.5}"#,
  ]

  static let invalid = [
    "", "{", "[1,]", "01", "+1", "1.", ".5", "1e", "\"\\ud800\"", "\"\\x\"", "{\"a\" 1}",
    "[1 2]", "nul", "1E400", "\"tab\there\"", "{\"a\":1,\"a\":2}",
  ]

  @Test func readerMatchesFoundation() throws {
    for text in Self.documents {
      let expected = try JSONValue.parseWithFoundation(Data(text.utf8))
      #expect(try JSONValue.parse(text) == expected, "document: \(text)")
    }
  }

  @Test func invalidTextFailsAsWithFoundation() {
    for text in Self.invalid {
      let foundation = Result { try JSONValue.parseWithFoundation(Data(text.utf8)) }
      let fast = Result { try JSONValue.parse(text) }
      #expect(
        (try? foundation.get()) == (try? fast.get()), "input: \(text)")
    }
  }

  @Test func writerMatchesFoundation() throws {
    for text in Self.documents {
      let value = try JSONValue.parse(text)
      let expected = String(decoding: value.serializedWithFoundation(), as: UTF8.self)
      #expect(value.serialized() == expected, "document: \(text)")
    }
    let numbers: [Double] = [
      1, 0.1, 1e-7, 1e21, 1e16, -0.0, Double.leastNonzeroMagnitude, 1.7976931348623157e308,
    ]
    for number in numbers {
      let value = JSONValue.double(number)
      let expected = String(decoding: value.serializedWithFoundation(), as: UTF8.self)
      #expect(value.serialized() == expected, "number: \(number)")
    }
  }

  @Test func trailingTextIsInvalid() {
    for text in [#"{"a":1} xyz"#, "[1] 2", "null x", "{} {}"] {
      #expect(throws: JSONParseError.self, "input: \(text)") { try JSONValue.parse(text) }
    }
  }

  @Test func nonFiniteDoubleWritesNull() {
    #expect(JSONValue.array([.double(.infinity)]).serialized() == "null")
  }

  @Test func taskDocumentReadsCodableOutput() throws {
    var task = TaskRecord(
      id: "t-1", teamId: "team", status: .polling, targetUrl: "https://example.com/submit",
      method: "POST", headers: ["Authorization": "Key secret"], body: "{\"prompt\":\"p\"}",
      provider: nil, pollConfig: ["interval": 1.5, "statusPath": "status"],
      onCompleteUrl: "https://example.com/hook", timeout: 30, maxRetries: 3,
      retryBackoff: "linear", priority: 7, delayUntil: 1_733_333_000.25,
      createdAt: 1_733_333_333.123456)
    task.pollCount = 4
    task.job = ["id": "abc", "urls": ["get": "https://example.com/j/abc"]]
    task.nextRunAt = 1_733_333_340.5
    task.step = .poll
    task.resultFile = ResultFile(name: "out.mp4", contentType: "video/mp4", size: 12)
    task.requestInFlight = true
    let codable = try JSONValue.parse(Array(try JSONEncoder().encode(task)))
    #expect(try TaskRecord(document: codable) == task)
    #expect(try TaskRecord(document: task.document) == task)
    let decoded = try JSONDecoder().decode(TaskRecord.self, from: task.document.serializedData())
    #expect(decoded == task)
  }
}
