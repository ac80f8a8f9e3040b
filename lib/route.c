/* route: arguments to and replies from the routing scripts. */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "banned.h"

extern const char route_lua_ingest[], route_lua_presence[],
    route_lua_session[], route_lua_sweep[], route_lua_read[];

#define MAX_ARGV 64

/* Parses "key:group,key:group" (validated by config_load). */
static int parse_rules(const char *s, struct route_rule *v, int *n)
{
    *n = 0;
    while (*s) {
        const char *colon = strchr(s, ':'), *comma = strchr(s, ',');
        const char *end = comma ? comma : s + strlen(s);
        size_t klen, glen;

        if (!colon || colon > end || *n == ROUTE_RULES_MAX)
            return KF_ECONFIG;
        klen = (size_t)(colon - s);
        glen = (size_t)(end - colon - 1);
        if (klen >= sizeof(v->key) || glen >= sizeof(v->group))
            return KF_ECONFIG;
        memcpy(v[*n].key, s, klen);
        v[*n].key[klen] = '\0';
        memcpy(v[*n].group, colon + 1, glen);
        v[*n].group[glen] = '\0';
        (*n)++;
        s = comma ? comma + 1 : end;
    }
    return 0;
}

int route_init(struct route *r, struct store *st, const struct config *cfg)
{
    int n, rc;

    memset(r, 0, sizeof(*r));
    r->store = st;
    r->dedupe_ttl = cfg->wechat.dedupe_ttl;
    r->wechat_kf = strcmp(cfg->wechat.mode, "wechat_kf") == 0;
    r->leave_message = cfg->texts.leave_message;
    n = snprintf(r->cfg, sizeof(r->cfg),
                 "policy=%s;cap=%ld;idle=%ld;frt=%ld;queue=%ld;gp=%s",
                 cfg->routing.policy, cfg->routing.default_capacity,
                 cfg->session.idle_timeout * 1000,
                 cfg->routing.first_reply_timeout * 1000,
                 cfg->routing.queue_timeout * 1000,
                 cfg->routing.group_policies);
    if (n < 0 || (size_t)n >= sizeof(r->cfg))
        return KF_ECONFIG;
    rc = parse_rules(cfg->routing.menu_groups, r->menu, &r->nmenu);
    if (rc == 0)
        rc = parse_rules(cfg->routing.keyword_groups, r->keyword,
                         &r->nkeyword);
    store_script_init(&r->ingest, route_lua_ingest);
    store_script_init(&r->presence, route_lua_presence);
    store_script_init(&r->session, route_lua_session);
    store_script_init(&r->sweep, route_lua_sweep);
    store_script_init(&r->read, route_lua_read);
    return rc;
}

static int contains(struct kf_str hay, const char *needle)
{
    size_t n = strlen(needle), i;

    if (n == 0 || n > hay.len)
        return 0;
    for (i = 0; i + n <= hay.len; i++)
        if (memcmp(hay.p + i, needle, n) == 0)
            return 1;
    return 0;
}

void route_classify(const struct route *r, const struct wx_msg *m,
                    enum route_action *action, const char **group)
{
    int i;

    *action = ROUTE_RECORD;
    *group = "";
    switch (m->type) {
    case WX_MSG_TEXT:
        for (i = 0; i < r->nkeyword; i++)
            if (contains(m->content, r->keyword[i].key)) {
                *group = r->keyword[i].group;
                break;
            }
        *action = ROUTE_ROUTE;
        return;
    case WX_MSG_IMAGE:
    case WX_MSG_VOICE:
    case WX_MSG_VIDEO:
    case WX_MSG_SHORTVIDEO:
    case WX_MSG_LOCATION:
    case WX_MSG_LINK:
        *action = ROUTE_ROUTE;
        return;
    case WX_MSG_EVENT:
        break;
    default:
        return;
    }
    switch (m->event) {
    case WX_EV_CLICK:
        for (i = 0; i < r->nmenu; i++)
            if (kf_str_eq_c(m->event_key, r->menu[i].key)) {
                *group = r->menu[i].group;   /* the first rule wins */
                *action = ROUTE_ROUTE;
                break;
            }
        return;
    case WX_EV_KF_CREATE_SESSION:
        *action = ROUTE_KF_CREATE;
        return;
    case WX_EV_KF_CLOSE_SESSION:
        *action = ROUTE_KF_CLOSE;
        return;
    case WX_EV_KF_SWITCH_SESSION:
        *action = ROUTE_KF_SWITCH;
        return;
    default:
        return;
    }
}

