/* api: the REST routes routing and presence need (/api/v1/me/...,
 * /api/v1/sessions/{openid}..., /api/v1/stats; a close carries the
 * wrap-up, lib/wrapup and lib/label) and the history reads
 * (/api/v1/users/{openid}/messages, .../transcript, /api/v1/search,
 * /api/v1/history/sessions). Thin: authenticate, read a bounded JSON
 * body, call lib/route or lib/history, map the outcome to a status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "agent.h"
#include "agent_token.h"
#include "agent_wx.h"
#include "api_token.h"
#include "audit.h"
#include "auth.h"
#include "fcgi.h"
#include "handover.h"
#include "media.h"
#include "media_out.h"
#include "metrics.h"
#include "push.h"
#include "history.h"
#include "label.h"
#include "pg.h"
#include "refusal.h"
#include "route.h"
#include "staff_session.h"
#include "wrapup.h"

#include "banned.h"

#define API_BODY_MAX 16384

static struct route *rt(struct fcgi_req *r)
{
    return &r->app->route;
}

/* 429 for a failed attempt from an address over the brake's limit
 * (kind: the metric's label, auth or ticket). */
static void braked(struct fcgi_req *r, long retry_after_s, const char *kind)
{
    char hdr[64];

    metrics_inc(r->app->metrics, METRICS_RATELIMIT_REJECTIONS, kind, 1);
    snprintf(hdr, sizeof(hdr), "Retry-After: %ld\r\n", retry_after_s);
    fcgi_error(r, 429, "too_many_auth_failures",
               "too many failed sign-ins from this address; try again "
               "later", hdr);
}

/* Logs a refused caller once (the answer is sent); returns 1. */
static int denied(struct fcgi_req *r)
{
    char addr[46];

    auth_address(fcgi_param(r, "REMOTE_ADDR"), addr);
    log_info(&r->log, "api", "denied", "status=%d addr=%s", r->status, addr);
    return 1;
}

/* A named API token ("wxt_" + 64 hex, lib/api_token) as the bearer:
 * looked up in PostgreSQL on every request, no cache, so a revoked token
 * is refused from the next request on. A live one is served as an admin
 * within its scopes: a route none of them covers gets 403 scope. One
 * PostgreSQL does not know is counted by the brake like any bad token.
 * Answers a refusal itself (*answered = 1). 1 when the header held such
 * a token. */
static int by_api_token(struct fcgi_req *r, struct auth *who,
                        const char *addr, int *rc, int *answered)
{
    char tok[API_TOKEN_SIZE], hash[AGENT_HASH_SIZE];
    struct api_token_who t;
    struct kf_str b;

    *answered = 0;
    if (auth_bearer(fcgi_param(r, "HTTP_AUTHORIZATION"), &b) < 0 ||
        !api_token_is_token(b))
        return 0;
    memset(who, 0, sizeof(*who));
    memcpy(tok, b.p, b.len);
    tok[b.len] = '\0';
    *rc = agent_token_hash(tok, hash);
    OPENSSL_cleanse(tok, sizeof(tok));
    if (*rc == 0)
        *rc = api_token_identify(r->app->tokens_db,
                                 r->app->cfg.wechat.app_id, hash, &t);
    OPENSSL_cleanse(hash, sizeof(hash));
    if (*rc == KF_ENOTFOUND) {
        *rc = auth_count_failure(rt(r), &r->app->cfg, addr, who);
    } else if (*rc < 0) {
        fcgi_error(r, 503, "backend_unavailable",
                   "postgresql is unreachable", NULL);
        *answered = 1;
    } else if (!(api_token_route_scopes(r->method, r->route) & t.scopes)) {
        api_refused(r, refusal_get(REFUSAL_TOKEN_SCOPE), NULL);
        log_info(&r->log, "api", "scope", "token=%lld", t.id);
        *answered = 1;
    } else {
        who->role = AUTH_ADMIN;
        who->api_token_id = t.id;
        who->api_scopes = t.scopes;
        snprintf(who->api_token_name, sizeof(who->api_token_name), "%s",
                 t.name);
    }
    if (*answered)
        *rc = KF_EINVAL;
    return 1;
}

/* Who the caller is, as its credential says (a supervisor as
 * AUTH_SUPERVISOR): a bearer token, else a staff session cookie (a bearer
 * token wins), whose CSRF token is checked for a method that changes
 * something. Known once per request (r->caller). Answers a failure itself
 * (401, 403 csrf_failed, 429, 503) and returns nonzero. */
static int identify(struct fcgi_req *r, struct auth *who)
{
    struct kf_str sid;
    char addr[46];
    int rc, cookie, answered = 0;

    if (r->caller && r->caller_known) {
        *who = *r->caller;
        return 0;
    }
    memset(who, 0, sizeof(*who));
    auth_address(fcgi_param(r, "REMOTE_ADDR"), addr);
    cookie = !fcgi_param(r, "HTTP_AUTHORIZATION").len &&
             staff_cookie_sid(fcgi_param(r, "HTTP_COOKIE"), &sid) == 0;
    if (cookie)
        rc = auth_cookie_identify(rt(r), &r->app->cfg, sid, who);
    else if (!by_api_token(r, who, addr, &rc, &answered))
        rc = auth_identify(rt(r), &r->app->cfg,
                           fcgi_param(r, "HTTP_AUTHORIZATION"), addr, who);
    if (answered) {
        /* refused above */
    } else if (rc == KF_EBACKEND) {
        api_backend_down(r);
    } else if (rc < 0 && cookie) {
        api_refused(r, refusal_get(REFUSAL_NOT_SIGNED_IN), NULL);
    } else if (rc == KF_ELIMIT) {
        braked(r, who->retry_after_s, "kind=\"auth\"");
    } else if (rc < 0) {
        fcgi_error(r, 401, "unauthorized", "a valid bearer token is required",
                   "WWW-Authenticate: Bearer\r\n");
    } else if (cookie &&
               !staff_csrf_ok(r->method, fcgi_param(r, "HTTP_X_CSRF_TOKEN"),
                              who->csrf)) {
        api_refused(r, refusal_get(REFUSAL_CSRF_FAILED), NULL);
        rc = KF_EINVAL;
    }
    if (rc < 0)
        return denied(r);
    if (r->caller) {
        *r->caller = *who;
        r->caller_known = 1;
    }
    return 0;
}

