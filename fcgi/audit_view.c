/* audit_view: GET /api/v1/audit — the admin's view of the account's audit
 * log (lib/audit_view). Thin: check the query field by field, read one
 * page on a connection of the request, answer from the refusal rows of
 * scope REFUSAL_AUDIT. Admins only (the route table's role). */
#include <stdio.h>
#include <string.h>

#include "audit_view.h"
#include "fcgi.h"
#include "label.h"
#include "pg.h"
#include "refusal.h"

#include "banned.h"

/* A filter of the query copied to buf (NULL when absent); answers and
 * returns nonzero when it is wrong. */
static int filter(struct fcgi_req *r, const char *name,
                  char buf[AUDIT_VIEW_FILTER_MAX + 1], const char **out)
{
    struct kf_str v;
    int rc;

    *out = NULL;
    if (!http_query_get(&r->query, name, &v))
        return 0;
    rc = audit_view_filter(v);
    if (rc < 0) {
        api_refused(r, refusal_get(rc == KF_ETOOBIG ? REFUSAL_AUDIT_FILTER_LONG
                                                    : REFUSAL_AUDIT_FILTER),
                    NULL);
        return 1;
    }
    memcpy(buf, v.p, v.len);
    buf[v.len] = '\0';
    *out = buf;
    return 0;
}

/* A number of the query in lo..max (def when absent). */
static int number(struct fcgi_req *r, const char *name, long def, long lo,
                  long max, long *out)
{
    struct kf_str v;
    uint64_t n;

    *out = def;
    if (!http_query_get(&r->query, name, &v))
        return 0;
    if (kf_parse_u64(v, &n) < 0 || n < (uint64_t)lo || n > (uint64_t)max) {
        api_refused(r, refusal_get(REFUSAL_AUDIT_LIMIT), NULL);
        return 1;
    }
    *out = (long)n;
    return 0;
}

/* from and to of the query, the account's day; answers when wrong. */
static int range(struct fcgi_req *r, struct audit_view_query *q)
{
    long off = r->app->cfg.api.stats_utc_offset;
    struct kf_str from, to;

    q->has_from = http_query_get(&r->query, "from", &from);
    q->has_to = http_query_get(&r->query, "to", &to);
    if ((q->has_from && audit_view_time(from, off, 0, &q->from_s) < 0) ||
        (q->has_to && audit_view_time(to, off, 1, &q->to_s) < 0) ||
        (q->has_from && q->has_to && q->from_s >= q->to_s)) {
        api_refused(r, refusal_get(REFUSAL_AUDIT_TIME), NULL);
        return 1;
    }
    return 0;
}

/* GET /api/v1/audit?actor=&action=&target=&from=&to=&limit=&offset= */
void api_audit_view(struct fcgi_req *r)
{
    char actor[AUDIT_VIEW_FILTER_MAX + 1], action[AUDIT_VIEW_FILTER_MAX + 1],
        target[AUDIT_VIEW_FILTER_MAX + 1];
    struct audit_view_query q;
    struct pg_conn *db = NULL;
    struct pg_err e;
    json_t *page = NULL;
    int rc;

    memset(&q, 0, sizeof(q));
    q.app_id = r->app->cfg.wechat.app_id;
    if (filter(r, "actor", actor, &q.actor) ||
        filter(r, "action", action, &q.action) ||
        filter(r, "target", target, &q.target) || range(r, &q) ||
        number(r, "limit", AUDIT_VIEW_LIMIT_DEFAULT, 1, AUDIT_VIEW_LIMIT_MAX,
               &q.limit) ||
        number(r, "offset", 0, 0, AUDIT_VIEW_OFFSET_MAX, &q.offset))
        return;
    rc = label_open(r->app->cfg.postgres.dsn, &db);
    if (rc == 0)
        rc = audit_view_page(db, &q, &page, &e);
    pg_close(db);
    if (rc < 0) {
        api_label_failed(r, "audit_view", rc, NULL, NULL);
        return;
    }
    fcgi_json(r, 200, page);
    log_info(&r->log, "api", "audit_view", "status=200 offset=%ld "
             "limit=%ld", q.offset, q.limit);
}
