/* pg: the PostgreSQL adapter — the only module that includes libpq.
 * Connections (one table of per-use timeouts, the session settings every
 * connection gets, reconnects), statements (text parameters only: SQL
 * text is never built from input), COPY, and one classification of
 * PostgreSQL's errors into kf codes with one error-detail struct. Also
 * the reachability probe for readiness and `wxkf check`, and the
 * server's version. The callback path never touches PostgreSQL. */
#ifndef PG_H
#define PG_H

#include <stddef.h>

#include "kf.h"

struct pg_conn;                     /* one connection (libpq's inside) */
struct pg_res;                      /* one statement's result */

/* What a connection is for; each use has its timeouts in one table in
 * pg.c (docs/operations.md, "PostgreSQL connections"):
 *                   connect  statement_timeout  client waits at most
 *   PG_USE_PROBE      2 s      -                  -
 *   PG_USE_REQUEST    2 s      5 s                7 s (then drops it)
 *   PG_USE_ARCHIVER   5 s      60 s               -
 *   PG_USE_CLI       10 s      -                  -
 * These override a connect_timeout in the dsn. */
enum pg_use {
    PG_USE_PROBE,                   /* readiness, `wxkf check`, version */
    PG_USE_REQUEST,                 /* inside a FastCGI request */
    PG_USE_ARCHIVER,                /* `wxkf jobs`: the archiver */
    PG_USE_CLI,                     /* commands, migrations, jobs' sync */
};

/* The detail of a failure, filled by every function that takes one
 * (NULL is fine): the kf code returned, PostgreSQL's SQLSTATE ("" when
 * the server did not answer) and the first line of its message (which
 * may quote data: it goes to logs, never to HTTP clients). */
struct pg_err {
    int rc;
    char sqlstate[6];
    char msg[256];
    int lost;                       /* the connection is gone */
};

/* The one classification (rc of every failing call):
 *   KF_EBACKEND  no connection, connection lost, server shutting down or
 *                out of resources (08, 53, 57P0x), a statement cancelled
 *                by statement_timeout (57014), no answer in time
 *   KF_EEXISTS   unique violation (23505)
 *   KF_EINVAL    data the server refuses (22, other 23, 54)
 *   KF_EIO       anything else (schema, permissions, syntax: our fault
 *                or the deployment's)
 *   KF_ENOMEM    out of memory. */
int pg_classify(const char *sqlstate);

/* A connection object for dsn (copied) that is not connected yet:
 * pg_connect or the first statement connects. app is the
 * fallback_application_name (a static string). On success *out is new;
 * free it with pg_close(). KF_ENOMEM only. */
KF_WUR int pg_new(const char *dsn, const char *app, enum pg_use use,
                  struct pg_conn **out);
/* pg_new + pg_connect; on failure *out is NULL and nothing is kept. */
KF_WUR int pg_open(const char *dsn, const char *app, enum pg_use use,
                   struct pg_conn **out, struct pg_err *e);
void pg_close(struct pg_conn *c);               /* NULL is fine */
/* Every verb below takes a NULL c as "not connected" (KF_EBACKEND). */

/* Runs after every successful connect (before any statement), e.g. to
 * prepare statements; a failure there drops the connection. arg is
 * borrowed. */
void pg_on_connect(struct pg_conn *c,
                   int (*fn)(struct pg_conn *c, void *arg), void *arg);
/* 0 if connected; else connects (within the use's connect timeout),
 * applies the session settings and the on_connect hook. This is the only
 * place connections are made or remade. */
KF_WUR int pg_connect(struct pg_conn *c, struct pg_err *e);
/* Drops the connection (an open transaction is rolled back by the
 * server); the next statement reconnects. */
void pg_disconnect(struct pg_conn *c);
int pg_connected(const struct pg_conn *c);      /* 1 or 0 */
unsigned long pg_connects(const struct pg_conn *c); /* made so far */
int pg_in_transaction(const struct pg_conn *c);     /* 1 or 0 */
/* libpq's PQserverVersion of the connection (0 when not connected). */
int pg_server_num(const struct pg_conn *c);

/* Flags of pg_exec. */
enum {
    /* The statement only reads: when the connection was found broken
     * (a restarted server), reconnect and run it once more. */
    PG_RETRY = 1,
};

/* Runs sql: with nparams text parameters (NULL = SQL NULL) as one
 * statement, or with params NULL as a simple query (several statements
 * allowed). Connects first if needed. On success *res (if res) is new:
 * pg_res_free() it. A lost connection is dropped (the next call
 * reconnects). */
KF_WUR int pg_exec(struct pg_conn *c, const char *sql, int nparams,
                   const char *const *params, unsigned flags,
                   struct pg_res **res, struct pg_err *e);
/* Same with lens[i] bytes of params[i], binary when formats[i] is 1. */
KF_WUR int pg_exec_len(struct pg_conn *c, const char *sql, int nparams,
                       const char *const *params, const int *lens,
                       const int *formats, struct pg_res **res,
                       struct pg_err *e);
/* pg_prepare makes sql the prepared statement name on the current
 * connection (call it from the on_connect hook, so that every new
 * connection has it); pg_exec_prepared runs it like pg_exec. */
KF_WUR int pg_prepare(struct pg_conn *c, const char *name, const char *sql,
                      int nparams, struct pg_err *e);
KF_WUR int pg_exec_prepared(struct pg_conn *c, const char *name,
                            int nparams, const char *const *params,
                            unsigned flags, struct pg_res **res,
                            struct pg_err *e);
/* COPY … FROM STDIN with data[0..len) as the whole input. */
KF_WUR int pg_copy_in(struct pg_conn *c, const char *sql, const char *data,
                      size_t len, struct pg_err *e);
/* Sends a simple query without waiting; pg_collect then reads all of its
 * results (0 only if every statement succeeded). Between them the
 * caller may do other work. */
KF_WUR int pg_send(struct pg_conn *c, const char *sql, struct pg_err *e);
KF_WUR int pg_collect(struct pg_conn *c, struct pg_err *e);

/* Results: rows, fields, values (NUL-terminated text, "" for NULL),
 * their lengths, NULL-ness and the affected-row count. Borrowed from res. */
int pg_res_rows(const struct pg_res *res);
int pg_res_fields(const struct pg_res *res);
const char *pg_res_value(const struct pg_res *res, int row, int col);
size_t pg_res_len(const struct pg_res *res, int row, int col);
int pg_res_isnull(const struct pg_res *res, int row, int col);
long pg_res_affected(const struct pg_res *res);
void pg_res_free(struct pg_res *res);           /* NULL is fine */

/* 0 if a server at dsn accepts connections, else KF_EBACKEND, within the
 * probe's connect timeout. Does not authenticate or keep a connection
 * (libpq's PQpingParams). */
KF_WUR int pg_ping(const char *dsn);

struct version;
/* Logs in at dsn (PG_USE_PROBE), reads the server's version and logs
 * out. KF_EBACKEND when it cannot log in: e->msg (e may be NULL; cleared
 * first) gets libpq's reason (its first line); KF_EPARSE when the server
 * did not say its version. */
KF_WUR int pg_server_version(const char *dsn, struct version *out,
                             struct pg_err *e);

#endif
