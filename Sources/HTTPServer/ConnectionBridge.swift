import CMicroHTTPD

/// The handler and limits that the C callbacks reach through the daemon's context pointer.
final class ServerContext: @unchecked Sendable {
  let handler: @Sendable (HTTPRequest) -> HTTPResponse
  let maxBodyBytes: Int
  /// Maximum bytes of an oversize body read and discarded before the 413, so that a client
  /// still sending its body reads the 413 instead of a reset.
  let drainLimit: Int

  init(handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse, maxBodyBytes: Int) {
    self.handler = handler
    self.maxBodyBytes = maxBodyBytes
    self.drainLimit = max(maxBodyBytes * 8, 8 << 20)
  }
}

/// Per-request state kept in libmicrohttpd's `con_cls` slot while the body arrives. Only the
/// connection's own thread touches it.
final class RequestState {
  var body: [UInt8] = []
  /// Set once the body is known to exceed the limit. Later chunks are discarded unread.
  var bodyTooLarge = false
  /// Count of the oversize body's bytes read and discarded so far.
  var discardedBytes = 0
  var responded = false
}

/// The access handler that libmicrohttpd calls several times per request: once after the
/// headers, once per body chunk, and once after the body. No Swift error crosses it.
let accessHandler: MHD_AccessHandlerCallback = {
  contextPointer, connection, url, method, _, uploadData, uploadSize, requestSlot in
  guard let contextPointer, let connection, let uploadSize, let requestSlot else { return .NO }
  let context = Unmanaged<ServerContext>.fromOpaque(contextPointer).takeUnretainedValue()

  guard let statePointer = requestSlot.pointee else {
    let state = RequestState()
    requestSlot.pointee = Unmanaged.passRetained(state).toOpaque()
    if let declared = declaredContentLength(connection), declared > context.maxBodyBytes {
      state.bodyTooLarge = true
      // Closing on unread data resets the connection, which can lose the 413, so the body is
      // drained first, unless the client awaits "100 Continue" or declares over the drain limit.
      if expectsContinue(connection) || declared > context.drainLimit {
        state.responded = true
        return queue(payloadTooLarge(context.maxBodyBytes), on: connection)
      }
    }
    return .YES
  }
  let state = Unmanaged<RequestState>.fromOpaque(statePointer).takeUnretainedValue()

  if uploadSize.pointee > 0 {
    let count = uploadSize.pointee
    uploadSize.pointee = 0
    if state.responded { return .YES }
    if state.bodyTooLarge {
      state.discardedBytes += count
      // A body without a declared length that goes on past the drain limit is cut off.
      if state.discardedBytes > context.drainLimit {
        state.responded = true
        return queue(payloadTooLarge(context.maxBodyBytes), on: connection)
      }
      return .YES
    }
    if let uploadData {
      if state.body.count + count > context.maxBodyBytes {
        state.bodyTooLarge = true
        state.discardedBytes = state.body.count + count
        state.body = []
      } else {
        uploadData.withMemoryRebound(to: UInt8.self, capacity: count) { bytes in
          state.body.append(contentsOf: UnsafeBufferPointer(start: bytes, count: count))
        }
      }
    }
    return .YES
  }

  if state.responded { return .YES }
  state.responded = true
  if state.bodyTooLarge {
    return queue(payloadTooLarge(context.maxBodyBytes), on: connection)
  }
  let request = HTTPRequest(
    method: method.map { String(cString: $0) } ?? "",
    path: url.map { String(cString: $0) } ?? "/",
    query: Dictionary(
      connectionValues(connection, kind: .GET_ARGUMENT_KIND), uniquingKeysWith: { _, last in last }
    ),
    headers: headerFields(connection),
    body: state.body,
    remoteAddress: clientAddress(connection))
  state.body = []
  return queue(context.handler(request), on: connection)
}

/// Releases the request state once libmicrohttpd is done with a request, however it ended.
let requestCompleted: MHD_RequestCompletedCallback = { _, _, requestSlot, _ in
  guard let requestSlot, let statePointer = requestSlot.pointee else { return }
  Unmanaged<RequestState>.fromOpaque(statePointer).release()
  requestSlot.pointee = nil
}

