/* config: table-driven INI + environment configuration. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "store.h"
#include "wx_reply.h"

#include "banned.h"

enum ctype { C_STR, C_LONG, C_ENUM };

struct centry {
    const char *section, *key;
    enum ctype type;
    size_t off;
    const char *def;
    long min, max;      /* C_LONG: value bounds; C_STR: length bounds */
    const char *choices; /* C_ENUM: "a|b|c" */
    int secret;
    /* Format of a non-empty value: NULL if fine, else what is wrong. */
    const char *(*check)(const char *v);
};

static int all_of(const char *s, const char *set)
{
    return s[strspn(s, set)] == '\0';
}

#define ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

static const char *check_app_id(const char *v)
{
    return strncmp(v, "wx", 2) || strlen(v) < 3 || !all_of(v, ALNUM)
               ? "must be the AppID (wx followed by letters/digits)" : NULL;
}

static const char *check_token(const char *v)
{
    return strlen(v) < 3 || strlen(v) > 32 || !all_of(v, ALNUM)
               ? "must be 3..32 letters or digits (WeChat's rule)" : NULL;
}

static const char *check_aes_key(const char *v)
{
    return strlen(v) != 43 || !all_of(v, ALNUM)
               ? "must be 43 letters or digits" : NULL;
}

static const char *check_encoding(const char *v)
{
    return strcmp(v, "plaintext") && strcmp(v, "compatible") &&
                   strcmp(v, "safe")
               ? "must be plaintext, compatible or safe" : NULL;
}

static const char *check_original_id(const char *v)
{
    return strncmp(v, "gh_", 3) || !v[3] || !all_of(v + 3, ALNUM "_")
               ? "must look like gh_xxxxxxxxxxxx" : NULL;
}

