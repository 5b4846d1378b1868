import Foundation
import Support

/// Limits on the requests sent to one provider.
public struct ProviderLimits: Sendable, Equatable {
  /// Requests in flight at once.
  public var concurrency: Int
  /// Requests started per second, averaged; bursts up to one second's worth.
  public var requestsPerSecond: Double

  public init(concurrency: Int, requestsPerSecond: Double) {
    self.concurrency = concurrency
    self.requestsPerSecond = requestsPerSecond
  }

  /// Reads `{concurrency = N, requestsPerSecond = R}`; nil when absent or invalid.
  public init?(_ value: JSONValue?) {
    guard let value, let concurrency = value["concurrency"]?.intValue,
      let rate = value["requestsPerSecond"]?.doubleValue, concurrency >= 1, rate > 0
    else { return nil }
    self.init(concurrency: concurrency, requestsPerSecond: rate)
  }
}

/// Holds requests to a provider back while its concurrency or rate limit is reached. Waiting
/// requests are served first come, first served, so a backlog drains in order instead of
/// failing.
final class ProviderLimiter: @unchecked Sendable {
  private final class Bucket {
    let limits: ProviderLimits
    var inFlight = 0
    var tokens: Double
    var refilledAt: Double
    var waiting: [CheckedContinuation<Void, Never>] = []

    init(limits: ProviderLimits, now: Double) {
      self.limits = limits
      self.tokens = max(1, limits.requestsPerSecond)
      self.refilledAt = now
    }

    func refill(now: Double) {
      let capacity = max(1, limits.requestsPerSecond)
      tokens = min(capacity, tokens + (now - refilledAt) * limits.requestsPerSecond)
      refilledAt = now
    }
  }

  private let lock = NSLock()
  // Guarded by `lock`.
  private var buckets: [String: Bucket] = [:]
  private var timerArmed: Set<String> = []

  /// Waits until a request to `provider` may start under `limits`.
  func acquire(_ provider: String, limits: ProviderLimits) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      lock.lock()
      let bucket = bucketLocked(provider, limits)
      bucket.waiting.append(continuation)
      let ready = drainLocked(provider, bucket)
      lock.unlock()
      ready.forEach { $0.resume() }
    }
  }

  /// Ends a request started with `acquire`.
  func release(_ provider: String) {
    lock.lock()
    guard let bucket = buckets[provider] else {
      lock.unlock()
      return
    }
    bucket.inFlight -= 1
    let ready = drainLocked(provider, bucket)
    lock.unlock()
    ready.forEach { $0.resume() }
  }

  private func bucketLocked(_ provider: String, _ limits: ProviderLimits) -> Bucket {
    if let bucket = buckets[provider], bucket.limits == limits { return bucket }
    let bucket = Bucket(limits: limits, now: Timestamp.now())
    if let old = buckets[provider] {
      // Limits changed (templates reloaded): carry the state over.
      bucket.inFlight = old.inFlight
      bucket.waiting = old.waiting
    }
    buckets[provider] = bucket
    return bucket
  }

  /// Admits waiting requests while slots and tokens allow; arms a timer when only tokens lack.
  private func drainLocked(_ provider: String, _ bucket: Bucket) -> [CheckedContinuation<
    Void, Never
  >] {
    var ready: [CheckedContinuation<Void, Never>] = []
    bucket.refill(now: Timestamp.now())
    while !bucket.waiting.isEmpty, bucket.inFlight < bucket.limits.concurrency,
      bucket.tokens >= 1
    {
      bucket.tokens -= 1
      bucket.inFlight += 1
      ready.append(bucket.waiting.removeFirst())
    }
    if !bucket.waiting.isEmpty, bucket.inFlight < bucket.limits.concurrency,
      !timerArmed.contains(provider)
    {
      timerArmed.insert(provider)
      let wait = (1 - bucket.tokens) / bucket.limits.requestsPerSecond
      DispatchQueue.global().asyncAfter(deadline: .now() + max(0.001, wait)) { [self] in
        lock.lock()
        timerArmed.remove(provider)
        let admitted = buckets[provider].map { drainLocked(provider, $0) } ?? []
        lock.unlock()
        admitted.forEach { $0.resume() }
      }
    }
    return ready
  }
}
