/* Tests of lib/metrics: label sets, the per-process registry and its
 * limits, flushing from several "processes" into a private redis-server
 * (failures, lost replies, fork), and the exposition text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lua.h"
#include "metrics.h"
#include "testutil.h"

#define APPID "wx62dd79ea990faa89"
#define HASH "wxkf:{" APPID "}:metrics"
#define NFAMILIES 29

/* ---- helpers -------------------------------------------------------- */

struct fixture {
    struct tu_redis redis;
    struct store s;
    struct metrics *a, *b;      /* two "processes" */
};

static void store_on(struct store *s, int port, long io_ms)
{
    char url[64];

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    assert_int_equal(store_init(s, url, APPID, 500, io_ms), 0);
}

static struct metrics *new_registry(void)
{
    struct metrics *m = malloc(sizeof(*m));

    assert_non_null(m);
    metrics_init(m);
    return m;
}

static void free_registry(struct metrics *m)
{
    metrics_release(m);
    metrics_release(m);                 /* safe twice */
    free(m);
}

static int setup(void **st)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    tu_redis_start(&f->redis);
    store_on(&f->s, f->redis.port, 1000);
    f->a = new_registry();
    f->b = new_registry();
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    struct fixture *f = *st;

    free_registry(f->a);
    free_registry(f->b);
    store_release(&f->s);
    tu_redis_stop(&f->redis);
    free(f);
    return 0;
}

static char *redis(struct fixture *f, const char *a, const char *b,
                   const char *c, const char *d)
{
    const char *argv[] = { a, b, c, d, NULL };

    return tu_redis_cmd(&f->redis, argv);
}

static void expect_field(struct fixture *f, const char *field,
                         const char *want)
{
    char *got = redis(f, "HGET", HASH, field, NULL), msg[512];
    int same = strcmp(got, want) == 0;

    snprintf(msg, sizeof(msg), "%s: got %s, want %s", field, got, want);
    free(got);
    if (!same)
        fail_msg("%s", msg);
}

static void set_field(struct fixture *f, const char *field, const char *v)
{
    free(redis(f, "HSET", HASH, field, v));
}

static void flush_ok(struct fixture *f, struct metrics *m)
{
    assert_int_equal(metrics_flush(m, &f->s, kf_mono_ms()), 0);
}

static char *render(struct fixture *f, const struct metrics_gauge *g,
                    size_t ng)
{
    struct kf_buf out;

    kf_buf_init(&out, 16u << 20);
    assert_int_equal(metrics_render(&f->s, g, ng, &out), 0);
    assert_non_null(out.p);
    return kf_buf_detach(&out, NULL);
}

static void expect_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    const char *p = text;

    while ((p = strstr(p, line)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return;
        p++;
    }
    fail_msg("missing line: %s", line);
}

static size_t count_prefix(const char *text, const char *prefix)
{
    size_t n = 0, k = strlen(prefix);
    const char *p = text;

    while (p && *p) {
        n += strncmp(p, prefix, k) == 0;
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return n;
}

/* ---- an independent check of the text format (0.0.4) --------------- */

static int metric_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == ':' || (!first && c >= '0' && c <= '9');
}

/* Parses {name="value",...}; returns the end or NULL. Sets *le if an le
 * label is present. */
static const char *check_labels(const char *p, const char *end, int *le)
{
    if (*p != '{')
        return p;
    p++;
    for (;;) {
        const char *n = p;

        if (p >= end || !metric_char(*p, 1) || *p == ':')
            return NULL;
        while (p < end && metric_char(*p, 0) && *p != ':')
            p++;
        if (p - n == 2 && strncmp(n, "le", 2) == 0)
            *le = 1;
        if (p + 1 >= end || p[0] != '=' || p[1] != '"')
            return NULL;
        for (p += 2; p < end && *p != '"'; p++)
            if (*p == '\\' && (++p >= end || !strchr("\\\"n", *p)))
                return NULL;
        if (p >= end)
            return NULL;
        p++;
        if (p < end && *p == '}')
            return p + 1;
        if (p >= end || *p != ',')
            return NULL;
        p++;
    }
}

