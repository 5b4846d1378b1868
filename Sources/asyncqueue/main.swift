import Foundation

let topHelp = """
  Usage: asyncqueue <command> [options]

  asyncqueue runs long AI jobs for other programs: it submits a request to a provider
  (fal, replicate, runwayml, luma, elevenlabs-dubbing, stability-video or a custom
  pollConfig), polls the job until it ends, stores the result and posts a signed webhook.

  Commands:
    serve          Start the service (HTTP API, scheduler, webhook delivery).
    keys           Create, list and revoke API keys (in the service's database).
    secret show    Print a team's webhook signing secret (in the service's database).
    migrate        Create the database or update its schema; print the schema version.
    tasks          Create, read, list, wait for and cancel tasks on a running server.
    providers      List, check and test provider templates (see 'providers --help').
    plugins        Check plugin scripts (see 'plugins --help').

  Run 'asyncqueue <command> --help' for a command's options.
  """

/// Prints `message` to stderr and exits with status 2, the status of usage and request errors.
func fail(_ message: String) -> Never {
  FileHandle.standardError.write(Data("asyncqueue: \(message)\n".utf8))
  exit(2)
}

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "serve": runServe(Array(arguments.dropFirst()))
case "keys": runKeys(Array(arguments.dropFirst()))
case "secret": runSecret(Array(arguments.dropFirst()))
case "migrate": runMigrate(Array(arguments.dropFirst()))
case "tasks": await runTasks(Array(arguments.dropFirst()))
case "providers": runProviders(Array(arguments.dropFirst()))
case "plugins": runPlugins(Array(arguments.dropFirst()))
case nil, "--help", "-h", "help": print(topHelp)
case let other?: fail("unknown command '\(other)'; run 'asyncqueue --help'")
}
