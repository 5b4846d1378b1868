import Foundation
import HTTPClient
import Storage
import Support

/// A hook's decision about a response.
struct Verdict {
  enum State: String {
    case polling, running, completed, fetch, failed, retry, cancelled
  }

  let state: State
  let raw: JSONValue

  var error: String? { raw["error"]?.stringValue }
  var after: Double? { raw["after"]?.doubleValue }
  var result: JSONValue? { raw["result"] }

  /// Describes a hook's return value by its keys and the scheme of any `url`, never by its
  /// values, which may carry the task's credentials.
  static func shape(of value: JSONValue) -> String {
    guard let fields = value.objectValue else {
      switch value {
      case .null: return "nil"
      case .array: return "an array"
      default: return "a scalar"
      }
    }
    var text = "a table with keys " + fields.keys.sorted().joined(separator: ", ")
    if let url = fields["url"]?.stringValue {
      let scheme = url.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
      text += url.contains("://") ? " and a '\(scheme)' url" : " and a url without a scheme"
    }
    if let state = fields["state"]?.stringValue, state.count < 40 {
      text += " and state '\(state)'"
    }
    return text
  }

  init(_ value: JSONValue, hook: String) throws(HookError) {
    guard let text = value["state"]?.stringValue, let state = State(rawValue: text) else {
      throw HookError(
        message: "hook \(hook) must return a table with 'state' set to one of "
          + "polling, running, completed, fetch, failed, retry, cancelled; got "
          + Verdict.shape(of: value)
      )
    }
    self.state = state
    self.raw = value
  }
}

extension Engine {
  /// Takes the task's next step and commits the outcome.
  func advance(_ task: inout TaskRecord) async throws(StorageError) {
    let now = Timestamp.now()
    if task.status == .delayed {
      task.status = .pending
    }
    if let deadline = task.deadlineAt, now >= deadline, task.isProviderTask,
      task.step != .call
    {
      let minutes = (task.pollConfigValue(catalog)["maxDuration"]?.doubleValue ?? 600)
      end(
        &task, .timeout, error: "provider job did not finish within maxDuration (\(Int(minutes)) s)"
      )
      try await commit(&task)
      return
    }
    // A signal or callback ends the task only once its call was made; one that arrives
    // earlier waits until then.
    if task.waitsForResolution, task.step != .call, try await applyPendingResolution(&task) {
      return
    }
    switch task.step {
    case .wait:
      let seconds = Int(task.maxWaitTime ?? 30)
      let what = task.waitForSignal == true ? "signal" : "callback"
      end(
        &task, .timeout, error: "no \(what) arrived within maxWaitTime (\(seconds) s)",
        code: "\(what)_timeout")
      try await commit(&task)
    case .call:
      if task.isProviderTask {
        try await submit(&task)
      } else {
        try await plainCall(&task)
      }
    case .poll:
      try await poll(&task)
    case .fetch:
      try await fetch(&task)
    case .cancel:
      try await cancelStep(&task)
    }
  }

  /// Decides what a task found active at start-up does next. Returns a non-nil value (the
  /// webhook, when there is one) when the task had to change before it can resume.
  func recoverAfterRestart(_ task: inout TaskRecord) -> DeliveryRecord?? {
    guard task.requestInFlight else { return nil }
    task.requestInFlight = false
    let resubmitAllowed = task.provider.flatMap { catalog.templates[$0]?.resubmit } ?? false
    if task.step == .call && task.isProviderTask && !resubmitAllowed {
      end(
        &task, .failed,
        error:
          "submit outcome unknown: the service stopped while the submit request was in flight, "
          + "so the provider may have started a job that this task cannot track",
        code: "submit_outcome_unknown")
      logger.warn("task failed: submit outcome unknown after restart", fields(task))
      if let url = task.onCompleteUrl {
        return .some(webhooks.makeDelivery(for: task, url: url, baseURL: config.publicURL))
      }
      return .some(nil)
    }
    // Plain calls are at-least-once (targets deduplicate on the Idempotency-Key header), and
    // polls and result fetches are reads, so each is sent again.
    task.nextRunAt = Timestamp.now()
    return .some(nil)
  }

