#ifndef ASYNCQUEUE_CSQLITE_SHIM_H
#define ASYNCQUEUE_CSQLITE_SHIM_H

#include <sqlite3.h>

// SQLITE_TRANSIENT is a cast macro that Swift cannot import: these binders copy the value.
static inline int aq_sqlite_bind_text(sqlite3_stmt *stmt, int index, const char *text, int length) {
  return sqlite3_bind_text(stmt, index, text, length, SQLITE_TRANSIENT);
}

static inline int aq_sqlite_bind_blob(sqlite3_stmt *stmt, int index, const void *data, int length) {
  return sqlite3_bind_blob(stmt, index, data, length, SQLITE_TRANSIENT);
}

#endif