/* A name people read: UTF-8 without control characters. */
static const char *check_account_name(const char *v)
{
    const unsigned char *p = (const unsigned char *)v;
    size_t i = 0, k, n = strlen(v);
    uint32_t cp;

    while (i < n) {
        k = kf_utf8_next(p + i, n - i, &cp);
        if (k == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return "must be UTF-8 text without control characters";
        i += k;
    }
    return NULL;
}

/* "key:value,key:value". For menu_groups and keyword_groups the keys are
 * EventKeys or keywords (no ',' or ':') and the values group names
 * (agent_group_ok: [a-z0-9_-] or letters beyond ASCII, 1-32 characters);
 * for group_policies (policies = 1) the keys are group names and the
 * values policy names. */
#define GROUP_BAD "names a group that is not 1-32 of [a-z0-9_-] or letters " \
                  "beyond ASCII"
static const char *check_pairs(const char *v, int policies)
{
    const char *p = v;
    int n = 0;

    while (*p) {
        if (++n > CONFIG_RULES_MAX)
            return "has more than 64 key:value pairs";
        const char *colon = strchr(p, ':'), *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        size_t klen, vlen;

        if (!colon || colon > end)
            return "must be a list of key:value pairs separated by ','";
        klen = (size_t)(colon - p);
        vlen = (size_t)(end - colon - 1);
        if (klen == 0 || klen > 64)
            return "has an empty or over-long key";
        if (policies && !agent_group_ok(p, klen))
            return GROUP_BAD;
        if (policies) {
            if (!((vlen == 11 && !strncmp(colon + 1, "round_robin", 11)) ||
                  (vlen == 8 && !strncmp(colon + 1, "weighted", 8)) ||
                  (vlen == 10 && !strncmp(colon + 1, "least_busy", 10))))
                return "names a policy other than round_robin, weighted, "
                       "least_busy";
        } else if (!agent_group_ok(colon + 1, vlen)) {
            return GROUP_BAD;
        }
        p = comma ? comma + 1 : end;
    }
    return NULL;
}

static const char *check_group_pairs(const char *v)
{
    return check_pairs(v, 0);
}

static const char *check_policy_pairs(const char *v)
{
    return check_pairs(v, 1);
}

static const char *check_text(const char *v)
{
    return wx_reply_text_ok(kf_str_c(v)) < 0
               ? "must be UTF-8 text without control characters "
                 "(is the file saved as UTF-8?)" : NULL;
}

/* host:port[,host:port...]: what lib/store parses (store_set_sentinels). */
static const char *check_sentinels(const char *v)
{
    return *v && store_sentinels_ok(v) < 0
               ? "must be host:port[,host:port...] (at most 8 "
                 "entries)" : NULL;
}

static const char *check_master_name(const char *v)
{
    return !all_of(v, "abcdefghijklmnopqrstuvwxyz"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
               ? "may only contain letters, digits and ._-" : NULL;
}

/* ISO weekdays, 1 (Monday) .. 7, each at most once: "12345". */
static const char *check_weekdays(const char *v)
{
    size_t i;

    for (i = 0; v[i]; i++)
        if (v[i] < '1' || v[i] > '7' || strchr(v + i + 1, v[i]))
            return "must be ISO weekday digits 1 (Monday) to 7, each once "
                   "(12345 = Monday to Friday)";
    return NULL;
}

static const char *check_sha256(const char *v)
{
    return strlen(v) != 64 || !all_of(v, "0123456789abcdef")
               ? "must be 64 lowercase hex digits" : NULL;
}

#define S(sec, k, def, lo, hi) \
    { #sec, #k, C_STR, offsetof(struct config, sec.k), def, lo, hi, NULL, 0, \
      NULL }
#define CHECKED(sec, k, secret, hi, fn) \
    { #sec, #k, C_STR, offsetof(struct config, sec.k), "", 0, hi, NULL, \
      secret, fn }
#define L(sec, k, def, lo, hi) \
    { #sec, #k, C_LONG, offsetof(struct config, sec.k), #def, lo, hi, NULL, \
      0, NULL }
#define E(sec, k, def, choices) \
    { #sec, #k, C_ENUM, offsetof(struct config, sec.k), def, 0, 0, choices, \
      0, NULL }

static const struct centry table[] = {
    CHECKED(wechat, app_id, 0, 32, check_app_id),
    CHECKED(wechat, app_secret, 1, 128, NULL),
    CHECKED(wechat, token, 1, 32, check_token),
    CHECKED(wechat, encoding_aes_key, 1, 43, check_aes_key),
    CHECKED(wechat, encoding_aes_key_prev, 1, 43, check_aes_key),
    CHECKED(wechat, encoding, 0, 10, check_encoding),
    CHECKED(wechat, original_id, 0, 64, check_original_id),
    CHECKED(wechat, account_name, 0, 256, check_account_name),
    E(wechat, mode, "workspace", "workspace|wechat_kf"),
    S(wechat, api_base, "https://api.weixin.qq.com", 1, 256),
    E(wechat, token_endpoint, "stable_token", "stable_token|token"),
    S(wechat, ca_file, "", 0, 1024),
    L(wechat, api_timeout_ms, 5000, 100, 60000),
    L(wechat, api_connect_timeout_ms, 2000, 50, 30000),
    L(wechat, api_retries, 3, 0, 10),
    L(wechat, timestamp_window, 300, 0, 86400),
    L(wechat, dedupe_ttl, 600, 30, 86400),
    S(redis, url, "redis://127.0.0.1:6379/0", 1, 512),
    L(redis, connect_timeout_ms, 500, 10, 60000),
    L(redis, io_timeout_ms, 1000, 10, 60000),
    S(redis, journal_dir, "var/journal", 0, 1000),
    CHECKED(redis, sentinels, 0, 1024, check_sentinels),
    CHECKED(redis, master_name, 0, 64, check_master_name),
    L(redis, wait_replicas, 0, 0, 16),
    L(redis, wait_timeout_ms, 200, 1, 60000),
    S(postgres, dsn, "dbname=wxkf", 1, 1024),
    L(http, max_body, 65536, 1024, 1048576),
    E(log, level, "info", "error|warn|info|debug"),
    S(log, file, "", 0, 1024),
    L(log, slow_ms, 500, 0, 600000),
    E(routing, policy, "round_robin", "round_robin|weighted|least_busy"),
    L(routing, default_capacity, 5, 1, AGENT_CAPACITY_MAX),
    CHECKED(routing, group_policies, 0, 2048, check_policy_pairs),
    CHECKED(routing, menu_groups, 0, 4096, check_group_pairs),
    CHECKED(routing, keyword_groups, 0, 4096, check_group_pairs),
    L(routing, queue_timeout, 600, 0, 604800),
    L(routing, first_reply_timeout, 0, 0, 86400),
    L(routing, queue_max, 10000, 1, 1000000),
    L(routing, returning, 0, 0, 365),
    E(routing, queue_order, "arrival", "arrival|window"),
    L(session, idle_timeout, 1800, 5, 604800),
    L(presence, heartbeat_ttl, 90, 10, 3600),
    L(presence, wechat_poll, 30, 20, 60),
    L(ratelimit, wechat_api_per_min, 600, 1, 1000000),
    L(ratelimit, send_per_day, 500000, 1, 100000000),
    L(ratelimit, token_per_day, 2000, 1, 100000),
    { "texts", "welcome", C_STR, offsetof(struct config, texts.welcome), "",
      0, 2000, NULL, 0, check_text },
    { "texts", "no_agent", C_STR, offsetof(struct config, texts.no_agent),
      "当前无客服在线，您的留言我们已收到，客服上线后会尽快回复您。", 0, 2000, NULL, 0, check_text },
    { "texts", "queued", C_STR, offsetof(struct config, texts.queued),
      "您前面还有 {n} 位用户在等待，请稍候。", 0, 2000, NULL, 0, check_text },
    { "texts", "queue_full", C_STR, offsetof(struct config, texts.queue_full),
      "当前排队人数已满，请稍后再发消息联系我们。", 0, 2000, NULL, 0,
      check_text },
    { "texts", "leave_message", C_STR,
      offsetof(struct config, texts.leave_message),
      "客服暂时无法接入，请留言，我们会尽快回复您。", 0, 2000, NULL, 0, check_text },
    { "texts", "greeting", C_STR, offsetof(struct config, texts.greeting),
      "", 0, 600, NULL, 0, check_text },
    { "texts", "fallback", C_STR, offsetof(struct config, texts.fallback),
      "消息已收到，客服会尽快回复您。", 0, 2000, NULL, 0, check_text },
    CHECKED(api, admin_token_sha256, 0, 64, check_sha256),
    L(api, auth_failures_per_min, 20, 1, 100000),
    L(api, stats_utc_offset, 480, -720, 840),
    L(api, session_idle, 1800, 60, 86400),
    L(api, session_max, 43200, 300, 604800),
    L(api, cookie_secure, 1, 0, 1),
    S(push, url, "", 0, 512),
    S(push, socket, "", 0, 1024),
    S(media, dir, "var/media", 1, 1024),
    L(media, max_bytes, 10485760, 1024, 104857600),
    L(media, fetch, 1, 0, 1),
    L(media, retention_days, 0, 0, 36500),
    L(media, max_disk_mb, 10240, 0, 100000000),
    L(archiver, batch, 1000, 1, 10000),
    L(archiver, batch_ms, 200, 10, 10000),
    L(archiver, claim_idle_ms, 30000, 1000, 86400000),
    L(archiver, keep_ms, 3600000, 0, 604800000),
    L(archiver, enabled, 1, 0, 1),
    L(archiver, group_hold_ms, 3600000, 0, 604800000),
    L(reports, work_start, 9, 0, 23),
    L(reports, work_end, 18, 1, 24),
    { "reports", "work_days", C_STR, offsetof(struct config,
      reports.work_days), "12345", 0, 7, NULL, 0, check_weekdays },
    L(reports, refresh_minutes, 10, 1, 1440),
    L(reports, enabled, 1, 0, 1),
    L(audit, keep_days, 365, 0, 36500),
};
#define NTABLE (sizeof(table) / sizeof(table[0]))

static char **str_at(struct config *c, const struct centry *e)
{
    return (char **)(void *)((char *)c + e->off);
}

static long *long_at(struct config *c, const struct centry *e)
{
    return (long *)(void *)((char *)c + e->off);
}

static const char *const *cstr_at(const struct config *c,
                                  const struct centry *e)
{
    return (const char *const *)(const void *)((const char *)c + e->off);
}

static const long *clong_at(const struct config *c, const struct centry *e)
{
    return (const long *)(const void *)((const char *)c + e->off);
}

static int choice_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    const char *p = choices;

    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);

        if (len == n && memcmp(p, v, n) == 0)
            return 1;
        p += len + (bar != NULL);
    }
    return 0;
}

