/* worker: `wxkf fcgi` — one FastCGI worker process. fd 0 is the listen
 * socket handed over by spawn-fcgi; requests are served one at a time;
 * SIGTERM, SIGINT, SIGQUIT and SIGUSR1 finish the current request and exit. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "fcgi.h"
#include "metrics.h"
#include "pg.h"
#include "version.h"

#include "banned.h"

static volatile sig_atomic_t stopping;

/* Only the flag: libfcgi's own shutdown flag (FCGX_ShutdownPending) is
 * never set. In libfcgi 2.4.2, a signal that interrupts OS_Accept's
 * wait for a new connection's first bytes drops that connection (nginx
 * answers 502), and with the flag set OS_Accept then loops forever on
 * the closed descriptor: the worker never exits. The stop signals are
 * instead blocked from the accept to the end of the request (below). */
static void on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

struct kf_str fcgi_param(const struct fcgi_req *r, const char *name)
{
    return kf_str_c(FCGX_GetParam(name, r->fx->envp));
}

int fcgi_read_body(struct fcgi_req *r, size_t max)
{
    struct kf_str cl = fcgi_param(r, "CONTENT_LENGTH");
    uint64_t want = 0;
    char chunk[8192];
    int n;

    if (cl.len && kf_parse_u64(cl, &want) < 0)
        return KF_EPARSE;
    if (want > max)
        return KF_ETOOBIG;
    kf_buf_init(&r->body, max);
    if (cl.len && want == 0)
        return 0;
    while ((n = FCGX_GetStr(chunk, sizeof(chunk), r->fx->in)) > 0) {
        int rc = kf_buf_append(&r->body, chunk, (size_t)n);

        if (rc < 0)
            return rc;
    }
    if (cl.len && r->body.len != want)
        return KF_EPARSE;     /* client went away mid-body */
    return 0;
}

void fcgi_respond(struct fcgi_req *r, int status, const char *content_type,
                  const char *extra_headers, struct kf_str body)
{
    char head[1024];
    int n;

    /* libfcgi's own printf knows neither %zu nor %.*s: format here. */
    n = snprintf(head, sizeof(head),
                 "Status: %d %s\r\nContent-Type: %s\r\n"
                 "Content-Length: %zu\r\nX-Request-Id: %.*s\r\n"
                 "X-Content-Type-Options: nosniff\r\n%s\r\n",
                 status, http_reason(status), content_type, body.len,
                 (int)r->rid.len, r->rid.p,
                 extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n >= sizeof(head))
        return;
    r->status = status;
    FCGX_PutStr(head, n, r->fx->out);
    if (body.len && !kf_str_eq_c(r->method, "HEAD"))
        FCGX_PutStr(body.p, (int)body.len, r->fx->out);
}

void fcgi_error(struct fcgi_req *r, int status, const char *code,
                const char *message, const char *extra_headers)
{
    char text[512], *s;
    json_t *j;

    /* messages can carry upstream text (PostgreSQL, WeChat): bounded,
     * valid UTF-8, escaped by jansson */
    snprintf(text, sizeof(text), "%s", message ? message : "");
    kf_utf8_trim(text);
    j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", text);
    s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(j);
    if (!s) {
        fcgi_respond(r, 500, "application/json", NULL,
                     KF_STR("{\"error\":{\"code\":\"internal_error\","
                            "\"message\":\"internal error\"}}\n"));
        return;
    }
    fcgi_respond(r, status, "application/json", extra_headers, kf_str_c(s));
    free(s);
}

void fcgi_json_with(struct fcgi_req *r, int status, json_t *body,
                    const char *extra_headers)
{
    /* 15 digits: a figure rounded to 244.4 is written 244.4 */
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII |
                                          JSON_REAL_PRECISION(15))
                   : NULL;

    json_decref(body);
    if (!s) {
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
        return;
    }
    fcgi_respond(r, status, "application/json", extra_headers, kf_str_c(s));
    free(s);
}

void fcgi_json(struct fcgi_req *r, int status, json_t *body)
{
    fcgi_json_with(r, status, body, NULL);
}

