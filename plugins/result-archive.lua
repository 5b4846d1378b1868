-- result-archive: keeps a copy of a completed task's media files, because provider links
-- expire (Replicate's output URLs after an hour, Runway's within 24 to 48 hours).
--
-- Hooks: task_finished (finds media URLs in the result and returns them as downloads, which the
-- host saves in <data-dir>/results/<task id>/files/) and downloads_finished (adds
-- `archivedFiles` to the result, and `archiveErrors` when a download failed).
--
-- Settings (ctx.config): enabled, maxBytes (per file, default 536870912 = 512 MiB),
-- maxFiles (default 20), timeoutSeconds (per download, default 600).

local MEDIA_EXTENSIONS = {
  jpg = true, jpeg = true, png = true, webp = true, gif = true, avif = true,
  mp4 = true, webm = true, mov = true, mkv = true,
  mp3 = true, wav = true, ogg = true, m4a = true, flac = true, aac = true,
  glb = true, gltf = true, obj = true,
}

local MAX_DEPTH = 8

local function is_http_url(value)
  return type(value) == "string" and value:match("^[Hh][Tt][Tt][Pp][Ss]?://") ~= nil
end

local function url_path(url)
  return url:match("^%a+://[^/?#]*([^?#]*)") or ""
end

local function has_media_extension(url)
  local extension = url_path(url):match("%.(%w+)$")
  return extension ~= nil and MEDIA_EXTENSIONS[extension:lower()] == true
end

local function file_name(url)
  local name = url_path(url):match("([^/]+)$")
  return name or "file"
end

-- URLs at the places the built-in providers put their output, taken whatever their extension:
-- the whole result (Luma), an array of URLs (Replicate, Runway), `output` (Replicate's
-- prediction), `images[].url`, `image.url`, `video.url`, `audio.url` (fal) and
-- `assets.image`/`assets.video` (a Luma generation).
local function known_urls(result, add)
  if is_http_url(result) then add(result) return end
  if type(result) ~= "table" then return end
  local function add_list_or_url(value)
    if is_http_url(value) then add(value) return end
    if type(value) == "table" then
      for _, item in ipairs(value) do
        if is_http_url(item) then add(item)
        elseif type(item) == "table" and is_http_url(item.url) then add(item.url) end
      end
    end
  end
  add_list_or_url(result)
  add_list_or_url(result.output)
  add_list_or_url(result.images)
  for _, key in ipairs({ "image", "video", "audio" }) do
    local value = result[key]
    if type(value) == "table" and is_http_url(value.url) then add(value.url) end
  end
  if type(result.assets) == "table" then
    add_list_or_url(result.assets.video)
    add_list_or_url(result.assets.image)
  end
end

-- Any other http(s) string in the result whose path ends in a media extension.
local function media_urls(value, add, depth)
  if depth > MAX_DEPTH then return end
  if is_http_url(value) then
    if has_media_extension(value) then add(value) end
  elseif type(value) == "table" then
    for _, item in pairs(value) do media_urls(item, add, depth + 1) end
  end
end

local function task_finished(ctx)
  local task = ctx.task
  if task.status ~= "completed" or not aq.present(task.result) then return nil end
  local config = ctx.config
  local max_files = tonumber(config.maxFiles) or 20
  local own_prefix = ctx.publicURL .. "/"
  local seen, downloads = {}, {}
  local function add(url)
    if seen[url] or #downloads >= max_files then return end
    -- The service's own links (a stored result file) need no archive.
    if url:sub(1, #own_prefix) == own_prefix then return end
    seen[url] = true
    downloads[#downloads + 1] = {
      url = url,
      name = file_name(url),
      maxBytes = tonumber(config.maxBytes) or 536870912,
      timeout = tonumber(config.timeoutSeconds) or 600,
    }
  end
  known_urls(task.result, add)
  media_urls(task.result, add, 0)
  if #downloads == 0 then return nil end
  log.info("archiving", #downloads, "file(s) of task", task.id)
  return { downloads = downloads }
end

local function downloads_finished(ctx)
  local archived, failed = {}, {}
  for _, item in ipairs(ctx.downloads) do
    if aq.present(item.error) then
      failed[#failed + 1] = { sourceUrl = item.sourceUrl, error = item.error }
    else
      archived[#archived + 1] = {
        name = item.name, url = item.url, sourceUrl = item.sourceUrl,
        contentType = item.contentType, size = item.size,
      }
    end
  end
  local fields = { archivedFiles = json.array(archived) }
  if #failed > 0 then fields.archiveErrors = json.array(failed) end
  return { result_fields = fields }
end

return {
  name = "result-archive",
  description = "Downloads a completed task's media files into the data directory and adds archivedFiles to its result.",
  task_finished = task_finished,
  downloads_finished = downloads_finished,
}
