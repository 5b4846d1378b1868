// A JSON codec for Lua 5.4 that keeps integers as integers and doubles exact, which the
// lua-cjson 2.1.0 shipped by Debian does not: it decodes every number as a float and encodes
// with at most 14 significant digits.

#include "lua_json.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AQ_JSON_MAX_DEPTH 200

void aq_json_push_null(lua_State *L) { lua_pushlightuserdata(L, NULL); }

void aq_json_setup(lua_State *L) {
  luaL_newmetatable(L, AQ_JSON_ARRAY_MT);
  lua_pushliteral(L, "array");
  lua_setfield(L, -2, "__jsontype");
  // Protect the shared metatable: scripts see this marker string instead of the table.
  lua_pushliteral(L, AQ_JSON_ARRAY_MARKER);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}

// ---- Encoding ----------------------------------------------------------------------------

// The output buffer lives in a userdata whose __gc frees it, so a Lua error raised halfway
// through an encode (out of memory, an unencodable value) cannot leak it.
typedef struct {
  char *data;
  size_t length;
  size_t capacity;
  lua_Alloc alloc;
  void *alloc_ud;
} json_buffer;

static int json_buffer_gc(lua_State *L) {
  json_buffer *buffer = lua_touserdata(L, 1);
  if (buffer->data != NULL) {
    buffer->alloc(buffer->alloc_ud, buffer->data, buffer->capacity, 0);
    buffer->data = NULL;
  }
  return 0;
}

static void buffer_reserve(lua_State *L, json_buffer *buffer, size_t extra) {
  if (buffer->length + extra <= buffer->capacity) return;
  size_t capacity = buffer->capacity < 256 ? 256 : buffer->capacity;
  while (capacity < buffer->length + extra) capacity *= 2;
  char *data = buffer->alloc(buffer->alloc_ud, buffer->data, buffer->capacity, capacity);
  if (data == NULL) luaL_error(L, "not enough memory to encode JSON");
  buffer->data = data;
  buffer->capacity = capacity;
}

static void buffer_add(lua_State *L, json_buffer *buffer, const char *bytes, size_t length) {
  buffer_reserve(L, buffer, length);
  memcpy(buffer->data + buffer->length, bytes, length);
  buffer->length += length;
}

#define buffer_add_literal(L, b, s) buffer_add((L), (b), (s), sizeof(s) - 1)

// Length of the valid UTF-8 sequence at `s`, or 0 when the bytes are not valid UTF-8.
static size_t utf8_sequence_length(const unsigned char *s, size_t available) {
  unsigned char c = s[0];
  size_t length;
  unsigned int codepoint;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    length = 2;
    codepoint = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    length = 3;
    codepoint = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    length = 4;
    codepoint = c & 0x07;
  } else {
    return 0;
  }
  if (available < length) return 0;
  for (size_t i = 1; i < length; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    codepoint = (codepoint << 6) | (s[i] & 0x3F);
  }
  if (length == 3 && (codepoint < 0x800 || (codepoint >= 0xD800 && codepoint <= 0xDFFF))) return 0;
  if (length == 4 && (codepoint < 0x10000 || codepoint > 0x10FFFF)) return 0;
  return length;
}

// Writes a JSON string. Bytes that are not valid UTF-8 become U+FFFD, because JSON text must be
// Unicode and a provider's error text is not always clean.
static void encode_string(lua_State *L, json_buffer *buffer, const char *s, size_t length) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *bytes = (const unsigned char *)s;
  buffer_add_literal(L, buffer, "\"");
  size_t i = 0;
  while (i < length) {
    unsigned char c = bytes[i];
    if (c == '"' || c == '\\') {
      char escaped[2] = {'\\', (char)c};
      buffer_add(L, buffer, escaped, 2);
      i++;
    } else if (c < 0x20) {
      char escaped[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
      switch (c) {
        case '\n': buffer_add_literal(L, buffer, "\\n"); break;
        case '\r': buffer_add_literal(L, buffer, "\\r"); break;
        case '\t': buffer_add_literal(L, buffer, "\\t"); break;
        default: buffer_add(L, buffer, escaped, 6); break;
      }
      i++;
    } else if (c < 0x80) {
      buffer_add(L, buffer, (const char *)bytes + i, 1);
      i++;
    } else {
      size_t sequence = utf8_sequence_length(bytes + i, length - i);
      if (sequence == 0) {
        buffer_add_literal(L, buffer, "\xEF\xBF\xBD");
        i++;
      } else {
        buffer_add(L, buffer, (const char *)bytes + i, sequence);
        i += sequence;
      }
    }
  }
  buffer_add_literal(L, buffer, "\"");
}

