/* test_wx_reply: wx_reply against test/vectors/replies (byte for byte),
 * the safe_mode.json envelopes and plaintexts, CDATA splitting round trips
 * through wx_xml, and the refusal of text that would not be XML. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kf.h"
#include "wx_reply.h"
#include "wx_xml.h"
#include "testutil.h"

#include "banned.h"

static uint64_t u64(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);

    if (*s == '\0' || *end != '\0')
        fail_msg("bad number in vector: '%s'", s);
    return (uint64_t)v;
}

static struct wx_msg *parse_ok(const char *ctx, struct kf_str body)
{
    struct wx_msg *m = NULL;
    struct wx_xml_err err;
    int rc = wx_xml_parse(body, &m, &err);

    if (rc != 0)
        fail_msg("%s: rc=%d (%s) at %d:%d: %s", ctx, rc, kf_strerror(rc),
                 err.line, err.column, err.text);
    return m;
}

static void expect_bytes(const char *ctx, const struct kf_buf *b,
                         const char *want, size_t want_len)
{
    if (b->len != want_len || memcmp(b->p, want, want_len) != 0)
        fail_msg("%s:\n got  %.*s\n want %.*s", ctx, (int)b->len, b->p,
                 (int)want_len, want);
}

/* The reply the vector file holds: addresses swapped from the inbound
 * message, values taken from the parsed expected file itself. */
static void reply_for(struct wx_reply *r, const char *msgtype,
                      const struct wx_msg *in, const struct wx_msg *want)
{
    memset(r, 0, sizeof(*r));
    r->to_user = in->from_user;
    r->from_user = in->to_user;
    if (strcmp(msgtype, "text") == 0) {
        r->type = WX_REPLY_TEXT;
        r->content = want->content;
    } else if (strcmp(msgtype, "image") == 0) {
        r->type = WX_REPLY_IMAGE;
        assert_int_equal(wx_xml_field(want, "Image", &r->media_id), 0);
    } else if (strcmp(msgtype, "transfer_customer_service") == 0) {
        r->type = WX_REPLY_TRANSFER;
        if (wx_xml_field(want, "TransInfo", &r->kf_account) != 0)
            r->kf_account = (struct kf_str){ NULL, 0 };
    } else {
        fail_msg("unexpected MsgType %s in replies/index.json", msgtype);
    }
}

static void check_reply_vector(const json_t *v)
{
    const char *file = tu_jstr(v, "file");
    char path[256];
    size_t len;
    char *want;
    struct wx_msg *in, *m;
    struct wx_reply r;
    struct kf_buf b;

    snprintf(path, sizeof(path), VEC("%s"), tu_jstr(v, "in_reply_to"));
    want = tu_read_file(path, &len);
    in = parse_ok(path, (struct kf_str){ want, len });
    free(want);
    snprintf(path, sizeof(path), VEC("%s"), file);
    want = tu_read_file(path, &len);
    m = parse_ok(path, (struct kf_str){ want, len });
    reply_for(&r, tu_jstr(v, "MsgType"), in, m);
    r.create_time = (uint64_t)json_integer_value(
        json_object_get(v, "CreateTime"));
    assert_true(r.create_time > 0);
    kf_buf_init(&b, WX_XML_MAX);
    assert_int_equal(wx_reply_build(&r, &b), 0);
    expect_bytes(file, &b, want, len);
    kf_buf_release(&b);
    wx_xml_msg_free(in);
    wx_xml_msg_free(m);
    free(want);
}

static void test_every_reply_vector_is_reproduced(void **state)
{
    json_t *idx = tu_read_json(VEC("replies/index.json"));
    size_t i, files = 0, literal = 0;

    (void)state;
    for (i = 0; i < json_array_size(idx); i++) {
        const json_t *v = json_array_get(idx, i);
        const char *body = json_string_value(json_object_get(v, "body"));
        struct wx_reply r = { .type = WX_REPLY_SUCCESS };
        struct kf_buf b;

        if (json_string_value(json_object_get(v, "file"))) {
            check_reply_vector(v);
            files++;
            continue;
        }
        assert_non_null(body);
        kf_buf_init(&b, 64);
        assert_int_equal(wx_reply_build(&r, &b), 0);
        expect_bytes("success", &b, body, strlen(body));
        kf_buf_release(&b);
        literal++;
    }
    assert_int_equal(files, 5);
    assert_int_equal(literal, 1);
    json_decref(idx);
}

