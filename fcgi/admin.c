/* admin: the admin-only REST routes — agents (GET/POST /api/v1/agents,
 * GET/PATCH/DELETE /api/v1/agents/{account}, POST .../token; the lists
 * of sessions and of the queue are fcgi/board.c's). Thin: authenticate
 * as admin, check the body field by field, call lib/agent (PostgreSQL
 * first, then the Redis mirror) or lib/route, then mirror the change to WeChat's kf accounts when
 * credentials are configured (lib/agent_wx), and map the outcome to a
 * status. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "agent.h"
#include "agent_db.h"
#include "agent_sync.h"
#include "agent_wx.h"
#include "audit.h"
#include "auth.h"
#include "fcgi.h"
#include "pg.h"
#include "refusal.h"
#include "push.h"
#include "route.h"

#include "banned.h"

static struct route *rt(struct fcgi_req *r)
{
    return &r->app->route;
}

static int admin(struct fcgi_req *r)
{
    struct auth who;

    return api_authenticate(r, &who, 1);
}

json_t *api_agent_json(const struct agent *a, const char *status,
                       long long load)
{
    json_t *g = json_array();
    int i;

    for (i = 0; g && i < a->ngroups; i++)
        json_array_append_new(g, json_string(a->groups[i]));
    return json_pack("{s:s,s:s,s:i,s:i,s:o,s:o,s:o}", "account", a->account,
                     "nick", a->nick, "weight", a->weight, "capacity",
                     a->capacity, "groups", g, "status",
                     status ? json_string(status) : json_null(), "load",
                     load >= 0 ? json_integer(load) : json_null());
}

/* The record as the API shows it; status and load come from Redis
 * (live), "offline"/0 when the mirror does not have it. */
static json_t *agent_json(const struct agent *a, const json_t *live)
{
    const json_t *st = json_object_get(live, "status");
    const json_t *load = json_object_get(live, "load");

    return api_agent_json(a, json_is_string(st) ? json_string_value(st)
                                                : "offline",
                          json_is_integer(load) ? json_integer_value(load)
                                                : 0);
}

/* agent_* failures: validation 400, taken 409, busy 409, unknown 404,
 * stores down 503 (the detail goes to the log, not the client). */
static void agent_failed(struct fcgi_req *r, int rc,
                         const struct agent_err *err)
{
    const struct refusal *why = refusal_by_rc(REFUSAL_AGENT, rc);
    const char *m = err->msg;

    if (why) {
        api_refused(r, why, m);
    } else {
        fcgi_error(r, 503, "backend_unavailable", "PostgreSQL or Redis is "
                   "unreachable", NULL);
    }
    log_warn(&r->log, "admin", "agent_failed", "status=%d err=%s detail=%s",
             r->status, kf_strerror(rc), m[0] ? m : "-");
}

static int db_open(struct fcgi_req *r, struct pg_conn **db)
{
    struct agent_err err = { "", 0 };
    int rc = agent_db_open(r->app->cfg.postgres.dsn, PG_USE_REQUEST, db,
                           &err);

    if (rc < 0)
        agent_failed(r, rc, &err);
    return rc;
}

/* Mirrors to WeChat's kf accounts (when configured); the outcome as
 * {"synced": bool, "message": "..."} for the response. */
static json_t *wechat_mirror(struct fcgi_req *r, enum agent_wx_op op,
                             const struct agent *a, const char *account)
{
    struct agent_wx_result res;
    struct agent_wx w;
    int rc;

    agent_wx_init(&w, &r->app->cfg, r->app->api);
    if (op == AGENT_WX_DEL)
        rc = agent_wx_remove(&w, account, &res);
    else if (op == AGENT_WX_ADD)
        rc = agent_wx_add(&w, a, &res);
    else
        rc = agent_wx_update(&w, a, &res);
    if (rc < 0)
        log_warn(&r->log, "admin", "wechat_mirror_failed", "agent=%s "
                 "err=%s", account, res.msg);
    return json_pack("{s:b,s:s}", "synced", rc == 0 && !res.skipped,
                     "message", res.msg);
}