static int reads(const struct fcgi_req *r)
{
    return kf_str_eq_c(r->method, "GET") || kf_str_eq_c(r->method, "HEAD");
}

/* A route of the agent's own (/api/v1/me and /api/v1/me/...). */
static int me_route(const struct fcgi_req *r)
{
    return r->route && (strcmp(r->route, "/api/v1/me") == 0 ||
                        strncmp(r->route, "/api/v1/me/", 11) == 0);
}

/* Authenticates (identify). A supervisor linked to an agent account is
 * served as that agent on /api/v1/me... and on anything but GET and HEAD
 * (what an agent may do, e.g. answer a session it took over); otherwise
 * as an admin on GET and HEAD (every session and the admin views, read
 * only), and refused anything else. On failure answers and returns
 * nonzero. need_admin: agents get 403. */
int api_authenticate(struct fcgi_req *r, struct auth *who, int need_admin)
{
    if (identify(r, who))
        return 1;
    if (who->role == AUTH_SUPERVISOR) {
        if (who->account[0] && (!reads(r) || me_route(r))) {
            who->role = AUTH_AGENT;
        } else if (reads(r)) {
            who->role = AUTH_ADMIN;
        } else {
            api_refused(r, refusal_get(REFUSAL_READ_ONLY), NULL);
            return denied(r);
        }
    }
    if (need_admin && who->role != AUTH_ADMIN) {
        fcgi_error(r, 403, "forbidden", "this route is for admins", NULL);
        return denied(r);
    }
    return 0;
}

int api_authenticate_staff(struct fcgi_req *r, struct auth *who)
{
    return identify(r, who);
}

/* A supervisor as itself (AUTH_SUPERVISOR, its writes too) or an admin;
 * agents get 403. */
int api_authenticate_lead(struct fcgi_req *r, struct auth *who)
{
    if (identify(r, who))
        return 1;
    if (who->role == AUTH_ADMIN || who->role == AUTH_SUPERVISOR)
        return 0;
    fcgi_error(r, 403, "forbidden", "this route is for supervisors and "
               "admins", NULL);
    return denied(r);
}

int api_staff_session(struct fcgi_req *r, struct auth *who)
{
    struct kf_str sid;

    memset(who, 0, sizeof(*who));
    if (fcgi_param(r, "HTTP_AUTHORIZATION").len ||
        staff_cookie_sid(fcgi_param(r, "HTTP_COOKIE"), &sid) < 0) {
        api_refused(r, refusal_get(REFUSAL_NOT_SIGNED_IN), NULL);
        return 1;
    }
    return identify(r, who);
}

int api_need_agent(struct fcgi_req *r, const struct auth *who)
{
    if (who->role == AUTH_AGENT)
        return 0;
    fcgi_error(r, 403, "forbidden", "this route is for agents", NULL);
    return 1;
}

const char *api_role_name(enum api_role role)
{
    switch (role) {
    case API_ROLE_PUBLIC:
        return "public";
    case API_ROLE_TICKET:
        return "ticket";
    case API_ROLE_SIGNED_IN:
        return "signed_in";
    case API_ROLE_STAFF:
        return "staff";
    case API_ROLE_AGENT:
        return "agent";
    case API_ROLE_SUPERVISOR:
        return "supervisor";
    case API_ROLE_ADMIN:
        return "admin";
    case API_ROLE_TEAM:
        return "team";
    default:
        return "undeclared";
    }
}

int api_authorize(struct fcgi_req *r, enum api_role role)
{
    struct auth who;

    switch (role) {
    case API_ROLE_PUBLIC:
    case API_ROLE_TICKET:       /* the handler checks the ticket */
        return 0;
    case API_ROLE_SIGNED_IN:
        return api_staff_session(r, &who);
    case API_ROLE_STAFF:
        return api_authenticate(r, &who, 0);
    case API_ROLE_TEAM:
        return identify(r, &who);
    case API_ROLE_AGENT:
        return api_authenticate(r, &who, 0) || api_need_agent(r, &who);
    case API_ROLE_SUPERVISOR:
        /* as the credential says: a linked supervisor is not its agent
         * here (api_authenticate would serve its writes as the agent's) */
        if (identify(r, &who))
            return 1;
        if (who.role == AUTH_ADMIN || who.role == AUTH_SUPERVISOR)
            return 0;
        fcgi_error(r, 403, "forbidden", "this route is for admins", NULL);
        return denied(r);
    case API_ROLE_ADMIN:
        if (api_authenticate(r, &who, 1))
            return 1;
        if (strcmp(who.staff_role, "supervisor") != 0)
            return 0;
        fcgi_error(r, 403, "forbidden", "this route is for admins", NULL);
        return denied(r);
    default:
        break;
    }
    fcgi_error(r, 500, "internal_error", "this route declares no role",
               NULL);
    log_error(&r->log, "http", "route_without_role", "route=%s",
              r->route ? r->route : "-");
    return 1;
}

