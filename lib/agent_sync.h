/* agent_sync: the agent records in both stores, PostgreSQL first and
 * the Redis mirror after it — the write verbs (add, update, token,
 * remove), each one transaction holding the account's advisory lock
 * (lib/agent_db) across its Redis script (lib/agent_mirror), and the
 * rebuild of the whole mirror from PostgreSQL. */
#ifndef AGENT_SYNC_H
#define AGENT_SYNC_H

#include <stddef.h>

#include "agent.h"
#include "kf.h"
#include "pg.h"

struct audit;
struct store;

struct agent_sync_stats {
    size_t mirrored;     /* agents written from PostgreSQL */
    size_t removed;      /* Redis-only agents removed */
    size_t kept;         /* Redis-only agents kept: sessions or not offline */
    size_t swept;        /* stale token keys and group memberships removed */
};

/* Re-mirrors every agent from PostgreSQL (each under its lock, see
 * below), removes Redis-only agents that have no sessions and are
 * offline, and sweeps token keys and group memberships that no agent hash
 * backs. Used by `wxkf agent sync` and `wxkf jobs`. db must not be in a
 * transaction. */
KF_WUR int agent_mirror_sync_all(struct store *s, struct pg_conn *db,
                                 struct agent_sync_stats *st,
                                 struct agent_err *err);

/* The write verbs, PostgreSQL first, then the mirror. Each is one
 * transaction on db (which must not be in one already): the SQL, then
 * the Redis script, then COMMIT, holding an advisory lock on the account
 * throughout so the writes of one agent (and agent_mirror_sync_all) reach
 * Redis in the order PostgreSQL took them. When Redis fails they
 * still commit and return KF_EBACKEND with err->mirror_stale = 1 and a
 * message saying `wxkf agent sync` repairs it; the out-params are filled
 * as on success. err may be NULL. au (NULL: not audited) is the audit
 * record of the write (lib/audit): its row is inserted just before the
 * COMMIT, in the same transaction (a failed insert saves nothing). */

/* Validates, inserts, mirrors; token gets the new token (show it once;
 * on an error without mirror_stale it is wiped: nothing was saved). A
 * taken account -> KF_EEXISTS. */
KF_WUR int agent_add(struct pg_conn *db, struct store *s,
                     const struct agent *a, char token[AGENT_TOKEN_SIZE],
                     const struct audit *au, struct agent_err *err);
/* Validates the fields in set, updates, mirrors; *out is the new row. */
KF_WUR int agent_update(struct pg_conn *db, struct store *s,
                        const struct agent *v, unsigned set,
                        struct agent *out, const struct audit *au,
                        struct agent_err *err);
/* Issues a new token (into token) and revokes the old one in both. On
 * an error without mirror_stale, token is wiped (nothing was saved). */
KF_WUR int agent_rotate_token(struct pg_conn *db, struct store *s,
                              const char *account,
                              char token[AGENT_TOKEN_SIZE],
                              const struct audit *au,
                              struct agent_err *err);
/* DELETE, then agent_mirror_remove; if the mirror refuses (sessions,
 * online: KF_EBUSY) or Redis is unreachable the DELETE is rolled back, so
 * an agent with live sessions is never half removed. */
KF_WUR int agent_remove(struct pg_conn *db, struct store *s,
                        const char *account, const struct audit *au,
                        struct agent_err *err);

#endif
