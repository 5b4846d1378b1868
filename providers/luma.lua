-- Luma Dream Machine API (api.lumalabs.ai/dream-machine/v1): submit returns the generation
-- (201, state "queued"); it is polled at <base>/generations/{id}, where the base is everything
-- in targetUrl before "/generations". Every field of a generation may be missing.
-- Hooks: on_submit, poll, on_poll. No cancel: Luma's DELETE removes the generation.

local pollconfig = require("lib.pollconfig")

local function generation_url(ctx, id)
  local base = aq.url.prefix(ctx.task.targetUrl, "/generations") or ctx.task.targetUrl
  return base .. "/generations/" .. aq.url.encode(id)
end

-- Returns the asset URL for a completed generation: assets.image for image generations,
-- assets.video otherwise, falling back to whichever exists.
local function asset_of(generation)
  local assets = generation.assets
  if type(assets) ~= "table" then return nil end
  local video = pollconfig.as_text(assets.video)
  local image = pollconfig.as_text(assets.image)
  if generation.generation_type == "image" then return image or video end
  return video or image
end

-- Returns the verdict for a generation object.
local function verdict_of(generation)
  local state = pollconfig.as_text(generation.state)
  if state == "completed" then
    local asset = asset_of(generation)
    if asset == nil then return { state = "failed", error = "completed without an asset" } end
    return { state = "completed", result = asset }
  end
  if state == "failed" then
    local reason = pollconfig.as_text(generation.failure_reason)
    return { state = "failed", error = reason or "generation failed without a reason" }
  end
  local verdict = { state = "running", status = state }
  if state ~= "queued" and state ~= "dreaming" then verdict.unknown = true end
  return verdict
end

local function on_submit(ctx)
  local response = ctx.response
  if not pollconfig.is_success(response.statusCode) then
    return pollconfig.non_success_verdict(response, "submit")
  end
  local generation = pollconfig.decode_body(response)
  if type(generation) ~= "table" then
    return pollconfig.retry("submit response is not JSON", response)
  end
  local id = pollconfig.as_text(generation.id)
  if id == nil then return { state = "failed", error = "submit response has no generation id" } end
  local verdict = verdict_of(generation)
  if verdict.state ~= "running" then return verdict end
  return { state = "polling", job = { id = id, generationUrl = generation_url(ctx, id) } }
end

local function poll(ctx)
  return pollconfig.get(ctx.job.generationUrl, ctx.task)
end

local function on_poll(ctx)
  local generation, failure = pollconfig.poll_body(ctx.response)
  if generation == nil then return failure end
  return verdict_of(generation)
end

return {
  id = "luma",
  name = "Luma Dream Machine",
  description = "Luma generations: polls /generations/{id} until completed or failed.",
  pollConfig = {
    -- Relative to the API base in targetUrl; poll derives the full URL.
    urlTemplate = "/generations/{startResult.body.id}",
    interval = 5,
    statusPath = "state",
    doneValues = { "completed" },
    failValues = { "failed" },
    resultPath = "assets.video",
    errorPath = "failure_reason",
    forwardAuth = true,
    maxDuration = 600,
  },
  resubmit = false,
  -- Luma publishes no limits for this API; estimates.
  limits = { concurrency = 10, requestsPerSecond = 5 },
  on_submit = on_submit,
  poll = poll,
  on_poll = on_poll,
}
