import Engine
import Foundation
import Storage
import Support

/// An invalid setting: names the setting, where its value came from and the fix.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
  public let message: String
  public var description: String { message }

  public init(_ message: String) { self.message = message }
}

/// The effective settings of `asyncqueue serve`: defaults, overlaid by the config file, then
/// environment variables, then command-line flags.
public struct ServiceSettings: Sendable {
  /// Values by config-file key, each checked against its `SettingSpec.kind`.
  public private(set) var values: [String: JSONValue] = [:]
  /// Source of each value: `default`, `config file …`, `ASYNCQUEUE_…` or `--flag`.
  public private(set) var sources: [String: String] = [:]
  public let configFile: String?

  /// Resolves every setting. `flags` maps flag names (without `--`) to the values given on
  /// the command line, in order.
  public init(
    configFile: String?, environment: [String: String], flags: [String: [String]]
  ) throws(ConfigError) {
    self.configFile = configFile
    let file = try configFile.map(Self.readConfigFile) ?? [:]
    for spec in SettingSpec.all {
      if let flag = spec.flag, let given = flags[flag] {
        try set(spec, Self.parse(given, spec, source: "--\(flag)"), source: "--\(flag)")
      } else if let variable = spec.environment, let text = environment[variable], !text.isEmpty {
        let parts: [String]
        if case .list(let separator) = spec.kind {
          parts = text.split(separator: separator).map {
            $0.trimmingCharacters(in: .whitespaces)
          }
        } else {
          parts = [text]
        }
        try set(spec, Self.parse(parts, spec, source: variable), source: variable)
      } else if let value = file[spec.key] {
        let source = "config file \(configFile ?? "")"
        try set(spec, Self.check(value, spec, source: source), source: source)
      } else {
        values[spec.key] = spec.defaultValue
        sources[spec.key] = "default"
      }
    }
    if let key = values["vaultKey"]?.stringValue, SecretBox.key(hex: key) == nil {
      throw ConfigError(
        "invalid \(sources["vaultKey"] ?? "vaultKey"): 'vaultKey' must be 64 hex digits (32 "
          + "bytes); generate one with: openssl rand -hex 32")
    }
    if let node = values["nodeId"]?.stringValue, !Self.isValidNodeId(node) {
      throw ConfigError(
        "invalid \(sources["nodeId"] ?? "nodeId"): 'nodeId' must be 1 to 64 letters, digits, "
          + "'-', '_' or '.'; remove it to get a random name at each start")
    }
    if let secret = values["webhookSecret"]?.stringValue, secret.isEmpty {
      throw ConfigError(
        "invalid \(sources["webhookSecret"] ?? "webhookSecret"): 'webhookSecret' is empty; "
          + "remove it to use the generated secret")
    }
  }

  /// Node names appear in task claims, logs and metrics, so they are kept to a safe alphabet.
  static func isValidNodeId(_ node: String) -> Bool {
    let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_."))
    return !node.isEmpty && node.count <= 64 && node.unicodeScalars.allSatisfy(allowed.contains)
  }

  private mutating func set(_ spec: SettingSpec, _ value: JSONValue, source: String) {
    values[spec.key] = value
    sources[spec.key] = source
  }

