/* agent_mirror: the agent keys in Redis, written by lib/lua/agent.lua. */
#include "agent_mirror.h"

#include <stdio.h>
#include <string.h>

#include "agent_token.h"
#include "kf.h"
#include "lua.h"
#include "store.h"

#include "banned.h"

#define MAX_OLD_GROUPS 64        /* old groups read back from Redis */
#define RFIELD_MAX 65536         /* largest hash field we read back */
#define PUT_ATTEMPTS 5           /* optimistic retries of one script */
#define SCAN_COUNT "500"
#define KEY_SIZE 80              /* a suffix: "token:" + 64 hex, ... */
#define FULL_KEY_SIZE (sizeof(((struct store *)0)->prefix) + KEY_SIZE)
#define MAX_KEYS (5 + AGENT_MAX_GROUPS + MAX_OLD_GROUPS)
#define MAX_ARGS 11              /* the most lib/lua/agent.lua takes */

/* ------------------------------------------------------------ plumbing */

/* The key suffixes of one script call. Names are validated before they
 * get here (accounts, groups, hashes), so they fit; more than MAX_KEYS
 * is refused by run_script. */
struct keys {
    char v[MAX_KEYS][KEY_SIZE];
    const char *p[MAX_KEYS];
    int n;
};

static void key_add(struct keys *k, const char *kind, const char *name)
{
    if (k->n >= MAX_KEYS) {
        k->n = MAX_KEYS + 1;
        return;
    }
    snprintf(k->v[k->n], KEY_SIZE, "%s%s", kind, name);
    k->p[k->n] = k->v[k->n];
    k->n++;
}

/* The arguments of one script call (borrowed; binary ones have lengths),
 * args.p[0] the op. */
struct args {
    const char *p[MAX_ARGS];
    size_t len[MAX_ARGS];
    int n;
};

static void arg_add(struct args *a, const char *p, size_t n)
{
    if (a->n < MAX_ARGS) {
        a->p[a->n] = p;
        a->len[a->n++] = n;
    }
}

static void arg_c(struct args *a, const char *s)
{
    arg_add(a, s, strlen(s));
}

/* A full key name: the account prefix + kind + name. */
static void full_key(const struct store *s, char out[FULL_KEY_SIZE],
                     const char *kind, const char *name)
{
    snprintf(out, FULL_KEY_SIZE, "%s%s%s", s->prefix, kind, name);
}

/* A failure without an answer from Redis. */
static int unreachable(struct agent_err *err, int rc)
{
    return rc == KF_EBACKEND
               ? agent_fail(err, rc, "Redis unreachable")
               : agent_fail(err, rc, "Redis: %s", kf_strerror(rc));
}

/* Runs lib/lua/agent.lua; *v gets its integer answer. An error reply
 * (e.g. WRONGTYPE) is KF_EIO, no answer KF_EBACKEND; err says which. */
static int run_script(struct store *s, const struct keys *k,
                      const struct args *a, long long *v,
                      struct agent_err *err)
{
    struct store_script sc;
    struct store_reply *r = NULL;
    int rc;

    if (k->n > MAX_KEYS)
        return agent_fail(err, KF_ETOOBIG, "Redis: command too large");
    store_script_init(&sc, lua_agent);
    rc = store_run(s, &sc, k->n, k->p, a->n, a->p, a->len, &r);
    if (rc == KF_EBACKEND && store_error(s)[0])
        rc = agent_fail(err, KF_EIO, "Redis: %s", store_error(s));
    else if (rc < 0)
        rc = unreachable(err, rc);
    else if (store_reply_type(r) != STORE_INT)
        rc = agent_fail(err, KF_EBACKEND, "Redis: unexpected reply");
    else
        *v = store_reply_int(r);
    store_reply_free(r);
    return rc;
}

/* One command on full key names. An error reply is KF_EIO, no answer
 * KF_EBACKEND; err says which. On success *out is new
 * (store_reply_free()). */
static int run_cmd(struct store *s, int argc, const char *const *argv,
                   const size_t *lens, struct store_reply **out,
                   struct agent_err *err)
{
    int rc = store_cmd(s, argc, argv, lens, out);
    struct kf_str e;

