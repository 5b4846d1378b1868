import CCurl
import Foundation

/// One request's state while curl works on it. Touched only by the event-loop thread once
/// handed over.
final class Transfer: @unchecked Sendable {
  let request: ClientRequest
  let policy: AddressPolicy
  private var continuation: CheckedContinuation<Result<ClientResponse, ClientError>, Never>?
  private var responseBody: [UInt8] = []
  private var responseHeaders: [String: String] = [:]
  private var headerList: UnsafeMutablePointer<curl_slist>?
  private var retained: Unmanaged<Transfer>?
  private let startedAt = DispatchTime.now()
  var bodyTooLarge = false
  var refusedAddress: String?

  init(
    request: ClientRequest, policy: AddressPolicy,
    continuation: CheckedContinuation<Result<ClientResponse, ClientError>, Never>
  ) {
    self.request = request
    self.policy = policy
    self.continuation = continuation
  }

  deinit {
    curl_slist_free_all(headerList)
  }

  /// Builds the easy handle; on a bad request, completes the transfer and returns nil.
  func makeHandle(userAgent: String) -> UnsafeMutableRawPointer? {
    guard let easy = curl_easy_init() else {
      fail(ClientError(.invalidRequest, "cannot create a curl handle"))
      return nil
    }
    let context = Unmanaged.passRetained(self)
    retained = context
    let opaque = context.toOpaque()

    aq_curl_setopt_string(easy, CURLOPT_URL, request.url)
    aq_curl_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https")
    aq_curl_setopt_string(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
    aq_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
    aq_curl_setopt_long(easy, CURLOPT_FOLLOWLOCATION, request.followRedirects ? 1 : 0)
    aq_curl_setopt_long(easy, CURLOPT_MAXREDIRS, 5)
    if request.freshConnection { aq_curl_setopt_long(easy, CURLOPT_FRESH_CONNECT, 1) }
    aq_curl_setopt_long(easy, CURLOPT_TIMEOUT_MS, max(1, Int(request.timeout * 1000)))
    aq_curl_setopt_long(
      easy, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(min(request.timeout, 10) * 1000)))
    aq_curl_setopt_string(easy, CURLOPT_ACCEPT_ENCODING, "")
    aq_curl_setopt_string(easy, CURLOPT_USERAGENT, userAgent)
    aq_curl_setopt_pointer(easy, CURLOPT_PRIVATE, opaque)

    aq_curl_setopt_data_callback(easy, CURLOPT_WRITEFUNCTION, Self.receiveBody)
    aq_curl_setopt_pointer(easy, CURLOPT_WRITEDATA, opaque)
    aq_curl_setopt_data_callback(easy, CURLOPT_HEADERFUNCTION, Self.receiveHeader)
    aq_curl_setopt_pointer(easy, CURLOPT_HEADERDATA, opaque)
    aq_curl_setopt_opensocket_callback(easy, Self.openCheckedSocket)
    aq_curl_setopt_pointer(easy, CURLOPT_OPENSOCKETDATA, opaque)

    setMethodAndBody(easy)

    // An empty Expect header stops curl from waiting for "100 Continue" on large bodies.
    headerList = curl_slist_append(headerList, "Expect:")
    for (name, value) in request.headers {
      let line = value.isEmpty ? "\(name);" : "\(name): \(value)"
      headerList = curl_slist_append(headerList, line)
    }
    let hasContentType = request.headers.contains { $0.0.lowercased() == "content-type" }
    if !hasContentType && (request.body ?? []).isEmpty {
      // Without this, curl labels an empty POST body application/x-www-form-urlencoded.
      headerList = curl_slist_append(headerList, "Content-Type:")
    }
    aq_curl_setopt_pointer(easy, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headerList))
    return easy
  }

  private func setMethodAndBody(_ easy: UnsafeMutableRawPointer) {
    let method = request.method.uppercased()
    switch method {
    case "GET": aq_curl_setopt_long(easy, CURLOPT_HTTPGET, 1)
    case "HEAD": aq_curl_setopt_long(easy, CURLOPT_NOBODY, 1)
    default: aq_curl_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method)
    }
    guard method != "GET", method != "HEAD" else { return }
    let body = request.body ?? []
    if method == "POST" || !body.isEmpty {
      aq_curl_setopt_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
      body.withUnsafeBufferPointer { buffer in
        // COPYPOSTFIELDS copies the bytes, so the buffer need not outlive this call. An empty
        // body still needs a valid pointer.
        let pointer = buffer.baseAddress.map { UnsafeMutableRawPointer(mutating: $0) }
        var empty: UInt8 = 0
        aq_curl_setopt_pointer(
          easy, CURLOPT_COPYPOSTFIELDS,
          pointer ?? withUnsafeMutablePointer(to: &empty) { UnsafeMutableRawPointer($0) })
      }
      if method != "POST" { aq_curl_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method) }
    }
  }

  func finish(code: CURLcode, handle: UnsafeMutableRawPointer) {
    if code == CURLE_OK {
      var status = 0
      aq_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
      let elapsed = Double(DispatchTime.now().uptimeNanoseconds - startedAt.uptimeNanoseconds)
      complete(
        .success(
          ClientResponse(
            statusCode: status, headers: responseHeaders, body: responseBody,
            durationMs: elapsed / 1_000_000)))
      return
    }
    fail(error(for: code))
  }

  func fail(_ error: ClientError) {
    complete(.failure(error))
  }

  private func complete(_ result: Result<ClientResponse, ClientError>) {
    continuation?.resume(returning: result)
    continuation = nil
    retained?.release()
    retained = nil
  }

  private func error(for code: CURLcode) -> ClientError {
    let reason = String(cString: curl_easy_strerror(code))
    if let refusedAddress {
      return ClientError(
        .addressNotAllowed,
        "\(request.url) resolves to \(refusedAddress), a loopback or private address; "
          + "start the service with --allow-private-network to allow it")
    }
    if bodyTooLarge {
      return ClientError(
        .responseTooLarge,
        "response from \(request.url) exceeds \(request.maxResponseBytes) bytes")
    }
    switch code {
    case CURLE_OPERATION_TIMEDOUT:
      return ClientError(
        .timeout, "request to \(request.url) timed out after \(request.timeout) s")
    case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_PROXY:
      return ClientError(.connect, "cannot connect to \(request.url): \(reason)")
    case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL:
      return ClientError(.invalidRequest, "invalid URL \(request.url): \(reason)")
    default:
      return ClientError(.network, "request to \(request.url) failed: \(reason)")
    }
  }

  // MARK: C callbacks (run on the event-loop thread)

  private static let receiveBody: aq_curl_data_callback = { data, size, count, context in
    guard let context, let data else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let length = size * count
    if transfer.responseBody.count + length > transfer.request.maxResponseBytes {
      transfer.bodyTooLarge = true
      return 0
    }
    data.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
      transfer.responseBody.append(contentsOf: UnsafeBufferPointer(start: bytes, count: length))
    }
    return length
  }

  private static let receiveHeader: aq_curl_data_callback = { data, size, count, context in
    guard let context, let data else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let length = size * count
    let line = data.withMemoryRebound(to: UInt8.self, capacity: length) {
      UnsafeBufferPointer(start: $0, count: length)
    }
    if line.starts(with: "HTTP/".utf8) {
      // A new status line starts a new response (after a redirect or "100 Continue").
      transfer.responseHeaders.removeAll()
      transfer.responseBody.removeAll()
      return length
    }
    guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return length }
    // Names and values are trimmed as bytes, because Foundation's trimming was 2.6 % of the
    // service's CPU time in a profile of busy polling.
    let name = String(decoding: trimmed(line[..<colon]), as: UTF8.self).lowercased()
    let value = String(decoding: trimmed(line[(colon + 1)...]), as: UTF8.self)
    if let existing = transfer.responseHeaders[name] {
      transfer.responseHeaders[name] = existing + ", " + value
    } else {
      transfer.responseHeaders[name] = value
    }
    return length
  }

  /// Returns `bytes` without leading and trailing spaces, tabs and line breaks.
  private static func trimmed(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> Slice<
    UnsafeBufferPointer<UInt8>
  > {
    let isSpace = { (byte: UInt8) in byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A }
    guard let first = bytes.firstIndex(where: { !isSpace($0) }),
      let last = bytes.lastIndex(where: { !isSpace($0) })
    else { return bytes[bytes.startIndex..<bytes.startIndex] }
    return bytes[first...last]
  }

  /// Opens each socket that curl requests, after checking the address against the policy, so a
  /// refused address never even gets a connection attempt (redirect targets included).
  private static let openCheckedSocket: curl_opensocket_callback = { context, _, address in
    guard let context, let address else { return -1 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let text = Transfer.numericHost(address)
    guard transfer.policy.allows(text) else {
      transfer.refusedAddress = text
      return -1  // CURL_SOCKET_BAD
    }
    return socket(address.pointee.family, address.pointee.socktype, address.pointee.protocol)
  }

  private static func numericHost(_ address: UnsafeMutablePointer<curl_sockaddr>) -> String {
    var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
    let family = address.pointee.family
    withUnsafeMutablePointer(to: &address.pointee.addr) { raw in
      if family == AF_INET {
        raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
          _ = inet_ntop(AF_INET, &v4.pointee.sin_addr, &buffer, socklen_t(buffer.count))
        }
      } else if family == AF_INET6 {
        raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
          _ = inet_ntop(AF_INET6, &v6.pointee.sin6_addr, &buffer, socklen_t(buffer.count))
        }
      }
    }
    let length = buffer.firstIndex(of: 0) ?? buffer.count
    return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}