/* Reads a JSON object body (bounded). Answers 400/413 itself. */
json_t *api_json_body(struct fcgi_req *r)
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
int api_str_field(struct fcgi_req *r, json_t *o, const char *name,
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

void api_backend_down(struct fcgi_req *r)
{
    fcgi_error(r, 503, "backend_unavailable", "redis is unreachable", NULL);
}

void api_refused(struct fcgi_req *r, const struct refusal *why,
                 const char *detail)
{
    fcgi_error(r, why->status, why->code,
               why->message ? why->message : detail ? detail : "", NULL);
}

static const char *field_str(const json_t *o, const char *name,
                             const char *def)
{
    const char *v = json_string_value(json_object_get(o, name));

    return v ? v : def;
}

/* A decimal string member of a Redis hash as a number (def if absent). */
static json_int_t field_int(const json_t *o, const char *name, long def)
{
    const char *v = json_string_value(json_object_get(o, name));

    return v && *v ? (json_int_t)strtoll(v, NULL, 10) : (json_int_t)def;
}

/* An agent's mirror record (route_agent_info, route_colleagues: string
 * fields) as the API shows an agent (api_agent_json). */
static json_t *mirror_agent_json(const char *account, const json_t *h)
{
    const char *groups = field_str(h, "groups", "");
    struct agent a;

    agent_init(&a);
    snprintf(a.account, sizeof(a.account), "%s", account);
    snprintf(a.nick, sizeof(a.nick), "%s", field_str(h, "nick", ""));
    a.weight = (int)field_int(h, "weight", 1);
    a.capacity = (int)field_int(h, "capacity", 0);
    if (agent_split_groups(groups, strlen(groups), a.groups,
                           AGENT_MAX_GROUPS, &a.ngroups, 1) < 0)
        a.ngroups = 0;
    return api_agent_json(&a, field_str(h, "status", "offline"),
                          field_int(h, "load", 0));
}

/* GET /api/v1/me: who the token is — {"role":"admin"}, or the agent's
 * record (nick, weight, capacity, groups as a list, status, load). */
void api_me(struct fcgi_req *r)
{
    struct auth who;
    json_t *me = NULL, *o;
    int rc;

    if (api_authenticate(r, &who, 0))
        return;
    if (who.api_token_id) {
        fcgi_json(r, 200, json_pack("{s:s,s:I,s:s,s:o*}", "role", "token",
                                    "id", (json_int_t)who.api_token_id,
                                    "name", who.api_token_name, "scopes",
                                    api_token_scopes_json(who.api_scopes)));
        return;
    }
    if (who.role == AUTH_ADMIN) {
        fcgi_json(r, 200, who.login[0]
                  ? json_pack("{s:s,s:s,s:s}", "role", who.staff_role,
                              "login", who.login, "name", who.name)
                  : json_pack("{s:s}", "role", "admin"));
        return;
    }
    rc = route_agent_info(rt(r), who.account, &me);
    if (rc == KF_ENOTFOUND) {
        fcgi_error(r, 401, "unauthorized", "a valid bearer token is required",
                   "WWW-Authenticate: Bearer\r\n");
        return;
    }
    if (rc < 0) {
        api_backend_down(r);
        return;
    }
    o = mirror_agent_json(who.account, me);
    if (o) {
        const char *by = json_string_value(json_object_get(me, "status_by"));

        /* who forced the status (fcgi/board.c), "" when the agent set it */
        json_object_set_new(o, "status_by", json_string(by ? by : ""));
        /* a supervisor served as its agent says what it is */
        json_object_set_new(o, "role", json_string(
                                who.login[0] ? who.staff_role : "agent"));
    }
    json_decref(me);
    if (o && who.login[0]) {
        json_object_set_new(o, "login", json_string(who.login));
        json_object_set_new(o, "name", json_string(who.name));
    }
    fcgi_json(r, 200, o);
}

/* GET /api/v1/me/colleagues: the account's agents (as GET /api/v1/agents
 * shows one; capacity the one routing applies) and groups (how many
 * online, how many waiting), for picking whom to transfer to. Agents
 * and admins. */
void api_me_colleagues(struct fcgi_req *r)
{
    struct auth who;
    json_t *c = NULL, *agents, *a;
    size_t i;

    if (api_authenticate(r, &who, 0))
        return;
    if (route_colleagues(rt(r), &c) < 0) {
        api_backend_down(r);
        return;
    }
    agents = json_object_get(c, "agents");
    json_array_foreach(agents, i, a)
        json_array_set_new(agents, i, mirror_agent_json(
                                          field_str(a, "account", ""), a));
    fcgi_json(r, 200, c);
}

/* Arms the request's audit record for the next script (fcgi.h). */
int api_audit_arm(struct fcgi_req *r, const struct auth *who,
                  const char *action, struct kf_str target, struct audit *au)
{
    char t[AUDIT_TARGET_MAX + 1];

    if (!action)
        return 0;
    snprintf(t, sizeof(t), "%.*s", (int)(target.len < sizeof(t)
                                         ? target.len : 0), target.p);
    if (api_audit(r, who, action, t, au))
        return 1;
    if (audit_redis_arm(rt(r)->store, au) == 0)
        return 0;
    fcgi_error(r, 500, "internal_error", "internal error", NULL);
    return 1;
}

/* The caller is authenticated (who) before the body is read. */
static void presence(struct fcgi_req *r, const struct auth *who,
                     const char *op, const char *reason)
{
    const struct refusal *why = NULL;
    struct audit au;
    char status[16];
    long moved = 0;
    int rc;

    if (api_audit_arm(r, who, strcmp(op, "heartbeat") ? "agent.status" : NULL,
            kf_str_c(who->account), &au))
        return;
    rc = route_presence(rt(r), who->account, op, reason, kf_wall_ms(), status,
                        sizeof(status), &moved, &why);
    audit_redis_disarm(rt(r)->store);
    if (rc == KF_EBACKEND) {
        api_backend_down(r);
    } else if (why) {
        api_refused(r, why, NULL);
    } else if (rc < 0) {
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
    } else {
        fcgi_json(r, 200, json_pack("{s:s,s:s,s:I}", "account", who->account,
                                    "status", status, "moved",
                                    (json_int_t)moved));
        log_info(&r->log, "api", "presence", "agent=%s op=%s status=%s "
                 "moved=%ld", who->account, op, status, moved);
    }
}

void api_me_status(struct fcgi_req *r)
{
    struct auth who;
    json_t *body;
    const char *st = NULL;

    if (api_authenticate(r, &who, 0) || api_need_agent(r, &who))
        return;
    body = api_json_body(r);
    if (!body)
        return;
    if (api_str_field(r, body, "status", &st) == 0) {
        if (!st || (strcmp(st, "online") && strcmp(st, "paused") &&
                    strcmp(st, "offline")))
            fcgi_error(r, 400, "invalid_field",
                       "field status must be online, paused or offline",
                       NULL);
        else
            presence(r, &who, st, "request");
    }
    json_decref(body);
}

void api_me_heartbeat(struct fcgi_req *r)
{
    struct auth who;

    if (api_authenticate(r, &who, 0) || api_need_agent(r, &who))
        return;
    presence(r, &who, "heartbeat", "heartbeat");
}

/* The queue for an agent: {"total":N,"groups":[{"group","length"}]},
 * from route_queue's answer (which it takes), the users left out: an
 * agent sees how many wait, not who. */
static json_t *queue_lengths(json_t *q)
{
    json_t *groups = json_object_get(q, "groups"), *g;
    size_t i;

    json_array_foreach(groups, i, g)
        json_object_del(g, "waiting");
    return q;
}

void api_me_sessions(struct fcgi_req *r)
{
    struct auth who;
    json_t *list = NULL, *queue = NULL;
    int rc;

    if (api_authenticate(r, &who, 0) || api_need_agent(r, &who))
        return;
    rc = route_agent_sessions(rt(r), who.account, &list);
    if (rc == 0)
        rc = route_queue(rt(r), 0, &queue);     /* lengths, no users */
    if (rc < 0) {
        json_decref(list);
        api_backend_down(r);
        return;
    }
    fcgi_json(r, 200, json_pack("{s:s,s:s,s:o,s:o}", "account", who.account,
                                "status", who.status, "sessions", list,
                                "queue", queue_lengths(queue)));
}

/* An agent may only see and act on its own sessions (the scripts check
 * the same for actions). */
void api_session_view(struct fcgi_req *r)
{
    struct auth who;
    json_t *s = NULL;
    int rc;

    if (api_authenticate(r, &who, 0))
        return;
    rc = route_session_view(rt(r), r->param, &s);
    if (rc == KF_EBACKEND) {
        api_backend_down(r);
    } else if (rc < 0) {
        api_refused(r, refusal_get(REFUSAL_NO_SESSION), NULL);
    } else if (who.role == AUTH_AGENT &&
               strcmp(json_string_value(json_object_get(s, "agent"))
                          ? json_string_value(json_object_get(s, "agent"))
                          : "", who.account) != 0) {
        json_decref(s);
        api_refused(r, refusal_get(REFUSAL_NOT_YOURS), NULL);
    } else {
        fcgi_json(r, 200, s);
    }
}

/* Answers a session action: the result, a refusal or Redis down. */
static void session_answer(struct fcgi_req *r, const char *op,
                           const char *by, int rc, const char *result,
                           const struct refusal *why)
{
    if (rc == KF_EBACKEND) {
        api_backend_down(r);
        return;
    }
    if (rc < 0) {
        api_refused(r, why ? why : refusal_get(REFUSAL_REFUSED), NULL);
        return;
    }
    fcgi_json(r, 200, json_pack("{s:s%,s:s}", "openid", r->param.p,
                                r->param.len, "result", result));
    log_info(&r->log, "api", op, "by=%s result=%s", *by ? by : "admin",
             result);
}

static void session_action(struct fcgi_req *r, const struct auth *who,
                           const char *op, const char *target)
{
    const struct refusal *why = NULL;
    const char *by = who->role == AUTH_AGENT ? who->account : "";
    struct audit au;
    char result[96];
    int rc;

    if (api_audit_arm(r, who, "session.close", r->param, &au))
        return;
    rc = route_session(rt(r), op, r->param, by, target, kf_wall_ms(),
                       result, sizeof(result), &why);
    audit_redis_disarm(rt(r)->store);
    session_answer(r, op, by, rc, result, why);
}

/* "labels" of a close: absent, or an array of at most LABELS_PER_SESSION
 * distinct label ids; *n of them in ids. Answers 400 otherwise. */
static int label_ids(struct fcgi_req *r, json_t *body, int64_t *ids,
                     size_t *n)
{
    json_t *a = json_object_get(body, "labels"), *v;
    size_t i, j;

    *n = 0;
    if (!a)
        return 0;
    if (!json_is_array(a) || json_array_size(a) > LABELS_PER_SESSION)
        goto bad;
    json_array_foreach(a, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            goto bad;
        ids[i] = (int64_t)json_integer_value(v);
        for (j = 0; j < i; j++)
            if (ids[j] == ids[i])
                goto bad;
    }
    *n = json_array_size(a);
    return 0;
bad:
    fcgi_error(r, 400, "invalid_field", "labels must be an array of at "
               "most 5 distinct label ids", NULL);
    return -1;
}

/* The names of the labels picked (lib/label); answers when it fails. */
static int label_names_of(struct fcgi_req *r, const int64_t *ids, size_t n,
                          json_t **names)
{
    const struct refusal *why = NULL;
    struct pg_conn *db = NULL;
    int rc;

    *names = NULL;
    if (n == 0)
        return 0;
    rc = label_open(r->app->cfg.postgres.dsn, &db);
    if (rc == 0)
        rc = label_names(db, r->app->cfg.wechat.app_id, ids, n, names, &why);
    pg_close(db);
    if (rc == 0)
        return 0;
    api_label_failed(r, "label_names", rc, why, NULL);
    return -1;
}

/* POST /api/v1/sessions/{openid}/close {"summary": ..., "labels": [id]}
 * (both optional: the wrap-up, lib/wrapup; it travels in the close
 * event). */
void api_session_close(struct fcgi_req *r)
{
    struct auth who;
    json_t *body, *names = NULL;
    const char *summary = NULL, *why = NULL;
    char wrap[WRAPUP_JSON_MAX];
    int64_t ids[LABELS_PER_SESSION];
    size_t n;
    int rc;

    if (api_authenticate(r, &who, 0))
        return;
    body = api_json_body(r);
    if (!body)
        return;
    if (api_str_field(r, body, "summary", &summary) ||
        label_ids(r, body, ids, &n))
        goto out;
    if (summary && wrapup_check_summary(summary, &why) < 0) {
        fcgi_error(r, 400, "invalid_field", why, NULL);
        goto out;
    }
    if (label_names_of(r, ids, n, &names) < 0)
        goto out;
    rc = wrapup_payload(summary, names, wrap, sizeof(wrap), &why);
    if (rc < 0)
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
    else
        session_action(r, &who, "close", wrap);
    json_decref(names);
out:
    json_decref(body);
}

/* POST /api/v1/sessions/{openid}/transfer {"to_agent" | "to_group",
 * "note"}: the note (optional, lib/handover) travels with the session to
 * its receiver. */
void api_session_transfer(struct fcgi_req *r)
{
    const struct refusal *why = NULL;
    struct auth who;
    struct audit au;
    json_t *body;
    const char *agent = NULL, *group = NULL, *note = NULL, *by;
    char result[96];
    int rc;

    if (api_authenticate(r, &who, 0))
        return;
    body = api_json_body(r);
    if (!body)
        return;
    by = who.role == AUTH_AGENT ? who.account : "";
    if (api_str_field(r, body, "to_agent", &agent) ||
        api_str_field(r, body, "to_group", &group) ||
        api_str_field(r, body, "note", &note))
        goto out;
    if (!agent == !group)
        fcgi_error(r, 400, "invalid_field",
                   "give exactly one of to_agent or to_group", NULL);
    else if (agent ? agent_check_account(agent, NULL) < 0
                   : strcmp(group, "_all") != 0 &&
                         agent_check_group(group, NULL) < 0)
        /* checked before it names a Redis key */
        fcgi_error(r, 400, "invalid_field", agent
                   ? "to_agent is not an agent account"
                   : "to_group is not a group name", NULL);
    else if (note && handover_check_note(note, &why) < 0)
        api_refused(r, why, NULL);
    else if (api_audit_arm(r, &who, "session.transfer", r->param, &au) == 0) {
        rc = route_transfer(rt(r), r->param, by, agent, group, note,
                            kf_wall_ms(), result, sizeof(result), &why);
        audit_redis_disarm(rt(r)->store);
        session_answer(r, agent ? "transfer_agent" : "transfer_group", by,
                       rc, result, why);
    }
out:
    json_decref(body);
}

void api_stats(struct fcgi_req *r)
{
    struct auth who;
    json_t *s = NULL;

    if (api_authenticate(r, &who, 1))
        return;
    if (route_stats(rt(r), kf_wall_ms(), &s) < 0)
        api_backend_down(r);
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

    if (api_authenticate(r, &who, 0) || api_need_agent(r, &who))
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
        api_backend_down(r);
    } else {
        fcgi_json(r, 200, json_pack("{s:o,s:s}", "events", list, "next",
                                    next));
    }
}

