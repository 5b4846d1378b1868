import LuaRuntime
import Testing

/// Collects log lines from scripts; the runtime calls it from the test's own thread.
final class LogRecorder: @unchecked Sendable {
  private(set) var lines: [String] = []

  func record(_ level: ScriptLogLevel, _ key: String, _ message: String) {
    lines.append("\(level.rawValue) \(key): \(message)")
  }
}

func makeRuntime(
  limits: ScriptLimits = ScriptLimits(), recorder: LogRecorder = LogRecorder()
) throws -> LuaRuntime {
  try LuaRuntime(limits: limits) { level, key, message in
    recorder.record(level, key, message)
  }
}

/// Loads `body` as the `run` hook of a script keyed "t" and calls it with `{}`.
func runSnippet(_ runtime: LuaRuntime, _ body: String, argument: String = "{}") throws -> String {
  let source = "return { run = function(ctx)\n\(body)\nend }"
  _ = try runtime.loadScript(key: "t", source: source, chunkName: "snippet.lua")
  return try runtime.call(key: "t", hook: "run", argumentJSON: argument, body: nil)
}

func failureMessage(_ work: () throws -> Void) -> String? {
  do {
    try work()
    return nil
  } catch let failure as ScriptFailure {
    return failure.message
  } catch {
    return "unexpected error \(error)"
  }
}

@Suite struct LuaRuntimeTests {
  @Test func loadReportsMetadataAndSortedHooks() throws {
    let runtime = try makeRuntime()
    let loaded = try runtime.loadScript(
      key: "x",
      source: """
        return { id = "x", interval = 3, flags = json.empty_array,
          poll = function() end, on_poll = function() end, submit = function() end }
        """, chunkName: "providers/x.lua")
    #expect(loaded.hooks == ["on_poll", "poll", "submit"])
    #expect(loaded.metadataJSON.contains("\"id\":\"x\""))
    #expect(loaded.metadataJSON.contains("\"interval\":3"))
    #expect(loaded.metadataJSON.contains("\"flags\":[]"))
    #expect(runtime.hasHook(key: "x", hook: "poll"))
    #expect(!runtime.hasHook(key: "x", hook: "cancel"))
    #expect(!runtime.hasHook(key: "missing", hook: "poll"))
  }

  @Test func scriptMustReturnTable() throws {
    let runtime = try makeRuntime()
    let message = failureMessage {
      _ = try runtime.loadScript(key: "x", source: "return 42", chunkName: "providers/x.lua")
    }
    #expect(message == "providers/x.lua: the script must return a table, got number")
  }

  @Test func hookFieldMustBeFunction() throws {
    let runtime = try makeRuntime()
    let message = failureMessage {
      _ = try runtime.loadScript(key: "x", source: "return { poll = 1 }", chunkName: "p.lua")
    }
    #expect(message == "p.lua: field 'poll' must be a function, got number")
  }

  @Test func errorCarriesChunkNameAndLine() throws {
    let runtime = try makeRuntime()
    let source = """
      return {
        on_poll = function(ctx)
          local job = nil
          return job.id
        end,
      }
      """
    _ = try runtime.loadScript(key: "fal", source: source, chunkName: "providers/fal.lua")
    let message = failureMessage {
      _ = try runtime.call(key: "fal", hook: "on_poll", argumentJSON: "{}", body: nil)
    }
    #expect(message == "providers/fal.lua:4: attempt to index a nil value (local 'job')")
  }

  @Test func hostErrorCaughtByScriptPcallLeaksNothing() throws {
    let runtime = try makeRuntime()
    let source = """
      return { run = function(ctx)
        local results = {}
        for i = 1, 1000 do
          local ok, message = pcall(json.encode, function() end)
          results[#results + 1] = ok
          local ok2 = pcall(string.rep)
          results[#results + 1] = ok2
        end
        local ok, message = pcall(json.encode, { f = tostring })
        return { count = #results, anyTrue = results[1] or results[2], message = message }
      end }
      """
    _ = try runtime.loadScript(key: "t", source: source, chunkName: "t.lua")
    for _ in 0..<3 {
      let output = try runtime.call(key: "t", hook: "run", argumentJSON: "{}", body: nil)
      #expect(output.contains("\"count\":2000"))
      #expect(output.contains("\"anyTrue\":false"))
      #expect(output.contains("cannot encode a function value as JSON"))
    }
    #expect(try runSnippet(runtime, "return 1 + 1") == "2")
  }

