/* supervise: the REST routes by which staff act inside a user's live
 * session (/api/v1/sessions/{openid}/whisper and .../takeover). Thin:
 * authenticate (a supervisor as itself, api_authenticate_staff), read a
 * bounded body, call lib/supervise, map the outcome. */
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "audit.h"
#include "fcgi.h"
#include "refusal.h"
#include "supervise.h"

#include "banned.h"

/* The answer to a lib/supervise verb that failed. */
static void supervise_failed(struct fcgi_req *r, int rc,
                             const struct refusal *why)
{
    if (rc == KF_EBACKEND)
        api_backend_down(r);
    else if (why)
        api_refused(r, why, NULL);
    else
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
}

/* POST /api/v1/sessions/{openid}/whisper {"text"}: an internal note in
 * the user's live session, for staff only — a supervisor's or an
 * admin's in any session, an agent's in the session it serves. Never
 * sent to WeChat. */
void api_session_whisper(struct fcgi_req *r)
{
    const struct refusal *why = NULL;
    struct supervise_author a;
    struct audit au;
    struct auth who;
    char session[24], agent[48], id[SUPERVISE_MSGID_SIZE];
    const char *text = NULL, *by = "";
    json_t *body;
    int rc;

    if (api_authenticate_staff(r, &who))
        return;
    body = api_json_body(r);
    if (!body)
        return;
    if (api_str_field(r, body, "text", &text))
        goto out;
    if (!text) {
        fcgi_error(r, 400, "invalid_field", "field text is required", NULL);
        goto out;
    }
    a.name = who.name;
    if (who.role == AUTH_AGENT) {
        by = who.account;
        a.author = who.account;
        a.role = "agent";
    } else {
        a.author = who.login[0] ? who.login : "admin";
        a.role = who.role == AUTH_SUPERVISOR ? "supervisor" : "admin";
    }
    if (api_audit_arm(r, &who, "session.whisper", r->param, &au))
        goto out;
    rc = supervise_whisper(&r->app->route, r->param, by, &a, text,
                           kf_wall_ms(), session, agent, id, &why);
    audit_redis_disarm(r->app->route.store);
    if (rc < 0)
        supervise_failed(r, rc, why);
    else
        fcgi_json(r, 200, json_pack("{s:s%,s:s,s:s,s:s}", "openid",
                                    r->param.p, r->param.len, "id", id,
                                    "session", session, "agent", agent));
    log_info(&r->log, "api", "whisper", "status=%d by=%s role=%s code=%s",
             r->status, a.author, a.role, why ? why->sub : "-");
out:
    json_decref(body);
}

/* POST /api/v1/sessions/{openid}/takeover: a supervisor takes the user's
 * active session over as its agent account (written as a transfer). A
 * supervisor without one, or an admin (which has none), gets 409
 * no_agent_identity; agents 403. */
void api_session_takeover(struct fcgi_req *r)
{
    const struct refusal *why = NULL;
    struct audit au;
    struct auth who;
    char prev[48];
    int rc;

    if (api_authenticate_staff(r, &who))
        return;
    if (who.role == AUTH_AGENT) {
        fcgi_error(r, 403, "forbidden", "taking over is for supervisors",
                   NULL);
        return;
    }
    if (who.role != AUTH_SUPERVISOR || !who.account[0]) {
        api_refused(r, refusal_get(REFUSAL_NO_AGENT_IDENTITY), NULL);
        return;
    }
    if (api_audit_arm(r, &who, "session.takeover", r->param, &au))
        return;
    rc = supervise_takeover(&r->app->route, r->param, who.account,
                            who.login, who.name, kf_wall_ms(), prev, &why);
    audit_redis_disarm(r->app->route.store);
    if (rc < 0)
        supervise_failed(r, rc, why);
    else
        fcgi_json(r, 200, json_pack("{s:s%,s:s,s:s,s:s}", "openid",
                                    r->param.p, r->param.len, "result",
                                    "taken_over", "agent", who.account,
                                    "from", prev));
    log_info(&r->log, "api", "takeover", "status=%d by=%s agent=%s from=%s "
             "code=%s", r->status, who.login, who.account,
             rc == 0 ? prev : "-", why ? why->sub : "-");
}
