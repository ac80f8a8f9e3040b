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
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

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