/* POST /api/v1/sessions/{openid}/messages: an agent answers a user
 * through WeChat's customer-service API, as its kf_account. */
/* The answer to an outbound verb that failed (rc < 0): a refusal, WeChat's
 * refusal (those errcodes that mean one of ours answer as it does), WeChat
 * out of reach, or the backend down. */
static void send_failed(struct fcgi_req *r, int rc,
                        const struct outbound_result *res)
{
    if (res->why) {
        api_refused(r, res->why, res->message);
    } else if (rc == KF_EWECHAT) {
        const struct refusal *w = refusal_by_errcode(REFUSAL_SEND,
                                                     res->errcode);
        json_t *e = json_pack("{s:{s:s,s:s,s:I,s:s}}", "error", "code",
                              w ? w->code : "wechat_refused", "message",
                              res->message, "errcode",
                              (json_int_t)res->errcode, "id", res->id);

        fcgi_json(r, w ? w->status : 502, e);
    } else if (rc == KF_EIO) {
        fcgi_error(r, 502, "wechat_unreachable", res->message, NULL);
    } else {
        api_backend_down(r);
    }
}

void api_session_send(struct fcgi_req *r)
{
    struct outbound_result res;
    struct auth who;
    json_t *body;
    int rc;

    if (api_authenticate(r, &who, 0))
        return;
    body = api_json_body(r);
    if (!body)
        return;
    rc = outbound_send(&r->app->outbound,
                       who.role == AUTH_AGENT ? who.account : "", r->param,
                       body, kf_wall_ms(), &res);
    if (rc == 0) {
        char labels[METRICS_LABELS_MAX + 1];
        const char *mt = json_string_value(json_object_get(body, "msgtype"));

        if (metrics_labels(labels, sizeof(labels), 2, "direction", "out",
                           "type", mt ? mt : "unknown") == 0)
            metrics_inc(r->app->metrics, METRICS_MESSAGES, labels, 1);
    }
    json_decref(body);
    if (rc < 0) {
        send_failed(r, rc, &res);
    } else {
        if (res.unrecorded)
            log_warn(&r->log, "api", "send_unrecorded", "id=%s", res.id);
        fcgi_json(r, strcmp(res.status, "sent") == 0 ? 200 : 202,
                  json_pack("{s:s,s:s,s:I}", "id", res.id, "status",
                            res.status, "left", (json_int_t)res.left));
    }
    log_info(&r->log, "api", "send", "status=%d result=%s code=%s errcode=%ld",
             r->status, res.status[0] ? res.status : "-",
             res.why && *res.why->sub ? res.why->sub : "-", res.errcode);
}

