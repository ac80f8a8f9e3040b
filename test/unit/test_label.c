/* Unit tests for label's checks of untrusted input: a name is 1-20
 * characters of Unicode (售后, VIP 客户) counted as characters, not
 * bytes, without control characters or spaces at either end; a colour is
 * #rrggbb, kept in lower case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "label.h"
#include "testutil.h"

static void test_names(void **state)
{
    static const char *const good[] = {
        "售后", "VIP 客户", "a", "退款-已处理", "😀",
        "长长长长长长长长长长长长长长长长长长长长",      /* 20 characters */
    };
    static const char *const bad[] = {
        "", " 售后", "售后 ", "\xe3\x80\x80售后", "售后\xe3\x80\x80",
        "长长长长长长长长长长长长长长长长长长长长长",    /* 21 */
        "a\nb", "a\tb", "a\x7f", "a\xc2\x80", "\xe5\x94", "\xc0\xaf",
    };
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(label_check_name(good[i], NULL), 0);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(label_check_name(bad[i], &why), KF_EINVAL);
        assert_non_null(why);
    }
}

static void test_colours(void **state)
{
    static const char *const bad[] = {
        "", "#", "red", "#12345", "#1234567", "123456#", "#12345g",
        "#ＡＢＣＤＥＦ",
    };
    char out[8];
    size_t i;

    (void)state;
    assert_int_equal(label_check_color("#E53935", out), 0);
    assert_string_equal(out, "#e53935");
    assert_int_equal(label_check_color("#00ff7f", out), 0);
    assert_string_equal(out, "#00ff7f");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(label_check_color(bad[i], out), KF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_colours),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