// Writes the shortest of %.15g, %.16g and %.17g that reads back as the same double.
static void encode_float(lua_State *L, json_buffer *buffer, double value) {
  if (isnan(value) || isinf(value)) luaL_error(L, "cannot encode %f as JSON", value);
  char text[40];
  for (int precision = 15; precision <= 17; precision++) {
    snprintf(text, sizeof text, "%.*g", precision, value);
    if (strtod(text, NULL) == value) break;
  }
  buffer_add(L, buffer, text, strlen(text));
}

// Returns 1 when the table at `index` is to be written as an array and stores its length.
static int table_is_array(lua_State *L, int index, lua_Integer *length) {
  if (lua_getmetatable(L, index)) {
    int marked = lua_getfield(L, -1, "__jsontype") == LUA_TSTRING &&
                 strcmp(lua_tostring(L, -1), "array") == 0;
    lua_pop(L, 2);
    if (marked) {
      *length = (lua_Integer)lua_rawlen(L, index);
      return 1;
    }
  }
  lua_Integer count = 0;
  lua_Integer max = 0;
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
      lua_pop(L, 1);
      return 0;
    }
    lua_Integer key = lua_tointeger(L, -1);
    if (key > max) max = key;
    count++;
  }
  *length = max;
  return count > 0 && count == max;
}

static void encode_value(lua_State *L, json_buffer *buffer, int index, int depth);

static void encode_table(lua_State *L, json_buffer *buffer, int index, int depth) {
  if (depth > AQ_JSON_MAX_DEPTH)
    luaL_error(L, "cannot encode JSON nested deeper than %d levels (is there a cycle?)",
               AQ_JSON_MAX_DEPTH);
  luaL_checkstack(L, 4, "JSON encoding");
  lua_Integer length = 0;
  if (table_is_array(L, index, &length)) {
    buffer_add_literal(L, buffer, "[");
    for (lua_Integer i = 1; i <= length; i++) {
      if (i > 1) buffer_add_literal(L, buffer, ",");
      lua_rawgeti(L, index, i);
      encode_value(L, buffer, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
    }
    buffer_add_literal(L, buffer, "]");
    return;
  }
  buffer_add_literal(L, buffer, "{");
  int first = 1;
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    if (!first) buffer_add_literal(L, buffer, ",");
    first = 0;
    int key_type = lua_type(L, -2);
    if (key_type == LUA_TSTRING) {
      size_t key_length;
      const char *key = lua_tolstring(L, -2, &key_length);
      encode_string(L, buffer, key, key_length);
    } else if (key_type == LUA_TNUMBER) {
      // Convert a copy: lua_tolstring on the key itself would confuse lua_next.
      lua_pushvalue(L, -2);
      size_t key_length;
      const char *key = lua_tolstring(L, -1, &key_length);
      encode_string(L, buffer, key, key_length);
      lua_pop(L, 1);
    } else {
      luaL_error(L, "cannot encode a table with a %s key as JSON", luaL_typename(L, -2));
    }
    buffer_add_literal(L, buffer, ":");
    encode_value(L, buffer, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
  }
  buffer_add_literal(L, buffer, "}");
}

static void encode_value(lua_State *L, json_buffer *buffer, int index, int depth) {
  switch (lua_type(L, index)) {
    case LUA_TNIL:
      buffer_add_literal(L, buffer, "null");
      break;
    case LUA_TBOOLEAN:
      if (lua_toboolean(L, index)) buffer_add_literal(L, buffer, "true");
      else buffer_add_literal(L, buffer, "false");
      break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, index)) {
        char text[32];
        snprintf(text, sizeof text, LUA_INTEGER_FMT, lua_tointeger(L, index));
        buffer_add(L, buffer, text, strlen(text));
      } else {
        encode_float(L, buffer, lua_tonumber(L, index));
      }
      break;
    case LUA_TSTRING: {
      size_t length;
      const char *s = lua_tolstring(L, index, &length);
      encode_string(L, buffer, s, length);
      break;
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, index) == NULL) {
        buffer_add_literal(L, buffer, "null");
        break;
      }
      luaL_error(L, "cannot encode a userdata value as JSON");
      break;
    case LUA_TTABLE:
      encode_table(L, buffer, index, depth);
      break;
    default:
      luaL_error(L, "cannot encode a %s value as JSON", luaL_typename(L, index));
  }
}

int aq_json_encode(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  json_buffer *buffer = lua_newuserdatauv(L, sizeof(json_buffer), 0);
  memset(buffer, 0, sizeof *buffer);
  buffer->alloc = lua_getallocf(L, &buffer->alloc_ud);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, json_buffer_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  encode_value(L, buffer, 1, 0);
  lua_pushlstring(L, buffer->data, buffer->length);
  lua_pushcfunction(L, json_buffer_gc);
  lua_pushvalue(L, 2);
  lua_call(L, 1, 0);
  return 1;
}

// ---- Decoding ----------------------------------------------------------------------------