/* The fields of a body that may be set: nick, weight, capacity,
 * groups. Each of the wrong type or out of range answers 400 naming the
 * field. *set gets AGENT_SET_* for those present. */
static int read_fields(struct fcgi_req *r, json_t *body, struct agent *a,
                       unsigned *set)
{
    struct agent_err err = { "", 0 };
    const char *nick = NULL;
    json_t *v;
    size_t i;

    *set = 0;
    if (api_str_field(r, body, "nick", &nick))
        return -1;
    if (nick) {
        if (agent_set_nick(a, nick, &err) < 0)
            goto bad;
        *set |= AGENT_SET_NICK;
    }
    v = json_object_get(body, "weight");
    if (v) {
        if (!json_is_integer(v) ||
            agent_check_weight(json_integer_value(v), NULL) < 0) {
            fcgi_error(r, 400, "invalid_field", "field weight must be an "
                       "integer " KF_XSTR(AGENT_WEIGHT_MIN) ".."
                       KF_XSTR(AGENT_WEIGHT_MAX), NULL);
            return -1;
        }
        a->weight = (int)json_integer_value(v);
        *set |= AGENT_SET_WEIGHT;
    }
    v = json_object_get(body, "capacity");
    if (v) {
        if (!json_is_integer(v) ||
            agent_check_capacity(json_integer_value(v), NULL) < 0) {
            fcgi_error(r, 400, "invalid_field", "field capacity must be an "
                       "integer 0.." KF_XSTR(AGENT_CAPACITY_MAX)
                       " (0 = the default)", NULL);
            return -1;
        }
        a->capacity = (int)json_integer_value(v);
        *set |= AGENT_SET_CAPACITY;
    }
    v = json_object_get(body, "groups");
    if (v) {
        if (!json_is_array(v)) {
            fcgi_error(r, 400, "invalid_field", "field groups must be an "
                       "array of group names", NULL);
            return -1;
        }
        a->ngroups = 0;
        for (i = 0; i < json_array_size(v); i++) {
            json_t *g = json_array_get(v, i);

            if (!json_is_string(g)) {
                fcgi_error(r, 400, "invalid_field", "field groups must be "
                           "an array of group names", NULL);
                return -1;
            }
            if (agent_add_group(a, json_string_value(g), &err) < 0)
                goto bad;
        }
        *set |= AGENT_SET_GROUPS;
    }
    return 0;
bad:
    fcgi_error(r, 400, "invalid_field", err.msg, NULL);
    return -1;
}

/* The live side (status, load) of every agent: stats' agent_stats. */
static json_t *live_agents(struct fcgi_req *r)
{
    json_t *s = NULL, *a;

    if (route_stats(rt(r), kf_wall_ms(), &s) < 0)
        return json_object();
    a = json_incref(json_object_get(s, "agent_stats"));
    json_decref(s);
    return a ? a : json_object();
}

/* A response carrying a token that was just saved: it must reach the
 * caller even if the full body could not be built. */
static void token_reply(struct fcgi_req *r, int status, json_t *body,
                        const char *account, const char *token)
{
    if (!body)
        body = json_pack("{s:s,s:s}", "account", account, "token", token);
    fcgi_json(r, status, body);
}

/* GET /api/v1/agents */
void api_agents_list(struct fcgi_req *r)
{
    struct agent_err err = { "", 0 };
    struct pg_conn *db = NULL;
    struct agent_list l;
    json_t *out, *live;
    size_t i;
    int rc;

    if (admin(r) || db_open(r, &db) < 0)
        return;
    agent_list_init(&l);
    rc = agent_db_list(db, &l, &err);
    agent_db_close(db);
    if (rc < 0) {
        agent_failed(r, rc, &err);
        agent_list_release(&l);
        return;
    }
    live = live_agents(r);
    out = json_array();
    for (i = 0; out && i < l.len; i++)
        json_array_append_new(out, agent_json(&l.v[i], json_object_get(
                                                  live, l.v[i].account)));
    agent_list_release(&l);
    json_decref(live);
    fcgi_json(r, 200, json_pack("{s:o}", "agents", out));
}

