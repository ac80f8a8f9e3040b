/* agent: records, tokens, PostgreSQL rows and their Redis mirror. */
#include "agent.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "kf.h"
#include "pg.h"
#include "store.h"

#include "banned.h"

#define MAX_OLD_GROUPS 64        /* old groups read back from Redis */
#define MAX_RARGS 200            /* arguments of one Redis command */
#define RFIELD_MAX 65536         /* largest hash field we read back */
#define PUT_ATTEMPTS 5           /* optimistic retries of one script */
#define SCAN_COUNT "500"

/* ---------------------------------------------------------------- errors */

static int fail(struct agent_err *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct agent_err *err, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err) {
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return rc;
}

static void err_reset(struct agent_err *err)
{
    if (err) {
        err->msg[0] = '\0';
        err->mirror_stale = 0;
    }
}

/* PostgreSQL wrote, Redis did not: say so, keeping the Redis reason. */
static int stale(struct agent_err *err, int rc)
{
    char why[sizeof(err->msg)];

    if (!err)
        return rc;
    memcpy(why, err->msg, sizeof(why));
    err->mirror_stale = 1;
    return fail(err, KF_EBACKEND, "saved in PostgreSQL, but the Redis "
                "mirror is stale (%.120s); `wxkf agent sync` repairs it",
                why);
}

/* ------------------------------------------------------------ validation */

static int is_word(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '_';
}

static int is_group_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

int agent_check_account(const char *s, struct agent_err *err)
{
    size_t i = 0, j;

    if (!s)
        s = "";
    while (i <= 10 && is_word((unsigned char)s[i]))
        i++;
    if (i >= 1 && i <= 10 && s[i] == '\0')
        return 0;
    if (i >= 1 && i <= 10 && s[i] == '@') {
        for (j = i + 1; j - i <= 31 && (is_word((unsigned char)s[j]) ||
                                        s[j] == '-'); j++)
            ;
        if (j - i - 1 >= 1 && j - i - 1 <= 30 && s[j] == '\0')
            return 0;
    }
    return fail(err, KF_EINVAL, "account: must be 1-10 of [A-Za-z0-9_], "
                "optionally followed by @ and 1-30 of [A-Za-z0-9_-]");
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid
 * (overlong, surrogate, beyond U+10FFFF, truncated); *cp gets it. */
static size_t utf8_next(const unsigned char *p, size_t n, unsigned long *cp)
{
    uint32_t c = 0;
    size_t len = kf_utf8_next(p, n, &c);

    *cp = c;
    return len;
}

int agent_check_nick(const char *nick, struct agent_err *err)
{
    const unsigned char *p = (const unsigned char *)(nick ? nick : "");
    size_t n = strlen((const char *)p), chars = 0, i = 0, len;
    unsigned long c;

    if (n == 0)
        return fail(err, KF_EINVAL, "nick: must not be empty");
    if (n > 255)
        return fail(err, KF_EINVAL, "nick: longer than 255 bytes");
    while (i < n) {
        len = utf8_next(p + i, n - i, &c);
        if (len == 0)
            return fail(err, KF_EINVAL, "nick: not valid UTF-8");
        if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0))
            return fail(err, KF_EINVAL,
                        "nick: control characters are not allowed");
        i += len;
        chars++;
    }
    if (chars > AGENT_NICK_CHARS)
        return fail(err, KF_EINVAL, "nick: longer than %d characters",
                    AGENT_NICK_CHARS);
    return 0;
}

int agent_check_group(const char *g, struct agent_err *err)
{
    size_t i;

    if (!g)
        g = "";
    for (i = 0; g[i] && i <= 32; i++)
        if (!is_group_char((unsigned char)g[i]))
            break;
    if (i == 0 || i > 32 || g[i])
        return fail(err, KF_EINVAL,
                    "group: must be 1-32 of [a-z0-9_-]");
    if (strcmp(g, "_all") == 0)
        return fail(err, KF_EINVAL, "group: \"_all\" is reserved "
                    "(every agent is in it)");
    return 0;
}

void agent_init(struct agent *a)
{
    memset(a, 0, sizeof(*a));
    a->weight = 1;
}

static int copy_checked(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);

    if (len >= n)
        return KF_ETOOBIG;
    memcpy(dst, src, len + 1);
    return 0;
}

int agent_set_account(struct agent *a, const char *account,
                      struct agent_err *err)
{
    int rc = agent_check_account(account, err);

    if (rc == 0 && copy_checked(a->account, sizeof(a->account), account))
        rc = fail(err, KF_EINVAL, "account: too long");
    return rc;
}

int agent_set_nick(struct agent *a, const char *nick, struct agent_err *err)
{
    int rc = agent_check_nick(nick, err);

    if (rc == 0 && copy_checked(a->nick, sizeof(a->nick), nick))
        rc = fail(err, KF_EINVAL, "nick: longer than 255 bytes");
    return rc;
}

static int has_group(const struct agent *a, int upto, const char *g)
{
    int i;

    for (i = 0; i < upto; i++)
        if (strcmp(a->groups[i], g) == 0)
            return 1;
    return 0;
}

int agent_add_group(struct agent *a, const char *group, struct agent_err *err)
{
    int rc = agent_check_group(group, err);

    if (rc < 0)
        return rc;
    if (has_group(a, a->ngroups, group))
        return fail(err, KF_EINVAL, "group: \"%s\" given twice", group);
    if (a->ngroups >= AGENT_MAX_GROUPS)
        return fail(err, KF_EINVAL, "group: at most %d groups",
                    AGENT_MAX_GROUPS);
    memcpy(a->groups[a->ngroups++], group, strlen(group) + 1);
    return 0;
}

static int terminated(const char *p, size_t n)
{
    return memchr(p, '\0', n) != NULL;
}

