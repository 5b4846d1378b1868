import CCurl
import Foundation

/// An HTTP client that drives every transfer from one thread through libcurl's multi interface,
/// so thousands of requests in flight need no thread each and connections are reused.
public final class CurlClient: @unchecked Sendable {
  private let policy: AddressPolicy
  private let userAgent: String
  private let lock = NSLock()
  // Guarded by `lock`: transfers handed over by `send` and not yet added to the multi handle.
  private var submitted: [Transfer] = []
  private var running = true
  private let multi: UnsafeMutableRawPointer
  private var thread: Thread?
  private let stopped = DispatchSemaphore(value: 0)

  private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

  public init(allowPrivateNetwork: Bool, userAgent: String = "asyncqueue") {
    _ = Self.globalInit
    policy = AddressPolicy(allowPrivateNetwork: allowPrivateNetwork)
    self.userAgent = userAgent
    guard let handle = curl_multi_init() else {
      fatalError("curl_multi_init failed: out of memory")
    }
    multi = handle
    aq_curl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64)
    aq_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, 512)
    // The thread keeps the client alive until `shutdown()` ends the loop, so the multi handle
    // is never cleaned up while the loop still uses it.
    let thread = Thread { self.runLoop() }
    thread.name = "asyncqueue-http-client"
    self.thread = thread
    thread.start()
  }

  deinit {
    curl_multi_cleanup(multi)
  }

  /// Sends a request and returns its response, or the reason there is none.
  public func send(_ request: ClientRequest) async -> Result<ClientResponse, ClientError> {
    await withCheckedContinuation { continuation in
      let transfer = Transfer(request: request, policy: policy, continuation: continuation)
      lock.lock()
      let accepting = running
      if accepting { submitted.append(transfer) }
      lock.unlock()
      if accepting {
        curl_multi_wakeup(multi)
      } else {
        continuation.resume(returning: .failure(ClientError(.network, "HTTP client is stopped")))
      }
    }
  }

  /// Stops the event loop; transfers still in flight end with an error.
  public func shutdown() {
    lock.lock()
    let wasRunning = running
    running = false
    lock.unlock()
    guard wasRunning else { return }
    curl_multi_wakeup(multi)
    stopped.wait()
  }

  // MARK: Event loop

  private func runLoop() {
    var active: [UnsafeMutableRawPointer: Transfer] = [:]
    while true {
      lock.lock()
      let incoming = submitted
      submitted.removeAll(keepingCapacity: true)
      let keepRunning = running
      lock.unlock()
      guard keepRunning else { break }

      for transfer in incoming {
        if let easy = transfer.makeHandle(userAgent: userAgent) {
          active[easy] = transfer
          curl_multi_add_handle(multi, easy)
        }
      }

      var stillRunning: Int32 = 0
      curl_multi_perform(multi, &stillRunning)
      var remaining: Int32 = 0
      while let message = curl_multi_info_read(multi, &remaining) {
        guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else {
          continue
        }
        let key = easy
        let code = aq_curl_message_result(message)
        curl_multi_remove_handle(multi, easy)
        if let transfer = active.removeValue(forKey: key) {
          transfer.finish(code: code, handle: easy)
        }
        curl_easy_cleanup(easy)
      }
      curl_multi_poll(multi, nil, 0, 1000, nil)
    }

    for (easy, transfer) in active {
      curl_multi_remove_handle(multi, easy)
      transfer.fail(ClientError(.network, "HTTP client stopped before the response arrived"))
      curl_easy_cleanup(easy)
    }
    lock.lock()
    let leftover = submitted
    submitted.removeAll()
    lock.unlock()
    for transfer in leftover {
      transfer.fail(ClientError(.network, "HTTP client stopped before the request was sent"))
    }
    stopped.signal()
  }
}
