/* jobs: `wxkf jobs` — the background daemon. Every second it runs one
 * bounded routing sweep (heartbeat loss, idle expiry, first-reply and
 * queue timeouts, queue draining) and sends what is due in the outbox
 * (agent replies that failed transiently, leave-a-message texts); at
 * start and every ten minutes it
 * re-mirrors the agents from PostgreSQL into Redis. Several may run at
 * once: each sweep is one atomic script. SIGTERM/SIGINT stop it between
 * passes. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "fcgi.h"
#include "route.h"

#include "banned.h"

#define SWEEP_LIMIT 500
#define RESYNC_MS (10 * 60 * 1000)

static volatile sig_atomic_t jobs_stopping;

static void on_stop(int sig)
{
    (void)sig;
    jobs_stopping = 1;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps up to ms, returning early on a signal. */
static void nap(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

static int resync(struct app *app, struct log *log)
{
    struct pg_conn *db = NULL;
    struct agent_sync_stats st;
    struct agent_err err;
    int rc = agent_db_open(app->cfg.postgres.dsn, &db, &err);

    memset(&st, 0, sizeof(st));
    if (rc == 0)
        rc = agent_mirror_sync_all(&app->store, db, &st, &err);
    agent_db_close(db);
    if (rc < 0)
        log_warn(log, "jobs", "agent_sync_failed", "err=%s",
                 kf_strerror(rc));
    else
        log_info(log, "jobs", "agent_sync", "kept=%zu swept=%zu", st.kept,
                 st.swept);
    return rc;
}

static void sweep(struct app *app, struct log *log)
{
    struct route_sweep_counts c;
    int rc;

    memset(&c, 0, sizeof(c));
    rc = route_sweep(&app->cb.route, wall_ms(), app->cfg.presence.heartbeat_ttl,
                     SWEEP_LIMIT, &c);
    if (rc < 0) {
        log_warn(log, "jobs", "sweep_failed", "err=%s", kf_strerror(rc));
        return;
    }
    if (c.agents_lost || c.sessions_expired || c.first_reply_reroutes ||
        c.queue_timeouts || c.dequeued)
        log_info(log, "jobs", "sweep",
                 "agents_lost=%ld expired=%ld first_reply_reroutes=%ld "
                 "queue_timeouts=%ld dequeued=%ld", c.agents_lost,
                 c.sessions_expired, c.first_reply_reroutes,
                 c.queue_timeouts, c.dequeued);
}

/* Sends what is due in the outbox (retries, leave-a-message texts). */
static void deliver(struct app *app, struct log *log)
{
    struct outbound_counts c;
    int rc;

    memset(&c, 0, sizeof(c));
    rc = outbound_deliver_due(&app->outbound, wall_ms(), 50, &c);
    if (rc < 0)
        log_warn(log, "jobs", "outbox_failed", "err=%s", kf_strerror(rc));
    else if (c.sent || c.failed || c.retried)
        log_info(log, "jobs", "outbox", "sent=%ld failed=%ld retried=%ld",
                 c.sent, c.failed, c.retried);
}

int jobs_main(const char *conf_path)
{
    struct app app;
    struct sigaction sa;
    int64_t next_sync = 0;
    int rc = app_open(&app, conf_path);

    if (rc < 0) {
        app_close(&app);
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    log_info(&app.log, "jobs", "start", "version=%s", WXKF_VERSION);
    while (!jobs_stopping) {
        int64_t now = wall_ms();

        if (now >= next_sync)
            next_sync = now + (resync(&app, &app.log) == 0 ? RESYNC_MS
                                                           : 10000);
        sweep(&app, &app.log);
        deliver(&app, &app.log);
        nap(1000 - (long)(wall_ms() - now) % 1000);
    }
    log_info(&app.log, "jobs", "stop", NULL);
    app_close(&app);
    return 0;
}
