/* Tests of the unit tests' own port choice (testutil.c, the rule of
 * docs/operations.md "Ports of the private services"): below the kernel's
 * ephemeral range, checked by binding, and a redis-server whose chosen
 * port is held by a connection started once more on another (issue 22). */
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
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

/* The range for a file holding text (NULL: no file). */
static void range_of(const char *text, int *lo, int *hi)
{
    char path[] = "/tmp/wxkf-unit-range-XXXXXX";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    if (text)
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    if (!text)
        unlink(path);
    tu_port_range(path, lo, hi);
    unlink(path);
}

static void test_range_is_below_the_ephemeral_lower_bound(void **st)
{
    static const struct { const char *text; int lo, hi; } cases[] = {
        { "32768\t60999\n", 10000, 32767 },
        { "49152 65535", 10000, 49151 },
        { "11000 60999", 10000, 10999 },
        { "10999 60999", 1024, 10998 },
        { "2024 65535", 1024, 2023 },
        { "2023 65535", 10000, 32767 },       /* nothing below: fallback */
        { "", 10000, 32767 },
        { "garbled", 10000, 32767 },
        { NULL, 10000, 32767 },               /* unreadable */
    };
    size_t i;
    int lo, hi;

    (void)st;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        range_of(cases[i].text, &lo, &hi);
        assert_int_equal(lo, cases[i].lo);
        assert_int_equal(hi, cases[i].hi);
    }
}

static int ephemeral_low(void)
{
    FILE *f = fopen(TU_PORT_RANGE_FILE, "r");
    int low = 0;

    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &low), 1);
    fclose(f);
    return low;
}

static void test_free_port_is_below_the_range_and_bindable(void **st)
{
    int lo, hi, i, p;

    (void)st;
    tu_port_range(TU_PORT_RANGE_FILE, &lo, &hi);
    if (ephemeral_low() >= 2024)    /* else the fallback: nothing is below */
        assert_true(hi < ephemeral_low());
    for (i = 0; i < 5; i++) {
        p = tu_free_port();
        assert_in_range(p, lo, hi);
        assert_true(tu_port_bindable(p));
    }
}

/* Makes 127.0.0.1:port the local end of an established connection (not a
 * listener); fds[3] are the listener, the client and the accepted end. */
static void hold_with_connection(int port, int fds[3])
{
    struct sockaddr_in a, srv;
    socklen_t len = sizeof(srv);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv = a;
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    fds[1] = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fds[0] >= 0 && fds[1] >= 0);
    assert_int_equal(bind(fds[0], (struct sockaddr *)&srv, sizeof(srv)), 0);
    assert_int_equal(listen(fds[0], 1), 0);
    assert_int_equal(getsockname(fds[0], (struct sockaddr *)&srv, &len), 0);
    a.sin_port = htons((uint16_t)port);
    assert_int_equal(bind(fds[1], (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(connect(fds[1], (struct sockaddr *)&srv, sizeof(srv)),
                     0);
    fds[2] = accept(fds[0], NULL, NULL);
    assert_true(fds[2] >= 0);
}

static void test_redis_on_a_port_held_by_a_connection_moves(void **st)
{
    struct tu_redis r;
    const char *ping[] = { "PING", NULL };
    char *got;
    int held = tu_free_port(), fds[3], i;

    (void)st;
    hold_with_connection(held, fds);
    assert_false(tu_port_bindable(held));
    tu_port_hint(held);                 /* the first choice: the held port */
    tu_redis_start(&r);
    assert_int_not_equal(r.port, held);
    got = tu_redis_cmd(&r, ping);
    assert_string_equal(got, "PONG");
    free(got);
    tu_redis_stop(&r);
    for (i = 0; i < 3; i++)
        close(fds[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_is_below_the_ephemeral_lower_bound),
        cmocka_unit_test(test_free_port_is_below_the_range_and_bindable),
        cmocka_unit_test(test_redis_on_a_port_held_by_a_connection_moves),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