/* POST /api/v1/sessions/{openid}/typing: the agent is typing (the console's
 * composer, debounced); lib/outbound tells WeChat at most every 10 s. */
void api_session_typing(struct fcgi_req *r)
{
    struct outbound_result res;
    struct auth who;
    int rc;

    if (api_authenticate(r, &who, 0))
        return;
    rc = outbound_typing(&r->app->outbound,
                         who.role == AUTH_AGENT ? who.account : "", r->param,
                         kf_wall_ms(), &res);
    if (rc < 0)
        send_failed(r, rc, &res);
    else if (strcmp(res.status, "sent") == 0)
        fcgi_json(r, 200, json_pack("{s:b}", "sent", 1));
    else
        fcgi_json(r, 200, json_pack("{s:b,s:s}", "sent", 0, "reason",
                                    res.message));
    log_info(&r->log, "api", "typing",
             "status=%d result=%s code=%s errcode=%ld", r->status,
             res.status[0] ? res.status : "-",
             res.why && *res.why->sub ? res.why->sub
             : rc == 0 && res.message[0] ? res.message : "-", res.errcode);
}

/* --- history: reads of the archived messages (lib/history) --------------- */

/* ?name=N: def when absent, else 1..max; answers 400 otherwise. */
static int query_limit(struct fcgi_req *r, long def, long max, long *out)
{
    struct kf_str v;
    uint64_t n;
    char msg[64];

    *out = def;
    if (!http_query_get(&r->query, "limit", &v))
        return 0;
    if (kf_parse_u64(v, &n) == 0 && n >= 1 && n <= (uint64_t)max) {
        *out = (long)n;
        return 0;
    }
    snprintf(msg, sizeof(msg), "limit must be a number in 1..%ld", max);
    fcgi_error(r, 400, "invalid_field", msg, NULL);
    return 1;
}

