/* Tests of lib/wx_api (and the Redis side, lib/wx_token) against a private
 * redis-server and the WeChat simulator (test/sim/wechat_api_sim.py), which
 * both start once for the suite; every test starts from a reset simulator
 * and an empty Redis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "store.h"
#include "testutil.h"
#include "wx_api.h"
#include "wx_token.h"

#define APPID "wx5e1a6c0d2b3f4a59"
#define SECRET "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
#define P "wxkf:{" APPID "}:"
#define SEND "/cgi-bin/message/custom/send"
#define STABLE "/cgi-bin/stable_token"
#define KFLIST "/cgi-bin/customservice/getkflist"
#define USER "oUser0000000000000000000001"

/* --- the simulator ------------------------------------------------------- */

static json_t *sim_json(const struct tu_sim *s, const char *method,
                        const char *path, const char *body)
{
    char url[512];
    long status;
    char *text;
    json_t *j;

    snprintf(url, sizeof(url), "%s%s", s->base, path);
    text = tu_http(method, url, body, &status);
    if (status != 200)
        fail_msg("%s %s -> %ld %s", method, path, status, text);
    j = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(j);
    return j;
}

static void sim_do(const struct tu_sim *s, const char *path, const char *fmt,
                   ...) __attribute__((format(printf, 3, 4)));

static void sim_do(const struct tu_sim *s, const char *path, const char *fmt,
                   ...)
{
    char body[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    json_decref(sim_json(s, "POST", path, body));
}

/* Calls the simulator saw on path. */
static long sim_calls(const struct tu_sim *s, const char *path)
{
    char q[256];
    json_t *j;
    long n;

    snprintf(q, sizeof(q), "/_sim/calls?path=%s", path);
    j = sim_json(s, "GET", q, NULL);
    n = (long)json_integer_value(json_object_get(j, "count"));
    json_decref(j);
    return n;
}

/* How often the simulator answered path with result ("0", "-1",
 * "http502", "drop", ...). */
static long sim_results(const struct tu_sim *s, const char *path,
                        const char *result)
{
    char q[256];
    json_t *j;
    long n;

    snprintf(q, sizeof(q), "/_sim/calls?path=%s", path);
    j = sim_json(s, "GET", q, NULL);
    n = (long)json_integer_value(json_object_get(
        json_object_get(j, "results"), result));
    json_decref(j);
    return n;
}

static size_t sim_sent(const struct tu_sim *s)
{
    json_t *j = sim_json(s, "GET", "/_sim/sent", NULL);
    size_t n = json_array_size(j);

    json_decref(j);
    return n;
}

/* The simulator's current stable token (caller frees). */
static char *sim_stable_token(const struct tu_sim *s)
{
    json_t *j = sim_json(s, "GET", "/_sim/token", NULL);
    const char *t = json_string_value(json_object_get(j, "stable"));
    char *out;

    assert_non_null(t);
    out = strdup(t);
    json_decref(j);
    return out;
}

/* --- fixtures ------------------------------------------------------------ */

static struct tu_wx S;

/* One process's client: its own Redis connection and wx_api. */
struct client {
    struct store st;
    struct wx_api *api;
};

struct fixture {
    struct config cfg;
    struct client a, b;
    struct wx_api_result r;
};

static int client_open(struct client *c, const struct config *cfg,
                       const char *redis_url)
{
    int rc = store_init(&c->st, redis_url, APPID, 500, 2000);

    if (rc == 0)
        rc = wx_api_new(cfg, &c->st, &c->api);
    return rc;
}

static void client_close(struct client *c)
{
    wx_api_free(c->api);
    c->api = NULL;
    store_release(&c->st);
}

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

static void redis_do(const char *a, const char *b, const char *c,
                     const char *d, const char *e, const char *f,
                     const char *g)
{
    const char *argv[] = { a, b, c, d, e, f, g, NULL };

    free(tu_redis_cmd(&S.redis, argv));
}

static char *redis_get(const char *a, const char *b, const char *c)
{
    const char *argv[] = { a, b, c, NULL };

    return tu_redis_cmd(&S.redis, argv);
}

static int setup(void **st)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    redis_do("FLUSHALL", NULL, NULL, NULL, NULL, NULL, NULL);
    sim_do(&S.sim, "/_sim/reset", "{}");
    config_init(&f->cfg);
    tu_wx_config(&f->cfg, &S, APPID, SECRET);
    f->cfg.wechat.api_retries = 3;
    f->cfg.ratelimit.send_per_day = 1000;
    f->cfg.ratelimit.token_per_day = 100;
    assert_int_equal(client_open(&f->a, &f->cfg, S.redis_url), 0);
    assert_int_equal(client_open(&f->b, &f->cfg, S.redis_url), 0);
    wx_api_result_init(&f->r);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    struct fixture *f = *st;

    wx_api_result_release(&f->r);
    client_close(&f->a);
    client_close(&f->b);
    config_release(&f->cfg);
    free(f);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int send_text(struct wx_api *a, const char *to, const char *text,
                     struct wx_api_result *r)
{
    json_t *payload = json_pack("{s:s}", "content", text);
    int rc = wx_api_send(a, to, NULL, "text", payload, r);

    json_decref(payload);
    return rc;
}

static void user_writes(const char *openid)
{
    sim_do(&S.sim, "/_sim/inbound", "{\"openid\":\"%s\"}", openid);
}

/* --- the access token ---------------------------------------------------- */

static void test_wx_api_token_is_fetched_once_and_shared(void **st)
{
    struct fixture *f = *st;
    char *cached;

    user_writes(USER);
    assert_int_equal(send_text(f->a.api, USER, "one", &f->r), 0);
    assert_int_equal(f->r.attempts, 1);
    assert_int_equal(f->r.http_status, 200);
    assert_int_equal(f->r.errcode, 0);
    /* another instance (process) sharing the Redis uses the cached one */
    assert_int_equal(send_text(f->b.api, USER, "two", &f->r), 0);
    assert_int_equal(send_text(f->a.api, USER, "three", &f->r), 0);
    assert_int_equal(sim_calls(&S.sim, STABLE), 1);
    assert_int_equal(sim_calls(&S.sim, "/cgi-bin/token"), 0);
    assert_int_equal(sim_sent(&S.sim), 3);
    cached = redis_get("HGET", P "wx:token", "token");
    assert_true(strlen(cached) > 100);
    free(cached);
}

static void test_wx_api_classic_token_endpoint(void **st)
{
    struct fixture *f = *st;

    tu_set_str(&f->cfg.wechat.token_endpoint, "token");
    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), 0);
    assert_int_equal(wx_api_kf_list(f->b.api, &f->r), 0);
    assert_int_equal(sim_calls(&S.sim, "/cgi-bin/token"), 1);
    assert_int_equal(sim_calls(&S.sim, STABLE), 0);
}

