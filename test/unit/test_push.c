/* Tests of lib/push against a private redis-server and an in-process
 * HTTP sink standing in for Nchan's publisher: new feed entries reach the
 * agent's channel in order with their stream ids and the id before them,
 * one message per agent per pass; agents appearing later are followed
 * from a few seconds back; a failed publish is counted and the next
 * message's prev shows the gap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "log.h"
#include "push.h"
#include "testutil.h"

#define APPID "wx62dd79ea990faa89"
#define PFX "wxkf:{" APPID "}:"
#define MAXMSG 64

static struct tu_redis srv;

/* --- the sink: one thread, one connection at a time, keep-alive -------- */

struct sink {
    int fd, port, status;
    pthread_t th;
    pthread_mutex_t mu;
    char path[MAXMSG][128];
    char *body[MAXMSG];
    int n;
};

static int read_request(int c, struct sink *s)
{
    char buf[65536];
    size_t len = 0;
    char *end = NULL, *cl;
    long want;
    ssize_t r;

    while (!end) {
        r = read(c, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    cl = strstr(buf, "Content-Length:");   /* as curl spells it */
    want = cl ? strtol(cl + 15, NULL, 10) : 0;
    while ((long)(len - (size_t)(end + 4 - buf)) < want) {
        r = read(c, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
    }
    pthread_mutex_lock(&s->mu);
    if (s->n < MAXMSG) {
        sscanf(buf, "POST %127s", s->path[s->n]);
        s->body[s->n] = strndup(end + 4, (size_t)want);
        s->n++;
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void *sink_main(void *arg)
{
    struct sink *s = arg;
    char resp[96];
    int c;

    while ((c = accept(s->fd, NULL, NULL)) >= 0) {
        while (read_request(c, s) == 0) {
            int n = snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\n"
                             "Content-Length: 0\r\n\r\n", s->status);

            if (write(c, resp, (size_t)n) != n)
                break;
        }
        close(c);
    }
    return NULL;
}

static void sink_start(struct sink *s)
{
    struct sockaddr_in a = { 0 };
    socklen_t alen = sizeof(a);

    memset(s, 0, sizeof(*s));
    s->status = 201;
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 8), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, sink_main, s), 0);
}

static void sink_stop(struct sink *s)
{
    int i;

    shutdown(s->fd, SHUT_RDWR);
    close(s->fd);
    pthread_join(s->th, NULL);
    for (i = 0; i < s->n; i++)
        free(s->body[i]);
    pthread_mutex_destroy(&s->mu);
}

/* --- fixture ----------------------------------------------------------- */

struct fixture {
    struct config cfg;
    struct log log;
    struct push push;
    struct sink sink;
};

static char *cmd(const char *const *argv)
{
    return tu_redis_cmd(&srv, argv);
}

#define CMD(...) free(cmd((const char *const[]){ __VA_ARGS__, NULL }))
/* XADD to an agent's feed; returns the new id (caller frees). */
#define XADD(agent, ...) cmd((const char *const[]){ "XADD", PFX "inbox:" agent, \
                                                    "*", __VA_ARGS__, NULL })

static int group_setup(void **st)
{
    (void)st;
    tu_redis_start(&srv);
    return 0;
}

static int group_teardown(void **st)
{
    (void)st;
    tu_redis_stop(&srv);
    return 0;
}

static int setup(void **st)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char url[64];

    assert_non_null(f);
    CMD("FLUSHALL");
    sink_start(&f->sink);
    config_init(&f->cfg);
    tu_set_str(&f->cfg.wechat.app_id, APPID);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", srv.port);
    tu_set_str(&f->cfg.redis.url, url);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/pub/", f->sink.port);
    tu_set_str(&f->cfg.push.url, url);
    assert_int_equal(log_open(&f->log, "", "error"), 0);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    struct fixture *f = *st;

    push_close(&f->push);
    sink_stop(&f->sink);
    log_close(&f->log);
    config_release(&f->cfg);
    free(f);
    return 0;
}

static json_t *message(struct fixture *f, int i)
{
    json_t *j;

    pthread_mutex_lock(&f->sink.mu);
    assert_true(i < f->sink.n);
    j = json_loads(f->sink.body[i], 0, NULL);
    pthread_mutex_unlock(&f->sink.mu);
    assert_non_null(j);
    return j;
}

static const char *entry_id(json_t *m, size_t i)
{
    return json_string_value(json_object_get(
        json_array_get(json_object_get(m, "events"), i), "id"));
}

