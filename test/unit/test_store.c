/* Tests of lib/store: URL and Sentinel-list parsing, key layout, scripts
 * against a private redis-server, following a Sentinel fail-over, WAIT. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "store.h"
#include "version.h"
#include "testutil.h"

#define APPID "wx62dd79ea990faa89"
#define STREAM_PREFIX "wxkf:{" APPID "}:"
#define STREAM STREAM_PREFIX "events"

static void test_store_parses_tcp_url_with_port_db_and_password(void **st)
{
    struct store s;

    (void)st;
    assert_int_equal(store_init(&s, "redis://:s3cret@10.0.0.5:6390/3", APPID,
                                100, 100), 0);
    assert_string_equal(s.host, "10.0.0.5");
    assert_int_equal(s.port, 6390);
    assert_int_equal(s.db, 3);
    assert_string_equal(s.password, "s3cret");
    assert_string_equal(s.unix_path, "");
    store_release(&s);
    assert_int_equal(store_init(&s, "redis://localhost", APPID, 100, 100), 0);
    assert_string_equal(s.host, "localhost");
    assert_int_equal(s.port, 6379);
    assert_int_equal(s.db, 0);
    store_release(&s);
}

static void test_store_parses_unix_url(void **st)
{
    struct store s;

    (void)st;
    assert_int_equal(store_init(&s, "unix:/run/redis.sock?db=2", APPID, 100,
                                100), 0);
    assert_string_equal(s.unix_path, "/run/redis.sock");
    assert_int_equal(s.db, 2);
    store_release(&s);
    assert_int_equal(store_init(&s, "unix:///run/r.sock", APPID, 100, 100),
                     0);
    assert_string_equal(s.unix_path, "/run/r.sock");
    store_release(&s);
}

static void test_store_rejects_bad_urls(void **st)
{
    static const char *const bad[] = {
        "http://127.0.0.1:6379", "redis://", "redis://host:0",
        "redis://host:70000", "redis://host:12x", "redis://host/99",
        "redis://host/1x", "unix:relative.sock", "unix:/x.sock?db=",
        "unix:/x.sock?foo=1", "redis://pw@host", "",
    };
    struct store s;
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = store_init(&s, bad[i], APPID, 100, 100);

        if (rc != KF_ECONFIG)
            fail_msg("accepted %s", bad[i]);
        store_release(&s);
    }
}

static void test_store_keys_share_the_account_hash_tag(void **st)
{
    struct store s;
    struct kf_buf k;

    (void)st;
    kf_buf_init(&k, 256);
    assert_int_equal(store_init(&s, "redis://127.0.0.1", APPID, 100, 100), 0);
    assert_int_equal(store_key(&s, "events", &k), 0);
    assert_string_equal(k.p, STREAM);
    kf_buf_release(&k);
    store_release(&s);
}

struct fixture {
    struct tu_redis redis;
    struct store s;
};

static int setup(void **st)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char url[64];

    assert_non_null(f);
    tu_redis_start(&f->redis);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", f->redis.port);
    assert_int_equal(store_init(&f->s, url, APPID, 500, 1000), 0);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    struct fixture *f = *st;

    store_release(&f->s);
    tu_redis_stop(&f->redis);
    free(f);
    return 0;
}

/* A small idempotent script, written to lib/lua/README.md's convention:
 * counts calls under the account prefix (KEYS[1]) and echoes ARGV[2]. */
static const char counter_lua[] =
    "assert(ARGV[1] == 'echo') "
    "redis.call('INCR', KEYS[1] .. 'calls') return ARGV[2]";

static int call(struct fixture *f, const char *arg, struct kf_buf *out)
{
    static struct store_script sc;
    const char *args[] = { "echo", arg };
    struct store_reply *r = NULL;
    int rc;

    store_script_init(&sc, counter_lua);
    rc = store_run(&f->s, &sc, 0, NULL, 2, args, NULL, &r);
    if (rc == 0) {
        kf_buf_reset(out);
        assert_int_equal(store_reply_type(r), STORE_STR);
        rc = kf_buf_append_str(out, store_reply_str(r));
        store_reply_free(r);
    }
    return rc;
}

