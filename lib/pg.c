/* pg: the PostgreSQL adapter. */
#include "pg.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "version.h"

#include "banned.h"

/* The timeouts of each use, in one place (see pg.h). */
static const struct profile {
    const char *connect_s;          /* connect_timeout, per attempt */
    int statement_ms;               /* the session's statement_timeout */
    int deadline_ms;                /* the client's wait for an answer */
} profiles[] = {
    [PG_USE_PROBE] = { "2", 0, 0 },
    [PG_USE_REQUEST] = { "2", 5000, 7000 },
    [PG_USE_ARCHIVER] = { "5", 60000, 0 },
    [PG_USE_CLI] = { "10", 0, 0 },
};

/* TCP keepalive: a peer that vanished without a FIN (a host down, a
 * dropped route) is noticed after about 30 + 3 * 10 s of silence on an
 * idle connection. */
#define KEEPALIVE_IDLE "30"
#define KEEPALIVE_INTERVAL "10"
#define KEEPALIVE_COUNT "3"

struct pg_conn {
    char *dsn;
    const char *app;
    enum pg_use use;
    PGconn *db;                     /* NULL while disconnected */
    int (*hook)(struct pg_conn *c, void *arg);
    void *hook_arg;
    unsigned long connects;
};

int pg_classify(const char *state)
{
    if (!state || strlen(state) != 5 || !strncmp(state, "08", 2) ||
        !strncmp(state, "53", 2) || !strncmp(state, "57P0", 4) ||
        !strcmp(state, "57014"))
        return KF_EBACKEND;
    if (!strcmp(state, "23505"))
        return KF_EEXISTS;
    if (!strncmp(state, "22", 2) || !strncmp(state, "23", 2) ||
        !strncmp(state, "54", 2))
        return KF_EINVAL;
    return KF_EIO;
}

/* Fills e (if any) and returns rc. msg: its first line is kept. */
static int fail(struct pg_err *e, int rc, const char *state, const char *msg,
                int lost)
{
    if (e) {
        e->rc = rc;
        snprintf(e->sqlstate, sizeof(e->sqlstate), "%s",
                 state && strlen(state) == 5 ? state : "");
        msg = msg && *msg ? msg : kf_strerror(rc);
        snprintf(e->msg, sizeof(e->msg), "%.*s",
                 (int)strcspn(msg, "\n"), msg);
        e->lost = lost;
    }
    return rc;
}

/* Notices are not ours to print (lib/ never prints). */
static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* Connection parameters, left to right, later wins: our defaults, then
 * the dsn (expanded: its settings override the defaults), then what the
 * code relies on — the use's connect timeout (a dsn cannot lengthen a
 * request's wait) and UTF-8 (the text we send and parse). */
#define PARAM_KEYS                                                    \
    { "fallback_application_name", "keepalives", "keepalives_idle",   \
      "keepalives_interval", "keepalives_count", "dbname",            \
      "connect_timeout", "client_encoding", NULL }
#define PARAM_VALS(dsn, app, use)                                     \
    { (app), "1", KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT, \
      (dsn), profiles[use].connect_s, "UTF8", NULL }

int pg_new(const char *dsn, const char *app, enum pg_use use,
           struct pg_conn **out)
{
    struct pg_conn *c = calloc(1, sizeof(*c));

    *out = NULL;
    if (!c || !(c->dsn = strdup(dsn ? dsn : ""))) {
        free(c);
        return KF_ENOMEM;
    }
    c->app = app ? app : "wxkf";
    c->use = use;
    *out = c;
    return 0;
}

void pg_on_connect(struct pg_conn *c,
                   int (*fn)(struct pg_conn *c, void *arg), void *arg)
{
    c->hook = fn;
    c->hook_arg = arg;
}

void pg_disconnect(struct pg_conn *c)
{
    if (c && c->db)
        PQfinish(c->db);
    if (c)
        c->db = NULL;
}

