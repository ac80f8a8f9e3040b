/* Tests of lib/pg: reachability answers, and against a private
 * PostgreSQL (tu_pg): the classification of real SQLSTATEs, parameters
 * and COPY, timeouts, reconnects after the server restarts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <unistd.h>

#include "pg.h"
#include "testutil.h"
#include "tu_pg.h"
#include "version.h"


static void test_pg_ping_reports_a_closed_port_as_backend_down(void **st)
{
    (void)st;
    /* Port 1 on loopback: nothing listens there on a test machine. */
    assert_int_equal(pg_ping("host=127.0.0.1 port=1 connect_timeout=2"),
                     KF_EBACKEND);
}

static void test_pg_ping_reports_a_malformed_dsn_as_backend_down(void **st)
{
    (void)st;
    assert_int_equal(pg_ping("this is = not a dsn '"), KF_EBACKEND);
}

static void test_pg_server_version_says_why_it_cannot_log_in(void **st)
{
    struct version v;
    struct pg_err e;

    (void)st;
    memset(&e, 'x', sizeof(e));
    assert_int_equal(pg_server_version("host=127.0.0.1 port=1 "
                                       "connect_timeout=2", &v, &e),
                     KF_EBACKEND);
    /* libpq's reason, its first line only */
    assert_int_equal(e.rc, KF_EBACKEND);
    assert_true(strlen(e.msg) > 0 && strlen(e.msg) < sizeof(e.msg));
    assert_null(strchr(e.msg, '\n'));
    assert_non_null(strstr(e.msg, "127.0.0.1"));
    assert_int_equal(pg_server_version("this is = not a dsn '", &v, NULL),
                     KF_EBACKEND);
}


static void test_classify_maps_sqlstate_classes(void **st)
{
    (void)st;
    assert_int_equal(pg_classify("23505"), KF_EEXISTS);
    assert_int_equal(pg_classify("23514"), KF_EINVAL);
    assert_int_equal(pg_classify("22P02"), KF_EINVAL);
    assert_int_equal(pg_classify("54000"), KF_EINVAL);
    assert_int_equal(pg_classify("08006"), KF_EBACKEND);
    assert_int_equal(pg_classify("57P01"), KF_EBACKEND);
    assert_int_equal(pg_classify("57014"), KF_EBACKEND);
    assert_int_equal(pg_classify("53300"), KF_EBACKEND);
    assert_int_equal(pg_classify("42P01"), KF_EIO);
    assert_int_equal(pg_classify(NULL), KF_EBACKEND);
    assert_int_equal(pg_classify("2350"), KF_EBACKEND);
}

static struct pg_conn *open_ok(enum pg_use use)
{
    struct pg_conn *c = NULL;
    struct pg_err e;

    assert_int_equal(pg_open(tu_pg.dsn, "wxkf-test", use, &c, &e), 0);
    assert_non_null(c);
    return c;
}

/* rc and SQLSTATE of sql on c, which stays usable afterwards. */
static void expect_refusal(struct pg_conn *c, const char *sql, int rc,
                           const char *state)
{
    struct pg_res *res = (struct pg_res *)1;
    struct pg_err e;

    memset(&e, 'x', sizeof(e));
    assert_int_equal(pg_exec(c, sql, 0, NULL, 0, &res, &e), rc);
    assert_null(res);
    assert_int_equal(e.rc, rc);
    assert_string_equal(e.sqlstate, state);
    assert_true(strlen(e.msg) > 0 && strlen(e.msg) < sizeof(e.msg));
    assert_null(strchr(e.msg, '\n'));
    assert_int_equal(e.lost, 0);
    assert_int_equal(pg_connected(c), 1);
}

