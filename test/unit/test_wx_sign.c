/* Unit tests for wx_sign: URL signature, msg_signature and the timestamp
 * window, driven by test/vectors/{signature,msg_signature}.tsv,
 * safe_mode.json and negative.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kf.h"
#include "wx_sign.h"
#include "testutil.h"

static struct kf_str S(const char *s)
{
    return kf_str_c(s);
}

/* Columns of signature.tsv, looked up by header name. */
struct sig_cols {
    size_t id, token, timestamp, nonce, echostr, signature, sorted;
};

static void sig_load(struct tu_tsv *t, struct sig_cols *c)
{
    tu_tsv_load(t, VEC("signature.tsv"));
    c->id = tu_tsv_col(t, "id");
    c->token = tu_tsv_col(t, "token");
    c->timestamp = tu_tsv_col(t, "timestamp");
    c->nonce = tu_tsv_col(t, "nonce");
    c->echostr = tu_tsv_col(t, "echostr");
    c->signature = tu_tsv_col(t, "signature");
    c->sorted = tu_tsv_col(t, "sorted_concat");
}

static void test_sig_matches_every_signature_row(void **state)
{
    struct tu_tsv t;
    struct sig_cols c;
    char out[WX_SIGN_HEX];
    size_t i;

    (void)state;
    sig_load(&t, &c);
    for (i = 1; i < t.nrows; i++) {
        char **r = t.rows[i];
        struct kf_str parts[3] = { S(r[c.token]), S(r[c.timestamp]),
                                   S(r[c.nonce]) };

        assert_int_equal(wx_sign_compute(parts, 3, out), 0);
        assert_string_equal(out, r[c.signature]);
        assert_int_equal(wx_sign_verify(parts[0], parts[1], parts[2],
                                         S(r[c.signature])), 0);
    }
    tu_tsv_release(&t);
}

/* The vector's sorted_concat is one ordering of the three inputs, and
 * hashing it alone gives the signature: so our sort picked that order. */
static void test_sig_is_hash_of_sorted_concat(void **state)
{
    struct tu_tsv t;
    struct sig_cols c;
    char out[WX_SIGN_HEX];
    size_t i;

    (void)state;
    sig_load(&t, &c);
    for (i = 1; i < t.nrows; i++) {
        char **r = t.rows[i];
        struct kf_str one = S(r[c.sorted]);
        size_t total = strlen(r[c.token]) + strlen(r[c.timestamp]) +
                       strlen(r[c.nonce]);

        assert_int_equal(one.len, total);
        assert_int_equal(wx_sign_compute(&one, 1, out), 0);
        assert_string_equal(out, r[c.signature]);
    }
    tu_tsv_release(&t);
}

