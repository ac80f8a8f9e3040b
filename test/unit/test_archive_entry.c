/* test_archive_entry: one stream entry as the archiver writes it, without
 * Redis or PostgreSQL — the kind each event gets (and the fallback to
 * other_events), the columns its fields fill, the COPY text (escapes,
 * NULL, one row per entry), the entries set aside as unwritable, the
 * netstrings archive_rejects keeps, and the cap on a batch's text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "archive_entry.h"
#include "kf.h"
#include "testutil.h"

#include "banned.h"

#define MAXF 16

struct fx {
    struct kf_str f[MAXF];
    struct archive_entry e;
};

/* Parses id and the NULL-terminated name, value, ... list. */
static void parse(struct fx *x, const char *id, ...)
{
    va_list ap;
    const char *s;
    size_t n = 0;

    va_start(ap, id);
    while ((s = va_arg(ap, const char *)) != NULL && n < MAXF)
        x->f[n++] = kf_str_c(s);
    va_end(ap);
    archive_entry_parse(&x->e, kf_str_c(id), x->f, n, 0);
}

static void assert_col(const struct archive_entry *e, enum archive_entry_col c,
                       const char *want)
{
    if (!want) {
        assert_null(e->col[c].p);
        return;
    }
    assert_non_null(e->col[c].p);
    assert_int_equal(e->col[c].len, strlen(want));
    assert_memory_equal(e->col[c].p, want, strlen(want));
}

/* The COPY text of the one entry. */
static void copy1(struct archive_entry *e, struct kf_buf *out)
{
    unsigned kinds;

    kf_buf_init(out, 1 << 20);
    assert_int_equal(archive_entry_copy(&e, 1, out, &kinds), 0);
    assert_int_equal(kinds, ARCHIVE_ENTRY_BIT(e->kind));
}

static void test_a_message_fills_its_columns(void **state)
{
    struct fx x;

    (void)state;
    parse(&x, "1700000000000-7", "type", "msg_in", "openid", "o1",
          "msgtype", "text", "msgid", "m1", "id", "x1", "recv_ms",
          "1700000000123", "payload", "{\"Content\":\"hi\"}", NULL);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_MSG_IN);
    assert_col(&x.e, ARCHIVE_ENTRY_C_EVENT_ID, "1700000000000-7");
    assert_col(&x.e, ARCHIVE_ENTRY_C_KIND, "msg_in");
    assert_col(&x.e, ARCHIVE_ENTRY_C_EMS, "1700000000000");
    assert_col(&x.e, ARCHIVE_ENTRY_C_ESEQ, "7");
    assert_col(&x.e, ARCHIVE_ENTRY_C_TS, "1700000000123");     /* recv_ms */
    assert_col(&x.e, ARCHIVE_ENTRY_C_MSGID, "m1");      /* WeChat's MsgId */
    assert_col(&x.e, ARCHIVE_ENTRY_C_OPENID, "o1");
    assert_col(&x.e, ARCHIVE_ENTRY_C_AGENT, NULL);
    assert_col(&x.e, ARCHIVE_ENTRY_C_FIELDS, NULL);
    archive_entry_release(&x.e);
}

static void test_an_outgoing_message_takes_its_own_id_and_ts_ms(void **state)
{
    struct fx x;

    (void)state;
    parse(&x, "1700000000000-0", "type", "msg_out", "msgid", "m1", "id",
          "out-9", "ts_ms", "1700000000999", "recv_ms", "5", "by", "a7",
          NULL);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_MSG_OUT);
    assert_col(&x.e, ARCHIVE_ENTRY_C_MSGID, "out-9");
    assert_col(&x.e, ARCHIVE_ENTRY_C_TS, "1700000000999");
    assert_col(&x.e, ARCHIVE_ENTRY_C_SENDER, "a7");
    archive_entry_release(&x.e);
}

/* A whisper (staff's internal note) goes to messages as direction 'w'
 * (archive_sql.c): its id is its msgid, ts_ms its time, the payload kept. */