void pg_close(struct pg_conn *c)
{
    if (!c)
        return;
    pg_disconnect(c);
    free(c->dsn);
    free(c);
}

int pg_connected(const struct pg_conn *c)
{
    return c && c->db && PQstatus(c->db) == CONNECTION_OK;
}

unsigned long pg_connects(const struct pg_conn *c)
{
    return c ? c->connects : 0;
}

int pg_in_transaction(const struct pg_conn *c)
{
    return pg_connected(c) && PQtransactionStatus(c->db) != PQTRANS_IDLE;
}

int pg_server_num(const struct pg_conn *c)
{
    return pg_connected(c) ? PQserverVersion(c->db) : 0;
}

static int session_settings(struct pg_conn *c, struct pg_err *e)
{
    char sql[64];

    if (profiles[c->use].statement_ms <= 0)
        return 0;
    snprintf(sql, sizeof(sql), "SET statement_timeout = %d",
             profiles[c->use].statement_ms);
    return pg_exec(c, sql, 0, NULL, 0, NULL, e);
}

int pg_connect(struct pg_conn *c, struct pg_err *e)
{
    static const char *const keys[] = PARAM_KEYS;
    int rc;

    if (!c)                         /* a caller that dropped its object */
        return fail(e, KF_EBACKEND, NULL, "not connected", 1);
    if (pg_connected(c))
        return 0;
    pg_disconnect(c);
    {
        const char *const vals[] = PARAM_VALS(c->dsn, c->app, c->use);

        c->db = PQconnectdbParams(keys, vals, 1);
    }
    if (!c->db)
        return fail(e, KF_ENOMEM, NULL, NULL, 1);
    if (PQstatus(c->db) != CONNECTION_OK) {
        rc = fail(e, KF_EBACKEND, NULL, PQerrorMessage(c->db), 1);
        pg_disconnect(c);
        return rc;
    }
    PQsetNoticeProcessor(c->db, quiet, NULL);
    c->connects++;
    rc = session_settings(c, e);
    if (rc == 0 && c->hook && (rc = c->hook(c, c->hook_arg)) < 0)
        fail(e, rc, NULL, "setting up the new connection failed", 1);
    if (rc < 0) {
        if (e)
            e->lost = 1;
        pg_disconnect(c);
    }
    return rc;
}

int pg_open(const char *dsn, const char *app, enum pg_use use,
            struct pg_conn **out, struct pg_err *e)
{
    int rc = pg_new(dsn, app, use, out);

    if (rc < 0)
        return fail(e, rc, NULL, NULL, 1);
    rc = pg_connect(*out, e);
    if (rc < 0) {
        pg_close(*out);
        *out = NULL;
    }
    return rc;
}

/* --- statements ---------------------------------------------------------- */

/* The failure of r (NULL: of the connection). A lost connection is
 * dropped. */
static int failed(struct pg_conn *c, PGresult *r, struct pg_err *e)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorMessage(r) : NULL;
    /* A session the server ended (57P01 shutdown, pg_terminate_backend)
     * says so before libpq sees the socket close. */
    int lost = PQstatus(c->db) != CONNECTION_OK ||
               (state && (!strncmp(state, "57P0", 4) ||
                          !strncmp(state, "08", 2)));
    int rc;

    if (!msg || !*msg)
        msg = PQerrorMessage(c->db);
    rc = fail(e, lost ? KF_EBACKEND : pg_classify(state), state, msg, lost);
    if (lost)
        pg_disconnect(c);
    return rc;
}

/* Waits until a result can be read without blocking, up to deadline
 * (0: none). No answer in time drops the connection. */