static void test_real_sqlstates_are_classified(void **st)
{
    struct pg_conn *c = open_ok(PG_USE_CLI);

    (void)st;
    assert_int_equal(pg_exec(c, "CREATE TEMP TABLE t (k int PRIMARY KEY "
                             "CHECK (k > 0)); INSERT INTO t VALUES (1)", 0,
                             NULL, 0, NULL, NULL), 0);
    expect_refusal(c, "INSERT INTO t VALUES (1)", KF_EEXISTS, "23505");
    expect_refusal(c, "INSERT INTO t VALUES (-1)", KF_EINVAL, "23514");
    expect_refusal(c, "SELECT 'x'::int", KF_EINVAL, "22P02");
    expect_refusal(c, "SELECT * FROM no_such_table", KF_EIO, "42P01");
    expect_refusal(c, "SET statement_timeout = 100; SELECT pg_sleep(5)",
                   KF_EBACKEND, "57014");
    /* the first failing statement of a simple query is the one reported */
    expect_refusal(c, "SELECT 1; SELECT 'y'::int; SELECT 2", KF_EINVAL,
                   "22P02");
    assert_int_equal(pg_connects(c), 1);
    pg_close(c);
}

static void test_parameters_are_data_never_sql(void **st)
{
    const char *p[2] = { "1'); DROP TABLE t; --", NULL };
    struct pg_conn *c = open_ok(PG_USE_CLI);
    struct pg_res *res = NULL;

    (void)st;
    assert_int_equal(pg_exec(c, "SELECT $1::text, $2::text, length($1)", 2,
                             p, 0, &res, NULL), 0);
    assert_int_equal(pg_res_rows(res), 1);
    assert_int_equal(pg_res_fields(res), 3);
    assert_string_equal(pg_res_value(res, 0, 0), p[0]);
    assert_int_equal(pg_res_len(res, 0, 0), strlen(p[0]));
    assert_int_equal(pg_res_isnull(res, 0, 1), 1);
    assert_string_equal(pg_res_value(res, 0, 1), "");
    assert_string_equal(pg_res_value(res, 0, 2), "21");
    pg_res_free(res);
    pg_close(c);
    /* an object already closed and set to NULL is "not connected" */
    assert_int_equal(pg_exec(NULL, "SELECT 1", 0, NULL, 0, NULL, NULL),
                     KF_EBACKEND);
    assert_int_equal(pg_collect(NULL, NULL), KF_EBACKEND);
}

