/* config: the wxkf configuration — an INI file (`key = value`, [sections],
 * `#`/`;` comments) plus WXKF_<SECTION>_<KEY> environment overrides,
 * described by one table (name, type, offset, default, bounds) and
 * validated at load time with file:line errors. */
#ifndef CONFIG_H
#define CONFIG_H

#include "kf.h"

/* Rules in one [routing] list (menu_groups, keyword_groups,
 * group_policies): lib/route keeps them in arrays of this size. */
#define CONFIG_RULES_MAX 64

struct config {
    struct {
        char *app_id, *app_secret, *token, *encoding_aes_key,
            *encoding_aes_key_prev, *original_id, *mode, *api_base,
            *token_endpoint, *ca_file;
        char *account_name;     /* the Official Account's name, as users
                                   know it ({account} in canned replies) */
        char *encoding;         /* plaintext | compatible | safe; "" before
                                   config_load: see config_encoding() */
        long timestamp_window, dedupe_ttl, api_timeout_ms,
            api_connect_timeout_ms, api_retries;
    } wechat;
    struct {
        char *url;
        long connect_timeout_ms, io_timeout_ms;
        char *journal_dir;      /* callbacks kept while Redis is away */
        char *sentinels;        /* "host:port,..." ("" = url names Redis) */
        char *master_name;      /* the master the Sentinels monitor */
        long wait_replicas;     /* callback acknowledged after WAIT N */
        long wait_timeout_ms;
    } redis;
    struct {
        char *dsn;
    } postgres;
    struct {
        long max_body;
    } http;
    struct {
        char *level, *file;
        long slow_ms;           /* slow-request line above this; 0 = off */
    } log;
    struct {
        char *policy;
        long default_capacity;
        char *group_policies, *menu_groups, *keyword_groups;
        long queue_timeout, first_reply_timeout;
        long queue_max;         /* waiting users per group queue */
        long returning;         /* days a user goes back to its last
                                   agent (0 = off) */
        char *queue_order;      /* "arrival" or "window" */
    } routing;
    struct {
        long idle_timeout;
    } session;
    struct {
        long heartbeat_ttl;
        long wechat_poll;       /* s between getonlinekflist polls
                                   (mode = wechat_kf) */
    } presence;
    struct {
        long wechat_api_per_min, send_per_day, token_per_day;
    } ratelimit;
    struct {
        char *welcome, *no_agent, *queued, *queue_full, *leave_message,
            *fallback;
        char *greeting;         /* sent when a session reaches an agent
                                   ("" = none) */
    } texts;
    struct {
        char *admin_token_sha256;
        long auth_failures_per_min, stats_utc_offset;
        long session_idle, session_max;     /* s: staff sign-in sessions */
        long cookie_secure;                 /* 1: the cookie is Secure */
    } api;
    struct {
        char *url, *socket;     /* Nchan publisher; url "" = no push */
    } push;
    struct {
        char *dir;              /* relative: to the working directory */
        long max_bytes, fetch;
        long retention_days;    /* files older are deleted; 0 = kept */
        long max_disk_mb;       /* oldest deleted past it; 0 = no quota */
    } media;
    struct {
        long batch, batch_ms, claim_idle_ms, keep_ms, enabled;
        long group_hold_ms;     /* another group may hold trimming back */
    } archiver;
    struct {
        long work_start, work_end;  /* working hours, local: [start, end) */
        char *work_days;        /* ISO weekdays of work: "12345" */
        long refresh_minutes;   /* `wxkf jobs` rebuilds today/yesterday */
        long enabled;           /* 0: this `wxkf jobs` builds none */
    } reports;
    struct {
        long keep_days;         /* audit_log rows older are deleted by
                                   `wxkf jobs`; 0 = kept for ever */
    } audit;
};

struct config_err {
    char msg[512];
};

/* Fills every field with its default. Never fails; pair with release. */
void config_init(struct config *c);
/* Reads path (NULL = defaults only), then the environment, then validates.
 * On error err->msg says where ("FILE:LINE: ..." or "WXKF_X_Y: ..."). */
KF_WUR int config_load(struct config *c, const char *path,
                       struct config_err *err);
void config_release(struct config *c);            /* safe twice */

/* [wechat] encoding: which callbacks the account sends — WeChat's
 * 明文模式 (plaintext only), 兼容模式 (both) and 安全模式 (encrypted only).
 * An empty value (a config not through config_load) means safe when an
 * EncodingAESKey is set, else plaintext, as config_load resolves it. */
enum config_encoding {
    CONFIG_ENC_PLAINTEXT,
    CONFIG_ENC_COMPATIBLE,
    CONFIG_ENC_SAFE
};
enum config_encoding config_encoding(const struct config *c);

/* WeChat takes a Token of 3..32 letters/digits (config_load refuses
 * anything else); below this length one logged signature is enough to
 * find it offline. */
#define CONFIG_TOKEN_ADVISED 16
/* Advice on a configuration that loads but is weak: a static text saying
 * what to change, or NULL. i = 0, 1, ... until NULL. */
const char *config_advice(const struct config *c, int i);

/* Writes "section.key = value" lines of the effective configuration to
 * out, with secrets (app_secret, token, AES keys) shown as "(set)". */
KF_WUR int config_dump(const struct config *c, struct kf_buf *out);

#endif
