/* Unit tests for config: defaults, the sample file, WXKF_* environment
 * overrides, file:line errors (fixtures in test/data/config/), comments and
 * CRLF, config_dump's secret hiding and release. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "kf.h"

#define CONF(name) "../data/config/" name
#define SAMPLE "../../docs/wxkf.conf.sample"

extern char **environ;

/* --- environment: every test starts without WXKF_* and restores what it
 * set in its teardown, even when an assertion fails. ------------------- */

struct saved_env {
    char name[64];
    char *old;      /* NULL: was unset */
};
static struct saved_env saved[16];
static size_t nsaved;

static void env_set(const char *name, const char *value)
{
    const char *old = getenv(name);

    assert_true(nsaved < sizeof(saved) / sizeof(saved[0]));
    snprintf(saved[nsaved].name, sizeof(saved[nsaved].name), "%s", name);
    saved[nsaved].old = old ? strdup(old) : NULL;
    nsaved++;
    assert_int_equal(setenv(name, value, 1), 0);
}

static int env_restore(void **state)
{
    (void)state;
    while (nsaved > 0) {
        struct saved_env *s = &saved[--nsaved];

        if (s->old)
            setenv(s->name, s->old, 1);
        else
            unsetenv(s->name);
        free(s->old);
        s->old = NULL;
    }
    return 0;
}

/* Runs once: drop any WXKF_* the shell exported so results are hermetic. */
static int clear_wxkf_env(void **state)
{
    int again = 1;

    (void)state;
    while (again) {
        char **e;

        again = 0;
        for (e = environ; *e; e++)
            if (strncmp(*e, "WXKF_", 5) == 0) {
                char name[128];
                size_t n = strcspn(*e, "=");

                if (n >= sizeof(name))
                    return -1;
                memcpy(name, *e, n);
                name[n] = '\0';
                unsetenv(name);
                again = 1;
                break;
            }
    }
    return 0;
}

/* --- helpers ----------------------------------------------------------- */

/* 1 if msg starts with "path:line: " (line 0: any line number >= 1). */
static int has_location(const char *msg, const char *path, int line)
{
    size_t n = strlen(path), digits;

    if (strncmp(msg, path, n) != 0 || msg[n] != ':')
        return 0;
    msg += n + 1;
    digits = strspn(msg, "0123456789");
    if (digits == 0 || msg[0] == '0' || strncmp(msg + digits, ": ", 2) != 0)
        return 0;
    return line == 0 || strtol(msg, NULL, 10) == line;
}

/* Loads path and checks it fails with KF_ECONFIG and a message containing
 * needle that starts with "path:line: ". Releases before asserting so a
 * failing case reports no leak. */
