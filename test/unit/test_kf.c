/* Unit tests for kf: capped buffers (growth, the cap, NUL termination,
 * detach/release), kf_parse_u64, kf_strerror and kf_str comparisons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kf.h"

static struct kf_str S(const char *s)
{
    return kf_str_c(s);
}

/* --- kf_buf ------------------------------------------------------------ */

static void test_buf_append_grows_past_initial_capacity(void **state)
{
    struct kf_buf b;
    char want[1000];
    size_t i;

    (void)state;
    kf_buf_init(&b, 4096);
    for (i = 0; i < sizeof(want); i++) {
        want[i] = (char)('a' + i % 26);
        assert_int_equal(kf_buf_append(&b, &want[i], 1), 0);
        assert_int_equal(b.len, i + 1);
        assert_true(b.cap >= b.len + 1);
        assert_true(b.cap <= b.max + 1);
    }
    assert_memory_equal(b.p, want, sizeof(want));
    assert_int_equal(b.p[b.len], '\0');
    kf_buf_release(&b);
}

static void test_buf_append_in_one_large_piece(void **state)
{
    struct kf_buf b;
    char *big = malloc(3000);

    (void)state;
    assert_non_null(big);
    memset(big, 'z', 3000);
    kf_buf_init(&b, 3000);
    assert_int_equal(kf_buf_append(&b, "ab", 2), 0);
    assert_int_equal(kf_buf_append(&b, big, 2998), 0);
    assert_int_equal(b.len, 3000);
    assert_memory_equal(b.p, "ab", 2);
    assert_memory_equal(b.p + 2, big, 2998);
    assert_int_equal(b.p[3000], '\0');
    free(big);
    kf_buf_release(&b);
}

static void test_buf_printf_grows_and_appends(void **state)
{
    struct kf_buf b;
    char want[64];
    size_t off = 0;
    int i;

    (void)state;
    kf_buf_init(&b, 1 << 16);
    for (i = 0; i < 200; i++) {
        int n = snprintf(want, sizeof(want), "%s-%d;", "item", i);

        assert_int_equal(kf_buf_printf(&b, "%s-%d;", "item", i), 0);
        assert_memory_equal(b.p + off, want, (size_t)n);
        off += (size_t)n;
        assert_int_equal(b.len, off);
        assert_int_equal(b.p[b.len], '\0');
    }
    assert_true(b.len > 64);
    assert_int_equal(strncmp(b.p, "item-0;item-1;item-2;", 21), 0);
    assert_non_null(strstr(b.p, "item-199;"));
    kf_buf_release(&b);
}

static void test_buf_accepts_exactly_max_bytes(void **state)
{
    struct kf_buf b;

    (void)state;
    kf_buf_init(&b, 10);
    assert_int_equal(kf_buf_append(&b, "12345", 5), 0);
    assert_int_equal(kf_buf_append(&b, "67890", 5), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.p, "1234567890");
    assert_int_equal(kf_buf_append(&b, "", 0), 0);
    assert_int_equal(b.len, 10);
    kf_buf_release(&b);
}

static void test_buf_append_rejects_max_plus_one_and_writes_nothing(
    void **state)
{
    struct kf_buf b;

    (void)state;
    kf_buf_init(&b, 10);
    assert_int_equal(kf_buf_append(&b, "1234567890", 10), 0);
    assert_int_equal(kf_buf_append(&b, "X", 1), KF_ETOOBIG);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.p, "1234567890");
    assert_int_equal(kf_buf_append_c(&b, "XY"), KF_ETOOBIG);
    assert_int_equal(kf_buf_append_str(&b, S("XYZ")), KF_ETOOBIG);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.p, "1234567890");
    kf_buf_release(&b);
}

static void test_buf_first_append_over_max_leaves_buffer_untouched(
    void **state)
{
    struct kf_buf b;

    (void)state;
    kf_buf_init(&b, 10);
    assert_int_equal(kf_buf_append(&b, "12345678901", 11), KF_ETOOBIG);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(kf_buf_str(&b).len, 0);
    assert_string_equal(kf_buf_str(&b).p, "");
    kf_buf_release(&b);
}