/* Sets one entry from text; on error writes the reason to why. */
static int set_value(struct config *c, const struct centry *e, const char *v,
                     char *why, size_t whylen)
{
    if (e->type == C_LONG) {
        char *end;
        long n;

        errno = 0;
        n = strtol(v, &end, 10);
        if (errno || end == v || *end || n < e->min || n > e->max) {
            snprintf(why, whylen, "%s.%s must be an integer in %ld..%ld",
                     e->section, e->key, e->min, e->max);
            return KF_ECONFIG;
        }
        *long_at(c, e) = n;
        return 0;
    }
    if (e->type == C_ENUM && !choice_ok(e->choices, v)) {
        snprintf(why, whylen, "%s.%s must be one of %s", e->section, e->key,
                 e->choices);
        return KF_ECONFIG;
    }
    if (e->type == C_STR && e->check && *v && e->check(v)) {
        snprintf(why, whylen, "%s.%s %s", e->section, e->key, e->check(v));
        return KF_ECONFIG;
    }
    if (e->type == C_STR &&
        (strlen(v) < (size_t)e->min || strlen(v) > (size_t)e->max)) {
        snprintf(why, whylen, "%s.%s must be %ld..%ld bytes long", e->section,
                 e->key, e->min, e->max);
        return KF_ECONFIG;
    }
    {
        char *dup = strdup(v);

        if (!dup)
            return KF_ENOMEM;
        free(*str_at(c, e));
        *str_at(c, e) = dup;
    }
    return 0;
}