  /// Reads a config file: a JSON object whose keys are all known settings.
  static func readConfigFile(_ path: String) throws(ConfigError) -> [String: JSONValue] {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw ConfigError("cannot read config file \(path): no such file or not readable")
    }
    let parsed: JSONValue
    do {
      parsed = try JSONValue.parse(data)
    } catch {
      throw ConfigError("config file \(path) is not valid JSON: \(error)")
    }
    guard let object = parsed.objectValue else {
      throw ConfigError("config file \(path) must contain a JSON object of settings")
    }
    let known = SettingSpec.all.map(\.key)
    for key in object.keys.sorted() where !known.contains(key) {
      if let suggestion = known.min(by: { editDistance(key, $0) < editDistance(key, $1) }),
        editDistance(key, suggestion) <= 2
      {
        throw ConfigError(
          "config file \(path): unknown key '\(key)'; did you mean '\(suggestion)'?")
      }
      throw ConfigError(
        "config file \(path): unknown key '\(key)'; known keys are \(known.joined(separator: ", "))"
      )
    }
    return object
  }

  // MARK: Values

  public func string(_ key: String) -> String? { values[key]?.stringValue }
  public func strings(_ key: String) -> [String] {
    values[key]?.arrayValue?.compactMap(\.stringValue) ?? []
  }
  public func bool(_ key: String) -> Bool { values[key]?.boolValue ?? false }

  /// Returns the settings as `asyncqueue serve --print-config` prints them, secrets as `***`.
  public func printable() -> JSONValue {
    var object: [String: JSONValue] = [:]
    for spec in SettingSpec.all {
      let value = values[spec.key] ?? .null
      if spec.isSecret {
        switch value {
        case .array(let items): object[spec.key] = .array(items.map { _ in "***" })
        case .null: object[spec.key] = .null
        default: object[spec.key] = "***"
        }
      } else if spec.kind == .database, let url = value.stringValue {
        object[spec.key] = .string(DatabaseURL.masked(url))
      } else {
        object[spec.key] = Self.maskingNestedSecrets(value)
      }
    }
    return .object(object)
  }

  /// Masks values that look like credentials inside a setting: members whose names are
  /// credential-like (a plugin's `headers.Authorization`, a `token`) and URL passwords.
  public static func maskingNestedSecrets(_ value: JSONValue) -> JSONValue {
    switch value {
    case .object(let members):
      var masked: [String: JSONValue] = [:]
      for (name, member) in members {
        if TaskPresenter.isSensitiveHeader(name), member.stringValue != nil {
          masked[name] = "***"
        } else {
          masked[name] = maskingNestedSecrets(member)
        }
      }
      return .object(masked)
    case .array(let items):
      return .array(items.map(maskingNestedSecrets))
    case .string(let text):
      return .string(TaskPresenter.maskedURL(text))
    default:
      return value
    }
  }

  /// Builds the service's options from the settings.
  public func serviceOptions() -> ServiceOptions {
    var options = ServiceOptions()
    options.host = string("host") ?? options.host
    options.port = UInt16(values["port"]?.intValue ?? Int(options.port))
    options.dataDirectory = string("dataDir") ?? options.dataDirectory
    options.database = string("database")
    options.leaseTimeout = values["leaseTimeout"]?.doubleValue ?? options.leaseTimeout
    options.nodeId = string("nodeId")
    options.providerDirectories = strings("providersDirs")
    options.builtinProvidersDirectory = string("builtinProvidersDir")
    options.pluginDirectories = strings("pluginsDirs")
    options.plugins = values["plugins"]?.objectValue ?? [:]
    options.apiKeys = strings("apiKeys")
    options.webhookSecret = string("webhookSecret")
    options.vaultKey = string("vaultKey")
    options.allowPrivateNetwork = bool("allowPrivateNetwork")
    options.publicURL = string("publicUrl")
    for (provider, entry) in values["providerLimits"]?.objectValue ?? [:] {
      options.providerLimits[provider] = ProviderLimits(entry)
    }
    options.scriptReloadInterval =
      values["reloadInterval"]?.doubleValue ?? options.scriptReloadInterval
    options.maxConcurrentSteps =
      values["maxConcurrentSteps"]?.intValue ?? options.maxConcurrentSteps
    options.webhookRetention =
      values["webhookRetention"]?.doubleValue ?? options.webhookRetention
    if let limit = values["rateLimit"] {
      options.rateLimit = RateLimit(
        requests: limit["requests"]?.intValue ?? 0,
        perSeconds: limit["perSeconds"]?.doubleValue ?? 1)
    }
    return options
  }
}

/// Returns the Levenshtein distance between two strings, ignoring case.
func editDistance(_ lhs: String, _ rhs: String) -> Int {
  let left = Array(lhs.lowercased())
  let right = Array(rhs.lowercased())
  var previous = Array(0...right.count)
  for (row, leftCharacter) in left.enumerated() {
    var current = [row + 1]
    for (column, rightCharacter) in right.enumerated() {
      let substitution = previous[column] + (leftCharacter == rightCharacter ? 0 : 1)
      current.append(min(substitution, previous[column + 1] + 1, current[column] + 1))
    }
    previous = current
  }
  return previous[right.count]
}
