import API
import Foundation
import Support

/// The flag that names the config file, shared by every command that reads one.
let configFlag = FlagSpec(
  name: "config", environment: "ASYNCQUEUE_CONFIG", valueName: "FILE",
  help: """
    JSON config file; its keys mirror the flags in camelCase (see docs/operations.md).
    Precedence: flags, then environment variables, then this file, then defaults.
    """)

/// `serve`'s flags: one per setting that has a flag, plus the config file and --print-config.
let serveFlags: [FlagSpec] =
  [configFlag]
  + SettingSpec.all.compactMap { setting in
    setting.flag.map { flag in
      var help = setting.help
      if !setting.defaultValue.isNull, setting.defaultValue != .array([]),
        setting.defaultValue != .object([:]), !help.contains("Default")
      {
        help += "\nDefault: \(describe(setting.defaultValue))."
      }
      return FlagSpec(
        name: flag, environment: setting.environment, valueName: setting.valueName, help: help,
        repeatable: setting.isRepeatable)
    }
  }
  + [
    FlagSpec(
      name: "print-config", environment: nil, valueName: nil,
      help: "Print the effective settings as JSON, secrets as ***, and exit.")
  ]

private func describe(_ value: JSONValue) -> String {
  if let text = value.stringValue { return text }
  if let limit = value.objectValue, let requests = limit["requests"]?.intValue,
    let seconds = limit["perSeconds"]?.doubleValue
  {
    return "\(requests)/\(Int(seconds))"
  }
  return value.serialized()
}

/// Resolves the settings from a command's flags, the environment and the config file.
func resolveSettings(_ flags: ParsedFlags) -> ServiceSettings {
  let environment = ProcessInfo.processInfo.environment
  let configFile = flags.string("config")
  do {
    return try ServiceSettings(
      configFile: configFile, environment: environment, flags: flags.commandLine)
  } catch {
    fail("\(error)")
  }
}

func runServe(_ arguments: [String]) {
  if arguments.contains("--help") || arguments.contains("-h") {
    print(
      helpText(
        usage: "asyncqueue serve [options]",
        summary: """
          Start the service: on the embedded SQLite database in the data directory, or on the
          PostgreSQL database of --database, which several services can share.
          """,
        specs: serveFlags))
    return
  }

  let flags: ParsedFlags
  do {
    // ServiceSettings reads the other environment variables itself, after the config file,
    // so the parser falls back to the environment only for --config.
    flags = try ParsedFlags(
      arguments: arguments, specs: serveFlags,
      environment: ProcessInfo.processInfo.environment.filter { $0.key == "ASYNCQUEUE_CONFIG" })
  } catch {
    fail("\(error)")
  }

  let settings = resolveSettings(flags)
  if flags.bool("print-config") {
    print(prettyJSON(settings.printable()))
    return
  }

  var options = settings.serviceOptions()
  options.scriptStates = max(2, ProcessInfo.processInfo.activeProcessorCount)
  if let scale = ProcessInfo.processInfo.environment["ASYNCQUEUE_DELAY_SCALE"] {
    guard let value = Double(scale), value > 0, value <= 1 else {
      fail("invalid ASYNCQUEUE_DELAY_SCALE '\(scale)': expected a number above 0 and at most 1")
    }
    options.delayScale = value
  }
  if let batch = ProcessInfo.processInfo.environment["ASYNCQUEUE_LOAD_BATCH"] {
    guard let value = Int(batch), value >= 1 else {
      fail("invalid ASYNCQUEUE_LOAD_BATCH '\(batch)': expected a whole number of at least 1")
    }
    options.loadBatch = value
  }

  let level = LogLevel(name: settings.string("logLevel") ?? "info") ?? .info
  let format = Logger.Format(rawValue: settings.string("logFormat") ?? "text") ?? .text
  let logger = Logger(minimumLevel: level, format: format)
  checkDirectories(options.providerDirectories, setting: "providersDirs", settings)
  checkDirectories(options.pluginDirectories, setting: "pluginsDirs", settings)
  serve(options: options, logger: logger)
}

private func checkDirectories(_ directories: [String], setting: String, _ settings: ServiceSettings)
{
  for directory in directories {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory),
      isDirectory.boolValue
    else {
      let source = settings.sources[setting] ?? setting
      fail("\(setting) '\(directory)' (from \(source)) is not a directory; create it or remove it")
    }
  }
}

private func serve(options: ServiceOptions, logger: Logger) {
  // The data directory holds provider credentials and the webhook secrets: owner only.
  umask(0o077)
  let service: Service
  do {
    service = try Service(options: options, logger: logger)
    try service.start()
  } catch {
    fail("cannot start: \(error)")
  }
  if let key = service.generatedAPIKey {
    print("Generated API key (shown once; only its hash is stored): \(key)")
  }
  if let secret = service.generatedWebhookSecret {
    print(
      "Generated webhook signing secret (see it again with 'asyncqueue secret show'): \(secret)")
  }
  fflush(nil)

  let reloadSignal = installReloadSignal(service)
  signal(SIGINT, SIG_IGN)
  signal(SIGTERM, SIG_IGN)
  let done = DispatchSemaphore(value: 0)
  var sources: [DispatchSourceSignal] = []
  for signalNumber in [SIGINT, SIGTERM] {
    let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
    source.setEventHandler { done.signal() }
    source.resume()
    sources.append(source)
  }
  done.wait()
  logger.info("stopping")
  service.stop()
  _ = sources
  _ = reloadSignal
}

/// Formats JSON for people: two-space indent, sorted keys, empty containers on one line.
func prettyJSON(_ value: JSONValue, indent: String = "") -> String {
  let inner = indent + "  "
  switch value {
  case .array(let items) where !items.isEmpty:
    let lines = items.map { inner + prettyJSON($0, indent: inner) }
    return "[\n" + lines.joined(separator: ",\n") + "\n" + indent + "]"
  case .object(let members) where !members.isEmpty:
    let lines = members.sorted { $0.key < $1.key }.map { key, member in
      inner + JSONValue.string(key).serialized() + ": " + prettyJSON(member, indent: inner)
    }
    return "{\n" + lines.joined(separator: ",\n") + "\n" + indent + "}"
  default:
    return value.serialized()
  }
}
