/* pg: PostgreSQL reachability. */
#include "pg.h"

#include <libpq-fe.h>

#include "banned.h"

int pg_ping(const char *dsn)
{
    return PQping(dsn) == PQPING_OK ? 0 : KF_EBACKEND;
}
