/* routes: the one table of HTTP routes and their thin handlers. Each
 * handler maps HTTP to lib/ and back: read params and body under limits,
 * call a lib verb, map its rc to a status, log once. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "fcgi.h"
#include "metrics.h"
#include "pg.h"

#include "banned.h"

enum { M_GET = 1, M_POST = 2, M_HEAD = 4, M_PATCH = 8, M_DELETE = 16 };

struct http_route {
    int methods;
    const char *path;
    void (*handler)(struct fcgi_req *r);
    enum api_role role;         /* the least caller (fcgi.h) */
};

static void reply_rc(struct fcgi_req *r, int rc)
{
    struct http_error e = http_error_for(rc);

    fcgi_error(r, e.status, e.code, e.message, NULL);
}

static void log_callback(struct fcgi_req *r, const char *ev, int rc,
                         const struct callback_res *res)
{
    char d[ROUTE_DECISION_STR_MAX];

    if (rc == 0)
        log_info(&r->log, "wechat", ev,
                 "status=%d openid=%s msgtype=%s event=%s enc=%d dup=%d "
                 "route=%s%s%s",
                 r->status, res->openid, res->msgtype, res->event,
                 res->encrypted, res->duplicate,
                 route_decision_str(&res->decision, d),
                 res->journaled ? " journaled=1" : "",
                 res->unreplicated ? " unreplicated=1 journaled=1" : "");
    else
        log_warn(&r->log, "wechat", ev, "status=%d err=%s openid=%s",
                 r->status, http_error_for(rc).code,
                 res->openid[0] ? res->openid : "-");
}

static void h_wechat_get(struct fcgi_req *r)
{
    struct callback_req req = { &r->query, { "", 0 }, r->rid,
                                (int64_t)time(NULL), 0, 0 };
    struct callback_res res;
    int rc;

    callback_res_init(&res);
    rc = callback_verify(&r->app->cb, &req, &res);
    if (rc == 0)
        fcgi_respond(r, 200, res.content_type, NULL, kf_buf_str(&res.body));
    else
        reply_rc(r, rc);
    log_callback(r, "verify", rc, &res);
    callback_res_release(&res);
}

/* A new (not retried) callback: the message by type, and where routing
 * put the user (the decision's word) under the configured policy. */
static void count_callback(struct fcgi_req *r, const struct callback_res *res)
{
    char labels[METRICS_LABELS_MAX + 1];
    const char *type = res->msgtype[0] ? res->msgtype : "unknown",
               *outcome = route_kind_name(res->decision.kind);

    if (res->duplicate)
        return;
    if (metrics_labels(labels, sizeof(labels), 2, "direction", "in", "type",
                       type) == 0)
        metrics_inc(r->app->metrics, METRICS_MESSAGES, labels, 1);
    if (outcome[0] &&
        metrics_labels(labels, sizeof(labels), 2, "outcome", outcome,
                       "policy", r->app->cfg.routing.policy) == 0)
        metrics_inc(r->app->metrics, METRICS_ROUTING_OUTCOMES, labels, 1);
}

static void h_wechat_post(struct fcgi_req *r)
{
    struct callback_req req = { &r->query, { "", 0 }, r->rid, 0, 0, 0 };
    struct callback_res res;
    struct timespec ts;
    int rc;

    clock_gettime(CLOCK_REALTIME, &ts);
    req.now = (int64_t)ts.tv_sec;
    req.now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    callback_res_init(&res);
    rc = fcgi_read_body(r, (size_t)r->app->cfg.http.max_body);
    req.body = kf_buf_str(&r->body);
    if (rc == 0)
        rc = callback_handle(&r->app->cb, &req, &res);
    if (rc == 0)
        fcgi_respond(r, 200, res.content_type, NULL, kf_buf_str(&res.body));
    else
        reply_rc(r, rc);
    if (rc == 0)
        count_callback(r, &res);
    log_callback(r, "push", rc, &res);
    callback_res_release(&res);
}

static void h_healthz(struct fcgi_req *r)
{
    fcgi_respond(r, 200, "text/plain; charset=utf-8", NULL, KF_STR("ok\n"));
}