const char *route_window(const struct wx_msg *m)
{
    if (m->type == WX_MSG_EVENT)
        return m->event == WX_EV_CLICK || m->event == WX_EV_SUBSCRIBE ||
                       m->event == WX_EV_SCAN
                   ? "evt" : "";
    return m->type == WX_MSG_UNKNOWN ? "" : "msg";
}

static const char *action_name(enum route_action a)
{
    static const char *const names[] = { "record", "route", "kf_create",
                                         "kf_close", "kf_switch" };

    return names[a];
}

/* Adds one argument; the caller sized argv. */
#define ARG(p, l) (argv[argc] = (p), lens[argc] = (l), argc++)
#define ARGC(s) ARG((s), strlen(s))

int route_ingest(struct route *r, const struct route_ingest *in,
                 struct kf_buf *decision, int *dup)
{
    const char *argv[MAX_ARGV];
    size_t lens[MAX_ARGV], i;
    char now[24], ttl[24];
    struct kf_buf dkey;
    redisReply *rep = NULL;
    int argc = 2, rc;

    if (in->nfields > (MAX_ARGV - 15) / 2)
        return KF_EINVAL;
    kf_buf_init(&dkey, 1024);
    rc = store_key(r->store, "dedupe:", &dkey);
    if (rc == 0)
        rc = kf_buf_append_str(&dkey, in->dedupe_key);
    if (rc < 0)
        goto out;
    snprintf(now, sizeof(now), "%lld", (long long)in->now_ms);
    snprintf(ttl, sizeof(ttl), "%ld", r->dedupe_ttl);
    ARGC("1");
    ARGC(r->store->prefix);
    ARG(dkey.p, dkey.len);
    ARGC(ttl);
    ARGC(now);
    ARG(in->openid.p, in->openid.len);
    ARGC(action_name(in->action));
    ARGC(in->group ? in->group : "");
    ARGC(r->cfg);
    ARGC(in->base_decision);
    ARG(in->kf1.p, in->kf1.len);
    ARG(in->kf2.p, in->kf2.len);
    ARGC(in->window ? in->window : "");
    for (i = 0; i < in->nfields; i++) {
        ARG(in->fields[i].name.p, in->fields[i].name.len);
        ARG(in->fields[i].value.p, in->fields[i].value.len);
    }
    rc = store_eval(r->store, &r->ingest, argc, argv, lens, &rep);
    if (rc < 0)
        goto out;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_STRING) {
        rc = KF_EBACKEND;
        goto out;
    }
    *dup = rep->element[0]->integer == 1;
    kf_buf_reset(decision);
    rc = kf_buf_append(decision, rep->element[1]->str, rep->element[1]->len);
out:
    if (rep)
        freeReplyObject(rep);
    kf_buf_release(&dkey);
    return rc;
}

/* Copies a string element of an array reply. */
static void copy_elem(const redisReply *rep, size_t i, char *out, size_t n)
{
    if (n == 0)
        return;
    out[0] = '\0';
    if (rep->type == REDIS_REPLY_ARRAY && i < rep->elements) {
        const redisReply *e = rep->element[i];

        if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS)
            snprintf(out, n, "%.*s", (int)e->len, e->str);
        else if (e->type == REDIS_REPLY_INTEGER)
            snprintf(out, n, "%lld", e->integer);
    }
}

