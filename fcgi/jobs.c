/* jobs: `wxkf jobs` — the background daemon. Every second it runs one
 * bounded routing sweep (heartbeat loss, idle expiry, first-reply and
 * queue timeouts, queue draining) and sends what is due in the outbox
 * (agent replies that failed transiently, leave-a-message texts) and
 * fetches users' images, voice and video into the media store and
 * looks up who new users are (cgi-bin/user/info, lib/user_profile); at
 * start and every [reports] refresh_minutes it rebuilds the reports of
 * today and yesterday (lib/report) and deletes the audit log's rows older
 * than [audit] keep_days (lib/audit_view, bounded batches, the same
 * thread); at start and every ten minutes it re-mirrors the agents from PostgreSQL into Redis. The rest of each
 * second it archives the event stream into PostgreSQL (lib/archive).
 * Several may run at once: each sweep is one atomic script, and the
 * archivers share the stream through a consumer group. With [push] url
 * set, a thread of its own follows the agents' feeds and publishes them
 * to their Nchan channels (lib/push), so a console hears of a message
 * within a second whatever the loop is doing. In [wechat] mode =
 * wechat_kf it also polls WeChat for who is online and closes and creates
 * the WeChat-side sessions wxkf's routing moves (lib/wechat_kf). SIGTERM, SIGINT, SIGQUIT
 * and SIGUSR1 stop it between passes, as they stop a worker. It builds
 * no callback (no AES keys) and keeps no journal: the workers replay
 * the callbacks they journaled (app_open, APP_JOBS). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "agent_db.h"
#include "agent_sync.h"
#include "archive.h"
#include "audit_view.h"
#include "fcgi.h"
#include "media.h"
#include "media_keep.h"
#include "metrics.h"
#include "report.h"
#include "user_profile.h"
#include "wechat_kf.h"
#include "push.h"
#include "route.h"

#include "banned.h"

#define SWEEP_LIMIT 500
#define RESYNC_MS (10 * 60 * 1000)
#define ARCHIVE_IDLE_MS 100
#define MEDIA_KEEP_MS 60000
#define MEDIA_KEEP_FILES 1000

static volatile sig_atomic_t jobs_stopping;

static void on_stop(int sig)
{
    (void)sig;
    jobs_stopping = 1;
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
    int rc = agent_db_open(app->cfg.postgres.dsn, PG_USE_CLI, &db, &err);

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
    rc = route_sweep(&app->route, kf_wall_ms(),
                     app->cfg.presence.heartbeat_ttl, SWEEP_LIMIT, &c);
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
    rc = outbound_deliver_due(&app->outbound, kf_wall_ms() + 500, &c);
    if (rc < 0)
        log_warn(log, "jobs", "outbox_failed", "err=%s", kf_strerror(rc));
    else if (c.sent || c.failed || c.retried)
        log_info(log, "jobs", "outbox", "sent=%ld failed=%ld retried=%ld",
                 c.sent, c.failed, c.retried);
}

/* Counts what the media store deleted and refused. */
static void count_media(struct app *app, const struct media_counts *c)
{
    metrics_inc(app->metrics, METRICS_MEDIA_REMOVED, "reason=\"retention\"",
                c->removed_retention);
    metrics_inc(app->metrics, METRICS_MEDIA_REMOVED, "reason=\"quota\"",
                c->removed_quota);
    metrics_inc(app->metrics, METRICS_MEDIA_QUOTA_REFUSED, NULL,
                c->refused_quota);
    if (c->removed_retention || c->removed_quota)
        log_info(&app->log, "jobs", "media_removed", "retention=%ld "
                 "quota=%ld", c->removed_retention, c->removed_quota);
}

/* Fetches inbound media into the media store. A pass reads 50 entries
 * (most are not media; all are acknowledged at once, media becoming jobs)
 * and makes at most 10 fetches in about 2 s; passes repeat while they
 * keep finding entries, for at most 300 ms of reading, so the media
 * group keeps up with the stream and the sweep keeps its second. With
 * fetch = 0 a pass only drops the group. */
