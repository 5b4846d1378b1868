import API
import Engine
import Foundation
import LuaRuntime
import ScriptTools
import Support

// `asyncqueue providers …` and `asyncqueue plugins …`: tooling for script authors, plus the
// SIGHUP handler that reloads scripts. Their serve settings are in `SettingSpec.all`.

/// Reloads the service's scripts on SIGHUP. Keep the returned source alive.
func installReloadSignal(_ service: Service) -> DispatchSourceSignal {
  signal(SIGHUP, SIG_IGN)
  let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
  source.setEventHandler {
    service.logger.info("SIGHUP received; reloading scripts")
    service.reloadScripts()
  }
  source.resume()
  return source
}

private func isHelpArgument(_ argument: String) -> Bool {
  ["--help", "-h", "help"].contains(argument)
}

private func isDirectory(_ path: String) -> Bool {
  var isDirectory: ObjCBool = false
  return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
    && isDirectory.boolValue
}

// MARK: Commands

private let builtinFlag = FlagSpec(
  name: "builtin-providers-dir", environment: "ASYNCQUEUE_BUILTIN_PROVIDERS_DIR", valueName: "DIR",
  help: "Directory of the built-in templates. Default: found as 'asyncqueue serve' finds it.")

private let providersHelp = """
  Usage: asyncqueue providers <subcommand> [options]

  Subcommands:
    list [--providers-dir DIR]… [--json]
        Load the built-in templates and each --providers-dir in order, as 'serve' does, and
        print id, name, poll interval, maxDuration, file and the file it overrides.
    check FILE…
        Load and validate templates (or lib/ modules); print each problem as
        FILE:LINE: field 'NAME': reason. Exits 1 when any file has a problem.
    test FILE --fixture FIXTURE
        Replay a fixture's recorded provider responses through the template's hooks and
        print each step's state and the extracted result. Exits 1 when a step differs from
        the fixture's expected value or a hook fails. Built-in fixtures: providers/fixtures/.

  Every subcommand takes --builtin-providers-dir DIR; the built-in lib/ modules are available
  to require.
  """

private let pluginsHelp = """
  Usage: asyncqueue plugins check FILE… [--builtin-plugins-dir DIR]

  Load and validate plugin scripts against the plugin contract; print each problem as
  FILE:LINE: field 'NAME': reason. Exits 1 when any file has a problem. Modules in the
  built-in plugins/lib/ and in each file's own lib/ are available to require.
  """

func runProviders(_ arguments: [String]) {
  guard let subcommand = arguments.first, !arguments.contains(where: isHelpArgument) else {
    print(providersHelp)
    return
  }
  let rest = Array(arguments.dropFirst())
  switch subcommand {
  case "list":
    let (flags, files) = parseScriptArguments(
      rest,
      specs: [
        builtinFlag,
        FlagSpec(
          name: "providers-dir", environment: "ASYNCQUEUE_PROVIDERS_DIR", valueName: "DIR",
          help: "", repeatable: true),
        FlagSpec(name: "json", environment: nil, valueName: nil, help: ""),
      ])
    guard files.isEmpty else { fail("'providers list' takes no file arguments; see --help") }
    listProviders(flags)
  case "check":
    let (flags, files) = parseScriptArguments(rest, specs: [builtinFlag])
    guard !files.isEmpty else { fail("usage: asyncqueue providers check FILE…") }
    let modules = builtinProviders(flags).map { [$0] } ?? []
    exit(report(ScriptChecks.providers(files: files, moduleDirectories: modules), files: files))
  case "test":
    let fixtureFlag = FlagSpec(name: "fixture", environment: nil, valueName: "FILE", help: "")
    let (flags, files) = parseScriptArguments(rest, specs: [builtinFlag, fixtureFlag])
    guard files.count == 1, let fixture = flags.string("fixture") else {
      fail("usage: asyncqueue providers test FILE --fixture FIXTURE")
    }
    testProvider(file: files[0], fixture: fixture, flags: flags)
  default:
    fail("unknown subcommand 'providers \(subcommand)'; run 'asyncqueue providers --help'")
  }
}