/* A child process: its own client, one send. Exit status 0 = sent. */
static int child_send(const struct config *cfg, int gate)
{
    struct client c;
    struct wx_api_result r;
    char go;
    int rc;

    if (read(gate, &go, 1) < 0)
        return 9;
    if (client_open(&c, cfg, S.redis_url) < 0)
        return 8;
    wx_api_result_init(&r);
    rc = send_text(c.api, USER, "from a child", &r);
    wx_api_result_release(&r);
    client_close(&c);
    return rc == 0 ? 0 : 1;
}

static void test_wx_api_eight_processes_refresh_the_token_once(void **st)
{
    struct fixture *f = *st;
    int gate[2], i, status;
    pid_t pids[8];

    user_writes(USER);
    sim_do(&S.sim, "/_sim/config", "{\"send_quota\":100}");
    assert_int_equal(pipe(gate), 0);
    for (i = 0; i < 8; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(gate[1]);
            _exit(child_send(&f->cfg, gate[0]));
        }
    }
    close(gate[0]);
    close(gate[1]);             /* every child starts now */
    for (i = 0; i < 8; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(sim_calls(&S.sim, STABLE), 1);
    assert_int_equal(sim_sent(&S.sim), 8);
}

static void test_wx_api_expired_token_is_refreshed_once_and_retried(void **st)
{
    struct fixture *f = *st;

    user_writes(USER);
    assert_int_equal(send_text(f->a.api, USER, "before", &f->r), 0);
    sim_do(&S.sim, "/_sim/token", "{\"expire_all\":true}");
    assert_int_equal(send_text(f->b.api, USER, "after", &f->r), 0);
    assert_int_equal(f->r.attempts, 2);
    assert_int_equal(sim_results(&S.sim, SEND, "42001"), 1);
    assert_int_equal(sim_calls(&S.sim, STABLE), 2);
    /* the other instance uses the new token without a refresh */
    assert_int_equal(send_text(f->a.api, USER, "again", &f->r), 0);
    assert_int_equal(f->r.attempts, 1);
    assert_int_equal(sim_calls(&S.sim, STABLE), 2);
}

static void test_wx_api_revoked_token_is_refreshed_once_and_retried(void **st)
{
    struct fixture *f = *st;

    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), 0);
    sim_do(&S.sim, "/_sim/token", "{\"revoke_all\":true}");
    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), 0);
    assert_int_equal(f->r.attempts, 2);
    assert_int_equal(sim_results(&S.sim, KFLIST, "40001"), 1);
    assert_int_equal(sim_calls(&S.sim, STABLE), 2);
}

static void test_wx_api_token_rejected_twice_is_permanent(void **st)
{
    struct fixture *f = *st;

    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), 0);
    sim_do(&S.sim, "/_sim/fault", "{\"path\":\"" KFLIST "\",\"kind\":"
           "\"errcode\",\"errcode\":40014,\"count\":2}");
    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), KF_EWECHAT);
    assert_int_equal(f->r.errcode, 40014);
    assert_int_equal(f->r.attempts, 2);
    assert_int_equal(f->r.transient, 0);
}

static void test_wx_api_a_newer_token_survives_the_drop(void **st)
{
    struct fixture *f = *st;
    struct wx_token t;
    int dropped = -1;
    char *tok;

    wx_token_init(&t, &f->a.st);
    assert_int_equal(wx_token_put(&t, "NEWER", 4102444800000LL, 0, "x"), 0);
    assert_int_equal(wx_token_drop(&t, "OLDER", &dropped), 0);
    assert_int_equal(dropped, 0);
    tok = redis_get("HGET", P "wx:token", "token");
    assert_string_equal(tok, "NEWER");
    free(tok);
    assert_int_equal(wx_token_drop(&t, "NEWER", &dropped), 0);
    assert_int_equal(dropped, 1);
    tok = redis_get("EXISTS", P "wx:token", NULL);
    assert_string_equal(tok, "0");
    free(tok);
}

