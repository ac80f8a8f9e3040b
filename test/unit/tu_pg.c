/* tu_pg: a private PostgreSQL for unit tests. */
#include "tu_pg.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "migrate.h"
#include "testutil.h"

#define PG_BIN "/usr/lib/postgresql/15/bin"

static const char *as_pg(void)
{
    return geteuid() == 0 ? "runuser -u postgres -- " : "";
}

static int shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int shell(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(cmd));
    return system(cmd);
}

int tu_pg_start(struct tu_pgsrv *p)
{
    if (shell("cd %s && %stimeout 60 %s/pg_ctl -D %s/data -l %s/pg.log "
              "-o '-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off "
              "-c synchronous_commit=off' -w -t 30 start "
              ">>%s/ctl.log 2>&1 </dev/null", p->dir, as_pg(), PG_BIN,
              p->dir, p->dir, p->port, p->dir, p->dir) == 0)
        return 0;
    fprintf(stderr, "pg_ctl start failed: see %s/pg.log\n", p->dir);
    return -1;
}

void tu_pg_stop(struct tu_pgsrv *p)
{
    if (shell("cd %s && %stimeout 60 %s/pg_ctl -D %s/data -m fast -w "
              "-t 30 stop >>%s/ctl.log 2>&1 </dev/null", p->dir, as_pg(),
              PG_BIN, p->dir, p->dir) != 0)
        fprintf(stderr, "pg_ctl stop failed: see %s/ctl.log\n", p->dir);
}

void tu_pg_exec_ok(PGconn *db, const char *sql)
{
    PGresult *r = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(r);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

int tu_pg_own_connection(struct tu_pgsrv *p)
{
    if (p->db)
        PQfinish(p->db);
    p->db = PQconnectdb(p->dsn);
    return PQstatus(p->db) == CONNECTION_OK ? 0 : -1;
}

void tu_pg_teardown(struct tu_pgsrv *p)
{
    if (p->db)
        PQfinish(p->db);
    p->db = NULL;
    if (p->port)
        tu_pg_stop(p);
    p->port = 0;
    if (p->dir[0] && shell("rm -rf '%s'", p->dir) != 0)
        fprintf(stderr, "could not remove %s\n", p->dir);
}

/* Whatever fails, what was started is stopped again. */
int tu_pg_setup(struct tu_pgsrv *p)
{
    struct migrate_result res;
    PGconn *db;
    PGresult *r;
    int ok;

    memset(p, 0, sizeof(*p));
    memset(&res, 0, sizeof(res));
    snprintf(p->dir, sizeof(p->dir), "/tmp/wxkf-unit-pg-XXXXXX");
    if (!mkdtemp(p->dir)) {
        p->dir[0] = '\0';
        return -1;
    }
    if ((geteuid() == 0 && shell("chown postgres: %s", p->dir) != 0) ||
        shell("chmod 0755 %s", p->dir) != 0 ||
        shell("cd %s && %stimeout 60 %s/initdb -D %s/data -A trust -U wxkf "
              "-E UTF8 --locale=C.UTF-8 >%s/initdb.log 2>&1", p->dir,
              as_pg(), PG_BIN, p->dir, p->dir) != 0) {
        fprintf(stderr, "initdb failed: see %s/initdb.log\n", p->dir);
        goto fail;
    }
    p->port = tu_free_port();
    if (tu_pg_start(p) < 0)
        goto fail;
    snprintf(p->dsn, sizeof(p->dsn), "host=127.0.0.1 port=%d "
             "dbname=postgres user=wxkf", p->port);
    db = PQconnectdb(p->dsn);
    r = PQexec(db, "CREATE DATABASE wxkf");
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    PQfinish(db);
    snprintf(p->dsn, sizeof(p->dsn), "host=127.0.0.1 port=%d dbname=wxkf "
             "user=wxkf", p->port);
    if (!ok || migrate_run(p->dsn, &res) != 0 ||
        tu_pg_own_connection(p) < 0) {
        fprintf(stderr, "database setup failed (%s): see %s/pg.log\n",
                res.error, p->dir);
        goto fail;
    }
    return 0;
fail:
    tu_pg_teardown(p);
    return -1;
}

int tu_pg_silent_dsn(char *dsn, size_t n)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    snprintf(dsn, n, "host=127.0.0.1 port=%d dbname=wxkf user=wxkf "
             "connect_timeout=30", ntohs(a.sin_port));
    return fd;
}

struct tu_pgsrv tu_pg;

int tu_pg_group_setup(void **st)
{
    (void)st;
    return tu_pg_setup(&tu_pg);
}

int tu_pg_group_teardown(void **st)
{
    (void)st;
    tu_pg_teardown(&tu_pg);
    return 0;
}
