/* Tests of lib/http_client against a one-shot HTTP server in a thread on
 * 127.0.0.1: a request carries the wxkf user agent, a redirect to
 * anything but http(s) is refused, a file:// URL is refused outright, and
 * bad options are KF_EINVAL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "http_client.h"

struct server {
    int fd;
    int port;
    const char *answer;
    char request[4096];
};

static void *serve_once(void *arg)
{
    struct server *s = arg;
    struct timeval tv = { 5, 0 };
    size_t n = 0;
    ssize_t k;
    int c = accept(s->fd, NULL, NULL);

    if (c < 0)
        return NULL;
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (n < sizeof(s->request) - 1 && !strstr(s->request, "\r\n\r\n")) {
        k = read(c, s->request + n, sizeof(s->request) - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
        s->request[n] = '\0';
    }
    k = write(c, s->answer, strlen(s->answer));
    (void)k;
    close(c);
    return NULL;
}

static void server_start(struct server *s, pthread_t *t, const char *answer)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);

    memset(s, 0, sizeof(*s));
    s->answer = answer;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 1), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(t, NULL, serve_once, s), 0);
}

static size_t sink(char *p, size_t size, size_t n, void *u)
{
    (void)p;
    (void)u;
    return size * n;
}

static CURLcode fetch(const char *url, long *status, int follow)
{
    const struct http_client_opts o = { url, 2000, 5000, NULL };
    CURL *c = curl_easy_init();
    CURLcode cc;

    assert_non_null(c);
    assert_int_equal(http_client_setup(c, &o), 0);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    if (follow)
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    cc = curl_easy_perform(c);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    return cc;
}

static void test_request_carries_the_wxkf_user_agent(void **st)
{
    struct server s;
    pthread_t t;
    char url[64];
    long status;

    (void)st;
    server_start(&s, &t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                         "Connection: close\r\n\r\nok");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", s.port);
    assert_int_equal(fetch(url, &status, 0), CURLE_OK);
    pthread_join(t, NULL);
    close(s.fd);
    assert_int_equal(status, 200);
    assert_non_null(strstr(s.request, "GET /x HTTP/1.1\r\n"));
    assert_non_null(strstr(s.request, "\r\nUser-Agent: wxkf\r\n"));
}

static void test_redirect_to_a_file_url_is_refused(void **st)
{
    struct server s;
    pthread_t t;
    char url[64];
    long status;

    (void)st;
    server_start(&s, &t, "HTTP/1.1 302 Found\r\n"
                         "Location: file:///etc/passwd\r\n"
                         "Content-Length: 0\r\nConnection: close\r\n\r\n");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v", s.port);
    assert_int_equal(fetch(url, &status, 1), CURLE_UNSUPPORTED_PROTOCOL);
    pthread_join(t, NULL);
    close(s.fd);
}

static void test_file_url_is_refused(void **st)
{
    long status;

    (void)st;
    assert_int_equal(fetch("file:///etc/passwd", &status, 0),
                     CURLE_UNSUPPORTED_PROTOCOL);
}

static void test_bad_options_are_einval(void **st)
{
    struct http_client_opts o = { NULL, 1000, 0, NULL };
    CURL *c = curl_easy_init();

    (void)st;
    assert_non_null(c);
    assert_int_equal(http_client_setup(c, &o), KF_EINVAL);
    o.timeout_ms = 1000;
    o.connect_timeout_ms = 0;
    assert_int_equal(http_client_setup(c, &o), KF_EINVAL);
    assert_int_equal(http_client_setup(c, NULL), KF_EINVAL);
    assert_int_equal(http_client_setup(NULL, &o), KF_EINVAL);
    curl_easy_cleanup(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_carries_the_wxkf_user_agent),
        cmocka_unit_test(test_redirect_to_a_file_url_is_refused),
        cmocka_unit_test(test_file_url_is_refused),
        cmocka_unit_test(test_bad_options_are_einval),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
