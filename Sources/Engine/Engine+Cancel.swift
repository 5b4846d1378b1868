import Foundation
import HTTPClient
import Storage
import Support

/// The outcome of a cancel request.
public enum CancelOutcome: Sendable {
  /// The task is now `cancelled`.
  case cancelled(TaskRecord)
  /// The provider is being asked to cancel; the task ends with its response (`cancelled`, or
  /// `completed` when the job finished first).
  case requested(TaskRecord)
  /// The task had already ended.
  case finished(TaskRecord)
  case notFound
}

extension Engine {
  /// Cancels a task of `teamId`. A task not yet submitted ends at once. A polling task
  /// requests cancellation from its provider through the template's cancel hook.
  public func cancel(id: String, teamId: String) throws(StorageError) -> CancelOutcome {
    guard let task = try task(id: id, teamId: teamId) else { return .notFound }
    if task.status.isTerminal { return .finished(task) }
    if lock.withLock({ active[id] == nil }) { waitUntilLoaded() }
    switch claimForCancel(id) {
    case .busy(let snapshot):
      // A step is running; it applies the cancellation when it returns.
      var shown = snapshot
      shown.cancelRequested = true
      return .requested(shown)
    case .gone:
      if let shared {
        return try cancelElsewhere(task, shared)
      }
      let stored = try self.task(id: id, teamId: teamId)
      return stored.map { .finished($0) } ?? .notFound
    case .claimed(let current):
      return try cancelClaimed(current)
    }
  }

  /// Cancels a task this node has claimed, then gives the claim up.
  func cancelClaimed(_ task: TaskRecord) throws(StorageError) -> CancelOutcome {
    let outcome = blocking { () async -> Result<CancelOutcome, StorageError> in
      let result: Result<CancelOutcome, StorageError>
      do throws(StorageError) {
        result = .success(try await self.startCancel(task))
      } catch {
        result = .failure(error)
      }
      await self.endClaim(task.id)
      return result
    }
    return try outcome.get().get()
  }

  /// Applies a cancellation that arrived while the task's step was running.
  func cancelAfterStep(_ task: TaskRecord) async throws(StorageError) {
    _ = try await startCancel(task)
  }

  func startCancel(_ original: TaskRecord) async throws(StorageError) -> CancelOutcome {
    var task = original
    task.cancelRequested = true
    task.updatedAt = Timestamp.now()
    let submitted = task.job != nil && task.isProviderTask
    if !submitted {
      end(&task, .cancelled, error: "cancelled by the client")
      try await commit(&task)
      return .cancelled(task)
    }
    if task.step == .fetch {
      // The job already finished and its result is being fetched: the result wins the race.
      try await commit(&task)
      return .requested(task)
    }
    if !scripts.hasHook(key: scriptKey(task), hook: "cancel") {
      let name = task.provider ?? "this provider"
      end(
        &task, .cancelled,
        error:
          "cancelled by the client; \(name) has no cancel endpoint, so its job may still run")
      try await commit(&task)
      return .cancelled(task)
    }
    task.step = .cancel
    task.nextRunAt = Timestamp.now()
    try await commit(&task)
    return .requested(task)
  }

  /// The cancel step: calls the template's cancel hook and reads the provider's response. A job
  /// that finished first keeps its result.
  func cancelStep(_ task: inout TaskRecord) async throws(StorageError) {
    var request: JSONValue
    do throws(HookError) {
      request = try callHook(task, "cancel")
    } catch {
      end(&task, .failed, error: "script_error: \(error.message)", code: "script_error")
      try await commit(&task)
      return
    }
    // Up to three chained requests (Runway reads the task before it deletes it).
    for _ in 0..<3 {
      if request.isNull {
        end(&task, .cancelled, error: "cancelled by the client")
        try await commit(&task)
        return
      }
      let outgoing: ClientRequest
      let verdict: Verdict
      do throws(HookError) {
        outgoing = try buildRequest(request, hook: "cancel", timeout: task.timeout)
      } catch {
        end(&task, .failed, error: "script_error: \(error.message)", code: "script_error")
        try await commit(&task)
        return
      }
      let outcome = await send(outgoing, for: task, kind: "cancel")
      guard case .success(let response) = outcome else {
        if case .failure(let error) = outcome {
          logger.warn(
            "cancel request failed; polling goes on", fields(task) + [("error", error.message)])
        }
        backToPolling(&task)
        try await commit(&task)
        return
      }
      do throws(HookError) {
        verdict = try Verdict(
          try callHook(task, "on_cancel", response: response), hook: "on_cancel")
      } catch {
        end(&task, .failed, error: "script_error: \(error.message)", code: "script_error")
        try await commit(&task)
        return
      }
      noteEventState(task.id, verdict.state.rawValue)
      switch verdict.state {
      case .cancelled:
        end(&task, .cancelled, error: verdict.error ?? "cancelled by the client")
        try await commit(&task)
        return
      case .completed:
        task.result = verdict.result ?? .null
        end(&task, .completed)
        try await commit(&task)
        return
      case .failed:
        end(
          &task, .failed, error: verdict.error ?? "provider rejected the cancellation",
          code: "provider_error")
        try await commit(&task)
        return
      case .fetch:
        request = verdict.raw["request"] ?? .null
      case .running, .polling, .retry:
        // Cancellation requested or not confirmed: keep polling until the job ends.
        backToPolling(&task)
        try await commit(&task)
        return
      }
    }
    backToPolling(&task)
    try await commit(&task)
  }

  private func backToPolling(_ task: inout TaskRecord) {
    task.step = .poll
    task.status = .polling
    task.nextRunAt = min(
      Timestamp.now() + (task.pollConfigValue(catalog)["interval"]?.doubleValue ?? 5)
        * config.delayScale,
      task.deadlineAt ?? .infinity)
  }
}

/// Runs async work from a synchronous caller (an HTTP handler thread) and waits for it.
func blocking<T: Sendable, E: Error>(_ work: @escaping @Sendable () async throws(E) -> T)
  -> Result<T, E>
{
  let done = DispatchSemaphore(value: 0)
  let box = ResultBox<T, E>()
  Task.detached(executorPreference: Engine.executor) {
    do throws(E) {
      box.value = .success(try await work())
    } catch {
      box.value = .failure(error)
    }
    done.signal()
  }
  done.wait()
  return box.value!
}

private final class ResultBox<T, E: Error>: @unchecked Sendable {
  var value: Result<T, E>?
}

extension Engine {
  /// Queues a new delivery of a finished task's webhook, built from its current state.
  public func redeliver(id: String, teamId: String) throws(StorageError) -> DeliveryRecord? {
    guard let task = try task(id: id, teamId: teamId), task.status.isTerminal,
      let url = task.onCompleteUrl
    else { return nil }
    let stored = try store.insertDelivery(
      webhooks.makeDelivery(for: task, url: url, baseURL: config.publicURL))
    webhooks.enqueue(stored)
    logger.info("webhook redelivery queued", fields(task) + [("delivery", String(stored.id))])
    return stored
  }
}
