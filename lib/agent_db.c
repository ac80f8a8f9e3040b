/* agent_db: the agents table (parameterized SQL through lib/pg only). */
#include "agent_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_token.h"
#include "kf.h"
#include "pg.h"

#include "banned.h"

/* The columns every row-returning statement selects, decoded by row_get. */
#define ROW_COLS "account, nick, weight, coalesce(capacity, 0), " \
                 "array_to_string(groups, ','), " \
                 "coalesce(encode(token_sha256, 'hex'), '')"

int agent_db_open(const char *dsn, enum pg_use use, struct pg_conn **out,
                  struct agent_err *err)
{
    struct pg_err e;
    int rc = pg_open(dsn, "wxkf-agent", use, out, &e);

    if (rc == KF_ENOMEM)
        return agent_fail(err, rc, "PostgreSQL: out of memory");
    if (rc < 0)
        return agent_fail(err, KF_EBACKEND, "PostgreSQL: %s", e.msg);
    return 0;
}

void agent_db_close(struct pg_conn *db)
{
    pg_close(db);
}

/* Runs sql with text parameters (NULL = SQL NULL). On success *out (if
 * out) is new (caller pg_res_free()s); otherwise lib/pg's class says
 * why: a unique violation is KF_EEXISTS "account exists", other data the
 * server refuses KF_EINVAL, a lost connection KF_EBACKEND, anything else
 * KF_EIO. */
static int pq_run(struct pg_conn *db, const char *sql, int n,
                  const char *const *params, struct pg_res **out,
                  struct agent_err *err)
{
    struct pg_err e;
    int rc = pg_exec(db, sql, n, params, 0, out, &e);

    if (rc == 0 || rc == KF_ENOMEM)
        return rc;
    if (rc == KF_EEXISTS)
        return agent_fail(err, KF_EEXISTS, "account exists");
    if (rc == KF_EINVAL)
        return agent_fail(err, KF_EINVAL, "refused by PostgreSQL: %s", e.msg);
    return agent_fail(err, rc == KF_EBACKEND ? KF_EBACKEND : KF_EIO,
                      "PostgreSQL: %s", e.msg);
}

static int pq_simple(struct pg_conn *db, const char *sql,
                     struct agent_err *err)
{
    return pq_run(db, sql, 0, NULL, NULL, err);
}

/* Any constant: the advisory lock class of agent writes (with a hash of
 * the account as the second key). */
#define LOCK_CLASS "2004380513"

/* BEGIN, then the account's advisory lock: every writer of one agent
 * (add, update, token, remove, sync) holds it from its SQL until after its
 * Redis script, so the mirror sees the writes in PostgreSQL's order and a
 * sync never undoes a newer write. Rolled back on failure. */
int agent_db_begin_locked(struct pg_conn *db, const char *account,
                          struct agent_err *err)
{
    const char *params[1] = { account };
    int rc = pq_simple(db, "BEGIN", err);

    if (rc < 0)
        return rc;
    rc = pq_run(db, "SELECT pg_advisory_xact_lock(" LOCK_CLASS
                    ", hashtext($1))", 1, params, NULL, err);
    if (rc < 0)
        agent_db_rollback(db);
    return rc;
}

void agent_db_rollback(struct pg_conn *db)
{
    pq_simple(db, "ROLLBACK", NULL);
}

int agent_db_commit(struct pg_conn *db, struct agent_err *err)
{
    return pq_simple(db, "COMMIT", err);
}

static int parse_int(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || *end || v < -1000000 || v > 1000000)
        return KF_EPARSE;
    *out = (int)v;
    return 0;
}

/* A text column into dst (n bytes); 1 if it does not fit. */
static int copy_col(char *dst, size_t n, const char *v)
{
    return (size_t)snprintf(dst, n, "%s", v) >= n;
}

