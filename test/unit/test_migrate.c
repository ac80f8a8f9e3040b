/* Tests of lib/migrate: the embedded migration list is well formed and
 * matches sql/, an unreachable database is reported as such, and a gap
 * below the highest applied number is filled (a private PostgreSQL,
 * tu_pg). The rest of applying migrations is covered by the black-box
 * suite (test/it/test_stack.py). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "migrate.h"
#include "tu_pg.h"

/* Numbers rise and match the file names; they may have gaps (numbers are
 * handed to branches before they merge). */
static void test_migrations_are_numbered_in_order(void **st)
{
    size_t i;

    (void)st;
    assert_true(migrate_count >= 1);
    assert_int_equal(migrate_all[0].version, 1);
    for (i = 0; i < migrate_count; i++) {
        char prefix[8];

        assert_true(migrate_all[i].version >= 1);
        if (i > 0)
            assert_true(migrate_all[i].version > migrate_all[i - 1].version);
        snprintf(prefix, sizeof(prefix), "%04d_", migrate_all[i].version);
        assert_memory_equal(migrate_all[i].name, prefix, 5);
        assert_true(strlen(migrate_all[i].sql) > 10);
    }
}

/* A database that got a higher number first (0008 merged before 0007)
 * still gets the lower one: here 0006 is undone and unrecorded while
 * every later migration stays, and migrate_run applies 0006 alone. */
static void test_a_migration_missing_below_the_highest_is_applied(void **st)
{
    struct migrate_result res;
    PGresult *q;

    (void)st;
    assert_true(migrate_all[migrate_count - 1].version > 6);
    tu_pg_exec_ok(tu_pg.db, "DROP INDEX sessions_agent_closed");
    tu_pg_exec_ok(tu_pg.db, "DROP INDEX sessions_closed");
    tu_pg_exec_ok(tu_pg.db, "ALTER TABLE sessions DROP COLUMN summary, "
                            "DROP COLUMN labels");
    tu_pg_exec_ok(tu_pg.db, "DROP TABLE labels");
    tu_pg_exec_ok(tu_pg.db, "DELETE FROM wxkf_schema WHERE version = 6");
    assert_int_equal(migrate_run(tu_pg.dsn, &res), 0);
    assert_int_equal(res.applied, 1);
    assert_int_equal(res.to, migrate_all[migrate_count - 1].version);
    q = PQexec(tu_pg.db, "SELECT count(*) FROM labels");
    assert_int_equal(PQresultStatus(q), PGRES_TUPLES_OK);
    PQclear(q);
    assert_int_equal(migrate_run(tu_pg.dsn, &res), 0);
    assert_int_equal(res.applied, 0);
}

static void test_every_sql_file_is_embedded(void **st)
{
    DIR *d = opendir("../../sql");
    struct dirent *e;
    size_t files = 0;

    (void)st;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name), i;
        int found = 0;

        if (len < 5 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue;
        files++;
        for (i = 0; i < migrate_count; i++)
            found |= strncmp(migrate_all[i].name, e->d_name, len - 4) == 0 &&
                     strlen(migrate_all[i].name) == len - 4;
        if (!found)
            fail_msg("sql/%s is not embedded (rebuild?)", e->d_name);
    }
    closedir(d);
    assert_int_equal(files, migrate_count);
}

static void test_migrate_reports_an_unreachable_database(void **st)
{
    struct migrate_result res;

    (void)st;
    assert_int_equal(migrate_run("host=127.0.0.1 port=1 connect_timeout=2",
                                 &res), KF_EBACKEND);
    assert_non_null(strstr(res.error, "connect"));
    assert_int_equal(res.applied, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrations_are_numbered_in_order),
        cmocka_unit_test(test_every_sql_file_is_embedded),
        cmocka_unit_test(test_migrate_reports_an_unreachable_database),
        cmocka_unit_test(test_a_migration_missing_below_the_highest_is_applied),
    };

    return cmocka_run_group_tests(tests, tu_pg_group_setup,
                                  tu_pg_group_teardown);
}