static void test_a_whisper_is_a_message_of_its_own_kind(void **state)
{
    struct fx x;

    (void)state;
    parse(&x, "1700000000000-3", "type", "whisper", "openid", "o1",
          "session", "7", "agent", "a1", "msgtype", "text", "id",
          "w_0123456789abcdef", "payload", "{\"content\":\"先道歉\"}",
          "ts_ms", "1700000000555", NULL);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_WHISPER);
    assert_col(&x.e, ARCHIVE_ENTRY_C_KIND, "whisper");
    assert_col(&x.e, ARCHIVE_ENTRY_C_MSGID, "w_0123456789abcdef");
    assert_col(&x.e, ARCHIVE_ENTRY_C_TS, "1700000000555");
    assert_col(&x.e, ARCHIVE_ENTRY_C_PAYLOAD, "{\"content\":\"先道歉\"}");
    archive_entry_release(&x.e);
}

/* The first of a repeated field wins; a time that is not one (here past
 * int64) gives way to the entry id's. */
static void test_first_field_wins_and_bad_times_fall_back(void **state)
{
    struct fx x;

    (void)state;
    parse(&x, "1700000000000-0", "type", "presence", "agent", "a1",
          "agent", "a2", "status", "online", "ts_ms",
          "99999999999999999999", NULL);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_PRESENCE);
    assert_col(&x.e, ARCHIVE_ENTRY_C_AGENT, "a1");
    assert_col(&x.e, ARCHIVE_ENTRY_C_TS, "1700000000000");
    archive_entry_release(&x.e);
}

/* What a table needs missing: the entry lands in other_events, whole. */
static void test_an_incomplete_event_goes_to_other_events(void **state)
{
    struct fx x;

    (void)state;
    parse(&x, "1-0", "type", "delivery", "status", "ok", NULL);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_OTHER);
    assert_col(&x.e, ARCHIVE_ENTRY_C_FIELDS,
               "{\"type\":\"delivery\",\"status\":\"ok\"}");
    archive_entry_release(&x.e);

    parse(&x, "1-0", "type", "assign", "session", "12a", NULL);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_OTHER);
    archive_entry_release(&x.e);
    parse(&x, "1-0", "type", "presence", "agent", "a1", NULL);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_OTHER);
    archive_entry_release(&x.e);
    parse(&x, "1-0", "type", "media_stored", NULL);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_OTHER);
    archive_entry_release(&x.e);
    parse(&x, "1-0", "type", "whisper", "session", "7", NULL);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_OTHER);
    archive_entry_release(&x.e);
    parse(&x, "1-0", "type", "something_new", "k", "v", "k", "w", NULL);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_OTHER);
    assert_col(&x.e, ARCHIVE_ENTRY_C_KIND, "other");
    assert_col(&x.e, ARCHIVE_ENTRY_C_FIELDS,
               "{\"type\":\"something_new\",\"k\":\"v\"}");
    archive_entry_release(&x.e);
}

static void test_copy_text_escapes_and_writes_null(void **state)
{
    struct fx x;
    struct kf_buf b;
    const char *want_head = "1-0\t1\t0\tpresence\t1\tpresence\t\\N\t\\N\t"
                            "\\N\t\\N\ta\\\\b\\tc\\nd\\re\t";

    (void)state;
    parse(&x, "1-0", "type", "presence", "agent", "a\\b\tc\nd\re",
          "status", "on", NULL);
    copy1(&x.e, &b);
    assert_true(b.len > strlen(want_head));
    assert_memory_equal(b.p, want_head, strlen(want_head));
    assert_int_equal(b.p[b.len - 1], '\n');
    {
        size_t i, tabs = 0;

        for (i = 0; i < b.len; i++)
            tabs += b.p[i] == '\t';
        assert_int_equal(tabs, ARCHIVE_ENTRY_NCOLS - 1);   /* one row */
    }
    kf_buf_release(&b);
    archive_entry_release(&x.e);
}

