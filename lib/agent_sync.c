/* agent_sync: the write verbs over both stores, and the full re-sync. */
#include "agent_sync.h"

#include <string.h>

#include <openssl/crypto.h>

#include "agent_db.h"
#include "agent_mirror.h"
#include "agent_token.h"
#include "audit.h"
#include "kf.h"
#include "pg.h"

#include "banned.h"

/* PostgreSQL wrote, Redis did not: say so, keeping the Redis reason. */
static int stale(struct agent_err *err, int rc)
{
    char why[sizeof(err->msg)];

    if (!err)
        return rc;
    memcpy(why, err->msg, sizeof(why));
    err->mirror_stale = 1;
    return agent_fail(err, KF_EBACKEND, "saved in PostgreSQL, but the Redis "
                      "mirror is stale (%.120s); `wxkf agent sync` repairs it",
                      why);
}

/* COMMIT, with the audit row of the write first (au NULL: none), in the
 * same transaction; a failed insert rolls back like a failed COMMIT. */
static int audited_commit(struct pg_conn *db, const struct audit *au,
                          struct agent_err *err)
{
    int rc = au ? audit_pg_insert(db, au, NULL) : 0;

    if (rc < 0) {
        agent_db_rollback(db);
        return agent_fail(err, rc, "audit row not written");
    }
    return agent_db_commit(db, err);
}

/* COMMIT after the mirror step returned mrc (its reason in err): a failed
 * COMMIT means nothing was saved; a failed mirror after a good COMMIT
 * means the mirror is stale. */
static int commit_after_mirror(struct pg_conn *db, int mrc,
                               const struct audit *au, struct agent_err *err)
{
    char why[sizeof(err->msg)];
    int rc;

    memcpy(why, err->msg, sizeof(why));
    rc = audited_commit(db, au, err);
    if (rc < 0) {
        memcpy(why, err->msg, sizeof(why));
        return agent_fail(err, rc, "%.160s; nothing was saved%s", why,
                          mrc == 0 ? " (`wxkf agent sync` resets the mirror)"
                                   : "");
    }
    if (mrc == 0)
        return 0;
    memcpy(err->msg, why, sizeof(why));
    return stale(err, mrc);
}

/* ------------------------------------------------------------------ sync */

/* What one agent_mirror_sync_all run works with. */
struct sync {
    struct store *s;
    struct pg_conn *db;
    const struct agent_list *l;      /* every PostgreSQL row */
    struct agent_sync_stats *st;
    struct agent_err *err;
};

