/* pg: PostgreSQL reachability for readiness and `wxkf check`, and the
 * server's version. The
 * callback path never touches PostgreSQL; the history reads that will keep
 * a lazy per-worker connection belong here too. */
#ifndef PG_H
#define PG_H

#include "kf.h"

/* 0 if a server at dsn accepts connections, else KF_EBACKEND, within 2 s.
 * Does not authenticate or keep a connection (libpq's PQpingParams). */
KF_WUR int pg_ping(const char *dsn);

struct version;
/* Logs in at dsn (within 2 s), reads the server's version and logs out.
 * KF_EBACKEND when it cannot log in: err[0..n) gets libpq's reason (its
 * first line); KF_EPARSE when the server did not say its version. */
KF_WUR int pg_server_version(const char *dsn, struct version *out,
                             char *err, size_t n);

#endif