static void test_sig_ignores_argument_order(void **state)
{
    static const int perm[6][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
                                    { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };
    struct tu_tsv t;
    struct sig_cols c;
    char out[WX_SIGN_HEX];
    size_t i, k;

    (void)state;
    sig_load(&t, &c);
    for (i = 1; i < t.nrows; i++) {
        char **r = t.rows[i];
        struct kf_str in[3] = { S(r[c.token]), S(r[c.timestamp]),
                                S(r[c.nonce]) };

        for (k = 0; k < 6; k++) {
            struct kf_str p[3] = { in[perm[k][0]], in[perm[k][1]],
                                   in[perm[k][2]] };

            assert_int_equal(wx_sign_compute(p, 3, out), 0);
            assert_string_equal(out, r[c.signature]);
        }
    }
    tu_tsv_release(&t);
}

/* docs/wechat-protocol.md §2: the worked example (token AAAAA) is row
 * S-sig-doc-2. */
static void test_sig_doc_worked_example(void **state)
{
    struct tu_tsv t;
    struct sig_cols c;
    size_t i, found = 0;

    (void)state;
    sig_load(&t, &c);
    for (i = 1; i < t.nrows; i++) {
        char **r = t.rows[i];

        if (strcmp(r[c.id], "S-sig-doc-2") != 0)
            continue;
        found++;
        assert_string_equal(r[c.token], "AAAAA");
        assert_string_not_equal(r[c.echostr], "-");
        assert_int_equal(wx_sign_verify(S(r[c.token]), S(r[c.timestamp]),
                                        S(r[c.nonce]), S(r[c.signature])),
                         0);
        /* Swapping timestamp and nonce must not matter (sorted). */
        assert_int_equal(wx_sign_verify(S(r[c.token]), S(r[c.nonce]),
                                        S(r[c.timestamp]),
                                        S(r[c.signature])), 0);
    }
    assert_int_equal(found, 1);
    tu_tsv_release(&t);
}

static char flip_hex(char ch)
{
    return ch == '0' ? '1' : '0';
}

static void test_sig_rejects_altered_signature(void **state)
{
    struct tu_tsv t;
    struct sig_cols c;
    char sig[WX_SIGN_HEX + 1];
    size_t i, k, upper_checked = 0;

    (void)state;
    sig_load(&t, &c);
    for (i = 1; i < t.nrows; i++) {
        char **r = t.rows[i];
        struct kf_str tok = S(r[c.token]), ts = S(r[c.timestamp]),
                      nonce = S(r[c.nonce]);
        int has_letter = 0;

        assert_int_equal(strlen(r[c.signature]), WX_SIGN_HEX - 1);
        for (k = 0; k < WX_SIGN_HEX - 1; k++) {
            memcpy(sig, r[c.signature], WX_SIGN_HEX);
            sig[k] = flip_hex(sig[k]);
            assert_int_equal(wx_sign_verify(tok, ts, nonce, S(sig)),
                             KF_EBADSIG);
        }
        memcpy(sig, r[c.signature], WX_SIGN_HEX);
        for (k = 0; k < WX_SIGN_HEX - 1; k++)
            if (sig[k] >= 'a' && sig[k] <= 'f') {
                sig[k] = (char)(sig[k] - 'a' + 'A');
                has_letter = 1;
            }
        if (has_letter) {
            assert_int_equal(wx_sign_verify(tok, ts, nonce, S(sig)),
                             KF_EBADSIG);
            upper_checked++;
        }
        /* Wrong token. */
        assert_int_equal(wx_sign_verify(S("x"), ts, nonce,
                                        S(r[c.signature])), KF_EBADSIG);
    }
    assert_true(upper_checked > 0);
    tu_tsv_release(&t);
}

static void test_sig_rejects_empty_or_wrong_length(void **state)
{
    struct tu_tsv t;
    struct sig_cols c;
    char sig[WX_SIGN_HEX + 1];
    char **r;
    struct kf_str tok, ts, nonce;

    (void)state;
    sig_load(&t, &c);
    r = t.rows[1];
    tok = S(r[c.token]);
    ts = S(r[c.timestamp]);
    nonce = S(r[c.nonce]);
    memcpy(sig, r[c.signature], WX_SIGN_HEX);
    assert_int_equal(wx_sign_verify(tok, ts, nonce, S(sig)), 0);
    assert_int_equal(wx_sign_verify(tok, ts, nonce, S("")), KF_EBADSIG);
    assert_int_equal(wx_sign_verify(tok, ts, nonce,
                                     (struct kf_str){ NULL, 0 }),
                     KF_EBADSIG);
    /* A prefix (39 chars) and an extension (41 chars). */
    assert_int_equal(wx_sign_verify(tok, ts, nonce,
                                     (struct kf_str){ sig, 39 }),
                     KF_EBADSIG);
    sig[40] = '0';
    sig[41] = '\0';
    assert_int_equal(wx_sign_verify(tok, ts, nonce,
                                     (struct kf_str){ sig, 41 }),
                     KF_EBADSIG);
    /* Empty token fails closed even with its own valid signature. */
    {
        struct kf_str parts[3] = { S(""), ts, nonce };
        char out[WX_SIGN_HEX];

        assert_int_equal(wx_sign_compute(parts, 3, out), 0);
        assert_int_equal(wx_sign_verify(S(""), ts, nonce, S(out)),
                         KF_EBADSIG);
    }
    tu_tsv_release(&t);
}

static void test_sig_rejects_negative_url_vectors(void **state)
{
    json_t *all = tu_read_json(VEC("negative.json"));
    size_t i, n = 0;
    json_t *v;

    (void)state;
    json_array_foreach(all, i, v) {
        struct kf_str tok, ts, nonce;

        if (strcmp(tu_jstr(v, "kind"), "url_signature") != 0)
            continue;
        n++;
        tok = S(tu_jstr(v, "token"));
        ts = S(tu_jstr(v, "timestamp"));
        nonce = S(tu_jstr(v, "nonce"));
        assert_int_equal(wx_sign_verify(tok, ts, nonce,
                                        S(tu_jstr(v, "signature"))),
                         KF_EBADSIG);
        /* The reference value passes, so the rejection is meaningful. */
        assert_int_equal(wx_sign_verify(tok, ts, nonce,
                                        S(tu_jstr(v, "correct_signature"))),
                         0);
    }
    assert_true(n >= 2);
    json_decref(all);
}

static void test_msgsig_matches_every_row(void **state)
{
    struct tu_tsv t;
    size_t ctok, cts, cnonce, cenc, csig, i;
    char out[WX_SIGN_HEX];

    (void)state;
    tu_tsv_load(&t, VEC("msg_signature.tsv"));
    ctok = tu_tsv_col(&t, "token");
    cts = tu_tsv_col(&t, "timestamp");
    cnonce = tu_tsv_col(&t, "nonce");
    cenc = tu_tsv_col(&t, "encrypt");
    csig = tu_tsv_col(&t, "msg_signature");
    for (i = 1; i < t.nrows; i++) {
        char **r = t.rows[i];
        struct kf_str p[4] = { S(r[ctok]), S(r[cts]), S(r[cnonce]),
                               S(r[cenc]) };
        struct kf_str q[4] = { p[3], p[1], p[0], p[2] };

        assert_int_equal(wx_sign_compute(p, 4, out), 0);
        assert_string_equal(out, r[csig]);
        assert_int_equal(wx_sign_compute(q, 4, out), 0);
        assert_string_equal(out, r[csig]);
        assert_int_equal(wx_sign_verify_msg(p[0], p[1], p[2], p[3],
                                            S(r[csig])), 0);
        /* Not the 3-string URL signature. */
        assert_int_equal(wx_sign_verify(p[0], p[1], p[2], S(r[csig])),
                         KF_EBADSIG);
    }
    tu_tsv_release(&t);
}

/* safe_mode.json: every entry verifies, and the S-b64* entries spell out
 * the sorted order (Encrypt starting with '+' or '/' sorts first). */
static void test_msgsig_sorted_order_vectors(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    size_t i, n = 0;
    json_t *v;
    char out[WX_SIGN_HEX];

    (void)state;
    json_array_foreach(all, i, v) {
        json_t *order = json_object_get(v, "msg_signature_sorted_order");
        struct kf_buf cat;
        size_t k;
        json_t *s;

        assert_int_equal(wx_sign_verify_msg(S(tu_jstr(v, "token")),
                                            S(tu_jstr(v, "timestamp")),
                                            S(tu_jstr(v, "nonce")),
                                            S(tu_jstr(v, "encrypt")),
                                            S(tu_jstr(v, "msg_signature"))),
                         0);
        if (!order)
            continue;
        n++;
        assert_int_equal(json_array_size(order), 4);
        assert_string_equal(json_string_value(json_array_get(order, 0)),
                            tu_jstr(v, "encrypt"));
        kf_buf_init(&cat, 1 << 20);
        json_array_foreach(order, k, s)
            assert_int_equal(kf_buf_append_c(&cat, json_string_value(s)), 0);
        {
            struct kf_str one = kf_buf_str(&cat);

            assert_int_equal(wx_sign_compute(&one, 1, out), 0);
        }
        assert_string_equal(out, tu_jstr(v, "msg_signature"));
        kf_buf_release(&cat);
    }
    assert_true(n >= 2);
    json_decref(all);
}

static void test_msgsig_rejects_negative_vectors(void **state)
{
    json_t *all = tu_read_json(VEC("negative.json"));
    size_t i, n = 0, with_ref = 0;
    json_t *v;

    (void)state;
    json_array_foreach(all, i, v) {
        struct kf_str tok, ts, nonce, enc;
        const char *ref;

        if (strcmp(tu_jstr(v, "kind"), "msg_signature") != 0)
            continue;
        n++;
        tok = S(tu_jstr(v, "token"));
        ts = S(tu_jstr(v, "timestamp"));
        nonce = S(tu_jstr(v, "nonce"));
        enc = S(tu_jstr(v, "encrypt"));
        assert_int_equal(wx_sign_verify_msg(tok, ts, nonce, enc,
                                            S(tu_jstr(v, "msg_signature"))),
                         KF_EBADSIG);
        ref = json_string_value(json_object_get(v, "correct_msg_signature"));
        if (ref) {
            with_ref++;
            assert_int_equal(wx_sign_verify_msg(tok, ts, nonce, enc, S(ref)),
                             0);
        }
    }
    assert_true(n >= 2);
    assert_true(with_ref >= 1);
    json_decref(all);
}

static void test_msgsig_rejects_empty_encrypt(void **state)
{
    struct kf_str tok = S("token"), ts = S("1716200003"), nonce = S("1");
    struct kf_str p[3] = { tok, ts, nonce };
    char out[WX_SIGN_HEX];

    (void)state;
    /* With an empty Encrypt the 4-string hash equals the URL signature;
     * it must not be accepted as a msg_signature. */
    assert_int_equal(wx_sign_compute(p, 3, out), 0);
    assert_int_equal(wx_sign_verify(tok, ts, nonce, S(out)), 0);
    assert_int_equal(wx_sign_verify_msg(tok, ts, nonce, S(""), S(out)),
                     KF_EBADSIG);
}

static void test_compute_sorts_prefix_first(void **state)
{
    struct kf_str two[2] = { S("ab"), S("a") };
    struct kf_str joined = S("aab");
    struct kf_str wrong = S("aba");
    char a[WX_SIGN_HEX], b[WX_SIGN_HEX], w[WX_SIGN_HEX];

    (void)state;
    assert_int_equal(wx_sign_compute(two, 2, a), 0);
    assert_int_equal(wx_sign_compute(&joined, 1, b), 0);
    assert_int_equal(wx_sign_compute(&wrong, 1, w), 0);
    assert_string_equal(a, b);
    assert_string_not_equal(a, w);
}

/* Bytes >= 0x80 sort after ASCII (unsigned compare, as memcmp). */
static void test_compute_sorts_high_bytes_last(void **state)
{
    struct kf_str two[2] = { S("\xe4\xb8\xad"), S("z") };
    struct kf_str joined = S("z\xe4\xb8\xad");
    char a[WX_SIGN_HEX], b[WX_SIGN_HEX];

    (void)state;
    assert_int_equal(wx_sign_compute(two, 2, a), 0);
    assert_int_equal(wx_sign_compute(&joined, 1, b), 0);
    assert_string_equal(a, b);
}

static void test_compute_output_is_lowercase_hex(void **state)
{
    struct kf_str one = S("wxkf");
    char out[WX_SIGN_HEX];
    size_t i;

    (void)state;
    memset(out, 'X', sizeof(out));
    assert_int_equal(wx_sign_compute(&one, 1, out), 0);
    assert_int_equal(strlen(out), WX_SIGN_HEX - 1);
    for (i = 0; i < WX_SIGN_HEX - 1; i++)
        assert_true((out[i] >= '0' && out[i] <= '9') ||
                    (out[i] >= 'a' && out[i] <= 'f'));
}

static void test_compute_rejects_bad_part_count(void **state)
{
    struct kf_str p[WX_SIGN_MAX_PARTS + 1];
    char out[WX_SIGN_HEX];
    size_t i;

    (void)state;
    for (i = 0; i < WX_SIGN_MAX_PARTS + 1; i++)
        p[i] = S("x");
    assert_int_equal(wx_sign_compute(p, 0, out), KF_EINVAL);
    assert_int_equal(wx_sign_compute(NULL, 1, out), KF_EINVAL);
    assert_int_equal(wx_sign_compute(p, WX_SIGN_MAX_PARTS + 1, out),
                     KF_EINVAL);
    assert_int_equal(wx_sign_compute(p, WX_SIGN_MAX_PARTS, out), 0);
}

static void test_compute_rejects_oversized_input(void **state)
{
    size_t big = WX_SIGN_TOTAL_MAX + 1;
    char *mem = malloc(big);
    char out[WX_SIGN_HEX];
    struct kf_str p[2];

    (void)state;
    assert_non_null(mem);
    memset(mem, 'a', big);
    p[0] = (struct kf_str){ mem, big };
    assert_int_equal(wx_sign_compute(p, 1, out), KF_ETOOBIG);
    p[0].len = WX_SIGN_TOTAL_MAX;
    assert_int_equal(wx_sign_compute(p, 1, out), 0);
    /* Each part fits, the sum does not. */
    p[0].len = WX_SIGN_TOTAL_MAX / 2 + 1;
    p[1] = p[0];
    assert_int_equal(wx_sign_compute(p, 2, out), KF_ETOOBIG);
    free(mem);
}

static void test_verify_rejects_oversized_small_parts(void **state)
{
    size_t big = WX_SIGN_PART_MAX + 1;
    char *mem = malloc(big);
    struct kf_str huge, ok = S("1716200003");
    struct kf_str p[3];
    char out[WX_SIGN_HEX];

    (void)state;
    assert_non_null(mem);
    memset(mem, '7', big);
    huge = (struct kf_str){ mem, big };
    /* Even a correct signature is refused for an oversized nonce. */
    p[0] = S("token");
    p[1] = ok;
    p[2] = huge;
    assert_int_equal(wx_sign_compute(p, 3, out), 0);
    assert_int_equal(wx_sign_verify(p[0], ok, huge, S(out)), KF_EBADSIG);
    p[2].len = WX_SIGN_PART_MAX;
    assert_int_equal(wx_sign_compute(p, 3, out), 0);
    assert_int_equal(wx_sign_verify(p[0], ok, p[2], S(out)), 0);
    free(mem);
}

/* The message hash is SHA-256 (FIPS 180-2 "abc" and empty-input
 * vectors), lowercase, and tells two messages apart by one byte. */
static void test_msg_hash_is_sha256_hex(void **state)
{
    char h[WX_SIGN_MSG_HEX], h2[WX_SIGN_MSG_HEX];

    (void)state;
    assert_int_equal(wx_sign_msg_hash(KF_STR("abc"), h), 0);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223"
                           "b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(wx_sign_msg_hash((struct kf_str){ NULL, 0 }, h), 0);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb924"
                           "27ae41e4649b934ca495991b7852b855");
    assert_int_equal(wx_sign_msg_hash(KF_STR("<xml>a</xml>"), h), 0);
    assert_int_equal(wx_sign_msg_hash(KF_STR("<xml>b</xml>"), h2), 0);
    assert_string_not_equal(h, h2);
}