    if (rc < 0)
        return unreachable(err, rc);
    if (store_reply_type(*out) != STORE_ERR)
        return 0;
    e = store_reply_str(*out);
    agent_fail(err, KF_EIO, "Redis: %.*s", e.len > 160 ? 160 : (int)e.len,
               e.p);
    store_reply_free(*out);
    *out = NULL;
    return KF_EIO;
}

/* SCARD of a full key name into *v. */
static int scard(struct store *s, const char *key, long long *v,
                 struct agent_err *err)
{
    const char *argv[2] = { "SCARD", key };
    struct store_reply *r = NULL;
    int rc = run_cmd(s, 2, argv, NULL, &r, err);

    if (rc == 0 && store_reply_type(r) != STORE_INT)
        rc = agent_fail(err, KF_EBACKEND, "Redis: unexpected reply");
    if (rc == 0)
        *v = store_reply_int(r);
    store_reply_free(r);
    return rc;
}

/* store_ping reconnects a broken connection. */
int agent_mirror_connect(struct store *s, struct agent_err *err)
{
    return store_ping(s) < 0
               ? agent_fail(err, KF_EBACKEND, "Redis unreachable") : 0;
}

/* ---------------------------------------------------------- the record */

/* What P agent:<acct> holds now (raw, untrusted). */
struct mirror_state {
    struct kf_buf groups, token, status;
    char old[MAX_OLD_GROUPS][AGENT_GROUP_SIZE];   /* the group names in groups */
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

/* Element i of r (a string, or nil: "") into dst. */
static int copy_field(struct kf_buf *dst, const struct store_reply *r,
                      size_t i)
{
    struct kf_str v;

    kf_buf_reset(dst);
    if (store_reply_at_str(r, i, &v) < 0)
        v = (struct kf_str){ "", 0 };
    return kf_buf_append(dst, v.p, v.len);
}

static int state_read(struct store *s, const char *account,
                      struct mirror_state *m, struct agent_err *err)
{
    char key[FULL_KEY_SIZE];
    const char *argv[5] = { "HMGET", key, "groups", "token_sha256",
                            "status" };
    struct store_reply *r = NULL;
    int rc;

