/* Tests of lib/version: reading the versions Redis and PostgreSQL report,
 * comparing them, and naming a server too old. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "version.h"

static struct version parsed(const char *s)
{
    struct version v;

    assert_int_equal(version_parse(kf_str_c(s), &v), 0);
    return v;
}

static void assert_version(struct version v, unsigned a, unsigned b,
                           unsigned c)
{
    assert_int_equal(v.major, a);
    assert_int_equal(v.minor, b);
    assert_int_equal(v.patch, c);
}

static void test_parse_reads_three_parts_and_ignores_the_rest(void **st)
{
    (void)st;
    assert_version(parsed("7.0.15"), 7, 0, 15);
    assert_version(parsed("6.2.14\r"), 6, 2, 14);
    assert_version(parsed("15.18 (Debian 15.18-0+deb12u1)"), 15, 18, 0);
    assert_version(parsed("1.22.1"), 1, 22, 1);
    assert_version(parsed("7.2.0-rc1"), 7, 2, 0);
    assert_version(parsed("1.2.3.4"), 1, 2, 3);
}

static void test_parse_fills_missing_parts_with_zero(void **st)
{
    (void)st;
    assert_version(parsed("16"), 16, 0, 0);
    assert_version(parsed("16."), 16, 0, 0);
    assert_version(parsed("6.2"), 6, 2, 0);
    assert_version(parsed("6.2.x"), 6, 2, 0);
}

static void test_parse_refuses_what_is_not_a_version(void **st)
{
    struct version v;

    (void)st;
    assert_int_equal(version_parse(kf_str_c(""), &v), KF_EPARSE);
    assert_int_equal(version_parse(kf_str_c("v7.0.0"), &v), KF_EPARSE);
    assert_int_equal(version_parse(kf_str_c(" 7.0.0"), &v), KF_EPARSE);
    assert_int_equal(version_parse(kf_str_c("-1.0"), &v), KF_EPARSE);
    /* no wrap-around: a part above 99999 is refused */
    assert_int_equal(version_parse(kf_str_c("4294967297.0.0"), &v),
                     KF_EPARSE);
    assert_int_equal(version_parse(kf_str_c("6.100000"), &v), KF_EPARSE);
}

static void test_parse_reads_only_the_bytes_of_the_view(void **st)
{
    struct version v;
    struct kf_str s = { "6.2.14", 3 };     /* "6.2" */

    (void)st;
    assert_int_equal(version_parse(s, &v), 0);
    assert_version(v, 6, 2, 0);
}

static void test_cmp_orders_by_major_minor_patch(void **st)
{
    struct version a = { 6, 2, 0 }, b = { 6, 10, 0 }, c = { 7, 0, 0 },
                   d = { 6, 2, 1 }, e = { 6, 2, 0 };

    (void)st;
    assert_true(version_cmp(&a, &b) < 0);   /* numbers, not strings */
    assert_true(version_cmp(&b, &c) < 0);
    assert_true(version_cmp(&d, &a) > 0);
    assert_int_equal(version_cmp(&a, &e), 0);
}

static void test_redis_info_gives_redis_version(void **st)
{
    static const char info[] =
        "# Server\r\nredis_git_sha1:00000000\r\n"
        "redis_version:6.0.16\r\nredis_mode:standalone\r\n";
    struct version v;

    (void)st;
    assert_int_equal(version_from_redis_info(KF_STR(info), &v), 0);
    assert_version(v, 6, 0, 16);
}

static void test_redis_info_without_the_field_is_not_found(void **st)
{
    static const char info[] = "# Server\r\nxredis_version:9.0.0\r\n"
                               "redis_version_x:9\r\n";
    struct version v;

    (void)st;
    assert_int_equal(version_from_redis_info(KF_STR(info), &v),
                     KF_ENOTFOUND);
    assert_int_equal(version_from_redis_info(KF_STR(""), &v),
                     KF_ENOTFOUND);
    assert_int_equal(version_from_redis_info(
                         KF_STR("redis_version:\r\n"), &v), KF_EPARSE);
    /* the last line needs no line end */
    assert_int_equal(version_from_redis_info(
                         KF_STR("a:b\r\nredis_version:7.2.4"), &v), 0);
    assert_version(v, 7, 2, 4);
}

static void test_pg_number_before_and_after_10(void **st)
{
    struct version v;

    (void)st;
    assert_int_equal(version_from_pg_num(150018, &v), 0);
    assert_version(v, 15, 18, 0);
    assert_int_equal(version_from_pg_num(100023, &v), 0);
    assert_version(v, 10, 23, 0);
    assert_int_equal(version_from_pg_num(90624, &v), 0);
    assert_version(v, 9, 6, 24);
    assert_int_equal(version_from_pg_num(0, &v), KF_EPARSE);
    assert_int_equal(version_from_pg_num(-1, &v), KF_EPARSE);
}

static void test_check_names_a_redis_too_old(void **st)
{
    struct version old = { 6, 0, 16 };
    char msg[200];

    (void)st;
    assert_int_equal(version_check(VERSION_REDIS, &old, msg, sizeof(msg)),
                     KF_EVERSION);
    assert_string_equal(msg, "redis 6.0.16 is too old: wxkf needs >= 6.2.0 "
                        "(XAUTOCLAIM, GETDEL, XTRIM MINID)");
}

static void test_check_accepts_the_minimum_and_newer(void **st)
{
    struct version min = { 6, 2, 0 }, pg = { 15, 18, 0 }, pg10 = { 10, 23, 0 };
    char msg[200];

    (void)st;
    assert_int_equal(version_check(VERSION_REDIS, &min, msg, sizeof(msg)),
                     0);
    assert_string_equal(msg, "redis 6.2.0");
    assert_int_equal(version_check(VERSION_POSTGRES, &pg, NULL, 0), 0);
    assert_int_equal(version_check(VERSION_POSTGRES, &pg10, msg,
                                   sizeof(msg)), KF_EVERSION);
    assert_non_null(strstr(msg, "postgres 10.23.0 is too old: wxkf needs "
                                ">= 11.0.0 ("));
}

static void test_check_message_is_cut_not_overrun(void **st)
{
    struct version old = { 6, 0, 16 };
    char msg[12];

    (void)st;
    memset(msg, 'x', sizeof(msg));
    assert_int_equal(version_check(VERSION_REDIS, &old, msg, 9),
                     KF_EVERSION);
    assert_string_equal(msg, "redis 6.");
    assert_int_equal(msg[9], 'x');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_reads_three_parts_and_ignores_the_rest),
        cmocka_unit_test(test_parse_fills_missing_parts_with_zero),
        cmocka_unit_test(test_parse_refuses_what_is_not_a_version),
        cmocka_unit_test(test_parse_reads_only_the_bytes_of_the_view),
        cmocka_unit_test(test_cmp_orders_by_major_minor_patch),
        cmocka_unit_test(test_redis_info_gives_redis_version),
        cmocka_unit_test(test_redis_info_without_the_field_is_not_found),
        cmocka_unit_test(test_pg_number_before_and_after_10),
        cmocka_unit_test(test_check_names_a_redis_too_old),
        cmocka_unit_test(test_check_accepts_the_minimum_and_newer),
        cmocka_unit_test(test_check_message_is_cut_not_overrun),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