static char *cmd(struct fixture *f, const char *a, const char *b,
                 const char *c)
{
    const char *argv[] = { a, b, c, NULL };

    return tu_redis_cmd(&f->redis, argv);
}

static void expect(struct fixture *f, const char *want, const char *a,
                   const char *b, const char *c)
{
    char *got = cmd(f, a, b, c);

    assert_string_equal(got, want);
    free(got);
}

static void expect_on(const struct tu_redis *r, const char *want,
                      const char *a, const char *b, const char *c)
{
    const char *argv[] = { a, b, c, NULL };
    char *got = tu_redis_cmd(r, argv);

    assert_string_equal(got, want);
    free(got);
}

static void test_store_runs_a_script_by_sha(void **st)
{
    struct fixture *f = *st;
    struct kf_buf out;

    kf_buf_init(&out, 256);
    assert_int_equal(call(f, "hello", &out), 0);
    assert_string_equal(out.p, "hello");
    assert_int_equal(call(f, "again", &out), 0);
    assert_string_equal(out.p, "again");
    expect(f, "2", "GET", "wxkf:{" APPID "}:calls", NULL);
    kf_buf_release(&out);
}

static void test_store_reloads_script_after_script_flush(void **st)
{
    struct fixture *f = *st;
    struct kf_buf out;

    kf_buf_init(&out, 256);
    assert_int_equal(call(f, "a", &out), 0);
    expect(f, "OK", "SCRIPT", "FLUSH", NULL);
    assert_int_equal(call(f, "b", &out), 0);
    assert_string_equal(out.p, "b");
    expect(f, "2", "GET", "wxkf:{" APPID "}:calls", NULL);
    kf_buf_release(&out);
}

/* store_run's convention (lib/lua/README.md): KEYS[1] is the account
 * prefix, the caller's key suffixes follow as full names, ARGV[1] is the
 * op and binary arguments keep their bytes. */
static void test_store_run_passes_prefix_keys_and_op(void **st)
{
    struct fixture *f = *st;
    struct store_script sc;
    const char *keys[] = { "queue", "agent:7" };
    const char *args[] = { "show", "a\0b", "x" };
    const size_t lens[] = { 4, 3, 1 };
    struct store_reply *r = NULL;
    struct kf_str v;
    int64_t n;

    store_script_init(&sc, "return {KEYS[1], KEYS[2], KEYS[3], #KEYS, "
                           "ARGV[1], ARGV[2], #ARGV}");
    assert_int_equal(store_run(&f->s, &sc, 2, keys, 3, args, lens, &r), 0);
    assert_int_equal(store_reply_type(r), STORE_ARRAY);
    assert_int_equal(store_reply_len(r), 7);
    assert_int_equal(store_reply_at_str(r, 0, &v), 0);
    assert_true(kf_str_eq_c(v, "wxkf:{" APPID "}:"));
    assert_int_equal(store_reply_at_str(r, 1, &v), 0);
    assert_true(kf_str_eq_c(v, STREAM_PREFIX "queue"));
    assert_int_equal(store_reply_at_str(r, 2, &v), 0);
    assert_true(kf_str_eq_c(v, STREAM_PREFIX "agent:7"));
    assert_int_equal(store_reply_at_int(r, 3, &n), 0);
    assert_int_equal(n, 3);
    assert_true(store_reply_at_is(r, 4, "show"));
    assert_int_equal(store_reply_at_str(r, 5, &v), 0);
    assert_true(kf_str_eq(v, (struct kf_str){ "a\0b", 3 }));
    assert_int_equal(store_reply_at_int(r, 6, &n), 0);
    assert_int_equal(n, 3);
    store_reply_free(r);
}

/* A script error is KF_EBACKEND with Redis's words in store_error; too
 * many arguments or no op never reach Redis. */
