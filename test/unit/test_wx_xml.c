/* test_wx_xml: wx_xml against the inbound vectors, the reply and safe-mode
 * vectors, and every parser case under test/data/xml/ (one cmocka test per
 * case directory; the expect format is in test/data/xml/README.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "kf.h"
#include "wx_xml.h"
#include "testutil.h"

#include "banned.h"

#define CASES_DIR "../data/xml"

/* The test's own map of element name -> typed member; written apart from
 * the library's so a wrong offset there shows up here. */
static const struct typed {
    const char *name;
    size_t off;
} typed[] = {
    { "ToUserName", offsetof(struct wx_msg, to_user) },
    { "FromUserName", offsetof(struct wx_msg, from_user) },
    { "MsgType", offsetof(struct wx_msg, msgtype) },
    { "Event", offsetof(struct wx_msg, event_name) },
    { "Content", offsetof(struct wx_msg, content) },
    { "PicUrl", offsetof(struct wx_msg, pic_url) },
    { "MediaId", offsetof(struct wx_msg, media_id) },
    { "Format", offsetof(struct wx_msg, format) },
    { "Recognition", offsetof(struct wx_msg, recognition) },
    { "ThumbMediaId", offsetof(struct wx_msg, thumb_media_id) },
    { "Location_X", offsetof(struct wx_msg, location_x) },
    { "Location_Y", offsetof(struct wx_msg, location_y) },
    { "Scale", offsetof(struct wx_msg, scale) },
    { "Label", offsetof(struct wx_msg, label) },
    { "Title", offsetof(struct wx_msg, title) },
    { "Description", offsetof(struct wx_msg, description) },
    { "Url", offsetof(struct wx_msg, url) },
    { "EventKey", offsetof(struct wx_msg, event_key) },
    { "Ticket", offsetof(struct wx_msg, ticket) },
    { "Latitude", offsetof(struct wx_msg, latitude) },
    { "Longitude", offsetof(struct wx_msg, longitude) },
    { "Precision", offsetof(struct wx_msg, precision) },
    { "KfAccount", offsetof(struct wx_msg, kf_account) },
    { "FromKfAccount", offsetof(struct wx_msg, from_kf_account) },
    { "ToKfAccount", offsetof(struct wx_msg, to_kf_account) },
    { "MenuId", offsetof(struct wx_msg, menu_id) },
    { "bizmsgmenuid", offsetof(struct wx_msg, bizmsgmenuid) },
    { "Encrypt", offsetof(struct wx_msg, encrypt) },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct kf_str *typed_member(const struct wx_msg *m,
                                         const char *name)
{
    size_t i;

    for (i = 0; i < NELEM(typed); i++)
        if (strcmp(typed[i].name, name) == 0)
            return (const struct kf_str *)((const char *)m + typed[i].off);
    return NULL;
}

static uint64_t u64(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);

    if (*s == '\0' || *end != '\0')
        fail_msg("bad number in test data: '%s'", s);
    return (uint64_t)v;
}

static int rc_by_name(const char *name)
{
#define X(n, code, msg) if (strcmp(name, #n) == 0) return code;
    KF_ERRORS(X)
#undef X
    if (strcmp(name, "OK") == 0)
        return 0;
    fail_msg("unknown rc name '%s'", name);
    return 1;
}

static void expect_str(const char *ctx, const char *what, struct kf_str got,
                       const char *want)
{
    if (!got.p)
        fail_msg("%s: %s has a NULL pointer", ctx, what);
    if (!kf_str_eq_c(got, want))
        fail_msg("%s: %s = '%.*s', want '%s'", ctx, what, (int)got.len,
                 got.p, want);
}

/* Checks name=value through m->fields and through the typed member (or
 * the parsed integer for CreateTime / MsgId / MsgID). */
