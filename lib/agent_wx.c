/* agent_wx: our agents mirrored to WeChat's customer-service accounts. */
#include "agent_wx.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wx_api.h"

#include "banned.h"

#define ERR_UNKNOWN 65401        /* invalid (unknown) kf account */
#define ERR_EXISTS 65406         /* kf account exists */
#define MAX_STEPS 3              /* add -> update -> add at most */

static void say(struct agent_wx_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void say(struct agent_wx_result *r, const char *fmt, ...)
{
    va_list ap;

    if (!r)
        return;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
}

void agent_wx_result_init(struct agent_wx_result *r)
{
    memset(r, 0, sizeof(*r));
}

void agent_wx_init(struct agent_wx *w, const struct config *cfg,
                   struct wx_api *api)
{
    w->cfg = cfg;
    w->api = api;
}

/* ------------------------------------------------------------- decisions */

int agent_wx_configured(const struct config *cfg)
{
    return cfg && cfg->wechat.app_secret && cfg->wechat.app_secret[0];
}

int agent_wx_plan(const struct config *cfg, const char *account,
                  struct agent_wx_result *r)
{
    int plan = AGENT_WX_MIRROR;

    if (!agent_wx_configured(cfg)) {
        plan = AGENT_WX_NOT_CONFIGURED;
        say(r, "WeChat not updated: no [wechat] app_secret configured "
            "(agents exist in wxkf only)");
    } else if (!account || !strchr(account, '@')) {
        plan = AGENT_WX_LOCAL_ONLY;
        say(r, "WeChat not updated: account %.48s is not a WeChat "
            "kf_account (prefix@wechat_id)", account ? account : "");
    }
    if (r)
        r->skipped = plan;
    return plan;
}

/* Bytes of the valid UTF-8 character at p (n bytes left), 0 if invalid:
 * overlong, surrogate, past U+10FFFF or truncated. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    uint32_t cp;

    return kf_utf8_next(p, n, &cp);
}

int agent_wx_nickname(const char *nick, char out[AGENT_WX_NICK_SIZE],
                      int *truncated)
{
    const unsigned char *p = (const unsigned char *)(nick ? nick : "");
    size_t n = strlen((const char *)p), i = 0, len, chars = 0, keep = 0;

    out[0] = '\0';
    *truncated = 0;
    while (i < n) {
        len = utf8_len(p + i, n - i);
        if (len == 0)
            return KF_EINVAL;
        i += len;
        if (++chars == AGENT_WX_NICK_CHARS)
            keep = i;
    }
    if (chars <= AGENT_WX_NICK_CHARS)
        keep = n;
    /* at most 16 characters of at most 4 bytes: it fits */
    memcpy(out, p, keep);
    out[keep] = '\0';
    *truncated = keep < n;
    return 0;
}

int agent_wx_next(enum agent_wx_op op, int rc, long errcode)
{
    if (rc == 0)
        return AGENT_WX_DONE;
    if (rc != KF_EWECHAT)
        return AGENT_WX_FAILED;
    if (op == AGENT_WX_ADD && errcode == ERR_EXISTS)
        return AGENT_WX_THEN_UPDATE;
    if (op == AGENT_WX_UPDATE && errcode == ERR_UNKNOWN)
        return AGENT_WX_THEN_ADD;
    if (op == AGENT_WX_DEL && errcode == ERR_UNKNOWN)
        return AGENT_WX_DONE;
    return AGENT_WX_FAILED;
}

