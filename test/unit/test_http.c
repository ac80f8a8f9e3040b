/* Unit tests for http: query-string parsing (WeChat callback queries,
 * decoding, limits, malformed escapes) and the error -> status mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>

#include "http.h"
#include "kf.h"
#include "refusal.h"
#include "testutil.h"

static struct kf_str S(const char *s)
{
    return kf_str_c(s);
}

/* Asserts q has name with exactly value. */
static void expect_param(const struct http_query *q, const char *name,
                         const char *value)
{
    struct kf_str v = { NULL, 99 };

    if (!http_query_get(q, name, &v))
        fail_msg("parameter %s missing", name);
    if (!kf_str_eq_c(v, value))
        fail_msg("%s = \"%.*s\", want \"%s\"", name, (int)v.len, v.p, value);
}

/* Parses qs into a fresh query, expecting rc; releases. */
static void expect_parse_rc(const char *qs, int want)
{
    struct http_query q;
    int rc;

    http_query_init(&q);
    rc = http_query_parse(&q, S(qs));
    http_query_release(&q);
    if (rc != want)
        fail_msg("parse(\"%s\") = %d, want %d", qs, rc, want);
}

/* --- WeChat queries ---------------------------------------------------- */

static void test_query_parses_a_safe_mode_callback(void **state)
{
    struct http_query q;

    (void)state;
    http_query_init(&q);
    assert_int_equal(
        http_query_parse(&q, S("signature=6b7d5a3c0f1e2d4b&timestamp="
                               "1409304348&nonce=1234567890&openid="
                               "oXyZ-abc_123&encrypt_type=aes&"
                               "msg_signature=9a8b7c6d5e4f")),
        0);
    assert_int_equal(q.n, 6);
    expect_param(&q, "signature", "6b7d5a3c0f1e2d4b");
    expect_param(&q, "timestamp", "1409304348");
    expect_param(&q, "nonce", "1234567890");
    expect_param(&q, "openid", "oXyZ-abc_123");
    expect_param(&q, "encrypt_type", "aes");
    expect_param(&q, "msg_signature", "9a8b7c6d5e4f");
    http_query_release(&q);
}

static void test_query_parses_a_url_verification(void **state)
{
    struct http_query q;

    (void)state;
    http_query_init(&q);
    assert_int_equal(
        http_query_parse(&q, S("signature=abc&echostr=4937285627386&"
                               "timestamp=1409304348&nonce=263014780")),
        0);
    assert_int_equal(q.n, 4);
    expect_param(&q, "echostr", "4937285627386");
    expect_param(&q, "nonce", "263014780");
    http_query_release(&q);
}

static void test_query_reads_only_the_view(void **state)
{
    struct http_query q;

    (void)state;
    http_query_init(&q);
    assert_int_equal(http_query_parse(&q, (struct kf_str){ "a=1&b=2XYZ", 7 }),
                     0);
    assert_int_equal(q.n, 2);
    expect_param(&q, "b", "2");
    http_query_release(&q);
}

static void test_query_empty_string_has_no_params(void **state)
{
    struct http_query q;
    struct kf_str v;

    (void)state;
    http_query_init(&q);
    assert_int_equal(http_query_parse(&q, S("")), 0);
    assert_int_equal(q.n, 0);
    assert_int_equal(http_query_get(&q, "signature", &v), 0);
    assert_int_equal(v.len, 0);
    http_query_release(&q);
}

/* --- decoding ---------------------------------------------------------- */

static void test_query_decodes_plus_as_space(void **state)
{
    struct http_query q;

    (void)state;
    http_query_init(&q);
    assert_int_equal(http_query_parse(&q, S("q=hello+world+&r=%20x")), 0);
    expect_param(&q, "q", "hello world ");
    expect_param(&q, "r", " x");
    http_query_release(&q);
}