static void expect_field(const char *ctx, const struct wx_msg *m,
                         const char *name, const char *value)
{
    struct kf_str v;
    const struct kf_str *t;

    if (wx_xml_field(m, name, &v) != 0)
        fail_msg("%s: field %s not found", ctx, name);
    expect_str(ctx, name, v, value);
    t = typed_member(m, name);
    if (t)
        expect_str(ctx, name, *t, value);
    if (strcmp(name, "CreateTime") == 0)
        assert_true(m->create_time == u64(value));
    if (strcmp(name, "MsgId") == 0 || strcmp(name, "MsgID") == 0) {
        assert_int_equal(m->has_msgid, 1);
        assert_true(m->msgid == u64(value));
    }
}

static void expect_absent(const char *ctx, const struct wx_msg *m,
                          const char *name)
{
    struct kf_str v = { NULL, 1 };
    const struct kf_str *t = typed_member(m, name);

    if (wx_xml_field(m, name, &v) != KF_ENOTFOUND)
        fail_msg("%s: field %s unexpectedly present", ctx, name);
    expect_str(ctx, name, v, "");
    if (t) {
        expect_str(ctx, name, *t, "");
        assert_int_equal(t->p[0], '\0');
    }
}

static struct wx_msg *parse_ok(const char *ctx, struct kf_str body)
{
    struct wx_msg *m = NULL;
    struct wx_xml_err err;
    int rc = wx_xml_parse(body, &m, &err);

    if (rc != 0)
        fail_msg("%s: rc=%d (%s) at %d:%d: %s", ctx, rc, kf_strerror(rc),
                 err.line, err.column, err.text);
    assert_non_null(m);
    return m;
}

static struct wx_msg *parse_file(const char *path)
{
    size_t len;
    char *body = tu_read_file(path, &len);
    struct wx_msg *m = parse_ok(path, (struct kf_str){ body, len });

    free(body);        /* the msg must not borrow from the body */
    return m;
}

static void expect_dedupe(const char *ctx, const struct wx_msg *m,
                          const char *want)
{
    struct kf_buf b;
    int rc;

    kf_buf_init(&b, 1024);
    rc = wx_xml_dedupe_key(m, &b);
    if (rc != 0)
        fail_msg("%s: dedupe rc=%d", ctx, rc);
    expect_str(ctx, "dedupe key", kf_buf_str(&b), want);
    kf_buf_release(&b);
}

/* ---- inbound vectors -------------------------------------------------- */

static void check_inbound(const json_t *v)
{
    const char *file = tu_jstr(v, "file"), *kind = tu_jstr(v, "kind");
    const json_t *fields = json_object_get(v, "fields");
    const char *ev = json_string_value(json_object_get(v, "Event"));
    char path[256], key[512];
    struct wx_msg *m;
    const char *name;
    json_t *val;
    size_t i;

    snprintf(path, sizeof(path), VEC("%s"), file);
    m = parse_file(path);
    assert_string_equal(wx_xml_msgtype_name(m->type), tu_jstr(v, "MsgType"));
    assert_int_not_equal(m->type, WX_MSG_UNKNOWN);
    if (ev) {
        assert_string_equal(wx_xml_event_name(m->event), ev);
        assert_int_not_equal(m->event, WX_EV_UNKNOWN);
    } else {
        assert_int_equal(m->event, WX_EV_NONE);
    }
    assert_int_equal(m->nfields, json_object_size(fields));
    json_object_foreach((json_t *)fields, name, val)
        expect_field(file, m, name, json_string_value(val));
    for (i = 0; i < NELEM(typed); i++)
        if (!json_object_get(fields, typed[i].name))
            expect_absent(file, m, typed[i].name);
    if (!json_object_get(fields, "MsgId"))
        assert_int_equal(m->has_msgid, 0);
    if (strcmp(kind, "event") == 0)
        snprintf(key, sizeof(key), "%s:%s", tu_jstr(v, "dedupe_key"), ev);
    else
        snprintf(key, sizeof(key), "%s", tu_jstr(v, "dedupe_key"));
    expect_dedupe(file, m, key);
    wx_xml_msg_free(m);
}

static void test_parses_every_inbound_vector(void **state)
{
    json_t *idx = tu_read_json(VEC("inbound/index.json"));
    size_t i;

    (void)state;
    assert_true(json_array_size(idx) >= 19);
    for (i = 0; i < json_array_size(idx); i++)
        check_inbound(json_array_get(idx, i));
    json_decref(idx);
}