static void expect_file_error(const char *path, int line, const char *needle)
{
    struct config c;
    struct config_err err;
    int rc;

    config_init(&c);
    rc = config_load(&c, path, &err);
    config_release(&c);
    assert_int_equal(rc, KF_ECONFIG);
    if (!strstr(err.msg, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err.msg, needle);
    if (!has_location(err.msg, path, line)) {
        char want[16];

        snprintf(want, sizeof(want), line ? "%d" : "<any>", line);
        fail_msg("error \"%s\" does not start with \"%s:%s: \"", err.msg,
                 path, want);
    }
}

/* Loads with path (may be NULL) and the current environment, expecting an
 * error that starts with "var: " and contains needle. */
static void expect_env_error(const char *path, const char *var,
                             const char *needle)
{
    struct config c;
    struct config_err err;
    char where[128];
    int rc;

    config_init(&c);
    rc = config_load(&c, path, &err);
    config_release(&c);
    snprintf(where, sizeof(where), "%s: ", var);
    assert_int_equal(rc, KF_ECONFIG);
    if (strncmp(err.msg, where, strlen(where)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", err.msg, where);
    if (!strstr(err.msg, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err.msg, needle);
}

static void load_ok(struct config *c, const char *path)
{
    struct config_err err;
    int rc;

    config_init(c);
    rc = config_load(c, path, &err);
    if (rc != 0) {
        config_release(c);
        fail_msg("config_load(%s) = %d: %s", path ? path : "NULL", rc,
                 err.msg);
    }
}

/* Path of a new temp file holding text; caller unlinks. */
static void write_temp(char *path, size_t n, const char *text)
{
    FILE *f;
    int fd;

    snprintf(path, n, "/tmp/wxkf_test_config_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* --- defaults and the sample ------------------------------------------- */

static void test_config_init_fills_documented_defaults(void **state)
{
    struct config c;

    (void)state;
    config_init(&c);
    assert_int_equal(c.wechat.timestamp_window, 300);
    assert_int_equal(c.wechat.dedupe_ttl, 600);
    assert_int_equal(c.http.max_body, 65536);
    assert_string_equal(c.routing.policy, "round_robin");
    assert_int_equal(c.session.idle_timeout, 1800);
    assert_int_equal(c.presence.heartbeat_ttl, 90);
    assert_int_equal(c.ratelimit.wechat_api_per_min, 600);
    assert_string_equal(c.wechat.mode, "workspace");
    assert_string_equal(c.wechat.api_base, "https://api.weixin.qq.com");
    assert_string_equal(c.log.level, "info");
    assert_string_equal(c.log.file, "");
    assert_string_equal(c.wechat.app_id, "");
    assert_string_equal(c.wechat.encoding_aes_key, "");
    assert_int_equal(c.routing.default_capacity, 5);
    assert_int_equal(c.redis.connect_timeout_ms, 500);
    assert_int_equal(c.redis.io_timeout_ms, 1000);
    config_release(&c);
}

static void test_config_defaults_survive_load_without_file(void **state)
{
    struct config c;

    (void)state;
    env_set("WXKF_WECHAT_APP_ID", "wx0123456789abcdef");
    env_set("WXKF_WECHAT_TOKEN", "EnvToken");
    load_ok(&c, NULL);
    assert_string_equal(c.wechat.app_id, "wx0123456789abcdef");
    assert_string_equal(c.wechat.token, "EnvToken");
    assert_int_equal(c.wechat.timestamp_window, 300);
    assert_int_equal(c.wechat.dedupe_ttl, 600);
    assert_int_equal(c.http.max_body, 65536);
    assert_string_equal(c.routing.policy, "round_robin");
    assert_int_equal(c.session.idle_timeout, 1800);
    assert_int_equal(c.presence.heartbeat_ttl, 90);
    assert_int_equal(c.ratelimit.wechat_api_per_min, 600);
    config_release(&c);
}

static void test_config_without_app_id_is_rejected(void **state)
{
    struct config c;
    struct config_err err;
    int rc;

    (void)state;
    config_init(&c);
    rc = config_load(&c, NULL, &err);
    config_release(&c);
    assert_int_equal(rc, KF_ECONFIG);
    assert_non_null(strstr(err.msg, "wechat.app_id"));
}

static void test_config_sample_file_loads(void **state)
{
    struct config c;

    (void)state;
    load_ok(&c, SAMPLE);
    assert_string_equal(c.wechat.app_id, "wx0123456789abcdef");
    assert_string_equal(c.wechat.token, "ChangeMe0123456789abcdef");
    assert_string_equal(c.wechat.encoding, "plaintext");   /* no key */
    assert_null(config_advice(&c, 0));
    assert_string_equal(c.wechat.app_secret, "");
    assert_string_equal(c.wechat.mode, "workspace");
    assert_string_equal(c.postgres.dsn,
                        "host=127.0.0.1 port=5432 dbname=wxkf user=wxkf");
    assert_string_equal(c.redis.url, "redis://127.0.0.1:6379/0");
    assert_int_equal(c.wechat.timestamp_window, 300);
    assert_int_equal(c.http.max_body, 65536);
    assert_string_equal(c.texts.welcome,
                        "欢迎关注！有问题请直接留言，客服会尽快回复您。");
    assert_non_null(strstr(c.texts.queued, "{n}"));
    assert_true(strlen(c.texts.no_agent) > 0);
    config_release(&c);
}

static void test_config_missing_file_error_names_the_path(void **state)
{
    struct config c;
    struct config_err err;
    int rc;

    (void)state;
    config_init(&c);
    rc = config_load(&c, CONF("does_not_exist.conf"), &err);
    config_release(&c);
    assert_int_equal(rc, KF_ECONFIG);
    assert_non_null(strstr(err.msg, CONF("does_not_exist.conf")));
}

static void test_config_missing_token_error_names_the_file(void **state)
{
    struct config c;
    struct config_err err;
    const char *path = CONF("missing_token.conf");
    int rc;

    (void)state;
    config_init(&c);
    rc = config_load(&c, path, &err);
    config_release(&c);
    assert_int_equal(rc, KF_ECONFIG);
    if (strncmp(err.msg, path, strlen(path)) != 0 ||
        !strstr(err.msg, "wechat.token"))
        fail_msg("error \"%s\" should name %s and wechat.token", err.msg,
                 path);
}

/* --- environment overrides --------------------------------------------- */

static void test_config_env_overrides_beat_the_file(void **state)
{
    struct config c;

    (void)state;
    env_set("WXKF_WECHAT_TOKEN", "FromEnv42");
    env_set("WXKF_HTTP_MAX_BODY", "2048");
    env_set("WXKF_ROUTING_POLICY", "least_busy");
    env_set("WXKF_TEXTS_WELCOME", "hi there");
    load_ok(&c, SAMPLE);
    assert_string_equal(c.wechat.token, "FromEnv42");
    assert_int_equal(c.http.max_body, 2048);
    assert_string_equal(c.routing.policy, "least_busy");
    assert_string_equal(c.texts.welcome, "hi there");
    /* Untouched keys still come from the file. */
    assert_string_equal(c.wechat.app_id, "wx0123456789abcdef");
    config_release(&c);
}

static void test_config_env_integer_bounds_are_inclusive(void **state)
{
    struct config c;

    (void)state;
    env_set("WXKF_HTTP_MAX_BODY", "1024");
    env_set("WXKF_WECHAT_TIMESTAMP_WINDOW", "0");
    load_ok(&c, SAMPLE);
    assert_int_equal(c.http.max_body, 1024);
    assert_int_equal(c.wechat.timestamp_window, 0);
    config_release(&c);
    env_restore(NULL);

    env_set("WXKF_HTTP_MAX_BODY", "1048576");
    env_set("WXKF_WECHAT_TIMESTAMP_WINDOW", "86400");
    load_ok(&c, SAMPLE);
    assert_int_equal(c.http.max_body, 1048576);
    assert_int_equal(c.wechat.timestamp_window, 86400);
    config_release(&c);
    env_restore(NULL);

    env_set("WXKF_HTTP_MAX_BODY", "1023");
    expect_env_error(SAMPLE, "WXKF_HTTP_MAX_BODY", "http.max_body");
    env_restore(NULL);
    env_set("WXKF_HTTP_MAX_BODY", "1048577");
    expect_env_error(SAMPLE, "WXKF_HTTP_MAX_BODY", "http.max_body");
}

static void test_config_invalid_env_integer_names_the_variable(void **state)
{
    (void)state;
    env_set("WXKF_HTTP_MAX_BODY", "lots");
    expect_env_error(SAMPLE, "WXKF_HTTP_MAX_BODY", "http.max_body");
}

static void test_config_invalid_env_enum_names_the_variable(void **state)
{
    (void)state;
    env_set("WXKF_WECHAT_MODE", "foo");
    expect_env_error(SAMPLE, "WXKF_WECHAT_MODE", "workspace|wechat_kf");
}

static void test_config_invalid_env_app_id_names_the_variable(void **state)
{
    (void)state;
    env_set("WXKF_WECHAT_APP_ID", "not-an-appid");
    expect_env_error(SAMPLE, "WXKF_WECHAT_APP_ID", "app_id");
}

static void test_config_empty_env_token_names_the_variable(void **state)
{
    (void)state;
    env_set("WXKF_WECHAT_TOKEN", "");
    expect_env_error(SAMPLE, "WXKF_WECHAT_TOKEN", "wechat.token");
}

static void test_config_rejects_original_id_with_nothing_after_gh(
    void **state)
{
    (void)state;
    env_set("WXKF_WECHAT_ORIGINAL_ID", "gh_");
    expect_env_error(SAMPLE, "WXKF_WECHAT_ORIGINAL_ID", "wechat.original_id");
}

/* [reports]: working days are weekday digits, each once; working hours
 * start before they end. */
static void test_config_reports_working_hours(void **state)
{
    (void)state;
    env_set("WXKF_REPORTS_WORK_DAYS", "1238");
    expect_env_error(SAMPLE, "WXKF_REPORTS_WORK_DAYS", "reports.work_days");
    env_set("WXKF_REPORTS_WORK_DAYS", "1123");
    expect_env_error(SAMPLE, "WXKF_REPORTS_WORK_DAYS", "reports.work_days");
    env_set("WXKF_REPORTS_WORK_DAYS", "67");
    env_set("WXKF_REPORTS_WORK_START", "18");
    env_set("WXKF_REPORTS_WORK_END", "18");
    expect_env_error(SAMPLE, "WXKF_REPORTS_WORK_START", "reports.work_end");
}

/* --- file:line errors -------------------------------------------------- */

static void test_config_rejects_unknown_key_with_file_and_line(void **state)
{
    (void)state;
    expect_file_error(CONF("unknown_key.conf"), 3, "colour");
}

static void test_config_rejects_unknown_section_with_file_and_line(
    void **state)
{
    (void)state;
    expect_file_error(CONF("unknown_section.conf"), 6, "nosuch");
}

static void test_config_rejects_bad_section_header_with_file_and_line(
    void **state)
{
    (void)state;
    expect_file_error(CONF("bad_section_header.conf"), 1, "section");
}

static void test_config_rejects_key_outside_section_with_file_and_line(
    void **state)
{
    (void)state;
    expect_file_error(CONF("key_outside_section.conf"), 3, "token");
}

static void test_config_rejects_missing_equals_with_file_and_line(
    void **state)
{
    (void)state;
    expect_file_error(CONF("missing_equals.conf"), 3, "=");
}

static void test_config_rejects_out_of_range_integer_with_file_and_line(
    void **state)
{
    (void)state;
    expect_file_error(CONF("out_of_range.conf"), 5, "http.max_body");
}

static void test_config_rejects_non_integer_with_file_and_line(void **state)
{
    (void)state;
    expect_file_error(CONF("not_integer.conf"), 4, "wechat.timestamp_window");
}

static void test_config_rejects_bad_enum_with_file_and_line(void **state)
{
    (void)state;
    expect_file_error(CONF("bad_enum.conf"), 4, "wechat.mode");
}

static void test_config_rejects_over_long_value_with_file_and_line(
    void **state)
{
    (void)state;
    expect_file_error(CONF("value_too_long.conf"), 3, "wechat.token");
}

static void test_config_rejects_over_long_line_with_file_and_line(
    void **state)
{
    char path[64], *text = malloc(6000);
    size_t n;

    (void)state;
    assert_non_null(text);
    n = (size_t)snprintf(text, 6000, "[wechat]\napp_id = wx0123456789abcdef"
                                     "\ntoken = abc\n[texts]\nwelcome = ");
    memset(text + n, 'x', 5000);
    memcpy(text + n + 5000, "\n", 2);
    write_temp(path, sizeof(path), text);
    free(text);
    expect_file_error(path, 5, "too long");
    unlink(path);
}

/* Group names beyond ASCII (售后) are accepted in the [routing] rules as
 * they are on agents; a space or a separator inside one is not. */
static void test_config_takes_unicode_group_names_in_rules(void **state)
{
    char path[64];
    struct config c;

    (void)state;
    write_temp(path, sizeof(path), "[wechat]\napp_id = wx0123456789abcdef\n"
               "token = abc\n[routing]\n"
               "menu_groups = AFTER:\xe5\x94\xae\xe5\x90\x8e,PRE:sales\n"
               "group_policies = \xe5\x94\xae\xe5\x90\x8e:least_busy\n");
    load_ok(&c, path);
    assert_string_equal(c.routing.menu_groups,
                        "AFTER:\xe5\x94\xae\xe5\x90\x8e,PRE:sales");
    config_release(&c);
    unlink(path);
    write_temp(path, sizeof(path), "[wechat]\napp_id = wx0123456789abcdef\n"
               "token = abc\n[routing]\n"
               "keyword_groups = refund:\xe5\x94\xae \xe5\x90\x8e\n");
    expect_file_error(path, 5, "names a group");
    unlink(path);
}

/* lib/route keeps 64 rules per list: a 65th is refused at load time
 * (found by fuzzing: it used to pass config_load and fail route_init). */
static void test_config_refuses_a_65th_group_rule(void **state)
{
    char path[64], text[2048], *p;
    struct config c;
    int i, n;

    (void)state;
    for (n = 64; n <= 65; n++) {
        p = text + snprintf(text, sizeof(text), "[wechat]\napp_id = "
                            "wx0123456789abcdef\ntoken = abc\n[routing]\n"
                            "menu_groups = ");
        for (i = 0; i < n; i++)
            p += snprintf(p, sizeof(text) - (size_t)(p - text), "%sK%d:g",
                          i ? "," : "", i);
        snprintf(p, sizeof(text) - (size_t)(p - text), "\n");
        write_temp(path, sizeof(path), text);
        if (n == 64) {
            load_ok(&c, path);
            config_release(&c);
        } else {
            expect_file_error(path, 5, "more than 64");
        }
        unlink(path);
    }
}

/* [wechat] encoding: safe by default with an EncodingAESKey, plaintext
 * without one; compatible and safe need a key; anything else is named. */
static void test_config_encoding_follows_the_key_and_needs_one(void **state)
{
    static const char head[] = "[wechat]\napp_id = wx0123456789abcdef\n"
                               "token = abcdefghijklmnop\n";
    static const char key[] = "encoding_aes_key = "
                              "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\n";
    static const struct {
        const char *lines;
        int with_key;
        const char *want;
        enum config_encoding e;
    } ok[] = {
        { "", 0, "plaintext", CONFIG_ENC_PLAINTEXT },
        { "", 1, "safe", CONFIG_ENC_SAFE },
        { "encoding =\n", 1, "safe", CONFIG_ENC_SAFE },
        { "encoding = compatible\n", 1, "compatible", CONFIG_ENC_COMPATIBLE },
        { "encoding = plaintext\n", 1, "plaintext", CONFIG_ENC_PLAINTEXT },
        { "encoding = safe\n", 1, "safe", CONFIG_ENC_SAFE },
    };
    static const struct {
        const char *lines, *needle;
        int line;
    } bad[] = {
        { "encoding = safe\n", "compatible or safe needs "
          "wechat.encoding_aes_key", 4 },
        { "encoding = compatible\n", "wechat.encoding_aes_key", 4 },
        { "encoding = aes\n", "must be plaintext, compatible or safe", 4 },
        { "encoding = Safe\n", "wechat.encoding", 4 },
        { "encoding = raw\n", "wechat.encoding", 4 },
    };
    char path[64], text[512];
    struct config c;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(text, sizeof(text), "%s%s%s", head,
                 ok[i].with_key ? key : "", ok[i].lines);
        write_temp(path, sizeof(path), text);
        load_ok(&c, path);
        unlink(path);
        if (strcmp(c.wechat.encoding, ok[i].want) != 0 ||
            config_encoding(&c) != ok[i].e) {
            config_release(&c);
            fail_msg("case %zu: encoding %s, want %s", i, c.wechat.encoding,
                     ok[i].want);
        }
        config_release(&c);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "%s%s", head, bad[i].lines);
        write_temp(path, sizeof(path), text);
        expect_file_error(path, bad[i].line, bad[i].needle);
        unlink(path);
    }
    /* a config built by hand (config_init, no config_load) */
    config_init(&c);
    assert_int_equal(config_encoding(&c), CONFIG_ENC_PLAINTEXT);
    free(c.wechat.encoding_aes_key);
    c.wechat.encoding_aes_key = strdup(key + 19);
    assert_non_null(c.wechat.encoding_aes_key);
    c.wechat.encoding_aes_key[43] = '\0';
    assert_int_equal(config_encoding(&c), CONFIG_ENC_SAFE);
    config_release(&c);
}

/* The Token: WeChat's 3..32 letters or digits are refused outside that
 * (see the token_* fixtures); under 16 it loads, with advice to change
 * it, as does the compatible encoding. */
static void test_config_advises_a_longer_token_and_safe_mode(void **state)
{
    static const char head[] = "[wechat]\napp_id = wx0123456789abcdef\n";
    static const struct {
        const char *lines, *first, *second;
    } cases[] = {
        { "token = abc\n", "wechat.token is shorter than 16", NULL },
        { "token = abcdefghijklmno\n", "wechat.token is shorter than 16",
          NULL },
        { "token = abcdefghijklmnop\n", NULL, NULL },
        { "token = abcdefghijklmnopqrstuvwxyz012345\n", NULL, NULL },
        { "token = abc\nencoding = compatible\nencoding_aes_key = "
          "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\n",
          "wechat.token", "wechat.encoding = compatible" },
    };
    char path[64], text[512];
    struct config c;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *a0, *a1, *a2;

        snprintf(text, sizeof(text), "%s%s", head, cases[i].lines);
        write_temp(path, sizeof(path), text);
        load_ok(&c, path);
        unlink(path);
        a0 = config_advice(&c, 0);
        a1 = config_advice(&c, 1);
        a2 = config_advice(&c, 2);
        config_release(&c);
        if ((cases[i].first == NULL) != (a0 == NULL) ||
            (a0 && !strstr(a0, cases[i].first)) ||
            (cases[i].second == NULL) != (a1 == NULL) ||
            (a1 && !strstr(a1, cases[i].second)) || a2 != NULL)
            fail_msg("case %zu: advice \"%s\" / \"%s\"", i,
                     a0 ? a0 : "(none)", a1 ? a1 : "(none)");
    }
    /* 33 characters: WeChat's own rule in the message */
    expect_file_error(CONF("value_too_long.conf"), 3, "3..32 letters");
}

/* [redis] sentinels + master_name + wait_replicas: a list lib/store can
 * use, a master name, and a WAIT that ends before the I/O timeout. */
static void test_config_checks_the_sentinel_settings(void **state)
{
    static const char head[] = "[wechat]\napp_id = wx0123456789abcdef\n"
                               "token = abc\n[redis]\n";
    static const struct {
        const char *redis, *needle;
        int line;
    } bad[] = {
        { "sentinels = s1:26379,s2\nmaster_name = m\n", "redis.sentinels",
          5 },
        { "sentinels = s1:26379\n", "redis.master_name", 5 },
        { "sentinels = s1:1\nmaster_name = a b\n", "redis.master_name", 6 },
        { "wait_replicas = 1\nwait_timeout_ms = 1000\n",
          "redis.wait_timeout_ms below", 5 },
        { "wait_replicas = 17\n", "redis.wait_replicas", 5 },
    };
    char path[64], text[512];
    struct config c;
    size_t i;

    (void)state;
    snprintf(text, sizeof(text), "%ssentinels = 10.0.0.1:26379, "
             "10.0.0.2:26379,[::1]:26380\nmaster_name = wxkf-main\n"
             "wait_replicas = 1\nwait_timeout_ms = 250\n", head);
    write_temp(path, sizeof(path), text);
    load_ok(&c, path);
    assert_string_equal(c.redis.master_name, "wxkf-main");
    assert_int_equal(c.redis.wait_replicas, 1);
    assert_int_equal(c.redis.wait_timeout_ms, 250);
    config_release(&c);
    unlink(path);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "%s%s", head, bad[i].redis);
        write_temp(path, sizeof(path), text);
        expect_file_error(path, bad[i].line, bad[i].needle);
        unlink(path);
    }
}

/* [presence] wechat_poll: 20..60 s (2,880 getonlinekflist calls a day at
 * the default 30), and in mode = wechat_kf below heartbeat_ttl, since
 * each poll refreshes the heartbeats of the agents WeChat lists. */
static void test_config_bounds_the_wechat_presence_poll(void **state)
{
    static const char head[] = "[wechat]\napp_id = wx0123456789abcdef\n"
                               "token = abc\nmode = wechat_kf\n"
                               "[presence]\n";
    static const struct {
        const char *lines, *needle;
        int line;
    } bad[] = {
        { "wechat_poll = 19\n", "presence.wechat_poll", 6 },
        { "wechat_poll = 61\n", "presence.wechat_poll", 6 },
        { "heartbeat_ttl = 30\nwechat_poll = 30\n",
          "presence.wechat_poll must be below presence.heartbeat_ttl", 7 },
    };
    char path[64], text[512];
    struct config c;
    size_t i;

    (void)state;
    config_init(&c);
    assert_int_equal(c.presence.wechat_poll, 30);
    config_release(&c);
    snprintf(text, sizeof(text), "%sheartbeat_ttl = 61\nwechat_poll = 60\n",
             head);
    write_temp(path, sizeof(path), text);
    load_ok(&c, path);
    assert_int_equal(c.presence.wechat_poll, 60);
    config_release(&c);
    unlink(path);
    /* in workspace mode the poll is not made: no tie to heartbeat_ttl */
    snprintf(text, sizeof(text), "[wechat]\napp_id = wx0123456789abcdef\n"
             "token = abc\n[presence]\nheartbeat_ttl = 10\n");
    write_temp(path, sizeof(path), text);
    load_ok(&c, path);
    config_release(&c);
    unlink(path);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "%s%s", head, bad[i].lines);
        write_temp(path, sizeof(path), text);
        expect_file_error(path, bad[i].line, bad[i].needle);
        unlink(path);
    }
}

