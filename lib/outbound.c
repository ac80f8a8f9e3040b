/* outbound: replies to users, their reservation and their retries. */
#include "outbound.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "lua.h"

#include "banned.h"

#define TEXT_MAX 2048           /* bytes of a text message */

static void new_id(char *id, size_t n);

void outbound_init(struct outbound *ob, struct route *r, struct wx_api *api,
                   const struct config *cfg)
{
    ob->route = r;
    ob->api = api;
    ob->cfg = cfg;
    store_script_init(&ob->script, lua_outbound);
    new_id(ob->owner, sizeof(ob->owner));
    /* every attempt may take the whole timeout, plus backoff (≤ 5 s) */
    ob->lease_ms = (cfg->wechat.api_retries + 1) *
                       (cfg->wechat.api_timeout_ms +
                        cfg->wechat.api_connect_timeout_ms) + 15000;
}

/* A refusal: its row, and the row's message (or detail where the row
 * has none: which field). */
static void refuse(struct outbound_result *res, const struct refusal *why,
                   const char *detail)
{
    res->why = why;
    snprintf(res->message, sizeof(res->message), "%s",
             why->message ? why->message : detail);
}

/* WeChat refused (or could not be used): status "failed", its errcode and
 * what it means. */
static void failed(struct outbound_result *res, const struct wx_api_result *w)
{
    snprintf(res->status, sizeof(res->status), "failed");
    res->errcode = w->errcode;
    snprintf(res->message, sizeof(res->message), "%s",
             wx_api_errcode_text(w->errcode) ? wx_api_errcode_text(w->errcode)
                                             : w->errmsg);
}

static int str_member(json_t *o, const char *name, size_t max)
{
    const char *s = json_string_value(json_object_get(o, name));

    return s && *s && strlen(s) <= max;
}

/* The message types an agent may send, and what each needs. */
static int validate(json_t *msg, const char **type, json_t **payload,
                    struct outbound_result *res)
{
    static const char *const types[] = {
        "text", "image", "voice", "video", "music", "news", "mpnews",
        "msgmenu", "miniprogrampage",
    };
    const char *t = json_string_value(json_object_get(msg, "msgtype"));
    size_t i;

    for (i = 0; t && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(t, types[i]) == 0)
            break;
    if (!t || i == sizeof(types) / sizeof(types[0])) {
        refuse(res, refusal_get(REFUSAL_INVALID_FIELD),
               "field msgtype must be one of text, image, voice, video, "
               "music, news, mpnews, msgmenu, miniprogrampage");
        return KF_EINVAL;
    }
    *type = t;
    *payload = json_object_get(msg, t);
    if (!json_is_object(*payload)) {
        refuse(res, refusal_get(REFUSAL_INVALID_FIELD),
               "the message needs an object named after its msgtype");
        return KF_EINVAL;
    }
    if (strcmp(t, "text") == 0 && !str_member(*payload, "content", TEXT_MAX)) {
        refuse(res, refusal_get(REFUSAL_INVALID_FIELD),
               "field text.content must be a string of 1..2048 bytes");
        return KF_EINVAL;
    }
    if ((!strcmp(t, "image") || !strcmp(t, "voice") || !strcmp(t, "mpnews") ||
         !strcmp(t, "video")) && !str_member(*payload, "media_id", 128)) {
        refuse(res, refusal_get(REFUSAL_INVALID_FIELD),
               "field media_id must be a string");
        return KF_EINVAL;
    }
    return 0;
}

static void new_id(char *id, size_t n)
{
    unsigned char r[16];
    size_t i;

    if (RAND_bytes(r, sizeof(r)) != 1)
        memset(r, 0, sizeof(r));
    snprintf(id, n, "m_");
    for (i = 0; i < sizeof(r) && 2 + 2 * i + 2 < n; i++)
        snprintf(id + 2 + 2 * i, 3, "%02x", r[i]);
}

/* The kf_account to send as: only an agent account in WeChat's form
 * (prefix@wechat_id) names a customer-service account there; a local-only
 * agent ("alice") sends as the Official Account itself. */
static const char *as_kf(const char *agent)
{
    return strchr(agent, '@') ? agent : NULL;
}

/* Runs outbound.lua: args[0] is the op. out NULL: only success
 * matters. */
static int run(struct outbound *ob, const char *const *args, int nargs,
               struct store_reply **out)
{
    return store_run(ob->route->store, &ob->script, 0, NULL, nargs, args,
                     NULL, out);
}

static int status_event(struct outbound *ob, int64_t now, const char *openid,
                        const char *agent, const char *id, const char *st,
                        const struct wx_api_result *w, int refund)
{
    char n[24], ec[24];
    const char *args[] = { "status", n, ob->route->cfg, openid, agent, id,
                           st, ec, w ? w->errmsg : "", refund ? "1" : "0" };

    snprintf(n, sizeof(n), "%lld", (long long)now);
    snprintf(ec, sizeof(ec), "%ld", w ? w->errcode : 0);
    return run(ob, args, 10, NULL);
}

