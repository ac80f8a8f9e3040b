/* wechat_kf: presence from WeChat and WeChat-side sessions in
 * mode = wechat_kf. */
#include "wechat_kf.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "lua.h"
#include "route.h"
#include "stream_group.h"
#include "wx_api.h"

#include "banned.h"

/* --- decisions ----------------------------------------------------------- */

int wechat_kf_online_list(json_t *body, json_t **list)
{
    json_t *l = json_object_get(body, "kf_online_list");

    *list = NULL;
    if (!json_is_object(body) || !json_is_array(l))
        return KF_EPARSE;
    *list = l;
    return 0;
}

int wechat_kf_listed(json_t *list, const char *account)
{
    size_t i, n = json_array_size(list);

    if (n > WECHAT_KF_LIST_MAX)
        n = WECHAT_KF_LIST_MAX;
    for (i = 0; i < n; i++) {
        json_t *e = json_array_get(list, i);
        const char *a = json_string_value(json_object_get(e, "kf_account"));
        json_t *st = json_object_get(e, "status");

        if (a && strcmp(a, account) == 0 && json_is_number(st) &&
            json_number_value(st) != 0)
            return 1;
    }
    return 0;
}

const char *wechat_kf_presence_op(const char *status, int listed, int polled)
{
    int active = status && (strcmp(status, "online") == 0 ||
                            strcmp(status, "paused") == 0);

    if (!polled || listed)
        return active ? "heartbeat" : polled ? "online" : NULL;
    return active ? "offline" : NULL;
}

int wechat_kf_verdict(int rc, int transient)
{
    if (rc == 0)
        return WECHAT_KF_DONE;
    if (rc == KF_ELIMIT || rc == KF_ENOMEM ||
        (rc == KF_EBACKEND && transient))
        return WECHAT_KF_RETRY;
    return WECHAT_KF_REFUSED;
}

/* --- `wxkf jobs` --------------------------------------------------------- */

void wechat_kf_init(struct wechat_kf *k, struct route *r, struct store *st,
                    struct wx_api *api, long poll_s)
{
    memset(k, 0, sizeof(*k));
    k->route = r;
    k->store = st;
    k->api = api;
    k->poll_ms = (int64_t)poll_s * 1000;
    store_script_init(&k->script, lua_kf_session);
    snprintf(k->consumer, sizeof(k->consumer), "jobs-%ld", (long)getpid());
    k->forget_ms = WECHAT_KF_FORGET_MS;
}

/* Keeps what went wrong for the log line. */
static void failed(struct wechat_kf_counts *c, const char *call,
                   const char *openid, const struct wx_api_result *res,
                   int rc)
{
    char *sp;

    snprintf(c->last_call, sizeof(c->last_call), "%s", call);
    snprintf(c->last_openid, sizeof(c->last_openid), "%s", openid);
    sp = strchr(c->last_call, ' ');
    if (sp)
        *sp = ':';                      /* "close:ka@shop" */
    c->last_errcode = res->errcode;
    snprintf(c->last_error, sizeof(c->last_error), "%s",
             *res->errmsg ? res->errmsg : kf_strerror(rc));
    kf_utf8_trim(c->last_error);
}

/* Applies one poll (list NULL: it failed) to every agent in kf_account
 * form. */
static int apply(struct wechat_kf *k, json_t *list, int64_t now_ms,
                 struct wechat_kf_counts *c)
{
    json_t *all = NULL, *agents;
    size_t i;
    int rc = route_colleagues(k->route, &all);

    agents = json_object_get(all, "agents");
    for (i = 0; rc == 0 && i < json_array_size(agents); i++) {
        json_t *a = json_array_get(agents, i);
        const char *acct = json_string_value(json_object_get(a, "account"));
        const char *st = json_string_value(json_object_get(a, "status"));
        const char *op;
        char now_st[16];
        long moved = 0;

        if (!acct || !strchr(acct, '@'))
            continue;       /* a local account: its console's heartbeats */
        op = wechat_kf_presence_op(st, list && wechat_kf_listed(list, acct),
                                   list != NULL);
        if (!op)
            continue;
        rc = route_presence(k->route, acct, op, "wechat", now_ms, now_st,
                            sizeof(now_st), &moved, NULL);
        if (rc == KF_ENOTFOUND)
            rc = 0;         /* removed meanwhile */
        else if (rc == 0 && strcmp(op, "online") == 0)
            c->set_online++;
        else if (rc == 0 && strcmp(op, "offline") == 0)
            c->set_offline++;
        else if (rc == 0)
            c->kept++;
    }
    json_decref(all);
    return rc;
}

int wechat_kf_poll(struct wechat_kf *k, int64_t now_ms,
                   struct wechat_kf_counts *c)
{
    struct wx_api_result res;
    json_t *list = NULL;
    int rc;