static void test_buf_append_rejects_size_max_without_overflow(void **state)
{
    struct kf_buf b;

    (void)state;
    kf_buf_init(&b, 10);
    assert_int_equal(kf_buf_append(&b, "abc", 3), 0);
    assert_int_equal(kf_buf_append(&b, "x", SIZE_MAX), KF_ETOOBIG);
    assert_int_equal(kf_buf_append(&b, "x", SIZE_MAX - 2), KF_ETOOBIG);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.p, "abc");
    kf_buf_release(&b);
}

static void test_buf_printf_rejects_max_plus_one_and_writes_nothing(
    void **state)
{
    struct kf_buf b;

    (void)state;
    kf_buf_init(&b, 8);
    assert_int_equal(kf_buf_printf(&b, "%05d", 42), 0);
    assert_int_equal(kf_buf_printf(&b, "%s", "abc"), 0);
    assert_string_equal(b.p, "00042abc");
    assert_int_equal(b.len, 8);
    assert_int_equal(kf_buf_printf(&b, "%d", 7), KF_ETOOBIG);
    assert_int_equal(b.len, 8);
    assert_string_equal(b.p, "00042abc");
    kf_buf_release(&b);

    kf_buf_init(&b, 8);
    assert_int_equal(kf_buf_printf(&b, "%s", "123456789"), KF_ETOOBIG);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    kf_buf_release(&b);
}

static void test_buf_is_nul_terminated_after_every_append(void **state)
{
    struct kf_buf b;

    (void)state;
    kf_buf_init(&b, 100);
    assert_int_equal(kf_buf_append(&b, "abcdef", 3), 0);
    assert_int_equal(b.len, 3);
    assert_int_equal(b.p[3], '\0');
    assert_string_equal(b.p, "abc");
    assert_int_equal(kf_buf_append(&b, "a\0b", 3), 0);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.p, "abca\0b", 7);
    kf_buf_release(&b);

    kf_buf_init(&b, 100);
    assert_int_equal(kf_buf_append(&b, NULL, 0), 0);
    assert_non_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.p[0], '\0');
    kf_buf_release(&b);
}

static void test_buf_reset_keeps_memory_and_empties_string(void **state)
{
    struct kf_buf b;
    char *before;

    (void)state;
    kf_buf_init(&b, 100);
    kf_buf_reset(&b);       /* untouched: must not crash */
    assert_int_equal(kf_buf_append_c(&b, "hello"), 0);
    before = b.p;
    kf_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.p, before);
    assert_string_equal(b.p, "");
    assert_int_equal(kf_buf_append_c(&b, "hi"), 0);
    assert_string_equal(b.p, "hi");
    kf_buf_release(&b);
}

static void test_buf_str_views_the_contents(void **state)
{
    struct kf_buf b;
    struct kf_str s;

    (void)state;
    kf_buf_init(&b, 100);
    s = kf_buf_str(&b);
    assert_non_null(s.p);
    assert_int_equal(s.len, 0);
    assert_int_equal(kf_buf_append_str(&b, S("view")), 0);
    s = kf_buf_str(&b);
    assert_true(kf_str_eq_c(s, "view"));
    kf_buf_release(&b);
}

static void test_buf_detach_hands_over_and_resets(void **state)
{
    struct kf_buf b;
    size_t len = 99;
    char *p;

    (void)state;
    kf_buf_init(&b, 100);
    assert_int_equal(kf_buf_append_c(&b, "owned"), 0);
    p = kf_buf_detach(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 5);
    assert_string_equal(p, "owned");
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);

    /* Twice: nothing left to hand over. */
    len = 99;
    assert_null(kf_buf_detach(&b, &len));
    assert_int_equal(len, 0);

    /* The buffer is usable again with the same cap. */
    assert_int_equal(kf_buf_append_c(&b, "again"), 0);
    assert_string_equal(b.p, "again");
    assert_int_equal(b.max, 100);
    free(p);
    p = kf_buf_detach(&b, NULL);
    assert_string_equal(p, "again");
    free(p);
    kf_buf_release(&b);
}

static void test_buf_detach_of_untouched_buffer_is_null(void **state)
{
    struct kf_buf b;
    size_t len = 7;

    (void)state;
    kf_buf_init(&b, 100);
    assert_null(kf_buf_detach(&b, &len));
    assert_int_equal(len, 0);
}

