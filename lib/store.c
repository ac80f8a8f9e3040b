/* store: Redis connection, backoff and scripts. */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "banned.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define MAX_ARGS 64

static void sha1_hex(const char *s, char out[41]);

void store_script_init(struct store_script *sc, const char *src)
{
    sc->src = src;
    sha1_hex(src, sc->sha);
}

static void sha1_hex(const char *s, char out[41])
{
    unsigned char md[SHA_DIGEST_LENGTH];
    size_t i;

    SHA1((const unsigned char *)s, strlen(s), md);
    for (i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int copy_field(char *dst, size_t n, const char *p, size_t len)
{
    if (len >= n)
        return KF_ECONFIG;
    memcpy(dst, p, len);
    dst[len] = '\0';
    return 0;
}

static int parse_tcp(struct store *s, const char *u)
{
    const char *at = strchr(u, '@'), *slash, *colon;
    char *end;

    if (at) {
        if (*u != ':' ||
            copy_field(s->password, sizeof(s->password), u + 1,
                       (size_t)(at - u - 1)) < 0)
            return KF_ECONFIG;
        u = at + 1;
    }
    slash = strchr(u, '/');
    colon = memchr(u, ':', slash ? (size_t)(slash - u) : strlen(u));
    if (copy_field(s->host, sizeof(s->host), u,
                   colon ? (size_t)(colon - u)
                         : slash ? (size_t)(slash - u) : strlen(u)) < 0 ||
        !*s->host)
        return KF_ECONFIG;
    s->port = 6379;
    if (colon) {
        long p = strtol(colon + 1, &end, 10);

        if (end == colon + 1 || p < 1 || p > 65535 ||
            (*end && *end != '/'))
            return KF_ECONFIG;
        s->port = (int)p;
    }
    if (slash && slash[1]) {
        long db = strtol(slash + 1, &end, 10);

        if (*end || db < 0 || db > 15)
            return KF_ECONFIG;
        s->db = (int)db;
    }
    return 0;
}

static int parse_unix(struct store *s, const char *u)
{
    const char *q = strchr(u, '?');
    char *end;

    while (u[0] == '/' && u[1] == '/')   /* unix:///path -> /path */
        u++;
    if (copy_field(s->unix_path, sizeof(s->unix_path), u,
                   q ? (size_t)(q - u) : strlen(u)) < 0 ||
        s->unix_path[0] != '/')
        return KF_ECONFIG;
    if (q) {
        long db;

        if (strncmp(q, "?db=", 4))
            return KF_ECONFIG;
        db = strtol(q + 4, &end, 10);
        if (*end || end == q + 4 || db < 0 || db > 15)
            return KF_ECONFIG;
        s->db = (int)db;
    }
    return 0;
}

int store_init(struct store *s, const char *url, const char *app_id,
               long connect_timeout_ms, long io_timeout_ms)
{
    int n;

    memset(s, 0, sizeof(*s));
    s->connect_timeout_ms = connect_timeout_ms;
    s->io_timeout_ms = io_timeout_ms;
    s->backoff_ms = BACKOFF_MIN_MS;
    n = snprintf(s->prefix, sizeof(s->prefix), "wxkf:{%s}:", app_id);
    if (n < 0 || (size_t)n >= sizeof(s->prefix))
        return KF_ECONFIG;
    if (strncmp(url, "redis://", 8) == 0)
        return parse_tcp(s, url + 8);
    if (strncmp(url, "unix:", 5) == 0)
        return parse_unix(s, url + 5);
    return KF_ECONFIG;
}

static void drop(struct store *s)
{
    if (s->rc)
        redisFree(s->rc);
    s->rc = NULL;
}

void store_release(struct store *s)
{
    drop(s);
}

static struct timeval tv_ms(long ms)
{
    return (struct timeval){ ms / 1000, (ms % 1000) * 1000 };
}

/* Runs a setup command on a fresh connection; 0 if it answered OK. */
static int setup_cmd(struct store *s, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(s->rc, argc, argv, NULL);
    int ok = r && r->type != REDIS_REPLY_ERROR;

    if (r)
        freeReplyObject(r);
    return ok ? 0 : KF_EBACKEND;
}

static int open_conn(struct store *s)
{
    struct timeval ct = tv_ms(s->connect_timeout_ms);
    char db[8];

    if (*s->unix_path)
        s->rc = redisConnectUnixWithTimeout(s->unix_path, ct);
    else
        s->rc = redisConnectWithTimeout(s->host, s->port, ct);
    if (!s->rc || s->rc->err ||
        redisSetTimeout(s->rc, tv_ms(s->io_timeout_ms)) != REDIS_OK)
        return KF_EBACKEND;
    if (*s->password) {
        const char *argv[] = { "AUTH", s->password };

        if (setup_cmd(s, 2, argv) < 0)
            return KF_EBACKEND;
    }
    if (s->db) {
        const char *argv[] = { "SELECT", db };

        snprintf(db, sizeof(db), "%d", s->db);
        if (setup_cmd(s, 2, argv) < 0)
            return KF_EBACKEND;
    }
    return 0;
}

/* After a failure: no new attempt before the backoff has passed. */
static void back_off(struct store *s)
{
    s->failures++;
    drop(s);
    s->next_try_ms = kf_mono_ms() + s->backoff_ms;
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS
                        ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

int store_connect(struct store *s)
{
    if (s->rc)
        return 0;
    if (kf_mono_ms() < s->next_try_ms)
        return KF_EBACKEND;
    if (open_conn(s) < 0) {
        back_off(s);
        return KF_EBACKEND;
    }
    if (s->connected_once)
        s->reconnects++;
    s->connected_once = 1;
    s->backoff_ms = BACKOFF_MIN_MS;
    s->next_try_ms = 0;
    return 0;
}

/* Sends one command. A broken connection is dropped and, because every
 * command we send is idempotent, retried once on a fresh one at once.
 * On success *out is new; caller frees with freeReplyObject(). */
static int command(struct store *s, int argc, const char **argv,
                   const size_t *lens, redisReply **out)
{
    int attempt;

    for (attempt = 0; attempt < 2; attempt++) {
        if (attempt == 1)
            s->next_try_ms = 0;
        if (store_connect(s) < 0)
            return KF_EBACKEND;
        *out = redisCommandArgv(s->rc, argc, argv, lens);
        if (*out)
            return 0;
        drop(s);
    }
    /* A server that accepts connections but does not answer (stopped,
     * overloaded) must not cost every request two I/O timeouts. */
    back_off(s);
    return KF_EBACKEND;
}

int store_command(struct store *s, int argc, const char **argv,
                  const size_t *lens, struct redisReply **out)
{
    *out = NULL;
    return command(s, argc, argv, lens, out);
}

int store_ping(struct store *s)
{
    const char *argv[] = { "PING" };
    redisReply *r = NULL;
    int rc = command(s, 1, argv, NULL, &r);

    if (rc == 0 && r->type == REDIS_REPLY_ERROR)
        rc = KF_EBACKEND;
    if (r)
        freeReplyObject(r);
    return rc;
}

int store_key(const struct store *s, const char *suffix, struct kf_buf *out)
{
    int rc = kf_buf_append_c(out, s->prefix);

    return rc < 0 ? rc : kf_buf_append_c(out, suffix);
}

static int is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->str &&
           strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* EVALSHA, falling back to EVAL (which also caches the script) when the
 * server does not know it, e.g. after a restart or failover. */
int store_eval(struct store *s, const struct store_script *sc, int argc,
               const char **argv, size_t *lens, struct redisReply **out)
{
    int rc;

    *out = NULL;
    if (argc < 3)
        return KF_EINVAL;
    argv[0] = "EVALSHA";
    argv[1] = sc->sha;
    if (lens) {
        lens[0] = 7;
        lens[1] = 40;
    }
    rc = command(s, argc, argv, lens, out);
    if (rc == 0 && is_noscript(*out)) {
        freeReplyObject(*out);
        *out = NULL;
        argv[0] = "EVAL";
        argv[1] = sc->src;
        if (lens) {
            lens[0] = 4;
            lens[1] = strlen(sc->src);
        }
        rc = command(s, argc, argv, lens, out);
    }
    if (rc == 0 && (*out)->type == REDIS_REPLY_ERROR) {
        /* e.g. OOM, READONLY on a replica, a script error */
        freeReplyObject(*out);
        *out = NULL;
        rc = KF_EBACKEND;
    }
    return rc;
}
