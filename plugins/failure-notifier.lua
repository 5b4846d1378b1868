-- failure-notifier: posts a short summary of each task that ends failed or timeout to a chat
-- or HTTP endpoint, such as a Slack incoming webhook.
--
-- Hooks: task_finished (returns one POST request for the host to send).
--
-- Settings (ctx.config): enabled; url (required: where to POST); format: "slack" (default,
-- a {"text": …} body that Slack, Mattermost and Discord's /slack endpoint accept) or "json"
-- ({"event", "task": {id, provider, status, error, errorCode, url}}); statuses (default
-- {"failed", "timeout"}); headers (extra request headers, such as an Authorization value);
-- timeoutSeconds (default 10).

local function is_selected(status, statuses)
  for _, value in ipairs(statuses) do
    if value == status then return true end
  end
  return false
end

local function text_summary(task, link)
  local provider = aq.present(task.provider) and task.provider or "custom"
  local reason = aq.present(task.error) and task.error or "no error message"
  local code = aq.present(task.errorCode) and (" [" .. task.errorCode .. "]") or ""
  return string.format("asyncqueue task %s (%s) ended %s%s: %s\n%s",
    task.id, provider, task.status, code, reason, link)
end

local function json_summary(task, link)
  return {
    event = "task." .. task.status,
    task = {
      id = task.id,
      provider = task.provider,
      status = task.status,
      error = task.error,
      errorCode = task.errorCode,
      url = link,
    },
  }
end

local function task_finished(ctx)
  local config = ctx.config
  local statuses = type(config.statuses) == "table" and config.statuses or { "failed", "timeout" }
  if not is_selected(ctx.task.status, statuses) then return nil end
  if type(config.url) ~= "string" or config.url == "" then
    log.warn("settings have no 'url'; nothing sent for task", ctx.task.id)
    return nil
  end

  local body
  local format = config.format or "slack"
  if format == "slack" then
    body = { text = text_summary(ctx.task, ctx.taskUrl) }
  elseif format == "json" then
    body = json_summary(ctx.task, ctx.taskUrl)
  else
    error("setting 'format' must be \"slack\" or \"json\", got " .. tostring(format))
  end

  local headers = { ["Content-Type"] = "application/json" }
  if type(config.headers) == "table" then
    for name, value in pairs(config.headers) do headers[name] = value end
  end
  return {
    requests = {
      {
        method = "POST",
        url = config.url,
        headers = headers,
        body = json.encode(body),
        timeout = tonumber(config.timeoutSeconds) or 10,
      },
    },
  }
end

return {
  name = "failure-notifier",
  description = "Posts a summary of each failed or timed-out task to a chat or HTTP endpoint.",
  task_finished = task_finished,
}
