/* Tests of lib/history against a private PostgreSQL 15 started here
 * (initdb into a temp dir as the postgres user, pg_ctl on a free loopback
 * port, the schema from migrate_run) with rows inserted by SQL: keyset
 * pages, transcripts, search, cursors, reconnects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "history.h"
#include "migrate.h"
#include "testutil.h"
#include "tu_pg.h"


/* --- rows -------------------------------------------------------------- */

/* One message; content and payload go as parameters (byte-exact). */
static void insert(const char *openid, const char *dir, const char *at,
                   const char *content, const char *session,
                   const char *payload)
{
    static unsigned long seq;
    char event[32];
    const char *params[7] = { event, openid, dir, at, content, session,
                              payload ? payload : "{}" };
    PGresult *r;

    snprintf(event, sizeof(event), "%lu-0", ++seq);
    r = PQexecParams(tu_pg.db,
                     "INSERT INTO messages (event_id, openid, direction, "
                     "msgtype, created_at, content, session_id, payload, "
                     "agent, status, errcode) VALUES ($1, $2, $3::text, "
                     "'text', "
                     "$4, $5, $6::bigint, $7::jsonb, "
                     "CASE WHEN $3::text = 'o' THEN 'alice' END, "
                     "CASE WHEN $3::text = 'o' THEN 'sent' END, "
                     "CASE WHEN $3::text = 'o' THEN 0 END)",
                     7, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("insert: %s", PQresultErrorMessage(r));
    PQclear(r);
}

/* The ids of openid's rows in the order a reader must see them. */
static size_t expected_ids(const char *sql, const char *arg, int64_t *ids,
                           size_t max)
{
    const char *params[1] = { arg };
    PGresult *r = PQexecParams(tu_pg.db, sql, 1, NULL, params, NULL, NULL, 0);
    size_t i, n;

    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    n = (size_t)PQntuples(r);
    assert_true(n <= max);
    for (i = 0; i < n; i++)
        ids[i] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    PQclear(r);
    return n;
}

static const char *next_of(const json_t *page)
{
    return json_string_value(json_object_get(page, "next"));
}

static json_t *messages_of(const json_t *page)
{
    return json_object_get(page, "messages");
}

/* Walks every page of a read; fills ids in the order seen. */
enum read_kind { USER, SEARCH };

static size_t walk(struct history *h, enum read_kind kind, const char *arg,
                   long limit, int64_t *ids, size_t max, size_t *pages)
{
    struct history_cursor c, *cur = NULL;
    size_t n = 0, i;

    *pages = 0;
    for (;;) {
        json_t *page = NULL, *list;
        int rc = kind == USER
                     ? history_user_page(h, kf_str_c(arg), cur, limit, &page)
                     : history_search(h, kf_str_c(arg), cur, limit, &page);

        assert_int_equal(rc, 0);
        assert_true(++*pages < 1000);
        list = messages_of(page);
        assert_true(json_array_size(list) <= (size_t)limit);
        for (i = 0; i < json_array_size(list); i++) {
            assert_true(n < max);
            ids[n++] = json_integer_value(
                json_object_get(json_array_get(list, i), "id"));
        }
        if (!next_of(page)) {
            json_decref(page);
            return n;
        }
        assert_int_equal(json_array_size(list), (size_t)limit);
        assert_int_equal(history_cursor_decode(kf_str_c(next_of(page)), &c),
                         0);
        cur = &c;
        json_decref(page);
    }
}

static void assert_same_ids(const int64_t *got, size_t ngot,
                            const int64_t *want, size_t nwant)
{
    size_t i, j;

    assert_int_equal(ngot, nwant);
    for (i = 0; i < ngot; i++) {
        assert_int_equal(got[i], want[i]);
        for (j = 0; j < i; j++)
            assert_true(got[i] != got[j]);
    }
}

#define USER_ORDER                                                       \
    "SELECT id FROM messages WHERE openid = $1 "                         \
    "ORDER BY created_at DESC, id DESC"

/* --- cursors ------------------------------------------------------------ */

static void test_cursor_round_trips(void **st)
{
    static const struct history_cursor cases[] = {
        { 0, 0 }, { 1, 1 }, { 1706745600123456, 42 },
        { INT64_C(253402300799999999), INT64_MAX },
    };
    struct history_cursor back;
    char text[HISTORY_CURSOR_LEN];
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(history_cursor_encode(&cases[i], text,
                                               sizeof(text)), 0);
        assert_null(strpbrk(text, "+/=:"));
        assert_int_equal(history_cursor_decode(kf_str_c(text), &back), 0);
        assert_true(back.us == cases[i].us && back.id == cases[i].id);
    }
}