static void test_time_accepts_within_window(void **state)
{
    struct kf_str ts = S("1716200003");

    (void)state;
    assert_int_equal(wx_sign_check_time(ts, 1716200003, 300), 0);
    assert_int_equal(wx_sign_check_time(ts, 1716200003 + 300, 300), 0);
    assert_int_equal(wx_sign_check_time(ts, 1716200003 - 300, 300), 0);
}

static void test_time_rejects_stale_timestamp(void **state)
{
    (void)state;
    assert_int_equal(wx_sign_check_time(S("1716200003"),
                                        1716200003 + 301, 300),
                     KF_ESTALE);
    assert_int_equal(wx_sign_check_time(S("0"), 1716200003, 300),
                     KF_ESTALE);
}

static void test_time_rejects_future_timestamp(void **state)
{
    (void)state;
    assert_int_equal(wx_sign_check_time(S("1716200003"),
                                        1716200003 - 301, 300),
                     KF_ESTALE);
    assert_int_equal(wx_sign_check_time(S("18446744073709551615"),
                                        1716200003, 300),
                     KF_ESTALE);
}

static void test_time_rejects_non_numeric_timestamp(void **state)
{
    static const char *bad[] = { "", "abc", "-1", "+1", " 1716200003",
                                 "1716200003 ", "1716200003.5", "0x10",
                                 "18446744073709551616" };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(wx_sign_check_time(S(bad[i]), 1716200003, 300),
                         KF_EPARSE);
        assert_int_equal(wx_sign_check_time(S(bad[i]), 1716200003, 0),
                         KF_EPARSE);
    }
    assert_int_equal(wx_sign_check_time((struct kf_str){ NULL, 0 },
                                        1716200003, 0), KF_EPARSE);
}