    if (now_ms < k->next_poll)
        return 0;
    k->next_poll = now_ms + k->poll_ms;
    wx_api_result_init(&res);
    rc = wx_api_kf_online(k->api, &res);
    if (rc == 0)
        rc = wechat_kf_online_list(res.body, &list);
    c->polls++;
    if (rc < 0) {
        c->polls_failed++;
        k->fails++;
        failed(c, "getonlinekflist", "", &res, rc);
    } else {
        k->fails = 0;
    }
    c->polls_failed_in_row = k->fails;
    c->fell_back = k->fails > WECHAT_KF_POLL_FAILS;
    rc = c->fell_back ? 0 : apply(k, list, now_ms, c);
    wx_api_result_release(&res);
    return rc;
}

static int settle(struct wechat_kf *k, const char *op, const char *openid,
                  int64_t now_ms, int64_t *due)
{
    char now[24];
    const char *args[6] = { op, openid, now, KF_XSTR(WECHAT_KF_RETRY_MS),
                            KF_XSTR(WECHAT_KF_RETRY_MAX_MS),
                            KF_XSTR(WECHAT_KF_TRIES) };
    struct store_reply *r = NULL;
    int rc;

    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    rc = store_run(k->store, &k->script, 0, NULL,
                   strcmp(op, "done") == 0 ? 3 : 6, args, NULL, &r);
    if (rc == 0 && due) {
        if (store_reply_type(r) != STORE_INT)
            rc = KF_EBACKEND;
        *due = store_reply_int(r);
    }
    store_reply_free(r);
    return rc;
}

/* Makes one step ("close <kf_account>" or "create <kf_account>") of
 * openid; the outcome settles it (done, or later). */
static int make_step(struct wechat_kf *k, const char *openid,
                     const char *step, int64_t now_ms,
                     struct wechat_kf_counts *c)
{
    struct wx_api_result res;
    const char *sp = strchr(step, ' ');
    char op[8];
    int64_t due = 0;
    int rc;

    wx_api_result_init(&res);
    if (!sp || (size_t)(sp - step) >= sizeof(op) ||
        agent_check_account(sp + 1, NULL) < 0 ||
        !kf_openid_ok((struct kf_str){ openid, strlen(openid) })) {
        c->refused++;                  /* never made by the script */
        return settle(k, "done", openid, now_ms, NULL);
    }
    memcpy(op, step, (size_t)(sp - step));
    op[sp - step] = '\0';
    rc = wx_api_kf_session(k->api, op, sp + 1, openid, &res);
    switch (wechat_kf_verdict(rc, res.transient)) {
    case WECHAT_KF_DONE:
        c->done++;
        rc = settle(k, "done", openid, now_ms, NULL);
        break;
    case WECHAT_KF_REFUSED:
        c->refused++;
        failed(c, step, openid, &res, rc);
        rc = settle(k, "done", openid, now_ms, NULL);
        break;
    default:
        failed(c, step, openid, &res, rc);
        rc = settle(k, "later", openid, now_ms, &due);
        if (rc == 0 && due == 0)
            c->dropped++;
        else if (rc == 0)
            c->retried++;
    }
    wx_api_result_release(&res);
    return rc;
}

int wechat_kf_sessions_pass(struct wechat_kf *k, int64_t now_ms, long limit,
                            struct wechat_kf_counts *c)
{
    char n[24], now[24];
    const char *args[7] = { "take", WECHAT_KF_GROUP, k->consumer, n, now,
                            KF_XSTR(WECHAT_KF_LEASE_MS),
                            KF_XSTR(WECHAT_KF_READ_MAX) };
    struct store_reply *r = NULL;
    const struct store_reply *list;
    int64_t queued;
    size_t i;
    int rc;

    snprintf(n, sizeof(n), "%ld", limit);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    rc = store_run(k->store, &k->script, 0, NULL, 7, args, NULL, &r);
    if (rc < 0)
        return rc;
    list = store_reply_at(r, 1);
    if (store_reply_len(r) != 2 || store_reply_at_int(r, 0, &queued) < 0 ||
        store_reply_type(list) != STORE_ARRAY) {
        store_reply_free(r);
        return KF_EBACKEND;
    }
    c->queued += (long)queued;
    for (i = 0; i + 1 < store_reply_len(list) && rc == 0; i += 2)
        rc = make_step(k, store_reply_at_text(list, i),
                       store_reply_at_text(list, i + 1), now_ms, c);
    store_reply_free(r);
    /* each start reads under a new name; the script acknowledges what it
     * reads, so an idle consumer holds nothing and can go */
    if (rc == 0 && now_ms >= k->next_forget) {
        rc = stream_group_forget(k->store, WECHAT_KF_GROUP, k->consumer,
                                 k->forget_ms, NULL);
        k->next_forget = now_ms + WECHAT_KF_FORGET_EVERY_MS;
    }
    return rc;
}