static void test_config_rejects_bad_app_id_with_file_and_line(void **state)
{
    (void)state;
    expect_file_error(CONF("bad_app_id.conf"), 3, "wechat.app_id");
}

static void test_config_rejects_too_short_token_with_file_and_line(
    void **state)
{
    (void)state;
    expect_file_error(CONF("token_too_short.conf"), 4, "wechat.token");
}

static void test_config_rejects_non_alnum_token_with_file_and_line(
    void **state)
{
    (void)state;
    expect_file_error(CONF("token_not_alnum.conf"), 3, "wechat.token");
}

static void test_config_rejects_aes_key_of_wrong_length_with_file_and_line(
    void **state)
{
    (void)state;
    expect_file_error(CONF("aes_key_wrong_length.conf"), 5,
                      "wechat.encoding_aes_key");
}

static void test_config_rejects_prev_key_without_current_with_file_and_line(
    void **state)
{
    (void)state;
    /* Cross-field: the line of either key will do. */
    expect_file_error(CONF("prev_key_without_current.conf"), 0,
                      "wechat.encoding_aes_key_prev");
}

static void test_config_rejects_bad_original_id_with_file_and_line(
    void **state)
{
    (void)state;
    expect_file_error(CONF("bad_original_id.conf"), 4, "wechat.original_id");
}

