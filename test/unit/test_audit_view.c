/* Unit tests for lib/audit_view's checks of untrusted input: the from and
 * to of the audit view (a date is the account's day at its UTC offset, a
 * `to` date includes its whole day; a time is the account's local time,
 * with Z UTC; nothing else passes) and its filters (bounded, UTF-8 text
 * without control characters). No services: the queries are tested
 * against PostgreSQL in test/it/test_audit_view.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "audit_view.h"
#include "testutil.h"

#define MAR2 1772409600LL       /* 2026-03-02T00:00:00Z */
#define CHINA 480               /* UTC+8, minutes */

static long long at(const char *s, long off, int end)
{
    long long t = -1;

    assert_int_equal(audit_view_time(kf_str_c(s), off, end, &t), 0);
    return t;
}

static void test_a_date_is_the_accounts_day(void **state)
{
    (void)state;
    assert_true(at("2026-03-02", 0, 0) == MAR2);
    assert_true(at("2026-03-02", CHINA, 0) == MAR2 - 8 * 3600);
    /* a `to` date includes its whole day: the next day's start */
    assert_true(at("2026-03-02", CHINA, 1) == MAR2 + 16 * 3600);
    assert_true(at("2026-03-02", -300, 1) == MAR2 + 29 * 3600);
}

static void test_a_time_is_local_unless_z(void **state)
{
    (void)state;
    assert_true(at("2026-03-02T08:30", CHINA, 0) == MAR2 + 30 * 60);
    assert_true(at("2026-03-02 08:30:15", CHINA, 1) == MAR2 + 30 * 60 + 15);
    assert_true(at("2026-03-02T08:30:15Z", CHINA, 0) ==
                MAR2 + 8 * 3600 + 30 * 60 + 15);
    assert_true(at("2026-03-02T23:59:59Z", 0, 0) == MAR2 + 86399);
}

static void test_anything_else_is_refused(void **state)
{
    static const char *const bad[] = {
        "", "2026-03-0", "2026-03-02Z", "2026-02-30", "1999-12-31",
        "2026-03-02T", "2026-03-02T8:30", "2026-03-02T24:00",
        "2026-03-02T23:60", "2026-03-02T23:59:60", "2026-03-02T23:59:5",
        "2026-03-02T23:59:59+08:00", "2026-03-02X23:59", "2026-03-02T23-59",
        "2026-03-02T23:59ZZ", "now", "1772409600", "2026-03-02T12:00:00.5",
    };
    long long t = 7;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(audit_view_time(kf_str_c(bad[i]), CHINA, 0, &t),
                         KF_EINVAL);
        assert_true(t == 7);
    }
}

static void test_filters_are_bounded_text(void **state)
{
    char big[AUDIT_VIEW_FILTER_MAX + 2];

    (void)state;
    assert_int_equal(audit_view_filter(kf_str_c("session.")), 0);
    assert_int_equal(audit_view_filter(kf_str_c("客服小王")), 0);
    assert_int_equal(audit_view_filter(kf_str_c("a1@shop")), 0);
    memset(big, 'a', sizeof(big));
    assert_int_equal(audit_view_filter((struct kf_str){ big,
                         AUDIT_VIEW_FILTER_MAX }), 0);
    assert_int_equal(audit_view_filter((struct kf_str){ big,
                         AUDIT_VIEW_FILTER_MAX + 1 }), KF_ETOOBIG);
    assert_int_equal(audit_view_filter(kf_str_c("")), KF_EINVAL);
    assert_int_equal(audit_view_filter(kf_str_c("a\nb")), KF_EINVAL);
    assert_int_equal(audit_view_filter(kf_str_c("a\x7f")), KF_EINVAL);
    assert_int_equal(audit_view_filter(kf_str_c("\xc3\x28")), KF_EINVAL);
    assert_int_equal(audit_view_filter((struct kf_str){ "a\0b", 3 }),
                     KF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_date_is_the_accounts_day),
        cmocka_unit_test(test_a_time_is_local_unless_z),
        cmocka_unit_test(test_anything_else_is_refused),
        cmocka_unit_test(test_filters_are_bounded_text),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
