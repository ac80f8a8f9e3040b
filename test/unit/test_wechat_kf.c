/* Tests of lib/wechat_kf (mode = wechat_kf): WeChat's getonlinekflist
 * answer read, the presence op each agent gets from a poll (and from a
 * failed one), what a kfsession call's outcome leads to, and the session
 * steps `wxkf jobs` makes from the event stream (lib/lua/kf_session.lua)
 * against a private redis-server and the WeChat simulator
 * (test/sim/wechat_api_sim.py): a re-route closes the old agent's WeChat
 * session and creates the new one's, a session WeChat made or closed
 * itself is not echoed back, a transient failure is retried after the
 * back-off, a refusal is given up at once; and the poll against a real
 * route: agents follow WeChat's list (a pause held, a local account left
 * to its console), failed polls keep presence and heartbeats for
 * WECHAT_KF_POLL_FAILS polls, then the heartbeat expiry takes over. */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "config.h"
#include "route.h"
#include "store.h"
#include "testutil.h"
#include "wechat_kf.h"
#include "wx_api.h"

#define APPID "wx5e1a6c0d2b3f4a61"
#define SECRET "0f1e2d3c4b5a69788796a5b4c3d2e1f2"
#define P "wxkf:{" APPID "}:"
#define USER "oWechatKf00000000000000000001"
#define A "ka@simwx"
#define B "kb@simwx"
#define NOW 1767225600000LL          /* 2026-01-01T00:00:00Z */

/* --- decisions ----------------------------------------------------------- */

static json_t *parse(const char *s)
{
    json_t *j = json_loads(s, JSON_DECODE_ANY, NULL);

    assert_non_null(j);
    return j;
}

static void test_online_list_needs_the_array(void **st)
{
    const char *bad[] = { "[]", "{}", "{\"kf_online_list\":{}}",
                          "{\"kf_online_list\":\"x\"}", "1" };
    json_t *j, *list = (json_t *)1;
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = parse(bad[i]);
        assert_int_equal(wechat_kf_online_list(j, &list), KF_EPARSE);
        assert_null(list);
        json_decref(j);
    }
    assert_int_equal(wechat_kf_online_list(NULL, &list), KF_EPARSE);
    j = parse("{\"kf_online_list\":[]}");
    assert_int_equal(wechat_kf_online_list(j, &list), 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(j);
}

static void test_listed_means_a_nonzero_status_of_that_account(void **st)
{
    json_t *j = parse("{\"kf_online_list\":["
                      "{\"kf_account\":\"a1@shop\",\"status\":1,"
                      "\"kf_id\":\"1001\",\"accepted_case\":2},"
                      "{\"kf_account\":\"a2@shop\",\"status\":0},"
                      "{\"kf_account\":\"a3@shop\",\"status\":\"1\"},"
                      "{\"kf_account\":\"a4@shop\"},"
                      "{\"kf_account\":\"a5@shop\",\"status\":3},"
                      "{\"status\":1}, 7, null]}");
    json_t *list;

    (void)st;
    assert_int_equal(wechat_kf_online_list(j, &list), 0);
    assert_int_equal(wechat_kf_listed(list, "a1@shop"), 1);
    assert_int_equal(wechat_kf_listed(list, "a2@shop"), 0);  /* offline */
    assert_int_equal(wechat_kf_listed(list, "a3@shop"), 0);  /* not a number */
    assert_int_equal(wechat_kf_listed(list, "a4@shop"), 0);  /* no status */
    assert_int_equal(wechat_kf_listed(list, "a5@shop"), 1);  /* PC + mobile */
    assert_int_equal(wechat_kf_listed(list, "a1@other"), 0);
    assert_int_equal(wechat_kf_listed(list, "a1"), 0);
    assert_int_equal(wechat_kf_listed(list, ""), 0);
    json_decref(j);
}