    full_key(s, key, "agent:", account);
    rc = run_cmd(s, 5, argv, NULL, &r, err);
    if (rc < 0)
        return rc;
    if (store_reply_type(r) != STORE_ARRAY || store_reply_len(r) != 3) {
        store_reply_free(r);
        return agent_fail(err, KF_EBACKEND, "Redis: unexpected HMGET reply");
    }
    rc = copy_field(&m->groups, r, 0);
    if (rc == 0)
        rc = copy_field(&m->token, r, 1);
    if (rc == 0)
        rc = copy_field(&m->status, r, 2);
    if (rc == 0)
        rc = agent_split_groups(m->groups.p, m->groups.len, m->old,
                                MAX_OLD_GROUPS, &m->nold, 1);
    if (rc < 0)
        rc = agent_fail(err, rc, "Redis: agent:%s is too large", account);
    store_reply_free(r);
    return rc;
}

/* The stored token key is to be deleted: it names a hash, and nw (NULL
 * on removal) is not that hash. */
static int drop_old_token(const struct mirror_state *m, const char *nw)
{
    return m->token.len == 64 && agent_token_is_hash(m->token.p) &&
           (!nw || strcmp(nw, m->token.p) != 0);
}

/* An old group whose set the agent leaves (bad names are not ours). */
static int leaving(const struct agent *ag, const char *g)
{
    return !agent_has_group(ag, g) && agent_check_group(g, NULL) == 0;
}

static int comma_groups(const struct agent *a, struct kf_buf *out)
{
    int i, rc = kf_buf_append(out, "", 0);

    for (i = 0; rc == 0 && i < a->ngroups; i++)
        rc = kf_buf_printf(out, "%s%s", i ? "," : "", a->groups[i]);
    return rc;
}

/* One run of the put op; *done = 0 if the hash changed since m was
 * read. */
static int put_once(struct store *s, const struct agent *ag,
                    const char *token_hash, const struct mirror_state *m,
                    int *done, struct agent_err *err)
{
    char weight[16], cap[16], joins[16];
    int i, rc, drop = token_hash && drop_old_token(m, token_hash);
    struct kf_buf groups;
    struct keys k;
    struct args a = { .n = 0 };
    long long v = 0;

    snprintf(weight, sizeof(weight), "%d", ag->weight);
    snprintf(cap, sizeof(cap), "%d", ag->capacity);
    snprintf(joins, sizeof(joins), "%d", ag->ngroups);
    kf_buf_init(&groups, 1024);
    rc = comma_groups(ag, &groups);
    k.n = 0;
    key_add(&k, "agent:", ag->account);
    key_add(&k, "agents", "");
    key_add(&k, token_hash ? "token:" : "agent:",
            token_hash ? token_hash : ag->account);
    key_add(&k, drop ? "token:" : "agent:", drop ? m->token.p : ag->account);
    for (i = 0; i < ag->ngroups; i++)
        key_add(&k, "group:", ag->groups[i]);
    for (i = 0; i < m->nold; i++)
        if (leaving(ag, m->old[i]))
            key_add(&k, "group:", m->old[i]);
    arg_c(&a, "put");
    arg_c(&a, ag->account);
    arg_add(&a, m->groups.p, m->groups.len);
    arg_add(&a, m->token.p, m->token.len);
    arg_c(&a, ag->nick);
    arg_c(&a, weight);
    arg_c(&a, ag->capacity ? cap : "");
    arg_add(&a, groups.p, groups.len);
    arg_c(&a, token_hash ? token_hash : "");
    arg_c(&a, drop ? "1" : "0");
    arg_c(&a, joins);
    if (rc == 0)
        rc = run_script(s, &k, &a, &v, err);
    *done = rc == 0 && v == 1;
    kf_buf_release(&groups);
    return rc;
}

int agent_mirror_put(struct store *s, const struct agent *ag,
                     const char *token_hash, struct agent_err *err)
{
    struct mirror_state m;
    int rc = agent_validate(ag, err), attempt, done = 0;

    if (rc < 0)
        return rc;
    if (token_hash && !agent_token_is_hash(token_hash))
        return agent_fail(err, KF_EINVAL, "token hash: not 64 hex digits");
    rc = agent_mirror_connect(s, err);
    state_init(&m);
    for (attempt = 0; rc == 0 && !done && attempt < PUT_ATTEMPTS;
         attempt++) {
        rc = state_read(s, ag->account, &m, err);
        if (rc == 0)
            rc = put_once(s, ag, token_hash, &m, &done, err);
    }
    if (rc == 0 && !done)
        rc = agent_fail(err, KF_EBACKEND, "Redis: agent:%s kept changing; "
                        "try again", ag->account);
    state_release(&m);
    return rc;
}

/* One run of the remove op; *v is its answer. */
static int remove_once(struct store *s, const char *account,
                       const struct mirror_state *m, long long *v,
                       struct agent_err *err)
{
    int i, drop = drop_old_token(m, NULL);
    struct keys k;
    struct args a = { .n = 0 };

    k.n = 0;
    key_add(&k, "agent:", account);
    key_add(&k, "agents", "");
    key_add(&k, "load:", account);
    key_add(&k, drop ? "token:" : "agent:", drop ? m->token.p : account);
    key_add(&k, "inbox:", account);
    for (i = 0; i < m->nold; i++)
        if (agent_check_group(m->old[i], NULL) == 0)
            key_add(&k, "group:", m->old[i]);
    arg_c(&a, "remove");
    arg_c(&a, account);
    arg_add(&a, m->groups.p, m->groups.len);
    arg_add(&a, m->token.p, m->token.len);
    arg_c(&a, drop ? "1" : "0");
    return run_script(s, &k, &a, v, err);
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
    rc = agent_mirror_connect(s, err);
    state_init(&m);
    for (attempt = 0; rc == 0 && v == 0 && attempt < PUT_ATTEMPTS;
         attempt++) {
        rc = state_read(s, account, &m, err);
        if (rc == 0)
            rc = remove_once(s, account, &m, &v, err);
    }
    if (rc == 0 && v == -1)
        rc = agent_fail(err, KF_EBUSY,
                        "agent has active sessions; set it offline first");
    else if (rc == 0 && v == -2)
        rc = agent_fail(err, KF_EBUSY, "agent is %s; set it offline first",
                        status_word(&m.status));
    else if (rc == 0 && v != 1)
        rc = agent_fail(err, KF_EBACKEND, "Redis: agent:%s kept changing; "
                        "try again", account);
    state_release(&m);
    return rc;
}

int agent_mirror_status(struct store *s, const char *account,
                        char status[16], long long *load,
                        struct agent_err *err)
{
    char key[FULL_KEY_SIZE];
    struct mirror_state m;
    int rc = agent_check_account(account, err);