static int is_err_reply(const redisReply *rep, char *code, size_t n)
{
    char first[8];

    copy_elem(rep, 0, first, sizeof(first));
    if (strcmp(first, "err") != 0)
        return 0;
    copy_elem(rep, 1, code, n);
    return 1;
}

static int run(struct route *r, const struct store_script *sc,
               const char *const *args, size_t nargs, redisReply **rep)
{
    const char *argv[MAX_ARGV];
    size_t lens[MAX_ARGV], i;
    int argc = 2;

    if (nargs + 4 > MAX_ARGV)
        return KF_EINVAL;
    ARGC("1");
    ARGC(r->store->prefix);
    for (i = 0; i < nargs; i++)
        ARGC(args[i]);
    return store_eval(r->store, sc, argc, argv, lens, rep);
}

int route_presence(struct route *r, const char *agent, const char *op,
                   const char *reason, int64_t now_ms, char *status,
                   size_t status_len, long *moved)
{
    char now[24], code[32], n[24];
    const char *args[] = { now, r->cfg, agent, op, reason };
    redisReply *rep = NULL;
    int rc;

    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    rc = run(r, &r->presence, args, 5, &rep);
    if (rc < 0)
        return rc;
    if (is_err_reply(rep, code, sizeof(code))) {
        rc = strcmp(code, "unknown_agent") == 0 ? KF_ENOTFOUND : KF_EINVAL;
    } else {
        copy_elem(rep, 0, status, status_len);
        copy_elem(rep, 1, n, sizeof(n));
        *moved = strtol(n, NULL, 10);
    }
    freeReplyObject(rep);
    return rc;
}

int route_session(struct route *r, const char *op, struct kf_str openid,
                  const char *by, const char *target, int64_t now_ms,
                  char *result, size_t result_len, char *err, size_t err_len)
{
    char now[24], o[72], a[64], b[64];
    const char *args[] = { now, r->cfg, op, o, by, target ? target : "" };
    redisReply *rep = NULL;
    int rc;

    if (openid.len >= sizeof(o))
        return KF_EINVAL;
    snprintf(o, sizeof(o), "%.*s", (int)openid.len, openid.p);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    rc = run(r, &r->session, args, 6, &rep);
    if (rc < 0)
        return rc;
    if (is_err_reply(rep, err, err_len)) {
        rc = strcmp(err, "no_session") == 0 ? KF_ENOTFOUND : KF_EINVAL;
    } else {
        copy_elem(rep, 1, a, sizeof(a));
        copy_elem(rep, 2, b, sizeof(b));
        snprintf(result, result_len, "%s%s%s", a, *b ? ":" : "", b);
    }
    freeReplyObject(rep);
    return rc;
}

int route_sweep(struct route *r, int64_t now_ms, long heartbeat_ttl_s,
                long limit, struct route_sweep_counts *out)
{
    char now[24], ttl[24], lim[24], v[24];
    const char *args[] = { now, r->cfg, ttl, lim, r->leave_message };
    long *dst[] = { &out->agents_lost, &out->sessions_expired,
                    &out->first_reply_reroutes, &out->queue_timeouts,
                    &out->dequeued };
    redisReply *rep = NULL;
    size_t i;
    int rc;

    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(ttl, sizeof(ttl), "%ld", heartbeat_ttl_s * 1000);
    snprintf(lim, sizeof(lim), "%ld", limit);
    rc = run(r, &r->sweep, args, 5, &rep);
    if (rc < 0)
        return rc;
    for (i = 0; i < 5; i++) {
        copy_elem(rep, i, v, sizeof(v));
        *dst[i] = strtol(v, NULL, 10);
    }
    freeReplyObject(rep);
    return 0;
}

/* A flat {field, value, ...} array reply as a JSON object. Numeric
 * fields become numbers; "why" (JSON text) is embedded as JSON. */