static int check_groups(const struct agent *a, struct agent_err *err)
{
    int i, rc;

    if (a->ngroups < 0 || a->ngroups > AGENT_MAX_GROUPS)
        return fail(err, KF_EINVAL, "group: at most %d groups",
                    AGENT_MAX_GROUPS);
    for (i = 0; i < a->ngroups; i++) {
        if (!terminated(a->groups[i], sizeof(a->groups[i])))
            return fail(err, KF_EINVAL, "group: too long");
        rc = agent_check_group(a->groups[i], err);
        if (rc < 0)
            return rc;
        if (has_group(a, i, a->groups[i]))
            return fail(err, KF_EINVAL, "group: \"%s\" given twice",
                        a->groups[i]);
    }
    return 0;
}

int agent_check_weight(long long w, struct agent_err *err)
{
    return w >= AGENT_WEIGHT_MIN && w <= AGENT_WEIGHT_MAX
               ? 0 : fail(err, KF_EINVAL, "weight: must be %d..%d",
                          AGENT_WEIGHT_MIN, AGENT_WEIGHT_MAX);
}

int agent_check_capacity(long long c, struct agent_err *err)
{
    return c >= 0 && c <= AGENT_CAPACITY_MAX
               ? 0 : fail(err, KF_EINVAL, "capacity: must be 1..%d "
                          "(0 = the default)", AGENT_CAPACITY_MAX);
}

int agent_validate(const struct agent *a, struct agent_err *err)
{
    int rc = 0;

    if (!terminated(a->account, sizeof(a->account)))
        return fail(err, KF_EINVAL, "account: too long");
    if (!terminated(a->nick, sizeof(a->nick)))
        return fail(err, KF_EINVAL, "nick: longer than 255 bytes");
    rc = agent_check_account(a->account, err);
    if (rc == 0)
        rc = agent_check_nick(a->nick, err);
    if (rc == 0)
        rc = agent_check_weight(a->weight, err);
    if (rc == 0)
        rc = agent_check_capacity(a->capacity, err);
    if (rc == 0)
        rc = check_groups(a, err);
    return rc;
}

/* ---------------------------------------------------------------- tokens */

static int is_hash(const char *h)
{
    size_t i;

    for (i = 0; i < 64; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return 0;
    return h[64] == '\0';
}

int agent_token_hash(const char *token, char hex[AGENT_HASH_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL) != 1 ||
        n != 32)
        return KF_ECRYPTO;
    kf_hex(md, 32, hex);
    return 0;
}

int agent_token_new(char token[AGENT_TOKEN_SIZE], char hash[AGENT_HASH_SIZE])
{
    unsigned char raw[32];
    int rc;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return KF_ECRYPTO;
    memcpy(token, AGENT_TOKEN_PREFIX, 4);
    kf_hex(raw, sizeof(raw), token + 4);
    OPENSSL_cleanse(raw, sizeof(raw));
    rc = agent_token_hash(token, hash);
    if (rc < 0)
        OPENSSL_cleanse(token, AGENT_TOKEN_SIZE);
    return rc;
}

/* ------------------------------------------------------------ PostgreSQL */

/* The columns every row-returning statement selects, decoded by row_get. */
#define ROW_COLS "account, nick, weight, coalesce(capacity, 0), " \
                 "array_to_string(groups, ','), " \
                 "coalesce(encode(token_sha256, 'hex'), '')"

void agent_list_init(struct agent_list *l)
{
    memset(l, 0, sizeof(*l));
}

void agent_list_release(struct agent_list *l)
{
    free(l->v);
    free(l->token_sha256);
    agent_list_init(l);
}

int agent_db_open(const char *dsn, enum pg_use use, struct pg_conn **out,
                  struct agent_err *err)
{
    struct pg_err e;
    int rc = pg_open(dsn, "wxkf-agent", use, out, &e);

    if (rc == KF_ENOMEM)
        return fail(err, rc, "PostgreSQL: out of memory");
    if (rc < 0)
        return fail(err, KF_EBACKEND, "PostgreSQL: %s", e.msg);
    return 0;
}

void agent_db_close(struct pg_conn *db)
{
    pg_close(db);
}

/* Runs sql with text parameters (NULL = SQL NULL). On success *out (if
 * out) is new (caller pg_res_free()s); otherwise lib/pg's class says
 * why: a unique violation is KF_EINVAL "account exists", other data the
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
        return fail(err, KF_EINVAL, "account exists");
    if (rc == KF_EINVAL)
        return fail(err, KF_EINVAL, "refused by PostgreSQL: %s", e.msg);
    return fail(err, rc == KF_EBACKEND ? KF_EBACKEND : KF_EIO,
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
static int begin_locked(struct pg_conn *db, const char *account,
                        struct agent_err *err)
{
    const char *params[1] = { account };
    int rc = pq_simple(db, "BEGIN", err);

    if (rc < 0)
        return rc;
    rc = pq_run(db, "SELECT pg_advisory_xact_lock(" LOCK_CLASS
                    ", hashtext($1))", 1, params, NULL, err);
    if (rc < 0)
        pq_simple(db, "ROLLBACK", NULL);
    return rc;
}

static void rollback(struct pg_conn *db)
{
    pq_simple(db, "ROLLBACK", NULL);
}

/* COMMIT after the mirror step returned mrc (its reason in err): a failed
 * COMMIT means nothing was saved; a failed mirror after a good COMMIT
 * means the mirror is stale. */
static int commit_after_mirror(struct pg_conn *db, int mrc,
                               struct agent_err *err)
{
    char why[sizeof(err->msg)];
    int rc;