static void test_cursor_out_of_range_is_not_encoded(void **st)
{
    struct history_cursor c = { INT64_C(253402300800000000), 1 };
    char text[HISTORY_CURSOR_LEN];

    (void)st;
    assert_int_equal(history_cursor_encode(&c, text, sizeof(text)),
                     KF_EINVAL);
    c.us = -1;
    assert_int_equal(history_cursor_encode(&c, text, sizeof(text)),
                     KF_EINVAL);
    c.us = 1;
    c.id = -5;
    assert_int_equal(history_cursor_encode(&c, text, sizeof(text)),
                     KF_EINVAL);
    c.id = 5;
    assert_int_equal(history_cursor_encode(&c, text, 4), KF_EINVAL);
}

/* base64url (no padding) of the text. */
static void b64url(const char *text, char *out)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = strlen(text), i, bits = 0;
    uint32_t acc = 0;

    for (i = 0; i < n; i++) {
        acc = acc << 8 | (unsigned char)text[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            *out++ = a[(acc >> bits) & 63];
        }
    }
    if (bits)
        *out++ = a[(acc << (6 - bits)) & 63];
    *out = '\0';
}

static void test_cursor_tampering_is_einval(void **st)
{
    static const char *const texts[] = {
        "", ":", "1:", ":1", "1:2:3", "01:2", "1:02", "-1:2", "1:-2",
        "+1:2", " 1:2", "1:2 ", "1;2", "abc", "1.5:2", "0x10:2",
        "253402300800000000:1", "1:9223372036854775808",
        "99999999999999999999:1", "1:2\n",
    };
    /* Not base64url without padding, or not a cursor inside. */
    static const char *const raw[] = {
        "", "!", "MTox=", "MTox==", "MTox+", "MTox/", "MTo", "M", "MTox\n",
        "MTox MTox", "MTozx", "MTox\xc3\xa9",
        "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ1Njc4O"
        "TA6MQ",
    };
    struct history_cursor c;
    char enc[128];
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        b64url(texts[i], enc);
        if (history_cursor_decode(kf_str_c(enc), &c) != KF_EINVAL)
            fail_msg("accepted \"%s\" (%s)", texts[i], enc);
    }
    for (i = 0; i < sizeof(raw) / sizeof(raw[0]); i++)
        if (history_cursor_decode(kf_str_c(raw[i]), &c) != KF_EINVAL)
            fail_msg("accepted raw \"%s\"", raw[i]);
    /* "MTox" is "1:1". A NUL inside is refused, and so are stray trailing
     * bits: "MTE6Mg" is "11:2", "MTE6Mh" decodes to the same bytes. */
    assert_int_equal(history_cursor_decode(KF_STR("MTox"), &c), 0);
    assert_int_equal(history_cursor_decode((struct kf_str){ "MT\0x", 4 },
                                           &c), KF_EINVAL);
    assert_int_equal(history_cursor_decode(KF_STR("MTE6Mg"), &c), 0);
    assert_int_equal(c.us, 11);
    assert_int_equal(c.id, 2);
    assert_int_equal(history_cursor_decode(KF_STR("MTE6Mh"), &c), KF_EINVAL);
}

/* --- search text ---------------------------------------------------------- */

