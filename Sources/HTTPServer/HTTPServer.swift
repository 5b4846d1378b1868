import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An HTTP/1.1 server on libmicrohttpd that runs each connection on its own thread, so a
/// handler may block (for example to hold a long-poll request) without stalling other clients.
///
/// The handler runs once per request, after the whole body has arrived. Bodies larger than
/// `maxBodyBytes` are answered with 413 and never reach the handler. Do not call `stop()` from
/// inside the handler: stopping waits for every running handler to return.
public final class HTTPServer: @unchecked Sendable {
  /// Simultaneous connections accepted before new ones are refused.
  public static let connectionLimit: UInt32 = 4096
  /// Seconds an idle keep-alive connection stays open.
  public static let connectionTimeoutSeconds: UInt32 = 60

  private let host: String
  private let requestedPort: UInt16
  private let context: ServerContext
  private let daemon = Mutex<OpaquePointer?>(nil)
  private let boundPort = Atomic<UInt16>(0)

  /// Creates a stopped server. Port 0 picks a free port when the server starts. The host is an
  /// IPv4 or IPv6 address literal ("127.0.0.1", "::1", "::" for both families) or "localhost".
  /// NOTE: the dual-stack path ("::") is untested, because the tests bind only to loopback.
  public init(
    host: String, port: UInt16, maxBodyBytes: Int,
    handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse
  ) {
    self.host = host
    self.requestedPort = port
    self.context = ServerContext(handler: handler, maxBodyBytes: max(0, maxBodyBytes))
  }

  deinit {
    stop()
  }

  /// The port the server listens on once started, or the requested port before that.
  public var port: UInt16 {
    let bound = boundPort.load(ordering: .acquiring)
    return bound == 0 ? requestedPort : bound
  }

  /// Binds the socket and starts serving. Throws when the address is invalid or in use, or
  /// when the server is already running.
  public func start() throws(HTTPServerError) {
    try daemon.withLock { (daemon: inout OpaquePointer?) throws(HTTPServerError) in
      guard daemon == nil else {
        throw HTTPServerError(message: "HTTP server on \(endpoint(port)) is already running")
      }
      let address = host == "localhost" ? "127.0.0.1" : host
      var isIPv6: Int32 = 0
      var bound: UInt16 = 0
      let socket = aq_listen_socket(address, requestedPort, Int32(SOMAXCONN), &isIPv6, &bound)
      guard socket >= 0 else {
        throw HTTPServerError(
          message: "failed to listen on \(endpoint(requestedPort)): \(describeErrno(errno))")
      }

      var flags =
        MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_THREAD_PER_CONNECTION.rawValue
        | MHD_USE_POLL.rawValue | MHD_USE_ITC.rawValue
      if isIPv6 != 0 { flags |= MHD_USE_IPv6.rawValue }
      let started = aq_mhd_start(
        flags, socket, accessHandler, Unmanaged.passUnretained(context).toOpaque(),
        requestCompleted, nil, Self.connectionLimit, Self.connectionTimeoutSeconds)
      guard let started else {
        close(socket)
        throw HTTPServerError(
          message: "libmicrohttpd failed to start the HTTP server on \(endpoint(bound))")
      }
      daemon = started
      boundPort.store(bound, ordering: .releasing)
    }
  }

  /// Stops accepting connections, closes open ones and waits for running handlers to return.
  /// Calling it again, or on a server that never started, does nothing.
  public func stop() {
    daemon.withLock { daemon in
      guard let running = daemon else { return }
      MHD_stop_daemon(running)
      daemon = nil
    }
  }

  private func endpoint(_ port: UInt16) -> String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
  }
}

private func describeErrno(_ code: Int32) -> String {
  if code == EINVAL { return "invalid address (expected an IP address literal or localhost)" }
  guard let text = strerror(code) else { return "error \(code)" }
  return String(cString: text)
}
