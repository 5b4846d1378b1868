import Foundation
import Support

let tasksHelp = """
  Usage: asyncqueue tasks <command> [options]

  Talk to a running server. The server and key come from --url and --api-key, the
  ASYNCQUEUE_URL and ASYNCQUEUE_API_KEY environment variables, or --config FILE.

    tasks create [FILE|-] [--target URL] [--provider ID] [--method M] [--header K:V]...
                 [--body TEXT|@FILE] [--on-complete URL] [--priority N] [--wait]
        Create a task from a JSON file, standard input ('-', or piped), flags, or a mix
        (flags override the file's fields). Prints the new task's id.
    tasks get ID               Show one task.
    tasks list [--status S] [--provider P] [--limit N] [--offset N]
    tasks wait ID [--timeout SECONDS]
        Follow a task until it ends: a progress bar on a terminal, one line per change
        otherwise.
    tasks cancel ID            Cancel a task.
    tasks events ID            Show a task's timeline of events.

  Every command takes --json to print the server's JSON instead of a table.

  Exit status: 0 success (for wait: the task completed), 1 the task failed, 2 usage or
  request error, 3 the task timed out, 4 the task was cancelled, 5 --timeout passed first.
  """

private let createFlags: [FlagSpec] = [
  FlagSpec(name: "target", environment: nil, valueName: "URL", help: "targetUrl of the task."),
  FlagSpec(name: "provider", environment: nil, valueName: "ID", help: "Provider template id."),
  FlagSpec(name: "method", environment: nil, valueName: "METHOD", help: "HTTP method."),
  FlagSpec(
    name: "header", environment: nil, valueName: "NAME:VALUE", help: "A header; repeatable.",
    repeatable: true),
  FlagSpec(name: "body", environment: nil, valueName: "TEXT", help: "Body, or @FILE."),
  FlagSpec(name: "on-complete", environment: nil, valueName: "URL", help: "Webhook URL."),
  FlagSpec(name: "priority", environment: nil, valueName: "N", help: "Priority, 1 to 10."),
  FlagSpec(name: "wait", environment: nil, valueName: nil, help: "Wait for the task to end."),
  FlagSpec(name: "timeout", environment: nil, valueName: "SECONDS", help: "Limit for --wait."),
]

private let listFlags: [FlagSpec] = [
  FlagSpec(name: "status", environment: nil, valueName: "STATUS", help: "Only this status."),
  FlagSpec(name: "provider", environment: nil, valueName: "ID", help: "Only this provider."),
  FlagSpec(name: "limit", environment: nil, valueName: "N", help: "Tasks per page, 1 to 100."),
  FlagSpec(name: "offset", environment: nil, valueName: "N", help: "Tasks to skip."),
]

private let waitFlags: [FlagSpec] = [
  FlagSpec(
    name: "timeout", environment: nil, valueName: "SECONDS",
    help: "Stop waiting after this many seconds (exit status 5). Default: no limit.")
]

func runTasks(_ arguments: [String]) async {
  guard let command = arguments.first, command != "--help", command != "-h" else {
    print(tasksHelp)
    return
  }
  let rest = Array(arguments.dropFirst())
  if rest.contains("--help") {
    print(tasksHelp)
    return
  }
  switch command {
  case "create": await createTask(parse(rest, createFlags, positional: 1))
  case "get": await getTask(parse(rest, [], positional: 1))
  case "list": await listTasks(parse(rest, listFlags, positional: 0))
  case "wait": await waitCommand(parse(rest, waitFlags, positional: 1))
  case "cancel": await cancelTask(parse(rest, [], positional: 1))
  case "events": await showEvents(parse(rest, [], positional: 1))
  default: fail("unknown tasks command '\(command)'; run 'asyncqueue tasks --help'")
  }
}

private func parse(_ arguments: [String], _ extra: [FlagSpec], positional: Int) -> ParsedFlags {
  do {
    return try ParsedFlags(
      arguments: arguments, specs: clientFlags + extra,
      environment: ProcessInfo.processInfo.environment, positionalLimit: positional)
  } catch {
    fail("\(error)")
  }
}

