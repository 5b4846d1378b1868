import Foundation
import Support

/// Exit statuses of `tasks wait`, by how the task ended.
enum WaitExit {
  static let completed: Int32 = 0
  static let failed: Int32 = 1
  static let timedOut: Int32 = 3
  static let cancelled: Int32 = 4
  static let gaveUp: Int32 = 5

  static func status(for taskStatus: String) -> Int32 {
    switch taskStatus {
    case "completed": completed
    case "timeout": timedOut
    case "cancelled": cancelled
    default: failed
    }
  }
}

func waitCommand(_ flags: ParsedFlags) async {
  let id = taskID(flags, "wait")
  var timeout: Double?
  if let text = flags.string("timeout") {
    guard let value = Double(text), value > 0 else {
      fail("invalid --timeout '\(text)': expected a number of seconds above 0")
    }
    timeout = value
  }
  exit(await follow(makeClient(flags), id: id, timeout: timeout, json: flags.bool("json")))
}

/// Follows a task with long polls until it ends or `timeout` seconds pass; returns the exit
/// status. On a terminal the status line is redrawn in place every 2 s, so the progress bar
/// moves while the status stays the same. Otherwise each long poll waits up to 25 s, and a
/// line is printed whenever status, provider status or progress changes.
func follow(_ client: TaskClient, id: String, timeout: Double?, json: Bool) async -> Int32 {
  let terminal = standardOutputIsTerminal && !json
  let started = Date()
  var lastLine = ""
  while true {
    let elapsed = Date().timeIntervalSince(started)
    var wait = terminal ? 2.0 : 25.0
    if let timeout {
      if elapsed >= timeout {
        if terminal { print("") }
        FileHandle.standardError.write(
          Data("asyncqueue: task \(id) did not end within \(Int(timeout)) s\n".utf8))
        return WaitExit.gaveUp
      }
      wait = max(0, min(wait, timeout - elapsed))
    }
    let response = await client.send(
      "GET", "/v1/tasks/\(id)?wait=\(Int(wait.rounded(.up)))", timeout: wait + 15)
    if response.status == 404 { fail("task \(id) not found") }
    if response.status == 429 {
      try? await Task.sleep(nanoseconds: 1_000_000_000)
      continue
    }
    client.expectSuccess(response, "cannot read task \(id)")
    let task = response.json["task"] ?? .null
    let status = task["status"]?.stringValue ?? ""
    let isTerminal = ["completed", "failed", "timeout", "cancelled"].contains(status)
    let line = progressLine(task, elapsed: Date().timeIntervalSince(started))
    if json {
      if isTerminal { print(prettyJSON(response.json)) }
    } else if terminal {
      print("\r\u{1B}[2K" + line, terminator: isTerminal ? "\n" : "")
      fflush(nil)
    } else {
      // Without the elapsed time, a line repeats only when something changed.
      let changeKey = line.components(separatedBy: "  polls").first ?? line
      if changeKey != lastLine { print(line) }
      lastLine = changeKey
    }
    if isTerminal {
      if !json, let error = task["error"]?.stringValue { print("error: \(error)") }
      if !json, status == "completed", let result = task["result"], !result.isNull {
        print("result: \(result.serialized())")
      }
      return WaitExit.status(for: status)
    }
    if wait == 0 { try? await Task.sleep(nanoseconds: 200_000_000) }
  }
}
