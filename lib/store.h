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
    unsigned long reconnects; /* successful connects after the first */
    unsigned long failures;   /* connects or commands that failed */
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

struct redisReply;
/* One command (argv and lens as hiredis takes them; lens NULL = strings).
 * A broken connection is retried once on a fresh one; no answer ->
 * KF_EBACKEND (and backing off). An error reply is a reply: the caller
 * checks its type. On success *out is new (freeReplyObject()). */
KF_WUR int store_command(struct store *s, int argc, const char **argv,
                         const size_t *lens, struct redisReply **out);

/* Appends prefix + suffix (a full key name of this account) to out. */
KF_WUR int store_key(const struct store *s, const char *suffix,
                     struct kf_buf *out);

struct store_field {
    struct kf_str name, value;
};

/* A Lua script: its source and SHA-1 (for EVALSHA). src is borrowed and
 * must outlive the script (the embedded scripts are static). */
struct store_script {
    const char *src;
    char sha[41];
};
void store_script_init(struct store_script *sc, const char *src);

/* Runs sc: argv[0] and argv[1] (and lens[0..1]) are filled here
 * (EVALSHA sha, or EVAL src after a NOSCRIPT); the caller fills
 * argv[2..] = numkeys, keys..., args... (lens may be NULL when every
 * argument is a NUL-terminated string). One round trip normally, two the
 * first time a server sees the script. A Redis error reply is KF_EBACKEND.
 * On success *out is new; the caller frees it with freeReplyObject(). */
KF_WUR int store_eval(struct store *s, const struct store_script *sc,
                      int argc, const char **argv, size_t *lens,
                      struct redisReply **out);

#endif