  func end(
    _ task: inout TaskRecord, _ status: TaskStatus, error: String? = nil, code: String? = nil
  ) {
    let now = Timestamp.now()
    task.status = status
    task.error = error.map { scrub($0, for: task) }
    task.errorCode = code
    task.completedAt = now
    task.updatedAt = now
    task.nextRunAt = nil
    task.requestInFlight = false
    task.fetchRequest = nil
    if status != .cancelled { task.cancelRequested = false }
    if status == .completed { task.progress = 1 }
  }

  // MARK: Plain HTTP tasks

  private func plainCall(_ task: inout TaskRecord) async throws(StorageError) {
    let now = Timestamp.now()
    task.status = .processing
    task.startedAt = task.startedAt ?? now
    task.requestInFlight = true
    task.updatedAt = now
    try await commit(&task)

    var headers = task.headers.map { ($0.key, $0.value) }
    let body = task.method == "GET" ? [] : Array((task.body ?? "").utf8)
    headers.append(("X-AsyncQueue-Task-Id", task.id))
    headers.append(("Idempotency-Key", task.id))
    headers.append(
      (
        "X-AsyncQueue-Signature",
        WebhookSignature.header(
          secret: config.signingSecret(forTeam: task.teamId), timestamp: Int(now), body: body)
      ))
    let request = ClientRequest(
      method: task.method, url: task.targetUrl, headers: headers,
      body: task.method == "GET" ? nil : body, timeout: task.timeout,
      maxResponseBytes: Self.plainResponseLimit)
    let outcome = await send(request, for: task, kind: "call")
    task.requestInFlight = false

    switch outcome {
    case .success(let response):
      let retryable =
        response.statusCode >= 500 || response.statusCode == 408
        || response.statusCode == 429
      if retryable, task.retryCount < task.maxRetries {
        let wait =
          Backoff.retryAfter(response.headers, now: Timestamp.now())
          ?? Backoff.callDelay(attempt: task.retryCount + 1, mode: task.retryBackoff)
        scheduleRetry(&task, after: wait, reason: "HTTP \(response.statusCode)")
      } else {
        task.result = plainResult(response)
        if retryable {
          end(
            &task, .failed,
            error: "HTTP \(response.statusCode) after \(task.retryCount + 1) attempts",
            code: "retries_exhausted")
          task.result = plainResult(response)
        } else if (200..<300).contains(response.statusCode), task.waitsForResolution {
          startWaiting(&task)
        } else {
          end(&task, .completed)
        }
      }
    case .failure(let error):
      if error.kind == .addressNotAllowed || error.kind == .invalidRequest
        || error.kind == .responseTooLarge
      {
        end(&task, .failed, error: error.message, code: error.kind.rawValue)
      } else if task.retryCount < task.maxRetries {
        scheduleRetry(
          &task, after: Backoff.callDelay(attempt: task.retryCount + 1, mode: task.retryBackoff),
          reason: error.message)
      } else {
        end(
          &task, .failed, error: "\(error.message) (after \(task.retryCount + 1) attempts)",
          code: "retries_exhausted")
      }
    }
    noteEventState(task.id, task.status.isTerminal ? task.status.rawValue : "retry")
    try await commit(&task)
  }

  private func scheduleRetry(_ task: inout TaskRecord, after seconds: Double, reason: String) {
    task.retryCount += 1
    task.nextRunAt = Timestamp.now() + seconds * config.delayScale
    task.updatedAt = Timestamp.now()
    task.error = scrub(reason, for: task)
    logger.info(
      "call failed; retrying",
      fields(task) + [
        ("attempt", String(task.retryCount)), ("delay_s", String(format: "%.1f", seconds)),
        ("error", reason),
      ])
  }

  /// The largest response body a plain call's result keeps; the rest is cut off.
  static let plainBodyLimit = 1 << 20
  /// The largest response a plain call reads at all.
  static let plainResponseLimit = 16 << 20