static void test_wx_api_lock_is_taken_by_one_owner(void **st)
{
    struct fixture *f = *st;
    int64_t t0 = (int64_t)time(NULL) * 1000;  /* the hash expires for real */
    struct wx_token_cached cur;
    enum wx_token_state s;
    struct wx_token t;

    wx_token_init(&t, &f->a.st);
    assert_int_equal(wx_token_acquire(&t, t0, "me", 10000, &s, &cur), 0);
    assert_int_equal(s, WX_TOKEN_LOCKED);
    assert_string_equal(cur.token, "");
    assert_int_equal(wx_token_acquire(&t, t0, "you", 10000, &s, &cur), 0);
    assert_int_equal(s, WX_TOKEN_BUSY);
    assert_int_equal(wx_token_unlock(&t, "you"), 0);    /* not yours */
    assert_int_equal(wx_token_acquire(&t, t0, "you", 10000, &s, &cur), 0);
    assert_int_equal(s, WX_TOKEN_BUSY);
    /* put releases the owner's lock; 20 min left is fresh */
    assert_int_equal(wx_token_put(&t, "T1", t0 + 1200000, t0, "me"), 0);
    assert_int_equal(wx_token_acquire(&t, t0 + 1000, "you", 10000, &s,
                                      &cur), 0);
    assert_int_equal(s, WX_TOKEN_FRESH);
    assert_string_equal(cur.token, "T1");
    assert_int_equal(cur.expires_ms, t0 + 1200000);
    /* 5 min left, fetched 15 min ago: time to refresh, the old one rides
     * along */
    assert_int_equal(wx_token_acquire(&t, t0 + 900000, "you", 10000, &s,
                                      &cur), 0);
    assert_int_equal(s, WX_TOKEN_LOCKED);
    assert_string_equal(cur.token, "T1");
    /* 5 min left but fetched 30 s ago: not again yet */
    assert_int_equal(wx_token_put(&t, "T1", t0 + 1200000, t0 + 870000,
                                  "you"), 0);
    assert_int_equal(wx_token_acquire(&t, t0 + 900000, "me", 10000, &s,
                                      &cur), 0);
    assert_int_equal(s, WX_TOKEN_FRESH);
}

/* A fetcher for wx_token_get without HTTP. */
struct fake {
    int calls, rc, answered;
    const char *token;
};

static int fake_fetch(void *ctx, char *token, long *expires_in,
                      int *answered)
{
    struct fake *k = ctx;

    k->calls++;
    *answered = k->answered;
    if (k->rc == 0) {
        snprintf(token, WX_TOKEN_MAX, "%s", k->token);
        *expires_in = 7200;
    }
    return k->rc;
}

static void test_wx_api_failed_fetch_falls_back_to_the_valid_token(
    void **st)
{
    struct fixture *f = *st;
    struct fake k = { 0, 0, 1, "FIRST" };
    const struct wx_token_fetcher fe = { fake_fetch, &k, 10, 10000, 3000 };
    struct wx_token_refusal why;
    enum wx_token_stop stop;
    char out[WX_TOKEN_MAX], exp[32], *v;
    struct wx_token t;
    long spent = -1;

    wx_token_init(&t, &f->a.st);
    assert_int_equal(wx_token_get(&t, &fe, out, &stop, &why), 0);
    assert_string_equal(out, "FIRST");
    assert_int_equal(stop, WX_TOKEN_STOP_NONE);
    assert_int_equal(k.calls, 1);
    assert_int_equal(wx_token_get(&t, &fe, out, &stop, &why), 0);
    assert_int_equal(k.calls, 1);                    /* cached */
    /* 5 minutes left, fetched long ago: refresh, which fails without an
     * answer -> the current token, the budget unit given back */
    snprintf(exp, sizeof(exp), "%lld",
             (long long)time(NULL) * 1000 + 300000);
    redis_do("HSET", P "wx:token", "expires_ms", exp, "fetched_ms", "0",
             NULL);
    k.rc = 42;
    k.answered = 0;
    assert_int_equal(wx_token_get(&t, &fe, out, &stop, &why), 0);
    assert_string_equal(out, "FIRST");
    assert_int_equal(k.calls, 2);
    assert_int_equal(wx_api_spent(f->a.api, "token", &spent), 0);
    assert_int_equal(spent, 1);
    v = redis_get("GET", P "wx:token_lock", NULL);
    assert_string_equal(v, "(nil)");
    free(v);
    /* no token at all: the fetcher's code comes back */
    redis_do("DEL", P "wx:token", NULL, NULL, NULL, NULL, NULL);
    k.answered = 1;
    assert_int_equal(wx_token_get(&t, &fe, out, &stop, &why), 42);
    assert_int_equal(stop, WX_TOKEN_STOP_FETCH);
    assert_string_equal(out, "");
    assert_int_equal(wx_api_spent(f->a.api, "token", &spent), 0);
    assert_int_equal(spent, 2);                      /* it was answered */
}

static void test_wx_api_token_budget_stops_the_fetch(void **st)
{
    struct fixture *f = *st;
    struct fake k = { 0, 0, 1, "T" };
    const struct wx_token_fetcher fe = { fake_fetch, &k, 1, 10000, 3000 };
    struct wx_token_refusal why;
    enum wx_token_stop stop;
    char out[WX_TOKEN_MAX], *v;
    struct wx_token t;

    wx_token_init(&t, &f->a.st);
    assert_int_equal(wx_token_get(&t, &fe, out, &stop, &why), 0);
    redis_do("DEL", P "wx:token", NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(wx_token_get(&t, &fe, out, &stop, &why), KF_ELIMIT);
    assert_int_equal(stop, WX_TOKEN_STOP_BUDGET);
    assert_int_equal(why.budget, 1);
    assert_true(why.retry_after_ms > 0);
    assert_int_equal(k.calls, 1);
    v = redis_get("GET", P "wx:token_lock", NULL);
    assert_string_equal(v, "(nil)");
    free(v);
}

static void test_wx_api_dead_fetchers_lock_costs_only_its_ttl(void **st)
{
    struct fixture *f = *st;
    struct fake k = { 0, 0, 1, "AFTER" };
    const struct wx_token_fetcher fe = { fake_fetch, &k, 10, 10000, 3000 };
    struct wx_token_refusal why;
    enum wx_token_stop stop;
    char out[WX_TOKEN_MAX];
    struct wx_token t;
    int64_t t0 = now_ms();

    wx_token_init(&t, &f->a.st);
    redis_do("SET", P "wx:token_lock", "dead", "PX", "400", NULL, NULL);
    assert_int_equal(wx_token_get(&t, &fe, out, &stop, &why), 0);
    assert_string_equal(out, "AFTER");
    assert_int_equal(k.calls, 1);
    assert_true(now_ms() - t0 >= 350);
    assert_true(now_ms() - t0 < 1500);
}

static void test_wx_api_stale_token_is_used_while_another_refreshes(
    void **st)
{
    struct fixture *f = *st;
    char exp[32], *lock;

    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), 0);
    /* 5 minutes left, fetched long ago, and someone else holds the lock */
    snprintf(exp, sizeof(exp), "%lld",
             (long long)time(NULL) * 1000 + 300000);
    redis_do("HSET", P "wx:token", "expires_ms", exp, "fetched_ms", "0",
             NULL);
    redis_do("SET", P "wx:token_lock", "someone", "PX", "10000", NULL,
             NULL);
    assert_int_equal(wx_api_kf_list(f->b.api, &f->r), 0);
    assert_int_equal(sim_calls(&S.sim, STABLE), 1);
    /* lock free: this call refreshes (and still has a token if not) */
    redis_do("DEL", P "wx:token_lock", NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(wx_api_kf_list(f->b.api, &f->r), 0);
    assert_int_equal(sim_calls(&S.sim, STABLE), 2);
    lock = redis_get("GET", P "wx:token_lock", NULL);
    assert_string_equal(lock, "(nil)");            /* released */
    free(lock);
}

