import Foundation
import HTTPClient
import Storage
import Support

/// Signals, callbacks and the token vault: ways a task is completed or fed from outside.
extension TaskRecord {
  /// True for a task that a signal or callback can end.
  var waitsForResolution: Bool { waitForSignal == true || callbackUrl != nil }
}

/// The outcome of delivering a signal or callback.
public enum ResolutionOutcome: Sendable {
  /// Recorded; the task ends with it (or already has, when `task` is terminal).
  case accepted(TaskRecord?)
  /// The task had already ended; the signal or callback changed nothing.
  case finished(TaskRecord)
  /// No task waits on this token or callback id, or it was used before.
  case unknown
}

extension Engine {
  /// Stores a new task with the hashes of its one-time signal token and callback id.
  public func createTask(
    _ parsed: TaskRequestParser.Parsed, idempotencyKey: String?, requestHash: String
  )
    throws(StorageError) -> (taskId: String, requestHash: String)?
  {
    var handles: [(hash: String, kind: String)] = []
    if let token = signalToken(for: parsed.task) {
      handles.append((Crypto.sha256Hex(token), "signal"))
    }
    if let id = parsed.callbackId { handles.append((Crypto.sha256Hex(id), "callback")) }
    if handles.isEmpty {
      return try createTask(parsed.task, idempotencyKey: idempotencyKey, requestHash: requestHash)
    }
    if let idempotencyKey {
      // The handles of a repeated request are not stored: the earlier task keeps its own.
      if let earlier = try createTask(
        parsed.task, idempotencyKey: idempotencyKey, requestHash: requestHash)
      {
        return earlier
      }
      try store.insertHandles(handles, taskId: parsed.task.id)
      return nil
    }
    try createTask(parsed.task, handles: handles)
    return nil
  }

  /// Returns the task's signal token, or nil when it does not wait for a signal. The token is an HMAC
  /// of the task id under the vault key, so it can be shown again (to a repeated idempotent
  /// create) although only its hash is stored.
  public func signalToken(for task: TaskRecord) -> String? {
    guard task.waitForSignal == true else { return nil }
    let key = config.vaultKey.map { String(format: "%02x", $0) }.joined()
    return Crypto.hmacSHA256Hex(key: key, message: Array("signal:\(task.id)".utf8))
  }

  /// Parks a task whose call succeeded until its signal or callback arrives.
  func startWaiting(_ task: inout TaskRecord) {
    task.status = .waiting
    task.step = .wait
    task.nextRunAt = Timestamp.now() + (task.maxWaitTime ?? 30) * config.delayScale
    task.updatedAt = Timestamp.now()
    if (try? store.pendingResolution(taskId: task.id)) ?? nil != nil {
      // The signal or callback came before the call's response: apply it at once.
      task.nextRunAt = Timestamp.now()
    }
  }

  /// Records a signal (`POST /v1/signals/{token}`) or a callback (`POST /v1/callbacks/{id}`)
  /// and wakes the task to apply it. Each token and id works once.
  public func resolve(
    secret: String, kind: String, status: String, result: JSONValue?, error: String?
  ) throws(StorageError) -> ResolutionOutcome {
    let taskId = try store.consumeHandle(hash: Crypto.sha256Hex(secret), kind: kind) { taskId in
      TaskResolution(taskId: taskId, kind: kind, status: status, result: result, error: error)
    }
    guard let taskId else { return .unknown }
    let task = try store.task(id: taskId)
    if let task, task.status.isTerminal {
      try store.deleteResolution(taskId: taskId)
      logger.info("\(kind) arrived after the task ended; ignored", [("task", taskId)])
      return .finished(task)
    }
    logger.info("\(kind) received", [("task", taskId), ("status", status)])
    wakeForResolution(taskId)
    return .accepted(task)
  }

  /// Applies a stored signal or callback; returns true when it ended the task.
  func applyPendingResolution(_ task: inout TaskRecord) async throws(StorageError) -> Bool {
    guard let resolution = try store.pendingResolution(taskId: task.id) else { return false }
    if task.status.isTerminal {
      try store.deleteResolution(taskId: task.id)
      return false
    }
    if let result = resolution.result {
      task.result = result
    }
    if resolution.status == "failed" {
      end(
        &task, .failed, error: resolution.error ?? "the \(resolution.kind) reported a failure",
        code: "\(resolution.kind)_failed")
    } else {
      end(&task, .completed)
    }
    try await commit(&task)
    try store.deleteResolution(taskId: task.id)
    return true
  }

  // MARK: Vault

  /// Replaces header values that name vault tokens with their secrets, at send time, so a
  /// secret is never stored on a task or shown to a script.
  func resolveVaultTokens(_ request: inout ClientRequest, teamId: String) -> ClientError? {
    for index in request.headers.indices where request.headers[index].1.hasPrefix("tok_") {
      let id = request.headers[index].1
      guard let token = try? store.token(id: id), token.teamId == teamId,
        let secret = SecretBox.open(token.sealedValue, key: config.vaultKey)
      else {
        return ClientError(
          .invalidRequest,
          "vault token \(id) in header '\(request.headers[index].0)' was deleted or cannot be "
            + "decrypted")
      }
      for form in TaskRecord.secretForms(of: secret) { Redactor.shared.register(form) }
      request.headers[index].1 = secret
    }
    return nil
  }

  /// Stores a credential in the vault; returns its `tok_…` id.
  public func storeToken(name: String, value: String, teamId: String) throws(StorageError)
    -> VaultToken
  {
    guard let sealed = SecretBox.seal(value, key: config.vaultKey) else {
      throw StorageError("cannot encrypt the token value")
    }
    let token = VaultToken(
      id: "tok_" + Crypto.randomHex(bytes: 16), teamId: teamId, name: name, sealedValue: sealed,
      createdAt: Timestamp.now())
    try store.insertToken(token)
    for form in TaskRecord.secretForms(of: value) { Redactor.shared.register(form) }
    return token
  }
}