static void test_store_run_reports_errors(void **st)
{
    struct fixture *f = *st;
    struct store_script sc;
    const char **args = calloc(STORE_ARGS_MAX + 1, sizeof(*args));
    struct store_reply *r = (struct store_reply *)1;
    int i;

    assert_non_null(args);
    store_script_init(&sc, "return redis.error_reply('boom ' .. ARGV[1])");
    args[0] = "op";
    assert_int_equal(store_run(&f->s, &sc, 0, NULL, 1, args, NULL, &r),
                     KF_EBACKEND);
    assert_null(r);
    assert_string_equal(store_error(&f->s), "boom op");
    for (i = 0; i <= STORE_ARGS_MAX; i++)
        args[i] = "x";
    assert_int_equal(store_run(&f->s, &sc, 0, NULL, STORE_ARGS_MAX + 1,
                               args, NULL, &r), KF_ETOOBIG);
    assert_null(r);
    assert_string_equal(store_error(&f->s), "");   /* not the last one's */
    assert_int_equal(store_run(&f->s, &sc, 0, NULL, 0, args, NULL, &r),
                     KF_EINVAL);
    store_script_init(&sc, "return ARGV[1]");
    assert_int_equal(store_run(&f->s, &sc, 0, NULL, 1, args, NULL, &r), 0);
    assert_string_equal(store_error(&f->s), "");
    store_reply_free(r);
    free(args);
}

/* A call with more arguments than fit on the stack (a metrics batch),
 * and out NULL (only success matters). */
static void test_store_run_takes_many_args_and_no_reply(void **st)
{
    struct fixture *f = *st;
    struct store_script sc;
    const char *keys[] = { "big" };
    const char **args = calloc(5000, sizeof(*args));
    const char *get[] = { "GET", STREAM_PREFIX "big" };
    const char *bad[] = { "HGET", STREAM_PREFIX "big", "f" };
    struct store_reply *r = NULL;
    int i;

    assert_non_null(args);
    for (i = 0; i < 5000; i++)
        args[i] = i % 2 ? "v" : "k";
    args[0] = "count";
    store_script_init(&sc, "redis.call('SET', KEYS[2], #ARGV) "
                           "return #ARGV + #KEYS");
    assert_int_equal(store_run(&f->s, &sc, 1, keys, 5000, args, NULL, &r),
                     0);
    assert_int_equal(store_reply_int(r), 5002);
    store_reply_free(r);
    assert_int_equal(store_run(&f->s, &sc, 1, keys, 70, args, NULL, NULL),
                     0);
    assert_int_equal(store_cmd(&f->s, 2, get, NULL, &r), 0);
    assert_true(kf_str_eq_c(store_reply_str(r), "70"));
    store_reply_free(r);
    assert_int_equal(store_cmd(&f->s, 2, get, NULL, NULL), 0);
    assert_int_equal(store_cmd(&f->s, 3, bad, NULL, NULL), KF_EBACKEND);
    free(args);
}

/* store_cmd's replies, each type through the accessors, and the
 * element getters' bounds and type checks. */