static void test_query_decodes_percent_escapes_in_values(void **state)
{
    struct http_query q;

    (void)state;
    http_query_init(&q);
    assert_int_equal(
        http_query_parse(&q, S("echostr=a%2Bb%2Fc%3D%3D&lower=%2b%2f&"
                               "zh=%E5%AE%A2%E6%9C%8D&amp=%26%3D")),
        0);
    /* An encoded '+' stays '+', never a space. */
    expect_param(&q, "echostr", "a+b/c==");
    expect_param(&q, "lower", "+/");
    expect_param(&q, "zh", "\xe5\xae\xa2\xe6\x9c\x8d");
    expect_param(&q, "amp", "&=");
    assert_int_equal(q.n, 4);
    http_query_release(&q);
}

static void test_query_decodes_percent_escapes_in_names(void **state)
{
    struct http_query q;

    (void)state;
    http_query_init(&q);
    assert_int_equal(http_query_parse(&q, S("n%61me=v&a+b=c")), 0);
    expect_param(&q, "name", "v");
    expect_param(&q, "a b", "c");
    http_query_release(&q);
}

static void test_query_keeps_equals_inside_a_value(void **state)
{
    struct http_query q;

    (void)state;
    http_query_init(&q);
    assert_int_equal(http_query_parse(&q, S("k=a=b=c&e=")), 0);
    expect_param(&q, "k", "a=b=c");
    expect_param(&q, "e", "");
    http_query_release(&q);
}

/* --- lookups ----------------------------------------------------------- */

static void test_query_first_of_repeated_names_wins(void **state)
{
    struct http_query q;

    (void)state;
    http_query_init(&q);
    assert_int_equal(
        http_query_parse(&q, S("signature=first&x=1&signature=second")), 0);
    assert_int_equal(q.n, 3);
    expect_param(&q, "signature", "first");
    http_query_release(&q);
}

static void test_query_missing_name_is_zero_and_empty(void **state)
{
    struct http_query q;
    struct kf_str v = { "garbage", 7 };

    (void)state;
    http_query_init(&q);
    assert_int_equal(http_query_parse(&q, S("a=1&signature=x")), 0);
    assert_int_equal(http_query_get(&q, "nonce", &v), 0);
    assert_non_null(v.p);
    assert_int_equal(v.len, 0);
    /* names match whole, not by prefix */
    assert_int_equal(http_query_get(&q, "sig", &v), 0);
    assert_int_equal(http_query_get(&q, "signatures", &v), 0);
    assert_int_equal(http_query_get(&q, "", &v), 0);
    http_query_release(&q);
}

static void test_query_get_on_fresh_query_is_zero(void **state)
{
    struct http_query q;
    struct kf_str v = { "garbage", 7 };

    (void)state;
    http_query_init(&q);
    assert_int_equal(http_query_get(&q, "a", &v), 0);
    assert_int_equal(v.len, 0);
    http_query_release(&q);
}

static void test_query_name_without_equals_has_empty_value(void **state)
{
    struct http_query q;
    struct kf_str v = { NULL, 99 };

    (void)state;
    http_query_init(&q);
    assert_int_equal(http_query_parse(&q, S("debug&a=1&flag")), 0);
    assert_int_equal(q.n, 3);
    assert_int_equal(http_query_get(&q, "debug", &v), 1);
    assert_non_null(v.p);
    assert_int_equal(v.len, 0);
    expect_param(&q, "a", "1");
    expect_param(&q, "flag", "");
    http_query_release(&q);
}

static void test_query_skips_empty_pieces(void **state)
{
    struct http_query q;

    (void)state;
    http_query_init(&q);
    assert_int_equal(http_query_parse(&q, S("&&a=1&&&b=2&")), 0);
    assert_int_equal(q.n, 2);
    expect_param(&q, "a", "1");
    expect_param(&q, "b", "2");
    assert_int_equal(http_query_parse(&q, S("&&&")), 0);
    assert_int_equal(q.n, 0);
    http_query_release(&q);
}

/* --- malformed --------------------------------------------------------- */

static void test_query_rejects_non_hex_escape(void **state)
{
    (void)state;
    expect_parse_rc("a=%zz", KF_EPARSE);
    expect_parse_rc("a=%4g", KF_EPARSE);
    expect_parse_rc("a=%g4", KF_EPARSE);
    expect_parse_rc("%zz=1", KF_EPARSE);
    expect_parse_rc("ok=1&a=%%41", KF_EPARSE);
}