static json_t *hash_json(const redisReply *h)
{
    json_t *o = json_object();
    size_t i;

    if (!o)
        return NULL;
    for (i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *k = h->element[i], *v = h->element[i + 1];
        json_t *val = NULL;
        char name[64];

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            k->len >= sizeof(name))
            continue;
        snprintf(name, sizeof(name), "%.*s", (int)k->len, k->str);
        if (strcmp(name, "why") == 0)
            val = json_loadb(v->str, v->len, 0, NULL);
        else if (strcmp(name, "opened_ms") == 0 ||
                 strcmp(name, "assigned_ms") == 0 ||
                 strcmp(name, "last_ms") == 0 ||
                 strcmp(name, "queued_ms") == 0 ||
                 strcmp(name, "position") == 0)
            val = json_integer(strtoll(v->str, NULL, 10));
        else if (strcmp(name, "answered") == 0)
            val = json_boolean(v->len == 1 && v->str[0] == '1');
        if (!val)
            val = json_stringn(v->str, v->len);
        if (val)
            json_object_set_new(o, name, val);
    }
    return o;
}

int route_agent_sessions(struct route *r, const char *agent, json_t **out)
{
    const char *args[] = { "agent_sessions", agent };
    redisReply *rep = NULL;
    json_t *a;
    size_t i;
    int rc = run(r, &r->read, args, 2, &rep);

    if (rc < 0)
        return rc;
    a = json_array();
    for (i = 0; a && rep->type == REDIS_REPLY_ARRAY && i < rep->elements;
         i++)
        if (rep->element[i]->type == REDIS_REPLY_ARRAY)
            json_array_append_new(a, hash_json(rep->element[i]));
    freeReplyObject(rep);
    *out = a;
    return a ? 0 : KF_ENOMEM;
}

int route_session_view(struct route *r, struct kf_str openid, json_t **out)
{
    char o[72];
    const char *args[] = { "session", o };
    redisReply *rep = NULL;
    int rc;

    *out = NULL;
    if (openid.len >= sizeof(o))
        return KF_EINVAL;
    snprintf(o, sizeof(o), "%.*s", (int)openid.len, openid.p);
    rc = run(r, &r->read, args, 2, &rep);
    if (rc < 0)
        return rc;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0)
        *out = hash_json(rep);
    else
        rc = KF_ENOTFOUND;
    freeReplyObject(rep);
    return rc == 0 && !*out ? KF_ENOMEM : rc;
}

int route_token_agent(struct route *r, const char *token_sha256_hex,
                      char *account, size_t account_len, char *status,
                      size_t status_len)
{
    const char *args[] = { "token", token_sha256_hex };
    redisReply *rep = NULL;
    int rc = run(r, &r->read, args, 2, &rep);

    if (rc < 0)
        return rc;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
        copy_elem(rep, 0, account, account_len);
        copy_elem(rep, 1, status, status_len);
    } else {
        rc = KF_ENOTFOUND;
    }
    freeReplyObject(rep);
    return rc;
}

/* Adds "load:<a>" style counters into obj[<a>][<what>]. */
static int stats_entry(json_t *agents, json_t *queues, const char *name,
                       const redisReply *v)
{
    const char *colon = strchr(name, ':');
    char what[16];
    json_t *a;

    if (!colon || (size_t)(colon - name) >= sizeof(what))
        return 0;
    snprintf(what, sizeof(what), "%.*s", (int)(colon - name), name);
    if (strcmp(what, "queue") == 0)
        return json_object_set_new(queues, colon + 1,
                                   json_integer(strtoll(v->str, NULL, 10)));
    a = json_object_get(agents, colon + 1);
    if (!a) {
        a = json_object();
        if (!a || json_object_set_new(agents, colon + 1, a) < 0)
            return -1;
    }
    if (strcmp(what, "status") == 0)
        return json_object_set_new(a, what, json_stringn(v->str, v->len));
    return json_object_set_new(a, what,
                               json_integer(strtoll(v->str, NULL, 10)));
}