  /// Builds the result of a plain call. A body that is not UTF-8 text is kept as base64
  /// (`bodyEncoding: "base64"`); one over `plainBodyLimit` is cut (`bodyTruncated: true`).
  private func plainResult(_ response: ClientResponse) -> JSONValue {
    let kept = Array(response.body.prefix(Self.plainBodyLimit))
    var fields: [String: JSONValue] = [
      "statusCode": .int(Int64(response.statusCode)),
      "headers": .object(response.headers.mapValues { .string($0) }),
      "duration": .int(Int64(response.durationMs.rounded())),
    ]
    if let text = String(validating: kept, as: UTF8.self) {
      fields["body"] = .string(text)
    } else if response.body.count <= Self.plainBodyLimit,
      String(validating: response.body, as: UTF8.self) != nil
    {
      fields["body"] = .string(String(decoding: response.body, as: UTF8.self))
    } else {
      fields["body"] = .string(Data(kept).base64EncodedString())
      fields["bodyEncoding"] = "base64"
    }
    if response.body.count > Self.plainBodyLimit {
      fields["bodyTruncated"] = true
      fields["bodySize"] = .int(Int64(response.body.count))
    }
    return .object(fields)
  }

  // MARK: Provider tasks

  func scriptKey(_ task: TaskRecord) -> String {
    task.provider ?? customTemplateKey
  }

  func context(_ task: TaskRecord, response: ClientResponse? = nil) -> JSONValue {
    var fields: [String: JSONValue] = [
      "task": .object([
        "id": .string(task.id),
        "targetUrl": .string(task.targetUrl),
        "method": .string(task.method),
        "headers": .object(task.headers.mapValues { .string($0) }),
        "body": task.body.map { .string($0) } ?? .null,
        "provider": task.provider.map { .string($0) } ?? .null,
      ]),
      "pollConfig": task.pollConfigValue(catalog),
      "pollCount": .int(Int64(task.pollCount)),
    ]
    if let job = task.job { fields["job"] = job }
    // on_result receives the request that fetched the result, for templates that chain requests.
    if let request = task.fetchRequest { fields["request"] = request }
    if let response {
      fields["response"] = .object([
        "statusCode": .int(Int64(response.statusCode)),
        "headers": .object(response.headers.mapValues { .string($0) }),
      ])
    }
    return .object(fields)
  }

  func callHook(
    _ task: TaskRecord, _ hook: String, response: ClientResponse? = nil
  ) throws(HookError) -> JSONValue {
    let started = Timestamp.now()
    defer {
      config.metrics.hookLatency.observe(
        [ServiceMetrics.label(task), hook], Timestamp.now() - started)
    }
    return try scripts.call(
      key: scriptKey(task), hook: hook, context: context(task, response: response),
      body: response?.body)
  }

  func buildRequest(_ value: JSONValue, hook: String, timeout: Double) throws(HookError)
    -> ClientRequest
  {
    guard let url = value["url"]?.stringValue,
      url.lowercased().hasPrefix("http://") || url.lowercased().hasPrefix("https://")
    else {
      throw HookError(
        message:
          "hook \(hook) must return a request with an http or https 'url'; got "
          + Verdict.shape(of: value)
      )
    }
    let headers = (value["headers"]?.objectValue ?? [:]).compactMap { name, headerValue in
      headerValue.stringValue.map { (name, $0) }
    }
    return ClientRequest(
      method: (value["method"]?.stringValue ?? "GET").uppercased(), url: url,
      headers: headers, body: value["body"]?.stringValue.map { Array($0.utf8) },
      timeout: timeout, maxResponseBytes: config.maxResponseBytes)
  }

  private func submit(_ task: inout TaskRecord) async throws(StorageError) {
    let request: ClientRequest
    do throws(HookError) {
      if scripts.hasHook(key: scriptKey(task), hook: "submit") {
        request = try buildRequest(
          try callHook(task, "submit"), hook: "submit", timeout: task.timeout)
      } else {
        request = ClientRequest(
          method: task.method, url: task.targetUrl,
          headers: task.headers.map { ($0.key, $0.value) },
          body: task.method == "GET" ? nil : task.body.map { Array($0.utf8) },
          timeout: task.timeout, maxResponseBytes: config.maxResponseBytes)
      }
    } catch {
      end(&task, .failed, error: "script_error: \(error.message)", code: "script_error")
      try await commit(&task)
      return
    }

    // Wait for the provider's limits before marking the submit in flight, so the window in
    // which a crash leaves its outcome unknown covers only the request itself.
    await acquireLimit(for: task)
    let now = Timestamp.now()
    task.status = .processing
    if task.startedAt == nil {
      task.startedAt = now
      task.deadlineAt =
        now + (task.pollConfigValue(catalog)["maxDuration"]?.doubleValue ?? 600) * config.delayScale
    }
    task.requestInFlight = true
    task.updatedAt = now
    do {
      try await commit(&task)
    } catch {
      releaseLimit(for: task)
      throw error
    }

    var fresh = request
    fresh.freshConnection = true
    let outcome = await send(fresh, for: task, kind: "submit", holdingLimit: true)
    task.requestInFlight = false
    switch outcome {
    case .failure(let error):
      try await submitFailed(&task, error)
    case .success(let response):
      let verdict: Verdict
      do throws(HookError) {
        verdict = try Verdict(
          try callHook(task, "on_submit", response: response), hook: "on_submit")
      } catch {
        end(&task, .failed, error: "script_error: \(error.message)", code: "script_error")
        try await commit(&task)
        return
      }
      try await applySubmitVerdict(&task, verdict)
    }
  }