/* Ready when both Redis and PostgreSQL answer. A check costs a Redis
 * PING and a new PostgreSQL connection (a backend forked): a worker
 * checks at most once a second and answers from its last result in
 * between, so the answer is never older than READY_CACHE_MS. */
#define READY_CACHE_MS 1000

static void h_readyz(struct fcgi_req *r)
{
    struct app *app = r->app;
    int64_t now = kf_mono_ms();

    if (app->ready_at_ms == 0 || now - app->ready_at_ms >= READY_CACHE_MS) {
        app->ready_state = store_ping(&app->store) < 0 ? 1
                           : pg_ping(app->cfg.postgres.dsn) < 0 ? 2 : 0;
        app->ready_at_ms = now;
    }
    if (app->ready_state == 1)
        fcgi_error(r, 503, "backend_unavailable", "redis is unreachable",
                   NULL);
    else if (app->ready_state == 2)
        fcgi_error(r, 503, "backend_unavailable",
                   "postgresql is unreachable", NULL);
    else
        fcgi_respond(r, 200, "text/plain; charset=utf-8", NULL,
                     KF_STR("ready\n"));
}

/* '*' matches one path segment (an OpenID: 1..64 of [A-Za-z0-9_-]); '+'
 * an agent account (the same, and '@'). */