static void entries_reach_the_agents_channel_in_order(void **st)
{
    struct fixture *f = *st;
    struct push_counts c = { 0, 0, 0 };
    char *id1, *id2, *id3;
    json_t *m;

    CMD("SADD", PFX "agents", "a1", "b@shop");
    assert_true(push_enabled(&f->cfg));
    assert_int_equal(push_open(&f->push, &f->cfg, &f->log), 0);
    id1 = XADD("a1", "type", "msg_in", "openid", "o1", "id", "m_1");
    id2 = XADD("a1", "type", "assign", "openid", "o2", "why", "{\"x\":1}");
    id3 = XADD("b@shop", "type", "close", "openid", "o3");
    assert_int_equal(push_pass(&f->push, 100, kf_wall_ms(), &c), 0);
    assert_int_equal(c.entries, 3);
    assert_int_equal(c.published, 2);     /* one message per agent */
    assert_int_equal(c.failed, 0);
    assert_int_equal(f->sink.n, 2);
    m = message(f, 0);
    assert_string_equal(f->sink.path[0], "/pub/a1");
    assert_string_equal(entry_id(m, 0), id1);
    assert_string_equal(entry_id(m, 1), id2);
    /* the feed's shape: a message's own id is msg_id, why is JSON */
    assert_string_equal(json_string_value(json_object_get(
        json_array_get(json_object_get(m, "events"), 0), "msg_id")), "m_1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(
        json_array_get(json_object_get(m, "events"), 1), "why"), "x")), 1);
    assert_non_null(json_string_value(json_object_get(m, "prev")));
    json_decref(m);
    m = message(f, 1);
    assert_string_equal(f->sink.path[1], "/pub/b@shop");
    assert_string_equal(entry_id(m, 0), id3);
    json_decref(m);
    /* nothing new: a pass waits (bounded) and publishes nothing */
    assert_int_equal(push_pass(&f->push, 50, kf_wall_ms(), &c), 0);
    assert_int_equal(f->sink.n, 2);
    /* the next message names the last id of the one before */
    free(XADD("a1", "type", "msg_in", "openid", "o1"));
    assert_int_equal(push_pass(&f->push, 100, kf_wall_ms(), &c), 0);
    m = message(f, 2);
    assert_string_equal(json_string_value(json_object_get(m, "prev")), id2);
    json_decref(m);
    free(id1);
    free(id2);
    free(id3);
}

static void a_failed_publish_shows_as_a_gap(void **st)
{
    struct fixture *f = *st;
    struct push_counts c = { 0, 0, 0 };
    char *id1, *id2;
    json_t *m;

    CMD("SADD", PFX "agents", "a1");
    assert_int_equal(push_open(&f->push, &f->cfg, &f->log), 0);
    f->sink.status = 500;
    id1 = XADD("a1", "type", "msg_in", "openid", "o1");
    assert_int_equal(push_pass(&f->push, 100, kf_wall_ms(), &c), 0);
    assert_int_equal(c.failed, 1);
    f->sink.status = 201;
    id2 = XADD("a1", "type", "msg_in", "openid", "o1");
    assert_int_equal(push_pass(&f->push, 100, kf_wall_ms(), &c), 0);
    assert_int_equal(c.published, 1);
    m = message(f, 1);
    /* not re-sent, but the console sees prev = id1 > its cursor */
    assert_string_equal(json_string_value(json_object_get(m, "prev")), id1);
    assert_string_equal(entry_id(m, 0), id2);
    json_decref(m);
    free(id1);
    free(id2);
}

static void new_agents_are_followed_from_a_few_seconds_back(void **st)
{
    struct fixture *f = *st;
    struct push_counts c = { 0, 0, 0 };
    int64_t now = kf_wall_ms();
    char old[48];
    json_t *m;

    assert_int_equal(push_open(&f->push, &f->cfg, &f->log), 0);
    /* nobody yet: a pass just waits */
    assert_int_equal(push_pass(&f->push, 20, now, &c), 0);
    assert_int_equal(f->sink.n, 0);
    /* an entry from long ago and one from just now, then the agent */
    snprintf(old, sizeof(old), "%lld-0", (long long)(now - 60000));
    CMD("XADD", PFX "inbox:late", old, "type", "old");
    free(XADD("late", "type", "recent"));
    CMD("SADD", PFX "agents", "late");
    assert_int_equal(push_pass(&f->push, 100, now + PUSH_REFRESH_MS, &c), 0);
    assert_int_equal(f->sink.n, 1);
    m = message(f, 0);
    assert_int_equal(json_array_size(json_object_get(m, "events")), 1);
    assert_string_equal(json_string_value(json_object_get(
        json_array_get(json_object_get(m, "events"), 0), "type")), "recent");
    json_decref(m);
}

static void bad_urls_and_redis_down(void **st)
{
    struct fixture *f = *st;
    struct push_counts c = { 0, 0, 0 };
    struct push p;

    tu_set_str(&f->cfg.push.url, "ftp://x/");
    assert_int_equal(push_open(&p, &f->cfg, &f->log), KF_ECONFIG);
    push_close(&p);
    push_close(&p);                       /* safe twice */
    tu_set_str(&f->cfg.push.url, "");
    assert_false(push_enabled(&f->cfg));
    tu_set_str(&f->cfg.push.url, "http://127.0.0.1:1/pub/");
    assert_int_equal(push_open(&f->push, &f->cfg, &f->log), 0);
    tu_redis_stop(&srv);
    assert_int_equal(push_pass(&f->push, 20, kf_wall_ms(), &c), KF_EBACKEND);
    tu_redis_start_on(&srv, srv.port);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            entries_reach_the_agents_channel_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failed_publish_shows_as_a_gap,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            new_agents_are_followed_from_a_few_seconds_back, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_urls_and_redis_down, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
