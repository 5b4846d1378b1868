import Support

/// The stored JSON document of a task, written and read without Codable.
///
/// The document has the keys and values that `JSONEncoder` gave `TaskRecord`'s synthesized
/// `Codable` conformance, so documents stored by either reader or writer stay readable by the
/// other. Building a `JSONValue` and writing it with `JSONValue.serializedBytes()` is several
/// times faster than `JSONEncoder`, and every status poll saves its task.
extension TaskRecord {
  /// The task as a JSON object; absent optionals have no key, as with `encodeIfPresent`.
  public var document: JSONValue {
    var fields: [String: JSONValue] = [
      "id": .string(id), "teamId": .string(teamId), "status": .string(status.rawValue),
      "targetUrl": .string(targetUrl), "method": .string(method),
      "headers": .object(headers.mapValues { .string($0) }),
      "timeout": .double(timeout), "maxRetries": .int(Int64(maxRetries)),
      "retryBackoff": .string(retryBackoff), "priority": .int(Int64(priority)),
      "retryCount": .int(Int64(retryCount)), "pollCount": .int(Int64(pollCount)),
      "pollErrors": .int(Int64(pollErrors)), "createdAt": .double(createdAt),
      "updatedAt": .double(updatedAt), "step": .string(step.rawValue),
      "requestInFlight": .bool(requestInFlight), "cancelRequested": .bool(cancelRequested),
    ]
    fields["body"] = body.map { .string($0) }
    fields["provider"] = provider.map { .string($0) }
    fields["pollConfig"] = pollConfig
    fields["onCompleteUrl"] = onCompleteUrl.map { .string($0) }
    fields["delayUntil"] = delayUntil.map { .double($0) }
    fields["result"] = result
    fields["error"] = error.map { .string($0) }
    fields["errorCode"] = errorCode.map { .string($0) }
    fields["startedAt"] = startedAt.map { .double($0) }
    fields["completedAt"] = completedAt.map { .double($0) }
    fields["job"] = job
    fields["providerStatus"] = providerStatus.map { .string($0) }
    fields["progress"] = progress.map { .double($0) }
    fields["nextRunAt"] = nextRunAt.map { .double($0) }
    fields["deadlineAt"] = deadlineAt.map { .double($0) }
    fields["fetchRequest"] = fetchRequest
    fields["waitForSignal"] = waitForSignal.map { .bool($0) }
    fields["maxWaitTime"] = maxWaitTime.map { .double($0) }
    fields["callbackUrl"] = callbackUrl.map { .string($0) }
    if let resultFile {
      fields["resultFile"] = [
        "name": .string(resultFile.name), "contentType": .string(resultFile.contentType),
        "size": .int(Int64(resultFile.size)),
      ]
    }
    return .object(fields)
  }

  /// Reads a task from its stored document. Keys missing from documents of older versions
  /// take the same defaults as a new task.
  public init(document: JSONValue) throws(StorageError) {
    guard let fields = document.objectValue else {
      throw StorageError("stored task is unreadable: the document is not a JSON object")
    }
    let reader = DocumentReader(fields: fields)
    self.init(
      id: try reader.string("id"), teamId: try reader.string("teamId"),
      status: try reader.enumeration("status"), targetUrl: try reader.string("targetUrl"),
      method: try reader.string("method"), headers: try reader.headers(),
      body: try reader.optionalString("body"), provider: try reader.optionalString("provider"),
      pollConfig: reader.value("pollConfig"),
      onCompleteUrl: try reader.optionalString("onCompleteUrl"),
      timeout: try reader.double("timeout"), maxRetries: try reader.int("maxRetries"),
      retryBackoff: try reader.string("retryBackoff"), priority: try reader.int("priority"),
      delayUntil: try reader.optionalDouble("delayUntil"),
      createdAt: try reader.double("createdAt"))
    retryCount = try reader.optionalInt("retryCount") ?? 0
    pollCount = try reader.optionalInt("pollCount") ?? 0
    pollErrors = try reader.optionalInt("pollErrors") ?? 0
    result = reader.value("result")
    error = try reader.optionalString("error")
    errorCode = try reader.optionalString("errorCode")
    startedAt = try reader.optionalDouble("startedAt")
    completedAt = try reader.optionalDouble("completedAt")
    updatedAt = try reader.double("updatedAt")
    job = reader.value("job")
    providerStatus = try reader.optionalString("providerStatus")
    progress = try reader.optionalDouble("progress")
    nextRunAt = try reader.optionalDouble("nextRunAt")
    step = try reader.optionalEnumeration("step") ?? .call
    deadlineAt = try reader.optionalDouble("deadlineAt")
    fetchRequest = reader.value("fetchRequest")
    resultFile = try reader.resultFile()
    requestInFlight = try reader.optionalBool("requestInFlight") ?? false
    cancelRequested = try reader.optionalBool("cancelRequested") ?? false
    waitForSignal = try reader.optionalBool("waitForSignal")
    maxWaitTime = try reader.optionalDouble("maxWaitTime")
    callbackUrl = try reader.optionalString("callbackUrl")
  }
}