static int in_list(const struct agent_list *l, const char *account)
{
    size_t lo = 0, hi = l->len;

    while (lo < hi) {              /* l is in strcmp order (COLLATE "C") */
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(account, l->v[mid].account);

        if (c == 0)
            return 1;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

/* One agent, under its lock: the row as PostgreSQL has it now is put
 * into Redis; without a row the Redis agent is removed when it has no
 * sessions and is offline, else kept (counted). */
static int sync_one(struct sync *y, const char *account)
{
    char hash[AGENT_HASH_SIZE];
    struct agent a;
    int rc = agent_db_begin_locked(y->db, account, y->err);

    if (rc < 0)
        return rc;
    rc = agent_db_get(y->db, account, &a, hash, y->err);
    if (rc == 0) {
        rc = agent_mirror_put(y->s, &a, hash[0] ? hash : NULL, y->err);
        y->st->mirrored += rc == 0;
    } else if (rc == KF_ENOTFOUND) {
        rc = agent_mirror_remove(y->s, account, y->err);
        if (rc == 0)
            y->st->removed++;
        else if (rc == KF_EBUSY)
            y->st->kept++, rc = 0;
    }
    agent_db_rollback(y->db);      /* it only read and held the lock */
    return rc;
}

/* An agent Redis has and the list has not. */
static int drop_unknown(void *ctx, const char *account)
{
    struct sync *y = ctx;

    return in_list(y->l, account) ? 0 : sync_one(y, account);
}

int agent_mirror_sync_all(struct store *s, struct pg_conn *db,
                          struct agent_sync_stats *st, struct agent_err *err)
{
    struct agent_list l;
    struct sync y = { s, db, &l, st, err };
    size_t i;
    int rc;

    memset(st, 0, sizeof(*st));
    agent_err_reset(err);
    agent_list_init(&l);
    rc = agent_db_list(db, &l, err);
    if (rc == 0)
        rc = agent_mirror_connect(s, err);
    for (i = 0; rc == 0 && i < l.len; i++)
        rc = sync_one(&y, l.v[i].account);
    if (rc == 0)
        rc = agent_mirror_each_member(s, drop_unknown, &y, err);
    if (rc == 0)
        rc = agent_mirror_each_hash(s, drop_unknown, &y, err);
    if (rc == 0)
        rc = agent_mirror_sweep(s, &st->swept, err);
    agent_list_release(&l);
    return rc;
}

/* ------------------------------------------------------------ both stores */

static void wipe(char token[AGENT_TOKEN_SIZE])
{
    OPENSSL_cleanse(token, AGENT_TOKEN_SIZE);
    token[0] = '\0';
}

/* Checks a (or, a NULL, account), makes a new token, then under the
 * account's lock its row — a inserted, or account's token replaced — and
 * the mirror. token is wiped unless PostgreSQL kept it (without it the
 * token is worthless). */
static int with_new_token(struct pg_conn *db, struct store *s,
                          const struct agent *a, const char *account,
                          char token[AGENT_TOKEN_SIZE],
                          const struct audit *au, struct agent_err *err)
{
    char hash[AGENT_HASH_SIZE];
    struct agent_err own;
    struct agent row;
    int rc;

    if (!err)
        err = &own;
    agent_err_reset(err);
    token[0] = '\0';
    rc = a ? agent_validate(a, err) : agent_check_account(account, err);
    if (rc < 0)
        return rc;
    if (agent_token_new(token, hash) < 0)
        rc = agent_fail(err, KF_ECRYPTO, "token: OpenSSL failed");
    if (rc == 0)
        rc = agent_db_begin_locked(db, account, err);
    if (rc == 0) {
        rc = a ? agent_db_add(db, a, hash, err)
               : agent_db_rotate_token(db, account, hash, &row, err);
        if (rc < 0)
            agent_db_rollback(db);
    }
    if (rc == 0)
        rc = commit_after_mirror(db, agent_mirror_put(s, a ? a : &row, hash,
                                                      err),
                                 au, err);
    if (rc < 0 && !err->mirror_stale)
        wipe(token);
    return rc;
}

int agent_add(struct pg_conn *db, struct store *s, const struct agent *a,
              char token[AGENT_TOKEN_SIZE], const struct audit *au,
              struct agent_err *err)
{
    return with_new_token(db, s, a, a->account, token, au, err);
}

int agent_update(struct pg_conn *db, struct store *s, const struct agent *v,
                 unsigned set, struct agent *out, const struct audit *au,
                 struct agent_err *err)
{
    char hash[AGENT_HASH_SIZE];
    struct agent_err own;
    int rc;

    if (!err)
        err = &own;
    agent_err_reset(err);
    rc = agent_check_patch(v, set, err);
    if (rc == 0)
        rc = agent_db_begin_locked(db, v->account, err);
    if (rc < 0)
        return rc;
    rc = agent_db_update(db, v, set, out, hash, err);
    if (rc < 0) {
        agent_db_rollback(db);
        return rc;
    }
    return commit_after_mirror(db, agent_mirror_put(s, out, hash[0] ? hash
                                                                   : NULL,
                                                    err),
                               au, err);
}

int agent_rotate_token(struct pg_conn *db, struct store *s,
                       const char *account, char token[AGENT_TOKEN_SIZE],
                       const struct audit *au, struct agent_err *err)
{
    return with_new_token(db, s, NULL, account, token, au, err);
}

int agent_remove(struct pg_conn *db, struct store *s, const char *account,
                 const struct audit *au, struct agent_err *err)
{
    struct agent_err own;
    char why[sizeof(own.msg)];
    int rc;

    if (!err)
        err = &own;
    agent_err_reset(err);
    rc = agent_check_account(account, err);
    if (rc == 0)
        rc = agent_db_begin_locked(db, account, err);
    if (rc < 0)
        return rc;
    rc = agent_db_remove(db, account, err);
    if (rc == 0) {
        rc = agent_mirror_remove(s, account, err);
        if (rc < 0 && rc != KF_EBUSY) {
            memcpy(why, err->msg, sizeof(why));
            agent_fail(err, rc, "%.200s; nothing removed", why);
        }
    }
    if (rc < 0) {
        agent_db_rollback(db);
        return rc;
    }
    rc = audited_commit(db, au, err);
    if (rc < 0) {
        memcpy(why, err->msg, sizeof(why));
        err->mirror_stale = 1;
        rc = agent_fail(err, KF_EBACKEND, "removed from Redis but not from "
                        "PostgreSQL (%.120s); `wxkf agent sync` restores the "
                        "mirror", why);
    }
    return rc;
}
