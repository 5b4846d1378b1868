import Foundation
import Support

/// Reads the `database` setting's PostgreSQL URLs, in libpq's form
/// `postgres://[USER[:PASSWORD]@][HOST][:PORT][,...][/DATABASE][?PARAMETER=VALUE&...]`.
public enum DatabaseURL {
  /// Returns true for a `postgres://` or `postgresql://` URL, the two schemes libpq accepts.
  public static func isPostgres(_ text: String) -> Bool {
    let lowercased = text.lowercased()
    return lowercased.hasPrefix("postgres://") || lowercased.hasPrefix("postgresql://")
  }

  /// Returns the URL with each password, in the user information or in a `password` or
  /// `sslpassword` parameter, replaced by `***`.
  public static func masked(_ url: String) -> String {
    var result = url
    for range in passwordRanges(in: url).reversed() {
      result.replaceSubrange(range, with: "***")
    }
    return result
  }

  /// Registers the URL and its passwords, as written and percent-decoded, with `redactor`, so
  /// no log line shows them. The redactor ignores passwords shorter than 8 characters and
  /// plain lowercase words; the whole URL is registered in any case.
  public static func registerSecrets(_ url: String, with redactor: Redactor = .shared) {
    redactor.register(url)
    for range in passwordRanges(in: url) {
      let password = String(url[range])
      redactor.register(password)
      if let decoded = password.removingPercentEncoding, decoded != password {
        redactor.register(decoded)
      }
    }
  }

  /// Returns the passwords as written in the URL, percent-encoding included.
  public static func rawPasswords(in url: String) -> [String] {
    passwordRanges(in: url).map { String(url[$0]) }
  }

  /// Finds the passwords as libpq does. The user information ends at the first `@` before any
  /// `/`, and its password follows the first `:`. Query parameters are split at `&`.
  static func passwordRanges(in url: String) -> [Range<String.Index>] {
    guard let scheme = url.range(of: "://") else { return [] }
    var ranges: [Range<String.Index>] = []
    let rest = url[scheme.upperBound...]
    if let end = rest.firstIndex(where: { $0 == "@" || $0 == "/" }), url[end] == "@",
      let colon = rest[..<end].firstIndex(of: ":")
    {
      ranges.append(url.index(after: colon)..<end)
    }
    guard let question = rest.firstIndex(of: "?") else { return ranges }
    for parameter in url[url.index(after: question)...].split(separator: "&") {
      guard let equals = parameter.firstIndex(of: "="),
        ["password", "sslpassword"].contains(parameter[..<equals].lowercased())
      else { continue }
      ranges.append(parameter.index(after: equals)..<parameter.endIndex)
    }
    return ranges.filter { !$0.isEmpty }
  }
}
