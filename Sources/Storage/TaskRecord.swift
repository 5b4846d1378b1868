import Foundation
import Support

/// A task's status as the API reports it.
public enum TaskStatus: String, Codable, Sendable, CaseIterable {
  case pending, delayed, processing, polling, waiting
  case completed, failed, timeout, cancelled

  public var isTerminal: Bool {
    switch self {
    case .completed, .failed, .timeout, .cancelled: true
    default: false
    }
  }
}

/// The engine's action the next time a task is due.
public enum TaskStep: String, Codable, Sendable {
  /// Send the task's own HTTP call (a plain task), or the provider submit.
  case call
  /// Send the provider status request.
  case poll
  /// Send the extra request that fetches the result (`fetchRequest`).
  case fetch
  /// Send the provider cancel request.
  case cancel
  /// Wait for a signal or callback; at the step time, `maxWaitTime` has passed.
  case wait
}

/// A file the engine stored for a task's result, under the data directory.
public struct ResultFile: Codable, Sendable, Equatable {
  public var name: String
  public var contentType: String
  public var size: Int

  public init(name: String, contentType: String, size: Int) {
    self.name = name
    self.contentType = contentType
    self.size = size
  }
}

/// A task as stored: what the client asked for plus the engine's progress on it.
public struct TaskRecord: Codable, Sendable, Equatable {
  public var id: String
  public var teamId: String
  public var status: TaskStatus
  public var targetUrl: String
  public var method: String
  public var headers: [String: String]
  public var body: String?
  public var provider: String?
  public var pollConfig: JSONValue?
  public var onCompleteUrl: String?
  /// Seconds allowed for each HTTP attempt.
  public var timeout: Double
  public var maxRetries: Int
  public var retryBackoff: String
  public var priority: Int
  public var delayUntil: Double?
  public var retryCount: Int = 0
  public var pollCount: Int = 0
  /// Polls that failed in transit or got an error response (429, 5xx, a body that is not JSON).
  public var pollErrors: Int = 0
  public var result: JSONValue?
  public var error: String?
  /// A machine-readable code for `error`, such as `script_error` or `submit_outcome_unknown`.
  public var errorCode: String?
  public var createdAt: Double
  public var startedAt: Double?
  public var completedAt: Double?
  public var updatedAt: Double
  /// The provider's job handle: ids and URLs read from the submit response.
  public var job: JSONValue?
  /// The provider's last raw status value.
  public var providerStatus: String?
  /// The provider's progress, 0 to 1, when it reports one.
  public var progress: Double?
  /// When the engine next acts on the task, in Unix seconds; nil once terminal.
  public var nextRunAt: Double?
  /// The step taken at `nextRunAt`.
  public var step: TaskStep = .call
  /// When a provider task ends in `timeout` (submit time plus the template's maxDuration).
  public var deadlineAt: Double?
  /// The pending result request, set while `step` is `fetch`.
  public var fetchRequest: JSONValue?
  public var resultFile: ResultFile?
  /// True while a request whose outcome is not yet recorded may have reached the target.
  public var requestInFlight: Bool = false
  public var cancelRequested: Bool = false
  /// After the call succeeds, wait for `POST /v1/signals/{token}` (status `waiting`).
  public var waitForSignal: Bool?
  /// Seconds a `waiting` task waits for its signal or callback before `timeout`.
  public var maxWaitTime: Double?
  /// The per-task URL that `{asyncqueue_callback_url}` was replaced with.
  public var callbackUrl: String?

  public init(
    id: String, teamId: String, status: TaskStatus, targetUrl: String, method: String,
    headers: [String: String], body: String?, provider: String?, pollConfig: JSONValue?,
    onCompleteUrl: String?, timeout: Double, maxRetries: Int, retryBackoff: String,
    priority: Int, delayUntil: Double?, createdAt: Double
  ) {
    self.id = id
    self.teamId = teamId
    self.status = status
    self.targetUrl = targetUrl
    self.method = method
    self.headers = headers
    self.body = body
    self.provider = provider
    self.pollConfig = pollConfig
    self.onCompleteUrl = onCompleteUrl
    self.timeout = timeout
    self.maxRetries = maxRetries
    self.retryBackoff = retryBackoff
    self.priority = priority
    self.delayUntil = delayUntil
    self.createdAt = createdAt
    self.updatedAt = createdAt
  }

  /// True for a task that polls a provider, through a template or a custom pollConfig.
  public var isProviderTask: Bool { provider != nil || pollConfig != nil }
}

/// A completion webhook waiting to be delivered, or delivered.
public struct DeliveryRecord: Sendable, Equatable {
  public var id: Int64
  public var taskId: String
  public var teamId: String
  public var url: String
  public var event: String
  public var payload: [UInt8]
  public var attempts: Int
  public var nextAttemptAt: Double?
  public var deliveredAt: Double?
  public var createdAt: Double
  public var lastStatus: Int?
  public var lastError: String?

  public init(
    id: Int64 = 0, taskId: String, teamId: String, url: String, event: String, payload: [UInt8],
    createdAt: Double
  ) {
    self.id = id
    self.taskId = taskId
    self.teamId = teamId
    self.url = url
    self.event = event
    self.payload = payload
    self.attempts = 0
    self.nextAttemptAt = createdAt
    self.createdAt = createdAt
  }
}

/// One try at delivering a webhook.
public struct DeliveryAttempt: Sendable, Equatable {
  public var deliveryId: Int64
  public var at: Double
  public var statusCode: Int?
  public var latencyMs: Int
  public var error: String?

  public init(deliveryId: Int64, at: Double, statusCode: Int?, latencyMs: Int, error: String?) {
    self.deliveryId = deliveryId
    self.at = at
    self.statusCode = statusCode
    self.latencyMs = latencyMs
    self.error = error
  }
}

/// One entry of a task's timeline: a submit, poll, result fetch, cancel or webhook delivery.
public struct TaskEvent: Sendable, Equatable {
  public var taskId: String
  public var at: Double
  /// `submit`, `call`, `poll`, `fetch`, `cancel` or `delivery`.
  public var kind: String
  public var statusCode: Int?
  /// The state the engine mapped the response to (`running`, `completed`, `retry`, …).
  public var state: String?
  public var latencyMs: Int?
  public var error: String?

  public init(
    taskId: String, at: Double, kind: String, statusCode: Int? = nil, state: String? = nil,
    latencyMs: Int? = nil, error: String? = nil
  ) {
    self.taskId = taskId
    self.at = at
    self.kind = kind
    self.statusCode = statusCode
    self.state = state
    self.latencyMs = latencyMs
    self.error = error
  }
}
