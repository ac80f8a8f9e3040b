/* Tests of lib/route and the routing scripts (lib/lua/) against a private
 * redis-server: the three policies, groups, capacity, stickiness, the FIFO
 * queues, sessions and their timeouts, transfers, presence, the `why` of
 * every decision and the wechat_kf session events. Time is passed in
 * explicitly (now_ms), so every scenario is deterministic. After each
 * scenario the Redis state is checked against the data model's
 * invariants (load = active sessions, load <= capacity, queues hold
 * exactly the waiting users). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "config.h"
#include "lua.h"
#include "route.h"
#include "store.h"
#include "testutil.h"
#include "wx_xml.h"

#define APPID "wx62dd79ea990faa89"
#define PFX "wxkf:{" APPID "}:"
#define T0 INT64_C(1700000000000)
#define SEC INT64_C(1000)
#define HB_LONG 86400              /* a heartbeat ttl no sweep reaches */
#define RING 16
#ifndef SOAK_SEEDS
#define SOAK_SEEDS 3
#endif

static struct tu_redis srv;        /* one redis-server for the whole file */

struct fixture {
    struct config cfg;
    struct store store;
    struct route route;
    long seq;                      /* dedupe keys */
    char ring[RING][2048];         /* copies of replies, freed at once */
    int ri;
    char res[128], err[64];        /* route_session's result / refusal */
    const char *window;            /* a routed message's window; NULL =
                                      "msg" (a user's message) */
};

/* --- plumbing ------------------------------------------------------------ */

static void set(char **field, const char *v)
{
    free(*field);
    *field = strdup(v);
    assert_non_null(*field);
}

/* Copies s (malloc'd) into a ring slot and frees it, so no assertion
 * can leak it. */
static const char *keep(struct fixture *f, char *s)
{
    char *out = f->ring[f->ri++ % RING];

    snprintf(out, sizeof(f->ring[0]), "%s", s);
    free(s);
    return out;
}

static const char *cmdv(struct fixture *f, const char *const *argv)
{
    return keep(f, tu_redis_cmd(&srv, argv));
}

#define CMD(f, ...) cmdv((f), (const char *const[]){ __VA_ARGS__, NULL })
#define CMDL(f, ...) strtol(CMD(f, __VA_ARGS__), NULL, 10)

/* PFX + a + b in a ring slot. */
static const char *key(struct fixture *f, const char *a, const char *b)
{
    char *out = f->ring[f->ri++ % RING];

    snprintf(out, sizeof(f->ring[0]), PFX "%s%s", a, b);
    return out;
}

static void reinit(struct fixture *f)
{
    assert_int_equal(route_init(&f->route, &f->store, &f->cfg), 0);
}

/* Policy, default capacity and group policies, then route_init. */
static void configure(struct fixture *f, const char *policy, long cap,
                      const char *gp)
{
    set(&f->cfg.routing.policy, policy);
    f->cfg.routing.default_capacity = cap;
    set(&f->cfg.routing.group_policies, gp);
    reinit(f);
}

static int group_setup(void **st)
{
    (void)st;
    tu_redis_start(&srv);
    return 0;
}

static int group_teardown(void **st)
{
    (void)st;
    tu_redis_stop(&srv);
    return 0;
}

static int setup(void **st)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char url[64];

    assert_non_null(f);
    CMD(f, "FLUSHALL");
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", srv.port);
    config_init(&f->cfg);
    set(&f->cfg.wechat.app_id, APPID);
    set(&f->cfg.redis.url, url);
    assert_int_equal(store_init(&f->store, url, APPID, 500, 2000), 0);
    configure(f, "round_robin", 5, "");
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    struct fixture *f = *st;

    store_release(&f->store);
    config_release(&f->cfg);
    free(f);
    return 0;
}

/* An agent: weight, capacity (0 = none, i.e. the default) and groups
 * (comma list), in the hash and in the group sets. */