static void test_config_rejects_bad_admin_token_sha256_with_file_and_line(
    void **state)
{
    (void)state;
    expect_file_error(CONF("bad_admin_token.conf"), 5,
                      "api.admin_token_sha256");
}

/* --- accepted syntax --------------------------------------------------- */

static void test_config_accepts_comments_blank_lines_and_crlf(void **state)
{
    struct config c;

    (void)state;
    load_ok(&c, CONF("comments_crlf.conf"));
    assert_string_equal(c.wechat.app_id, "wx0123456789abcdef");
    assert_string_equal(c.wechat.token, "CrlfToken");
    assert_string_equal(c.wechat.mode, "wechat_kf");
    assert_int_equal(c.http.max_body, 2048);
    assert_string_equal(c.texts.welcome, "hello world");
    config_release(&c);
}

static void test_config_later_duplicate_key_wins(void **state)
{
    struct config c;

    (void)state;
    load_ok(&c, CONF("duplicate_key.conf"));
    assert_string_equal(c.wechat.token, "second");
    assert_int_equal(c.http.max_body, 2048);
    config_release(&c);
}

/* --- dump and release -------------------------------------------------- */

#define SECRET_APP "S3cretAppSecretValue"
#define SECRET_AES "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
#define SECRET_PREV "GFEDCBA9876543210zyxwvutsrqponmlkjihgfedcba"

