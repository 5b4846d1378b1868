import Foundation
import Support

/// A dedicated connection that `LISTEN`s on one channel and calls a handler for each
/// notification, on its own thread. After losing the connection it reconnects with backoff
/// and calls the handler with `.workDue`, because notices may have been missed meanwhile.
final class PostgresListener: @unchecked Sendable {
  private let target: PostgresTarget
  private let channel: String
  private let handler: @Sendable (StoreNotice) -> Void
  private let logger: Logger?
  /// Written by `stop()` to wake the thread from `poll(2)`.
  private let stopPipe: (read: Int32, write: Int32)
  // Guards `stopRequested` and `thread`.
  private let lock = NSLock()
  private var stopRequested = false
  private var thread: Thread?
  private let finished = DispatchSemaphore(value: 0)
  /// The connection, used only by the listening thread once it started.
  private var connection: PostgresConnection?

  /// Connects and listens before returning, so notices sent after this call are received.
  init(
    target: PostgresTarget, channel: String, logger: Logger?,
    handler: @escaping @Sendable (StoreNotice) -> Void
  ) throws(StorageError) {
    self.target = target
    self.channel = channel
    self.logger = logger
    self.handler = handler
    var descriptors: [Int32] = [0, 0]
    guard pipe(&descriptors) == 0 else {
      throw StorageError("cannot create a pipe for the PostgreSQL listener: errno \(errno)")
    }
    stopPipe = (descriptors[0], descriptors[1])
    do {
      connection = try Self.listen(target: target, channel: channel)
    } catch {
      close(descriptors[0])
      close(descriptors[1])
      throw error
    }
  }

  deinit {
    close(stopPipe.read)
    close(stopPipe.write)
  }

  func start() {
    let thread = Thread { [self] in
      run()
      finished.signal()
    }
    thread.name = "asyncqueue-postgres-listener"
    lock.withLock { self.thread = thread }
    thread.start()
  }

  /// Ends the thread and closes the connection before returning, unless called from the
  /// handler, which runs on that thread: then the thread ends after the handler returns.
  func stop() {
    let running = lock.withLock { () -> Thread? in
      stopRequested = true
      return thread
    }
    var byte: UInt8 = 1
    _ = write(stopPipe.write, &byte, 1)
    guard let running, running != Thread.current else { return }
    finished.wait()
  }

  private var isStopping: Bool { lock.withLock { stopRequested } }

  private static func listen(target: PostgresTarget, channel: String) throws(StorageError)
    -> PostgresConnection
  {
    let connection = try PostgresConnection(target: target)
    let quoted = "\"" + channel.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    try connection.execute("LISTEN \(quoted)")
    return connection
  }

  private func run() {
    var backoff = 0.1
    listening: while !isStopping {
      guard let connection else {
        if waitForStop(seconds: backoff) { break listening }
        do {
          self.connection = try Self.listen(target: target, channel: channel)
          logger?.info("PostgreSQL listener reconnected", [("database", target.maskedURL)])
          backoff = 0.1
          handler(.workDue)
        } catch {
          logger?.warn(
            "PostgreSQL listener cannot reconnect; retrying",
            [("error", error.message), ("retry_seconds", String(backoff))])
          backoff = min(backoff * 2, 5)
        }
        continue
      }
      deliver(connection.notifications())
      switch waitForInput(connection) {
      case .stop: break listening
      case .input:
        if connection.consumeInput() { continue }
        lose("the connection was closed")
      case .idle:
        // A quiet connection may be dead without the socket knowing; a query finds out.
        do throws(StorageError) {
          try connection.execute("SELECT 1")
        } catch {
          lose(error.message)
        }
      }
    }
    connection = nil
  }

  private func lose(_ reason: String) {
    logger?.warn(
      "PostgreSQL listener lost its connection; reconnecting",
      [("error", reason), ("database", target.maskedURL)])
    connection = nil
  }

  private func deliver(_ notifications: [(channel: String, payload: String)]) {
    for notification in notifications where notification.channel == channel {
      if notification.payload.hasPrefix(PostgresStore.statusPayloadPrefix) {
        let taskId = notification.payload.dropFirst(PostgresStore.statusPayloadPrefix.count)
        handler(.statusChanged(taskId: String(taskId)))
      } else {
        handler(.workDue)
      }
    }
  }

  private enum Wakeup { case stop, input, idle }

  /// Seconds without input after which the listener checks its connection.
  private static let idleCheckSeconds: Int32 = 30

  private func waitForInput(_ connection: PostgresConnection) -> Wakeup {
    var descriptors = [
      pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0),
      pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0),
    ]
    let ready = poll(&descriptors, 2, Self.idleCheckSeconds * 1000)
    if descriptors[0].revents != 0 || isStopping { return .stop }
    if ready > 0 { return .input }
    return .idle
  }

  /// Sleeps up to `seconds`; returns true when `stop()` was called meanwhile.
  private func waitForStop(seconds: Double) -> Bool {
    var descriptor = pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0)
    _ = poll(&descriptor, 1, Int32(seconds * 1000))
    return descriptor.revents != 0 || isStopping
  }
}

extension PostgresStore {
  /// Starts listening for notices of this schema; a listener started before is stopped first.
  public func startListening(_ handler: @escaping @Sendable (StoreNotice) -> Void)
    throws(StorageError)
  {
    stopListening()
    let started = try PostgresListener(
      target: pool.target, channel: channel, logger: logger, handler: handler)
    started.start()
    // A listener that another thread started meanwhile is replaced too.
    let previous = listenerLock.withLock { () -> PostgresListener? in
      defer { listener = started }
      return listener
    }
    previous?.stop()
  }

  /// Stops the listener and closes its connection before returning.
  public func stopListening() {
    let stopping = listenerLock.withLock { () -> PostgresListener? in
      defer { listener = nil }
      return listener
    }
    stopping?.stop()
  }
}
