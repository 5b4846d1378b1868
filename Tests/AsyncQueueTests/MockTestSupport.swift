import Foundation
import MockProvider
import Support

/// Starts a mock provider server, runs `body`, and stops the server.
func withMockProvider<T>(_ body: (MockProviderServer) async throws -> T) async throws -> T {
  let mock = MockProviderServer()
  try mock.start()
  defer { mock.stop() }
  return try await body(mock)
}

/// Builds a multipart/form-data body. Returns the body and its Content-Type header value.
func multipartBody(
  fields: [(String, String)], files: [(name: String, fileName: String, bytes: [UInt8])]
)
  -> (body: [UInt8], contentType: String)
{
  let boundary = "mock-boundary-7d93"
  var body: [UInt8] = []
  for (name, value) in fields {
    body += Array(
      "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
  }
  for file in files {
    let head =
      "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(file.name)\"; filename=\"\(file.fileName)\"\r\n"
      + "Content-Type: application/octet-stream\r\n\r\n"
    body += Array(head.utf8) + file.bytes + Array("\r\n".utf8)
  }
  body += Array("--\(boundary)--\r\n".utf8)
  return (body, "multipart/form-data; boundary=\(boundary)")
}

extension JSONValue {
  /// The member at a dotted path such as "urls.get" or "images.0.url".
  func at(_ path: String) -> JSONValue? {
    var current: JSONValue? = self
    for key in path.split(separator: ".") {
      if let index = Int(key), let array = current?.arrayValue {
        current = index < array.count ? array[index] : nil
      } else {
        current = current?[String(key)]
      }
    }
    return current
  }
}