static void test_split_cdata_reply_reads_back_whole(void **state)
{
    struct wx_msg *m = parse_file(VEC("replies/reply_text_cdata_split.xml"));

    (void)state;
    /* the original text, as stated in test/vectors/README.md */
    expect_str("cdata_split", "Content", m->content, "a]]>b & <c> 中文");
    assert_int_equal(m->type, WX_MSG_TEXT);
    wx_xml_msg_free(m);
}

static void test_every_reply_vector_parses(void **state)
{
    json_t *idx = tu_read_json(VEC("replies/index.json"));
    size_t i;

    (void)state;
    for (i = 0; i < json_array_size(idx); i++) {
        const json_t *v = json_array_get(idx, i);
        const char *file = json_string_value(json_object_get(v, "file"));
        char path[256];
        struct wx_msg *m;

        if (!file)
            continue;               /* the literal "success" entry */
        snprintf(path, sizeof(path), VEC("%s"), file);
        m = parse_file(path);
        expect_str(path, "MsgType", m->msgtype, tu_jstr(v, "MsgType"));
        assert_true(m->create_time ==
                    (uint64_t)json_integer_value(
                        json_object_get(v, "CreateTime")));
        wx_xml_msg_free(m);
    }
    json_decref(idx);
}

/* ---- safe-mode vectors ------------------------------------------------ */

static void check_safe_body(const json_t *v)
{
    const char *id = tu_jstr(v, "id");
    const char *body = tu_jstr(v, "post_body_safe_mode");
    struct wx_msg *m = parse_ok(id, kf_str_c(body));
    struct kf_buf b;

    assert_int_equal(m->type, WX_MSG_UNKNOWN);
    assert_int_equal(m->event, WX_EV_NONE);
    assert_int_equal(m->nfields, 2);
    expect_field(id, m, "Encrypt", tu_jstr(v, "encrypt"));
    expect_absent(id, m, "FromUserName");
    expect_absent(id, m, "MsgType");
    kf_buf_init(&b, 1024);
    assert_int_equal(wx_xml_dedupe_key(m, &b), KF_EINVAL);
    assert_int_equal(b.len, 0);
    kf_buf_release(&b);
    wx_xml_msg_free(m);
}

/* Compatible mode = the plaintext message's fields plus Encrypt. */
static void check_compatible_body(const json_t *v)
{
    const char *id = tu_jstr(v, "id");
    char path[256];
    struct wx_msg *plain, *m;
    size_t i;

    snprintf(path, sizeof(path), VEC("%s"),
             tu_jstr(v, "expected_plaintext_file"));
    plain = parse_file(path);
    m = parse_ok(id, kf_str_c(tu_jstr(v, "post_body_compatible_mode")));
    assert_int_equal(m->type, plain->type);
    assert_int_equal(m->event, plain->event);
    assert_int_equal(m->nfields, plain->nfields + 1);
    for (i = 0; i < plain->nfields; i++) {
        char name[64], value[512];

        snprintf(name, sizeof(name), "%.*s", (int)plain->fields[i].name.len,
                 plain->fields[i].name.p);
        snprintf(value, sizeof(value), "%.*s",
                 (int)plain->fields[i].value.len, plain->fields[i].value.p);
        expect_field(id, m, name, value);
    }
    expect_field(id, m, "Encrypt", tu_jstr(v, "encrypt"));
    wx_xml_msg_free(plain);
    wx_xml_msg_free(m);
}

static void test_safe_and_compatible_bodies_parse(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    size_t i, n = 0;

    (void)state;
    for (i = 0; i < json_array_size(all); i++) {
        const json_t *v = json_array_get(all, i);

        if (!json_object_get(v, "post_body_safe_mode"))
            continue;
        check_safe_body(v);
        check_compatible_body(v);
        n++;
    }
    assert_true(n >= 3);
    json_decref(all);
}

