/* board: the team lead's routes — the paged, filtered lists of every
 * session (GET /api/v1/sessions) and of the waiting queue (GET
 * /api/v1/queue), the live board (GET /api/v1/board), moving a waiting
 * user to an agent or a group (POST /api/v1/queue/{openid}/assign) and
 * forcing an agent paused or offline (POST
 * /api/v1/agents/{account}/status). Supervisors and admins; thin over
 * lib/route (read.lua's page and board, session.lua's moves,
 * presence.lua's forced status). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "auth.h"
#include "audit.h"
#include "fcgi.h"
#include "refusal.h"
#include "route.h"

#include "banned.h"

#define PAGE_MAX 200            /* items in one answer */
#define LIMIT_ACCEPTED 1000     /* a bigger limit is refused; 201..1000
                                   (what older clients ask) lists 200 */
#define OFFSET_MAX 10000000L

static struct route *rt(struct fcgi_req *r)
{
    return &r->app->route;
}

static void bad_query(struct fcgi_req *r, const char *msg)
{
    fcgi_error(r, 400, "invalid_field", msg, NULL);
}

/* A filter of [A-Za-z0-9_-] (with '@' and '.': an account or a group
 * name of those), 1..64 bytes, into out; absent -> "". */
static int name_param(struct fcgi_req *r, const char *name, int account,
                      char out[72])
{
    struct kf_str v;
    size_t i;
    char msg[96];

    out[0] = '\0';
    if (!http_query_get(&r->query, name, &v) || v.len == 0)
        return 0;
    for (i = 0; i < v.len && v.len <= 64; i++) {
        char c = v.p[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              (account && (c == '@' || c == '.'))))
            break;
    }
    if (v.len > 64 || i < v.len) {
        snprintf(msg, sizeof(msg), "%s must be 1..64 of [A-Za-z0-9_-%s]",
                 name, account ? "@." : "");
        bad_query(r, msg);
        return -1;
    }
    snprintf(out, 72, "%.*s", (int)v.len, v.p);
    return 0;
}

static int number_param(struct fcgi_req *r, const char *name, long lo,
                        long hi, long def, long *out)
{
    struct kf_str v;
    uint64_t n;
    char msg[80];

    *out = def;
    if (!http_query_get(&r->query, name, &v))
        return 0;
    if (kf_parse_u64(v, &n) < 0 || n < (uint64_t)lo || n > (uint64_t)hi) {
        snprintf(msg, sizeof(msg), "%s must be a number in %ld..%ld", name,
                 lo, hi);
        bad_query(r, msg);
        return -1;
    }
    *out = (long)n;
    return 0;
}

/* group: a group name (agent_check_group: Chinese names too) or
 * "_all", absent -> "". */
static int group_param(struct fcgi_req *r, char out[AGENT_GROUP_SIZE])
{
    struct agent_err err = { "", 0 };
    struct kf_str v;

    out[0] = '\0';
    if (!http_query_get(&r->query, "group", &v) || v.len == 0)
        return 0;
    if (v.len < AGENT_GROUP_SIZE && !memchr(v.p, '\0', v.len)) {
        snprintf(out, AGENT_GROUP_SIZE, "%.*s", (int)v.len, v.p);
        if (strcmp(out, "_all") == 0 || agent_check_group(out, &err) == 0)
            return 0;
    }
    bad_query(r, "group must be a group's name");
    return -1;
}

struct page_params {
    char agent[72], group[AGENT_GROUP_SIZE], prefix[72];
    struct route_page_query q;
};

/* limit, offset, agent, group, q (an OpenID prefix). */
static int page_params(struct fcgi_req *r, long def_limit,
                       struct page_params *p)
{
    if (number_param(r, "limit", 1, LIMIT_ACCEPTED, def_limit,
                     &p->q.limit) < 0 ||
        number_param(r, "offset", 0, OFFSET_MAX, 0, &p->q.offset) < 0 ||
        name_param(r, "agent", 1, p->agent) < 0 ||
        group_param(r, p->group) < 0 ||
        name_param(r, "q", 0, p->prefix) < 0)
        return -1;
    if (p->q.limit > PAGE_MAX)
        p->q.limit = PAGE_MAX;
    p->q.agent = p->agent;
    p->q.group = p->group;
    p->q.prefix = p->prefix;
    return 0;
}

/* {total, offset, limit, next (the next page's offset, null at the
 * end), capped} */