static void test_success_is_exactly_the_word(void **state)
{
    struct wx_reply r = { .type = WX_REPLY_SUCCESS };
    struct kf_buf b;

    (void)state;
    kf_buf_init(&b, 7);
    assert_int_equal(wx_reply_build(&r, &b), 0);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.p, "success", 7);
    kf_buf_release(&b);
}

static void test_envelopes_match_safe_mode_vectors(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    size_t i, n = 0;

    (void)state;
    for (i = 0; i < json_array_size(all); i++) {
        const json_t *v = json_array_get(all, i);
        const char *env = json_string_value(json_object_get(v, "envelope"));
        struct kf_buf b;

        if (!env)
            continue;
        kf_buf_init(&b, WX_XML_MAX);
        assert_int_equal(wx_reply_envelope(
                             kf_str_c(tu_jstr(v, "encrypt")),
                             kf_str_c(tu_jstr(v, "msg_signature")),
                             u64(tu_jstr(v, "timestamp")),
                             kf_str_c(tu_jstr(v, "nonce")), &b), 0);
        expect_bytes(tu_jstr(v, "id"), &b, env, strlen(env));
        kf_buf_release(&b);
        n++;
    }
    assert_true(n >= 10);
    json_decref(all);
}

/* The encrypt vectors' plaintexts are canonical text replies too. */
static void test_encrypted_reply_plaintexts_are_canonical(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    size_t i, n = 0;

    (void)state;
    for (i = 0; i < json_array_size(all); i++) {
        const json_t *v = json_array_get(all, i);
        const char *pt = tu_jstr(v, "plaintext");
        struct wx_reply r = { .type = WX_REPLY_TEXT };
        struct wx_msg *m;
        struct kf_buf b;

        if (!json_object_get(v, "envelope"))
            continue;
        m = parse_ok(tu_jstr(v, "id"), kf_str_c(pt));
        assert_int_equal(m->type, WX_MSG_TEXT);
        r.to_user = m->to_user;
        r.from_user = m->from_user;
        r.create_time = m->create_time;
        r.content = m->content;
        kf_buf_init(&b, WX_XML_MAX);
        assert_int_equal(wx_reply_build(&r, &b), 0);
        expect_bytes(tu_jstr(v, "id"), &b, pt, strlen(pt));
        kf_buf_release(&b);
        wx_xml_msg_free(m);
        n++;
    }
    assert_true(n >= 10);
    json_decref(all);
}

static void test_cdata_splits_every_terminator(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        { "", "<![CDATA[]]>" },
        { "a]]>b", "<![CDATA[a]]]]><![CDATA[>b]]>" },
        { "]]>", "<![CDATA[]]]]><![CDATA[>]]>" },
        { "]]>]]>", "<![CDATA[]]]]><![CDATA[>]]]]><![CDATA[>]]>" },
        { "]]]>>", "<![CDATA[]]]]]><![CDATA[>>]]>" },
        { "]] >", "<![CDATA[]] >]]>" },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kf_buf b;

        kf_buf_init(&b, 256);
        assert_int_equal(wx_reply_cdata(&b, kf_str_c(cases[i].in)), 0);
        expect_bytes(cases[i].in, &b, cases[i].out, strlen(cases[i].out));
        kf_buf_release(&b);
    }
}

static void test_content_with_terminators_round_trips(void **state)
{
    static const char *const contents[] = {
        "]]>", "]]>start", "end]]>", "]]>]]>", "x]]>]]>]]>y", "]]]]>>>",
        "]", "]]", ">", "a]]", "<![CDATA[nested]]>", "a]]>b & <c> 中文",
        "line1\nline2\ttab", "emoji \xF0\x9F\x98\x80",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(contents) / sizeof(contents[0]); i++) {
        struct wx_reply r = {
            .type = WX_REPLY_TEXT, .to_user = KF_STR("oUser"),
            .from_user = KF_STR("gh_x"), .create_time = 1,
            .content = kf_str_c(contents[i]),
        };
        struct wx_msg *m;
        struct kf_buf b;

        kf_buf_init(&b, 1024);
        assert_int_equal(wx_reply_build(&r, &b), 0);
        m = parse_ok(contents[i], kf_buf_str(&b));
        if (!kf_str_eq_c(m->content, contents[i]))
            fail_msg("'%s' came back as '%.*s'", contents[i],
                     (int)m->content.len, m->content.p);
        assert_int_equal(m->type, WX_MSG_TEXT);
        assert_int_equal(m->nfields, 5);
        wx_xml_msg_free(m);
        kf_buf_release(&b);
    }
}