static void test_store_cmd_replies_are_typed(void **st)
{
    struct fixture *f = *st;
    const char *set[] = { "SET", STREAM_PREFIX "k", "12" };
    const char *get[] = { "GET", STREAM_PREFIX "none" };
    const char *incr[] = { "INCR", STREAM_PREFIX "k" };
    const char *bad[] = { "HGET", STREAM_PREFIX "k", "f" };
    const char *push[] = { "RPUSH", STREAM_PREFIX "l", "-5", "abc", "7x",
                           "" };
    const char *range[] = { "LRANGE", STREAM_PREFIX "l", "0", "-1" };
    struct store_reply *r = NULL;
    struct kf_str v;
    int64_t n;
    char small[3];

    assert_int_equal(store_cmd(&f->s, 3, set, NULL, &r), 0);
    assert_int_equal(store_reply_type(r), STORE_STATUS);
    assert_true(kf_str_eq_c(store_reply_str(r), "OK"));
    store_reply_free(r);
    assert_int_equal(store_cmd(&f->s, 2, get, NULL, &r), 0);
    assert_int_equal(store_reply_type(r), STORE_NIL);
    assert_null(store_reply_str(r).p);
    assert_int_equal(store_reply_len(r), 0);
    store_reply_free(r);
    assert_int_equal(store_cmd(&f->s, 2, incr, NULL, &r), 0);
    assert_int_equal(store_reply_type(r), STORE_INT);
    assert_int_equal(store_reply_int(r), 13);
    store_reply_free(r);
    assert_int_equal(store_cmd(&f->s, 3, bad, NULL, &r), 0);
    assert_int_equal(store_reply_type(r), STORE_ERR);
    assert_memory_equal(store_reply_str(r).p, "WRONGTYPE", 9);
    store_reply_free(r);
    assert_int_equal(store_cmd(&f->s, 6, push, NULL, &r), 0);
    store_reply_free(r);
    assert_int_equal(store_cmd(&f->s, 4, range, NULL, &r), 0);
    assert_int_equal(store_reply_type(r), STORE_ARRAY);
    assert_int_equal(store_reply_len(r), 4);
    assert_int_equal(store_reply_at_int(r, 0, &n), 0);
    assert_int_equal(n, -5);
    assert_int_equal(store_reply_at_int(r, 1, &n), KF_EPARSE);
    assert_int_equal(store_reply_at_int(r, 2, &n), KF_EPARSE);
    assert_int_equal(store_reply_at_int(r, 3, &n), KF_EPARSE);
    assert_int_equal(store_reply_at_int(r, 4, &n), KF_EPARSE);
    assert_int_equal(n, 0);
    assert_int_equal(store_reply_at_str(r, 1, &v), 0);
    assert_true(kf_str_eq_c(v, "abc"));
    assert_int_equal(store_reply_at_str(r, 4, &v), KF_EPARSE);
    assert_int_equal(v.len, 0);
    assert_null(store_reply_at(r, 4));
    assert_int_equal(store_reply_type(store_reply_at(r, 4)), STORE_NIL);
    assert_int_equal(store_reply_at_copy(r, 0, small, sizeof(small)), 0);
    assert_string_equal(small, "-5");
    assert_int_equal(store_reply_at_copy(r, 1, small, sizeof(small)),
                     KF_ETOOBIG);
    assert_string_equal(small, "ab");
    assert_int_equal(store_reply_at_copy(r, 9, small, sizeof(small)),
                     KF_EPARSE);
    assert_string_equal(small, "");
    assert_string_equal(store_reply_at_text(r, 1), "abc");
    assert_string_equal(store_reply_at_text(r, 9), "");
    assert_true(store_reply_at_is(r, 1, "abc"));
    assert_false(store_reply_at_is(r, 1, "ab"));
    assert_false(store_reply_at_is(r, 7, "abc"));
    /* an element is not an array */
    assert_int_equal(store_reply_len(store_reply_at(r, 0)), 0);
    assert_int_equal(store_reply_at_int(store_reply_at(r, 0), 0, &n),
                     KF_EPARSE);
    store_reply_free(r);
    store_reply_free(NULL);
}