static void test_presence_op_follows_wechat_and_keeps_it_on_failure(void **st)
{
    (void)st;
    /* the poll succeeded */
    assert_string_equal(wechat_kf_presence_op("offline", 1, 1), "online");
    assert_string_equal(wechat_kf_presence_op("online", 1, 1), "heartbeat");
    assert_string_equal(wechat_kf_presence_op("paused", 1, 1), "heartbeat");
    assert_string_equal(wechat_kf_presence_op("online", 0, 1), "offline");
    assert_string_equal(wechat_kf_presence_op("paused", 0, 1), "offline");
    assert_null(wechat_kf_presence_op("offline", 0, 1));
    assert_string_equal(wechat_kf_presence_op(NULL, 1, 1), "online");
    /* it failed: as it was, heartbeats refreshed */
    assert_string_equal(wechat_kf_presence_op("online", 0, 0), "heartbeat");
    assert_string_equal(wechat_kf_presence_op("paused", 0, 0), "heartbeat");
    assert_null(wechat_kf_presence_op("offline", 0, 0));
    assert_null(wechat_kf_presence_op(NULL, 0, 0));
}

static void test_verdict_retries_only_what_can_pass_later(void **st)
{
    (void)st;
    assert_int_equal(wechat_kf_verdict(0, 0), WECHAT_KF_DONE);
    assert_int_equal(wechat_kf_verdict(KF_EWECHAT, 0), WECHAT_KF_REFUSED);
    assert_int_equal(wechat_kf_verdict(KF_EBACKEND, 1), WECHAT_KF_RETRY);
    assert_int_equal(wechat_kf_verdict(KF_EBACKEND, 0), WECHAT_KF_REFUSED);
    assert_int_equal(wechat_kf_verdict(KF_ELIMIT, 1), WECHAT_KF_RETRY);
    assert_int_equal(wechat_kf_verdict(KF_ENOMEM, 0), WECHAT_KF_RETRY);
    assert_int_equal(wechat_kf_verdict(KF_ETOOBIG, 0), WECHAT_KF_REFUSED);
    assert_int_equal(wechat_kf_verdict(KF_EINVAL, 0), WECHAT_KF_REFUSED);
}

/* --- the session steps, against Redis and the simulator ------------------ */

static struct tu_wx S;

struct fixture {
    struct config cfg;
    struct store st;
    struct wx_api *api;
    struct route route;
    struct wechat_kf k;
    struct wechat_kf_counts c;
    redisContext *rc;
};

static int suite_setup(void **st)
{
    (void)st;
    tu_wx_start(&S, APPID, SECRET);
    return 0;
}

static int suite_teardown(void **st)
{
    (void)st;
    tu_wx_stop(&S);
    return 0;
}

#define cmd_do(f, ...) tu_redis_do((f)->rc, __VA_ARGS__)
#define cmd_num(f, ...) tu_redis_num((f)->rc, __VA_ARGS__)

/* The access token the simulator gives (stable_token, as wx_api asks:
 * the same one while it lives, so the client's keeps working). */
