/* wx_token: the WeChat API client's state shared by every process through
 * Redis — the cached access token (with its absolute expiry, the short
 * refresh lock and a compare-and-delete for a token WeChat rejected), the
 * token bucket of [ratelimit] wechat_api_per_min and the daily budgets.
 * wx_token_get decides who fetches a token and when; the fetch itself
 * (HTTP) is the caller's (wx_api). Times are wall-clock milliseconds,
 * passed in by the caller to the single-step verbs (all processes, on all
 * hosts, must agree on them). Scripts: lib/lua/wx_token.lua and
 * lib/lua/wx_limit.lua. */
#ifndef WX_TOKEN_H
#define WX_TOKEN_H

#include <stdint.h>

#include "kf.h"
#include "store.h"

#define WX_TOKEN_MAX 1024      /* WeChat: reserve >= 512 bytes */

/* A token younger than this (ms) is not refetched while valid. */
#define WX_TOKEN_MIN_AGE_MS 60000
/* A token with more than this left (ms) is fresh. */
#define WX_TOKEN_FRESH_MS 600000

struct wx_token {
    struct store *st;               /* borrowed */
    struct store_script token_sc, limit_sc;
};

enum wx_token_state {
    WX_TOKEN_FRESH,                 /* use cur */
    WX_TOKEN_LOCKED,                /* the caller owns the lock: fetch */
    WX_TOKEN_BUSY                   /* another process is fetching */
};

/* The cached token: "" = none. */
struct wx_token_cached {
    char token[WX_TOKEN_MAX];
    int64_t expires_ms;
};

/* st is borrowed and must outlive t. Never fails. */
void wx_token_init(struct wx_token *t, struct store *st);

/* Reads the cached token; unless it is fresh, tries to take the refresh
 * lock (SET NX PX lock_ttl_ms) as owner. *cur gets the cached token in
 * every state (it may be expired: compare expires_ms with now). */
KF_WUR int wx_token_acquire(struct wx_token *t, int64_t now_ms,
                            const char *owner, long lock_ttl_ms,
                            enum wx_token_state *state,
                            struct wx_token_cached *cur);
/* Stores token (fetched at now_ms, valid until expires_ms) and releases
 * owner's lock. */
KF_WUR int wx_token_put(struct wx_token *t, const char *token,
                        int64_t expires_ms, int64_t now_ms,
                        const char *owner);
/* Releases the lock if owner still holds it. */
KF_WUR int wx_token_unlock(struct wx_token *t, const char *owner);
/* Forgets the cached token if it is still token (WeChat rejected it);
 * *dropped = 1 if it was. */
KF_WUR int wx_token_drop(struct wx_token *t, const char *token,
                         int *dropped);

/* How wx_token_get gets a new token: one request to WeChat's token
 * endpoint, supplied by the caller (wx_api). fetch returns 0 with token
 * (< WX_TOKEN_MAX bytes) and *expires_in (seconds) set, or a code of the
 * caller's own, which wx_token_get passes back; it sets *answered = 1
 * when WeChat answered (the budget unit stays spent; else it is given
 * back). */
struct wx_token_fetcher {
    int (*fetch)(void *ctx, char *token, long *expires_in, int *answered);
    void *ctx;
    long per_day;                   /* the daily budget "token" */
    long lock_ttl_ms;               /* > the fetch's longest duration */
    long wait_ms;                   /* for another process's fetch */
};

/* Where wx_token_get stopped short of a token. */
enum wx_token_stop {
    WX_TOKEN_STOP_NONE,
    WX_TOKEN_STOP_REDIS,            /* KF_EBACKEND: Redis failed */
    WX_TOKEN_STOP_BUDGET,           /* KF_ELIMIT: the daily budget */
    WX_TOKEN_STOP_WAIT,             /* KF_EBACKEND: another process was
                                       still fetching after wait_ms */
    WX_TOKEN_STOP_FETCH             /* the fetcher's code */
};

/* Why wx_token_admit refused. */
struct wx_token_refusal {
    int64_t retry_after_ms;         /* the next bucket token / next day */
    int budget;                     /* 1: the budget, 0: the bucket */
};

/* Admits one request: with per_min > 0 takes a bucket token, with budget
 * ("send", "token"; NULL = none) spends one unit of today's budget of
 * limit units — both or neither. KF_ELIMIT when refused, with *why
 * filled. The day is Beijing's (UTC+8), where WeChat's daily quotas
 * live. */
KF_WUR int wx_token_admit(struct wx_token *t, int64_t now_ms, long per_min,
                          const char *budget, long limit,
                          struct wx_token_refusal *why);
/* Puts a usable access token in out (WX_TOKEN_MAX bytes): the cached one
 * while fresh; else, if we get the lock, a new one from f (spending a unit
 * of the daily budget "token"), stored for everyone — and should that
 * fail, the current one while it is still valid; else, while another
 * process fetches, the current one while still valid, or the new one once
 * it appears (polled every 50 ms, up to f->wait_ms; the lock is retried
 * too, so a dead fetcher's lock only costs its TTL). Reads the wall clock
 * itself. Returns 0 (*stop = NONE) or a code and *stop; *why is filled
 * for STOP_BUDGET. */
KF_WUR int wx_token_get(struct wx_token *t, const struct wx_token_fetcher *f,
                        char *out, enum wx_token_stop *stop,
                        struct wx_token_refusal *why);

/* Gives back the unit a request admitted at now_ms spent of budget
 * (the request never reached WeChat). */
KF_WUR int wx_token_refund(struct wx_token *t, int64_t now_ms,
                           const char *budget);
/* Units of budget spent on now_ms's day. */
KF_WUR int wx_token_spent(struct wx_token *t, int64_t now_ms,
                          const char *budget, long *spent);

#endif