static int wait_ready(struct pg_conn *c, int64_t deadline, struct pg_err *e)
{
    while (PQisBusy(c->db)) {
        struct pollfd p = { PQsocket(c->db), POLLIN, 0 };
        int64_t left = deadline ? deadline - kf_mono_ms() : -1;
        int n;

        if ((deadline && left <= 0) || p.fd < 0) {
            pg_disconnect(c);
            return fail(e, KF_EBACKEND, NULL, "PostgreSQL did not answer "
                        "in time", 1);
        }
        n = poll(&p, 1, (int)left);
        if ((n < 0 && errno != EINTR) || (n > 0 && !PQconsumeInput(c->db)))
            return failed(c, NULL, e);
    }
    return 0;
}

static int64_t deadline_of(const struct pg_conn *c)
{
    int ms = profiles[c->use].deadline_ms;

    return ms > 0 ? kf_mono_ms() + ms : 0;
}

/* Reads every result of what was sent: *res (if res) gets the last one
 * when all succeeded; the first failure is reported. When copy, stops at
 * the COPY IN result instead. */
static int collect(struct pg_conn *c, int64_t deadline, int copy,
                   PGresult **res, struct pg_err *e)
{
    PGresult *r, *last = NULL;
    int rc = 0;

    while ((rc = wait_ready(c, deadline, e)) == 0 &&
           (r = PQgetResult(c->db)) != NULL) {
        ExecStatusType st = PQresultStatus(r);

        if (copy && st == PGRES_COPY_IN) {
            PQclear(r);
            PQclear(last);
            return 0;
        }
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
            st != PGRES_EMPTY_QUERY) {
            rc = failed(c, r, e);
            PQclear(r);
            PQclear(last);
            while (c->db && (r = PQgetResult(c->db)) != NULL)
                PQclear(r);         /* the rest of a simple query */
            return rc;
        }
        PQclear(last);
        last = r;
    }
    if (rc == 0 && copy)
        rc = failed(c, last, e);
    if (rc == 0 && res)
        *res = last;
    else
        PQclear(last);
    return rc;
}

/* One statement as the verbs send it. */
struct call {
    const char *sql, *name;         /* name: a prepared statement */
    int n;
    const char *const *params;      /* NULL: a simple query */
    const int *lens, *formats;
};

static int once(struct pg_conn *c, const struct call *k, PGresult **res,
                struct pg_err *e)
{
    int rc = pg_connect(c, e), ok;

    if (rc < 0)
        return rc;
    if (k->name)
        ok = PQsendQueryPrepared(c->db, k->name, k->n, k->params, k->lens,
                                 k->formats, 0);
    else if (k->params || k->n)
        ok = PQsendQueryParams(c->db, k->sql, k->n, NULL, k->params,
                               k->lens, k->formats, 0);
    else
        ok = PQsendQuery(c->db, k->sql);
    if (!ok)
        return failed(c, NULL, e);
    return collect(c, deadline_of(c), 0, res, e);
}

static int run(struct pg_conn *c, const struct call *k, unsigned flags,
               struct pg_res **res, struct pg_err *e)
{
    struct pg_err local;
    PGresult *r = NULL;
    int reused = c && c->db != NULL;
    int rc;

    if (!e)
        e = &local;
    rc = once(c, k, res ? &r : NULL, e);
    if (rc < 0 && e->lost && reused && (flags & PG_RETRY))
        rc = once(c, k, res ? &r : NULL, e);   /* on a new connection */
    if (res)
        *res = rc == 0 ? (struct pg_res *)r : NULL;
    return rc;
}

int pg_exec(struct pg_conn *c, const char *sql, int nparams,
            const char *const *params, unsigned flags, struct pg_res **res,
            struct pg_err *e)
{
    const struct call k = { sql, NULL, nparams, params, NULL, NULL };

    return run(c, &k, flags, res, e);
}

int pg_exec_len(struct pg_conn *c, const char *sql, int nparams,
                const char *const *params, const int *lens,
                const int *formats, struct pg_res **res, struct pg_err *e)
{
    const struct call k = { sql, NULL, nparams, params, lens, formats };

    return run(c, &k, 0, res, e);
}

