// State creation, limits and the protected entry point for every call from Swift into Lua.
//
// Safety rule: Swift calls only the functions declared in lua_host.h. Each of them does its
// Lua work inside lua_pcall, so a Lua error (including out of memory while pushing an
// argument) unwinds only C frames. The log callback into Swift runs after the arguments are
// checked and must return normally.

#include "lua_host.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lua_json.h"

#define AQ_SANDBOX_KEY "asyncqueue.sandbox"

struct aq_lua {
  lua_State *L;
  size_t memory_used;
  size_t memory_limit;
  int memory_enforced;
  int memory_exceeded;
  int instruction_budget;
  int budget_exceeded;
  aq_lua_log_fn log;
  void *log_context;
};

static char *copy_bytes(const char *bytes, size_t length) {
  char *copy = malloc(length + 1);
  if (copy == NULL) return NULL;
  memcpy(copy, bytes, length);
  copy[length] = '\0';
  return copy;
}

static char *copy_string(const char *text) { return copy_bytes(text, strlen(text)); }

static void count_hook(lua_State *L, lua_Debug *ar);

// Allocator that counts the bytes the state uses and enforces the cap while `memory_enforced`
// is set. Growth past the cap is granted up to a reserve of a quarter of the cap (at least
// 1 MiB). It arms the count hook to fire on the next instruction, which raises the error with
// the script's file and line. Growth past the reserve is rejected, so Lua raises LUA_ERRMEM
// without a location, and the surrounding lua_pcall catches it.
static void *limited_alloc(void *ud, void *pointer, size_t old_size, size_t new_size) {
  struct aq_lua *host = ud;
  if (pointer == NULL) old_size = 0;
  if (new_size == 0) {
    free(pointer);
    host->memory_used -= old_size;
    return NULL;
  }
  if (host->memory_enforced && new_size > old_size &&
      host->memory_used + (new_size - old_size) > host->memory_limit) {
    size_t reserve = host->memory_limit / 4 > (1u << 20) ? host->memory_limit / 4 : (1u << 20);
    if (!host->memory_exceeded) {
      host->memory_exceeded = 1;
      // lua_sethook only stores the hook and sets a flag in each Lua call frame, so it is
      // safe while Lua is in the middle of an allocation.
      lua_sethook(host->L, count_hook, LUA_MASKCOUNT, 1);
    }
    if (host->memory_used + (new_size - old_size) > host->memory_limit + reserve) return NULL;
  }
  void *resized = realloc(pointer, new_size);
  if (resized == NULL) return NULL;
  host->memory_used = host->memory_used - old_size + new_size;
  return resized;
}

static struct aq_lua *host_of(lua_State *L) {
  void *ud = NULL;
  lua_getallocf(L, &ud);
  return ud;
}

// Fires once the budget is spent, or on the first instruction after the memory cap was
// passed, and re-arms itself to fire on every instruction. A pcall in the script that catches
// the error runs at most one more instruction before the error is raised again, so the call
// can only unwind.
static void count_hook(lua_State *L, lua_Debug *ar) {
  struct aq_lua *host = host_of(L);
  if (!host->budget_exceeded) {
    host->budget_exceeded = 1;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
  }
  int located = lua_getinfo(L, "Sl", ar) && ar->currentline > 0;
  if (host->memory_exceeded) {
    lua_Integer limit = (lua_Integer)host->memory_limit;
    if (located) {
      lua_pushfstring(L, "%s:%d: script exceeded the memory limit of %I bytes", ar->short_src,
                      ar->currentline, limit);
    } else {
      lua_pushfstring(L, "script exceeded the memory limit of %I bytes", limit);
    }
  } else if (located) {
    lua_pushfstring(L, "%s:%d: script exceeded its budget of %d instructions", ar->short_src,
                    ar->currentline, host->instruction_budget);
  } else {
    lua_pushfstring(L, "script exceeded its budget of %d instructions", host->instruction_budget);
  }
  lua_error(L);
}

// host.log(level, script_key, message)
static int host_log(lua_State *L) {
  static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
  int level = luaL_checkoption(L, 1, NULL, levels);
  const char *key = luaL_checkstring(L, 2);
  const char *message = luaL_checkstring(L, 3);
  struct aq_lua *host = host_of(L);
  if (host->log != NULL) host->log(host->log_context, level, key, message);
  return 0;
}

// Turns any error value into a message string. Lua's own runtime errors and error("...")
// already start with "chunkname:line:".
static int message_handler(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING) return 1;
  if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
  lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  return 1;
}

typedef struct {
  const char *prelude;
  size_t prelude_length;
} setup_request;

static void open_library(lua_State *L, const char *name, lua_CFunction open) {
  luaL_requiref(L, name, open, 1);
  lua_pop(L, 1);
}