static void fetch_media(struct media *m, struct app *app)
{
    struct media_counts c;
    int64_t until = kf_wall_ms() + 300;
    long before;
    int rc, i;

    memset(&c, 0, sizeof(c));
    for (i = 0; i < 100; i++) {
        before = c.acked + c.queued + c.stored + c.failed + c.retried +
                 c.waiting;
        rc = media_fetch_pass(m, kf_wall_ms(), 50, &c);
        if (rc < 0) {
            log_warn(&app->log, "jobs", "media_pass_failed", "err=%s",
                     kf_strerror(rc));
            break;
        }
        if (c.acked + c.queued + c.stored + c.failed + c.retried +
                c.waiting == before || kf_wall_ms() >= until)
            break;
    }
    count_media(app, &c);
    if (c.stored || c.failed || c.retried)
        log_info(&app->log, "jobs", "media", "stored=%ld failed=%ld "
                 "retried=%ld waiting=%ld refused_quota=%ld playable=%ld "
                 "unplayable=%ld", c.stored, c.failed, c.retried, c.waiting,
                 c.refused_quota, c.playable, c.unplayable);
}

/* Retention and quota of the media store: a bounded step (1,000 files at
 * most) once a minute, also when fetching is off (stored files age). */
static void keep_media(struct media *m, struct app *app, int64_t *next)
{
    struct media_counts c;
    int64_t now = kf_wall_ms();
    int rc;

    if (now < *next)
        return;
    *next = now + MEDIA_KEEP_MS;
    memset(&c, 0, sizeof(c));
    rc = media_keep_tidy(m, now, MEDIA_KEEP_FILES, &c);
    if (rc < 0)
        log_warn(&app->log, "jobs", "media_keep_failed", "err=%s",
                 kf_strerror(rc));
    count_media(app, &c);
}

/* The reports of today and yesterday (lib/report), rebuilt every
 * [reports] refresh_minutes (yesterday too: sessions close late). A
 * large day takes seconds (docs/reports.md), so it runs in a thread of
 * its own (report_loop), never holding the sweep up. */
static void build_reports(struct app *app, struct pg_conn **db,
                          int64_t *next)
{
    const struct config *c = &app->cfg;
    struct report_hours h = { c->api.stats_utc_offset, c->reports.work_start,
                              c->reports.work_end, c->reports.work_days };
    int64_t now = kf_wall_ms();
    long today, d;
    int rc = 0, rows = 0, n;
    struct pg_err e = { 0, "", "", 0 };

    if (now < *next)
        return;
    *next = now + c->reports.refresh_minutes * 60000;
    if (!*db && pg_new(c->postgres.dsn, "wxkf-reports", PG_USE_CLI, db) < 0)
        return;
    today = report_today(now, c->api.stats_utc_offset);
    for (d = today - 1; rc == 0 && d <= today; d++) {
        rc = report_build(*db, c->wechat.app_id, d, &h, &n, &e);
        rows += rc == 0 ? n : 0;
    }
    if (rc < 0)
        log_warn(&app->log, "jobs", "report_failed", "err=%s sqlstate=%s",
                 kf_strerror(rc), e.sqlstate);
    else
        log_info(&app->log, "jobs", "report", "days=2 rows=%d", rows);
}

/* The audit log's retention (lib/audit_view): rows of this account older
 * than [audit] keep_days go, at most AUDIT_PURGE_BATCHES statements of
 * AUDIT_VIEW_PURGE_BATCH rows a round; a round at start and every
 * AUDIT_PURGE_MS, or the next second while rows are left. */
#define AUDIT_PURGE_MS 600000
#define AUDIT_PURGE_BATCHES 10