/* An integer element as a Lua script returns it, and at_copy in decimal. */
static void test_store_reply_reads_script_integers(void **st)
{
    struct fixture *f = *st;
    struct store_script sc;
    const char *args[] = { "ints" };
    struct store_reply *r = NULL;
    char buf[24];
    int64_t n;

    store_script_init(&sc, "return {-9007199254740993, 0, '18'}");
    assert_int_equal(store_run(&f->s, &sc, 0, NULL, 1, args, NULL, &r), 0);
    assert_int_equal(store_reply_type(store_reply_at(r, 0)), STORE_INT);
    assert_int_equal(store_reply_at_int(r, 0, &n), 0);
    assert_true(n < 0);
    assert_int_equal(store_reply_at_copy(r, 1, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "0");
    assert_int_equal(store_reply_at_int(r, 2, &n), 0);
    assert_int_equal(n, 18);
    store_reply_free(r);
}

static void test_store_reports_backend_down_and_recovers(void **st)
{
    struct fixture *f = *st;
    struct kf_buf out;
    int port = f->redis.port, i, rc = -1;

    kf_buf_init(&out, 256);
    assert_int_equal(store_ping(&f->s), 0);
    tu_redis_stop(&f->redis);
    assert_int_equal(call(f, "x", &out), KF_EBACKEND);
    /* Backing off: the next attempt fails without touching the network. */
    assert_true(f->s.next_try_ms > 0);
    assert_int_equal(store_connect(&f->s), KF_EBACKEND);
    /* Same port again, as after a Redis restart. */
    tu_redis_start_on(&f->redis, port);
    for (i = 0; i < 100 && rc != 0; i++) {        /* bounded: ~5 s */
        rc = call(f, "y", &out);
        if (rc != 0)
            tu_sleep_ms(50);
    }
    assert_int_equal(rc, 0);
    assert_string_equal(out.p, "y");
    assert_true(f->s.reconnects >= 1);
    kf_buf_release(&out);
}

/* The version is what the server's own INFO says (redis-server --version
 * prints the same number), and this test machine's Redis is new enough. */
static void test_store_reads_the_server_version(void **st)
{
    struct fixture *f = *st;
    const char *argv[] = { "INFO", "server", NULL };
    char *info = tu_redis_cmd(&f->redis, argv), want[32], got[32];
    struct version v;

    assert_non_null(strstr(info, "redis_version:"));
    snprintf(want, sizeof(want), "%.*s",
             (int)strcspn(strstr(info, "redis_version:") + 14, "\r\n"),
             strstr(info, "redis_version:") + 14);
    free(info);
    assert_int_equal(store_server_version(&f->s, &v), 0);
    snprintf(got, sizeof(got), "%u.%u.%u", v.major, v.minor, v.patch);
    assert_string_equal(got, want);
    assert_int_equal(version_check(VERSION_REDIS, &v, NULL, 0), 0);
    tu_redis_stop(&f->redis);
    assert_int_equal(store_server_version(&f->s, &v), KF_EBACKEND);
}

static void test_store_parses_sentinel_lists(void **st)
{
    static const char *const good[] = {
        "10.0.0.1:26379", "a:1,b:2,c:3", " s1:26379 , s2:26380",
        "[::1]:26379,127.0.0.1:26380", "h:1,h:2,h:3,h:4,h:5,h:6,h:7,h:8",
    };
    static const char *const bad[] = {
        "", "host", "host:", ":26379", "host:0", "host:65536", "host:2x",
        "a:1,,b:2", "a:1,", "h:1,h:2,h:3,h:4,h:5,h:6,h:7,h:8,h:9",
        "ho st:1", "h\r\n:1", "[::1]:", "h:123456",
    };
    struct store s;
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (store_sentinels_ok(good[i]) != 0)
            fail_msg("refused %s", good[i]);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (store_sentinels_ok(bad[i]) != KF_ECONFIG)
            fail_msg("accepted %s", bad[i]);
    assert_int_equal(store_init(&s, "redis://:pw@ignored:1/2", APPID, 100,
                                100), 0);
    assert_int_equal(store_set_sentinels(&s, "[::1]:26379, s2:26380",
                                         "wxkf-main"), 0);
    assert_int_equal(s.nsentinels, 2);
    assert_string_equal(s.sentinel[0].host, "::1");
    assert_int_equal(s.sentinel[1].port, 26380);
    assert_string_equal(s.host, "");          /* the Sentinels say */
    assert_string_equal(s.password, "pw");    /* the url still gives these */
    assert_int_equal(s.db, 2);
    assert_int_equal(store_set_sentinels(&s, "s:1", ""), KF_ECONFIG);
    assert_int_equal(s.nsentinels, 0);
    store_release(&s);
}

/* A master, its replica and one Sentinel watching them. */
struct ha {
    struct tu_redis master, replica, sentinel;
    struct store s;
};

static int ha_setup(void **st)
{
    struct ha *h = calloc(1, sizeof(*h));
    char list[64];

    assert_non_null(h);
    tu_redis_start(&h->master);
    tu_redis_start_replica(&h->replica, 0, h->master.port);
    tu_sentinel_start(&h->sentinel, h->master.port, "wxm");
    assert_int_equal(store_init(&h->s, "redis://127.0.0.1:1/0", APPID, 500,
                                1000), 0);
    /* the first Sentinel named is down: the next one is asked */
    snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d",
             tu_free_port(), h->sentinel.port);
    assert_int_equal(store_set_sentinels(&h->s, list, "wxm"), 0);
    *st = h;
    return 0;
}

