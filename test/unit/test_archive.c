/* Tests of lib/archive against a private redis-server and a private
 * PostgreSQL 15 (initdb into a temporary directory as the postgres user,
 * started on a free loopback port, migrated, stopped at the end). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "config.h"
#include "lua.h"
#include "migrate.h"
#include "store.h"
#include "testutil.h"

#define APPID "wx62dd79ea990faa89"
#define STREAM "wxkf:{" APPID "}:events"
#define PG_BIN "/usr/lib/postgresql/15/bin"

/* --- a private PostgreSQL ------------------------------------------------ */

struct tu_pg {
    int port;
    char dir[64];
    char dsn[160];
};

/* Runs a shell command (as postgres when we are root); fails the test,
 * showing the log, when it fails. Every command here is bounded. */
static void pg_sh(const struct tu_pg *p, const char *what, const char *cmd)
{
    char line[1024];
    int n;

    n = snprintf(line, sizeof(line), "cd '%s' && %s%s >>'%s/pg.log' 2>&1",
                 p->dir, getuid() == 0 ? "timeout 60 runuser -u postgres -- "
                                       : "timeout 60 ", cmd, p->dir);
    assert_true(n > 0 && (size_t)n < sizeof(line));
    if (system(line) != 0) {
        snprintf(line, sizeof(line), "tail -n 30 '%s/pg.log' >&2", p->dir);
        if (system(line) != 0)
            fprintf(stderr, "(no log)\n");
        fail_msg("postgres: %s failed", what);
    }
}

static void pg_start(struct tu_pg *p)
{
    char cmd[512];
    struct migrate_result res;

    snprintf(p->dir, sizeof(p->dir), "/tmp/wxkf-unit-pg-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    assert_int_equal(chmod(p->dir, 0755), 0);
    if (getuid() == 0) {
        snprintf(cmd, sizeof(cmd), "chown postgres: '%s'", p->dir);
        assert_int_equal(system(cmd), 0);
    }
    p->port = tu_free_port();
    snprintf(cmd, sizeof(cmd), PG_BIN "/initdb -D '%s/data' -A trust -U wxkf "
             "-E UTF8 --locale=C.UTF-8", p->dir);
    pg_sh(p, "initdb", cmd);
    snprintf(cmd, sizeof(cmd), PG_BIN "/pg_ctl -D '%s/data' -l '%s/server.log'"
             " -o \"-p %d -k '%s' -c listen_addresses=127.0.0.1 -c fsync=off"
             " -c synchronous_commit=off -c full_page_writes=off\" -w -t 30"
             " start", p->dir, p->dir, p->port, p->dir);
    pg_sh(p, "pg_ctl start", cmd);
    snprintf(p->dsn, sizeof(p->dsn),
             "host=127.0.0.1 port=%d dbname=postgres user=wxkf", p->port);
    if (migrate_run(p->dsn, &res) != 0)
        fail_msg("migrate: %s", res.error);
}

static void pg_stop(struct tu_pg *p)
{
    char cmd[256];

    if (!p->dir[0])
        return;
    snprintf(cmd, sizeof(cmd), PG_BIN "/pg_ctl -D '%s/data' -m immediate -w "
             "-t 30 stop", p->dir);
    pg_sh(p, "pg_ctl stop", cmd);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", p->dir);
    p->dir[0] = '\0';
}

/* --- fixture ------------------------------------------------------------- */

struct fx {
    struct tu_redis redis;
    struct tu_pg pg;
    struct config cfg;
    struct store store;
    redisContext *rc;
    PGconn *db;
};

static struct fx F;

static int setup_all(void **state)
{
    char url[64];

    (void)state;
    tu_redis_start(&F.redis);
    pg_start(&F.pg);
    config_init(&F.cfg);
    free(F.cfg.postgres.dsn);
    F.cfg.postgres.dsn = strdup(F.pg.dsn);
    assert_non_null(F.cfg.postgres.dsn);
    F.cfg.archiver.keep_ms = 0;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", F.redis.port);
    assert_int_equal(store_init(&F.store, url, APPID, 500, 2000), 0);
    F.rc = redisConnect("127.0.0.1", F.redis.port);
    assert_non_null(F.rc);
    assert_int_equal(F.rc->err, 0);
    F.db = PQconnectdb(F.pg.dsn);
    assert_int_equal(PQstatus(F.db), CONNECTION_OK);
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    PQfinish(F.db);
    redisFree(F.rc);
    store_release(&F.store);
    config_release(&F.cfg);
    pg_stop(&F.pg);
    tu_redis_stop(&F.redis);
    return 0;
}

static void sql(const char *q)
{
    PGresult *r = PQexec(F.db, q);
    ExecStatusType s = PQresultStatus(r);

    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQresultErrorMessage(r));
    PQclear(r);
}