static void add_agent(struct fixture *f, const char *a, int weight, int cap,
                      const char *groups)
{
    char w[16], c[16], g[128], *save = NULL, *tok;

    snprintf(w, sizeof(w), "%d", weight);
    snprintf(c, sizeof(c), "%d", cap);
    CMD(f, "HSET", key(f, "agent:", a), "nick", a, "weight", w, "groups",
        groups);
    if (cap > 0)
        CMD(f, "HSET", key(f, "agent:", a), "capacity", c);
    CMD(f, "SADD", PFX "agents", a);
    snprintf(g, sizeof(g), "%s", groups);
    for (tok = strtok_r(g, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        CMD(f, "SADD", key(f, "group:", tok), a);
}

/* A status change (the status after it is op) or a heartbeat; returns
 * the sessions moved or assigned. */
static long presence(struct fixture *f, const char *a, const char *op,
                     int64_t now)
{
    char status[16];
    long moved = -1;

    assert_int_equal(route_presence(&f->route, a, op, "request", now, status,
                                    sizeof(status), &moved, NULL), 0);
    if (strcmp(op, "heartbeat") != 0)
        assert_string_equal(status, op);
    return moved;
}

/* One callback's routing call; returns the decision as logs write it. */
static const char *ingest_full(struct fixture *f, enum route_action action,
                               const char *openid, const char *group,
                               const char *kf1, const char *kf2,
                               const char *dkey, int64_t now, int *dup)
{
    struct store_field fields[] = { { KF_STR("type"), KF_STR("msg_in") },
                                    { KF_STR("openid"), kf_str_c(openid) },
                                    { KF_STR("msgtype"), KF_STR("text") } };
    struct route_ingest in;
    struct route_decision d;
    char k[32], *out = f->ring[f->ri++ % RING], text[ROUTE_DECISION_STR_MAX];
    int rc, dummy, replicated = 0;

    if (!dkey) {
        snprintf(k, sizeof(k), "m%ld", ++f->seq);
        dkey = k;
    }
    memset(&in, 0, sizeof(in));
    in.dedupe_key = kf_str_c(dkey);
    in.openid = kf_str_c(openid);
    in.action = action;
    in.group = group;
    in.base_decision = "none";
    in.window = action != ROUTE_ROUTE ? "" : f->window ? f->window : "msg";
    in.kf1 = kf_str_c(kf1);
    in.kf2 = kf_str_c(kf2);
    in.fields = fields;
    in.nfields = 3;
    in.now_ms = now;
    rc = route_ingest(&f->route, &in, &d, dup ? dup : &dummy, &replicated);
    snprintf(out, sizeof(f->ring[0]), "%s", route_decision_str(&d, text));
    assert_int_equal(rc, 0);
    assert_int_equal(replicated, 1);    /* no wait_replicas: always */
    assert_true(d.time > 0);            /* the time it was first made */
    return out;
}

/* A user's message (ROUTE_ROUTE), optionally for a group. */
static const char *msg(struct fixture *f, const char *openid,
                       const char *group, int64_t now)
{
    return ingest_full(f, ROUTE_ROUTE, openid, group, "", "", NULL, now,
                       NULL);
}

/* A wechat_kf session event. */
static const char *kf_event(struct fixture *f, enum route_action action,
                            const char *openid, const char *kf1,
                            const char *kf2, int64_t now)
{
    return ingest_full(f, action, openid, "", kf1, kf2, NULL, now, NULL);
}

static int sess_op(struct fixture *f, const char *op, const char *openid,
                   const char *by, const char *target, int64_t now)
{
    const struct refusal *why = NULL;
    int rc;

    f->res[0] = f->err[0] = '\0';
    rc = route_session(&f->route, op, kf_str_c(openid), by, target, now,
                       f->res, sizeof(f->res), &why);
    /* a refusal names its row; the row is the script's code */
    assert_true((rc < 0) == (why != NULL));
    if (why) {
        assert_int_equal(why->rc, rc);
        snprintf(f->err, sizeof(f->err), "%s", why->sub);
    }
    return rc;
}

static struct route_sweep_counts sweep(struct fixture *f, int64_t now,
                                       long hb_ttl_s)
{
    struct route_sweep_counts c;

    memset(&c, 0xff, sizeof(c));
    assert_int_equal(route_sweep(&f->route, now, hb_ttl_s, 100, &c), 0);
    return c;
}

/* --- views of the Redis state -------------------------------------------- */

static const char *sfield(struct fixture *f, const char *openid,
                          const char *field)
{
    return CMD(f, "HGET", key(f, "sess:", openid), field);
}

static long load(struct fixture *f, const char *a)
{
    return CMDL(f, "SCARD", key(f, "load:", a));
}

/* A queue, front first, as "x,y,z". */
static const char *queue(struct fixture *f, const char *g)
{
    return CMD(f, "EVAL",
               "return table.concat(redis.call('ZRANGE', KEYS[1], 0, -1),"
               " ',')", "1", key(f, "queue:", g));
}

/* The field of the n-th (1-based) event of a type (for openid, or any
 * when ""), "(none)" when there is none; n = 0 counts them. */
static const char *ev(struct fixture *f, const char *type,
                      const char *openid, int n, const char *field)
{
    char nb[16];

    snprintf(nb, sizeof(nb), "%d", n);
    return CMD(f, "EVAL",
               "local n = 0\n"
               "for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+'))"
               " do\n"
               "  local o = {}\n"
               "  for i = 1, #e[2], 2 do o[e[2][i]] = e[2][i + 1] end\n"
               "  if o.type == ARGV[1] and (ARGV[2] == '' or"
               "      o.openid == ARGV[2]) then\n"
               "    n = n + 1\n"
               "    if n == tonumber(ARGV[3]) then"
               "      return o[ARGV[4]] or '(none)' end\n"
               "  end\n"
               "end\n"
               "if ARGV[3] == '0' then return n end\n"
               "return '(none)'",
               "1", PFX "events", type, openid, nb, field);
}

static long ev_count(struct fixture *f, const char *type, const char *openid)
{
    return strtol(ev(f, type, openid, 0, "type"), NULL, 10);
}

/* A `why` (JSON text) summarised as
 * "policy=..;group=..;chosen=..;reason=..;candidates=a:load/cap,...". */
static const char *why_text(struct fixture *f, const char *json)
{
    return CMD(f, "EVAL",
               "local w = cjson.decode(ARGV[1])\n"
               "local c = {}\n"
               "for _, x in ipairs(w.candidates or {}) do\n"
               "  c[#c + 1] = x.agent .. ':' .. x.load .. '/' .. x.capacity\n"
               "end\n"
               "return 'policy=' .. tostring(w.policy) .. ';group=' ..\n"
               "  tostring(w.group) .. ';chosen=' .. tostring(w.chosen) ..\n"
               "  ';reason=' .. tostring(w.reason) .. ';candidates=' ..\n"
               "  table.concat(c, ',')",
               "0", json);
}

static const char *why(struct fixture *f, const char *openid)
{
    return why_text(f, sfield(f, openid, "why"));
}

/* The data model's invariants; "ok" or what is wrong. */
static const char *check_state(struct fixture *f)
{
    char cap[24];

    snprintf(cap, sizeof(cap), "%ld", f->cfg.routing.default_capacity);
    return CMD(f, "EVAL",
        "local P, defcap = KEYS[1], tonumber(ARGV[1])\n"
        "local active = {}\n"
        "for _, k in ipairs(redis.call('KEYS', P .. 'sess:*')) do\n"
        "  local o = string.sub(k, #P + 6)\n"
        "  local st = redis.call('HGET', k, 'state')\n"
        "  local a = redis.call('HGET', k, 'agent') or ''\n"
        "  local g = redis.call('HGET', k, 'group') or '_all'\n"
        "  if st == 'active' then\n"
        "    active[a] = (active[a] or 0) + 1\n"
        "    if redis.call('SISMEMBER', P .. 'load:' .. a, o) == 0 then\n"
        "      return o .. ' active with ' .. a .. ' but not in its load'\n"
        "    end\n"
        "    if not redis.call('ZSCORE', P .. 'deadline', o) then\n"
        "      return o .. ' active without an idle deadline'\n"
        "    end\n"
        "  elseif st == 'waiting' then\n"
        "    if not redis.call('ZSCORE', P .. 'queue:' .. g, o) then\n"
        "      return o .. ' waiting but not in queue ' .. g\n"
        "    end\n"
        "    if redis.call('ZSCORE', P .. 'deadline', o) then\n"
        "      return o .. ' waiting with an idle deadline'\n"
        "    end\n"
        "  else\n"
        "    return o .. ' in state ' .. tostring(st)\n"
        "  end\n"
        "end\n"
        "for _, a in ipairs(redis.call('SMEMBERS', P .. 'agents')) do\n"
        "  local l = redis.call('SCARD', P .. 'load:' .. a)\n"
        "  if l ~= (active[a] or 0) then\n"
        "    return 'load of ' .. a .. ' is ' .. l .. ' but it has ' ..\n"
        "           (active[a] or 0) .. ' active sessions'\n"
        "  end\n"
        "  local c = tonumber(redis.call('HGET', P .. 'agent:' .. a,\n"
        "                                'capacity') or '')\n"
        "  if not c or c < 1 then c = defcap end\n"
        "  if l > c then\n"
        "    return 'load of ' .. a .. ' is ' .. l .. ' > capacity ' .. c\n"
        "  end\n"
        "end\n"
        "for _, k in ipairs(redis.call('KEYS', P .. 'queue:*')) do\n"
        "  local g = string.sub(k, #P + 7)\n"
        "  if redis.call('TYPE', k).ok ~= 'zset' then\n"
        "    return 'queue ' .. g .. ' is not a sorted set'\n"
        "  end\n"
        "  for _, o in ipairs(redis.call('ZRANGE', k, 0, -1)) do\n"
        "    local s = redis.call('HMGET', P .. 'sess:' .. o, 'state',\n"
        "                         'group')\n"
        "    if s[1] ~= 'waiting' or (s[2] or '_all') ~= g then\n"
        "      return o .. ' in queue ' .. g .. ' but ' .. tostring(s[1]) ..\n"
        "             ' in group ' .. tostring(s[2])\n"
        "    end\n"
        "  end\n"
        "end\n"
        "return 'ok'",
        "1", PFX, cap);
}

#define assert_invariants(f) assert_string_equal(check_state(f), "ok")

/* "assigned:anna" -> index of "anna" in names (fails if not assigned). */
static int assigned_index(const char *decision, const char *const *names,
                          int n)
{
    int i;

    if (strncmp(decision, "assigned:", 9) != 0)
        fail_msg("not assigned: %s", decision);
    for (i = 0; i < n; i++)
        if (strcmp(decision + 9, names[i]) == 0)
            return i;
    fail_msg("assigned to an unknown agent: %s", decision);
    return -1;
}

static void user_name(char *out, size_t n, int i)
{
    snprintf(out, n, "oUser%03d", i);
}

/* --- classification ------------------------------------------------------ */

static void classify(struct fixture *f, enum wx_msgtype type,
                     enum wx_event event, const char *content,
                     const char *event_key, enum route_action want_action,
                     const char *want_group)
{
    struct wx_msg m;
    enum route_action action = ROUTE_KF_SWITCH;
    const char *group = NULL;

    memset(&m, 0, sizeof(m));
    m.type = type;
    m.event = event;
    m.content = kf_str_c(content);
    m.event_key = kf_str_c(event_key);
    route_classify(&f->route, &m, &action, &group);
    assert_int_equal(action, want_action);
    assert_non_null(group);
    assert_string_equal(group, want_group);
}

static void test_route_classify_sends_keywords_and_menu_keys_to_groups(
    void **st)
{
    struct fixture *f = *st;

    set(&f->cfg.routing.menu_groups, "MENU_SALES:sales,MENU_VIP:vip");
    set(&f->cfg.routing.keyword_groups, "refund:aftersales,发票:billing");
    reinit(f);
    classify(f, WX_MSG_TEXT, WX_EV_NONE, "I want a refund please", "",
             ROUTE_ROUTE, "aftersales");
    classify(f, WX_MSG_TEXT, WX_EV_NONE, "请开发票", "", ROUTE_ROUTE,
             "billing");
    classify(f, WX_MSG_TEXT, WX_EV_NONE, "hello", "", ROUTE_ROUTE, "");
    classify(f, WX_MSG_IMAGE, WX_EV_NONE, "", "", ROUTE_ROUTE, "");
    classify(f, WX_MSG_EVENT, WX_EV_CLICK, "", "MENU_VIP", ROUTE_ROUTE,
             "vip");
    classify(f, WX_MSG_EVENT, WX_EV_CLICK, "", "MENU_OTHER", ROUTE_RECORD,
             "");
}

static void test_route_classify_records_events_and_maps_kf_events(
    void **st)
{
    struct fixture *f = *st;

    classify(f, WX_MSG_EVENT, WX_EV_SUBSCRIBE, "", "", ROUTE_RECORD, "");
    classify(f, WX_MSG_EVENT, WX_EV_VIEW, "", "", ROUTE_RECORD, "");
    classify(f, WX_MSG_UNKNOWN, WX_EV_NONE, "", "", ROUTE_RECORD, "");
    classify(f, WX_MSG_EVENT, WX_EV_KF_CREATE_SESSION, "", "",
             ROUTE_KF_CREATE, "");
    classify(f, WX_MSG_EVENT, WX_EV_KF_CLOSE_SESSION, "", "", ROUTE_KF_CLOSE,
             "");
    classify(f, WX_MSG_EVENT, WX_EV_KF_SWITCH_SESSION, "", "",
             ROUTE_KF_SWITCH, "");
}

/* --- policies ------------------------------------------------------------ */

static void test_route_round_robin_keeps_counts_within_one_of_each_other(
    void **st)
{
    static const char *const names[] = { "anna", "bob", "carl" };
    struct fixture *f = *st;
    int counts[3] = { 0, 0, 0 }, i, j;

    for (i = 0; i < 3; i++) {
        add_agent(f, names[i], 1, 100, "");
        presence(f, names[i], "online", T0);
    }
    for (i = 1; i <= 20; i++) {
        char u[32];
        int lo = 1000, hi = 0;

        user_name(u, sizeof(u), i);
        counts[assigned_index(msg(f, u, "", T0 + i), names, 3)]++;
        for (j = 0; j < 3; j++) {
            lo = counts[j] < lo ? counts[j] : lo;
            hi = counts[j] > hi ? counts[j] : hi;
        }
        assert_true(hi - lo <= 1);
    }
    assert_int_equal(load(f, "anna") + load(f, "bob") + load(f, "carl"), 20);
    assert_invariants(f);
}

static void test_route_weighted_gives_each_agent_k_times_its_weight(
    void **st)
{
    static const char *const names[] = { "anna", "bob", "carl" };
    static const int w[] = { 3, 2, 1 };
    struct fixture *f = *st;
    int counts[3] = { 0, 0, 0 }, i, j;

    configure(f, "weighted", 5, "");
    for (i = 0; i < 3; i++) {
        add_agent(f, names[i], w[i], 100, "");
        presence(f, names[i], "online", T0);
    }
    for (i = 1; i <= 4 * 6; i++) {
        char u[32];

        user_name(u, sizeof(u), i);
        counts[assigned_index(msg(f, u, "", T0 + i), names, 3)]++;
        if (i % 6 == 0)
            for (j = 0; j < 3; j++)
                assert_int_equal(counts[j], (i / 6) * w[j]);
    }
    assert_invariants(f);
}

static void test_route_weighted_5_1_1_follows_nginx_smooth_sequence(
    void **st)
{
    static const char *const names[] = { "anna", "bob", "carl" };
    static const int w[] = { 5, 1, 1 };
    struct fixture *f = *st;
    char seq[32];
    int i;

    configure(f, "weighted", 5, "");
    for (i = 0; i < 3; i++) {
        add_agent(f, names[i], w[i], 100, "");
        presence(f, names[i], "online", T0);
    }
    for (i = 0; i < 14; i++) {
        char u[32];

        user_name(u, sizeof(u), i);
        seq[i] = "abc"[assigned_index(msg(f, u, "", T0 + i), names, 3)];
    }
    seq[14] = '\0';
    assert_string_equal(seq, "aabacaa" "aabacaa");
    assert_invariants(f);
}

static void test_route_least_busy_picks_the_lowest_load_over_capacity(
    void **st)
{
    struct fixture *f = *st;

    configure(f, "least_busy", 5, "");
    add_agent(f, "anna", 1, 2, "");
    add_agent(f, "bob", 1, 4, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    kf_event(f, ROUTE_KF_CREATE, "oSeed1", "anna", "", T0);
    kf_event(f, ROUTE_KF_CREATE, "oSeed2", "bob", "", T0 + 1);
    /* anna 1/2 vs bob 1/4: bob, although he was assigned last */
    assert_string_equal(msg(f, "oU1", "", T0 + 2), "assigned:bob");
    /* anna 1/2 vs bob 2/4: a tie, anna has waited longer */
    assert_string_equal(msg(f, "oU2", "", T0 + 3), "assigned:anna");
    /* anna is full */
    assert_string_equal(msg(f, "oU3", "", T0 + 4), "assigned:bob");
    assert_int_equal(load(f, "anna"), 2);
    assert_int_equal(load(f, "bob"), 3);
    assert_invariants(f);
}

static void test_route_least_busy_breaks_ties_toward_the_longest_idle(
    void **st)
{
    struct fixture *f = *st;
    char t[24];

    configure(f, "least_busy", 5, "");
    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "bob", 1, 0, "");
    add_agent(f, "carl", 1, 0, "");
    snprintf(t, sizeof(t), "%lld", (long long)(T0 - 100));
    CMD(f, "HSET", key(f, "agent:", "anna"), "last_assign_ms", t);
    snprintf(t, sizeof(t), "%lld", (long long)(T0 - 300));
    CMD(f, "HSET", key(f, "agent:", "bob"), "last_assign_ms", t);
    snprintf(t, sizeof(t), "%lld", (long long)(T0 - 200));
    CMD(f, "HSET", key(f, "agent:", "carl"), "last_assign_ms", t);
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    presence(f, "carl", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:bob");
    assert_string_equal(msg(f, "oU2", "", T0 + 2), "assigned:carl");
    assert_string_equal(msg(f, "oU3", "", T0 + 3), "assigned:anna");
    /* all at 1/5 now: bob's last assignment is the oldest */
    assert_string_equal(msg(f, "oU4", "", T0 + 4), "assigned:bob");
    assert_invariants(f);
}

/* --- groups -------------------------------------------------------------- */

static void test_route_group_users_go_only_to_group_members(void **st)
{
    struct fixture *f = *st;
    char u[32];
    int i;

    add_agent(f, "anna", 1, 0, "sales");
    add_agent(f, "bob", 1, 0, "");
    add_agent(f, "carl", 1, 0, "sales,vip");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    presence(f, "carl", "online", T0);
    for (i = 0; i < 4; i++) {
        user_name(u, sizeof(u), i);
        assert_string_equal(msg(f, u, "sales", T0 + i),
                            i % 2 ? "assigned:carl" : "assigned:anna");
        assert_string_equal(sfield(f, u, "group"), "sales");
    }
    assert_int_equal(load(f, "bob"), 0);
    assert_invariants(f);
}

static void test_route_unknown_group_falls_back_to_every_agent(void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "");
    presence(f, "anna", "online", T0);
    assert_string_equal(msg(f, "oU1", "nosuch", T0), "assigned:anna");
    assert_string_equal(sfield(f, "oU1", "group"), "_all");
    assert_invariants(f);
}

static void test_route_group_policy_overrides_the_default_inside_the_group(
    void **st)
{
    struct fixture *f = *st;

    configure(f, "round_robin", 5, "vip:least_busy");
    add_agent(f, "anna", 1, 0, "vip");
    add_agent(f, "bob", 1, 0, "vip");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    kf_event(f, ROUTE_KF_CREATE, "oSeed1", "anna", "", T0);
    kf_event(f, ROUTE_KF_CREATE, "oSeed2", "anna", "", T0);
    /* round robin would start with anna; least busy picks bob twice */
    assert_string_equal(msg(f, "oV1", "vip", T0 + 1), "assigned:bob");
    assert_string_equal(msg(f, "oV2", "vip", T0 + 2), "assigned:bob");
    assert_non_null(strstr(why(f, "oV1"), "policy=least_busy;group=vip;"));
    /* outside the group the default still rules */
    assert_string_equal(msg(f, "oU1", "", T0 + 3), "assigned:anna");
    assert_non_null(strstr(why(f, "oU1"), "policy=round_robin;group=_all;"));
    assert_invariants(f);
}

/* --- capacity ------------------------------------------------------------ */

static void test_route_default_capacity_applies_and_extra_users_queue(
    void **st)
{
    struct fixture *f = *st;

    configure(f, "round_robin", 2, "");
    add_agent(f, "anna", 1, 0, "");
    presence(f, "anna", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    assert_string_equal(msg(f, "oU2", "", T0 + 2), "assigned:anna");
    assert_string_equal(msg(f, "oU3", "", T0 + 3), "queued:1");
    assert_string_equal(sfield(f, "oU3", "state"), "waiting");
    assert_int_equal(load(f, "anna"), 2);
    assert_invariants(f);
}

static void test_route_agent_capacity_is_never_exceeded(void **st)
{
    static const char *const expect[] = {
        "assigned:anna", "assigned:bob", "assigned:bob", "assigned:bob",
        "queued:1", "queued:2", "queued:3",
    };
    struct fixture *f = *st;
    char u[32];
    int i;

    add_agent(f, "anna", 1, 1, "");
    add_agent(f, "bob", 1, 3, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    for (i = 0; i < 7; i++) {
        user_name(u, sizeof(u), i);
        assert_string_equal(msg(f, u, "", T0 + i), expect[i]);
    }
    assert_int_equal(load(f, "anna"), 1);
    assert_int_equal(load(f, "bob"), 3);
    assert_invariants(f);
}

/* --- stickiness ---------------------------------------------------------- */

static void test_route_active_user_sticks_to_the_same_agent(void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    assert_string_equal(msg(f, "oU1", "", T0 + 2), "sticky:anna");
    assert_string_equal(msg(f, "oU1", "sales", T0 + 3), "sticky:anna");
    assert_int_equal(load(f, "anna"), 1);
    assert_int_equal(load(f, "bob"), 0);
    assert_invariants(f);
}

static void test_route_sticky_holds_while_the_agent_is_paused(void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "anna", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    presence(f, "bob", "online", T0 + 2);
    presence(f, "anna", "paused", T0 + 3);
    assert_string_equal(msg(f, "oU1", "", T0 + 4), "sticky:anna");
    assert_string_equal(msg(f, "oU2", "", T0 + 5), "assigned:bob");
    assert_string_equal(msg(f, "oU3", "", T0 + 6), "assigned:bob");
    assert_invariants(f);
}

static void test_route_offline_agent_hands_its_users_to_another(void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "anna", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    presence(f, "bob", "online", T0 + 2);
    assert_int_equal(presence(f, "anna", "offline", T0 + 3), 1);
    assert_string_equal(sfield(f, "oU1", "agent"), "bob");
    assert_string_equal(msg(f, "oU1", "", T0 + 4), "sticky:bob");
    assert_int_equal(load(f, "anna"), 0);
    assert_invariants(f);
}

/* --- queues -------------------------------------------------------------- */

/* anna (capacity 1) serves oU1; oU2 and oU3 wait, in that order. */
static void anna_busy_two_waiting(struct fixture *f)
{
    add_agent(f, "anna", 1, 1, "");
    presence(f, "anna", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    assert_string_equal(msg(f, "oU2", "", T0 + 2), "queued:1");
    assert_string_equal(msg(f, "oU3", "", T0 + 3), "queued:2");
}

static void test_route_queue_positions_count_from_one_in_arrival_order(
    void **st)
{
    struct fixture *f = *st;
    json_t *v = NULL;
    long pos;

    anna_busy_two_waiting(f);
    assert_string_equal(msg(f, "oU4", "", T0 + 4), "queued:3");
    /* a waiting user who writes again learns the same position */
    assert_string_equal(msg(f, "oU3", "", T0 + 5), "queued:2");
    assert_string_equal(queue(f, "_all"), "oU2,oU3,oU4");
    assert_int_equal(route_session_view(&f->route, KF_STR("oU3"), &v), 0);
    pos = (long)json_integer_value(json_object_get(v, "position"));
    json_decref(v);
    assert_int_equal(pos, 2);
    assert_invariants(f);
}

static void test_route_closing_a_session_assigns_the_oldest_waiting_user(
    void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 1, "");
    presence(f, "anna", "online", T0);
    msg(f, "oU1", "", T0 + 1);
    assert_string_equal(msg(f, "oU2", "", T0 + 2), "queued:1");
    assert_string_equal(msg(f, "oU3", "", T0 + 3), "queued:2");
    assert_int_equal(sess_op(f, "close", "oU1", "anna", "", T0 + 4), 0);
    assert_string_equal(f->res, "closed");
    assert_string_equal(sfield(f, "oU2", "state"), "active");
    assert_string_equal(sfield(f, "oU2", "agent"), "anna");
    assert_string_equal(msg(f, "oU3", "", T0 + 5), "queued:1");
    assert_string_equal(ev(f, "assign", "oU2", 1, "reason"), "dequeued");
    assert_invariants(f);
}

static void test_route_agent_coming_online_takes_waiting_users_in_order(
    void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 1, "");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "anna", "online", T0);
    msg(f, "oU1", "", T0 + 1);
    assert_string_equal(msg(f, "oU2", "", T0 + 2), "queued:1");
    assert_string_equal(msg(f, "oU3", "", T0 + 3), "queued:2");
    assert_int_equal(presence(f, "bob", "online", T0 + 4), 2);
    assert_string_equal(sfield(f, "oU2", "agent"), "bob");
    assert_string_equal(sfield(f, "oU3", "agent"), "bob");
    assert_string_equal(ev(f, "assign", "", 2, "openid"), "oU2");
    assert_string_equal(ev(f, "assign", "", 3, "openid"), "oU3");
    assert_string_equal(queue(f, "_all"), "");
    assert_invariants(f);
}

static void test_route_unpausing_an_agent_assigns_the_waiting_users(
    void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "");
    presence(f, "anna", "paused", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "queued:1");
    assert_string_equal(msg(f, "oU2", "", T0 + 2), "queued:2");
    assert_int_equal(presence(f, "anna", "online", T0 + 3), 2);
    assert_string_equal(sfield(f, "oU1", "agent"), "anna");
    assert_string_equal(sfield(f, "oU2", "agent"), "anna");
    assert_int_equal(load(f, "anna"), 2);
    assert_invariants(f);
}

static void test_route_group_queue_drains_only_to_group_members(void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "sales");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "bob", "online", T0);
    assert_string_equal(msg(f, "oU1", "sales", T0 + 1), "queued:1");
    assert_string_equal(queue(f, "sales"), "oU1");
    presence(f, "bob", "online", T0 + 2);
    assert_string_equal(sfield(f, "oU1", "state"), "waiting");
    assert_int_equal(presence(f, "anna", "online", T0 + 3), 1);
    assert_string_equal(sfield(f, "oU1", "agent"), "anna");
    assert_invariants(f);
}

