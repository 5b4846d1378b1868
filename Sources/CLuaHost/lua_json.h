#ifndef ASYNCQUEUE_LUA_JSON_H
#define ASYNCQUEUE_LUA_JSON_H

#include <lua.h>

// Registry key of the metatable that marks a table as a JSON array. Any metatable whose raw
// field `__jsontype` is "array" marks an array too.
#define AQ_JSON_ARRAY_MT "asyncqueue.json.array"

// What getmetatable returns for a decoded JSON array.
#define AQ_JSON_ARRAY_MARKER "json array"

/// Pushes the JSON null sentinel, a light userdata holding NULL (the same value as lua-cjson's).
void aq_json_push_null(lua_State *L);

/// json.encode(value) -> string. Raises on a value JSON cannot represent.
int aq_json_encode(lua_State *L);

/// json.decode(text) -> value, or nil and a message when the text is not valid JSON.
int aq_json_decode(lua_State *L);

/// Creates the array metatable in the registry. Call once while setting up the state.
void aq_json_setup(lua_State *L);

#endif
