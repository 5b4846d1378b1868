/// An HTTP request as the server's handler receives it, with the body read completely.
public struct HTTPRequest: Sendable {
  public let method: String
  /// The percent-decoded path without the query string, for example "/v1/tasks/abc".
  public let path: String
  /// Percent-decoded query parameters. When a name repeats, the last value wins.
  public let query: [String: String]
  /// Header fields keyed by lowercased name. Repeated fields are joined with ", ".
  public let headers: [String: String]
  public let body: [UInt8]
  /// The client's IP address as text, for example "127.0.0.1" or "::1".
  public let remoteAddress: String

  public init(
    method: String, path: String, query: [String: String] = [:], headers: [String: String] = [:],
    body: [UInt8] = [], remoteAddress: String = "127.0.0.1"
  ) {
    self.method = method
    self.path = path
    self.query = query
    var lowercased: [String: String] = [:]
    for (name, value) in headers { lowercased[name.lowercased()] = value }
    self.headers = lowercased
    self.body = body
    self.remoteAddress = remoteAddress
  }

  /// Returns the value of a header field, matching the name case-insensitively.
  public func header(_ name: String) -> String? {
    headers[name.lowercased()]
  }
}

/// An HTTP response that a handler returns. The server adds Content-Length itself.
public struct HTTPResponse: Sendable {
  public var status: Int
  public var headers: [(String, String)]
  public var body: [UInt8]
  /// Whether the server closes the connection without sending anything, which imitates a
  /// peer or proxy that drops the connection.
  public var dropsConnection: Bool = false

  public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
    self.status = status
    self.headers = headers
    self.body = body
  }

  /// Creates a response with a JSON body and `Content-Type: application/json`.
  public static func json(_ status: Int, _ text: String, headers: [(String, String)] = [])
    -> HTTPResponse
  {
    HTTPResponse(
      status: status, headers: [("Content-Type", "application/json")] + headers,
      body: Array(text.utf8))
  }

  /// Creates a response with a plain-text body.
  public static func text(_ status: Int, _ text: String) -> HTTPResponse {
    HTTPResponse(
      status: status, headers: [("Content-Type", "text/plain; charset=utf-8")],
      body: Array(text.utf8))
  }

  /// A response that closes the connection without sending a status line.
  public static var droppedConnection: HTTPResponse {
    var response = HTTPResponse(status: 500)
    response.dropsConnection = true
    return response
  }

  /// Returns the first value of a header field, matching the name case-insensitively.
  public func header(_ name: String) -> String? {
    let lowercased = name.lowercased()
    return headers.first { $0.0.lowercased() == lowercased }?.1
  }
}

/// An error from starting the server, such as an address already in use.
public struct HTTPServerError: Error, CustomStringConvertible, Sendable {
  public let message: String

  public init(message: String) {
    self.message = message
  }

  public var description: String { message }
}
