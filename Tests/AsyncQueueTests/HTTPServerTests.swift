import Foundation
import HTTPServer
import Support
import Testing

/// Starts a server on a free loopback port, runs `body`, and stops the server.
private func withServer<T>(
  maxBodyBytes: Int = 1_024, host: String = "127.0.0.1",
  handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse,
  _ body: (HTTPServer) async throws -> T
) async throws -> T {
  let server = HTTPServer(host: host, port: 0, maxBodyBytes: maxBodyBytes, handler: handler)
  try server.start()
  defer { server.stop() }
  return try await body(server)
}

/// Describes the request as JSON so a test can check what the handler saw.
@Sendable private func echo(_ request: HTTPRequest) -> HTTPResponse {
  let description: JSONValue = [
    "method": .string(request.method),
    "path": .string(request.path),
    "query": .object(request.query.mapValues { .string($0) }),
    "headers": .object(request.headers.mapValues { .string($0) }),
    "body": .string(String(decoding: request.body, as: UTF8.self)),
    "remote": .string(request.remoteAddress),
  ]
  return .json(200, description.serialized(), headers: [("X-Echo", "yes")])
}

@Suite("HTTPServer")
struct HTTPServerTests {
  @Test func getRoundTrip() async throws {
    try await withServer(handler: echo) { server in
      let url = "http://127.0.0.1:\(server.port)/v1/tasks/abc%20def?wait=25&name=a%2Fb&x=1&x=2"
      let response = try await TestHTTP.send("GET", url, headers: ["X-Custom-Header": "Value 1"])
      #expect(response.status == 200)
      #expect(response.header("content-type") == "application/json")
      #expect(response.header("x-echo") == "yes")

      let seen = try response.json()
      #expect(seen["method"] == "GET")
      #expect(seen["path"] == "/v1/tasks/abc def")
      #expect(seen["query"] == ["wait": "25", "name": "a/b", "x": "2"])
      #expect(seen["headers"]?["x-custom-header"] == "Value 1")
      #expect(seen["headers"]?["X-Custom-Header"] == nil)
      #expect(seen["body"] == "")
      #expect(seen["remote"] == "127.0.0.1")
    }
  }

  @Test func postBodyRoundTrip() async throws {
    let handler: @Sendable (HTTPRequest) -> HTTPResponse = { request in
      HTTPResponse(
        status: 201,
        headers: [
          ("Content-Type", "application/octet-stream"), ("X-Length", "\(request.body.count)"),
        ],
        body: request.body.reversed())
    }
    try await withServer(handler: handler) { server in
      let body: [UInt8] = Array(0...255)
      let response = try await TestHTTP.send(
        "POST", "http://127.0.0.1:\(server.port)/upload",
        headers: ["Content-Type": "application/octet-stream"],
        body: body)
      #expect(response.status == 201)
      #expect(response.header("x-length") == "256")
      #expect(response.body == body.reversed())
    }
  }

  @Test func headerLookupAndRepeats() async throws {
    try await withServer(handler: echo) { server in
      let connection = try RawHTTPConnection(port: server.port)
      let response = try connection.request(
        "GET", "/flag?empty&plus=a+b",
        headers: [("X-Tag", "one"), ("x-tag", "two"), ("AUTHORIZATION", "Key abc")])
      let seen = try response.json()
      #expect(seen["headers"]?["x-tag"] == "one, two")
      #expect(seen["headers"]?["authorization"] == "Key abc")
      #expect(seen["query"]?["empty"] == "")
      #expect(seen["query"]?["plus"] == "a b")
    }

    let request = HTTPRequest(method: "GET", path: "/", headers: ["X-Mock-Scenario": "polls=1"])
    #expect(request.header("x-mock-scenario") == "polls=1")
    #expect(request.header("X-MOCK-SCENARIO") == "polls=1")
    #expect(request.header("missing") == nil)
  }

  @Test func oversizeBodyDeclared() async throws {
    let calls = Locked(0)
    let handler: @Sendable (HTTPRequest) -> HTTPResponse = { request in
      calls.update { $0 += 1 }
      return echo(request)
    }
    try await withServer(maxBodyBytes: 100, handler: handler) { server in
      let response = try await TestHTTP.send(
        "POST", "http://127.0.0.1:\(server.port)/big", body: [UInt8](repeating: 65, count: 101))
      #expect(response.status == 413)
      #expect(response.header("content-type") == "application/json")
      let error = try response.json()
      let expected =
        "request body exceeds the limit of 100 bytes; pass large inputs as URLs that the "
        + "provider downloads"
      #expect(error["error"]?.stringValue == expected)
      #expect(error["code"] == "payload_too_large")
      #expect(calls.value == 0)

      let atLimit = try await TestHTTP.send(
        "POST", "http://127.0.0.1:\(server.port)/fits", body: [UInt8](repeating: 66, count: 100))
      #expect(atLimit.status == 200)
      #expect(try atLimit.json()["body"] == .string(String(repeating: "B", count: 100)))
      #expect(calls.value == 1)
    }
  }

  @Test func oversizeBodyDrainedBefore413() async throws {
    try await withServer(maxBodyBytes: 100, handler: echo) { server in
      // The client writes its whole body before reading, so a server that closed on the unread
      // body would reset the connection under these writes.
      let connection = try RawHTTPConnection(port: server.port)
      try connection.writeRequest("POST", "/big", body: [UInt8](repeating: 65, count: 4 << 20))
      let response = try connection.readResponse()
      #expect(response.status == 413)
      #expect(try response.json()["code"] == "payload_too_large")
    }
  }

