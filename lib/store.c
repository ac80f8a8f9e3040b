/* store: Redis connection, Sentinel, backoff, scripts and WAIT. */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "config.h"
#include "version.h"

#include "banned.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define MAX_ARGS 64
#define SENTINEL_ASK_MS 250

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

/* One "host:port" (host may be "[v6]") of len n into a. */
static int parse_addr(struct store_addr *a, const char *p, size_t n)
{
    const char *colon = NULL, *h = p;
    size_t i, hl;
    long port = 0;

    for (i = 0; i < n; i++)
        if (p[i] == ':')
            colon = p + i;
    if (!colon || colon + 1 == p + n || (size_t)(p + n - colon - 1) > 5)
        return KF_ECONFIG;
    for (i = (size_t)(colon - p) + 1; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return KF_ECONFIG;
        port = port * 10 + (p[i] - '0');
    }
    hl = (size_t)(colon - p);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (port < 1 || port > 65535 || hl == 0 || hl >= sizeof(a->host))
        return KF_ECONFIG;
    for (i = 0; i < hl; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789.-_:", h[i]) || !h[i])
            return KF_ECONFIG;
    memcpy(a->host, h, hl);
    a->host[hl] = '\0';
    a->port = (int)port;
    return 0;
}

/* Fills out[0..*n) from "host:port,..." (spaces around entries allowed). */
static int parse_sentinels(const char *list, struct store_addr *out, int *n)
{
    const char *p = list;

    *n = 0;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        while (len && *p == ' ') {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ')
            len--;
        if (*n >= STORE_SENTINELS_MAX || parse_addr(&out[*n], p, len) < 0)
            return KF_ECONFIG;
        (*n)++;
        if (!end)
            return 0;
        p = end + 1;
    }
}

int store_sentinels_ok(const char *list)
{
    struct store_addr a[STORE_SENTINELS_MAX];
    int n;

    return parse_sentinels(list, a, &n);
}

int store_set_sentinels(struct store *s, const char *list,
                        const char *master_name)
{
    size_t len = strlen(master_name);

    if (len == 0 || len >= sizeof(s->master_name) ||
        parse_sentinels(list, s->sentinel, &s->nsentinels) < 0) {
        s->nsentinels = 0;
        return KF_ECONFIG;
    }
    memcpy(s->master_name, master_name, len + 1);
    s->sentinel_first = 0;
    s->host[0] = '\0';       /* the Sentinels say where */
    s->unix_path[0] = '\0';
    return 0;
}

int store_init_config(struct store *s, const struct config *cfg)
{
    int rc = store_init(s, cfg->redis.url, cfg->wechat.app_id,
                        cfg->redis.connect_timeout_ms,
                        cfg->redis.io_timeout_ms);

    if (rc == 0 && *cfg->redis.sentinels)
        rc = store_set_sentinels(s, cfg->redis.sentinels,
                                 cfg->redis.master_name);
    s->wait_replicas = cfg->redis.wait_replicas;
    s->wait_timeout_ms = cfg->redis.wait_timeout_ms;
    return rc;
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

/* Asks the Sentinels, the one that answered last first, where the master
 * is; fills s->host/port. */
static int ask_sentinels(struct store *s)
{
    const char *argv[] = { "SENTINEL", "get-master-addr-by-name",
                           s->master_name };
    int k;

    for (k = 0; k < s->nsentinels; k++) {
        int i = (s->sentinel_first + k) % s->nsentinels;
        const struct store_addr *a = &s->sentinel[i];
        redisContext *c = redisConnectWithTimeout(
            a->host, a->port, tv_ms(s->connect_timeout_ms));
        redisReply *r = NULL;
        long port;
        char *end;

        if (c && !c->err &&
            redisSetTimeout(c, tv_ms(s->io_timeout_ms)) == REDIS_OK)
            r = redisCommandArgv(c, 3, argv, NULL);
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            r->element[1]->type == REDIS_REPLY_STRING &&
            r->element[0]->len > 0 &&
            r->element[0]->len < sizeof(s->host) &&
            (port = strtol(r->element[1]->str, &end, 10)) > 0 &&
            port <= 65535 && !*end) {
            if (s->host[0] && (strcmp(s->host, r->element[0]->str) ||
                               s->port != (int)port))
                s->failovers++;
            memcpy(s->host, r->element[0]->str, r->element[0]->len + 1);
            s->port = (int)port;
            s->sentinel_first = i;
            freeReplyObject(r);
            redisFree(c);
            return 0;
        }
        if (r)
            freeReplyObject(r);
        if (c)
            redisFree(c);
    }
    return KF_EBACKEND;
}

/* Sentinel mode: the server we reached must say it is the master (during
 * a fail-over a Sentinel can still name the old one). */
static int check_master(struct store *s)
{
    const char *argv[] = { "ROLE" };
    redisReply *r = redisCommandArgv(s->rc, 1, argv, NULL);
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
             r->element[0]->type == REDIS_REPLY_STRING &&
             strcmp(r->element[0]->str, "master") == 0;

    if (r)
        freeReplyObject(r);
    if (!ok)    /* next time ask another Sentinel first */
        s->sentinel_first = (s->sentinel_first + 1) % s->nsentinels;
    return ok ? 0 : KF_EBACKEND;
}

static int open_conn(struct store *s)
{
    struct timeval ct = tv_ms(s->connect_timeout_ms);
    char db[8];

    if (s->nsentinels && ask_sentinels(s) < 0)
        return KF_EBACKEND;
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
    return s->nsentinels ? check_master(s) : 0;
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

/* Sentinel mode, while backing off: at most every SENTINEL_ASK_MS, 1 if
 * the Sentinels now name another master than the one that failed (a
 * fail-over happened: no reason to wait out the backoff). */
static int master_moved(struct store *s, int64_t now)
{
    char host[sizeof(s->host)];
    int port = s->port;

    if (!s->nsentinels || now < s->next_ask_ms)
        return 0;
    s->next_ask_ms = now + SENTINEL_ASK_MS;
    memcpy(host, s->host, sizeof(host));
    return ask_sentinels(s) == 0 &&
           (strcmp(host, s->host) != 0 || port != s->port);
}

int store_connect(struct store *s)
{
    int64_t now = kf_mono_ms();

    if (s->rc)
        return 0;
    if (now < s->next_try_ms && !master_moved(s, now))
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

static int starts(const redisReply *r, const char *word)
{
    return r->type == REDIS_REPLY_ERROR && r->str &&
           strncmp(r->str, word, strlen(word)) == 0;
}

/* The server is not (or no longer, or not yet) a usable master. */
static int is_role_error(const redisReply *r)
{
    return starts(r, "READONLY") || starts(r, "MASTERDOWN") ||
           starts(r, "LOADING");
}

/* A reply that says this server is no longer the master drops the
 * connection so the next store_connect finds the master: 1 when it did. */
static int role_error(struct store *s, const redisReply *r)
{
    if (!r || !is_role_error(r))
        return 0;
    s->role_errors++;
    drop(s);
    return 1;
}

/* The command, then (acked != NULL) WAIT in the same round trip; *acked
 * gets the number of replicas WAIT counted (-1 if it failed). */
static int send_recv(struct store *s, int argc, const char **argv,
                     const size_t *lens, redisReply **out, long long *acked)
{
    char n[24], t[24];
    const char *wargv[] = { "WAIT", n, t };
    void *w = NULL, *r = NULL;

    if (!acked) {
        *out = redisCommandArgv(s->rc, argc, argv, lens);
        return *out ? 0 : KF_EBACKEND;
    }
    snprintf(n, sizeof(n), "%ld", s->wait_replicas);
    snprintf(t, sizeof(t), "%ld", kf_mono_ms() < s->wait_probe_ms
                                      ? 1L : s->wait_timeout_ms);
    if (redisAppendCommandArgv(s->rc, argc, argv, lens) != REDIS_OK ||
        redisAppendCommandArgv(s->rc, 3, wargv, NULL) != REDIS_OK ||
        redisGetReply(s->rc, &r) != REDIS_OK ||
        redisGetReply(s->rc, &w) != REDIS_OK) {
        if (r)
            freeReplyObject(r);
        return KF_EBACKEND;
    }
    *acked = ((redisReply *)w)->type == REDIS_REPLY_INTEGER
                 ? ((redisReply *)w)->integer : -1;
    freeReplyObject(w);
    *out = r;
    return 0;
}

/* Sends one command (and WAIT). A broken connection, or a server that
 * turned out not to be the master, is dropped and, because every command
 * we send is idempotent, retried once on a fresh one at once. On success
 * *out is new; caller frees with freeReplyObject(). */
static int exchange(struct store *s, int argc, const char **argv,
                    const size_t *lens, redisReply **out, long long *acked)
{
    int attempt;

    for (attempt = 0; attempt < 2; attempt++) {
        if (attempt == 1)
            s->next_try_ms = 0;
        if (store_connect(s) < 0)
            return KF_EBACKEND;
        if (send_recv(s, argc, argv, lens, out, acked) == 0) {
            if (!role_error(s, *out))
                return 0;
            freeReplyObject(*out);
            *out = NULL;
            continue;
        }
        drop(s);
    }
    /* A server that accepts connections but does not answer (stopped,
     * overloaded) must not cost every request two I/O timeouts. */
    back_off(s);
    return KF_EBACKEND;
}

static int command(struct store *s, int argc, const char **argv,
                   const size_t *lens, redisReply **out)
{
    return exchange(s, argc, argv, lens, out, NULL);
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

int store_server_version(struct store *s, struct version *out)
{
    const char *argv[] = { "INFO", "server" };
    redisReply *r = NULL;
    int rc = command(s, 2, argv, NULL, &r);

    if (rc == 0 && r->type != REDIS_REPLY_STRING &&
        r->type != REDIS_REPLY_STATUS)
        rc = KF_EBACKEND;
    if (rc == 0)
        rc = version_from_redis_info((struct kf_str){ r->str, r->len }, out);
    if (r)
        freeReplyObject(r);
    return rc;
}

int store_key(const struct store *s, const char *suffix, struct kf_buf *out)
{
    int rc = kf_buf_append_c(out, s->prefix);

    return rc < 0 ? rc : kf_buf_append_c(out, suffix);
}

static void set_error(struct store *s, const redisReply *r)
{
    s->err[0] = '\0';
    if (r && r->type == REDIS_REPLY_ERROR)
        snprintf(s->err, sizeof(s->err), "%.*s",
                 r->len > 160 ? 160 : (int)r->len, r->str);
}

const char *store_error(const struct store *s)
{
    return s->err;
}

static int is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->str &&
           strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* EVALSHA, falling back to EVAL (which also caches the script) when the
 * server does not know it, e.g. after a restart or failover; acked as in
 * exchange. */
static int eval(struct store *s, const struct store_script *sc, int argc,
                const char **argv, size_t *lens, struct redisReply **out,
                long long *acked)
{
    int rc;

    *out = NULL;
    s->err[0] = '\0';
    if (argc < 3)
        return KF_EINVAL;
    argv[0] = "EVALSHA";
    argv[1] = sc->sha;
    if (lens) {
        lens[0] = 7;
        lens[1] = 40;
    }
    rc = exchange(s, argc, argv, lens, out, acked);
    if (rc == 0 && is_noscript(*out)) {
        freeReplyObject(*out);
        *out = NULL;
        argv[0] = "EVAL";
        argv[1] = sc->src;
        if (lens) {
            lens[0] = 4;
            lens[1] = strlen(sc->src);
        }
        rc = exchange(s, argc, argv, lens, out, acked);
    }
    if (rc == 0 && (*out)->type == REDIS_REPLY_ERROR) {
        /* e.g. OOM, a script error */
        set_error(s, *out);
        freeReplyObject(*out);
        *out = NULL;
        rc = KF_EBACKEND;
    }
    return rc;
}

/* --- store_run, store_cmd and the typed replies ------------------------ */

/* The opaque reply is hiredis's own: no copy on the hot path. */
static const redisReply *R(const struct store_reply *r)
{
    return (const redisReply *)r;
}

/* Runs sc with the prefix as KEYS[1] and the prefixed keys after it.
 * argv and lens live on the stack up to MAX_ARGS, else on the heap (a
 * metrics batch); the prefixed keys in one allocation. out NULL: the
 * reply is dropped at once. */
static int run(struct store *s, const struct store_script *sc, int nkeys,
               const char *const *keys, int nargs, const char *const *args,
               const size_t *arg_lens, struct store_reply **out,
               long long *acked)
{
    const char *argv_s[MAX_ARGS], **argv = argv_s;
    size_t lens_s[MAX_ARGS], *lens = lens_s;
    size_t plen = strlen(s->prefix), total = 0, off = 0;
    char n[16], *kb = NULL;
    const char *const *tail = s->tail;
    redisReply *r = NULL;
    int i, ntail = tail ? s->ntail : 0, argc, rc = KF_ENOMEM;

    s->tail = NULL;                 /* for this run only */
    s->ntail = 0;
    if (out)
        *out = NULL;
    s->err[0] = '\0';
    if (nkeys < 0 || nargs < 1)
        return KF_EINVAL;
    if (nkeys > STORE_ARGS_MAX || nargs > STORE_ARGS_MAX - nkeys - ntail)
        return KF_ETOOBIG;
    argc = 4 + nkeys + nargs + ntail;
    if (argc > MAX_ARGS) {
        argv = malloc((size_t)argc * sizeof(*argv));
        lens = malloc((size_t)argc * sizeof(*lens));
        if (!argv || !lens)
            goto out;
    }
    for (i = 0; i < nkeys; i++)
        total += plen + strlen(keys[i]);
    if (total && !(kb = malloc(total)))
        goto out;
    snprintf(n, sizeof(n), "%d", nkeys + 1);
    argc = 2;
    argv[argc] = n, lens[argc++] = strlen(n);
    argv[argc] = s->prefix, lens[argc++] = plen;
    for (i = 0; i < nkeys; i++) {
        size_t kl = strlen(keys[i]);

        memcpy(kb + off, s->prefix, plen);
        memcpy(kb + off + plen, keys[i], kl);
        argv[argc] = kb + off, lens[argc++] = plen + kl;
        off += plen + kl;
    }
    for (i = 0; i < nargs; i++) {
        argv[argc] = args[i];
        lens[argc++] = arg_lens ? arg_lens[i] : strlen(args[i]);
    }
    for (i = 0; i < ntail; i++) {
        argv[argc] = tail[i];
        lens[argc++] = strlen(tail[i]);
    }
    rc = eval(s, sc, argc, argv, lens, &r, acked);
out:
    free(kb);
    if (argv != argv_s)
        free(argv);
    if (lens != lens_s)
        free(lens);
    if (out)
        *out = (struct store_reply *)r;
    else if (r)
        freeReplyObject(r);
    return rc;
}

int store_run(struct store *s, const struct store_script *sc, int nkeys,
              const char *const *keys, int nargs, const char *const *args,
              const size_t *arg_lens, struct store_reply **out)
{
    return run(s, sc, nkeys, keys, nargs, args, arg_lens, out, NULL);
}

/* Bookkeeping of one WAIT (store_run_wait). */
static void wait_done(struct store *s, int rc, long long acked, int64_t t0,
                      int *replicated)
{
    *replicated = rc == 0 && acked >= s->wait_replicas;
    if (rc == 0) {
        s->wait_short = !*replicated;
        s->wait_shorts += (unsigned long)s->wait_short;
        if (*replicated)
            s->wait_probe_ms = 0;
        else if (t0 >= s->wait_probe_ms)      /* a full WAIT timed out */
            s->wait_probe_ms = kf_mono_ms() + 1000;  /* a second from now,
                                  not from when the timed-out WAIT began */
    }
}

int store_run_wait(struct store *s, const struct store_script *sc,
                   int nkeys, const char *const *keys, int nargs,
                   const char *const *args, const size_t *arg_lens,
                   struct store_reply **out, int *replicated)
{
    long long acked = -1;
    int64_t t0 = kf_mono_ms();
    int rc;

    *replicated = 1;
    if (s->wait_replicas <= 0)
        return run(s, sc, nkeys, keys, nargs, args, arg_lens, out, NULL);
    rc = run(s, sc, nkeys, keys, nargs, args, arg_lens, out, &acked);
    wait_done(s, rc, acked, t0, replicated);
    return rc;
}

int store_cmd(struct store *s, int argc, const char *const *argv,
              const size_t *lens, struct store_reply **out)
{
    redisReply *r = NULL;
    int rc;

    /* hiredis takes const char ** but does not write through it */
    rc = command(s, argc, (const char **)(uintptr_t)argv, lens, &r);
    if (out) {
        *out = (struct store_reply *)r;
        return rc;
    }
    if (rc == 0 && r->type == REDIS_REPLY_ERROR)
        rc = KF_EBACKEND;
    if (r)
        freeReplyObject(r);
    return rc;
}

void store_reply_free(struct store_reply *r)
{
    if (r)
        freeReplyObject(r);
}

enum store_type store_reply_type(const struct store_reply *r)
{
    if (!r)
        return STORE_NIL;
    switch (R(r)->type) {
    case REDIS_REPLY_INTEGER:
        return STORE_INT;
    case REDIS_REPLY_STRING:
        return STORE_STR;
    case REDIS_REPLY_ARRAY:
        return STORE_ARRAY;
    case REDIS_REPLY_STATUS:
        return STORE_STATUS;
    case REDIS_REPLY_ERROR:
        return STORE_ERR;
    default:
        return STORE_NIL;
    }
}

int64_t store_reply_int(const struct store_reply *r)
{
    return store_reply_type(r) == STORE_INT ? (int64_t)R(r)->integer : 0;
}

struct kf_str store_reply_str(const struct store_reply *r)
{
    enum store_type t = store_reply_type(r);

    if (t != STORE_STR && t != STORE_STATUS && t != STORE_ERR)
        return (struct kf_str){ NULL, 0 };
    return (struct kf_str){ R(r)->str, R(r)->len };
}

size_t store_reply_len(const struct store_reply *r)
{
    return store_reply_type(r) == STORE_ARRAY ? R(r)->elements : 0;
}

const struct store_reply *store_reply_at(const struct store_reply *r,
                                         size_t i)
{
    if (i >= store_reply_len(r))
        return NULL;
    return (const struct store_reply *)R(r)->element[i];
}

/* A whole decimal int64 (optional '-'), nothing else. */
static int parse_i64(struct kf_str v, int64_t *out)
{
    char buf[24], *end;
    long long n;

    if (v.len == 0 || v.len >= sizeof(buf))
        return KF_EPARSE;
    memcpy(buf, v.p, v.len);
    buf[v.len] = '\0';
    if (!(buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9')))
        return KF_EPARSE;
    errno = 0;
    n = strtoll(buf, &end, 10);
    if (errno || *end || end == buf)
        return KF_EPARSE;
    *out = (int64_t)n;
    return 0;
}

int store_reply_at_int(const struct store_reply *r, size_t i, int64_t *out)
{
    const struct store_reply *e = store_reply_at(r, i);

    *out = 0;
    if (store_reply_type(e) == STORE_INT) {
        *out = store_reply_int(e);
        return 0;
    }
    if (store_reply_type(e) == STORE_STR)
        return parse_i64(store_reply_str(e), out);
    return KF_EPARSE;
}

int store_reply_at_str(const struct store_reply *r, size_t i,
                       struct kf_str *out)
{
    const struct store_reply *e = store_reply_at(r, i);
    enum store_type t = store_reply_type(e);

    if (t != STORE_STR && t != STORE_STATUS) {
        *out = (struct kf_str){ "", 0 };
        return KF_EPARSE;
    }
    *out = store_reply_str(e);
    return 0;
}

const char *store_reply_at_text(const struct store_reply *r, size_t i)
{
    struct kf_str v;

    return store_reply_at_str(r, i, &v) == 0 ? v.p : "";
}

int store_reply_at_copy(const struct store_reply *r, size_t i, char *out,
                        size_t n)
{
    const struct store_reply *e = store_reply_at(r, i);
    struct kf_str v;
    int len;

    out[0] = '\0';
    if (store_reply_type(e) == STORE_INT)
        len = snprintf(out, n, "%lld", (long long)store_reply_int(e));
    else if (store_reply_at_str(r, i, &v) == 0)
        len = snprintf(out, n, "%.*s", (int)v.len, v.p);
    else
        return KF_EPARSE;
    return len < 0 || (size_t)len >= n ? KF_ETOOBIG : 0;
}

int store_reply_at_is(const struct store_reply *r, size_t i,
                      const char *word)
{
    const struct store_reply *e = store_reply_at(r, i);

    return store_reply_type(e) == STORE_STR &&
           kf_str_eq_c(store_reply_str(e), word);
}
