#ifndef ASYNCQUEUE_LUA_HOST_H
#define ASYNCQUEUE_LUA_HOST_H

// The host side of the Lua runtime. This header deliberately does not include lua.h: Swift
// sees only an opaque handle and plain C strings, and every Lua API call happens in C under
// lua_pcall, so a Lua error can never unwind through a Swift frame.

#include <stddef.h>

typedef struct aq_lua aq_lua;

enum aq_lua_log_level {
  AQ_LUA_LOG_DEBUG = 0,
  AQ_LUA_LOG_INFO = 1,
  AQ_LUA_LOG_WARN = 2,
  AQ_LUA_LOG_ERROR = 3,
};

/// Receives every `log.*` call a script makes. It must return normally: it may not raise a Lua
/// error or unwind in any other way.
typedef void (*aq_lua_log_fn)(
  void *context, int level, const char *script_key, const char *message);

/// Creates a state capped at `memory_limit` bytes while script code runs and at
/// `instruction_budget` VM instructions per `aq_lua_run`, and runs the trusted `prelude`, which
/// must return the table of sandbox operations. Returns NULL and sets `*error` (free it with
/// `aq_lua_free`) on failure.
aq_lua *aq_lua_open(
  size_t memory_limit, long long instruction_budget, const char *prelude, size_t prelude_len,
  aq_lua_log_fn log, void *log_context, char **error);

void aq_lua_close(aq_lua *host);

/// Calls the prelude's sandbox operation `operation` with `argc` string arguments (a NULL entry
/// in `args` passes nil) under the memory cap and the instruction budget. On success stores up
/// to `result_count` string results (NULL when a result is not a string) in `results` and
/// `result_lengths`, and returns 0. On failure returns -1 and sets `*error`. Free every returned
/// string with `aq_lua_free`.
int aq_lua_run(
  aq_lua *host, const char *operation, const char *const *args, const size_t *arg_lengths,
  int argc, int result_count, char **results, size_t *result_lengths, char **error);

void aq_lua_free(void *pointer);

#endif