/* Row i of a ROW_COLS result into a (validated) and hash. */
static int row_get(const struct pg_res *r, int i, struct agent *a,
                   char hash[AGENT_HASH_SIZE], struct agent_err *err)
{
    const char *groups = pg_res_value(r, i, 4), *h = pg_res_value(r, i, 5);
    int rc;

    agent_init(a);
    if (copy_col(a->account, sizeof(a->account), pg_res_value(r, i, 0)) ||
        copy_col(a->nick, sizeof(a->nick), pg_res_value(r, i, 1)) ||
        parse_int(pg_res_value(r, i, 2), &a->weight) ||
        parse_int(pg_res_value(r, i, 3), &a->capacity) ||
        agent_split_groups(groups, strlen(groups), a->groups, AGENT_MAX_GROUPS,
                           &a->ngroups, 0) ||
        (*h && !agent_token_is_hash(h)))
        return agent_fail(err, KF_EPARSE, "a stored agent row is malformed");
    rc = agent_validate(a, err);
    if (rc < 0) {
        char why[sizeof(err->msg)];

        memcpy(why, err->msg, sizeof(why));
        return agent_fail(err, KF_EPARSE,
                          "stored agent %.48s is invalid (%.120s)",
                          a->account, why);
    }
    memcpy(hash, h, strlen(h) + 1);
    return 0;
}

/* The groups as a text[] literal: {"a","b"} (agent_group_ok: no quote,
 * backslash, comma or space in a name, so
 * quoting only keeps a group called "null" from reading as NULL). */
static int groups_literal(const struct agent *a, struct kf_buf *out)
{
    int i, rc = kf_buf_append_c(out, "{");

    for (i = 0; rc == 0 && i < a->ngroups; i++)
        rc = kf_buf_printf(out, "%s\"%s\"", i ? "," : "", a->groups[i]);
    if (rc == 0)
        rc = kf_buf_append_c(out, "}");
    return rc;
}

int agent_db_add(struct pg_conn *db, const struct agent *a,
                 const char *token_hash, struct agent_err *err)
{
    char weight[16], cap[16];
    const char *params[6];
    struct kf_buf groups;
    int rc = agent_validate(a, err);

    kf_buf_init(&groups, 1024);
    if (rc < 0)
        goto out;
    if (token_hash && !agent_token_is_hash(token_hash)) {
        rc = agent_fail(err, KF_EINVAL, "token hash: not 64 hex digits");
        goto out;
    }
    rc = groups_literal(a, &groups);
    if (rc < 0)
        goto out;
    snprintf(weight, sizeof(weight), "%d", a->weight);
    snprintf(cap, sizeof(cap), "%d", a->capacity);
    params[0] = a->account;
    params[1] = a->nick;
    params[2] = weight;
    params[3] = a->capacity ? cap : NULL;
    params[4] = groups.p;
    params[5] = token_hash;
    rc = pq_run(db, "INSERT INTO agents (account, nick, weight, capacity, "
                    "groups, token_sha256) VALUES ($1, $2, $3::integer, "
                    "$4::integer, $5::text[], decode($6, 'hex'))",
                6, params, NULL, err);
out:
    kf_buf_release(&groups);
    return rc;
}

/* A statement returning at most one ROW_COLS row into out/hash. */
static int one_row(struct pg_conn *db, const char *sql, int n,
                   const char *const *params, struct agent *out,
                   char hash[AGENT_HASH_SIZE], struct agent_err *err)
{
    struct pg_res *r = NULL;
    int rc = pq_run(db, sql, n, params, &r, err);

    if (rc == 0 && pg_res_rows(r) != 1)
        rc = agent_fail(err, KF_ENOTFOUND, "no agent %.48s", params[0]);
    if (rc == 0)
        rc = row_get(r, 0, out, hash, err);
    pg_res_free(r);
    return rc;
}

int agent_db_update(struct pg_conn *db, const struct agent *v, unsigned set,
                    struct agent *out, char out_hash[AGENT_HASH_SIZE],
                    struct agent_err *err)
{
    char weight[16], cap[16];
    const char *params[6];
    struct kf_buf groups;
    int rc = agent_check_patch(v, set, err);