/* ?name=CURSOR: *out is c, or NULL when absent; answers 400 if it is not
 * a cursor we made. */
static int query_cursor(struct fcgi_req *r, const char *name,
                        struct history_cursor *c,
                        const struct history_cursor **out)
{
    struct kf_str v;
    char msg[64];

    *out = NULL;
    if (!http_query_get(&r->query, name, &v))
        return 0;
    if (history_cursor_decode(v, c) == 0) {
        *out = c;
        return 0;
    }
    snprintf(msg, sizeof(msg), "%s is not a cursor", name);
    fcgi_error(r, 400, "invalid_field", msg, NULL);
    return 1;
}

/* Answers a history read (page is taken) and logs it once. */
static void history_reply(struct fcgi_req *r, const char *ev, int rc,
                          json_t *page, const char *einval)
{
    size_t rows = json_array_size(json_object_get(page, "messages")) +
                  json_array_size(json_object_get(page, "sessions"));

    if (rc == 0)
        fcgi_json(r, 200, page);
    else if (rc == KF_EBACKEND) {
        metrics_inc(r->app->metrics, METRICS_POSTGRES_ERRORS,
                    "process=\"fcgi\"", 1);
        fcgi_error(r, 503, "backend_unavailable",
                   "postgresql is unreachable", NULL);
    } else if (rc == KF_ENOTFOUND)
        api_refused(r, refusal_get(REFUSAL_NO_SESSION), NULL);
    else if (rc == KF_EINVAL)
        fcgi_error(r, 400, "invalid_field", einval, NULL);
    else
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
    if (rc == 0)
        log_info(&r->log, "api", ev, "status=200 rows=%zu", rows);
    else
        log_warn(&r->log, "api", ev, "status=%d err=%s", r->status,
                 kf_strerror(rc));
}

/* Admins read every user's data; an agent that of a user it serves now
 * (an active session with it) or, with session > 0, that one past
 * session of the user if it was its own (the archived session's last
 * agent). Answers when refused (nonzero). */
static int may_read(struct fcgi_req *r, const struct auth *who,
                    struct kf_str openid, int64_t session)
{
    json_t *s = NULL;
    const char *state, *agent;
    int rc, ok;

    if (who->role == AUTH_ADMIN)
        return 0;
    rc = route_session_view(rt(r), openid, &s);
    if (rc == KF_EBACKEND) {
        api_backend_down(r);
        return 1;
    }
    state = json_string_value(json_object_get(s, "state"));
    agent = json_string_value(json_object_get(s, "agent"));
    ok = rc == 0 && state && agent && strcmp(state, "active") == 0 &&
         strcmp(agent, who->account) == 0;
    json_decref(s);
    if (!ok && session > 0) {
        rc = history_served(&r->app->history, openid, session,
                            who->account);
        if (rc == KF_EBACKEND) {
            history_reply(r, "history_served", rc, NULL, "");
            return 1;
        }
        ok = rc == 0;
    }
    if (!ok) {
        api_refused(r, refusal_get(REFUSAL_NOT_SERVED), NULL);
        log_info(&r->log, "api", "denied", "status=403 agent=%s",
                 who->account);
    }
    return !ok;
}

int api_may_read_user(struct fcgi_req *r, const struct auth *who,
                      struct kf_str openid)
{
    return may_read(r, who, openid, 0);
}

/* GET /api/v1/users/{openid}/messages?before=CURSOR&limit=N */
void api_user_messages(struct fcgi_req *r)
{
    const struct history_cursor *before;
    struct history_cursor c;
    struct auth who;
    json_t *page = NULL;
    long limit;
    int rc;

    if (api_authenticate(r, &who, 0) ||
        query_limit(r, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX, &limit) ||
        query_cursor(r, "before", &c, &before) ||
        api_may_read_user(r, &who, r->param))
        return;
    rc = history_user_page(&r->app->history, r->param, before, limit, &page);
    history_reply(r, "history_page", rc, page, "invalid openid");
}

/* GET /api/v1/sessions/{openid}/transcript?session=ID&after=CURSOR&limit=N
 * (default: the user's current or latest session). */
void api_session_transcript(struct fcgi_req *r)
{
    const struct history_cursor *after;
    struct history_cursor c;
    struct auth who;
    struct kf_str sv;
    uint64_t sid = 0;
    json_t *page = NULL;
    long limit;
    int rc;

    if (api_authenticate(r, &who, 0) ||
        query_limit(r, HISTORY_TRANSCRIPT_MAX, HISTORY_TRANSCRIPT_MAX,
                    &limit) ||
        query_cursor(r, "after", &c, &after))
        return;
    if (http_query_get(&r->query, "session", &sv) &&
        (kf_parse_u64(sv, &sid) < 0 || sid < 1 || sid > INT64_MAX)) {
        fcgi_error(r, 400, "invalid_field", "session must be a session id",
                   NULL);
        return;
    }
    if (may_read(r, &who, r->param, (int64_t)sid))
        return;
    rc = history_transcript(&r->app->history, r->param, (int64_t)sid, after,
                            limit, &page);
    history_reply(r, "history_transcript", rc, page, "invalid openid");
}