static void like(const char *text, const char *want)
{
    struct kf_buf b;
    int rc;

    kf_buf_init(&b, 1024);
    rc = history_like_pattern(kf_str_c(text), &b);
    if (!want) {
        assert_int_equal(rc, KF_EINVAL);
    } else {
        assert_int_equal(rc, 0);
        assert_string_equal(b.p, want);
    }
    kf_buf_release(&b);
}

static void test_like_pattern_escapes_wildcards_and_backslash(void **st)
{
    char hundred[310], want[320];
    size_t i;

    (void)st;
    like("50%", "%50\\%%");
    like("a_b", "%a\\_b%");
    like("a\\b", "%a\\\\b%");
    like("%%", "%\\%\\%%");
    like("您好", "%您好%");
    like("x", NULL);                      /* one character */
    like("您", NULL);                     /* one character, three bytes */
    like("", NULL);
    like("\xc0\xaf\xc0\xaf", NULL);       /* overlong */
    like("\xed\xa0\x80z", NULL);          /* surrogate */
    like("ab\xff", NULL);
    like("\xe4\xbd", NULL);               /* truncated */
    for (i = 0; i < 100; i++)             /* 100 characters, 300 bytes */
        memcpy(hundred + 3 * i, "您", 3);
    hundred[300] = '\0';
    snprintf(want, sizeof(want), "%%%s%%", hundred);
    like(hundred, want);
    memcpy(hundred + 300, "!", 2);        /* 101 */
    like(hundred, NULL);
}

/* --- reads -------------------------------------------------------------- */

static void test_user_pages_are_complete_and_never_repeat(void **st)
{
    struct history h;
    int64_t got[400], want[400];
    size_t ngot, nwant, pages, i;
    char at[64];

    (void)st;
    /* 137 rows in groups of 7 with the same created_at, with another
     * user's rows interleaved. */
    for (i = 0; i < 137; i++) {
        snprintf(at, sizeof(at), "2024-03-01 10:00:%02zu.250001+00",
                 i / 7);
        insert("oPAGEuser", i % 3 ? "i" : "o", at, "hello", NULL, NULL);
        if (i % 5 == 0)
            insert("oPAGEother", "i", at, "other", NULL, NULL);
    }
    nwant = expected_ids(USER_ORDER, "oPAGEuser", want, 400);
    assert_int_equal(nwant, 137);
    history_init(&h, tu_pg.dsn);
    ngot = walk(&h, USER, "oPAGEuser", 10, got, 400, &pages);
    assert_same_ids(got, ngot, want, nwant);
    assert_int_equal(pages, 14);
    ngot = walk(&h, USER, "oPAGEuser", 7, got, 400, &pages);
    assert_same_ids(got, ngot, want, nwant);
    ngot = walk(&h, USER, "oPAGEuser", 1, got, 400, &pages);
    assert_same_ids(got, ngot, want, nwant);
    assert_int_equal(pages, 137);
    ngot = walk(&h, USER, "oPAGEuser", 200, got, 400, &pages);
    assert_same_ids(got, ngot, want, nwant);
    assert_int_equal(pages, 1);
    /* One connection for all of it. */
    assert_int_equal(h.connects, 1);
    history_release(&h);
    history_release(&h);
}

static void test_rows_with_equal_created_at_are_split_by_id(void **st)
{
    struct history h;
    int64_t got[64], want[64];
    size_t ngot, nwant, pages, i;

    (void)st;
    for (i = 0; i < 25; i++)
        insert("oTIEuser", "i", "2024-03-02 08:00:00+00", "same", NULL,
               NULL);
    nwant = expected_ids(USER_ORDER, "oTIEuser", want, 64);
    history_init(&h, tu_pg.dsn);
    ngot = walk(&h, USER, "oTIEuser", 10, got, 64, &pages);
    assert_same_ids(got, ngot, want, nwant);
    assert_int_equal(pages, 3);
    for (i = 1; i < ngot; i++)
        assert_true(got[i] < got[i - 1]);
    history_release(&h);
}

