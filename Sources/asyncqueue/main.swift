import API
import Engine
import Foundation
import Support

let serveFlags: [FlagSpec] = [
  FlagSpec(
    name: "host", environment: "ASYNCQUEUE_HOST", valueName: "ADDRESS",
    help: "Address to listen on. Default: 127.0.0.1. Use 0.0.0.0 or :: to listen on all."),
  FlagSpec(
    name: "port", environment: "ASYNCQUEUE_PORT", valueName: "PORT",
    help: "TCP port to listen on. Default: 8080."),
  FlagSpec(
    name: "data-dir", environment: "ASYNCQUEUE_DATA_DIR", valueName: "DIR",
    help: "Directory for the SQLite database and stored results. Default: ./data."),
  FlagSpec(
    name: "providers-dir", environment: "ASYNCQUEUE_PROVIDERS_DIR", valueName: "DIR",
    help: """
      Extra directory of provider templates (*.lua), loaded after the built-in ones;
      a template with the same id replaces the earlier one. Repeatable; the
      environment variable takes a colon-separated list.
      """,
    repeatable: true),
  FlagSpec(
    name: "builtin-providers-dir", environment: "ASYNCQUEUE_BUILTIN_PROVIDERS_DIR",
    valueName: "DIR",
    help: """
      Directory of the built-in templates. Default: ./providers, else the providers/
      folder above the executable, else /usr/share/asyncqueue/providers.
      """
  ),
  FlagSpec(
    name: "api-key", environment: "ASYNCQUEUE_API_KEY", valueName: "KEY",
    help: """
      API key clients must send (Authorization: Bearer KEY or X-API-Key: KEY). Repeatable;
      the environment variable takes a comma-separated list. Only a SHA-256 hash is stored.
      When none is given and none is stored, one is generated and printed once.
      """,
    repeatable: true),
  FlagSpec(
    name: "webhook-secret", environment: "ASYNCQUEUE_WEBHOOK_SECRET", valueName: "SECRET",
    help: """
      Secret for the X-AsyncQueue-Signature HMAC on webhooks and calls. Default: generated
      at first start, stored in the data directory and printed once; see 'asyncqueue secret show'.
      """
  ),
  FlagSpec(
    name: "allow-private-network", environment: "ASYNCQUEUE_ALLOW_PRIVATE_NETWORK",
    valueName: nil,
    help: """
      Allow targets and webhooks on loopback, private and link-local addresses.
      Default: off (refused). Tests and local mock providers need it.
      """
  ),
  FlagSpec(
    name: "public-url", environment: "ASYNCQUEUE_PUBLIC_URL", valueName: "URL",
    help: """
      Base URL clients use to reach this service, for result file links.
      Default: http://HOST:PORT.
      """
  ),
  FlagSpec(
    name: "log-level", environment: "ASYNCQUEUE_LOG_LEVEL", valueName: "LEVEL",
    help: "Lowest level logged: debug, info, warn or error. Default: info."),
  FlagSpec(
    name: "log-format", environment: "ASYNCQUEUE_LOG_FORMAT", valueName: "FORMAT",
    help: "Log line format on stderr: text or json. Default: text."),
]

let secretFlags: [FlagSpec] = [
  FlagSpec(
    name: "data-dir", environment: "ASYNCQUEUE_DATA_DIR", valueName: "DIR",
    help: "Data directory of the service. Default: ./data.")
]

let topHelp = """
  Usage: asyncqueue <command> [options]

  asyncqueue runs long AI jobs for other programs: it submits a request to a provider
  (fal, replicate, runwayml, luma, elevenlabs-dubbing, stability-video or a custom
  pollConfig), polls the job until it ends, stores the result and posts a signed webhook.

  Commands:
    serve          Start the service (HTTP API, scheduler, webhook delivery).
    providers      List, check and test provider templates (see 'providers --help').
    plugins        Check plugin scripts (see 'plugins --help').
    secret show    Print the stored webhook signing secret.

  Run 'asyncqueue <command> --help' for a command's options.
  """

func fail(_ message: String) -> Never {
  FileHandle.standardError.write(Data("asyncqueue: \(message)\n".utf8))
  exit(2)
}

