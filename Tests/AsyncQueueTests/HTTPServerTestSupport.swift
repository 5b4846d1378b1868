import Foundation
import Support

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// A response as a test client received it, with header names lowercased.
struct TestResponse: Sendable {
  let status: Int
  let headers: [String: String]
  let body: [UInt8]

  var text: String { String(decoding: body, as: UTF8.self) }

  func json() throws -> JSONValue { try JSONValue.parse(body) }

  func header(_ name: String) -> String? { headers[name.lowercased()] }
}

struct TestClientError: Error, CustomStringConvertible {
  let description: String
}

/// Sends one request with URLSession, without caching, cookies or redirects.
enum TestHTTP {
  static let session: URLSession = {
    let configuration = URLSessionConfiguration.ephemeral
    configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
    configuration.httpShouldSetCookies = false
    configuration.timeoutIntervalForRequest = 30
    configuration.httpMaximumConnectionsPerHost = 64
    return URLSession(configuration: configuration)
  }()

  static func send(
    _ method: String, _ url: String, headers: [String: String] = [:], body: [UInt8] = []
  ) async throws -> TestResponse {
    guard let parsed = URL(string: url) else {
      throw TestClientError(description: "invalid URL \(url)")
    }
    var request = URLRequest(url: parsed)
    request.httpMethod = method
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    if !body.isEmpty { request.httpBody = Data(body) }

    let (data, response) = try await session.data(for: request)
    guard let http = response as? HTTPURLResponse else {
      throw TestClientError(description: "not an HTTP response from \(url)")
    }
    var fields: [String: String] = [:]
    for (name, value) in http.allHeaderFields {
      if let name = name as? String, let value = value as? String {
        fields[name.lowercased()] = value
      }
    }
    return TestResponse(status: http.statusCode, headers: fields, body: Array(data))
  }

  static func send(
    _ method: String, _ url: String, headers: [String: String] = [:], json: String
  ) async throws -> TestResponse {
    var withType = headers
    withType["Content-Type"] = "application/json"
    return try await send(method, url, headers: withType, body: Array(json.utf8))
  }
}

/// A blocking HTTP/1.1 client on one TCP connection, for keep-alive and byte-exact tests.
final class RawHTTPConnection {
  private let socket: Int32
  private var buffer: [UInt8] = []

  init(host: String = "127.0.0.1", port: UInt16) throws {
    let isIPv6 = host.contains(":")
    socket = Glibc.socket(isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { throw TestClientError(description: "socket() failed: \(errno)") }

    var timeout = timeval(tv_sec: 30, tv_usec: 0)
    setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let result: Int32
    if isIPv6 {
      var address = sockaddr_in6()
      address.sin6_family = sa_family_t(AF_INET6)
      address.sin6_port = port.bigEndian
      inet_pton(AF_INET6, host, &address.sin6_addr)
      result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
        }
      }
    } else {
      var address = sockaddr_in()
      address.sin_family = sa_family_t(AF_INET)
      address.sin_port = port.bigEndian
      inet_pton(AF_INET, host, &address.sin_addr)
      result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
      }
    }
    guard result == 0 else {
      // No close here: the instance is fully initialised, so throwing runs deinit, which closes
      // the socket. Closing it twice could close a descriptor the process has reused since.
      throw TestClientError(description: "connect to \(host):\(port) failed: errno \(errno)")
    }
  }

  deinit {
    if socket >= 0 { close(socket) }
  }

  /// Writes raw bytes, for requests that a well-behaved client would not send.
  func write(_ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
      let written = bytes[offset...].withUnsafeBytes {
        Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
      }
      guard written > 0 else { throw TestClientError(description: "send failed: errno \(errno)") }
      offset += written
    }
  }

  func writeRequest(
    _ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8] = []
  ) throws {
    var head = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\n"
    for (name, value) in headers { head += "\(name): \(value)\r\n" }
    if !body.isEmpty || method == "POST" || method == "PUT" {
      head += "Content-Length: \(body.count)\r\n"
    }
    head += "\r\n"
    try write(Array(head.utf8) + body)
  }

  /// Reads one response that carries a Content-Length (libmicrohttpd sends one for buffers).
  func readResponse() throws -> TestResponse {
    let headEnd = try readUntilHeadEnd()
    let head = String(decoding: buffer[..<headEnd], as: UTF8.self)
    buffer.removeFirst(headEnd + 4)

    var lines = head.components(separatedBy: "\r\n")
    let statusLine = lines.removeFirst().split(separator: " ")
    guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
      throw TestClientError(description: "invalid status line in \(head)")
    }
    var headers: [String: String] = [:]
    for line in lines {
      guard let colon = line.firstIndex(of: ":") else { continue }
      let name = line[..<colon].lowercased()
      headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    let length = headers["content-length"].flatMap { Int($0) } ?? 0
    while buffer.count < length { try fill() }
    let body = Array(buffer[..<length])
    buffer.removeFirst(length)
    return TestResponse(status: status, headers: headers, body: body)
  }

  func request(
    _ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8] = []
  ) throws -> TestResponse {
    try writeRequest(method, path, headers: headers, body: body)
    return try readResponse()
  }

  /// Returns true when the server closed the connection (a read returns end of file).
  func isClosedByPeer() -> Bool {
    var byte: UInt8 = 0
    return recv(socket, &byte, 1, 0) == 0
  }

  private func readUntilHeadEnd() throws -> Int {
    let marker: [UInt8] = [13, 10, 13, 10]
    while true {
      if buffer.count >= 4 {
        for index in 0...(buffer.count - 4) where Array(buffer[index..<index + 4]) == marker {
          return index
        }
      }
      try fill()
    }
  }

  private func fill() throws {
    var chunk = [UInt8](repeating: 0, count: 16_384)
    let count = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
    guard count > 0 else {
      throw TestClientError(
        description: count == 0 ? "connection closed" : "recv failed: errno \(errno)")
    }
    buffer.append(contentsOf: chunk[..<count])
  }
}

/// A thread-safe value for handlers and tests to share.
final class Locked<Value: Sendable>: @unchecked Sendable {
  private let lock = NSLock()
  private var stored: Value

  init(_ value: Value) { stored = value }

  var value: Value { lock.withLock { stored } }

  func update<Result>(_ body: (inout Value) -> Result) -> Result {
    lock.withLock { body(&stored) }
  }
}
