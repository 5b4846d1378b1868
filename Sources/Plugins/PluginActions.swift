import Engine
import Foundation
import HTTPClient
import Storage
import Support

/// A plugin's return value that breaks the hook's contract.
struct InvalidReturn: Error, CustomStringConvertible {
  let description: String
}

/// The value a `before_request` hook returned: `{headers = {Name = "value" or json.null}}`.
struct HeaderChanges {
  let headers: [String: JSONValue]

  init(_ value: JSONValue) throws(InvalidReturn) {
    guard let fields = value.objectValue else {
      throw InvalidReturn(description: "expected a table such as {headers = {...}}")
    }
    for key in fields.keys where key != "headers" {
      throw InvalidReturn(description: "unknown key '\(key)'; before_request may return headers")
    }
    let headers = fields["headers"] ?? .object([:])
    guard let members = headers.objectValue ?? (headers.arrayValue?.isEmpty == true ? [:] : nil)
    else { throw InvalidReturn(description: "'headers' must be a table of name = value") }
    for (name, value) in members where value.stringValue == nil && !value.isNull {
      throw InvalidReturn(
        description: "header '\(name)' must be a string, or json.null to remove it")
    }
    for (name, value) in members where FinishActions.hasLineBreak(name, value.stringValue) {
      throw InvalidReturn(description: "header '\(name)' contains a line break")
    }
    self.headers = members
  }

  /// Sets, replaces (matching names case-insensitively) or, for json.null, removes each header.
  func apply(to request: inout ClientRequest) {
    for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
      request.headers.removeAll { $0.0.lowercased() == name.lowercased() }
      if let text = value.stringValue { request.headers.append((name, text)) }
    }
  }
}

/// The actions a `task_finished` or `downloads_finished` hook returned.
struct FinishActions {
  struct Download {
    let url: String
    let name: String?
    let maxBytes: Int
    let timeout: Double
  }

  struct Request {
    let method: String
    let url: String
    let headers: [(String, String)]
    let body: String?
    let timeout: Double
  }

  static let defaultMaxBytes = 512 << 20
  static let maxDownloads = 50

  var resultFields: [String: JSONValue] = [:]
  var downloads: [Download] = []
  var requests: [Request] = []

  init(_ value: JSONValue) throws(InvalidReturn) {
    // Returning nothing means no actions.
    if value.isNull { return }
    guard let fields = value.objectValue else {
      throw InvalidReturn(description: "expected a table with result_fields, downloads or requests")
    }
    for key in fields.keys.sorted() where !["result_fields", "downloads", "requests"].contains(key)
    {
      throw InvalidReturn(
        description: "unknown key '\(key)'; the hook may return result_fields, downloads, requests")
    }
    if let value = fields["result_fields"] {
      guard let members = Self.table(value) else {
        throw InvalidReturn(description: "'result_fields' must be a table of name = value")
      }
      resultFields = members
    }
    let downloads = try Self.list(fields["downloads"], "downloads")
    if downloads.count > Self.maxDownloads {
      throw InvalidReturn(
        description: "\(downloads.count) downloads requested; at most \(Self.maxDownloads)")
    }
    self.downloads = try downloads.map { item throws(InvalidReturn) in try Self.download(item) }
    self.requests = try Self.list(fields["requests"], "requests").map {
      item throws(InvalidReturn) in try Self.request(item)
    }
  }

  /// True when a header name or value contains CR or LF, which would split the header.
  static func hasLineBreak(_ name: String, _ value: String?) -> Bool {
    (name + (value ?? "")).contains { $0 == "\r" || $0 == "\n" || $0 == "\r\n" }
  }

  // An empty Lua table encodes as {}, so an empty object counts as an empty list or table.
  private static func table(_ value: JSONValue) -> [String: JSONValue]? {
    value.objectValue ?? (value.arrayValue?.isEmpty == true ? [:] : nil)
  }

  private static func list(_ value: JSONValue?, _ key: String) throws(InvalidReturn) -> [JSONValue]
  {
    guard let value else { return [] }
    if let items = value.arrayValue { return items }
    if value.objectValue?.isEmpty == true { return [] }
    throw InvalidReturn(description: "'\(key)' must be a list of tables")
  }