static void test_route_no_agent_online_answers_offline_and_keeps_the_user(
    void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "");
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "offline:1");
    assert_string_equal(msg(f, "oU2", "", T0 + 2), "offline:2");
    assert_string_equal(msg(f, "oU1", "", T0 + 3), "offline:1");
    assert_string_equal(sfield(f, "oU1", "state"), "waiting");
    assert_non_null(strstr(why(f, "oU1"), "reason=no_agent_online"));
    assert_int_equal(ev_count(f, "msg_in", "oU1"), 2);
    assert_string_equal(ev(f, "msg_in", "oU1", 1, "decision"), "offline:1");
    assert_int_equal(presence(f, "anna", "online", T0 + 4), 2);
    assert_string_equal(sfield(f, "oU1", "agent"), "anna");
    assert_string_equal(sfield(f, "oU2", "agent"), "anna");
    assert_invariants(f);
}

static void test_route_a_full_queue_turns_new_users_away_without_a_session(
    void **st)
{
    struct fixture *f = *st;

    f->cfg.routing.queue_max = 2;
    reinit(f);
    anna_busy_two_waiting(f);
    assert_string_equal(msg(f, "oU4", "", T0 + 4), "full:2");
    /* no session, no place in line; the message itself is recorded */
    assert_int_equal(CMDL(f, "EXISTS", key(f, "sess:", "oU4")), 0);
    assert_string_equal(queue(f, "_all"), "oU2,oU3");
    assert_string_equal(ev(f, "msg_in", "oU4", 1, "decision"), "full:2");
    assert_int_equal(ev_count(f, "queue", "oU4"), 0);
    /* who already waits keeps their place and may write again */
    assert_string_equal(msg(f, "oU3", "", T0 + 5), "queued:2");
    /* a user being served is never dropped: back to the front, over the
     * cap, when the agent leaves */
    assert_int_equal(presence(f, "anna", "offline", T0 + 6), 1);
    assert_string_equal(queue(f, "_all"), "oU1,oU2,oU3");
    /* a freed place takes the next new user again */
    assert_int_equal(presence(f, "anna", "online", T0 + 7), 1);
    assert_int_equal(sess_op(f, "close", "oU1", "anna", "", T0 + 8), 0);
    assert_string_equal(queue(f, "_all"), "oU3");
    assert_string_equal(msg(f, "oU4", "", T0 + 9), "queued:2");
    assert_invariants(f);
}

/* Up to this release a queue was a LIST; the first script to touch it
 * makes it a sorted set in the same order. */
static void test_route_a_list_queue_from_an_earlier_release_keeps_its_order(
    void **st)
{
    struct fixture *f = *st;
    static const char *const users[] = { "oOld1", "oOld2", "oOld3" };
    json_t *q = NULL;
    size_t i;

    add_agent(f, "anna", 1, 1, "");
    presence(f, "anna", "online", T0);
    msg(f, "oU1", "", T0 + 1);
    for (i = 0; i < 3; i++) {
        CMD(f, "HSET", key(f, "sess:", users[i]), "id", "9", "state",
            "waiting", "agent", "", "group", "_all", "queued_ms", "1");
        CMD(f, "RPUSH", PFX "queue:_all", users[i]);
    }
    CMD(f, "SADD", PFX "queues", "_all");
    /* a read converts it as well as a callback would */
    assert_int_equal(route_queue(&f->route, 10, &q), 0);
    json_decref(q);
    assert_string_equal(CMD(f, "TYPE", PFX "queue:_all"), "zset");
    assert_string_equal(queue(f, "_all"), "oOld1,oOld2,oOld3");
    assert_string_equal(msg(f, "oOld2", "", T0 + 2), "queued:2");
    assert_string_equal(msg(f, "oU5", "", T0 + 3), "queued:4");
    assert_int_equal(sess_op(f, "close", "oU1", "anna", "", T0 + 4), 0);
    assert_string_equal(sfield(f, "oOld1", "agent"), "anna");
    assert_string_equal(queue(f, "_all"), "oOld2,oOld3,oU5");
    assert_invariants(f);
}

static void test_route_retry_gets_the_first_decision_and_records_once(
    void **st)
{
    struct fixture *f = *st;
    int dup = -1;

    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    assert_string_equal(ingest_full(f, ROUTE_ROUTE, "oU1", "", "", "", "k1",
                                    T0 + 1, &dup), "assigned:anna");
    assert_int_equal(dup, 0);
    assert_string_equal(ingest_full(f, ROUTE_ROUTE, "oU1", "", "", "", "k1",
                                    T0 + 2, &dup), "assigned:anna");
    assert_int_equal(dup, 1);
    assert_int_equal(ev_count(f, "msg_in", "oU1"), 1);
    assert_int_equal(load(f, "anna"), 1);
    assert_invariants(f);
}

/* The decision comes typed out of route_ingest: the kind, the agent or
 * the position, and the time of the first delivery (a retry's). */
static void test_route_ingest_returns_a_typed_decision(void **st)
{
    struct fixture *f = *st;
    struct store_field fields[] = { { KF_STR("type"), KF_STR("msg_in") } };
    struct route_ingest in;
    struct route_decision d;
    int dup = -1, replicated = 0;

    memset(&in, 0, sizeof(in));
    in.openid = KF_STR("oU1");
    in.action = ROUTE_ROUTE;
    in.base_decision = "none";
    in.window = "msg";
    in.fields = fields;
    in.nfields = 1;
    in.dedupe_key = KF_STR("t1");
    in.now_ms = T0 + 1 * SEC;
    assert_int_equal(route_ingest(&f->route, &in, &d, &dup, &replicated), 0);
    assert_int_equal(d.kind, ROUTE_OFFLINE);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.agent, "");
    assert_int_equal(d.time, (T0 + 1 * SEC) / 1000);
    assert_int_equal(dup, 0);
    add_agent(f, "anna", 1, 0, "");
    presence(f, "anna", "online", T0 + 2 * SEC);
    in.openid = KF_STR("oU2");
    in.dedupe_key = KF_STR("t2");
    in.now_ms = T0 + 3 * SEC;
    assert_int_equal(route_ingest(&f->route, &in, &d, &dup, &replicated), 0);
    assert_int_equal(d.kind, ROUTE_ASSIGNED);
    assert_string_equal(d.agent, "anna");
    assert_int_equal(d.n, 0);
    /* the retry, later: the first decision and its time */
    in.now_ms = T0 + 9 * SEC;
    assert_int_equal(route_ingest(&f->route, &in, &d, &dup, &replicated), 0);
    assert_int_equal(dup, 1);
    assert_int_equal(d.kind, ROUTE_ASSIGNED);
    assert_string_equal(d.agent, "anna");
    assert_int_equal(d.time, (T0 + 3 * SEC) / 1000);
    /* the sender's next message stays with anna */
    in.dedupe_key = KF_STR("t3");
    assert_int_equal(route_ingest(&f->route, &in, &d, &dup, &replicated), 0);
    assert_int_equal(d.kind, ROUTE_STICKY);
    assert_string_equal(route_kind_name(d.kind), "sticky");
    /* a key with a NUL byte never names a Redis key */
    in.dedupe_key = (struct kf_str){ "t\0x", 3 };
    assert_int_equal(route_ingest(&f->route, &in, &d, &dup, &replicated),
                     KF_EINVAL);
    assert_int_equal(d.kind, ROUTE_UNDECIDED);
}

/* lib/lua/README.md: ARGV[1] is the op of every script, which checks it:
 * an unknown one is refused (an error, or {'err', ...}) and writes
 * nothing. */
static void test_route_every_script_refuses_an_unknown_op(void **st)
{
    struct fixture *f = *st;
    const char *const src[] = { lua_ingest, lua_presence, lua_session,
                                lua_sweep, lua_read, lua_outbound, lua_auth,
                                lua_wx_token, lua_wx_limit };
    const char *args[] = { "no_such_op", "1700000000000", "", "x", "", "",
                           "", "", "", "", "", "", "" };
    size_t i;

    for (i = 0; i < sizeof(src) / sizeof(src[0]); i++) {
        struct store_script sc;
        struct store_reply *r = NULL;
        int rc;

        store_script_init(&sc, src[i]);
        rc = store_run(&f->store, &sc, 0, NULL, 13, args, NULL, &r);
        if (rc == 0 && !store_reply_at_is(r, 0, "err"))
            fail_msg("script %zu ran op no_such_op", i);
        if (rc != 0 && rc != KF_EBACKEND)
            fail_msg("script %zu: %s", i, kf_strerror(rc));
        store_reply_free(r);
        assert_int_equal(CMDL(f, "DBSIZE"), 0);
    }
}