static json_t *page_json(const struct page_params *p, json_t *items,
                         long total, int capped)
{
    long next = p->q.offset + (long)json_array_size(items);

    return json_pack("{s:I,s:I,s:I,s:o,s:b,s:O}", "total", (json_int_t)total,
                     "offset", (json_int_t)p->q.offset, "limit",
                     (json_int_t)p->q.limit, "next",
                     next < total && json_array_size(items)
                         ? json_integer(next) : json_null(),
                     "capped", capped, "items", items);
}

/* The old per-group view of the queue: every non-empty queue with its
 * length; "waiting" lists the page's users of that group. */
static json_t *groups_json(struct fcgi_req *r, const json_t *items)
{
    json_t *q = NULL, *gs;
    size_t i, j;

    if (route_queue(rt(r), 0, &q) < 0)
        return json_array();
    gs = json_incref(json_object_get(q, "groups"));
    json_decref(q);
    for (i = 0; i < json_array_size(gs); i++) {
        json_t *g = json_array_get(gs, i),
               *w = json_object_get(g, "waiting");
        const char *name = json_string_value(json_object_get(g, "group"));

        for (j = 0; name && w && j < json_array_size(items); j++) {
            const json_t *it = json_array_get(items, j);
            const char *ig = json_string_value(json_object_get(it, "group"));

            if (ig && strcmp(name, ig) == 0)
                json_array_append_new(
                    w, json_pack("{s:O,s:O,s:O,s:O}", "openid",
                                 json_object_get(it, "openid"), "position",
                                 json_object_get(it, "position"), "since_ms",
                                 json_object_get(it, "queued_ms"), "session",
                                 json_object_get(it, "id")));
        }
    }
    return gs ? gs : json_array();
}

/* state: "" or "active" or "waiting" from the query (sessions), or
 * "waiting" and no agent (the queue). */
static int state_param(struct fcgi_req *r, int queue, struct page_params *p)
{
    struct kf_str st = { "", 0 };

    p->q.state = queue ? "waiting" : "";
    if (queue && p->agent[0]) {
        bad_query(r, "agent: a waiting user has no agent");
        return -1;
    }
    if (queue || !http_query_get(&r->query, "state", &st) || !st.len)
        return 0;
    if (kf_str_eq_c(st, "active")) {
        p->q.state = "active";
    } else if (kf_str_eq_c(st, "waiting")) {
        p->q.state = "waiting";
    } else {
        bad_query(r, "state must be active or waiting");
        return -1;
    }
    return 0;
}

/* One page of either list, with the fields older clients read: the
 * sessions' "sessions" (the items), the queue's "groups". */
static void list_page(struct fcgi_req *r, int queue)
{
    struct page_params p;
    struct auth who;
    json_t *items = NULL, *out;
    long total;
    int capped;

    if (api_authenticate_lead(r, &who) || page_params(r, 50, &p) < 0 ||
        state_param(r, queue, &p) < 0)
        return;
    if (route_page(rt(r), &p.q, kf_wall_ms(), &items, &total, &capped) < 0) {
        api_backend_down(r);
        return;
    }
    out = page_json(&p, items, total, capped);
    if (out && queue)
        json_object_set_new(out, "groups", groups_json(r, items));
    else if (out)
        json_object_set(out, "sessions", items);
    json_decref(items);
    fcgi_json(r, 200, out);
}

/* GET /api/v1/sessions?state=active|waiting&agent=&group=&q=&offset=
 * &limit= */
void api_sessions_list(struct fcgi_req *r)
{
    list_page(r, 0);
}

/* GET /api/v1/queue?group=&q=&offset=&limit= */
void api_queue(struct fcgi_req *r)
{
    list_page(r, 1);
}

/* GET /api/v1/board */
void api_board(struct fcgi_req *r)
{
    json_t *agents = NULL, *stats = NULL, *team = NULL;
    struct auth who;

    if (api_authenticate_lead(r, &who))
        return;
    if (route_board(rt(r), &agents) < 0 ||
        route_stats(rt(r), kf_wall_ms(), &stats) < 0 ||
        route_colleagues(rt(r), &team) < 0) {
        json_decref(agents);
        json_decref(stats);
        api_backend_down(r);
        return;
    }
    json_object_del(stats, "agent_stats");
    fcgi_json(r, 200, json_pack("{s:I,s:o,s:O,s:o}", "now_ms",
                                (json_int_t)kf_wall_ms(), "agents", agents,
                                "groups", json_object_get(team, "groups"),
                                "stats", stats));
    json_decref(team);
}

/* Who acts, for the agent's feed and the logs: a staff login, or
 * "admin" for the admin token. */
