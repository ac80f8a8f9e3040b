/* agent_mirror: the agent keys in Redis, written by atomic scripts. */
#include "agent_mirror.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "agent_token.h"
#include "kf.h"
#include "store.h"

#include "banned.h"

#define MAX_OLD_GROUPS 64        /* old groups read back from Redis */
#define MAX_RARGS 200            /* arguments of one Redis command */
#define RFIELD_MAX 65536         /* largest hash field we read back */
#define PUT_ATTEMPTS 5           /* optimistic retries of one script */
#define SCAN_COUNT "500"

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

/* store_ping reconnects a broken connection. */
int agent_mirror_connect(struct store *s, struct agent_err *err)
{
    return store_ping(s) < 0
               ? agent_fail(err, KF_EBACKEND, "Redis unreachable") : 0;
}

/* Sends the command. On success *out is new (caller freeReplyObject()s).
 * No reply is KF_EBACKEND; an error reply KF_EIO. */
static int rrun(struct store *s, struct rargs *a, redisReply **out,
                struct agent_err *err)
{
    int i;

    *out = NULL;
    if (a->rc < 0)
        return agent_fail(err, a->rc, "Redis: command too large");
    if (!s->rc)
        return agent_fail(err, KF_EBACKEND, "Redis unreachable");
    for (i = 0; i < a->argc; i++)
        a->argv[i] = a->buf.p + a->off[i];
    *out = redisCommandArgv(s->rc, a->argc, a->argv, a->len);
    if (!*out)
        return agent_fail(err, KF_EBACKEND, "Redis: %s",
                          s->rc->errstr[0] ? s->rc->errstr : "no reply");
    if ((*out)->type == REDIS_REPLY_ERROR) {
        if (store_reply_role_error(s, *out)) {   /* mid fail-over */
            agent_fail(err, KF_EBACKEND, "Redis: %.*s",
                       (*out)->len > 160 ? 160 : (int)(*out)->len,
                       (*out)->str);
            freeReplyObject(*out);
            *out = NULL;
            return KF_EBACKEND;
        }
        agent_fail(err, KF_EIO, "Redis: %.*s",
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
        rc = agent_fail(err, KF_EBACKEND, "Redis: unexpected reply");
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
        rc = agent_fail(err, KF_EBACKEND, "Redis: unexpected HMGET reply");
        goto out;
    }
    rc = copy_field(&m->groups, r->element[0]);
    if (rc == 0)
        rc = copy_field(&m->token, r->element[1]);
    if (rc == 0)
        rc = copy_field(&m->status, r->element[2]);
    if (rc == 0)
        rc = agent_split_groups(m->groups.p, m->groups.len, m->old,
                                MAX_OLD_GROUPS, &m->nold, 1);
    if (rc < 0)
        rc = agent_fail(err, rc, "Redis: agent:%s is too large", account);
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
    struct mirror_state m;
    struct rargs a;
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
        rargs_init(&a);
        rargs_c(&a, "SCARD");
        rargs_key(&a, s, "load:", account);
        rc = rrun_int(s, &a, load, err);
        rargs_release(&a);
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

int agent_mirror_each_member(struct store *s, agent_mirror_fn *fn,
                             void *ctx, struct agent_err *err)
{
    struct walk w = { s, err, fn, ctx, NULL };
    struct rargs a;
    redisReply *r = NULL;
    size_t i;
    int rc;

    rargs_init(&a);
    rargs_c(&a, "SMEMBERS");
    rargs_key(&a, s, "agents", "");
    rc = rrun(s, &a, &r, err);
    if (rc == 0 && r->type != REDIS_REPLY_ARRAY)
        rc = agent_fail(err, KF_EBACKEND, "Redis: unexpected SMEMBERS reply");
    for (i = 0; rc == 0 && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            rc = visit(&w, r->element[i]->str, r->element[i]->len);
    if (r)
        freeReplyObject(r);
    rargs_release(&a);
    return rc;
}

/* Runs a sweep script on key for member; KEYS[2] = P agent:<member>
 * when member is an account. Counts what it removed. */
static int sweep_run(struct walk *y, const char *script,
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
    *y->swept += rc == 0 && v == 1;
    rargs_release(&a);
    return rc;
}

/* Reads one key with cmd (GET, SMEMBERS). *r is NULL when the key holds
 * another type (KF_EIO from Redis, e.g. WRONGTYPE): not ours, skip it. */
static int read_key(struct walk *y, const char *cmd, const redisReply *key,
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
static int sweep_token(struct walk *y, const redisReply *key,
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
static int sweep_group(struct walk *y, const redisReply *key,
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

/* One P agent:<acct> hash. */
static int each_hash_one(struct walk *y, const redisReply *key,
                         const char *name)
{
    (void)key;
    return visit(y, name, strlen(name));
}

typedef int scan_fn(struct walk *y, const redisReply *key,
                     const char *name);

/* SCAN MATCH prefix + kind + "*"; fn gets each key and the rest of its
 * name (keys whose rest is long or holds a NUL are skipped). */
static int scan(struct walk *y, const char *kind, scan_fn *fn)
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
            rc = agent_fail(y->err, KF_EBACKEND,
                            "Redis: unexpected SCAN reply");
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