void config_init(struct config *c)
{
    size_t i;

    memset(c, 0, sizeof(*c));
    for (i = 0; i < NTABLE; i++) {
        char why[8];

        /* Defaults are in-bounds by construction; an allocation failure
         * leaves the field NULL, which config_load reports. */
        if (set_value(c, &table[i], table[i].def, why, sizeof(why)) < 0)
            continue;
    }
}

void config_release(struct config *c)
{
    size_t i;

    for (i = 0; i < NTABLE; i++)
        if (table[i].type != C_LONG) {
            free(*str_at(c, &table[i]));
            *str_at(c, &table[i]) = NULL;
        }
}

static const struct centry *find(const char *section, const char *key)
{
    size_t i;

    for (i = 0; i < NTABLE; i++)
        if (strcmp(table[i].section, section) == 0 &&
            strcmp(table[i].key, key) == 0)
            return &table[i];
    return NULL;
}

static char *trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
                       end[-1] == '\r' || end[-1] == '\n'))
        *--end = '\0';
    return s;
}

static int known_section(const char *s)
{
    size_t i;

    for (i = 0; i < NTABLE; i++)
        if (strcmp(table[i].section, s) == 0)
            return 1;
    return 0;
}

/* Parses one line; *section is updated on "[name]". */
static int parse_line(struct config *c, char *line, char *section,
                      size_t seclen, const struct centry **set, char *why,
                      size_t whylen)
{
    char *s = trim(line), *eq, *key, *val;
    const struct centry *e;

    if (*s == '\0' || *s == '#' || *s == ';')
        return 0;
    if (*s == '[') {
        char *close = strchr(s, ']');

        if (!close || close[1] != '\0' || (size_t)(close - s - 1) >= seclen) {
            snprintf(why, whylen, "bad section header");
            return KF_ECONFIG;
        }
        *close = '\0';
        snprintf(section, seclen, "%s", trim(s + 1));
        if (!known_section(section)) {
            snprintf(why, whylen, "unknown section [%s]", section);
            return KF_ECONFIG;
        }
        return 0;
    }
    eq = strchr(s, '=');
    if (!eq) {
        snprintf(why, whylen, "expected key = value");
        return KF_ECONFIG;
    }
    *eq = '\0';
    key = trim(s);
    val = trim(eq + 1);
    if (!*section) {
        snprintf(why, whylen, "key %s outside any [section]", key);
        return KF_ECONFIG;
    }
    e = find(section, key);
    if (!e) {
        snprintf(why, whylen, "unknown key %s in [%s]", key, section);
        return KF_ECONFIG;
    }
    *set = e;
    return set_value(c, e, val, why, whylen);
}