  private func submitFailed(_ task: inout TaskRecord, _ error: ClientError)
    async throws(StorageError)
  {
    // A refused connection never reached the provider, so sending again is safe. A timeout or
    // a broken connection may have created a job, so only a template that opts in resends.
    let resendSafe =
      error.kind == .connect
      || (task.provider.flatMap { catalog.templates[$0]?.resubmit } ?? false)
    if error.kind == .addressNotAllowed || error.kind == .invalidRequest {
      end(&task, .failed, error: error.message, code: error.kind.rawValue)
    } else if !resendSafe {
      end(
        &task, .failed,
        error: "submit outcome unknown: \(error.message); the provider may have started the job",
        code: "submit_outcome_unknown")
    } else if task.retryCount < task.maxRetries {
      scheduleRetry(
        &task, after: Backoff.callDelay(attempt: task.retryCount + 1, mode: task.retryBackoff),
        reason: error.message)
    } else {
      end(&task, .failed, error: "submit failed: \(error.message)", code: "retries_exhausted")
    }
    noteEventState(task.id, task.status.isTerminal ? task.status.rawValue : "retry")
    try await commit(&task)
  }

  private func applySubmitVerdict(_ task: inout TaskRecord, _ verdict: Verdict)
    async
    throws(StorageError)
  {
    noteEventState(task.id, verdict.state.rawValue)
    let now = Timestamp.now()
    switch verdict.state {
    case .polling, .running:
      task.job = verdict.raw["job"] ?? .object([:])
      task.status = .polling
      task.step = .poll
      task.error = nil
      task.nextRunAt = min(now + pollInterval(task, verdict), task.deadlineAt ?? .infinity)
    case .completed:
      task.result = verdict.result ?? .null
      end(&task, .completed)
    case .failed:
      end(
        &task, .failed, error: verdict.error ?? "provider rejected the submit",
        code: "provider_error")
    case .retry:
      if task.retryCount < task.maxRetries {
        scheduleRetry(
          &task,
          after: verdict.after
            ?? Backoff.callDelay(attempt: task.retryCount + 1, mode: task.retryBackoff),
          reason: verdict.error ?? "provider asked to retry")
      } else {
        end(
          &task, .failed,
          error:
            "submit failed: \(verdict.error ?? "provider asked to retry") (after \(task.retryCount + 1) attempts)",
          code: "retries_exhausted")
      }
    case .fetch, .cancelled:
      end(
        &task, .failed,
        error:
          "script_error: on_submit returned state '\(verdict.state.rawValue)', which is not allowed there",
        code: "script_error")
    }
    task.updatedAt = now
    try await commit(&task)
  }

  private func pollInterval(_ task: TaskRecord, _ verdict: Verdict?) -> Double {
    if let after = verdict?.after, after > 0 { return after * config.delayScale }
    return (task.pollConfigValue(catalog)["interval"]?.doubleValue ?? 5) * config.delayScale
  }