/* The routing prelude goes in front of the routing scripts only: the
 * token, limit and auth scripts stand alone. */
static void test_route_only_routing_scripts_carry_the_prelude(void **st)
{
    const char *const routing[] = { lua_ingest, lua_presence, lua_session,
                                    lua_sweep, lua_read, lua_outbound };
    const char *const alone[] = { lua_auth, lua_wx_token, lua_wx_limit };
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(routing) / sizeof(routing[0]); i++)
        assert_non_null(strstr(routing[i], "local function parse_cfg("));
    for (i = 0; i < sizeof(alone) / sizeof(alone[0]); i++) {
        assert_null(strstr(alone[i], "local function parse_cfg("));
        assert_null(strstr(alone[i], "-- prelude:"));
    }
}

/* --- sessions ------------------------------------------------------------ */

static void test_route_session_goes_waiting_active_closed_with_a_reason(
    void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "");
    msg(f, "oU1", "", T0 + 1);
    assert_string_equal(sfield(f, "oU1", "state"), "waiting");
    presence(f, "anna", "online", T0 + 2);
    assert_string_equal(sfield(f, "oU1", "state"), "active");
    assert_int_equal(sess_op(f, "close", "oU1", "anna", "", T0 + 3), 0);
    assert_string_equal(CMD(f, "EXISTS", key(f, "sess:", "oU1")), "0");
    assert_string_equal(ev(f, "close", "oU1", 1, "reason"), "agent");
    assert_string_equal(ev(f, "close", "oU1", 1, "by"), "anna");
    assert_string_equal(ev(f, "close", "oU1", 1, "agent"), "anna");
    assert_int_equal(load(f, "anna"), 0);
    /* the next message opens a new session */
    assert_string_equal(msg(f, "oU1", "", T0 + 4), "assigned:anna");
    assert_string_not_equal(ev(f, "close", "oU1", 1, "session"),
                            sfield(f, "oU1", "id"));
    assert_invariants(f);
}

static void test_route_admin_close_is_recorded_with_reason_admin(void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "");
    presence(f, "anna", "online", T0);
    msg(f, "oU1", "", T0 + 1);
    assert_int_equal(sess_op(f, "close", "oU1", "", "", T0 + 2), 0);
    assert_string_equal(ev(f, "close", "oU1", 1, "reason"), "admin");
    assert_int_equal(load(f, "anna"), 0);
    assert_invariants(f);
}

static void test_route_each_message_pushes_the_idle_deadline(void **st)
{
    struct fixture *f = *st;
    struct route_sweep_counts c;

    f->cfg.session.idle_timeout = 60;
    reinit(f);
    add_agent(f, "anna", 1, 0, "");
    presence(f, "anna", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0), "assigned:anna");
    assert_string_equal(msg(f, "oU1", "", T0 + 30 * SEC), "sticky:anna");
    c = sweep(f, T0 + 61 * SEC, HB_LONG);
    assert_int_equal(c.sessions_expired, 0);
    assert_string_equal(sfield(f, "oU1", "state"), "active");
    c = sweep(f, T0 + 90 * SEC, HB_LONG);
    assert_int_equal(c.sessions_expired, 1);
    assert_string_equal(CMD(f, "EXISTS", key(f, "sess:", "oU1")), "0");
    assert_string_equal(ev(f, "close", "oU1", 1, "reason"), "idle_timeout");
    assert_int_equal(load(f, "anna"), 0);
    assert_string_equal(CMD(f, "ZCARD", PFX "deadline"), "0");
    assert_invariants(f);
}

static void test_route_idle_expiry_frees_the_slot_for_the_next_user(
    void **st)
{
    struct fixture *f = *st;
    struct route_sweep_counts c;

    f->cfg.session.idle_timeout = 60;
    reinit(f);
    add_agent(f, "anna", 1, 1, "");
    presence(f, "anna", "online", T0);
    msg(f, "oU1", "", T0);
    assert_string_equal(msg(f, "oU2", "", T0 + 1), "queued:1");
    c = sweep(f, T0 + 60 * SEC, HB_LONG);
    assert_int_equal(c.sessions_expired, 1);
    assert_string_equal(sfield(f, "oU2", "state"), "active");
    assert_string_equal(sfield(f, "oU2", "agent"), "anna");
    assert_int_equal(load(f, "anna"), 1);
    assert_invariants(f);
}

static void test_route_views_list_an_agents_sessions_and_one_session(
    void **st)
{
    struct fixture *f = *st;
    json_t *a = NULL, *s = NULL;
    char first[32] = "", agent[32] = "", policy[32] = "";
    size_t n;
    int answered = -1;

    add_agent(f, "anna", 1, 0, "");
    presence(f, "anna", "online", T0);
    msg(f, "oU2", "", T0 + 1);
    msg(f, "oU1", "", T0 + 2);
    assert_int_equal(route_agent_sessions(&f->route, "anna", &a), 0);
    n = json_array_size(a);
    snprintf(first, sizeof(first), "%s",
             json_string_value(json_object_get(json_array_get(a, 0),
                                               "openid")));
    json_decref(a);
    assert_int_equal(n, 2);
    assert_string_equal(first, "oU1");
    assert_int_equal(route_session_view(&f->route, KF_STR("oU1"), &s), 0);
    snprintf(agent, sizeof(agent), "%s",
             json_string_value(json_object_get(s, "agent")));
    snprintf(policy, sizeof(policy), "%s",
             json_string_value(json_object_get(
                 json_object_get(s, "why"), "policy")));
    answered = json_is_false(json_object_get(s, "answered"));
    json_decref(s);
    assert_string_equal(agent, "anna");
    assert_string_equal(policy, "round_robin");
    assert_int_equal(answered, 1);
    assert_int_equal(route_session_view(&f->route, KF_STR("oNobody"), &s),
                     KF_ENOTFOUND);
    assert_null(s);
    assert_invariants(f);
}

/* --- transfer ------------------------------------------------------------ */

static void test_route_transfer_to_an_agent_moves_the_load_and_emits(
    void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    assert_int_equal(sess_op(f, "transfer_agent", "oU1", "anna", "bob",
                             T0 + 2), 0);
    assert_string_equal(f->res, "assigned:bob");
    assert_int_equal(load(f, "anna"), 0);
    assert_int_equal(load(f, "bob"), 1);
    assert_string_equal(sfield(f, "oU1", "agent"), "bob");
    assert_string_equal(ev(f, "transfer", "oU1", 1, "agent"), "bob");
    assert_string_equal(why(f, "oU1"),
                        "policy=transfer;group=_all;chosen=bob;"
                        "reason=transfer;candidates=bob:0/5");
    assert_string_equal(msg(f, "oU1", "", T0 + 3), "sticky:bob");
    assert_invariants(f);
}

/* A transfer's handover (lib/handover): the giver, its nickname, the
 * note and the time stay on the session and name themselves in the
 * event; through a busy group's queue they wait with the user (the queue
 * event and the assignment out of it carry them, with the wait); a
 * re-route that is no transfer takes them off. */
static int transfer_with_note(struct fixture *f, const char *by,
                              const char *to_agent, const char *to_group,
                              const char *note, int64_t now)
{
    const struct refusal *why = NULL;

    return route_transfer(&f->route, kf_str_c("oU1"), by, to_agent,
                          to_group, note, now, f->res, sizeof(f->res), &why);
}

static void test_route_transfer_note_travels_and_a_reroute_drops_it(
    void **st)
{
    struct fixture *f = *st;
    json_t *v = NULL;

    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "bob", 1, 0, "");
    add_agent(f, "carl", 1, 0, "sales");
    presence(f, "anna", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    assert_string_equal(sfield(f, "oU1", "handed_by"), "(nil)");
    presence(f, "bob", "online", T0 + 2);
    assert_int_equal(transfer_with_note(f, "anna", "bob", NULL, "要退款",
                                        T0 + 3), 0);
    assert_string_equal(f->res, "assigned:bob");
    assert_string_equal(sfield(f, "oU1", "handed_by"), "anna");
    assert_string_equal(sfield(f, "oU1", "handed_nick"), "anna");
    assert_string_equal(sfield(f, "oU1", "handed_note"), "要退款");
    assert_string_equal(sfield(f, "oU1", "handing"), "(nil)");
    assert_string_equal(ev(f, "transfer", "oU1", 1, "by"), "anna");
    assert_string_equal(ev(f, "transfer", "oU1", 1, "note"), "要退款");
    assert_int_equal(route_session_view(&f->route, kf_str_c("oU1"), &v), 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(v, "handed"), "note")), "要退款");
    assert_null(json_object_get(v, "handed_by"));
    json_decref(v);

    /* bob leaves: the user re-routed to anna comes with no handover */
    assert_int_equal(presence(f, "bob", "offline", T0 + 4), 1);
    assert_string_equal(sfield(f, "oU1", "agent"), "anna");
    assert_string_equal(sfield(f, "oU1", "handed_by"), "(nil)");
    assert_string_equal(sfield(f, "oU1", "handed_note"), "(nil)");
    assert_string_equal(ev(f, "reassign", "oU1", 1, "note"), "(none)");

    /* to a group whose only member is paused: the note waits in the
     * queue and comes with the user, who waited 5 s */
    presence(f, "carl", "paused", T0 + 5);
    assert_int_equal(transfer_with_note(f, "anna", NULL, "sales", "VIP",
                                        T0 + 6), 0);
    assert_string_equal(f->res, "queued:1");
    assert_string_equal(ev(f, "queue", "oU1", 1, "note"), "VIP");
    assert_string_equal(ev(f, "queue", "oU1", 1, "by"), "anna");
    presence(f, "carl", "online", T0 + 5006);
    assert_string_equal(sfield(f, "oU1", "agent"), "carl");
    assert_string_equal(sfield(f, "oU1", "handed_note"), "VIP");
    assert_string_equal(sfield(f, "oU1", "waited_ms"), "5000");
    assert_string_equal(sfield(f, "oU1", "handing"), "(nil)");
    assert_string_equal(ev(f, "assign", "oU1", 2, "reason"), "dequeued");
    assert_string_equal(ev(f, "assign", "oU1", 2, "note"), "VIP");
    assert_string_equal(ev(f, "assign", "oU1", 2, "waited_ms"), "5000");
    assert_invariants(f);
}

static void test_route_transfer_frees_a_slot_the_queue_takes_at_once(
    void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 1, "");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "paused", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    assert_string_equal(msg(f, "oU2", "", T0 + 2), "queued:1");
    /* a paused agent may still be handed a user explicitly */
    assert_int_equal(sess_op(f, "transfer_agent", "oU1", "", "bob", T0 + 3),
                     0);
    assert_string_equal(sfield(f, "oU1", "agent"), "bob");
    assert_string_equal(sfield(f, "oU2", "agent"), "anna");
    assert_string_equal(queue(f, "_all"), "");
    assert_invariants(f);
}

static void test_route_transfer_to_a_group_routes_inside_that_group(
    void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "carl", 1, 0, "sales");
    presence(f, "anna", "online", T0);
    presence(f, "carl", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    assert_int_equal(sess_op(f, "transfer_group", "oU1", "anna", "sales",
                             T0 + 2), 0);
    assert_string_equal(f->res, "assigned:carl");
    assert_string_equal(sfield(f, "oU1", "agent"), "carl");
    assert_string_equal(sfield(f, "oU1", "group"), "sales");
    assert_string_equal(ev(f, "reassign", "oU1", 1, "reason"), "transfer");
    assert_non_null(strstr(why(f, "oU1"), "reason=transfer"));
    assert_int_equal(load(f, "anna"), 0);
    assert_invariants(f);
}

