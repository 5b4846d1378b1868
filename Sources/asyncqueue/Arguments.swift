import Foundation

/// A command-line error whose message states what is wrong and how to fix it.
struct UsageError: Error, CustomStringConvertible {
  let message: String
  var description: String { message }
}

/// One flag of a command, with its environment variable and help text.
struct FlagSpec {
  let name: String
  let environment: String?
  let valueName: String?
  let help: String
  var repeatable = false

  var takesValue: Bool { valueName != nil }
}

/// Parses `--flag value`, `--flag=value` and boolean `--flag`; a flag not given on the command
/// line falls back to its environment variable. Arguments that are not flags are collected in
/// `positional` when the command takes up to `positionalLimit` of them.
struct ParsedFlags {
  private(set) var values: [String: [String]] = [:]
  /// Values given on the command line only, without the environment fallback.
  private(set) var commandLine: [String: [String]] = [:]
  private(set) var positional: [String] = []

  init(
    arguments: [String], specs: [FlagSpec], environment: [String: String],
    positionalLimit: Int = 0
  ) throws {
    var index = 0
    while index < arguments.count {
      let argument = arguments[index]
      guard argument.hasPrefix("--") else {
        guard positional.count < positionalLimit else {
          throw UsageError(message: "unexpected argument '\(argument)'; see --help")
        }
        positional.append(argument)
        index += 1
        continue
      }
      var name = String(argument.dropFirst(2))
      var inlineValue: String?
      if let equals = name.firstIndex(of: "=") {
        inlineValue = String(name[name.index(after: equals)...])
        name = String(name[..<equals])
      }
      guard let spec = specs.first(where: { $0.name == name }) else {
        throw UsageError(message: "unknown flag '--\(name)'; see --help")
      }
      if spec.takesValue {
        let value: String
        if let inlineValue {
          value = inlineValue
        } else {
          index += 1
          guard index < arguments.count else {
            throw UsageError(
              message: "flag '--\(name)' needs a value: --\(name) \(spec.valueName!)")
          }
          value = arguments[index]
        }
        if !spec.repeatable && values[name] != nil {
          throw UsageError(message: "flag '--\(name)' was given twice")
        }
        values[name, default: []].append(value)
      } else {
        if let inlineValue, !["true", "false", "1", "0"].contains(inlineValue) {
          throw UsageError(message: "flag '--\(name)' takes no value, or true/false")
        }
        values[name] = [inlineValue ?? "true"]
      }
      index += 1
    }
    commandLine = values
    for spec in specs where values[spec.name] == nil {
      guard let variable = spec.environment, let value = environment[variable], !value.isEmpty
      else { continue }
      if spec.repeatable {
        values[spec.name] = value.split(separator: spec.name.contains("dir") ? ":" : ",")
          .map { String($0).trimmingCharacters(in: .whitespaces) }
      } else {
        values[spec.name] = [value]
      }
    }
  }

  func string(_ name: String) -> String? { values[name]?.last }
  func strings(_ name: String) -> [String] { values[name] ?? [] }

  func bool(_ name: String) -> Bool {
    guard let value = values[name]?.last?.lowercased() else { return false }
    return ["true", "1", "yes", "on"].contains(value)
  }
}

/// Renders a command's help: usage, then each flag with its environment variable.
func helpText(usage: String, summary: String, specs: [FlagSpec]) -> String {
  var lines = ["Usage: \(usage)", "", summary, "", "Options:"]
  for spec in specs {
    var head = "  --\(spec.name)"
    if let valueName = spec.valueName { head += " \(valueName)" }
    lines.append(head)
    for line in spec.help.split(separator: "\n") { lines.append("      \(line)") }
    if let variable = spec.environment {
      lines.append("      Environment: \(variable)" + (spec.repeatable ? " (list)" : ""))
    }
  }
  lines.append("  --help")
  lines.append("      Show this help.")
  return lines.joined(separator: "\n")
}
