/* agent_db: the agents table in PostgreSQL, the source of truth for the
 * agent records — connections (through lib/pg), parameterized INSERT,
 * UPDATE, DELETE and SELECT of rows, and the per-account advisory lock
 * that orders every writer of one agent (see lib/agent_sync). */
#ifndef AGENT_DB_H
#define AGENT_DB_H

#include "agent.h"
#include "kf.h"
#include "pg.h"

/* On success *out is a new connection (lib/pg, with the timeouts of
 * use: PG_USE_REQUEST inside a FastCGI request, PG_USE_CLI elsewhere);
 * close it with agent_db_close(). KF_EBACKEND (err says why) if the
 * server cannot be reached. */
KF_WUR int agent_db_open(const char *dsn, enum pg_use use,
                         struct pg_conn **out, struct agent_err *err);
void agent_db_close(struct pg_conn *db);          /* NULL is fine */

/* Every statement below reports a lost connection as KF_EBACKEND, data
 * the server refuses as KF_EINVAL and anything else as KF_EIO, with the
 * server's reason in err. */

/* INSERT; a taken account -> KF_EEXISTS "account exists". token_hash is
 * the new token's agent_token_hash(). */
KF_WUR int agent_db_add(struct pg_conn *db, const struct agent *a,
                        const char *token_hash, struct agent_err *err);

/* Partial UPDATE of v.account with the fields named in set (AGENT_SET_*,
 * taken from v, which must hold valid values for them). *out is the whole
 * row after it and out_hash its token hash. Unknown account ->
 * KF_ENOTFOUND. */
KF_WUR int agent_db_update(struct pg_conn *db, const struct agent *v,
                           unsigned set, struct agent *out,
                           char out_hash[AGENT_HASH_SIZE],
                           struct agent_err *err);
/* DELETE; unknown account -> KF_ENOTFOUND. */
KF_WUR int agent_db_remove(struct pg_conn *db, const char *account,
                           struct agent_err *err);
/* The row of account into *out and its token hash ("" if none) into
 * hash. Unknown account -> KF_ENOTFOUND. */
KF_WUR int agent_db_get(struct pg_conn *db, const char *account,
                        struct agent *out, char hash[AGENT_HASH_SIZE],
                        struct agent_err *err);
/* Replaces l's contents with every row. */
KF_WUR int agent_db_list(struct pg_conn *db, struct agent_list *l,
                         struct agent_err *err);
/* Stores a new token's hash (the old token stops working in PostgreSQL at
 * once). *out gets the row. Unknown account -> KF_ENOTFOUND. */
KF_WUR int agent_db_rotate_token(struct pg_conn *db, const char *account,
                                 const char *token_hash, struct agent *out,
                                 struct agent_err *err);

/* BEGIN, then the account's advisory lock (held until COMMIT or
 * ROLLBACK): every writer of one agent takes it before its SQL and keeps
 * it until after its Redis script. db must not be in a transaction;
 * rolled back on failure. */
KF_WUR int agent_db_begin_locked(struct pg_conn *db, const char *account,
                                 struct agent_err *err);
KF_WUR int agent_db_commit(struct pg_conn *db, struct agent_err *err);
void agent_db_rollback(struct pg_conn *db);       /* errors are dropped */

#endif
