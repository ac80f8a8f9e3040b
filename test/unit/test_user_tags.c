/* Tests of lib/user_tags: WeChat's tags/get answer checked field by field,
 * and the list kept in a real Redis (lib/lua/user_tags.lua): names found,
 * unknown ids counted, fetched hourly, sooner for an unknown id, never
 * twice a minute. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store.h"
#include "testutil.h"
#include "user_tags.h"

#define APPID "wx5e1a6c0d2b3f4a60"
#define NOW 1800000000000LL

static struct tu_redis redis;

struct fixture {
    struct store st;
    struct store_script sc;
};

static int suite_setup(void **st)
{
    (void)st;
    tu_redis_start(&redis);
    return 0;
}

static int suite_teardown(void **st)
{
    (void)st;
    tu_redis_stop(&redis);
    return 0;
}

static int setup(void **st)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *flush[] = { "FLUSHALL", NULL };
    char url[64];

    assert_non_null(f);
    free(tu_redis_cmd(&redis, flush));
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", redis.port);
    assert_int_equal(store_init(&f->st, url, APPID, 500, 2000), 0);
    user_tags_script_init(&f->sc);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    struct fixture *f = *st;

    store_release(&f->st);
    free(f);
    return 0;
}

static json_t *json(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);

    assert_non_null(j);
    return j;
}

/* tags parsed from text, which must be accepted */
static void parse_ok(const char *text, struct user_tags *t)
{
    json_t *j = json(text);

    assert_int_equal(user_tags_parse(j, t), 0);
    json_decref(j);
}

static void test_tags_get_keeps_well_formed_tags_only(void **st)
{
    static struct user_tags t;

    (void)st;
    parse_ok("{\"tags\":[{\"id\":2,\"name\":\"星标组\",\"count\":3},"
             "{\"id\":100,\"name\":\"老客户\"},"
             "{\"id\":2,\"name\":\"again\"},"                /* seen */
             "{\"id\":-1,\"name\":\"neg\"},{\"id\":\"7\",\"name\":\"str\"},"
             "{\"id\":true,\"name\":\"bool\"},"
             "{\"id\":2147483648,\"name\":\"big\"},"
             "{\"id\":8,\"name\":\"\"},{\"id\":9,\"name\":\"a\\u0007b\"},"
             "{\"id\":10,\"name\":\"一二三四五六七八九十一二三四五六七八九十"
             "一二三四五六七八九十一\"},"                    /* 31 chars */
             "{\"id\":11,\"name\":5},\"x\",null,"
             "{\"id\":12,\"name\":\"一二三四五六七八九十一二三四五六七八九十"
             "一二三四五六七八九十\"}]}", &t);
    assert_int_equal(t.n, 3);
    assert_int_equal(t.v[0].id, 2);
    assert_string_equal(t.v[0].name, "星标组");
    assert_int_equal(t.v[1].id, 100);
    assert_string_equal(t.v[1].name, "老客户");
    assert_int_equal(t.v[2].id, 12);                /* 30 chars: kept */
    parse_ok("{\"tags\":[]}", &t);
    assert_int_equal(t.n, 0);
}

static void test_an_answer_without_a_tags_array_is_refused(void **st)
{
    static struct user_tags t;
    const char *bad[] = { "[]", "{}", "{\"tags\":{}}", "{\"tags\":null}",
                          "{\"errcode\":0}", "\"tags\"" };
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);

        assert_non_null(j);
        assert_int_equal(user_tags_parse(j, &t), KF_EPARSE);
        assert_int_equal(t.n, 0);
        json_decref(j);
    }
}

static void test_no_more_than_the_cap_are_kept(void **st)
{
    static struct user_tags t;
    json_t *j = json_pack("{s:[]}", "tags");
    int i;

    (void)st;
    assert_non_null(j);
    for (i = 0; i < USER_TAGS_MAX + 50; i++)
        assert_int_equal(json_array_append_new(json_object_get(j, "tags"),
                         json_pack("{s:i,s:s}", "id", i, "name", "t")), 0);
    assert_int_equal(user_tags_parse(j, &t), 0);
    assert_int_equal(t.n, USER_TAGS_MAX);
    assert_int_equal(t.v[USER_TAGS_MAX - 1].id, USER_TAGS_MAX - 1);
    json_decref(j);
}