    memcpy(why, err->msg, sizeof(why));
    rc = pq_simple(db, "COMMIT", err);
    if (rc < 0) {
        memcpy(why, err->msg, sizeof(why));
        return fail(err, rc, "%.160s; nothing was saved%s", why,
                    mrc == 0 ? " (`wxkf agent sync` resets the mirror)"
                             : "");
    }
    if (mrc == 0)
        return 0;
    memcpy(err->msg, why, sizeof(why));
    return stale(err, mrc);
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

/* Splits a comma list into names of 1..32 bytes (others are skipped when
 * lenient, an error otherwise). At most max names. */
static int split_groups(const char *p, size_t len, char (*out)[33], int max,
                        int *n, int lenient)
{
    size_t i = 0, j;

    *n = 0;
    while (i < len) {
        for (j = i; j < len && p[j] != ','; j++)
            ;
        if (j - i >= 1 && j - i <= 32 && *n < max) {
            memcpy(out[*n], p + i, j - i);
            out[(*n)++][j - i] = '\0';
        } else if (!lenient) {
            return KF_EPARSE;
        }
        i = j + 1;
    }
    return 0;
}

/* Row i of a ROW_COLS result into a (validated) and hash. */
static int row_get(const struct pg_res *r, int i, struct agent *a,
                   char hash[AGENT_HASH_SIZE], struct agent_err *err)
{
    const char *groups = pg_res_value(r, i, 4), *h = pg_res_value(r, i, 5);
    int rc;

    agent_init(a);
    if (copy_checked(a->account, sizeof(a->account), pg_res_value(r, i, 0)) ||
        copy_checked(a->nick, sizeof(a->nick), pg_res_value(r, i, 1)) ||
        parse_int(pg_res_value(r, i, 2), &a->weight) ||
        parse_int(pg_res_value(r, i, 3), &a->capacity) ||
        split_groups(groups, strlen(groups), a->groups, AGENT_MAX_GROUPS,
                     &a->ngroups, 0) ||
        (*h && !is_hash(h)))
        return fail(err, KF_EPARSE, "a stored agent row is malformed");
    rc = agent_validate(a, err);
    if (rc < 0) {
        char why[sizeof(err->msg)];

        memcpy(why, err->msg, sizeof(why));
        return fail(err, KF_EPARSE, "stored agent %.48s is invalid (%.120s)",
                    a->account, why);
    }
    memcpy(hash, h, strlen(h) + 1);
    return 0;
}

/* The groups as a text[] literal: {"a","b"} (names are [a-z0-9_-], so
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
    if (token_hash && !is_hash(token_hash)) {
        rc = fail(err, KF_EINVAL, "token hash: not 64 hex digits");
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
        rc = fail(err, KF_ENOTFOUND, "no agent %.48s", params[0]);
    if (rc == 0)
        rc = row_get(r, 0, out, hash, err);
    pg_res_free(r);
    return rc;
}

static int check_patch(const struct agent *v, unsigned set,
                       struct agent_err *err)
{
    int rc = agent_check_account(v->account, err);

    if (rc == 0 && (set & AGENT_SET_NICK))
        rc = terminated(v->nick, sizeof(v->nick))
                 ? agent_check_nick(v->nick, err)
                 : fail(err, KF_EINVAL, "nick: longer than 255 bytes");
    if (rc == 0 && (set & AGENT_SET_WEIGHT))
        rc = agent_check_weight(v->weight, err);
    if (rc == 0 && (set & AGENT_SET_CAPACITY))
        rc = agent_check_capacity(v->capacity, err);
    if (rc == 0 && (set & AGENT_SET_GROUPS))
        rc = check_groups(v, err);
    return rc;
}

int agent_db_update(struct pg_conn *db, const struct agent *v, unsigned set,
                    struct agent *out, char out_hash[AGENT_HASH_SIZE],
                    struct agent_err *err)
{
    char weight[16], cap[16];
    const char *params[6];
    struct kf_buf groups;
    int rc = check_patch(v, set, err);

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
        rc = fail(err, KF_ENOTFOUND, "no agent %s", account);
    pg_res_free(r);
    return rc;
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
        rc = fail(err, KF_ENOMEM, "out of memory");
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
    if (!token_hash || !is_hash(token_hash))
        return fail(err, KF_EINVAL, "token hash: not 64 hex digits");
    return one_row(db, "UPDATE agents SET token_sha256 = decode($2, 'hex'),"
                       " updated_at = now() WHERE account = $1 "
                       "RETURNING " ROW_COLS,
                   2, params, out, hash, err);
}

/* ----------------------------------------------------------- Redis mirror */

/* KEYS[1] P agent:<acct>  KEYS[2] P agents  KEYS[3] P token:<new> (or
 * KEYS[1])  KEYS[4] P token:<old> (or KEYS[1])  KEYS[5..] P group:<g>.
 * ARGV[1] acct  ARGV[2] groups as read  ARGV[3] token_sha256 as read
 * ARGV[4] nick  ARGV[5] weight  ARGV[6] capacity  ARGV[7] groups
 * ARGV[8] new token hash ('' = keep)  ARGV[9] '1' = DEL KEYS[4]
 * ARGV[10..] per group key: '1' member, '0' not.
 * The caller read the hash first to name the old groups' keys (scripts
 * only touch declared keys); 0 = it changed since (read and retry). */
static const char put_lua[] =
    "local cur = redis.call('HMGET', KEYS[1], 'groups', 'token_sha256')\n"
    "if (cur[1] or '') ~= ARGV[2] or (cur[2] or '') ~= ARGV[3] then\n"
    "  return 0 end\n"
    "redis.call('HSET', KEYS[1], 'nick', ARGV[4], 'weight', ARGV[5],\n"
    "           'capacity', ARGV[6], 'groups', ARGV[7])\n"
    "redis.call('HSETNX', KEYS[1], 'status', 'offline')\n"
    "redis.call('SADD', KEYS[2], ARGV[1])\n"
    "for i = 5, #KEYS do\n"
    "  if ARGV[i + 5] == '1' then redis.call('SADD', KEYS[i], ARGV[1])\n"
    "  else redis.call('SREM', KEYS[i], ARGV[1]) end\n"
    "end\n"
    "if ARGV[8] ~= '' then\n"
    "  redis.call('SET', KEYS[3], ARGV[1])\n"
    "  redis.call('HSET', KEYS[1], 'token_sha256', ARGV[8])\n"
    "end\n"
    "if ARGV[9] == '1' then redis.call('DEL', KEYS[4]) end\n"
    "return 1\n";

/* KEYS[1] P agent:<acct>  KEYS[2] P agents  KEYS[3] P load:<acct>
 * KEYS[4] P token:<hash> (or KEYS[1])  KEYS[5..] P group:<g>.
 * ARGV[1] acct  ARGV[2] groups as read  ARGV[3] token_sha256 as read
 * ARGV[4] '1' = DEL KEYS[4]. Also deletes P inbox:<acct> (the feed).
 * 1 removed, 0 changed since read, -1 active sessions, -2 not offline. */
static const char remove_lua[] =
    "local cur = redis.call('HMGET', KEYS[1], 'groups', 'token_sha256',\n"
    "                       'status')\n"
    "if (cur[1] or '') ~= ARGV[2] or (cur[2] or '') ~= ARGV[3] then\n"
    "  return 0 end\n"
    "if redis.call('SCARD', KEYS[3]) > 0 then return -1 end\n"
    "if (cur[3] or 'offline') ~= 'offline' then return -2 end\n"
    "redis.call('SREM', KEYS[2], ARGV[1])\n"
    "for i = 5, #KEYS do redis.call('SREM', KEYS[i], ARGV[1]) end\n"
    "if ARGV[4] == '1' then redis.call('DEL', KEYS[4]) end\n"
    "redis.call('DEL', KEYS[1])\n"
    /* its feed goes too: an account made again later starts empty */
    "local p = string.sub(KEYS[2], 1, #KEYS[2] - 6)\n"
    "redis.call('DEL', p .. 'inbox:' .. ARGV[1])\n"
    "return 1\n";

/* KEYS[1] P token:<h>  KEYS[2] P agent:<acct> (absent if acct is not an
 * account)  ARGV[1] acct as read  ARGV[2] h. Deletes a token key that
 * its agent's hash does not name. */
static const char sweep_token_lua[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "if #KEYS > 1 and\n"
    "   redis.call('HGET', KEYS[2], 'token_sha256') == ARGV[2] then\n"
    "  return 0 end\n"
    "return redis.call('DEL', KEYS[1])\n";

/* KEYS[1] P group:<g>  KEYS[2] P agent:<m> (absent if m is not an
 * account)  ARGV[1] m  ARGV[2] g. Removes a member whose hash does not
 * list the group. */
static const char sweep_group_lua[] =
    "local gs = #KEYS > 1 and redis.call('HGET', KEYS[2], 'groups')\n"
    "if gs and string.find(',' .. gs .. ',', ',' .. ARGV[2] .. ',', 1,\n"
    "                      true) then return 0 end\n"
    "return redis.call('SREM', KEYS[1], ARGV[1])\n";

/* The arguments of one command, copied into one buffer. The first error
 * sticks and rrun reports it, so building needs no checks. */
struct rargs {
    struct kf_buf buf;               /* each argument followed by a NUL */
    size_t off[MAX_RARGS], len[MAX_RARGS];
    const char *argv[MAX_RARGS];
    int argc, rc;
};

static void rargs_init(struct rargs *a)
{
    kf_buf_init(&a->buf, 1 << 20);
    a->argc = 0;
    a->rc = 0;
}

static void rargs_release(struct rargs *a)
{
    kf_buf_release(&a->buf);
}

/* Ends the argument that started at byte start of the buffer. */
static void rargs_end(struct rargs *a, size_t start)
{
    if (a->rc == 0)
        a->rc = kf_buf_append(&a->buf, "", 1);
    if (a->rc == 0) {
        a->off[a->argc] = start;
        a->len[a->argc++] = a->buf.len - start - 1;
    }
}

static void rargs_add(struct rargs *a, const char *p, size_t n)
{
    size_t start = a->buf.len;

    if (a->rc == 0 && a->argc >= MAX_RARGS)
        a->rc = KF_ETOOBIG;
    if (a->rc == 0)
        a->rc = kf_buf_append(&a->buf, p, n);
    rargs_end(a, start);
}

static void rargs_c(struct rargs *a, const char *s)
{
    rargs_add(a, s, strlen(s));
}

/* The key prefix + kind + name as one argument. */
static void rargs_key(struct rargs *a, const struct store *s,
                      const char *kind, const char *name)
{
    size_t start = a->buf.len;

    if (a->rc == 0 && a->argc >= MAX_RARGS)
        a->rc = KF_ETOOBIG;
    if (a->rc == 0)
        a->rc = store_key(s, kind, &a->buf);
    if (a->rc == 0)
        a->rc = kf_buf_append_c(&a->buf, name);
    rargs_end(a, start);
}

/* Connects, or heals a broken connection (store_ping reconnects). */
static int rconnect(struct store *s, struct agent_err *err)
{
    return store_ping(s) < 0
               ? fail(err, KF_EBACKEND, "Redis unreachable") : 0;
}

/* Sends the command. On success *out is new (caller freeReplyObject()s).
 * No reply is KF_EBACKEND; an error reply KF_EIO. */
static int rrun(struct store *s, struct rargs *a, redisReply **out,
                struct agent_err *err)
{
    int i;

    *out = NULL;
    if (a->rc < 0)
        return fail(err, a->rc, "Redis: command too large");
    if (!s->rc)
        return fail(err, KF_EBACKEND, "Redis unreachable");
    for (i = 0; i < a->argc; i++)
        a->argv[i] = a->buf.p + a->off[i];
    *out = redisCommandArgv(s->rc, a->argc, a->argv, a->len);
    if (!*out)
        return fail(err, KF_EBACKEND, "Redis: %s",
                    s->rc->errstr[0] ? s->rc->errstr : "no reply");
    if ((*out)->type == REDIS_REPLY_ERROR) {
        if (store_reply_role_error(s, *out)) {   /* mid fail-over */
            fail(err, KF_EBACKEND, "Redis: %.*s",
                 (*out)->len > 160 ? 160 : (int)(*out)->len, (*out)->str);
            freeReplyObject(*out);
            *out = NULL;
            return KF_EBACKEND;
        }
        fail(err, KF_EIO, "Redis: %.*s",
             (*out)->len > 160 ? 160 : (int)(*out)->len, (*out)->str);
        freeReplyObject(*out);
        *out = NULL;
        return KF_EIO;
    }
    return 0;
}

static int rrun_int(struct store *s, struct rargs *a, long long *v,
                    struct agent_err *err)
{
    redisReply *r;
    int rc = rrun(s, a, &r, err);

    if (rc == 0 && r->type != REDIS_REPLY_INTEGER)
        rc = fail(err, KF_EBACKEND, "Redis: unexpected reply");
    if (rc == 0)
        *v = r->integer;
    if (r)
        freeReplyObject(r);
    return rc;
}

/* What P agent:<acct> holds now (raw, untrusted). */
struct mirror_state {
    struct kf_buf groups, token, status;
    char old[MAX_OLD_GROUPS][33];   /* the group names in groups */
    int nold;
};

static void state_init(struct mirror_state *m)
{
    kf_buf_init(&m->groups, RFIELD_MAX);
    kf_buf_init(&m->token, RFIELD_MAX);
    kf_buf_init(&m->status, RFIELD_MAX);
    m->nold = 0;
}

static void state_release(struct mirror_state *m)
{
    kf_buf_release(&m->groups);
    kf_buf_release(&m->token);
    kf_buf_release(&m->status);
}

static int copy_field(struct kf_buf *dst, const redisReply *e)
{
    kf_buf_reset(dst);
    if (e->type == REDIS_REPLY_STRING)
        return kf_buf_append(dst, e->str, e->len);
    return kf_buf_append(dst, "", 0);
}

static int state_read(struct store *s, const char *account,
                      struct mirror_state *m, struct agent_err *err)
{
    struct rargs a;
    redisReply *r = NULL;
    int rc;

    rargs_init(&a);
    rargs_c(&a, "HMGET");
    rargs_key(&a, s, "agent:", account);
    rargs_c(&a, "groups");
    rargs_c(&a, "token_sha256");
    rargs_c(&a, "status");
    rc = rrun(s, &a, &r, err);
    if (rc < 0)
        goto out;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        rc = fail(err, KF_EBACKEND, "Redis: unexpected HMGET reply");
        goto out;
    }
    rc = copy_field(&m->groups, r->element[0]);
    if (rc == 0)
        rc = copy_field(&m->token, r->element[1]);
    if (rc == 0)
        rc = copy_field(&m->status, r->element[2]);
    if (rc == 0)
        rc = split_groups(m->groups.p, m->groups.len, m->old,
                          MAX_OLD_GROUPS, &m->nold, 1);
    if (rc < 0)
        rc = fail(err, rc, "Redis: agent:%s is too large", account);
out:
    if (r)
        freeReplyObject(r);
    rargs_release(&a);
    return rc;
}

/* The stored token key is to be deleted: it names a hash, and nw (NULL
 * on removal) is not that hash. */
static int drop_old_token(const struct mirror_state *m, const char *nw)
{
    return m->token.len == 64 && is_hash(m->token.p) &&
           (!nw || strcmp(nw, m->token.p) != 0);
}

/* An old group whose set the agent leaves (bad names are not ours). */
static int leaving(const struct agent *ag, const char *g)
{
    return !has_group(ag, ag->ngroups, g) && agent_check_group(g, NULL) == 0;
}

static int comma_groups(const struct agent *a, struct kf_buf *out)
{
    int i, rc = kf_buf_append(out, "", 0);

    for (i = 0; rc == 0 && i < a->ngroups; i++)
        rc = kf_buf_printf(out, "%s%s", i ? "," : "", a->groups[i]);
    return rc;
}

/* One run of put_lua; *done = 0 if the hash changed since m was read. */
static int put_once(struct store *s, const struct agent *ag,
                    const char *token_hash, const struct mirror_state *m,
                    int *done, struct agent_err *err)
{
    char weight[16], cap[16], nkeys[16];
    int i, rc, nk = 4 + ag->ngroups;
    int drop = token_hash && drop_old_token(m, token_hash);
    struct kf_buf groups;
    struct rargs a;
    long long v = 0;

    for (i = 0; i < m->nold; i++)
        nk += leaving(ag, m->old[i]);
    snprintf(nkeys, sizeof(nkeys), "%d", nk);
    snprintf(weight, sizeof(weight), "%d", ag->weight);
    snprintf(cap, sizeof(cap), "%d", ag->capacity);
    rargs_init(&a);
    kf_buf_init(&groups, 1024);
    a.rc = comma_groups(ag, &groups);
    rargs_c(&a, "EVAL");
    rargs_c(&a, put_lua);
    rargs_c(&a, nkeys);
    rargs_key(&a, s, "agent:", ag->account);
    rargs_key(&a, s, "agents", "");
    rargs_key(&a, s, token_hash ? "token:" : "agent:",
              token_hash ? token_hash : ag->account);
    rargs_key(&a, s, drop ? "token:" : "agent:",
              drop ? m->token.p : ag->account);
    for (i = 0; i < ag->ngroups; i++)
        rargs_key(&a, s, "group:", ag->groups[i]);
    for (i = 0; i < m->nold; i++)
        if (leaving(ag, m->old[i]))
            rargs_key(&a, s, "group:", m->old[i]);
    rargs_c(&a, ag->account);
    rargs_add(&a, m->groups.p, m->groups.len);
    rargs_add(&a, m->token.p, m->token.len);
    rargs_c(&a, ag->nick);
    rargs_c(&a, weight);
    rargs_c(&a, ag->capacity ? cap : "");
    rargs_add(&a, groups.p, groups.len);
    rargs_c(&a, token_hash ? token_hash : "");
    rargs_c(&a, drop ? "1" : "0");
    for (i = 0; i < ag->ngroups; i++)
        rargs_c(&a, "1");
    for (i = 0; i < m->nold; i++)
        if (leaving(ag, m->old[i]))
            rargs_c(&a, "0");
    rc = rrun_int(s, &a, &v, err);
    *done = rc == 0 && v == 1;
    kf_buf_release(&groups);
    rargs_release(&a);
    return rc;
}

int agent_mirror_put(struct store *s, const struct agent *ag,
                     const char *token_hash, struct agent_err *err)
{
    struct mirror_state m;
    int rc = agent_validate(ag, err), attempt, done = 0;

    if (rc < 0)
        return rc;
    if (token_hash && !is_hash(token_hash))
        return fail(err, KF_EINVAL, "token hash: not 64 hex digits");
    rc = rconnect(s, err);
    state_init(&m);
    for (attempt = 0; rc == 0 && !done && attempt < PUT_ATTEMPTS;
         attempt++) {
        rc = state_read(s, ag->account, &m, err);
        if (rc == 0)
            rc = put_once(s, ag, token_hash, &m, &done, err);
    }
    if (rc == 0 && !done)
        rc = fail(err, KF_EBACKEND, "Redis: agent:%s kept changing; "
                  "try again", ag->account);
    state_release(&m);
    return rc;
}

/* One run of remove_lua; *v is its answer. */
static int remove_once(struct store *s, const char *account,
                       const struct mirror_state *m, long long *v,
                       struct agent_err *err)
{
    int i, nk = 4, drop = drop_old_token(m, NULL), rc;
    char nkeys[16];
    struct rargs a;

