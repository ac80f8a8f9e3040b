/* tu_redis: a private redis-server for the unit tests that need one. */
#include "testutil.h"

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
    tu_redis_start_on(r, tu_free_port());
}

void tu_redis_start_on(struct tu_redis *r, int port_no)
{
    char port[16];
    int i;

    snprintf(r->dir, sizeof(r->dir), "/tmp/wxkf-unit-redis-XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    r->port = port_no;
    snprintf(port, sizeof(port), "%d", r->port);
    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        execlp("redis-server", "redis-server", "--port", port, "--bind",
               "127.0.0.1", "--dir", r->dir, "--save", "", "--appendonly",
               "no", "--loglevel", "warning", "--logfile",
               "redis.log", (char *)NULL);
        _exit(127);
    }
    for (i = 0; i < 100; i++) {              /* bounded: 5 s */
        redisContext *c = redisConnect("127.0.0.1", r->port);

        if (c && !c->err) {
            redisFree(c);
            return;
        }
        if (c)
            redisFree(c);
        tu_sleep_ms(50);
    }
    fail_msg("redis-server did not start on port %d", r->port);
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

char *tu_redis_cmd(const struct tu_redis *r, const char *const *argv)
{
    redisContext *c = redisConnect("127.0.0.1", r->port);
    redisReply *rep;
    char *out;
    int argc = 0;

    assert_non_null(c);
    assert_int_equal(c->err, 0);
    while (argv[argc])
        argc++;
    rep = redisCommandArgv(c, argc, (const char **)argv, NULL);
    assert_non_null(rep);
    if (rep->type == REDIS_REPLY_INTEGER) {
        out = malloc(32);
        assert_non_null(out);
        snprintf(out, 32, "%lld", rep->integer);
    } else if (rep->type == REDIS_REPLY_NIL) {
        out = strdup("(nil)");
    } else {
        out = strdup(rep->str ? rep->str : "");
    }
    freeReplyObject(rep);
    redisFree(c);
    return out;
}
