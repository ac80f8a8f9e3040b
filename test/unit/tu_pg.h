/* tu_pg: a private PostgreSQL 15 for unit tests — initdb into a temp dir
 * (as the postgres user when run as root), pg_ctl on a free loopback
 * port, a wxkf database with the schema from migrate_run, and the test's
 * own connection for setting up rows. */
#ifndef TU_PG_H
#define TU_PG_H

#include <libpq-fe.h>

struct tu_pgsrv {
    char dir[64];
    char dsn[128];
    int port;
    PGconn *db;            /* the test's own connection, for inserts */
};

/* The server of a test file (cmocka's group setup and teardown below). */
extern struct tu_pgsrv tu_pg;
int tu_pg_group_setup(void **st);       /* tu_pg_setup(&tu_pg) */
int tu_pg_group_teardown(void **st);    /* tu_pg_teardown(&tu_pg) */

/* The server, the wxkf database and its schema; 0 or -1 (then nothing
 * is left running). */
int tu_pg_setup(struct tu_pgsrv *p);
/* Stops the server and removes its directory. Safe after a failed setup. */
void tu_pg_teardown(struct tu_pgsrv *p);
int tu_pg_start(struct tu_pgsrv *p);     /* again, after tu_pg_stop */
void tu_pg_stop(struct tu_pgsrv *p);     /* fast shutdown, waits */
/* (Re)opens p->db; 0 or -1. */
int tu_pg_own_connection(struct tu_pgsrv *p);
/* A dsn (asking for connect_timeout=30) of a loopback port whose
 * listening socket never accepts: the kernel completes TCP handshakes
 * there and nobody ever speaks. Returns the socket; close it. */
int tu_pg_silent_dsn(char *dsn, size_t n);
/* Runs sql on db; fails the test unless it succeeds. */
void tu_pg_exec_ok(PGconn *db, const char *sql);

#endif
