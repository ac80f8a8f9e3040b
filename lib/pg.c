/* pg: PostgreSQL reachability. */
#include "pg.h"

#include <libpq-fe.h>

#include "banned.h"

int pg_ping(const char *dsn)
{
    /* dsn is expanded first; connect_timeout after it bounds the wait
     * (a server that never accepts must not hold a worker). */
    const char *const keys[] = { "dbname", "connect_timeout", NULL };
    const char *const vals[] = { dsn, "2", NULL };

    return PQpingParams(keys, vals, 1) == PQPING_OK ? 0 : KF_EBACKEND;
}
