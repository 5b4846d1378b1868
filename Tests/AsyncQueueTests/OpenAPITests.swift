import API
import Foundation
import MockProvider
import Support
import Testing

@Suite(.serialized) struct OpenAPITests {
  let document: JSONValue = {
    let path = repositoryRoot + "/docs/openapi.json"
    let data = FileManager.default.contents(atPath: path) ?? Data()
    return (try? JSONValue.parse(data)) ?? .null
  }()

  @Test func documentIsOpenAPI31() {
    #expect(document["openapi"]?.stringValue == "3.1.0")
    #expect(document["paths"]?.objectValue?.isEmpty == false)
  }

  @Test func everyRouteIsDocumented() {
    let paths = document["paths"]?.objectValue ?? [:]
    for route in APIRouter.routeTable {
      let operation = paths[route.pattern]?[route.method.lowercased()]
      #expect(
        operation != nil, "\(route.method) \(route.pattern) is missing from docs/openapi.json")
    }
  }

  @Test func examplesMatchTheirSchemas() {
    let validator = JSONSchemaSubset(document: document)
    var checked = 0
    for (location, schema, example) in mediaExamples(document, location: "#") {
      let problems = validator.errors(example, schema)
      #expect(problems.isEmpty, "\(location): \(problems.joined(separator: "; "))")
      checked += 1
    }
    #expect(checked >= 20, "only \(checked) examples found")
  }

  @Test func validatorRejectsMismatches() {
    let validator = JSONSchemaSubset(document: document)
    let task: JSONValue = ["$ref": "#/components/schemas/Task"]
    #expect(!validator.errors(["id": "x"], task).isEmpty, "missing required fields")
    let create: JSONValue = ["$ref": "#/components/schemas/TaskCreate"]
    #expect(validator.errors(["targetUrl": "https://x.example"], create).isEmpty)
    #expect(
      !validator.errors(["targetUrl": "https://x.example", "targetURL": "y"], create).isEmpty)
    #expect(!validator.errors(["targetUrl": "https://x.example", "priority": 11], create).isEmpty)
    #expect(!validator.errors(["targetUrl": 5], create).isEmpty)
  }

  @Test func servedDocumentMatchesFile() async throws {
    let service = try TestService()
    defer { service.stop() }
    let response = try await service.raw("/openapi.json")
    #expect(response.statusCode == 200)
    let file = FileManager.default.contents(atPath: repositoryRoot + "/docs/openapi.json")
    #expect(response.body == Array(file ?? Data()))
  }

  @Test func liveResponsesMatchSchemas() async throws {
    let target = WebhookReceiver()
    try target.start()
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
    }
    let validator = JSONSchemaSubset(document: document)
    func check(_ json: JSONValue, _ schema: String, _ label: String) {
      let problems = validator.errors(json, ["$ref": .string("#/components/schemas/\(schema)")])
      #expect(problems.isEmpty, "\(label): \(problems.joined(separator: "; "))")
    }
    let create =
      #"{"targetUrl": "\#(target.url)", "headers": {"Authorization": "Bearer abcdef123"}}"#
    let (status, created) = try await service.call("POST", "/v1/tasks", body: create)
    #expect(status == 201)
    check(created, "TaskEnvelope", "POST /v1/tasks")
    let id = created["task"]?["id"]?.stringValue ?? ""
    let finished = try await service.waitForEnd(id)
    check(["task": finished], "TaskEnvelope", "GET /v1/tasks/{id}")
    let (_, list) = try await service.call("GET", "/v1/tasks")
    check(list, "TaskList", "GET /v1/tasks")
    let (_, missing) = try await service.call("GET", "/v1/tasks/\(UUID().uuidString)")
    check(missing, "Error", "404")
    let (_, providers) = try await service.call("GET", "/v1/providers/fal", key: nil)
    check(providers["provider"] ?? .null, "Provider", "GET /v1/providers/{id}")
  }

  /// Collects every media type object with both a schema and an example, with its location.
  private func mediaExamples(_ node: JSONValue, location: String) -> [(
    String, JSONValue, JSONValue
  )] {
    var found: [(String, JSONValue, JSONValue)] = []
    if let object = node.objectValue {
      if let schema = object["schema"], let example = object["example"] {
        found.append((location, schema, example))
      }
      for (key, child) in object.sorted(by: { $0.key < $1.key }) {
        found += mediaExamples(child, location: location + "/" + key)
      }
    } else if let items = node.arrayValue {
      for (index, child) in items.enumerated() {
        found += mediaExamples(child, location: "\(location)/\(index)")
      }
    }
    return found
  }
}
