import Foundation

/// A set of Prometheus metrics: counters, gauges and histograms, each a family of series
/// distinguished by label values. Thread-safe; `render()` writes the text exposition format
/// (version 0.0.4).
public final class MetricsRegistry: Sendable {
  private let families = LockedValue<[MetricFamily]>([])

  public init() {}

  /// Registers a counter family; `labels` are the label names every series carries.
  public func counter(_ name: String, help: String, labels: [String] = []) -> CounterFamily {
    let family = MetricFamily(name: name, help: help, kind: .counter, labels: labels)
    register(family)
    return CounterFamily(family: family)
  }

  public func gauge(_ name: String, help: String, labels: [String] = []) -> GaugeFamily {
    let family = MetricFamily(name: name, help: help, kind: .gauge, labels: labels)
    register(family)
    return GaugeFamily(family: family)
  }

  /// Registers a histogram family with cumulative buckets at `buckets` (upper bounds, in the
  /// metric's unit; `+Inf` is added).
  public func histogram(
    _ name: String, help: String, labels: [String] = [],
    buckets: [Double] = MetricsRegistry.secondsBuckets
  ) -> HistogramFamily {
    let family = MetricFamily(
      name: name, help: help, kind: .histogram(buckets.sorted()), labels: labels)
    register(family)
    return HistogramFamily(family: family)
  }

  /// Upper bounds from 5 ms to 60 s, for latencies in seconds.
  public static let secondsBuckets: [Double] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
  ]

  private func register(_ family: MetricFamily) {
    families.withLock { list in
      precondition(
        !list.contains { $0.name == family.name }, "metric \(family.name) registered twice")
      list.append(family)
    }
  }

  /// Renders the exposition text of every family, in registration order.
  public func render() -> String {
    let list = families.withLock { $0 }
    var text = ""
    for family in list { family.render(into: &text) }
    return text
  }
}

/// A family of monotonically increasing counters.
public struct CounterFamily: Sendable {
  fileprivate let family: MetricFamily

  public func increment(_ labels: [String] = [], by amount: Double = 1) {
    precondition(amount >= 0, "a counter only goes up")
    family.update(labels) { $0.value += amount }
  }

  public func value(_ labels: [String] = []) -> Double { family.series(labels)?.value ?? 0 }
}

/// A family of values that go up and down.
public struct GaugeFamily: Sendable {
  fileprivate let family: MetricFamily

  public func set(_ labels: [String] = [], _ value: Double) {
    family.update(labels) { $0.value = value }
  }

  public func add(_ labels: [String] = [], _ amount: Double) {
    family.update(labels) { $0.value += amount }
  }

  /// Replaces every series at once, so series absent from `values` disappear.
  public func replaceAll(_ values: [([String], Double)]) {
    family.replaceAll(values)
  }

  public func value(_ labels: [String] = []) -> Double { family.series(labels)?.value ?? 0 }
}

/// A family of histograms: observation counts per bucket, their sum and total count.
public struct HistogramFamily: Sendable {
  fileprivate let family: MetricFamily

  public func observe(_ labels: [String] = [], _ value: Double) {
    guard case .histogram(let bounds) = family.kind else { return }
    family.update(labels) { series in
      if series.buckets.isEmpty { series.buckets = Array(repeating: 0, count: bounds.count) }
      for (index, bound) in bounds.enumerated() where value <= bound {
        series.buckets[index] += 1
      }
      series.sum += value
      series.count += 1
    }
  }

  public func count(_ labels: [String] = []) -> Int { family.series(labels)?.count ?? 0 }
}

private struct Series: Sendable {
  var value: Double = 0
  /// Cumulative counts per bucket bound, for histograms.
  var buckets: [Int] = []
  var sum: Double = 0
  var count = 0
}

private final class MetricFamily: Sendable {
  enum Kind: Sendable {
    case counter, gauge
    case histogram([Double])
  }

  let name: String
  let help: String
  let kind: Kind
  let labels: [String]
  private let storage = LockedValue<[[String]: Series]>([:])

  init(name: String, help: String, kind: Kind, labels: [String]) {
    self.name = name
    self.help = help
    self.kind = kind
    self.labels = labels
  }

  func update(_ values: [String], _ change: (inout Series) -> Void) {
    precondition(
      values.count == labels.count, "metric \(name) takes labels \(labels), got \(values)")
    storage.withLock { change(&$0[values, default: Series()]) }
  }

  func replaceAll(_ values: [([String], Double)]) {
    var fresh: [[String]: Series] = [:]
    for (labelValues, value) in values { fresh[labelValues, default: Series()].value += value }
    storage.withLock { $0 = fresh }
  }

  func series(_ values: [String]) -> Series? { storage.withLock { $0[values] } }

  func render(into text: inout String) {
    let typeName =
      switch kind {
      case .counter: "counter"
      case .gauge: "gauge"
      case .histogram: "histogram"
      }
    text += "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(typeName)\n"
    let snapshot = storage.withLock { $0 }.sorted { $0.key.lexicographicallyPrecedes($1.key) }
    for (values, series) in snapshot {
      let pairs = zip(labels, values).map { ($0, $1) }
      switch kind {
      case .counter, .gauge:
        text += "\(name)\(Self.labelText(pairs)) \(Self.number(series.value))\n"
      case .histogram(let bounds):
        for (index, bound) in bounds.enumerated() {
          let count = series.buckets.isEmpty ? 0 : series.buckets[index]
          text += "\(name)_bucket\(Self.labelText(pairs + [("le", Self.number(bound))])) \(count)\n"
        }
        text += "\(name)_bucket\(Self.labelText(pairs + [("le", "+Inf")])) \(series.count)\n"
        text += "\(name)_sum\(Self.labelText(pairs)) \(Self.number(series.sum))\n"
        text += "\(name)_count\(Self.labelText(pairs)) \(series.count)\n"
      }
    }
  }

  private static func labelText(_ pairs: [(String, String)]) -> String {
    guard !pairs.isEmpty else { return "" }
    let inner = pairs.map { "\($0.0)=\"\(escapeLabel($0.1))\"" }.joined(separator: ",")
    return "{\(inner)}"
  }

  private static func escapeLabel(_ value: String) -> String {
    value.replacingOccurrences(of: "\\", with: "\\\\")
      .replacingOccurrences(of: "\"", with: "\\\"")
      .replacingOccurrences(of: "\n", with: "\\n")
  }

  private static func escapeHelp(_ value: String) -> String {
    value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
  }

  private static func number(_ value: Double) -> String {
    if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
    return String(value)
  }
}
