/* Tests of lib/staff_session: the time rules with an injected clock (idle
 * and absolute expiry, the lock-out's growing delay), the CSRF check, the
 * cookie's parsing, and the same rules through staff.lua on a private
 * Redis (tu_redis) with the clock passed in — nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "staff_session.h"
#include "store.h"
#include "testutil.h"

#define APPID "wxstaffsession01"
#define IDLE 1800000
#define MAX 43200000
#define T0 1700000000000LL

static void test_expiry_idle_and_absolute(void **st)
{
    (void)st;
    assert_false(staff_session_expired(T0, T0, T0, IDLE, MAX));
    assert_false(staff_session_expired(T0, T0, T0 + IDLE - 1, IDLE, MAX));
    assert_true(staff_session_expired(T0, T0, T0 + IDLE, IDLE, MAX));
    /* used every 20 minutes: alive until the absolute limit, not after */
    assert_false(staff_session_expired(T0, T0 + MAX - 1200000, T0 + MAX - 1,
                                       IDLE, MAX));
    assert_true(staff_session_expired(T0, T0 + MAX - 1200000, T0 + MAX,
                                      IDLE, MAX));
}

static void test_lock_delay_doubles_after_the_free_ones(void **st)
{
    (void)st;
    assert_int_equal(staff_lock_delay_ms(0), 0);
    assert_int_equal(staff_lock_delay_ms(STAFF_LOCK_FREE), 0);
    assert_int_equal(staff_lock_delay_ms(STAFF_LOCK_FREE + 1), 1000);
    assert_int_equal(staff_lock_delay_ms(STAFF_LOCK_FREE + 2), 2000);
    assert_int_equal(staff_lock_delay_ms(STAFF_LOCK_FREE + 3), 4000);
    assert_int_equal(staff_lock_delay_ms(STAFF_LOCK_FREE + 10), 512000);
    assert_int_equal(staff_lock_delay_ms(STAFF_LOCK_FREE + 11),
                     STAFF_LOCK_MAX_MS);
    assert_int_equal(staff_lock_delay_ms(1000000), STAFF_LOCK_MAX_MS);
    assert_int_equal(staff_lock_delay_ms(INT64_MAX), STAFF_LOCK_MAX_MS);
}

static void test_csrf(void **st)
{
    const char *tok =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    (void)st;
    assert_true(staff_csrf_ok(KF_STR("GET"), KF_STR(""), tok));
    assert_true(staff_csrf_ok(KF_STR("HEAD"), KF_STR(""), tok));
    assert_true(staff_csrf_ok(KF_STR("POST"), kf_str_c(tok), tok));
    assert_false(staff_csrf_ok(KF_STR("POST"), KF_STR(""), tok));
    assert_false(staff_csrf_ok(KF_STR("PATCH"), KF_STR(""), tok));
    assert_false(staff_csrf_ok(KF_STR("DELETE"), kf_str_c(tok + 1), tok));
    assert_false(staff_csrf_ok(
        KF_STR("POST"),
        KF_STR("0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
               "abcdee"), tok));
    /* a session without a token accepts no write */
    assert_false(staff_csrf_ok(KF_STR("POST"), KF_STR(""), ""));
}

static void test_cookie_parsing(void **st)
{
    const char *id =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char hdr[256];
    struct kf_str out;

    (void)st;
    snprintf(hdr, sizeof(hdr), "lang=zh; wxkf_sid=%s; other=1", id);
    assert_int_equal(staff_cookie_sid(kf_str_c(hdr), &out), 0);
    assert_true(kf_str_eq_c(out, id));
    snprintf(hdr, sizeof(hdr), "wxkf_sid=%s", id);
    assert_int_equal(staff_cookie_sid(kf_str_c(hdr), &out), 0);
    snprintf(hdr, sizeof(hdr), "xwxkf_sid=%s", id);
    assert_int_equal(staff_cookie_sid(kf_str_c(hdr), &out), KF_ENOTFOUND);
    snprintf(hdr, sizeof(hdr), "wxkf_sid=%.63s", id);
    assert_int_equal(staff_cookie_sid(kf_str_c(hdr), &out), KF_ENOTFOUND);
    assert_int_equal(staff_cookie_sid(KF_STR("wxkf_sid=ZZZ"), &out),
                     KF_ENOTFOUND);
    assert_int_equal(staff_cookie_sid(KF_STR(""), &out), KF_ENOTFOUND);
}

/* --- through Redis ---------------------------------------------------- */

struct fx {
    struct tu_redis redis;
    struct store s;
};

static int setup(void **st)
{
    struct fx *f = calloc(1, sizeof(*f));
    char url[64];

    tu_redis_start(&f->redis);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", f->redis.port);
    assert_int_equal(store_init(&f->s, url, APPID, 500, 1000), 0);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    struct fx *f = *st;

    store_release(&f->s);
    tu_redis_stop(&f->redis);
    free(f);
    return 0;
}

static void user(struct staff_user *u, const char *login, const char *role)
{
    memset(u, 0, sizeof(*u));
    snprintf(u->login, sizeof(u->login), "%s", login);
    snprintf(u->role, sizeof(u->role), "%s", role);
    snprintf(u->name, sizeof(u->name), "张三");
}