static void test_route_transfer_to_a_group_reply_matches_the_session(
    void **st)
{
    struct fixture *f = *st;

    /* anna is the only member of sales: moving her user to sales leaves
     * nobody else to take him. */
    add_agent(f, "anna", 1, 0, "sales");
    presence(f, "anna", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    assert_int_equal(sess_op(f, "transfer_group", "oU1", "anna", "sales",
                             T0 + 2), 0);
    if (strncmp(f->res, "queued:", 7) == 0) {
        if (strcmp(sfield(f, "oU1", "state"), "waiting") != 0)
            fail_msg("reply %s but the session is %s with %s (%s)", f->res,
                     sfield(f, "oU1", "state"), sfield(f, "oU1", "agent"),
                     ev(f, "assign", "oU1", 2, "reason"));
        assert_string_equal(queue(f, "sales"), "oU1");
    } else {
        assert_string_equal(f->res, "assigned:anna");
        assert_string_equal(sfield(f, "oU1", "agent"), "anna");
    }
    assert_invariants(f);
}

static void test_route_refusals_name_their_reason_and_change_nothing(
    void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "sales");
    add_agent(f, "bob", 1, 1, "");
    add_agent(f, "carl", 1, 0, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    kf_event(f, ROUTE_KF_CREATE, "oU1", "anna", "", T0 + 1);
    kf_event(f, ROUTE_KF_CREATE, "oU2", "bob", "", T0 + 2);

    assert_int_equal(sess_op(f, "close", "oNobody", "anna", "", T0 + 3),
                     KF_ENOTFOUND);
    assert_string_equal(f->err, "no_session");
    assert_int_equal(sess_op(f, "close", "oU1", "bob", "", T0 + 3),
                     KF_EINVAL);
    assert_string_equal(f->err, "not_yours");
    assert_int_equal(sess_op(f, "transfer_agent", "oU1", "bob", "carl",
                             T0 + 3), KF_EINVAL);
    assert_string_equal(f->err, "not_yours");
    assert_int_equal(sess_op(f, "transfer_agent", "oU1", "anna", "dave",
                             T0 + 3), KF_EINVAL);
    assert_string_equal(f->err, "unknown_agent");
    assert_int_equal(sess_op(f, "transfer_agent", "oU1", "anna", "anna",
                             T0 + 3), KF_EINVAL);
    assert_string_equal(f->err, "same_agent");
    assert_int_equal(sess_op(f, "transfer_agent", "oU1", "anna", "carl",
                             T0 + 3), KF_EINVAL);
    assert_string_equal(f->err, "agent_offline");
    assert_int_equal(sess_op(f, "transfer_agent", "oU1", "anna", "bob",
                             T0 + 3), KF_EINVAL);
    assert_string_equal(f->err, "agent_full");
    assert_int_equal(sess_op(f, "transfer_group", "oU1", "anna", "nosuch",
                             T0 + 3), KF_EINVAL);
    assert_string_equal(f->err, "unknown_group");
    assert_int_equal(sess_op(f, "reopen", "oU1", "anna", "", T0 + 3),
                     KF_EINVAL);
    assert_string_equal(f->err, "bad_op");

    assert_string_equal(sfield(f, "oU1", "agent"), "anna");
    assert_string_equal(sfield(f, "oU1", "state"), "active");
    assert_int_equal(load(f, "anna"), 1);
    assert_int_equal(load(f, "bob"), 1);
    assert_int_equal(ev_count(f, "transfer", ""), 0);
    assert_int_equal(ev_count(f, "close", ""), 0);
    assert_invariants(f);
}

/* route_reopen: its refusal's row (scope REFUSAL_REOPEN) or the result. */
static int reopen(struct fixture *f, const char *openid, const char *agent,
                  int64_t now, struct route_reopen *out)
{
    const struct refusal *why = NULL;
    int rc;

    f->err[0] = '\0';
    rc = route_reopen(&f->route, kf_str_c(openid), agent, agent, 41, now,
                      out, &why);
    assert_true((rc < 0) == (why != NULL));
    if (why) {
        assert_int_equal(why->rc, rc);
        snprintf(f->err, sizeof(f->err), "%s", why->sub);
    }
    return rc;
}

static void test_route_reopen_gives_a_past_user_back_to_its_agent(void **st)
{
    struct fixture *f = *st;
    struct route_reopen r;

    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "anna", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    assert_int_equal(sess_op(f, "close", "oU1", "anna", "", T0 + 2), 0);
    presence(f, "bob", "online", T0 + 3);

    /* the window: open for 48 h after the message, 5 sends */
    assert_int_equal(route_reopen_peek(&f->route, kf_str_c("oU1"), T0 + 4,
                                       &r), 0);
    assert_string_equal(r.state, "");
    assert_int_equal(r.window_end_ms, T0 + 1 + 48 * 3600 * INT64_C(1000));
    assert_int_equal(r.left, 5);

    assert_int_equal(reopen(f, "oU1", "anna", T0 + 5, &r), 0);
    assert_false(r.already);
    assert_string_equal(r.agent, "anna");
    assert_int_equal(r.left, 5);
    assert_string_equal(sfield(f, "oU1", "state"), "active");
    assert_int_equal(strtoll(sfield(f, "oU1", "id"), NULL, 10),
                     r.session_id);
    assert_int_equal(load(f, "anna"), 1);
    assert_string_equal(why(f, "oU1"), "policy=reopen;group=_all;"
                        "chosen=anna;reason=reopen;candidates=anna:0/5");
    assert_string_equal(CMD(f, "EVAL", "return tostring(cjson.decode("
                            "ARGV[1]).reopens)", "0",
                            sfield(f, "oU1", "why")), "41");
    assert_string_equal(ev(f, "assign", "oU1", 2, "reason"), "reopen");
    /* the user's next message stays with anna, bob online or not */
    assert_string_equal(msg(f, "oU1", "", T0 + 6), "sticky:anna");

    /* again by anna: that session, nothing changes; by bob: anna has it */
    assert_int_equal(reopen(f, "oU1", "anna", T0 + 7, &r), 0);
    assert_true(r.already);
    assert_int_equal(ev_count(f, "assign", "oU1"), 2);
    assert_int_equal(reopen(f, "oU1", "bob", T0 + 7, &r), KF_EBUSY);
    assert_string_equal(f->err, "held");
    assert_string_equal(r.agent, "anna");
    assert_int_equal(route_reopen_peek(&f->route, kf_str_c("oU1"), T0 + 8,
                                       &r), 0);
    assert_string_equal(r.state, "active");
    assert_string_equal(r.agent, "anna");
    assert_int_equal(load(f, "bob"), 0);
    assert_invariants(f);
}

static void test_route_reopen_takes_a_waiting_user_out_of_the_queue(
    void **st)
{
    struct fixture *f = *st;
    struct route_reopen r;

    add_agent(f, "anna", 1, 0, "");
    presence(f, "anna", "paused", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "queued:1");
    assert_string_equal(msg(f, "oU2", "", T0 + 2), "queued:2");
    /* paused, with a free slot: may reopen */
    assert_int_equal(reopen(f, "oU1", "anna", T0 + 3, &r), 0);
    assert_string_equal(queue(f, "_all"), "oU2");
    assert_string_equal(sfield(f, "oU1", "agent"), "anna");
    assert_int_equal(CMDL(f, "ZSCORE", PFX "qdeadline", "oU1"), 0);
    assert_int_equal(load(f, "anna"), 1);
    assert_invariants(f);
}

static void test_route_reopen_refusals_change_nothing(void **st)
{
    struct fixture *f = *st;
    struct route_reopen r;
    const int64_t h = 3600 * INT64_C(1000);

    add_agent(f, "anna", 1, 1, "");
    add_agent(f, "carl", 1, 0, "");
    presence(f, "anna", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    assert_int_equal(sess_op(f, "close", "oU1", "anna", "", T0 + 2), 0);

    assert_int_equal(reopen(f, "oU1", "dave", T0 + 3, &r), KF_EINVAL);
    assert_string_equal(f->err, "unknown_agent");
    assert_int_equal(reopen(f, "oU1", "carl", T0 + 3, &r), KF_EINVAL);
    assert_string_equal(f->err, "agent_offline");
    /* the window closed 48 h after the message; a user never seen */
    assert_int_equal(reopen(f, "oU1", "anna", T0 + 1 + 48 * h + 1, &r),
                     KF_EINVAL);
    assert_string_equal(f->err, "outside_48h_window");
    assert_int_equal(reopen(f, "oNew", "anna", T0 + 3, &r), KF_EINVAL);
    assert_string_equal(f->err, "outside_48h_window");
    CMD(f, "HSET", key(f, "win:", "oU1"), "sent", "5");
    assert_int_equal(reopen(f, "oU1", "anna", T0 + 3, &r), KF_EINVAL);
    assert_string_equal(f->err, "quota_exhausted");
    CMD(f, "HSET", key(f, "win:", "oU1"), "sent", "0");
    /* capacity 1, one user of its own */
    assert_string_equal(msg(f, "oU2", "", T0 + 4), "assigned:anna");
    assert_int_equal(reopen(f, "oU1", "anna", T0 + 5, &r), KF_EINVAL);
    assert_string_equal(f->err, "agent_full");

    assert_string_equal(sfield(f, "oU1", "state"), "(nil)");
    assert_int_equal(ev_count(f, "assign", "oU1"), 1);
    assert_int_equal(load(f, "anna"), 1);
    assert_invariants(f);
}

/* --- timeouts ------------------------------------------------------------ */

static void test_route_queue_timeout_removes_the_user_asking_for_a_message(
    void **st)
{
    struct fixture *f = *st;
    struct route_sweep_counts c;

    f->cfg.routing.queue_timeout = 60;
    reinit(f);
    add_agent(f, "anna", 1, 1, "");
    presence(f, "anna", "online", T0);
    msg(f, "oU1", "", T0);
    assert_string_equal(msg(f, "oU2", "", T0 + 1), "queued:1");
    c = sweep(f, T0 + 60 * SEC, HB_LONG);
    assert_int_equal(c.queue_timeouts, 0);
    c = sweep(f, T0 + 1 + 60 * SEC, HB_LONG);
    assert_int_equal(c.queue_timeouts, 1);
    assert_string_equal(CMD(f, "EXISTS", key(f, "sess:", "oU2")), "0");
    assert_string_equal(queue(f, "_all"), "");
    assert_string_equal(ev(f, "close", "oU2", 1, "reason"), "queue_timeout");
    assert_string_equal(ev(f, "close", "oU2", 1, "notify"), "leave_message");
    assert_string_equal(sfield(f, "oU1", "state"), "active");
    assert_invariants(f);
}

static void test_route_first_reply_timeout_moves_the_user_to_another_agent(
    void **st)
{
    struct fixture *f = *st;
    struct route_sweep_counts c;

    f->cfg.routing.first_reply_timeout = 30;
    reinit(f);
    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0), "assigned:anna");
    c = sweep(f, T0 + 29 * SEC, HB_LONG);
    assert_int_equal(c.first_reply_reroutes, 0);
    c = sweep(f, T0 + 30 * SEC, HB_LONG);
    assert_int_equal(c.first_reply_reroutes, 1);
    assert_string_equal(sfield(f, "oU1", "agent"), "bob");
    assert_int_equal(load(f, "anna"), 0);
    assert_string_equal(ev(f, "reassign", "oU1", 1, "reason"),
                        "first_reply_timeout");
    assert_string_equal(why(f, "oU1"),
                        "policy=round_robin;group=_all;chosen=bob;"
                        "reason=first_reply_timeout;candidates=bob:0/5");
    assert_invariants(f);
}

static void test_route_answered_stops_the_first_reply_timeout(void **st)
{
    struct fixture *f = *st;
    struct route_sweep_counts c;

    f->cfg.routing.first_reply_timeout = 30;
    reinit(f);
    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0), "assigned:anna");
    assert_int_equal(sess_op(f, "answered", "oU1", "anna", "", T0 + 10 * SEC),
                     0);
    assert_string_equal(sfield(f, "oU1", "answered"), "1");
    c = sweep(f, T0 + 60 * SEC, HB_LONG);
    assert_int_equal(c.first_reply_reroutes, 0);
    assert_string_equal(sfield(f, "oU1", "agent"), "anna");
    assert_int_equal(ev_count(f, "reassign", "oU1"), 0);
    assert_invariants(f);
}

static void test_route_first_reply_timeout_with_nobody_else_keeps_the_user(
    void **st)
{
    struct fixture *f = *st;
    struct route_sweep_counts c;

    f->cfg.routing.first_reply_timeout = 30;
    reinit(f);
    add_agent(f, "anna", 1, 0, "");
    presence(f, "anna", "online", T0);
    msg(f, "oU1", "", T0);
    c = sweep(f, T0 + 30 * SEC, HB_LONG);
    assert_int_equal(c.first_reply_reroutes, 0);
    assert_string_equal(sfield(f, "oU1", "agent"), "anna");
    assert_string_equal(ev(f, "first_reply_late", "oU1", 1, "reason"),
                        "no_other_agent");
    assert_invariants(f);
}

/* --- presence ------------------------------------------------------------ */

static void test_route_presence_refuses_unknown_agents_and_bad_ops(
    void **st)
{
    struct fixture *f = *st;
    const struct refusal *why = NULL;
    char status[16];
    long moved = 0;

    add_agent(f, "anna", 1, 0, "");
    assert_int_equal(route_presence(&f->route, "dave", "online", "request",
                                    T0, status, sizeof(status), &moved,
                                    &why),
                     KF_ENOTFOUND);
    assert_ptr_equal(why, refusal_get(REFUSAL_AGENT_GONE));
    assert_int_equal(route_presence(&f->route, "anna", "away", "request",
                                    T0, status, sizeof(status), &moved,
                                    &why),
                     KF_EINVAL);
    assert_ptr_equal(why, refusal_get(REFUSAL_BAD_STATUS));
    assert_string_equal(CMD(f, "HGET", key(f, "agent:", "anna"), "status"),
                        "(nil)");
    assert_invariants(f);
}