static void test_unwritable_entries_are_set_aside(void **state)
{
    struct fx x;
    static const char nul[] = { 'a', '\0', 'b' };
    struct kf_str f[2] = { KF_STR("type"), { nul, sizeof(nul) } };
    struct kf_str bin[2] = { KF_STR("type"), KF_STR("\xff\xfe") };
    struct kf_str odd[3] = { KF_STR("type"), KF_STR("x"), KF_STR("y") };
    struct kf_str hole[2] = { KF_STR("type"), { NULL, 0 } };

    (void)state;
    parse(&x, "not-an-id", "type", "msg_in", NULL);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_BAD);
    assert_string_equal(x.e.why_bad, "malformed entry id");
    parse(&x, "253402300800000-0", NULL);           /* after year 9999 */
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_BAD);
    archive_entry_parse(&x.e, kf_str_c("1-0"), f, 2, 0);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_BAD);
    assert_string_equal(x.e.why_bad,
                        "a field is not UTF-8 text without NUL");
    archive_entry_parse(&x.e, kf_str_c("1-0"), bin, 2, 0);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_BAD);
    archive_entry_parse(&x.e, kf_str_c("1-0"), hole, 2, 0);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_BAD);
    archive_entry_parse(&x.e, kf_str_c("1-0"), odd, 3, 0);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_BAD);
    assert_string_equal(x.e.why_bad, "malformed entry");
    archive_entry_parse(&x.e, kf_str_c("1-0"), NULL, 0, 0);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_BAD);
    archive_entry_parse(&x.e, kf_str_c("1-0"), NULL, 0, 1);
    assert_int_equal(x.e.kind, ARCHIVE_ENTRY_GONE);
}

static void test_rejects_keep_the_fields_as_netstrings(void **state)
{
    struct kf_str f[4] = { KF_STR("type"), KF_STR("x\xff"),
                           KF_STR("k"), { NULL, 0 } };
    struct archive_entry e;
    struct kf_buf b;

    (void)state;
    archive_entry_parse(&e, kf_str_c("1-0"), f, 4, 0);
    assert_int_equal(e.kind, ARCHIVE_ENTRY_BAD);
    kf_buf_init(&b, 1024);
    assert_int_equal(archive_entry_raw(&e, &b), 0);
    assert_int_equal(b.len, strlen("4:type,2:x\xff,1:k,"));
    assert_memory_equal(b.p, "4:type,2:x\xff,1:k,", b.len);
    kf_buf_release(&b);
}

static void test_a_batch_over_the_cap_is_split_not_cut(void **state)
{
    struct fx x[2];
    struct archive_entry *v[2] = { &x[0].e, &x[1].e };
    struct kf_buf b;
    unsigned kinds;

    (void)state;
    parse(&x[0], "1-0", "type", "presence", "agent", "a", "status", "on",
          NULL);
    parse(&x[1], "1-1", "type", "close", "session", "1", NULL);
    kf_buf_init(&b, 1 << 20);
    assert_int_equal(archive_entry_copy(v, 2, &b, &kinds), 0);
    assert_int_equal(kinds, ARCHIVE_ENTRY_BIT(ARCHIVE_ENTRY_PRESENCE) |
                                ARCHIVE_ENTRY_BIT(ARCHIVE_ENTRY_CLOSE));
    kf_buf_release(&b);
    kf_buf_init(&b, 40);
    assert_int_equal(archive_entry_copy(v, 2, &b, &kinds), KF_EPARSE);
    kf_buf_release(&b);
    archive_entry_release(&x[0].e);
    archive_entry_release(&x[1].e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_message_fills_its_columns),
        cmocka_unit_test(test_an_outgoing_message_takes_its_own_id_and_ts_ms),
        cmocka_unit_test(test_a_whisper_is_a_message_of_its_own_kind),
        cmocka_unit_test(test_first_field_wins_and_bad_times_fall_back),
        cmocka_unit_test(test_an_incomplete_event_goes_to_other_events),
        cmocka_unit_test(test_copy_text_escapes_and_writes_null),
        cmocka_unit_test(test_unwritable_entries_are_set_aside),
        cmocka_unit_test(test_rejects_keep_the_fields_as_netstrings),
        cmocka_unit_test(test_a_batch_over_the_cap_is_split_not_cut),
    };

    return cmocka_run_group_tests_name("archive_entry", tests, NULL, NULL);
}
