import Foundation
import HTTPClient
import Storage
import Support

/// A request the API rejects, with the HTTP status, a machine-readable code and a message that
/// names the field and the fix.
public struct RequestError: Error, CustomStringConvertible, Sendable {
  public let status: Int
  public let code: String
  public let message: String
  public var description: String { message }

  public init(status: Int = 400, code: String, _ message: String) {
    self.status = status
    self.code = code
    self.message = message
  }
}

/// Turns the JSON body of `POST /v1/tasks` into a task record, or a `RequestError`.
public struct TaskRequestParser: Sendable {
  public let knownProviders: [String]
  public let now: Double
  /// When false, URLs whose host is a loopback or private address literal (or `localhost`)
  /// are rejected at once; hostnames are checked again on every connection.
  public let allowPrivateNetwork: Bool

  /// Headers that describe the connection or the body framing. The HTTP client sets them, and
  /// a client-supplied value would corrupt the request.
  static let reservedHeaders: Set<String> = [
    "content-length", "transfer-encoding", "host", "connection", "expect", "upgrade", "te",
    "trailer", "keep-alive", "proxy-connection",
  ]

  static let methods: Set<String> = ["GET", "POST", "PUT", "DELETE", "PATCH"]
  static let fields: Set<String> = [
    "targetUrl", "method", "headers", "body", "timeout", "maxRetries", "retryBackoff",
    "delayUntil", "priority", "onCompleteUrl", "provider", "pollConfig", "waitForSignal",
    "maxWaitTime",
  ]

  /// The base that `{asyncqueue_callback_url}` expands under, e.g.
  /// `http://127.0.0.1:8080/v1/callbacks/`; nil leaves the placeholder unexpanded.
  public let callbackBase: String?
  /// Returns the team that owns a vault token id, or nil when there is no such token.
  public let tokenOwner: @Sendable (String) -> String?

  public init(
    knownProviders: [String], now: Double, allowPrivateNetwork: Bool = true,
    callbackBase: String? = nil, tokenOwner: @escaping @Sendable (String) -> String? = { _ in nil }
  ) {
    self.knownProviders = knownProviders
    self.now = now
    self.allowPrivateNetwork = allowPrivateNetwork
    self.callbackBase = callbackBase
    self.tokenOwner = tokenOwner
  }

  /// The placeholder replaced by a task's own callback URL.
  public static let callbackPlaceholder = "{asyncqueue_callback_url}"

  /// A parsed task with the callback id made for it.
  public struct Parsed: Sendable {
    public var task: TaskRecord
    /// The id in the task's `/v1/callbacks/{id}` URL, when the placeholder was used.
    public var callbackId: String?
  }

  public func parse(_ body: [UInt8], teamId: String) throws(RequestError) -> TaskRecord {
    try parseRequest(body, teamId: teamId).task
  }