static void test_query_rejects_truncated_escape(void **state)
{
    (void)state;
    expect_parse_rc("a=%4", KF_EPARSE);
    expect_parse_rc("a=%4&b=1", KF_EPARSE);
    expect_parse_rc("a=%", KF_EPARSE);
    expect_parse_rc("a=%&b=1", KF_EPARSE);
    expect_parse_rc("%", KF_EPARSE);
    expect_parse_rc("a%4=1", KF_EPARSE);
    /* An escape ending exactly at the end is complete. */
    expect_parse_rc("a=%41", 0);
}

static void test_query_rejects_truncated_escape_at_end_of_view(void **state)
{
    struct http_query q;

    (void)state;
    http_query_init(&q);
    /* "%41" in memory, but the view stops after "%4". */
    assert_int_equal(http_query_parse(&q, (struct kf_str){ "a=%41", 4 }),
                     KF_EPARSE);
    http_query_release(&q);
}

static void test_query_rejects_decoded_nul(void **state)
{
    (void)state;
    expect_parse_rc("a=%00", KF_EPARSE);
    expect_parse_rc("a=x%00y", KF_EPARSE);
    expect_parse_rc("%00=1", KF_EPARSE);
}

static void test_query_rejects_raw_nul_byte(void **state)
{
    struct http_query q;

    (void)state;
    http_query_init(&q);
    assert_int_equal(http_query_parse(&q, (struct kf_str){ "a=x\0y", 5 }),
                     KF_EPARSE);
    http_query_release(&q);
}

/* --- limits ------------------------------------------------------------ */

static void test_query_accepts_exactly_http_query_max_bytes(void **state)
{
    struct http_query q;
    char *qs = malloc(HTTP_QUERY_MAX + 2);
    struct kf_str v;

    (void)state;
    assert_non_null(qs);
    memcpy(qs, "a=", 2);
    memset(qs + 2, 'x', HTTP_QUERY_MAX - 1);   /* one spare byte */
    http_query_init(&q);
    assert_int_equal(
        http_query_parse(&q, (struct kf_str){ qs, HTTP_QUERY_MAX }), 0);
    assert_int_equal(http_query_get(&q, "a", &v), 1);
    assert_int_equal(v.len, HTTP_QUERY_MAX - 2);
    assert_int_equal(
        http_query_parse(&q, (struct kf_str){ qs, HTTP_QUERY_MAX + 1 }),
        KF_ETOOBIG);
    http_query_release(&q);
    free(qs);
}

/* "p0=0&p1=1&..." with n parameters; caller frees. */
static char *params(size_t n)
{
    struct kf_buf b;
    size_t i;

    kf_buf_init(&b, HTTP_QUERY_MAX);
    for (i = 0; i < n; i++)
        assert_int_equal(kf_buf_printf(&b, "%sp%zu=%zu", i ? "&" : "", i, i),
                         0);
    return kf_buf_detach(&b, NULL);
}

static void test_query_accepts_exactly_http_query_params(void **state)
{
    struct http_query q;
    char *qs = params(HTTP_QUERY_PARAMS), name[16], value[16];

    (void)state;
    http_query_init(&q);
    assert_int_equal(http_query_parse(&q, S(qs)), 0);
    assert_int_equal(q.n, HTTP_QUERY_PARAMS);
    snprintf(name, sizeof(name), "p%d", HTTP_QUERY_PARAMS - 1);
    snprintf(value, sizeof(value), "%d", HTTP_QUERY_PARAMS - 1);
    expect_param(&q, name, value);
    http_query_release(&q);
    free(qs);
}

static void test_query_rejects_more_than_http_query_params(void **state)
{
    struct http_query q;
    char *qs = params(HTTP_QUERY_PARAMS + 1);

    (void)state;
    http_query_init(&q);
    assert_int_equal(http_query_parse(&q, S(qs)), KF_ETOOBIG);
    http_query_release(&q);
    free(qs);
}

