/* Tests of lib/migrate: the embedded migration list is well formed and
 * matches sql/, and an unreachable database is reported as such. Applying
 * migrations to a real PostgreSQL is covered by the black-box suite
 * (test/it/test_stack.py). */
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

/* Numbers rise; a gap is allowed (branches take numbers in advance:
 * 0012 may be merged before 0007), and lib/migrate applies what it has
 * in order. */
static void test_migrations_are_numbered_from_one_rising(void **st)
{
    size_t i;

    (void)st;
    assert_true(migrate_count >= 1);
    assert_int_equal(migrate_all[0].version, 1);
    for (i = 0; i < migrate_count; i++) {
        char prefix[8];

        if (i > 0)
            assert_true(migrate_all[i].version > migrate_all[i - 1].version);
        snprintf(prefix, sizeof(prefix), "%04d_", migrate_all[i].version);
        assert_memory_equal(migrate_all[i].name, prefix, 5);
        assert_true(strlen(migrate_all[i].sql) > 10);
    }
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
        cmocka_unit_test(test_migrations_are_numbered_from_one_rising),
        cmocka_unit_test(test_every_sql_file_is_embedded),
        cmocka_unit_test(test_migrate_reports_an_unreachable_database),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