/* POST /api/v1/agents {"account","nick","weight"?,"capacity"?,"groups"?}:
 * 201 with the token, shown this once. */
void api_agents_create(struct fcgi_req *r)
{
    char token[AGENT_TOKEN_SIZE] = "";
    struct agent_err err = { "", 0 };
    struct pg_conn *db = NULL;
    const char *account = NULL;
    struct agent a;
    unsigned set;
    json_t *body, *wx, *live;
    struct auth who;
    struct audit au;
    int rc;

    if (api_authenticate(r, &who, 1) || !(body = api_json_body(r)))
        return;
    agent_init(&a);
    if (api_str_field(r, body, "account", &account) ||
        read_fields(r, body, &a, &set))
        goto out;
    if (!account || !(set & AGENT_SET_NICK)) {
        fcgi_error(r, 400, "invalid_field", "fields account and nick are "
                   "required", NULL);
        goto out;
    }
    if (agent_set_account(&a, account, &err) < 0 ||
        agent_validate(&a, &err) < 0) {
        fcgi_error(r, 400, "invalid_field", err.msg, NULL);
        goto out;
    }
    if (api_audit(r, &who, "agent.create", a.account, &au) ||
        db_open(r, &db) < 0)
        goto out;
    rc = agent_add(db, &r->app->store, &a, token, &au, &err);
    agent_db_close(db);
    if (rc < 0 && !err.mirror_stale) {
        agent_failed(r, rc, &err);
        goto out;
    }
    /* saved: from here on the token must reach the caller */
    wx = wechat_mirror(r, AGENT_WX_ADD, &a, a.account);
    live = json_pack("{s:s,s:i}", "status", "offline", "load", 0);
    token_reply(r, 201, json_pack("{s:o,s:s,s:o,s:s?}", "agent",
                                  agent_json(&a, live), "token", token,
                                  "wechat", wx, "warning",
                                  err.mirror_stale ? err.msg : NULL),
                a.account, token);
    json_decref(live);
    log_info(&r->log, "admin", "agent_add", "agent=%s stale=%d", a.account,
             err.mirror_stale);
out:
    OPENSSL_cleanse(token, sizeof(token));
    json_decref(body);
}

/* r->param is the account: checked before it reaches SQL or Redis. */
static int account_param(struct fcgi_req *r, char out[48])
{
    struct agent_err err = { "", 0 };

    if (r->param.len >= 48) {
        fcgi_error(r, 404, "unknown_agent", "no such agent", NULL);
        return -1;
    }
    snprintf(out, 48, "%.*s", (int)r->param.len, r->param.p);
    if (agent_check_account(out, &err) < 0) {
        fcgi_error(r, 404, "unknown_agent", "no such agent", NULL);
        return -1;
    }
    return 0;
}

/* GET /api/v1/agents/{account} */
void api_agent_get(struct fcgi_req *r)
{
    struct agent_err err = { "", 0 };
    struct pg_conn *db = NULL;
    struct agent_list l;
    char acct[48];
    json_t *live;
    size_t i;
    int rc;

    if (admin(r) || account_param(r, acct) < 0 || db_open(r, &db) < 0)
        return;
    agent_list_init(&l);
    rc = agent_db_list(db, &l, &err);
    agent_db_close(db);
    for (i = 0; rc == 0 && i < l.len; i++)
        if (strcmp(l.v[i].account, acct) == 0)
            break;
    if (rc < 0) {
        agent_failed(r, rc, &err);
    } else if (i == l.len) {
        fcgi_error(r, 404, "unknown_agent", "no such agent", NULL);
    } else {
        live = live_agents(r);
        fcgi_json(r, 200, json_pack("{s:o}", "agent", agent_json(
                                        &l.v[i], json_object_get(live,
                                                                 acct))));
        json_decref(live);
    }
    agent_list_release(&l);
}

