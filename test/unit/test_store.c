/* Tests of lib/store: URL parsing, key layout, and the ingest script
 * against a private redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

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

static int ingest(struct fixture *f, const char *key, const char *reply,
                  const char *payload, struct kf_buf *out, int *dup)
{
    const struct store_field fields[] = {
        { KF_STR("type"), KF_STR("msg_in") },
        { KF_STR("key"), kf_str_c(key) },
        { KF_STR("payload"), kf_str_c(payload) },
    };

    return store_ingest(&f->s, kf_str_c(key), 600, kf_str_c(reply), fields,
                        3, out, dup);
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

static void test_store_ingest_records_once_and_replays_first_reply(void **st)
{
    struct fixture *f = *st;
    struct kf_buf out;
    int dup = -1;

    kf_buf_init(&out, 4096);
    assert_int_equal(ingest(f, "msgid:1", "<xml>first</xml>", "{\"a\":1}",
                            &out, &dup), 0);
    assert_int_equal(dup, 0);
    assert_string_equal(out.p, "<xml>first</xml>");
    /* A retry proposes another reply but must get the first one back. */
    assert_int_equal(ingest(f, "msgid:1", "success", "{\"a\":2}", &out,
                            &dup), 0);
    assert_int_equal(dup, 1);
    assert_string_equal(out.p, "<xml>first</xml>");
    expect(f, "1", "XLEN", STREAM, NULL);
    expect(f, "<xml>first</xml>", "GET", "wxkf:{" APPID "}:dedupe:msgid:1",
           NULL);
    assert_int_equal(ingest(f, "msgid:2", "success", "{}", &out, &dup), 0);
    assert_int_equal(dup, 0);
    expect(f, "2", "XLEN", STREAM, NULL);
    kf_buf_release(&out);
}

static void test_store_dedupe_key_expires_after_ttl(void **st)
{
    struct fixture *f = *st;
    struct kf_buf out;
    char *ttl;
    int dup;

    kf_buf_init(&out, 4096);
    assert_int_equal(ingest(f, "msgid:9", "success", "{}", &out, &dup), 0);
    ttl = cmd(f, "TTL", "wxkf:{" APPID "}:dedupe:msgid:9", NULL);
    assert_in_range(strtol(ttl, NULL, 10), 590, 600);
    free(ttl);
    kf_buf_release(&out);
}

static void test_store_stream_entry_holds_binary_safe_fields(void **st)
{
    struct fixture *f = *st;
    static const char payload[] = "{\"Content\":\"a\\\"b ' ; DROP -- \\r\\n"
                                  "\xf0\x9f\x98\x80\"}";
    struct kf_buf out;
    char *got;
    int dup;
    const char *argv[] = { "EVAL",
                           "local e = redis.call('XRANGE', KEYS[1], '-', '+')"
                           " return e[1][2][6]",
                           "1", STREAM, NULL };

    kf_buf_init(&out, 4096);
    assert_int_equal(ingest(f, "msgid:7", "success", payload, &out, &dup), 0);
    got = tu_redis_cmd(&f->redis, argv);
    assert_string_equal(got, payload);
    free(got);
    kf_buf_release(&out);
}

static void test_store_reloads_script_after_script_flush(void **st)
{
    struct fixture *f = *st;
    struct kf_buf out;
    int dup;

    kf_buf_init(&out, 4096);
    assert_int_equal(ingest(f, "msgid:3", "success", "{}", &out, &dup), 0);
    expect(f, "OK", "SCRIPT", "FLUSH", NULL);
    assert_int_equal(ingest(f, "msgid:4", "success", "{}", &out, &dup), 0);
    assert_int_equal(dup, 0);
    expect(f, "2", "XLEN", STREAM, NULL);
    kf_buf_release(&out);
}

static void test_store_reports_backend_down_and_recovers(void **st)
{
    struct fixture *f = *st;
    struct kf_buf out;
    int dup, port = f->redis.port, i, rc = -1;

    kf_buf_init(&out, 4096);
    assert_int_equal(store_ping(&f->s), 0);
    tu_redis_stop(&f->redis);
    assert_int_equal(ingest(f, "msgid:5", "success", "{}", &out, &dup),
                     KF_EBACKEND);
    /* Backing off: the next attempt fails without touching the network. */
    assert_true(f->s.next_try_ms > 0);
    assert_int_equal(store_connect(&f->s), KF_EBACKEND);
    /* Same port again, as after a Redis restart. */
    tu_redis_start_on(&f->redis, port);
    for (i = 0; i < 100 && rc != 0; i++) {        /* bounded: ~5 s */
        rc = ingest(f, "msgid:5", "success", "{}", &out, &dup);
        if (rc != 0)
            tu_sleep_ms(50);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(dup, 0);
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
        cmocka_unit_test_setup_teardown(
            test_store_ingest_records_once_and_replays_first_reply, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_store_dedupe_key_expires_after_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_store_stream_entry_holds_binary_safe_fields, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_store_reloads_script_after_script_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_store_reports_backend_down_and_recovers, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