static void test_exactly_a_full_page_has_no_next(void **st)
{
    struct history h;
    json_t *page = NULL;
    size_t i;

    (void)st;
    for (i = 0; i < 5; i++)
        insert("oFULLuser", "i", "2024-03-03 08:00:00+00", "x", NULL, NULL);
    history_init(&h, tu_pg.dsn);
    assert_int_equal(history_user_page(&h, KF_STR("oFULLuser"), NULL, 5,
                                       &page), 0);
    assert_int_equal(json_array_size(messages_of(page)), 5);
    assert_true(json_is_null(json_object_get(page, "next")));
    json_decref(page);
    assert_int_equal(history_user_page(&h, KF_STR("oNOBODY"), NULL, 5,
                                       &page), 0);
    assert_int_equal(json_array_size(messages_of(page)), 0);
    assert_true(json_is_null(json_object_get(page, "next")));
    json_decref(page);
    history_release(&h);
}

static void test_message_fields_and_times(void **st)
{
    struct history h;
    json_t *page = NULL, *in, *out, *want;

    (void)st;
    insert("oFIELDuser", "i", "2024-02-29 23:59:59.123456+00", "question",
           "17", "{\"MsgId\":\"123\",\"n\":[1,2.5,null,true],\"o\":{}}");
    insert("oFIELDuser", "o", "2024-02-29 23:59:59.999999+08", "answer",
           "17", NULL);
    history_init(&h, tu_pg.dsn);
    assert_int_equal(history_user_page(&h, KF_STR("oFIELDuser"), NULL, 10,
                                       &page), 0);
    assert_int_equal(json_array_size(messages_of(page)), 2);
    in = json_array_get(messages_of(page), 0);   /* newest first */
    out = json_array_get(messages_of(page), 1);
    /* +08 makes the "o" row older: 15:59:59.999 UTC. */
    assert_string_equal(tu_jstr(out, "direction"), "out");
    assert_string_equal(tu_jstr(out, "created_at"),
                        "2024-02-29T15:59:59.999Z");
    assert_string_equal(tu_jstr(out, "status"), "sent");
    assert_int_equal(json_integer_value(json_object_get(out, "errcode")), 0);
    assert_string_equal(tu_jstr(out, "agent"), "alice");
    assert_string_equal(tu_jstr(in, "direction"), "in");
    assert_string_equal(tu_jstr(in, "created_at"),
                        "2024-02-29T23:59:59.123Z");
    assert_string_equal(tu_jstr(in, "openid"), "oFIELDuser");
    assert_string_equal(tu_jstr(in, "msgtype"), "text");
    assert_string_equal(tu_jstr(in, "content"), "question");
    assert_null(json_object_get(in, "status"));
    assert_null(json_object_get(in, "errcode"));
    assert_true(json_is_null(json_object_get(in, "agent")));
    assert_true(json_is_null(json_object_get(in, "media_id")));
    assert_int_equal(json_integer_value(json_object_get(in, "session_id")),
                     17);
    assert_true(json_integer_value(json_object_get(in, "id")) > 0);
    want = json_loads("{\"MsgId\":\"123\",\"n\":[1,2.5,null,true],"
                      "\"o\":{}}", 0, NULL);
    assert_true(json_equal(json_object_get(in, "payload"), want));
    json_decref(want);
    assert_true(json_is_object(json_object_get(out, "payload")));
    json_decref(page);
    history_release(&h);
}