static int ha_teardown(void **st)
{
    struct ha *h = *st;

    store_release(&h->s);
    tu_redis_stop(&h->sentinel);
    tu_redis_stop(&h->replica);
    tu_redis_stop(&h->master);
    free(h);
    return 0;
}

static int ha_call(struct store *s, const char *arg, int *replicated)
{
    static struct store_script sc;
    const char *args[] = { "echo", arg };
    struct store_reply *r = NULL;
    int rc, dummy;

    store_script_init(&sc, counter_lua);
    rc = store_run_wait(s, &sc, 0, NULL, 2, args, NULL, &r,
                        replicated ? replicated : &dummy);
    if (rc == 0) {
        assert_int_equal(store_reply_str(r).len, strlen(arg));
        store_reply_free(r);
    }
    return rc;
}

/* ROLE of r: 1 master, 0 not, -1 no answer — a Sentinel kills the
 * client connections of the server it demotes, and this one may be
 * among them (tu_redis_cmd would fail the test then). */
static int is_master(const struct tu_redis *r)
{
    struct timeval tv = { 2, 0 };             /* bounded: 2 s + 2 s */
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    const char *argv[] = { "ROLE" };
    redisReply *rep = NULL;
    int yes = -1;

    if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK)
        rep = redisCommandArgv(c, 1, argv, NULL);

    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
        rep->element[0]->type == REDIS_REPLY_STRING)
        yes = strcmp(rep->element[0]->str, "master") == 0;
    if (rep)
        freeReplyObject(rep);
    if (c)
        redisFree(c);
    return yes;
}

/* The Sentinel names port as the master. */
static int sentinel_says(struct ha *h, int port)
{
    const char *argv[] = { "SENTINEL", "get-master-addr-by-name", "wxm",
                           NULL };
    char *addr = tu_redis_cmd(&h->sentinel, argv), want[32];
    int yes;

    snprintf(want, sizeof(want), "127.0.0.1\n%d\n", port);
    yes = strcmp(addr, want) == 0;
    free(addr);
    return yes;
}