int pg_exec_prepared(struct pg_conn *c, const char *name, int nparams,
                     const char *const *params, unsigned flags,
                     struct pg_res **res, struct pg_err *e)
{
    const struct call k = { NULL, name, nparams, params, NULL, NULL };

    return run(c, &k, flags, res, e);
}

int pg_prepare(struct pg_conn *c, const char *name, const char *sql,
               int nparams, struct pg_err *e)
{
    int rc = pg_connect(c, e);

    if (rc < 0)
        return rc;
    if (!PQsendPrepare(c->db, name, sql, nparams, NULL))
        return failed(c, NULL, e);
    return collect(c, deadline_of(c), 0, NULL, e);
}

int pg_copy_in(struct pg_conn *c, const char *sql, const char *data,
               size_t len, struct pg_err *e)
{
    int64_t deadline = deadline_of(c);
    int rc = pg_connect(c, e);

    if (rc < 0)
        return rc;
    if (len > (size_t)2147483647)
        return fail(e, KF_ETOOBIG, NULL, NULL, 0);
    if (!PQsendQuery(c->db, sql))
        return failed(c, NULL, e);
    rc = collect(c, deadline, 1, NULL, e);
    if (rc < 0)
        return rc;
    if (PQputCopyData(c->db, data ? data : "", (int)len) != 1 ||
        PQputCopyEnd(c->db, NULL) != 1)
        return failed(c, NULL, e);
    return collect(c, deadline, 0, NULL, e);
}

int pg_send(struct pg_conn *c, const char *sql, struct pg_err *e)
{
    int rc = pg_connect(c, e);

    if (rc == 0 && !PQsendQuery(c->db, sql))
        rc = failed(c, NULL, e);
    return rc;
}

int pg_collect(struct pg_conn *c, struct pg_err *e)
{
    if (!c || !c->db)
        return fail(e, KF_EBACKEND, NULL, "not connected", 1);
    return collect(c, deadline_of(c), 0, NULL, e);
}

/* --- results ------------------------------------------------------------- */

int pg_res_rows(const struct pg_res *res)
{
    return PQntuples((const PGresult *)res);
}

int pg_res_fields(const struct pg_res *res)
{
    return PQnfields((const PGresult *)res);
}

const char *pg_res_value(const struct pg_res *res, int row, int col)
{
    return PQgetvalue((const PGresult *)res, row, col);
}

size_t pg_res_len(const struct pg_res *res, int row, int col)
{
    int n = PQgetlength((const PGresult *)res, row, col);

    return n > 0 ? (size_t)n : 0;
}

int pg_res_isnull(const struct pg_res *res, int row, int col)
{
    return PQgetisnull((const PGresult *)res, row, col);
}

long pg_res_affected(const struct pg_res *res)
{
    const char *n = PQcmdTuples((PGresult *)res);

    return *n ? strtol(n, NULL, 10) : 0;
}

void pg_res_free(struct pg_res *res)
{
    PQclear((PGresult *)res);
}

/* --- probes -------------------------------------------------------------- */

int pg_ping(const char *dsn)
{
    static const char *const keys[] = PARAM_KEYS;
    const char *const vals[] = PARAM_VALS(dsn, "wxkf-check", PG_USE_PROBE);

    return PQpingParams(keys, vals, 1) == PQPING_OK ? 0 : KF_EBACKEND;
}

int pg_server_version(const char *dsn, struct version *out,
                      struct pg_err *e)
{
    struct pg_conn *c = NULL;
    int rc;

    if (e)
        memset(e, 0, sizeof(*e));
    rc = pg_open(dsn, "wxkf-check", PG_USE_PROBE, &c, e);
    if (rc == 0)
        rc = version_from_pg_num(pg_server_num(c), out);
    pg_close(c);
    return rc < 0 && rc != KF_EPARSE ? KF_EBACKEND : rc;
}