static const struct http_route routes[] = {
    { M_GET | M_HEAD, "/wechat", h_wechat_get, API_ROLE_PUBLIC },
    { M_POST, "/wechat", h_wechat_post, API_ROLE_PUBLIC },
    { M_GET | M_HEAD, "/healthz", h_healthz, API_ROLE_PUBLIC },
    { M_GET | M_HEAD, "/readyz", h_readyz, API_ROLE_PUBLIC },
    { M_GET, "/metrics", metrics_page, API_ROLE_PUBLIC },
    { M_GET, "/api/v1/me", api_me, API_ROLE_STAFF },
    { M_POST, "/api/v1/me/status", api_me_status, API_ROLE_AGENT },
    { M_POST, "/api/v1/me/heartbeat", api_me_heartbeat, API_ROLE_AGENT },
    { M_GET, "/api/v1/me/sessions", api_me_sessions, API_ROLE_AGENT },
    { M_GET, "/api/v1/me/events", api_me_events, API_ROLE_AGENT },
    { M_GET, "/api/v1/me/colleagues", api_me_colleagues, API_ROLE_STAFF },
    { M_GET, "/api/v1/sessions/*", api_session_view, API_ROLE_STAFF },
    { M_POST, "/api/v1/sessions/*/close", api_session_close, API_ROLE_STAFF },
    { M_POST, "/api/v1/sessions/*/transfer", api_session_transfer,
      API_ROLE_STAFF },
    { M_POST, "/api/v1/sessions/*/messages", api_session_send,
      API_ROLE_STAFF },
    { M_POST, "/api/v1/sessions/*/typing", api_session_typing,
      API_ROLE_STAFF },
    { M_GET, "/api/v1/sessions/*/reopen", api_session_reopen_peek,
      API_ROLE_STAFF },
    { M_POST, "/api/v1/sessions/*/reopen", api_session_reopen,
      API_ROLE_STAFF },
    { M_GET, "/api/v1/stats", api_stats, API_ROLE_SUPERVISOR },
    { M_GET, "/api/v1/users/*/messages", api_user_messages, API_ROLE_STAFF },
    { M_GET, "/api/v1/sessions/*/transcript", api_session_transcript,
      API_ROLE_STAFF },
    { M_GET, "/api/v1/users/*/profile", api_profile_get, API_ROLE_STAFF },
    { M_PATCH, "/api/v1/users/*/profile", api_profile_patch, API_ROLE_STAFF },
    { M_POST, "/api/v1/users/*/notes", api_note_add, API_ROLE_STAFF },
    { M_PATCH, "/api/v1/users/*/notes", api_note_edit, API_ROLE_STAFF },
    { M_DELETE, "/api/v1/users/*/notes", api_note_delete, API_ROLE_STAFF },
    { M_GET, "/api/v1/search", api_search, API_ROLE_SUPERVISOR },
    { M_GET, "/api/v1/history/sessions", api_history_sessions,
      API_ROLE_STAFF },
    { M_GET, "/api/v1/history/export", api_history_export,
      API_ROLE_SUPERVISOR },
    { M_GET, "/api/v1/reports", api_reports, API_ROLE_SUPERVISOR },
    { M_GET, "/api/v1/reports/export", api_reports_export,
      API_ROLE_SUPERVISOR },
    { M_GET, "/api/v1/labels", api_labels_list, API_ROLE_STAFF },
    { M_POST, "/api/v1/labels", api_labels_create, API_ROLE_ADMIN },
    { M_PATCH, "/api/v1/labels/*", api_label_patch, API_ROLE_ADMIN },
    { M_DELETE, "/api/v1/labels/*", api_label_delete, API_ROLE_ADMIN },
    { M_GET, "/api/v1/media/*", api_media_get, API_ROLE_STAFF },
    { M_POST, "/api/v1/media", api_media_upload, API_ROLE_STAFF },
    { M_POST, "/api/v1/me/stream-ticket", api_stream_ticket, API_ROLE_AGENT },
    { M_GET, "/api/v1/me/stream", api_stream, API_ROLE_TICKET },
    { M_POST, "/api/v1/auth/login", api_auth_login, API_ROLE_PUBLIC },
    { M_GET, "/api/v1/auth/me", api_auth_me, API_ROLE_SIGNED_IN },
    { M_POST, "/api/v1/auth/logout", api_auth_logout, API_ROLE_SIGNED_IN },
    { M_POST, "/api/v1/auth/logout-all", api_auth_logout_all,
      API_ROLE_SIGNED_IN },
    { M_POST, "/api/v1/auth/password", api_auth_password, API_ROLE_SIGNED_IN },
    { M_GET, "/api/v1/staff", api_staff_list, API_ROLE_SUPERVISOR },
    { M_POST, "/api/v1/staff/*/password", api_staff_reset, API_ROLE_ADMIN },
    { M_GET, "/api/v1/agents", api_agents_list, API_ROLE_SUPERVISOR },
    { M_POST, "/api/v1/agents", api_agents_create, API_ROLE_ADMIN },
    { M_GET, "/api/v1/agents/+", api_agent_get, API_ROLE_SUPERVISOR },
    { M_PATCH, "/api/v1/agents/+", api_agent_patch, API_ROLE_ADMIN },
    { M_DELETE, "/api/v1/agents/+", api_agent_delete, API_ROLE_ADMIN },
    { M_POST, "/api/v1/agents/+/token", api_agent_token, API_ROLE_ADMIN },
    { M_GET, "/api/v1/sessions", api_sessions_list, API_ROLE_SUPERVISOR },
    { M_GET, "/api/v1/queue", api_queue, API_ROLE_SUPERVISOR },
    { M_GET, "/api/v1/canned", api_canned_list, API_ROLE_STAFF },
    { M_POST, "/api/v1/canned", api_canned_create, API_ROLE_STAFF },
    { M_GET, "/api/v1/canned/export", api_canned_export, API_ROLE_STAFF },
    { M_POST, "/api/v1/canned/import", api_canned_import, API_ROLE_STAFF },
    { M_PATCH, "/api/v1/canned/*", api_canned_patch, API_ROLE_STAFF },
    { M_DELETE, "/api/v1/canned/*", api_canned_delete, API_ROLE_STAFF },
    { M_GET, "/api/v1/audit", api_audit_view, API_ROLE_ADMIN },
    { M_POST, "/api/v1/sessions/*/whisper", api_session_whisper,
      API_ROLE_TEAM },
    { M_POST, "/api/v1/sessions/*/takeover", api_session_takeover,
      API_ROLE_SUPERVISOR },
    { M_GET, "/api/v1/tokens", api_tokens_list, API_ROLE_SUPERVISOR },
    { M_POST, "/api/v1/tokens", api_tokens_create, API_ROLE_ADMIN },
    { M_DELETE, "/api/v1/tokens/*", api_token_delete, API_ROLE_ADMIN },
    { M_POST, "/api/v1/staff", api_staff_create, API_ROLE_ADMIN },
    { M_PATCH, "/api/v1/staff/*", api_staff_patch, API_ROLE_ADMIN },
    { M_GET, "/api/v1/board", api_board, API_ROLE_SUPERVISOR },
    { M_POST, "/api/v1/queue/*/assign", api_queue_assign,
      API_ROLE_SUPERVISOR },
    { M_POST, "/api/v1/agents/+/status", api_agent_force_status,
      API_ROLE_SUPERVISOR },
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static int method_bit(struct kf_str m)
{
    if (kf_str_eq_c(m, "GET"))
        return M_GET;
    if (kf_str_eq_c(m, "POST"))
        return M_POST;
    if (kf_str_eq_c(m, "HEAD"))
        return M_HEAD;
    if (kf_str_eq_c(m, "PATCH"))
        return M_PATCH;
    if (kf_str_eq_c(m, "DELETE"))
        return M_DELETE;
    return 0;
}

static const char *const method_names[] = { "GET", "POST", "HEAD", "PATCH",
                                            "DELETE" };
#define NMETHODS (sizeof(method_names) / sizeof(method_names[0]))

/* The methods of the bits in allowed, each after sep but the first. */
static size_t method_list(int allowed, const char *sep, char *out,
                          size_t size)
{
    size_t i, n = 0;

    out[0] = '\0';
    for (i = 0; i < NMETHODS && n < size; i++)
        if (allowed & (1 << i))
            n += (size_t)snprintf(out + n, size - n, "%s%s",
                                  n ? sep : "", method_names[i]);
    return n;
}

static void not_allowed(struct fcgi_req *r, int allowed)
{
    char list[64], hdr[96];

    method_list(allowed, ", ", list, sizeof(list));
    snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", list);
    fcgi_error(r, 405, "method_not_allowed", "method not allowed", hdr);
    log_info(&r->log, "http", "method_not_allowed", "status=405");
}

static int segment_char(char c, int account)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           (account && c == '@');
}

