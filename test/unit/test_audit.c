/* Tests of lib/audit: the checks of every field of the record, the
 * PostgreSQL path (the row in the same transaction as the change: both
 * or neither), and the Redis path (an armed store_run appends the record,
 * lib/lua/audit.lua XADDs a type=audit entry in the same script run, only
 * that run is armed, and the archiver copies the entry into audit_log
 * exactly once, a replayed batch included), against a private
 * redis-server and a private PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "archive.h"
#include "audit.h"
#include "config.h"
#include "pg.h"
#include "staff.h"
#include "staff_session.h"
#include "store.h"
#include "testutil.h"
#include "tu_pg.h"

#define APPID "wx6a0d1c2b3e4f5a61"
#define STREAM "wxkf:{" APPID "}:events"
#define NOW 1767225600000LL          /* 2026-01-01T00:00:00Z */

static struct tu_redis R;

struct fx {
    struct config cfg;
    struct store st;
    redisContext *rc;
};

static int suite_setup(void **st)
{
    tu_redis_start(&R);
    return tu_pg_group_setup(st);
}

static int suite_teardown(void **st)
{
    tu_redis_stop(&R);
    return tu_pg_group_teardown(st);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char url[64];

    assert_non_null(f);
    config_init(&f->cfg);
    free(f->cfg.postgres.dsn);
    f->cfg.postgres.dsn = strdup(tu_pg.dsn);
    assert_non_null(f->cfg.postgres.dsn);
    f->cfg.archiver.keep_ms = 600000;   /* kept: to be delivered again */
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", R.port);
    assert_int_equal(store_init(&f->st, url, APPID, 500, 2000), 0);
    f->rc = redisConnect("127.0.0.1", R.port);
    assert_non_null(f->rc);
    tu_redis_do(f->rc, "FLUSHALL");
    tu_pg_exec_ok(tu_pg.db, "TRUNCATE audit_log, staff_users, other_events");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    redisFree(f->rc);
    store_release(&f->st);
    config_release(&f->cfg);
    free(f);
    return 0;
}