static void test_store_follows_a_sentinel_failover(void **st)
{
    struct ha *h = *st;
    const char *failover[] = { "SENTINEL", "FAILOVER", "wxm", NULL };
    char *ok;
    int i, rc = -1, answered;

    assert_int_equal(ha_call(&h->s, "before", NULL), 0);
    assert_int_equal(h->s.port, h->master.port);
    assert_int_equal(h->s.sentinel_first, 1);
    /* the Sentinel promotes the replica and turns the master into one */
    ok = tu_redis_cmd(&h->sentinel, failover);
    answered = strcmp(ok, "OK") == 0;
    if (!answered)
        print_error("SENTINEL FAILOVER: %s\n", ok);
    free(ok);
    assert_true(answered);
    for (i = 0; i < 300 && !(sentinel_says(h, h->replica.port) &&
                             is_master(&h->master) == 0); i++)
        tu_sleep_ms(50);                          /* bounded: 15 s */
    assert_true(sentinel_says(h, h->replica.port));
    assert_int_equal(is_master(&h->master), 0);
    /* our connection was to the old master, and say it failed while the
     * master went away and we are backing off for a minute: the Sentinels
     * name another master, so we connect at once (and reload the script
     * there) */
    store_release(&h->s);
    h->s.next_try_ms = kf_mono_ms() + 60000;
    for (i = 0; i < 200 && rc != 0; i++) {        /* bounded: ~10 s */
        rc = ha_call(&h->s, "after", NULL);
        if (rc != 0)
            tu_sleep_ms(50);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(h->s.port, h->replica.port);
    assert_int_equal(h->s.failovers, 1);
    expect_on(&h->replica, "2", "GET", "wxkf:{" APPID "}:calls", NULL);
}

/* A server that is a replica (a demoted master, or a url that names a
 * replica) refuses the write with READONLY: the connection is dropped,
 * not kept, and the caller gets KF_EBACKEND. */
static void test_store_drops_a_connection_to_a_replica(void **st)
{
    struct ha *h = *st;
    struct store s;
    char url[64];

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", h->replica.port);
    assert_int_equal(store_init(&s, url, APPID, 500, 1000), 0);
    assert_int_equal(store_ping(&s), 0);            /* reads are fine */
    assert_int_equal(ha_call(&s, "w", NULL), KF_EBACKEND);
    assert_int_equal(s.role_errors, 2);             /* tried twice */
    assert_null(s.rc);
    store_release(&s);
}

static void test_store_wait_confirms_replicas(void **st)
{
    struct ha *h = *st;
    int replicated = -1;
    int64_t t0;

    h->s.wait_replicas = 1;
    h->s.io_timeout_ms = 6000;     /* before the first command connects */
    h->s.wait_timeout_ms = 3000;   /* far from 1 ms on a busy machine */
    assert_int_equal(ha_call(&h->s, "one", &replicated), 0);
    assert_int_equal(replicated, 1);
    assert_int_equal(h->s.wait_short, 0);
    expect_on(&h->replica, "1", "GET", "wxkf:{" APPID "}:calls", NULL);
    /* without its replica the master still runs the script, but WAIT
     * says nobody else has it */
    tu_redis_stop(&h->replica);
    assert_int_equal(ha_call(&h->s, "two", &replicated), 0);
    assert_int_equal(replicated, 0);
    assert_int_equal(h->s.wait_short, 1);
    assert_int_equal(h->s.wait_shorts, 1);
    expect_on(&h->master, "2", "GET", "wxkf:{" APPID "}:calls", NULL);
    /* for the next second WAIT blocks 1 ms, not the whole timeout */
    assert_true(h->s.wait_probe_ms > 0);
    t0 = kf_mono_ms();
    assert_int_equal(ha_call(&h->s, "two and a half", &replicated), 0);
    assert_int_equal(replicated, 0);
    assert_true(kf_mono_ms() - t0 < 1500);   /* not 3000 */
    assert_int_equal(h->s.wait_shorts, 2);
    /* and with wait_replicas = 0 nothing is asked */
    h->s.wait_replicas = 0;
    assert_int_equal(ha_call(&h->s, "three", &replicated), 0);
    assert_int_equal(replicated, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_parses_tcp_url_with_port_db_and_password),
        cmocka_unit_test(test_store_parses_unix_url),
        cmocka_unit_test(test_store_rejects_bad_urls),
        cmocka_unit_test(test_store_keys_share_the_account_hash_tag),
        cmocka_unit_test_setup_teardown(test_store_reads_the_server_version,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_runs_a_script_by_sha,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_store_reloads_script_after_script_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_store_run_passes_prefix_keys_and_op, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_run_reports_errors,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_store_run_takes_many_args_and_no_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_cmd_replies_are_typed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_store_reply_reads_script_integers, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_store_reports_backend_down_and_recovers, setup, teardown),
        cmocka_unit_test(test_store_parses_sentinel_lists),
        cmocka_unit_test_setup_teardown(
            test_store_follows_a_sentinel_failover, ha_setup, ha_teardown),
        cmocka_unit_test_setup_teardown(test_store_wait_confirms_replicas,
                                        ha_setup, ha_teardown),
        cmocka_unit_test_setup_teardown(
            test_store_drops_a_connection_to_a_replica, ha_setup,
            ha_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
