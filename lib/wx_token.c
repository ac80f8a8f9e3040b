/* wx_token: the access token cache, token bucket and daily budgets in
 * Redis (arguments to and replies from lib/lua/wx_token.lua and
 * lib/lua/wx_limit.lua). */
#include "wx_token.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "lua.h"

#include "banned.h"

#define MAX_ARGV 12
#define DAY_MS 86400000LL
#define BEIJING_MS (8 * 3600 * 1000LL)
#define POLL_MS 50

void wx_token_init(struct wx_token *t, struct store *st)
{
    memset(t, 0, sizeof(*t));
    t->st = st;
    store_script_init(&t->token_sc, lua_wx_token);
    store_script_init(&t->limit_sc, lua_wx_limit);
}

/* Adds one argument; the caller sized argv. */
#define ARGC(s) (argv[argc] = (s), lens[argc] = strlen(s), argc++)

static int is_int(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER;
}

static int is_str(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

int wx_token_acquire(struct wx_token *t, int64_t now_ms, const char *owner,
                     long lock_ttl_ms, enum wx_token_state *state,
                     struct wx_token_cached *cur)
{
    const char *argv[MAX_ARGV];
    size_t lens[MAX_ARGV];
    char now[24], fresh[24], age[24], ttl[24];
    redisReply *rep = NULL, *st, *tok;
    int argc = 2, rc;

    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(fresh, sizeof(fresh), "%d", WX_TOKEN_FRESH_MS);
    snprintf(age, sizeof(age), "%d", WX_TOKEN_MIN_AGE_MS);
    snprintf(ttl, sizeof(ttl), "%ld", lock_ttl_ms);
    ARGC("1");
    ARGC(t->st->prefix);
    ARGC("acquire");
    ARGC(now);
    ARGC(fresh);
    ARGC(age);
    ARGC(owner);
    ARGC(ttl);
    rc = store_eval(t->st, &t->token_sc, argc, argv, lens, &rep);
    if (rc < 0)
        return rc;
    rc = KF_EBACKEND;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        !is_str(rep->element[0]) || !is_str(rep->element[1]) ||
        !is_int(rep->element[2]))
        goto out;
    st = rep->element[0];
    tok = rep->element[1];
    if (tok->len >= sizeof(cur->token))
        goto out;
    memcpy(cur->token, tok->str, tok->len);
    cur->token[tok->len] = '\0';
    cur->expires_ms = rep->element[2]->integer;
    rc = 0;
    if (strcmp(st->str, "fresh") == 0)
        *state = WX_TOKEN_FRESH;
    else if (strcmp(st->str, "locked") == 0)
        *state = WX_TOKEN_LOCKED;
    else if (strcmp(st->str, "busy") == 0)
        *state = WX_TOKEN_BUSY;
    else
        rc = KF_EBACKEND;
out:
    freeReplyObject(rep);
    return rc;
}

/* Runs a wx_token.lua op whose reply is an integer. */
static int token_op(struct wx_token *t, const char *op, const char **args,
                    int nargs, long long *out)
{
    const char *argv[MAX_ARGV];
    size_t lens[MAX_ARGV];
    redisReply *rep = NULL;
    int argc = 2, rc, i;

    ARGC("1");
    ARGC(t->st->prefix);
    ARGC(op);
    for (i = 0; i < nargs; i++)
        ARGC(args[i]);
    rc = store_eval(t->st, &t->token_sc, argc, argv, lens, &rep);
    if (rc < 0)
        return rc;
    if (is_int(rep))
        *out = rep->integer;
    else
        rc = KF_EBACKEND;
    freeReplyObject(rep);
    return rc;
}

int wx_token_put(struct wx_token *t, const char *token, int64_t expires_ms,
                 int64_t now_ms, const char *owner)
{
    char exp[24], now[24];
    const char *args[] = { token, exp, now, owner };
    long long one;

    snprintf(exp, sizeof(exp), "%lld", (long long)expires_ms);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    return token_op(t, "put", args, 4, &one);
}

int wx_token_unlock(struct wx_token *t, const char *owner)
{
    const char *args[] = { owner };
    long long was_ours;

    return token_op(t, "unlock", args, 1, &was_ours);
}

int wx_token_drop(struct wx_token *t, const char *token, int *dropped)
{
    const char *args[] = { token };
    long long n = 0;
    int rc = token_op(t, "drop", args, 1, &n);

    *dropped = rc == 0 && n == 1;
    return rc;
}

/* "wx:daily:<YYYYMMDD>:<budget>" for Beijing's day of now_ms. */
static int budget_key(int64_t now_ms, const char *budget, char *out,
                      size_t n)
{
    time_t secs = (time_t)((now_ms + BEIJING_MS) / 1000);
    struct tm tm;
    char day[16];
    int len;

    if (!gmtime_r(&secs, &tm) ||
        strftime(day, sizeof(day), "%Y%m%d", &tm) == 0)
        return KF_EINVAL;
    len = snprintf(out, n, "wx:daily:%s:%s", day, budget);
    return len < 0 || (size_t)len >= n ? KF_EINVAL : 0;
}

static int64_t until_next_day(int64_t now_ms)
{
    return DAY_MS - (now_ms + BEIJING_MS) % DAY_MS;
}

int wx_token_admit(struct wx_token *t, int64_t now_ms, long per_min,
                   const char *budget, long limit,
                   struct wx_token_refusal *why)
{
    const char *argv[MAX_ARGV];
    size_t lens[MAX_ARGV];
    char now[24], pm[24], lim[24], key[96] = "";
    redisReply *rep = NULL;
    long long verdict;
    int argc = 2, rc;