/* GET /api/v1/search?q=TEXT&before=CURSOR&limit=N (admins). */
void api_search(struct fcgi_req *r)
{
    const struct history_cursor *before;
    struct history_cursor c;
    struct auth who;
    struct kf_str q;
    json_t *page = NULL;
    long limit;
    int rc;

    if (api_authenticate(r, &who, 1) ||
        query_limit(r, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX, &limit) ||
        query_cursor(r, "before", &c, &before))
        return;
    http_query_get(&r->query, "q", &q);
    rc = history_search(&r->app->history, q, before, limit, &page);
    history_reply(r, "history_search", rc, page,
                  "q must be 2..100 characters of UTF-8");
}

/* GET /api/v1/history/sessions?q=TEXT&label=NAME&agent=ACCOUNT&before=..
 * &limit=N: closed sessions with their wrap-up, newest first — an agent's own (an
 * agent asking for another's gets 403), an admin's choice of agent or
 * everyone's. */
void api_history_sessions(struct fcgi_req *r)
{
    const struct history_cursor *before;
    struct history_cursor c;
    struct auth who;
    struct kf_str q = { "", 0 }, a, l;
    char agent[72], label[LABEL_NAME_SIZE] = "";
    const char *only = NULL;
    json_t *page = NULL;
    long limit;
    int rc;

    if (api_authenticate(r, &who, 0) ||
        query_limit(r, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX, &limit) ||
        query_cursor(r, "before", &c, &before))
        return;
    if (http_query_get(&r->query, "agent", &a)) {
        if (a.len == 0 || a.len >= sizeof(agent) ||
            memchr(a.p, '\0', a.len)) {
            fcgi_error(r, 400, "invalid_field", "agent is not an account",
                       NULL);
            return;
        }
        snprintf(agent, sizeof(agent), "%.*s", (int)a.len, a.p);
        only = agent;
    }
    if (who.role == AUTH_AGENT) {
        if (only && strcmp(only, who.account) != 0) {
            fcgi_error(r, 403, "forbidden",
                       "an agent sees only its own sessions", NULL);
            return;
        }
        only = who.account;
    }
    if (http_query_get(&r->query, "label", &l)) {
        if (l.len == 0 || l.len >= sizeof(label) ||
            memchr(l.p, '\0', l.len)) {
            fcgi_error(r, 400, "invalid_field", "label is not a label name",
                       NULL);
            return;
        }
        snprintf(label, sizeof(label), "%.*s", (int)l.len, l.p);
    }
    http_query_get(&r->query, "q", &q);
    rc = history_closed(&r->app->history, only, q, *label ? label : NULL,
                        before, limit, &page);
    history_reply(r, "history_sessions", rc, page,
                  "q must be 2..100 characters of UTF-8");
}

/* Writes the head of a 200 answer carrying a stored file. */
static int media_head(struct fcgi_req *r, const struct media_file *f,
                      struct kf_str id)
{
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "Status: 200 %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %llu\r\nX-Request-Id: %.*s\r\n"
                     "X-Content-Type-Options: nosniff\r\n"
                     "Cache-Control: private, max-age=3600\r\n"
                     "Content-Security-Policy: default-src 'none'; "
                     "sandbox\r\n"
                     "Content-Disposition: inline; filename=\"%.*s.%s\""
                     "\r\n\r\n",
                     http_reason(200), f->content_type,
                     (unsigned long long)f->size, (int)r->rid.len, r->rid.p,
                     (int)id.len, id.p, f->ext);

    if (n < 0 || (size_t)n >= sizeof(head))
        return KF_ETOOBIG;
    r->status = 200;
    return FCGX_PutStr(head, n, r->fx->out) == n ? 0 : KF_EIO;
}

/* Streams the file in chunks after its head. A read error after the head
 * can only cut the answer short (the client sees a short body). */
static int media_stream(struct fcgi_req *r, struct media_file *f,
                        struct kf_str id)
{
    char chunk[32768];
    uint64_t left = f->size;
    size_t n;
    int rc = media_head(r, f, id);

    while (rc == 0 && left > 0) {
        rc = media_file_read(f, chunk, sizeof(chunk), &n);
        if (rc == 0 && (n == 0 || n > left))
            rc = KF_EIO;        /* the file changed under us */
        if (rc == 0 && FCGX_PutStr(chunk, (int)n, r->fx->out) != (int)n)
            rc = KF_EIO;
        left -= rc == 0 ? n : 0;
    }
    return rc;
}

/* GET /api/v1/media/{media_id}[?format=wav]: a stored image, voice or
 * video (or a voice's playable copy), to an admin or to the agent whose
 * session the user is in. */
void api_media_get(struct fcgi_req *r)
{
    struct kf_str format = { "", 0 };
    struct media_file f;
    struct media m;
    struct auth who;
    int rc;

    if (api_authenticate(r, &who, 0))
        return;
    http_query_get(&r->query, "format", &format);
    media_init(&m, &r->app->store, NULL, &r->app->cfg);
    media_file_init(&f);
    rc = media_open(&m, r->param, format,
                    who.role == AUTH_AGENT ? who.account : "", &f);
    if (rc == 0) {
        rc = media_stream(r, &f, r->param);
        if (rc < 0)
            log_warn(&r->log, "api", "media_cut_short", "err=%s",
                     kf_strerror(rc));
    } else if (rc == KF_EBACKEND) {
        api_backend_down(r);
    } else {
        api_refused(r, f.why ? f.why : refusal_get(REFUSAL_NO_MEDIA), NULL);
    }
    log_info(&r->log, "api", "media", "status=%d by=%s code=%s size=%llu",
             r->status, who.role == AUTH_AGENT ? who.account : "admin",
             f.why ? f.why->sub : "-", (unsigned long long)f.size);
    media_file_release(&f);
    media_release(&m);
}

