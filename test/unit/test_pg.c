/* Tests of lib/pg: reachability answers. (A live server is exercised by
 * the black-box suite's /readyz and `wxkf check` tests.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "pg.h"
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
    char err[256];

    (void)st;
    memset(err, 'x', sizeof(err));
    assert_int_equal(pg_server_version("host=127.0.0.1 port=1 "
                                       "connect_timeout=2", &v, err,
                                       sizeof(err)), KF_EBACKEND);
    /* libpq's reason, its first line only */
    assert_true(strlen(err) > 0 && strlen(err) < sizeof(err));
    assert_null(strchr(err, '\n'));
    assert_non_null(strstr(err, "127.0.0.1"));
    assert_int_equal(pg_server_version("this is = not a dsn '", &v, NULL,
                                       0), KF_EBACKEND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_ping_reports_a_closed_port_as_backend_down),
        cmocka_unit_test(test_pg_ping_reports_a_malformed_dsn_as_backend_down),
        cmocka_unit_test(test_pg_server_version_says_why_it_cannot_log_in),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