/* The request path without the query string. */
static struct kf_str request_path(const struct fcgi_req *r)
{
    struct kf_str p = fcgi_param(r, "DOCUMENT_URI");
    const char *q;

    if (p.len)
        return p;
    p = fcgi_param(r, "REQUEST_URI");
    q = memchr(p.p, '?', p.len);
    if (q)
        p.len = (size_t)(q - p.p);
    return p;
}

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The request in the metrics (by route pattern and status; a callback's
 * time by mode) and, above [log] slow_ms, a slow-request line. */
static void account(struct fcgi_req *r, int64_t us)
{
    struct app *app = r->app;
    const char *route = r->route ? r->route : "unmatched";
    char labels[METRICS_LABELS_MAX + 1], status[8];

    snprintf(status, sizeof(status), "%d", r->status);
    if (metrics_labels(labels, sizeof(labels), 2, "route", route, "status",
                       status) == 0)
        metrics_inc(app->metrics, METRICS_HTTP_REQUESTS, labels, 1);
    if (r->route && strcmp(r->route, "/wechat") == 0 &&
        kf_str_eq_c(r->method, "POST"))
        metrics_observe(app->metrics, METRICS_CALLBACK_DURATION, "",
                        (double)us / 1e6);
    if (app->cfg.log.slow_ms > 0 && us / 1000 >= app->cfg.log.slow_ms) {
        if (metrics_labels(labels, sizeof(labels), 1, "route", route) == 0)
            metrics_inc(app->metrics, METRICS_SLOW_REQUESTS, labels, 1);
        log_warn(&r->log, "http", "slow", "route=%s status=%d ms=%lld", route,
                 r->status, (long long)(us / 1000));
    }
    app_count_store_failures(app);
}

/* Reads what is left of the request body (an early answer — 413, 403 —
 * leaves it unread) up to the end of the stream nginx sends, so the
 * connection closes cleanly: libfcgi does not linger at close here (see
 * worker_main), and unread input at close could reset the connection
 * before nginx has the answer. nginx bounds what it sends. */
static void drain_input(struct fcgi_req *r)
{
    char junk[4096];

    while (FCGX_GetStr(junk, sizeof(junk), r->fx->in) > 0)
        ;
}

static void serve(struct app *app, FCGX_Request *fx)
{
    struct fcgi_req r;
    int64_t t0 = now_us();
    int rc;

    memset(&r, 0, sizeof(r));
    r.fx = fx;
    r.app = app;
    r.rid = fcgi_param(&r, "REQUEST_ID");
    log_for_request(&r.log, &app->log, r.rid);
    r.rid = kf_str_c(r.log.rid);      /* sanitized copy for headers */
    r.method = fcgi_param(&r, "REQUEST_METHOD");
    r.path = request_path(&r);
    http_query_init(&r.query);
    kf_buf_init(&r.body, 0);
    rc = http_query_parse(&r.query, fcgi_param(&r, "QUERY_STRING"));
    if (rc < 0) {
        fcgi_error(&r, 400, "bad_query", "malformed or oversized query",
                   NULL);
        log_info(&r.log, "http", "bad_query", "status=400");
    } else {
        routes_dispatch(&r);
    }
    /* an audit record a handler armed never outlives its request */
    audit_redis_disarm(&r.app->store);
    user_profile_audit(&r.app->profile, NULL);
    drain_input(&r);
    http_query_release(&r.query);
    kf_buf_release(&r.body);
    account(&r, now_us() - t0);
}

/* Adds what *now counted since *seen to the family; *seen = now. */
static void count_since(struct app *app, const char *family,
                        const char *labels, unsigned long now,
                        unsigned long *seen)
{
    if (now != *seen && app->metrics)
        metrics_inc(app->metrics, family, labels, (int64_t)(now - *seen));
    *seen = now;
}