/* Matches path against pattern; the '*' segment goes to *param. */
static int match(const char *pattern, struct kf_str path,
                 struct kf_str *param)
{
    size_t i = 0;

    for (; *pattern; pattern++) {
        if (*pattern == '*' || *pattern == '+') {
            size_t start = i;

            while (i < path.len && segment_char(path.p[i], *pattern == '+'))
                i++;
            if (i == start || i - start > 64 ||
                (i < path.len && path.p[i] != '/'))
                return 0;
            *param = (struct kf_str){ path.p + start, i - start };
            continue;
        }
        if (i >= path.len || path.p[i] != *pattern)
            return 0;
        i++;
    }
    return i == path.len;
}

void routes_dispatch(struct fcgi_req *r)
{
    struct auth caller;
    int bit = method_bit(r->method), allowed = 0;
    size_t i;

    for (i = 0; i < NROUTES; i++) {
        if (!match(routes[i].path, r->path, &r->param))
            continue;
        if (routes[i].methods & bit) {
            r->route = routes[i].path;
            r->caller = &caller;
            if (api_authorize(r, routes[i].role) == 0)
                routes[i].handler(r);
            r->caller = NULL;
            return;
        }
        allowed |= routes[i].methods;
    }
    if (allowed) {
        r->route = "method_not_allowed";
        not_allowed(r, allowed);
        return;
    }
    fcgi_error(r, 404, "not_found", "no such route", NULL);
    log_info(&r->log, "http", "not_found", "status=404");
}

int routes_print(FILE *out)
{
    size_t i, b;

    for (i = 0; i < NROUTES; i++)
        for (b = 0; b < NMETHODS; b++) {
            const char *why;

            if (!(routes[i].methods & (1 << b)))
                continue;
            why = api_audit_exempt(method_names[b], routes[i].path);
            if (fprintf(out, "%s\t%s\t%s\t%s%s%s\n", method_names[b],
                        routes[i].path, api_role_name(routes[i].role),
                        (1 << b) & (M_GET | M_HEAD) ? "read"
                        : why ? "exempt" : "audited",
                        why ? "\t" : "", why ? why : "") < 0)
                return 1;
        }
    return fflush(out) == 0 ? 0 : 1;
}