  private func poll(_ task: inout TaskRecord) async throws(StorageError) {
    let request: ClientRequest
    do throws(HookError) {
      request = try buildRequest(try callHook(task, "poll"), hook: "poll", timeout: task.timeout)
    } catch {
      end(&task, .failed, error: "script_error: \(error.message)", code: "script_error")
      try await commit(&task)
      return
    }
    let outcome = await send(request, for: task, kind: "poll")
    task.pollCount += 1
    switch outcome {
    case .failure(let error)
    where error.kind == .invalidRequest || error.kind == .addressNotAllowed:
      // Sending the same request again cannot work.
      end(
        &task, .failed, error: "status request failed: \(error.message)", code: error.kind.rawValue)
      try await commit(&task)
    case .failure(let error):
      pollFailed(&task, reason: error.message, after: nil)
      try await commit(&task)
    case .success(let response):
      let verdict: Verdict
      do throws(HookError) {
        verdict = try Verdict(try callHook(task, "on_poll", response: response), hook: "on_poll")
      } catch {
        end(&task, .failed, error: "script_error: \(error.message)", code: "script_error")
        try await commit(&task)
        return
      }
      try await applyPollVerdict(&task, verdict, response: response)
    }
  }

  /// Returns the value at the pollConfig's `statusPath` in a JSON response body, if there is one.
  private func statusValue(in response: ClientResponse, task: TaskRecord) -> String? {
    guard let path = task.pollConfigValue(catalog)["statusPath"]?.stringValue, !path.isEmpty,
      response.headers["content-type"]?.contains("json") ?? true,
      var value = try? JSONValue.parse(response.body)
    else { return nil }
    for segment in path.split(separator: ".") {
      if let index = Int(segment), let items = value.arrayValue, items.indices.contains(index) {
        value = items[index]
      } else if let next = value[String(segment)] {
        value = next
      } else {
        return nil
      }
    }
    switch value {
    case .string(let text): return text
    case .int(let number): return String(number)
    default: return nil
    }
  }

  private func pollFailed(_ task: inout TaskRecord, reason: String, after: Double?) {
    noteEventState(task.id, "retry")
    task.pollErrors += 1
    task.error = scrub(reason, for: task)
    let interval = task.pollConfigValue(catalog)["interval"]?.doubleValue ?? 5
    let wait =
      (after ?? Backoff.pollDelay(interval: interval, errors: task.pollErrors)) * config.delayScale
    task.nextRunAt = min(Timestamp.now() + wait, task.deadlineAt ?? .infinity)
    task.updatedAt = Timestamp.now()
    logger.info("poll failed; polling again", fields(task) + [("error", reason)])
  }

  private func applyPollVerdict(
    _ task: inout TaskRecord, _ verdict: Verdict, response: ClientResponse
  ) async throws(StorageError) {
    let now = Timestamp.now()
    task.updatedAt = now
    noteEventState(task.id, verdict.state.rawValue)
    if let status = verdict.raw["status"]?.stringValue {
      task.providerStatus = status
    } else if let status = statusValue(in: response, task: task) {
      // Templates name the status on running verdicts only; read the final one from the body.
      task.providerStatus = status
    }
    switch verdict.state {
    case .running, .polling:
      if let progress = verdict.raw["progress"]?.doubleValue { task.progress = progress }
      if verdict.raw["unknown"]?.boolValue == true {
        reportUnknownStatus(task, value: task.providerStatus ?? "?")
      }
      task.error = nil
      task.nextRunAt = min(now + pollInterval(task, verdict), task.deadlineAt ?? .infinity)
      try await commit(&task)
    case .retry:
      pollFailed(
        &task, reason: verdict.error ?? "HTTP \(response.statusCode)", after: verdict.after)
      try await commit(&task)
    case .completed:
      try await complete(&task, verdict, response: response)
    case .failed where task.cancelRequested, .cancelled:
      end(&task, .cancelled, error: verdict.error ?? "cancelled at the provider")
      try await commit(&task)
    case .failed:
      end(
        &task, .failed, error: verdict.error ?? "provider reported a failure",
        code: "provider_error")
      try await commit(&task)
    case .fetch:
      guard let request = verdict.raw["request"] else {
        end(
          &task, .failed, error: "script_error: on_poll returned state 'fetch' without a 'request'",
          code: "script_error")
        try await commit(&task)
        return
      }
      task.step = .fetch
      task.fetchRequest = request
      task.error = nil
      task.nextRunAt = now
      try await commit(&task)
      try await fetch(&task)
    }
  }