/* s as one line of at most n - 1 bytes: control characters become ' '. */
static void one_line(const char *s, char *out, size_t n)
{
    size_t i;

    snprintf(out, n, "%s", s);
    kf_utf8_trim(out);
    for (i = 0; out[i]; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            out[i] = ' ';
}

void agent_wx_explain(int rc, long errcode, const char *errmsg, char *out,
                      size_t n)
{
    const char *known = rc == KF_EWECHAT ? wx_api_errcode_text(errcode)
                                         : NULL;
    char why[200];

    if (n == 0)
        return;
    one_line(errmsg && *errmsg ? errmsg : kf_strerror(rc), why,
             sizeof(why));
    if (rc == KF_EWECHAT)
        snprintf(out, n, "WeChat refused: %ld %s", errcode,
                 known ? known : why);
    else
        snprintf(out, n, "WeChat not reached: %s", why);
}

int agent_wx_check_wechat_id(const char *id)
{
    size_t i;

    if (!id || !id[0])
        return KF_EINVAL;
    for (i = 0; id[i]; i++)
        if (i >= 64 || !((id[i] >= 'A' && id[i] <= 'Z') ||
                         (id[i] >= 'a' && id[i] <= 'z') ||
                         (id[i] >= '0' && id[i] <= '9') || id[i] == '_' ||
                         id[i] == '.' || id[i] == '-'))
            return KF_EINVAL;
    return 0;
}

/* ----------------------------------------------------------------- verbs */

/* Records a failed call of WeChat in r. */
static int failed(struct agent_wx_result *r, int rc,
                  const struct wx_api_result *res)
{
    r->errcode = rc == KF_EWECHAT ? res->errcode : 0;
    agent_wx_explain(rc, res->errcode, res->errmsg, r->msg,
                     sizeof(r->msg));
    return rc;
}

/* Checks the plan and that the client exists: 1 = go on, else *rc is
 * what the verb returns. */
static int may_call(struct agent_wx *w, const char *account,
                    struct agent_wx_result *r, int *rc)
{
    *rc = 0;
    if (agent_wx_plan(w->cfg, account, r) != AGENT_WX_MIRROR)
        return 0;
    if (!w->api) {
        say(r, "WeChat not reached: no API client");
        *rc = KF_EINVAL;
        return 0;
    }
    return 1;
}

/* add or update (op), then what agent_wx_next says, MAX_STEPS at most;
 * r->nickname holds the nickname. */
static int put(struct agent_wx *w, const char *account, enum agent_wx_op op,
               struct agent_wx_result *r)
{
    struct wx_api_result res;
    int rc = 0, step, next = AGENT_WX_FAILED;

    wx_api_result_init(&res);
    for (step = 0; step < MAX_STEPS; step++) {
        rc = op == AGENT_WX_ADD
                 ? wx_api_kf_add(w->api, account, r->nickname, &res)
                 : wx_api_kf_update(w->api, account, r->nickname, &res);
        next = agent_wx_next(op, rc, res.errcode);
        if (next == AGENT_WX_DONE || next == AGENT_WX_FAILED)
            break;
        op = next == AGENT_WX_THEN_UPDATE ? AGENT_WX_UPDATE : AGENT_WX_ADD;
    }
    if (next == AGENT_WX_DONE)
        rc = 0;
    else
        rc = failed(r, rc ? rc : KF_EWECHAT, &res);
    wx_api_result_release(&res);
    return rc;
}

static int put_agent(struct agent_wx *w, const struct agent *a,
                     enum agent_wx_op op, struct agent_wx_result *r)
{
    int rc;

    agent_wx_result_init(r);
    if (!may_call(w, a->account, r, &rc))
        return rc;
    if (agent_wx_nickname(a->nick, r->nickname, &r->nick_truncated) < 0) {
        say(r, "WeChat not updated: nick is not valid UTF-8");
        return KF_EINVAL;
    }
    return put(w, a->account, op, r);
}

int agent_wx_add(struct agent_wx *w, const struct agent *a,
                 struct agent_wx_result *r)
{
    return put_agent(w, a, AGENT_WX_ADD, r);
}

int agent_wx_update(struct agent_wx *w, const struct agent *a,
                    struct agent_wx_result *r)
{
    return put_agent(w, a, AGENT_WX_UPDATE, r);
}

int agent_wx_remove(struct agent_wx *w, const char *account,
                    struct agent_wx_result *r)
{
    struct wx_api_result res;
    int rc;

    agent_wx_result_init(r);
    if (!may_call(w, account, r, &rc))
        return rc;
    wx_api_result_init(&res);
    rc = wx_api_kf_del(w->api, account, &res);
    if (agent_wx_next(AGENT_WX_DEL, rc, res.errcode) == AGENT_WX_DONE)
        rc = 0;
    else
        rc = failed(r, rc, &res);
    wx_api_result_release(&res);
    return rc;
}

int agent_wx_invite(struct agent_wx *w, const char *account,
                    const char *wechat_id, struct agent_wx_result *r)
{
    struct wx_api_result res;
    int rc;

    agent_wx_result_init(r);
    if (agent_wx_check_wechat_id(wechat_id) < 0) {
        say(r, "wechat: must be 1-64 of [A-Za-z0-9_.-] (a WeChat ID)");
        return KF_EINVAL;
    }
    if (!may_call(w, account, r, &rc))
        return rc;
    wx_api_result_init(&res);
    rc = wx_api_kf_invite(w->api, account, wechat_id, &res);
    if (rc < 0)
        rc = failed(r, rc, &res);
    wx_api_result_release(&res);
    return rc;
}

/* ----------------------------------------------------------- wechat-sync */

void agent_wx_kflist_init(struct agent_wx_kflist *l)
{
    l->v = NULL;
    l->len = 0;
}

void agent_wx_kflist_release(struct agent_wx_kflist *l)
{
    free(l->v);
    agent_wx_kflist_init(l);
}

/* Copies s (untrusted) into out[n], cut at n - 1 bytes (never inside a
 * UTF-8 character); bytes that must not be shown become '?': control
 * characters, DEL and, for accounts (utf8 = 0) any non-ASCII byte, for
 * nicks invalid UTF-8. */
static void shown(const char *s, int utf8, char *out, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s), o = 0, len;

    while (left && o + 1 < n) {
        len = utf8 && *p >= 0x80 ? utf8_len(p, left) : 0;
        if (len > 1) {
            if (o + len >= n)
                break;
            memcpy(out + o, p, len);
            o += len;
        } else {
            len = 1;
            out[o++] = *p < 0x20 || *p >= 0x7f ? '?' : (char)*p;
        }
        p += len;
        left -= len;
    }
    out[o] = '\0';
}