/* The first value of sql's first row ("" none); caller frees. */
static char *q1(const char *sql)
{
    PGresult *r = PQexec(tu_pg.db, sql);
    char *v;

    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    v = strdup(PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    assert_non_null(v);
    return v;
}

static void expect(const char *sql, const char *want)
{
    char *got = q1(sql);

    if (strcmp(got, want) != 0) {
        fprintf(stderr, "query: %s\n got: %s\nwant: %s\n", sql, got, want);
        free(got);
        fail();
    }
    free(got);
}

static void record(struct audit *a, const char *action, const char *target)
{
    assert_int_equal(audit_init(a, APPID, "lead", "supervisor",
                                "192.0.2.7", "0f1e2d3c4b5a"), 0);
    assert_int_equal(audit_set(a, action, target, "{\"n\":1}"), 0);
}

/* --- the record ----------------------------------------------------------- */

static void test_every_field_is_bounded_and_checked(void **state)
{
    char big[AUDIT_DETAIL_MAX + 64], t[AUDIT_TARGET_MAX + 2];
    struct audit a;

    (void)state;
    assert_int_equal(audit_init(&a, APPID, "lead", "supervisor",
                                "2001:db8::1", "abc-_9"), 0);
    assert_int_equal(audit_init(&a, APPID, "7f@corp", "agent", NULL, NULL),
                     0);
    assert_int_equal(audit_init(&a, APPID, "admin", "admin", "", ""), 0);
    assert_string_equal(a.detail, "{}");
    /* the account, the actor, the role, the address, the request id */
    assert_int_equal(audit_init(&a, "", "x", "admin", "", ""), KF_EINVAL);
    assert_int_equal(audit_init(&a, "wx{x}", "x", "admin", "", ""),
                     KF_EINVAL);
    assert_int_equal(audit_init(&a, APPID, "", "admin", "", ""), KF_EINVAL);
    assert_int_equal(audit_init(&a, APPID, "a\nb", "admin", "", ""),
                     KF_EINVAL);
    memset(t, 'x', 65);
    t[65] = '\0';
    assert_int_equal(audit_init(&a, APPID, t, "admin", "", ""), KF_EINVAL);
    assert_int_equal(audit_init(&a, APPID, "x", "root", "", ""), KF_EINVAL);
    assert_int_equal(audit_init(&a, APPID, "x", "admin", "1.2.3.4; DROP",
                                ""), KF_EINVAL);
    assert_int_equal(audit_init(&a, APPID, "x", "admin", "", "a b"),
                     KF_EINVAL);
    assert_string_equal(a.app_id, "");           /* zeroed on failure */
    /* the action: <object>.<verb> */
    assert_int_equal(audit_init(&a, APPID, "x", "admin", "", ""), 0);
    assert_int_equal(audit_set(&a, "label.create", "7", NULL), 0);
    assert_int_equal(audit_set(&a, "staff.password_reset", NULL, NULL), 0);
    assert_int_equal(audit_set(&a, "Label.create", "7", NULL), KF_EINVAL);
    assert_string_equal(a.action, "");
    assert_int_equal(audit_set(&a, "label", "7", NULL), KF_EINVAL);
    assert_int_equal(audit_set(&a, "label.", "7", NULL), KF_EINVAL);
    assert_int_equal(audit_set(&a, ".create", "7", NULL), KF_EINVAL);
    assert_int_equal(audit_set(&a, "a.b.c", "7", NULL), KF_EINVAL);
    assert_int_equal(audit_set(&a, "label._x", "7", NULL), KF_EINVAL);
    assert_int_equal(audit_check(&a), KF_EINVAL);    /* no action */
    /* the target: bounded text */
    assert_int_equal(audit_set(&a, "label.create", "\xe6\xa0\x87", NULL), 0);
    assert_int_equal(audit_set(&a, "label.create", "a\x01", NULL),
                     KF_EINVAL);
    assert_int_equal(audit_set(&a, "label.create", "\xff", NULL), KF_EINVAL);
    memset(t, 'x', sizeof(t) - 1);
    t[sizeof(t) - 1] = '\0';
    assert_int_equal(audit_set(&a, "label.create", t, NULL), KF_EINVAL);
    t[sizeof(t) - 2] = '\0';
    assert_int_equal(audit_set(&a, "label.create", t, NULL), 0);
    assert_int_equal(audit_set_target(&a, "a\tb"), KF_EINVAL);
    assert_string_equal(a.target, t);            /* unchanged */
    /* the detail: a JSON object, bounded */
    assert_int_equal(audit_set(&a, "label.create", "7", "[1]"), KF_EINVAL);
    assert_int_equal(audit_set(&a, "label.create", "7", "{\"a\":"),
                     KF_EINVAL);
    assert_int_equal(audit_set(&a, "label.create", "7",
                               "{\"a\":1,\"a\":2}"), KF_EINVAL);
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(audit_set(&a, "label.create", "7", big), KF_EINVAL);
    assert_int_equal(audit_set(&a, "label.create", "7", "{\"a\":[1]}"), 0);
    assert_int_equal(audit_check(&a), 0);
}

/* --- PostgreSQL ----------------------------------------------------------- */

static void test_pg_row_commits_with_the_change_or_not_at_all(void **state)
{
    struct fx *f = *state;
    struct pg_conn *db = NULL;
    struct audit a;

    assert_int_equal(pg_open(f->cfg.postgres.dsn, "test", PG_USE_CLI, &db,
                             NULL), 0);
    record(&a, "staff.add", "kim");
    assert_int_equal(audit_pg_begin(db, NULL), 0);
    assert_int_equal(audit_pg_end(db, &a, pg_exec(db,
        "INSERT INTO staff_users (app_id, login, display_name, role,"
        " password_hash)"
        " VALUES ('" APPID "', 'kim', 'Kim', 'admin', '$argon2id$x')",
        0, NULL, 0, NULL, NULL), NULL), 0);
    assert_int_equal(pg_in_transaction(db), 0);
    expect("SELECT app_id || '|' || actor || '|' || role || '|' || action"
           " || '|' || target || '|' || ip || '|' || request_id || '|' ||"
           " detail::text || '|' || (event_id IS NULL) FROM audit_log",
           APPID "|lead|supervisor|staff.add|kim|192.0.2.7|0f1e2d3c4b5a|"
           "{\"n\": 1}|true");
    /* a failed change: rolled back, and no row */
    record(&a, "staff.disable", "kim");
    assert_int_equal(audit_pg_begin(db, NULL), 0);
    assert_int_equal(pg_exec(db, "UPDATE staff_users SET disabled = true",
                             0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(audit_pg_end(db, &a, KF_ENOTFOUND, NULL),
                     KF_ENOTFOUND);
    assert_int_equal(pg_in_transaction(db), 0);
    expect("SELECT count(*) FROM audit_log", "1");
    expect("SELECT disabled FROM staff_users", "f");
    /* a record that is not valid: the change is rolled back too */
    a.action[0] = '\0';
    assert_int_equal(audit_pg_begin(db, NULL), 0);
    assert_int_equal(pg_exec(db, "UPDATE staff_users SET disabled = true",
                             0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(audit_pg_end(db, &a, 0, NULL), KF_EINVAL);
    expect("SELECT disabled FROM staff_users", "f");
    expect("SELECT count(*) FROM audit_log", "1");
    pg_close(db);
}

/* --- Redis ---------------------------------------------------------------- */

static void user(struct staff_user *u)
{
    memset(u, 0, sizeof(*u));
    snprintf(u->login, sizeof(u->login), "kim");
    snprintf(u->name, sizeof(u->name), "Kim");
    snprintf(u->role, sizeof(u->role), "supervisor");
}

static void sign_in(struct fx *f, struct audit *a)
{
    char sid[STAFF_SID_SIZE], csrf[STAFF_SID_SIZE];
    struct staff_user u;

    user(&u);
    if (a)
        assert_int_equal(audit_redis_arm(&f->st, a), 0);
    assert_int_equal(staff_session_new(&f->st, &u, NOW, 60000, 600000, sid,
                                       csrf), 0);
    audit_redis_disarm(&f->st);
}

static void archive_all(struct fx *f)
{
    struct archive a;
    struct archive_stats st;
    int i;

    archive_init(&a, &f->st, &f->cfg);
    for (i = 0; i < 20; i++) {
        memset(&st, 0, sizeof(st));
        assert_int_equal(archive_pass(&a, &st), 0);
        if (!st.more && st.lag_known && st.lag.pending == 0 &&
            st.lag.undelivered == 0)
            break;
    }
    assert_true(i < 20);
    archive_release(&a);
}

static void test_an_armed_script_run_emits_one_audit_entry(void **state)
{
    struct fx *f = *state;
    struct audit a;
    struct staff_user u;
    char sid[STAFF_SID_SIZE], csrf[STAFF_SID_SIZE];
    long n = 0;

    record(&a, "staff.login", "kim");
    sign_in(f, &a);
    assert_int_equal(tu_redis_num(f->rc, "XLEN %s", STREAM), 1);
    /* only the armed run: the next one audits nothing */
    user(&u);
    assert_int_equal(audit_redis_arm(&f->st, &a), 0);
    assert_int_equal(staff_session_new(&f->st, &u, NOW, 60000, 600000, sid,
                                       csrf), 0);
    assert_int_equal(staff_session_new(&f->st, &u, NOW, 60000, 600000, sid,
                                       csrf), 0);
    assert_int_equal(tu_redis_num(f->rc, "XLEN %s", STREAM), 2);
    sign_in(f, NULL);                           /* not armed: no entry */
    assert_int_equal(tu_redis_num(f->rc, "XLEN %s", STREAM), 2);
    /* a disarmed store appends nothing */
    assert_int_equal(audit_redis_arm(&f->st, &a), 0);
    audit_redis_disarm(&f->st);
    assert_int_equal(staff_session_end_all(&f->st, "kim", NULL, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(tu_redis_num(f->rc, "XLEN %s", STREAM), 2);
    /* an invalid record is never armed */
    a.role[0] = '\0';
    assert_int_equal(audit_redis_arm(&f->st, &a), KF_EINVAL);
    assert_null(f->st.tail);
}

static void test_the_archiver_copies_audit_entries_exactly_once(void **s)
{
    struct fx *f = *s;
    struct audit a;
    long n = 0;

    record(&a, "staff.login", "kim");
    sign_in(f, &a);
    record(&a, "staff.logout_all", "kim");
    assert_int_equal(audit_redis_arm(&f->st, &a), 0);
    assert_int_equal(staff_session_end_all(&f->st, "kim", NULL, &n), 0);
    audit_redis_disarm(&f->st);
    archive_all(f);
    expect("SELECT string_agg(app_id || '|' || actor || '|' || role || '|'"
           " || action || '|' || target || '|' || ip || '|' || request_id"
           " || '|' || detail::text, ',' ORDER BY id) FROM audit_log",
           APPID "|lead|supervisor|staff.login|kim|192.0.2.7|0f1e2d3c4b5a|"
           "{\"n\": 1}," APPID "|lead|supervisor|staff.logout_all|kim|"
           "192.0.2.7|0f1e2d3c4b5a|{\"n\": 1}");
    expect("SELECT count(*) FROM audit_log a WHERE event_id ~ '^[0-9]+-[0-9]+$'"
           " AND abs(extract(epoch FROM now() - a.at)) < 3600", "2");
    expect("SELECT count(*) FROM other_events", "0");
    /* the same entries delivered again (a crash between COMMIT and XACK) */
    tu_redis_do(f->rc, "XGROUP SETID %s %s 0", STREAM, ARCHIVE_GROUP);
    archive_all(f);
    expect("SELECT count(*) || '/' || count(DISTINCT event_id) FROM"
           " audit_log", "2/2");
}

/* A failed password is audited, and so is the lock-out it causes (a
 * second run of the same call, re-armed by lib/staff_session). */
static void test_failed_sign_ins_and_the_lock_out_are_audited(void **state)
{
    struct fx *f = *state;
    struct audit a;
    int64_t ms = 0;
    int i;

    for (i = 0; i < 20 && ms == 0; i++) {
        assert_int_equal(audit_init(&a, APPID, "anonymous", "none",
                                    "192.0.2.9", ""), 0);
        assert_int_equal(audit_set(&a, "staff.login_failed", "kim", NULL),
                         0);
        assert_int_equal(audit_redis_arm(&f->st, &a), 0);
        assert_int_equal(staff_lock_fail(&f->st, "kim", NOW, &ms), 0);
        audit_redis_disarm(&f->st);
    }
    assert_true(ms > 0);
    archive_all(f);
    {
        char want[16];

        snprintf(want, sizeof(want), "%d", i);
        expect("SELECT count(*) FROM audit_log WHERE action ="
               " 'staff.login_failed' AND actor = 'anonymous' AND"
               " role = 'none' AND target = 'kim' AND request_id IS NULL",
               want);
    }
    expect("SELECT count(*) FROM audit_log WHERE action = 'staff.lock'"
           " AND target = 'kim' AND ip = '192.0.2.9'", "1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_every_field_is_bounded_and_checked),
        T(test_pg_row_commits_with_the_change_or_not_at_all),
        T(test_an_armed_script_run_emits_one_audit_entry),
        T(test_the_archiver_copies_audit_entries_exactly_once),
        T(test_failed_sign_ins_and_the_lock_out_are_audited),
#undef T
    };

    return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