static char *sim_token(void)
{
    char url[128], *body;
    json_t *j;
    char *tok;
    long status;

    snprintf(url, sizeof(url), "%s/cgi-bin/stable_token", S.sim.base);
    body = tu_http("POST", url, "{\"grant_type\":\"client_credential\","
                   "\"appid\":\"" APPID "\",\"secret\":\"" SECRET "\"}",
                   &status);
    assert_int_equal(status, 200);
    j = parse(body);
    free(body);
    tok = strdup(json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    assert_non_null(tok);
    return tok;
}

/* A simulator call (method, path with or without a query, body or NULL)
 * with the access token; the answer as JSON (caller decrefs). */
static json_t *sim_call(const char *method, const char *path,
                        const char *body)
{
    char url[512], *out, *tok = sim_token();
    json_t *j;
    long status;

    snprintf(url, sizeof(url), "%s%s%saccess_token=%s", S.sim.base, path,
             strchr(path, '?') ? "&" : "?", tok);
    free(tok);
    out = tu_http(method, url, body, &status);
    assert_int_equal(status, 200);
    j = parse(out);
    free(out);
    return j;
}

static json_t *sim_get(const char *path)
{
    return sim_call("GET", path, NULL);
}

/* Who WeChat (the simulator) has USER's session with ("" nobody). */
static char *wechat_has(void)
{
    json_t *j = sim_get("/customservice/kfsession/getsession?openid=" USER);
    char *s = strdup(json_string_value(json_object_get(j, "kf_account")));

    json_decref(j);
    return s;
}

static void assert_wechat_has(const char *acct)
{
    char *s = wechat_has();

    assert_string_equal(s, acct);
    free(s);
}

static long sim_calls(const char *path)
{
    char p[160];
    json_t *j;
    long n;

    snprintf(p, sizeof(p), "/_sim/calls?path=%s", path);
    j = sim_get(p);
    n = (long)json_integer_value(json_object_get(j, "count"));
    json_decref(j);
    return n;
}

static int setup(void **st)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->rc = tu_wx_fresh(&S);
    tu_sim_post(&S.sim, "/_sim/inbound", "{\"openid\":\"" USER "\"}");
    config_init(&f->cfg);
    tu_wx_config(&f->cfg, &S, APPID, SECRET);
    assert_int_equal(store_init(&f->st, S.redis_url, APPID, 500, 2000), 0);
    assert_int_equal(wx_api_new(&f->cfg, &f->st, &f->api), 0);
    assert_int_equal(route_init(&f->route, &f->st, &f->cfg), 0);
    wechat_kf_init(&f->k, &f->route, &f->st, f->api, 30);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    struct fixture *f = *st;

    wx_api_free(f->api);
    store_release(&f->st);
    config_release(&f->cfg);
    redisFree(f->rc);
    free(f);
    return 0;
}

/* Two kf accounts at the simulator, both online. */
static void two_agents_online(void)
{
    const char *acct[] = { A, B };
    char body[128];
    size_t i;

    for (i = 0; i < 2; i++) {
        json_t *j;

        snprintf(body, sizeof(body), "{\"kf_account\":\"%s\","
                 "\"nickname\":\"k%zu\"}", acct[i], i);
        j = sim_call("POST", "/customservice/kfaccount/add", body);
        assert_int_equal(json_integer_value(json_object_get(j, "errcode")),
                         0);
        json_decref(j);
        snprintf(body, sizeof(body), "{\"kf_account\":\"%s\","
                 "\"status\":1}", acct[i]);
        tu_sim_post(&S.sim, "/_sim/kf_online", body);
    }
}

/* An event as the routing scripts write it. */
static void event(struct fixture *f, const char *type, const char *agent,
                  const char *reason, const char *via)
{
    cmd_do(f, "XADD " P "events * type %s openid " USER " session 1 "
           "agent %s reason %s via %s ts_ms 1", type, agent, reason, via);
}

static void pass(struct fixture *f, int64_t now)
{
    memset(&f->c, 0, sizeof(f->c));
    assert_int_equal(wechat_kf_sessions_pass(&f->k, now, 10, &f->c), 0);
}

static void test_steps_follow_reroutes_and_closes(void **st)
{
    struct fixture *f = *st;

    two_agents_online();
    pass(f, NOW);                       /* creates the group at '$' */
    /* a new user: the callback's transfer_customer_service makes the
     * WeChat session, no call */
    event(f, "assign", A, "new_session", "");
    pass(f, NOW);
    assert_int_equal(f->c.queued, 0);
    assert_int_equal(sim_calls("/customservice/kfsession/create"), 0);
    /* (as WeChat would after that reply) */
    cmd_do(f, "DEL " P "kfs_at");
    event(f, "assign", A, "dequeued", "");  /* from the queue: created */
    pass(f, NOW);
    assert_int_equal(f->c.queued, 1);
    assert_int_equal(f->c.done, 1);
    assert_wechat_has(A);
    /* a transfer: A's session closed, B's created, in that order */
    event(f, "transfer", B, "transfer", "");
    pass(f, NOW);
    assert_int_equal(f->c.queued, 2);
    assert_int_equal(f->c.done, 1);     /* one step of a user a pass */
    assert_wechat_has("");
    pass(f, NOW);
    assert_int_equal(f->c.done, 1);
    assert_wechat_has(B);
    pass(f, NOW);
    assert_int_equal(f->c.done, 0);
    /* wxkf closes it: closed at WeChat */
    event(f, "close", B, "idle_timeout", "");
    pass(f, NOW);
    assert_int_equal(f->c.done, 1);
    assert_wechat_has("");
    assert_int_equal(sim_calls("/customservice/kfsession/close"), 2);
    assert_int_equal(cmd_num(f, "EXISTS " P "kfs:" USER), 0);
    assert_int_equal(cmd_num(f, "ZCARD " P "kfs_due"), 0);
    assert_int_equal(cmd_num(f, "HLEN " P "kfs_at"), 0);
    /* the agent reopens it (POST …/reopen): made at WeChat too */
    event(f, "assign", A, "reopen", "");
    pass(f, NOW);
    assert_int_equal(f->c.queued, 1);
    assert_int_equal(f->c.done, 1);
    assert_wechat_has(A);
}

