import Foundation
import Storage
import Support

extension TaskRecord {
  /// The credentials this task carries: values of credential headers (and the token after an
  /// auth scheme such as `Bearer`), and passwords in its URLs.
  var secrets: [String] {
    var found: [String] = []
    for (name, value) in headers where TaskPresenter.isSensitiveHeader(name) {
      found.append(contentsOf: Self.secretForms(of: value))
    }
    // Only a URL with user information can contain a password. Parsing the others cost a
    // quarter of the start-up time with 100,000 tasks, because this runs for every task.
    for url in [targetUrl, onCompleteUrl].compactMap({ $0 })
    where url.utf8.contains(UInt8(ascii: "@")) {
      if let password = URLComponents(string: url)?.password, !password.isEmpty {
        found.append(password)
      }
    }
    // Longest first, so a whole header value is masked before the token inside it.
    return found.filter { $0.count >= 4 }.sorted { $0.count > $1.count }
  }

  /// Returns a credential and, for `Scheme token` values such as `Bearer abc`, the bare token.
  static func secretForms(of value: String) -> [String] {
    var forms = [value]
    if let space = value.firstIndex(of: " ") {
      forms.append(String(value[value.index(after: space)...]))
    }
    return forms
  }
}

extension TaskPresenter {
  /// Returns the URL with any password replaced by `***`.
  public static func maskedURL(_ url: String) -> String {
    // Only a URL with user information can hold a password; skip parsing the others.
    guard url.utf8.contains(UInt8(ascii: "@")) else { return url }
    guard var components = URLComponents(string: url), components.password != nil else {
      return url
    }
    components.password = "***"
    return components.string ?? url
  }
}

extension Engine {
  /// Returns `text` with the task's credentials replaced by `***`: its credential headers,
  /// URL passwords, and the secrets of the vault tokens its headers name.
  public func scrub(_ text: String, for task: TaskRecord) -> String {
    scrubber(for: task)(text)
  }

  /// Returns a function that scrubs texts as `scrub(_:for:)` does, reading the task's vault
  /// tokens once, for callers that scrub several texts of one task.
  public func scrubber(for task: TaskRecord) -> (String) -> String {
    var vaultForms: [String] = []
    for (_, value) in task.headers where value.hasPrefix("tok_") {
      guard let token = try? store.token(id: value), token.teamId == task.teamId,
        let secret = SecretBox.open(token.sealedValue, key: config.vaultKey)
      else { continue }
      vaultForms += TaskRecord.secretForms(of: secret).sorted(by: { $0.count > $1.count })
        .filter { $0.count >= 4 }
    }
    // The task's own credentials come first, each list longest first.
    let forms = task.secrets + vaultForms
    return { text in
      var result = text
      for form in forms where result.contains(form) {
        result = result.replacingOccurrences(of: form, with: "***")
      }
      return result
    }
  }
}