/* the names of ids (a JSON text) as one JSON text */
static char *names(struct fixture *f, const char *ids, int *unknown)
{
    json_t *in = json(ids), *out = NULL;
    char *text;

    assert_int_equal(user_tags_name(&f->st, &f->sc, in, &out, unknown), 0);
    text = json_dumps(out, JSON_COMPACT);
    assert_non_null(text);
    json_decref(in);
    json_decref(out);
    return text;
}

static void test_names_come_from_the_kept_list_unknown_ids_null(void **st)
{
    struct fixture *f = *st;
    static struct user_tags t;
    int unknown = -1;
    char *text;

    parse_ok("{\"tags\":[{\"id\":2,\"name\":\"星标组\"},"
             "{\"id\":100,\"name\":\"老客户\"}]}", &t);
    assert_int_equal(user_tags_put(&f->st, &f->sc, &t, NOW), 0);
    text = names(f, "[100,9,\"x\",2]", &unknown);
    assert_string_equal(text, "[{\"id\":100,\"name\":\"老客户\"},"
                        "{\"id\":9,\"name\":null},{\"id\":2,\"name\":\"星标组\"}]");
    assert_int_equal(unknown, 1);
    free(text);
    text = names(f, "[]", &unknown);
    assert_string_equal(text, "[]");
    assert_int_equal(unknown, 0);
    free(text);
    /* a new list replaces the old one whole */
    parse_ok("{\"tags\":[{\"id\":9,\"name\":\"华东大区\"}]}", &t);
    assert_int_equal(user_tags_put(&f->st, &f->sc, &t, NOW + 1), 0);
    text = names(f, "[100,9]", &unknown);
    assert_string_equal(text, "[{\"id\":100,\"name\":null},"
                        "{\"id\":9,\"name\":\"华东大区\"}]");
    assert_int_equal(unknown, 1);
    free(text);
}

static int due(struct fixture *f, int64_t now, int unknown)
{
    int d = -1;

    assert_int_equal(user_tags_due(&f->st, &f->sc, now, unknown, &d), 0);
    return d;
}

static void test_fetched_hourly_sooner_for_an_unknown_id_not_twice_a_minute(
    void **st)
{
    struct fixture *f = *st;
    static struct user_tags t;

    t.n = 0;
    assert_int_equal(due(f, NOW, 0), 1);             /* never fetched */
    assert_int_equal(due(f, NOW + 1000, 0), 0);      /* tried a second ago */
    assert_int_equal(due(f, NOW + 1000, 1), 0);      /* ... unknown or not */
    assert_int_equal(user_tags_put(&f->st, &f->sc, &t, NOW + 2000), 0);
    assert_int_equal(due(f, NOW + 2000 + USER_TAGS_RETRY_MS, 0), 0);
    assert_int_equal(due(f, NOW + 2000 + USER_TAGS_RETRY_MS, 1), 1);
    assert_int_equal(due(f, NOW + 2000 + USER_TAGS_RETRY_MS + 1, 1), 0);
    assert_int_equal(user_tags_put(&f->st, &f->sc, &t,
                                   NOW + 2000 + USER_TAGS_RETRY_MS), 0);
    assert_int_equal(due(f, NOW + 2000 + USER_TAGS_RETRY_MS +
                         USER_TAGS_FRESH_MS - 1, 0), 0);
    assert_int_equal(due(f, NOW + 2000 + USER_TAGS_RETRY_MS +
                         USER_TAGS_FRESH_MS, 0), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tags_get_keeps_well_formed_tags_only),
        cmocka_unit_test(test_an_answer_without_a_tags_array_is_refused),
        cmocka_unit_test(test_no_more_than_the_cap_are_kept),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_names_come_from_the_kept_list_unknown_ids_null),
        T(test_fetched_hourly_sooner_for_an_unknown_id_not_twice_a_minute),
#undef T
    };

    return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