static void test_kf_account_and_media_id_are_split_too(void **state)
{
    struct wx_reply r = {
        .type = WX_REPLY_TRANSFER, .to_user = KF_STR("]]>u"),
        .from_user = KF_STR("g]]>"), .create_time = 7,
        .kf_account = KF_STR("kf]]>1@x"),
    };
    struct wx_msg *m;
    struct kf_str v;
    struct kf_buf b;

    (void)state;
    kf_buf_init(&b, 1024);
    assert_int_equal(wx_reply_build(&r, &b), 0);
    m = parse_ok("transfer", kf_buf_str(&b));
    assert_true(kf_str_eq_c(m->to_user, "]]>u"));
    assert_true(kf_str_eq_c(m->from_user, "g]]>"));
    assert_int_equal(wx_xml_field(m, "TransInfo", &v), 0);
    assert_true(kf_str_eq_c(v, "kf]]>1@x"));
    wx_xml_msg_free(m);
    kf_buf_reset(&b);
    r.type = WX_REPLY_IMAGE;
    r.media_id = KF_STR("m]]>");
    assert_int_equal(wx_reply_build(&r, &b), 0);
    m = parse_ok("image", kf_buf_str(&b));
    assert_int_equal(wx_xml_field(m, "Image", &v), 0);
    assert_true(kf_str_eq_c(v, "m]]>"));
    wx_xml_msg_free(m);
    kf_buf_release(&b);
}

static void test_text_that_is_not_xml_is_refused(void **state)
{
    static const struct kf_str bad[] = {
        KF_STR("a\xff" "b"),             /* not UTF-8 */
        KF_STR("a\x80"),                 /* stray continuation byte */
        KF_STR("\xc0\xaf"),              /* overlong "/" */
        KF_STR("\xe0\x80\xaf"),          /* overlong, 3 bytes */
        KF_STR("\xed\xa0\x80"),          /* UTF-16 surrogate */
        KF_STR("\xf4\x90\x80\x80"),      /* > U+10FFFF */
        KF_STR("\xe4\xbd"),              /* truncated */
        KF_STR("\xef\xbf\xbe"),          /* U+FFFE */
        KF_STR("\xef\xbf\xbf"),          /* U+FFFF */
        KF_STR("a\x01" "b"),             /* C0 control */
        KF_STR("a\x1b[31m"),             /* ESC */
        { "a\0b", 3 },                   /* NUL */
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* exact-size copy: a read past the end trips ASan */
        char *exact = malloc(bad[i].len);
        struct kf_str s = { exact, bad[i].len };
        struct wx_reply r = {
            .type = WX_REPLY_TEXT, .to_user = KF_STR("u"),
            .from_user = KF_STR("g"), .content = s,
        };
        struct kf_buf b;

        assert_non_null(exact);
        memcpy(exact, bad[i].p, bad[i].len);
        kf_buf_init(&b, 1024);
        assert_int_equal(kf_buf_append_c(&b, "keep"), 0);
        if (wx_reply_build(&r, &b) != KF_EINVAL)
            fail_msg("case %zu accepted", i);
        assert_int_equal(wx_reply_cdata(&b, s), KF_EINVAL);
        assert_string_equal(b.p, "keep");
        assert_int_equal(b.len, 4);
        kf_buf_release(&b);
        free(exact);
    }
}