/* PATCH /api/v1/agents/{account} {any of nick, weight, capacity, groups} */
void api_agent_patch(struct fcgi_req *r)
{
    struct agent_err err = { "", 0 };
    struct pg_conn *db = NULL;
    struct agent v, out;
    char acct[48];
    unsigned set;
    json_t *body, *live, *wx;
    struct auth who;
    struct audit au;
    int rc;

    if (api_authenticate(r, &who, 1) || account_param(r, acct) < 0 ||
        api_audit(r, &who, "agent.update", acct, &au) ||
        !(body = api_json_body(r)))
        return;
    agent_init(&v);
    agent_init(&out);
    snprintf(v.account, sizeof(v.account), "%s", acct);
    if (read_fields(r, body, &v, &set))
        goto done;
    if (!set) {
        fcgi_error(r, 400, "invalid_field", "give at least one of nick, "
                   "weight, capacity, groups", NULL);
        goto done;
    }
    if (db_open(r, &db) < 0)
        goto done;
    rc = agent_update(db, &r->app->store, &v, set, &out, &au, &err);
    agent_db_close(db);
    if (rc < 0 && !err.mirror_stale) {
        agent_failed(r, rc, &err);
        goto done;
    }
    wx = (set & AGENT_SET_NICK) ? wechat_mirror(r, AGENT_WX_UPDATE, &out,
                                                out.account)
                                : NULL;
    live = live_agents(r);
    fcgi_json(r, 200, json_pack("{s:o,s:o?,s:s?}", "agent",
                                agent_json(&out, json_object_get(live, acct)),
                                "wechat", wx, "warning",
                                err.mirror_stale ? err.msg : NULL));
    json_decref(live);
    log_info(&r->log, "admin", "agent_update", "agent=%s set=%u stale=%d",
             acct, set, err.mirror_stale);
done:
    json_decref(body);
}

/* Consoles still subscribed with the old credentials are cut off. */
static void drop_streams(struct fcgi_req *r, const char *account)
{
    if (push_drop(&r->app->cfg, account) < 0)
        log_warn(&r->log, "admin", "push_drop_failed", "agent=%s", account);
}

/* DELETE /api/v1/agents/{account}: refused (409) while the agent is at
 * work or has sessions; nothing is half removed. */
void api_agent_delete(struct fcgi_req *r)
{
    struct agent_err err = { "", 0 };
    struct pg_conn *db = NULL;
    struct auth who;
    struct audit au;
    char acct[48];
    int rc;

    if (api_authenticate(r, &who, 1) || account_param(r, acct) < 0 ||
        api_audit(r, &who, "agent.delete", acct, &au) || db_open(r, &db) < 0)
        return;
    rc = agent_remove(db, &r->app->store, acct, &au, &err);
    agent_db_close(db);
    if (rc < 0) {
        agent_failed(r, rc, &err);
        return;
    }
    drop_streams(r, acct);
    fcgi_json(r, 200, json_pack("{s:s,s:b,s:o}", "account", acct, "removed",
                                1, "wechat",
                                wechat_mirror(r, AGENT_WX_DEL, NULL, acct)));
    log_info(&r->log, "admin", "agent_remove", "agent=%s", acct);
}

/* POST /api/v1/agents/{account}/token: a new token, the old one revoked
 * at once. */
void api_agent_token(struct fcgi_req *r)
{
    char token[AGENT_TOKEN_SIZE] = "", acct[48];
    struct agent_err err = { "", 0 };
    struct pg_conn *db = NULL;
    struct auth who;
    struct audit au;
    int rc;

    if (api_authenticate(r, &who, 1) || account_param(r, acct) < 0 ||
        api_audit(r, &who, "agent.token", acct, &au) || db_open(r, &db) < 0)
        return;
    rc = agent_rotate_token(db, &r->app->store, acct, token, &au, &err);
    agent_db_close(db);
    if (rc < 0 && !err.mirror_stale) {
        agent_failed(r, rc, &err);
    } else {
        drop_streams(r, acct);
        token_reply(r, 200, json_pack("{s:s,s:s,s:s?}", "account", acct,
                                      "token", token, "warning",
                                      err.mirror_stale ? err.msg : NULL),
                    acct, token);
    }
    OPENSSL_cleanse(token, sizeof(token));
    log_info(&r->log, "admin", "agent_token", "agent=%s rc=%d", acct, rc);
}