static void test_query_empty_pieces_do_not_count_toward_the_limit(
    void **state)
{
    struct http_query q;
    char *qs = params(HTTP_QUERY_PARAMS), *padded;
    size_t n = strlen(qs);

    (void)state;
    padded = malloc(n + 4);
    assert_non_null(padded);
    memcpy(padded, "&&", 2);
    memcpy(padded + 2, qs, n);
    memcpy(padded + 2 + n, "&", 2);
    http_query_init(&q);
    assert_int_equal(http_query_parse(&q, S(padded)), 0);
    assert_int_equal(q.n, HTTP_QUERY_PARAMS);
    http_query_release(&q);
    free(padded);
    free(qs);
}

/* --- lifetime ---------------------------------------------------------- */

static void test_query_parse_twice_replaces_the_first(void **state)
{
    struct http_query q;
    struct kf_str v;

    (void)state;
    http_query_init(&q);
    assert_int_equal(http_query_parse(&q, S("a=1&b=2&c=3")), 0);
    assert_int_equal(http_query_parse(&q, S("d=4")), 0);
    assert_int_equal(q.n, 1);
    assert_int_equal(http_query_get(&q, "a", &v), 0);
    expect_param(&q, "d", "4");
    /* after a failure, a good parse still works and leaks nothing */
    assert_int_equal(http_query_parse(&q, S("x=%zz")), KF_EPARSE);
    assert_int_equal(http_query_parse(&q, S("e=5")), 0);
    expect_param(&q, "e", "5");
    http_query_release(&q);
}

static void test_query_release_twice_is_safe(void **state)
{
    struct http_query q;

    (void)state;
    http_query_init(&q);
    http_query_release(&q);
    assert_int_equal(http_query_parse(&q, S("a=1")), 0);
    http_query_release(&q);
    assert_null(q.buf);
    assert_int_equal(q.n, 0);
    http_query_release(&q);
    assert_null(q.buf);
}

/* --- error mapping ----------------------------------------------------- */

static const struct {
    int rc, status;
    const char *code;
} mapping[] = {
    { KF_EBADSIG, 403, "bad_signature" },
    { KF_ESTALE, 403, "stale_timestamp" },
    { KF_ETOOBIG, 413, "body_too_large" },
    { KF_EDTD, 400, "dtd_refused" },
    { KF_EBASE64, 400, "bad_base64" },
    { KF_ECIPHER, 400, "bad_ciphertext" },
    { KF_EPADDING, 400, "bad_padding" },
    { KF_ELENGTH, 400, "bad_length" },
    { KF_EAPPID, 400, "appid_mismatch" },
    { KF_EACCOUNT, 400, "account_mismatch" },
    { KF_ENOKEY, 400, "encryption_not_configured" },
    { KF_EENCODING, 400, "encoding_refused" },
    { KF_EREPLAY, 403, "signature_reused" },
    { KF_EINVAL, 400, "invalid_field" },
    { KF_EBACKEND, 503, "backend_unavailable" },
    { KF_EPARSE, 400, "malformed_xml" },
};

static void test_error_for_maps_each_callback_error(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(mapping) / sizeof(mapping[0]); i++) {
        struct http_error e = http_error_for(mapping[i].rc);

        if (e.status != mapping[i].status || !e.code ||
            strcmp(e.code, mapping[i].code) != 0)
            fail_msg("%s: got %d %s, want %d %s",
                     kf_strerror(mapping[i].rc), e.status,
                     e.code ? e.code : "(null)", mapping[i].status,
                     mapping[i].code);
        assert_non_null(e.message);
        assert_true(e.message[0] != '\0');
    }
}

static void test_error_for_out_of_memory_is_500(void **state)
{
    struct http_error e = http_error_for(KF_ENOMEM);

    (void)state;
    assert_int_equal(e.status, 500);
    assert_non_null(e.code);
    assert_true(e.code[0] != '\0');
    assert_non_null(e.message);
    assert_true(e.message[0] != '\0');
}

static void test_error_codes_are_distinct_per_callback_error(void **state)
{
    size_t i, j, n = sizeof(mapping) / sizeof(mapping[0]);

    (void)state;
    for (i = 0; i < n; i++)
        for (j = i + 1; j < n; j++)
            assert_string_not_equal(http_error_for(mapping[i].rc).code,
                                    http_error_for(mapping[j].rc).code);
}