  @Test func runawayLoopStoppedByInstructionBudget() throws {
    let runtime = try makeRuntime(limits: ScriptLimits(instructionBudget: 100_000))
    let message = failureMessage { _ = try runSnippet(runtime, "while true do end") }
    #expect(message == "snippet.lua:2: script exceeded its budget of 100000 instructions")
    #expect(try runSnippet(runtime, "return 'alive'") == "\"alive\"")
  }

  @Test func loopWithPcallInsideStillStopped() throws {
    let runtime = try makeRuntime(limits: ScriptLimits(instructionBudget: 100_000))
    let body = """
      local caught = 0
      while true do
        pcall(function() while true do end end)
        caught = caught + 1
      end
      """
    let message = failureMessage { _ = try runSnippet(runtime, body) }
    #expect(message?.contains("script exceeded its budget of 100000 instructions") == true)
    #expect(try runSnippet(runtime, "return 3") == "3")
  }

  @Test func memoryBombStoppedByMemoryCap() throws {
    let runtime = try makeRuntime(limits: ScriptLimits(memoryBytes: 8 << 20))
    let message = failureMessage {
      _ = try runSnippet(runtime, "local s = string.rep('x', 64 * 1024 * 1024) return #s")
    }
    #expect(message == "script exceeded the memory limit of 8388608 bytes")
    let growing = failureMessage {
      _ = try runSnippet(runtime, "local t = {} for i = 1, 1e9 do t[i] = ('y'):rep(100) .. i end")
    }
    // Growth in small steps passes the cap inside script code, so the error names the line.
    #expect(growing?.hasPrefix("snippet.lua:") == true, "\(growing ?? "nil")")
    #expect(growing?.hasSuffix("script exceeded the memory limit of 8388608 bytes") == true)
    #expect(try runSnippet(runtime, "return #string.rep('z', 1000)") == "1000")
  }

  @Test func ioAndOsExecuteAbsent() throws {
    let runtime = try makeRuntime()
    let ioMessage = failureMessage { _ = try runSnippet(runtime, "return io.open('/etc/passwd')") }
    #expect(ioMessage == "snippet.lua:2: undeclared global 'io'")
    let osMessage = failureMessage { _ = try runSnippet(runtime, "return os.execute('true')") }
    #expect(osMessage == "snippet.lua:2: attempt to call a nil value (field 'execute')")
    let names = ["debug", "package", "dofile", "loadfile", "collectgarbage", "print", "_G"]
    for name in names {
      let message = failureMessage { _ = try runSnippet(runtime, "return \(name)") }
      #expect(message == "snippet.lua:2: undeclared global '\(name)'")
    }
    #expect(try runSnippet(runtime, "return type(os.time())") == "\"number\"")
  }

  @Test func bytecodeRejected() throws {
    let runtime = try makeRuntime()
    #expect(try runSnippet(runtime, "return string.dump == nil") == "true")
    let loaded = try runSnippet(
      runtime, "local f, err = load('\\27Lua' .. string.rep('\\0', 40)) return { f = f, err = err }"
    )
    #expect(loaded.contains("attempt to load a binary chunk (mode is 't')"))
    let binaryMode = failureMessage {
      _ = try runSnippet(runtime, "local f = load('return 1', 'x', 'b') return f")
    }
    #expect(binaryMode == "snippet.lua:2: load accepts only text chunks (mode 't')")
    let message = failureMessage {
      _ = try runtime.loadScript(key: "b", source: "\u{1B}Lua\u{0}\u{0}", chunkName: "b.lua")
    }
    #expect(message?.contains("attempt to load a binary chunk") == true)
  }

  @Test func loadUsesSandboxEnvironment() throws {
    let runtime = try makeRuntime()
    let output = try runSnippet(runtime, "local f = load('return type(json.null)') return f()")
    #expect(output == "\"userdata\"")
    let message = failureMessage { _ = try runSnippet(runtime, "return load('return io')()") }
    #expect(message == "(load):1: undeclared global 'io'")
  }

  @Test func deepRecursionFailsCleanly() throws {
    let runtime = try makeRuntime()
    let message = failureMessage {
      _ = try runSnippet(runtime, "local function f(n) return 1 + f(n + 1) end return f(1)")
    }
    #expect(message?.contains("stack overflow") == true)
    #expect(try runSnippet(runtime, "return 'alive'") == "\"alive\"")
  }

