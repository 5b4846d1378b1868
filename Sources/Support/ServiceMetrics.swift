/// The metrics asyncqueue exposes at `GET /metrics`, registered in one registry.
///
/// Label `provider` is a template id, `custom` for a task with its own pollConfig, or `none`
/// for a plain HTTP call. Latencies are in seconds.
public final class ServiceMetrics: Sendable {
  public let registry = MetricsRegistry()

  /// Tasks in the database by status and provider, refreshed at each scrape. The database
  /// does not tell custom pollConfig tasks from plain calls, so both count as `none` here.
  public let tasks: GaugeFamily
  /// Status changes committed by the engine, by the new status.
  public let taskTransitions: CounterFamily
  /// Active (not terminal) tasks the engine tracks.
  public let queueDepth: GaugeFamily
  /// Requests sent for tasks, by provider, step (`call`, `submit`, `poll`, `fetch`, `cancel`)
  /// and outcome (`2xx` … `5xx`, or the transport error kind such as `timeout`).
  public let providerRequests: CounterFamily
  public let providerRequestLatency: HistogramFamily
  /// Status polls by provider and outcome, with the same outcome values as `providerRequests`.
  public let polls: CounterFamily
  public let pollLatency: HistogramFamily
  /// Lua hook calls, by provider and hook name.
  public let hookLatency: HistogramFamily
  /// Seconds between a step's due time and the scheduler starting it.
  public let schedulerLag: HistogramFamily
  /// Webhook delivery attempts by outcome: `delivered`, `retrying`, `abandoned`.
  public let webhookDeliveries: CounterFamily
  public let webhookLatency: HistogramFamily
  /// API requests by route pattern and status code.
  public let httpRequests: CounterFamily
  /// API requests rejected with 429.
  public let rateLimited: CounterFamily

  public init() {
    let registry = self.registry
    tasks = registry.gauge(
      "asyncqueue_tasks", help: "Tasks in the database by status and provider.",
      labels: ["status", "provider"])
    taskTransitions = registry.counter(
      "asyncqueue_task_transitions_total", help: "Task status changes committed by the engine.",
      labels: ["status", "provider"])

    queueDepth = registry.gauge(
      "asyncqueue_queue_depth", help: "Active (not terminal) tasks tracked by the engine.")
    providerRequests = registry.counter(
      "asyncqueue_provider_requests_total",
      help: "Requests sent for tasks, by provider, step and outcome.",
      labels: ["provider", "step", "outcome"])
    providerRequestLatency = registry.histogram(
      "asyncqueue_provider_request_seconds", help: "Latency of requests sent for tasks.",
      labels: ["provider", "step"])
    polls = registry.counter(
      "asyncqueue_polls_total", help: "Provider status polls by provider and outcome.",
      labels: ["provider", "outcome"])

    pollLatency = registry.histogram(
      "asyncqueue_poll_seconds", help: "Latency of provider status polls.",
      labels: ["provider"])
    hookLatency = registry.histogram(
      "asyncqueue_hook_seconds", help: "Duration of Lua template hook calls.",
      labels: ["provider", "hook"],
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1])
    schedulerLag = registry.histogram(
      "asyncqueue_scheduler_lag_seconds",
      help: "Delay between a task step's due time and its start.")

    webhookDeliveries = registry.counter(
      "asyncqueue_webhook_deliveries_total", help: "Webhook delivery attempts by outcome.",
      labels: ["outcome"])
    webhookLatency = registry.histogram(
      "asyncqueue_webhook_seconds", help: "Latency of webhook delivery attempts.")

    httpRequests = registry.counter(
      "asyncqueue_http_requests_total", help: "API requests by route and status code.",
      labels: ["method", "route", "status"])
    rateLimited = registry.counter(
      "asyncqueue_rate_limited_total", help: "API requests rejected because of the rate limit.")
  }

  /// Returns the `provider` label for a task.
  public static func providerLabel(provider: String?, hasPollConfig: Bool) -> String {
    if let provider { return provider }
    return hasPollConfig ? "custom" : "none"
  }
}