int agent_wx_kflist_parse(const json_t *body, struct agent_wx_kflist *l)
{
    const json_t *arr = json_object_get(body, "kf_list"), *e;
    struct agent_wx_kf *v;
    const char *acct, *nick;
    size_t i, n = 0;

    agent_wx_kflist_release(l);
    if (!json_is_array(arr))
        return KF_EPARSE;
    if (json_array_size(arr) > AGENT_WX_LIST_MAX)
        return KF_ETOOBIG;
    v = calloc(json_array_size(arr) + 1, sizeof(*v));
    if (!v)
        return KF_ENOMEM;
    for (i = 0; i < json_array_size(arr); i++) {
        e = json_array_get(arr, i);
        acct = json_string_value(json_object_get(e, "kf_account"));
        nick = json_string_value(json_object_get(e, "kf_nick"));
        if (!acct || !acct[0])
            continue;
        shown(acct, 0, v[n].account, sizeof(v[n].account));
        shown(nick ? nick : "", 1, v[n].nick, sizeof(v[n].nick));
        n++;
    }
    l->v = v;
    l->len = n;
    return 0;
}

const struct agent_wx_kf *agent_wx_kflist_find(
    const struct agent_wx_kflist *l, const char *account)
{
    size_t i;

    for (i = 0; i < l->len; i++)
        if (strcmp(l->v[i].account, account) == 0)
            return &l->v[i];
    return NULL;
}