/* How many consumers the kfsession group has. */
static long long consumers(struct fixture *f)
{
    return cmd_num(f, "EVAL %s 1 %s %s",
                   "return #redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])",
                   P "events", WECHAT_KF_GROUP);
}

/* Each `wxkf jobs` start reads under a new consumer name: the names of
 * processes gone (idle past forget_ms, nothing pending since the script
 * acknowledges what it reads) are forgotten, at most once a minute. */
static void test_restarts_leave_no_idle_consumers_behind(void **st)
{
    struct fixture *f = *st;
    int i;

    f->k.forget_ms = 50;
    pass(f, NOW);                       /* creates the group */
    for (i = 0; i < 6; i++) {           /* six restarts */
        snprintf(f->k.consumer, sizeof(f->k.consumer), "jobs-%d", 900 + i);
        f->k.next_forget = 0;
        tu_sleep_ms(80);
        event(f, "close", A, "idle_timeout", "");
        pass(f, NOW + 1000 * i);
    }
    assert_int_equal(cmd_num(f, "XLEN " P "events"), 6);
    assert_int_equal(consumers(f), 1);
    /* not before a minute has passed since the last look */
    snprintf(f->k.consumer, sizeof(f->k.consumer), "jobs-%d", 999);
    tu_sleep_ms(80);
    event(f, "close", A, "idle_timeout", "");
    pass(f, NOW + 5000 + 1000);
    assert_int_equal(consumers(f), 2);
    pass(f, NOW + 5000 + WECHAT_KF_FORGET_EVERY_MS);
    assert_int_equal(consumers(f), 1);
}

static void test_what_wechat_did_itself_is_not_echoed(void **st)
{
    struct fixture *f = *st;

    two_agents_online();
    pass(f, NOW);
    event(f, "assign", A, "kf_create_session", "");
    event(f, "transfer", B, "kf_switch_session", "");
    event(f, "close", B, "agent", "wechat");
    /* a local agent (no '@') never reaches WeChat */
    event(f, "assign", "local1", "dequeued", "");
    event(f, "close", "local1", "agent", "");
    pass(f, NOW);
    assert_int_equal(f->c.queued, 0);
    assert_int_equal(sim_calls("/customservice/kfsession/create") +
                     sim_calls("/customservice/kfsession/close"), 0);
    assert_int_equal(cmd_num(f, "ZCARD " P "kfs_due"), 0);
}

static void test_a_transient_failure_is_retried_a_refusal_is_not(void **st)
{
    struct fixture *f = *st;

    two_agents_online();
    pass(f, NOW);
    cmd_do(f, "HSET " P "kfs_at " USER " " A);
    tu_sim_post(&S.sim, "/_sim/fault", "{\"path\":\"/customservice/"
                "kfsession/create\",\"kind\":\"errcode\",\"errcode\":-1}");
    event(f, "transfer", B, "transfer", "");
    pass(f, NOW);           /* close A: WeChat has no session: refused */
    assert_int_equal(f->c.refused, 1);
    assert_int_equal(f->c.last_errcode, 65413);
    pass(f, NOW);           /* create B: -1, retried in 5 s */
    assert_int_equal(f->c.retried, 1);
    assert_int_equal(f->c.last_errcode, -1);
    assert_wechat_has("");
    pass(f, NOW + WECHAT_KF_RETRY_MS - 1);
    assert_int_equal(f->c.retried + f->c.done, 0);
    pass(f, NOW + WECHAT_KF_RETRY_MS);
    assert_int_equal(f->c.done, 1);
    assert_wechat_has(B);
    assert_int_equal(sim_calls("/customservice/kfsession/create"), 2);
}

