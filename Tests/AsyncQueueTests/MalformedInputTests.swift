import Foundation
import HTTPClient
import Support
import Testing

@Suite(.serialized) struct MalformedInputTests {
  struct Generator {
    var random = SystemRandomNumberGenerator()

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }

    mutating func bytes(_ count: Int) -> [UInt8] {
      (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
    }

    /// A value of a random JSON type, sometimes large or deep.
    mutating func value(depth: Int = 0) -> String {
      switch int(0...9) {
      case 0: return "null"
      case 1: return int(0...1) == 0 ? "true" : "false"
      case 2: return String(int(-1_000_000...1_000_000))
      case 3: return "1e999"
      case 4: return "\"" + String(repeating: "x", count: int(0...3000)) + "\""
      case 5: return "\"http://\(int(0...999)).example/\\u0000\""
      case 6 where depth < 3:
        return "[" + (0..<int(0...3)).map { _ in value(depth: depth + 1) }.joined(separator: ",")
          + "]"
      case 7 where depth < 3:
        return "{\"a\":" + value(depth: depth + 1) + "}"
      case 8: return "\"tok_\(int(0...99))\""
      default: return "\"\(int(0...9))\""
      }
    }

    /// A POST /v1/tasks body that is malformed in one of many ways.
    mutating func taskBody() -> [UInt8] {
      let fields = [
        "targetUrl", "method", "headers", "body", "timeout", "maxRetries", "retryBackoff",
        "delayUntil", "priority", "onCompleteUrl", "provider", "pollConfig", "waitForSignal",
      ]
      switch int(0...7) {
      case 0: return bytes(int(0...2000))
      case 1: return Array((String(repeating: "[", count: int(1000...100_000))).utf8)
      case 2:
        return Array("{\"targetUrl\": \"https://x.example\", \"body\": \"\u{FFFD}".utf8) + [
          0xff, 0xfe,
        ]
      case 3:
        let field = fields[int(0...fields.count - 1)]
        return Array("{\"targetUrl\": \"https://x.example\", \"\(field)\": \(value())}".utf8)
      case 4:
        let field = fields[int(0...fields.count - 1)]
        return Array("{\"\(field)\": \(value())}".utf8)
      case 5: return Array("{\"targetUrl\": \(value())}".utf8)
      case 6:
        return Array(
          "{\"targetUrl\": \"https://x.example\", \"pollConfig\": {\"urlTemplate\": \(value()), \"statusPath\": \(value()), \"doneValues\": \(value()), \"failValues\": \(value())}}"
            .utf8)
      default: return Array("\(value())".utf8)
      }
    }
  }

  @Test func randomizedMalformedRequestsGet4xx() async throws {
    let service = try TestService()
    defer { service.stop() }
    var generator = Generator()
    let id = UUID().uuidString
    let routes: [(String, String)] = [
      ("POST", "/v1/tasks"), ("GET", "/v1/tasks"), ("GET", "/v1/tasks/\(id)"),
      ("GET", "/v1/tasks/\(id)/result"), ("POST", "/v1/tasks/\(id)/cancel"),
      ("GET", "/v1/tasks/\(id)/events"), ("GET", "/v1/tasks/\(id)/deliveries"),
      ("POST", "/v1/tasks/\(id)/redeliver"), ("GET", "/v1/deliveries"),
      ("GET", "/v1/providers/nope"), ("DELETE", "/v1/tasks"), ("PUT", "/v1/tasks/\(id)"),
      ("GET", "/v1/tasks/%00%ff"), ("GET", "/v1/\(String(repeating: "a/", count: 300))"),
    ]
    let queries = [
      "", "?wait=-1", "?wait=abc", "?wait=26", "?limit=0", "?limit=1000", "?offset=-5",
      "?status=bogus", "?createdAfter=yesterday", "?state=lost", "?limit=%ff",
    ]
    var created = 0
    for round in 0..<2500 {
      var method = "POST"
      var path = "/v1/tasks"
      var body: [UInt8]? = generator.taskBody()
      if round % 3 != 0 {
        let route = routes[generator.int(0...routes.count - 1)]
        method = route.0
        path = route.1 + queries[generator.int(0...queries.count - 1)]
        body = method == "POST" ? generator.bytes(generator.int(0...500)) : nil
      }
      var headers = [("Authorization", "Bearer \(TestService.apiKey)")]
      if round % 50 == 0 {
        for index in 0..<200 {
          headers.append(("X-Flood-\(index)", String(repeating: "v", count: 100)))
        }
      }
      if round % 97 == 0 {
        headers = [("Authorization", "Bearer \(String(repeating: "k", count: 5000))")]
      }
      let outcome = await service.client.send(
        ClientRequest(
          method: method, url: service.baseURL + path, headers: headers, body: body, timeout: 30))
      let response = try outcome.get()
      if response.statusCode == 201 { created += 1 }
      #expect(
        response.statusCode < 500,
        "\(method) \(path) → \(response.statusCode): \(String(decoding: response.body.prefix(300), as: UTF8.self))"
      )
      if (400..<500).contains(response.statusCode), response.statusCode != 431 {
        let json = try? JSONValue.parse(response.body)
        #expect(
          json?["error"]?.stringValue?.isEmpty == false, "\(method) \(path): no error message")
      }
    }
    let (health, _) = try await service.call("GET", "/healthz", key: nil)
    #expect(health == 200)
    let (_, list) = try await service.call("GET", "/v1/tasks")
    #expect(list["pagination"]?["total"]?.intValue == created)
  }
}
