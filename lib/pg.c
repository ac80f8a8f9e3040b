/* pg: PostgreSQL reachability and version. */
#include "pg.h"

#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "version.h"

#include "banned.h"

int pg_ping(const char *dsn)
{
    /* dsn is expanded first; connect_timeout after it bounds the wait
     * (a server that never accepts must not hold a worker). */
    const char *const keys[] = { "dbname", "connect_timeout", NULL };
    const char *const vals[] = { dsn, "2", NULL };

    return PQpingParams(keys, vals, 1) == PQPING_OK ? 0 : KF_EBACKEND;
}

int pg_server_version(const char *dsn, struct version *out, char *err,
                      size_t n)
{
    const char *const keys[] = { "dbname", "connect_timeout", NULL };
    const char *const vals[] = { dsn, "2", NULL };
    PGconn *db = PQconnectdbParams(keys, vals, 1);
    int rc;

    if (n)
        err[0] = '\0';
    if (!db || PQstatus(db) != CONNECTION_OK) {
        const char *why = db ? PQerrorMessage(db) : "out of memory";

        if (n)
            snprintf(err, n, "%.*s", (int)strcspn(why, "\n"), why);
        rc = KF_EBACKEND;
    } else {
        rc = version_from_pg_num(PQserverVersion(db), out);
    }
    PQfinish(db);
    return rc;
}
