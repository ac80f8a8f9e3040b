/* api: the REST routes routing and presence need (/api/v1/me/...,
 * /api/v1/sessions/{openid}..., /api/v1/stats). Thin: authenticate, read a
 * bounded JSON body, call lib/route, map the outcome to a status. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "fcgi.h"
#include "route.h"

#include "banned.h"

#define API_BODY_MAX 16384

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct route *rt(struct fcgi_req *r)
{
    return &r->app->cb.route;
}

/* Authenticates; on failure answers and returns nonzero. need_admin:
 * agents get 403. */
static int authenticate(struct fcgi_req *r, struct auth *who, int need_admin)
{
    int rc = auth_identify(rt(r), &r->app->cfg,
                           fcgi_param(r, "HTTP_AUTHORIZATION"), who);

    if (rc == KF_EBACKEND) {
        fcgi_error(r, 503, "backend_unavailable", "redis is unreachable",
                   NULL);
    } else if (rc < 0) {
        fcgi_error(r, 401, "unauthorized", "a valid bearer token is required",
                   "WWW-Authenticate: Bearer\r\n");
    } else if (need_admin && who->role != AUTH_ADMIN) {
        fcgi_error(r, 403, "forbidden", "this route is for admins", NULL);
        rc = KF_EINVAL;
    } else if (!need_admin && who->role == AUTH_NONE) {
        rc = KF_EINVAL;
    }
    if (rc < 0)
        log_info(&r->log, "api", "denied", "status=%d", r->status);
    return rc < 0;
}

static int need_agent(struct fcgi_req *r, const struct auth *who)
{
    if (who->role == AUTH_AGENT)
        return 0;
    fcgi_error(r, 403, "forbidden", "this route is for agents", NULL);
    return 1;
}

/* Reads a JSON object body (bounded). Answers 400/413 itself. */
static json_t *json_body(struct fcgi_req *r)
{
    json_error_t e;
    json_t *j;
    int rc = fcgi_read_body(r, API_BODY_MAX);

    if (rc == KF_ETOOBIG) {
        fcgi_error(r, 413, "body_too_large", "request body over 16 KiB",
                   NULL);
        return NULL;
    }
    if (rc < 0) {
        fcgi_error(r, 400, "bad_body", "could not read the body", NULL);
        return NULL;
    }
    if (r->body.len == 0)
        return json_object();
    j = json_loadb(r->body.p, r->body.len, JSON_REJECT_DUPLICATES, &e);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        fcgi_error(r, 400, "bad_json", "the body must be a JSON object",
                   NULL);
        return NULL;
    }
    return j;
}

/* A string member (NULL if absent); a present non-string answers 400. */
static int str_field(struct fcgi_req *r, json_t *o, const char *name,
                     const char **out)
{
    json_t *v = json_object_get(o, name);
    char msg[96];

    *out = NULL;
    if (!v)
        return 0;
    if (json_is_string(v)) {
        *out = json_string_value(v);
        return 0;
    }
    snprintf(msg, sizeof(msg), "field %s must be a string", name);
    fcgi_error(r, 400, "invalid_field", msg, NULL);
    return 1;
}

static void backend_down(struct fcgi_req *r)
{
    fcgi_error(r, 503, "backend_unavailable", "redis is unreachable", NULL);
}

static void presence(struct fcgi_req *r, const char *op, const char *reason)
{
    struct auth who;
    char status[16];
    long moved = 0;
    int rc;

    if (authenticate(r, &who, 0) || need_agent(r, &who))
        return;
    rc = route_presence(rt(r), who.account, op, reason, now_ms(), status,
                        sizeof(status), &moved);
    if (rc == KF_EBACKEND) {
        backend_down(r);
    } else if (rc < 0) {
        fcgi_error(r, 404, "unknown_agent", "agent not found", NULL);
    } else {
        fcgi_json(r, 200, json_pack("{s:s,s:s,s:I}", "account", who.account,
                                    "status", status, "moved",
                                    (json_int_t)moved));
        log_info(&r->log, "api", "presence", "agent=%s op=%s status=%s "
                 "moved=%ld", who.account, op, status, moved);
    }
}