static void test_time_window_zero_disables_check(void **state)
{
    (void)state;
    assert_int_equal(wx_sign_check_time(S("0"), 1716200003, 0), 0);
    assert_int_equal(wx_sign_check_time(S("18446744073709551615"),
                                        INT64_MIN, 0), 0);
}

static void test_time_extremes_do_not_overflow(void **state)
{
    (void)state;
    assert_int_equal(wx_sign_check_time(S("9223372036854775807"),
                                        INT64_MIN, UINT32_MAX),
                     KF_ESTALE);
    assert_int_equal(wx_sign_check_time(S("9223372036854775807"),
                                        INT64_MAX, 1), 0);
    /* Above INT64_MAX but only 1 s after now. */
    assert_int_equal(wx_sign_check_time(S("9223372036854775808"),
                                        INT64_MAX, 1), 0);
    assert_int_equal(wx_sign_check_time(S("18446744073709551615"),
                                        INT64_MIN, UINT32_MAX),
                     KF_ESTALE);
    assert_int_equal(wx_sign_check_time(S("0"), INT64_MIN, UINT32_MAX),
                     KF_ESTALE);
    assert_int_equal(wx_sign_check_time(S("5"), -5, 10), 0);
    assert_int_equal(wx_sign_check_time(S("5"), -6, 10), KF_ESTALE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sig_matches_every_signature_row),
        cmocka_unit_test(test_sig_is_hash_of_sorted_concat),
        cmocka_unit_test(test_sig_ignores_argument_order),
        cmocka_unit_test(test_sig_doc_worked_example),
        cmocka_unit_test(test_sig_rejects_altered_signature),
        cmocka_unit_test(test_sig_rejects_empty_or_wrong_length),
        cmocka_unit_test(test_sig_rejects_negative_url_vectors),
        cmocka_unit_test(test_msgsig_matches_every_row),
        cmocka_unit_test(test_msgsig_sorted_order_vectors),
        cmocka_unit_test(test_msgsig_rejects_negative_vectors),
        cmocka_unit_test(test_msgsig_rejects_empty_encrypt),
        cmocka_unit_test(test_compute_sorts_prefix_first),
        cmocka_unit_test(test_compute_sorts_high_bytes_last),
        cmocka_unit_test(test_compute_output_is_lowercase_hex),
        cmocka_unit_test(test_compute_rejects_bad_part_count),
        cmocka_unit_test(test_compute_rejects_oversized_input),
        cmocka_unit_test(test_verify_rejects_oversized_small_parts),
        cmocka_unit_test(test_msg_hash_is_sha256_hex),
        cmocka_unit_test(test_time_accepts_within_window),
        cmocka_unit_test(test_time_rejects_stale_timestamp),
        cmocka_unit_test(test_time_rejects_future_timestamp),
        cmocka_unit_test(test_time_rejects_non_numeric_timestamp),
        cmocka_unit_test(test_time_window_zero_disables_check),
        cmocka_unit_test(test_time_extremes_do_not_overflow),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