static void test_decrypted_xml_plaintexts_parse(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    size_t i, n = 0;

    (void)state;
    for (i = 0; i < json_array_size(all); i++) {
        const json_t *v = json_array_get(all, i);
        const char *pt = tu_jstr(v, "plaintext");
        struct wx_msg *m;

        if (strncmp(pt, "<xml>", 5) != 0)
            continue;
        m = parse_ok(tu_jstr(v, "id"), kf_str_c(pt));
        assert_true(m->msgtype.len > 0);
        assert_true(m->create_time > 0);
        wx_xml_msg_free(m);
        n++;
    }
    assert_true(n >= 10);
    json_decref(all);
}

static void test_reply_envelopes_parse_to_their_parts(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    size_t i, n = 0;

    (void)state;
    for (i = 0; i < json_array_size(all); i++) {
        const json_t *v = json_array_get(all, i);
        const char *id = tu_jstr(v, "id");
        struct wx_msg *m;

        if (!json_object_get(v, "envelope"))
            continue;
        m = parse_ok(id, kf_str_c(tu_jstr(v, "envelope")));
        assert_int_equal(m->type, WX_MSG_UNKNOWN);
        expect_field(id, m, "Encrypt", tu_jstr(v, "encrypt"));
        expect_field(id, m, "MsgSignature", tu_jstr(v, "msg_signature"));
        expect_field(id, m, "TimeStamp", tu_jstr(v, "timestamp"));
        expect_field(id, m, "Nonce", tu_jstr(v, "nonce"));
        wx_xml_msg_free(m);
        n++;
    }
    assert_true(n >= 10);
    json_decref(all);
}

/* ---- API properties ---------------------------------------------------- */

static void test_every_msgtype_and_event_name_maps_back(void **state)
{
    char body[512];
    struct wx_msg *m;
    int t, e;

    (void)state;
    for (t = WX_MSG_TEXT; t <= WX_MSG_EVENT; t++) {
        snprintf(body, sizeof(body),
                 "<xml><ToUserName>a</ToUserName><FromUserName>b"
                 "</FromUserName><CreateTime>1</CreateTime><MsgType>%s"
                 "</MsgType></xml>", wx_xml_msgtype_name(t));
        m = parse_ok(body, kf_str_c(body));
        assert_int_equal(m->type, t);
        wx_xml_msg_free(m);
    }
    for (e = WX_EV_SUBSCRIBE; e <= WX_EV_KF_SWITCH_SESSION; e++) {
        snprintf(body, sizeof(body),
                 "<xml><ToUserName>a</ToUserName><FromUserName>b"
                 "</FromUserName><CreateTime>1</CreateTime><MsgType>event"
                 "</MsgType><Event>%s</Event></xml>", wx_xml_event_name(e));
        m = parse_ok(body, kf_str_c(body));
        assert_int_equal(m->event, e);
        wx_xml_msg_free(m);
    }
    assert_string_equal(wx_xml_msgtype_name(WX_MSG_UNKNOWN), "unknown");
    assert_string_equal(wx_xml_event_name(WX_EV_NONE), "none");
    assert_string_equal(wx_xml_event_name(WX_EV_UNKNOWN), "unknown");
    assert_string_equal(wx_xml_msgtype_name((enum wx_msgtype)99), "unknown");
    assert_string_equal(wx_xml_event_name((enum wx_event)99), "unknown");
}

static void test_body_is_read_only_up_to_len(void **state)
{
    size_t len;
    char *text = tu_read_file(VEC("inbound/text.xml"), &len);
    char *exact = malloc(len);      /* no NUL after the body */
    char *longer = malloc(len + 16);
    struct wx_msg *m;

    (void)state;
    assert_non_null(exact);
    assert_non_null(longer);
    memcpy(exact, text, len);
    m = parse_ok("exact", (struct kf_str){ exact, len });
    wx_xml_msg_free(m);
    /* bytes past len would make the document malformed */
    memcpy(longer, text, len);
    memcpy(longer + len, "<junk", 6);
    m = parse_ok("longer", (struct kf_str){ longer, len });
    wx_xml_msg_free(m);
    /* and one byte short is malformed */
    assert_int_equal(wx_xml_parse((struct kf_str){ exact, len - 1 }, &m,
                                  NULL), KF_EPARSE);
    assert_null(m);
    free(text);
    free(exact);
    free(longer);
}

