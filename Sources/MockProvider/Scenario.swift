import Foundation

/// The behaviour of one mock job, read from the `X-Mock-Scenario` header of its submit request.
///
/// The header is a list of `key=value` pairs separated by semicolons, for example
/// `polls=3;outcome=fail;reason=bad prompt`. Unknown keys and invalid values are rejected, so a
/// typo in a test fails loudly instead of silently running the default scenario.
struct Scenario: Sendable, Equatable {
  enum Outcome: String, Sendable, CaseIterable {
    case succeed, fail, fail500, cancel, abort, filtered
  }

  enum Fault: Sendable, Equatable {
    case tooManyRequests
    case serverError
    case html
    case truncated
    case slow(milliseconds: Int)
    case drop
  }

  /// Status polls that report the job in flight before the one that reports the end state.
  var polls = 2
  var outcome = Outcome.succeed
  /// Failure text for `fail` outcomes. An empty value requests a null error where the
  /// provider allows one (Replicate).
  var reason: String?
  /// Machine-readable failure code: Runway `failureCode`, fal `error_type`, Stability `name`.
  var code: String?
  /// A status value the provider does not document, reported for every in-flight poll.
  var unknownStatus: String?
  var fault: Fault?
  /// Status polls affected by `fault`, counted from the first.
  var faults = 1
  /// HTTP status (500 or 429) for the first `submitFaults` submit requests with this header.
  var submitFault: Int?
  var submitFaults = 1

  static let keys = [
    "polls", "outcome", "reason", "code", "status", "fault", "faults", "submitfault",
    "submitfaults",
  ]

  /// Parses the header value. Returns the scenario, or a message naming the invalid part.
  static func parse(_ header: String?) -> Result<Scenario, ScenarioError> {
    var scenario = Scenario()
    guard let header else { return .success(scenario) }

    for item in header.split(separator: ";") {
      let pair = item.trimmingCharacters(in: .whitespaces)
      if pair.isEmpty { continue }
      guard let equals = pair.firstIndex(of: "=") else {
        return .failure(
          ScenarioError("invalid X-Mock-Scenario item \"\(pair)\": expected key=value"))
      }
      let key = pair[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
      let value = pair[pair.index(after: equals)...].trimmingCharacters(in: .whitespaces)
      if let error = scenario.apply(key: key, value: value) { return .failure(error) }
    }
    return .success(scenario)
  }

  private mutating func apply(key: String, value: String) -> ScenarioError? {
    switch key {
    case "polls":
      guard let count = Int(value), count >= 0 else {
        return invalid(key, value, "an integer >= 0")
      }
      polls = count
    case "outcome":
      guard let parsed = Outcome(rawValue: value) else {
        let names = Outcome.allCases.map(\.rawValue).joined(separator: "|")
        return invalid(key, value, names)
      }
      outcome = parsed
    case "reason":
      reason = value
    case "code":
      code = value
    case "status":
      guard !value.isEmpty else { return invalid(key, value, "a status value") }
      unknownStatus = value
    case "fault":
      guard let parsed = Self.parseFault(value) else {
        return invalid(key, value, "429|500|html|truncated|slow:MS|drop")
      }
      fault = parsed
    case "faults":
      guard let count = Int(value), count >= 1 else {
        return invalid(key, value, "an integer >= 1")
      }
      faults = count
    case "submitfault":
      guard let code = Int(value), code == 500 || code == 429 else {
        return invalid(key, value, "500|429")
      }
      submitFault = code
    case "submitfaults":
      guard let count = Int(value), count >= 1 else {
        return invalid(key, value, "an integer >= 1")
      }
      submitFaults = count
    default:
      let known = Self.keys.joined(separator: ", ")
      return ScenarioError("unknown X-Mock-Scenario key \"\(key)\"; known keys: \(known)")
    }
    return nil
  }

  private static func parseFault(_ value: String) -> Fault? {
    switch value {
    case "429": return .tooManyRequests
    case "500": return .serverError
    case "html": return .html
    case "truncated": return .truncated
    case "drop": return .drop
    default:
      guard value.hasPrefix("slow:"), let milliseconds = Int(value.dropFirst(5)), milliseconds >= 0
      else { return nil }
      return .slow(milliseconds: milliseconds)
    }
  }

  private func invalid(_ key: String, _ value: String, _ expected: String) -> ScenarioError {
    ScenarioError("invalid X-Mock-Scenario value \(key)=\"\(value)\": expected \(expected)")
  }
}

struct ScenarioError: Error, Sendable {
  let message: String

  init(_ message: String) { self.message = message }
}