    for (i = 0; i < m->nold; i++)
        nk += agent_check_group(m->old[i], NULL) == 0;
    snprintf(nkeys, sizeof(nkeys), "%d", nk);
    rargs_init(&a);
    rargs_c(&a, "EVAL");
    rargs_c(&a, remove_lua);
    rargs_c(&a, nkeys);
    rargs_key(&a, s, "agent:", account);
    rargs_key(&a, s, "agents", "");
    rargs_key(&a, s, "load:", account);
    rargs_key(&a, s, drop ? "token:" : "agent:",
              drop ? m->token.p : account);
    for (i = 0; i < m->nold; i++)
        if (agent_check_group(m->old[i], NULL) == 0)
            rargs_key(&a, s, "group:", m->old[i]);
    rargs_c(&a, account);
    rargs_add(&a, m->groups.p, m->groups.len);
    rargs_add(&a, m->token.p, m->token.len);
    rargs_c(&a, drop ? "1" : "0");
    rc = rrun_int(s, &a, v, err);
    rargs_release(&a);
    return rc;
}

/* The status as read, if it is a plain word (it is shown to people). */
static const char *status_word(const struct kf_buf *b)
{
    size_t i;

    for (i = 0; i < b->len; i++)
        if (b->p[i] < 'a' || b->p[i] > 'z')
            return "not offline";
    return b->len && b->len < 16 ? b->p : "not offline";
}

int agent_mirror_remove(struct store *s, const char *account,
                        struct agent_err *err)
{
    struct mirror_state m;
    long long v = 0;
    int rc = agent_check_account(account, err), attempt;

