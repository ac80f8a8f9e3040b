/* wechat_kf: [wechat] mode = wechat_kf, agents who work in WeChat's own
 * customer-service tool. It owns the two things `wxkf jobs` does for them
 * (docs/routing.md "Agents in WeChat's own tool"):
 *  - presence from WeChat: getonlinekflist every [presence] wechat_poll
 *    seconds; an agent whose account is in kf_account form
 *    (prefix@wechat_id: the wxkf account IS the WeChat kf_account) is set
 *    online or offline through route_presence (the one presence path),
 *    and its heartbeat refreshed at each poll, so the [presence]
 *    heartbeat_ttl expiry does not take it offline. A failed poll keeps
 *    presence as it was (heartbeats refreshed) for WECHAT_KF_POLL_FAILS
 *    polls in a row; past that wxkf stops vouching for the agents, and
 *    the heartbeat expiry takes them offline unless a console keeps them
 *    (the workspace rule).
 *  - WeChat-side sessions following wxkf's routing: the consumer group
 *    WECHAT_KF_GROUP on P events turns a close, a return to the queue and
 *    a re-route into steps (kfsession/close of the agent WeChat has the
 *    user with, kfsession/create for the new agent) kept per user in
 *    Redis (lib/lua/kf_session.lua), made in order, a transient failure
 *    retried with exponential back-off, a WeChat refusal given up at once.
 * The decisions are pure functions (wechat_kf_online_list, _listed,
 * _presence_op, _verdict); the passes are thin over lib/route, lib/wx_api
 * and the script. Nothing here prints: each pass fills counts that the
 * jobs loop logs and counts into metrics. */
#ifndef WECHAT_KF_H
#define WECHAT_KF_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kf.h"
#include "store.h"

struct route;
struct wx_api;

#define WECHAT_KF_POLL_FAILS 5          /* failed polls that keep presence */
#define WECHAT_KF_GROUP "kfsession"     /* the consumer group on P events */
#define WECHAT_KF_READ_MAX 5000         /* stream entries a pass reads */
#define WECHAT_KF_LEASE_MS 60000
#define WECHAT_KF_RETRY_MS 5000         /* first retry of a failed step */
#define WECHAT_KF_RETRY_MAX_MS 600000   /* the longest wait between tries */
#define WECHAT_KF_TRIES 8               /* failed tries before giving up */
#define WECHAT_KF_LIST_MAX 1000         /* kf_online_list entries read */
#define WECHAT_KF_FORGET_MS 3600000L    /* idle consumers forgotten after */
#define WECHAT_KF_FORGET_EVERY_MS 60000 /* how often a pass looks */

/* --- decisions (pure) --------------------------------------------------- */

/* The kf_online_list array (borrowed from body) of WeChat's
 * getonlinekflist answer body; KF_EPARSE when body is not an object with
 * that array. */
KF_WUR int wechat_kf_online_list(json_t *body, json_t **list);

/* 1 when list (wechat_kf_online_list's, at most WECHAT_KF_LIST_MAX
 * entries read) has an entry {"kf_account": account, "status": N} with N
 * a number other than 0 (WeChat: 0 offline, 1 web online; older SDKs a
 * bitmask 1 PC, 2 mobile, 3 both), else 0. */
int wechat_kf_listed(json_t *list, const char *account);

/* The route_presence op the poll applies to an agent in kf_account form
 * whose wxkf status is status ("online", "paused" or "offline"):
 * listed = wechat_kf_listed; polled = 1 when the poll succeeded, 0 when
 * it failed (within WECHAT_KF_POLL_FAILS: presence kept). "online",
 * "offline", "heartbeat" (status kept, heartbeat refreshed) or NULL
 * (nothing to do). A paused agent stays paused while WeChat lists it. */
const char *wechat_kf_presence_op(const char *status, int listed, int polled);

/* What follows a kfsession call's outcome: rc of wx_api_kf_session and
 * its result's transient flag. */
enum {
    WECHAT_KF_DONE = 0,      /* WeChat did it */
    WECHAT_KF_REFUSED = 1,   /* a WeChat refusal (65413 no session, 65414
                                served by another agent, 65415 agent not
                                online, 40003 / 65416 bad openid, ...):
                                given up at once */
    WECHAT_KF_RETRY = 2,     /* network, 5xx, -1, 45009, rate limit, out
                                of memory: retried later */
};
int wechat_kf_verdict(int rc, int transient);

/* --- `wxkf jobs` --------------------------------------------------------- */

struct wechat_kf_counts {
    /* presence */
    long polls, polls_failed;
    long set_online, set_offline, kept;   /* route_presence calls */
    int polls_failed_in_row;
    int fell_back;             /* 1: past WECHAT_KF_POLL_FAILS, heartbeats
                                  no longer refreshed */
    /* sessions */
    long queued;               /* steps made from stream entries */
    long done, refused, retried, dropped;
    /* the last failure (poll or step), for the log line */
    char last_call[64];        /* "getonlinekflist", "close:c1@shop" */
    char last_openid[KF_OPENID_MAX + 1];   /* of a step, else "" */
    long last_errcode;         /* WeChat's, or 0 */
    char last_error[256];
};

struct wechat_kf {
    struct route *route;       /* borrowed */
    struct store *store;       /* borrowed */
    struct wx_api *api;        /* borrowed */
    struct store_script script;    /* lib/lua/kf_session.lua */
    char consumer[64];
    int64_t poll_ms;           /* [presence] wechat_poll in ms */
    int64_t next_poll;         /* wall ms of the next poll (0: now) */
    int fails;                 /* polls failed in a row */
    long forget_ms;            /* WECHAT_KF_FORGET_MS (tests: less) */
    int64_t next_forget;       /* ms of the next look for idle consumers */
};

/* All borrowed; they must outlive k. poll_s: [presence] wechat_poll.
 * Never fails. */
void wechat_kf_init(struct wechat_kf *k, struct route *r, struct store *st,
                    struct wx_api *api, long poll_s);

/* Polls getonlinekflist when it is due (else returns 0 at once) and
 * applies it to every agent in kf_account form. KF_EBACKEND when Redis
 * fails; a failed poll is not an error (c->polls_failed). */
KF_WUR int wechat_kf_poll(struct wechat_kf *k, int64_t now_ms,
                          struct wechat_kf_counts *c);

/* One pass: turns new stream entries into steps and makes at most limit
 * due steps. KF_EBACKEND when Redis fails. */
KF_WUR int wechat_kf_sessions_pass(struct wechat_kf *k, int64_t now_ms,
                                   long limit, struct wechat_kf_counts *c);

#endif