static void test_dedupe_key_appends_and_keeps_buffer_on_overflow(
    void **state)
{
    struct wx_msg *m = parse_file(VEC("inbound/event_click.xml"));
    struct kf_buf b;

    (void)state;
    kf_buf_init(&b, 16);
    assert_int_equal(kf_buf_append_c(&b, "k="), 0);
    assert_int_equal(wx_xml_dedupe_key(m, &b), KF_ETOOBIG);
    assert_string_equal(b.p, "k=");
    assert_int_equal(b.len, 2);
    b.max = 1024;
    assert_int_equal(wx_xml_dedupe_key(m, &b), 0);
    assert_string_equal(b.p, "k=event:oKx3Q6vW2mZ8yT1pR4sN7uJ0bC5d:"
                             "1716200072:CLICK");
    kf_buf_release(&b);
    wx_xml_msg_free(m);
}

static void test_null_arguments_are_refused(void **state)
{
    struct wx_msg *m = (struct wx_msg *)&m;     /* must be reset */
    struct kf_buf b;
    struct kf_str v;

    (void)state;
    assert_int_equal(wx_xml_parse(KF_STR("<xml/>"), NULL, NULL), KF_EINVAL);
    assert_int_equal(wx_xml_parse((struct kf_str){ NULL, 0 }, &m, NULL),
                     KF_EPARSE);
    assert_null(m);
    wx_xml_msg_free(NULL);
    kf_buf_init(&b, 64);
    assert_int_equal(wx_xml_dedupe_key(NULL, &b), KF_EINVAL);
    assert_int_equal(wx_xml_field(NULL, "Content", &v), KF_ENOTFOUND);
    assert_int_equal(v.len, 0);
    assert_non_null(v.p);
    kf_buf_release(&b);
}

/* ---- data cases ------------------------------------------------------- */

static void unescape(char *s)
{
    char *w = s;

    for (; *s; s++) {
        if (*s != '\\') {
            *w++ = *s;
            continue;
        }
        s++;
        switch (*s) {
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case '\\': *w++ = '\\'; break;
        default: fail_msg("bad escape \\%c in expect", *s);
        }
    }
    *w = '\0';
}

static void check_key(const char *ctx, const struct wx_msg *m,
                      const struct wx_xml_err *err, const char *k,
                      const char *v)
{
    if (strcmp(k, "err_line") == 0) {
        assert_int_equal(err->line, (int)u64(v));
        return;
    }
    if (!m)
        fail_msg("%s: key %s needs rc=OK", ctx, k);
    if (strcmp(k, "type") == 0)
        assert_string_equal(wx_xml_msgtype_name(m->type), v);
    else if (strcmp(k, "event") == 0)
        assert_string_equal(wx_xml_event_name(m->event), v);
    else if (strcmp(k, "create_time") == 0)
        assert_true(m->create_time == u64(v));
    else if (strcmp(k, "msgid") == 0) {
        assert_int_equal(m->has_msgid, 1);
        assert_true(m->msgid == u64(v));
    } else if (strcmp(k, "has_msgid") == 0)
        assert_int_equal(m->has_msgid, (int)u64(v));
    else if (strcmp(k, "nfields") == 0)
        assert_int_equal(m->nfields, u64(v));
    else if (strncmp(k, "field.", 6) == 0)
        expect_field(ctx, m, k + 6, v);
    else if (strcmp(k, "absent") == 0)
        expect_absent(ctx, m, v);
    else if (strcmp(k, "dedupe") == 0)
        expect_dedupe(ctx, m, v);
    else if (strcmp(k, "dedupe_rc") == 0) {
        struct kf_buf b;

        kf_buf_init(&b, 1024);
        assert_int_equal(wx_xml_dedupe_key(m, &b), rc_by_name(v));
        kf_buf_release(&b);
    } else
        fail_msg("%s: unknown expect key '%s'", ctx, k);
}