int agent_wx_sync_action(const struct agent *a,
                         const struct agent_wx_kflist *wechat)
{
    const struct agent_wx_kf *kf;
    char nick[AGENT_WX_NICK_SIZE];
    int cut;

    if (!strchr(a->account, '@'))
        return AGENT_WX_SYNC_LOCAL;
    kf = agent_wx_kflist_find(wechat, a->account);
    if (!kf)
        return AGENT_WX_SYNC_ADD;
    if (agent_wx_nickname(a->nick, nick, &cut) < 0 ||
        strcmp(nick, kf->nick) != 0)
        return AGENT_WX_SYNC_UPDATE;
    return AGENT_WX_SYNC_KEEP;
}

static int in_agents(const struct agent_list *l, const char *account)
{
    size_t i;

    for (i = 0; i < l->len; i++)
        if (strcmp(l->v[i].account, account) == 0)
            return 1;
    return 0;
}

/* WeChat's accounts that are not ours, into foreign. */
static int collect_foreign(const struct agent_list *l,
                           const struct agent_wx_kflist *wechat,
                           struct agent_wx_kflist *foreign)
{
    size_t i;

    agent_wx_kflist_release(foreign);
    foreign->v = calloc(wechat->len + 1, sizeof(*foreign->v));
    if (!foreign->v)
        return KF_ENOMEM;
    for (i = 0; i < wechat->len; i++)
        if (!in_agents(l, wechat->v[i].account))
            foreign->v[foreign->len++] = wechat->v[i];
    return 0;
}

/* One agent: the call its action needs, counted. The first failure goes
 * to first (its rc is kept by the caller). */
static int sync_one(struct agent_wx *w, const struct agent *a,
                    const struct agent_wx_kflist *wechat,
                    struct agent_wx_sync_stats *st,
                    struct agent_wx_result *first)
{
    int action = agent_wx_sync_action(a, wechat), rc;
    struct agent_wx_result r;

    if (action == AGENT_WX_SYNC_LOCAL || action == AGENT_WX_SYNC_KEEP) {
        st->local_only += action == AGENT_WX_SYNC_LOCAL;
        st->unchanged += action == AGENT_WX_SYNC_KEEP;
        return 0;
    }
    rc = action == AGENT_WX_SYNC_ADD ? agent_wx_add(w, a, &r)
                                     : agent_wx_update(w, a, &r);
    st->truncated += r.nick_truncated;
    if (rc == 0) {
        st->added += action == AGENT_WX_SYNC_ADD;
        st->updated += action == AGENT_WX_SYNC_UPDATE;
        return 0;
    }
    if (st->failed++ == 0) {
        say(first, "%.48s: %s", a->account, r.msg);
        first->errcode = r.errcode;
    }
    return rc;
}

int agent_wx_sync(struct agent_wx *w, const struct agent_list *l,
                  struct agent_wx_sync_stats *st,
                  struct agent_wx_kflist *foreign,
                  struct agent_wx_result *r)
{
    struct agent_wx_kflist wechat;
    struct wx_api_result res;
    int rc, one, first = 0;
    size_t i;

    memset(st, 0, sizeof(*st));
    agent_wx_result_init(r);
    agent_wx_kflist_release(foreign);
    if (!agent_wx_configured(w->cfg)) {
        agent_wx_plan(w->cfg, NULL, r);
        return 0;
    }
    if (!w->api) {
        say(r, "WeChat not reached: no API client");
        return KF_EINVAL;
    }
    agent_wx_kflist_init(&wechat);
    wx_api_result_init(&res);
    rc = wx_api_kf_list(w->api, &res);
    if (rc < 0)
        failed(r, rc, &res);
    else if ((rc = agent_wx_kflist_parse(res.body, &wechat)) < 0)
        say(r, "WeChat's getkflist answer: %s", kf_strerror(rc));
    wx_api_result_release(&res);
    if (rc == 0)
        rc = collect_foreign(l, &wechat, foreign);
    for (i = 0; rc == 0 && i < l->len; i++) {
        one = sync_one(w, &l->v[i], &wechat, st, r);
        if (one < 0 && first == 0)
            first = one;           /* kept; the others still run */
    }
    agent_wx_kflist_release(&wechat);
    return rc < 0 ? rc : first;
}