  @Test func nonStringErrorBecomesMessage() throws {
    let runtime = try makeRuntime()
    let message = failureMessage { _ = try runSnippet(runtime, "error({ code = 1 })") }
    #expect(message == "(error object is a table value)")
  }

  @Test func deeplyNestedJsonRejected() throws {
    let runtime = try makeRuntime()
    let output = try runSnippet(
      runtime,
      "local v, err = json.decode(string.rep('[', 500) .. string.rep(']', 500)) return { v == nil, err }"
    )
    #expect(output == #"[true,"invalid JSON at byte 202: nested too deeply"]"#)
    let cycle = failureMessage {
      _ = try runSnippet(runtime, "local t = {} t.self = t return t")
    }
    #expect(
      cycle
        == "hook 'run' of script 't' returned a value that cannot be encoded as JSON: cannot encode JSON nested deeper than 200 levels (is there a cycle?)"
    )
  }

  @Test func undeclaredGlobalWriteIsError() throws {
    let runtime = try makeRuntime()
    let message = failureMessage { _ = try runSnippet(runtime, "counter = 1") }
    #expect(
      message == "snippet.lua:2: assignment to undeclared global 'counter' (declare it local)")
    let readMessage = failureMessage { _ = try runSnippet(runtime, "return undefinedName") }
    #expect(readMessage == "snippet.lua:2: undeclared global 'undefinedName'")
  }

  @Test func stringMetatableNotReachable() throws {
    let runtime = try makeRuntime()
    #expect(try runSnippet(runtime, "return getmetatable('')") == "false")
    let message = failureMessage {
      _ = try runSnippet(runtime, "getmetatable('').__index.upper = nil")
    }
    #expect(message == "snippet.lua:2: attempt to index a boolean value")
    let writeLibrary = failureMessage { _ = try runSnippet(runtime, "string.upper = nil") }
    #expect(
      writeLibrary == "snippet.lua:2: cannot modify string.upper: library tables are read-only")
    let rawWrite = failureMessage { _ = try runSnippet(runtime, "rawset(string, 'upper', 1)") }
    #expect(rawWrite == "snippet.lua:2: cannot modify a read-only table")
    let replaceMetatable = failureMessage {
      _ = try runSnippet(runtime, "setmetatable(string, {})")
    }
    #expect(replaceMetatable == "snippet.lua:2: cannot change a protected metatable")
    #expect(try runSnippet(runtime, "return ('abc'):upper()") == "\"ABC\"")
  }

  @Test func libraryChangesInvisibleToOtherScripts() throws {
    let runtime = try makeRuntime()
    _ = try runtime.loadScript(
      key: "a", source: "local string = {} return { run = function() string.x = 1 return 1 end }",
      chunkName: "a.lua")
    _ = try runtime.call(key: "a", hook: "run", argumentJSON: "{}", body: nil)
    #expect(try runSnippet(runtime, "return string.x == nil and string.upper('q')") == "\"Q\"")
  }

  @Test func finalizersRejected() throws {
    let runtime = try makeRuntime()
    let message = failureMessage {
      _ = try runSnippet(runtime, "setmetatable({}, { __gc = function() end })")
    }
    #expect(message == "snippet.lua:2: finalizers (__gc) are not available to scripts")
  }

  @Test func requireOfUnregisteredModuleFails() throws {
    let runtime = try makeRuntime()
    let message = failureMessage {
      _ = try runSnippet(runtime, "local os = require('os') return os")
    }
    #expect(message == "snippet.lua:2: module 'os' not found: only host modules can be required")
  }

  @Test func requireReturnsCachedHostModule() throws {
    let runtime = try makeRuntime()
    try runtime.addModule(
      name: "lib.counter",
      source: "local n = 0 return { next = function() n = n + 1 return n end }",
      chunkName: "providers/lib/counter.lua")
    let body =
      "local a = require('lib.counter') local b = require('lib.counter') return { a.next(), b.next(), a == b }"
    #expect(try runSnippet(runtime, body) == "[1,2,true]")
  }

  @Test func nullSurvivesRoundTripDistinctFromAbsent() throws {
    let runtime = try makeRuntime()
    let body = """
      return {
        isNull = ctx.a == json.null,
        absent = ctx.b == nil,
        echoed = ctx,
        emptyArray = ctx.list,
        emptyObject = ctx.object,
      }
      """
    let output = try runSnippet(
      runtime, body, argument: #"{"a":null,"list":[],"object":{},"n":[1,2.5,9007199254740993]}"#)
    #expect(output.contains("\"isNull\":true"))
    #expect(output.contains("\"absent\":true"))
    #expect(output.contains("\"a\":null"))
    #expect(output.contains("\"emptyArray\":[]"))
    #expect(output.contains("\"emptyObject\":{}"))
    #expect(output.contains("\"n\":[1,2.5,9007199254740993]"))
  }

  @Test func numbersKeepTypeAndPrecision() throws {
    let runtime = try makeRuntime()
    let output = try runSnippet(
      runtime,
      "local v = json.decode('[3, 0.1, 1e3, 123456789.123456789]') return { math.type(v[1]), math.type(v[3]), json.encode(v) }"
    )
    #expect(output == #"["integer","float","[3,0.1,1000,123456789.12345679]"]"#)
  }

  @Test func decodeOfInvalidTextReturnsNilAndMessage() throws {
    let runtime = try makeRuntime()
    let output = try runSnippet(
      runtime, "local v, err = json.decode('{\"a\":') return { v == nil, err }")
    #expect(output == #"[true,"invalid JSON at byte 6: unexpected end of text"]"#)
  }

  @Test func unencodableReturnNamesHook() throws {
    let runtime = try makeRuntime()
    let message = failureMessage { _ = try runSnippet(runtime, "return { f = function() end }") }
    #expect(
      message
        == "hook 'run' of script 't' returned a value that cannot be encoded as JSON: cannot encode a function value as JSON"
    )
  }

  @Test func binaryBodyReachesResponseIntact() throws {
    let runtime = try makeRuntime()
    _ = try runtime.loadScript(
      key: "b",
      source: """
        return { on_poll = function(ctx)
          local body = ctx.response.body
          local bytes = {}
          for i = 1, #body do bytes[i] = body:byte(i) end
          return { length = #body, bytes = bytes, status = ctx.response.statusCode }
        end }
        """, chunkName: "b.lua")
    let body: [UInt8] = [0, 255, 0x1B, 0x4C, 0, 10, 0xC3]
    let output = try runtime.call(
      key: "b", hook: "on_poll", argumentJSON: #"{"response":{"statusCode":200}}"#, body: body)
    #expect(output.contains("\"length\":7"))
    #expect(output.contains("\"bytes\":[0,255,27,76,0,10,195]"))
    #expect(output.contains("\"status\":200"))
    let created = try runtime.call(key: "b", hook: "on_poll", argumentJSON: "{}", body: [0])
    #expect(created.contains("\"length\":1"))
  }

  @Test func logForwardsLevelKeyAndMessage() throws {
    let recorder = LogRecorder()
    let runtime = try makeRuntime(recorder: recorder)
    _ = try runSnippet(runtime, "log.info('submitted', 42) log.warn('slow')")
    #expect(recorder.lines == ["info t: submitted 42", "warn t: slow"])
  }

  @Test func hostHelpersResolvePathsAndTemplates() throws {
    let runtime = try makeRuntime()
    let body = """
      local data = json.decode('{"a":{"b":[{"c":1},{"c":"two"}]},"id":"x y"}')
      local url, err = aq.expand("{base}/items/{id}", { base = "http://h", id = 7 })
      local missing, missingError = aq.expand("{base}/{nope}", { base = "b" })
      return {
        aq.path(data, "a.b.1.c"), aq.path(data, "a.b[0].c"), aq.path(data, "a.z") == nil,
        url, missing == nil, missingError,
        aq.url.origin("https://api.example.test:8443/v1/tasks?x=1"),
        aq.url.prefix("http://127.0.0.1:9/runway/v1/image_to_video", "/v1/"),
        aq.url.prefix("http://h/x", "/v1/") == nil,
        aq.url.encode("a b/c"), aq.url.join("http://h/base/", "x"), aq.url.join("http://h/base", "/y"),
        aq.header({ ["Content-Type"] = "text/html" }, "content-type"),
      }
      """
    let output = try runSnippet(runtime, body)
    #expect(
      output
        == #"["two",1,true,"http://h/items/7",true,"placeholder {nope} has no value","https://api.example.test:8443","http://127.0.0.1:9/runway",true,"a%20b%2Fc","http://h/base/x","http://h/y","text/html"]"#
    )
  }
}
