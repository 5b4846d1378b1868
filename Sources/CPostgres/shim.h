#ifndef ASYNCQUEUE_CPOSTGRES_SHIM_H
#define ASYNCQUEUE_CPOSTGRES_SHIM_H

#include <libpq-fe.h>

// PG_DIAG_SQLSTATE is a character constant from postgres_ext.h; this wrapper spares Swift from
// importing it as a number.
static inline const char *aq_pq_sqlstate(const PGresult *result) {
  return PQresultErrorField(result, PG_DIAG_SQLSTATE);
}

#endif
