/* route: arguments to and replies from the routing scripts. */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "banned.h"

extern const char route_lua_ingest[], route_lua_presence[],
    route_lua_session[], route_lua_sweep[], route_lua_read[],
    route_lua_auth[];

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
                 "policy=%s;cap=%ld;idle=%ld;frt=%ld;queue=%ld;qmax=%ld;"
                 "tz=%ld;gp=%s",
                 cfg->routing.policy, cfg->routing.default_capacity,
                 cfg->session.idle_timeout * 1000,
                 cfg->routing.first_reply_timeout * 1000,
                 cfg->routing.queue_timeout * 1000, cfg->routing.queue_max,
                 cfg->api.stats_utc_offset * 60000,
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
    store_script_init(&r->auth, route_lua_auth);
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
                 struct kf_buf *decision, int *dup, int *replicated)
{
    const char *argv[MAX_ARGV];
    size_t lens[MAX_ARGV], i;
    char now[24], ttl[24], sttl[24];
    struct kf_buf dkey, skey;
    redisReply *rep = NULL;
    int argc = 2, rc;

    if (in->nfields > (MAX_ARGV - 18) / 2)
        return KF_EINVAL;
    kf_buf_init(&dkey, 1024);
    kf_buf_init(&skey, 8192);
    rc = store_key(r->store, "dedupe:", &dkey);
    if (rc == 0)
        rc = kf_buf_append_str(&dkey, in->dedupe_key);
    if (rc == 0 && in->sig_key.len) {
        rc = store_key(r->store, "sig:", &skey);
        if (rc == 0)
            rc = kf_buf_append_str(&skey, in->sig_key);
    }
    if (rc < 0)
        goto out;
    snprintf(now, sizeof(now), "%lld", (long long)in->now_ms);
    snprintf(ttl, sizeof(ttl), "%ld", r->dedupe_ttl);
    snprintf(sttl, sizeof(sttl), "%ld", in->sig_ttl > 0 ? in->sig_ttl : 1);
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
    ARG(skey.len ? skey.p : "", skey.len);
    ARGC(in->msg_hash && skey.len ? in->msg_hash : "");
    ARGC(sttl);
    for (i = 0; i < in->nfields; i++) {
        ARG(in->fields[i].name.p, in->fields[i].name.len);
        ARG(in->fields[i].value.p, in->fields[i].value.len);
    }
    rc = store_eval_wait(r->store, &r->ingest, argc, argv, lens, &rep,
                         replicated);
    if (rc < 0)
        goto out;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_STRING) {
        rc = KF_EBACKEND;
        goto out;
    }
    if (rep->element[0]->integer == 2) {
        rc = KF_EREPLAY;          /* signed query seen with another message */
        goto out;
    }
    *dup = rep->element[0]->integer == 1;
    kf_buf_reset(decision);
    rc = kf_buf_append(decision, rep->element[1]->str, rep->element[1]->len);
out:
    if (rep)
        freeReplyObject(rep);
    kf_buf_release(&dkey);
    kf_buf_release(&skey);
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

/* A script's {'err', code}: its row of the refusal table (the scope's
 * otherwise when the code is not one of scope's) into *why (NULL ok);
 * returns the row's kf code. */
static int refused(unsigned scope, const char *code,
                   enum refusal_id otherwise, const struct refusal **why)
{
    const struct refusal *row = refusal_find(scope, kf_str_c(code),
                                             otherwise);

