/* wx_token: the access token cache, token bucket and daily budgets in
 * Redis (arguments to and replies from lib/lua/wx_token.lua and
 * lib/lua/wx_limit.lua). */
#include "wx_token.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "lua.h"

#include "banned.h"

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

int wx_token_acquire(struct wx_token *t, int64_t now_ms, const char *owner,
                     long lock_ttl_ms, enum wx_token_state *state,
                     struct wx_token_cached *cur)
{
    char now[24], fresh[24], age[24], ttl[24];
    const char *args[] = { "acquire", now, fresh, age, owner, ttl };
    struct store_reply *rep = NULL;
    struct kf_str st, tok;
    int64_t exp;
    int rc;

    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(fresh, sizeof(fresh), "%d", WX_TOKEN_FRESH_MS);
    snprintf(age, sizeof(age), "%d", WX_TOKEN_MIN_AGE_MS);
    snprintf(ttl, sizeof(ttl), "%ld", lock_ttl_ms);
    rc = store_run(t->st, &t->token_sc, 0, NULL, 6, args, NULL, &rep);
    if (rc < 0)
        return rc;
    rc = KF_EBACKEND;
    if (store_reply_len(rep) != 3 || store_reply_at_str(rep, 0, &st) < 0 ||
        store_reply_at_str(rep, 1, &tok) < 0 ||
        store_reply_type(store_reply_at(rep, 2)) != STORE_INT ||
        store_reply_at_int(rep, 2, &exp) < 0 || tok.len >= sizeof(cur->token))
        goto out;
    memcpy(cur->token, tok.p, tok.len);
    cur->token[tok.len] = '\0';
    cur->expires_ms = exp;
    rc = 0;
    if (kf_str_eq_c(st, "fresh"))
        *state = WX_TOKEN_FRESH;
    else if (kf_str_eq_c(st, "locked"))
        *state = WX_TOKEN_LOCKED;
    else if (kf_str_eq_c(st, "busy"))
        *state = WX_TOKEN_BUSY;
    else
        rc = KF_EBACKEND;
out:
    store_reply_free(rep);
    return rc;
}

/* Runs sc (args[0] the op, on the budget key when key is not NULL) whose
 * reply is an integer. */
static int int_op(struct wx_token *t, const struct store_script *sc,
                  const char *key, const char *const *args, int nargs,
                  long long *out)
{
    struct store_reply *rep = NULL;
    int rc = store_run(t->st, sc, key ? 1 : 0, &key, nargs, args, NULL,
                       &rep);

    if (rc < 0)
        return rc;
    if (store_reply_type(rep) == STORE_INT)
        *out = store_reply_int(rep);
    else
        rc = KF_EBACKEND;
    store_reply_free(rep);
    return rc;
}

int wx_token_put(struct wx_token *t, const char *token, int64_t expires_ms,
                 int64_t now_ms, const char *owner)
{
    char exp[24], now[24];
    const char *args[] = { "put", token, exp, now, owner };
    long long one;

    snprintf(exp, sizeof(exp), "%lld", (long long)expires_ms);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    return int_op(t, &t->token_sc, NULL, args, 5, &one);
}

int wx_token_unlock(struct wx_token *t, const char *owner)
{
    const char *args[] = { "unlock", owner };
    long long was_ours;

    return int_op(t, &t->token_sc, NULL, args, 2, &was_ours);
}

int wx_token_drop(struct wx_token *t, const char *token, int *dropped)
{
    const char *args[] = { "drop", token };
    long long n = 0;
    int rc = int_op(t, &t->token_sc, NULL, args, 2, &n);

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
    char now[24], pm[24], lim[24], key[96] = "";
    const char *args[] = { "admit", now, pm, lim }, *keys[] = { key };
    struct store_reply *rep = NULL;
    int64_t verdict, v;
    int rc;

    why->retry_after_ms = 0;
    why->budget = 0;
    if (budget && (rc = budget_key(now_ms, budget, key, sizeof(key))) < 0)
        return rc;
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(pm, sizeof(pm), "%ld", per_min);
    snprintf(lim, sizeof(lim), "%ld", limit);
    rc = store_run(t->st, &t->limit_sc, *key ? 1 : 0, keys, 4, args, NULL,
                   &rep);
    if (rc < 0)
        return rc;
    if (store_reply_len(rep) != 2 ||
        store_reply_type(store_reply_at(rep, 0)) != STORE_INT ||
        store_reply_type(store_reply_at(rep, 1)) != STORE_INT ||
        store_reply_at_int(rep, 0, &verdict) < 0 ||
        store_reply_at_int(rep, 1, &v) < 0) {
        store_reply_free(rep);
        return KF_EBACKEND;
    }
    if (verdict == 0) {
        why->retry_after_ms = v;
    } else if (verdict < 0) {
        why->retry_after_ms = until_next_day(now_ms);
        why->budget = 1;
    }
    store_reply_free(rep);
    return verdict == 1 ? 0 : KF_ELIMIT;
}

/* Runs a wx_limit.lua op on budget's key whose reply is an integer. */
static int budget_op(struct wx_token *t, const char *op, int64_t now_ms,
                     const char *budget, long *out)
{
    const char *args[] = { op };
    char key[96];
    long long n = 0;
    int rc;

    rc = budget_key(now_ms, budget, key, sizeof(key));
    if (rc == 0)
        rc = int_op(t, &t->limit_sc, key, args, 1, &n);
    if (rc == 0)
        *out = (long)n;
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