  private static func httpURL(_ value: JSONValue?, _ what: String) throws(InvalidReturn) -> String {
    guard let url = value?.stringValue,
      url.lowercased().hasPrefix("http://") || url.lowercased().hasPrefix("https://")
    else { throw InvalidReturn(description: "each of \(what) needs an http or https 'url'") }
    return url
  }

  private static func download(_ item: JSONValue) throws(InvalidReturn) -> Download {
    let url = try httpURL(item["url"], "downloads")
    if let name = item["name"], name.stringValue == nil {
      throw InvalidReturn(description: "download 'name' must be a string")
    }
    let maxBytes = item["maxBytes"]?.intValue ?? defaultMaxBytes
    guard maxBytes > 0 else {
      throw InvalidReturn(description: "download 'maxBytes' must be positive")
    }
    let timeout = item["timeout"]?.doubleValue ?? 600
    return Download(url: url, name: item["name"]?.stringValue, maxBytes: maxBytes, timeout: timeout)
  }

  private static func request(_ item: JSONValue) throws(InvalidReturn) -> Request {
    let url = try httpURL(item["url"], "requests")
    var headers: [(String, String)] = []
    for (name, value) in (item["headers"].flatMap(table) ?? [:]).sorted(by: { $0.key < $1.key }) {
      guard let text = value.stringValue else {
        throw InvalidReturn(description: "request header '\(name)' must be a string")
      }
      if hasLineBreak(name, text) {
        throw InvalidReturn(description: "request header '\(name)' contains a line break")
      }
      headers.append((name, text))
    }
    if let body = item["body"], body.stringValue == nil {
      throw InvalidReturn(description: "request 'body' must be a string; use json.encode")
    }
    return Request(
      method: (item["method"]?.stringValue ?? "POST").uppercased(), url: url, headers: headers,
      body: item["body"]?.stringValue, timeout: item["timeout"]?.doubleValue ?? 10)
  }
}

extension PluginHost {
  /// Merges result fields, sends requests and runs downloads (then `downloads_finished`).
  func perform(_ actions: FinishActions, plugin: PluginScript, task: inout TaskRecord) async {
    merge(actions.resultFields, into: &task)
    if !actions.requests.isEmpty {
      let requests = actions.requests
      let taskId = task.id
      Task.detached(executorPreference: Engine.executor) { [self] in
        await send(requests, plugin: plugin.name, task: taskId)
      }
    }
    guard !actions.downloads.isEmpty else { return }
    let outcomes = await download(actions.downloads, plugin: plugin.name, task: task.id)
    guard plugin.hooks.contains("downloads_finished") else { return }
    var ctx = context(plugin, task)
    ctx["downloads"] = .array(outcomes)
    guard let value = call(plugin, "downloads_finished", .object(ctx), task: task.id) else {
      return
    }
    do {
      let followUp = try FinishActions(value)
      guard followUp.downloads.isEmpty else {
        throw InvalidReturn(description: "downloads_finished may not ask for more downloads")
      }
      merge(followUp.resultFields, into: &task)
      if !followUp.requests.isEmpty {
        let taskId = task.id
        Task.detached(executorPreference: Engine.executor) { [self] in
          await send(followUp.requests, plugin: plugin.name, task: taskId)
        }
      }
    } catch {
      reportInvalidReturn(plugin, "downloads_finished", task: task.id, error)
    }
  }

  /// Adds fields to an object result. A null result becomes an object, and any other result
  /// moves under `value`, as the engine does for stored result files.
  func merge(_ fields: [String: JSONValue], into task: inout TaskRecord) {
    guard !fields.isEmpty else { return }
    let result = task.result ?? .null
    var members = result.objectValue ?? (result.isNull ? [:] : ["value": result])
    for (key, value) in fields { members[key] = value }
    task.result = .object(members)
  }