static void test_wx_api_short_lived_token_is_not_refetched_each_call(
    void **st)
{
    struct fixture *f = *st;
    int i;

    /* under 10 minutes from the start: near its end stable_token keeps
     * answering the same token; a minute passes between fetches */
    sim_do(&S.sim, "/_sim/config", "{\"expires_in\":500}");
    for (i = 0; i < 5; i++)
        assert_int_equal(wx_api_kf_list(i % 2 ? f->a.api : f->b.api, &f->r),
                         0);
    assert_int_equal(sim_calls(&S.sim, STABLE), 1);
}

static void test_wx_api_waits_bounded_for_another_fetcher(void **st)
{
    struct fixture *f = *st;
    int64_t t0;

    f->cfg.wechat.api_retries = 0;
    redis_do("SET", P "wx:token_lock", "someone", "PX", "60000", NULL,
             NULL);
    t0 = now_ms();
    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), KF_EBACKEND);
    assert_true(now_ms() - t0 >= 2900);
    assert_true(now_ms() - t0 < 4500);
    assert_int_equal(f->r.transient, 1);
    assert_int_equal(f->r.attempts, 0);
    assert_int_equal(sim_calls(&S.sim, STABLE), 0);
    assert_int_equal(sim_calls(&S.sim, KFLIST), 0);
}

static void test_wx_api_wrong_secret_is_permanent_and_not_shown(void **st)
{
    struct fixture *f = *st;

    tu_set_str(&f->cfg.wechat.app_secret, "ffffffffffffffffffffffffffffffff");
    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), KF_EWECHAT);
    assert_int_equal(f->r.errcode, 40001);
    assert_int_equal(f->r.transient, 0);
    assert_int_equal(f->r.attempts, 0);
    assert_null(f->r.body);
    assert_non_null(strstr(f->r.errmsg, "token endpoint"));
    assert_null(strstr(f->r.errmsg, "ffffffff"));
    assert_int_equal(sim_calls(&S.sim, KFLIST), 0);
    /* the token endpoint's own errmsg naming the secret is scrubbed */
    tu_set_str(&f->cfg.wechat.app_secret, SECRET);
    sim_do(&S.sim, "/_sim/fault", "{\"path\":\"" STABLE "\",\"kind\":"
           "\"errcode\",\"errcode\":40164,\"errmsg\":\"secret " SECRET
           " not whitelisted\"}");
    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), KF_EWECHAT);
    assert_int_equal(f->r.errcode, 40164);
    assert_null(strstr(f->r.errmsg, SECRET));
    assert_non_null(strstr(f->r.errmsg, "***"));
}

static void test_wx_api_access_token_never_in_errmsg(void **st)
{
    struct fixture *f = *st;
    char body[1024];
    char *tok;

    user_writes(USER);
    assert_int_equal(send_text(f->a.api, USER, "hi", &f->r), 0);
    tok = sim_stable_token(&S.sim);
    snprintf(body, sizeof(body), "{\"path\":\"" SEND "\",\"kind\":"
             "\"errcode\",\"errcode\":40003,\"errmsg\":\"bad call "
             "access_token=%s\"}", tok);
    sim_do(&S.sim, "/_sim/fault", "%s", body);
    assert_int_equal(send_text(f->a.api, USER, "hi", &f->r), KF_EWECHAT);
    assert_int_equal(f->r.errcode, 40003);
    assert_null(strstr(f->r.errmsg, tok));
    assert_non_null(strstr(f->r.errmsg, "access_token=***"));
    /* a network error's text is curl's, without the URL */
    sim_do(&S.sim, "/_sim/fault", "{\"path\":\"" SEND "\",\"kind\":"
           "\"drop\",\"count\":10}");
    f->cfg.wechat.api_retries = 1;
    assert_int_equal(send_text(f->a.api, USER, "hi", &f->r), KF_EBACKEND);
    assert_null(strstr(f->r.errmsg, tok));
    assert_null(strstr(f->r.errmsg, "access_token"));
    assert_null(strstr(f->r.errmsg, "127.0.0.1"));
    free(tok);
}

/* --- retries ----------------------------------------------------------- */

static void test_wx_api_errcode_minus_one_is_retried(void **st)
{
    struct fixture *f = *st;

    user_writes(USER);
    sim_do(&S.sim, "/_sim/fault", "{\"path\":\"" SEND "\",\"kind\":"
           "\"errcode\",\"errcode\":-1,\"count\":2}");
    assert_int_equal(send_text(f->a.api, USER, "hi", &f->r), 0);
    assert_int_equal(f->r.attempts, 3);
    assert_int_equal(f->r.errcode, 0);
    assert_string_equal(f->r.errmsg, "");
    assert_int_equal(sim_sent(&S.sim), 1);
}