    if (rc < 0)
        return rc;
    rc = rconnect(s, err);
    state_init(&m);
    for (attempt = 0; rc == 0 && v == 0 && attempt < PUT_ATTEMPTS;
         attempt++) {
        rc = state_read(s, account, &m, err);
        if (rc == 0)
            rc = remove_once(s, account, &m, &v, err);
    }
    if (rc == 0 && v == -1)
        rc = fail(err, KF_EINVAL,
                  "agent has active sessions; set it offline first");
    else if (rc == 0 && v == -2)
        rc = fail(err, KF_EINVAL, "agent is %s; set it offline first",
                  status_word(&m.status));
    else if (rc == 0 && v != 1)
        rc = fail(err, KF_EBACKEND, "Redis: agent:%s kept changing; "
                  "try again", account);
    state_release(&m);
    return rc;
}

int agent_mirror_status(struct store *s, const char *account,
                        char status[16], long long *load,
                        struct agent_err *err)
{
    struct mirror_state m;
    struct rargs a;
    int rc = agent_check_account(account, err);

    status[0] = '\0';
    if (rc < 0)
        return rc;
    state_init(&m);
    rc = rconnect(s, err);
    if (rc == 0)
        rc = state_read(s, account, &m, err);
    if (rc == 0 && m.status.len == 0)
        rc = fail(err, KF_ENOTFOUND, "agent %s is not in Redis", account);
    if (rc == 0)
        snprintf(status, 16, "%s", status_word(&m.status));
    state_release(&m);
    if (rc == 0 && load) {
        rargs_init(&a);
        rargs_c(&a, "SCARD");
        rargs_key(&a, s, "load:", account);
        rc = rrun_int(s, &a, load, err);
        rargs_release(&a);
    }
    return rc;
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
    const char *params[1] = { account };
    char hash[AGENT_HASH_SIZE];
    struct agent a;
    int rc = begin_locked(y->db, account, y->err);