static void test_a_step_failing_too_often_is_dropped(void **st)
{
    struct fixture *f = *st;
    int64_t now = NOW;
    int i;

    two_agents_online();
    pass(f, now);
    tu_sim_post(&S.sim, "/_sim/fault", "{\"path\":\"/customservice/"
                "kfsession/create\",\"kind\":\"http\",\"status\":502,"
                "\"count\":100}");
    event(f, "assign", A, "dequeued", "");
    for (i = 1; i < WECHAT_KF_TRIES; i++) {
        pass(f, now);
        assert_int_equal(f->c.retried, 1);
        now += WECHAT_KF_RETRY_MAX_MS;
    }
    pass(f, now);
    assert_int_equal(f->c.dropped, 1);
    assert_int_equal(cmd_num(f, "ZCARD " P "kfs_due"), 0);
    assert_int_equal(cmd_num(f, "HLEN " P "kfs_tries"), 0);
    assert_int_equal(sim_calls("/customservice/kfsession/create"),
                     WECHAT_KF_TRIES);
}

/* --- presence from WeChat ------------------------------------------------ */

/* An agent in the Redis mirror (what agent_mirror writes), offline. */
static void agent(struct fixture *f, const char *a)
{
    cmd_do(f, "HSET " P "agent:%s nick %s weight 1 groups \"\" status "
           "offline", a, a);
    cmd_do(f, "SADD " P "agents %s", a);
}

static char *status_of(struct fixture *f, const char *a)
{
    redisReply *r = redisCommand(f->rc, "HGET " P "agent:%s status", a);
    char *s;

    assert_non_null(r);
    s = strdup(r->type == REDIS_REPLY_STRING ? r->str : "(none)");
    freeReplyObject(r);
    return s;
}

static void assert_status(struct fixture *f, const char *a, const char *st)
{
    char *s = status_of(f, a);

    if (strcmp(s, st) != 0) {
        free(s);
        fail_msg("%s is not %s", a, st);
    }
    free(s);
}

static void poll_at(struct fixture *f, int64_t now)
{
    memset(&f->c, 0, sizeof(f->c));
    assert_int_equal(wechat_kf_poll(&f->k, now, &f->c), 0);
}

static void test_poll_follows_wechats_online_list(void **st)
{
    struct fixture *f = *st;
    char status[16];
    long moved;

    two_agents_online();
    tu_sim_post(&S.sim, "/_sim/kf_online", "{\"kf_account\":\"" B "\","
                "\"status\":0}");
    agent(f, A);
    agent(f, B);
    agent(f, "local1");
    /* a local agent's presence is its console's */
    assert_int_equal(route_presence(&f->route, "local1", "online", "request",
                                    NOW, status, sizeof(status), &moved,
                                    NULL), 0);
    poll_at(f, NOW);
    assert_int_equal(f->c.polls, 1);
    assert_int_equal(f->c.polls_failed, 0);
    assert_int_equal(f->c.set_online, 1);
    assert_status(f, A, "online");
    assert_status(f, B, "offline");
    assert_int_equal(cmd_num(f, "ZSCORE " P "hb " A), NOW);
    /* not due before wechat_poll: no call */
    poll_at(f, NOW + 29999);
    assert_int_equal(f->c.polls, 0);
    assert_int_equal(sim_calls("/cgi-bin/customservice/getonlinekflist"), 1);
    /* a pause set in wxkf holds while WeChat lists the agent; the
     * heartbeat is refreshed */
    assert_int_equal(route_presence(&f->route, A, "paused", "request",
                                    NOW + 1000, status, sizeof(status),
                                    &moved, NULL), 0);
    poll_at(f, NOW + 30000);
    assert_int_equal(f->c.kept, 1);
    assert_status(f, A, "paused");
    assert_int_equal(cmd_num(f, "ZSCORE " P "hb " A), NOW + 30000);
    /* WeChat: A offline, B online */
    tu_sim_post(&S.sim, "/_sim/kf_online", "{\"kf_account\":\"" A "\","
                "\"status\":0}");
    tu_sim_post(&S.sim, "/_sim/kf_online", "{\"kf_account\":\"" B "\","
                "\"status\":1}");
    poll_at(f, NOW + 60000);
    assert_int_equal(f->c.set_online, 1);
    assert_int_equal(f->c.set_offline, 1);
    assert_status(f, A, "offline");
    assert_status(f, B, "online");
    assert_status(f, "local1", "online");
    assert_int_equal(cmd_num(f, "ZSCORE " P "hb local1"), NOW);
}