static void run_case(void **state)
{
    const char *dir = *state;
    char path[512], *input, *expect, *line, *next;
    size_t len;
    struct wx_msg *m = NULL;
    struct wx_xml_err err;
    int rc, seen_rc = 0;

    snprintf(path, sizeof(path), "%s/input.xml", dir);
    input = tu_read_file(path, &len);
    snprintf(path, sizeof(path), "%s/expect", dir);
    expect = tu_read_file(path, NULL);
    rc = wx_xml_parse((struct kf_str){ input, len }, &m, &err);
    free(input);                    /* m must not borrow from the input */
    for (line = expect; line && *line; line = next) {
        char *eq;

        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (*line == '\0' || *line == '#')
            continue;
        eq = strchr(line, '=');
        if (!eq)
            fail_msg("%s: expect line without '=': %s", dir, line);
        *eq = '\0';
        unescape(eq + 1);
        if (!seen_rc) {
            if (strcmp(line, "rc") != 0)
                fail_msg("%s: first expect key must be rc", dir);
            if (rc != rc_by_name(eq + 1))
                fail_msg("%s: rc=%d (%s: %s at %d:%d), want %s", dir, rc,
                         kf_strerror(rc), err.text, err.line, err.column,
                         eq + 1);
            if (rc != 0) {
                assert_null(m);
                assert_true(err.text[0] != '\0');
            }
            seen_rc = 1;
            continue;
        }
        check_key(dir, m, &err, line, eq + 1);
    }
    if (!seen_rc)
        fail_msg("%s: expect has no rc", dir);
    wx_xml_msg_free(m);
    free(expect);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the case directories, sorted; NULL-terminated. */
static char **list_cases(size_t *n)
{
    DIR *d = opendir(CASES_DIR);
    struct dirent *e;
    char **v = NULL;
    size_t cap = 0;

    *n = 0;
    if (!d)
        return NULL;
    while ((e = readdir(d)) != NULL) {
        char path[512];
        struct stat st;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), CASES_DIR "/%s", e->d_name);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (*n + 1 >= cap) {
            cap = cap ? cap * 2 : 64;
            v = realloc(v, cap * sizeof(*v));
            if (!v)
                abort();
        }
        v[(*n)++] = strdup(path);
    }
    closedir(d);
    if (v)
        qsort(v, *n, sizeof(*v), by_name);
    return v;
}

static int run_cases(void)
{
    size_t n, i;
    char **dirs = list_cases(&n);
    struct CMUnitTest *t;
    int failed;

    if (n < 60) {
        fprintf(stderr, "expected the parser cases in %s, found %zu\n",
                CASES_DIR, n);
        return 1;
    }
    t = calloc(n, sizeof(*t));
    if (!t)
        abort();
    for (i = 0; i < n; i++) {
        t[i].name = dirs[i] + sizeof(CASES_DIR);
        t[i].test_func = run_case;
        t[i].initial_state = dirs[i];
    }
    failed = _cmocka_run_group_tests("wx_xml_cases", t, n, NULL, NULL);
    for (i = 0; i < n; i++)
        free(dirs[i]);
    free(dirs);
    free(t);
    return failed;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parses_every_inbound_vector),
        cmocka_unit_test(test_split_cdata_reply_reads_back_whole),
        cmocka_unit_test(test_every_reply_vector_parses),
        cmocka_unit_test(test_safe_and_compatible_bodies_parse),
        cmocka_unit_test(test_decrypted_xml_plaintexts_parse),
        cmocka_unit_test(test_reply_envelopes_parse_to_their_parts),
        cmocka_unit_test(test_every_msgtype_and_event_name_maps_back),
        cmocka_unit_test(test_body_is_read_only_up_to_len),
        cmocka_unit_test(test_dedupe_key_appends_and_keeps_buffer_on_overflow),
        cmocka_unit_test(test_null_arguments_are_refused),
    };
    int failed = cmocka_run_group_tests_name("wx_xml", tests, NULL, NULL);

    return failed + run_cases();
}