void app_count_store_failures(struct app *app)
{
    char labels[64];

    snprintf(labels, sizeof(labels), "process=\"%s\"", app->process);
    if (app->store.failovers != app->redis_failovers)
        log_warn(&app->log, "redis", "new_master", "master=%s:%d "
                 "(the Sentinels named a new master: a fail-over)",
                 app->store.host, app->store.port);
    count_since(app, METRICS_REDIS_ERRORS, labels, app->store.failures,
                &app->redis_failures);
    count_since(app, METRICS_REDIS_FAILOVERS, labels, app->store.failovers,
                &app->redis_failovers);
    count_since(app, METRICS_REDIS_WAIT_SHORT, "", app->store.wait_shorts,
                &app->redis_wait_shorts);
}

/* One journal record through the callback path again. */
static int replay_one(void *ctx, const struct journal_rec *jr)
{
    struct app *app = ctx;
    struct callback_res res;
    char d[ROUTE_DECISION_STR_MAX];
    struct log l;
    int rc;

    callback_res_init(&res);
    rc = callback_replay(&app->cb, jr, &res);
    app->replay_unconfirmed = rc == KF_EBACKEND && res.unreplicated;
    log_for_request(&l, &app->log, jr->rid);
    if (rc == 0)
        log_info(&l, "journal", "replayed", "openid=%s dup=%d route=%s",
                 res.openid[0] ? res.openid : "-", res.duplicate,
                 route_decision_str(&res.decision, d));
    else if (rc != KF_EBACKEND)
        log_warn(&l, "journal", "refused", "err=%s openid=%s verified=%d "
                 "(quarantined)", kf_strerror(rc),
                 res.openid[0] ? res.openid : "-", jr->verified);
    callback_res_release(&res);
    return rc;
}

/* Once a second at most: replays the journal when it holds something
 * and this process wins the replay lock (a worker: the journal and the
 * callback are APP_WORKER parts). */
static void replay_journal(struct app *app)
{
    struct journal_counts c = { 0, 0, 0 };
    int64_t now = kf_mono_ms();
    int rc;

    if (now < app->next_replay_ms)
        return;
    /* with wait_replicas and no replica confirming, a try costs a WAIT
     * and rewrites the rest of the file: every 2 s then */
    app->next_replay_ms = now + (app->replay_unconfirmed ? 2000 : 1000);
    app->replay_unconfirmed = 0;
    /* only once Redis answers: a replay that stops at its first record
     * would rewrite the rest of the file for nothing */
    if (!journal_pending(&app->journal) || store_ping(&app->store) < 0)
        return;
    rc = journal_replay(&app->journal, replay_one, app, &c);
    if (c.quarantined) {
        log_warn(&app->log, "journal", "quarantined", "count=%ld file=%s "
                 "(could not be replayed: kept there, never deleted)",
                 c.quarantined, app->journal.quarantine);
        if (app->metrics)
            metrics_inc(app->metrics, METRICS_JOURNAL_QUARANTINED, "",
                        c.quarantined);
    }
    if (c.replayed || c.quarantined || rc < 0)
        log_warn(&app->log, "journal", "replay", "replayed=%ld "
                 "quarantined=%ld left=%ld err=%s", c.replayed,
                 c.quarantined, c.left,
                 app->replay_unconfirmed
                     ? "no_replica_confirmed (redis.wait_replicas: kept "
                       "until a replica has the write)"
                     : rc < 0 ? kf_strerror(rc) : "-");
}

void app_flush_metrics(struct app *app)
{
    static int64_t last_warn;
    int64_t now = kf_mono_ms();

    if (!app->metrics || !metrics_due(app->metrics, now, 1000))
        return;
    if (metrics_flush(app->metrics, &app->store, now) < 0 &&
        now - last_warn >= 60000) {
        last_warn = now;
        log_warn(&app->log, "metrics", "flush_failed", "kept for the next "
                 "try");
    }
}

/* The config and the log: said on stderr when they fail. */
static int open_config(struct app *app, const char *conf_path)
{
    struct config_err err;
    int rc, i;

    config_init(&app->cfg);
    rc = config_load(&app->cfg, conf_path, &err);
    if (rc < 0) {
        fprintf(stderr, "wxkf: config: %s\n", err.msg);
        return rc;
    }
    if (log_open(&app->log, app->cfg.log.file, app->cfg.log.level) < 0) {
        fprintf(stderr, "wxkf: cannot open log file %s: %s\n",
                app->cfg.log.file, strerror(errno));
        return KF_EIO;
    }
    for (i = 0; config_advice(&app->cfg, i); i++)
        log_warn(&app->log, "config", "advice", "why=\"%s\"",
                 config_advice(&app->cfg, i));
    return 0;
}