static const char *actor(const struct auth *who)
{
    return who->login[0] ? who->login : "admin";
}

/* route_move's result ("assigned:<agent>", "queued:<n>",
 * "offline:<n>") as {openid, result, agent | position, group}. */
static json_t *move_json(struct fcgi_req *r, const char *result,
                         const char *group)
{
    const char *colon = strchr(result, ':');
    size_t n = colon ? (size_t)(colon - result) : strlen(result);
    json_t *o = json_pack("{s:s%,s:s%}", "openid", r->param.p, r->param.len,
                          "result", result, n);

    if (o && group)
        json_object_set_new(o, "group", json_string(group));
    if (o && colon && strncmp(result, "assigned", n) == 0)
        json_object_set_new(o, "agent", json_string(colon + 1));
    else if (o && colon)
        json_object_set_new(o, "position",
                            json_integer(strtoll(colon + 1, NULL, 10)));
    return o;
}

/* POST /api/v1/queue/{openid}/assign {"agent"} or {"group"} */
void api_queue_assign(struct fcgi_req *r)
{
    struct agent_err err = { "", 0 };
    const struct refusal *why = NULL;
    const char *agent = NULL, *group = NULL;
    char result[96];
    struct audit au;
    struct auth who;
    json_t *body;
    int rc;

    if (api_authenticate_lead(r, &who) || !(body = api_json_body(r)))
        return;
    if (api_str_field(r, body, "agent", &agent) ||
        api_str_field(r, body, "group", &group))
        goto out;
    if (!agent == !group) {
        bad_query(r, "give one of agent and group");
        goto out;
    }
    if ((agent && agent_check_account(agent, &err) < 0) ||
        (group && strcmp(group, "_all") &&
         agent_check_group(group, &err) < 0)) {
        bad_query(r, err.msg);
        goto out;
    }
    if (api_audit_arm(r, &who, "session.move", r->param, &au))
        goto out;
    rc = route_move(rt(r), r->param, agent, group, kf_wall_ms(), result,
                    sizeof(result), &why);
    audit_redis_disarm(rt(r)->store);
    if (rc == KF_EBACKEND || (rc < 0 && !why)) {
        api_backend_down(r);
    } else if (rc < 0) {
        api_refused(r, why, NULL);
    } else {
        fcgi_json(r, 200, move_json(r, result, group));
    }
    log_info(&r->log, "board", "queue_assign",
             "status=%d by=%s openid=%.*s to=%s%s result=%s", r->status,
             actor(&who), (int)r->param.len, r->param.p,
             agent ? "agent:" : "group:", agent ? agent : group,
             rc == 0 ? result : (why ? why->code : "backend"));
out:
    json_decref(body);
}

/* POST /api/v1/agents/{account}/status {"status": "paused"|"offline"} */
void api_agent_force_status(struct fcgi_req *r)
{
    struct agent_err err = { "", 0 };
    const struct refusal *why = NULL;
    const char *status = NULL;
    char acct[72], now_st[16] = "";
    struct audit au;
    struct auth who;
    json_t *body;
    long moved = 0;
    int rc;

    if (api_authenticate_lead(r, &who))
        return;
    snprintf(acct, sizeof(acct), "%.*s", (int)r->param.len, r->param.p);
    if (r->param.len >= 48 || agent_check_account(acct, &err) < 0) {
        fcgi_error(r, 404, "unknown_agent", "no such agent", NULL);
        return;
    }
    if (!(body = api_json_body(r)))
        return;
    if (api_str_field(r, body, "status", &status))
        goto out;
    if (!status || (strcmp(status, "paused") && strcmp(status, "offline"))) {
        bad_query(r, "status must be paused or offline");
        goto out;
    }
    if (api_audit_arm(r, &who, "agent.force_status", kf_str_c(acct), &au))
        goto out;
    rc = route_force_status(rt(r), acct, status, actor(&who), kf_wall_ms(),
                            now_st, sizeof(now_st), &moved, &why);
    audit_redis_disarm(rt(r)->store);
    if (rc == KF_EBACKEND || (rc < 0 && !why))
        api_backend_down(r);
    else if (rc < 0)
        api_refused(r, why, NULL);
    else
        fcgi_json(r, 200, json_pack("{s:s,s:s,s:s,s:i}", "account", acct,
                                    "status", now_st, "by", actor(&who),
                                    "moved", (int)moved));
    log_info(&r->log, "board", "force_status",
             "status=%d by=%s agent=%s to=%s moved=%ld rc=%d", r->status,
             actor(&who), acct, status, moved, rc);
out:
    json_decref(body);
}