  private func send(_ requests: [FinishActions.Request], plugin: String, task: String) async {
    for item in requests {
      let request = ClientRequest(
        method: item.method, url: item.url, headers: item.headers,
        body: item.body.map { Array($0.utf8) }, timeout: item.timeout, maxResponseBytes: 1 << 20)
      let fields = [("plugin", plugin), ("task", task), ("url", item.url)]
      switch await client.send(request) {
      case .success(let response) where (200..<300).contains(response.statusCode):
        logger.debug("plugin request sent", fields + [("status", String(response.statusCode))])
      case .success(let response):
        logger.warn(
          "plugin request got an error response", fields + [("status", String(response.statusCode))]
        )
      case .failure(let error):
        logger.warn("plugin request failed", fields + [("error", error.message)])
      }
    }
  }

  /// Downloads each file into the task's archive directory and returns one outcome per
  /// download: `{name, url, sourceUrl, contentType, size}` or `{name, sourceUrl, error}`.
  private func download(_ downloads: [FinishActions.Download], plugin: String, task: String) async
    -> [JSONValue]
  {
    var outcomes: [JSONValue] = []
    var used: Set<String> = []
    for item in downloads {
      var name = ArchivedFiles.safeName(item.name ?? Self.lastPathComponent(item.url))
      let request = ClientRequest(
        method: "GET", url: item.url, timeout: item.timeout, maxResponseBytes: item.maxBytes)
      let outcome = await client.send(request)
      var fields: [String: JSONValue] = ["sourceUrl": .string(item.url)]
      do {
        let response = try outcome.get()
        guard (200..<300).contains(response.statusCode) else {
          throw InvalidReturn(description: "HTTP \(response.statusCode)")
        }
        let contentType =
          response.headers["content-type"] ?? ArchivedFiles.contentType(forName: name)
        if (name as NSString).pathExtension.isEmpty,
          let pathExtension = ArchivedFiles.pathExtension(forContentType: contentType)
        {
          name += "." + pathExtension
        }
        name = Self.unique(name, used: &used)
        try write(response.body, task: task, name: name)
        fields["name"] = .string(name)
        fields["url"] = .string(
          ArchivedFiles.url(publicURL: settings.publicURL, taskId: task, name: name))
        fields["contentType"] = .string(contentType)
        fields["size"] = .int(Int64(response.body.count))
        logger.info(
          "plugin archived a file",
          [
            ("plugin", plugin), ("task", task), ("file", name),
            ("size", String(response.body.count)),
          ])
      } catch {
        fields["name"] = .string(name)
        fields["error"] = .string("\(error)")
        logger.warn(
          "plugin download failed",
          [("plugin", plugin), ("task", task), ("url", item.url), ("error", "\(error)")])
      }
      outcomes.append(.object(fields))
    }
    return outcomes
  }

  /// Writes to a hidden temporary name, syncs and renames, so the route never serves a partial
  /// file.
  private func write(_ bytes: [UInt8], task: String, name: String) throws {
    let directory = ArchivedFiles.directory(dataDirectory: settings.dataDirectory, taskId: task)
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let path = (directory as NSString).appendingPathComponent(name)
    let temporary = (directory as NSString).appendingPathComponent(".\(name).partial")
    try Data(bytes).write(to: URL(fileURLWithPath: temporary))
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
    try handle.synchronize()
    try handle.close()
    if FileManager.default.fileExists(atPath: path) {
      try FileManager.default.removeItem(atPath: path)
    }
    try FileManager.default.moveItem(atPath: temporary, toPath: path)
  }

  private static func lastPathComponent(_ url: String) -> String {
    let path = URLComponents(string: url)?.path ?? ""
    return (path as NSString).lastPathComponent
  }

  private static func unique(_ name: String, used: inout Set<String>) -> String {
    var candidate = name
    var counter = 2
    while used.contains(candidate) {
      let base = (name as NSString).deletingPathExtension
      let pathExtension = (name as NSString).pathExtension
      candidate = "\(base)-\(counter)" + (pathExtension.isEmpty ? "" : ".\(pathExtension)")
      counter += 1
    }
    used.insert(candidate)
    return candidate
  }
}