static void test_hostile_content_round_trips_byte_for_byte(void **st)
{
    static const char *const hostile[] = {
        "\"quoted\" 'single' `back` \\ \\\\ \\u0000 \\n",
        "\x01\x02\x07\x08\t\n\v\f\r\x1b\x1f\x7f end",
        "</script><script>alert(1)</script>&amp;<!--",
        "'; DROP TABLE messages; -- $1 %s %n %% _ \\%",
        "\xf0\x9f\x98\x80\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9 emoji",
        "\xe2\x80\xae\xe2\x80\x8b\xef\xbb\xbf rtl zwsp bom",
        "\xef\xbf\xbf\xf4\x8f\xbf\xbf noncharacters",
        "{\"json\":[1,2]} <xml><![CDATA[x]]></xml>",
    };
    size_t n = sizeof(hostile) / sizeof(hostile[0]), i;
    char at[64];
    struct kf_buf big;
    struct history h;
    json_t *page = NULL;

    (void)st;
    kf_buf_init(&big, 1 << 20);
    for (i = 0; i < 700; i++)
        assert_int_equal(kf_buf_append_c(&big, "中文\"\\\n"), 0);
    for (i = 0; i < n; i++) {
        snprintf(at, sizeof(at), "2024-03-04 08:00:%02zu+00", i);
        insert("oHOSTILEuser", "i", at, hostile[i], NULL, NULL);
    }
    insert("oHOSTILEuser", "i", "2024-03-04 09:00:00+00", big.p, NULL,
           "{\"s\":\"\\\"<>\\\\\\u0001中\"}");
    history_init(&h, tu_pg.dsn);
    assert_int_equal(history_user_page(&h, KF_STR("oHOSTILEuser"), NULL,
                                       50, &page), 0);
    assert_int_equal(json_array_size(messages_of(page)), n + 1);
    {
        json_t *m = json_array_get(messages_of(page), 0);
        json_t *c = json_object_get(m, "content");

        assert_int_equal(json_string_length(c), big.len);
        assert_memory_equal(json_string_value(c), big.p, big.len);
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(m, "payload"), "s")),
                            "\"<>\\\x01中");
    }
    for (i = 0; i < n; i++) {
        json_t *c = json_object_get(
            json_array_get(messages_of(page), n - i), "content");

        assert_int_equal(json_string_length(c), strlen(hostile[i]));
        assert_memory_equal(json_string_value(c), hostile[i],
                            strlen(hostile[i]));
    }
    json_decref(page);
    kf_buf_release(&big);
    history_release(&h);
}

static size_t search_ids(struct history *h, const char *q, int64_t *ids,
                         size_t max)
{
    size_t pages;

    return walk(h, SEARCH, q, 3, ids, max, &pages);
}

#define SEARCH_ORDER(cond)                                               \
    "SELECT id FROM messages WHERE " cond " "                            \
    "ORDER BY created_at DESC, id DESC"

static void test_search_escapes_like_wildcards(void **st)
{
    static const char *const contents[] = {
        "price 500 yuan", "50% off today", "5x0", "5_0 underscore",
        "a\\b backslash", "ab no backslash", "您好，请问有什么可以帮您",
        "HELLOQZ World", "helloqz again", "你好",
    };
    int64_t got[64], want[64];
    size_t i, ngot, nwant;
    struct history h;
    json_t *page = NULL;
    char at[64];

    (void)st;
    for (i = 0; i < sizeof(contents) / sizeof(contents[0]); i++) {
        snprintf(at, sizeof(at), "2024-03-05 08:00:%02zu+00", i);
        insert(i % 2 ? "oSEARCHa" : "oSEARCHb", "i", at, contents[i], NULL,
               NULL);
        insert("oSEARCHc", "o", at, contents[i], NULL, NULL);
    }
    history_init(&h, tu_pg.dsn);
    ngot = search_ids(&h, "50%", got, 64);
    nwant = expected_ids(SEARCH_ORDER("content = $1"), "50% off today",
                         want, 64);
    assert_int_equal(nwant, 2);
    assert_same_ids(got, ngot, want, nwant);
    ngot = search_ids(&h, "5_0", got, 64);
    nwant = expected_ids(SEARCH_ORDER("content = $1"), "5_0 underscore",
                         want, 64);
    assert_same_ids(got, ngot, want, nwant);
    ngot = search_ids(&h, "a\\b", got, 64);
    nwant = expected_ids(SEARCH_ORDER("content = $1"), "a\\b backslash",
                         want, 64);
    assert_same_ids(got, ngot, want, nwant);
    ngot = search_ids(&h, "请问", got, 64);
    nwant = expected_ids(SEARCH_ORDER("content = $1"),
                         "您好，请问有什么可以帮您", want, 64);
    assert_same_ids(got, ngot, want, nwant);
    /* Case-insensitive, newest first across users, over pages of 3. */
    ngot = search_ids(&h, "hElLoQz", got, 64);
    nwant = expected_ids(SEARCH_ORDER("lower(content) LIKE $1"), "%helloqz%",
                         want, 64);
    assert_true(nwant >= 4);
    assert_same_ids(got, ngot, want, nwant);
    assert_int_equal(history_search(&h, KF_STR("zz_nothing_zz"), NULL, 10,
                                    &page), 0);
    assert_int_equal(json_array_size(messages_of(page)), 0);
    json_decref(page);
    history_release(&h);
}