static void test_missing_values_are_refused(void **state)
{
    struct wx_reply ok = {
        .type = WX_REPLY_TEXT, .to_user = KF_STR("u"),
        .from_user = KF_STR("g"), .content = KF_STR("c"),
        .media_id = KF_STR("m"),
    };
    struct wx_reply r;
    struct kf_buf b;

    (void)state;
    kf_buf_init(&b, 1024);
    r = ok;
    r.to_user = KF_STR("");
    assert_int_equal(wx_reply_build(&r, &b), KF_EINVAL);
    r = ok;
    r.from_user = (struct kf_str){ NULL, 0 };
    assert_int_equal(wx_reply_build(&r, &b), KF_EINVAL);
    r = ok;
    r.content = KF_STR("");
    assert_int_equal(wx_reply_build(&r, &b), KF_EINVAL);
    r = ok;
    r.type = WX_REPLY_IMAGE;
    r.media_id = KF_STR("");
    assert_int_equal(wx_reply_build(&r, &b), KF_EINVAL);
    r = ok;
    r.type = (enum wx_reply_type)42;
    assert_int_equal(wx_reply_build(&r, &b), KF_EINVAL);
    assert_int_equal(wx_reply_build(NULL, &b), KF_EINVAL);
    assert_int_equal(wx_reply_build(&ok, NULL), KF_EINVAL);
    assert_int_equal(wx_reply_cdata(NULL, KF_STR("x")), KF_EINVAL);
    assert_int_equal(wx_reply_envelope(KF_STR(""), KF_STR("s"), 1,
                                       KF_STR("n"), &b), KF_EINVAL);
    assert_int_equal(wx_reply_envelope(KF_STR("e"), KF_STR(""), 1,
                                       KF_STR("n"), &b), KF_EINVAL);
    assert_int_equal(wx_reply_envelope(KF_STR("e"), KF_STR("s"), 1,
                                       KF_STR(""), &b), KF_EINVAL);
    assert_int_equal(b.len, 0);
    r = ok;
    r.type = WX_REPLY_TRANSFER;     /* TRANSFER needs no value */
    assert_int_equal(wx_reply_build(&r, &b), 0);
    kf_buf_release(&b);
}

/* Every cap below the full size fails with ETOOBIG and leaves the buffer
 * as it was; the exact size succeeds. */
static void test_cap_is_enforced_without_partial_output(void **state)
{
    struct wx_reply r = {
        .type = WX_REPLY_TRANSFER, .to_user = KF_STR("oUser"),
        .from_user = KF_STR("gh_x"), .create_time = 1716200003,
        .kf_account = KF_STR("a]]>b"),
    };
    struct kf_buf full, env, b;
    size_t cap;

    (void)state;
    kf_buf_init(&full, 4096);
    assert_int_equal(wx_reply_build(&r, &full), 0);
    kf_buf_init(&env, 4096);
    assert_int_equal(wx_reply_envelope(KF_STR("E"), KF_STR("S"), 1,
                                       KF_STR("N"), &env), 0);
    assert_true(env.len < full.len);
    for (cap = 3; cap < full.len + 3; cap++) {
        kf_buf_init(&b, cap);
        assert_int_equal(kf_buf_append_c(&b, "pre"), 0);
        assert_int_equal(wx_reply_build(&r, &b), KF_ETOOBIG);
        assert_int_equal(b.len, 3);
        assert_string_equal(b.p, "pre");
        assert_int_equal(wx_reply_envelope(KF_STR("E"), KF_STR("S"), 1,
                                           KF_STR("N"), &b),
                         cap - 3 >= env.len ? 0 : KF_ETOOBIG);
        if (cap - 3 < env.len)
            assert_string_equal(b.p, "pre");
        kf_buf_release(&b);
    }
    kf_buf_init(&b, full.len + 3);
    assert_int_equal(kf_buf_append_c(&b, "pre"), 0);
    assert_int_equal(wx_reply_build(&r, &b), 0);
    assert_string_equal(b.p + 3, full.p);
    kf_buf_release(&b);
    kf_buf_release(&full);
    kf_buf_release(&env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_reply_vector_is_reproduced),
        cmocka_unit_test(test_success_is_exactly_the_word),
        cmocka_unit_test(test_envelopes_match_safe_mode_vectors),
        cmocka_unit_test(test_encrypted_reply_plaintexts_are_canonical),
        cmocka_unit_test(test_cdata_splits_every_terminator),
        cmocka_unit_test(test_content_with_terminators_round_trips),
        cmocka_unit_test(test_kf_account_and_media_id_are_split_too),
        cmocka_unit_test(test_text_that_is_not_xml_is_refused),
        cmocka_unit_test(test_missing_values_are_refused),
        cmocka_unit_test(test_cap_is_enforced_without_partial_output),
    };

    return cmocka_run_group_tests_name("wx_reply", tests, NULL, NULL);
}
