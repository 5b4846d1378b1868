import Foundation

/// Paths, names and links of the files plugins download. A file lives at
/// `<data-dir>/results/<task id>/files/<name>` and is served at
/// `GET /v1/tasks/{id}/files/{name}`.
public enum ArchivedFiles {
  public static func directory(dataDirectory: String, taskId: String) -> String {
    [dataDirectory, "results", taskId, "files"].reduce("") {
      $0.isEmpty ? $1 : ($0 as NSString).appendingPathComponent($1)
    }
  }

  /// Returns the file's path, or nil when `name` is not a safe file name.
  public static func path(dataDirectory: String, taskId: String, name: String) -> String? {
    guard isSafeName(name) else { return nil }
    return (directory(dataDirectory: dataDirectory, taskId: taskId) as NSString)
      .appendingPathComponent(name)
  }

  public static func url(publicURL: String, taskId: String, name: String) -> String {
    "\(publicURL)/v1/tasks/\(taskId)/files/\(name)"
  }

  /// True for 1 to 100 characters of letters, digits, `.`, `-` and `_` that do not start with
  /// a dot, so a name can neither leave the directory nor hide a partial download.
  public static func isSafeName(_ name: String) -> Bool {
    !name.isEmpty && name.count <= 100 && !name.hasPrefix(".")
      && name.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || "._-".contains($0) }
  }

  /// Turns any name into a safe one: other characters become `_`, and an empty or hidden
  /// name becomes `file`.
  public static func safeName(_ name: String) -> String {
    let cleaned = String(
      name.prefix(100).map {
        ($0.isASCII && ($0.isLetter || $0.isNumber)) || "._-".contains($0) ? $0 : "_"
      })
    return cleaned.isEmpty || cleaned.hasPrefix(".") ? "file" + cleaned : cleaned
  }

  static let typesByExtension: [String: String] = [
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp",
    "gif": "image/gif", "mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime",
    "mp3": "audio/mpeg", "wav": "audio/wav", "ogg": "audio/ogg", "m4a": "audio/mp4",
    "flac": "audio/flac", "glb": "model/gltf-binary", "json": "application/json",
    "txt": "text/plain",
  ]

  /// Returns the content type for a file name's extension, or `application/octet-stream`.
  public static func contentType(forName name: String) -> String {
    let pathExtension = (name as NSString).pathExtension.lowercased()
    return typesByExtension[pathExtension] ?? "application/octet-stream"
  }

  /// Returns the usual extension for a content type, or nil when none is known.
  static func pathExtension(forContentType contentType: String) -> String? {
    let bare = contentType.split(separator: ";").first.map {
      $0.trimmingCharacters(in: .whitespaces).lowercased()
    }
    let preferred = ["image/jpeg": "jpg", "audio/mpeg": "mp3"]
    if let bare, let known = preferred[bare] { return known }
    return typesByExtension.first { $0.value == bare }?.key
  }
}
