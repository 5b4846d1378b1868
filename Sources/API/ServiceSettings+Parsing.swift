import Engine
import Foundation
import Storage
import Support

extension ServiceSettings {
  /// Converts command-line or environment text to a setting's JSON value and checks it.
  static func parse(_ texts: [String], _ spec: SettingSpec, source: String)
    throws(ConfigError) -> JSONValue
  {
    let text = texts.last ?? ""
    let value: JSONValue
    switch spec.kind {
    case .string, .url, .choice, .database: value = .string(text)
    case .port:
      guard let number = Int64(text) else {
        throw ConfigError("invalid \(source) '\(text)': expected a port number from 0 to 65535")
      }
      value = .int(number)
    case .bool:
      switch text.lowercased() {
      case "true", "1", "yes", "on": value = true
      case "false", "0", "no", "off": value = false
      default: throw ConfigError("invalid \(source) '\(text)': expected true or false")
      }
    case .list: value = .array(texts.map { .string($0) })
    case .pluginTable:
      throw ConfigError("\(spec.key) can only be set in the config file")
    case .providerLimits:
      // id=concurrency/requestsPerSecond, comma-separated, e.g. fal=8/4,custom=4096/100000.
      var limits: [String: JSONValue] = [:]
      for item in text.split(separator: ",") {
        let pair = item.split(separator: "=", maxSplits: 1).map(String.init)
        let numbers = pair.count == 2 ? pair[1].split(separator: "/").map(String.init) : []
        guard numbers.count == 2, let concurrency = Int64(numbers[0]),
          let rate = Double(numbers[1])
        else {
          throw ConfigError(
            "invalid \(source) '\(item)': expected id=concurrency/requestsPerSecond such as "
              + "fal=8/4")
        }
        limits[pair[0]] = ["concurrency": .int(concurrency), "requestsPerSecond": .double(rate)]
      }
      value = .object(limits)
    case .number:
      guard let number = Double(text) else {
        throw ConfigError("invalid \(source) '\(text)': expected a number")
      }
      value = number == number.rounded() ? .int(Int64(number)) : .double(number)
    case .rateLimit:
      let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
      guard let requests = Int64(parts.first ?? ""),
        let seconds = parts.count == 2 ? Double(parts[1]) : 1
      else {
        throw ConfigError(
          "invalid \(source) '\(text)': expected REQUESTS/SECONDS such as 100/1, or 0 for no limit")
      }
      value = ["requests": .int(requests), "perSeconds": .double(seconds)]
    }
    return try check(value, spec, source: source)
  }

  /// Checks a JSON value against a setting's kind; returns it in canonical form.
  static func check(_ value: JSONValue, _ spec: SettingSpec, source: String)
    throws(ConfigError) -> JSONValue
  {
    let name = "\(source): '\(spec.key)'"
    switch spec.kind {
    case .string:
      guard value.isNull || value.stringValue != nil else {
        throw ConfigError("\(name) must be a string")
      }
      return value
    case .url:
      guard value.isNull || value.stringValue != nil else {
        throw ConfigError("\(name) must be a string")
      }
      if let text = value.stringValue {
        guard let url = URL(string: text), ["http", "https"].contains(url.scheme ?? ""),
          url.host != nil
        else {
          throw ConfigError(
            "\(name) must be an http or https URL such as https://queue.example.com")
        }
      }
      return value
    case .port:
      guard let number = value.intValue, (0...65535).contains(number) else {
        throw ConfigError("\(name) must be an integer from 0 to 65535")
      }
      return .int(Int64(number))
    case .bool:
      guard value.boolValue != nil else { throw ConfigError("\(name) must be true or false") }
      return value
    case .choice(let words):
      guard let text = value.stringValue?.lowercased(), words.contains(text) else {
        throw ConfigError("\(name) must be one of \(words.joined(separator: ", "))")
      }
      return .string(text)
    case .list:
      guard let items = value.arrayValue, items.allSatisfy({ $0.stringValue != nil }) else {
        throw ConfigError("\(name) must be an array of strings")
      }
      return value
    case .pluginTable:
      return try checkPlugins(value, name: name)
    case .rateLimit:
      return try checkRateLimit(value, name: name)
    case .number(let range, let integer):
      let bounds = "from \(Int(range.lowerBound)) to \(Int(range.upperBound))"
      guard let number = value.doubleValue, range.contains(number),
        !integer || value.intValue != nil
      else {
        throw ConfigError("\(name) must be \(integer ? "an integer" : "a number") \(bounds)")
      }
      return value
    case .providerLimits:
      return try checkProviderLimits(value, name: name)
    case .database:
      return try checkDatabase(value, name: name)
    }
  }

