/* migrate: the PostgreSQL schema — numbered migrations from sql/ (embedded
 * in the binary at build time) applied in order, each exactly once, all in
 * one transaction under an advisory lock, recorded in wxkf_schema. The
 * numbers may have gaps, and a migration missing below the highest
 * applied one is applied too. A database whose schema is newer than this
 * binary (a number above its last) is refused. */
#ifndef MIGRATE_H
#define MIGRATE_H

#include <stddef.h>

#include "kf.h"

struct migration {
    int version;
    const char *name;      /* file name without .sql */
    const char *sql;
};

extern const struct migration migrate_all[];
extern const size_t migrate_count;

struct migrate_result {
    int from, to;          /* schema version before and after */
    int applied;           /* migrations applied by this run */
    char error[512];       /* set on failure: what and where */
};

/* Connects with dsn and brings the schema up to date. KF_EBACKEND if the
 * database is unreachable, KF_ECONFIG if it is newer than this binary,
 * KF_EIO if a migration failed (nothing of this run is kept). */
KF_WUR int migrate_run(const char *dsn, struct migrate_result *res);

#endif
