import Foundation
import Support

/// The state of a mock job that a status poll reports.
enum JobPhase: Equatable, Sendable {
  /// In flight: poll `index` of `count` in-flight polls.
  case inFlight(index: Int, count: Int)
  /// Finished with the scenario's outcome.
  case finished(Scenario.Outcome)
  /// Cancelled by a cancel or delete request while in flight.
  case cancelled
}

/// One submitted job. Jobs advance by status polls, not by wall-clock time, so tests that
/// drive them are deterministic.
struct MockJob: Sendable {
  let id: String
  let provider: String
  let scenario: Scenario
  let createdAt: String
  /// The submit request's JSON body or form fields.
  let input: JSONValue
  /// Provider details that later responses need, such as fal's owner/app or a dub's language.
  var attributes: [String: String]
  /// Status polls served normally so far. Faulted polls do not count.
  var statusPolls = 0
  /// Faulted status polls so far.
  var faultsServed = 0
  var cancelRequested = false
  /// Set by a delete request, after which the job is gone (404).
  var deleted = false
  /// Set when a delete request removed a job that had already finished, destroying its result.
  var deletedAfterFinish = false

  /// The phase a poll reports after `polls` earlier normal polls.
  func phase(afterPolls polls: Int) -> JobPhase {
    if cancelRequested { return .cancelled }
    if polls < scenario.polls { return .inFlight(index: polls, count: scenario.polls) }
    return .finished(scenario.outcome)
  }

  /// The phase the next status poll reports.
  var nextPhase: JobPhase { phase(afterPolls: statusPolls) }

  /// Whether a status poll has already reported the end state (or the job was cancelled).
  var isFinished: Bool {
    cancelRequested || statusPolls > scenario.polls
  }
}

extension JobPhase {
  /// Picks the provider's in-flight status for this poll. The first poll reports the first
  /// status and the last in-flight poll the last one (the "running" status), so a short
  /// scenario skips the middle statuses.
  func inFlightStatus(_ statuses: [String]) -> String? {
    guard case .inFlight(let index, let count) = self, let last = statuses.last else { return nil }
    if index == count - 1 { return last }
    if index == 0 { return statuses[0] }
    let middle = statuses.dropFirst().dropLast()
    return index - 1 < middle.count ? middle[middle.startIndex + index - 1] : last
  }

  /// Fraction of the work done at this poll, between 0 and 1, for progress fields.
  var progress: Double {
    switch self {
    case .inFlight(let index, let count): return Double(index + 1) / Double(count + 1)
    case .finished, .cancelled: return 1
    }
  }
}

/// Every job of one mock server, behind a lock because handlers run on many threads.
final class JobStore: @unchecked Sendable {
  private let lock = NSLock()
  private var jobs: [String: MockJob] = [:]
  private var counter: UInt64 = 0
  private var submitFaultsServed: [String: Int] = [:]

  func add(_ job: MockJob) {
    lock.withLock { jobs[job.id] = job }
  }

  /// Returns a new pseudo-random 64-bit value. The sequence is the same for every server, so
  /// ids are reproducible from one test run to the next.
  func nextRandom() -> UInt64 {
    lock.withLock {
      counter &+= 0x9E37_79B9_7F4A_7C15
      var mixed = counter
      mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
      mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
      return mixed ^ (mixed >> 31)
    }
  }

  /// Runs `body` on the job with this id and provider, if it exists and was not deleted.
  func update<Result>(_ id: String, provider: String, _ body: (inout MockJob) -> Result) -> Result?
  {
    lock.withLock {
      guard var job = jobs[id], job.provider == provider, !job.deleted else { return nil }
      let result = body(&job)
      jobs[id] = job
      return result
    }
  }

  func job(_ id: String, provider: String) -> MockJob? {
    update(id, provider: provider) { $0 }
  }

  /// Decides whether a submit request gets the scenario's submit fault. Each distinct header
  /// value gets the fault for its first `submitFaults` submits, so a retry with the same header
  /// then succeeds.
  func takeSubmitFault(provider: String, header: String, scenario: Scenario) -> Int? {
    guard let status = scenario.submitFault else { return nil }
    return lock.withLock {
      let key = provider + "\n" + header
      let served = submitFaultsServed[key, default: 0]
      guard served < scenario.submitFaults else { return nil }
      submitFaultsServed[key] = served + 1
      return status
    }
  }

  /// Returns the ids of jobs of this provider that were deleted after they finished.
  func deletedAfterFinish(provider: String) -> [String] {
    lock.withLock {
      jobs.values.filter { $0.provider == provider && $0.deletedAfterFinish }.map(\.id).sorted()
    }
  }

  func removeAll() {
    lock.withLock {
      jobs = [:]
      submitFaultsServed = [:]
    }
  }
}