  /// Accepts a PostgreSQL URL; an empty string becomes null, the SQLite default. The message
  /// never quotes the value, which may hold a password.
  private static func checkDatabase(_ value: JSONValue, name: String) throws(ConfigError)
    -> JSONValue
  {
    guard value.isNull || value.stringValue != nil else {
      throw ConfigError("\(name) must be a string")
    }
    guard let text = value.stringValue, !text.isEmpty else { return .null }
    guard DatabaseURL.isPostgres(text) else {
      throw ConfigError(
        "\(name) must be empty (SQLite in the data directory) or a postgres:// or "
          + "postgresql:// URL such as postgres://USER:PASSWORD@HOST:5432/DATABASE")
    }
    return value
  }

  private static func checkProviderLimits(_ value: JSONValue, name: String) throws(ConfigError)
    -> JSONValue
  {
    let example = #"{"fal": {"concurrency": 8, "requestsPerSecond": 4}}"#
    guard let limits = value.objectValue else {
      throw ConfigError("\(name) must be an object such as \(example)")
    }
    for (provider, entry) in limits.sorted(by: { $0.key < $1.key }) {
      for key in (entry.objectValue ?? [:]).keys.sorted()
      where !["concurrency", "requestsPerSecond"].contains(key) {
        throw ConfigError(
          "\(name).\(provider) has unknown key '\(key)'; it takes concurrency and requestsPerSecond"
        )
      }
      guard ProviderLimits(entry) != nil else {
        throw ConfigError(
          "\(name).\(provider) needs concurrency (an integer of at least 1) and "
            + "requestsPerSecond (a number above 0), as in \(example)")
      }
    }
    return value
  }

  private static func checkPlugins(_ value: JSONValue, name: String) throws(ConfigError)
    -> JSONValue
  {
    guard let plugins = value.objectValue else {
      throw ConfigError(
        #"\#(name) must be an object such as {"result-archive": {"enabled": true}}"#)
    }
    for (plugin, settings) in plugins.sorted(by: { $0.key < $1.key }) {
      guard let object = settings.objectValue else {
        throw ConfigError("\(name).\(plugin) must be an object of that plugin's settings")
      }
      if let enabled = object["enabled"], enabled.boolValue == nil {
        throw ConfigError("\(name).\(plugin).enabled must be true or false")
      }
    }
    return value
  }

  private static func checkRateLimit(_ value: JSONValue, name: String) throws(ConfigError)
    -> JSONValue
  {
    guard let object = value.objectValue else {
      throw ConfigError(#"\#(name) must be an object such as {"requests": 100, "perSeconds": 1}"#)
    }
    for key in object.keys.sorted() where !["requests", "perSeconds"].contains(key) {
      throw ConfigError("\(name) has unknown key '\(key)'; it takes requests and perSeconds")
    }
    guard let requests = object["requests"]?.intValue, requests >= 0,
      object["requests"]?.doubleValue == Double(requests)
    else {
      throw ConfigError("\(name).requests must be a whole number of requests, 0 for no limit")
    }
    let seconds = object["perSeconds"] ?? 1
    guard let window = seconds.doubleValue, window > 0, window <= 86400 else {
      throw ConfigError("\(name).perSeconds must be a number of seconds above 0, at most 86400")
    }
    return ["requests": .int(Int64(requests)), "perSeconds": .double(window)]
  }
}