func taskID(_ flags: ParsedFlags, _ command: String) -> String {
  guard let id = flags.positional.first, !id.isEmpty else {
    fail("missing task id: asyncqueue tasks \(command) ID")
  }
  guard id.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
    fail("invalid task id '\(id)': expected a UUID such as 3f2c…")
  }
  return id
}

private func printJSON(_ value: JSONValue) {
  print(prettyJSON(value))
}

// MARK: create

private func createTask(_ flags: ParsedFlags) async {
  var fields = readTaskFile(flags)
  if let target = flags.string("target") { fields["targetUrl"] = .string(target) }
  if let provider = flags.string("provider") { fields["provider"] = .string(provider) }
  if let method = flags.string("method") { fields["method"] = .string(method.uppercased()) }
  if let url = flags.string("on-complete") { fields["onCompleteUrl"] = .string(url) }
  if let priority = flags.string("priority") {
    guard let value = Int64(priority) else {
      fail("invalid --priority '\(priority)': expected 1 to 10")
    }
    fields["priority"] = .int(value)
  }
  if let body = flags.string("body") { fields["body"] = .string(readBody(body)) }
  var headers = fields["headers"]?.objectValue ?? [:]
  for header in flags.strings("header") {
    guard let colon = header.firstIndex(of: ":") else {
      fail("invalid --header '\(header)': expected NAME:VALUE")
    }
    let name = header[..<colon].trimmingCharacters(in: .whitespaces)
    headers[name] = .string(
      header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces))
  }
  if !headers.isEmpty { fields["headers"] = .object(headers) }
  guard fields["targetUrl"] != nil else {
    fail("missing targetUrl: pass --target URL, or a JSON file or standard input with targetUrl")
  }

  let client = makeClient(flags)
  let response = await client.send("POST", "/v1/tasks", body: .object(fields))
  client.expectSuccess(response, "cannot create the task")
  let task = response.json["task"] ?? .null
  let id = task["id"]?.stringValue ?? ""
  if flags.bool("wait") {
    if !flags.bool("json") { print(id) }
    exit(await follow(client, id: id, timeout: timeoutFlag(flags), json: flags.bool("json")))
  }
  if flags.bool("json") {
    printJSON(response.json)
  } else {
    print(id)
    // The one-time secrets appear only in the create response; show them too.
    if let token = response.json["signalToken"]?.stringValue { print("signalToken \(token)") }
    if let url = response.json["callbackUrl"]?.stringValue { print("callbackUrl \(url)") }
  }
}

/// Reads the task's JSON object from a file argument, `-` or piped standard input; returns an
/// empty object when there is none.
private func readTaskFile(_ flags: ParsedFlags) -> [String: JSONValue] {
  let source = flags.positional.first
  let data: Data?
  if source == "-" || (source == nil && !flags.hasTaskFlags && isatty(STDIN_FILENO) == 0) {
    data = FileHandle.standardInput.readDataToEndOfFile()
  } else if let source {
    guard let contents = FileManager.default.contents(atPath: source) else {
      fail("cannot read \(source): no such file or not readable")
    }
    data = contents
  } else {
    data = nil
  }
  guard let data else { return [:] }
  do {
    guard let object = try JSONValue.parse(data).objectValue else {
      fail("the task JSON must be an object such as {\"targetUrl\": \"https://…\"}")
    }
    return object
  } catch {
    fail("the task JSON is invalid: \(error)")
  }
}

private func readBody(_ text: String) -> String {
  guard text.hasPrefix("@") else { return text }
  let path = String(text.dropFirst())
  guard let data = FileManager.default.contents(atPath: path) else {
    fail("cannot read --body file \(path)")
  }
  return String(decoding: data, as: UTF8.self)
}

extension ParsedFlags {
  /// True when `tasks create` got the task from flags, so standard input is not read.
  fileprivate var hasTaskFlags: Bool { string("target") != nil }
}