  @Test func oversizeBodyWithExpectContinue() async throws {
    try await withServer(maxBodyBytes: 100, handler: echo) { server in
      let connection = try RawHTTPConnection(port: server.port)
      let head =
        "POST /big HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\n"
        + "Expect: 100-continue\r\n\r\n"
      try connection.write(Array(head.utf8))
      // Only the head was sent, so the 413 must arrive without the body.
      let response = try connection.readResponse()
      #expect(response.status == 413)
    }
  }

  @Test func oversizeBodyChunked() async throws {
    let calls = Locked(0)
    let handler: @Sendable (HTTPRequest) -> HTTPResponse = { request in
      calls.update { $0 += 1 }
      return echo(request)
    }
    try await withServer(maxBodyBytes: 10, handler: handler) { server in
      let connection = try RawHTTPConnection(port: server.port)
      let head = "POST /chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
      let chunks = "8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"
      try connection.write(Array((head + chunks).utf8))
      let response = try connection.readResponse()
      #expect(response.status == 413)
      #expect(
        try response.json()["error"]?.stringValue?.hasPrefix(
          "request body exceeds the limit of 10 bytes;") == true)
      #expect(calls.value == 0)

      let small =
        "POST /chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        + "4\r\nabcd\r\n0\r\n\r\n"
      try connection.write(Array(small.utf8))
      let accepted = try connection.readResponse()
      #expect(accepted.status == 200)
      #expect(try accepted.json()["body"] == "abcd")
    }
  }

  @Test func keepAliveReusesConnection() async throws {
    try await withServer(handler: echo) { server in
      let connection = try RawHTTPConnection(port: server.port)
      for index in 0..<5 {
        let response = try connection.request(
          "POST", "/n/\(index)", body: Array("body \(index)".utf8))
        #expect(response.status == 200)
        #expect(try response.json()["path"] == .string("/n/\(index)"))
        #expect(try response.json()["body"] == .string("body \(index)"))
      }
    }
  }

  @Test func thousandKeepAliveConnections() async throws {
    try await withServer(handler: echo) { server in
      var connections: [RawHTTPConnection] = []
      for _ in 0..<1_200 { connections.append(try RawHTTPConnection(port: server.port)) }
      for round in 0..<3 {
        for (index, connection) in connections.enumerated() {
          try connection.writeRequest("GET", "/c/\(index)?round=\(round)")
        }
        var failures = 0
        for (index, connection) in connections.enumerated() {
          let seen = try connection.readResponse().json()
          if seen["path"] != .string("/c/\(index)")
            || seen["query"]?["round"] != .string("\(round)")
          {
            failures += 1
          }
        }
        #expect(failures == 0)
      }
    }
  }

  @Test func blockingHandlersRunConcurrently() async throws {
    let handler: @Sendable (HTTPRequest) -> HTTPResponse = { request in
      usleep(300_000)
      return echo(request)
    }
    try await withServer(handler: handler) { server in
      let connections = try (0..<40).map { _ in try RawHTTPConnection(port: server.port) }
      let started = Date()
      for connection in connections { try connection.writeRequest("GET", "/slow") }
      for connection in connections { #expect(try connection.readResponse().status == 200) }
      // One at a time this would take 12 s.
      #expect(Date().timeIntervalSince(started) < 4)
    }
  }

  @Test func ipv6Loopback() async throws {
    try await withServer(host: "::1", handler: echo) { server in
      let connection = try RawHTTPConnection(host: "::1", port: server.port)
      let seen = try connection.request("GET", "/six").json()
      #expect(seen["remote"] == "::1")
      #expect(seen["path"] == "/six")
    }
  }

  @Test func stopIsIdempotent() async throws {
    let finished = Locked(false)
    let server = HTTPServer(host: "127.0.0.1", port: 0, maxBodyBytes: 10) { request in
      usleep(500_000)
      finished.update { $0 = true }
      return .text(200, "done")
    }
    server.stop()
    try server.start()
    let port = server.port
    #expect(port != 0)

    let connection = try RawHTTPConnection(port: port)
    try connection.writeRequest("GET", "/slow")
    usleep(100_000)
    server.stop()
    #expect(finished.value)
    server.stop()
    #expect(throws: TestClientError.self) { try RawHTTPConnection(port: port) }
  }

  @Test func startReportsAddressInUse() async throws {
    try await withServer(handler: echo) { server in
      let second = HTTPServer(host: "127.0.0.1", port: server.port, maxBodyBytes: 10, handler: echo)
      do {
        try second.start()
        Issue.record("second server started on a port in use")
      } catch let error as HTTPServerError {
        #expect(
          error.message == "failed to listen on 127.0.0.1:\(server.port): Address already in use")
      } catch {
        Issue.record("unexpected error \(error)")
      }
      #expect(throws: HTTPServerError.self) { try server.start() }
    }
    let invalid = HTTPServer(host: "example.invalid", port: 0, maxBodyBytes: 10, handler: echo)
    #expect(throws: HTTPServerError.self) { try invalid.start() }
  }
}
