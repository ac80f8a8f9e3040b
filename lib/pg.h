/* pg: PostgreSQL reachability for readiness and `wxkf check`. The
 * callback path never touches PostgreSQL; the history reads that will keep
 * a lazy per-worker connection belong here too. */
#ifndef PG_H
#define PG_H

#include "kf.h"

/* 0 if a server at dsn accepts connections, else KF_EBACKEND, within 2 s.
 * Does not authenticate or keep a connection (libpq's PQpingParams). */
KF_WUR int pg_ping(const char *dsn);

#endif
