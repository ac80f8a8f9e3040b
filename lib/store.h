/* store: the worker's one Redis connection — URL parsing, connecting with
 * timeouts, reconnecting with exponential backoff, finding the master
 * through Redis Sentinel and following it after a fail-over, the Lua
 * scripts (loaded once, called with EVALSHA, reloaded on NOSCRIPT), WAIT
 * for replicas, and the key layout. Every key of one Official Account
 * starts with "wxkf:{APPID}:" so each script touches one Redis Cluster
 * slot. */
#ifndef STORE_H
#define STORE_H

#include <stdint.h>

#include "kf.h"

struct redisContext;
struct redisReply;
struct config;

#define STORE_SENTINELS_MAX 8

struct store_addr {
    char host[256];
    int port;
};

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
    /* Sentinel mode (nsentinels > 0): host/port are the master's, as the
     * Sentinels last said; each connect asks them again. */
    struct store_addr sentinel[STORE_SENTINELS_MAX];
    int nsentinels, sentinel_first;   /* asked first: the last that knew */
    int64_t next_ask_ms;      /* backing off: next look for a new master */
    char master_name[65];
    unsigned long failovers;  /* the master's address changed */
    unsigned long role_errors;  /* READONLY & co: a demoted master */
    long wait_replicas, wait_timeout_ms;   /* store_eval_wait */
    int wait_short;           /* the last WAIT confirmed too few */
    unsigned long wait_shorts;
    int64_t wait_probe_ms;    /* a short WAIT: until then wait 1 ms only */
};

/* url: redis://[:password@]host[:port][/db] or unix:/path[?db=N].
 * Does not connect (the first command does). Bad url -> KF_ECONFIG. */
KF_WUR int store_init(struct store *s, const char *url, const char *app_id,
                      long connect_timeout_ms, long io_timeout_ms);
void store_release(struct store *s);              /* safe twice */

/* 0 when list is "host:port[,host:port...]" with 1..STORE_SENTINELS_MAX
 * entries (IPv6 hosts in brackets), else KF_ECONFIG. */
KF_WUR int store_sentinels_ok(const char *list);
/* Sentinel mode: every (re)connect asks the Sentinels in list, the one
 * that answered last first, for master_name's address, connects there
 * (with the url's password and db) and checks with ROLE that it is a
 * master; a READONLY reply later (a demoted master) drops the connection
 * so the next command finds the new master. KF_ECONFIG on a bad list. */
KF_WUR int store_set_sentinels(struct store *s, const char *list,
                               const char *master_name);
/* store_init + store_set_sentinels + WAIT settings from [redis]. */
KF_WUR int store_init_config(struct store *s, const struct config *cfg);

/* For code that talks to s->rc itself: an error reply that says this
 * server is no longer the master (READONLY, MASTERDOWN, LOADING) drops
 * the connection so the next store_connect finds the master. Returns 1
 * when it did. */
int store_reply_role_error(struct store *s, const struct redisReply *r);

/* Connects if needed. While backing off after a failure returns
 * KF_EBACKEND at once, so a dead Redis costs a request microseconds; in
 * Sentinel mode it asks the Sentinels at most every 250 ms meanwhile and
 * connects at once when they name a new master. */
KF_WUR int store_connect(struct store *s);
KF_WUR int store_ping(struct store *s);
struct version;
/* The version the server reports (INFO server, one round trip): what
 * `wxkf check` prints and the programs compare with version_check() at
 * start. KF_EBACKEND without an answer (or an error reply), KF_ENOTFOUND
 * or KF_EPARSE when INFO does not say. */
KF_WUR int store_server_version(struct store *s, struct version *out);

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

/* store_eval followed, in the same round trip, by WAIT wait_replicas
 * wait_timeout_ms when wait_replicas > 0. *replicated = 1 when the write
 * reached that many replicas (always 1 with wait_replicas = 0); 0 means
 * the script ran on the master but a loss of the master could still lose
 * what it wrote. After a WAIT that timed out, the WAITs of the next second
 * block 1 ms only (the replica is missing or far behind: every callback
 * must not pay the whole timeout); then a full one is tried again. */
KF_WUR int store_eval_wait(struct store *s, const struct store_script *sc,
                           int argc, const char **argv, size_t *lens,
                           struct redisReply **out, int *replicated);

#endif
