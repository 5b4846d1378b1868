-- Module lib.pollconfig: the generic hooks driven by a pollConfig table (urlTemplate,
-- interval, statusPath, doneValues, failValues, resultPath, resultUrlTemplate, errorPath,
-- forwardAuth, maxDuration), plus the HTTP helpers the built-in provider scripts share.
--
-- A custom-pollConfig task runs `require("lib.pollconfig").template{}`. The hooks read
-- ctx.pollConfig when they run, so a built-in template can reuse them and replace single hooks.

local M = {}

-- Helpers -------------------------------------------------------------------------------

local function is_present(value)
  return value ~= nil and value ~= json.null
end

M.is_present = is_present

local function contains(list, value)
  if type(list) ~= "table" or value == nil then return false end
  for _, candidate in ipairs(list) do
    if candidate == value then return true end
  end
  return false
end

M.contains = contains

-- Returns a value as text for status comparisons and messages (numbers without ".0").
local function as_text(value)
  if type(value) == "string" then return value end
  if math.type(value) == "float" and value == math.floor(value) then
    return string.format("%d", value)
  end
  if type(value) == "number" or type(value) == "boolean" then return tostring(value) end
  return nil
end

M.as_text = as_text

-- Returns the Retry-After header as seconds, or nil when it is absent or not a number of
-- seconds (an HTTP date is left to the engine's own backoff).
function M.retry_after(response)
  local value = aq.header(response and response.headers, "retry-after")
  local seconds = tonumber(value)
  if seconds == nil or seconds < 0 then return nil end
  return seconds
end

-- Returns true for the HTTP statuses worth retrying: 408, 429 and every 5xx.
function M.is_transient_status(code)
  return code == 408 or code == 429 or (type(code) == "number" and code >= 500)
end

function M.is_success(code)
  return type(code) == "number" and code >= 200 and code < 300
end

local function content_type(response)
  local value = aq.header(response and response.headers, "content-type")
  if type(value) ~= "string" then return nil end
  return string.lower(value)
end

M.content_type = content_type

-- Returns true when the body looks like an HTML page (a proxy's or load balancer's error page).
function M.is_html(response)
  local kind = content_type(response)
  if kind ~= nil and string.find(kind, "text/html", 1, true) then return true end
  local body = response and response.body
  if type(body) ~= "string" then return false end
  local start = string.lower(string.sub(string.match(body, "^%s*(.*)$") or "", 1, 15))
  return string.sub(start, 1, 9) == "<!doctype" or string.sub(start, 1, 5) == "<html"
end

-- Returns the response body decoded as JSON, or nil and a message when it is not JSON.
function M.decode_body(response)
  local body = response and response.body
  if type(body) == "table" then return body end
  if type(body) ~= "string" then return nil, "the response has no body" end
  return json.decode(body)
end

-- Returns a retry verdict with the response's Retry-After, if any.
function M.retry(reason, response)
  return { state = "retry", error = reason, after = M.retry_after(response) }
end

local function describe_detail_item(item)
  if type(item) ~= "table" then return as_text(item) end
  local location = nil
  if type(item.loc) == "table" then
    local parts = {}
    for _, part in ipairs(item.loc) do parts[#parts + 1] = as_text(part) or "?" end
    location = table.concat(parts, ".")
  end
  local message = as_text(item.msg) or as_text(item.message) or json.encode(item)
  if location ~= nil and location ~= "" then message = location .. ": " .. message end
  if type(item.type) == "string" then message = message .. " (" .. item.type .. ")" end
  return message
end

-- Returns the provider's own failure reason from an error body, or nil. Understands fal's
-- `detail` (a string or an array of {loc, msg, type}), RFC 7807 problems (Replicate),
-- Runway's `error`, Luma's `detail`, ElevenLabs' `detail.message`, Stability's `name` and
-- `errors`, and a plain `message`.
function M.describe_error(body)
  if type(body) == "string" then
    local text = string.match(body, "^%s*(.-)%s*$")
    if text == "" then return nil end
    return string.sub(text, 1, 300)
  end
  if type(body) ~= "table" then return nil end

  local detail = body.detail
  if type(detail) == "string" and detail ~= "" then
    if type(body.title) == "string" and body.title ~= "" then return body.title .. ": " .. detail end
    return detail
  end
  if type(detail) == "table" then
    if #detail > 0 then
      local parts = {}
      for _, item in ipairs(detail) do parts[#parts + 1] = describe_detail_item(item) end
      return table.concat(parts, "; ")
    end
    local message = as_text(detail.message)
    if message ~= nil then
      if type(detail.status) == "string" then return detail.status .. ": " .. message end
      return message
    end
  end
  if type(body.name) == "string" and type(body.errors) == "table" then
    local parts = {}
    for _, item in ipairs(body.errors) do parts[#parts + 1] = as_text(item) or json.encode(item) end
    return body.name .. ": " .. table.concat(parts, "; ")
  end
  local error_value = body.error
  if type(error_value) == "string" and error_value ~= "" then return error_value end
  if type(error_value) == "table" and as_text(error_value.message) then
    return as_text(error_value.message)
  end
  for _, field in ipairs({ "failure_reason", "failure", "message", "title" }) do
    local text = as_text(body[field])
    if text ~= nil and text ~= "" then return text end
  end
  return nil
end

-- Returns "HTTP <code>: <reason>", using the decoded body when there is one.
function M.http_failure(response, body)
  local reason = M.describe_error(body)
  if reason == nil and not M.is_html(response) then reason = M.describe_error(response.body) end
  local text = "HTTP " .. tostring(response.statusCode)
  if reason ~= nil then text = text .. ": " .. reason end
  return text
end

-- Returns the verdict for a non-2xx response: retry for 408, 429 and 5xx, failed otherwise.
function M.non_success_verdict(response, what)
  local body = M.decode_body(response)
  local text = what .. " failed with " .. M.http_failure(response, body)
  if M.is_transient_status(response.statusCode) then return M.retry(text, response) end
  return { state = "failed", error = text }
end

-- Returns the verdict for a non-2xx poll response. Like non_success_verdict, except that an
-- HTML page is retried whatever its status, because it comes from a proxy in front of the
-- provider rather than from the provider's API.
function M.poll_failure_verdict(response, what)
  if M.is_html(response) then
    return M.retry(what .. " failed with HTTP " .. tostring(response.statusCode) .. " (an HTML page)",
      response)
  end
  return M.non_success_verdict(response, what)
end

-- Decodes a status response's JSON body. Returns the body, or nil and the verdict for a
-- response that cannot be read: a non-2xx answer (through poll_failure_verdict) or a body that
-- is not a JSON object (retried).
function M.poll_body(response)
  if not M.is_success(response.statusCode) then
    return nil, M.poll_failure_verdict(response, "poll")
  end
  local body, message = M.decode_body(response)
  if type(body) ~= "table" then
    return nil, M.retry("poll response is not JSON: " .. tostring(message), response)
  end
  return body
end

local dropped_headers = {
  ["content-type"] = true,
  ["content-length"] = true,
  ["idempotency-key"] = true,
  ["host"] = true,
}

-- Returns the submit request's headers to send on polls, result fetches and cancels: all of
-- them (so the provider's auth header and version headers go along) except the body headers,
-- Idempotency-Key and the engine's own X-AsyncQueue-* headers.
function M.forwarded_headers(task)
  local headers = {}
  if type(task) ~= "table" or type(task.headers) ~= "table" then return headers end
  for name, value in pairs(task.headers) do
    local lowered = string.lower(name)
    if not dropped_headers[lowered] and string.sub(lowered, 1, 13) ~= "x-asyncqueue-"
      and type(value) == "string" then
      headers[name] = value
    end
  end
  return headers
end

-- Returns a header table with `name` set to `value`, replacing any spelling of that name.
function M.with_header(headers, name, value)
  local lowered = string.lower(name)
  for existing in pairs(headers) do
    if string.lower(existing) == lowered then headers[existing] = nil end
  end
  headers[name] = value
  return headers
end

function M.get(url, task, forward)
  local headers = {}
  if forward ~= false then headers = M.forwarded_headers(task) end
  return { method = "GET", url = url, headers = headers }
end

-- Generic hooks ---------------------------------------------------------------------------

local function config(ctx)
  if type(ctx.pollConfig) ~= "table" then error("the task has no pollConfig", 0) end
  return ctx.pollConfig
end

local function template_variables(ctx)
  local job = ctx.job
  local start = type(job) == "table" and job.startResult or nil
  return { startResult = start, task = ctx.task, job = job }
end

local function expand_or_raise(ctx, key)
  local template = config(ctx)[key]
  if type(template) ~= "string" or template == "" then
    error(string.format("pollConfig.%s is missing", key), 0)
  end
  local url, message = aq.expand(template, template_variables(ctx))
  if url == nil then error(string.format("pollConfig.%s: %s", key, message), 0) end
  return url
end

local function forward_auth(ctx)
  return config(ctx).forwardAuth ~= false
end

local function generic_on_submit(ctx)
  local response = ctx.response
  if not M.is_success(response.statusCode) then
    return M.non_success_verdict(response, "submit")
  end
  local body = M.decode_body(response)
  if body == nil then body = response.body end
  local start = { statusCode = response.statusCode, headers = response.headers, body = body }
  return { state = "polling", job = { startResult = start } }
end

local function generic_poll(ctx)
  return M.get(expand_or_raise(ctx, "urlTemplate"), ctx.task, forward_auth(ctx))
end

-- Returns the completed verdict (or the fetch of resultUrlTemplate) for a done status.
local function generic_done(ctx, body)
  local settings = config(ctx)
  if type(settings.resultUrlTemplate) == "string" and settings.resultUrlTemplate ~= "" then
    return {
      state = "fetch",
      request = M.get(expand_or_raise(ctx, "resultUrlTemplate"), ctx.task, forward_auth(ctx)),
    }
  end
  local result = aq.path(body, settings.resultPath or "")
  if result == nil then result = json.null end
  return { state = "completed", result = result }
end

-- Builds the on_poll hook. `running_values` lists the in-flight statuses of a built-in template
-- and any other value is reported with unknown = true. Without it every value that is
-- neither done nor failed is simply running.
function M.make_on_poll(running_values)
  return function(ctx)
    local response = ctx.response
    if not M.is_success(response.statusCode) then
      return M.poll_failure_verdict(response, "poll")
    end
    local body, message = M.decode_body(response)
    if body == nil then
      return M.retry("poll response is not JSON: " .. tostring(message), response)
    end
    local settings = config(ctx)
    local status = as_text(aq.path(body, settings.statusPath or "status"))
    if status ~= nil and contains(settings.failValues, status) then
      local reason = settings.errorPath and aq.path(body, settings.errorPath)
      reason = M.describe_error(reason) or as_text(reason)
      return { state = "failed", error = reason or ("provider reported status " .. status) }
    end
    if status ~= nil and contains(settings.doneValues, status) then
      return generic_done(ctx, body)
    end
    local verdict = { state = "running", status = status }
    if running_values ~= nil and not contains(running_values, status) then verdict.unknown = true end
    return verdict
  end
end

local function generic_on_result(ctx)
  local response = ctx.response
  if not M.is_success(response.statusCode) then
    return M.non_success_verdict(response, "result fetch")
  end
  local body = M.decode_body(response)
  if body ~= nil then
    local result = aq.path(body, config(ctx).resultPath or "")
    if result == nil then result = json.null end
    return { state = "completed", result = result }
  end
  if M.is_html(response) then
    return M.retry("result response is an HTML page, not the result", response)
  end
  return { state = "completed", file = { contentType = content_type(response) }, result = {} }
end

M.on_submit = generic_on_submit
M.poll = generic_poll
M.on_result = generic_on_result

-- Returns a hook table for the generic pollConfig behaviour with `fields` (metadata such as
-- id and pollConfig, or replacement hooks) copied over it. `options.runningValues` lists the
-- known in-flight statuses.
function M.template(fields, options)
  local running_values = options and options.runningValues or nil
  local script = {
    on_submit = generic_on_submit,
    poll = generic_poll,
    on_poll = M.make_on_poll(running_values),
    on_result = generic_on_result,
  }
  for key, value in pairs(fields or {}) do script[key] = value end
  return script
end

return M
