import HTTPServer

/// Access level of a route.
enum RouteAccess: Sendable {
  /// No API key needed.
  case open
  /// Needs an API key; the handler gets the key's team.
  case team
}

/// A matched request: the request, the values of the pattern's `{name}` segments, and the
/// team for routes with `RouteAccess.team`.
struct RouteContext {
  let request: HTTPRequest
  let parameters: [String: String]
  let team: String

  subscript(_ name: String) -> String { parameters[name] ?? "" }
}

/// One route of the API. `pattern` uses the OpenAPI path syntax, e.g. `/v1/tasks/{id}`, so the
/// OpenAPI document and this table name routes the same way.
struct Route: Sendable {
  let method: String
  let pattern: String
  let access: RouteAccess
  let handler: @Sendable (APIRouter, RouteContext) -> HTTPResponse

  /// Returns the values of the `{name}` segments when `segments` match the pattern, else nil.
  func match(_ segments: [Substring]) -> [String: String]? {
    let parts = pattern.split(separator: "/")
    guard parts.count == segments.count else { return nil }
    var parameters: [String: String] = [:]
    for (part, segment) in zip(parts, segments) {
      if part.hasPrefix("{") && part.hasSuffix("}") {
        parameters[String(part.dropFirst().dropLast())] = String(segment)
      } else if part != segment {
        return nil
      }
    }
    return parameters
  }
}

extension APIRouter {
  /// Every route the router serves. Add a route here and to `docs/openapi.json`; a test
  /// checks that the document covers this table.
  static let routes: [Route] = [
    Route(method: "GET", pattern: "/healthz", access: .open) { router, _ in router.health() },
    Route(method: "GET", pattern: "/readyz", access: .open) { router, _ in router.readiness() },
    Route(method: "GET", pattern: "/metrics", access: .open) { router, _ in router.metricsText() },
    Route(method: "GET", pattern: "/openapi.json", access: .open) { router, _ in
      router.openAPI()
    },
    Route(method: "GET", pattern: "/v1/providers", access: .open) { router, _ in
      router.listProviders()
    },
    Route(method: "GET", pattern: "/v1/providers/{id}", access: .open) { router, context in
      router.provider(context["id"])
    },
    Route(method: "POST", pattern: "/v1/tokens", access: .team) { router, context in
      router.createToken(context.request, team: context.team)
    },
    Route(method: "GET", pattern: "/v1/tokens", access: .team) { router, context in
      router.listTokens(team: context.team)
    },
    Route(method: "GET", pattern: "/v1/tokens/{id}", access: .team) { router, context in
      router.getToken(id: context["id"], team: context.team)
    },
    Route(method: "DELETE", pattern: "/v1/tokens/{id}", access: .team) { router, context in
      router.deleteToken(id: context["id"], team: context.team)
    },
    Route(method: "POST", pattern: "/v1/signals/{token}", access: .open) { router, context in
      router.signal(context.request, token: context["token"])
    },
    Route(method: "POST", pattern: "/v1/callbacks/{id}", access: .open) { router, context in
      router.callback(context.request, id: context["id"])
    },
    Route(method: "POST", pattern: "/v1/tasks", access: .team) { router, context in
      router.createTask(context.request, team: context.team)
    },
    Route(method: "GET", pattern: "/v1/tasks", access: .team) { router, context in
      router.listTasks(context.request, team: context.team)
    },
    Route(method: "GET", pattern: "/v1/tasks/{id}", access: .team) { router, context in
      router.getTask(context.request, id: context["id"], team: context.team)
    },
    Route(method: "GET", pattern: "/v1/tasks/{id}/result", access: .team) { router, context in
      router.resultFile(id: context["id"], team: context.team)
    },
    Route(method: "GET", pattern: "/v1/tasks/{id}/files/{name}", access: .team) {
      router, context in
      router.archivedFile(id: context["id"], name: context["name"], team: context.team)
    },
    Route(method: "POST", pattern: "/v1/tasks/{id}/cancel", access: .team) { router, context in
      router.cancelTask(id: context["id"], team: context.team)
    },
    Route(method: "GET", pattern: "/v1/tasks/{id}/events", access: .team) { router, context in
      router.taskEvents(id: context["id"], team: context.team)
    },
    Route(method: "GET", pattern: "/v1/tasks/{id}/deliveries", access: .team) { router, context in
      router.taskDeliveries(id: context["id"], team: context.team)
    },
    Route(method: "POST", pattern: "/v1/tasks/{id}/redeliver", access: .team) { router, context in
      router.redeliver(id: context["id"], team: context.team)
    },
    Route(method: "GET", pattern: "/v1/deliveries", access: .team) { router, context in
      router.listDeliveries(context.request, team: context.team)
    },
  ]

  /// The method and pattern of every route, for tests and documentation checks.
  public static var routeTable: [(method: String, pattern: String)] {
    routes.map { ($0.method, $0.pattern) }
  }
}
