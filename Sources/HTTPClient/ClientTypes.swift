/// An outbound HTTP request.
public struct ClientRequest: Sendable {
  public var method: String
  public var url: String
  public var headers: [(String, String)]
  public var body: [UInt8]?
  /// Seconds allowed for the whole exchange.
  public var timeout: Double
  /// Larger bodies end the transfer with `ClientError.Kind.responseTooLarge`.
  public var maxResponseBytes: Int
  public var followRedirects: Bool
  /// Opens a new connection instead of reusing one. curl silently resends a request once when
  /// a reused connection turns out dead, which would duplicate a request that is not safe to
  /// repeat, such as a provider submit.
  public var freshConnection = false

  public init(
    method: String, url: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
    timeout: Double = 30, maxResponseBytes: Int = 64 << 20, followRedirects: Bool = true
  ) {
    self.method = method
    self.url = url
    self.headers = headers
    self.body = body
    self.timeout = timeout
    self.maxResponseBytes = maxResponseBytes
    self.followRedirects = followRedirects
  }
}

/// A response with any status code: a 500 is a response, not an error.
public struct ClientResponse: Sendable {
  public var statusCode: Int
  /// Header names lowercased; repeated headers joined with ", ".
  public var headers: [String: String]
  public var body: [UInt8]
  /// Milliseconds from the start of the transfer to its end.
  public var durationMs: Double

  public init(statusCode: Int, headers: [String: String], body: [UInt8], durationMs: Double) {
    self.statusCode = statusCode
    self.headers = headers
    self.body = body
    self.durationMs = durationMs
  }
}

/// A request that got no HTTP response.
public struct ClientError: Error, CustomStringConvertible, Sendable {
  public enum Kind: String, Sendable {
    /// DNS failure or connection refused.
    case connect = "connect_failed"
    case timeout = "timeout"
    /// The connection broke before a whole response arrived.
    case network = "network_error"
    case responseTooLarge = "response_too_large"
    /// The target resolved to a loopback, private or link-local address, and the client was
    /// not started with private networks allowed.
    case addressNotAllowed = "address_not_allowed"
    case invalidRequest = "invalid_request"
  }

  public let kind: Kind
  public let message: String
  public var description: String { message }

  public init(_ kind: Kind, _ message: String) {
    self.kind = kind
    self.message = message
  }
}