typedef struct {
  const char *text;
  size_t length;
  size_t position;
  const char *error;
} json_parser;

static void skip_space(json_parser *p) {
  while (p->position < p->length) {
    char c = p->text[p->position];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->position++;
  }
}

static int fail(json_parser *p, const char *message) {
  if (p->error == NULL) p->error = message;
  return 0;
}

static int parse_value(lua_State *L, json_parser *p, int depth);

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int read_hex4(json_parser *p, size_t at, unsigned int *out) {
  if (at + 4 > p->length) return 0;
  unsigned int value = 0;
  for (size_t i = 0; i < 4; i++) {
    int digit = hex_value(p->text[at + i]);
    if (digit < 0) return 0;
    value = (value << 4) | (unsigned int)digit;
  }
  *out = value;
  return 1;
}

static size_t put_utf8(char *out, unsigned int codepoint) {
  if (codepoint < 0x80) {
    out[0] = (char)codepoint;
    return 1;
  }
  if (codepoint < 0x800) {
    out[0] = (char)(0xC0 | (codepoint >> 6));
    out[1] = (char)(0x80 | (codepoint & 0x3F));
    return 2;
  }
  if (codepoint < 0x10000) {
    out[0] = (char)(0xE0 | (codepoint >> 12));
    out[1] = (char)(0x80 | ((codepoint >> 6) & 0x3F));
    out[2] = (char)(0x80 | (codepoint & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (codepoint >> 18));
  out[1] = (char)(0x80 | ((codepoint >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((codepoint >> 6) & 0x3F));
  out[3] = (char)(0x80 | (codepoint & 0x3F));
  return 4;
}

// Parses the string starting at the opening quote and pushes it. Escapes only ever shorten
// the text, so the decoded bytes fit in a scratch userdata as long as the raw string.
static int parse_string(lua_State *L, json_parser *p) {
  size_t start = ++p->position;
  size_t end = start;
  int escaped = 0;
  while (end < p->length && p->text[end] != '"') {
    if ((unsigned char)p->text[end] < 0x20) return fail(p, "control character in string");
    if (p->text[end] == '\\') {
      escaped = 1;
      end++;
    }
    end++;
  }
  if (end >= p->length) return fail(p, "unterminated string");
  if (!escaped) {
    lua_pushlstring(L, p->text + start, end - start);
    p->position = end + 1;
    return 1;
  }
  char *out = lua_newuserdatauv(L, end - start, 0);
  size_t length = 0;
  size_t i = start;
  while (i < end) {
    char c = p->text[i];
    if (c != '\\') {
      out[length++] = c;
      i++;
      continue;
    }
    char e = p->text[i + 1];
    i += 2;
    switch (e) {
      case '"': out[length++] = '"'; break;
      case '\\': out[length++] = '\\'; break;
      case '/': out[length++] = '/'; break;
      case 'b': out[length++] = '\b'; break;
      case 'f': out[length++] = '\f'; break;
      case 'n': out[length++] = '\n'; break;
      case 'r': out[length++] = '\r'; break;
      case 't': out[length++] = '\t'; break;
      case 'u': {
        unsigned int codepoint;
        if (!read_hex4(p, i, &codepoint)) {
          lua_pop(L, 1);
          return fail(p, "invalid \\u escape");
        }
        i += 4;
        if (codepoint >= 0xD800 && codepoint <= 0xDBFF) {
          unsigned int low;
          if (i + 6 <= end && p->text[i] == '\\' && p->text[i + 1] == 'u' &&
              read_hex4(p, i + 2, &low) && low >= 0xDC00 && low <= 0xDFFF) {
            codepoint = 0x10000 + ((codepoint - 0xD800) << 10) + (low - 0xDC00);
            i += 6;
          } else {
            codepoint = 0xFFFD;
          }
        } else if (codepoint >= 0xDC00 && codepoint <= 0xDFFF) {
          codepoint = 0xFFFD;
        }
        length += put_utf8(out + length, codepoint);
        break;
      }
      default:
        lua_pop(L, 1);
        return fail(p, "invalid escape in string");
    }
  }
  lua_pushlstring(L, out, length);
  lua_remove(L, -2);
  p->position = end + 1;
  return 1;
}

static int parse_number(lua_State *L, json_parser *p) {
  size_t start = p->position;
  size_t i = start;
  int is_float = 0;
  if (i < p->length && p->text[i] == '-') i++;
  if (i >= p->length || p->text[i] < '0' || p->text[i] > '9') return fail(p, "invalid number");
  if (p->text[i] == '0') {
    i++;
  } else {
    while (i < p->length && p->text[i] >= '0' && p->text[i] <= '9') i++;
  }

  if (i < p->length && p->text[i] == '.') {
    is_float = 1;
    i++;
    if (i >= p->length || p->text[i] < '0' || p->text[i] > '9') return fail(p, "invalid number");
    while (i < p->length && p->text[i] >= '0' && p->text[i] <= '9') i++;
  }
  if (i < p->length && (p->text[i] == 'e' || p->text[i] == 'E')) {
    is_float = 1;
    i++;
    if (i < p->length && (p->text[i] == '+' || p->text[i] == '-')) i++;
    if (i >= p->length || p->text[i] < '0' || p->text[i] > '9') return fail(p, "invalid number");
    while (i < p->length && p->text[i] >= '0' && p->text[i] <= '9') i++;
  }

  char text[64];
  size_t length = i - start;
  p->position = i;
  if (length >= sizeof text) {
    // Too many digits for an integer: read it as a double.
    char *copy = lua_newuserdatauv(L, length + 1, 0);
    memcpy(copy, p->text + start, length);
    copy[length] = '\0';
    double value = strtod(copy, NULL);
    lua_pop(L, 1);
    lua_pushnumber(L, value);
    return 1;
  }
  memcpy(text, p->text + start, length);
  text[length] = '\0';
  // lua_stringtonumber yields an integer when the digits fit in one and a float otherwise.
  if (!is_float && lua_stringtonumber(L, text) != 0) return 1;
  lua_pushnumber(L, strtod(text, NULL));
  return 1;
}

static int match_word(json_parser *p, const char *word) {
  size_t length = strlen(word);
  if (p->position + length > p->length || memcmp(p->text + p->position, word, length) != 0)
    return fail(p, "invalid literal");
  p->position += length;
  return 1;
}

static int parse_array(lua_State *L, json_parser *p, int depth) {
  p->position++;
  lua_newtable(L);
  luaL_setmetatable(L, AQ_JSON_ARRAY_MT);
  skip_space(p);
  if (p->position < p->length && p->text[p->position] == ']') {
    p->position++;
    return 1;
  }
  for (lua_Integer i = 1;; i++) {
    if (!parse_value(L, p, depth + 1)) return 0;
    lua_rawseti(L, -2, i);
    skip_space(p);
    if (p->position >= p->length) return fail(p, "unterminated array");
    char c = p->text[p->position++];
    if (c == ']') return 1;
    if (c != ',') return fail(p, "expected ',' or ']' in array");
  }
}

static int parse_object(lua_State *L, json_parser *p, int depth) {
  p->position++;
  lua_newtable(L);
  skip_space(p);
  if (p->position < p->length && p->text[p->position] == '}') {
    p->position++;
    return 1;
  }
  for (;;) {
    skip_space(p);
    if (p->position >= p->length || p->text[p->position] != '"')
      return fail(p, "expected a string key in object");
    if (!parse_string(L, p)) return 0;
    skip_space(p);
    if (p->position >= p->length || p->text[p->position] != ':')
      return fail(p, "expected ':' after object key");
    p->position++;
    if (!parse_value(L, p, depth + 1)) return 0;
    lua_rawset(L, -3);
    skip_space(p);
    if (p->position >= p->length) return fail(p, "unterminated object");
    char c = p->text[p->position++];
    if (c == '}') return 1;
    if (c != ',') return fail(p, "expected ',' or '}' in object");
  }
}

// Pushes one value and returns 1, or returns 0 with p->error set. On failure the values
// pushed so far stay on the stack; the caller resets the top.
static int parse_value(lua_State *L, json_parser *p, int depth) {
  if (depth > AQ_JSON_MAX_DEPTH) return fail(p, "nested too deeply");
  luaL_checkstack(L, 3, "JSON decoding");
  skip_space(p);
  if (p->position >= p->length) return fail(p, "unexpected end of text");
  switch (p->text[p->position]) {
    case '{': return parse_object(L, p, depth);
    case '[': return parse_array(L, p, depth);
    case '"': return parse_string(L, p);
    case 't':
      if (!match_word(p, "true")) return 0;
      lua_pushboolean(L, 1);
      return 1;
    case 'f':
      if (!match_word(p, "false")) return 0;
      lua_pushboolean(L, 0);
      return 1;
    case 'n':
      if (!match_word(p, "null")) return 0;
      aq_json_push_null(L);
      return 1;
    default: return parse_number(L, p);
  }
}

int aq_json_decode(lua_State *L) {
  size_t length;
  const char *text = luaL_checklstring(L, 1, &length);
  json_parser parser = {text, length, 0, NULL};
  lua_settop(L, 1);
  if (parse_value(L, &parser, 0)) {
    skip_space(&parser);
    if (parser.position == parser.length) return 1;
    fail(&parser, "unexpected text after the value");
  }
  lua_settop(L, 1);
  lua_pushnil(L);
  lua_pushfstring(L, "invalid JSON at byte %I: %s", (lua_Integer)parser.position + 1,
                  parser.error);
  return 2;
}
