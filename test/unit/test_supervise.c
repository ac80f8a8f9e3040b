/* Unit tests for supervise's whisper check: 500 characters counted as
 * characters not bytes, line breaks and tabs allowed (a note of several
 * lines), control characters, bytes that are no UTF-8 and a text of only
 * white space refused, each its row of lib/refusal.h (scope
 * REFUSAL_SUPERVISE) with its API code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "supervise.h"
#include "testutil.h"

static void test_500_characters_of_chinese_pass_501_do_not(void **state)
{
    char *ok = tu_repeat("注", SUPERVISE_WHISPER_CHARS);   /* 1,500 bytes */
    char *over = tu_repeat("注", SUPERVISE_WHISPER_CHARS + 1);
    const struct refusal *why = NULL;

    (void)state;
    assert_int_equal(supervise_check_whisper(ok, &why), 0);
    assert_null(why);
    assert_int_equal(supervise_check_whisper("先道歉\n再查订单\t123", &why),
                     0);
    assert_int_equal(supervise_check_whisper(over, &why), KF_ETOOBIG);
    assert_non_null(why);
    assert_string_equal(why->code, "whisper_too_long");
    assert_int_equal(why->status, 400);
    assert_string_equal(why->message, "a whisper is at most 500 characters");
    free(ok);
    free(over);
}

static void test_empty_controls_and_bad_utf8_are_invalid(void **state)
{
    static const struct { const char *text; int rc; } bad[] = {
        { "", KF_EINVAL }, { " \n\t\r\n ", KF_EINVAL },
        { "a\x01" "b", KF_EINVAL }, { "a\x7f", KF_EINVAL },
        { "a\x1b[31m", KF_EINVAL }, { "a\xc2\x85" "b", KF_EINVAL },
        { "\xe5\x94", KF_EPARSE }, { "a\xff", KF_EPARSE },
    };
    const struct refusal *why;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(supervise_check_whisper(bad[i].text, &why),
                         bad[i].rc);
        assert_non_null(why);
        assert_true(why->scopes & REFUSAL_SUPERVISE);
        assert_string_equal(why->code, "invalid_whisper");
        assert_int_equal(why->status, 400);
    }
    assert_int_equal(supervise_check_whisper("a\x01", NULL), KF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_500_characters_of_chinese_pass_501_do_not),
        cmocka_unit_test(test_empty_controls_and_bad_utf8_are_invalid),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