// Runs under lua_pcall: opens the allowed standard libraries, builds the host table the
// prelude receives, runs the prelude and stores the sandbox table it returns.
static int setup_state(lua_State *L) {
  const setup_request *request = lua_touserdata(L, 1);
  open_library(L, LUA_GNAME, luaopen_base);
  open_library(L, LUA_TABLIBNAME, luaopen_table);
  open_library(L, LUA_STRLIBNAME, luaopen_string);
  open_library(L, LUA_MATHLIBNAME, luaopen_math);
  open_library(L, LUA_UTF8LIBNAME, luaopen_utf8);
  open_library(L, LUA_OSLIBNAME, luaopen_os);
  aq_json_setup(L);

  if (luaL_loadbufferx(L, request->prelude, request->prelude_length, "=prelude", "t") != LUA_OK)
    return lua_error(L);
  lua_createtable(L, 0, 6);
  lua_pushcfunction(L, aq_json_encode);
  lua_setfield(L, -2, "json_encode");
  lua_pushcfunction(L, aq_json_decode);
  lua_setfield(L, -2, "json_decode");
  aq_json_push_null(L);
  lua_setfield(L, -2, "json_null");
  luaL_getmetatable(L, AQ_JSON_ARRAY_MT);
  lua_setfield(L, -2, "json_array_mt");
  lua_pushcfunction(L, host_log);
  lua_setfield(L, -2, "log");
  lua_call(L, 1, 1);
  if (!lua_istable(L, -1)) return luaL_error(L, "the prelude must return a table");
  lua_setfield(L, LUA_REGISTRYINDEX, AQ_SANDBOX_KEY);

  // The prelude keeps what it needs in upvalues; scripts never see the global table, and
  // nothing can reach the os functions it leaves out.
  lua_pushglobaltable(L);
  lua_pushnil(L);
  lua_setfield(L, -2, "os");
  lua_pop(L, 1);
  return 0;
}

aq_lua *aq_lua_open(size_t memory_limit, long long instruction_budget, const char *prelude,
                    size_t prelude_length, aq_lua_log_fn log, void *log_context, char **error) {
  *error = NULL;
  struct aq_lua *host = calloc(1, sizeof *host);
  if (host == NULL) {
    *error = copy_string("not enough memory to create a Lua state");
    return NULL;
  }
  host->memory_limit = memory_limit;
  if (instruction_budget < 1) instruction_budget = 1;
  host->instruction_budget = instruction_budget > INT_MAX ? INT_MAX : (int)instruction_budget;
  host->log = log;
  host->log_context = log_context;
  host->L = lua_newstate(limited_alloc, host);
  if (host->L == NULL) {
    free(host);
    *error = copy_string("not enough memory to create a Lua state");
    return NULL;
  }
  setup_request request = {prelude, prelude_length};
  lua_pushcfunction(host->L, message_handler);
  lua_pushcfunction(host->L, setup_state);
  lua_pushlightuserdata(host->L, &request);
  if (lua_pcall(host->L, 1, 0, 1) != LUA_OK) {
    const char *message = lua_tostring(host->L, -1);
    *error = copy_string(message != NULL ? message : "failed to set up the Lua state");
    lua_close(host->L);
    free(host);
    return NULL;
  }
  lua_settop(host->L, 0);
  return host;
}

void aq_lua_close(aq_lua *host) {
  if (host == NULL) return;
  host->memory_enforced = 0;
  lua_close(host->L);
  free(host);
}

void aq_lua_free(void *pointer) { free(pointer); }

typedef struct {
  const char *operation;
  const char *const *args;
  const size_t *arg_lengths;
  int argc;
  int result_count;
} run_request;

// Runs under lua_pcall: pushes the operation and its arguments and calls it. Pushing happens
// here, inside the protected call, so an allocation failure while pushing is caught too.
static int run_operation(lua_State *L) {
  const run_request *request = lua_touserdata(L, 1);
  lua_settop(L, 0);
  luaL_checkstack(L, request->argc + 2, "sandbox operation arguments");
  lua_getfield(L, LUA_REGISTRYINDEX, AQ_SANDBOX_KEY);
  if (lua_getfield(L, -1, request->operation) != LUA_TFUNCTION)
    return luaL_error(L, "the prelude has no operation '%s'", request->operation);
  lua_remove(L, 1);
  for (int i = 0; i < request->argc; i++) {
    if (request->args[i] == NULL) lua_pushnil(L);
    else lua_pushlstring(L, request->args[i], request->arg_lengths[i]);
  }
  lua_call(L, request->argc, request->result_count);
  return request->result_count;
}

int aq_lua_run(aq_lua *host, const char *operation, const char *const *args,
               const size_t *arg_lengths, int argc, int result_count, char **results,
               size_t *result_lengths, char **error) {
  lua_State *L = host->L;
  *error = NULL;
  for (int i = 0; i < result_count; i++) {
    results[i] = NULL;
    result_lengths[i] = 0;
  }
  run_request request = {operation, args, arg_lengths, argc, result_count};

  lua_settop(L, 0);
  if (!lua_checkstack(L, 3 + result_count)) {
    *error = copy_string("Lua stack overflow");
    return -1;
  }
  lua_pushcfunction(L, message_handler);
  lua_pushcfunction(L, run_operation);
  lua_pushlightuserdata(L, &request);

  host->memory_exceeded = 0;
  host->budget_exceeded = 0;
  host->memory_enforced = 1;
  lua_sethook(L, count_hook, LUA_MASKCOUNT, host->instruction_budget);
  int status = lua_pcall(L, 1, result_count, 1);
  lua_sethook(L, NULL, 0, 0);
  host->memory_enforced = 0;

  int outcome = 0;
  if (status != LUA_OK) {
    if (status == LUA_ERRMEM && host->memory_exceeded) {
      char message[128];
      snprintf(message, sizeof message, "script exceeded the memory limit of %zu bytes",
               host->memory_limit);
      *error = copy_string(message);
    } else {
      const char *message = lua_tostring(L, -1);
      *error = copy_string(message != NULL ? message : "unknown Lua error");
    }
    outcome = -1;
  } else {
    for (int i = 0; i < result_count; i++) {
      int index = 2 + i;
      if (lua_type(L, index) != LUA_TSTRING) continue;
      size_t length;
      const char *text = lua_tolstring(L, index, &length);
      results[i] = copy_bytes(text, length);
      result_lengths[i] = length;
    }
  }
  lua_settop(L, 0);
  if (host->memory_exceeded) lua_gc(L, LUA_GCCOLLECT);
  return outcome;
}