/* What only a worker uses: the callback (AES keys), the journal a
 * callback goes to while Redis is away, the history reads. */
static int open_worker_parts(struct app *app)
{
    int rc = callback_init(&app->cb, &app->cfg, &app->route);

    if (rc < 0) {
        log_error(&app->log, "config", "callback_init_failed", "err=%s "
                  "(the EncodingAESKey)", kf_strerror(rc));
        return rc;
    }
    history_init(&app->history, app->cfg.postgres.dsn);
    user_profile_init(&app->profile, app->cfg.postgres.dsn,
                      app->cfg.wechat.app_id, PG_USE_REQUEST);
    rc = pg_new(app->cfg.postgres.dsn, "wxkf-tokens", PG_USE_REQUEST,
                &app->tokens_db);
    if (rc < 0)
        return rc;
    /* without a journal a callback during a Redis outage gets 503 (and
     * WeChat's retries): worse, but no reason not to start */
    if (journal_init(&app->journal, app->cfg.redis.journal_dir) < 0)
        log_error(&app->log, "journal", "init_failed", "dir=%s err=%s "
                  "(callbacks get 503 while Redis is unreachable)",
                  app->cfg.redis.journal_dir, strerror(errno));
    app->cb.journal = &app->journal;
    return 0;
}

int app_open(struct app *app, const char *conf_path, enum app_kind kind)
{
    int rc;

    memset(app, 0, sizeof(*app));
    app->process = kind == APP_JOBS ? "jobs" : "fcgi";
    rc = open_config(app, conf_path);
    if (rc < 0)
        return rc;
    rc = store_init_config(&app->store, &app->cfg);
    if (rc < 0) {
        log_error(&app->log, "config", "bad_redis_url", "err=%s",
                  kf_strerror(rc));
        return rc;
    }
    rc = route_init(&app->route, &app->store, &app->cfg);
    if (rc < 0) {
        log_error(&app->log, "config", "route_init_failed", "err=%s "
                  "(the routing rules)", kf_strerror(rc));
        return rc;
    }
    if (kind == APP_WORKER && (rc = open_worker_parts(app)) < 0)
        return rc;
    rc = wx_api_new(&app->cfg, &app->store, &app->api);
    if (rc < 0) {
        log_error(&app->log, "wx_api", "init_failed", "err=%s",
                  kf_strerror(rc));
        return rc;
    }
    outbound_init(&app->outbound, &app->route, app->api, &app->cfg);
    app->metrics = malloc(sizeof(*app->metrics));
    if (!app->metrics) {
        log_error(&app->log, "metrics", "init_failed", "err=%s",
                  kf_strerror(KF_ENOMEM));
        return KF_ENOMEM;
    }
    metrics_init(app->metrics);
    wx_api_set_metrics(app->api, app->metrics);
    return 0;
}

/* Releases in the reverse order of app_open; each part is safe to
 * release unopened (zeroed). */
void app_close(struct app *app)
{
    if (app->metrics) {
        metrics_release(app->metrics);
        free(app->metrics);
        app->metrics = NULL;
    }
    wx_api_free(app->api);
    app->api = NULL;
    history_release(&app->history);
    user_profile_release(&app->profile);
    pg_close(app->tokens_db);
    app->tokens_db = NULL;
    callback_release(&app->cb);
    store_release(&app->store);
    log_close(&app->log);
    config_release(&app->cfg);
}

static int too_old(struct app *app, int rc, enum version_server kind,
                   const struct version *v)
{
    char msg[256];

    if (rc < 0 || version_check(kind, v, msg, sizeof(msg)) == 0)
        return 0;
    log_error(&app->log, "version", "server_too_old", "msg=\"%s\"", msg);
    fprintf(stderr, "wxkf %s: %s\n", app->process, msg);
    return 1;
}