/* The first column of the first row ("(null)" for NULL, "(none)" when
 * there is no row); caller frees. */
static char *q1(const char *q)
{
    PGresult *r = PQexec(F.db, q);
    char *out;

    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQresultErrorMessage(r));
    if (PQntuples(r) == 0)
        out = strdup("(none)");
    else if (PQgetisnull(r, 0, 0))
        out = strdup("(null)");
    else
        out = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    assert_non_null(out);
    return out;
}

static void expect(const char *q, const char *want)
{
    char *got = q1(q);

    if (strcmp(got, want) != 0) {
        fprintf(stderr, "query: %s\n got: %s\nwant: %s\n", q, got, want);
        free(got);
        fail();
    }
    free(got);
}

static int setup(void **state)
{
    redisReply *r;

    (void)state;
    r = redisCommand(F.rc, "FLUSHALL");
    assert_non_null(r);
    freeReplyObject(r);
    sql("TRUNCATE messages, sessions, transfers, presence_changes,"
        " deliveries, media_files, other_events, archive_rejects");
    return 0;
}

static struct redisReply *cmdv(int argc, const char **argv,
                               const size_t *lens)
{
    redisReply *r = redisCommandArgv(F.rc, argc, argv, lens);

    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", argv[0], r->str);
    return r;
}

