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
    long wait_replicas, wait_timeout_ms;   /* store_run_wait */
    int wait_short;           /* the last WAIT confirmed too few */
    unsigned long wait_shorts;
    int64_t wait_probe_ms;    /* a short WAIT: until then wait 1 ms only */
    char err[161];            /* store_error() */
    /* Appended to the ARGV of the next script run only, then cleared
     * (lib/audit: audit_redis_arm); the strings are borrowed. */
    const char *const *tail;
    int ntail;
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

/* --- the adapter every other module uses -------------------------------- */

/* A reply, opaque outside store.c: read it with the accessors below. A
 * NULL reply (e.g. store_reply_at past the end) reads as STORE_NIL. */
struct store_reply;

enum store_type {
    STORE_NIL,
    STORE_INT,
    STORE_STR,
    STORE_ARRAY,
    STORE_STATUS,     /* "+OK" */
    STORE_ERR,        /* an error reply of store_cmd (never of store_run) */
};

/* Runs sc with EVALSHA (EVAL once after a NOSCRIPT) in one round trip.
 * keys[0..nkeys) are suffixes ("queue", "agent:7"): the script gets
 * KEYS[1] = the account prefix "wxkf:{APPID}:" and KEYS[2..] = prefix ..
 * keys[i]. args[0] is the op (ARGV[1]); args[1..] are ARGV[2..];
 * arg_lens NULL = every arg is a NUL-terminated string, else args are
 * binary with those lengths. nargs >= 1. A broken connection is retried
 * once on a fresh one; no answer, or a Redis error reply (a script error,
 * OOM) -> KF_EBACKEND, and store_error() says what Redis answered; more
 * than STORE_ARGS_MAX keys + args -> KF_ETOOBIG. On success *out is new;
 * the caller frees it with store_reply_free(). out NULL: only success
 * matters, the reply is freed at once. */
#define STORE_ARGS_MAX 16384
KF_WUR int store_run(struct store *s, const struct store_script *sc,
                     int nkeys, const char *const *keys, int nargs,
                     const char *const *args, const size_t *arg_lens,
                     struct store_reply **out);

/* store_run followed, in the same round trip, by WAIT wait_replicas
 * wait_timeout_ms when wait_replicas > 0. *replicated = 1 when the write
 * reached that many replicas (always 1 with wait_replicas = 0); 0 means
 * the script ran on the master but a loss of the master could still lose
 * what it wrote. After a WAIT that timed out, the WAITs of the next second
 * block 1 ms only (the replica is missing or far behind: every callback
 * must not pay the whole timeout); then a full one is tried again. */
KF_WUR int store_run_wait(struct store *s, const struct store_script *sc,
                          int nkeys, const char *const *keys, int nargs,
                          const char *const *args, const size_t *arg_lens,
                          struct store_reply **out, int *replicated);

/* One plain command, full key names (store_key); lens NULL = strings. A
 * broken connection is retried once (so only idempotent commands); no
 * answer -> KF_EBACKEND. An error reply is a reply (STORE_ERR, its text
 * in store_reply_str). On success *out is new (store_reply_free()); out
 * NULL: only success matters, the reply is freed at once and an error
 * reply is KF_EBACKEND. */
KF_WUR int store_cmd(struct store *s, int argc, const char *const *argv,
                     const size_t *lens, struct store_reply **out);

/* Borrowed: the text of the error reply that made the last store_run
 * fail (at most 160 bytes), "" when it failed without an answer. */
const char *store_error(const struct store *s);

void store_reply_free(struct store_reply *r);      /* NULL is fine */
enum store_type store_reply_type(const struct store_reply *r);
/* STORE_INT: its value; anything else 0. */
int64_t store_reply_int(const struct store_reply *r);
/* STORE_STR, STORE_STATUS, STORE_ERR: its bytes (borrowed from r, also
 * NUL-terminated); anything else {NULL, 0}. */
struct kf_str store_reply_str(const struct store_reply *r);
/* STORE_ARRAY: its number of elements; anything else 0. */
size_t store_reply_len(const struct store_reply *r);
/* Borrowed from r: element i of an array, NULL when r is not an array or
 * i >= its length. */
const struct store_reply *store_reply_at(const struct store_reply *r,
                                         size_t i);
/* Element i as an integer: STORE_INT, or a string that is a whole
 * decimal int64 (Lua turns numbers into strings in tables). Else
 * KF_EPARSE (also out of range) and *out = 0. */
KF_WUR int store_reply_at_int(const struct store_reply *r, size_t i,
                              int64_t *out);
/* Element i as bytes (borrowed from r): STORE_STR or STORE_STATUS. Else
 * KF_EPARSE and *out = {"", 0}. */
KF_WUR int store_reply_at_str(const struct store_reply *r, size_t i,
                              struct kf_str *out);
/* Element i as a NUL-terminated string borrowed from r (STORE_STR or
 * STORE_STATUS; binary bytes end at their first NUL), "" for anything
 * else. */
const char *store_reply_at_text(const struct store_reply *r, size_t i);
/* Element i, a string or an integer (in decimal), into out[0..n) with a
 * NUL: 0; too long -> KF_ETOOBIG with out holding what fits; absent or
 * of another type -> KF_EPARSE with out = "". n >= 1. */
int store_reply_at_copy(const struct store_reply *r, size_t i, char *out,
                        size_t n);
/* 1 when element i is a string equal to word, else 0. */
int store_reply_at_is(const struct store_reply *r, size_t i,
                      const char *word);

#endif