    if (rc < 0)
        return rc;
    rc = one_row(y->db, "SELECT " ROW_COLS " FROM agents "
                        "WHERE account = $1", 1, params, &a, hash, y->err);
    if (rc == 0) {
        rc = agent_mirror_put(y->s, &a, hash[0] ? hash : NULL, y->err);
        y->st->mirrored += rc == 0;
    } else if (rc == KF_ENOTFOUND) {
        rc = agent_mirror_remove(y->s, account, y->err);
        if (rc == 0)
            y->st->removed++;
        else if (rc == KF_EINVAL)
            y->st->kept++, rc = 0;
    }
    rollback(y->db);               /* it only read and held the lock */
    return rc;
}

/* An agent Redis has and the list has not (p is untrusted). */
static int drop_unknown(struct sync *y, const char *p, size_t len)
{
    char acct[48];

    if (len >= sizeof(acct) || memchr(p, '\0', len))
        return 0;
    memcpy(acct, p, len);
    acct[len] = '\0';
    if (agent_check_account(acct, NULL) < 0 || in_list(y->l, acct))
        return 0;
    return sync_one(y, acct);
}

static int drop_unknown_members(struct sync *y)
{
    struct rargs a;
    redisReply *r = NULL;
    size_t i;
    int rc;

    rargs_init(&a);
    rargs_c(&a, "SMEMBERS");
    rargs_key(&a, y->s, "agents", "");
    rc = rrun(y->s, &a, &r, y->err);
    if (rc == 0 && r->type != REDIS_REPLY_ARRAY)
        rc = fail(y->err, KF_EBACKEND, "Redis: unexpected SMEMBERS reply");
    for (i = 0; rc == 0 && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            rc = drop_unknown(y, r->element[i]->str, r->element[i]->len);
    if (r)
        freeReplyObject(r);
    rargs_release(&a);
    return rc;
}

/* Runs a sweep script on key for member; KEYS[2] = P agent:<member>
 * when member is an account. Counts what it removed. */
static int sweep_run(struct sync *y, const char *script,
                     const redisReply *key, const char *name,
                     const char *member, size_t member_len)
{
    char acct[48];
    int isacct = 0, rc;
    struct rargs a;
    long long v = 0;

    if (member_len < sizeof(acct)) {
        memcpy(acct, member, member_len);
        acct[member_len] = '\0';
        isacct = strlen(acct) == member_len &&
                 agent_check_account(acct, NULL) == 0;
    }
    rargs_init(&a);
    rargs_c(&a, "EVAL");
    rargs_c(&a, script);
    rargs_c(&a, isacct ? "2" : "1");
    rargs_add(&a, key->str, key->len);
    if (isacct)
        rargs_key(&a, y->s, "agent:", acct);
    rargs_add(&a, member, member_len);
    rargs_c(&a, name);
    rc = rrun_int(y->s, &a, &v, y->err);
    if (rc == KF_EIO)              /* e.g. WRONGTYPE: not ours, skip it */
        rc = 0;
    y->st->swept += rc == 0 && v == 1;
    rargs_release(&a);
    return rc;
}

/* Reads one key with cmd (GET, SMEMBERS). *r is NULL when the key holds
 * another type (KF_EIO from Redis, e.g. WRONGTYPE): not ours, skip it. */
static int read_key(struct sync *y, const char *cmd, const redisReply *key,
                    redisReply **r)
{
    struct rargs a;
    int rc;

    *r = NULL;
    rargs_init(&a);
    rargs_c(&a, cmd);
    rargs_add(&a, key->str, key->len);
    rc = rrun(y->s, &a, r, y->err);
    rargs_release(&a);
    return rc == KF_EIO ? 0 : rc;
}

/* One P token:<h> key: GET its account, then the guarded DEL. */
static int sweep_token(struct sync *y, const redisReply *key,
                       const char *name)
{
    redisReply *r = NULL;
    int rc = read_key(y, "GET", key, &r);

    if (rc == 0 && r && r->type == REDIS_REPLY_STRING)
        rc = sweep_run(y, sweep_token_lua, key, name, r->str, r->len);
    if (r)
        freeReplyObject(r);
    return rc;
}

/* One P group:<g> set: each member's agent hash must list g. */
static int sweep_group(struct sync *y, const redisReply *key,
                       const char *name)
{
    redisReply *r = NULL;
    size_t i;
    int rc;

    if (strcmp(name, "_all") == 0)
        return 0;                  /* reserved: never ours to edit */
    rc = read_key(y, "SMEMBERS", key, &r);
    if (rc == 0 && r && r->type == REDIS_REPLY_ARRAY)
        for (i = 0; rc == 0 && i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING)
                rc = sweep_run(y, sweep_group_lua, key, name,
                               r->element[i]->str, r->element[i]->len);
    if (r)
        freeReplyObject(r);
    return rc;
}

/* One P agent:<acct> hash (e.g. left behind by a lost P agents set). */
static int sweep_agent(struct sync *y, const redisReply *key,
                       const char *name)
{
    (void)key;
    return drop_unknown(y, name, strlen(name));
}

typedef int sweep_fn(struct sync *y, const redisReply *key,
                     const char *name);

/* SCAN MATCH prefix + kind + "*"; fn gets each key and the rest of its
 * name (keys whose rest is long or holds a NUL are skipped). */
static int sweep(struct sync *y, const char *kind, sweep_fn *fn)
{
    const char *prefix = y->s->prefix;
    size_t plen = strlen(prefix) + strlen(kind), i;
    char cursor[32] = "0", name[72];
    struct kf_buf pat;
    int rc = 0, first = 1;

    kf_buf_init(&pat, 512);
    for (i = 0; rc == 0 && prefix[i]; i++)
        rc = kf_buf_printf(&pat, "%s%c",
                           strchr("*?[]\\", prefix[i]) ? "\\" : "",
                           prefix[i]);
    if (rc == 0)
        rc = kf_buf_printf(&pat, "%s*", kind);
    while (rc == 0 && (first || strcmp(cursor, "0") != 0)) {
        struct rargs a;
        redisReply *r = NULL, *keys;

        first = 0;
        rargs_init(&a);
        rargs_c(&a, "SCAN");
        rargs_c(&a, cursor);
        rargs_c(&a, "MATCH");
        rargs_add(&a, pat.p, pat.len);
        rargs_c(&a, "COUNT");
        rargs_c(&a, SCAN_COUNT);
        rc = rrun(y->s, &a, &r, y->err);
        if (rc == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                        r->element[0]->type != REDIS_REPLY_STRING ||
                        r->element[0]->len >= sizeof(cursor) ||
                        r->element[1]->type != REDIS_REPLY_ARRAY))
            rc = fail(y->err, KF_EBACKEND, "Redis: unexpected SCAN reply");
        if (rc == 0) {
            memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
            keys = r->element[1];
            for (i = 0; rc == 0 && i < keys->elements; i++) {
                const redisReply *k = keys->element[i];

                if (k->type != REDIS_REPLY_STRING || k->len <= plen ||
                    k->len - plen >= sizeof(name) ||
                    memchr(k->str, '\0', k->len))
                    continue;
                memcpy(name, k->str + plen, k->len - plen + 1);
                rc = fn(y, k, name);
            }
        }
        if (r)
            freeReplyObject(r);
        rargs_release(&a);
    }
    kf_buf_release(&pat);
    return rc;
}

int agent_mirror_sync_all(struct store *s, struct pg_conn *db,
                          struct agent_sync_stats *st, struct agent_err *err)
{
    struct agent_list l;
    struct sync y = { s, db, &l, st, err };
    size_t i;
    int rc;