private func timeoutFlag(_ flags: ParsedFlags) -> Double? {
  guard let text = flags.string("timeout") else { return nil }
  guard let value = Double(text), value > 0 else {
    fail("invalid --timeout '\(text)': expected a number of seconds above 0")
  }
  return value
}

// MARK: get, list

private func getTask(_ flags: ParsedFlags) async {
  let id = taskID(flags, "get")
  let client = makeClient(flags)
  let response = await client.send("GET", "/v1/tasks/\(id)")
  client.expectSuccess(response, "cannot read task \(id)")
  if flags.bool("json") {
    printJSON(response.json)
  } else {
    print(taskSummary(response.json["task"] ?? .null), terminator: "")
  }
}

private func listTasks(_ flags: ParsedFlags) async {
  var query: [String] = []
  for name in ["status", "provider", "limit", "offset"] {
    if let value = flags.string(name) {
      let encoded = value.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? value
      query.append("\(name)=\(encoded)")
    }
  }
  let client = makeClient(flags)
  let path = "/v1/tasks" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
  let response = await client.send("GET", path)
  client.expectSuccess(response, "cannot list tasks")
  if flags.bool("json") {
    printJSON(response.json)
    return
  }
  let rows = (response.json["tasks"]?.arrayValue ?? []).map { task in
    [
      task["id"]?.stringValue ?? "", task["status"]?.stringValue ?? "",
      task["provider"]?.stringValue ?? "-",
      task["progress"]?.doubleValue.map { "\(Int($0 * 100))%" } ?? "-",
      task["createdAt"]?.stringValue ?? "",
    ]
  }
  print(
    table(header: ["ID", "STATUS", "PROVIDER", "PROGRESS", "CREATED"], rows: rows), terminator: "")
  let page = response.json["pagination"]
  if let total = page?["total"]?.intValue, page?["hasMore"]?.boolValue == true {
    let displayed = (page?["offset"]?.intValue ?? 0) + rows.count
    print("\(displayed) of \(total) shown; use --offset \(displayed) for more")
  }
}

// MARK: cancel, events

private func cancelTask(_ flags: ParsedFlags) async {
  let id = taskID(flags, "cancel")
  let client = makeClient(flags)
  let response = await client.send("POST", "/v1/tasks/\(id)/cancel")
  if TaskClient.isMissingRoute(response) || response.status == 405 {
    fail("this server does not support cancelling tasks; upgrade it")
  }
  if response.status == 404 { fail("task \(id) not found") }
  client.expectSuccess(response, "cannot cancel task \(id)")
  if flags.bool("json") {
    printJSON(response.json)
  } else {
    let status = response.json["task"]?["status"]?.stringValue ?? "unknown"
    // A 202 means the provider was asked to stop the job, and the task ends when it responds.
    if response.status == 202 {
      print(
        "task \(id): cancel requested; the task ends when the provider stops the job (now \(status))"
      )
    } else {
      print("task \(id): \(status)")
    }
  }
}

private func showEvents(_ flags: ParsedFlags) async {
  let id = taskID(flags, "events")
  let client = makeClient(flags)
  let response = await client.send("GET", "/v1/tasks/\(id)/events")
  if TaskClient.isMissingRoute(response) || response.status == 405 {
    fail("this server does not record task events; upgrade it")
  }
  if response.status == 404 { fail("task \(id) not found") }
  client.expectSuccess(response, "cannot read the events of task \(id)")
  if flags.bool("json") {
    printJSON(response.json)
    return
  }
  let events = response.json["events"]?.arrayValue ?? []
  let rows = events.map { event -> [String] in
    func text(_ name: String) -> String {
      guard let value = event[name], !value.isNull else { return "-" }
      return value.stringValue ?? value.serialized()
    }
    let latency = event["latencyMs"]?.intValue.map { "\($0) ms" } ?? "-"
    return [text("at"), text("kind"), text("state"), text("statusCode"), latency, text("error")]
  }
  print(
    table(header: ["TIME", "KIND", "STATE", "HTTP", "LATENCY", "ERROR"], rows: rows),
    terminator: "")
}