static void test_transcript_picks_the_current_then_the_latest_session(
    void **st)
{
    struct history h;
    struct history_cursor c;
    json_t *page = NULL, *list;
    char at[64];
    size_t i;

    (void)st;
    tu_pg_exec_ok(tu_pg.db, "INSERT INTO sessions (id, openid, agent, opened_at, "
                   "closed_at) VALUES "
                   "(901, 'oTRANSuser', 'alice', '2024-03-06 08:00+00', "
                   "'2024-03-06 09:00+00'), "
                   "(902, 'oTRANSuser', 'bob', '2024-03-06 10:00+00', NULL), "
                   "(903, 'oTRANSuser', 'bob', '2024-03-06 11:00+00', "
                   "'2024-03-06 11:30+00'), "
                   "(904, 'oLATESTuser', 'bob', '2024-03-06 08:00+00', "
                   "'2024-03-06 08:30+00'), "
                   "(905, 'oLATESTuser', 'bob', '2024-03-06 09:00+00', "
                   "'2024-03-06 09:30+00')");
    for (i = 0; i < 12; i++) {
        snprintf(at, sizeof(at), "2024-03-06 10:%02zu:00+00", i / 2);
        insert("oTRANSuser", i % 2 ? "o" : "i", at, "in 902", "902", NULL);
    }
    insert("oTRANSuser", "i", "2024-03-06 08:10+00", "in 901", "901", NULL);
    insert("oOTHERuser", "i", "2024-03-06 10:00+00", "not theirs", "902",
           NULL);
    insert("oLATESTuser", "i", "2024-03-06 09:10+00", "in 905", "905", NULL);
    history_init(&h, tu_pg.dsn);

    /* Default: the open session 902, oldest first, 5 + 5 + 2. */
    assert_int_equal(history_transcript(&h, KF_STR("oTRANSuser"), 0, NULL,
                                        5, &page), 0);
    assert_int_equal(json_integer_value(json_object_get(page,
                                                        "session_id")), 902);
    list = messages_of(page);
    assert_int_equal(json_array_size(list), 5);
    for (i = 1; i < 5; i++)
        assert_true(strcmp(tu_jstr(json_array_get(list, i), "created_at"),
                           tu_jstr(json_array_get(list, i - 1),
                                   "created_at")) >= 0);
    assert_int_equal(history_cursor_decode(kf_str_c(next_of(page)), &c), 0);
    json_decref(page);
    assert_int_equal(history_transcript(&h, KF_STR("oTRANSuser"), 0, &c, 5,
                                        &page), 0);
    assert_int_equal(json_array_size(messages_of(page)), 5);
    assert_int_equal(history_cursor_decode(kf_str_c(next_of(page)), &c), 0);
    json_decref(page);
    assert_int_equal(history_transcript(&h, KF_STR("oTRANSuser"), 0, &c, 5,
                                        &page), 0);
    assert_int_equal(json_array_size(messages_of(page)), 2);
    assert_null(next_of(page));
    json_decref(page);

    /* An explicit session; another user's session gives nothing. */
    assert_int_equal(history_transcript(&h, KF_STR("oTRANSuser"), 901, NULL,
                                        1000, &page), 0);
    assert_int_equal(json_array_size(messages_of(page)), 1);
    assert_string_equal(tu_jstr(json_array_get(messages_of(page), 0),
                                "content"), "in 901");
    json_decref(page);
    assert_int_equal(history_transcript(&h, KF_STR("oLATESTuser"), 902,
                                        NULL, 1000, &page), 0);
    assert_int_equal(json_array_size(messages_of(page)), 0);
    json_decref(page);

    /* No open session: the latest one. No session at all: not found. */
    assert_int_equal(history_transcript(&h, KF_STR("oLATESTuser"), 0, NULL,
                                        1000, &page), 0);
    assert_int_equal(json_integer_value(json_object_get(page,
                                                        "session_id")), 905);
    assert_int_equal(json_array_size(messages_of(page)), 1);
    json_decref(page);
    assert_int_equal(history_transcript(&h, KF_STR("oNOSESSION"), 0, NULL,
                                        1000, &page), KF_ENOTFOUND);
    assert_null(page);
    history_release(&h);
}

