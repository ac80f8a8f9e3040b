/* migrate: versioned, transactional schema migrations. */
#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"
#include "version.h"

#include "banned.h"

/* Any constant: serialises concurrent `wxkf migrate` runs. */
#define LOCK_KEY "7305418221"

static int exec_ok(struct pg_conn *db, const char *sql,
                   struct migrate_result *res, const char *what)
{
    struct pg_err e;

    if (pg_exec(db, sql, 0, NULL, 0, NULL, &e) == 0)
        return 0;
    snprintf(res->error, sizeof(res->error), "%s: %s", what, e.msg);
    return KF_EIO;
}

static int current_version(struct pg_conn *db, struct migrate_result *res)
{
    struct pg_res *r = NULL;
    struct pg_err e;
    int v = -1;

    if (pg_exec(db, "SELECT coalesce(max(version), 0) FROM wxkf_schema", 0,
                NULL, 0, &r, &e) < 0)
        snprintf(res->error, sizeof(res->error), "reading wxkf_schema: %s",
                 e.msg);
    else if (pg_res_rows(r) == 1)
        v = (int)strtol(pg_res_value(r, 0, 0), NULL, 10);
    pg_res_free(r);
    return v;
}

static int record(struct pg_conn *db, const struct migration *m,
                  struct migrate_result *res)
{
    char ver[16];
    const char *params[2] = { ver, m->name };
    struct pg_err e;

    snprintf(ver, sizeof(ver), "%d", m->version);
    if (pg_exec(db, "INSERT INTO wxkf_schema (version, name) "
                    "VALUES ($1, $2)", 2, params, 0, NULL, &e) == 0)
        return 0;
    snprintf(res->error, sizeof(res->error), "recording %s: %s", m->name,
             e.msg);
    return KF_EIO;
}

/* 1 if m is recorded in wxkf_schema, 0 if not, KF_EIO. Each migration
 * is looked up by its own number, not compared with the highest applied:
 * numbers are handed out to branches ahead of their merge, so a database
 * may have 0008 before a later binary brings 0007 (a gap is filled). */
static int applied(struct pg_conn *db, const struct migration *m,
                   struct migrate_result *res)
{
    char ver[16];
    const char *params[1] = { ver };
    struct pg_res *r = NULL;
    struct pg_err e;
    int rc;

    snprintf(ver, sizeof(ver), "%d", m->version);
    if (pg_exec(db, "SELECT 1 FROM wxkf_schema WHERE version = $1", 1,
                params, 0, &r, &e) < 0) {
        snprintf(res->error, sizeof(res->error), "reading wxkf_schema: %s",
                 e.msg);
        return KF_EIO;
    }
    rc = pg_res_rows(r) == 1;
    pg_res_free(r);
    return rc;
}

static int apply_all(struct pg_conn *db, struct migrate_result *res)
{
    int latest = migrate_count ? migrate_all[migrate_count - 1].version : 0;
    size_t i;
    int rc;

    rc = exec_ok(db, "SELECT pg_advisory_xact_lock(" LOCK_KEY ")", res,
                 "lock");
    if (rc == 0)
        rc = exec_ok(db, "CREATE TABLE IF NOT EXISTS wxkf_schema ("
                         " version integer PRIMARY KEY,"
                         " name text NOT NULL,"
                         " applied_at timestamptz NOT NULL DEFAULT now())",
                     res, "creating wxkf_schema");
    if (rc < 0)
        return rc;
    res->from = res->to = current_version(db, res);
    if (res->from < 0)
        return KF_EIO;
    if (res->from > latest) {
        snprintf(res->error, sizeof(res->error),
                 "database schema version %d is newer than this wxkf "
                 "(knows up to %d): upgrade wxkf", res->from, latest);
        return KF_ECONFIG;
    }
    for (i = 0; i < migrate_count; i++) {
        const struct migration *m = &migrate_all[i];

        rc = applied(db, m, res);
        if (rc < 0)
            return rc;
        if (rc == 1)
            continue;
        rc = exec_ok(db, m->sql, res, m->name);
        if (rc == 0)
            rc = record(db, m, res);
        if (rc < 0)
            return rc;
        if (m->version > res->to)
            res->to = m->version;
        res->applied++;
    }
    return 0;
}

/* The migrations use what PostgreSQL 11 brought (lib/version): refuse an
 * older server by name before the first statement fails obscurely. */
static int server_new_enough(struct pg_conn *db, struct migrate_result *res)
{
    struct version v;

    if (version_from_pg_num(pg_server_num(db), &v) < 0)
        return 0;               /* it did not say: let the SQL speak */
    if (version_check(VERSION_POSTGRES, &v, res->error,
                      sizeof(res->error)) < 0)
        return KF_EVERSION;
    res->error[0] = '\0';
    return 0;
}

int migrate_run(const char *dsn, struct migrate_result *res)
{
    struct pg_conn *db = NULL;
    struct pg_err e;
    int rc;

    memset(res, 0, sizeof(*res));
    rc = pg_open(dsn, "wxkf-migrate", PG_USE_CLI, &db, &e);
    if (rc < 0) {
        snprintf(res->error, sizeof(res->error), "connect: %s", e.msg);
        return rc == KF_ENOMEM ? rc : KF_EBACKEND;
    }
    rc = server_new_enough(db, res);
    if (rc < 0) {               /* nothing begun: nothing to roll back */
        pg_close(db);
        return rc;
    }
    rc = exec_ok(db, "SET client_min_messages = warning", res, "setup");
    if (rc == 0)
        rc = exec_ok(db, "BEGIN", res, "begin");
    if (rc == 0)
        rc = apply_all(db, res);
    if (rc == 0)
        rc = exec_ok(db, "COMMIT", res, "commit");
    else if (pg_exec(db, "ROLLBACK", 0, NULL, 0, NULL, NULL) < 0)
        pg_disconnect(db);      /* the server rolls back */
    if (rc < 0)
        res->applied = 0;
    pg_close(db);
    return rc;
}
