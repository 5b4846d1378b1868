-- RunwayML API (api.dev.runwayml.com): submit returns {id}; the task is polled at
-- <API base>/v1/tasks/{id}, where the base is everything in targetUrl before "/v1/".
-- Authorization and X-Runway-Version go along on every request.
-- Hooks: on_submit, poll, on_poll, cancel, on_cancel.
--
-- Cancelling takes two requests, because DELETE on a finished task deletes its output:
-- `cancel` returns a GET of the task, and `on_cancel` reads it. A finished task yields its
-- verdict; a PENDING, THROTTLED or RUNNING task yields {state = "fetch", request = DELETE},
-- which the engine sends and then passes to on_cancel again. The DELETE returns 204.

local pollconfig = require("lib.pollconfig")

local running_statuses = { PENDING = true, THROTTLED = true, RUNNING = true }

local function task_url(ctx, id)
  local base = aq.url.prefix(ctx.task.targetUrl, "/v1/") or aq.url.origin(ctx.task.targetUrl)
  return base .. "/v1/tasks/" .. aq.url.encode(id)
end

local function failure_reason(body)
  local reason = pollconfig.as_text(body.failure) or "task failed without a reason"
  local code = pollconfig.as_text(body.failureCode)
  if code ~= nil and code ~= "" then reason = reason .. " (" .. code .. ")" end
  return reason
end

-- Returns the verdict for a finished task, or nil while it runs.
local function finished_verdict(body)
  local status = pollconfig.as_text(body.status)
  if status == "SUCCEEDED" then
    local output = body.output
    if output == nil then output = json.null end
    return { state = "completed", result = output }
  end
  if status == "FAILED" then return { state = "failed", error = failure_reason(body) } end
  if status == "CANCELLED" then return { state = "failed", error = "cancelled at the provider" } end
  return nil
end

local function on_submit(ctx)
  local response = ctx.response
  if not pollconfig.is_success(response.statusCode) then
    return pollconfig.non_success_verdict(response, "submit")
  end
  local body = pollconfig.decode_body(response)
  if type(body) ~= "table" then
    return pollconfig.retry("submit response is not JSON", response)
  end
  local id = pollconfig.as_text(body.id)
  if id == nil then return { state = "failed", error = "submit response has no task id" } end
  return { state = "polling", job = { id = id, taskUrl = task_url(ctx, id) } }
end

local function poll(ctx)
  return pollconfig.get(ctx.job.taskUrl, ctx.task)
end

local function on_poll(ctx)
  local body, failure = pollconfig.poll_body(ctx.response)
  if body == nil then return failure end
  local finished = finished_verdict(body)
  if finished ~= nil then return finished end
  local status = pollconfig.as_text(body.status)
  local verdict = { state = "running", status = status }
  if status == "RUNNING" and type(body.progress) == "number" then
    verdict.progress = math.max(0, math.min(1, body.progress))
  end
  if not running_statuses[status] then verdict.unknown = true end
  return verdict
end

local function cancel(ctx)
  if type(ctx.job) ~= "table" or type(ctx.job.taskUrl) ~= "string" then return nil end
  return pollconfig.get(ctx.job.taskUrl, ctx.task)
end

local function on_cancel(ctx)
  local response = ctx.response
  local code = response.statusCode
  local body = pollconfig.decode_body(response)
  -- The DELETE's response: 204 with no body (a 200 without a task object counts the same).
  if code == 204 or (pollconfig.is_success(code) and type(body) ~= "table") then
    return { state = "cancelled" }
  end
  if not pollconfig.is_success(code) then
    local text = "cancel failed with " .. pollconfig.http_failure(response, body)
    if pollconfig.is_transient_status(code) then return { state = "running", error = text } end
    return { state = "failed", error = text }
  end
  local finished = finished_verdict(body)
  if finished ~= nil then return finished end
  local status = pollconfig.as_text(body.status)
  if running_statuses[status] then
    local request = pollconfig.get(ctx.job.taskUrl, ctx.task)
    request.method = "DELETE"
    request.headers = pollconfig.with_header(request.headers, "Accept", "*/*")
    return { state = "fetch", request = request }
  end
  return { state = "running", status = status, unknown = true }
end

return {
  id = "runwayml",
  name = "RunwayML",
  description = "RunwayML tasks: polls /v1/tasks/{id} until SUCCEEDED, FAILED or CANCELLED.",
  pollConfig = {
    -- Relative to the API base in targetUrl; poll derives the full URL.
    urlTemplate = "/v1/tasks/{startResult.body.id}",
    interval = 5,
    statusPath = "status",
    doneValues = { "SUCCEEDED" },
    failValues = { "FAILED", "CANCELLED" },
    resultPath = "output",
    errorPath = "failure",
    forwardAuth = true,
    maxDuration = 600,
  },
  resubmit = false,
  -- Runway has no request-rate limit; an organisation over its concurrency gets THROTTLED
  -- tasks. These limits only pace our requests and are estimates.
  limits = { concurrency = 20, requestsPerSecond = 10 },
  on_submit = on_submit,
  poll = poll,
  on_poll = on_poll,
  cancel = cancel,
  on_cancel = on_cancel,
}