/* POST /api/v1/me/stream-ticket: a short-lived ticket to open the push
 * stream with (an EventSource cannot send the Authorization header, and
 * the token must not go into a URL). 404 when push is off: the console
 * then polls the feed. */
void api_stream_ticket(struct fcgi_req *r)
{
    char ticket[AUTH_TICKET_SIZE], url[128];
    struct auth who;
    int rc;

    if (api_authenticate(r, &who, 0) || api_need_agent(r, &who))
        return;
    if (!push_enabled(&r->app->cfg)) {
        fcgi_error(r, 404, "push_disabled", "real-time push is not "
                   "configured; poll /api/v1/me/events", NULL);
        return;
    }
    rc = auth_ticket_issue(rt(r), &who, ticket);
    if (rc == KF_EBACKEND) {
        api_backend_down(r);
        return;
    }
    if (rc < 0) {
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
        return;
    }
    snprintf(url, sizeof(url), "/api/v1/me/stream?ticket=%s", ticket);
    fcgi_json(r, 200, json_pack("{s:s,s:i,s:s}", "ticket", ticket,
                                "expires_in", AUTH_TICKET_TTL_S, "url", url));
}

/* GET /api/v1/me/stream?ticket=T: authorises the subscription and hands
 * the connection to nginx's Nchan (X-Accel-Redirect to the internal
 * subscriber location of the agent's channel); the worker is free at
 * once. */
void api_stream(struct fcgi_req *r)
{
    char addr[46], hdr[160];
    struct kf_str ticket = { "", 0 };
    struct auth who;
    int rc;

    if (!push_enabled(&r->app->cfg)) {
        fcgi_error(r, 404, "push_disabled", "real-time push is not "
                   "configured; poll /api/v1/me/events", NULL);
        return;
    }
    auth_address(fcgi_param(r, "REMOTE_ADDR"), addr);
    http_query_get(&r->query, "ticket", &ticket);
    rc = auth_ticket_identify(rt(r), &r->app->cfg, ticket, addr, &who);
    if (rc == KF_EBACKEND) {
        api_backend_down(r);
    } else if (rc == KF_ELIMIT) {
        braked(r, who.retry_after_s, "kind=\"ticket\"");
    } else if (rc < 0) {
        fcgi_error(r, 401, "unauthorized", "the stream ticket is unknown or "
                   "expired; get a new one", NULL);
    } else if (agent_check_account(who.account, NULL) < 0) {
        /* the mirror is Redis's: check the name before it is a header */
        fcgi_error(r, 401, "unauthorized", "the stream ticket is unknown or "
                   "expired; get a new one", NULL);
    } else {
        snprintf(hdr, sizeof(hdr), "X-Accel-Redirect: /internal/sub/%s\r\n"
                 "X-Accel-Buffering: no\r\n", who.account);
        fcgi_respond(r, 200, "text/plain; charset=utf-8", hdr, KF_STR(""));
    }
    log_info(&r->log, "api", "stream", "status=%d agent=%s", r->status,
             rc == 0 ? who.account : "-");
}

/* POST /api/v1/media[?type=thumb]: an image (JPEG, PNG, GIF, 2 MiB), a
 * voice (AMR or MP3, 2 MiB, 60 s), a video (MP4, 10 MiB) or, with
 * ?type=thumb, a video's thumbnail (JPEG, 64 KiB): the raw bytes with
 * their Content-Type, checked (lib/media_out.c) and uploaded to WeChat as
 * temporary media; {"media_id", "type"} to send with that msgtype. */
void api_media_upload(struct fcgi_req *r)
{
    struct kf_str kind = { "", 0 };
    struct wx_api_result res;
    struct media_out out;
    char media_id[160] = "";
    struct auth who;
    int rc;

    if (api_authenticate(r, &who, 0))
        return;
    if (!r->app->api || !agent_wx_configured(&r->app->cfg)) {
        fcgi_error(r, 503, "wechat_not_configured", "no WeChat API "
                   "credentials are configured ([wechat] app_secret)", NULL);
        return;
    }
    rc = fcgi_read_body(r, MEDIA_OUT_MAX);
    if (rc == KF_ETOOBIG) {
        fcgi_error(r, 413, "body_too_large", "uploads are limited to 10 MiB "
                   "(videos; images and voice 2 MiB)", NULL);
        return;
    }
    if (rc < 0 || r->body.len == 0) {
        fcgi_error(r, 400, "bad_body", "send the file's bytes as the body",
                   NULL);
        return;
    }
    http_query_get(&r->query, "type", &kind);
    if (media_out_check(fcgi_param(r, "CONTENT_TYPE"), kind,
                        kf_buf_str(&r->body), &out) < 0) {
        api_refused(r, out.why, NULL);
        log_info(&r->log, "api", "media_upload", "status=%d by=%s bytes=%zu "
                 "refused=%s", r->status, who.role == AUTH_AGENT ?
                 who.account : "admin", r->body.len, out.why->sub);
        return;
    }
    wx_api_result_init(&res);
    rc = wx_api_media_upload(r->app->api, out.type, out.filename, r->body.p,
                             r->body.len, media_id, sizeof(media_id), &res);
    if (rc == KF_EWECHAT)
        fcgi_json(r, 502, json_pack("{s:{s:s,s:s,s:I}}", "error", "code",
                                    "wechat_refused", "message", res.errmsg,
                                    "errcode", (json_int_t)res.errcode));
    else if (rc < 0)
        fcgi_error(r, 502, "wechat_unreachable", "WeChat could not be "
                   "reached; try again", NULL);
    else
        fcgi_json(r, 200, json_pack("{s:s,s:s}", "media_id", media_id,
                                    "type", out.type));
    log_info(&r->log, "api", "media_upload", "status=%d by=%s bytes=%zu "
             "errcode=%ld", r->status,
             who.role == AUTH_AGENT ? who.account : "admin", r->body.len,
             res.errcode);
    wx_api_result_release(&res);
}