func runServe(_ arguments: [String]) {
  if arguments.contains("--help") || arguments.contains("-h") {
    print(
      helpText(
        usage: "asyncqueue serve [options]",
        summary: "Start the service on the embedded SQLite database in the data directory.",
        specs: serveFlags + scriptServeFlags))
    return
  }
  let flags: ParsedFlags
  do {
    flags = try ParsedFlags(
      arguments: arguments, specs: serveFlags + scriptServeFlags,
      environment: ProcessInfo.processInfo.environment)
  } catch {
    fail("\(error)")
  }
  var options = ServiceOptions()
  options.host = flags.string("host") ?? options.host
  if let port = flags.string("port") {
    guard let value = UInt16(port) else {
      fail("invalid --port '\(port)': expected a number from 0 to 65535")
    }
    options.port = value
  }
  options.dataDirectory = flags.string("data-dir") ?? options.dataDirectory
  options.providerDirectories = flags.strings("providers-dir")
  options.builtinProvidersDirectory = flags.string("builtin-providers-dir")
  options.apiKeys = flags.strings("api-key")
  options.webhookSecret = flags.string("webhook-secret")
  options.allowPrivateNetwork = flags.bool("allow-private-network")
  options.publicURL = flags.string("public-url")
  applyScriptFlags(flags, to: &options)
  options.scriptStates = max(2, ProcessInfo.processInfo.activeProcessorCount)
  if let scale = ProcessInfo.processInfo.environment["ASYNCQUEUE_DELAY_SCALE"] {
    guard let value = Double(scale), value > 0, value <= 1 else {
      fail("invalid ASYNCQUEUE_DELAY_SCALE '\(scale)': expected a number above 0 and at most 1")
    }
    options.delayScale = value
  }
  if let text = ProcessInfo.processInfo.environment["ASYNCQUEUE_PROVIDER_LIMITS"] {
    do {
      options.providerLimits = try parseProviderLimits(text)
    } catch {
      fail("invalid ASYNCQUEUE_PROVIDER_LIMITS: \(error)")
    }
  }

  let levelName = flags.string("log-level") ?? "info"
  guard let level = LogLevel(name: levelName) else {
    fail("invalid --log-level '\(levelName)': expected debug, info, warn or error")
  }
  let formatName = flags.string("log-format") ?? "text"
  guard let format = Logger.Format(rawValue: formatName) else {
    fail("invalid --log-format '\(formatName)': expected text or json")
  }
  let logger = Logger(minimumLevel: level, format: format)
  for directory in options.providerDirectories {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory),
      isDirectory.boolValue
    else { fail("--providers-dir '\(directory)' is not a directory") }
  }

  // The data directory holds provider credentials and the webhook secret: owner only.
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

/// Parses `id=concurrency/requestsPerSecond` pairs separated by commas, e.g.
/// `replicate=100/200,custom=4096/100000`; the id `custom` sets the limit that each custom
/// pollConfig target host gets.
func parseProviderLimits(_ text: String) throws(UsageError) -> [String: ProviderLimits] {
  var limits: [String: ProviderLimits] = [:]
  for item in text.split(separator: ",") {
    let pair = item.split(separator: "=", maxSplits: 1).map(String.init)
    let numbers = pair.count == 2 ? pair[1].split(separator: "/").map(String.init) : []
    guard numbers.count == 2, let concurrency = Int(numbers[0]), concurrency >= 1,
      let rate = Double(numbers[1]), rate > 0
    else {
      throw UsageError(
        message:
          "'\(item)' is not id=concurrency/requestsPerSecond with both numbers above 0, "
          + "e.g. custom=4096/100000")
    }
    limits[pair[0]] = ProviderLimits(concurrency: concurrency, requestsPerSecond: rate)
  }
  return limits
}

func runSecret(_ arguments: [String]) {
  guard arguments.first == "show" else {
    fail("usage: asyncqueue secret show [--data-dir DIR]")
  }
  let rest = Array(arguments.dropFirst())
  if rest.contains("--help") {
    print(
      helpText(
        usage: "asyncqueue secret show [--data-dir DIR]",
        summary: "Print the webhook signing secret stored in the data directory.",
        specs: secretFlags))
    return
  }
  do {
    let flags = try ParsedFlags(
      arguments: rest, specs: secretFlags, environment: ProcessInfo.processInfo.environment)
    let directory = flags.string("data-dir") ?? "./data"
    guard let secret = try Service.storedWebhookSecret(dataDirectory: directory) else {
      fail(
        "no webhook secret stored in \(directory); start 'asyncqueue serve --data-dir \(directory)' once"
      )
    }
    print(secret)
  } catch {
    fail("\(error)")
  }
}

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "serve": runServe(Array(arguments.dropFirst()))
case "secret": runSecret(Array(arguments.dropFirst()))
case "providers": runProviders(Array(arguments.dropFirst()))
case "plugins": runPlugins(Array(arguments.dropFirst()))
case nil, "--help", "-h", "help": print(topHelp)
case let other?: fail("unknown command '\(other)'; run 'asyncqueue --help'")
}
