import Foundation
import Storage
import Support

extension TaskRecord {
  /// The credentials this task carries: values of credential headers (and the token after an
  /// auth scheme such as `Bearer`), and passwords in its URLs.
  var secrets: [String] {
    var found: [String] = []
    for (name, value) in headers where TaskPresenter.isSensitiveHeader(name) {
      found.append(value)
      if let space = value.firstIndex(of: " ") {
        found.append(String(value[value.index(after: space)...]))
      }
    }
    for url in [targetUrl, onCompleteUrl].compactMap({ $0 }) {
      if let password = URLComponents(string: url)?.password, !password.isEmpty {
        found.append(password)
      }
    }
    // Longest first, so a whole header value is masked before the token inside it.
    return found.filter { $0.count >= 4 }.sorted { $0.count > $1.count }
  }

  /// Returns `text` with every credential of this task replaced by `***`.
  func redactingSecrets(_ text: String) -> String {
    var result = text
    for secret in secrets where result.contains(secret) {
      result = result.replacingOccurrences(of: secret, with: "***")
    }
    return result
  }
}

extension TaskPresenter {
  /// Returns the URL with any password replaced by `***`.
  public static func maskedURL(_ url: String) -> String {
    guard var components = URLComponents(string: url), components.password != nil else {
      return url
    }
    components.password = "***"
    return components.string ?? url
  }
}
