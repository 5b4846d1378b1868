-- fal.ai queue API (queue.fal.run): submit, then poll the returned status_url, fetch the
-- result from response_url, and cancel with PUT cancel_url. The three URLs are used verbatim
-- because fal drops a model's subpath from them.
-- Hooks: on_submit, poll, on_poll, on_result, cancel, on_cancel.

local pollconfig = require("lib.pollconfig")

local is_present = pollconfig.is_present

-- Returns fal's reason for a failed request: `detail` (a string or an array of
-- {loc, msg, type}) with `error_type` (body or X-Fal-Error-Type header) appended.
local function fal_reason(response, body)
  local reason = pollconfig.describe_error(body)
  if reason == nil and not pollconfig.is_html(response) then
    reason = pollconfig.describe_error(response.body)
  end
  local error_type = type(body) == "table" and body.error_type or nil
  if type(error_type) ~= "string" then error_type = aq.header(response.headers, "x-fal-error-type") end
  local text = "HTTP " .. tostring(response.statusCode)
  if type(error_type) == "string" and error_type ~= "" then text = text .. ", " .. error_type end
  if reason == nil then return text end
  return reason .. " (" .. text .. ")"
end

-- A 5xx from fal's ingress (nginx) rather than from fal itself: no x-fal-request-id header,
-- and an HTML page or a body naming nginx. Those are transient.
local function is_ingress_error(response)
  if response.statusCode < 500 then return false end
  if aq.header(response.headers, "x-fal-request-id") ~= nil then return false end
  if pollconfig.is_html(response) then return true end
  local body = response.body
  return type(body) == "string" and string.find(string.lower(body), "nginx", 1, true) ~= nil
end

local function on_submit(ctx)
  local response = ctx.response
  if not pollconfig.is_success(response.statusCode) then
    local body = pollconfig.decode_body(response)
    local text = "submit failed: " .. fal_reason(response, body)
    if pollconfig.is_transient_status(response.statusCode) then
      return pollconfig.retry(text, response)
    end
    return { state = "failed", error = text }
  end
  local body = pollconfig.decode_body(response)
  if type(body) ~= "table" then
    return pollconfig.retry("submit response is not JSON", response)
  end
  if type(body.status_url) ~= "string" or type(body.response_url) ~= "string" then
    return { state = "failed", error = "submit response has no status_url or response_url" }
  end
  return {
    state = "polling",
    job = {
      requestId = body.request_id,
      statusUrl = body.status_url,
      responseUrl = body.response_url,
      cancelUrl = body.cancel_url,
    },
  }
end

local function poll(ctx)
  return pollconfig.get(ctx.job.statusUrl, ctx.task)
end

-- The status endpoint returns 202 while IN_QUEUE or IN_PROGRESS and 200 once COMPLETED.
local function on_poll(ctx)
  local response = ctx.response
  if not pollconfig.is_success(response.statusCode) then
    return pollconfig.poll_failure_verdict(response, "status poll")
  end
  local body, message = pollconfig.decode_body(response)
  if type(body) ~= "table" then
    return pollconfig.retry("status response is not JSON: " .. tostring(message), response)
  end
  local status = pollconfig.as_text(body.status)
  if status == "COMPLETED" then
    -- A failed request is COMPLETED too, with `error` set here; the result fetch returns the
    -- authoritative failure, so fetch it either way.
    if is_present(body.error) then
      log.info("fal reports COMPLETED with error: " .. tostring(pollconfig.describe_error(body)))
    end
    return { state = "fetch", request = pollconfig.get(ctx.job.responseUrl, ctx.task) }
  end
  local verdict = { state = "running", status = status }
  if status == "IN_QUEUE" then
    if math.type(body.queue_position) ~= nil then verdict.queuePosition = body.queue_position end
  elseif status ~= "IN_PROGRESS" then
    verdict.unknown = true
  end
  return verdict
end

local function on_result(ctx)
  local response = ctx.response
  local body = pollconfig.decode_body(response)
  if pollconfig.is_success(response.statusCode) then
    if type(body) ~= "table" then
      return pollconfig.retry("result response is not JSON", response)
    end
    return { state = "completed", result = body }
  end
  local code = response.statusCode
  if code == 408 or code == 429 or is_ingress_error(response) then
    return pollconfig.retry("result fetch failed: " .. fal_reason(response, body), response)
  end
  return { state = "failed", error = fal_reason(response, body) }
end

local function cancel(ctx)
  if type(ctx.job) ~= "table" or type(ctx.job.cancelUrl) ~= "string" then return nil end
  local request = pollconfig.get(ctx.job.cancelUrl, ctx.task)
  request.method = "PUT"
  return request
end

-- OK means fal removed the request from its queue. CANCELLATION_REQUESTED keeps polling
-- until the request ends, because a running app may finish anyway. ALREADY_COMPLETED (possibly
-- with a 4xx) also keeps polling, so the next poll picks up the finished result.
local function on_cancel(ctx)
  local response = ctx.response
  local body = pollconfig.decode_body(response)
  local status = type(body) == "table" and pollconfig.as_text(body.status) or nil
  if status == "OK" then return { state = "cancelled" } end
  if status == "CANCELLATION_REQUESTED" or status == "ALREADY_COMPLETED" then
    return { state = "running", status = status }
  end
  if status == "NOT_FOUND" then
    return { state = "failed", error = "fal has no request to cancel (NOT_FOUND)" }
  end
  if pollconfig.is_transient_status(response.statusCode) then
    return { state = "running", error = "cancel request failed: " .. fal_reason(response, body) }
  end
  return { state = "failed", error = "cancel request failed: " .. fal_reason(response, body) }
end

return {
  id = "fal",
  name = "fal.ai",
  description = "fal.ai queue: polls the request's status_url and fetches response_url.",
  pollConfig = {
    urlTemplate = "{startResult.body.status_url}",
    interval = 3,
    statusPath = "status",
    doneValues = { "COMPLETED" },
    failValues = json.empty_array,
    resultPath = "",
    resultUrlTemplate = "{startResult.body.response_url}",
    errorPath = "error",
    forwardAuth = true,
    maxDuration = 600,
  },
  resubmit = false,
  -- fal queues jobs over an account's concurrency itself; these limits only pace our
  -- requests. Estimates, not fal figures.
  limits = { concurrency = 20, requestsPerSecond = 10 },
  on_submit = on_submit,
  poll = poll,
  on_poll = on_poll,
  on_result = on_result,
  cancel = cancel,
  on_cancel = on_cancel,
}