void api_me_status(struct fcgi_req *r)
{
    json_t *body = json_body(r);
    const char *st = NULL;

    if (!body)
        return;
    if (str_field(r, body, "status", &st) == 0) {
        if (!st || (strcmp(st, "online") && strcmp(st, "paused") &&
                    strcmp(st, "offline")))
            fcgi_error(r, 400, "invalid_field",
                       "field status must be online, paused or offline",
                       NULL);
        else
            presence(r, st, "request");
    }
    json_decref(body);
}

void api_me_heartbeat(struct fcgi_req *r)
{
    presence(r, "heartbeat", "heartbeat");
}

void api_me_sessions(struct fcgi_req *r)
{
    struct auth who;
    json_t *list = NULL;
    int rc;

    if (authenticate(r, &who, 0) || need_agent(r, &who))
        return;
    rc = route_agent_sessions(rt(r), who.account, &list);
    if (rc < 0) {
        backend_down(r);
        return;
    }
    fcgi_json(r, 200, json_pack("{s:s,s:s,s:o}", "account", who.account,
                                "status", who.status, "sessions", list));
}

/* An agent may only see and act on its own sessions (the scripts check
 * the same for actions). */
void api_session_view(struct fcgi_req *r)
{
    struct auth who;
    json_t *s = NULL;
    int rc;

    if (authenticate(r, &who, 0))
        return;
    rc = route_session_view(rt(r), r->param, &s);
    if (rc == KF_EBACKEND) {
        backend_down(r);
    } else if (rc < 0) {
        fcgi_error(r, 404, "no_session", "this user has no session", NULL);
    } else if (who.role == AUTH_AGENT &&
               strcmp(json_string_value(json_object_get(s, "agent"))
                          ? json_string_value(json_object_get(s, "agent"))
                          : "", who.account) != 0) {
        json_decref(s);
        fcgi_error(r, 403, "not_yours", "the session is another agent's",
                   NULL);
    } else {
        fcgi_json(r, 200, s);
    }
}

static void session_refused(struct fcgi_req *r, int rc, const char *code)
{
    static const struct {
        const char *code;
        int status;
        const char *message;
    } map[] = {
        { "no_session", 404, "this user has no session" },
        { "not_yours", 403, "the session is another agent's" },
        { "unknown_agent", 404, "no such agent" },
        { "unknown_group", 404, "no such group" },
        { "agent_offline", 409, "the agent is offline" },
        { "agent_full", 409, "the agent is at capacity" },
        { "same_agent", 409, "the session is already with that agent" },
    };
    size_t i;

    if (rc == KF_EBACKEND) {
        backend_down(r);
        return;
    }
    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(code, map[i].code) == 0) {
            fcgi_error(r, map[i].status, map[i].code, map[i].message, NULL);
            return;
        }
    fcgi_error(r, 400, "refused", "the session action was refused", NULL);
}

static void session_action(struct fcgi_req *r, const char *op,
                           const char *target)
{
    struct auth who;
    char result[96], err[32] = "";
    int rc;

    if (authenticate(r, &who, 0))
        return;
    rc = route_session(rt(r), op, r->param,
                       who.role == AUTH_AGENT ? who.account : "", target,
                       now_ms(), result, sizeof(result), err, sizeof(err));
    if (rc < 0) {
        session_refused(r, rc, err);
        return;
    }
    fcgi_json(r, 200, json_pack("{s:s%,s:s}", "openid", r->param.p,
                                r->param.len, "result", result));
    log_info(&r->log, "api", op, "by=%s result=%s",
             who.role == AUTH_AGENT ? who.account : "admin", result);
}

void api_session_close(struct fcgi_req *r)
{
    session_action(r, "close", NULL);
}

void api_session_transfer(struct fcgi_req *r)
{
    json_t *body = json_body(r);
    const char *agent = NULL, *group = NULL;

    if (!body)
        return;
    if (str_field(r, body, "to_agent", &agent) == 0 &&
        str_field(r, body, "to_group", &group) == 0) {
        if (!agent == !group)
            fcgi_error(r, 400, "invalid_field",
                       "give exactly one of to_agent or to_group", NULL);
        else if (strlen(agent ? agent : group) > 48)
            fcgi_error(r, 400, "invalid_field", "target name too long",
                       NULL);
        else
            session_action(r, agent ? "transfer_agent" : "transfer_group",
                           agent ? agent : group);
    }
    json_decref(body);
}