static void test_arguments_out_of_range_are_einval(void **st)
{
    struct history_cursor far = { INT64_C(253402300800000000), 1 };
    char long_id[80];
    struct history h;
    json_t *page = NULL;

    (void)st;
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    history_init(&h, tu_pg.dsn);
    assert_int_equal(history_user_page(&h, KF_STR("oX"), NULL, 0, &page),
                     KF_EINVAL);
    assert_int_equal(history_user_page(&h, KF_STR("oX"), NULL, 201, &page),
                     KF_EINVAL);
    assert_int_equal(history_user_page(&h, KF_STR(""), NULL, 5, &page),
                     KF_EINVAL);
    assert_int_equal(history_user_page(&h, kf_str_c(long_id), NULL, 5,
                                       &page), KF_EINVAL);
    assert_int_equal(history_user_page(&h, KF_STR("oX"), &far, 5, &page),
                     KF_EINVAL);
    assert_int_equal(history_transcript(&h, KF_STR("oX"), 1, NULL, 1001,
                                        &page), KF_EINVAL);
    assert_int_equal(history_transcript(&h, KF_STR("oX"), -1, NULL, 5,
                                        &page), KF_EINVAL);
    assert_int_equal(history_search(&h, KF_STR("x"), NULL, 5, &page),
                     KF_EINVAL);
    assert_int_equal(history_search(&h, KF_STR("ok"), NULL, 201, &page),
                     KF_EINVAL);
    assert_null(page);
    /* None of that needed the database. */
    assert_int_equal(h.connects, 0);
    history_release(&h);
}