    if (why)
        *why = row;
    return row->rc;
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
                   size_t status_len, long *moved,
                   const struct refusal **why)
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
        rc = refused(REFUSAL_PRESENCE, code, REFUSAL_BAD_STATUS, why);
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
                  char *result, size_t result_len,
                  const struct refusal **why)
{
    char now[24], o[72], a[64], b[64], code[32];
    const char *args[] = { now, r->cfg, op, o, by, target ? target : "" };
    redisReply *rep = NULL;
    int rc;

    if (openid.len >= sizeof(o))
        return refused(REFUSAL_SESSION, "", REFUSAL_REFUSED, why);
    snprintf(o, sizeof(o), "%.*s", (int)openid.len, openid.p);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    rc = run(r, &r->session, args, 6, &rep);
    if (rc < 0)
        return rc;
    if (is_err_reply(rep, code, sizeof(code))) {
        rc = refused(REFUSAL_SESSION, code, REFUSAL_REFUSED, why);
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

/* A {field, value} pair of a reply: the field's name into name (both
 * must be strings, the name shorter than n). 0 = skip the pair. */
static int pair_name(const redisReply *k, const redisReply *v, char *name,
                     size_t n)
{
    if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
        k->len >= n)
        return 0;
    snprintf(name, n, "%.*s", (int)k->len, k->str);
    return 1;
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

        if (!pair_name(k, v, name, sizeof(name)))
            continue;
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

int route_stats(struct route *r, int64_t now_ms, json_t **out)
{
    char now[24];
    const char *args[] = { "stats", "", now, r->cfg };
    redisReply *rep = NULL;
    json_t *o = json_object(), *agents = json_object(),
           *queues = json_object();
    size_t i;
    int rc;

    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    rc = run(r, &r->read, args, 4, &rep);
    *out = NULL;
    if (rc == 0 && (!o || !agents || !queues))
        rc = KF_ENOMEM;
    for (i = 0; rc == 0 && rep->type == REDIS_REPLY_ARRAY &&
                i + 1 < rep->elements; i += 2) {
        const redisReply *k = rep->element[i], *v = rep->element[i + 1];
        char name[128];

        if (!pair_name(k, v, name, sizeof(name)))
            continue;
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
    if (rc == 0) {
        json_int_t n = json_integer_value(json_object_get(o, "agents")),
                   on = json_integer_value(json_object_get(o, "online")) +
                        json_integer_value(json_object_get(o, "paused"));

        /* at work = online or paused (holding a heartbeat) */
        json_object_set_new(o, "online_rate",
                            json_real(n > 0 ? (double)on / (double)n : 0.0));
        json_object_set_new(o, "messages_today",
                            json_integer(json_integer_value(json_object_get(
                                             o, "messages_in_today")) +
                                         json_integer_value(json_object_get(
                                             o, "messages_out_today"))));
        if (!json_object_get(o, "first_response_median_ms"))
            json_object_set_new(o, "first_response_median_ms", json_null());
    }
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

json_t *route_entry_json(const struct redisReply *e)
{
    const redisReply *f;
    json_t *o;
    size_t j;

    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return NULL;
    f = e->element[1];
    o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "id", json_stringn(e->element[0]->str,
                                              e->element[0]->len));
    for (j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2) {
        const redisReply *k = f->element[j], *v = f->element[j + 1];
        char name[64];

        if (!pair_name(k, v, name, sizeof(name)))
            continue;
        if (strcmp(name, "id") == 0)    /* a message's own id */
            snprintf(name, sizeof(name), "msg_id");
        json_object_set_new(o, name,
                            strcmp(name, "why") == 0
                                ? json_loadb(v->str, v->len, 0, NULL)
                                : json_stringn(v->str, v->len));
    }
    return o;
}

int route_inbox(struct route *r, const char *agent, const char *after,
                long limit, json_t **out, char *next, size_t next_len)
{
    char lim[24];
    const char *args[] = { "inbox", agent, (after && *after) ? after : "0",
                           lim };
    redisReply *rep = NULL;
    json_t *a;
    size_t i;
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
    for (i = 0; a && rep->type == REDIS_REPLY_ARRAY && i < rep->elements;
         i++) {
        const redisReply *e = rep->element[i];
        json_t *o = route_entry_json(e);

        if (!o)
            continue;
        json_array_append_new(a, o);
        snprintf(next, next_len, "%.*s", (int)e->element[0]->len,
                 e->element[0]->str);
    }
    freeReplyObject(rep);
    *out = a;
    return a ? 0 : KF_ENOMEM;
}

int route_agent_info(struct route *r, const char *agent, json_t **out)
{
    const char *args[] = { "me", agent };
    redisReply *rep = NULL;
    int rc = run(r, &r->read, args, 2, &rep);

    *out = NULL;
    if (rc < 0)
        return rc;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0) {
        *out = hash_json(rep);
        rc = *out ? 0 : KF_ENOMEM;
    } else {
        rc = KF_ENOTFOUND;
    }
    freeReplyObject(rep);
    return rc;
}

int route_all_sessions(struct route *r, const char *state, long limit,
                       json_t **out, long *total)
{
    char lim[24];
    const char *args[] = { "sessions", state, lim };
    redisReply *rep = NULL;
    json_t *a;
    size_t i;
    int rc;

    *out = NULL;
    *total = 0;
    snprintf(lim, sizeof(lim), "%ld", limit);
    rc = run(r, &r->read, args, 3, &rep);
    if (rc < 0)
        return rc;
    a = json_array();
    for (i = 0; a && rep->type == REDIS_REPLY_ARRAY && i < rep->elements;
         i++) {
        const redisReply *e = rep->element[i];

        if (e->type != REDIS_REPLY_ARRAY)
            continue;
        if (i + 1 == rep->elements && e->elements == 2 &&
            e->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(e->element[0]->str, "total") == 0 &&
            e->element[1]->type == REDIS_REPLY_STRING)
            *total = strtol(e->element[1]->str, NULL, 10);
        else
            json_array_append_new(a, hash_json(e));
    }
    freeReplyObject(rep);
    *out = a;
    return a ? 0 : KF_ENOMEM;
}

static json_int_t reply_int(const redisReply *e)
{
    return e->type == REDIS_REPLY_STRING ? strtoll(e->str, NULL, 10) : 0;
}

int route_queue(struct route *r, long limit, json_t **out)
{
    char lim[24];
    const char *args[] = { "queue", "", lim };
    redisReply *rep = NULL;
    json_t *groups = json_array();
    json_int_t total = 0;
    size_t i, j;
    int rc;

    *out = NULL;
    snprintf(lim, sizeof(lim), "%ld", limit);
    rc = groups ? run(r, &r->read, args, 3, &rep) : KF_ENOMEM;
    if (rc < 0) {
        json_decref(groups);
        return rc;
    }
    for (i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        const redisReply *g = rep->element[i], *u;
        json_t *waiting = json_array();

        if (!waiting || g->type != REDIS_REPLY_ARRAY || g->elements != 3 ||
            g->element[0]->type != REDIS_REPLY_STRING ||
            g->element[2]->type != REDIS_REPLY_ARRAY) {
            json_decref(waiting);
            continue;
        }
        u = g->element[2];
        for (j = 0; j < u->elements; j++) {
            const redisReply *e = u->element[j];

            if (e->type != REDIS_REPLY_ARRAY || e->elements != 3 ||
                e->element[0]->type != REDIS_REPLY_STRING)
                continue;
            json_array_append_new(
                waiting,
                json_pack("{s:s,s:I,s:I,s:s}", "openid", e->element[0]->str,
                          "position", (json_int_t)(j + 1), "since_ms",
                          reply_int(e->element[1]), "session",
                          e->element[2]->type == REDIS_REPLY_STRING
                              ? e->element[2]->str : ""));
        }
        total += reply_int(g->element[1]);
        json_array_append_new(
            groups, json_pack("{s:s,s:I,s:o}", "group", g->element[0]->str,
                              "length", reply_int(g->element[1]),
                              "waiting", waiting));
    }
    freeReplyObject(rep);
    *out = json_pack("{s:I,s:o}", "total", total, "groups", groups);
    return *out ? 0 : KF_ENOMEM;
}