static void test_error_status_always_has_a_reason(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(mapping) / sizeof(mapping[0]); i++)
        assert_string_not_equal(
            http_reason(http_error_for(mapping[i].rc).status), "Unknown");
    assert_string_not_equal(http_reason(http_error_for(KF_ENOMEM).status),
                            "Unknown");
}

static void test_reason_names_common_statuses(void **state)
{
    (void)state;
    assert_string_equal(http_reason(200), "OK");
    assert_string_equal(http_reason(400), "Bad Request");
    assert_string_equal(http_reason(403), "Forbidden");
    assert_string_equal(http_reason(404), "Not Found");
    assert_string_equal(http_reason(405), "Method Not Allowed");
    assert_string_equal(http_reason(413), "Payload Too Large");
    assert_string_equal(http_reason(429), "Too Many Requests");
    assert_string_equal(http_reason(500), "Internal Server Error");
    assert_string_equal(http_reason(503), "Service Unavailable");
}

/* Every status a handler in fcgi/ sends: the literal status argument of
 * fcgi_error / fcgi_json / fcgi_respond / token_reply (both arms of a
 * "c ? 409 : 502") and the { "code", status } tables, read from the
 * sources; each must have its reason phrase ("Status: 202 Unknown" went
 * out before). */
static const char *const sending_calls[] = {
    "fcgi_error(", "fcgi_json(", "fcgi_respond(", "token_reply(",
};

static void add_status(int *seen, const char *p, size_t n)
{
    size_t i;

    for (i = 0; i + 3 <= n; i++) {
        if ((i > 0 && (isalnum((unsigned char)p[i - 1]) || p[i - 1] == '_')) ||
            !isdigit((unsigned char)p[i]) ||
            !isdigit((unsigned char)p[i + 1]) ||
            !isdigit((unsigned char)p[i + 2]) ||
            (i + 3 < n && isalnum((unsigned char)p[i + 3])))
            continue;
        if (p[i] >= '1' && p[i] <= '5')
            seen[(p[i] - '0') * 100 + (p[i + 1] - '0') * 10 + p[i + 2] - '0'] = 1;
        i += 2;
    }
}

/* The ',' ending the argument that starts at p (NULL at the call's end). */
static const char *next_arg(const char *p)
{
    int depth = 0;

    for (; *p; p++) {
        if (*p == '(')
            depth++;
        else if (*p == ')' && depth-- == 0)
            return NULL;
        else if (*p == ',' && depth == 0)
            return p;
    }
    return NULL;
}

static void scan_source(const char *text, int *seen)
{
    const char *p;
    size_t k;

    for (k = 0; k < sizeof(sending_calls) / sizeof(sending_calls[0]); k++)
        for (p = strstr(text, sending_calls[k]); p;
             p = strstr(p + 1, sending_calls[k])) {
            const char *a = next_arg(p + strlen(sending_calls[k]));
            const char *b = a ? next_arg(a + 1) : NULL;

            if (a && b)               /* (r, <status>, ...) */
                add_status(seen, a + 1, (size_t)(b - a - 1));
        }
    for (p = strstr(text, "{ \""); p; p = strstr(p + 1, "{ \"")) {
        const char *q = strchr(p + 3, '"');

        if (q && q[1] == ',' && q[2] == ' ')       /* { "code", 409 ... */
            add_status(seen, q + 3, strspn(q + 3, "0123456789") + 1);
    }
}