static long long rint_cmd(const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    long long v;

    va_start(ap, fmt);
    r = redisvCommand(F.rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", fmt, r->str);
    v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

/* XADD STREAM id f1 v1 f2 v2 ... NULL; the new id goes to out. */
static void xadd(char out[48], const char *id, ...)
{
    const char *argv[64];
    va_list ap;
    int argc = 0;
    redisReply *r;

    argv[argc++] = "XADD";
    argv[argc++] = STREAM;
    argv[argc++] = id ? id : "*";
    va_start(ap, id);
    for (;;) {
        const char *s = va_arg(ap, const char *);

        if (!s)
            break;
        assert_true(argc < 64);
        argv[argc++] = s;
    }
    va_end(ap);
    r = cmdv(argc, argv, NULL);
    if (out)
        snprintf(out, 48, "%s", r->str);
    freeReplyObject(r);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void archive_new(struct archive *a)
{
    archive_init(a, &F.store, &F.cfg);
}

/* Passes until nothing is left (bounded). */
static void run_until_drained(struct archive *a, struct archive_stats *st)
{
    int i;

    for (i = 0; i < 50; i++) {
        assert_int_equal(archive_pass(a, st), 0);
        if (!st->more && st->lag_known && st->lag.pending == 0 &&
            st->lag.undelivered == 0)
            return;
    }
    fail_msg("archive not drained after 50 passes");
}

static long long group_pending(const char *group)
{
    redisReply *r = redisCommand(F.rc, "XPENDING %s %s", STREAM, group);
    long long n;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

/* --- tests --------------------------------------------------------------- */

static void test_each_event_type_lands_in_its_table(void **state)
{
    struct archive a;
    struct archive_stats st;
    char t[8][24], img[48], q[512];
    int64_t now = now_ms();
    int i;

    (void)state;
    for (i = 0; i < 8; i++)
        snprintf(t[i], sizeof(t[i]), "%lld", (long long)(now + i * 1000));
    xadd(NULL, NULL, "type", "msg_in", "key", "msgid:123", "openid", "o1",
         "msgtype", "text", "event", "", "msgid", "123", "create_time",
         "1700000000", "recv_ms", t[0], "rid", "r1", "payload",
         "{\"ToUserName\":\"gh_1\",\"FromUserName\":\"o1\",\"MsgType\":"
         "\"text\",\"Content\":\"hello\",\"MsgId\":\"123\"}",
         "decision", "assigned:a1", "agent", "a1", "session", "7", NULL);
    xadd(NULL, NULL, "type", "assign", "openid", "o1", "session", "7",
         "agent", "a1", "group", "_all", "reason", "new_session", "why",
         "{\"chosen\":\"a1\"}", "ts_ms", t[0], NULL);
    xadd(img, NULL, "type", "msg_in", "openid", "o1", "msgtype", "image",
         "msgid", "124", "recv_ms", t[1], "payload",
         "{\"MsgType\":\"image\",\"PicUrl\":\"http://x/y\","
         "\"MediaId\":\"MID1\"}", "agent", "a1", "session", "7", NULL);
    xadd(NULL, NULL, "type", "msg_out", "id", "m_1", "openid", "o1",
         "agent", "a1", "by", "a1", "msgtype", "text", "session", "7",
         "payload", "{\"content\":\"hi there\"}", "ts_ms", t[2], NULL);
    xadd(NULL, NULL, "type", "msg_out", "id", "sys_1", "openid", "o1",
         "agent", "", "by", "wxkf", "msgtype", "image", "session", "7",
         "payload", "{\"media_id\":\"MOUT\"}", "ts_ms", t[2], NULL);
    xadd(NULL, NULL, "type", "delivery", "id", "m_1", "openid", "o1",
         "agent", "a1", "status", "sent", "errcode", "0", "errmsg", "ok",
         "ts_ms", t[3], NULL);
    xadd(NULL, NULL, "type", "transfer", "openid", "o1", "session", "7",
         "agent", "a2", "group", "_all", "reason", "transfer", "why",
         "{\"chosen\":\"a2\"}", "ts_ms", t[4], NULL);
    xadd(NULL, NULL, "type", "presence", "agent", "a1", "status", "online",
         "prev", "offline", "reason", "api", "ts_ms", t[4], NULL);
    xadd(NULL, NULL, "type", "media_stored", "openid", "o1", "media_id",
         "MID1", "path", "2024/01/MID1.jpg", "content_type", "image/jpeg",
         "size", "1234", "ts_ms", t[5], "msg", img, "agent", "a1", NULL);
    xadd(NULL, NULL, "type", "first_reply_late", "openid", "o1", "session",
         "7", "agent", "a2", "reason", "no_other_agent", "ts_ms", t[5],
         NULL);
    xadd(NULL, NULL, "type", "close", "openid", "o1", "session", "7",
         "agent", "a2", "group", "_all", "reason", "agent", "by", "a2",
         "ts_ms", t[6], NULL);
    xadd(NULL, NULL, "type", "queue", "openid", "o2", "session", "8",
         "group", "g1", "reason", "all_busy", "position", "1", "ts_ms",
         t[7], NULL);
    archive_new(&a);
    memset(&st, 0, sizeof(st));
    run_until_drained(&a, &st);
    assert_int_equal(st.written, 12);
    assert_int_equal(st.rejected, 0);

    expect("SELECT count(*) FROM messages", "4");
    expect("SELECT content || '|' || msgid || '|' || agent || '|' ||"
           " session_id || '|' || msgtype || '|' || (payload->>'MsgId')"
           " FROM messages WHERE direction = 'i' AND msgtype = 'text'",
           "hello|123|a1|7|text|123");
    snprintf(q, sizeof(q), "SELECT (extract(epoch FROM created_at) * 1000)"
             "::bigint FROM messages WHERE msgid = '123'");
    expect(q, t[0]);
    snprintf(q, sizeof(q), "SELECT media_id || '|' || (content IS NULL)"
             " FROM messages WHERE event_id = '%s'", img);
    expect(q, "MID1|true");
    expect("SELECT status || '|' || errcode || '|' || agent || '|' ||"
           " (payload->>'by') || '|' || content FROM messages"
           " WHERE msgid = 'm_1' AND direction = 'o'",
           "sent|0|a1|a1|hi there");
    expect("SELECT status || '|' || (agent IS NULL) || '|' || media_id ||"
           " '|' || (payload->>'by') || '|' || msgtype FROM messages"
           " WHERE msgid = 'sys_1'", "sending|true|MOUT|wxkf|image");
    expect("SELECT agent || '|' || grp || '|' || close_reason || '|' ||"
           " (why->>'chosen') || '|' || (closed_at IS NOT NULL) || '|' ||"
           " (opened_at = assigned_at) FROM sessions WHERE id = 7",
           "a2|_all|agent|a2|true|true");
    expect("SELECT grp || '|' || (agent IS NULL) || '|' ||"
           " (assigned_at IS NULL) || '|' || openid FROM sessions"
           " WHERE id = 8", "g1|true|true|o2");
    expect("SELECT kind || '|' || to_agent || '|' || session_id"
           " FROM transfers", "transfer|a2|7");
    expect("SELECT agent || '|' || status || '|' || prev || '|' || reason"
           " FROM presence_changes", "a1|online|offline|api");
    snprintf(q, sizeof(q), "SELECT status || '|' || path || '|' || size ||"
             " '|' || (message_event = '%s') FROM media_files", img);
    expect(q, "stored|2024/01/MID1.jpg|1234|true");
    expect("SELECT type || '|' || (fields->>'reason') FROM other_events",
           "first_reply_late|no_other_agent");
    assert_int_equal(group_pending(ARCHIVE_GROUP), 0);
    archive_release(&a);
}

static void test_redelivered_entries_are_written_once(void **state)
{
    struct archive a;
    struct archive_stats st;
    char t[24];
    int i;

    (void)state;
    snprintf(t, sizeof(t), "%lld", (long long)now_ms());
    for (i = 0; i < 20; i++) {
        char sess[8];

        snprintf(sess, sizeof(sess), "%d", 100 + i % 4);
        xadd(NULL, NULL, "type", "msg_in", "openid", "o9", "msgtype",
             "text", "recv_ms", t, "payload", "{\"Content\":\"again\"}",
             "session", sess, NULL);
        xadd(NULL, NULL, "type", "assign", "openid", "o9", "session", sess,
             "agent", "a1", "group", "_all", "why", "{}", "ts_ms", t, NULL);
    }
    archive_new(&a);
    a.keep_ms = 600000;                 /* keep them to deliver again */
    memset(&st, 0, sizeof(st));
    run_until_drained(&a, &st);
    expect("SELECT count(*) FROM messages", "20");
    /* Every entry again, as after a crash between COMMIT and XACK. */
    assert_int_equal(rint_cmd("XGROUP SETID %s %s 0", STREAM,
                              ARCHIVE_GROUP), -1);
    memset(&st, 0, sizeof(st));
    run_until_drained(&a, &st);
    assert_int_equal(st.written, 40);
    expect("SELECT count(*) || '/' || count(DISTINCT event_id)"
           " FROM messages", "20/20");
    expect("SELECT count(*) FROM sessions", "4");
    archive_release(&a);
}

static void test_hostile_text_is_stored_byte_for_byte(void **state)
{
    static const char *const texts[] = {
        "it's \"quoted\"'; DROP TABLE messages; --",
        "tab\there\nnew line\r\\N \\. back\\slash \\\\ end\\",
        "emoji \xf0\x9f\x98\x80\xf0\x9f\x8f\xb3\xef\xb8\x8f\xe2\x80\x8d"
        "\xf0\x9f\x8c\x88 \xe4\xb8\xad\xe6\x96\x87",
        "\x01\x02\x1b[31m\x7f binary-looking \xc2\x80\xef\xbf\xbf\xf4\x8f"
        "\xbf\xbf",
    };
    struct archive a;
    struct archive_stats st;
    char t[24], bad_id[48], q[256];
    char *big = malloc(20 * 1024 + 1);
    size_t i;

    (void)state;
    assert_non_null(big);
    for (i = 0; i < 20 * 1024; i++)
        big[i] = "ab'\"\\;\t\n%_"[i % 11];
    big[20 * 1024] = '\0';
    snprintf(t, sizeof(t), "%lld", (long long)now_ms());
    for (i = 0; i < 5; i++) {
        const char *s = i < 4 ? texts[i] : big;
        json_t *o = json_pack("{s:s}", "Content", s);
        char *payload = json_dumps(o, JSON_COMPACT);
        char msgid[8];

        snprintf(msgid, sizeof(msgid), "h%zu", i);
        xadd(NULL, NULL, "type", "msg_in", "openid", "o1", "msgtype", "text",
             "msgid", msgid, "recv_ms", t, "payload", payload, NULL);
        free(payload);
        json_decref(o);
    }
    /* One entry PostgreSQL cannot take (its payload is not JSON) and one
     * that is not UTF-8: set aside, the rest of the batch written. */
    xadd(bad_id, NULL, "type", "msg_in", "openid", "o1", "msgtype", "text",
         "recv_ms", t, "payload", "{not json", NULL);
    xadd(NULL, NULL, "type", "msg_in", "openid", "o\xff\xfe", "msgtype",
         "text", "recv_ms", t, "payload", "{}", NULL);
    archive_new(&a);
    memset(&st, 0, sizeof(st));
    run_until_drained(&a, &st);
    assert_int_equal(st.rejected, 2);
    for (i = 0; i < 5; i++) {
        PGresult *r;
        const char *s = i < 4 ? texts[i] : big;

        snprintf(q, sizeof(q), "SELECT content, length(content) FROM messages"
                 " WHERE msgid = 'h%zu'", i);
        r = PQexec(F.db, q);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_int_equal(PQntuples(r), 1);
        assert_int_equal((size_t)PQgetlength(r, 0, 0), strlen(s));
        assert_memory_equal(PQgetvalue(r, 0, 0), s, strlen(s));
        PQclear(r);
    }
    expect("SELECT count(*) FROM archive_rejects", "2");
    snprintf(q, sizeof(q), "SELECT position(convert_to('9:{not json,',"
             " 'UTF8') in raw) > 0 FROM archive_rejects WHERE event_id ="
             " '%s'", bad_id);
    expect(q, "t");
    assert_int_equal(group_pending(ARCHIVE_GROUP), 0);
    expect("SELECT count(*) FROM messages", "5");
    free(big);
    archive_release(&a);
}

/* Batches follow each other without waiting (the next one is read while
 * the previous one is written): a refused entry in one of them is set
 * aside, and every other entry of every batch is written once. */
static void test_small_batches_with_refused_entries_write_all_others(void **s)
{
    struct archive a;
    struct archive_stats st;
    char t[24], mid[16];
    int i;

    (void)s;
    snprintf(t, sizeof(t), "%lld", (long long)now_ms());
    for (i = 0; i < 25; i++) {
        snprintf(mid, sizeof(mid), "b%d", i);
        xadd(NULL, NULL, "type", "msg_in", "openid", i == 17 ? "o\xc3" : "o8",
             "msgtype", "text", "msgid", mid, "recv_ms", t, "payload",
             i == 10 ? "[unclosed" : "{\"Content\":\"ok\"}", NULL);
    }
    archive_new(&a);
    a.batch = 4;
    memset(&st, 0, sizeof(st));
    run_until_drained(&a, &st);
    assert_int_equal(st.written, 23);
    assert_int_equal(st.rejected, 2);
    expect("SELECT count(*) || '/' || count(DISTINCT msgid) FROM messages",
           "23/23");
    expect("SELECT count(*) FROM archive_rejects", "2");
    assert_int_equal(group_pending(ARCHIVE_GROUP), 0);
    archive_release(&a);
}

static void test_trim_never_passes_another_groups_pending_entry(void **state)
{
    struct archive a;
    struct archive_stats st;
    char ids[10][48], t[24];
    redisReply *r;
    int i;

    (void)state;
    snprintf(t, sizeof(t), "%lld", (long long)now_ms());
    for (i = 0; i < 10; i++)
        xadd(ids[i], NULL, "type", "presence", "agent", "a1", "status",
             "online", "ts_ms", t, NULL);
    /* "media" has read the first 4 and acknowledged only the first 2. */
    assert_int_equal(rint_cmd("XGROUP CREATE %s media 0", STREAM), -1);
    r = redisCommand(F.rc, "XREADGROUP GROUP media m1 COUNT 4 STREAMS %s >",
                     STREAM);
    assert_non_null(r);
    freeReplyObject(r);
    assert_int_equal(rint_cmd("XACK %s media %s %s", STREAM, ids[0], ids[1]),
                     2);
    archive_new(&a);
    memset(&st, 0, sizeof(st));
    run_until_drained(&a, &st);
    assert_int_equal(st.written, 10);
    assert_int_equal(st.trimmed, 2);
    r = redisCommand(F.rc, "XRANGE %s - + COUNT 1", STREAM);
    assert_non_null(r);
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->element[0]->str, ids[2]);
    freeReplyObject(r);
    /* media acknowledges everything: all it has read goes. */
    assert_int_equal(rint_cmd("XACK %s media %s %s", STREAM, ids[2], ids[3]),
                     2);
    a.next_tidy_ms = 0;
    assert_int_equal(archive_pass(&a, &st), 0);
    assert_int_equal(rint_cmd("XLEN %s", STREAM), 6);
    /* The archiver itself never lets go of what it has not written. */
    assert_int_equal(rint_cmd("XGROUP DESTROY %s media", STREAM), 1);
    xadd(NULL, NULL, "type", "presence", "agent", "a2", "status", "paused",
         "ts_ms", t, NULL);
    a.next_tidy_ms = 0;
    memset(&st, 0, sizeof(st));
    run_until_drained(&a, &st);
    assert_int_equal(rint_cmd("XLEN %s", STREAM), 0);
    expect("SELECT count(*) FROM presence_changes", "11");
    archive_release(&a);
}

/* A group that stopped (a fetcher turned off, a consumer of your own)
 * holds the trimming back for group_hold_ms at most: entries older are
 * trimmed although it never read them. */
static void test_another_group_holds_trimming_for_group_hold_ms_at_most(
    void **state)
{
    struct archive a;
    struct archive_stats st;
    char t[24];

    (void)state;
    snprintf(t, sizeof(t), "%lld", (long long)now_ms());
    xadd(NULL, "1000-1", "type", "presence", "agent", "a1", "status",
         "online", "ts_ms", "1000", NULL);
    xadd(NULL, "2000-1", "type", "presence", "agent", "a1", "status",
         "paused", "ts_ms", "2000", NULL);
    assert_int_equal(rint_cmd("XGROUP CREATE %s media 0", STREAM), -1);
    xadd(NULL, NULL, "type", "presence", "agent", "a1", "status", "online",
         "ts_ms", t, NULL);
    archive_new(&a);
    assert_int_equal(a.hold_ms, 3600000);
    memset(&st, 0, sizeof(st));
    run_until_drained(&a, &st);
    assert_int_equal(st.written, 3);
    /* the two old ones went; "media" still holds the recent one */
    assert_int_equal(st.trimmed, 2);
    assert_int_equal(rint_cmd("XLEN %s", STREAM), 1);
    assert_int_equal(st.lag.groups_behind, 1);
    archive_release(&a);
}

static void test_keep_ms_keeps_recent_archived_entries(void **state)
{
    struct archive a;
    struct archive_stats st;

    (void)state;
    xadd(NULL, "1000-1", "type", "presence", "agent", "a1", "status",
         "online", NULL);
    xadd(NULL, NULL, "type", "presence", "agent", "a1", "status",
         "paused", NULL);
    archive_new(&a);
    a.keep_ms = 60000;
    memset(&st, 0, sizeof(st));
    run_until_drained(&a, &st);
    assert_int_equal(st.written, 2);
    assert_int_equal(rint_cmd("XLEN %s", STREAM), 1);   /* the recent one */
    archive_release(&a);
}

static void test_a_dead_consumers_entries_are_claimed_once(void **state)
{
    struct archive a;
    struct archive_stats st;
    char t[24];
    redisReply *r;
    int i;

    (void)state;
    snprintf(t, sizeof(t), "%lld", (long long)now_ms());
    for (i = 0; i < 30; i++)
        xadd(NULL, NULL, "type", "msg_in", "openid", "o3", "msgtype", "text",
             "recv_ms", t, "payload", "{\"Content\":\"claim me\"}", NULL);
    assert_int_equal(rint_cmd("XGROUP CREATE %s %s 0", STREAM,
                              ARCHIVE_GROUP), -1);
    /* A consumer that read 12 entries and died. */
    r = redisCommand(F.rc, "XREADGROUP GROUP %s deadhost:1 COUNT 12 STREAMS"
                     " %s >", ARCHIVE_GROUP, STREAM);
    assert_non_null(r);
    freeReplyObject(r);
    archive_new(&a);
    a.claim_idle_ms = 200;
    memset(&st, 0, sizeof(st));
    assert_int_equal(archive_pass(&a, &st), 0);
    assert_int_equal(st.written, 18);           /* not idle long enough */
    assert_int_equal(group_pending(ARCHIVE_GROUP), 12);
    tu_sleep_ms(300);
    a.next_claim_ms = 0;
    memset(&st, 0, sizeof(st));
    run_until_drained(&a, &st);
    assert_int_equal(st.claimed, 12);
    assert_int_equal(group_pending(ARCHIVE_GROUP), 0);
    expect("SELECT count(*) || '/' || count(DISTINCT event_id)"
           " FROM messages", "30/30");
    archive_release(&a);
}

static void test_nothing_is_acknowledged_while_postgres_is_down(void **st_)
{
    struct archive a;
    struct archive_stats st;
    struct config cfg;
    char t[24];
    int i;

    (void)st_;
    snprintf(t, sizeof(t), "%lld", (long long)now_ms());
    for (i = 0; i < 5; i++)
        xadd(NULL, NULL, "type", "msg_in", "openid", "o4", "msgtype", "text",
             "recv_ms", t, "payload", "{}", NULL);
    cfg = F.cfg;
    cfg.postgres.dsn = "host=127.0.0.1 port=1 dbname=x connect_timeout=2";
    archive_init(&a, &F.store, &cfg);
    memset(&st, 0, sizeof(st));
    assert_int_equal(archive_pass(&a, &st), KF_EBACKEND);
    assert_int_equal(st.written, 0);
    assert_int_equal(st.errors, 1);
    assert_true(st.lag_known);
    assert_int_equal(st.lag.undelivered, 5);    /* the stream keeps them */
    assert_true(st.lag.oldest_ms > 0);
    /* Backing off: the next pass does not even try. */
    assert_int_equal(archive_pass(&a, &st), KF_EBACKEND);
    assert_int_equal(rint_cmd("XLEN %s", STREAM), 5);
    a.dsn = F.pg.dsn;
    a.db_next_try_ms = 0;
    memset(&st, 0, sizeof(st));
    run_until_drained(&a, &st);
    assert_int_equal(st.written, 5);
    expect("SELECT count(*) FROM messages", "5");
    archive_release(&a);
}

static void test_a_batch_cut_by_a_lost_connection_is_retried(void **state)
{
    struct archive a;
    struct archive_stats st;
    char t[24], q[160];
    int i;

    (void)state;
    snprintf(t, sizeof(t), "%lld", (long long)now_ms());
    for (i = 0; i < 8; i++)
        xadd(NULL, NULL, "type", "msg_in", "openid", "o5", "msgtype", "text",
             "recv_ms", t, "payload", "{}", NULL);
    archive_new(&a);
    memset(&st, 0, sizeof(st));
    run_until_drained(&a, &st);
    for (i = 0; i < 8; i++)
        xadd(NULL, NULL, "type", "msg_in", "openid", "o5", "msgtype", "text",
             "recv_ms", t, "payload", "{}", NULL);
    /* The server ends our session: the next batch fails, stays pending
     * (ours), and is written by a later pass on a new connection. */
    snprintf(q, sizeof(q), "SELECT pg_terminate_backend(pid) FROM"
             " pg_stat_activity WHERE application_name = 'wxkf-archiver'");
    sql(q);
    memset(&st, 0, sizeof(st));
    assert_int_equal(archive_pass(&a, &st), KF_EBACKEND);
    assert_int_equal(group_pending(ARCHIVE_GROUP), 8);
    a.db_next_try_ms = 0;
    run_until_drained(&a, &st);
    assert_int_equal(a.connects, 2);
    expect("SELECT count(*) FROM messages", "16");
    archive_release(&a);
}

/* Two archivers may write a session's events, or a message and its
 * delivery, in either order: the rows come out the same. */
static void test_order_of_arrival_does_not_matter(void **state)
{
    struct archive a;
    struct archive_stats st;
    char t[4][24];
    redisReply *r;
    int i;

    (void)state;
    for (i = 0; i < 4; i++)
        snprintf(t[i], sizeof(t[i]), "%lld", (long long)(now_ms() + i));
    xadd(NULL, NULL, "type", "assign", "openid", "o6", "session", "60",
         "agent", "a1", "group", "g", "why", "{\"n\":1}", "ts_ms", t[0],
         NULL);
    xadd(NULL, NULL, "type", "msg_out", "id", "m_60", "openid", "o6",
         "agent", "a1", "by", "a1", "msgtype", "text", "session", "60",
         "ts_ms", t[1], NULL);
    xadd(NULL, NULL, "type", "reassign", "openid", "o6", "session", "60",
         "agent", "a2", "group", "g", "why", "{\"n\":2}", "ts_ms", t[2],
         NULL);
    xadd(NULL, NULL, "type", "delivery", "id", "m_60", "openid", "o6",
         "agent", "a1", "status", "failed", "errcode", "45015", "ts_ms",
         t[2], NULL);
    xadd(NULL, NULL, "type", "close", "openid", "o6", "session", "60",
         "agent", "a2", "group", "g", "reason", "agent", "ts_ms", t[3],
         NULL);
    assert_int_equal(rint_cmd("XGROUP CREATE %s %s 0", STREAM,
                              ARCHIVE_GROUP), -1);
    /* Another archiver holds the first two (assign, msg_out). */
    r = redisCommand(F.rc, "XREADGROUP GROUP %s other:1 COUNT 2 STREAMS"
                     " %s >", ARCHIVE_GROUP, STREAM);
    assert_non_null(r);
    freeReplyObject(r);
    archive_new(&a);
    a.claim_idle_ms = 100;
    /* no claiming in this first pass, however long it takes (a loaded
     * machine took over 100 ms and claimed the other's two as well) */
    a.next_claim_ms = INT64_MAX;
    memset(&st, 0, sizeof(st));
    assert_int_equal(archive_pass(&a, &st), 0);
    assert_int_equal(st.written, 3);
    expect("SELECT agent || '|' || close_reason FROM sessions", "a2|agent");
    tu_sleep_ms(150);
    a.next_claim_ms = 0;
    run_until_drained(&a, &st);
    expect("SELECT agent || '|' || grp || '|' || (why->>'n') || '|' ||"
           " close_reason || '|' || (opened_at = assigned_at) || '|' ||"
           " (closed_at > opened_at) FROM sessions WHERE id = 60",
           "a2|g|2|agent|true|true");
    expect("SELECT status || '|' || errcode FROM messages"
           " WHERE msgid = 'm_60'", "failed|45015");
    archive_release(&a);
}

static void test_messages_go_to_the_partition_of_their_month(void **state)
{
    struct archive a;
    struct archive_stats st;

    (void)state;
    /* 2024-02-10T00:00:00Z */
    xadd(NULL, NULL, "type", "msg_in", "openid", "o7", "msgtype", "text",
         "recv_ms", "1707523200000", "payload", "{}", NULL);
    /* 1990: before any partition we make: the default one */
    xadd(NULL, NULL, "type", "msg_in", "openid", "o7", "msgtype", "text",
         "recv_ms", "631152000000", "payload", "{}", NULL);
    archive_new(&a);
    memset(&st, 0, sizeof(st));
    run_until_drained(&a, &st);
    expect("SELECT tableoid::regclass::text FROM messages"
           " WHERE created_at < '2000-01-01'", "messages_default");
    expect("SELECT tableoid::regclass::text FROM messages"
           " WHERE created_at > '2000-01-01'", "messages_2024_02");
    archive_release(&a);
}

static void test_lag_counts_what_is_not_archived(void **state)
{
    struct archive a;
    struct archive_lag lag;
    struct archive_stats st;
    int i;

    (void)state;
    archive_new(&a);
    assert_int_equal(archive_lag(&a, &lag), 0);
    assert_int_equal(lag.undelivered, 0);
    assert_int_equal(lag.oldest_ms, 0);
    for (i = 0; i < 7; i++)
        xadd(NULL, NULL, "type", "presence", "agent", "a1", "status",
             "online", NULL);
    assert_int_equal(archive_lag(&a, &lag), 0);
    assert_int_equal(lag.pending + lag.undelivered, 7);
    assert_true(lag.oldest_ms > 0);
    memset(&st, 0, sizeof(st));
    run_until_drained(&a, &st);
    assert_int_equal(archive_lag(&a, &lag), 0);
    assert_int_equal(lag.pending, 0);
    assert_int_equal(lag.undelivered, 0);
    assert_int_equal(lag.age_ms, 0);
    archive_release(&a);
}

/* Redis restarted without its data (or a fail-over to a server without
 * the group): once the shared connection is a new one — here made by the
 * lag's script first, as any module's command may — the next pass
 * creates the group again and archives at once, no pass lost on NOGROUP. */
static void test_a_new_redis_connection_makes_the_group_again(void **state)
{
    struct archive a;
    struct archive_stats st;
    struct archive_lag lag;

    (void)state;
    xadd(NULL, NULL, "type", "presence", "agent", "a1", "status", "online",
         NULL);
    archive_new(&a);
    memset(&st, 0, sizeof(st));
    run_until_drained(&a, &st);
    assert_int_equal(st.written, 1);
    assert_true(rint_cmd("CLIENT KILL TYPE normal SKIPME yes") >= 1);
    rint_cmd("FLUSHALL");
    xadd(NULL, NULL, "type", "presence", "agent", "a2", "status", "away",
         NULL);
    assert_int_equal(archive_lag(&a, &lag), 0);
    assert_int_equal(lag.undelivered, 1);
    assert_int_equal(archive_pass(&a, &st), 0);
    assert_int_equal(st.written, 2);
    assert_int_equal(st.errors, 0);
    assert_int_equal(group_pending(ARCHIVE_GROUP), 0);
    expect("SELECT string_agg(agent, ',' ORDER BY agent) FROM"
           " presence_changes", "a1,a2");
    archive_release(&a);
}

/* lib/lua/README.md's convention: archive_tidy.lua checks its op
 * (ARGV[1]) and refuses any other, touching nothing; it stands alone,
 * without the routing prelude. */
static void test_the_tidy_script_refuses_an_unknown_op(void **state)
{
    const char *keys[] = { "events" };
    const char *args[] = { "no_such_op", ARCHIVE_GROUP, "0", "me", "1",
                           "0" };
    struct store_script sc;
    struct store_reply *r = NULL;

    (void)state;
    xadd(NULL, NULL, "type", "presence", "agent", "a1", "status", "online",
         NULL);
    store_script_init(&sc, lua_archive_tidy);
    assert_int_equal(store_run(&F.store, &sc, 1, keys, 6, args, NULL, &r),
                     KF_EBACKEND);
    assert_null(r);
    assert_non_null(strstr(store_error(&F.store), "unknown op"));
    assert_int_equal(rint_cmd("XLEN %s", STREAM), 1);
    assert_null(strstr(lua_archive_tidy, "local function parse_cfg("));
}

static void test_a_disabled_archiver_reads_nothing(void **state)
{
    struct archive a;
    struct archive_stats st;

    (void)state;
    xadd(NULL, NULL, "type", "presence", "agent", "a1", "status", "online",
         NULL);
    archive_new(&a);
    a.enabled = 0;
    memset(&st, 0, sizeof(st));
    assert_int_equal(archive_pass(&a, &st), 0);
    assert_int_equal(st.written, 0);
    assert_int_equal(a.connects, 0);
    archive_release(&a);
    archive_release(&a);                        /* safe twice */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup(f, setup)
        T(test_each_event_type_lands_in_its_table),
        T(test_redelivered_entries_are_written_once),
        T(test_hostile_text_is_stored_byte_for_byte),
        T(test_small_batches_with_refused_entries_write_all_others),
        T(test_trim_never_passes_another_groups_pending_entry),
        T(test_another_group_holds_trimming_for_group_hold_ms_at_most),
        T(test_keep_ms_keeps_recent_archived_entries),
        T(test_a_dead_consumers_entries_are_claimed_once),
        T(test_nothing_is_acknowledged_while_postgres_is_down),
        T(test_a_batch_cut_by_a_lost_connection_is_retried),
        T(test_order_of_arrival_does_not_matter),
        T(test_messages_go_to_the_partition_of_their_month),
        T(test_lag_counts_what_is_not_archived),
        T(test_a_new_redis_connection_makes_the_group_again),
        T(test_the_tidy_script_refuses_an_unknown_op),
        T(test_a_disabled_archiver_reads_nothing),
#undef T
    };

    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
