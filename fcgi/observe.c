/* observe: GET /metrics — the counters every worker and `wxkf jobs`
 * flush to Redis (lib/metrics), rendered together with gauges read at
 * scrape time: queues, agents by status, active sessions, the agents'
 * online rate (lib/route), the archiver's lag (lib/archive), the media
 * store's size and backlog (lib/media_keep) and what is
 * left of WeChat's daily budgets (lib/wx_api). A scrape costs a few Redis
 * round trips; the callback path none. */
#include <stdio.h>
#include <string.h>

#include "archive.h"
#include "fcgi.h"
#include "media_keep.h"
#include "metrics.h"
#include "route.h"

#include "banned.h"

#define GAUGES_MAX 160
#define PAGE_MAX (4 * 1024 * 1024)

struct gauges {
    struct metrics_gauge g[GAUGES_MAX];
    char labels[GAUGES_MAX][METRICS_LABELS_MAX + 1];
    size_t n;
};

static void gauge(struct gauges *gs, const char *name, const char *lname,
                  const char *lvalue, double v)
{
    if (gs->n >= GAUGES_MAX)
        return;
    gs->labels[gs->n][0] = '\0';
    if (lname && metrics_labels(gs->labels[gs->n], sizeof(gs->labels[0]), 1,
                                lname, lvalue) < 0)
        return;
    gs->g[gs->n] = (struct metrics_gauge){ name, gs->labels[gs->n], v };
    gs->n++;
}

static void routing_gauges(struct fcgi_req *r, struct gauges *gs)
{
    static const char *const st[] = { "online", "paused", "offline" };
    json_t *s = NULL, *queues;
    const char *g;
    json_t *v;
    json_int_t agents, n;
    size_t i;

    if (route_stats(&r->app->route, kf_wall_ms(), &s) < 0)
        return;
    agents = json_integer_value(json_object_get(s, "agents"));
    for (i = 0; i < 3; i++) {
        n = i < 2 ? json_integer_value(json_object_get(s, st[i]))
                  : agents - json_integer_value(json_object_get(s, "online")) -
                        json_integer_value(json_object_get(s, "paused"));
        gauge(gs, METRICS_AGENTS, "status", st[i], (double)n);
    }
    gauge(gs, METRICS_SESSIONS_ACTIVE, NULL, NULL,
          (double)json_integer_value(json_object_get(s, "sessions_active")));
    gauge(gs, METRICS_AGENT_ONLINE_RATE, NULL, NULL,
          json_real_value(json_object_get(s, "online_rate")));
    queues = json_object_get(s, "queues");
    json_object_foreach(queues, g, v)
        gauge(gs, METRICS_QUEUE_LENGTH, "group", g,
              (double)json_integer_value(v));
    json_decref(s);
}

static void archive_gauges(struct fcgi_req *r, struct gauges *gs)
{
    struct archive ar;
    struct archive_lag lag;

    archive_init(&ar, &r->app->store, &r->app->cfg);
    if (archive_lag(&ar, &lag) == 0) {
        gauge(gs, METRICS_ARCHIVER_LAG, NULL, NULL, (double)lag.age_ms / 1e3);
        gauge(gs, METRICS_ARCHIVER_PENDING, NULL, NULL,
              (double)(lag.pending + lag.undelivered));
    }
    archive_release(&ar);
}

static void media_gauges(struct fcgi_req *r, struct gauges *gs)
{
    struct media m;
    struct media_usage u;

    media_init(&m, &r->app->store, NULL, &r->app->cfg);
    if (media_keep_usage(&m, &u) == 0) {
        gauge(gs, METRICS_MEDIA_BYTES, NULL, NULL, (double)u.bytes);
        gauge(gs, METRICS_MEDIA_FILES, NULL, NULL, (double)u.files);
        gauge(gs, METRICS_MEDIA_JOBS, NULL, NULL, (double)u.jobs);
    }
    if (r->app->cfg.media.max_disk_mb > 0)
        gauge(gs, METRICS_MEDIA_QUOTA_BYTES, NULL, NULL,
              (double)r->app->cfg.media.max_disk_mb * 1048576.0);
    media_release(&m);
}

static void budget_gauges(struct fcgi_req *r, struct gauges *gs)
{
    const struct config *c = &r->app->cfg;
    long spent;

    if (!r->app->api)
        return;
    if (wx_api_spent(r->app->api, "send", &spent) == 0)
        gauge(gs, METRICS_WECHAT_BUDGET_LEFT, "api", "send",
              (double)(c->ratelimit.send_per_day - spent));
    if (wx_api_spent(r->app->api, "token", &spent) == 0)
        gauge(gs, METRICS_WECHAT_BUDGET_LEFT, "api", "token",
              (double)(c->ratelimit.token_per_day - spent));
}

void metrics_page(struct fcgi_req *r)
{
    static struct gauges gs;      /* 30 KiB: not on the stack */
    struct kf_buf out;
    int rc;

    gs.n = 0;
    /* this worker's own counts first, so a scrape sees them */
    if (r->app->metrics &&
        metrics_flush(r->app->metrics, &r->app->store, kf_mono_ms()) < 0)
        log_warn(&r->log, "metrics", "flush_failed", "at=scrape");
    routing_gauges(r, &gs);
    archive_gauges(r, &gs);
    media_gauges(r, &gs);
    budget_gauges(r, &gs);
    kf_buf_init(&out, PAGE_MAX);
    rc = metrics_render(&r->app->store, gs.g, gs.n, &out);
    if (rc == KF_EBACKEND)
        fcgi_error(r, 503, "backend_unavailable", "redis is unreachable",
                   NULL);
    else if (rc < 0)
        fcgi_error(r, 500, "internal_error", "metrics could not be rendered",
                   NULL);
    else
        fcgi_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8",
                     NULL, kf_buf_str(&out));
    kf_buf_release(&out);
}
