import API
import Foundation
import HTTPClient
import Support

/// A client of a running asyncqueue server, for the `tasks` commands.
struct TaskClient {
  let baseURL: String
  let apiKey: String?
  // The server is the user's own, often on loopback or a private network, so the private
  // network rule of the engine does not apply to this client.
  let http = CurlClient(allowPrivateNetwork: true, userAgent: "asyncqueue-cli")

  struct Response {
    let status: Int
    let json: JSONValue
  }

  /// Sends a request; a connection failure ends the program with exit status 2.
  func send(_ method: String, _ path: String, body: JSONValue? = nil, timeout: Double = 40)
    async -> Response
  {
    var headers: [(String, String)] = [("Accept", "application/json")]
    if let apiKey { headers.append(("Authorization", "Bearer \(apiKey)")) }
    if body != nil { headers.append(("Content-Type", "application/json")) }
    let request = ClientRequest(
      method: method, url: baseURL + path, headers: headers,
      body: body.map { Array($0.serializedData()) }, timeout: timeout)
    switch await http.send(request) {
    case .success(let response):
      let json =
        (try? JSONValue.parse(response.body))
        ?? .string(String(decoding: response.body, as: UTF8.self))
      return Response(status: response.statusCode, json: json)
    case .failure(let error):
      fail("cannot reach \(baseURL): \(error.message); check --url or ASYNCQUEUE_URL")
    }
  }

  /// Ends the program with the server's error message unless the status is 2xx.
  func expectSuccess(_ response: Response, _ action: String) {
    guard !(200..<300).contains(response.status) else { return }
    let message = response.json["error"]?.stringValue ?? response.json.serialized()
    if response.status == 401 {
      fail("\(action): \(message) (pass --api-key or set ASYNCQUEUE_API_KEY)")
    }
    if response.status == 429 {
      fail("\(action): \(message)")
    }
    fail("\(action): HTTP \(response.status): \(message)")
  }

  /// True when a 404 came from a route this server does not have, not from a missing task.
  static func isMissingRoute(_ response: Response) -> Bool {
    response.status == 404
      && (response.json["error"]?.stringValue?.hasPrefix("no route") ?? false)
  }
}

/// Flags shared by the `tasks` commands.
let clientFlags: [FlagSpec] = [
  configFlag,
  FlagSpec(
    name: "url", environment: "ASYNCQUEUE_URL", valueName: "URL",
    help: """
      Base URL of the server. Default: publicUrl of the config file, else http://HOST:PORT
      from it, else http://127.0.0.1:8080.
      """),
  FlagSpec(
    name: "api-key", environment: "ASYNCQUEUE_API_KEY", valueName: "KEY",
    help: "API key. Default: the first of apiKeys in the config file."),
  FlagSpec(name: "json", environment: nil, valueName: nil, help: "Print the server's JSON."),
]

/// Makes the client from `--url`/`--api-key`, their environment variables or the config file.
func makeClient(_ flags: ParsedFlags) -> TaskClient {
  var settings: ServiceSettings?
  if let file = flags.string("config") {
    do {
      settings = try ServiceSettings(configFile: file, environment: [:], flags: [:])
    } catch {
      fail("\(error)")
    }
  }
  var url = flags.string("url") ?? settings?.string("publicUrl")
  if url == nil, let settings {
    var host = settings.string("host") ?? "127.0.0.1"
    if host == "0.0.0.0" { host = "127.0.0.1" }
    if host == "::" { host = "::1" }
    if host.contains(":") { host = "[\(host)]" }
    url = "http://\(host):\(settings.values["port"]?.intValue ?? 8080)"
  }
  var base = url ?? "http://127.0.0.1:8080"
  while base.hasSuffix("/") { base.removeLast() }
  let key = flags.string("api-key") ?? settings?.strings("apiKeys").first
  return TaskClient(baseURL: base, apiKey: key)
}
