/* Tests of lib/pg: reachability answers. (A live server is exercised by
 * the black-box suite's /readyz and `wxkf check` tests.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "pg.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_ping_reports_a_closed_port_as_backend_down),
        cmocka_unit_test(test_pg_ping_reports_a_malformed_dsn_as_backend_down),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
