import HTTPClient
import Storage
import Support

extension EngineConfig {
  /// Returns the secret that signs a team's webhooks and calls (`X-AsyncQueue-Signature`):
  /// `secretForTeam` when set, else the service-wide `webhookSecret`.
  public func signingSecret(forTeam team: String) -> String {
    secretForTeam?(team) ?? webhookSecret
  }
}

extension ServiceMetrics {
  /// Counts a committed status change of a task.
  func recordTransition(of task: TaskRecord) {
    taskTransitions.increment([task.status.rawValue, Self.label(task)])
  }

  /// Counts a request sent for a task by its step (`call`, `submit`, `poll`, `fetch`,
  /// `cancel`) and outcome, and records its latency; a poll also counts in the poll metrics.
  func recordRequest(
    for task: TaskRecord, step: String, outcome: Result<ClientResponse, ClientError>,
    seconds: Double
  ) {
    let provider = Self.label(task)
    let result: String
    switch outcome {
    case .success(let response): result = "\(response.statusCode / 100)xx"
    case .failure(let error): result = error.kind.rawValue
    }
    providerRequests.increment([provider, step, result])
    providerRequestLatency.observe([provider, step], seconds)
    if step == "poll" {
      polls.increment([provider, result])
      pollLatency.observe([provider], seconds)
    }
  }

  static func label(_ task: TaskRecord) -> String {
    providerLabel(provider: task.provider, hasPollConfig: task.pollConfig != nil)
  }
}