static void test_route_heartbeat_keeps_an_agent_online_until_the_ttl(
    void **st)
{
    struct fixture *f = *st;
    struct route_sweep_counts c;

    add_agent(f, "anna", 1, 0, "");
    presence(f, "anna", "online", T0);
    presence(f, "anna", "heartbeat", T0 + 20 * SEC);
    c = sweep(f, T0 + 45 * SEC, 30);
    assert_int_equal(c.agents_lost, 0);
    assert_string_equal(CMD(f, "HGET", key(f, "agent:", "anna"), "status"),
                        "online");
    c = sweep(f, T0 + 51 * SEC, 30);
    assert_int_equal(c.agents_lost, 1);
    assert_string_equal(CMD(f, "HGET", key(f, "agent:", "anna"), "status"),
                        "offline");
    assert_string_equal(CMD(f, "SISMEMBER", PFX "online", "anna"), "0");
    assert_string_equal(ev(f, "presence", "", 2, "reason"), "heartbeat_lost");
    assert_invariants(f);
}

static void test_route_paused_agent_takes_no_new_users_but_keeps_alive(
    void **st)
{
    struct fixture *f = *st;
    struct route_sweep_counts c;

    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "anna", "paused", T0);
    presence(f, "bob", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:bob");
    assert_string_equal(msg(f, "oU2", "", T0 + 2), "assigned:bob");
    presence(f, "anna", "heartbeat", T0 + 25 * SEC);
    presence(f, "bob", "heartbeat", T0 + 25 * SEC);
    c = sweep(f, T0 + 40 * SEC, 30);
    assert_int_equal(c.agents_lost, 0);
    assert_string_equal(CMD(f, "HGET", key(f, "agent:", "anna"), "status"),
                        "paused");
    assert_invariants(f);
}

static void test_route_lost_agents_users_are_rerouted_to_free_agents(
    void **st)
{
    struct fixture *f = *st;
    struct route_sweep_counts c;

    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    kf_event(f, ROUTE_KF_CREATE, "oU1", "anna", "", T0 + 1);
    kf_event(f, ROUTE_KF_CREATE, "oU2", "anna", "", T0 + 2);
    presence(f, "bob", "heartbeat", T0 + 40 * SEC);
    c = sweep(f, T0 + 45 * SEC, 30);
    assert_int_equal(c.agents_lost, 1);
    assert_string_equal(sfield(f, "oU1", "agent"), "bob");
    assert_string_equal(sfield(f, "oU2", "agent"), "bob");
    assert_int_equal(load(f, "anna"), 0);
    assert_int_equal(load(f, "bob"), 2);
    assert_string_equal(ev(f, "reassign", "oU1", 1, "reason"),
                        "heartbeat_lost");
    assert_non_null(strstr(why(f, "oU2"), "reason=heartbeat_lost"));
    assert_invariants(f);
}

static void test_route_lost_agents_users_queue_ahead_of_waiting_users(
    void **st)
{
    struct fixture *f = *st;
    const char *q;

    add_agent(f, "anna", 1, 2, "");
    add_agent(f, "bob", 1, 1, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    kf_event(f, ROUTE_KF_CREATE, "oU1", "anna", "", T0 + 1);
    kf_event(f, ROUTE_KF_CREATE, "oU2", "anna", "", T0 + 2);
    kf_event(f, ROUTE_KF_CREATE, "oU3", "bob", "", T0 + 3);
    assert_string_equal(msg(f, "oW1", "", T0 + 4), "queued:1");
    presence(f, "bob", "heartbeat", T0 + 40 * SEC);
    assert_int_equal(sweep(f, T0 + 45 * SEC, 30).agents_lost, 1);
    q = queue(f, "_all");
    assert_true(strcmp(q, "oU1,oU2,oW1") == 0 ||
                strcmp(q, "oU2,oU1,oW1") == 0);
    assert_string_equal(sfield(f, "oU1", "state"), "waiting");
    assert_string_equal(msg(f, "oW1", "", T0 + 46 * SEC), "queued:3");
    assert_int_equal(load(f, "anna"), 0);
    assert_invariants(f);
}

static void test_route_lost_agents_users_keep_their_arrival_order(void **st)
{
    struct fixture *f = *st;

    /* oA came first, oB second; both go back to the front, oA first. */
    add_agent(f, "anna", 1, 2, "");
    add_agent(f, "bob", 1, 1, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    kf_event(f, ROUTE_KF_CREATE, "oA", "anna", "", T0 + 1);
    kf_event(f, ROUTE_KF_CREATE, "oB", "anna", "", T0 + 2);
    kf_event(f, ROUTE_KF_CREATE, "oU3", "bob", "", T0 + 3);
    assert_string_equal(msg(f, "oW1", "", T0 + 4), "queued:1");
    assert_int_equal(presence(f, "anna", "offline", T0 + 5), 2);
    assert_string_equal(queue(f, "_all"), "oA,oB,oW1");
    assert_invariants(f);
}

/* --- explanations -------------------------------------------------------- */

static void test_route_why_and_the_assign_event_explain_the_decision(
    void **st)
{
    struct fixture *f = *st;
    char w[1024];

    configure(f, "least_busy", 5, "");
    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "bob", 1, 3, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    kf_event(f, ROUTE_KF_CREATE, "oSeed", "anna", "", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:bob");
    assert_string_equal(why(f, "oU1"),
                        "policy=least_busy;group=_all;chosen=bob;"
                        "reason=new_session;candidates=anna:1/5,bob:0/3");
    snprintf(w, sizeof(w), "%s", sfield(f, "oU1", "why"));
    assert_string_equal(ev(f, "assign", "oU1", 1, "why"), w);
    assert_string_equal(ev(f, "assign", "oU1", 1, "reason"), "new_session");
    assert_string_equal(ev(f, "assign", "oU1", 1, "agent"), "bob");
    assert_invariants(f);
}

static void test_route_why_of_a_queued_user_lists_candidates_as_an_array(
    void **st)
{
    struct fixture *f = *st;
    const char *w;

    add_agent(f, "anna", 1, 1, "");
    presence(f, "anna", "online", T0);
    msg(f, "oU1", "", T0);
    assert_string_equal(msg(f, "oU2", "", T0 + 1), "queued:1");
    assert_string_equal(why(f, "oU2"),
                        "policy=round_robin;group=_all;chosen=;"
                        "reason=all_busy;candidates=");
    w = sfield(f, "oU2", "why");
    if (!strstr(w, "\"candidates\":[]"))
        fail_msg("why of a queued user: %s", w);
    assert_invariants(f);
}

/* --- wechat_kf session events -------------------------------------------- */

static void test_route_kf_create_gives_a_waiting_user_to_the_accepting_agent(
    void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "");
    presence(f, "anna", "paused", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "queued:1");
    assert_string_equal(kf_event(f, ROUTE_KF_CREATE, "oU1", "anna", "",
                                 T0 + 2), "none");
    assert_string_equal(sfield(f, "oU1", "state"), "active");
    assert_string_equal(sfield(f, "oU1", "agent"), "anna");
    assert_string_equal(queue(f, "_all"), "");
    assert_string_equal(CMD(f, "ZSCORE", PFX "qdeadline", "oU1"), "(nil)");
    assert_int_equal(load(f, "anna"), 1);
    assert_invariants(f);
}

static void test_route_kf_create_by_another_agent_moves_the_load(void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 1, "");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "anna", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    assert_string_equal(msg(f, "oU2", "", T0 + 2), "queued:1");
    kf_event(f, ROUTE_KF_CREATE, "oU1", "bob", "", T0 + 3);
    assert_string_equal(sfield(f, "oU1", "agent"), "bob");
    assert_int_equal(load(f, "bob"), 1);
    /* anna's freed slot goes to the waiting user */
    assert_string_equal(sfield(f, "oU2", "agent"), "anna");
    assert_invariants(f);
}

static void test_route_kf_switch_moves_the_session_between_agents(
    void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    kf_event(f, ROUTE_KF_CREATE, "oU1", "anna", "", T0 + 1);
    kf_event(f, ROUTE_KF_SWITCH, "oU1", "anna", "bob", T0 + 2);
    assert_string_equal(sfield(f, "oU1", "agent"), "bob");
    assert_int_equal(load(f, "anna"), 0);
    assert_int_equal(load(f, "bob"), 1);
    assert_string_equal(ev(f, "transfer", "oU1", 1, "reason"),
                        "kf_switch_session");
    assert_invariants(f);
}

static void test_route_kf_close_closes_the_session_and_drains_the_queue(
    void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 1, "");
    presence(f, "anna", "online", T0);
    kf_event(f, ROUTE_KF_CREATE, "oU1", "anna", "", T0 + 1);
    assert_string_equal(msg(f, "oU2", "", T0 + 2), "queued:1");
    kf_event(f, ROUTE_KF_CLOSE, "oU1", "anna", "", T0 + 3);
    assert_string_equal(CMD(f, "EXISTS", key(f, "sess:", "oU1")), "0");
    assert_string_equal(ev(f, "close", "oU1", 1, "reason"), "agent");
    assert_string_equal(sfield(f, "oU2", "agent"), "anna");
    assert_int_equal(load(f, "anna"), 1);
    assert_invariants(f);
}

static void test_route_kf_events_naming_unknown_agents_change_nothing(
    void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "");
    presence(f, "anna", "online", T0);
    kf_event(f, ROUTE_KF_CREATE, "oU1", "anna", "", T0 + 1);
    kf_event(f, ROUTE_KF_CREATE, "oU2", "ghost", "", T0 + 2);
    kf_event(f, ROUTE_KF_SWITCH, "oU1", "anna", "ghost", T0 + 3);
    assert_string_equal(CMD(f, "EXISTS", key(f, "sess:", "oU2")), "0");
    assert_string_equal(sfield(f, "oU1", "agent"), "anna");
    assert_int_equal(load(f, "anna"), 1);
    assert_string_equal(CMD(f, "EXISTS", key(f, "load:", "ghost")), "0");
    assert_invariants(f);
}

static void test_route_transfer_result_names_a_full_length_agent_account(
    void **st)
{
    /* kf_account allows 10 + 1 + 30 = 41 characters */
    static const char longest[] = "abcdefghij@abcdefghijklmnopqrstuvwxyz0123";
    struct fixture *f = *st;
    char expect[64];

    assert_int_equal(strlen(longest), 41);
    add_agent(f, "anna", 1, 0, "");
    add_agent(f, longest, 1, 0, "");
    presence(f, "anna", "online", T0);
    kf_event(f, ROUTE_KF_CREATE, "oU1", "anna", "", T0 + 1);
    presence(f, longest, "online", T0 + 2);
    assert_int_equal(sess_op(f, "transfer_agent", "oU1", "anna", longest,
                             T0 + 3), 0);
    assert_string_equal(sfield(f, "oU1", "agent"), longest);
    snprintf(expect, sizeof(expect), "assigned:%s", longest);
    assert_string_equal(f->res, expect);
    assert_invariants(f);
}

/* A small deterministic generator for the soak test. */
static unsigned long rnd(unsigned long *x)
{
    *x = *x * 6364136223846793005UL + 1442695040888963407UL;
    return (*x >> 33) % 1000003UL;
}

/* Random operations from one seed; the invariants after every step.
 * Returns the number of events of each kind in counts (assign, queue,
 * close, transfer, reassign). */
static void soak(struct fixture *f, unsigned long seed, long counts[5])
{
    static const char *const agents[] = { "anna", "bob", "carl", "dora" };
    static const char *const groups[] = { "", "sales", "vip", "nosuch" };
    static const char *const ops[] = { "online", "online", "online",
                                       "paused", "offline", "heartbeat" };
    static const char *const kinds[] = { "assign", "queue", "close",
                                         "transfer", "reassign" };
    unsigned long x = seed;
    int64_t now = T0;
    int step, i;

    CMD(f, "FLUSHALL");
    f->cfg.routing.queue_timeout = 120;
    f->cfg.routing.first_reply_timeout = 20;
    f->cfg.session.idle_timeout = 60;
    configure(f, "round_robin", 4, "sales:weighted,vip:least_busy");
    add_agent(f, "anna", 3, 0, "sales");
    add_agent(f, "bob", 1, 6, "sales,vip");
    add_agent(f, "carl", 2, 2, "vip");
    add_agent(f, "dora", 1, 0, "");
    for (i = 0; i < 4; i++)
        presence(f, agents[i], "online", now);
    for (step = 0; step < 500; step++) {
        const char *a = agents[rnd(&x) % 4], *b = agents[rnd(&x) % 4];
        const char *state;
        char u[32], what[160];
        int r = (int)(rnd(&x) % 100), rc;

        user_name(u, sizeof(u), (int)(rnd(&x) % 20));
        now += (int64_t)(rnd(&x) % 4000);
        if (r < 45) {
            snprintf(what, sizeof(what), "msg %s", u);
            msg(f, u, groups[rnd(&x) % 4], now);
        } else if (r < 55) {
            snprintf(what, sizeof(what), "presence %s %s", a,
                     ops[rnd(&x) % 6]);
            presence(f, a, strchr(what + 9, ' ') + 1, now);
        } else if (r < 63) {
            snprintf(what, sizeof(what), "close %s", u);
            rc = sess_op(f, "close", u, "", "", now);
            assert_true(rc == 0 || rc == KF_ENOTFOUND);
        } else if (r < 71) {
            snprintf(what, sizeof(what), "transfer %s to %s", u, b);
            rc = sess_op(f, "transfer_agent", u, "", b, now);
            assert_true(rc == 0 || rc == KF_ENOTFOUND || rc == KF_EINVAL);
        } else if (r < 78) {
            const char *g = rnd(&x) % 2 ? "sales" : "vip";

            snprintf(what, sizeof(what), "transfer %s to group %s", u, g);
            rc = sess_op(f, "transfer_group", u, "", g, now);
            assert_true(rc == 0 || rc == KF_ENOTFOUND);
        } else if (r < 84) {
            snprintf(what, sizeof(what), "answered %s", u);
            rc = sess_op(f, "answered", u, "", "", now);
            assert_true(rc == 0 || rc == KF_ENOTFOUND || rc == KF_EINVAL);
        } else if (r < 88) {
            snprintf(what, sizeof(what), "kf_close %s", u);
            kf_event(f, ROUTE_KF_CLOSE, u, sfield(f, u, "agent"), "", now);
        } else {
            snprintf(what, sizeof(what), "sweep");
            for (i = 0; i < 4; i++)
                if (rnd(&x) % 8)
                    presence(f, agents[i], "heartbeat", now);
            sweep(f, now, 30);
        }
        state = check_state(f);
        if (strcmp(state, "ok") != 0)
            fail_msg("seed %lu step %d (%s): %s", seed, step, what, state);
    }
    for (i = 0; i < 5; i++)
        counts[i] = ev_count(f, kinds[i], "");
}