    memset(st, 0, sizeof(*st));
    err_reset(err);
    agent_list_init(&l);
    rc = agent_db_list(db, &l, err);
    if (rc == 0)
        rc = rconnect(s, err);
    for (i = 0; rc == 0 && i < l.len; i++)
        rc = sync_one(&y, l.v[i].account);
    if (rc == 0)
        rc = drop_unknown_members(&y);
    if (rc == 0)
        rc = sweep(&y, "agent:", sweep_agent);
    if (rc == 0)
        rc = sweep(&y, "token:", sweep_token);
    if (rc == 0)
        rc = sweep(&y, "group:", sweep_group);
    agent_list_release(&l);
    return rc;
}

/* ------------------------------------------------------------ both stores */

static void wipe(char token[AGENT_TOKEN_SIZE])
{
    OPENSSL_cleanse(token, AGENT_TOKEN_SIZE);
    token[0] = '\0';
}

int agent_add(struct pg_conn *db, struct store *s, const struct agent *a,
              char token[AGENT_TOKEN_SIZE], struct agent_err *err)
{
    char hash[AGENT_HASH_SIZE];
    struct agent_err own;
    int rc;

    if (!err)
        err = &own;
    err_reset(err);
    token[0] = '\0';
    rc = agent_validate(a, err);
    if (rc == 0 && agent_token_new(token, hash) < 0)
        rc = fail(err, KF_ECRYPTO, "token: OpenSSL failed");
    if (rc == 0)
        rc = begin_locked(db, a->account, err);
    if (rc < 0) {
        wipe(token);
        return rc;
    }
    rc = agent_db_add(db, a, hash, err);
    if (rc < 0) {
        rollback(db);
        wipe(token);
        return rc;
    }
    rc = commit_after_mirror(db, agent_mirror_put(s, a, hash, err), err);
    if (rc < 0 && !err->mirror_stale)
        wipe(token);               /* not saved: the token is worthless */
    return rc;
}

int agent_update(struct pg_conn *db, struct store *s, const struct agent *v,
                 unsigned set, struct agent *out, struct agent_err *err)
{
    char hash[AGENT_HASH_SIZE];
    struct agent_err own;
    int rc;

    if (!err)
        err = &own;
    err_reset(err);
    rc = check_patch(v, set, err);
    if (rc == 0)
        rc = begin_locked(db, v->account, err);
    if (rc < 0)
        return rc;
    rc = agent_db_update(db, v, set, out, hash, err);
    if (rc < 0) {
        rollback(db);
        return rc;
    }
    return commit_after_mirror(db, agent_mirror_put(s, out, hash[0] ? hash
                                                                   : NULL,
                                                    err),
                               err);
}

int agent_rotate_token(struct pg_conn *db, struct store *s,
                       const char *account, char token[AGENT_TOKEN_SIZE],
                       struct agent_err *err)
{
    char hash[AGENT_HASH_SIZE];
    struct agent_err own;
    struct agent row;
    int rc;

