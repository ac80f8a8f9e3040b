/* agent_wx: keeps WeChat's customer-service accounts in step with our
 * agents (kfaccount add/update/del/inviteworker and getkflist, see
 * docs/wechat-protocol.md 7.1 and docs/routing.md "Mirroring agents to
 * WeChat"). Our agents stay the source of truth: these verbs run after
 * the local change succeeded, only when [wechat] app_secret is set, only
 * for accounts in WeChat's kf_account form (prefix@wechat_id), and never
 * delete an account at WeChat that is not one of ours. The decisions are
 * pure functions (agent_wx_plan, _nickname, _next, _explain,
 * _sync_action); the verbs are thin calls through lib/wx_api. Nothing
 * here prints: each verb fills a struct agent_wx_result with the line
 * the edge shows. */
#ifndef AGENT_WX_H
#define AGENT_WX_H

#include <stddef.h>

#include <jansson.h>

#include "agent.h"
#include "config.h"
#include "kf.h"

struct wx_api;

#define AGENT_WX_NICK_CHARS 16   /* WeChat's nickname limit, characters */
#define AGENT_WX_NICK_SIZE (AGENT_WX_NICK_CHARS * 4 + 1)
#define AGENT_WX_LIST_MAX 1000   /* getkflist entries read (WeChat: 100) */

/* Whether an agent is mirrored (agent_wx_plan). */
enum {
    AGENT_WX_MIRROR = 0,
    AGENT_WX_NOT_CONFIGURED = 1, /* [wechat] app_secret is empty */
    AGENT_WX_LOCAL_ONLY = 2,     /* the account has no '@' */
};

/* The kfaccount calls. */
enum agent_wx_op {
    AGENT_WX_ADD,
    AGENT_WX_UPDATE,
    AGENT_WX_DEL,
    AGENT_WX_INVITE,
};

/* What follows WeChat's answer to one call (agent_wx_next). */
enum {
    AGENT_WX_DONE = 0,           /* WeChat is in step */
    AGENT_WX_THEN_UPDATE = 1,    /* add: 65406 exists -> set the nickname */
    AGENT_WX_THEN_ADD = 2,       /* update: 65401 unknown -> add it */
    AGENT_WX_FAILED = 3,
};

/* The outcome of one verb, for the edge to show. */
struct agent_wx_result {
    int skipped;                 /* AGENT_WX_NOT_CONFIGURED or _LOCAL_ONLY:
                                    WeChat was not called; 0: it was */
    int nick_truncated;          /* WeChat got the nickname cut short */
    char nickname[AGENT_WX_NICK_SIZE]; /* the nickname WeChat got, or "" */
    long errcode;                /* WeChat's errcode of a refusal, else 0 */
    char msg[320];               /* one line, no prefix: why it was skipped
                                    ("WeChat not updated: ..."), or the
                                    failure ("WeChat refused: 65403 illegal
                                    nickname"); "" on success */
};

void agent_wx_result_init(struct agent_wx_result *r);   /* never fails */

/* cfg and api are borrowed and must outlive the struct; api may be NULL
 * when agent_wx_configured(cfg) is 0 (it is then never used). */
struct agent_wx {
    const struct config *cfg;
    struct wx_api *api;
};

void agent_wx_init(struct agent_wx *w, const struct config *cfg,
                   struct wx_api *api);                  /* never fails */

/* --- decisions (pure) --------------------------------------------------- */

/* 1 when "real credentials" are configured: [wechat] app_secret is not
 * empty (the sandbox simulator counts), else 0. */
int agent_wx_configured(const struct config *cfg);

/* AGENT_WX_MIRROR, or why not (AGENT_WX_NOT_CONFIGURED comes first), with
 * the reason in r->msg and r->skipped. r may be NULL. */
int agent_wx_plan(const struct config *cfg, const char *account,
                  struct agent_wx_result *r);

/* The nickname WeChat gets: nick cut after AGENT_WX_NICK_CHARS UTF-8
 * characters (never inside one); *truncated says whether it was cut.
 * KF_EINVAL (out = "") if nick is not valid UTF-8. */
KF_WUR int agent_wx_nickname(const char *nick,
                             char out[AGENT_WX_NICK_SIZE], int *truncated);

/* What follows a call of op that returned rc (a wx_api code) with
 * WeChat's errcode: add + 65406 -> AGENT_WX_THEN_UPDATE, update + 65401
 * -> AGENT_WX_THEN_ADD, del + 65401 (already gone) -> AGENT_WX_DONE; any
 * other failure -> AGENT_WX_FAILED. */