static int valid_value(const char *p, const char *end)
{
    char tmp[64], *e;
    size_t n = (size_t)(end - p);

    if (n == 0 || n >= sizeof(tmp))
        return 0;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    if (!strcmp(tmp, "NaN") || !strcmp(tmp, "+Inf") || !strcmp(tmp, "-Inf"))
        return 1;
    strtod(tmp, &e);
    return *e == '\0' && tmp[0] != ' ';
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every line is "# HELP f text", "# TYPE f type" (once per family, right
 * after its HELP, families ascending) or "name{labels} value" of the
 * current family; no series twice. Returns the number of families. */
static size_t check_exposition(const char *text)
{
    char fam[128] = "", prev[128] = "", type[16] = "";
    char **keys = NULL;
    size_t nkeys = 0, nfam = 0, i;
    const char *p = text;
    int after_help = 0;

    while (*p) {
        const char *e = strchr(p, '\n'), *q;
        size_t n;

        assert_non_null(e);
        n = (size_t)(e - p);
        if (n > 7 && strncmp(p, "# HELP ", 7) == 0) {
            q = memchr(p + 7, ' ', n - 7);
            assert_non_null(q);
            assert_true((size_t)(q - p - 7) < sizeof(fam));
            snprintf(fam, sizeof(fam), "%.*s", (int)(q - p - 7), p + 7);
            if (strcmp(prev, fam) >= 0)
                fail_msg("family %s not after %s", fam, prev);
            snprintf(prev, sizeof(prev), "%s", fam);
            after_help = 1;
            nfam++;
        } else if (n > 7 && strncmp(p, "# TYPE ", 7) == 0) {
            size_t fl = strlen(fam);

            assert_true(after_help);
            assert_true(n > 7 + fl + 1);
            assert_memory_equal(p + 7, fam, fl);
            assert_int_equal(p[7 + fl], ' ');
            snprintf(type, sizeof(type), "%.*s", (int)(n - 8 - fl),
                     p + 8 + fl);
            assert_true(!strcmp(type, "counter") || !strcmp(type, "gauge") ||
                        !strcmp(type, "histogram"));
            after_help = 0;
        } else {
            const char *sp;
            size_t nl, fl = strlen(fam);
            int le = 0;

            assert_false(after_help);
            assert_true(*type);
            assert_true(metric_char(*p, 1));
            for (q = p; q < e && metric_char(*q, 0); q++)
                ;
            nl = (size_t)(q - p);
            sp = check_labels(q, e, &le);
            if (!sp || sp >= e || *sp != ' ' || !valid_value(sp + 1, e))
                fail_msg("bad sample line: %.*s", (int)n, p);
            assert_true(nl >= fl && memcmp(p, fam, fl) == 0);
            if (!strcmp(type, "histogram")) {
                const char *suf = p + fl;
                size_t sl = nl - fl;

                assert_true((sl == 7 && !strncmp(suf, "_bucket", 7) && le) ||
                            (sl == 4 && !strncmp(suf, "_sum", 4) && !le) ||
                            (sl == 6 && !strncmp(suf, "_count", 6) && !le));
            } else {
                assert_int_equal(nl, fl);
            }
            keys = realloc(keys, (nkeys + 1) * sizeof(*keys));
            assert_non_null(keys);
            keys[nkeys] = strndup(p, (size_t)(sp - p));
            assert_non_null(keys[nkeys++]);
        }
        p = e + 1;
    }
    qsort(keys, nkeys, sizeof(*keys), key_cmp);
    for (i = 1; i < nkeys; i++)
        if (!strcmp(keys[i - 1], keys[i]))
            fail_msg("series twice: %s", keys[i]);
    for (i = 0; i < nkeys; i++)
        free(keys[i]);
    free(keys);
    return nfam;
}

/* ---- label sets ----------------------------------------------------- */

static void test_metrics_labels_sort_by_name_and_escape_values(void **st)
{
    char l[METRICS_LABELS_MAX + 1];

    (void)st;
    assert_int_equal(metrics_labels(l, sizeof(l), 2, "status", "200",
                                    "route", "/a\"b\\c\nd"), 0);
    assert_string_equal(l, "route=\"/a\\\"b\\\\c\\nd\",status=\"200\"");
    assert_int_equal(metrics_labels(l, sizeof(l), 0), 0);
    assert_string_equal(l, "");
    assert_int_equal(metrics_labels(l, sizeof(l), 1, "type", "\t\x7f\xff"
                                    "\xc3\xa9"), 0);
    assert_string_equal(l, "type=\"???\xc3\xa9\"");
}

static void test_metrics_labels_cut_long_values_at_a_character(void **st)
{
    char l[METRICS_LABELS_MAX + 1], v[256], want[256];
    size_t i;

    (void)st;
    memset(v, 'x', 200);
    v[200] = '\0';
    assert_int_equal(metrics_labels(l, sizeof(l), 1, "route", v), 0);
    snprintf(want, sizeof(want), "route=\"%.*s\"", METRICS_VALUE_MAX, v);
    assert_string_equal(l, want);
    /* 3-byte characters: 21 fit in 64 bytes, never half of one */
    for (i = 0; i < 30; i++)
        memcpy(v + 3 * i, "\xe4\xb8\xad", 3);
    v[90] = '\0';
    assert_int_equal(metrics_labels(l, sizeof(l), 1, "type", v), 0);
    snprintf(want, sizeof(want), "type=\"%.63s\"", v);
    assert_string_equal(l, want);
    /* an escape is never cut in two: x + 31 \" = 63 bytes */
    v[0] = 'x';
    memset(v + 1, '"', 40);
    v[41] = '\0';
    assert_int_equal(metrics_labels(l, sizeof(l), 1, "type", v), 0);
    assert_int_equal(strlen(l), strlen("type=\"\"") + 63);
    assert_int_equal(l[strlen(l) - 2], '"');
    assert_int_equal(l[strlen(l) - 3], '\\');
}

static void test_metrics_labels_refuse_bad_names_and_overflow(void **st)
{
    static const char *const bad[] = { "le", "__x", "1a", "", "a-b" };
    char l[METRICS_LABELS_MAX + 1], v[METRICS_VALUE_MAX + 1], tiny[8];
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(metrics_labels(l, sizeof(l), 1, bad[i], "v"),
                         KF_EINVAL);
        assert_string_equal(l, "!");
    }
    assert_int_equal(metrics_labels(l, sizeof(l), 2, "a", "1", "a", "2"),
                     KF_EINVAL);
    assert_int_equal(metrics_labels(l, sizeof(l), 1, "a", NULL), KF_EINVAL);
    assert_int_equal(metrics_labels(l, sizeof(l), -1), KF_EINVAL);
    assert_int_equal(metrics_labels(l, sizeof(l), METRICS_PAIRS_MAX + 1),
                     KF_EINVAL);
    memset(v, 'v', METRICS_VALUE_MAX);
    v[METRICS_VALUE_MAX] = '\0';
    assert_int_equal(metrics_labels(l, sizeof(l), 3, "a", v, "b", v, "c", v),
                     KF_EINVAL);
    assert_int_equal(metrics_labels(tiny, sizeof(tiny), 1, "route", "/x"),
                     KF_EINVAL);
    assert_string_equal(tiny, "!");
}