static void test_config_dump_hides_secrets(void **state)
{
    struct config c;
    struct kf_buf out;
    int rc;

    (void)state;
    env_set("WXKF_WECHAT_APP_SECRET", SECRET_APP);
    env_set("WXKF_WECHAT_ENCODING_AES_KEY", SECRET_AES);
    env_set("WXKF_WECHAT_ENCODING_AES_KEY_PREV", SECRET_PREV);
    load_ok(&c, SAMPLE);
    kf_buf_init(&out, 1 << 16);
    rc = config_dump(&c, &out);
    config_release(&c);
    assert_int_equal(rc, 0);
    assert_non_null(out.p);
    assert_non_null(strstr(out.p, "wechat.app_secret = (set)\n"));
    assert_non_null(strstr(out.p, "wechat.token = (set)\n"));
    assert_non_null(strstr(out.p, "wechat.encoding_aes_key = (set)\n"));
    assert_non_null(strstr(out.p, "wechat.encoding_aes_key_prev = (set)\n"));
    assert_null(strstr(out.p, "ChangeMe0123456789abcdef"));
    assert_null(strstr(out.p, SECRET_APP));
    assert_null(strstr(out.p, "S3cret"));
    assert_null(strstr(out.p, SECRET_AES));
    assert_null(strstr(out.p, "abcdefghij"));
    assert_null(strstr(out.p, SECRET_PREV));
    assert_null(strstr(out.p, "GFEDCBA"));
    kf_buf_release(&out);
}

