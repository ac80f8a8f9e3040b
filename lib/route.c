/* route: arguments to and replies from the routing scripts. */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover.h"
#include "lua.h"

#include "banned.h"

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
    const unsigned char *g;
    int n, rc;

    memset(r, 0, sizeof(*r));
    r->store = st;
    r->dedupe_ttl = cfg->wechat.dedupe_ttl;
    r->wechat_kf = strcmp(cfg->wechat.mode, "wechat_kf") == 0;
    r->leave_message = cfg->texts.leave_message;
    n = snprintf(r->cfg, sizeof(r->cfg),
                 "policy=%s;cap=%ld;idle=%ld;frt=%ld;queue=%ld;qmax=%ld;"
                 "ret=%ld;qo=%d;tz=%ld;wk=%d;gp=%s;gt=",
                 cfg->routing.policy, cfg->routing.default_capacity,
                 cfg->session.idle_timeout * 1000,
                 cfg->routing.first_reply_timeout * 1000,
                 cfg->routing.queue_timeout * 1000, cfg->routing.queue_max,
                 cfg->routing.returning * 86400000L,
                 strcmp(cfg->routing.queue_order, "window") == 0,
                 cfg->api.stats_utc_offset * 60000, r->wechat_kf,
                 cfg->routing.group_policies);
    if (n < 0 || (size_t)n >= sizeof(r->cfg))
        return KF_ECONFIG;
    /* the greeting in hex: any text, no ';' to end the field early */
    for (g = (const unsigned char *)cfg->texts.greeting; *g; g++) {
        if ((size_t)n + 3 > sizeof(r->cfg))
            return KF_ECONFIG;
        n += snprintf(r->cfg + n, sizeof(r->cfg) - (size_t)n, "%02x", *g);
    }
    rc = parse_rules(cfg->routing.menu_groups, r->menu, &r->nmenu);
    if (rc == 0)
        rc = parse_rules(cfg->routing.keyword_groups, r->keyword,
                         &r->nkeyword);
    store_script_init(&r->ingest, lua_ingest);
    store_script_init(&r->presence, lua_presence);
    store_script_init(&r->session, lua_session);
    store_script_init(&r->sweep, lua_sweep);
    store_script_init(&r->read, lua_read);
    store_script_init(&r->auth, lua_auth);
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

static const char *const kind_names[] = {
#define X(name, word) word,
    ROUTE_KINDS(X)
#undef X
};

const char *route_kind_name(enum route_kind k)
{
    size_t i = (size_t)k;

    return i < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[i]
                                                          : "";
}

const char *route_decision_str(const struct route_decision *d,
                               char out[ROUTE_DECISION_STR_MAX])
{
    const char *w = route_kind_name(d->kind);

    if (d->kind == ROUTE_ASSIGNED || d->kind == ROUTE_STICKY)
        snprintf(out, ROUTE_DECISION_STR_MAX, "%s:%s", w, d->agent);
    else if (d->kind == ROUTE_QUEUED || d->kind == ROUTE_OFFLINE ||
             d->kind == ROUTE_FULL)
        snprintf(out, ROUTE_DECISION_STR_MAX, "%s:%ld", w, d->n);
    else
        snprintf(out, ROUTE_DECISION_STR_MAX, "%s", *w ? w : "-");
    return out;
}

/* ingest.lua's {dup, kind, value, time} into d. */
static int decode_decision(const struct store_reply *rep,
                           struct route_decision *d, int *dup)
{
    struct kf_str kind;
    int64_t v, t;
    size_t i;

