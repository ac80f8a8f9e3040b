/* testutil: helpers shared by the cmocka unit tests — reading the vector
 * files under test/vectors (run from test/unit, so paths are
 * "../vectors/..."), hex decoding, TSV rows, a free port, and the private
 * servers (redis-server, the WeChat simulator). */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <stddef.h>
#include <jansson.h>

#define VEC(path) "../vectors/" path

/* Whole file, NUL-terminated; *len excludes the NUL. Fails the test on error.
 * Caller frees. */
char *tu_read_file(const char *path, size_t *len);
/* Parsed JSON file; fails the test on error. Caller json_decref()s. */
json_t *tu_read_json(const char *path);
/* Hex to bytes; returns malloc'd buffer, *len bytes. Fails on bad hex. */
unsigned char *tu_unhex(const char *hex, size_t *len);
/* Convenience: string member of a JSON object (fails the test if absent). */
const char *tu_jstr(const json_t *obj, const char *key);

/* TSV: tu_tsv_load reads the file; rows[0] is the header. Each row is an
 * array of ncols strings pointing into one buffer. */
struct tu_tsv {
    char *buf;
    char ***rows;
    size_t nrows, ncols;
};
void tu_tsv_load(struct tu_tsv *t, const char *path);
/* Column index by header name; fails the test if absent. */
size_t tu_tsv_col(const struct tu_tsv *t, const char *name);
void tu_tsv_release(struct tu_tsv *t);

/* Ports for private servers, by the rule of test/pylib/wxkf_ports.py
 * (docs/operations.md): from 10000 up to one below the lower bound of the
 * kernel's ephemeral range as the file at path reports it (from 1024 when
 * that bound is below 11000; 10000-32767 when unreadable or below 2024). */
#define TU_PORT_RANGE_FILE "/proc/sys/net/ipv4/ip_local_port_range"
void tu_port_range(const char *path, int *lo, int *hi);
/* A server could listen on 127.0.0.1:port now (bind + listen with
 * SO_REUSEADDR, as redis-server and postgres do). */
int tu_port_bindable(int port);
/* A port in tu_port_range() that is bindable now: from a random start
 * upwards, at most 200 candidates; fails the test when none is. */
int tu_free_port(void);
/* The next tu_free_port() returns port, unchecked (a test that makes the
 * first choice a taken one). */
void tu_port_hint(int port);
/* The log file at path says a bind failed: "Address already in use". */
int tu_log_says_in_use(const char *path);
/* Replaces a malloc'd string field (a config value) with a copy of v. */
void tu_set_str(char **field, const char *v);
/* n copies of s, a new string (free it). */
char *tu_repeat(const char *s, size_t n);


/* tu_redis.c: a private redis-server for tests that need a real one (store, callback):
 * started on a free loopback port with its data in a temp dir, stopped by
 * pid. Fails the test if it cannot start within 5 s. A server on a port of
 * its own choosing (tu_redis_start, a replica or Sentinel on port 0) whose
 * bind is refused is started once more on a newly chosen port. */
struct tu_redis {
    int port;
    int pid;
    char dir[64];
    char portstr[8];    /* port as text, for redis-server's argv */
};
void tu_redis_start(struct tu_redis *r);
void tu_redis_start_on(struct tu_redis *r, int port);  /* 0: a free one */
/* A replica of the Redis on master_port (port 0 = a free one); returns
 * once it has finished its first sync (bounded: 10 s). */
void tu_redis_start_replica(struct tu_redis *r, int port, int master_port);
/* A Redis Sentinel monitoring master_port as name, quorum 1, down after
 * 1000 ms (its config in its temp dir); returns once it knows the
 * master and its replicas (bounded: 10 s). */
void tu_sentinel_start(struct tu_redis *r, int master_port,
                       const char *name);
void tu_redis_stop(struct tu_redis *r);
void tu_sleep_ms(long ms);
/* Runs one redis command (argv, NULL-terminated) and returns its reply as
 * a string: integers as decimal, bulk/status as is, nil as "(nil)".
 * Caller frees. */
char *tu_redis_cmd(const struct tu_redis *r, const char *const *argv);
/* A command on a test's own connection (hiredis's redisCommand format):
 * tu_redis_do fails the test on an error reply; tu_redis_num returns an
 * integer reply or a string of one, -1 for anything else (nil). */
struct redisContext;
void tu_redis_do(struct redisContext *rc, const char *fmt, ...);
long long tu_redis_num(struct redisContext *rc, const char *fmt, ...);

/* tu_sim.c: the WeChat API simulator (test/sim/wechat_api_sim.py, run with
 * /usr/bin/python3 from test/unit) on a free loopback port; base is its
 * "http://127.0.0.1:PORT". tu_sim_start fails the test if it does not
 * answer /_sim/health within 10 s; tu_sim_stop stops it by pid. */
struct tu_sim {
    int pid, port;
    char base[64];
};
void tu_sim_start(struct tu_sim *s, const char *appid, const char *secret);
void tu_sim_stop(struct tu_sim *s);
/* POSTs json to the simulator's path; fails the test unless it is 200. */
void tu_sim_post(const struct tu_sim *s, const char *path, const char *json);
/* One HTTP request with a JSON content type (body is POSTed when method
 * is "POST", "{}" if NULL); returns the answer's body (caller frees) and
 * sets *status (0 when there was no answer). */
char *tu_http(const char *method, const char *url, const char *body,
              long *status);

/* A suite's private redis-server and simulator (the tests of what the
 * WeChat client does, and of what `wxkf jobs` does with it): started by
 * tu_wx_start (redis_url is "redis://127.0.0.1:PORT"), stopped by
 * tu_wx_stop. tu_wx_config points a config_init'ed cfg at the simulator
 * as appid / secret, with short timeouts, no retries and a rate limit
 * that never refuses. */
struct config;
struct tu_wx {
    struct tu_redis redis;
    struct tu_sim sim;
    char redis_url[64];
};
void tu_wx_start(struct tu_wx *w, const char *appid, const char *secret);
void tu_wx_stop(struct tu_wx *w);
void tu_wx_config(struct config *cfg, const struct tu_wx *w,
                  const char *appid, const char *secret);
/* A new connection to w's Redis, emptied (FLUSHALL), and the simulator
 * reset: a test's clean start. Fails the test if Redis does not answer;
 * redisFree it. */
struct redisContext *tu_wx_fresh(const struct tu_wx *w);

#endif
