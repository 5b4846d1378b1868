-- Replicate predictions API: submit creates a prediction (201, or 200 with Prefer: wait),
-- polls its urls.get and cancels with POST urls.cancel. The URLs come from the prediction; when
-- they are missing they are built from the task's targetUrl.
-- Hooks: on_submit, poll, on_poll, cancel, on_cancel.

local pollconfig = require("lib.pollconfig")

local is_present = pollconfig.is_present

-- Returns the fraction from the last tqdm-style "NN%|" in the logs, or nil.
local function progress_from_logs(logs)
  if type(logs) ~= "string" then return nil end
  local last = nil
  for percent in string.gmatch(logs, "(%d+)%%%s*|") do last = tonumber(percent) end
  if last == nil then return nil end
  return math.min(last, 100) / 100
end

-- Returns the verdict for a prediction object, or nil when it is still running.
local function finished_verdict(prediction)
  local status = pollconfig.as_text(prediction.status)
  if status == "succeeded" then
    local output = prediction.output
    if output == nil then output = json.null end
    return { state = "completed", result = output }
  end
  if status == "failed" then
    local reason = is_present(prediction.error) and pollconfig.as_text(prediction.error)
      or pollconfig.describe_error(prediction.error)
    return { state = "failed", error = reason or "prediction failed without a reason" }
  end
  if status == "canceled" then
    return { state = "failed", error = "prediction was canceled at the provider" }
  end
  if status == "aborted" then
    return {
      state = "failed",
      error = "prediction was aborted: its deadline passed before it started",
    }
  end
  return nil
end

local function running_verdict(prediction)
  local status = pollconfig.as_text(prediction.status)
  local verdict = { state = "running", status = status, progress = progress_from_logs(prediction.logs) }
  if status ~= "starting" and status ~= "processing" then verdict.unknown = true end
  return verdict
end

local function prediction_url(ctx, id)
  local base = aq.url.prefix(ctx.task.targetUrl, "/v1/") or aq.url.origin(ctx.task.targetUrl)
  return base .. "/v1/predictions/" .. aq.url.encode(id)
end

local function on_submit(ctx)
  local response = ctx.response
  if not pollconfig.is_success(response.statusCode) then
    return pollconfig.non_success_verdict(response, "submit")
  end
  local prediction = pollconfig.decode_body(response)
  if type(prediction) ~= "table" then
    return pollconfig.retry("submit response is not JSON", response)
  end
  local finished = finished_verdict(prediction)
  if finished ~= nil then return finished end
  local urls = type(prediction.urls) == "table" and prediction.urls or {}
  local get_url = type(urls.get) == "string" and urls.get or nil
  local cancel_url = type(urls.cancel) == "string" and urls.cancel or nil
  if get_url == nil then
    if pollconfig.as_text(prediction.id) == nil then
      return { state = "failed", error = "submit response has neither urls.get nor an id" }
    end
    get_url = prediction_url(ctx, pollconfig.as_text(prediction.id))
    cancel_url = cancel_url or (get_url .. "/cancel")
  end
  return {
    state = "polling",
    job = { id = prediction.id, getUrl = get_url, cancelUrl = cancel_url },
  }
end

local function poll(ctx)
  return pollconfig.get(ctx.job.getUrl, ctx.task)
end

local function on_poll(ctx)
  local prediction, failure = pollconfig.poll_body(ctx.response)
  if prediction == nil then return failure end
  return finished_verdict(prediction) or running_verdict(prediction)
end

local function cancel(ctx)
  if type(ctx.job) ~= "table" or type(ctx.job.cancelUrl) ~= "string" then return nil end
  local request = pollconfig.get(ctx.job.cancelUrl, ctx.task)
  request.method = "POST"
  return request
end

-- The cancel endpoint returns the prediction as it now is, which may already be finished:
-- a prediction that succeeded first keeps its output.
local function on_cancel(ctx)
  local response = ctx.response
  if not pollconfig.is_success(response.statusCode) then
    local text = "cancel request failed with " .. pollconfig.http_failure(
      response, pollconfig.decode_body(response))
    if pollconfig.is_transient_status(response.statusCode) then
      return { state = "running", error = text }
    end
    return { state = "failed", error = text }
  end
  local prediction = pollconfig.decode_body(response)
  if type(prediction) ~= "table" then return { state = "running" } end
  local status = pollconfig.as_text(prediction.status)
  if status == "canceled" then return { state = "cancelled" } end
  return finished_verdict(prediction) or { state = "running", status = status }
end

return {
  id = "replicate",
  name = "Replicate",
  description = "Replicate predictions: polls urls.get until the prediction finishes.",
  pollConfig = {
    urlTemplate = "{startResult.body.urls.get}",
    interval = 5,
    statusPath = "status",
    doneValues = { "succeeded" },
    failValues = { "failed", "canceled", "aborted" },
    resultPath = "output",
    errorPath = "error",
    forwardAuth = true,
    maxDuration = 600,
  },
  resubmit = false,
  -- Replicate allows 600 creates and 3000 other requests per minute (its rate-limits page);
  -- 40 per second stays under the 50 per second that 3000 a minute allows.
  limits = { concurrency = 50, requestsPerSecond = 40 },
  on_submit = on_submit,
  poll = poll,
  on_poll = on_poll,
  cancel = cancel,
  on_cancel = on_cancel,
}