int app_servers_too_old(struct app *app, int with_pg)
{
    struct version v;
    int old = too_old(app, store_server_version(&app->store, &v),
                      VERSION_REDIS, &v);

    if (with_pg)
        old |= too_old(app, pg_server_version(app->cfg.postgres.dsn, &v,
                                              NULL),
                       VERSION_POSTGRES, &v);
    return old;
}

void app_signals_install(void (*on_stop)(int))
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    /* multiwatch 1.0.0 delivers SIGQUIT to its children even with
     * `-s TERM`, and its default is SIGUSR1, so all of them mean the
     * same. No SA_RESTART: a blocked accept or sleep returns. */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

void app_signals_block(sigset_t *old)
{
    sigset_t stop;

    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGQUIT);
    sigaddset(&stop, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &stop, old);
}

int worker_main(const char *conf_path)
{
    struct app app;
    FCGX_Request fx;
    sigset_t unblocked;
    unsigned long served = 0;
    int rc;

    rc = app_open(&app, conf_path, APP_WORKER);
    if (rc < 0) {
        app_close(&app);
        return 1;
    }
    /* libfcgi lingers at every close by default, polling up to 2 s for
     * nginx to close its end first: the worker would sit idle while
     * nginx works through its other clients (half the callback's time in
     * `make bench`). Every request's input is read to its end first
     * (drain_input), so there is nothing to linger for. */
    if (setenv("LIBFCGI_OS_CLOSE_POLL_TIMEOUT", "0", 0) != 0)
        log_warn(&app.log, "fcgi", "setenv_failed", NULL);
    if (FCGX_Init() != 0 || FCGX_InitRequest(&fx, 0, 0) != 0) {
        log_error(&app.log, "fcgi", "init_failed", NULL);
        app_close(&app);
        return 1;
    }
    app_signals_install(on_term);
    /* spawn-fcgi's socket is shared by every worker; accept(2) does not
     * pass O_NONBLOCK on to the connections it returns */
    if (fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK) < 0)
        log_warn(&app.log, "fcgi", "nonblock_failed", "err=%s",
                 strerror(errno));
    if (store_connect(&app.store) < 0) {
        log_warn(&app.log, "store", "redis_down", "at=startup");
    } else if (app_servers_too_old(&app, 0)) {
        FCGX_Free(&fx, 1);
        app_close(&app);
        return 1;
    }
    log_info(&app.log, "fcgi", "worker_start", "version=%s", WXKF_VERSION);
    while (!stopping) {
        /* Counts go to Redis between requests, never on a request's
         * path: at most once a second, and within a second of going
         * quiet (the poll below wakes every second). */
        struct pollfd p = { 0, POLLIN, 0 };
        int ready = poll(&p, 1, 0);

        app_flush_metrics(&app);
        replay_journal(&app);
        if (ready <= 0 && poll(&p, 1, 1000) <= 0)
            continue;           /* an idle second, or a signal */
        if (stopping)
            break;
        /* From the accept to the end of the request the stop signals
         * wait (a pending one is taken at the unblock): a connection
         * nginx has handed over is always answered. The socket is
         * non-blocking: when another worker took the connection poll
         * announced, come back here (and flush) instead of waiting in
         * accept with counts held back. */
        app_signals_block(&unblocked);
        rc = FCGX_Accept_r(&fx);
        if (rc >= 0) {
            serve(&app, &fx);
            FCGX_Finish_r(&fx);
            served++;
        }
        pthread_sigmask(SIG_SETMASK, &unblocked, NULL);
        if (rc < 0 && rc != -EAGAIN && rc != -EWOULDBLOCK && rc != -EINTR)
            break;
    }
    if (app.metrics && metrics_flush(app.metrics, &app.store,
                                     kf_mono_ms()) < 0)
        log_warn(&app.log, "metrics", "flush_failed", "at=stop");
    log_info(&app.log, "fcgi", "worker_stop", "served=%lu", served);
    FCGX_Free(&fx, 1);
    app_close(&app);
    return 0;
}
