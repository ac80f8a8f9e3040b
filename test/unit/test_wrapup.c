/* Unit tests for wrapup: what a summary may be (UTF-8, 500 characters
 * counted as characters not bytes, line feeds and tabs but no other
 * control characters) and the close event's payload made of it (JSON that
 * reads back to the same text; nothing for no summary or only spaces). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "wrapup.h"
#include "testutil.h"

static void test_500_characters_of_chinese_pass_501_do_not(void **state)
{
    char *ok = tu_repeat("售", WRAPUP_SUMMARY_CHARS);   /* 1500 bytes */
    char *over = tu_repeat("售", WRAPUP_SUMMARY_CHARS + 1);
    const char *why = NULL;

    (void)state;
    assert_int_equal(wrapup_check_summary(ok, &why), 0);
    assert_int_equal(wrapup_check_summary(over, &why), KF_EINVAL);
    assert_string_equal(why, "summary is longer than 500 characters");
    free(ok);
    free(over);
}

static void test_controls_and_bad_utf8_are_refused(void **state)
{
    static const char *const bad[] = {
        "a\rb", "a\x01" "b", "a\x7f", "a\xc2\x85" "b", /* NEL (C1) */
        "\xe5\x94", "\xc0\xaf", "\xed\xa0\x80",          /* cut, overlong,
                                                          * surrogate */
    };
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(wrapup_check_summary(bad[i], &why), KF_EINVAL);
        assert_non_null(why);
    }
    assert_int_equal(wrapup_check_summary("退款\n已处理\t✓ 😀", NULL), 0);
    assert_int_equal(wrapup_check_summary("", NULL), 0);
}

static void test_payload_reads_back_to_the_summary(void **state)
{
    char out[WRAPUP_JSON_MAX];
    const char *text = "用户要求退款，\"订单\" 20250102 \\ 已转财务\n</script>";
    json_t *j;

    (void)state;
    assert_int_equal(wrapup_payload(text, NULL, out, sizeof(out), NULL), 0);
    j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 1);
    assert_string_equal(tu_jstr(j, "summary"), text);
    json_decref(j);
}

static void test_the_longest_summary_fits_the_payload(void **state)
{
    /* the worst case for escaping: every character a \u escape */
    char *tabs = tu_repeat("\t", WRAPUP_SUMMARY_CHARS - 1);
    char *s = malloc(strlen(tabs) + 2);
    char out[WRAPUP_JSON_MAX];

    (void)state;
    assert_non_null(s);
    snprintf(s, strlen(tabs) + 2, "x%s", tabs);
    assert_int_equal(wrapup_payload(s, NULL, out, sizeof(out), NULL), 0);
    assert_true(strlen(out) > WRAPUP_SUMMARY_CHARS);
    free(s);
    free(tabs);
}

static void test_no_summary_no_payload(void **state)
{
    char out[WRAPUP_JSON_MAX] = "junk";
    const char *why = NULL;

    (void)state;
    assert_int_equal(wrapup_payload(NULL, NULL, out, sizeof(out), NULL), 0);
    assert_string_equal(out, "");
    strcpy(out, "junk");
    assert_int_equal(wrapup_payload(" \n\t ", NULL, out, sizeof(out), NULL), 0);
    assert_string_equal(out, "");
    strcpy(out, "junk");
    assert_int_equal(wrapup_payload("a\rb", NULL, out, sizeof(out), &why),
                     KF_EINVAL);
    assert_string_equal(out, "");
    assert_string_equal(why, "summary must not contain control characters");
    assert_int_equal(wrapup_payload("ok", NULL, out, 8, NULL), KF_ETOOBIG);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_500_characters_of_chinese_pass_501_do_not),
        cmocka_unit_test(test_controls_and_bad_utf8_are_refused),
        cmocka_unit_test(test_payload_reads_back_to_the_summary),
        cmocka_unit_test(test_the_longest_summary_fits_the_payload),
        cmocka_unit_test(test_no_summary_no_payload),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