void api_stats(struct fcgi_req *r)
{
    struct auth who;
    json_t *s = NULL;

    if (authenticate(r, &who, 1))
        return;
    if (route_stats(rt(r), &s) < 0)
        backend_down(r);
    else
        fcgi_json(r, 200, s);
}

/* GET /api/v1/me/events?after=CURSOR&limit=N: the agent's feed (new
 * messages, assignments, transfers, closes, delivery status) after the
 * cursor, oldest first; `next` is the cursor for the next poll, so a
 * client polling every second or two misses nothing and sees nothing
 * twice. */
void api_me_events(struct fcgi_req *r)
{
    struct auth who;
    struct kf_str after, lim;
    char cursor[48], next[48];
    long limit = 100;
    json_t *list = NULL;
    int rc;

    if (authenticate(r, &who, 0) || need_agent(r, &who))
        return;
    http_query_get(&r->query, "after", &after);
    if (http_query_get(&r->query, "limit", &lim)) {
        uint64_t v;

        if (kf_parse_u64(lim, &v) < 0 || v < 1 || v > 500) {
            fcgi_error(r, 400, "invalid_field",
                       "limit must be a number in 1..500", NULL);
            return;
        }
        limit = (long)v;
    }
    if (after.len >= sizeof(cursor)) {
        fcgi_error(r, 400, "invalid_field", "after is not a cursor", NULL);
        return;
    }
    snprintf(cursor, sizeof(cursor), "%.*s", (int)after.len, after.p);
    rc = route_inbox(rt(r), who.account, cursor, limit, &list, next,
                     sizeof(next));
    if (rc == KF_EINVAL) {
        fcgi_error(r, 400, "invalid_field", "after is not a cursor", NULL);
    } else if (rc < 0) {
        backend_down(r);
    } else {
        fcgi_json(r, 200, json_pack("{s:o,s:s}", "events", list, "next",
                                    next));
    }
}

/* POST /api/v1/sessions/{openid}/messages: an agent answers a user
 * through WeChat's customer-service API, as its kf_account. */
void api_session_send(struct fcgi_req *r)
{
    static const struct {
        const char *code;
        int status;
    } map[] = {
        { "outside_48h_window", 409 }, { "quota_exhausted", 409 },
        { "not_yours", 403 }, { "no_session", 404 },
        { "invalid_field", 400 },
    };
    struct outbound_result res;
    struct auth who;
    json_t *body;
    size_t i;
    int rc;

    if (authenticate(r, &who, 0))
        return;
    body = json_body(r);
    if (!body)
        return;
    rc = outbound_send(&r->app->outbound,
                       who.role == AUTH_AGENT ? who.account : "", r->param,
                       body, now_ms(), &res);
    json_decref(body);
    if (rc == KF_EINVAL && res.code[0]) {
        for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
            if (strcmp(res.code, map[i].code) == 0)
                break;
        fcgi_error(r, i < sizeof(map) / sizeof(map[0]) ? map[i].status : 400,
                   res.code, res.message, NULL);
    } else if (rc == KF_EWECHAT) {
        const char *code = res.errcode == 45015 ? "outside_48h_window"
                           : res.errcode == 45047 ? "quota_exhausted"
                                                  : "wechat_refused";
        json_t *e = json_pack("{s:{s:s,s:s,s:I,s:s}}", "error", "code", code,
                              "message", res.message, "errcode",
                              (json_int_t)res.errcode, "id", res.id);

        fcgi_json(r, res.errcode == 45015 || res.errcode == 45047 ? 409 : 502,
                  e);
    } else if (rc < 0) {
        backend_down(r);
    } else {
        fcgi_json(r, strcmp(res.status, "sent") == 0 ? 200 : 202,
                  json_pack("{s:s,s:s,s:I}", "id", res.id, "status",
                            res.status, "left", (json_int_t)res.left));
    }
    log_info(&r->log, "api", "send", "status=%d result=%s code=%s errcode=%ld",
             r->status, res.status[0] ? res.status : "-",
             res.code[0] ? res.code : "-", res.errcode);
}