/* Where each entry was last set (a file line, or the environment), so an
 * error found after loading can still point at its source. */
struct origin {
    const char *file;
    int line[sizeof(table) / sizeof(table[0])];   /* -1: environment */
};

static int load_file(struct config *c, const char *path, struct origin *o,
                     struct config_err *err)
{
    FILE *f = fopen(path, "r");
    char line[4096], section[64] = "", why[256];
    int lineno = 0, rc = 0;

    if (!f) {
        snprintf(err->msg, sizeof(err->msg), "%s: %s", path, strerror(errno));
        return KF_ECONFIG;
    }
    while (fgets(line, sizeof(line), f)) {
        const struct centry *e = NULL;

        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err->msg, sizeof(err->msg), "%s:%d: line too long",
                     path, lineno);
            rc = KF_ECONFIG;
            break;
        }
        rc = parse_line(c, line, section, sizeof(section), &e, why,
                        sizeof(why));
        if (rc < 0) {
            snprintf(err->msg, sizeof(err->msg), "%s:%d: %s", path, lineno,
                     why);
            break;
        }
        if (e)
            o->line[e - table] = lineno;
    }
    fclose(f);
    return rc;
}

static void env_name(const struct centry *e, char *name, size_t n)
{
    char *p;

    snprintf(name, n, "WXKF_%s_%s", e->section, e->key);
    for (p = name; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

static int load_env(struct config *c, struct origin *o,
                    struct config_err *err)
{
    size_t i;

    for (i = 0; i < NTABLE; i++) {
        char name[96], why[256];
        const char *v;
        int rc;

        env_name(&table[i], name, sizeof(name));
        v = getenv(name);
        if (!v)
            continue;
        rc = set_value(c, &table[i], v, why, sizeof(why));
        if (rc < 0) {
            snprintf(err->msg, sizeof(err->msg), "%s: %s", name, why);
            return rc;
        }
        o->line[i] = -1;
    }
    return 0;
}

/* Checks that need several keys, or keys that are required. */
static int validate(const struct config *c, const struct origin *o,
                    struct config_err *err)
{
    const struct centry *e = NULL;
    const char *why = NULL;
    char at[300];
    size_t i;

    for (i = 0; i < NTABLE; i++)
        if (table[i].type != C_LONG && !*cstr_at(c, &table[i]))
            return KF_ENOMEM;
    if (!*c->wechat.app_id)
        e = find("wechat", "app_id"),
        why = "is required (the Official Account's AppID)";
    else if (!*c->wechat.token)
        e = find("wechat", "token"),
        why = "is required (the Token set on the platform)";
    else if (*c->wechat.encoding_aes_key_prev && !*c->wechat.encoding_aes_key)
        e = find("wechat", "encoding_aes_key_prev"),
        why = "needs wechat.encoding_aes_key";
    else if (config_encoding(c) != CONFIG_ENC_PLAINTEXT &&
             !*c->wechat.encoding_aes_key)
        e = find("wechat", "encoding"),
        why = "compatible or safe needs wechat.encoding_aes_key";
    else if (*c->redis.sentinels && !*c->redis.master_name)
        e = find("redis", "sentinels"),
        why = "needs redis.master_name (the name the Sentinels monitor)";
    else if (c->redis.wait_replicas > 0 &&
             c->redis.wait_timeout_ms >= c->redis.io_timeout_ms)
        e = find("redis", "wait_replicas"),
        why = "needs redis.wait_timeout_ms below redis.io_timeout_ms "
              "(WAIT blocks that long)";
    else if (strcmp(c->wechat.mode, "wechat_kf") == 0 &&
             c->presence.wechat_poll >= c->presence.heartbeat_ttl)
        e = find("presence", "wechat_poll"),
        why = "must be below presence.heartbeat_ttl in mode = wechat_kf "
              "(each poll refreshes the agents' heartbeats)";
    else if (c->reports.work_start >= c->reports.work_end)
        e = find("reports", "work_start"),
        why = "must be below reports.work_end";
    if (!why)
        return 0;
    if (o->line[e - table] > 0) {
        snprintf(at, sizeof(at), "%s:%d", o->file, o->line[e - table]);
    } else if (o->line[e - table] < 0) {
        env_name(e, at, sizeof(at));
    } else {
        snprintf(at, sizeof(at), "%s", o->file ? o->file : "config");
    }
    snprintf(err->msg, sizeof(err->msg), "%s: %s.%s %s", at, e->section,
             e->key, why);
    return KF_ECONFIG;
}

int config_load(struct config *c, const char *path, struct config_err *err)
{
    struct origin origin;
    int rc = 0;

    memset(&origin, 0, sizeof(origin));
    origin.file = path;
    err->msg[0] = '\0';
    if (path)
        rc = load_file(c, path, &origin, err);
    if (rc == 0)
        rc = load_env(c, &origin, err);
    if (rc == 0)
        rc = validate(c, &origin, err);
    if (rc == 0 && !*c->wechat.encoding) {
        static const char *const names[] = { "plaintext", "compatible",
                                             "safe" };
        char why[8];

        rc = set_value(c, find("wechat", "encoding"),
                       names[config_encoding(c)], why, sizeof(why));
    }
    if (rc == KF_ENOMEM && !err->msg[0])
        snprintf(err->msg, sizeof(err->msg), "out of memory");
    return rc;
}

enum config_encoding config_encoding(const struct config *c)
{
    const char *v = c->wechat.encoding ? c->wechat.encoding : "";

    if (strcmp(v, "plaintext") == 0)
        return CONFIG_ENC_PLAINTEXT;
    if (strcmp(v, "compatible") == 0)
        return CONFIG_ENC_COMPATIBLE;
    if (strcmp(v, "safe") == 0)
        return CONFIG_ENC_SAFE;
    return c->wechat.encoding_aes_key && *c->wechat.encoding_aes_key
               ? CONFIG_ENC_SAFE : CONFIG_ENC_PLAINTEXT;
}

const char *config_advice(const struct config *c, int i)
{
    const char *v[2];
    int n = 0;

    if (c->wechat.token && strlen(c->wechat.token) < CONFIG_TOKEN_ADVISED)
        v[n++] = "wechat.token is shorter than 16 characters: one logged "
                 "signature is enough to find it offline; set 16..32 "
                 "random letters and digits (here and on the platform)";
    if (config_encoding(c) == CONFIG_ENC_COMPATIBLE)
        v[n++] = "wechat.encoding = compatible takes plaintext callbacks "
                 "too: use safe once the account sends encrypted ones";
    return i >= 0 && i < n ? v[i] : NULL;
}

int config_dump(const struct config *c, struct kf_buf *out)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < NTABLE && rc == 0; i++) {
        const struct centry *e = &table[i];

        if (e->type == C_LONG)
            rc = kf_buf_printf(out, "%s.%s = %ld\n", e->section, e->key,
                               *clong_at(c, e));
        else if ((e->off == offsetof(struct config, redis.url) &&
                  strchr(*cstr_at(c, e), '@')) ||
                 (e->off == offsetof(struct config, postgres.dsn) &&
                  strstr(*cstr_at(c, e), "password")))
            rc = kf_buf_printf(out, "%s.%s = (set, holds a password)\n",
                               e->section, e->key);
        else if (e->secret)
            rc = kf_buf_printf(out, "%s.%s = %s\n", e->section, e->key,
                               **cstr_at(c, e) ? "(set)" : "");
        else
            rc = kf_buf_printf(out, "%s.%s = %s\n", e->section, e->key,
                               *cstr_at(c, e));
    }
    return rc;
}