static void test_route_random_operations_keep_load_equal_to_active_sessions(
    void **st)
{
    struct fixture *f = *st;
    long counts[5] = { 0, 0, 0, 0, 0 }, c[5];
    unsigned long seed;
    int i;

    for (seed = 1; seed <= SOAK_SEEDS; seed++) {
        soak(f, seed * 7919, c);
        for (i = 0; i < 5; i++)
            counts[i] += c[i];
    }
    /* the walk did reach every kind of move */
    assert_true(counts[0] >= 50);          /* assign */
    assert_true(counts[1] >= 20);          /* queue */
    assert_true(counts[2] >= 20);          /* close */
    assert_true(counts[3] >= 1);           /* transfer */
    assert_true(counts[4] >= 10);          /* reassign */
}

/* The admin's views: every session (active by agent, then the waiting in
 * queue order), the queue, and today's figures in the stats. */
/* o[k] is the string want / the integer want. */
static void str_is(const json_t *o, const char *k, const char *want)
{
    assert_string_equal(json_string_value(json_object_get(o, k)), want);
}

static void int_is(const json_t *o, const char *k, json_int_t want)
{
    assert_int_equal(json_integer_value(json_object_get(o, k)), want);
}

/* What the transfer dialog lists: every agent with its status, load and
 * the capacity routing applies, each group with how many are online and
 * waiting; never the token hash the agent's hash also holds. */
static void test_route_colleagues_list_agents_and_groups_without_tokens(
    void **st)
{
    struct fixture *f = *st;
    json_t *c = NULL, *a, *g;
    char *text;

    configure(f, "round_robin", 2, "");
    add_agent(f, "a", 1, 0, "sales");
    add_agent(f, "b", 2, 5, "sales,vip");
    add_agent(f, "c", 1, 0, "vip");
    CMD(f, "HSET", key(f, "agent:", "b"), "token_sha256", "feedface");
    presence(f, "a", "online", T0);
    presence(f, "b", "paused", T0);
    msg(f, "u1", "", T0);                       /* to a, the only online */
    msg(f, "u2", "vip", T0 + SEC);              /* nobody in vip online */
    assert_int_equal(route_colleagues(&f->route, &c), 0);
    text = json_dumps(c, JSON_COMPACT);
    assert_non_null(text);
    assert_null(strstr(text, "feedface"));
    assert_null(strstr(text, "token"));
    free(text);
    assert_int_equal(json_array_size(json_object_get(c, "agents")), 3);
    a = json_array_get(json_object_get(c, "agents"), 0);
    str_is(a, "account", "a");
    str_is(a, "status", "online");
    str_is(a, "load", "1");
    str_is(a, "capacity", "2");                 /* the default applies */
    a = json_array_get(json_object_get(c, "agents"), 1);
    str_is(a, "status", "paused");
    str_is(a, "capacity", "5");
    str_is(a, "groups", "sales,vip");
    a = json_array_get(json_object_get(c, "agents"), 2);
    str_is(a, "status", "offline");
    str_is(a, "load", "0");
    assert_int_equal(json_array_size(json_object_get(c, "groups")), 2);
    g = json_array_get(json_object_get(c, "groups"), 0);
    str_is(g, "group", "sales");
    int_is(g, "online", 1);
    int_is(g, "waiting", 0);
    g = json_array_get(json_object_get(c, "groups"), 1);
    str_is(g, "group", "vip");
    int_is(g, "online", 0);
    int_is(g, "waiting", 1);
    json_decref(c);
}

static void test_route_admin_views_list_sessions_queue_and_today(void **st)
{
    struct fixture *f = *st;
    const char *users[] = { "u1", "u2", "u3", "u4" };
    char day[64], median[32];
    json_t *list = NULL, *q = NULL, *s = NULL, *e;
    struct route_page_query all = { "", "", "", "", 0, 100 },
                            waiting = { "waiting", "", "", "", 0, 1 };
    long total = 0;
    int capped = 1;
    size_t i;

    add_agent(f, "a", 1, 1, "");
    add_agent(f, "b", 1, 1, "");
    presence(f, "a", "online", T0);
    presence(f, "b", "online", T0);
    for (i = 0; i < 4; i++)
        msg(f, users[i], "", T0 + (int64_t)i * SEC);
    assert_int_equal(route_page(&f->route, &all, T0 + 5 * SEC, &list,
                                &total, &capped), 0);
    assert_int_equal(capped, 0);
    assert_int_equal(total, 4);
    assert_int_equal(json_array_size(list), 4);
    e = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(e, "agent")), "a");
    assert_string_equal(json_string_value(json_object_get(e, "state")),
                        "active");
    e = json_array_get(list, 2);
    assert_string_equal(json_string_value(json_object_get(e, "openid")), "u3");
    assert_int_equal(json_integer_value(json_object_get(e, "position")), 1);
    json_decref(list);
    assert_int_equal(route_page(&f->route, &waiting, T0 + 5 * SEC, &list,
                                &total, &capped), 0);
    assert_int_equal(total, 2);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(list, 0), "openid")), "u3");
    json_decref(list);
    assert_int_equal(route_queue(&f->route, 1, &q), 0);
    assert_int_equal(json_integer_value(json_object_get(q, "total")), 2);
    e = json_array_get(json_object_get(q, "groups"), 0);
    assert_string_equal(json_string_value(json_object_get(e, "group")),
                        "_all");
    assert_int_equal(json_integer_value(json_object_get(e, "length")), 2);
    assert_int_equal(json_array_size(json_object_get(e, "waiting")), 1);
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(json_object_get(e, "waiting"), 0),
                         "since_ms")), T0 + 2 * SEC);
    json_decref(q);
    /* today (UTC+8 by default): 4 messages in, no first response yet */
    assert_int_equal(route_stats(&f->route, T0 + 5 * SEC, &s), 0);
    assert_int_equal(json_integer_value(json_object_get(s,
                                                        "messages_in_today")),
                     4);
    assert_int_equal(json_integer_value(json_object_get(s, "messages_today")),
                     4);
    assert_true(json_is_null(json_object_get(s, "first_response_median_ms")));
    assert_true(json_real_value(json_object_get(s, "online_rate")) == 1.0);
    json_decref(s);
    /* the median of the day's first-response times: odd, then even */
    snprintf(day, sizeof(day), PFX "frt:%lld",
             (long long)((T0 + 480 * 60000) / 86400000));
    CMD(f, "ZADD", day, "3000", "s1", "1000", "s2", "90000", "s3");
    assert_int_equal(route_stats(&f->route, T0 + 5 * SEC, &s), 0);
    snprintf(median, sizeof(median), "%lld", (long long)json_integer_value(
                 json_object_get(s, "first_response_median_ms")));
    assert_string_equal(median, "3000");
    json_decref(s);
    CMD(f, "ZADD", day, "4000", "s4");
    assert_int_equal(route_stats(&f->route, T0 + 5 * SEC, &s), 0);
    assert_int_equal(json_integer_value(json_object_get(
                         s, "first_response_median_ms")), 3500);
    assert_int_equal(json_integer_value(json_object_get(
                         s, "first_responses_today")), 4);
    json_decref(s);
    /* the next day starts from zero */
    assert_int_equal(route_stats(&f->route, T0 + 86400 * SEC, &s), 0);
    assert_int_equal(json_integer_value(json_object_get(s,
                                                        "messages_in_today")),
                     0);
    json_decref(s);
}

/* --- returning customers ([routing] returning) --------------------------- */

static void returning_days(struct fixture *f, long days)
{
    f->cfg.routing.returning = days;
    reinit(f);
}

