/* store: the worker's one Redis connection — URL parsing, connecting with
 * timeouts, reconnecting with exponential backoff, the Lua scripts (loaded
 * once, called with EVALSHA, reloaded on NOSCRIPT) and the key layout.
 * Every key of one Official Account starts with "wxkf:{APPID}:" so each
 * script touches one Redis Cluster slot. */
#ifndef STORE_H
#define STORE_H

#include <stdint.h>

#include "kf.h"

struct redisContext;

struct store {
    struct redisContext *rc;
    char host[256];
    char unix_path[256];
    char password[128];
    int port, db;
    long connect_timeout_ms, io_timeout_ms;
    int64_t next_try_ms;      /* no connect attempt before this (backoff) */
    long backoff_ms;
    char prefix[96];          /* "wxkf:{APPID}:" */
    char ingest_sha[41];
    unsigned long reconnects; /* successful connects after the first */
    int connected_once;
};

/* url: redis://[:password@]host[:port][/db] or unix:/path[?db=N].
 * Does not connect (the first command does). Bad url -> KF_ECONFIG. */
KF_WUR int store_init(struct store *s, const char *url, const char *app_id,
                      long connect_timeout_ms, long io_timeout_ms);
void store_release(struct store *s);              /* safe twice */

/* Connects if needed. While backing off after a failure returns
 * KF_EBACKEND at once, so a dead Redis costs a request microseconds. */
KF_WUR int store_connect(struct store *s);
KF_WUR int store_ping(struct store *s);

/* The stream every worker appends events to: prefix + "events". */
KF_WUR int store_key(const struct store *s, const char *suffix,
                     struct kf_buf *out);

struct store_field {
    struct kf_str name, value;
};

/* One round trip: if dedupe_key (a suffix under prefix + "dedupe:") was
 * seen within ttl_s, *dup = 1 and reply_out gets the reply stored then;
 * otherwise the fields are appended to the events stream, reply is stored
 * under the dedupe key for ttl_s, *dup = 0 and reply_out gets reply.
 * Redis unreachable -> KF_EBACKEND (nothing was stored, or the caller's
 * retry will be deduplicated). */
KF_WUR int store_ingest(struct store *s, struct kf_str dedupe_key,
                        long ttl_s, struct kf_str reply,
                        const struct store_field *fields, size_t nfields,
                        struct kf_buf *reply_out, int *dup);

#endif