func runPlugins(_ arguments: [String]) {
  if arguments.isEmpty || arguments.contains(where: isHelpArgument) {
    print(pluginsHelp)
    return
  }
  guard arguments.first == "check" else {
    fail("unknown subcommand 'plugins \(arguments[0])'; run 'asyncqueue plugins --help'")
  }
  let pluginsFlag = FlagSpec(
    name: "builtin-plugins-dir", environment: nil, valueName: "DIR", help: "")
  let (flags, files) = parseScriptArguments(Array(arguments.dropFirst()), specs: [pluginsFlag])
  guard !files.isEmpty else { fail("usage: asyncqueue plugins check FILE…") }
  let builtin =
    flags.string("builtin-plugins-dir")
    ?? Service.findBuiltinProviders().map {
      (($0 as NSString).deletingLastPathComponent as NSString).appendingPathComponent("plugins")
    }
  let problems = ScriptChecks.plugins(files: files, moduleDirectories: builtin.map { [$0] } ?? [])
  exit(report(problems, files: files))
}

private func listProviders(_ flags: ParsedFlags) {
  let extra = flags.strings("providers-dir")
  for directory in extra where !isDirectory(directory) {
    fail("--providers-dir '\(directory)' is not a directory")
  }
  guard let builtin = builtinProviders(flags) else {
    fail("built-in providers directory not found; pass --builtin-providers-dir DIR")
  }
  let (catalog, problems) = ProviderCatalog.load(
    directories: [builtin] + extra, limits: ScriptLimits())
  for problem in problems {
    FileHandle.standardError.write(Data("rejected: \(problem)\n".utf8))
  }
  if flags.bool("json") {
    print(ProviderListing.json(catalog).serialized())
  } else {
    print(ProviderListing.table(catalog))
  }
}

private func testProvider(file: String, fixture: String, flags: ParsedFlags) {
  let scenarios: [FixtureReplay.Scenario]
  do {
    let fixtureValue = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: fixture)))
    let replay = try FixtureReplay(
      templateFile: file, moduleDirectories: (builtinProviders(flags).map { [$0] } ?? []))
    scenarios = try replay.run(fixture: fixtureValue)
  } catch {
    fail("cannot replay \(fixture) through \(file): \(error)")
  }
  print(
    FixtureReplay.render(scenarios, fixtureName: (fixture as NSString).lastPathComponent))
  exit(scenarios.allSatisfy { $0.mismatches.isEmpty } ? 0 : 1)
}

private func builtinProviders(_ flags: ParsedFlags) -> String? {
  flags.string("builtin-providers-dir") ?? Service.findBuiltinProviders()
}

/// Prints each problem, or `FILE: ok` for a valid file; returns the exit status.
private func report(_ problems: [TemplateError], files: [String]) -> Int32 {
  for file in files where !problems.contains(where: { $0.file == file }) {
    print("\(file): ok")
  }
  for problem in problems {
    print(problem.description)
  }
  return problems.isEmpty ? 0 : 1
}

/// Splits arguments into flags (parsed with `specs`) and positional file names.
private func parseScriptArguments(_ arguments: [String], specs: [FlagSpec]) -> (
  ParsedFlags, [String]
) {
  var flagArguments: [String] = []
  var files: [String] = []
  var index = 0
  while index < arguments.count {
    let argument = arguments[index]
    if argument.hasPrefix("--") {
      flagArguments.append(argument)
      let name = String(argument.dropFirst(2))
      if !name.contains("="), specs.first(where: { $0.name == name })?.takesValue == true,
        index + 1 < arguments.count
      {
        index += 1
        flagArguments.append(arguments[index])
      }
    } else {
      files.append(argument)
    }
    index += 1
  }
  do {
    let flags = try ParsedFlags(
      arguments: flagArguments, specs: specs, environment: ProcessInfo.processInfo.environment)
    return (flags, files)
  } catch {
    fail("\(error)")
  }
}
