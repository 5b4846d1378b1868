import Foundation
import HTTPServer
import Storage
import Support

/// The operator routes: liveness, readiness, Prometheus metrics and the OpenAPI document.
extension APIRouter {
  func health() -> HTTPResponse {
    .json(200, #"{"status":"ok"}"#)
  }

  /// Responds 200 when the database responds and templates are loaded, else 503 with the reason.
  func readiness() -> HTTPResponse {
    if let reason = checkReadiness() {
      let body: JSONValue = ["status": "unavailable", "reason": .string(reason)]
      return .json(503, body.serialized())
    }
    return .json(200, #"{"status":"ready"}"#)
  }

  /// Refreshes the gauges read from storage and the engine, then renders every metric.
  func metricsText() -> HTTPResponse {
    do {
      let counts = try engine.store.taskCounts()
      metrics.tasks.replaceAll(
        counts.map { ([$0.status, $0.provider ?? "none"], Double($0.count)) })
    } catch {
      logger.error("cannot count tasks for metrics", [("error", "\(error)")])
    }
    metrics.queueDepth.set([], Double(engine.activeTaskCount))
    return HTTPResponse(
      status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
      body: Array(metrics.registry.render().utf8))
  }

  func openAPI() -> HTTPResponse {
    guard let document = openAPIDocument else {
      return error(
        404, "not_found",
        "the OpenAPI document was not found at start; install docs/openapi.json as "
          + "openapi.json beside the built-in providers directory")
    }
    return HTTPResponse(
      status: 200, headers: [("Content-Type", "application/json")], body: document)
  }
}