    status[0] = '\0';
    if (rc < 0)
        return rc;
    state_init(&m);
    rc = agent_mirror_connect(s, err);
    if (rc == 0)
        rc = state_read(s, account, &m, err);
    if (rc == 0 && m.status.len == 0)
        rc = agent_fail(err, KF_ENOTFOUND, "agent %s is not in Redis",
                        account);
    if (rc == 0)
        snprintf(status, 16, "%s", status_word(&m.status));
    state_release(&m);
    if (rc == 0 && load) {
        full_key(s, key, "load:", account);
        rc = scard(s, key, load, err);
    }
    return rc;
}

/* ----------------------------------------------------------------- walks */

/* What one walk works with. */
struct walk {
    struct store *s;
    struct agent_err *err;
    agent_mirror_fn *fn;             /* each_member, each_hash */
    void *ctx;
    size_t *swept;                   /* sweep */
};

/* fn for a name Redis gave (p is untrusted): only valid accounts. */
static int visit(struct walk *w, const char *p, size_t len)
{
    char acct[48];

    if (len >= sizeof(acct) || memchr(p, '\0', len))
        return 0;
    memcpy(acct, p, len);
    acct[len] = '\0';
    if (agent_check_account(acct, NULL) < 0)
        return 0;
    return w->fn(w->ctx, acct);
}

/* Reads one key with cmd (GET, SMEMBERS). *r is NULL when the key holds
 * another type (KF_EIO from Redis, e.g. WRONGTYPE): not ours, skip it. */
static int read_key(struct walk *y, const char *cmd, struct kf_str key,
                    struct store_reply **r)
{
    const char *argv[2] = { cmd, key.p };
    size_t lens[2] = { strlen(cmd), key.len };
    int rc = run_cmd(y->s, 2, argv, lens, r, y->err);