static void purge_audit(struct app *app, struct pg_conn **db, int64_t *next)
{
    const struct config *c = &app->cfg;
    struct pg_err e = { 0, "", "", 0 };
    int64_t now = kf_wall_ms();
    long deleted = 0;
    int rc;

    if (now < *next || c->audit.keep_days <= 0)
        return;
    *next = now + AUDIT_PURGE_MS;
    if (!*db && pg_new(c->postgres.dsn, "wxkf-reports", PG_USE_CLI, db) < 0)
        return;
    rc = audit_view_purge(*db, c->wechat.app_id, c->audit.keep_days,
                          AUDIT_PURGE_BATCHES, &deleted, &e);
    if (rc == 0 && deleted == (long)AUDIT_PURGE_BATCHES *
                                   AUDIT_VIEW_PURGE_BATCH)
        *next = now + 1000;             /* more are left: soon again */
    if (rc < 0)
        log_warn(&app->log, "jobs", "audit_purge_failed", "err=%s "
                 "sqlstate=%s deleted=%ld", kf_strerror(rc), e.sqlstate,
                 deleted);
    else if (deleted)
        log_info(&app->log, "jobs", "audit_purged", "deleted=%ld "
                 "keep_days=%ld", deleted, c->audit.keep_days);
}

/* The PostgreSQL housekeeping thread: the reports (when [reports]
 * enabled) and the audit log's retention on one connection of its own;
 * checks the clock once a second until the daemon stops. */
static void *report_loop(void *arg)
{
    struct app *app = arg;
    struct pg_conn *db = NULL;
    int64_t next = 0, next_purge = 0;

    while (!jobs_stopping) {
        if (app->cfg.reports.enabled)
            build_reports(app, &db, &next);
        purge_audit(app, &db, &next_purge);
        nap(1000);
    }
    pg_close(db);
    return NULL;
}

/* Looks users up (cgi-bin/user/info): one pass of at most 10 look-ups a
 * second, so the API's rate limit is left to the sends. */
static void look_up_users(struct user_profile_jobs *pj, struct app *app)
{
    struct user_profile_counts c;
    int rc;

    memset(&c, 0, sizeof(c));
    rc = user_profile_jobs_pass(pj, kf_wall_ms(), 10, &c);
    if (rc < 0)
        log_warn(&app->log, "jobs", "profile_pass_failed", "err=%s",
                 kf_strerror(rc));
    if (c.fetched || c.failed || c.retried)
        log_info(&app->log, "jobs", "profile", "fetched=%ld failed=%ld "
                 "retried=%ld fresh=%ld", c.fetched, c.failed, c.retried,
                 c.fresh);
    if (c.tags || c.tags_failed)
        log_info(&app->log, "jobs", "profile_tags", "fetched=%ld failed=%ld",
                 c.tags, c.tags_failed);
}

/* Archives until `until` (wall ms), at least one pass: pass after pass
 * while entries are left, else every ARCHIVE_IDLE_MS (a pass is bounded
 * by [archiver] batch_ms); only naps when the archiver is off. Logs what
 * it did once a call (about once a second). */
static void archive(struct archive *ar, struct app *app, int64_t until)
{
    struct log *log = &app->log;
    unsigned long redis_failures = app->store.failures;
    struct archive_stats c;
    char state[6] = "";
    int err = 0;

    memset(&c, 0, sizeof(c));
    do {
        int64_t left;

        if (archive_pass(ar, &c) < 0) {
            err = c.last_rc;
            memcpy(state, c.sqlstate, sizeof(state));
        }
        left = until - kf_wall_ms();
        if (!c.more && left > 0)
            nap(ar->enabled && left > ARCHIVE_IDLE_MS ? ARCHIVE_IDLE_MS
                                                      : (long)left);
    } while (!jobs_stopping && kf_wall_ms() < until);
    /* failed passes that Redis did not cause were PostgreSQL's */
    if (err && (state[0] || app->store.failures == redis_failures))
        metrics_inc(app->metrics, METRICS_POSTGRES_ERRORS,
                    "process=\"jobs\"", c.errors);
    if (err)
        log_warn(log, "jobs", "archive_failed", "err=%s sqlstate=%s "
                 "failed_passes=%ld", kf_strerror(err), *state ? state : "-",
                 c.errors);
    if (c.written || c.claimed || c.rejected || c.trimmed ||
        c.lag.pending || c.lag.undelivered)
        log_info(log, "jobs", "archive", "written=%ld claimed=%ld "
                 "rejected=%ld trimmed=%ld pending=%lld undelivered=%lld "
                 "lag_ms=%lld", c.written, c.claimed, c.rejected, c.trimmed,
                 c.lag.pending, c.lag.undelivered, (long long)c.lag.age_ms);
    if (c.lag.groups_behind)
        log_warn(log, "jobs", "archive_group_behind", "groups=%ld "
                 "(another consumer group of the stream is over "
                 "[archiver] group_hold_ms behind: trimmed past it)",
                 c.lag.groups_behind);
}