    if (!err)
        err = &own;
    err_reset(err);
    token[0] = '\0';
    rc = agent_check_account(account, err);
    if (rc == 0 && agent_token_new(token, hash) < 0)
        rc = fail(err, KF_ECRYPTO, "token: OpenSSL failed");
    if (rc == 0)
        rc = begin_locked(db, account, err);
    if (rc < 0) {
        wipe(token);
        return rc;
    }
    rc = agent_db_rotate_token(db, account, hash, &row, err);
    if (rc < 0) {
        rollback(db);
        wipe(token);
        return rc;
    }
    rc = commit_after_mirror(db, agent_mirror_put(s, &row, hash, err), err);
    if (rc < 0 && !err->mirror_stale)
        wipe(token);
    return rc;
}

int agent_remove(struct pg_conn *db, struct store *s, const char *account,
                 struct agent_err *err)
{
    struct agent_err own;
    char why[sizeof(own.msg)];
    int rc;

    if (!err)
        err = &own;
    err_reset(err);
    rc = agent_check_account(account, err);
    if (rc == 0)
        rc = begin_locked(db, account, err);
    if (rc < 0)
        return rc;
    rc = agent_db_remove(db, account, err);
    if (rc == 0) {
        rc = agent_mirror_remove(s, account, err);
        if (rc < 0 && rc != KF_EINVAL) {
            memcpy(why, err->msg, sizeof(why));
            fail(err, rc, "%.200s; nothing removed", why);
        }
    }
    if (rc < 0) {
        rollback(db);
        return rc;
    }
    rc = pq_simple(db, "COMMIT", err);
    if (rc < 0) {
        memcpy(why, err->msg, sizeof(why));
        err->mirror_stale = 1;
        rc = fail(err, KF_EBACKEND, "removed from Redis but not from "
                  "PostgreSQL (%.120s); `wxkf agent sync` restores the "
                  "mirror", why);
    }
    return rc;
}
