/* tu_sim: the WeChat API simulator (test/sim/wechat_api_sim.py) for the
 * unit tests that need one (media, wx_api), and the curl request that
 * drives its control endpoints. */
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "kf.h"

#define SIM "../sim/wechat_api_sim.py"

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    return kf_buf_append(ud, p, size * n) == 0 ? size * n : 0;
}

/* One control request; the answer's body (caller frees), *status. */
char *tu_http(const char *method, const char *url, const char *body,
              long *status)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: "
                                                   "application/json");
    struct kf_buf b;
    CURLcode cc;

    assert_non_null(c);
    kf_buf_init(&b, 16 << 20);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "{}");
    cc = curl_easy_perform(c);
    *status = 0;
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!b.p)
        assert_int_equal(kf_buf_append_c(&b, ""), 0);
    return kf_buf_detach(&b, NULL);
}

void tu_sim_post(const struct tu_sim *s, const char *path, const char *json)
{
    char url[512], *text;
    long status;

    snprintf(url, sizeof(url), "%s%s", s->base, path);
    text = tu_http("POST", url, json, &status);
    if (status != 200)
        fail_msg("POST %s -> %ld %s", path, status, text);
    free(text);
}

void tu_sim_start(struct tu_sim *s, const char *appid, const char *secret)
{
    char port[16], url[96];
    long status = 0;
    int i;

    s->port = tu_free_port();
    snprintf(port, sizeof(port), "%d", s->port);
    snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        execl("/usr/bin/python3", "python3", SIM, "--port", port, "--appid",
              appid, "--secret", secret, "--quiet", (char *)NULL);
        _exit(127);
    }
    snprintf(url, sizeof(url), "%s/_sim/health", s->base);
    for (i = 0; i < 200 && status != 200; i++) {      /* bounded: 10 s */
        free(tu_http("GET", url, NULL, &status));
        if (status != 200)
            tu_sleep_ms(50);
    }
    if (status != 200)
        fail_msg("the simulator did not answer on port %d", s->port);
}

void tu_sim_stop(struct tu_sim *s)
{
    int st;

    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, &st, 0);
        s->pid = 0;
    }
}

void tu_wx_start(struct tu_wx *w, const char *appid, const char *secret)
{
    tu_redis_start(&w->redis);
    snprintf(w->redis_url, sizeof(w->redis_url), "redis://127.0.0.1:%d",
             w->redis.port);
    tu_sim_start(&w->sim, appid, secret);
}

void tu_wx_stop(struct tu_wx *w)
{
    tu_sim_stop(&w->sim);
    tu_redis_stop(&w->redis);
}

void tu_wx_config(struct config *cfg, const struct tu_wx *w,
                  const char *appid, const char *secret)
{
    tu_set_str(&cfg->wechat.app_id, appid);
    tu_set_str(&cfg->wechat.app_secret, secret);
    tu_set_str(&cfg->wechat.api_base, w->sim.base);
    cfg->wechat.api_timeout_ms = 3000;
    cfg->wechat.api_connect_timeout_ms = 1000;
    cfg->wechat.api_retries = 0;
    cfg->ratelimit.wechat_api_per_min = 100000;
}

struct redisContext *tu_wx_fresh(const struct tu_wx *w)
{
    redisContext *rc = redisConnect("127.0.0.1", w->redis.port);

    assert_non_null(rc);
    assert_int_equal(rc->err, 0);
    tu_redis_do(rc, "FLUSHALL");
    tu_sim_post(&w->sim, "/_sim/reset", "{}");
    return rc;
}
