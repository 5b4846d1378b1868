-- ElevenLabs dubbing API (api.elevenlabs.io): submit returns {dubbing_id,
-- expected_duration_sec}; the dub is polled at <base>/v1/dubbing/{id} and, once "dubbed",
-- its audio is fetched from <base>/v1/dubbing/{id}/audio/{lang}, where the base is everything
-- in targetUrl before "/v1/dubbing". The xi-api-key header goes along.
-- Hooks: on_submit, poll, on_poll, on_result. No cancel: DELETE removes the dub.

local pollconfig = require("lib.pollconfig")

-- Returns the target language the client asked for: the JSON body's target_lang, or the
-- target_lang field of a multipart/form-data body. Returns nil when neither has one.
local function requested_language(task)
  local body = task and task.body
  if type(body) ~= "string" then return nil end
  local decoded = json.decode(body)
  if type(decoded) == "table" then return pollconfig.as_text(decoded.target_lang) end
  local _, name_end = string.find(body, 'name="target_lang"', 1, true)
  if name_end == nil then return nil end
  local _, headers_end = string.find(body, "\r?\n\r?\n", name_end + 1)
  if headers_end == nil then return nil end
  local value = string.match(body, "^([^\r\n]*)", headers_end + 1)
  if value == nil or value == "" then return nil end
  return value
end

local function api_base(ctx)
  return aq.url.prefix(ctx.task.targetUrl, "/v1/dubbing") or aq.url.origin(ctx.task.targetUrl)
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
  local id = pollconfig.as_text(body.dubbing_id)
  if id == nil then return { state = "failed", error = "submit response has no dubbing_id" } end
  return {
    state = "polling",
    job = {
      dubbingId = id,
      dubbingUrl = api_base(ctx) .. "/v1/dubbing/" .. aq.url.encode(id),
      language = requested_language(ctx.task),
      expectedDurationSec = body.expected_duration_sec,
    },
  }
end

local function poll(ctx)
  return pollconfig.get(ctx.job.dubbingUrl, ctx.task)
end

local function on_poll(ctx)
  local body, failure = pollconfig.poll_body(ctx.response)
  if body == nil then return failure end
  local status = pollconfig.as_text(body.status)
  if status == "dubbed" then
    local language = ctx.job.language
    if language == nil and type(body.target_languages) == "table" then
      language = pollconfig.as_text(body.target_languages[1])
    end
    if language == nil then
      return { state = "failed", error = "dubbed, but no target language is known to download" }
    end
    local url = ctx.job.dubbingUrl .. "/audio/" .. aq.url.encode(language)
    return { state = "fetch", request = pollconfig.get(url, ctx.task) }
  end
  if status == "failed" then
    local reason = pollconfig.as_text(body.error) or pollconfig.describe_error(body.error)
    return { state = "failed", error = reason or "dubbing failed without a reason" }
  end
  local verdict = { state = "running", status = status }
  if status ~= "dubbing" then verdict.unknown = true end
  return verdict
end

-- The audio endpoint returns 425 Too Early until the dub is ready to download.
local function on_result(ctx)
  local response = ctx.response
  if response.statusCode == 425 then
    return { state = "retry", error = "audio is not ready yet (HTTP 425)", after = 10 }
  end
  if not pollconfig.is_success(response.statusCode) then
    return pollconfig.non_success_verdict(response, "audio download")
  end
  -- ctx.request, when the engine supplies it, names the language that was downloaded.
  local language = ctx.job.language
  if language == nil and type(ctx.request) == "table" and type(ctx.request.url) == "string" then
    language = string.match(ctx.request.url, "/audio/([^/?]+)")
  end
  return {
    state = "completed",
    file = { contentType = pollconfig.content_type(response) or "audio/mpeg" },
    result = { dubbing_id = ctx.job.dubbingId, language = language },
  }
end

return {
  id = "elevenlabs-dubbing",
  name = "ElevenLabs dubbing",
  description = "ElevenLabs dubbing: polls /v1/dubbing/{id}, then downloads the dubbed audio.",
  pollConfig = {
    -- Relative to the API base in targetUrl; poll derives the full URL.
    urlTemplate = "/v1/dubbing/{startResult.body.dubbing_id}",
    interval = 10,
    statusPath = "status",
    doneValues = { "dubbed" },
    failValues = { "failed" },
    resultPath = "dubbing_id",
    errorPath = "error",
    forwardAuth = true,
    maxDuration = 1800,
  },
  resubmit = false,
  -- ElevenLabs limits concurrent requests per plan (2 to 15); estimates within that.
  limits = { concurrency = 10, requestsPerSecond = 5 },
  on_submit = on_submit,
  poll = poll,
  on_poll = on_poll,
  on_result = on_result,
}