/* mode = wechat_kf: presence from WeChat (a poll every [presence]
 * wechat_poll s) and the WeChat-side session steps, at most 10 a second.
 * Logs what changed and every failure; counts polls and steps. */
static void follow_wechat_kf(struct wechat_kf *k, struct app *app)
{
    struct wechat_kf_counts c;
    char err[256];
    int rc;

    memset(&c, 0, sizeof(c));
    rc = wechat_kf_poll(k, kf_wall_ms(), &c);
    if (rc < 0)
        log_warn(&app->log, "jobs", "kf_presence_failed", "err=%s",
                 kf_strerror(rc));
    rc = wechat_kf_sessions_pass(k, kf_wall_ms(), 10, &c);
    if (rc < 0)
        log_warn(&app->log, "jobs", "kf_sessions_failed", "err=%s",
                 kf_strerror(rc));
    metrics_inc(app->metrics, METRICS_WECHAT_KF_POLLS, "result=\"ok\"",
                c.polls - c.polls_failed);
    metrics_inc(app->metrics, METRICS_WECHAT_KF_POLLS, "result=\"failed\"",
                c.polls_failed);
    metrics_inc(app->metrics, METRICS_WECHAT_KF_STEPS, "outcome=\"done\"",
                c.done);
    metrics_inc(app->metrics, METRICS_WECHAT_KF_STEPS,
                "outcome=\"refused\"", c.refused);
    metrics_inc(app->metrics, METRICS_WECHAT_KF_STEPS,
                "outcome=\"retried\"", c.retried);
    metrics_inc(app->metrics, METRICS_WECHAT_KF_STEPS,
                "outcome=\"dropped\"", c.dropped);
    /* WeChat's errmsg is outside input: only log-safe bytes */
    log_safe(err, sizeof(err), kf_str_c(c.last_error));
    if (c.polls_failed)
        log_warn(&app->log, "jobs", "kf_poll_failed", "errcode=%ld err=%s "
                 "failed_in_row=%d%s", c.last_errcode, err,
                 c.polls_failed_in_row, c.fell_back
                     ? " presence=not_kept" : " presence=kept");
    if (c.set_online || c.set_offline)
        log_info(&app->log, "jobs", "kf_presence", "online=%ld offline=%ld "
                 "kept=%ld", c.set_online, c.set_offline, c.kept);
    if (c.refused || c.retried || c.dropped)
        log_warn(&app->log, "jobs", "kf_session_failed", "call=%s "
                 "openid=%s errcode=%ld err=%s refused=%ld retried=%ld "
                 "dropped=%ld", c.last_call, c.last_openid, c.last_errcode,
                 err, c.refused,
                 c.retried, c.dropped);
    if (c.done)
        log_info(&app->log, "jobs", "kf_sessions", "done=%ld queued=%ld",
                 c.done, c.queued);
}

#define PUSH_BLOCK_MS 500

/* The push thread: pass after pass until jobs stops; naps a second after
 * a Redis failure. Logs its figures about every ten seconds. */
