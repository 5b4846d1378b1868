-- Stability AI image-to-video API (api.stability.ai/v2beta/image-to-video): submit returns
-- 200 {id}; the result is polled at <targetUrl>/result/{id}. The HTTP status carries the job
-- state (202 running, 200 done, 404 unknown or expired), so it is read before the body, whose
-- `id` in an error is an error id, not a generation id.
-- Hooks: on_submit, poll, on_poll. No cancel: Stability has no cancel endpoint.

local pollconfig = require("lib.pollconfig")

local function wants_json(task)
  local accept = aq.header(task and task.headers, "accept")
  return type(accept) == "string" and string.find(string.lower(accept), "application/json", 1, true)
    ~= nil
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
  if id == nil then return { state = "failed", error = "submit response has no generation id" } end
  local base = string.gsub(ctx.task.targetUrl, "[?#].*$", "")
  base = string.gsub(base, "/+$", "")
  return { state = "polling", job = { id = id, resultUrl = base .. "/result/" .. aq.url.encode(id) } }
end

local function poll(ctx)
  local request = pollconfig.get(ctx.job.resultUrl, ctx.task)
  local accept = wants_json(ctx.task) and "application/json" or "video/*"
  request.headers = pollconfig.with_header(request.headers, "Accept", accept)
  return request
end

local function completed_json(response)
  local body, message = pollconfig.decode_body(response)
  if type(body) ~= "table" then
    return pollconfig.retry("result response is not JSON: " .. tostring(message), response)
  end
  if body.finish_reason == "CONTENT_FILTERED" then
    return { state = "failed", error = "content filtered" }
  end
  return { state = "completed", result = body }
end

local function on_poll(ctx)
  local response = ctx.response
  local code = response.statusCode
  if code == 202 then
    local body = pollconfig.decode_body(response)
    local status = type(body) == "table" and pollconfig.as_text(body.status) or "in-progress"
    return { state = "running", status = status }
  end
  if code == 404 then
    return { state = "failed", error = "generation not found or expired (results are kept 24 h)" }
  end
  if code ~= 200 then return pollconfig.poll_failure_verdict(response, "result poll") end

  local content_type = pollconfig.content_type(response) or ""
  if string.find(content_type, "application/json", 1, true) then return completed_json(response) end
  if string.sub(content_type, 1, 6) ~= "video/" then
    return pollconfig.retry("result response has unexpected content-type '" .. content_type .. "'",
      response)
  end
  local finish_reason = aq.header(response.headers, "finish-reason")
  if finish_reason == "CONTENT_FILTERED" then
    return { state = "failed", error = "content filtered" }
  end
  local seed = aq.header(response.headers, "seed")
  return {
    state = "completed",
    file = { contentType = content_type, name = "output.mp4" },
    result = { finishReason = finish_reason, seed = math.tointeger(tonumber(seed)) or seed },
  }
end

return {
  id = "stability-video",
  name = "Stability AI image-to-video",
  description = "Stability image-to-video: polls <targetUrl>/result/{id}; 202 running, 200 done.",
  pollConfig = {
    urlTemplate = "{task.targetUrl}/result/{startResult.body.id}",
    interval = 10,
    statusPath = "status",
    doneValues = json.empty_array,
    failValues = json.empty_array,
    resultPath = "",
    errorPath = "errors",
    forwardAuth = true,
    maxDuration = 600,
  },
  resubmit = false,
  -- Stability allows 150 requests per 10 s per account; 12 per second leaves headroom.
  limits = { concurrency = 10, requestsPerSecond = 12 },
  on_submit = on_submit,
  poll = poll,
  on_poll = on_poll,
}