int route_stats(struct route *r, json_t **out)
{
    const char *args[] = { "stats", "" };
    redisReply *rep = NULL;
    json_t *o = json_object(), *agents = json_object(),
           *queues = json_object();
    size_t i;
    int rc = run(r, &r->read, args, 2, &rep);

    *out = NULL;
    if (rc == 0 && (!o || !agents || !queues))
        rc = KF_ENOMEM;
    for (i = 0; rc == 0 && rep->type == REDIS_REPLY_ARRAY &&
                i + 1 < rep->elements; i += 2) {
        const redisReply *k = rep->element[i], *v = rep->element[i + 1];
        char name[128];

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            k->len >= sizeof(name))
            continue;
        snprintf(name, sizeof(name), "%.*s", (int)k->len, k->str);
        if (!strchr(name, ':'))
            rc = json_object_set_new(o, name,
                                     json_integer(strtoll(v->str, NULL, 10)))
                     ? KF_ENOMEM : 0;
        else if (stats_entry(agents, queues, name, v) < 0)
            rc = KF_ENOMEM;
    }
    if (rep)
        freeReplyObject(rep);
    if (rc == 0 && (json_object_set(o, "agent_stats", agents) < 0 ||
                    json_object_set(o, "queues", queues) < 0))
        rc = KF_ENOMEM;
    json_decref(agents);
    json_decref(queues);
    if (rc < 0)
        json_decref(o);
    else
        *out = o;
    return rc;
}

/* "ms" or "ms-seq", each a decimal that fits 64 bits (Redis stream id). */
static int valid_stream_id(const char *s)
{
    const char *dash = strchr(s, '-');
    uint64_t v;

    if (!dash)
        return kf_parse_u64(kf_str_c(s), &v) == 0;
    return kf_parse_u64((struct kf_str){ s, (size_t)(dash - s) }, &v) == 0 &&
           kf_parse_u64(kf_str_c(dash + 1), &v) == 0;
}

int route_inbox(struct route *r, const char *agent, const char *after,
                long limit, json_t **out, char *next, size_t next_len)
{
    char lim[24];
    const char *args[] = { "inbox", agent, (after && *after) ? after : "0",
                           lim };
    redisReply *rep = NULL;
    json_t *a;
    size_t i, j;
    int rc;

    *out = NULL;
    if (!valid_stream_id(args[2]))
        return KF_EINVAL;
    snprintf(lim, sizeof(lim), "%ld", limit);
    snprintf(next, next_len, "%s", args[2]);
    rc = run(r, &r->read, args, 4, &rep);
    if (rc < 0)
        return rc;
    a = json_array();
    for (i = 0; a && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        const redisReply *e = rep->element[i], *f;
        json_t *o;

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
            continue;
        f = e->element[1];
        o = json_object();
        if (!o)
            break;
        json_object_set_new(o, "id", json_stringn(e->element[0]->str,
                                                  e->element[0]->len));
        for (j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements;
             j += 2) {
            char name[64];

            if (f->element[j]->len >= sizeof(name))
                continue;
            snprintf(name, sizeof(name), "%.*s", (int)f->element[j]->len,
                     f->element[j]->str);
            json_object_set_new(o, name,
                                strcmp(name, "why") == 0
                                    ? json_loadb(f->element[j + 1]->str,
                                                 f->element[j + 1]->len, 0,
                                                 NULL)
                                    : json_stringn(f->element[j + 1]->str,
                                                   f->element[j + 1]->len));
        }
        json_array_append_new(a, o);
        snprintf(next, next_len, "%.*s", (int)e->element[0]->len,
                 e->element[0]->str);
    }
    freeReplyObject(rep);
    *out = a;
    return a ? 0 : KF_ENOMEM;
}