static void test_config_dump_shows_non_secret_values(void **state)
{
    struct config c;
    struct kf_buf out;
    int rc;

    (void)state;
    env_set("WXKF_PRESENCE_HEARTBEAT_TTL", "45");
    load_ok(&c, SAMPLE);
    kf_buf_init(&out, 1 << 16);
    rc = config_dump(&c, &out);
    config_release(&c);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out.p, "wechat.app_id = wx0123456789abcdef\n"));
    assert_non_null(strstr(out.p, "wechat.mode = workspace\n"));
    assert_non_null(strstr(out.p, "wechat.timestamp_window = 300\n"));
    assert_non_null(strstr(out.p, "http.max_body = 65536\n"));
    assert_non_null(strstr(out.p, "routing.policy = round_robin\n"));
    assert_non_null(strstr(out.p, "presence.heartbeat_ttl = 45\n"));
    assert_non_null(strstr(out.p, "postgres.dsn = host=127.0.0.1 port=5432 "
                                  "dbname=wxkf user=wxkf\n"));
    /* An unset secret is shown as empty, not as "(set)". */
    assert_non_null(strstr(out.p, "wechat.app_secret = \n"));
    assert_int_equal(out.p[out.len - 1], '\n');
    kf_buf_release(&out);
}

static void test_config_dump_reports_a_full_buffer(void **state)
{
    struct config c;
    struct kf_buf out;
    int rc;

    (void)state;
    load_ok(&c, SAMPLE);
    kf_buf_init(&out, 40);
    rc = config_dump(&c, &out);
    config_release(&c);
    assert_int_equal(rc, KF_ETOOBIG);
    assert_true(out.len <= 40);
    kf_buf_release(&out);
}