/* oU1 served by bob (round robin's second pick) and closed. */
static void served_by_bob(struct fixture *f)
{
    add_agent(f, "anna", 1, 2, "");
    add_agent(f, "bob", 1, 2, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    assert_string_equal(msg(f, "oU0", "", T0 + 1), "assigned:anna");
    assert_string_equal(msg(f, "oU1", "", T0 + 2), "assigned:bob");
    assert_int_equal(sess_op(f, "close", "oU1", "bob", "", T0 + 3), 0);
}

static void test_route_returning_user_goes_back_to_the_last_agent(void **st)
{
    struct fixture *f = *st;
    long ttl;

    returning_days(f, 7);
    served_by_bob(f);
    /* remembered for 7 days from the close */
    assert_string_equal(CMD(f, "HGET", key(f, "last_agent:", "oU1"),
                            "agent"), "bob");
    ttl = CMDL(f, "PTTL", key(f, "last_agent:", "oU1"));
    assert_true(ttl > 7 * 86400 * SEC - 60 * SEC && ttl <= 7 * 86400 * SEC);
    /* round robin's turn is anna's; the returning user goes to bob */
    assert_string_equal(msg(f, "oU1", "", T0 + 4), "assigned:bob");
    assert_string_equal(why(f, "oU1"), "policy=returning;group=_all;"
                        "chosen=bob;reason=returning;candidates=bob:0/2");
    assert_string_equal(ev(f, "assign", "oU1", 2, "reason"), "returning");
    /* a new user still follows the policy */
    assert_string_equal(msg(f, "oU2", "", T0 + 5), "assigned:anna");
    assert_invariants(f);
}

static void test_route_returning_user_takes_the_policy_when_the_agent_cannot(
    void **st)
{
    struct fixture *f = *st;

    returning_days(f, 7);
    served_by_bob(f);
    /* bob full: the normal policy */
    msg(f, "oU2", "", T0 + 4);                 /* rr: anna */
    assert_string_equal(msg(f, "oU3", "", T0 + 5), "assigned:bob");
    assert_string_equal(msg(f, "oU4", "", T0 + 6), "assigned:bob");
    assert_int_equal(load(f, "bob"), 2);
    assert_string_equal(msg(f, "oU1", "", T0 + 7), "queued:1");
    assert_int_equal(load(f, "bob"), 2);       /* capacity held */
    assert_int_equal(sess_op(f, "close", "oU1", "", "", T0 + 8), 0);
    /* bob paused: the normal policy */
    assert_int_equal(sess_op(f, "close", "oU4", "bob", "", T0 + 9), 0);
    presence(f, "bob", "paused", T0 + 10);
    assert_string_equal(msg(f, "oU4", "", T0 + 11), "queued:1");
    assert_non_null(strstr(why(f, "oU4"), "reason=all_busy"));
    assert_invariants(f);
}

static void test_route_returning_user_stays_inside_the_requested_group(
    void **st)
{
    struct fixture *f = *st;

    returning_days(f, 7);
    served_by_bob(f);
    add_agent(f, "cleo", 1, 2, "sales");
    presence(f, "cleo", "online", T0 + 4);
    /* bob is not in sales: the group's policy */
    assert_string_equal(msg(f, "oU1", "sales", T0 + 5), "assigned:cleo");
    assert_non_null(strstr(why(f, "oU1"), "reason=new_session"));
    assert_invariants(f);
}

static void test_route_returning_off_remembers_nobody(void **st)
{
    struct fixture *f = *st;

    served_by_bob(f);                          /* returning = 0 */
    assert_int_equal(CMDL(f, "EXISTS", key(f, "last_agent:", "oU1")), 0);
    assert_string_equal(msg(f, "oU1", "", T0 + 4), "assigned:anna");
    assert_invariants(f);
}

/* --- queue order ([routing] queue_order) --------------------------------- */

static void queue_order(struct fixture *f, const char *order)
{
    set(&f->cfg.routing.queue_order, order);
    reinit(f);
}

static void test_route_window_order_puts_the_closing_window_first(void **st)
{
    struct fixture *f = *st;

    queue_order(f, "window");
    anna_busy_two_waiting(f);                  /* oU2, oU3 wait */
    /* a menu click opens 1 minute: its user is seen before the others */
    f->window = "evt";
    assert_string_equal(msg(f, "oU4", "", T0 + 4), "queued:1");
    f->window = NULL;
    assert_string_equal(queue(f, "_all"), "oU4,oU2,oU3");
    /* oU2 writes again: its window now closes after oU3's */
    assert_string_equal(msg(f, "oU2", "", T0 + 5), "queued:3");
    assert_string_equal(queue(f, "_all"), "oU4,oU3,oU2");
    /* the first to be served is the one whose window closes first */
    assert_int_equal(sess_op(f, "close", "oU1", "anna", "", T0 + 6), 0);
    assert_string_equal(sfield(f, "oU4", "agent"), "anna");
    assert_string_equal(queue(f, "_all"), "oU3,oU2");
    assert_invariants(f);
}

static void test_route_arrival_order_ignores_the_window(void **st)
{
    struct fixture *f = *st;

    anna_busy_two_waiting(f);
    f->window = "evt";
    assert_string_equal(msg(f, "oU4", "", T0 + 4), "queued:3");
    f->window = NULL;
    assert_string_equal(msg(f, "oU2", "", T0 + 5), "queued:1");
    assert_string_equal(queue(f, "_all"), "oU2,oU3,oU4");
    assert_invariants(f);
}

static void test_route_window_order_keeps_moved_users_in_front(void **st)
{
    struct fixture *f = *st;

    queue_order(f, "window");
    add_agent(f, "anna", 1, 1, "");
    add_agent(f, "bob", 1, 1, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    assert_string_equal(msg(f, "oU2", "", T0 + 2), "assigned:bob");
    assert_string_equal(msg(f, "oW1", "", T0 + 3), "queued:1");
    presence(f, "bob", "offline", T0 + 4);
    assert_string_equal(queue(f, "_all"), "oU2,oW1");
    /* writing again keeps the place of a user who was being served */
    assert_string_equal(msg(f, "oU2", "", T0 + 5), "queued:1");
    assert_string_equal(queue(f, "_all"), "oU2,oW1");
    assert_invariants(f);
}

/* --- the greeting ([texts] greeting) ------------------------------------- */

static void greeting(struct fixture *f, const char *text)
{
    set(&f->cfg.texts.greeting, text);
    reinit(f);
}

/* The outbox entry of a msg_out event's id: "<openid>|<agent>|<payload>". */
static const char *outbox_of(struct fixture *f, const char *id)
{
    return CMD(f, "EVAL",
               "local h = redis.call('HMGET', KEYS[1], 'openid', 'agent',"
               " 'payload')\n"
               "return (h[1] or '?') .. '|' .. (h[2] or '?') .. '|' .."
               " (h[3] or '?')", "1", key(f, "outbox:", id));
}

static void test_route_greeting_is_sent_once_per_session_on_assignment(
    void **st)
{
    struct fixture *f = *st;
    char id[64];

    greeting(f, "客服已接收您的消息; 请稍候");
    add_agent(f, "anna", 1, 0, "");
    add_agent(f, "bob", 1, 0, "");
    presence(f, "anna", "online", T0);
    presence(f, "bob", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    /* shown to the agent: a msg_out by wxkf, marked, in anna's feed too */
    assert_string_equal(ev(f, "msg_out", "oU1", 0, ""), "1");
    assert_string_equal(ev(f, "msg_out", "oU1", 1, "marker"), "greeting");
    assert_string_equal(ev(f, "msg_out", "oU1", 1, "by"), "wxkf");
    assert_string_equal(ev(f, "msg_out", "oU1", 1, "agent"), "anna");
    assert_string_equal(ev(f, "msg_out", "oU1", 1, "session"),
                        sfield(f, "oU1", "id"));
    assert_string_equal(CMD(f, "EVAL",
                            "local e = redis.call('XREVRANGE', KEYS[1], '+',"
                            " '-', 'COUNT', 1)[1][2]\n"
                            "return e[2] .. ':' .. e[#e - 2]", "1",
                            key(f, "inbox:", "anna")), "msg_out:greeting");
    /* delivered by `wxkf jobs`: an outbox entry, due now */
    snprintf(id, sizeof(id), "%s", ev(f, "msg_out", "oU1", 1, "id"));
    assert_string_equal(outbox_of(f, id),
                        "oU1|anna|{\"content\":\"客服已接收您的消息; 请稍候\"}");
    assert_int_equal(CMDL(f, "ZSCORE", key(f, "outbox", ""), id), T0 + 1);
    /* one of the window's five sends */
    assert_string_equal(CMD(f, "HGET", key(f, "win:", "oU1"), "sent"), "1");
    /* not on the next message, not after a transfer: once per session */
    assert_string_equal(msg(f, "oU1", "", T0 + 2), "sticky:anna");
    assert_int_equal(sess_op(f, "transfer_agent", "oU1", "anna", "bob",
                             T0 + 3), 0);
    assert_string_equal(ev(f, "msg_out", "oU1", 0, ""), "1");
    /* a new session is greeted again */
    assert_int_equal(sess_op(f, "close", "oU1", "bob", "", T0 + 4), 0);
    assert_string_equal(msg(f, "oU1", "", T0 + 5), "assigned:bob");
    assert_string_equal(ev(f, "msg_out", "oU1", 0, ""), "2");
    assert_string_equal(ev(f, "msg_out", "oU1", 2, "agent"), "bob");
    assert_invariants(f);
}

static void test_route_greeting_waits_for_the_agent_and_the_window(void **st)
{
    struct fixture *f = *st;

    greeting(f, "客服已接收您的消息");
    anna_busy_two_waiting(f);                  /* oU2, oU3 wait */
    /* waiting users are not greeted; anna's user was */
    assert_string_equal(ev(f, "msg_out", "", 0, ""), "1");
    /* oU2 is greeted when it reaches anna */
    assert_int_equal(sess_op(f, "close", "oU1", "anna", "", T0 + 10), 0);
    assert_string_equal(sfield(f, "oU2", "agent"), "anna");
    assert_string_equal(ev(f, "msg_out", "oU2", 1, "marker"), "greeting");
    assert_string_equal(ev(f, "msg_out", "oU2", 1, "agent"), "anna");
    /* oU3's window (48 h from its message) has closed when it reaches
       anna: nothing is sent, nothing reserved */
    assert_int_equal(sess_op(f, "close", "oU2", "anna", "",
                             T0 + 3 + 48 * 3600 * SEC + 1), 0);
    assert_string_equal(sfield(f, "oU3", "agent"), "anna");
    assert_string_equal(ev(f, "msg_out", "oU3", 0, ""), "0");
    assert_string_equal(CMD(f, "HGET", key(f, "win:", "oU3"), "sent"), "0");
    assert_invariants(f);
}

static void test_route_greeting_is_not_sent_past_the_quota(void **st)
{
    struct fixture *f = *st;

    greeting(f, "客服已接收您的消息");
    add_agent(f, "anna", 1, 1, "");
    presence(f, "anna", "online", T0);
    msg(f, "oU1", "", T0);
    assert_string_equal(msg(f, "oU2", "", T0 + 1), "queued:1");
    /* the window's five sends are spent before oU2 reaches anna */
    CMD(f, "HSET", key(f, "win:", "oU2"), "sent", "5");
    assert_int_equal(sess_op(f, "close", "oU1", "anna", "", T0 + 2), 0);
    assert_string_equal(sfield(f, "oU2", "agent"), "anna");
    assert_string_equal(ev(f, "msg_out", "oU2", 0, ""), "0");
    assert_string_equal(CMD(f, "HGET", key(f, "win:", "oU2"), "sent"), "5");
    assert_invariants(f);
}

static void test_route_greeting_off_sends_nothing(void **st)
{
    struct fixture *f = *st;

    add_agent(f, "anna", 1, 0, "");
    presence(f, "anna", "online", T0);
    assert_string_equal(msg(f, "oU1", "", T0 + 1), "assigned:anna");
    assert_string_equal(ev(f, "msg_out", "", 0, ""), "0");
    assert_int_equal(CMDL(f, "ZCARD", key(f, "outbox", "")), 0);
    assert_string_equal(CMD(f, "HGET", key(f, "win:", "oU1"), "sent"), "0");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_route_classify_sends_keywords_and_menu_keys_to_groups),
        T(test_route_classify_records_events_and_maps_kf_events),
        T(test_route_round_robin_keeps_counts_within_one_of_each_other),
        T(test_route_weighted_gives_each_agent_k_times_its_weight),
        T(test_route_weighted_5_1_1_follows_nginx_smooth_sequence),
        T(test_route_least_busy_picks_the_lowest_load_over_capacity),
        T(test_route_least_busy_breaks_ties_toward_the_longest_idle),
        T(test_route_group_users_go_only_to_group_members),
        T(test_route_unknown_group_falls_back_to_every_agent),
        T(test_route_group_policy_overrides_the_default_inside_the_group),
        T(test_route_default_capacity_applies_and_extra_users_queue),
        T(test_route_agent_capacity_is_never_exceeded),
        T(test_route_active_user_sticks_to_the_same_agent),
        T(test_route_sticky_holds_while_the_agent_is_paused),
        T(test_route_offline_agent_hands_its_users_to_another),
        T(test_route_queue_positions_count_from_one_in_arrival_order),
        T(test_route_closing_a_session_assigns_the_oldest_waiting_user),
        T(test_route_agent_coming_online_takes_waiting_users_in_order),
        T(test_route_unpausing_an_agent_assigns_the_waiting_users),
        T(test_route_group_queue_drains_only_to_group_members),
        T(test_route_no_agent_online_answers_offline_and_keeps_the_user),
        T(test_route_a_full_queue_turns_new_users_away_without_a_session),
        T(test_route_a_list_queue_from_an_earlier_release_keeps_its_order),
        T(test_route_retry_gets_the_first_decision_and_records_once),
        T(test_route_ingest_returns_a_typed_decision),
        T(test_route_every_script_refuses_an_unknown_op),
        T(test_route_only_routing_scripts_carry_the_prelude),
        T(test_route_session_goes_waiting_active_closed_with_a_reason),
        T(test_route_admin_close_is_recorded_with_reason_admin),
        T(test_route_admin_views_list_sessions_queue_and_today),
        T(test_route_colleagues_list_agents_and_groups_without_tokens),
        T(test_route_each_message_pushes_the_idle_deadline),
        T(test_route_idle_expiry_frees_the_slot_for_the_next_user),
        T(test_route_views_list_an_agents_sessions_and_one_session),
        T(test_route_transfer_to_an_agent_moves_the_load_and_emits),
        T(test_route_transfer_frees_a_slot_the_queue_takes_at_once),
        T(test_route_transfer_to_a_group_routes_inside_that_group),
        T(test_route_transfer_note_travels_and_a_reroute_drops_it),
        T(test_route_transfer_to_a_group_reply_matches_the_session),
        T(test_route_refusals_name_their_reason_and_change_nothing),
        T(test_route_reopen_gives_a_past_user_back_to_its_agent),
        T(test_route_reopen_takes_a_waiting_user_out_of_the_queue),
        T(test_route_reopen_refusals_change_nothing),
        T(test_route_queue_timeout_removes_the_user_asking_for_a_message),
        T(test_route_first_reply_timeout_moves_the_user_to_another_agent),
        T(test_route_answered_stops_the_first_reply_timeout),
        T(test_route_first_reply_timeout_with_nobody_else_keeps_the_user),
        T(test_route_presence_refuses_unknown_agents_and_bad_ops),
        T(test_route_heartbeat_keeps_an_agent_online_until_the_ttl),
        T(test_route_paused_agent_takes_no_new_users_but_keeps_alive),
        T(test_route_lost_agents_users_are_rerouted_to_free_agents),
        T(test_route_lost_agents_users_queue_ahead_of_waiting_users),
        T(test_route_lost_agents_users_keep_their_arrival_order),
        T(test_route_why_and_the_assign_event_explain_the_decision),
        T(test_route_why_of_a_queued_user_lists_candidates_as_an_array),
        T(test_route_kf_create_gives_a_waiting_user_to_the_accepting_agent),
        T(test_route_kf_create_by_another_agent_moves_the_load),
        T(test_route_kf_switch_moves_the_session_between_agents),
        T(test_route_kf_close_closes_the_session_and_drains_the_queue),
        T(test_route_kf_events_naming_unknown_agents_change_nothing),
        T(test_route_transfer_result_names_a_full_length_agent_account),
        T(test_route_random_operations_keep_load_equal_to_active_sessions),
        T(test_route_returning_user_goes_back_to_the_last_agent),
        T(test_route_returning_user_takes_the_policy_when_the_agent_cannot),
        T(test_route_returning_user_stays_inside_the_requested_group),
        T(test_route_returning_off_remembers_nobody),
        T(test_route_window_order_puts_the_closing_window_first),
        T(test_route_arrival_order_ignores_the_window),
        T(test_route_window_order_keeps_moved_users_in_front),
        T(test_route_greeting_is_sent_once_per_session_on_assignment),
        T(test_route_greeting_waits_for_the_agent_and_the_window),
        T(test_route_greeting_is_not_sent_past_the_quota),
        T(test_route_greeting_off_sends_nothing),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
