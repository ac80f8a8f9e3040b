/* Unit tests for log: the line format, level filtering, request ids that
 * cannot split or forge a line, log_safe and truncation. Each test logs
 * to its own mkstemp file under /tmp and reads it back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "kf.h"
#include "log.h"
#include "testutil.h"

struct logfile {
    char path[64];
    struct log log;
};

/* Setup: a fresh empty temp file opened at "info". */
static int open_temp(void **state)
{
    struct logfile *f = calloc(1, sizeof(*f));
    int fd;

    if (!f)
        return -1;
    snprintf(f->path, sizeof(f->path), "/tmp/wxkf_test_log_XXXXXX");
    fd = mkstemp(f->path);
    if (fd < 0) {
        free(f);
        return -1;
    }
    close(fd);
    if (log_open(&f->log, f->path, "info") != 0) {
        unlink(f->path);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int close_temp(void **state)
{
    struct logfile *f = *state;

    log_close(&f->log);
    unlink(f->path);
    free(f);
    return 0;
}

/* Reopens the test's file at the given level. */
static void reopen(struct logfile *f, const char *level)
{
    log_close(&f->log);
    assert_int_equal(log_open(&f->log, f->path, level), 0);
}

/* Everything written so far; caller frees. */
static char *contents(const struct logfile *f)
{
    return tu_read_file(f->path, NULL);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0, k = strlen(needle);
    const char *p = hay;

    while ((p = strstr(p, needle)) != NULL) {
        n++;
        p += k;
    }
    return n;
}

/* The value of " key=" in line (up to the next space or newline). */
static void field(const char *line, const char *key, char *out, size_t n)
{
    char pat[32];
    const char *p;
    size_t len;

    snprintf(pat, sizeof(pat), " %s=", key);
    p = strstr(line, pat);
    if (!p)
        fail_msg("no %s= in: %s", key, line);
    p += strlen(pat);
    len = strcspn(p, " \n");
    if (len >= n)
        len = n - 1;
    memcpy(out, p, len);
    out[len] = '\0';
}

/* --- format ------------------------------------------------------------ */

static void test_log_line_has_all_fields_in_order(void **state)
{
    struct logfile *f = *state;
    char *s, pid[32], want[32];
    const char *order[] = { " lvl=", " pid=", " rid=", " mod=", " ev=",
                            " queue=" };
    const char *prev;
    size_t i;

    log_warn(&f->log, "route", "no_agent", "queue=%zu", (size_t)3);
    s = contents(f);
    assert_int_equal(strncmp(s, "ts=", 3), 0);
    prev = s;
    for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        const char *p = strstr(s, order[i]);

        if (!p || p < prev)
            fail_msg("%s missing or out of order in: %s", order[i], s);
        prev = p;
    }
    assert_non_null(strstr(s, " lvl=warn "));
    assert_non_null(strstr(s, " rid=- "));
    assert_non_null(strstr(s, " mod=route ev=no_agent queue=3\n"));
    field(s, "pid", pid, sizeof(pid));
    snprintf(want, sizeof(want), "%ld", (long)getpid());
    assert_string_equal(pid, want);
    assert_int_equal(count(s, "\n"), 1);
    assert_int_equal(s[strlen(s) - 1], '\n');
    free(s);
}

static void test_log_timestamp_is_utc_iso8601_with_millis(void **state)
{
    struct logfile *f = *state;
    char *s;
    /* ts=YYYY-MM-DDTHH:MM:SS.mmmZ */
    const char *shape = "ts=dddd-dd-ddTdd:dd:dd.dddZ ";
    size_t i;

    log_info(&f->log, "test", "tick", "%s", "");
    s = contents(f);
    for (i = 0; shape[i]; i++) {
        if (shape[i] == 'd')
            assert_true(s[i] >= '0' && s[i] <= '9');
        else
            assert_int_equal(s[i], shape[i]);
    }
    free(s);
}

static void test_log_without_kv_ends_after_event(void **state)
{
    struct logfile *f = *state;
    char *s;

    log_write(&f->log, LOG_INFO, "worker", "started", NULL);
    log_info(&f->log, "worker", "ready", "%s", "");
    s = contents(f);
    assert_non_null(strstr(s, " mod=worker ev=started\n"));
    assert_non_null(strstr(s, " mod=worker ev=ready"));
    assert_int_equal(count(s, "\n"), 2);
    free(s);
}

static void test_log_appends_one_line_per_call(void **state)
{
    struct logfile *f = *state;
    char *s;
    int i;

    for (i = 0; i < 5; i++)
        log_info(&f->log, "m", "e", "i=%d", i);
    s = contents(f);
    assert_int_equal(count(s, "\n"), 5);
    assert_int_equal(count(s, "lvl=info"), 5);
    assert_non_null(strstr(s, " i=0\n"));
    assert_non_null(strstr(s, " i=4\n"));
    free(s);
}

/* --- levels ------------------------------------------------------------ */

static void test_log_debug_is_suppressed_at_info(void **state)
{
    struct logfile *f = *state;
    char *s;

    log_debug(&f->log, "m", "hidden", "x=%d", 1);
    log_info(&f->log, "m", "shown", "x=%d", 2);
    s = contents(f);
    assert_null(strstr(s, "hidden"));
    assert_non_null(strstr(s, "ev=shown"));
    assert_int_equal(count(s, "\n"), 1);
    free(s);
}

/* The macro checks the level before evaluating the arguments. */
static int evaluations;
static int touched(void)
{
    return ++evaluations;
}

static void test_log_level_is_checked_before_formatting(void **state)
{
    struct logfile *f = *state;

    evaluations = 0;
    log_debug(&f->log, "m", "e", "n=%d", touched());
    assert_int_equal(evaluations, 0);
    log_info(&f->log, "m", "e", "n=%d", touched());
    assert_int_equal(evaluations, 1);
}

static void test_log_debug_is_written_at_debug(void **state)
{
    struct logfile *f = *state;
    char *s;

    reopen(f, "debug");
    log_debug(&f->log, "m", "detail", "x=%d", 1);
    s = contents(f);
    assert_non_null(strstr(s, " lvl=debug "));
    assert_non_null(strstr(s, "ev=detail"));
    free(s);
}

static void test_log_error_level_drops_warn_and_info(void **state)
{
    struct logfile *f = *state;
    char *s;

    reopen(f, "error");
    log_warn(&f->log, "m", "w", "%s", "");
    log_info(&f->log, "m", "i", "%s", "");
    log_error(&f->log, "m", "boom", "%s", "");
    s = contents(f);
    assert_int_equal(count(s, "\n"), 1);
    assert_non_null(strstr(s, " lvl=error "));
    assert_non_null(strstr(s, "ev=boom"));
    free(s);
}

static void test_log_unknown_level_falls_back_to_info(void **state)
{
    struct logfile *f = *state;
    char *s;

    reopen(f, "verbose");
    assert_int_equal(f->log.level, LOG_INFO);
    log_debug(&f->log, "m", "hidden", "%s", "");
    log_info(&f->log, "m", "shown", "%s", "");
    s = contents(f);
    assert_null(strstr(s, "hidden"));
    assert_non_null(strstr(s, "ev=shown"));
    free(s);

    reopen(f, NULL);
    assert_int_equal(f->log.level, LOG_INFO);
    reopen(f, "warn");
    assert_int_equal(f->log.level, LOG_WARN);
}

/* --- open / close ------------------------------------------------------ */

static void test_log_open_without_file_uses_stderr(void **state)
{
    struct log l;

    (void)state;
    assert_int_equal(log_open(&l, NULL, "info"), 0);
    assert_int_equal(l.fd, 2);
    assert_false(l.owns_fd);
    assert_string_equal(l.rid, "-");
    log_close(&l);
    assert_int_equal(log_open(&l, "", "info"), 0);
    assert_int_equal(l.fd, 2);
    log_close(&l);
    assert_int_equal(l.fd, 2);   /* stderr is never closed */
}

static void test_log_open_of_unwritable_path_is_eio(void **state)
{
    struct log l;

    (void)state;
    assert_int_equal(log_open(&l, "/nonexistent-dir-wxkf/x.log", "info"),
                     KF_EIO);
    log_close(&l);
}

static void test_log_close_twice_is_safe(void **state)
{
    struct logfile *f = *state;

    log_close(&f->log);
    log_close(&f->log);
    assert_false(f->log.owns_fd);
}

/* --- request ids ------------------------------------------------------- */

static void test_log_for_request_tags_every_line_with_rid(void **state)
{
    struct logfile *f = *state;
    struct log r;
    char *s;

    log_for_request(&r, &f->log, KF_STR("9f2c41ab-_Z"));
    log_info(&r, "route", "queued", "n=%d", 1);
    log_info(&r, "route", "done", "n=%d", 2);
    s = contents(f);
    assert_int_equal(count(s, " rid=9f2c41ab-_Z "), 2);
    free(s);
}

static void test_log_for_request_shares_level_and_borrows_fd(void **state)
{
    struct logfile *f = *state;
    struct log r;
    char *s;

    reopen(f, "warn");
    log_for_request(&r, &f->log, KF_STR("abc"));
    assert_int_equal(r.level, LOG_WARN);
    log_info(&r, "m", "dropped", "%s", "");
    log_close(&r);              /* must not close the base's file */
    log_warn(&f->log, "m", "still_open", "%s", "");
    s = contents(f);
    assert_null(strstr(s, "dropped"));
    assert_non_null(strstr(s, "ev=still_open"));
    free(s);
}

static void test_log_for_request_with_empty_rid_uses_dash(void **state)
{
    struct logfile *f = *state;
    struct log r;

    log_for_request(&r, &f->log, (struct kf_str){ NULL, 0 });
    assert_string_equal(r.rid, "-");
}

static void test_log_rid_with_newline_cannot_forge_a_line(void **state)
{
    struct logfile *f = *state;
    struct log r;
    char *s;

    log_for_request(&r, &f->log, KF_STR("abc\n lvl=error"));
    log_write(&r, LOG_INFO, "m", "e", NULL);
    s = contents(f);
    assert_int_equal(count(s, "\n"), 1);
    assert_int_equal(count(s, "lvl="), 1);
    assert_non_null(strstr(s, " lvl=info "));
    /* ts lvl pid rid mod ev: six tokens */
    assert_int_equal(count(s, " "), 5);
    assert_int_equal(count(s, "="), 6);
    free(s);
}

static void test_log_rid_drops_spaces_quotes_and_controls(void **state)
{
    static const char raw[] = "a b\"c'd\re\tf=g\\h\x01i\0j";
    struct logfile *f = *state;
    struct log r;
    char rid[64];
    char *s;
    size_t i;

    log_for_request(&r, &f->log, (struct kf_str){ raw, sizeof(raw) - 1 });
    for (i = 0; r.rid[i]; i++)
        if (strchr(" \"'\r\n\t=\\", r.rid[i]) || (unsigned char)r.rid[i] < 32
            || (unsigned char)r.rid[i] > 126)
            fail_msg("unsafe byte 0x%02x kept in rid \"%s\"",
                     (unsigned char)r.rid[i], r.rid);
    log_write(&r, LOG_INFO, "m", "e", NULL);
    s = contents(f);
    /* ts lvl pid rid mod ev: six tokens, one line. */
    assert_int_equal(count(s, "\n"), 1);
    assert_int_equal(count(s, " "), 5);
    assert_int_equal(count(s, "="), 6);
    field(s, "rid", rid, sizeof(rid));
    assert_string_equal(rid, r.rid);
    /* the safe bytes survive, in order */
    assert_int_equal(rid[0], 'a');
    assert_non_null(strchr(rid, 'j'));
    assert_true(strchr(rid, 'a') < strchr(rid, 'j'));
    free(s);
}

static void test_log_rid_is_capped_at_63_bytes(void **state)
{
    struct logfile *f = *state;
    struct log r;
    char raw[200];

    memset(raw, 'r', sizeof(raw));
    log_for_request(&r, &f->log, (struct kf_str){ raw, sizeof(raw) });
    assert_int_equal(strlen(r.rid), 63);
    assert_int_equal(strspn(r.rid, "r"), 63);
}

/* --- log_safe ---------------------------------------------------------- */

static void test_log_safe_keeps_safe_bytes(void **state)
{
    char out[64];

    (void)state;
    assert_string_equal(log_safe(out, sizeof(out),
                                 KF_STR("oUser_1-x@ex.com:80/a+b")),
                        "oUser_1-x@ex.com:80/a+b");
}

static void test_log_safe_replaces_unsafe_bytes(void **state)
{
    static const char raw[] = "a b\nc=d\"e'f\\g\x7fh\xe4i\0j";
    char out[64];

    (void)state;
    log_safe(out, sizeof(out), (struct kf_str){ raw, sizeof(raw) - 1 });
    assert_string_equal(out, "a?b?c?d?e?f?g?h?i?j");
}

static void test_log_safe_truncates_to_the_buffer(void **state)
{
    char out[8];

    (void)state;
    memset(out, 'X', sizeof(out));
    assert_ptr_equal(log_safe(out, 4, KF_STR("abcdef")), out);
    assert_string_equal(out, "abc");
    assert_int_equal(out[4], 'X');
    log_safe(out, 1, KF_STR("abcdef"));
    assert_string_equal(out, "");
    assert_int_equal(out[1], 'b');  /* untouched from the previous call */
}

static void test_log_safe_with_zero_size_writes_nothing(void **state)
{
    char out[8];

    (void)state;
    memset(out, 'X', sizeof(out));
    log_safe(out, 0, KF_STR("ab"));
    assert_memory_equal(out, "XXXXXXXX", 8);
}

/* --- truncation -------------------------------------------------------- */

static void test_log_long_message_is_one_truncated_line(void **state)
{
    struct logfile *f = *state;
    char *big = malloc(5001), *s;
    size_t len;

    assert_non_null(big);
    memset(big, 'x', 5000);
    big[5000] = '\0';
    log_info(&f->log, "m", "big", "v=%s", big);
    log_info(&f->log, "m", "after", "%s", "");
    s = contents(f);
    assert_int_equal(count(s, "\n"), 2);
    len = (size_t)(strchr(s, '\n') - s) + 1;
    assert_true(len < 5000);
    assert_true(len >= 1024);
    assert_non_null(strstr(s, " v=xxxx"));
    assert_null(memchr(s, '\0', len));
    assert_int_equal(strncmp(s + len, "ts=", 3), 0);
    assert_non_null(strstr(s + len, "ev=after"));
    free(s);
    free(big);
}

static void test_log_long_header_still_ends_in_newline(void **state)
{
    struct logfile *f = *state;
    char *mod = malloc(3001), *s;

    assert_non_null(mod);
    memset(mod, 'm', 3000);
    mod[3000] = '\0';
    log_info(&f->log, mod, "e", "k=%d", 1);
    s = contents(f);
    assert_int_equal(count(s, "\n"), 1);
    assert_int_equal(s[strlen(s) - 1], '\n');
    assert_true(strlen(s) < 3000);
    free(s);
    free(mod);
}

#define T(f) cmocka_unit_test_setup_teardown(f, open_temp, close_temp)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_log_line_has_all_fields_in_order),
        T(test_log_timestamp_is_utc_iso8601_with_millis),
        T(test_log_without_kv_ends_after_event),
        T(test_log_appends_one_line_per_call),
        T(test_log_debug_is_suppressed_at_info),
        T(test_log_level_is_checked_before_formatting),
        T(test_log_debug_is_written_at_debug),
        T(test_log_error_level_drops_warn_and_info),
        T(test_log_unknown_level_falls_back_to_info),
        cmocka_unit_test(test_log_open_without_file_uses_stderr),
        cmocka_unit_test(test_log_open_of_unwritable_path_is_eio),
        T(test_log_close_twice_is_safe),
        T(test_log_for_request_tags_every_line_with_rid),
        T(test_log_for_request_shares_level_and_borrows_fd),
        T(test_log_for_request_with_empty_rid_uses_dash),
        T(test_log_rid_with_newline_cannot_forge_a_line),
        T(test_log_rid_drops_spaces_quotes_and_controls),
        T(test_log_rid_is_capped_at_63_bytes),
        cmocka_unit_test(test_log_safe_keeps_safe_bytes),
        cmocka_unit_test(test_log_safe_replaces_unsafe_bytes),
        cmocka_unit_test(test_log_safe_truncates_to_the_buffer),
        cmocka_unit_test(test_log_safe_with_zero_size_writes_nothing),
        T(test_log_long_message_is_one_truncated_line),
        T(test_log_long_header_still_ends_in_newline),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