    why->retry_after_ms = 0;
    why->budget = 0;
    if (budget && (rc = budget_key(now_ms, budget, key, sizeof(key))) < 0)
        return rc;
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(pm, sizeof(pm), "%ld", per_min);
    snprintf(lim, sizeof(lim), "%ld", limit);
    ARGC("1");
    ARGC(t->st->prefix);
    ARGC("admit");
    ARGC(now);
    ARGC(pm);
    ARGC(key);
    ARGC(lim);
    rc = store_eval(t->st, &t->limit_sc, argc, argv, lens, &rep);
    if (rc < 0)
        return rc;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        !is_int(rep->element[0]) || !is_int(rep->element[1])) {
        freeReplyObject(rep);
        return KF_EBACKEND;
    }
    verdict = rep->element[0]->integer;
    if (verdict == 0) {
        why->retry_after_ms = rep->element[1]->integer;
    } else if (verdict < 0) {
        why->retry_after_ms = until_next_day(now_ms);
        why->budget = 1;
    }
    freeReplyObject(rep);
    return verdict == 1 ? 0 : KF_ELIMIT;
}

/* Runs a wx_limit.lua op on budget's key whose reply is an integer. */
static int budget_op(struct wx_token *t, const char *op, int64_t now_ms,
                     const char *budget, long *out)
{
    const char *argv[MAX_ARGV];
    size_t lens[MAX_ARGV];
    char key[96];
    redisReply *rep = NULL;
    int argc = 2, rc;

    rc = budget_key(now_ms, budget, key, sizeof(key));
    if (rc < 0)
        return rc;
    ARGC("1");
    ARGC(t->st->prefix);
    ARGC(op);
    ARGC(key);
    rc = store_eval(t->st, &t->limit_sc, argc, argv, lens, &rep);
    if (rc < 0)
        return rc;
    if (is_int(rep))
        *out = (long)rep->integer;
    else
        rc = KF_EBACKEND;
    freeReplyObject(rep);
    return rc;
}

int wx_token_refund(struct wx_token *t, int64_t now_ms, const char *budget)
{
    long spent;

    return budget_op(t, "refund", now_ms, budget, &spent);
}

int wx_token_spent(struct wx_token *t, int64_t now_ms, const char *budget,
                   long *spent)
{
    return budget_op(t, "spent", now_ms, budget, spent);
}

/* --- getting a token ----------------------------------------------------- */

/* A fresh random id for the refresh lock. */
static int new_owner(char owner[33])
{
    unsigned char raw[16];
    size_t i;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return KF_ECRYPTO;
    for (i = 0; i < sizeof(raw); i++)
        snprintf(owner + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

/* We hold the lock: spend the budget, fetch, store (or unlock). */
static int refresh(struct wx_token *t, const struct wx_token_fetcher *f,
                   const char *owner, char *out, enum wx_token_stop *stop,
                   struct wx_token_refusal *why)
{
    int64_t now = kf_wall_ms();
    char tok[WX_TOKEN_MAX];
    long expires_in = 0;
    int rc, rc2 = 0, answered = 0;

    rc = wx_token_admit(t, now, 0, "token", f->per_day, why);
    if (rc < 0) {
        *stop = rc == KF_ELIMIT ? WX_TOKEN_STOP_BUDGET : WX_TOKEN_STOP_REDIS;
    } else {
        rc = f->fetch(f->ctx, tok, &expires_in, &answered);
        if (rc != 0)
            *stop = WX_TOKEN_STOP_FETCH;
        if (rc != 0 && !answered)
            rc2 = wx_token_refund(t, now, "token");
    }
    if (rc == 0) {
        /* should Redis fail now, we still have a good token */
        rc2 = wx_token_put(t, tok, now + expires_in * 1000LL, now, owner);
        memcpy(out, tok, strlen(tok) + 1);
    } else if (*stop != WX_TOKEN_STOP_REDIS) {
        rc2 = wx_token_unlock(t, owner);
    }
    (void)rc2;
    OPENSSL_cleanse(tok, sizeof(tok));
    return rc;
}

int wx_token_get(struct wx_token *t, const struct wx_token_fetcher *f,
                 char *out, enum wx_token_stop *stop,
                 struct wx_token_refusal *why)
{
    int64_t deadline = kf_mono_ms() + f->wait_ms;
    struct wx_token_cached cur;
    enum wx_token_state st;
    char owner[33];
    int rc, usable;

    *stop = WX_TOKEN_STOP_NONE;
    why->retry_after_ms = 0;
    why->budget = 0;
    out[0] = '\0';
    for (;;) {
        rc = new_owner(owner);
        if (rc == 0)
            rc = wx_token_acquire(t, kf_wall_ms(), owner, f->lock_ttl_ms, &st,
                                  &cur);
        if (rc < 0) {
            *stop = WX_TOKEN_STOP_REDIS;
            return rc;
        }
        usable = cur.token[0] && cur.expires_ms > kf_wall_ms();
        if (st == WX_TOKEN_LOCKED) {
            rc = refresh(t, f, owner, out, stop, why);
            if (rc != 0 && usable) {   /* the current one still works */
                memcpy(out, cur.token, strlen(cur.token) + 1);
                *stop = WX_TOKEN_STOP_NONE;
                rc = 0;
            }
            break;
        }
        if (st == WX_TOKEN_FRESH || usable) {
            memcpy(out, cur.token, strlen(cur.token) + 1);
            break;
        }
        if (kf_mono_ms() >= deadline) {
            *stop = WX_TOKEN_STOP_WAIT;
            rc = KF_EBACKEND;
            break;
        }
        kf_sleep_ms(POLL_MS);
    }
    OPENSSL_cleanse(&cur, sizeof(cur));
    return rc;
}