private func payloadTooLarge(_ limit: Int) -> HTTPResponse {
  .json(
    413,
    "{\"code\":\"payload_too_large\",\"error\":\"request body exceeds the limit of \(limit) bytes; "
      + "pass large inputs as URLs that the provider downloads\"}"
  )
}

/// Sends `response` on the connection. A dropped-connection response returns MHD_NO, which
/// makes libmicrohttpd close the socket without writing anything.
private func queue(_ response: HTTPResponse, on connection: OpaquePointer) -> MHD_Result {
  if response.dropsConnection { return .NO }
  let created = response.body.withUnsafeBytes { bytes in
    MHD_create_response_from_buffer(
      bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress), .RESPMEM_MUST_COPY)
  }
  guard let created else { return .NO }
  defer { MHD_destroy_response(created) }

  for (name, value) in response.headers {
    // libmicrohttpd rejects names or values with line breaks and sets Content-Length itself,
    // so a rejected header is skipped rather than failing the response.
    _ = MHD_add_response_header(created, name, value)
  }
  let status = (100...599).contains(response.status) ? response.status : 500
  return MHD_queue_response(connection, UInt32(status), created)
}

private func declaredContentLength(_ connection: OpaquePointer) -> Int? {
  guard
    let raw = MHD_lookup_connection_value(
      connection, .HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH)
  else { return nil }
  let text = String(cString: raw).trimmingSpaces()
  // A length too large for Int is certainly over the limit.
  if !text.isEmpty, text.allSatisfy(\.isASCIIDigit), Int(text) == nil { return Int.max }
  return Int(text)
}

private func expectsContinue(_ connection: OpaquePointer) -> Bool {
  guard let raw = MHD_lookup_connection_value(connection, .HEADER_KIND, MHD_HTTP_HEADER_EXPECT)
  else { return false }
  return String(cString: raw).trimmingSpaces().lowercased() == "100-continue"
}

private func headerFields(_ connection: OpaquePointer) -> [String: String] {
  var fields: [String: String] = [:]
  for (name, value) in connectionValues(connection, kind: .HEADER_KIND) {
    let key = name.lowercased()
    if let existing = fields[key] {
      fields[key] = existing + ", " + value
    } else {
      fields[key] = value
    }
  }
  return fields
}

private final class PairCollector {
  var pairs: [(String, String)] = []
}

/// Returns the connection's values of one kind (headers or query arguments) in arrival order.
/// A query argument without "=" has the value "".
private func connectionValues(_ connection: OpaquePointer, kind: MHD_ValueKind) -> [(
  String, String
)] {
  let collector = PairCollector()
  let iterator: MHD_KeyValueIterator = { collectorPointer, _, key, value in
    guard let collectorPointer, let key else { return .YES }
    let collector = Unmanaged<PairCollector>.fromOpaque(collectorPointer).takeUnretainedValue()
    collector.pairs.append((String(cString: key), value.map { String(cString: $0) } ?? ""))
    return .YES
  }
  withExtendedLifetime(collector) {
    _ = MHD_get_connection_values(
      connection, kind, iterator, Unmanaged.passUnretained(collector).toOpaque())
  }
  return collector.pairs
}

private func clientAddress(_ connection: OpaquePointer) -> String {
  var buffer = [CChar](repeating: 0, count: 64)
  let result = buffer.withUnsafeMutableBufferPointer { pointer in
    aq_mhd_client_address(connection, pointer.baseAddress, socklen_t(pointer.count))
  }
  guard result == 0 else { return "" }
  let text = String(
    decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  // A dual-stack socket reports IPv4 clients as IPv4-mapped IPv6 addresses.
  if text.hasPrefix("::ffff:"), text.contains(".") { return String(text.dropFirst(7)) }
  return text
}

extension String {
  fileprivate func trimmingSpaces() -> String {
    String(
      self.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
  }
}

extension Character {
  fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
