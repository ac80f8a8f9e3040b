/* agent: the agent records — validation, PostgreSQL CRUD (parameterized SQL
 * only; PostgreSQL is the source of truth), API tokens (shown once, stored
 * only as SHA-256) and the Redis mirror of the agent keys: P agents,
 * P agent:<acct> (nick weight capacity groups status token_sha256),
 * P group:<g> and P token:<sha256 hex> (see docs/routing.md, "Agents").
 * Writes go to PostgreSQL first, then to Redis; agent_mirror_sync_all
 * rebuilds the mirror from PostgreSQL. */
#ifndef AGENT_H
#define AGENT_H

#include <stddef.h>

#include "kf.h"
#include "pg.h"

struct store;

#define AGENT_MAX_GROUPS 16
#define AGENT_NICK_CHARS 64      /* UTF-8 characters */
#define AGENT_TOKEN_PREFIX "wxa_"
#define AGENT_TOKEN_SIZE 69      /* "wxa_" + 64 hex + NUL */
#define AGENT_HASH_SIZE 65       /* SHA-256 as 64 lowercase hex + NUL */
/* The one definition of the agent limits: the API, the CLI, the config
 * ([routing] default_capacity) and the console (a test compares
 * nginx/html/index.html) all take them from here. */
#define AGENT_WEIGHT_MIN 1
#define AGENT_WEIGHT_MAX 100
#define AGENT_CAPACITY_MAX 10000 /* 1..max; 0 = [routing] default_capacity */

struct agent {
    /* ^[A-Za-z0-9_]{1,10}(@[A-Za-z0-9_-]{1,30})?$ (WeChat's kf_account) */
    char account[48];
    char nick[256];              /* 1..64 characters, <= 255 bytes */
    int weight;                  /* AGENT_WEIGHT_MIN..MAX */
    int capacity;                /* 0 = [routing] default_capacity */
    char groups[AGENT_MAX_GROUPS][33]; /* ^[a-z0-9_-]{1,32}$, no "_all" */
    int ngroups;
};

struct agent_err {
    char msg[256];               /* names the field or the failed step */
    int mirror_stale;            /* 1: PostgreSQL was written, Redis not */
};

/* Empty record: weight 1, capacity default, no groups. Never fails. */
void agent_init(struct agent *a);

/* Each checks one field of untrusted input and, with KF_EINVAL, says why
 * in err->msg (which names the field). The setters copy on success. */
KF_WUR int agent_check_account(const char *account, struct agent_err *err);
KF_WUR int agent_check_nick(const char *nick, struct agent_err *err);
KF_WUR int agent_check_group(const char *group, struct agent_err *err);
KF_WUR int agent_set_account(struct agent *a, const char *account,
                             struct agent_err *err);
KF_WUR int agent_set_nick(struct agent *a, const char *nick,
                          struct agent_err *err);
/* Weight AGENT_WEIGHT_MIN..AGENT_WEIGHT_MAX; capacity 0..AGENT_CAPACITY_MAX
 * (0 = the default). */
KF_WUR int agent_check_weight(long long weight, struct agent_err *err);
KF_WUR int agent_check_capacity(long long capacity, struct agent_err *err);
/* Appends one group: refuses bad names, "_all", duplicates, a 17th. */
KF_WUR int agent_add_group(struct agent *a, const char *group,
                           struct agent_err *err);
/* The whole record, weight and capacity included. */
KF_WUR int agent_validate(const struct agent *a, struct agent_err *err);

/* A fresh token: 32 bytes from RAND_bytes as "wxa_" + 64 lowercase hex.
 * hash gets agent_token_hash(token). KF_ECRYPTO if OpenSSL fails. */
KF_WUR int agent_token_new(char token[AGENT_TOKEN_SIZE],
                           char hash[AGENT_HASH_SIZE]);
/* SHA-256 of the token's bytes as 64 lowercase hex: the only form in
 * which tokens are stored, and the key to authenticate with. */
KF_WUR int agent_token_hash(const char *token, char hex[AGENT_HASH_SIZE]);

/* --- PostgreSQL (the agents table) ----------------------------------- */

/* Every row, ordered by account (bytewise). token_sha256[i] is the hash of
 * v[i]'s token ("" if none) — never print it. */
struct agent_list {
    struct agent *v;
    char (*token_sha256)[AGENT_HASH_SIZE];
    size_t len;
};

void agent_list_init(struct agent_list *l);    /* never fails */
void agent_list_release(struct agent_list *l); /* safe twice */

/* On success *out is a new connection (lib/pg, with the timeouts of
 * use: PG_USE_REQUEST inside a FastCGI request, PG_USE_CLI elsewhere);
 * close it with agent_db_close(). KF_EBACKEND (err says why) if the
 * server cannot be reached. */
