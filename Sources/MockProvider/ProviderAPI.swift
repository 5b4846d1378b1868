import Foundation
import HTTPServer
import Support

/// One imitated provider: the path prefix it lives under and how it responds.
protocol ProviderAPI: Sendable {
  /// The provider's name as tasks spell it, for example "runwayml".
  var name: String { get }
  /// The first path segment on the mock server, for example "runway".
  var prefix: String { get }
  /// Outcomes this provider can report. Others are rejected at submit.
  var supportedOutcomes: Set<Scenario.Outcome> { get }

  /// Handles a request whose path starts with the prefix. `segments` excludes the prefix.
  func handle(_ request: HTTPRequest, segments: [String], mock: MockContext) -> HTTPResponse
  /// Returns the provider's own error body for a status code and message.
  func error(_ status: Int, _ message: String) -> HTTPResponse
}

/// What provider handlers share: the job store and the server's base URL.
struct MockContext: Sendable {
  let store: JobStore
  let baseURL: String

  /// Returns the scenario of a submit request, or the provider's error response: 400 for an
  /// invalid header or unsupported outcome, or the scenario's submit fault.
  func submitScenario(_ request: HTTPRequest, api: any ProviderAPI) -> Result<
    Scenario, ResponseError
  > {
    let header = request.header("x-mock-scenario")
    let scenario: Scenario
    switch Scenario.parse(header) {
    case .success(let parsed): scenario = parsed
    case .failure(let error): return .failure(ResponseError(api.error(400, error.message)))
    }

    guard api.supportedOutcomes.contains(scenario.outcome) else {
      let supported = api.supportedOutcomes.map(\.rawValue).sorted().joined(separator: "|")
      let message =
        "invalid X-Mock-Scenario value outcome=\"\(scenario.outcome.rawValue)\": "
        + "\(api.name) supports \(supported)"
      return .failure(ResponseError(api.error(400, message)))
    }

    if let status = store.takeSubmitFault(
      provider: api.name, header: header ?? "", scenario: scenario)
    {
      var response = api.error(
        status, status == 429 ? "rate limit exceeded" : "internal server error")
      if status == 429 { response.headers.append(("Retry-After", "1")) }
      return .failure(ResponseError(response))
    }
    return .success(scenario)
  }

  /// Handles a status poll: serves the scenario's fault while any remain, else renders the
  /// job's next phase and advances it. Returns nil when no such job exists.
  func poll(
    _ id: String, api: any ProviderAPI, render: (MockJob, JobPhase) -> HTTPResponse
  ) -> HTTPResponse? {
    enum Step {
      case fault(Scenario.Fault, MockJob)
      case answer(MockJob, JobPhase, delayMilliseconds: Int)
    }
    let step: Step? = store.update(id, provider: api.name) { job in
      var delay = 0
      if let fault = job.scenario.fault, job.faultsServed < job.scenario.faults {
        job.faultsServed += 1
        guard case .slow(let milliseconds) = fault else { return Step.fault(fault, job) }
        delay = milliseconds
      }
      let phase = job.nextPhase
      job.statusPolls += 1
      return Step.answer(job, phase, delayMilliseconds: delay)
    }

    switch step {
    case nil:
      return nil
    case .answer(let job, let phase, let delay):
      if delay > 0 { usleep(useconds_t(delay) * 1_000) }
      return render(job, phase)
    case .fault(let fault, let job):
      return faultResponse(fault, job: job, api: api, render: render)
    }
  }

  private func faultResponse(
    _ fault: Scenario.Fault, job: MockJob, api: any ProviderAPI,
    render: (MockJob, JobPhase) -> HTTPResponse
  ) -> HTTPResponse {
    switch fault {
    case .tooManyRequests:
      var response = api.error(429, "rate limit exceeded, retry in 1 second")
      response.headers.append(("Retry-After", "1"))
      return response
    case .serverError:
      return api.error(500, "internal server error")
    case .html:
      let page =
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        + "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
        + "</body>\r\n</html>\r\n"
      return HTTPResponse(
        status: 502, headers: [("Content-Type", "text/html")], body: Array(page.utf8))
    case .truncated:
      var response = render(job, job.nextPhase)
      response.status = 200
      response.body = Array(response.body.prefix(max(1, response.body.count / 2)))
      return response
    case .drop:
      return .droppedConnection
    case .slow:
      return render(job, job.nextPhase)
    }
  }

  /// Returns an absolute URL on the mock server for a path that starts with "/".
  func url(_ path: String) -> String { baseURL + path }
}

/// An error that carries the response to send.
struct ResponseError: Error, Sendable {
  let response: HTTPResponse

  init(_ response: HTTPResponse) { self.response = response }
}

extension HTTPResponse {
  static func json(_ status: Int, _ value: JSONValue, headers: [(String, String)] = [])
    -> HTTPResponse
  {
    .json(status, value.serialized(), headers: headers)
  }
}
