// The trusted Lua code that builds the sandbox. It runs once per state, with the full
// standard library, before any script, and returns the operations the C host calls.
let luaPrelude = #"""
  -- Trusted prelude: runs once per state with the full standard library, before any script.
  -- It receives the host's C functions and returns the sandbox operations the C side calls.
  local host = ...

  local assert, error, ipairs, next, pairs, pcall, rawequal, rawget, rawlen, rawset, select,
    setmetatable, getmetatable, tonumber, tostring, type, xpcall, load =
    assert, error, ipairs, next, pairs, pcall, rawequal, rawget, rawlen, rawset, select,
    setmetatable, getmetatable, tonumber, tostring, type, xpcall, load
  local string, table, math, utf8, os = string, table, math, utf8, os
  local format, find, sub, gsub, lower, byte = string.format, string.find, string.sub,
    string.gsub, string.lower, string.byte
  local concat, sort = table.concat, table.sort

  local frozen = setmetatable({}, { __mode = "k" })

  -- A read-only view of `source`: reads pass through, writes raise, and the metatable is hidden
  -- so setmetatable cannot replace it.
  local function freeze(source, name, extra)
    local metatable = {
      __index = source,
      __newindex = function(_, key)
        error(format("cannot modify %s.%s: library tables are read-only", name, tostring(key)), 2)
      end,
      __pairs = function() return next, source, nil end,
      __len = function() return #source end,
      __metatable = false,
    }
    for key, value in pairs(extra or {}) do metatable[key] = value end
    local view = setmetatable({}, metatable)
    frozen[view] = true
    return view
  end

  local function copy_fields(source, names)
    local result = {}
    for _, name in ipairs(names) do result[name] = source[name] end
    return result
  end

  -- NOTE: string.find, match, gmatch and gsub run in C, where the instruction budget does not
  -- count, so a pathological backtracking pattern can run long. Only the engine's own timeout
  -- bounds it. string.dump is left out because it produces bytecode.
  local safe_string = copy_fields(string, {
    "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower", "match", "pack",
    "packsize", "rep", "reverse", "sub", "unpack", "upper",
  })
  local string_view = freeze(safe_string, "string")

  -- Strings index the read-only view, and getmetatable("") returns false, so no script can
  -- reach or change the real string table through a string value.
  do
    local string_metatable = getmetatable("")
    string_metatable.__index = string_view
    string_metatable.__metatable = false
  end

  local table_view = freeze(copy_fields(table, {
    "concat", "insert", "move", "pack", "remove", "sort", "unpack",
  }), "table")
  local math_view = freeze(copy_fields(math, {
    "abs", "ceil", "cos", "deg", "exp", "floor", "fmod", "huge", "log", "max", "maxinteger",
    "min", "mininteger", "modf", "pi", "rad", "random", "sin", "sqrt", "tan", "tointeger",
    "type", "ult",
  }), "math")
  local utf8_view = freeze(copy_fields(utf8, {
    "char", "charpattern", "codepoint", "codes", "len", "offset",
  }), "utf8")
  local os_view = freeze(copy_fields(os, { "clock", "date", "difftime", "time" }), "os")

  -- JSON -----------------------------------------------------------------------------------

  local json_null = host.json_null
  local ARRAY_MARKER = "json array"
  local array_mt = host.json_array_mt
  local json_encode, json_decode = host.json_encode, host.json_decode

  local json = freeze({
    encode = json_encode,
    decode = json_decode,
    null = json_null,
    empty_array = freeze({}, "json.empty_array", { __jsontype = "array" }),
    array = function(t)
      if type(t) ~= "table" then error("json.array expects a table", 2) end
      if getmetatable(t) == ARRAY_MARKER then return t end
      return setmetatable(t, array_mt)
    end,
  }, "json")

  -- aq helpers ------------------------------------------------------------------------------

  local function is_present(value)
    return value ~= nil and value ~= json_null
  end

  -- Splits "a.b[0].c" into {"a", "b", "0", "c"}.
  local function path_segments(path)
    local segments = {}
    local normalised = gsub(path, "%[(%d+)%]", ".%1")
    for segment in string.gmatch(normalised, "[^%.]+") do segments[#segments + 1] = segment end
    return segments
  end

  local function lookup(value, path)
    if type(path) ~= "string" then error("aq.path expects a string path", 3) end
    if path == "" then return value end
    local current = value
    for _, segment in ipairs(path_segments(path)) do
      if type(current) ~= "table" then return nil end
      local found = current[segment]
      if found == nil then
        local index = tonumber(segment)
        if index ~= nil and math.type(index) == "integer" then
          if getmetatable(current) == ARRAY_MARKER or rawget(current, 1) ~= nil or next(current) == nil then
            found = current[index + 1]
          end
        end
      end
      if found == nil then return nil end
      current = found
    end
    return current
  end

  local function aq_path(value, path)
    return lookup(value, path)
  end

  local function text_of(value)
    local kind = type(value)
    if kind == "string" then return value end
    if kind == "number" then
      if math.type(value) == "float" and value == math.floor(value) and value > -2^53 and value < 2^53 then
        return format("%d", value)
      end
      return tostring(value)
    end
    if kind == "boolean" then return tostring(value) end
    return nil
  end

  local function aq_expand(template, vars)
    if type(template) ~= "string" then error("aq.expand expects a string template", 2) end
    local missing
    local result = gsub(template, "{([^{}]*)}", function(path)
      if missing then return "" end
      local text = text_of(lookup(vars, path))
      if text == nil then
        missing = path
        return ""
      end
      return text
    end)
    if missing then return nil, format("placeholder {%s} has no value", missing) end
    return result
  end

  local function url_origin(url)
    if type(url) ~= "string" then return nil end
    return string.match(url, "^([%a][%w+.-]*://[^/?#]+)")
  end

  local function url_join(base, path)
    if type(base) ~= "string" or type(path) ~= "string" then return nil end
    if find(path, "^[%a][%w+.-]*://") then return path end
    if sub(path, 1, 1) == "/" and sub(path, 2, 2) ~= "/" then
      local origin = url_origin(base)
      if origin == nil then return nil end
      return origin .. path
    end
    local trimmed = gsub(base, "[?#].*$", "")
    if sub(trimmed, -1) == "/" then trimmed = sub(trimmed, 1, -2) end
    return trimmed .. "/" .. path
  end

  local function url_prefix(url, marker)
    if type(url) ~= "string" or type(marker) ~= "string" or marker == "" then return nil end
    local start = find(url, marker, 1, true)
    if start == nil then return nil end
    return sub(url, 1, start - 1)
  end

  local function url_encode(text)
    text = text_of(text)
    if text == nil then return nil end
    return (gsub(text, "[^%w%-%._~]", function(c) return format("%%%02X", byte(c)) end))
  end

  local function aq_header(headers, name)
    if type(headers) ~= "table" or type(name) ~= "string" then return nil end
    local wanted = lower(name)
    local value = rawget(headers, name)
    if value ~= nil then return value end
    for key, candidate in pairs(headers) do
      if type(key) == "string" and lower(key) == wanted then return candidate end
    end
    return nil
  end

  local aq = freeze({
    path = aq_path,
    expand = aq_expand,
    header = aq_header,
    present = is_present,
    url = freeze({
      origin = url_origin,
      join = url_join,
      prefix = url_prefix,
      encode = url_encode,
    }, "aq.url"),
  }, "aq")

  -- Sandbox ---------------------------------------------------------------------------------

  local current_key = "?"
  local log_functions = {}
  for _, level in ipairs({ "debug", "info", "warn", "error" }) do
    log_functions[level] = function(...)
      local parts = {}
      for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
      host.log(level, current_key, concat(parts, " "))
    end
  end
  local log_view = freeze(log_functions, "log")

  local function safe_rawset(t, key, value)
    if frozen[t] then error("cannot modify a read-only table", 2) end
    return rawset(t, key, value)
  end

  local function safe_setmetatable(t, metatable)
    if type(metatable) == "table" and rawget(metatable, "__gc") ~= nil then
      error("finalizers (__gc) are not available to scripts", 2)
    end
    -- Through pcall, so a protected metatable is reported at the script's line, not here.
    local ok, message = pcall(setmetatable, t, metatable)
    if not ok then error(message, 2) end
    return t
  end

  local modules = {}   -- name -> { source, chunk_name }
  local loaded = {}    -- name -> value
  local loading = {}   -- name -> true while its chunk runs
  local scripts = {}   -- key -> returned table

  local new_environment

  local function sandbox_require(name)
    if type(name) ~= "string" then error("require expects a module name", 2) end
    local value = loaded[name]
    if value ~= nil then return value end
    local module = modules[name]
    if module == nil then error(format("module '%s' not found: only host modules can be required", name), 2) end
    if loading[name] then error(format("module '%s' requires itself", name), 2) end
    local chunk, message = load(module.source, "@" .. module.chunk_name, "t", new_environment())
    if chunk == nil then error(message, 0) end
    loading[name] = true
    local ok, result = pcall(chunk, name)
    loading[name] = nil
    if not ok then error(result, 0) end
    if result == nil then result = true end
    loaded[name] = result
    return result
  end

  new_environment = function()
    local env = {
      assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
      pcall = pcall, xpcall = xpcall, rawequal = rawequal, rawget = rawget, rawlen = rawlen,
      rawset = safe_rawset, select = select, setmetatable = safe_setmetatable,
      getmetatable = getmetatable, tonumber = tonumber, tostring = tostring, type = type,
      _VERSION = _VERSION, require = sandbox_require,
      string = string_view, table = table_view, math = math_view, utf8 = utf8_view,
      os = os_view, json = json, aq = aq, log = log_view,
    }
    env.load = function(chunk, chunk_name, mode, _)
      if type(chunk) ~= "string" then error("load accepts only a string chunk", 2) end
      if mode ~= nil and mode ~= "t" then error("load accepts only text chunks (mode 't')", 2) end
      return load(chunk, chunk_name or "=(load)", "t", env)
    end
    return setmetatable(env, {
      __index = function(_, name)
        error(format("undeclared global '%s'", tostring(name)), 2)
      end,
      __newindex = function(_, name)
        error(format("assignment to undeclared global '%s' (declare it local)", tostring(name)), 2)
      end,
      __metatable = false,
    })
  end

  local known_hooks = {
    submit = true, on_submit = true, poll = true, on_poll = true, on_result = true,
    cancel = true, on_cancel = true,
  }

  local sandbox = {}

  function sandbox.add_module(name, source, chunk_name)
    modules[name] = { source = source, chunk_name = chunk_name }
    loaded[name] = nil
  end

  -- Returns the metadata JSON and the hook names joined by "\n".
  function sandbox.load_script(key, source, chunk_name)
    current_key = key
    local chunk, message = load(source, "@" .. chunk_name, "t", new_environment())
    if chunk == nil then error(message, 0) end
    local script = chunk()
    if type(script) ~= "table" then
      error(format("%s: the script must return a table, got %s", chunk_name, type(script)), 0)
    end
    local metadata, hooks = {}, {}
    for field, value in pairs(script) do
      if type(field) ~= "string" then
        error(format("%s: the returned table has a non-string key (%s)", chunk_name, tostring(field)), 0)
      end
      if type(value) == "function" then
        hooks[#hooks + 1] = field
      elseif known_hooks[field] then
        error(format("%s: field '%s' must be a function, got %s", chunk_name, field, type(value)), 0)
      else
        metadata[field] = value
      end
    end
    sort(hooks)
    local ok, encoded = pcall(json_encode, metadata)
    if not ok then
      error(format("%s: metadata cannot be encoded as JSON: %s", chunk_name, tostring(encoded)), 0)
    end
    scripts[key] = script
    return encoded, concat(hooks, "\n")
  end

  function sandbox.call(key, hook, argument_json, body)
    current_key = key
    local script = scripts[key]
    if script == nil then error(format("no script is loaded with key '%s'", key), 0) end
    local fn = rawget(script, hook)
    if type(fn) ~= "function" then error(format("script '%s' has no hook '%s'", key, hook), 0) end
    local ctx, message = json_decode(argument_json)
    if type(ctx) ~= "table" then
      error(format("the argument of hook '%s' is not a JSON object: %s", hook, message or "not an object"), 0)
    end
    if body ~= nil then
      if type(ctx.response) ~= "table" then ctx.response = {} end
      ctx.response.body = body
    end
    local result = fn(ctx)
    local ok, encoded = pcall(json_encode, result)
    if not ok then
      error(format("hook '%s' of script '%s' returned a value that cannot be encoded as JSON: %s",
        hook, key, tostring(encoded)), 0)
    end
    return encoded
  end

  return sandbox
  """#
