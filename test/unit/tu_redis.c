/* tu_redis: a private redis-server for the unit tests that need one, and
 * commands on a test's own connection. */
#include "testutil.h"

#include "kf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void tu_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

void tu_redis_start(struct tu_redis *r)
{
    tu_redis_start_on(r, 0);           /* 0: a port of its own choosing */
}

/* Runs redis-server with argv (argv[0] unused; NULL-terminated) in r->dir
 * and waits until it accepts connections on r->port: 0. -1 when it exited
 * because that port was taken (its log, r->dir/log, says so). */
static int spawn(struct tu_redis *r, const char **argv, const char *log)
{
    char path[128];
    int i, st;

    snprintf(path, sizeof(path), "%s/%s", r->dir, log);
    unlink(path);
    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        if (chdir(r->dir) != 0)
            _exit(126);
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    for (i = 0; i < 100; i++) {              /* bounded: 5 s */
        redisContext *c = redisConnect("127.0.0.1", r->port);

        if (c && !c->err) {
            redisFree(c);
            return 0;
        }
        if (c)
            redisFree(c);
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
            r->pid = 0;
            if (tu_log_says_in_use(path))
                return -1;
            fail_msg("redis-server exited (see %s)", path);
        }
        tu_sleep_ms(50);
    }
    fail_msg("redis-server did not start on port %d", r->port);
    return -1;
}

/* spawn() on r->port (argv names r->portstr); when the port was taken and
 * not given by the caller (given: 0), once more on a newly chosen one. */
static void start(struct tu_redis *r, const char **argv, int given,
                  const char *log)
{
    int tries;

    for (tries = 0; tries < 2; tries++) {
        snprintf(r->portstr, sizeof(r->portstr), "%d", r->port);
        if (spawn(r, argv, log) == 0)
            return;
        if (given)
            break;
        r->port = tu_free_port();
    }
    fail_msg("redis-server: port %s is taken (see %s/%s)", r->portstr,
             r->dir, log);
}

static void new_dir(struct tu_redis *r, int port_no)
{
    snprintf(r->dir, sizeof(r->dir), "/tmp/wxkf-unit-redis-XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    r->port = port_no ? port_no : tu_free_port();
}

void tu_redis_start_on(struct tu_redis *r, int port_no)
{
    const char *argv[] = { "redis-server", "--port", r->portstr, "--bind",
                           "127.0.0.1", "--dir", ".", "--save", "",
                           "--appendonly", "no", "--loglevel", "warning",
                           "--logfile", "redis.log", NULL };

    new_dir(r, port_no);
    start(r, argv, port_no, "redis.log");
}

/* Polls r with argv until its reply contains want (bounded: 10 s). */
static void wait_reply(const struct tu_redis *r, const char *const *argv,
                       const char *want)
{
    int i;

    for (i = 0; i < 200; i++) {
        char *got = tu_redis_cmd(r, argv);
        int ok = strstr(got, want) != NULL;

        free(got);
        if (ok)
            return;
        tu_sleep_ms(50);
    }
    fail_msg("port %d never answered %s with %s", r->port, argv[0], want);
}

void tu_redis_start_replica(struct tu_redis *r, int port_no, int master_port)
{
    char mport[16];
    const char *argv[] = { "redis-server", "--port", r->portstr, "--bind",
                           "127.0.0.1", "--dir", ".", "--save", "",
                           "--appendonly", "no", "--loglevel", "warning",
                           "--logfile", "redis.log", "--replicaof",
                           "127.0.0.1", mport, NULL };
    const char *info[] = { "INFO", "replication", NULL };

    new_dir(r, port_no);
    snprintf(mport, sizeof(mport), "%d", master_port);
    start(r, argv, port_no, "redis.log");
    wait_reply(r, info, "master_link_status:up");
}

void tu_sentinel_start(struct tu_redis *r, int master_port, const char *name)
{
    char path[128];
    const char *argv[] = { "redis-server", "sentinel.conf", "--sentinel",
                           "--port", r->portstr, NULL };
    const char *ask[] = { "SENTINEL", "replicas", name, NULL };
    FILE *f;

    new_dir(r, 0);
    snprintf(path, sizeof(path), "%s/sentinel.conf", r->dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "bind 127.0.0.1\ndir %s\nlogfile sentinel.log\n"
               "sentinel monitor %s 127.0.0.1 %d 1\n"
               "sentinel down-after-milliseconds %s 1000\n"
               "sentinel failover-timeout %s 4000\n",
            r->dir, name, master_port, name, name);
    assert_int_equal(fclose(f), 0);
    start(r, argv, 0, "sentinel.log");
    /* it has met the replica and read its INFO (else NOGOODSLAVE) */
    wait_reply(r, ask, "master-link-status\nok");
}

void tu_redis_stop(struct tu_redis *r)
{
    char cmd[128];
    int st;

    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        waitpid(r->pid, &st, 0);
        r->pid = 0;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", r->dir);
}

/* Appends r's text to out (arrays: their elements, one per line). */
static void render(const redisReply *r, struct kf_buf *out)
{
    size_t i;

    if (r->type == REDIS_REPLY_INTEGER)
        assert_int_equal(kf_buf_printf(out, "%lld", r->integer), 0);
    else if (r->type == REDIS_REPLY_NIL)
        assert_int_equal(kf_buf_append_c(out, "(nil)"), 0);
    else if (r->type == REDIS_REPLY_ARRAY)
        for (i = 0; i < r->elements; i++) {
            render(r->element[i], out);
            assert_int_equal(kf_buf_append_c(out, "\n"), 0);
        }
    else if (r->str)
        assert_int_equal(kf_buf_append(out, r->str, r->len), 0);
}

char *tu_redis_cmd(const struct tu_redis *r, const char *const *argv)
{
    redisContext *c = redisConnect("127.0.0.1", r->port);
    redisReply *rep;
    struct kf_buf b;
    char *out;
    int argc = 0;

    assert_non_null(c);
    assert_int_equal(c->err, 0);
    while (argv[argc])
        argc++;
    rep = redisCommandArgv(c, argc, (const char **)argv, NULL);
    assert_non_null(rep);
    kf_buf_init(&b, 1 << 20);
    render(rep, &b);
    out = strndup(b.p ? b.p : "", b.len);
    assert_non_null(out);
    kf_buf_release(&b);
    freeReplyObject(rep);
    redisFree(c);
    return out;
}

void tu_redis_do(struct redisContext *rc, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("redis: %s", r->str);
    freeReplyObject(r);
}

long long tu_redis_num(struct redisContext *rc, const char *fmt, ...)
{
    redisReply *r;
    long long v = -1;
    va_list ap;

    va_start(ap, fmt);
    r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}
