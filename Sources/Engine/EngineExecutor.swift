import Foundation

/// A few dedicated threads that run the engine's Swift tasks.
///
/// Steps would otherwise run on Swift's global cooperative pool, which has one thread per core
/// (two on a small server). Anything else in the process that blocks one of those threads (a
/// synchronous wait in an HTTP handler, a test waiting on a semaphore) would then stall every
/// task's polling. With its own threads, the engine keeps its schedule whatever else the
/// process does. Hook calls and SQLite writes block only briefly, so a handful of threads
/// suffices.
public final class EngineExecutor: TaskExecutor, @unchecked Sendable {
  private let condition = NSCondition()
  // Guarded by `condition`.
  private var jobs: [UnownedJob] = []
  private var head = 0

  init(threads: Int, name: String) {
    for index in 0..<max(1, threads) {
      let thread = Thread { [unowned self] in self.work() }
      thread.name = "\(name)-\(index)"
      thread.start()
    }
  }

  public func enqueue(_ job: UnownedJob) {
    condition.lock()
    jobs.append(job)
    condition.signal()
    condition.unlock()
  }

  private func work() {
    while true {
      condition.lock()
      while head == jobs.count { condition.wait() }
      let job = jobs[head]
      head += 1
      if head > 1024 && head * 2 > jobs.count {
        jobs.removeFirst(head)
        head = 0
      }
      condition.unlock()
      job.runSynchronously(on: asUnownedTaskExecutor())
    }
  }
}