static void test_reconnects_after_the_server_restarts(void **st)
{
    struct history h;
    json_t *page = NULL;

    (void)st;
    insert("oRESTARTuser", "i", "2024-03-07 08:00+00", "before", NULL, NULL);
    history_init(&h, tu_pg.dsn);
    assert_int_equal(history_user_page(&h, KF_STR("oRESTARTuser"), NULL, 5,
                                       &page), 0);
    json_decref(page);
    assert_int_equal(h.connects, 1);
    tu_pg_stop(&tu_pg);
    assert_int_equal(tu_pg_start(&tu_pg), 0);
    /* The old connection is dead; the read makes a new one, prepares the
     * statements again and answers. */
    assert_int_equal(history_user_page(&h, KF_STR("oRESTARTuser"), NULL, 5,
                                       &page), 0);
    assert_int_equal(json_array_size(messages_of(page)), 1);
    json_decref(page);
    assert_int_equal(h.connects, 2);
    history_release(&h);
    assert_int_equal(tu_pg_own_connection(&tu_pg), 0);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_server_down_is_ebackend_and_the_next_read_reconnects(
    void **st)
{
    struct history h;
    json_t *page = NULL;
    int64_t t0;

    (void)st;
    history_init(&h, tu_pg.dsn);
    assert_int_equal(history_user_page(&h, KF_STR("oRESTARTuser"), NULL, 5,
                                       &page), 0);
    json_decref(page);
    tu_pg_stop(&tu_pg);
    t0 = now_ms();
    assert_int_equal(history_user_page(&h, KF_STR("oRESTARTuser"), NULL, 5,
                                       &page), KF_EBACKEND);
    assert_null(page);
    assert_int_equal(history_search(&h, KF_STR("before"), NULL, 5, &page),
                     KF_EBACKEND);
    assert_true(now_ms() - t0 < 3000);
    assert_int_equal(tu_pg_start(&tu_pg), 0);
    assert_int_equal(history_search(&h, KF_STR("before"), NULL, 5, &page),
                     0);
    assert_int_equal(json_array_size(messages_of(page)), 1);
    json_decref(page);
    history_release(&h);
    assert_int_equal(tu_pg_own_connection(&tu_pg), 0);
}

/* A read stuck behind a lock ends with the session's statement_timeout
 * (5 s), and the next read works on a new connection. */
static void test_a_blocked_read_times_out_and_the_next_one_works(void **st)
{
    struct history h;
    json_t *page = NULL;
    int64_t t0, took;

    (void)st;
    history_init(&h, tu_pg.dsn);
    assert_int_equal(history_user_page(&h, KF_STR("oLOCKuser"), NULL, 5,
                                       &page), 0);
    json_decref(page);
    tu_pg_exec_ok(tu_pg.db, "BEGIN");
    tu_pg_exec_ok(tu_pg.db, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE");
    t0 = now_ms();
    assert_int_equal(history_user_page(&h, KF_STR("oLOCKuser"), NULL, 5,
                                       &page), KF_EBACKEND);
    took = now_ms() - t0;
    tu_pg_exec_ok(tu_pg.db, "COMMIT");
    assert_true(took >= 4500 && took < 7500);
    assert_int_equal(history_user_page(&h, KF_STR("oLOCKuser"), NULL, 5,
                                       &page), 0);
    json_decref(page);
    assert_int_equal(h.connects, 2);
    history_release(&h);
}

/* A peer that accepts TCP but never speaks (the kernel completes the
 * handshake on a listening socket nobody accepts on). */
static void test_a_silent_server_is_given_up_on_within_about_2s(void **st)
{
    struct history h;
    json_t *page = NULL;
    char dsn[128];
    int64_t t0, took;
    int fd = tu_pg_silent_dsn(dsn, sizeof(dsn));

    (void)st;
    history_init(&h, dsn);
    t0 = now_ms();
    assert_int_equal(history_user_page(&h, KF_STR("oX"), NULL, 5, &page),
                     KF_EBACKEND);
    took = now_ms() - t0;
    assert_true(took >= 1500 && took < 3500);
    history_release(&h);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_round_trips),
        cmocka_unit_test(test_cursor_out_of_range_is_not_encoded),
        cmocka_unit_test(test_cursor_tampering_is_einval),
        cmocka_unit_test(test_like_pattern_escapes_wildcards_and_backslash),
        cmocka_unit_test(test_user_pages_are_complete_and_never_repeat),
        cmocka_unit_test(test_rows_with_equal_created_at_are_split_by_id),
        cmocka_unit_test(test_exactly_a_full_page_has_no_next),
        cmocka_unit_test(test_message_fields_and_times),
        cmocka_unit_test(test_hostile_content_round_trips_byte_for_byte),
        cmocka_unit_test(test_search_escapes_like_wildcards),
        cmocka_unit_test(
            test_transcript_picks_the_current_then_the_latest_session),
        cmocka_unit_test(test_arguments_out_of_range_are_einval),
        cmocka_unit_test(test_a_blocked_read_times_out_and_the_next_one_works),
        cmocka_unit_test(test_a_silent_server_is_given_up_on_within_about_2s),
        cmocka_unit_test(test_reconnects_after_the_server_restarts),
        cmocka_unit_test(
            test_server_down_is_ebackend_and_the_next_read_reconnects),
    };

    return cmocka_run_group_tests(tests, tu_pg_group_setup,
                                  tu_pg_group_teardown);
}