    memset(d, 0, sizeof(*d));
    if (store_reply_len(rep) != 4 || store_reply_at_int(rep, 0, &v) < 0 ||
        store_reply_at_str(rep, 1, &kind) < 0 ||
        store_reply_at_int(rep, 3, &t) < 0)
        return KF_EBACKEND;
    *dup = v == 1;
    d->time = t;
    for (i = ROUTE_NONE; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
        if (kf_str_eq_c(kind, kind_names[i]))
            d->kind = (enum route_kind)i;
    switch (d->kind) {
    case ROUTE_ASSIGNED:
    case ROUTE_STICKY:
        return store_reply_at_copy(rep, 2, d->agent, sizeof(d->agent)) < 0
                   ? KF_EBACKEND : 0;
    case ROUTE_QUEUED:
    case ROUTE_OFFLINE:
    case ROUTE_FULL:
        if (store_reply_at_int(rep, 2, &v) < 0)
            return KF_EBACKEND;
        d->n = (long)v;
        return 0;
    case ROUTE_UNDECIDED:
    case ROUTE_JOURNALED:         /* never stored in Redis */
        d->kind = ROUTE_UNDECIDED;
        return KF_EBACKEND;
    default:
        return 0;
    }
}

/* "<what><key>" into b: a key suffix for store_run (no NUL inside). */
static int key_suffix(struct kf_buf *b, const char *what, struct kf_str key)
{
    int rc;

    if (memchr(key.p, '\0', key.len))
        return KF_EINVAL;
    rc = kf_buf_append_c(b, what);
    return rc < 0 ? rc : kf_buf_append_str(b, key);
}

int route_ingest(struct route *r, const struct route_ingest *in,
                 struct route_decision *d, int *dup, int *replicated)
{
    const char *args[12 + 2 * ROUTE_INGEST_FIELDS_MAX], *keys[2];
    size_t lens[12 + 2 * ROUTE_INGEST_FIELDS_MAX], i;
    char now[24], ttl[24], sttl[24];
    struct kf_buf dkey, skey;
    struct store_reply *rep = NULL;
    int64_t v;
    int n = 0, rc;