static void test_session_lives_by_the_clock(void **st)
{
    struct fx *f = *st;
    char sid[STAFF_SID_SIZE], csrf[STAFF_SID_SIZE];
    struct staff_session s;
    struct staff_user u;

    user(&u, "lead", "supervisor");
    assert_int_equal(staff_session_new(&f->s, &u, T0, IDLE, MAX, sid, csrf),
                     0);
    assert_int_equal(strlen(sid), 64);
    assert_string_not_equal(sid, csrf);
    assert_int_equal(staff_session_get(&f->s, kf_str_c(sid), T0 + 1000, IDLE,
                                       MAX, &s), 0);
    assert_string_equal(s.login, "lead");
    assert_string_equal(s.role, "supervisor");
    assert_string_equal(s.name, "张三");
    assert_string_equal(s.csrf, csrf);
    assert_string_equal(s.agent_status, "");
    /* each use moves the idle limit on */
    assert_int_equal(staff_session_get(&f->s, kf_str_c(sid),
                                       T0 + IDLE, IDLE, MAX, &s), 0);
    assert_int_equal(staff_session_get(&f->s, kf_str_c(sid),
                                       T0 + 2 * IDLE - 1, IDLE, MAX, &s), 0);
    /* idle too long: gone, and stays gone */
    assert_int_equal(staff_session_get(&f->s, kf_str_c(sid),
                                       T0 + 3 * IDLE, IDLE, MAX, &s),
                     KF_ENOTFOUND);
    assert_int_equal(staff_session_get(&f->s, kf_str_c(sid),
                                       T0 + 3 * IDLE + 1, IDLE, MAX, &s),
                     KF_ENOTFOUND);
}

static void test_absolute_limit_ends_a_busy_session(void **st)
{
    struct fx *f = *st;
    char sid[STAFF_SID_SIZE], csrf[STAFF_SID_SIZE];
    struct staff_session s;
    struct staff_user u;
    int64_t t;

    user(&u, "boss", "admin");
    assert_int_equal(staff_session_new(&f->s, &u, T0, IDLE, MAX, sid, csrf),
                     0);
    for (t = T0; t < T0 + MAX; t += IDLE / 2)
        assert_int_equal(staff_session_get(&f->s, kf_str_c(sid), t, IDLE,
                                           MAX, &s), 0);
    assert_int_equal(staff_session_get(&f->s, kf_str_c(sid), T0 + MAX, IDLE,
                                       MAX, &s), KF_ENOTFOUND);
}

static void test_sign_out_everywhere_keeps_one_if_asked(void **st)
{
    struct fx *f = *st;
    char sid[3][STAFF_SID_SIZE], csrf[STAFF_SID_SIZE];
    struct staff_session s;
    struct staff_user u;
    long n = 0;
    int i;

    user(&u, "many", "admin");
    for (i = 0; i < 3; i++)
        assert_int_equal(staff_session_new(&f->s, &u, T0, IDLE, MAX, sid[i],
                                           csrf), 0);
    assert_int_equal(staff_session_get(&f->s, kf_str_c(sid[0]), T0, IDLE,
                                       MAX, &s), 0);
    assert_int_equal(staff_session_end_all(&f->s, "many", s.hash, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(staff_session_get(&f->s, kf_str_c(sid[0]), T0, IDLE,
                                       MAX, &s), 0);
    assert_int_equal(staff_session_get(&f->s, kf_str_c(sid[1]), T0, IDLE,
                                       MAX, &s), KF_ENOTFOUND);
    assert_int_equal(staff_session_end_all(&f->s, "many", NULL, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(staff_session_get(&f->s, kf_str_c(sid[0]), T0, IDLE,
                                       MAX, &s), KF_ENOTFOUND);
}

static void test_lock_out_by_the_clock(void **st)
{
    struct fx *f = *st;
    int64_t left = 0, locked = 0, now = T0;
    int i;

    for (i = 0; i < STAFF_LOCK_FREE; i++) {
        assert_int_equal(staff_lock_check(&f->s, "wang", now, &left), 0);
        assert_int_equal(staff_lock_fail(&f->s, "wang", now, &locked), 0);
        assert_int_equal(locked, 0);
    }
    assert_int_equal(staff_lock_fail(&f->s, "wang", now, &locked), 0);
    assert_int_equal(locked, 1000);
    assert_int_equal(staff_lock_check(&f->s, "wang", now + 400, &left),
                     KF_ELIMIT);
    assert_int_equal(left, 600);
    /* another login is not touched */
    assert_int_equal(staff_lock_check(&f->s, "li", now + 400, &left), 0);
    now += 1000;
    assert_int_equal(staff_lock_check(&f->s, "wang", now, &left), 0);
    assert_int_equal(staff_lock_fail(&f->s, "wang", now, &locked), 0);
    assert_int_equal(locked, 2000);
    assert_int_equal(staff_lock_check(&f->s, "wang", now + 1999, &left),
                     KF_ELIMIT);
    assert_int_equal(left, 1);
    assert_int_equal(staff_lock_check(&f->s, "wang", now + 2000, &left), 0);
    /* a right password forgets them all */
    assert_int_equal(staff_lock_clear(&f->s, "wang"), 0);
    assert_int_equal(staff_lock_fail(&f->s, "wang", now, &locked), 0);
    assert_int_equal(locked, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expiry_idle_and_absolute),
        cmocka_unit_test(test_lock_delay_doubles_after_the_free_ones),
        cmocka_unit_test(test_csrf),
        cmocka_unit_test(test_cookie_parsing),
        cmocka_unit_test_setup_teardown(test_session_lives_by_the_clock,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_absolute_limit_ends_a_busy_session, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_sign_out_everywhere_keeps_one_if_asked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_out_by_the_clock, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
