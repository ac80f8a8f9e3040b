/* Unit tests for handover: what a transfer's note may be (UTF-8, 200
 * characters counted as characters not bytes, no control characters or
 * line breaks), each refusal its row of lib/refusal.h with its API code,
 * and the session's handover fields shown as `handed` and `from_queue`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "handover.h"
#include "testutil.h"

static void test_200_characters_of_chinese_pass_201_do_not(void **state)
{
    char *ok = tu_repeat("售", HANDOVER_NOTE_CHARS);      /* 600 bytes */
    char *over = tu_repeat("售", HANDOVER_NOTE_CHARS + 1);
    const struct refusal *why = NULL;

    (void)state;
    assert_int_equal(handover_check_note(ok, &why), 0);
    assert_null(why);
    assert_int_equal(handover_check_note("", &why), 0);
    assert_int_equal(handover_check_note("客户要退款，订单 123 已核实", &why),
                     0);
    assert_int_equal(handover_check_note(over, &why), KF_ETOOBIG);
    assert_non_null(why);
    assert_string_equal(why->code, "note_too_long");
    assert_int_equal(why->status, 400);
    assert_string_equal(why->message,
                        "the note is longer than 200 characters");
    free(ok);
    free(over);
}

/* Control characters and line breaks (KF_EINVAL) and bytes that are no
 * UTF-8 (KF_EPARSE) are both `invalid_note` to the API. */
static void test_controls_line_breaks_and_bad_utf8_are_refused(void **state)
{
    static const struct { const char *note; int rc; } bad[] = {
        { "a\nb", KF_EINVAL }, { "a\tb", KF_EINVAL }, { "a\rb", KF_EINVAL },
        { "a\x01" "b", KF_EINVAL }, { "a\x7f", KF_EINVAL },
        { "a\x1b[31m", KF_EINVAL },
        { "a\xc2\x85" "b", KF_EINVAL },          /* NEL (C1) */
        { "a\xe2\x80\xa8" "b", KF_EINVAL },      /* U+2028 line separator */
        { "\xe5\x94", KF_EPARSE }, { "\xc0\xaf", KF_EPARSE },  /* cut, overlong */
        { "\xed\xa0\x80", KF_EPARSE }, { "a\xff", KF_EPARSE }, /* surrogate */
    };
    const struct refusal *why;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(handover_check_note(bad[i].note, &why), bad[i].rc);
        assert_non_null(why);
        assert_string_equal(why->code, "invalid_note");
        assert_int_equal(why->status, 400);
    }
    assert_int_equal(handover_check_note("\xe5\x94", NULL), KF_EPARSE);
}

static void test_a_handed_session_shows_giver_note_and_time(void **state)
{
    json_t *s = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "openid", "o1",
                          "state", "active", "handing", "1",
                          "handed_by", "zhangsan", "handed_nick", "张三",
                          "handed_note", "要退款", "handed_ms",
                          "1700000000123"), *h;

    (void)state;
    assert_non_null(s);
    assert_int_equal(handover_view(s), 0);
    h = json_object_get(s, "handed");
    assert_non_null(h);
    assert_string_equal(json_string_value(json_object_get(h, "from")),
                        "zhangsan");
    assert_string_equal(json_string_value(json_object_get(h, "from_nick")),
                        "张三");
    assert_string_equal(json_string_value(json_object_get(h, "note")),
                        "要退款");
    assert_true(json_integer_value(json_object_get(h, "at_ms")) ==
                1700000000123LL);
    assert_null(json_object_get(s, "from_queue"));
    assert_null(json_object_get(s, "handing"));
    assert_null(json_object_get(s, "handed_by"));
    assert_null(json_object_get(s, "handed_note"));
    assert_string_equal(json_string_value(json_object_get(s, "openid")),
                        "o1");
    json_decref(s);
}

static void test_a_user_from_the_queue_shows_the_wait(void **state)
{
    json_t *s = json_pack("{s:s,s:I}", "openid", "o2", "waited_ms",
                          (json_int_t)185999), *plain;

    (void)state;
    assert_int_equal(handover_view(s), 0);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(s, "from_queue"), "waited_s")), 185);
    assert_null(json_object_get(s, "waited_ms"));
    assert_null(json_object_get(s, "handed"));
    json_decref(s);

    /* an admin's transfer: no giver account, no nickname */
    s = json_pack("{s:s,s:s,s:s,s:s}", "handed_by", "", "handed_nick", "",
                  "handed_note", "", "handed_ms", "5");
    assert_int_equal(handover_view(s), 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(s, "handed"), "from")), "");
    json_decref(s);

    plain = json_pack("{s:s}", "openid", "o3");
    assert_int_equal(handover_view(plain), 0);
    assert_int_equal(json_object_size(plain), 1);
    json_decref(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_200_characters_of_chinese_pass_201_do_not),
        cmocka_unit_test(test_controls_line_breaks_and_bad_utf8_are_refused),
        cmocka_unit_test(test_a_handed_session_shows_giver_note_and_time),
        cmocka_unit_test(test_a_user_from_the_queue_shows_the_wait),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