static void test_wx_api_errcode_burst_outlasting_retries_is_transient(
    void **st)
{
    struct fixture *f = *st;

    user_writes(USER);
    sim_do(&S.sim, "/_sim/fault", "{\"path\":\"" SEND "\",\"kind\":"
           "\"errcode\",\"errcode\":-1,\"count\":10}");
    assert_int_equal(send_text(f->a.api, USER, "hi", &f->r), KF_EBACKEND);
    assert_int_equal(f->r.attempts, 4);
    assert_int_equal(f->r.transient, 1);
    assert_int_equal(f->r.errcode, -1);
    assert_int_equal(sim_results(&S.sim, SEND, "-1"), 4);
    /* 45009 is transient too */
    sim_do(&S.sim, "/_sim/faults/clear", "{}");
    sim_do(&S.sim, "/_sim/fault", "{\"path\":\"" SEND "\",\"kind\":"
           "\"errcode\",\"errcode\":45009,\"count\":1}");
    assert_int_equal(send_text(f->a.api, USER, "hi", &f->r), 0);
    assert_int_equal(f->r.attempts, 2);
}

static void test_wx_api_outside_window_fails_at_once(void **st)
{
    struct fixture *f = *st;

    sim_do(&S.sim, "/_sim/inbound", "{\"openid\":\"" USER "\",\"ts\":%lld}",
           (long long)time(NULL) - 49 * 3600);
    assert_int_equal(send_text(f->a.api, USER, "late", &f->r), KF_EWECHAT);
    assert_int_equal(f->r.errcode, 45015);
    assert_int_equal(f->r.attempts, 1);
    assert_int_equal(f->r.transient, 0);
    assert_int_equal(f->r.http_status, 200);
    assert_int_equal(sim_calls(&S.sim, SEND), 1);
    assert_non_null(f->r.body);
}

static void test_wx_api_http_502_is_retried(void **st)
{
    struct fixture *f = *st;

    user_writes(USER);
    sim_do(&S.sim, "/_sim/fault", "{\"path\":\"" SEND "\",\"kind\":"
           "\"http\",\"status\":502,\"count\":2}");
    assert_int_equal(send_text(f->a.api, USER, "hi", &f->r), 0);
    assert_int_equal(f->r.attempts, 3);
    assert_int_equal(sim_results(&S.sim, SEND, "http502"), 2);
    assert_int_equal(sim_sent(&S.sim), 1);
    /* a 4xx is not */
    sim_do(&S.sim, "/_sim/fault", "{\"path\":\"" SEND "\",\"kind\":"
           "\"http\",\"status\":403,\"count\":5}");
    assert_int_equal(send_text(f->a.api, USER, "hi", &f->r), KF_EBACKEND);
    assert_int_equal(f->r.attempts, 1);
    assert_int_equal(f->r.transient, 0);
    assert_int_equal(f->r.http_status, 403);
}

static void test_wx_api_dropped_connections_are_retried(void **st)
{
    struct fixture *f = *st;

    user_writes(USER);
    assert_int_equal(send_text(f->a.api, USER, "warm", &f->r), 0);
    sim_do(&S.sim, "/_sim/fault", "{\"path\":\"" SEND "\",\"kind\":"
           "\"drop\",\"count\":2}");
    assert_int_equal(send_text(f->a.api, USER, "hi", &f->r), 0);
    assert_true(f->r.attempts >= 2);
    assert_int_equal(sim_results(&S.sim, SEND, "drop"), 2);
    assert_int_equal(sim_sent(&S.sim), 2);
}

static void test_wx_api_timeouts_are_retried_and_bounded(void **st)
{
    struct fixture *f = *st;
    int64_t t0, took;

    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), 0);
    f->cfg.wechat.api_timeout_ms = 300;
    f->cfg.wechat.api_retries = 2;
    sim_do(&S.sim, "/_sim/fault", "{\"path\":\"" KFLIST "\",\"kind\":"
           "\"delay\",\"delay_ms\":1500,\"count\":1}");
    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), 0);
    assert_int_equal(f->r.attempts, 2);
    sim_do(&S.sim, "/_sim/fault", "{\"path\":\"" KFLIST "\",\"kind\":"
           "\"delay\",\"delay_ms\":1500,\"count\":10}");
    t0 = now_ms();
    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), KF_EBACKEND);
    took = now_ms() - t0;
    assert_int_equal(f->r.attempts, 3);
    assert_int_equal(f->r.transient, 1);
    assert_int_equal(f->r.http_status, 0);
    assert_non_null(strstr(f->r.errmsg, "imeout"));
    /* 3 x 300 ms plus at most 100 + 200 ms of backoff */
    assert_true(took >= 900);
    assert_true(took < 1200 + 600);
}

/* --- rate limit and budgets -------------------------------------------- */

static void test_wx_api_bucket_allows_per_min_then_refuses(void **st)
{
    struct fixture *f = *st;
    int i, allowed = 0, rc = 0;

    f->cfg.ratelimit.wechat_api_per_min = 60;
    for (i = 0; i < 100; i++) {
        rc = wx_api_kf_list(i % 2 ? f->a.api : f->b.api, &f->r);
        if (rc != 0)
            break;
        allowed++;
    }
    assert_int_equal(rc, KF_ELIMIT);
    assert_true(allowed >= 60 && allowed <= 63);
    assert_int_equal(f->r.transient, 1);
    assert_int_equal(f->r.attempts, 0);
    assert_true(f->r.retry_after_ms > 0 && f->r.retry_after_ms <= 1000);
    assert_int_equal(sim_calls(&S.sim, KFLIST), allowed);
    /* one a second comes back */
    tu_sleep_ms(f->r.retry_after_ms + 50);
    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), 0);
}