static void test_copy_in_and_binary_parameters(void **st)
{
    const char raw[3] = { 'a', '\0', 'b' };
    const char *v[1] = { raw };
    const int lens[1] = { 3 }, fmts[1] = { 1 };
    struct pg_conn *c = open_ok(PG_USE_ARCHIVER);
    struct pg_res *res = NULL;
    struct pg_err e;

    (void)st;
    assert_int_equal(pg_exec(c, "CREATE TEMP TABLE c (a int, b text)", 0,
                             NULL, 0, NULL, NULL), 0);
    assert_int_equal(pg_copy_in(c, "COPY c FROM STDIN", "1\tx\n2\ty\n",
                                8, NULL), 0);
    assert_int_equal(pg_exec(c, "DELETE FROM c", 0, NULL, 0, &res, NULL),
                     0);
    assert_int_equal(pg_res_affected(res), 2);
    pg_res_free(res);
    /* bad COPY data: the row is refused, the connection stays */
    assert_int_equal(pg_copy_in(c, "COPY c FROM STDIN", "z\tx\n", 4, &e),
                     KF_EINVAL);
    assert_string_equal(e.sqlstate, "22P02");
    assert_int_equal(pg_connected(c), 1);
    assert_int_equal(pg_exec_len(c, "SELECT length($1::bytea)", 1, v, lens,
                                 fmts, &res, NULL), 0);
    assert_string_equal(pg_res_value(res, 0, 0), "3");
    pg_res_free(res);
    /* sent now, collected later; a failure in the middle is reported */
    assert_int_equal(pg_send(c, "BEGIN; INSERT INTO c VALUES (1, 'q')", &e),
                     0);
    assert_int_equal(pg_collect(c, &e), 0);
    assert_int_equal(pg_in_transaction(c), 1);
    assert_int_equal(pg_send(c, "INSERT INTO c VALUES ('w', 'q'); COMMIT",
                             &e), 0);
    assert_int_equal(pg_collect(c, &e), KF_EINVAL);
    assert_int_equal(pg_exec(c, "ROLLBACK", 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(pg_in_transaction(c), 0);
    pg_close(c);
}

/* The session settings of a use and its application name. */
static void test_request_connections_carry_their_limits(void **st)
{
    struct pg_conn *c = open_ok(PG_USE_REQUEST);
    struct pg_res *res = NULL;

    (void)st;
    assert_int_equal(pg_exec(c, "SELECT current_setting('statement_timeout'),"
                             " current_setting('application_name'), "
                             "current_setting('client_encoding')", 0, NULL,
                             0, &res, NULL), 0);
    assert_string_equal(pg_res_value(res, 0, 0), "5s");
    assert_string_equal(pg_res_value(res, 0, 1), "wxkf-test");
    assert_string_equal(pg_res_value(res, 0, 2), "UTF8");
    pg_res_free(res);
    pg_close(c);
}

/* A listener that never answers: the use's connect timeout (2 s for a
 * request) bounds the wait even when the dsn asks for 30 s. */
static void test_a_silent_server_is_given_up_on_after_the_connect_timeout(
    void **st)
{
    struct pg_conn *c = (struct pg_conn *)1;
    struct pg_err e;
    char dsn[128];
    int64_t t0, took;
    int fd = tu_pg_silent_dsn(dsn, sizeof(dsn));

    (void)st;
    t0 = kf_mono_ms();
    assert_int_equal(pg_open(dsn, "wxkf-test", PG_USE_REQUEST, &c, &e),
                     KF_EBACKEND);
    took = kf_mono_ms() - t0;
    assert_null(c);
    assert_int_equal(e.lost, 1);
    assert_string_equal(e.sqlstate, "");
    assert_true(took >= 1500 && took < 3500);
    close(fd);
}

static void select_one(struct pg_conn *c, unsigned flags, int rc)
{
    struct pg_res *res = NULL;

    assert_int_equal(pg_exec(c, "SELECT 1", 0, NULL, flags, &res, NULL), rc);
    if (rc == 0)
        assert_string_equal(pg_res_value(res, 0, 0), "1");
    pg_res_free(res);
}

static int prepare_one(struct pg_conn *c, void *arg)
{
    (*(int *)arg)++;
    return pg_prepare(c, "one", "SELECT $1::int + 1", 1, NULL);
}

/* After a restart the old connection is dead: a read marked PG_RETRY is
 * run again on a new connection (prepared again by the hook); a write is
 * not repeated, it fails once and the next statement reconnects. */
static void test_reconnects_after_the_server_restarts(void **st)
{
    const char *p[1] = { "41" };
    struct pg_conn *c = NULL;
    struct pg_res *res = NULL;
    struct pg_err e;
    int hooks = 0;

    (void)st;
    assert_int_equal(pg_new(tu_pg.dsn, "wxkf-test", PG_USE_REQUEST, &c), 0);
    pg_on_connect(c, prepare_one, &hooks);
    assert_int_equal(pg_connected(c), 0);
    assert_int_equal(pg_exec_prepared(c, "one", 1, p, PG_RETRY, &res, &e),
                     0);
    assert_string_equal(pg_res_value(res, 0, 0), "42");
    pg_res_free(res);
    tu_pg_stop(&tu_pg);
    assert_int_equal(tu_pg_start(&tu_pg), 0);
    assert_int_equal(pg_exec_prepared(c, "one", 1, p, PG_RETRY, &res, &e),
                     0);
    assert_string_equal(pg_res_value(res, 0, 0), "42");
    pg_res_free(res);
    assert_int_equal(pg_connects(c), 2);
    assert_int_equal(hooks, 2);
    tu_pg_stop(&tu_pg);
    assert_int_equal(tu_pg_start(&tu_pg), 0);
    select_one(c, 0, KF_EBACKEND);
    assert_int_equal(pg_connected(c), 0);
    select_one(c, 0, 0);
    assert_int_equal(pg_connects(c), 3);
    pg_close(c);
    assert_int_equal(tu_pg_own_connection(&tu_pg), 0);
}

static int refuse_setup(struct pg_conn *c, void *arg)
{
    (void)arg;
    return pg_exec(c, "SELECT * FROM no_such_table", 0, NULL, 0, NULL, NULL);
}

/* A connection whose on-connect hook fails is not kept: a statement
 * never runs on a half set-up session. */
static void test_a_failing_on_connect_hook_drops_the_connection(void **st)
{
    struct pg_conn *c = NULL;
    struct pg_err e;

    (void)st;
    assert_int_equal(pg_new(tu_pg.dsn, "wxkf-test", PG_USE_CLI, &c), 0);
    pg_on_connect(c, refuse_setup, NULL);
    assert_int_equal(pg_exec(c, "SELECT 1", 0, NULL, 0, NULL, &e), KF_EIO);
    assert_int_equal(e.rc, KF_EIO);
    assert_int_equal(e.lost, 1);
    assert_string_equal(e.msg, "setting up the new connection failed");
    assert_int_equal(pg_connected(c), 0);
    assert_int_equal(pg_connects(c), 1);
    pg_close(c);
}

/* The server ends the session (an administrator, a failover): 57P01 is
 * a lost connection, and the next statement reconnects. */
static void test_a_terminated_session_is_lost_and_replaced(void **st)
{
    struct pg_conn *c = open_ok(PG_USE_CLI);
    struct pg_res *res = NULL;
    struct pg_err e;

    (void)st;
    assert_int_equal(pg_exec(c, "SELECT pg_backend_pid()", 0, NULL, 0, &res,
                             NULL), 0);
    {
        const char *pid[1] = { pg_res_value(res, 0, 0) };
        PGresult *r = PQexecParams(tu_pg.db, "SELECT pg_terminate_backend("
                                   "$1::int)", 1, NULL, pid, NULL, NULL, 0);

        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        PQclear(r);
    }
    pg_res_free(res);
    assert_int_equal(pg_exec(c, "SELECT 1", 0, NULL, 0, NULL, &e),
                     KF_EBACKEND);
    assert_int_equal(e.lost, 1);
    assert_int_equal(pg_connected(c), 0);
    select_one(c, 0, 0);
    assert_int_equal(pg_connects(c), 2);
    pg_close(c);
}

static void test_server_version_of_the_real_server(void **st)
{
    struct version v;
    struct pg_err e;

    (void)st;
    memset(&e, 'x', sizeof(e));
    assert_int_equal(pg_ping(tu_pg.dsn), 0);
    assert_int_equal(pg_server_version(tu_pg.dsn, &v, &e), 0);
    assert_string_equal(e.msg, "");
    assert_int_equal(v.major, 15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_ping_reports_a_closed_port_as_backend_down),
        cmocka_unit_test(test_pg_ping_reports_a_malformed_dsn_as_backend_down),
        cmocka_unit_test(test_pg_server_version_says_why_it_cannot_log_in),
        cmocka_unit_test(test_classify_maps_sqlstate_classes),
        cmocka_unit_test(test_real_sqlstates_are_classified),
        cmocka_unit_test(test_parameters_are_data_never_sql),
        cmocka_unit_test(test_copy_in_and_binary_parameters),
        cmocka_unit_test(test_request_connections_carry_their_limits),
        cmocka_unit_test(
            test_a_silent_server_is_given_up_on_after_the_connect_timeout),
        cmocka_unit_test(test_reconnects_after_the_server_restarts),
        cmocka_unit_test(test_a_failing_on_connect_hook_drops_the_connection),
        cmocka_unit_test(test_a_terminated_session_is_lost_and_replaced),
        cmocka_unit_test(test_server_version_of_the_real_server),
    };

    return cmocka_run_group_tests(tests, tu_pg_group_setup,
                                  tu_pg_group_teardown);
}
