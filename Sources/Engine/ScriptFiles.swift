import Foundation

/// A problem with one script file: where it is and what is wrong.
public struct TemplateError: Error, CustomStringConvertible, Sendable, Equatable {
  public let file: String
  /// The 1-based line, when Lua reported one or the field could be found in the source.
  public let line: Int?
  /// The metadata field, hook or pollConfig key the problem is about, when there is one.
  public let field: String?
  public let message: String

  public init(file: String, line: Int? = nil, field: String? = nil, message: String) {
    self.file = file
    self.line = line
    self.field = field
    self.message = message
  }

  /// Builds the error from a Lua message, taking the line from its `file:line:` prefix.
  public init(file: String, luaMessage: String) {
    let prefix = file + ":"
    if luaMessage.hasPrefix(prefix) {
      let rest = luaMessage.dropFirst(prefix.count)
      let digits = rest.prefix { $0.isNumber }
      if let line = Int(digits), rest.dropFirst(digits.count).hasPrefix(":") {
        let text = rest.dropFirst(digits.count + 1).trimmingCharacters(in: .whitespaces)
        self.init(file: file, line: line, message: Self.strippingFile(text, file: file))
        return
      }
    }
    self.init(file: file, message: Self.strippingFile(luaMessage, file: file))
  }

  /// `file:line: field 'x': message`, leaving out the parts that are unknown.
  public var description: String {
    var text = file
    if let line { text += ":\(line)" }
    text += ": "
    if let field { text += "field '\(field)': " }
    return text + message
  }

  // The sandbox starts some messages with the chunk name; the file is already in `file`.
  private static func strippingFile(_ message: String, file: String) -> String {
    message.hasPrefix(file + ": ") ? String(message.dropFirst(file.count + 2)) : message
  }
}

/// Every problem found in one script.
public struct TemplateProblems: Error, Sendable {
  public private(set) var problems: [TemplateError]

  public init(_ problems: [TemplateError] = []) {
    self.problems = problems
  }

  public var isEmpty: Bool { problems.isEmpty }

  public mutating func append(_ problem: TemplateError) {
    problems.append(problem)
  }
}

/// Finds the Lua files of layered script directories: `*.lua` scripts at the top of each
/// directory and `lib/*.lua` modules, which become `lib.NAME`.
public enum ScriptFiles {
  public struct Found: Sendable {
    /// Module name to (source, file); a later directory's module replaces an earlier one.
    public var modules: [String: (source: String, file: String)] = [:]
    /// Scripts in load order: directory by directory, files sorted by name.
    public var sources: [(file: String, source: String)] = []
    public var problems: [TemplateError] = []
  }

  public static func find(in directories: [String]) -> Found {
    var found = Found()
    for directory in directories {
      let libDirectory = (directory as NSString).appendingPathComponent("lib")
      for path in luaFiles(in: libDirectory) {
        guard let source = try? String(contentsOfFile: path, encoding: .utf8) else {
          found.problems.append(TemplateError(file: path, message: "cannot read the file as UTF-8"))
          continue
        }
        let name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        found.modules["lib." + name] = (source, path)
      }
      for path in luaFiles(in: directory) {
        guard let source = try? String(contentsOfFile: path, encoding: .utf8) else {
          found.problems.append(TemplateError(file: path, message: "cannot read the file as UTF-8"))
          continue
        }
        found.sources.append((path, source))
      }
    }
    return found
  }

  /// Returns the `*.lua` files directly inside `directory`, sorted by name, or an empty list
  /// when the directory is missing.
  public static func luaFiles(in directory: String) -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return names.filter { $0.hasSuffix(".lua") }.sorted().map {
      (directory as NSString).appendingPathComponent($0)
    }
  }

  /// Returns the modification time and size of every script and module file in the
  /// directories, so that a watcher can tell when any of them was added, changed or removed.
  public static func fingerprint(of directories: [String]) -> [String: String] {
    var result: [String: String] = [:]
    for directory in directories {
      let libDirectory = (directory as NSString).appendingPathComponent("lib")
      for path in luaFiles(in: directory) + luaFiles(in: libDirectory) {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let size = (attributes?[.size] as? NSNumber)?.intValue ?? -1
        result[path] = "\(modified)/\(size)"
      }
    }
    return result
  }

  /// Returns the line where `field` is first assigned (`field =` or `["field"] =`), or nil.
  /// A best-effort text search for pointing at metadata problems; Lua itself gives the line of
  /// syntax and runtime errors.
  public static func line(of field: String, in source: String) -> Int? {
    let escaped = NSRegularExpression.escapedPattern(for: field)
    let pattern = #"(^|[^A-Za-z0-9_.])(\#(escaped)|\[\s*["']\#(escaped)["']\s*\])\s*=[^=]"#
    guard let expression = try? NSRegularExpression(pattern: pattern) else { return nil }
    let text = source as NSString
    guard
      let match = expression.firstMatch(
        in: source, range: NSRange(location: 0, length: text.length))
    else { return nil }
    let before = text.substring(to: match.range.location + match.range(at: 1).length)
    return before.reduce(1) { $1 == "\n" ? $0 + 1 : $0 }
  }
}