    memset(d, 0, sizeof(*d));
    if (in->nfields > ROUTE_INGEST_FIELDS_MAX)
        return KF_EINVAL;
    kf_buf_init(&dkey, 1024);
    kf_buf_init(&skey, 8192);
    rc = key_suffix(&dkey, "dedupe:", in->dedupe_key);
    if (rc == 0 && in->sig_key.len)
        rc = key_suffix(&skey, "sig:", in->sig_key);
    if (rc < 0)
        goto out;
    keys[0] = dkey.p;
    keys[1] = skey.p;
    snprintf(now, sizeof(now), "%lld", (long long)in->now_ms);
    snprintf(ttl, sizeof(ttl), "%ld", r->dedupe_ttl);
    snprintf(sttl, sizeof(sttl), "%ld", in->sig_ttl > 0 ? in->sig_ttl : 1);
#define ARG(p, l) (args[n] = (p), lens[n] = (l), n++)
#define ARGC(s) ARG((s), strlen(s))
    ARGC(action_name(in->action));
    ARGC(ttl);
    ARGC(now);
    ARG(in->openid.p, in->openid.len);
    ARGC(in->group ? in->group : "");
    ARGC(r->cfg);
    ARGC(in->base_decision);
    ARG(in->kf1.p, in->kf1.len);
    ARG(in->kf2.p, in->kf2.len);
    ARGC(in->window ? in->window : "");
    ARGC(in->msg_hash && skey.len ? in->msg_hash : "");
    ARGC(sttl);
    for (i = 0; i < in->nfields; i++) {
        ARG(in->fields[i].name.p, in->fields[i].name.len);
        ARG(in->fields[i].value.p, in->fields[i].value.len);
    }
#undef ARG
#undef ARGC
    rc = store_run_wait(r->store, &r->ingest, skey.len ? 2 : 1, keys, n,
                        args, lens, &rep, replicated);
    if (rc < 0)
        goto out;
    if (store_reply_len(rep) == 1 && store_reply_at_int(rep, 0, &v) == 0 &&
        v == 2)
        rc = KF_EREPLAY;          /* signed query seen with another message */
    else
        rc = decode_decision(rep, d, dup);
out:
    store_reply_free(rep);
    kf_buf_release(&dkey);
    kf_buf_release(&skey);
    return rc;
}

/* {'err', code} from a script: code into code[0..n). */
static int is_err_reply(const struct store_reply *rep, char *code, size_t n)
{
    if (!store_reply_at_is(rep, 0, "err"))
        return 0;
    store_reply_at_copy(rep, 1, code, n);
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

static int presence_run(struct route *r, const char *agent, const char *op,
                        const char *reason, const char *by, int64_t now_ms,
                        char *status, size_t status_len, long *moved,
                        const struct refusal **why)
{
    char now[24], code[32];
    const char *args[] = { op, now, r->cfg, agent, reason, by };
    struct store_reply *rep = NULL;
    int64_t n;
    int rc;

    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    rc = store_run(r->store, &r->presence, 0, NULL, 6, args, NULL, &rep);
    if (rc < 0)
        return rc;
    if (is_err_reply(rep, code, sizeof(code))) {
        rc = refused(REFUSAL_PRESENCE, code, REFUSAL_BAD_STATUS, why);
    } else {
        store_reply_at_copy(rep, 0, status, status_len);
        *moved = store_reply_at_int(rep, 1, &n) == 0 ? (long)n : 0;
    }
    store_reply_free(rep);
    return rc;
}

int route_presence(struct route *r, const char *agent, const char *op,
                   const char *reason, int64_t now_ms, char *status,
                   size_t status_len, long *moved,
                   const struct refusal **why)
{
    return presence_run(r, agent, op, reason, "", now_ms, status,
                        status_len, moved, why);
}

int route_force_status(struct route *r, const char *agent,
                       const char *status, const char *by, int64_t now_ms,
                       char *out, size_t out_len, long *moved,
                       const struct refusal **why)
{
    if (strcmp(status, "paused") && strcmp(status, "offline"))
        return refused(REFUSAL_PRESENCE, "bad_status", REFUSAL_BAD_STATUS,
                       why);
    return presence_run(r, agent, status, "forced", by, now_ms, out,
                        out_len, moved, why);
}

static int session_run(struct route *r, const char *op, struct kf_str openid,
                       const char *by, const char *target, const char *note,
                       int64_t now_ms, char *result, size_t result_len,
                       const struct refusal **why)
{
    char now[24], o[72], a[64], b[64], code[32];
    const char *args[] = { op, now, r->cfg, o, by, target ? target : "",
                           note ? note : "" };
    struct store_reply *rep = NULL;
    int rc;

    if (openid.len >= sizeof(o))
        return refused(REFUSAL_SESSION, "", REFUSAL_REFUSED, why);
    /* the script's other ops (reopen) are route_reopen's */
    if (strcmp(op, "close") && strcmp(op, "transfer_agent") &&
        strcmp(op, "transfer_group") && strcmp(op, "answered") &&
        strcmp(op, "move_agent") && strcmp(op, "move_group"))
        return refused(REFUSAL_SESSION, "bad_op", REFUSAL_REFUSED, why);
    snprintf(o, sizeof(o), "%.*s", (int)openid.len, openid.p);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    rc = store_run(r->store, &r->session, 0, NULL, 7, args, NULL, &rep);
    if (rc < 0)
        return rc;
    if (is_err_reply(rep, code, sizeof(code))) {
        rc = refused(REFUSAL_SESSION, code, REFUSAL_REFUSED, why);
    } else {
        store_reply_at_copy(rep, 1, a, sizeof(a));
        store_reply_at_copy(rep, 2, b, sizeof(b));
        snprintf(result, result_len, "%s%s%s", a, *b ? ":" : "", b);
    }
    store_reply_free(rep);
    return rc;
}

int route_session(struct route *r, const char *op, struct kf_str openid,
                  const char *by, const char *target, int64_t now_ms,
                  char *result, size_t result_len,
                  const struct refusal **why)
{
    return session_run(r, op, openid, by, target, NULL, now_ms, result,
                       result_len, why);
}

int route_transfer(struct route *r, struct kf_str openid, const char *by,
                   const char *to_agent, const char *to_group,
                   const char *note, int64_t now_ms, char *result,
                   size_t result_len, const struct refusal **why)
{
    return session_run(r, to_agent ? "transfer_agent" : "transfer_group",
                       openid, by, to_agent ? to_agent : to_group, note,
                       now_ms, result, result_len, why);
}

int route_move(struct route *r, struct kf_str openid, const char *to_agent,
               const char *to_group, int64_t now_ms, char *result,
               size_t result_len, const struct refusal **why)
{
    return session_run(r, to_agent ? "move_agent" : "move_group", openid,
                       "", to_agent ? to_agent : to_group, NULL, now_ms,
                       result, result_len, why);
}

static int64_t reply_i64(const struct store_reply *rep, size_t i)
{
    char v[24];

    store_reply_at_copy(rep, i, v, sizeof(v));
    return (int64_t)strtoll(v, NULL, 10);
}

/* session.lua's reopen and reopen_peek: {'ok', s1, s2, n3, n4}. */
static int reopen_call(struct route *r, const char *op, struct kf_str openid,
                       const char *agent, const char *by, int64_t past,
                       int64_t now_ms, struct route_reopen *out,
                       const struct refusal **why)
{
    char now[24], o[72], sid[24], code[32];
    const char *args[] = { op, now, r->cfg, o, by, agent, sid };
    struct store_reply *rep = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (openid.len >= sizeof(o) || !kf_openid_ok(openid))
        return refused(REFUSAL_REOPEN, "", REFUSAL_REFUSED, why);
    snprintf(o, sizeof(o), "%.*s", (int)openid.len, openid.p);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(sid, sizeof(sid), "%lld", (long long)past);
    rc = store_run(r->store, &r->session, 0, NULL, 7, args, NULL, &rep);
    if (rc < 0)
        return rc;
    if (is_err_reply(rep, code, sizeof(code))) {
        rc = refused(REFUSAL_REOPEN, code, REFUSAL_REFUSED, why);
        store_reply_at_copy(rep, 2, out->agent, sizeof(out->agent));
    } else if (strcmp(op, "reopen") == 0) {
        out->already = store_reply_at_is(rep, 1, "already");
        store_reply_at_copy(rep, 2, out->agent, sizeof(out->agent));
        out->session_id = reply_i64(rep, 3);
        out->left = (long)reply_i64(rep, 4);
    } else {
        store_reply_at_copy(rep, 1, out->state, sizeof(out->state));
        store_reply_at_copy(rep, 2, out->agent, sizeof(out->agent));
        out->window_end_ms = reply_i64(rep, 3);
        out->left = (long)reply_i64(rep, 4);
    }
    store_reply_free(rep);
    return rc;
}

int route_reopen(struct route *r, struct kf_str openid, const char *agent,
                 const char *by, int64_t past_session, int64_t now_ms,
                 struct route_reopen *out, const struct refusal **why)
{
    return reopen_call(r, "reopen", openid, agent, by, past_session, now_ms,
                       out, why);
}

int route_reopen_peek(struct route *r, struct kf_str openid, int64_t now_ms,
                      struct route_reopen *out)
{
    const struct refusal *why = NULL;

    return reopen_call(r, "reopen_peek", openid, "", "", 0, now_ms, out,
                       &why);
}

int route_sweep(struct route *r, int64_t now_ms, long heartbeat_ttl_s,
                long limit, struct route_sweep_counts *out)
{
    char now[24], ttl[24], lim[24];
    const char *args[] = { "sweep", now, r->cfg, ttl, lim,
                           r->leave_message };
    long *dst[] = { &out->agents_lost, &out->sessions_expired,
                    &out->first_reply_reroutes, &out->queue_timeouts,
                    &out->dequeued };
    struct store_reply *rep = NULL;
    int64_t v;
    size_t i;
    int rc;

    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(ttl, sizeof(ttl), "%ld", heartbeat_ttl_s * 1000);
    snprintf(lim, sizeof(lim), "%ld", limit);
    rc = store_run(r->store, &r->sweep, 0, NULL, 6, args, NULL, &rep);
    if (rc < 0)
        return rc;
    for (i = 0; i < 5; i++)
        *dst[i] = store_reply_at_int(rep, i, &v) == 0 ? (long)v : 0;
    store_reply_free(rep);
    return 0;
}

/* A {field, value} pair of a reply: the field's name into name and the
 * value into *val (both must be strings, the name shorter than n).
 * 0 = skip the pair. */
static int pair_at(const struct store_reply *h, size_t i, char *name,
                   size_t n, struct kf_str *val)
{
    const struct store_reply *k = store_reply_at(h, i),
                             *v = store_reply_at(h, i + 1);

    if (store_reply_type(k) != STORE_STR ||
        store_reply_type(v) != STORE_STR || store_reply_str(k).len >= n)
        return 0;
    *val = store_reply_str(v);
    snprintf(name, n, "%s", store_reply_str(k).p);
    return 1;
}

/* A flat {field, value, ...} array reply as a JSON object. Numeric
 * fields become numbers; "why" (JSON text) is embedded as JSON. */
static json_t *hash_json(const struct store_reply *h)
{
    json_t *o = json_object();
    size_t i;

    if (!o)
        return NULL;
    for (i = 0; i + 1 < store_reply_len(h); i += 2) {
        json_t *val = NULL;
        struct kf_str v;
        char name[64];

        if (!pair_at(h, i, name, sizeof(name), &v))
            continue;
        if (strcmp(name, "why") == 0)
            val = json_loadb(v.p, v.len, 0, NULL);
        else if (strcmp(name, "opened_ms") == 0 ||
                 strcmp(name, "assigned_ms") == 0 ||
                 strcmp(name, "last_ms") == 0 ||
                 strcmp(name, "queued_ms") == 0 ||
                 strcmp(name, "user_ms") == 0 ||
                 strcmp(name, "reply_ms") == 0 ||
                 strcmp(name, "window_end_ms") == 0 ||
                 strcmp(name, "position") == 0)
            val = json_integer(strtoll(v.p, NULL, 10));
        else if (strcmp(name, "answered") == 0)
            val = json_boolean(v.len == 1 && v.p[0] == '1');
        if (!val)
            val = json_stringn(v.p, v.len);
        if (val)
            json_object_set_new(o, name, val);
    }
    if (handover_view(o) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int route_agent_sessions(struct route *r, const char *agent, json_t **out)
{
    const char *args[] = { "agent_sessions", agent };
    struct store_reply *rep = NULL;
    json_t *a;
    size_t i;
    int rc = store_run(r->store, &r->read, 0, NULL, 2, args, NULL, &rep);

    if (rc < 0)
        return rc;
    a = json_array();
    for (i = 0; a && i < store_reply_len(rep); i++)
        if (store_reply_type(store_reply_at(rep, i)) == STORE_ARRAY)
            json_array_append_new(a, hash_json(store_reply_at(rep, i)));
    store_reply_free(rep);
    *out = a;
    return a ? 0 : KF_ENOMEM;
}

int route_session_view(struct route *r, struct kf_str openid, json_t **out)
{
    char o[72];
    const char *args[] = { "session", o };
    struct store_reply *rep = NULL;
    int rc;

    *out = NULL;
    if (openid.len >= sizeof(o))
        return KF_EINVAL;
    snprintf(o, sizeof(o), "%.*s", (int)openid.len, openid.p);
    rc = store_run(r->store, &r->read, 0, NULL, 2, args, NULL, &rep);
    if (rc < 0)
        return rc;
    if (store_reply_len(rep) > 0)
        *out = hash_json(rep);
    else
        rc = KF_ENOTFOUND;
    store_reply_free(rep);
    return rc == 0 && !*out ? KF_ENOMEM : rc;
}

/* Adds "load:<a>" style counters into obj[<a>][<what>]. */
static int stats_entry(json_t *agents, json_t *queues, const char *name,
                       struct kf_str v)
{
    const char *colon = strchr(name, ':');
    char what[16];
    json_t *a;

    if (!colon || (size_t)(colon - name) >= sizeof(what))
        return 0;
    snprintf(what, sizeof(what), "%.*s", (int)(colon - name), name);
    if (strcmp(what, "queue") == 0)
        return json_object_set_new(queues, colon + 1,
                                   json_integer(strtoll(v.p, NULL, 10)));
    a = json_object_get(agents, colon + 1);
    if (!a) {
        a = json_object();
        if (!a || json_object_set_new(agents, colon + 1, a) < 0)
            return -1;
    }
    if (strcmp(what, "status") == 0)
        return json_object_set_new(a, what, json_stringn(v.p, v.len));
    return json_object_set_new(a, what, json_integer(strtoll(v.p, NULL, 10)));
}

int route_stats(struct route *r, int64_t now_ms, json_t **out)
{
    char now[24];
    const char *args[] = { "stats", "", now, r->cfg };
    struct store_reply *rep = NULL;
    json_t *o = json_object(), *agents = json_object(),
           *queues = json_object();
    size_t i;
    int rc;

    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    rc = store_run(r->store, &r->read, 0, NULL, 4, args, NULL, &rep);
    *out = NULL;
    if (rc == 0 && (!o || !agents || !queues))
        rc = KF_ENOMEM;
    for (i = 0; rc == 0 && i + 1 < store_reply_len(rep); i += 2) {
        struct kf_str v;
        char name[128];

        if (!pair_at(rep, i, name, sizeof(name), &v))
            continue;
        if (!strchr(name, ':'))
            rc = json_object_set_new(o, name,
                                     json_integer(strtoll(v.p, NULL, 10)))
                     ? KF_ENOMEM : 0;
        else if (stats_entry(agents, queues, name, v) < 0)
            rc = KF_ENOMEM;
    }
    store_reply_free(rep);
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

json_t *route_entry_json(const struct store_reply *e)
{
    const struct store_reply *f = store_reply_at(e, 1);
    struct kf_str id;
    json_t *o;
    size_t j;

    if (store_reply_len(e) != 2 || store_reply_at_str(e, 0, &id) < 0 ||
        store_reply_type(store_reply_at(e, 0)) != STORE_STR)
        return NULL;
    o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "id", json_stringn(id.p, id.len));
    for (j = 0; j + 1 < store_reply_len(f); j += 2) {
        struct kf_str v;
        char name[64];

        if (!pair_at(f, j, name, sizeof(name), &v))
            continue;
        if (strcmp(name, "id") == 0)    /* a message's own id */
            snprintf(name, sizeof(name), "msg_id");
        json_object_set_new(o, name,
                            strcmp(name, "why") == 0
                                ? json_loadb(v.p, v.len, 0, NULL)
                                : json_stringn(v.p, v.len));
    }
    return o;
}

int route_inbox(struct route *r, const char *agent, const char *after,
                long limit, json_t **out, char *next, size_t next_len)
{
    char lim[24];
    const char *args[] = { "inbox", agent, (after && *after) ? after : "0",
                           lim };
    struct store_reply *rep = NULL;
    json_t *a;
    size_t i;
    int rc;

    *out = NULL;
    if (!valid_stream_id(args[2]))
        return KF_EINVAL;
    snprintf(lim, sizeof(lim), "%ld", limit);
    snprintf(next, next_len, "%s", args[2]);
    rc = store_run(r->store, &r->read, 0, NULL, 4, args, NULL, &rep);
    if (rc < 0)
        return rc;
    a = json_array();
    for (i = 0; a && i < store_reply_len(rep); i++) {
        const struct store_reply *e = store_reply_at(rep, i);
        json_t *o = route_entry_json(e);

        if (!o)
            continue;
        json_array_append_new(a, o);
        store_reply_at_copy(e, 0, next, next_len);
    }
    store_reply_free(rep);
    *out = a;
    return a ? 0 : KF_ENOMEM;
}

int route_agent_info(struct route *r, const char *agent, json_t **out)
{
    const char *args[] = { "me", agent };
    struct store_reply *rep = NULL;
    int rc = store_run(r->store, &r->read, 0, NULL, 2, args, NULL, &rep);

    *out = NULL;
    if (rc < 0)
        return rc;
    if (store_reply_len(rep) > 0) {
        *out = hash_json(rep);
        rc = *out ? 0 : KF_ENOMEM;
    } else {
        rc = KF_ENOTFOUND;
    }
    store_reply_free(rep);
    return rc;
}

/* o's fields a, b, c (decimal strings) as numbers. */
static void numbers(json_t *o, const char *a, const char *b, const char *c)
{
    const char *names[] = { a, b, c };
    size_t i;

    for (i = 0; o && i < 3; i++) {
        const char *v = json_string_value(json_object_get(o, names[i]));

        if (v)
            json_object_set_new(o, names[i],
                                json_integer(strtoll(v, NULL, 10)));
    }
}

int route_board(struct route *r, json_t **out)
{
    const char *args[] = { "board", "", r->cfg };
    struct store_reply *rep = NULL;
    json_t *agents = json_array();
    size_t i, j;
    int rc;

    *out = NULL;
    rc = agents ? store_run(r->store, &r->read, 0, NULL, 3, args, NULL, &rep)
                : KF_ENOMEM;
    for (i = 0; rc == 0 && i < store_reply_len(rep); i++) {
        const struct store_reply *e = store_reply_at(rep, i),
                                 *ss = store_reply_at(e, 1);
        json_t *a, *sess;

        if (store_reply_len(e) != 2 || store_reply_type(ss) != STORE_ARRAY)
            continue;
        a = hash_json(store_reply_at(e, 0));
        numbers(a, "load", "capacity", "status_ms");
        sess = json_array();
        for (j = 0; a && sess && j < store_reply_len(ss); j++)
            json_array_append_new(sess, hash_json(store_reply_at(ss, j)));
        if (!a || !sess || json_object_set_new(a, "sessions", sess) < 0 ||
            json_array_append_new(agents, a) < 0)
            rc = KF_ENOMEM;
    }
    store_reply_free(rep);
    if (rc == 0)
        *out = agents;
    else
        json_decref(agents);
    return rc;
}

int route_page(struct route *r, const struct route_page_query *q,
               int64_t now_ms, json_t **out, long *total, int *capped)
{
    char now[24], off[24], lim[24];
    const char *args[] = { "page", q->state, now, q->agent, q->group,
                           q->prefix, off, lim };
    struct store_reply *rep = NULL;
    const struct store_reply *items;
    json_t *a;
    int64_t t = 0, c = 0;
    size_t i;
    int rc;

    *out = NULL;
    *total = 0;
    *capped = 0;
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(off, sizeof(off), "%ld", q->offset);
    snprintf(lim, sizeof(lim), "%ld", q->limit);
    rc = store_run(r->store, &r->read, 0, NULL, 8, args, NULL, &rep);
    if (rc < 0)
        return rc;
    items = store_reply_at(rep, 2);
    if (store_reply_len(rep) != 3 || store_reply_at_int(rep, 0, &t) < 0 ||
        store_reply_at_int(rep, 1, &c) < 0 ||
        store_reply_type(items) != STORE_ARRAY) {
        store_reply_free(rep);
        return KF_EPARSE;
    }
    a = json_array();
    for (i = 0; a && i < store_reply_len(items); i++) {
        const struct store_reply *e = store_reply_at(items, i);

        if (store_reply_type(e) == STORE_ARRAY &&
            json_array_append_new(a, hash_json(e)) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    store_reply_free(rep);
    *out = a;
    *total = (long)t;
    *capped = c != 0;
    return a ? 0 : KF_ENOMEM;
}

/* Element i, an integer (or its decimal string); 0 if it is not one. */
static json_int_t int_at(const struct store_reply *r, size_t i)
{
    int64_t v;

    return store_reply_at_int(r, i, &v) == 0 ? (json_int_t)v : 0;
}

int route_queue(struct route *r, long limit, json_t **out)
{
    char lim[24];
    const char *args[] = { "queue", "", lim };
    struct store_reply *rep = NULL;
    json_t *groups = json_array();
    json_int_t total = 0;
    size_t i, j;
    int rc;

    *out = NULL;
    snprintf(lim, sizeof(lim), "%ld", limit);
    rc = groups ? store_run(r->store, &r->read, 0, NULL, 3, args, NULL, &rep)
                : KF_ENOMEM;
    if (rc < 0) {
        json_decref(groups);
        return rc;
    }
    for (i = 0; i < store_reply_len(rep); i++) {
        const struct store_reply *g = store_reply_at(rep, i),
                                 *u = store_reply_at(g, 2);
        json_t *waiting = json_array();

        if (!waiting || store_reply_len(g) != 3 ||
            store_reply_type(store_reply_at(g, 0)) != STORE_STR ||
            store_reply_type(u) != STORE_ARRAY) {
            json_decref(waiting);
            continue;
        }
        for (j = 0; j < store_reply_len(u); j++) {
            const struct store_reply *e = store_reply_at(u, j);

            if (store_reply_len(e) != 3 ||
                store_reply_type(store_reply_at(e, 0)) != STORE_STR)
                continue;
            json_array_append_new(
                waiting,
                json_pack("{s:s,s:I,s:I,s:s}", "openid",
                          store_reply_at_text(e, 0), "position",
                          (json_int_t)(j + 1), "since_ms", int_at(e, 1),
                          "session", store_reply_at_text(e, 2)));
        }
        total += int_at(g, 1);
        json_array_append_new(
            groups, json_pack("{s:s,s:I,s:o}", "group",
                              store_reply_at_text(g, 0), "length",
                              int_at(g, 1), "waiting", waiting));
    }
    store_reply_free(rep);
    *out = json_pack("{s:I,s:o}", "total", total, "groups", groups);
    return *out ? 0 : KF_ENOMEM;
}

int route_colleagues(struct route *r, json_t **out)
{
    const char *args[] = { "colleagues", "", r->cfg };
    struct store_reply *rep = NULL;
    const struct store_reply *as, *gs;
    json_t *agents = json_array(), *groups = json_array();
    size_t i;
    int rc;

    *out = NULL;
    rc = agents && groups
             ? store_run(r->store, &r->read, 0, NULL, 3, args, NULL, &rep)
             : KF_ENOMEM;
    as = store_reply_at(rep, 0);
    gs = store_reply_at(rep, 1);
    for (i = 0; rc == 0 && i < store_reply_len(as); i++)
        if (json_array_append_new(agents,
                                  hash_json(store_reply_at(as, i))) < 0)
            rc = KF_ENOMEM;
    for (i = 0; rc == 0 && i < store_reply_len(gs); i++) {
        const struct store_reply *g = store_reply_at(gs, i);

        if (store_reply_len(g) != 3 ||
            store_reply_type(store_reply_at(g, 0)) != STORE_STR)
            continue;
        if (json_array_append_new(
                groups, json_pack("{s:s,s:I,s:I}", "group",
                                  store_reply_at_text(g, 0), "online",
                                  int_at(g, 1), "waiting", int_at(g, 2))) < 0)
            rc = KF_ENOMEM;
    }
    store_reply_free(rep);
    if (rc == 0) {
        *out = json_pack("{s:O,s:O}", "agents", agents, "groups", groups);
        rc = *out ? 0 : KF_ENOMEM;
    }
    json_decref(agents);
    json_decref(groups);
    return rc;
}
