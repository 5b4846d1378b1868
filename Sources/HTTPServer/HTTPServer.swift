// Temporary stand-in with the agreed API, replaced by the libmicrohttpd server on merge.
import CMicroHTTPD

public struct HTTPRequest: Sendable {
  public let method: String
  public let path: String
  public let query: [String: String]
  public let headers: [String: String]
  public let body: [UInt8]
  public let remoteAddress: String
  public func header(_ name: String) -> String? { headers[name.lowercased()] }
}
public struct HTTPResponse: Sendable {
  public var status: Int
  public var headers: [(String, String)]
  public var body: [UInt8]
  public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
    self.status = status
    self.headers = headers
    self.body = body
  }
  public static func json(_ status: Int, _ text: String, headers: [(String, String)] = [])
    -> HTTPResponse
  {
    HTTPResponse(
      status: status, headers: [("Content-Type", "application/json")] + headers,
      body: Array(text.utf8))
  }
  public static func text(_ status: Int, _ text: String) -> HTTPResponse {
    HTTPResponse(status: status, headers: [("Content-Type", "text/plain")], body: Array(text.utf8))
  }
}
public struct HTTPServerError: Error, CustomStringConvertible, Sendable {
  public let message: String
  public var description: String { message }
}
public final class HTTPServer: @unchecked Sendable {
  public init(
    host: String, port: UInt16, maxBodyBytes: Int,
    handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse
  ) {}
  public func start() throws(HTTPServerError) {}
  public var port: UInt16 { 0 }
  public func stop() {}
}