    return rc == KF_EIO ? 0 : rc;
}

int agent_mirror_each_member(struct store *s, agent_mirror_fn *fn,
                             void *ctx, struct agent_err *err)
{
    struct walk w = { s, err, fn, ctx, NULL };
    char key[FULL_KEY_SIZE];
    const char *argv[2] = { "SMEMBERS", key };
    struct store_reply *r = NULL;
    struct kf_str m;
    size_t i;
    int rc;

    full_key(s, key, "agents", "");
    rc = run_cmd(s, 2, argv, NULL, &r, err);
    if (rc == 0 && store_reply_type(r) != STORE_ARRAY)
        rc = agent_fail(err, KF_EBACKEND, "Redis: unexpected SMEMBERS reply");
    for (i = 0; rc == 0 && i < store_reply_len(r); i++)
        if (store_reply_at_str(r, i, &m) == 0)
            rc = visit(&w, m.p, m.len);
    store_reply_free(r);
    return rc;
}

/* Runs a sweep op on key (its suffix) for member; KEYS[3] = P
 * agent:<member> when member is an account. Counts what it removed. */
static int sweep_run(struct walk *y, const char *op, const char *suffix,
                     const char *name, struct kf_str member)
{
    char acct[48];
    int isacct = 0, rc;
    struct keys k;
    struct args a = { .n = 0 };
    long long v = 0;

    if (member.len < sizeof(acct)) {
        memcpy(acct, member.p, member.len);
        acct[member.len] = '\0';
        isacct = strlen(acct) == member.len &&
                 agent_check_account(acct, NULL) == 0;
    }
    k.n = 0;
    key_add(&k, "", suffix);
    if (isacct)
        key_add(&k, "agent:", acct);
    arg_c(&a, op);
    arg_add(&a, member.p, member.len);
    arg_c(&a, name);
    rc = run_script(y->s, &k, &a, &v, y->err);
    if (rc == KF_EIO)              /* e.g. WRONGTYPE: not ours, skip it */
        rc = 0;
    *y->swept += rc == 0 && v == 1;
    return rc;
}

/* One P token:<h> key: GET its account, then the guarded DEL. */
static int sweep_token(struct walk *y, struct kf_str key, const char *suffix,
                       const char *name)
{
    struct store_reply *r = NULL;
    int rc = read_key(y, "GET", key, &r);

    if (rc == 0 && store_reply_type(r) == STORE_STR)
        rc = sweep_run(y, "sweep_token", suffix, name, store_reply_str(r));
    store_reply_free(r);
    return rc;
}

/* One P group:<g> set: each member's agent hash must list g. */
static int sweep_group(struct walk *y, struct kf_str key, const char *suffix,
                       const char *name)
{
    struct store_reply *r = NULL;
    struct kf_str m;
    size_t i;
    int rc;

    if (strcmp(name, "_all") == 0)
        return 0;                  /* reserved: never ours to edit */
    rc = read_key(y, "SMEMBERS", key, &r);
    for (i = 0; rc == 0 && i < store_reply_len(r); i++)
        if (store_reply_at_str(r, i, &m) == 0)
            rc = sweep_run(y, "sweep_group", suffix, name, m);
    store_reply_free(r);
    return rc;
}

/* One P agent:<acct> hash. */
static int each_hash_one(struct walk *y, struct kf_str key,
                         const char *suffix, const char *name)
{
    (void)key;
    (void)suffix;
    return visit(y, name, strlen(name));
}

/* fn gets a key's full name, its suffix and the rest after the kind. */
typedef int scan_fn(struct walk *y, struct kf_str key, const char *suffix,
                    const char *name);

/* One SCAN reply: the next cursor, and fn for each key (keys whose rest
 * is long or holds a NUL are skipped). */
static int scan_page(struct walk *y, const struct store_reply *r,
                     size_t plen, size_t klen, char cursor[32], scan_fn *fn)
{
    const struct store_reply *keys = store_reply_at(r, 1);
    char name[72];
    struct kf_str k;
    size_t i;
    int rc = 0;

    if (store_reply_type(r) != STORE_ARRAY || store_reply_len(r) != 2 ||
        store_reply_type(store_reply_at(r, 0)) != STORE_STR ||
        store_reply_at_copy(r, 0, cursor, 32) < 0 ||
        store_reply_type(keys) != STORE_ARRAY)
        return agent_fail(y->err, KF_EBACKEND,
                          "Redis: unexpected SCAN reply");
    for (i = 0; rc == 0 && i < store_reply_len(keys); i++) {
        if (store_reply_at_str(keys, i, &k) < 0 || k.len <= plen + klen ||
            k.len - plen - klen >= sizeof(name) || memchr(k.p, '\0', k.len))
            continue;
        memcpy(name, k.p + plen + klen, k.len - plen - klen + 1);
        rc = fn(y, k, k.p + plen, name);
    }
    return rc;
}

/* SCAN MATCH prefix + kind + "*", fn for each key. */
static int scan(struct walk *y, const char *kind, scan_fn *fn)
{
    const char *prefix = y->s->prefix;
    char cursor[32] = "0";
    struct kf_buf pat;
    int rc = 0, first = 1;
    size_t i;

    kf_buf_init(&pat, 512);
    for (i = 0; rc == 0 && prefix[i]; i++)
        rc = kf_buf_printf(&pat, "%s%c",
                           strchr("*?[]\\", prefix[i]) ? "\\" : "",
                           prefix[i]);
    if (rc == 0)
        rc = kf_buf_printf(&pat, "%s*", kind);
    while (rc == 0 && (first || strcmp(cursor, "0") != 0)) {
        const char *argv[6] = { "SCAN", cursor, "MATCH", pat.p, "COUNT",
                                SCAN_COUNT };
        struct store_reply *r = NULL;

        first = 0;
        rc = run_cmd(y->s, 6, argv, NULL, &r, y->err);
        if (rc == 0)
            rc = scan_page(y, r, strlen(prefix), strlen(kind), cursor, fn);
        store_reply_free(r);
    }
    kf_buf_release(&pat);
    return rc;
}

int agent_mirror_each_hash(struct store *s, agent_mirror_fn *fn, void *ctx,
                           struct agent_err *err)
{
    struct walk w = { s, err, fn, ctx, NULL };

    return scan(&w, "agent:", each_hash_one);
}

int agent_mirror_sweep(struct store *s, size_t *swept, struct agent_err *err)
{
    struct walk w = { s, err, NULL, NULL, swept };
    int rc = scan(&w, "token:", sweep_token);

    if (rc == 0)
        rc = scan(&w, "group:", sweep_group);
    return rc;
}