static void test_failed_polls_keep_presence_then_fall_back(void **st)
{
    struct fixture *f = *st;
    struct route_sweep_counts sw;
    int64_t now = NOW;
    int i;

    two_agents_online();
    agent(f, A);
    poll_at(f, now);
    assert_status(f, A, "online");
    tu_sim_post(&S.sim, "/_sim/fault", "{\"path\":\"/cgi-bin/customservice/"
                "getonlinekflist\",\"kind\":\"errcode\",\"errcode\":48001,"
                "\"count\":100}");
    for (i = 1; i <= WECHAT_KF_POLL_FAILS; i++) {
        now += 30000;
        poll_at(f, now);
        assert_int_equal(f->c.polls_failed, 1);
        assert_int_equal(f->c.polls_failed_in_row, i);
        assert_int_equal(f->c.fell_back, 0);
        assert_int_equal(f->c.last_errcode, 48001);
        assert_string_equal(f->c.last_call, "getonlinekflist");
        assert_status(f, A, "online");
        assert_int_equal(cmd_num(f, "ZSCORE " P "hb " A), now);
    }
    /* one more: wxkf stops vouching, the heartbeat ages */
    poll_at(f, now + 30000);
    assert_int_equal(f->c.fell_back, 1);
    assert_int_equal(cmd_num(f, "ZSCORE " P "hb " A), now);
    memset(&sw, 0, sizeof(sw));
    assert_int_equal(route_sweep(&f->route, now + 90001, 90, 100, &sw), 0);
    assert_int_equal(sw.agents_lost, 1);
    assert_status(f, A, "offline");
    /* the first good poll brings it back */
    tu_sim_post(&S.sim, "/_sim/faults/clear", "{}");
    poll_at(f, now + 120000);
    assert_int_equal(f->c.polls_failed_in_row, 0);
    assert_status(f, A, "online");
}

static void test_an_answer_without_the_list_is_a_failed_poll(void **st)
{
    struct fixture *f = *st;

    two_agents_online();
    agent(f, A);
    poll_at(f, NOW);
    assert_status(f, A, "online");
    tu_sim_post(&S.sim, "/_sim/fault", "{\"path\":\"/cgi-bin/customservice/"
                "getonlinekflist\",\"kind\":\"errcode\",\"errcode\":0}");
    poll_at(f, NOW + 30000);
    assert_int_equal(f->c.polls_failed, 1);
    assert_status(f, A, "online");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_online_list_needs_the_array),
        cmocka_unit_test(test_listed_means_a_nonzero_status_of_that_account),
        cmocka_unit_test(
            test_presence_op_follows_wechat_and_keeps_it_on_failure),
        cmocka_unit_test(test_verdict_retries_only_what_can_pass_later),
        cmocka_unit_test_setup_teardown(test_steps_follow_reroutes_and_closes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_restarts_leave_no_idle_consumers_behind, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_what_wechat_did_itself_is_not_echoed, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_transient_failure_is_retried_a_refusal_is_not, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_a_step_failing_too_often_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_poll_follows_wechats_online_list, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_failed_polls_keep_presence_then_fall_back, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_an_answer_without_the_list_is_a_failed_poll, setup,
            teardown),
    };

    return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
