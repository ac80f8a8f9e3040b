/* reopen: the REST routes by which an agent starts a conversation again
 * with a user it served before (/api/v1/sessions/{openid}/reopen): GET
 * tells whether it could (who has the user now, when the user's window
 * closes), POST does it. Thin: authenticate, check that the past session
 * was the agent's (lib/history, the archive), call lib/route, map the
 * outcome. */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "audit.h"
#include "auth.h"
#include "fcgi.h"
#include "history.h"
#include "metrics.h"
#include "refusal.h"
#include "route.h"

#include "banned.h"

/* Answers when past was not agent's session with r->param (nonzero). */
static int check_served(struct fcgi_req *r, int64_t past, const char *agent)
{
    int rc = history_served(&r->app->history, r->param, past, agent);

    if (rc == 0)
        return 0;
    if (rc == KF_ENOTFOUND) {
        api_refused(r, refusal_get(REFUSAL_NOT_SERVED), NULL);
        log_info(&r->log, "api", "denied", "status=403 agent=%s", agent);
    } else if (rc == KF_EBACKEND) {
        metrics_inc(r->app->metrics, METRICS_POSTGRES_ERRORS,
                    "process=\"fcgi\"", 1);
        fcgi_error(r, 503, "backend_unavailable",
                   "postgresql is unreachable", NULL);
    } else if (rc == KF_EINVAL) {
        fcgi_error(r, 400, "invalid_field", "invalid openid", NULL);
    } else {
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
    }
    return 1;
}

/* GET /api/v1/sessions/{openid}/reopen?session=ID: the user's live
 * session (who has it) and window as they are now. An agent names its
 * own past session with the user; an admin may leave it out. */
void api_session_reopen_peek(struct fcgi_req *r)
{
    struct route_reopen p;
    struct auth who;
    struct kf_str sv;
    uint64_t sid = 0;
    json_t *live = json_null(), *win = json_null();
    int64_t now = kf_wall_ms();

    if (api_authenticate(r, &who, 0))
        return;
    if (!kf_openid_ok(r->param)) {
        fcgi_error(r, 400, "invalid_field", "invalid openid", NULL);
        return;
    }
    if ((http_query_get(&r->query, "session", &sv) &&
         (kf_parse_u64(sv, &sid) < 0 || sid < 1 || sid > INT64_MAX)) ||
        (who.role == AUTH_AGENT && sid == 0)) {
        fcgi_error(r, 400, "invalid_field", "session must be a session id",
                   NULL);
        return;
    }
    if (who.role == AUTH_AGENT && check_served(r, (int64_t)sid,
                                               who.account))
        return;
    if (route_reopen_peek(&r->app->route, r->param, now, &p) < 0) {
        api_backend_down(r);
        return;
    }
    if (p.state[0])
        live = json_pack("{s:s,s:s}", "state", p.state, "agent", p.agent);
    if (p.window_end_ms > 0)
        win = json_pack("{s:I,s:I,s:b}", "ends_ms",
                        (json_int_t)p.window_end_ms, "left",
                        (json_int_t)p.left, "open",
                        p.window_end_ms >= now && p.left > 0);
    fcgi_json(r, 200, json_pack("{s:s%,s:o,s:o,s:I}", "openid", r->param.p,
                                r->param.len, "live", live, "window", win,
                                "now_ms", (json_int_t)now));
}

/* The past session to reopen and the agent it is for (an agent: itself;
 * an admin names one). Answers when the body is wrong (nonzero). */
static int reopen_args(struct fcgi_req *r, const struct auth *who,
                       json_t *body, int64_t *past, const char **agent)
{
    json_t *s = json_object_get(body, "session");

    if (!json_is_integer(s) || json_integer_value(s) < 1) {
        fcgi_error(r, 400, "invalid_field",
                   "session must be the id of a past session", NULL);
        return 1;
    }
    *past = (int64_t)json_integer_value(s);
    if (api_str_field(r, body, "agent", agent))
        return 1;
    if (who->role == AUTH_AGENT) {
        if (*agent && strcmp(*agent, who->account) != 0) {
            fcgi_error(r, 403, "forbidden",
                       "an agent reopens sessions for itself only", NULL);
            return 1;
        }
        *agent = who->account;
    } else if (!*agent || agent_check_account(*agent, NULL) < 0) {
        /* checked before it names a Redis key */
        fcgi_error(r, 400, "invalid_field",
                   "agent must name the agent the session is for", NULL);
        return 1;
    }
    return 0;
}

/* "user_taken" names who has the user. */
static void reopen_refused(struct fcgi_req *r, const struct refusal *why,
                           const char *holder)
{
    if (why->id == REFUSAL_HELD)
        fcgi_json(r, why->status, json_pack(
                      "{s:{s:s,s:s,s:s}}", "error", "code", why->code,
                      "message", why->message, "agent", holder));
    else
        api_refused(r, why, NULL);
}

/* POST /api/v1/sessions/{openid}/reopen {"session": ID, "agent"?}: a new
 * session of the user with the agent whose past session ID was; the
 * agent's live session with the user if it has one already. */
void api_session_reopen(struct fcgi_req *r)
{
    const struct refusal *why = NULL;
    struct route_reopen res;
    struct auth who;
    struct audit au;
    char o[65];
    const char *agent = NULL;
    int64_t past = 0;
    json_t *body;
    int rc;

    if (api_authenticate(r, &who, 0))
        return;
    if (!kf_openid_ok(r->param)) {
        fcgi_error(r, 400, "invalid_field", "invalid openid", NULL);
        return;
    }
    body = api_json_body(r);
    if (!body)
        return;
    snprintf(o, sizeof(o), "%.*s", (int)r->param.len, r->param.p);
    if (reopen_args(r, &who, body, &past, &agent) ||
        check_served(r, past, agent) ||
        api_audit(r, &who, "session.reopen", o, &au))
        goto out;
    if (audit_redis_arm(r->app->route.store, &au) < 0) {
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
        goto out;
    }
    rc = route_reopen(&r->app->route, r->param, agent,
                      who.role == AUTH_AGENT ? who.account : "", past,
                      kf_wall_ms(), &res, &why);
    audit_redis_disarm(r->app->route.store);
    if (rc == KF_EBACKEND) {
        api_backend_down(r);
    } else if (rc < 0) {
        reopen_refused(r, why ? why : refusal_get(REFUSAL_REFUSED),
                       res.agent);
        log_info(&r->log, "api", "reopen", "status=%d agent=%s code=%s",
                 r->status, agent, why ? why->code : "refused");
    } else {
        fcgi_json(r, 200, json_pack(
                      "{s:s%,s:s,s:I,s:s,s:I}", "openid", r->param.p,
                      r->param.len, "result",
                      res.already ? "already" : "reopened", "session",
                      (json_int_t)res.session_id, "agent", res.agent,
                      "left", (json_int_t)res.left));
        log_info(&r->log, "api", "reopen", "status=200 agent=%s past=%lld "
                 "session=%lld already=%d", agent, (long long)past,
                 (long long)res.session_id, res.already);
    }
out:
    json_decref(body);
}