static int enqueue(struct outbound *ob, int64_t now, const char *id,
                   const char *openid, const char *agent, const char *type,
                   json_t *payload)
{
    char n[24], due[24], *json = json_dumps(payload, JSON_COMPACT);
    const char *args[] = { "enqueue", n, ob->route->cfg, id, openid, agent,
                           type, json ? json : "{}", due };
    int rc;

    if (!json)
        return KF_ENOMEM;
    snprintf(n, sizeof(n), "%lld", (long long)now);
    snprintf(due, sizeof(due), "%lld", (long long)now + 1000);
    rc = run(ob, args, 9, NULL);
    free(json);
    return rc;
}

static int reserve(struct outbound *ob, const char *by, const char *openid,
                   const char *id, const char *type, json_t *payload,
                   int64_t now, char *agent, size_t agent_len,
                   struct outbound_result *res)
{
    char n[24], *json = json_dumps(payload, JSON_COMPACT);
    const char *args[] = { "reserve", n, ob->route->cfg, openid, by, id,
                           type, json ? json : "{}" };
    struct store_reply *rep = NULL;
    int rc;

    snprintf(n, sizeof(n), "%lld", (long long)now);
    rc = run(ob, args, 8, &rep);
    free(json);
    if (rc < 0)
        return rc;
    if (strcmp(store_reply_at_text(rep, 0), "ok") != 0) {
        refuse(res, refusal_find(REFUSAL_SEND,
                                 kf_str_c(store_reply_at_text(rep, 1)),
                                 REFUSAL_REFUSED), "");
        rc = res->why->rc;
    } else {
        snprintf(agent, agent_len, "%s", store_reply_at_text(rep, 1));
        res->left = store_reply_type(store_reply_at(rep, 2)) == STORE_INT
                        ? (long)store_reply_int(store_reply_at(rep, 2)) : 0;
    }
    store_reply_free(rep);
    return rc;
}

int outbound_send(struct outbound *ob, const char *by, struct kf_str openid,
                  json_t *msg, int64_t now_ms, struct outbound_result *res)
{
    struct wx_api_result w;
    char o[72], agent[64] = "";
    const char *type = NULL;
    json_t *payload = NULL;
    int rc;

    memset(res, 0, sizeof(*res));
    if (openid.len == 0 || openid.len >= sizeof(o))
        return KF_EINVAL;
    snprintf(o, sizeof(o), "%.*s", (int)openid.len, openid.p);
    rc = validate(msg, &type, &payload, res);
    if (rc < 0)
        return rc;
    new_id(res->id, sizeof(res->id));
    rc = reserve(ob, by, o, res->id, type, payload, now_ms, agent,
                 sizeof(agent), res);
    if (rc < 0)
        return rc;
    wx_api_result_init(&w);
    rc = wx_api_send(ob->api, o, as_kf(agent), type, payload, &w);
    if (rc == 0) {
        snprintf(res->status, sizeof(res->status), "sent");
        /* it is out: whatever happens to the event, report success */
        res->unrecorded = status_event(ob, now_ms, o, agent, res->id, "sent",
                                       &w, 0) < 0;
    } else if (rc != KF_EWECHAT && !w.transient) {
        snprintf(res->status, sizeof(res->status), "failed");
        snprintf(res->message, sizeof(res->message), "%s", w.errmsg);
        rc = status_event(ob, now_ms, o, agent, res->id, "failed", &w, 1) < 0
                 ? KF_EBACKEND : KF_EIO;
    } else if (rc == KF_EWECHAT) {
        failed(res, &w);
        if (status_event(ob, now_ms, o, agent, res->id, "failed", &w, 1) < 0)
            rc = KF_EBACKEND;
    } else {
        /* transient (network, 5xx, rate limit): the outbox retries it */
        snprintf(res->status, sizeof(res->status), "queued");
        rc = enqueue(ob, now_ms, res->id, o, agent, type, payload);
        if (rc == 0)
            rc = status_event(ob, now_ms, o, agent, res->id, "queued", &w, 0);
    }
    wx_api_result_release(&w);
    return rc;
}

