/* push: real-time delivery of the agents' feeds to their consoles. It
 * follows every agent's feed stream (P inbox:<agent>, the same entries
 * GET /api/v1/me/events returns) with one blocking XREAD on its own Redis
 * connection, and publishes what is new to the agent's Nchan channel
 * (POST <[push] url><account>, over [push] socket when set) as
 * {"prev": <the id before this batch>, "events":[{"id":..., fields...},
 * ...]}. The cursors live in memory: a console catches up from the feed
 * after a (re)connect, skips entries it has seen by id, and catches up
 * again when a message's prev is newer than its cursor (a publish that
 * failed, or a restart of `wxkf jobs` in between), so nothing is lost or
 * shown twice. Run by `wxkf jobs`
 * on a thread of its own, off the callback path. */
#ifndef PUSH_H
#define PUSH_H

#include <stdint.h>

#include "config.h"
#include "kf.h"
#include "log.h"
#include "store.h"

#define PUSH_AGENTS_MAX 4096
#define PUSH_LOOKBACK_MS 5000      /* a new cursor starts this far back */
#define PUSH_REFRESH_MS 1000       /* the agent list is re-read this often */

struct push_cursor {
    char account[48];
    char last[48];                 /* stream id of the last entry seen */
};

struct push {
    struct store store;            /* its own connection (blocking reads) */
    void *curl;                    /* CURL *, reused (keep-alive) */
    char url[520];                 /* base; the account is appended */
    char socket[1024];             /* "" = TCP */
    const struct log *log;
    struct push_cursor *cur;
    size_t ncur;
    int64_t next_refresh_ms;
};

struct push_counts {
    long entries, published, failed;
};

/* 1 when [push] url is set. */
int push_enabled(const struct config *cfg);

/* Opens the connection state (connects lazily). KF_ECONFIG for a bad
 * url, KF_ENOMEM. Call push_close() either way. */
KF_WUR int push_open(struct push *p, const struct config *cfg,
                     const struct log *log);
void push_close(struct push *p);   /* safe twice */

/* Closes every console subscribed to account's channel and drops what
 * the channel keeps (a DELETE to Nchan's publisher): after the agent's
 * token was replaced or the agent removed. Bounded (1 s); 0 also when
 * push is off or the channel did not exist. */
KF_WUR int push_drop(const struct config *cfg, const char *account);

/* One pass: re-reads the agent list when due, waits up to block_ms for
 * new feed entries of any agent and publishes them, one message per agent
 * per pass. A failed publish is counted and logged; the cursor moves on
 * (the console's feed catch-up covers the gap). KF_EBACKEND when Redis is
 * unreachable (the caller naps). */
KF_WUR int push_pass(struct push *p, long block_ms, int64_t now_ms,
                     struct push_counts *c);

#endif