static void test_config_release_twice_is_safe(void **state)
{
    struct config c;

    (void)state;
    load_ok(&c, SAMPLE);
    config_release(&c);
    assert_null(c.wechat.app_id);
    assert_null(c.wechat.token);
    assert_null(c.texts.no_agent);
    config_release(&c);
    assert_null(c.routing.policy);
}

#define ENV_TEST(f) cmocka_unit_test_teardown(f, env_restore)

int main(void)
{
    const struct CMUnitTest tests[] = {
        ENV_TEST(test_config_init_fills_documented_defaults),
        ENV_TEST(test_config_defaults_survive_load_without_file),
        ENV_TEST(test_config_without_app_id_is_rejected),
        ENV_TEST(test_config_refuses_a_65th_group_rule),
        ENV_TEST(test_config_takes_unicode_group_names_in_rules),
        ENV_TEST(test_config_checks_the_sentinel_settings),
        ENV_TEST(test_config_bounds_the_wechat_presence_poll),
        ENV_TEST(test_config_encoding_follows_the_key_and_needs_one),
        ENV_TEST(test_config_advises_a_longer_token_and_safe_mode),
        ENV_TEST(test_config_sample_file_loads),
        ENV_TEST(test_config_missing_file_error_names_the_path),
        ENV_TEST(test_config_missing_token_error_names_the_file),
        ENV_TEST(test_config_env_overrides_beat_the_file),
        ENV_TEST(test_config_env_integer_bounds_are_inclusive),
        ENV_TEST(test_config_invalid_env_integer_names_the_variable),
        ENV_TEST(test_config_invalid_env_enum_names_the_variable),
        ENV_TEST(test_config_invalid_env_app_id_names_the_variable),
        ENV_TEST(test_config_empty_env_token_names_the_variable),
        ENV_TEST(test_config_rejects_original_id_with_nothing_after_gh),
        ENV_TEST(test_config_reports_working_hours),
        ENV_TEST(test_config_rejects_unknown_key_with_file_and_line),
        ENV_TEST(test_config_rejects_unknown_section_with_file_and_line),
        ENV_TEST(test_config_rejects_bad_section_header_with_file_and_line),
        ENV_TEST(test_config_rejects_key_outside_section_with_file_and_line),
        ENV_TEST(test_config_rejects_missing_equals_with_file_and_line),
        ENV_TEST(test_config_rejects_out_of_range_integer_with_file_and_line),
        ENV_TEST(test_config_rejects_non_integer_with_file_and_line),
        ENV_TEST(test_config_rejects_bad_enum_with_file_and_line),
        ENV_TEST(test_config_rejects_over_long_value_with_file_and_line),
        ENV_TEST(test_config_rejects_over_long_line_with_file_and_line),
        ENV_TEST(test_config_rejects_bad_app_id_with_file_and_line),
        ENV_TEST(test_config_rejects_too_short_token_with_file_and_line),
        ENV_TEST(test_config_rejects_non_alnum_token_with_file_and_line),
        ENV_TEST(
            test_config_rejects_aes_key_of_wrong_length_with_file_and_line),
        ENV_TEST(
            test_config_rejects_prev_key_without_current_with_file_and_line),
        ENV_TEST(test_config_rejects_bad_original_id_with_file_and_line),
        ENV_TEST(
            test_config_rejects_bad_admin_token_sha256_with_file_and_line),
        ENV_TEST(test_config_accepts_comments_blank_lines_and_crlf),
        ENV_TEST(test_config_later_duplicate_key_wins),
        ENV_TEST(test_config_dump_hides_secrets),
        ENV_TEST(test_config_dump_shows_non_secret_values),
        ENV_TEST(test_config_dump_reports_a_full_buffer),
        ENV_TEST(test_config_release_twice_is_safe),
    };

    return cmocka_run_group_tests(tests, clear_wxkf_env, NULL);
}