  private func fetch(_ task: inout TaskRecord) async throws(StorageError) {
    let request: ClientRequest
    do throws(HookError) {
      request = try buildRequest(
        task.fetchRequest ?? .null, hook: "on_poll", timeout: max(task.timeout, 60))
    } catch {
      end(&task, .failed, error: "script_error: \(error.message)", code: "script_error")
      try await commit(&task)
      return
    }
    let outcome = await send(request, for: task, kind: "fetch")
    switch outcome {
    case .failure(let error):
      pollFailed(&task, reason: "result request failed: \(error.message)", after: nil)
      try await commit(&task)
    case .success(let response):
      let verdict: Verdict
      do throws(HookError) {
        verdict = try Verdict(
          try callHook(task, "on_result", response: response), hook: "on_result")
      } catch {
        end(&task, .failed, error: "script_error: \(error.message)", code: "script_error")
        try await commit(&task)
        return
      }
      noteEventState(task.id, verdict.state.rawValue)
      switch verdict.state {
      case .completed:
        try await complete(&task, verdict, response: response)
      case .fetch:
        task.fetchRequest = verdict.raw["request"]
        task.nextRunAt = Timestamp.now()
        try await commit(&task)
        try await fetch(&task)
      case .retry, .running, .polling:
        pollFailed(
          &task, reason: verdict.error ?? "result not ready (HTTP \(response.statusCode))",
          after: verdict.after)
        try await commit(&task)
      case .failed where task.cancelRequested:
        end(&task, .cancelled, error: verdict.error ?? "cancelled at the provider")
        try await commit(&task)
      case .failed:
        end(
          &task, .failed, error: verdict.error ?? "provider reported a failure",
          code: "provider_error")
        try await commit(&task)
      case .cancelled:
        end(&task, .cancelled, error: verdict.error ?? "cancelled at the provider")
        try await commit(&task)
      }
    }
  }

  /// Ends a task `completed`, first writing the response body to a result file when the hook
  /// asked for one.
  private func complete(_ task: inout TaskRecord, _ verdict: Verdict, response: ClientResponse)
    async throws(StorageError)
  {
    var result = verdict.result ?? .null
    if let file = verdict.raw["file"], file.objectValue != nil {
      let contentType =
        file["contentType"]?.stringValue
        ?? response.headers["content-type"] ?? "application/octet-stream"
      let name = sanitizedFileName(file["name"]?.stringValue ?? "result")
      do {
        try writeResultFile(task.id, name: name, bytes: response.body)
      } catch {
        pollFailed(&task, reason: "cannot store the result file: \(error)", after: 5)
        try await commit(&task)
        return
      }
      task.resultFile = ResultFile(name: name, contentType: contentType, size: response.body.count)
      var fields = result.objectValue ?? (result.isNull ? [:] : ["value": result])
      fields["url"] = .string(TaskPresenter.resultURL(task.id, baseURL: config.publicURL))
      fields["contentType"] = .string(contentType)
      fields["size"] = .int(Int64(response.body.count))
      result = .object(fields)
    }
    task.result = result
    end(&task, .completed)
    try await commit(&task)
  }

  private func sanitizedFileName(_ name: String) -> String {
    let cleaned = String(
      name.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" ? $0 : "_" })
    return cleaned.isEmpty || cleaned.hasPrefix(".") ? "result" : String(cleaned.prefix(100))
  }

  /// Writes the bytes to a temporary file and renames it, so a crash never leaves a partial
  /// result under the final name.
  private func writeResultFile(_ taskId: String, name: String, bytes: [UInt8]) throws {
    if let shared {
      // Any node may be asked for the file, so it lives in the shared database.
      try shared.saveResultFile(taskId: taskId, name: name, bytes: bytes)
      return
    }
    let directory = resultDirectory(taskId)
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let path = (directory as NSString).appendingPathComponent(name)
    let temporary = path + ".partial"
    let data = Data(bytes)
    try data.write(to: URL(fileURLWithPath: temporary))
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
    try handle.synchronize()
    try handle.close()
    if FileManager.default.fileExists(atPath: path) {
      try FileManager.default.removeItem(atPath: path)
    }
    try FileManager.default.moveItem(atPath: temporary, toPath: path)
  }
}

extension TaskRecord {
  /// Returns the pollConfig in force: the task's custom one, else its template's.
  func pollConfigValue(_ catalog: ProviderCatalog) -> JSONValue {
    if let pollConfig { return pollConfig }
    if let provider, let template = catalog.templates[provider] { return template.pollConfig }
    return .object([:])
  }
}