static void test_wx_api_bucket_refills_from_the_callers_clock(void **st)
{
    struct fixture *f = *st;
    struct wx_token_refusal why;
    struct wx_token t;
    int i;

    wx_token_init(&t, &f->a.st);
    for (i = 0; i < 60; i++)
        assert_int_equal(wx_token_admit(&t, 5000, 60, NULL, 0, &why), 0);
    assert_int_equal(wx_token_admit(&t, 5000, 60, NULL, 0, &why),
                     KF_ELIMIT);
    assert_int_equal(why.budget, 0);
    assert_int_equal(why.retry_after_ms, 1000);
    assert_int_equal(wx_token_admit(&t, 5500, 60, NULL, 0, &why),
                     KF_ELIMIT);
    assert_int_equal(why.retry_after_ms, 500);
    assert_int_equal(wx_token_admit(&t, 6000, 60, NULL, 0, &why), 0);
    assert_int_equal(wx_token_admit(&t, 6000, 60, NULL, 0, &why),
                     KF_ELIMIT);
    /* never above capacity, however long idle */
    for (i = 0; i < 60; i++)
        assert_int_equal(wx_token_admit(&t, 9000000, 60, NULL, 0, &why), 0);
    assert_int_equal(wx_token_admit(&t, 9000000, 60, NULL, 0, &why),
                     KF_ELIMIT);
}

static void test_wx_api_send_budget_refuses(void **st)
{
    struct fixture *f = *st;
    long spent = -1;

    user_writes(USER);
    f->cfg.ratelimit.send_per_day = 2;
    assert_int_equal(send_text(f->a.api, USER, "1", &f->r), 0);
    assert_int_equal(send_text(f->b.api, USER, "2", &f->r), 0);
    assert_int_equal(send_text(f->a.api, USER, "3", &f->r), KF_ELIMIT);
    assert_int_equal(f->r.attempts, 0);
    assert_int_equal(f->r.transient, 1);
    assert_true(f->r.retry_after_ms > 0 &&
                f->r.retry_after_ms <= 86400000LL);
    assert_non_null(strstr(f->r.errmsg, "send"));
    assert_int_equal(sim_sent(&S.sim), 2);
    assert_int_equal(wx_api_spent(f->a.api, "send", &spent), 0);
    assert_int_equal(spent, 2);
    /* other APIs are not in that budget */
    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), 0);
    /* wx_api_call on the send path counts too */
    assert_int_equal(wx_api_call(f->a.api, "POST", SEND, NULL, NULL, &f->r),
                     KF_ELIMIT);
}

static void test_wx_api_send_budget_counts_what_reached_wechat(void **st)
{
    struct fixture *f = *st;
    char dead[64];
    long spent = -1;

    user_writes(USER);
    /* a permanent answer reached WeChat: counted */
    sim_do(&S.sim, "/_sim/fault", "{\"path\":\"" SEND "\",\"kind\":"
           "\"errcode\",\"errcode\":45047}");
    assert_int_equal(send_text(f->a.api, USER, "1", &f->r), KF_EWECHAT);
    assert_int_equal(wx_api_spent(f->a.api, "send", &spent), 0);
    assert_int_equal(spent, 1);
    /* nothing reached anyone: refunded */
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", tu_free_port());
    tu_set_str(&f->cfg.wechat.api_base, dead);
    f->cfg.wechat.api_retries = 1;
    assert_int_equal(send_text(f->a.api, USER, "2", &f->r), KF_EBACKEND);
    assert_int_equal(f->r.attempts, 2);
    assert_int_equal(f->r.http_status, 0);
    assert_int_equal(f->r.transient, 1);
    assert_int_equal(wx_api_spent(f->a.api, "send", &spent), 0);
    assert_int_equal(spent, 1);
}

static void test_wx_api_token_budget_refuses(void **st)
{
    struct fixture *f = *st;
    long spent = -1;

    f->cfg.ratelimit.token_per_day = 1;
    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), 0);
    assert_int_equal(wx_api_spent(f->a.api, "token", &spent), 0);
    assert_int_equal(spent, 1);
    sim_do(&S.sim, "/_sim/token", "{\"expire_all\":true}");
    assert_int_equal(wx_api_kf_list(f->b.api, &f->r), KF_ELIMIT);
    assert_int_equal(f->r.transient, 1);
    assert_true(f->r.retry_after_ms > 0);
    assert_non_null(strstr(f->r.errmsg, "token"));
    assert_int_equal(sim_calls(&S.sim, STABLE), 1);
    assert_int_equal(wx_api_spent(f->a.api, "send", &spent), 0);
    assert_int_equal(spent, 0);
}

static void test_wx_api_redis_down_makes_no_request(void **st)
{
    struct fixture *f = *st;
    struct client c;
    char url[64];

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", tu_free_port());
    assert_int_equal(client_open(&c, &f->cfg, url), 0);
    assert_int_equal(wx_api_kf_list(c.api, &f->r), KF_EBACKEND);
    assert_int_equal(f->r.transient, 1);
    assert_int_equal(f->r.attempts, 0);
    assert_non_null(strstr(f->r.errmsg, "redis"));
    client_close(&c);
    assert_int_equal(sim_calls(&S.sim, STABLE), 0);
    assert_int_equal(sim_calls(&S.sim, KFLIST), 0);
}

/* --- the wrappers ------------------------------------------------------- */