  public func parseRequest(_ body: [UInt8], teamId: String) throws(RequestError) -> Parsed {
    let document: JSONValue
    do {
      document = try JSONValue.parse(body)
    } catch {
      throw RequestError(
        code: "invalid_json",
        "request body is not valid JSON: \(error.reason.trimmingSuffix(".")); send one JSON "
          + "object such as "
          + #"{"targetUrl": "https://…"}"#)
    }
    guard let fields = document.objectValue else {
      throw RequestError(
        code: "invalid_json",
        "request body must be a JSON object; got \(Verdict.shape(of: document))")
    }
    for key in fields.keys.sorted() where !Self.fields.contains(key) {
      throw RequestError(
        code: "unknown_field",
        "unknown field '\(key)'; accepted fields are \(Self.fields.sorted().joined(separator: ", "))"
      )
    }
    if let value = fields["waitForSignal"], !value.isNull, value.boolValue == nil {
      throw RequestError(code: "invalid_field", "'waitForSignal' must be true or false")
    }
    if let value = fields["maxWaitTime"], !value.isNull {
      guard let seconds = value.doubleValue, seconds >= 1, seconds <= 86400 else {
        throw RequestError(
          code: "invalid_field", "'maxWaitTime' must be a number of seconds from 1 to 86400")
      }
    }
    let waitForSignal = fields["waitForSignal"]?.boolValue == true
    if waitForSignal,
      fields["provider"].map({ !$0.isNull }) == true
        || fields["pollConfig"].map({ !$0.isNull }) == true
    {
      throw RequestError(
        code: "conflicting_fields",
        "'waitForSignal' applies to plain calls; a provider task ends when its job ends")
    }

    // Expand the callback placeholder before the URL is checked. An object body is serialized
    // first, so the placeholder works inside it too.
    var callbackId: String?
    var expanded = fields
    if let body = fields["body"], body.objectValue != nil || body.arrayValue != nil {
      expanded["body"] = .string(body.serialized())
    }
    let usesCallback = [expanded["targetUrl"]?.stringValue, expanded["body"]?.stringValue]
      .contains { $0?.contains(Self.callbackPlaceholder) == true }
    if usesCallback, let callbackBase {
      let id = Crypto.randomHex(bytes: 32)
      callbackId = id
      for key in ["targetUrl", "body"] {
        if let text = expanded[key]?.stringValue {
          expanded[key] = .string(
            text.replacingOccurrences(of: Self.callbackPlaceholder, with: callbackBase + id))
        }
      }
    }

    let targetUrl = try httpURL(expanded["targetUrl"], field: "targetUrl", required: true)!
    let method = try parseMethod(fields["method"])
    let headers = try parseHeaders(fields["headers"])
    for (name, value) in headers where value.hasPrefix("tok_") {
      guard tokenOwner(value) == teamId else {
        throw RequestError(
          code: "token_not_found",
          "header '\(name)' names vault token '\(value)', which does not exist; create it with "
            + "POST /v1/tokens")
      }
    }
    let requestBody = try parseBody(expanded["body"])
    if let provider = fields["provider"], !provider.isNull, let config = fields["pollConfig"],
      !config.isNull
    {
      throw RequestError(
        code: "conflicting_fields",
        "'provider' and 'pollConfig' are both set; send one: a template id or a custom pollConfig")
    }
    let provider = try parseProvider(fields["provider"])
    let pollConfig = try parsePollConfig(fields["pollConfig"])

    var task = TaskRecord(
      id: UUID().uuidString.lowercased(), teamId: teamId, status: .pending, targetUrl: targetUrl,
      method: method, headers: headers, body: requestBody, provider: provider,
      pollConfig: pollConfig,
      onCompleteUrl: try httpURL(fields["onCompleteUrl"], field: "onCompleteUrl", required: false),
      timeout: try number(fields["timeout"], field: "timeout", range: 1...600, default: 30),
      maxRetries: Int(
        try number(
          fields["maxRetries"], field: "maxRetries", range: 0...10, default: 3, integer: true)),
      retryBackoff: try parseBackoff(fields["retryBackoff"]),
      priority: Int(
        try number(fields["priority"], field: "priority", range: 1...10, default: 5, integer: true)),
      delayUntil: try parseDelay(fields["delayUntil"]), createdAt: now)
    if let delay = task.delayUntil, delay > now {
      task.status = .delayed
      task.nextRunAt = delay
    } else {
      task.nextRunAt = now
    }
    if waitForSignal { task.waitForSignal = true }
    // maxWaitTime bounds the wait after a plain call; a provider task waits for its job.
    if waitForSignal || (callbackId != nil && !task.isProviderTask) {
      task.maxWaitTime = try number(
        fields["maxWaitTime"], field: "maxWaitTime", range: 1...86400, default: 30)
    }
    if let callbackId, let callbackBase { task.callbackUrl = callbackBase + callbackId }
    return Parsed(task: task, callbackId: callbackId)
  }

  private func httpURL(_ value: JSONValue?, field: String, required: Bool) throws(RequestError)
    -> String?
  {
    guard let value, !value.isNull else {
      if required {
        throw RequestError(
          code: "missing_field", "'\(field)' is required: the http or https URL to call")
      }
      return nil
    }
    guard let text = value.stringValue else {
      throw RequestError(code: "invalid_field", "'\(field)' must be a string URL")
    }
    guard let url = URLComponents(string: text),
      let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
      let host = url.host, !host.isEmpty,
      !text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7f })
    else {
      throw RequestError(
        code: "invalid_field",
        "'\(field)' must be an absolute http or https URL without spaces, got \(quoted(text))")
    }
    if let port = url.port, !(1...65535).contains(port) {
      throw RequestError(
        code: "invalid_field", "'\(field)' has port \(port); ports run from 1 to 65535")
    }
    try checkHostAllowed(host, field: field)
    guard text.utf8.count <= 8192 else {
      throw RequestError(code: "invalid_field", "'\(field)' is longer than 8192 bytes")
    }
    return text
  }

  /// Rejects a literal loopback or private host when private networks are not allowed.
  private func checkHostAllowed(_ rawHost: String, field: String) throws(RequestError) {
    guard !allowPrivateNetwork else { return }
    let host = rawHost.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
    let isLiteral = host.allSatisfy { $0.isHexDigit || $0 == "." || $0 == ":" }
    if host == "localhost" || host.hasSuffix(".localhost")
      || (isLiteral && AddressPolicy.isPrivate(host))
    {
      throw RequestError(
        code: "address_not_allowed",
        "'\(field)' points at \(host), a loopback or private address; the server refuses those "
          + "unless it runs with --allow-private-network")
    }
  }

  private func parseMethod(_ value: JSONValue?) throws(RequestError) -> String {
    guard let value, !value.isNull else { return "POST" }
    guard let text = value.stringValue, Self.methods.contains(text.uppercased()) else {
      throw RequestError(
        code: "invalid_field",
        "'method' must be one of \(Self.methods.sorted().joined(separator: ", "))")
    }
    return text.uppercased()
  }

  private func parseHeaders(_ value: JSONValue?) throws(RequestError) -> [String: String] {
    guard let value, !value.isNull else { return [:] }
    guard let members = value.objectValue else {
      throw RequestError(code: "invalid_field", "'headers' must be an object of strings")
    }
    var headers: [String: String] = [:]
    for (name, headerValue) in members {
      let validName =
        !name.isEmpty
        && name.utf8.allSatisfy { byte in
          byte > 32 && byte < 127 && !"()<>@,;:\\\"/[]?={}".utf8.contains(byte)
        }
      guard validName else {
        throw RequestError(
          code: "invalid_field", "header name \(quoted(name)) is not a valid token")
      }
      guard let text = headerValue.stringValue ?? headerValue.intValue.map(String.init) else {
        throw RequestError(code: "invalid_field", "header '\(name)' must have a string value")
      }
      guard
        !text.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7f }
        )
      else {
        throw RequestError(
          code: "invalid_field", "header '\(name)' contains a control character or line break")
      }
      guard !Self.reservedHeaders.contains(name.lowercased()) else {
        throw RequestError(
          code: "invalid_field",
          "header '\(name)' is set by the server from the request itself; remove it")
      }
      headers[name] = text
    }
    return headers
  }

  private func parseBody(_ value: JSONValue?) throws(RequestError) -> String? {
    guard let value, !value.isNull else { return nil }
    switch value {
    case .string(let text): return text
    case .object, .array: return value.serialized()
    default:
      throw RequestError(code: "invalid_field", "'body' must be a string (usually JSON text)")
    }
  }

  private func parseProvider(_ value: JSONValue?) throws(RequestError) -> String? {
    guard let value, !value.isNull else { return nil }
    guard let id = value.stringValue, knownProviders.contains(id) else {
      let shown = value.stringValue.map(quoted) ?? value.serialized()
      throw RequestError(
        code: "unknown_provider",
        "unknown provider \(shown); known providers are \(knownProviders.sorted().joined(separator: ", "))"
      )
    }
    return id
  }

  private func parsePollConfig(_ value: JSONValue?) throws(RequestError) -> JSONValue? {
    guard let value, !value.isNull else { return nil }
    if let problem = PollConfigRules.problem(in: value, requireURLTemplate: true) {
      throw RequestError(code: "invalid_poll_config", "pollConfig: \(problem)")
    }
    for key in ["urlTemplate", "resultUrlTemplate"] {
      guard let template = value[key]?.stringValue else { continue }
      let lowered = template.lowercased()
      guard lowered.hasPrefix("http://") || lowered.hasPrefix("https://") || template.hasPrefix("{")
      else {
        throw RequestError(
          code: "invalid_poll_config",
          "pollConfig: '\(key)' must start with http://, https:// or a {placeholder} that holds a "
            + "whole URL")
      }
      if let host = URLComponents(string: template)?.host, !host.contains("{") {
        try checkHostAllowed(host, field: "pollConfig.\(key)")
      }
    }
    if value["doneValues"]?.arrayValue?.isEmpty == true {
      throw RequestError(
        code: "invalid_poll_config", "pollConfig: 'doneValues' must list at least one value")
    }
    return value
  }

  private func parseBackoff(_ value: JSONValue?) throws(RequestError) -> String {
    guard let value, !value.isNull else { return "exponential" }
    guard let text = value.stringValue, text == "exponential" || text == "linear" else {
      throw RequestError(code: "invalid_field", "'retryBackoff' must be 'exponential' or 'linear'")
    }
    return text
  }

  private func parseDelay(_ value: JSONValue?) throws(RequestError) -> Double? {
    guard let value, !value.isNull else { return nil }
    guard let text = value.stringValue, let date = Timestamp.parse(text),
      Self.calendarDateExists(text)
    else {
      throw RequestError(
        code: "invalid_field",
        "'delayUntil' must be an ISO 8601 date-time such as 2026-12-04T18:00:00Z")
    }
    return date.timeIntervalSince1970
  }

  /// Returns whether the `YYYY-MM-DD` at the start of an ISO 8601 text names a real day; the date
  /// parser quietly rolls 2027-02-30 over to March.
  static func calendarDateExists(_ text: String) -> Bool {
    let parts = text.prefix(10).split(separator: "-").compactMap { Int($0) }
    guard parts.count == 3, (1...12).contains(parts[1]) else { return false }
    let (year, month, day) = (parts[0], parts[1], parts[2])
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return (1...lengths[month - 1]).contains(day)
  }

  private func number(
    _ value: JSONValue?, field: String, range: ClosedRange<Double>, default fallback: Double,
    integer: Bool = false
  ) throws(RequestError) -> Double {
    guard let value, !value.isNull else { return fallback }
    guard let number = value.doubleValue, range.contains(number),
      !integer || number.rounded() == number
    else {
      let kind = integer ? "an integer" : "a number"
      throw RequestError(
        code: "invalid_field",
        "'\(field)' must be \(kind) from \(format(range.lowerBound)) to \(format(range.upperBound))"
      )
    }
    return number
  }

  private func format(_ number: Double) -> String {
    number.rounded() == number ? String(Int(number)) : String(number)
  }

  private func quoted(_ text: String) -> String {
    "'" + (text.count > 100 ? String(text.prefix(100)) + "…" : text) + "'"
  }
}

extension String {
  /// Returns the string without one trailing `suffix`, when it ends with it.
  fileprivate func trimmingSuffix(_ suffix: String) -> String {
    hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
  }
}