    kf_buf_init(&groups, 1024);
    if (rc == 0 && (set & AGENT_SET_GROUPS))
        rc = groups_literal(v, &groups);
    if (rc < 0)
        goto out;
    snprintf(weight, sizeof(weight), "%d", v->weight);
    snprintf(cap, sizeof(cap), "%d", v->capacity);
    params[0] = v->account;
    params[1] = (set & AGENT_SET_NICK) ? v->nick : NULL;
    params[2] = (set & AGENT_SET_WEIGHT) ? weight : NULL;
    params[3] = (set & AGENT_SET_CAPACITY) ? "true" : "false";
    params[4] = (set & AGENT_SET_CAPACITY) && v->capacity ? cap : NULL;
    params[5] = (set & AGENT_SET_GROUPS) ? groups.p : NULL;
    rc = one_row(db, "UPDATE agents SET nick = coalesce($2, nick), "
                     "weight = coalesce($3::integer, weight), "
                     "capacity = CASE WHEN $4::boolean THEN $5::integer "
                     "ELSE capacity END, "
                     "groups = coalesce($6::text[], groups), "
                     "updated_at = now() WHERE account = $1 "
                     "RETURNING " ROW_COLS,
                 6, params, out, out_hash, err);
out:
    kf_buf_release(&groups);
    return rc;
}

int agent_db_remove(struct pg_conn *db, const char *account,
                    struct agent_err *err)
{
    const char *params[1] = { account };
    struct pg_res *r = NULL;
    int rc = agent_check_account(account, err);

    if (rc < 0)
        return rc;
    rc = pq_run(db, "DELETE FROM agents WHERE account = $1", 1, params, &r,
                err);
    if (rc == 0 && pg_res_affected(r) != 1)
        rc = agent_fail(err, KF_ENOTFOUND, "no agent %s", account);
    pg_res_free(r);
    return rc;
}

int agent_db_get(struct pg_conn *db, const char *account, struct agent *out,
                 char hash[AGENT_HASH_SIZE], struct agent_err *err)
{
    const char *params[1] = { account };

    return one_row(db, "SELECT " ROW_COLS " FROM agents WHERE account = $1",
                   1, params, out, hash, err);
}

int agent_db_list(struct pg_conn *db, struct agent_list *l,
                  struct agent_err *err)
{
    struct pg_res *r = NULL;
    int rc, i, n;

    agent_list_release(l);
    rc = pq_run(db, "SELECT " ROW_COLS " FROM agents "
                    "ORDER BY account COLLATE \"C\"", 0, NULL, &r, err);
    if (rc < 0)
        return rc;
    n = pg_res_rows(r);
    l->v = calloc((size_t)n + 1, sizeof(*l->v));
    l->token_sha256 = calloc((size_t)n + 1, sizeof(*l->token_sha256));
    if (!l->v || !l->token_sha256)
        rc = agent_fail(err, KF_ENOMEM, "out of memory");
    for (i = 0; rc == 0 && i < n; i++, l->len++)
        rc = row_get(r, i, &l->v[i], l->token_sha256[i], err);
    pg_res_free(r);
    if (rc < 0)
        agent_list_release(l);
    return rc;
}

int agent_db_rotate_token(struct pg_conn *db, const char *account,
                          const char *token_hash, struct agent *out,
                          struct agent_err *err)
{
    const char *params[2] = { account, token_hash };
    char hash[AGENT_HASH_SIZE];
    int rc = agent_check_account(account, err);

    if (rc < 0)
        return rc;
    if (!token_hash || !agent_token_is_hash(token_hash))
        return agent_fail(err, KF_EINVAL, "token hash: not 64 hex digits");
    return one_row(db, "UPDATE agents SET token_sha256 = decode($2, 'hex'),"
                       " updated_at = now() WHERE account = $1 "
                       "RETURNING " ROW_COLS,
                   2, params, out, hash, err);
}
