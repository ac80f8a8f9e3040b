/* Tests of lib/store: URL parsing, key layout, and the ingest script
 * against a private redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "store.h"
#include "testutil.h"

#define APPID "wx62dd79ea990faa89"
#define STREAM "wxkf:{" APPID "}:events"

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

/* A small idempotent script: counts calls and echoes its argument. */
static const char counter_lua[] =
    "redis.call('INCR', KEYS[1] .. 'calls') return ARGV[1]";

static int call(struct fixture *f, const char *arg, struct kf_buf *out)
{
    static struct store_script sc;
    const char *argv[8];
    size_t lens[8];
    struct redisReply *r = NULL;
    int rc;

    store_script_init(&sc, counter_lua);
    argv[2] = "1", lens[2] = 1;
    argv[3] = f->s.prefix, lens[3] = strlen(f->s.prefix);
    argv[4] = arg, lens[4] = strlen(arg);
    rc = store_eval(&f->s, &sc, 5, argv, lens, &r);
    if (rc == 0) {
        kf_buf_reset(out);
        rc = kf_buf_append(out, r->str, r->len);
        freeReplyObject(r);
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

static void test_store_eval_runs_a_script_by_sha(void **st)
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

static void test_store_eval_maps_a_script_error_to_backend(void **st)
{
    struct fixture *f = *st;
    struct store_script sc;
    const char *argv[4];
    size_t lens[4];
    struct redisReply *r = (struct redisReply *)1;

    store_script_init(&sc, "return redis.error_reply('boom')");
    argv[2] = "0", lens[2] = 1;
    assert_int_equal(store_eval(&f->s, &sc, 3, argv, lens, &r), KF_EBACKEND);
    assert_null(r);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_parses_tcp_url_with_port_db_and_password),
        cmocka_unit_test(test_store_parses_unix_url),
        cmocka_unit_test(test_store_rejects_bad_urls),
        cmocka_unit_test(test_store_keys_share_the_account_hash_tag),
        cmocka_unit_test_setup_teardown(test_store_eval_runs_a_script_by_sha,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_store_reloads_script_after_script_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_store_eval_maps_a_script_error_to_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_store_reports_backend_down_and_recovers, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