static void test_every_status_a_handler_sends_has_its_reason(void **state)
{
    static const struct { int status; const char *reason; } sent[] = {
        { 200, "OK" }, { 201, "Created" }, { 202, "Accepted" },
        { 400, "Bad Request" }, { 401, "Unauthorized" },
        { 403, "Forbidden" }, { 404, "Not Found" },
        { 405, "Method Not Allowed" }, { 409, "Conflict" },
        { 413, "Payload Too Large" }, { 429, "Too Many Requests" },
        { 500, "Internal Server Error" }, { 502, "Bad Gateway" },
        { 503, "Service Unavailable" },
    };
    int seen[600] = { 0 }, files = 0, s;
    size_t i;
    DIR *d = opendir("../../fcgi");
    struct dirent *e;

    (void)state;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char path[300];
        size_t n = strlen(e->d_name), len = 0;
        char *text;

        if (n < 3 || strcmp(e->d_name + n - 2, ".c") != 0)
            continue;
        snprintf(path, sizeof(path), "../../fcgi/%s", e->d_name);
        text = tu_read_file(path, &len);
        scan_source(text, seen);
        free(text);
        files++;
    }
    closedir(d);
    assert_true(files >= 5);
    /* the handlers also answer every refusal row with the row's status */
    for (i = 0; i < REFUSAL_COUNT; i++)
        seen[refusal_get((enum refusal_id)i)->status] = 1;
    /* the scan finds what the handlers are known to send... */
    for (i = 0; i < sizeof(sent) / sizeof(sent[0]); i++) {
        if (!seen[sent[i].status])
            fail_msg("status %d not found in fcgi/*.c", sent[i].status);
        assert_string_equal(http_reason(sent[i].status), sent[i].reason);
    }
    /* ...and every status it finds has a reason phrase */
    for (s = 100; s < 600; s++)
        if (seen[s] && strcmp(http_reason(s), "Unknown") == 0)
            fail_msg("fcgi/ sends status %d with no reason phrase", s);
    /* the statuses the error mapping gives (reply_rc) */
    for (s = -64; s <= 0; s++)
        assert_string_not_equal(http_reason(http_error_for(s).status),
                                "Unknown");
}

static void test_reason_of_unknown_status_is_not_null(void **state)
{
    (void)state;
    assert_non_null(http_reason(299));
    assert_non_null(http_reason(-1));
    assert_true(http_reason(799)[0] != '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_parses_a_safe_mode_callback),
        cmocka_unit_test(test_query_parses_a_url_verification),
        cmocka_unit_test(test_query_reads_only_the_view),
        cmocka_unit_test(test_query_empty_string_has_no_params),
        cmocka_unit_test(test_query_decodes_plus_as_space),
        cmocka_unit_test(test_query_decodes_percent_escapes_in_values),
        cmocka_unit_test(test_query_decodes_percent_escapes_in_names),
        cmocka_unit_test(test_query_keeps_equals_inside_a_value),
        cmocka_unit_test(test_query_first_of_repeated_names_wins),
        cmocka_unit_test(test_query_missing_name_is_zero_and_empty),
        cmocka_unit_test(test_query_get_on_fresh_query_is_zero),
        cmocka_unit_test(test_query_name_without_equals_has_empty_value),
        cmocka_unit_test(test_query_skips_empty_pieces),
        cmocka_unit_test(test_query_rejects_non_hex_escape),
        cmocka_unit_test(test_query_rejects_truncated_escape),
        cmocka_unit_test(test_query_rejects_truncated_escape_at_end_of_view),
        cmocka_unit_test(test_query_rejects_decoded_nul),
        cmocka_unit_test(test_query_rejects_raw_nul_byte),
        cmocka_unit_test(test_query_accepts_exactly_http_query_max_bytes),
        cmocka_unit_test(test_query_accepts_exactly_http_query_params),
        cmocka_unit_test(test_query_rejects_more_than_http_query_params),
        cmocka_unit_test(
            test_query_empty_pieces_do_not_count_toward_the_limit),
        cmocka_unit_test(test_query_parse_twice_replaces_the_first),
        cmocka_unit_test(test_query_release_twice_is_safe),
        cmocka_unit_test(test_error_for_maps_each_callback_error),
        cmocka_unit_test(test_error_for_out_of_memory_is_500),
        cmocka_unit_test(test_error_codes_are_distinct_per_callback_error),
        cmocka_unit_test(test_error_status_always_has_a_reason),
        cmocka_unit_test(test_reason_names_common_statuses),
        cmocka_unit_test(test_every_status_a_handler_sends_has_its_reason),
        cmocka_unit_test(test_reason_of_unknown_status_is_not_null),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