/// Typed access to a stored document's fields; a key that is present with the wrong type is
/// an error naming the key.
private struct DocumentReader {
  let fields: [String: JSONValue]

  /// The value of a key that is present and not null.
  func value(_ key: String) -> JSONValue? {
    guard let found = fields[key], !found.isNull else { return nil }
    return found
  }

  func invalid(_ key: String, _ expected: String) -> StorageError {
    StorageError("stored task is unreadable: '\(key)' is missing or not \(expected)")
  }

  func string(_ key: String) throws(StorageError) -> String {
    guard let text = fields[key]?.stringValue else { throw invalid(key, "a string") }
    return text
  }

  func optionalString(_ key: String) throws(StorageError) -> String? {
    guard let found = value(key) else { return nil }
    guard let text = found.stringValue else { throw invalid(key, "a string") }
    return text
  }

  func double(_ key: String) throws(StorageError) -> Double {
    guard let number = fields[key]?.doubleValue else { throw invalid(key, "a number") }
    return number
  }

  func optionalDouble(_ key: String) throws(StorageError) -> Double? {
    guard let found = value(key) else { return nil }
    guard let number = found.doubleValue else { throw invalid(key, "a number") }
    return number
  }

  func int(_ key: String) throws(StorageError) -> Int {
    guard let number = fields[key]?.intValue else { throw invalid(key, "an integer") }
    return number
  }

  func optionalInt(_ key: String) throws(StorageError) -> Int? {
    guard let found = value(key) else { return nil }
    guard let number = found.intValue else { throw invalid(key, "an integer") }
    return number
  }

  func optionalBool(_ key: String) throws(StorageError) -> Bool? {
    guard let found = value(key) else { return nil }
    guard let flag = found.boolValue else { throw invalid(key, "a boolean") }
    return flag
  }

  func enumeration<T: RawRepresentable<String>>(_ key: String) throws(StorageError) -> T {
    guard let parsed = try optionalEnumeration(key) as T? else { throw invalid(key, "a string") }
    return parsed
  }

  func optionalEnumeration<T: RawRepresentable<String>>(_ key: String) throws(StorageError) -> T? {
    guard let text = try optionalString(key) else { return nil }
    guard let parsed = T(rawValue: text) else {
      throw StorageError("stored task is unreadable: '\(key)' has the unknown value '\(text)'")
    }
    return parsed
  }

  func headers() throws(StorageError) -> [String: String] {
    guard let object = fields["headers"]?.objectValue else { throw invalid("headers", "an object") }
    var headers: [String: String] = [:]
    for (name, headerValue) in object {
      guard let text = headerValue.stringValue else { throw invalid("headers", "string values") }
      headers[name] = text
    }
    return headers
  }

  func resultFile() throws(StorageError) -> ResultFile? {
    guard let found = value("resultFile") else { return nil }
    guard let name = found["name"]?.stringValue,
      let contentType = found["contentType"]?.stringValue,
      let size = found["size"]?.intValue
    else { throw invalid("resultFile", "an object with name, contentType and size") }
    return ResultFile(name: name, contentType: contentType, size: size)
  }
}
