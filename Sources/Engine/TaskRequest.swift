import Foundation
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

  static let methods: Set<String> = ["GET", "POST", "PUT", "DELETE", "PATCH"]
  static let fields: Set<String> = [
    "targetUrl", "method", "headers", "body", "timeout", "maxRetries", "retryBackoff",
    "delayUntil", "priority", "onCompleteUrl", "provider", "pollConfig", "waitForSignal",
    "maxWaitTime",
  ]

  public init(knownProviders: [String], now: Double) {
    self.knownProviders = knownProviders
    self.now = now
  }

  public func parse(_ body: [UInt8], teamId: String) throws(RequestError) -> TaskRecord {
    let document: JSONValue
    do {
      document = try JSONValue.parse(body)
    } catch {
      throw RequestError(code: "invalid_json", "request body is not valid JSON: \(error)")
    }
    guard let fields = document.objectValue else {
      throw RequestError(code: "invalid_json", "request body must be a JSON object")
    }
    for key in fields.keys.sorted() where !Self.fields.contains(key) {
      throw RequestError(
        code: "unknown_field",
        "unknown field '\(key)'; accepted fields are \(Self.fields.sorted().joined(separator: ", "))"
      )
    }
    if fields["waitForSignal"]?.boolValue == true {
      throw RequestError(
        code: "unsupported_field",
        "'waitForSignal' is not supported by this server yet; remove it or set it to false")
    }

    let targetUrl = try httpURL(fields["targetUrl"], field: "targetUrl", required: true)!
    let method = try parseMethod(fields["method"])
    let headers = try parseHeaders(fields["headers"])
    let requestBody = try parseBody(fields["body"])
    let provider = try parseProvider(fields["provider"])
    let pollConfig = try parsePollConfig(fields["pollConfig"])
    if provider != nil && pollConfig != nil {
      throw RequestError(
        code: "conflicting_fields",
        "'provider' and 'pollConfig' are both set; send one: a template id or a custom pollConfig")
    }

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
    return task
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
      let host = url.host, !host.isEmpty
    else {
      throw RequestError(
        code: "invalid_field",
        "'\(field)' must be an absolute http or https URL, got \(quoted(text))")
    }
    guard text.utf8.count <= 8192 else {
      throw RequestError(code: "invalid_field", "'\(field)' is longer than 8192 bytes")
    }
    return text
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
      guard !text.contains("\r"), !text.contains("\n") else {
        throw RequestError(code: "invalid_field", "header '\(name)' contains a line break")
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
    guard let text = value.stringValue, let date = Timestamp.parse(text) else {
      throw RequestError(
        code: "invalid_field",
        "'delayUntil' must be an ISO 8601 date-time such as 2026-12-04T18:00:00Z")
    }
    return date.timeIntervalSince1970
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