int agent_wx_next(enum agent_wx_op op, int rc, long errcode);

/* The failure as one line into out: "WeChat refused: <errcode> <text>"
 * (our text for known codes, else WeChat's errmsg, control characters
 * replaced) for KF_EWECHAT, "WeChat not reached: <why>" otherwise. */
void agent_wx_explain(int rc, long errcode, const char *errmsg, char *out,
                      size_t n);

/* A WeChat ID to invite: 1-64 of [A-Za-z0-9_.-] (WeChat checks the rest,
 * 65409). KF_EINVAL otherwise. */
KF_WUR int agent_wx_check_wechat_id(const char *wechat_id);

/* --- the verbs: called after the local change succeeded ----------------
 * Each returns 0 when WeChat is in step or nothing was to be done
 * (r->skipped says why, r->msg has the line to show), else the wx_api
 * code (KF_EWECHAT, KF_EBACKEND, KF_ELIMIT, ...) with r->msg from
 * agent_wx_explain. */

/* kfaccount/add {kf_account, nickname}; 65406 (exists) -> update. */
KF_WUR int agent_wx_add(struct agent_wx *w, const struct agent *a,
                        struct agent_wx_result *r);
/* kfaccount/update with a's nickname; 65401 (unknown) -> add. */
KF_WUR int agent_wx_update(struct agent_wx *w, const struct agent *a,
                           struct agent_wx_result *r);
/* kfaccount/del; 65401 (not there) is success. */
KF_WUR int agent_wx_remove(struct agent_wx *w, const char *account,
                           struct agent_wx_result *r);
/* kfaccount/inviteworker {kf_account, invite_wx}; KF_EINVAL (msg says
 * why) for a malformed wechat_id. */
KF_WUR int agent_wx_invite(struct agent_wx *w, const char *account,
                           const char *wechat_id, struct agent_wx_result *r);

/* --- wechat-sync -------------------------------------------------------- */

/* WeChat's accounts as getkflist lists them. Bytes outside printable
 * ASCII in the account and control characters in the nick are replaced
 * by '?' (they are shown to people); longer values are cut. */
struct agent_wx_kf {
    char account[64];
    char nick[256];
};

struct agent_wx_kflist {
    struct agent_wx_kf *v;
    size_t len;
};

void agent_wx_kflist_init(struct agent_wx_kflist *l);    /* never fails */
void agent_wx_kflist_release(struct agent_wx_kflist *l); /* safe twice */

/* Replaces l's contents with body's "kf_list" (borrowed): entries without
 * a string kf_account are skipped; KF_EPARSE if there is no kf_list
 * array, KF_ETOOBIG past AGENT_WX_LIST_MAX entries. */
KF_WUR int agent_wx_kflist_parse(const json_t *body,
                                 struct agent_wx_kflist *l);

/* The entry for account, or NULL. */
const struct agent_wx_kf *agent_wx_kflist_find(
    const struct agent_wx_kflist *l, const char *account);

/* What wechat-sync does for agent a, given WeChat's accounts. */
enum {
    AGENT_WX_SYNC_KEEP = 0,      /* there, with our nickname */
    AGENT_WX_SYNC_ADD = 1,       /* missing at WeChat */
    AGENT_WX_SYNC_UPDATE = 2,    /* there, with another nickname */
    AGENT_WX_SYNC_LOCAL = 3,     /* not a kf_account: never mirrored */
};
int agent_wx_sync_action(const struct agent *a,
                         const struct agent_wx_kflist *wechat);

struct agent_wx_sync_stats {
    size_t added, updated, unchanged, local_only, failed, truncated;
};

/* Reads getkflist, adds each kf_account agent of l that WeChat lacks,
 * updates nicknames that differ and never deletes. foreign (initialized
 * by the caller, replaced here) gets WeChat's accounts that are not in
 * l. A failing account does not stop the others: st->failed counts them
 * and r->msg holds the first ("a@x: WeChat refused: ..."), whose rc is
 * returned. Not configured: r->skipped, returns 0 and touches nothing. */
KF_WUR int agent_wx_sync(struct agent_wx *w, const struct agent_list *l,
                         struct agent_wx_sync_stats *st,
                         struct agent_wx_kflist *foreign,
                         struct agent_wx_result *r);

#endif