static void test_buf_release_twice_is_safe(void **state)
{
    struct kf_buf b;

    (void)state;
    kf_buf_init(&b, 100);
    kf_buf_release(&b);
    assert_int_equal(kf_buf_append_c(&b, "x"), 0);
    kf_buf_release(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    kf_buf_release(&b);
    assert_null(b.p);
}

/* --- kf_parse_u64 ------------------------------------------------------ */

static void test_parse_u64_accepts_zero(void **state)
{
    uint64_t v = 77;

    (void)state;
    assert_int_equal(kf_parse_u64(S("0"), &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(kf_parse_u64(S("00000000000000000000"), &v), 0);
    assert_int_equal(v, 0);
}

static void test_parse_u64_accepts_max_uint64(void **state)
{
    uint64_t v = 0;

    (void)state;
    assert_int_equal(kf_parse_u64(S("18446744073709551615"), &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(kf_parse_u64(S("18446744073709551614"), &v), 0);
    assert_true(v == UINT64_MAX - 1);
    assert_int_equal(kf_parse_u64(S("1409304348"), &v), 0);
    assert_true(v == 1409304348u);
}

static void test_parse_u64_rejects_max_plus_one_and_keeps_out(void **state)
{
    uint64_t v = 42;

    (void)state;
    assert_int_equal(kf_parse_u64(S("18446744073709551616"), &v), KF_EPARSE);
    assert_int_equal(kf_parse_u64(S("18446744073709551620"), &v), KF_EPARSE);
    assert_int_equal(kf_parse_u64(S("99999999999999999999"), &v), KF_EPARSE);
    assert_int_equal(kf_parse_u64(S("28446744073709551615"), &v), KF_EPARSE);
    assert_int_equal(v, 42);
}

static void test_parse_u64_rejects_empty(void **state)
{
    uint64_t v = 42;

    (void)state;
    assert_int_equal(kf_parse_u64(S(""), &v), KF_EPARSE);
    assert_int_equal(kf_parse_u64((struct kf_str){ NULL, 0 }, &v), KF_EPARSE);
    assert_int_equal(v, 42);
}

static void test_parse_u64_rejects_signs(void **state)
{
    uint64_t v = 42;

    (void)state;
    assert_int_equal(kf_parse_u64(S("-1"), &v), KF_EPARSE);
    assert_int_equal(kf_parse_u64(S("+1"), &v), KF_EPARSE);
    assert_int_equal(kf_parse_u64(S("-0"), &v), KF_EPARSE);
    assert_int_equal(v, 42);
}

static void test_parse_u64_rejects_spaces_and_junk(void **state)
{
    static const char *const bad[] = { " 1", "1 ", "1 2", "\t1", "1\n",
                                       "12a", "0x10", "1.0", "1e3", "a" };
    uint64_t v = 42;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kf_parse_u64(S(bad[i]), &v), KF_EPARSE);
        assert_int_equal(v, 42);
    }
    assert_int_equal(kf_parse_u64((struct kf_str){ "1\0002", 3 }, &v),
                     KF_EPARSE);
}

static void test_parse_u64_rejects_21_digits(void **state)
{
    uint64_t v = 42;

    (void)state;
    assert_int_equal(kf_parse_u64(S("000000000000000000001"), &v), KF_EPARSE);
    assert_int_equal(kf_parse_u64(S("184467440737095516150"), &v), KF_EPARSE);
    assert_int_equal(v, 42);
    assert_int_equal(kf_parse_u64(S("00000000000000000001"), &v), 0);
    assert_int_equal(v, 1);
}

static void test_parse_u64_reads_only_the_view(void **state)
{
    uint64_t v = 0;

    (void)state;
    assert_int_equal(kf_parse_u64((struct kf_str){ "123abc", 3 }, &v), 0);
    assert_int_equal(v, 123);
}

/* --- kf_strerror ------------------------------------------------------- */

static const int all_codes[] = {
    KF_OK,
#define X(name, code, msg) KF_##name,
    KF_ERRORS(X)
#undef X
};
#define NCODES (sizeof(all_codes) / sizeof(all_codes[0]))

static void test_strerror_is_non_empty_for_every_code(void **state)
{
    size_t i;

    (void)state;
    assert_true(NCODES >= 21);
    for (i = 0; i < NCODES; i++) {
        const char *m = kf_strerror(all_codes[i]);

        assert_non_null(m);
        assert_true(m[0] != '\0');
        assert_string_not_equal(m, "unknown error");
    }
}

static void test_strerror_is_distinct_for_every_code(void **state)
{
    size_t i, j;

    (void)state;
    for (i = 0; i < NCODES; i++)
        for (j = i + 1; j < NCODES; j++)
            assert_string_not_equal(kf_strerror(all_codes[i]),
                                    kf_strerror(all_codes[j]));
}

static void test_strerror_of_unknown_code_is_not_null(void **state)
{
    (void)state;
    assert_string_equal(kf_strerror(-999), "unknown error");
    assert_string_equal(kf_strerror(1), "unknown error");
    assert_string_equal(kf_strerror(KF_ETOOBIG), "input exceeds limit");
}

/* --- kf_str ------------------------------------------------------------ */

static void test_str_eq_compares_bytes_not_pointers(void **state)
{
    char a[] = "token", b[] = "token";

    (void)state;
    assert_true(kf_str_eq(kf_str_c(a), kf_str_c(b)));
    assert_true(kf_str_eq(KF_STR("abc"), (struct kf_str){ "abcdef", 3 }));
    assert_false(kf_str_eq(KF_STR("abc"), KF_STR("abd")));
    assert_false(kf_str_eq(KF_STR("abc"), KF_STR("ab")));
    assert_false(kf_str_eq(KF_STR("ab"), KF_STR("abc")));
    assert_false(kf_str_eq(KF_STR(""), KF_STR("a")));
}

static void test_str_eq_treats_empty_views_as_equal(void **state)
{
    (void)state;
    assert_true(kf_str_eq((struct kf_str){ NULL, 0 }, KF_STR("")));
    assert_true(kf_str_eq((struct kf_str){ NULL, 0 },
                          (struct kf_str){ NULL, 0 }));
    assert_true(kf_str_eq_c((struct kf_str){ NULL, 0 }, NULL));
    assert_true(kf_str_eq_c((struct kf_str){ "xyz", 0 }, ""));
}

static void test_str_eq_sees_embedded_nul(void **state)
{
    (void)state;
    assert_true(kf_str_eq((struct kf_str){ "a\0b", 3 },
                          (struct kf_str){ "a\0b", 3 }));
    assert_false(kf_str_eq((struct kf_str){ "a\0b", 3 },
                           (struct kf_str){ "a\0c", 3 }));
    assert_false(kf_str_eq_c((struct kf_str){ "a\0b", 3 }, "a"));
}

static void test_str_c_of_null_is_empty(void **state)
{
    struct kf_str s = kf_str_c(NULL);

    (void)state;
    assert_non_null(s.p);
    assert_int_equal(s.len, 0);
    s = kf_str_c("four");
    assert_int_equal(s.len, 4);
    assert_true(kf_str_eq_c(s, "four"));
    assert_false(kf_str_eq_c(s, "fou"));
}

/* The one check of text people write (summaries, labels, names, notes). */
static void test_text_check_takes_text_and_refuses_the_rest(void **state)
{
    (void)state;
    assert_int_equal(kf_text_check("售后 after-sales 🙂", 16, 0), 0);
    assert_int_equal(kf_text_check("售后 after-sales 🙂", 15, 0), KF_ETOOBIG);
    assert_int_equal(kf_text_check("", 0, 0), 0);
    assert_int_equal(kf_text_check("a\nb\tc", 10, 1), 0);
    assert_int_equal(kf_text_check("a\nb", 10, 0), KF_EINVAL);
    assert_int_equal(kf_text_check("a\rb", 10, 1), KF_EINVAL);
    assert_int_equal(kf_text_check("a\x7f", 10, 1), KF_EINVAL);
    assert_int_equal(kf_text_check("a\xc2\x85", 10, 1), KF_EINVAL); /* NEL */
    /* U+2028/U+2029 break a line: refused in one-line text only */
    assert_int_equal(kf_text_check("a\xe2\x80\xa8" "b", 10, 0), KF_EINVAL);
    assert_int_equal(kf_text_check("a\xe2\x80\xa9" "b", 10, 0), KF_EINVAL);
    assert_int_equal(kf_text_check("a\xe2\x80\xa8" "b", 10, 1), 0);
    assert_int_equal(kf_text_check("\xc3\x28", 10, 1), KF_EPARSE);
    assert_int_equal(kf_text_check("\xed\xa0\x80", 10, 1), KF_EPARSE);
}

static void test_is_hex_wants_exactly_len_lowercase_digits(void **state)
{
    (void)state;
    assert_true(kf_is_hex(KF_STR("0123456789abcdef"), 16));
    assert_false(kf_is_hex(KF_STR("0123456789abcdef"), 15));
    assert_false(kf_is_hex(KF_STR("0123456789abcdeF"), 16));
    assert_false(kf_is_hex(KF_STR("0123456789abcdeg"), 16));
    assert_false(kf_is_hex(KF_STR("01234567\0009abcdef"), 16));
    assert_true(kf_is_hex(KF_STR(""), 0));
}

static void test_hex_writes_lowercase_pairs_and_a_nul(void **state)
{
    const unsigned char in[] = { 0x00, 0x0f, 0xa5, 0xff };
    char out[2 * sizeof(in) + 2];

    (void)state;
    memset(out, 'x', sizeof(out));
    kf_hex(in, sizeof(in), out);
    assert_string_equal(out, "000fa5ff");
    assert_int_equal(out[2 * sizeof(in) + 1], 'x');
    kf_hex(in, 0, out);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_grows_past_initial_capacity),
        cmocka_unit_test(test_hex_writes_lowercase_pairs_and_a_nul),
        cmocka_unit_test(test_is_hex_wants_exactly_len_lowercase_digits),
        cmocka_unit_test(test_buf_append_in_one_large_piece),
        cmocka_unit_test(test_buf_printf_grows_and_appends),
        cmocka_unit_test(test_buf_accepts_exactly_max_bytes),
        cmocka_unit_test(
            test_buf_append_rejects_max_plus_one_and_writes_nothing),
        cmocka_unit_test(
            test_buf_first_append_over_max_leaves_buffer_untouched),
        cmocka_unit_test(test_buf_append_rejects_size_max_without_overflow),
        cmocka_unit_test(
            test_buf_printf_rejects_max_plus_one_and_writes_nothing),
        cmocka_unit_test(test_buf_is_nul_terminated_after_every_append),
        cmocka_unit_test(test_buf_reset_keeps_memory_and_empties_string),
        cmocka_unit_test(test_buf_str_views_the_contents),
        cmocka_unit_test(test_buf_detach_hands_over_and_resets),
        cmocka_unit_test(test_buf_detach_of_untouched_buffer_is_null),
        cmocka_unit_test(test_buf_release_twice_is_safe),
        cmocka_unit_test(test_parse_u64_accepts_zero),
        cmocka_unit_test(test_parse_u64_accepts_max_uint64),
        cmocka_unit_test(test_parse_u64_rejects_max_plus_one_and_keeps_out),
        cmocka_unit_test(test_parse_u64_rejects_empty),
        cmocka_unit_test(test_parse_u64_rejects_signs),
        cmocka_unit_test(test_parse_u64_rejects_spaces_and_junk),
        cmocka_unit_test(test_parse_u64_rejects_21_digits),
        cmocka_unit_test(test_parse_u64_reads_only_the_view),
        cmocka_unit_test(test_strerror_is_non_empty_for_every_code),
        cmocka_unit_test(test_strerror_is_distinct_for_every_code),
        cmocka_unit_test(test_strerror_of_unknown_code_is_not_null),
        cmocka_unit_test(test_str_eq_compares_bytes_not_pointers),
        cmocka_unit_test(test_str_eq_treats_empty_views_as_equal),
        cmocka_unit_test(test_str_eq_sees_embedded_nul),
        cmocka_unit_test(test_str_c_of_null_is_empty),
        cmocka_unit_test(test_text_check_takes_text_and_refuses_the_rest),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