/* ---- the registry --------------------------------------------------- */

static void test_metrics_two_processes_add_up(void **st)
{
    struct fixture *f = *st;
    char ok[METRICS_LABELS_MAX + 1], nf[METRICS_LABELS_MAX + 1];

    assert_int_equal(metrics_labels(ok, sizeof(ok), 2, "route", "/wechat",
                                    "status", "200"), 0);
    assert_int_equal(metrics_labels(nf, sizeof(nf), 2, "route", "/wechat",
                                    "status", "404"), 0);
    metrics_inc(f->a, METRICS_HTTP_REQUESTS, ok, 1);
    metrics_inc(f->a, METRICS_HTTP_REQUESTS, ok, 2);
    metrics_inc(f->a, METRICS_TOKEN_REFRESHES, "", 1);
    metrics_inc(f->b, METRICS_HTTP_REQUESTS, ok, 10);
    metrics_inc(f->b, METRICS_HTTP_REQUESTS, nf, 4);
    metrics_inc(f->b, METRICS_TOKEN_REFRESHES, NULL, 1);
    metrics_inc(f->b, METRICS_TOKEN_REFRESHES, NULL, 0);     /* nothing */
    metrics_inc(f->b, METRICS_TOKEN_REFRESHES, NULL, -5);    /* nothing */
    flush_ok(f, f->a);
    flush_ok(f, f->b);
    expect_field(f, "wxkf_http_requests_total{route=\"/wechat\","
                    "status=\"200\"}", "13");
    expect_field(f, "wxkf_http_requests_total{route=\"/wechat\","
                    "status=\"404\"}", "4");
    expect_field(f, "wxkf_wechat_token_refreshes_total", "2");
    /* a second round adds to the first */
    metrics_inc(f->a, METRICS_HTTP_REQUESTS, ok, 7);
    flush_ok(f, f->a);
    flush_ok(f, f->b);                  /* nothing new: no round trip */
    expect_field(f, "wxkf_http_requests_total{route=\"/wechat\","
                    "status=\"200\"}", "20");
    expect_field(f, "wxkf_metrics_series_dropped_total", "(nil)");
}

static void test_metrics_due_needs_counts_and_the_interval(void **st)
{
    struct fixture *f = *st;
    int64_t t0 = kf_mono_ms();

    assert_false(metrics_due(f->a, t0, 1000));
    metrics_inc(f->a, METRICS_TOKEN_REFRESHES, "", 1);
    assert_true(metrics_due(f->a, t0, 1000));     /* never flushed */
    assert_int_equal(metrics_flush(f->a, &f->s, t0), 0);
    assert_false(metrics_due(f->a, t0 + 5000, 1000));    /* nothing new */
    metrics_inc(f->a, METRICS_TOKEN_REFRESHES, "", 1);
    assert_false(metrics_due(f->a, t0 + 999, 1000));
    assert_true(metrics_due(f->a, t0 + 1000, 1000));
}