static void test_wx_api_media_upload_and_get_round_trip(void **st)
{
    struct fixture *f = *st;
    static const unsigned char jpeg[] = {
        0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00, 0x01,
        0x00, 0x00, 0x7f, 0x80, 0xfe, 0x00, 0xff, 0xd9,
    };
    char id[128], ct[64];
    struct kf_buf out;

    kf_buf_init(&out, 1 << 20);
    assert_int_equal(wx_api_media_upload(f->a.api, "image", "a.jpg", jpeg,
                                         sizeof(jpeg), id, sizeof(id),
                                         &f->r), 0);
    assert_true(strlen(id) > 10);
    assert_int_equal(wx_api_media_get(f->b.api, id, &out, ct, sizeof(ct),
                                      &f->r), 0);
    assert_int_equal(out.len, sizeof(jpeg));
    assert_memory_equal(out.p, jpeg, sizeof(jpeg));
    assert_string_equal(ct, "image/jpeg");
    assert_null(f->r.body);
    /* too big for the caller's cap */
    out.max = 8;
    assert_int_equal(wx_api_media_get(f->b.api, id, &out, ct, sizeof(ct),
                                      &f->r), KF_ETOOBIG);
    assert_int_equal(out.len, 0);
    assert_int_equal(f->r.attempts, 1);
    /* unknown media is WeChat's JSON error, not bytes */
    out.max = 1 << 20;
    assert_int_equal(wx_api_media_get(f->b.api, "nope", &out, ct, sizeof(ct),
                                      &f->r), KF_EWECHAT);
    assert_int_equal(f->r.errcode, 40007);
    assert_int_equal(out.len, 0);
    /* a wrong type is refused by WeChat */
    assert_int_equal(wx_api_media_upload(f->a.api, "bogus", "a.jpg", jpeg,
                                         sizeof(jpeg), id, sizeof(id),
                                         &f->r), KF_EWECHAT);
    assert_int_equal(f->r.errcode, 40004);
    kf_buf_release(&out);
}

static void test_wx_api_media_upload_retries_the_multipart_body(void **st)
{
    struct fixture *f = *st;
    static const char voice[] = "#!AMR\n<fake voice bytes>";
    char id[128];

    sim_do(&S.sim, "/_sim/fault", "{\"path\":\"/cgi-bin/media/upload\","
           "\"kind\":\"http\",\"status\":503}");
    if (wx_api_media_upload(f->a.api, "voice", "v.amr", voice,
                            sizeof(voice) - 1, id, sizeof(id), &f->r) != 0)
        fail_msg("upload: %s", f->r.errmsg);
    assert_int_equal(f->r.attempts, 2);
}

static void test_wx_api_kf_accounts_add_list_update_delete(void **st)
{
    struct fixture *f = *st;
    json_t *list, *kf;

    assert_int_equal(wx_api_kf_add(f->a.api, "alice@wxkftest", "Alice",
                                   &f->r), 0);
    assert_int_equal(wx_api_kf_add(f->a.api, "alice@wxkftest", "Alice",
                                   &f->r), KF_EWECHAT);
    assert_int_equal(f->r.errcode, 65406);
    assert_int_equal(f->r.attempts, 1);
    assert_int_equal(wx_api_kf_update(f->a.api, "alice@wxkftest", "Alicia",
                                      &f->r), 0);
    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), 0);
    list = json_object_get(f->r.body, "kf_list");
    assert_int_equal(json_array_size(list), 1);
    kf = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(kf, "kf_account")),
                        "alice@wxkftest");
    assert_string_equal(json_string_value(json_object_get(kf, "kf_nick")),
                        "Alicia");
    assert_int_equal(wx_api_kf_invite(f->a.api, "alice@wxkftest",
                                      "alice_wx01", &f->r), 0);
    assert_int_equal(wx_api_kf_del(f->a.api, "bob@wxkftest", &f->r),
                     KF_EWECHAT);
    assert_int_equal(f->r.errcode, 65401);
    assert_int_equal(wx_api_kf_del(f->a.api, "alice@wxkftest", &f->r), 0);
    assert_int_equal(wx_api_kf_list(f->a.api, &f->r), 0);
    assert_int_equal(json_array_size(json_object_get(f->r.body, "kf_list")),
                     0);
}

static void test_wx_api_typing_twice_is_refused_while_typing(void **st)
{
    struct fixture *f = *st;

    user_writes(USER);
    assert_int_equal(wx_api_typing(f->a.api, USER, "Typing", &f->r), 0);
    assert_int_equal(wx_api_typing(f->a.api, USER, "Typing", &f->r),
                     KF_EWECHAT);
    assert_int_equal(f->r.errcode, 45081);
}

static void test_wx_api_send_as_agent_and_generic_call(void **st)
{
    struct fixture *f = *st;
    json_t *payload, *sent, *body;

    user_writes(USER);
    assert_int_equal(wx_api_kf_add(f->a.api, "carol@wxkftest", "Carol",
                                   &f->r), 0);
    payload = json_pack("{s:s}", "content", "你好 <a href=\"x\">y</a>");
    assert_int_equal(wx_api_send(f->a.api, USER, "carol@wxkftest", "text",
                                 payload, &f->r), 0);
    json_decref(payload);
    sent = sim_json(&S.sim, "GET", "/_sim/sent", NULL);
    assert_int_equal(json_array_size(sent), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(sent, 0), "kf_account")),
                        "carol@wxkftest");
    body = json_object_get(json_array_get(sent, 0), "body");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(body, "text"), "content")),
                        "你好 <a href=\"x\">y</a>");
    json_decref(sent);
    /* wx_api_call with a query and a borrowed body */
    body = json_pack("{s:s, s:s}", "touser", USER, "command",
                     "CancelTyping");
    assert_int_equal(wx_api_call(f->a.api, "POST",
                                 "/cgi-bin/message/custom/typing", NULL,
                                 body, &f->r), 0);
    assert_int_equal(body->refcount, 1);
    json_decref(body);
    assert_int_equal(wx_api_call(f->a.api, "GET",
                                 "/customservice/kfsession/getsession",
                                 "openid=" USER, NULL, &f->r), 0);
    assert_non_null(json_object_get(f->r.body, "kf_account"));
    /* an unknown path: WeChat's 404 is permanent */
    assert_int_equal(wx_api_call(f->a.api, "GET", "/cgi-bin/nope", NULL,
                                 NULL, &f->r), KF_EBACKEND);
    assert_int_equal(f->r.http_status, 404);
    assert_int_equal(f->r.transient, 0);
}