static void *push_loop(void *arg)
{
    struct push *p = arg;
    struct push_counts c;
    int64_t next_log = kf_wall_ms() + 10000;

    memset(&c, 0, sizeof(c));
    log_info(p->log, "push", "start", "url=%s", p->url);
    while (!jobs_stopping) {
        if (push_pass(p, PUSH_BLOCK_MS, kf_wall_ms(), &c) < 0)
            nap(1000);
        if (kf_wall_ms() >= next_log) {
            if (c.entries || c.failed)
                log_info(p->log, "push", "published", "entries=%ld "
                         "messages=%ld failed=%ld", c.entries, c.published,
                         c.failed);
            memset(&c, 0, sizeof(c));
            next_log = kf_wall_ms() + 10000;
        }
    }
    return NULL;
}

int jobs_main(const char *conf_path)
{
    struct push push;
    pthread_t push_thread;
    int pushing = 0;
    struct app app;
    struct media media;
    struct archive ar;
    struct user_profile prof;
    struct user_profile_jobs pj;
    struct wechat_kf kfm;
    int64_t next_sync = 0, next_keep = 0;
    pthread_t report_thread;
    int reporting = 0;
    int rc = app_open(&app, conf_path, APP_JOBS);

    if (rc < 0 || app_servers_too_old(&app, 1)) {
        app_close(&app);
        return 1;
    }
    app_signals_install(on_stop);
    media_init(&media, &app.store, app.api, &app.cfg);
    archive_init(&ar, &app.store, &app.cfg);
    user_profile_init(&prof, app.cfg.postgres.dsn, app.cfg.wechat.app_id,
                      PG_USE_CLI);
    user_profile_jobs_init(&pj, &prof, &app.store, app.api);
    wechat_kf_init(&kfm, &app.route, &app.store, app.api,
                   app.cfg.presence.wechat_poll);
    log_info(&app.log, "jobs", "start", "version=%s", WXKF_VERSION);
    memset(&push, 0, sizeof(push));
    if (push_enabled(&app.cfg)) {
        rc = push_open(&push, &app.cfg, &app.log);
        if (rc < 0)
            log_error(&app.log, "jobs", "push_failed", "err=%s",
                      rc == KF_ECONFIG ? "[push] url must be http(s)://..."
                                       : kf_strerror(rc));
        else {
            sigset_t old;

            /* the signals are the main loop's: the thread never takes them */
            app_signals_block(&old);
            pushing = pthread_create(&push_thread, NULL, push_loop,
                                     &push) == 0;
            pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
    }
    if (app.cfg.reports.enabled || app.cfg.audit.keep_days > 0) {
        sigset_t old;

        app_signals_block(&old);
        reporting = pthread_create(&report_thread, NULL, report_loop,
                                   &app) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    while (!jobs_stopping) {
        int64_t now = kf_wall_ms();

        if (now >= next_sync)
            next_sync = now + (resync(&app, &app.log) == 0 ? RESYNC_MS
                                                           : 10000);
        sweep(&app, &app.log);
        deliver(&app, &app.log);
        app_count_store_failures(&app);
        app_flush_metrics(&app);
        fetch_media(&media, &app);
        keep_media(&media, &app, &next_keep);
        look_up_users(&pj, &app);
        if (app.route.wechat_kf)
            follow_wechat_kf(&kfm, &app);
        archive(&ar, &app, now + 1000);
    }
    if (pushing)
        pthread_join(push_thread, NULL);
    if (reporting)
        pthread_join(report_thread, NULL);
    if (app.metrics && metrics_flush(app.metrics, &app.store,
                                     kf_mono_ms()) < 0)
        log_warn(&app.log, "metrics", "flush_failed", "at=stop");
    push_close(&push);
    log_info(&app.log, "jobs", "stop", NULL);
    archive_release(&ar);
    user_profile_release(&prof);
    media_release(&media);
    app_close(&app);
    return 0;
}