static void test_metrics_failed_flush_keeps_counts_and_delivers_once(
    void **st)
{
    struct fixture *f = *st;
    struct store dead;
    int64_t t0 = kf_mono_ms();

    store_on(&dead, tu_free_port(), 200);
    metrics_inc(f->a, METRICS_REDIS_ERRORS, "process=\"fcgi\"", 3);
    assert_int_equal(metrics_flush(f->a, &dead, t0), KF_EBACKEND);
    assert_false(metrics_due(f->a, t0 + 10, 1000));   /* waits a turn */
    assert_true(metrics_due(f->a, t0 + 1000, 1000));  /* the failed batch */
    metrics_inc(f->a, METRICS_REDIS_ERRORS, "process=\"fcgi\"", 2);
    assert_int_equal(metrics_flush(f->a, &dead, t0 + 1000), KF_EBACKEND);
    /* the failed batch goes first, as it was; then what came after */
    assert_int_equal(metrics_flush(f->a, &f->s, t0 + 2000), 0);
    expect_field(f, "wxkf_redis_errors_total{process=\"fcgi\"}", "3");
    assert_true(metrics_due(f->a, t0 + 3000, 1000));
    assert_int_equal(metrics_flush(f->a, &f->s, t0 + 3000), 0);
    expect_field(f, "wxkf_redis_errors_total{process=\"fcgi\"}", "5");
    assert_false(metrics_due(f->a, t0 + 9000, 1000));
    assert_int_equal(metrics_flush(f->a, &f->s, t0 + 9000), 0);
    expect_field(f, "wxkf_redis_errors_total{process=\"fcgi\"}", "5");
    store_release(&dead);
}

static void test_metrics_flush_resumes_after_redis_restarts(void **st)
{
    struct fixture *f = *st;
    int port = f->redis.port, i, rc = -1;

    metrics_inc(f->a, METRICS_MESSAGES, "direction=\"in\",type=\"text\"", 1);
    flush_ok(f, f->a);
    metrics_inc(f->a, METRICS_MESSAGES, "direction=\"in\",type=\"text\"", 3);
    tu_redis_stop(&f->redis);
    assert_int_equal(metrics_flush(f->a, &f->s, kf_mono_ms()), KF_EBACKEND);
    metrics_inc(f->a, METRICS_MESSAGES, "direction=\"in\",type=\"text\"", 2);
    tu_redis_start_on(&f->redis, port);         /* empty: no persistence */
    for (i = 0; i < 100 && rc != 0; i++) {      /* bounded: ~5 s */
        rc = metrics_flush(f->a, &f->s, kf_mono_ms());
        if (rc != 0)
            tu_sleep_ms(50);
    }
    assert_int_equal(rc, 0);
    expect_field(f, "wxkf_messages_total{direction=\"in\",type=\"text\"}",
                 "3");
    flush_ok(f, f->a);
    expect_field(f, "wxkf_messages_total{direction=\"in\",type=\"text\"}",
                 "5");
}

static long evalsha_calls(struct fixture *f)
{
    char *info = redis(f, "INFO", "commandstats", NULL, NULL);
    const char *p = strstr(info, "cmdstat_evalsha:calls=");
    long n = p ? strtol(p + 22, NULL, 10) : 0;

    free(info);
    return n;
}

/* The reply to a flush is lost after Redis applied it (the server was
 * busy past the I/O timeout, and the store's retry was lost too): the
 * resent batch must not count again. */
static void test_metrics_resent_batch_counts_once_after_a_lost_reply(
    void **st)
{
    static const char busy[] =
        "local s = redis.call('TIME') local t repeat t = redis.call('TIME')"
        " until (t[1] - s[1]) * 1000000 + (t[2] - s[2]) >= tonumber(ARGV[1])"
        " return 1";
    struct fixture *f = *st;
    struct store s;
    long before;
    pid_t pid;
    int i, rc = -1, status;

    store_on(&s, f->redis.port, 200);
    metrics_inc(f->a, METRICS_SLOW_REQUESTS, "route=\"/wechat\"", 1);
    assert_int_equal(metrics_flush(f->a, &s, kf_mono_ms()), 0);
    metrics_inc(f->a, METRICS_SLOW_REQUESTS, "route=\"/wechat\"", 5);
    before = evalsha_calls(f);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[] = { "EVAL", busy, "0", "900000", NULL };

        free(tu_redis_cmd(&f->redis, argv));
        _exit(0);
    }
    tu_sleep_ms(150);
    assert_int_equal(metrics_flush(f->a, &s, kf_mono_ms()), KF_EBACKEND);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    for (i = 0; i < 100 && rc != 0; i++) {       /* bounded: ~5 s */
        rc = metrics_flush(f->a, &s, kf_mono_ms());
        if (rc != 0)
            tu_sleep_ms(50);
    }
    assert_int_equal(rc, 0);
    expect_field(f, "wxkf_slow_requests_total{route=\"/wechat\"}", "6");
    /* the batch of 5 did reach Redis more than once */
    assert_true(evalsha_calls(f) - before >= 2);
    store_release(&s);
}

