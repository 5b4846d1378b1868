import Foundation
import MockProvider

// A standalone loopback imitation of the six providers, for trying the service by hand and for
// the benchmarks. It listens on 127.0.0.1 only.

let usage = """
  Usage: asyncqueue-mock [--port PORT] [--record] [--poll-gaps]

  Serves imitations of fal, Replicate, Runway, Luma, ElevenLabs and Stability on 127.0.0.1,
  each under its own path prefix (/fal, /replicate, /runway, /luma, /elevenlabs, /stability).
  A submit's X-Mock-Scenario header sets the job's behaviour, e.g. "polls=3;outcome=fail".

  Options:
    --port PORT   TCP port. Default: 0, a free port, printed at start.
    --record      Keep every request in memory (off by default, so long runs stay flat).
    --poll-gaps   Track the time between consecutive status polls of each job.

  Routes besides the providers': POST /hooks accepts any webhook with 200; GET /stats returns
  counts of requests, status polls and webhooks (and poll gap percentiles in milliseconds with
  --poll-gaps); POST /stats/reset zeroes them.
  """

var port: UInt16 = 0
var record = false
var pollGaps = false
var arguments = Array(CommandLine.arguments.dropFirst())
while let argument = arguments.first {
  arguments.removeFirst()
  switch argument {
  case "--port":
    guard let value = arguments.first.flatMap({ UInt16($0) }) else {
      FileHandle.standardError.write(Data("asyncqueue-mock: --port needs a number\n".utf8))
      exit(2)
    }
    arguments.removeFirst()
    port = value
  case "--record":
    record = true
  case "--poll-gaps":
    pollGaps = true
  case "--help", "-h":
    print(usage)
    exit(0)
  default:
    FileHandle.standardError.write(Data("asyncqueue-mock: unknown argument '\(argument)'\n".utf8))
    exit(2)
  }
}

let mock = MockProviderServer(port: port, recordsRequests: record, tracksPollGaps: pollGaps)
do {
  try mock.start()
} catch {
  FileHandle.standardError.write(Data("asyncqueue-mock: cannot start: \(error)\n".utf8))
  exit(1)
}
print(mock.baseURL)
fflush(nil)
signal(SIGTERM, SIG_IGN)
signal(SIGINT, SIG_IGN)
let stopSignal = DispatchSemaphore(value: 0)
var sources: [DispatchSourceSignal] = []
for number in [SIGINT, SIGTERM] {
  let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
  source.setEventHandler { stopSignal.signal() }
  source.resume()
  sources.append(source)
}
stopSignal.wait()
mock.stop()