int outbound_typing(struct outbound *ob, const char *by, struct kf_str openid,
                    int64_t now_ms, struct outbound_result *res)
{
    struct wx_api_result w;
    struct store_reply *rep = NULL;
    char n[24], gap[24], recent[24], o[72];
    const char *args[] = { "typing", n, ob->route->cfg, o, by, gap, recent };
    const char *verdict;
    int rc;

    memset(res, 0, sizeof(*res));
    if (openid.len == 0 || openid.len >= sizeof(o))
        return KF_EINVAL;
    snprintf(o, sizeof(o), "%.*s", (int)openid.len, openid.p);
    snprintf(n, sizeof(n), "%lld", (long long)now_ms);
    snprintf(gap, sizeof(gap), "%d", OUTBOUND_TYPING_GAP_MS);
    snprintf(recent, sizeof(recent), "%d", OUTBOUND_TYPING_RECENT_MS);
    rc = run(ob, args, 7, &rep);
    if (rc < 0)
        return rc;
    verdict = store_reply_at_text(rep, 0);
    if (strcmp(verdict, "err") == 0) {
        refuse(res, refusal_find(REFUSAL_SEND,
                                 kf_str_c(store_reply_at_text(rep, 1)),
                                 REFUSAL_REFUSED), "");
        store_reply_free(rep);
        return res->why->rc;
    }
    if (strcmp(verdict, "ok") != 0) {
        snprintf(res->status, sizeof(res->status), "skipped");
        snprintf(res->message, sizeof(res->message), "%s",
                 store_reply_at_text(rep, 1));
        store_reply_free(rep);
        return 0;
    }
    store_reply_free(rep);
    wx_api_result_init(&w);
    rc = wx_api_typing(ob->api, o, "Typing", &w);
    if (rc == KF_EWECHAT && (w.errcode == 45081 || w.errcode == 45080)) {
        /* already shown, or WeChat counts the user's last interaction
           older than we do: nothing to tell the agent */
        rc = 0;
        snprintf(res->status, sizeof(res->status), "skipped");
        snprintf(res->message, sizeof(res->message), "%s",
                 w.errcode == 45081 ? "already_typing" : "quiet");
    } else if (rc == 0) {
        snprintf(res->status, sizeof(res->status), "sent");
    } else {
        failed(res, &w);
        if (rc != KF_EWECHAT)
            rc = KF_EIO;        /* transient or not: typing is not retried */
    }
    wx_api_result_release(&w);
    return rc;
}

/* Backs off from now (not from when the pass began). */
static int retry_later(struct outbound *ob, const char *id, long attempts)
{
    long backoff = 1000L << (attempts < 8 ? attempts : 8);   /* ≤ 256 s */
    int64_t now = kf_wall_ms();
    char n[24], due[24];
    const char *args[] = { "retry", n, ob->route->cfg, id, ob->owner, due };

    snprintf(n, sizeof(n), "%lld", (long long)now);
    snprintf(due, sizeof(due), "%lld",
             (long long)(now + backoff + rand() % 1000));
    return run(ob, args, 6, NULL);
}

/* The outcome and the removal of an entry, in one step (lease holder
 * only). */
static int finish(struct outbound *ob, const char *id, const char *status,
                  const struct wx_api_result *w)
{
    char n[24], ec[24];
    const char *args[] = { "finish", n, ob->route->cfg, id, ob->owner,
                           status, ec, w->errmsg };

    snprintf(n, sizeof(n), "%lld", (long long)kf_wall_ms());
    snprintf(ec, sizeof(ec), "%ld", w->errcode);
    return run(ob, args, 8, NULL);
}

/* One outbox entry: id, openid, agent, msgtype, payload, attempts. */
static int deliver(struct outbound *ob, const struct store_reply *e,
                   struct outbound_counts *c)
{
    const char *id = store_reply_at_text(e, 0),
               *o = store_reply_at_text(e, 1),
               *agent = store_reply_at_text(e, 2),
               *type = store_reply_at_text(e, 3);
    long attempts = strtol(store_reply_at_text(e, 5), NULL, 10);
    json_t *payload = json_loads(store_reply_at_text(e, 4), 0, NULL);
    struct wx_api_result w;
    int rc;

    wx_api_result_init(&w);
    if (!payload) {                 /* cannot happen: we wrote it */
        snprintf(w.errmsg, sizeof(w.errmsg), "unreadable outbox entry");
        rc = finish(ob, id, "failed", &w);
        wx_api_result_release(&w);
        return rc;
    }
    rc = wx_api_send(ob->api, o, as_kf(agent), type, payload, &w);
    json_decref(payload);
    if (rc == 0) {
        c->sent++;
        rc = finish(ob, id, "sent", &w);
    } else if (!w.transient || attempts >= OUTBOUND_MAX_ATTEMPTS) {
        c->failed++;
        rc = finish(ob, id, "failed", &w);
    } else {
        c->retried++;
        rc = retry_later(ob, id, attempts);
    }
    wx_api_result_release(&w);
    return rc;
}

int outbound_deliver_due(struct outbound *ob, int64_t deadline_ms,
                         struct outbound_counts *c)
{
    char n[24], lease[24];
    const char *args[] = { "due", n, ob->route->cfg, "1", lease, ob->owner };
    int rc = 0;

    snprintf(lease, sizeof(lease), "%ld", ob->lease_ms);
    while (rc == 0 && kf_wall_ms() < deadline_ms) {
        struct store_reply *rep = NULL;

        snprintf(n, sizeof(n), "%lld", (long long)kf_wall_ms());
        rc = run(ob, args, 6, &rep);
        if (rc < 0)
            break;
        if (store_reply_len(rep) == 0) {
            store_reply_free(rep);
            break;                  /* nothing due */
        }
        rc = deliver(ob, store_reply_at(rep, 0), c);
        store_reply_free(rep);
    }
    return rc;
}