/* A child forked with counts in the registry does not deliver them again
 * (its first flush drops what the registry held and takes a new
 * identity), and its own later batches are not mistaken for the
 * parent's. */
static void test_metrics_forked_child_starts_afresh(void **st)
{
    struct fixture *f = *st;
    pid_t pid;
    int status;

    metrics_inc(f->a, METRICS_POSTGRES_ERRORS, "process=\"jobs\"", 1);
    pid = fork();            /* f->s is not connected yet: nothing shared */
    assert_true(pid >= 0);
    if (pid == 0) {
        int rc = metrics_flush(f->a, &f->s, kf_mono_ms());

        metrics_inc(f->a, METRICS_POSTGRES_ERRORS, "process=\"jobs\"", 2);
        if (rc == 0)
            rc = metrics_flush(f->a, &f->s, kf_mono_ms());
        store_release(&f->s);
        _exit(rc == 0 ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    expect_field(f, "wxkf_postgres_errors_total{process=\"jobs\"}", "2");
    flush_ok(f, f->a);
    expect_field(f, "wxkf_postgres_errors_total{process=\"jobs\"}", "3");
}

static void test_metrics_histogram_buckets_are_cumulative(void **st)
{
    static const double obs[] = { 0.0005, 0.001, 0.003, 0.3, 7.0 };
    struct fixture *f = *st;
    const char *safe = "mode=\"safe\"";
    char *text;
    size_t i;

    for (i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        metrics_observe(i % 2 ? f->a : f->b, METRICS_CALLBACK_DURATION, safe,
                        obs[i]);
    metrics_observe(f->a, METRICS_CALLBACK_DURATION, "", 0.02);
    metrics_observe(f->a, METRICS_CALLBACK_DURATION, "", -1);   /* 0 */
    metrics_observe(f->a, METRICS_CALLBACK_DURATION, "", NAN);  /* 0 */
    flush_ok(f, f->a);
    flush_ok(f, f->b);
#define B "wxkf_callback_duration_seconds_bucket{mode=\"safe\",le=\""
    expect_field(f, B "0.001\"}", "2");
    expect_field(f, B "0.0025\"}", "2");
    expect_field(f, B "0.005\"}", "3");
    expect_field(f, B "0.25\"}", "3");
    expect_field(f, B "0.5\"}", "4");
    expect_field(f, B "5\"}", "4");
    expect_field(f, "wxkf_callback_duration_seconds_count{mode=\"safe\"}",
                 "5");
    expect_field(f, "wxkf_callback_duration_seconds_sum_us{mode=\"safe\"}",
                 "7304500");
    text = render(f, NULL, 0);
    expect_line(text, B "0.001\"} 2");
    expect_line(text, B "0.01\"} 3");
    expect_line(text, B "2.5\"} 4");
    expect_line(text, B "+Inf\"} 5");
#undef B
    expect_line(text, "wxkf_callback_duration_seconds_sum{mode=\"safe\"} "
                      "7.304500");
    expect_line(text, "wxkf_callback_duration_seconds_count{mode=\"safe\"} 5");
    expect_line(text, "wxkf_callback_duration_seconds_bucket{le=\"0.001\"} 2");
    expect_line(text, "wxkf_callback_duration_seconds_bucket{le=\"0.01\"} 2");
    expect_line(text, "wxkf_callback_duration_seconds_bucket{le=\"0.02\"} 3");
    expect_line(text, "wxkf_callback_duration_seconds_bucket{le=\"+Inf\"} 3");
    expect_line(text, "wxkf_callback_duration_seconds_sum 0.020000");
    expect_line(text, "wxkf_callback_duration_seconds_count 3");
    assert_int_equal(count_prefix(text, "wxkf_callback_duration_seconds_"),
                     2 * 15);
    assert_int_equal(check_exposition(text), NFAMILIES);
    free(text);
}

static void test_metrics_refused_counts_go_to_dropped(void **st)
{
    struct fixture *f = *st;

    metrics_inc(f->a, "wxkf_nope_total", "", 2);
    metrics_inc(f->a, NULL, "", 1);
    metrics_inc(f->a, METRICS_QUEUE_LENGTH, "group=\"g\"", 1);    /* gauge */
    metrics_inc(f->a, METRICS_CALLBACK_DURATION, "", 1);          /* hist */
    metrics_observe(f->a, METRICS_HTTP_REQUESTS, "", 0.1);     /* counter */
    metrics_inc(f->a, METRICS_HTTP_REQUESTS, "user=\"x\"", 1); /* label */
    metrics_inc(f->a, METRICS_HTTP_REQUESTS,
                "status=\"200\",route=\"/x\"", 1);           /* unsorted */
    metrics_inc(f->a, METRICS_HTTP_REQUESTS, "!", 1);    /* metrics_labels */
    metrics_inc(f->a, METRICS_HTTP_REQUESTS, "route=\"/x\",", 1);
    flush_ok(f, f->a);
    expect_field(f, "wxkf_metrics_series_dropped_total", "10");
    /* the same series, first created by metrics_observe, stays refused
     * for metrics_inc */
    metrics_observe(f->a, METRICS_CALLBACK_DURATION, "mode=\"aes\"", 0.1);
    metrics_inc(f->a, METRICS_CALLBACK_DURATION, "mode=\"aes\"", 1);
    flush_ok(f, f->a);
    expect_field(f, "wxkf_metrics_series_dropped_total", "11");
}

static void test_metrics_series_cap_counts_the_rest_as_dropped(void **st)
{
    struct fixture *f = *st;
    char l[METRICS_LABELS_MAX + 1], r[32], *n;
    int i;

    for (i = 0; i < METRICS_SERIES_MAX + 10; i++) {
        snprintf(r, sizeof(r), "/r/%d", i);
        assert_int_equal(metrics_labels(l, sizeof(l), 2, "route", r,
                                        "status", "200"), 0);
        metrics_inc(f->a, METRICS_HTTP_REQUESTS, l, 1);
    }
    metrics_inc(f->a, METRICS_HTTP_REQUESTS,
                "route=\"/r/0\",status=\"200\"", 1);   /* still counts */
    flush_ok(f, f->a);
    n = redis(f, "HLEN", HASH, NULL, NULL);
    assert_int_equal(strtol(n, NULL, 10), METRICS_SERIES_MAX + 1);
    free(n);
    expect_field(f, "wxkf_metrics_series_dropped_total", "10");
    expect_field(f, "wxkf_http_requests_total{route=\"/r/0\","
                    "status=\"200\"}", "2");
    /* the value pool: a histogram series takes 14, so 4096 / 14 = 292
     * fit and 8 of 300 are dropped */
    for (i = 0; i < 300; i++) {
        snprintf(r, sizeof(r), "m%d", i);
        assert_int_equal(metrics_labels(l, sizeof(l), 1, "mode", r), 0);
        metrics_observe(f->b, METRICS_CALLBACK_DURATION, l, 0.01);
    }
    flush_ok(f, f->b);
    expect_field(f, "wxkf_metrics_series_dropped_total", "18");
}

/* ---- rendering ------------------------------------------------------ */

static void test_metrics_render_is_valid_exposition(void **st)
{
    struct fixture *f = *st;
    char l[METRICS_LABELS_MAX + 1], *text;
    const struct metrics_gauge g[] = {
        { METRICS_QUEUE_LENGTH, "group=\"vip\"", 3 },
        { METRICS_QUEUE_LENGTH, "group=\"_all\"", 1 },
        { METRICS_QUEUE_LENGTH, "group=\"vip\"", 99 },     /* duplicate */
        { METRICS_AGENT_ONLINE_RATE, NULL, 0.95 },
        { METRICS_ARCHIVER_LAG, "", NAN },
        { METRICS_ARCHIVER_PENDING, "", 1e21 },
        { METRICS_AGENTS, "status=\"online\"", 2 },
        { METRICS_AGENTS, "state=\"online\"", 2 },          /* bad label */
        { METRICS_HTTP_REQUESTS, "", 1 },                   /* not a gauge */
        { "wxkf_nope", "", 1 },
        { NULL, "", 1 },
    };

    assert_int_equal(metrics_labels(l, sizeof(l), 2, "route",
                                    "/api/v1/sessions/*", "status", "200"),
                     0);
    metrics_inc(f->a, METRICS_HTTP_REQUESTS, l, 5);
    assert_int_equal(metrics_labels(l, sizeof(l), 2, "route", "a\"b\\c\nd",
                                    "status", "500"), 0);
    metrics_inc(f->a, METRICS_HTTP_REQUESTS, l, 1);
    assert_int_equal(metrics_labels(l, sizeof(l), 2, "policy", "round_robin",
                                    "outcome", "assigned"), 0);
    metrics_inc(f->a, METRICS_ROUTING_OUTCOMES, l, 4);
    metrics_inc(f->a, METRICS_WECHAT_API_CALLS,
                "api=\"custom_send\",errcode=\"45015\"", 1);
    metrics_observe(f->a, METRICS_CALLBACK_DURATION, "", 0.004);
    flush_ok(f, f->a);
    text = render(f, g, sizeof(g) / sizeof(g[0]));
    assert_int_equal(check_exposition(text), NFAMILIES);
    assert_int_equal(count_prefix(text, "# HELP "), NFAMILIES);
    assert_int_equal(count_prefix(text, "# TYPE "), NFAMILIES);
    expect_line(text, "# TYPE wxkf_http_requests_total counter");
    expect_line(text, "# TYPE wxkf_callback_duration_seconds histogram");
    expect_line(text, "# TYPE wxkf_queue_length gauge");
    expect_line(text, "wxkf_http_requests_total{route=\"/api/v1/sessions/*\","
                      "status=\"200\"} 5");
    expect_line(text, "wxkf_http_requests_total{route=\"a\\\"b\\\\c\\nd\","
                      "status=\"500\"} 1");
    expect_line(text, "wxkf_routing_outcomes_total{outcome=\"assigned\","
                      "policy=\"round_robin\"} 4");
    expect_line(text, "wxkf_queue_length{group=\"vip\"} 3");
    assert_non_null(strstr(text, "wxkf_queue_length{group=\"_all\"} 1\n"
                                 "wxkf_queue_length{group=\"vip\"} 3\n"));
    expect_line(text, "wxkf_agent_online_rate 0.95");
    expect_line(text, "wxkf_archiver_lag_seconds NaN");
    expect_line(text, "wxkf_archiver_pending 1e+21");
    expect_line(text, "wxkf_agents{status=\"online\"} 2");
    assert_int_equal(count_prefix(text, "wxkf_agents{"), 1);
    /* counters without labels start at 0; families without series still
     * have HELP and TYPE */
    expect_line(text, "wxkf_wechat_token_refreshes_total 0");
    expect_line(text, "wxkf_metrics_series_dropped_total 0");
    expect_line(text, "wxkf_journal_quarantined_total 0");
    expect_line(text, "# TYPE wxkf_sessions_active gauge");
    assert_int_equal(count_prefix(text, "wxkf_sessions_active"), 0);
    assert_int_equal(count_prefix(text, "wxkf_slow_requests_total"), 0);
    free(text);
}

static void test_metrics_render_skips_malformed_fields(void **st)
{
    static const char *const bad[][2] = {
        { "garbage", "1" },
        { "wxkf_http_requests_total{route=\"/x\",status=\"200\"", "1" },
        { "wxkf_http_requests_total{route=\"/v\",status=\"200\"}", "abc" },
        { "wxkf_http_requests_total{route=\"/n\",status=\"200\"}", "-5" },
        { "wxkf_http_requests_total{route=\"/b\",status=\"200\"}",
          "99999999999999999999" },
        { "wxkf_http_requests_total{route=\"/s\",status=\"200\"}", "1 " },
        { "wxkf_http_requests_total{route=\"/e\",status=\"200\"}", "" },
        { "wxkf_nope_total", "1" },
        { "wxkf_http_requests_total{status=\"200\",route=\"/u\"}", "1" },
        { "wxkf_http_requests_total{route=\"/d\",route=\"/e\"}", "1" },
        { "wxkf_http_requests_total{route=\"\xff\"}", "1" },
        { "wxkf_http_requests_total{route=\"/c\x01\"}", "1" },
        { "wxkf_http_requests_total{route=\"/n\nx\"}", "1" },
        { "wxkf_http_requests_total{route=\"/q\\q\"}", "1" },
        { "wxkf_http_requests_total{route=\"/t\",}", "1" },
        { "wxkf_http_requests_total{route=/t}", "1" },
        { "wxkf_http_requests_total{user=\"x\"}", "1" },
        { "wxkf_http_requests_total{}", "1" },
        { "wxkf_http_requests_total{le=\"1\"}", "1" },
        { "wxkf_http_requests_totalx", "1" },
        { "wxkf_http_requests_total_bucket{le=\"1\"}", "1" },
        { "wxkf_callback_duration_seconds_bucket{le=\"0.3\"}", "1" },
        { "wxkf_callback_duration_seconds_bucket{le=\"+Inf\"}", "1" },
        { "wxkf_callback_duration_seconds_bucket", "1" },
        { "wxkf_callback_duration_seconds_bucket{mode=\"x\"}", "1" },
        { "wxkf_callback_duration_seconds_bucket{le=\"1\",mode=\"x\"}", "1" },
        { "wxkf_callback_duration_seconds{mode=\"x\"}", "1" },
        { "wxkf_callback_duration_seconds_sum{mode=\"x\"}", "1" },
        { "wxkf_queue_length{group=\"g\"}", "1" },
    };
    struct fixture *f = *st;
    char big[1200], *text;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        set_field(f, bad[i][0], bad[i][1]);
    snprintf(big, sizeof(big), "wxkf_http_requests_total{route=\"%0900d\"}",
             0);
    set_field(f, big, "1");
    set_field(f, "wxkf_http_requests_total{route=\"/ok\",status=\"200\"}",
              "7");
    set_field(f, "wxkf_callback_duration_seconds_count", "2");
    text = render(f, NULL, 0);
    assert_int_equal(check_exposition(text), NFAMILIES);
    assert_int_equal(count_prefix(text, "wxkf_http_requests_total"), 1);
    expect_line(text, "wxkf_http_requests_total{route=\"/ok\",status=\"200\"} "
                      "7");
    /* an incomplete histogram still renders whole */
    expect_line(text, "wxkf_callback_duration_seconds_bucket{le=\"0.001\"} 0");
    expect_line(text, "wxkf_callback_duration_seconds_bucket{le=\"+Inf\"} 2");
    expect_line(text, "wxkf_callback_duration_seconds_sum 0.000000");
    assert_int_equal(count_prefix(text, "wxkf_callback_duration_seconds_"),
                     15);
    assert_int_equal(count_prefix(text, "wxkf_queue_length{"), 0);
    free(text);
}

static void test_metrics_render_reads_a_bounded_number_of_fields(void **st)
{
    static const char fill[] =
        "for i = 1, tonumber(ARGV[1]) do redis.call('HSET', KEYS[1],"
        " 'wxkf_http_requests_total{route=\"/r' .. i .. '\",status=\"200\"}',"
        " 1) end return 1";
    struct fixture *f = *st;
    char n[16], *text;
    size_t lines;

    snprintf(n, sizeof(n), "%d", METRICS_FIELDS_MAX + 500);
    {
        const char *argv[] = { "EVAL", fill, "1", HASH, n, NULL };

        free(tu_redis_cmd(&f->redis, argv));
    }
    text = render(f, NULL, 0);
    lines = count_prefix(text, "wxkf_http_requests_total{");
    assert_true(lines > METRICS_FIELDS_MAX / 2);
    assert_true(lines <= METRICS_FIELDS_MAX);
    assert_int_equal(check_exposition(text), NFAMILIES);
    free(text);
}

static void test_metrics_render_reports_errors(void **st)
{
    struct fixture *f = *st;
    struct kf_buf out;
    struct store dead;

    kf_buf_init(&out, 100);
    assert_int_equal(metrics_render(&f->s, NULL, 0, &out), KF_ETOOBIG);
    kf_buf_release(&out);
    free(redis(f, "SET", HASH, "not a hash", NULL));
    kf_buf_init(&out, 1 << 20);
    assert_int_equal(metrics_render(&f->s, NULL, 0, &out), KF_EBACKEND);
    /* a flush into a broken key does not wedge the registry */
    metrics_inc(f->a, METRICS_TOKEN_REFRESHES, "", 1);
    flush_ok(f, f->a);
    assert_false(metrics_due(f->a, kf_mono_ms() + 100000, 0));
    store_on(&dead, tu_free_port(), 200);
    assert_int_equal(metrics_render(&dead, NULL, 0, &out), KF_EBACKEND);
    store_release(&dead);
    kf_buf_release(&out);
}

/* lib/lua/README.md: ARGV[1] is the op. metrics.lua refuses one it does
 * not know, even with a flush's arguments after it, and writes nothing;
 * it stands alone, without the routing prelude. */
static void test_metrics_script_refuses_an_unknown_op(void **st)
{
    struct fixture *f = *st;
    const char *args[] = { "no_such_op", "0123456789abcdef", "1", "86400",
                           METRICS_TOKEN_REFRESHES, "1" };
    struct store_script sc;
    struct store_reply *r = NULL;
    char *n;

    assert_null(strstr(lua_metrics, "local function parse_cfg("));
    store_script_init(&sc, lua_metrics);
    assert_int_equal(store_run(&f->s, &sc, 0, NULL, 6, args, NULL, &r),
                     KF_EBACKEND);
    assert_null(r);
    assert_non_null(strstr(store_error(&f->s), "unknown metrics op"));
    n = redis(f, "DBSIZE", NULL, NULL, NULL);
    assert_string_equal(n, "0");
    free(n);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_labels_sort_by_name_and_escape_values),
        cmocka_unit_test(test_metrics_labels_cut_long_values_at_a_character),
        cmocka_unit_test(test_metrics_labels_refuse_bad_names_and_overflow),
        T(test_metrics_two_processes_add_up),
        T(test_metrics_due_needs_counts_and_the_interval),
        T(test_metrics_failed_flush_keeps_counts_and_delivers_once),
        T(test_metrics_flush_resumes_after_redis_restarts),
        T(test_metrics_resent_batch_counts_once_after_a_lost_reply),
        T(test_metrics_forked_child_starts_afresh),
        T(test_metrics_histogram_buckets_are_cumulative),
        T(test_metrics_refused_counts_go_to_dropped),
        T(test_metrics_series_cap_counts_the_rest_as_dropped),
        T(test_metrics_render_is_valid_exposition),
        T(test_metrics_render_skips_malformed_fields),
        T(test_metrics_render_reads_a_bounded_number_of_fields),
        T(test_metrics_render_reports_errors),
        T(test_metrics_script_refuses_an_unknown_op),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
