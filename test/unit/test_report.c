/* Unit tests for lib/report's checks of untrusted input and its day
 * arithmetic: dates are exactly YYYY-MM-DD and real (2024-02-29 is,
 * 2023-02-29 is not), a range is from <= to and at most 366 days, the
 * local day of a wall clock at an offset, the by names. No services. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "report.h"
#include "testutil.h"

static void test_dates(void **state)
{
    static const char *const good[] = {
        "2000-01-01", "2024-02-29", "2026-03-02", "2199-12-31",
    };
    static const char *const bad[] = {
        "", "2026-3-02", "2026-03-2", "2026/03/02", "2023-02-29",
        "2026-04-31", "2026-13-01", "2026-00-10", "1999-12-31",
        "2200-01-01", "2026-03-02 ", " 2026-03-02", "2026-03-0x",
        "2026-03-02'", "+026-03-02",
    };
    char out[11];
    long day;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(report_day_parse(kf_str_c(good[i]), &day), 0);
        report_day_format(day, out);
        assert_string_equal(out, good[i]);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(report_day_parse(kf_str_c(bad[i]), &day),
                         KF_EINVAL);
    assert_int_equal(report_day_parse(kf_str_c("1970-01-01"), &day),
                     KF_EINVAL);
    assert_int_equal(report_day_parse(kf_str_c("2000-01-01"), &day), 0);
    assert_int_equal(day, 10957);
}

static void test_ranges(void **state)
{
    const struct refusal *why = NULL;
    long lo, hi;

    (void)state;
    assert_int_equal(report_range(kf_str_c("2025-03-02"),
                                  kf_str_c("2026-03-02"), &lo, &hi, &why), 0);
    assert_int_equal(hi - lo + 1, 366);
    assert_int_equal(report_range(kf_str_c("2025-03-01"),
                                  kf_str_c("2026-03-02"), &lo, &hi, &why),
                     KF_EINVAL);
    assert_string_equal(why->code, "range_too_long");
    why = NULL;
    assert_int_equal(report_range(kf_str_c("2026-03-03"),
                                  kf_str_c("2026-03-02"), &lo, &hi, &why),
                     KF_EINVAL);
    assert_string_equal(why->code, "invalid_range");
    why = NULL;
    assert_int_equal(report_range(kf_str_c(""), kf_str_c("2026-03-02"), &lo,
                                  &hi, &why), KF_EINVAL);
    assert_string_equal(why->code, "invalid_range");
}

static void test_today_at_an_offset(void **state)
{
    /* 2026-03-01T16:00:00Z is 2026-03-02 00:00 in China (+480) */
    long long ms = 1772380800000LL;
    char out[11];

    (void)state;
    report_day_format(report_today(ms, 480), out);
    assert_string_equal(out, "2026-03-02");
    report_day_format(report_today(ms - 1, 480), out);
    assert_string_equal(out, "2026-03-01");
    report_day_format(report_today(ms, -300), out);
    assert_string_equal(out, "2026-03-01");
}

static void test_by(void **state)
{
    enum report_by by;

    (void)state;
    assert_int_equal(report_by_parse(kf_str_c("hour"), &by), 0);
    assert_int_equal(by, REPORT_BY_HOUR);
    assert_string_equal(report_by_name(by), "hour");
    assert_int_equal(report_by_parse(kf_str_c("agents"), &by), KF_EINVAL);
    assert_int_equal(report_by_parse(kf_str_c(""), &by), KF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_today_at_an_offset),
        cmocka_unit_test(test_by),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
