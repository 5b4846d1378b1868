import Engine
import Foundation
import HTTPServer
import Plugins
import Support

extension APIRouter {
  /// `GET /v1/tasks/{id}/files/{name}`: a file a plugin archived for the task, such as a copy
  /// of a provider's output made by the result-archive plugin.
  func archivedFile(id: String, name: String, team: String) -> HTTPResponse {
    guard (try? engine.task(id: id, teamId: team)) != nil else {
      return notFound("task \(id) not found")
    }
    guard
      let path = ArchivedFiles.path(
        dataDirectory: engine.config.dataDirectory, taskId: id, name: name)
    else {
      return notFound(
        "'\(name)' is not a valid file name; names use letters, digits, '.', '-' and '_'")
    }
    guard let data = FileManager.default.contents(atPath: path) else {
      return notFound("task \(id) has no archived file named '\(name)'")
    }
    return HTTPResponse(
      status: 200,
      headers: [
        ("Content-Type", ArchivedFiles.contentType(forName: name)),
        ("Content-Disposition", "inline; filename=\"\(name)\""),
      ], body: Array(data))
  }

  private func notFound(_ message: String) -> HTTPResponse {
    .json(404, JSONValue.object(["error": .string(message), "code": "not_found"]).serialized())
  }
}