static void test_wx_api_rejects_bad_arguments(void **st)
{
    struct fixture *f = *st;
    json_t *b = json_object();
    char id[128];
    struct kf_buf out;

    kf_buf_init(&out, 64);
    assert_int_equal(wx_api_call(f->a.api, "PUT", "/x", NULL, NULL, &f->r),
                     KF_EINVAL);
    assert_int_equal(wx_api_call(f->a.api, "GET", "x", NULL, NULL, &f->r),
                     KF_EINVAL);
    assert_int_equal(wx_api_call(f->a.api, "GET", "/x", NULL, b, &f->r),
                     KF_EINVAL);
    assert_int_equal(wx_api_send(f->a.api, NULL, NULL, "text", b, &f->r),
                     KF_EINVAL);
    assert_int_equal(wx_api_send(f->a.api, USER, NULL, "text", NULL, &f->r),
                     KF_EINVAL);
    assert_int_equal(wx_api_kf_add(f->a.api, "", "n", &f->r), KF_EINVAL);
    assert_int_equal(wx_api_media_upload(f->a.api, "image", "", "x", 1, id,
                                         sizeof(id), &f->r), KF_EINVAL);
    assert_int_equal(wx_api_media_get(f->a.api, "", &out, NULL, 0, &f->r),
                     KF_EINVAL);
    assert_int_equal(wx_api_spent(f->a.api, "other", &(long){ 0 }),
                     KF_EINVAL);
    assert_int_equal(sim_calls(&S.sim, STABLE), 0);
    json_decref(b);
    kf_buf_release(&out);
}

/* --- errcodes ------------------------------------------------------------ */

static void test_wx_api_errcode_texts_and_kinds(void **st)
{
    static const long known[] = {
        -1, 40001, 40003, 40013, 40014, 41001, 42001, 43004, 45008, 45009,
        45015, 45047, 45072, 45080, 45081, 48001,
    };
    long c;
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (!wx_api_errcode_text(known[i]))
            fail_msg("no text for %ld", known[i]);
    for (c = 65400; c <= 65416; c++)
        if (!wx_api_errcode_text(c))
            fail_msg("no text for %ld", c);
    assert_null(wx_api_errcode_text(12345));
    assert_non_null(strstr(wx_api_errcode_text(45015), "48-hour"));
    assert_int_equal(wx_api_errcode_transient(-1), WX_API_ERR_TRANSIENT);
    assert_int_equal(wx_api_errcode_transient(45009), WX_API_ERR_TRANSIENT);
    assert_int_equal(wx_api_errcode_transient(40001), WX_API_ERR_TOKEN);
    assert_int_equal(wx_api_errcode_transient(40014), WX_API_ERR_TOKEN);
    assert_int_equal(wx_api_errcode_transient(42001), WX_API_ERR_TOKEN);
    assert_int_equal(wx_api_errcode_transient(45015), WX_API_ERR_PERMANENT);
    assert_int_equal(wx_api_errcode_transient(0), WX_API_ERR_PERMANENT);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_wx_api_token_is_fetched_once_and_shared),
        T(test_wx_api_classic_token_endpoint),
        T(test_wx_api_eight_processes_refresh_the_token_once),
        T(test_wx_api_expired_token_is_refreshed_once_and_retried),
        T(test_wx_api_revoked_token_is_refreshed_once_and_retried),
        T(test_wx_api_token_rejected_twice_is_permanent),
        T(test_wx_api_a_newer_token_survives_the_drop),
        T(test_wx_api_lock_is_taken_by_one_owner),
        T(test_wx_api_failed_fetch_falls_back_to_the_valid_token),
        T(test_wx_api_token_budget_stops_the_fetch),
        T(test_wx_api_dead_fetchers_lock_costs_only_its_ttl),
        T(test_wx_api_stale_token_is_used_while_another_refreshes),
        T(test_wx_api_short_lived_token_is_not_refetched_each_call),
        T(test_wx_api_waits_bounded_for_another_fetcher),
        T(test_wx_api_wrong_secret_is_permanent_and_not_shown),
        T(test_wx_api_access_token_never_in_errmsg),
        T(test_wx_api_errcode_minus_one_is_retried),
        T(test_wx_api_errcode_burst_outlasting_retries_is_transient),
        T(test_wx_api_outside_window_fails_at_once),
        T(test_wx_api_http_502_is_retried),
        T(test_wx_api_dropped_connections_are_retried),
        T(test_wx_api_timeouts_are_retried_and_bounded),
        T(test_wx_api_bucket_allows_per_min_then_refuses),
        T(test_wx_api_bucket_refills_from_the_callers_clock),
        T(test_wx_api_send_budget_refuses),
        T(test_wx_api_send_budget_counts_what_reached_wechat),
        T(test_wx_api_token_budget_refuses),
        T(test_wx_api_redis_down_makes_no_request),
        T(test_wx_api_media_upload_and_get_round_trip),
        T(test_wx_api_media_upload_retries_the_multipart_body),
        T(test_wx_api_kf_accounts_add_list_update_delete),
        T(test_wx_api_typing_twice_is_refused_while_typing),
        T(test_wx_api_send_as_agent_and_generic_call),
        T(test_wx_api_rejects_bad_arguments),
        cmocka_unit_test(test_wx_api_errcode_texts_and_kinds),
    };

    return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
