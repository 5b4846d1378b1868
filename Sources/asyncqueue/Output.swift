import Foundation
import Support

/// Renders rows as left-aligned columns under a header, two spaces apart.
func table(header: [String], rows: [[String]]) -> String {
  var widths = header.map(\.count)
  for row in rows {
    for (index, cell) in row.enumerated() where index < widths.count {
      widths[index] = max(widths[index], cell.count)
    }
  }
  func line(_ cells: [String]) -> String {
    var text = ""
    for (index, cell) in cells.enumerated() {
      let isLast = index == cells.count - 1
      text += isLast ? cell : cell.padding(toLength: widths[index] + 2, withPad: " ", startingAt: 0)
    }
    return text + "\n"
  }
  return ([header] + rows).map(line).joined()
}

/// True when standard output is a terminal, so output may redraw lines in place.
var standardOutputIsTerminal: Bool { isatty(STDOUT_FILENO) == 1 }

/// Formats a one-line task status for a terminal: status, a progress bar and the provider's
/// status.
func progressLine(_ task: JSONValue, elapsed: Double, width: Int = 30) -> String {
  let status = task["status"]?.stringValue ?? "?"
  var line = status.padding(toLength: 11, withPad: " ", startingAt: 0)
  if let progress = task["progress"]?.doubleValue {
    let clamped = min(1, max(0, progress))
    let filled = Int((clamped * Double(width)).rounded(.down))
    line += "[" + String(repeating: "#", count: filled)
    line += String(repeating: "-", count: width - filled) + "] "
    line += String(format: "%3d%%", Int((clamped * 100).rounded(.down)))
  } else {
    line += "[" + String(repeating: " ", count: width) + "]     "
  }
  if let providerStatus = task["providerStatus"]?.stringValue {
    line += "  " + providerStatus
  }
  line += "  polls \(task["pollCount"]?.intValue ?? 0)  \(Int(elapsed)) s"
  return line
}

/// A task's main fields as `name  value` lines, for `tasks get` and `tasks wait`.
func taskSummary(_ task: JSONValue) -> String {
  let names = [
    "id", "status", "provider", "targetUrl", "progress", "providerStatus", "pollCount",
    "retryCount", "error", "errorCode", "createdAt", "startedAt", "completedAt", "nextRunAt",
  ]
  var rows: [[String]] = []
  for name in names {
    guard let value = task[name], !value.isNull else { continue }
    rows.append([name, value.stringValue ?? value.serialized()])
  }
  if let file = task["resultFile"], !file.isNull {
    rows.append(["resultFile", file["url"]?.stringValue ?? file.serialized()])
  }
  if let result = task["result"], !result.isNull {
    let text = result.serialized()
    rows.append(["result", text.count > 200 ? String(text.prefix(200)) + "…" : text])
  }
  return table(header: ["FIELD", "VALUE"], rows: rows)
}