KF_WUR int agent_db_open(const char *dsn, enum pg_use use,
                         struct pg_conn **out, struct agent_err *err);
void agent_db_close(struct pg_conn *db);          /* NULL is fine */

/* INSERT; a taken account -> KF_EINVAL "account exists". token_hash is
 * the new token's agent_token_hash(). */
KF_WUR int agent_db_add(struct pg_conn *db, const struct agent *a,
                        const char *token_hash, struct agent_err *err);

/* Which fields agent_db_update changes (the others are kept). */
enum {
    AGENT_SET_NICK = 1,
    AGENT_SET_WEIGHT = 2,
    AGENT_SET_CAPACITY = 4,
    AGENT_SET_GROUPS = 8,
};

/* Partial UPDATE of v.account with the fields named in set (taken from v,
 * which must hold valid values for them). *out is the whole row after it
 * and out_hash its token hash. Unknown account -> KF_ENOTFOUND. */
KF_WUR int agent_db_update(struct pg_conn *db, const struct agent *v,
                           unsigned set, struct agent *out,
                           char out_hash[AGENT_HASH_SIZE],
                           struct agent_err *err);
/* DELETE; unknown account -> KF_ENOTFOUND. */
KF_WUR int agent_db_remove(struct pg_conn *db, const char *account,
                           struct agent_err *err);
/* Replaces l's contents with every row. */
KF_WUR int agent_db_list(struct pg_conn *db, struct agent_list *l,
                         struct agent_err *err);
/* Stores a new token's hash (the old token stops working in PostgreSQL at
 * once). *out gets the row. Unknown account -> KF_ENOTFOUND. */
KF_WUR int agent_db_rotate_token(struct pg_conn *db, const char *account,
                                 const char *token_hash, struct agent *out,
                                 struct agent_err *err);

/* --- Redis mirror ------------------------------------------------------ */

/* One atomic script: HSET P agent:<acct> nick weight capacity ("" =
 * default) groups; status=offline only if the hash is new (an existing
 * status is kept); SADD P agents; moves acct between the P group:<g> sets
 * to match a->groups. token_hash (NULL = keep) becomes P token:<hash> ->
 * acct and the token key it replaces is deleted. KF_EBACKEND if Redis is
 * unreachable. */
KF_WUR int agent_mirror_put(struct store *s, const struct agent *a,
                            const char *token_hash, struct agent_err *err);
/* Deletes acct from P agents and its groups, P agent:<acct> and its token
 * key, atomically and only if P load:<acct> is empty and it is offline;
 * else KF_EINVAL "agent has active sessions; set it offline first" (or
 * "agent is online; ..."). An agent missing from Redis is not an error. */
KF_WUR int agent_mirror_remove(struct store *s, const char *account,
                               struct agent_err *err);
/* The account's presence ("online", "paused", "offline") into status
 * and, when load is not NULL, the number of users it serves now (P
 * load:<acct>). KF_ENOTFOUND if it is not mirrored. */
KF_WUR int agent_mirror_status(struct store *s, const char *account,
                               char status[16], long long *load,
                               struct agent_err *err);

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

/* --- both stores: PostgreSQL first, then the mirror --------------------
 * Each is one transaction on db (which must not be in one already): the
 * SQL, then the Redis script, then COMMIT, holding an advisory lock on the
 * account throughout so the writes of one agent (and agent_mirror_sync_all)
 * reach Redis in the order PostgreSQL took them. When Redis fails they
 * still commit and return KF_EBACKEND with err->mirror_stale = 1 and a
 * message saying `wxkf agent sync` repairs it; the out-params are filled
 * as on success. err may be NULL. */

/* Validates, inserts, mirrors; token gets the new token (show it once;
 * on an error without mirror_stale it is wiped: nothing was saved). */
KF_WUR int agent_add(struct pg_conn *db, struct store *s,
                     const struct agent *a, char token[AGENT_TOKEN_SIZE],
                     struct agent_err *err);
/* Validates the fields in set, updates, mirrors; *out is the new row. */
KF_WUR int agent_update(struct pg_conn *db, struct store *s,
                        const struct agent *v, unsigned set,
                        struct agent *out, struct agent_err *err);
/* Issues a new token (into token) and revokes the old one in both. On
 * an error without mirror_stale, token is wiped (nothing was saved). */
KF_WUR int agent_rotate_token(struct pg_conn *db, struct store *s,
                              const char *account,
                              char token[AGENT_TOKEN_SIZE],
                              struct agent_err *err);
/* DELETE, then agent_mirror_remove; if the mirror refuses (sessions,
 * online) or Redis is unreachable the DELETE is rolled back, so an agent
 * with live sessions is never half removed. */
KF_WUR int agent_remove(struct pg_conn *db, struct store *s,
                        const char *account, struct agent_err *err);

#endif
