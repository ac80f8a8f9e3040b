/* wx_api: the client for WeChat's HTTP API (libcurl). It owns the one
 * reused curl handle of the process (keep-alive, connect and total
 * timeouts, TLS verified), the access token shared by all processes
 * through Redis (refreshed by one process at a time under a short lock,
 * before it expires; a call answered 40001/42001/40014 refreshes once and
 * retries once), the Redis token bucket that keeps every process together
 * under [ratelimit] wechat_api_per_min, the daily budgets (custom/send and
 * token fetches), the retry policy (transient: network, HTTP 5xx, errcode
 * -1 and 45009 back off exponentially with jitter; permanent errors return
 * at once) and the wrappers for the customer-service APIs. */
#ifndef WX_API_H
#define WX_API_H

#include <stddef.h>

#include <jansson.h>

#include "config.h"
#include "kf.h"
#include "store.h"

struct wx_api;

/* The outcome of one API call (after retries). Every call starts by
 * releasing and clearing it, so one result can serve many calls. */
struct wx_api_result {
    int http_status;        /* of the last HTTP request (an access-token
                               fetch included); 0 = no HTTP answer */
    long errcode;           /* WeChat's errcode (0 = success) */
    char errmsg[256];       /* WeChat's errmsg, or what went wrong; never
                               holds the access token or the AppSecret */
    int transient;          /* 1: worth retrying later (network, 5xx, -1,
                               45009, rate limit, daily budget, Redis
                               down), 0: permanent */
    int attempts;           /* HTTP requests made to the API path (the
                               access-token fetches are not counted) */
    json_t *body;           /* the parsed JSON answer (owned), or NULL;
                               never a token endpoint's answer */
    long long retry_after_ms; /* KF_ELIMIT: when a retry can succeed (the
                               bucket's next token, or the next day, UTC+8,
                               for a daily budget); else 0 */
};

void wx_api_result_init(struct wx_api_result *r);
void wx_api_result_release(struct wx_api_result *r);   /* safe twice */

/* Creates the client. cfg and st are borrowed and must outlive it. On
 * success *out is new; free with wx_api_free(). */
KF_WUR int wx_api_new(const struct config *cfg, struct store *st,
                      struct wx_api **out);
void wx_api_free(struct wx_api *a);                     /* NULL ok */
/* Counts every HTTP attempt (wxkf_wechat_api_calls_total by path and
 * errcode), token fetches and rate-limit refusals into m (borrowed; NULL
 * = none). a may be NULL. */
struct metrics;
void wx_api_set_metrics(struct wx_api *a, struct metrics *m);

/* One call: method "GET" or "POST", path like "/cgi-bin/message/custom/
 * send", extra query (already escaped, without access_token) or NULL,
 * JSON body (borrowed) or NULL. Returns 0 on success (errcode absent or
 * 0), KF_EWECHAT for a permanent WeChat error (res->errcode set),
 * KF_ELIMIT when the rate limit or a daily budget refuses the call (no
 * request made), KF_EBACKEND when transient failures outlasted the
 * retries (res->transient = 1), when Redis is unreachable (transient, no
 * request made) or for an HTTP status other than 200 or 5xx/429
 * (permanent), KF_ETOOBIG for an answer over its cap, KF_EINVAL for bad
 * arguments. The path /cgi-bin/message/custom/send counts against the
 * daily send budget here too. */
KF_WUR int wx_api_call(struct wx_api *a, const char *method, const char *path,
                       const char *query, json_t *body,
                       struct wx_api_result *res);

/* message/custom/send: {"touser","msgtype",msgtype: payload,
 * "customservice":{"kf_account"}} (kf_account NULL or "" = none).
 * payload is borrowed. Counts against the daily send budget. */
KF_WUR int wx_api_send(struct wx_api *a, const char *touser,
                       const char *kf_account, const char *msgtype,
                       json_t *payload, struct wx_api_result *res);
/* message/custom/typing: command "Typing" or "CancelTyping". */
KF_WUR int wx_api_typing(struct wx_api *a, const char *touser,
                         const char *command, struct wx_api_result *res);
/* media/upload?type=: multipart field "media" with the bytes. media_id
 * (>= 128 bytes) gets the new id (thumb_media_id for type "thumb"). */
KF_WUR int wx_api_media_upload(struct wx_api *a, const char *type,
                               const char *filename, const void *data,
                               size_t len, char *media_id,
                               size_t media_id_len,
                               struct wx_api_result *res);
/* media/get: the bytes (capped by out's max: KF_ETOOBIG past it) and the
 * Content-Type. A JSON answer without errcode (a video's {"video_url"})
 * is a success with the JSON in res->body (and its text in out). */
KF_WUR int wx_api_media_get(struct wx_api *a, const char *media_id,
                            struct kf_buf *out, char *content_type,
                            size_t ct_len, struct wx_api_result *res);

/* kfaccount add/update (nickname) and del; inviteworker. */
KF_WUR int wx_api_kf_add(struct wx_api *a, const char *kf_account,
                         const char *nickname, struct wx_api_result *res);
KF_WUR int wx_api_kf_update(struct wx_api *a, const char *kf_account,
                            const char *nickname, struct wx_api_result *res);
KF_WUR int wx_api_kf_del(struct wx_api *a, const char *kf_account,
                         struct wx_api_result *res);
KF_WUR int wx_api_kf_invite(struct wx_api *a, const char *kf_account,
                            const char *invite_wx, struct wx_api_result *res);
/* getkflist: WeChat's JSON in res->body. */
KF_WUR int wx_api_kf_list(struct wx_api *a, struct wx_api_result *res);
/* getonlinekflist: WeChat's JSON ({"kf_online_list":[...]}) in
 * res->body. */
KF_WUR int wx_api_kf_online(struct wx_api *a, struct wx_api_result *res);
/* kfsession/create or /close (op "create" or "close"):
 * {"kf_account","openid"}. */
KF_WUR int wx_api_kf_session(struct wx_api *a, const char *op,
                             const char *kf_account, const char *openid,
                             struct wx_api_result *res);

/* Units of a daily budget ("send" or "token") spent today (UTC+8). */
KF_WUR int wx_api_spent(struct wx_api *a, const char *budget, long *spent);

/* A human message for a WeChat errcode (e.g. 45015 -> "outside the
 * 48-hour customer-service window or the user unfollowed"); NULL if
 * unknown. And what kind of code it is: WX_API_ERR_TRANSIENT (-1, 45009),
 * WX_API_ERR_TOKEN, one that a token refresh fixes (40001, 40014,
 * 42001), or WX_API_ERR_PERMANENT (0, anything else). */
enum {
    WX_API_ERR_PERMANENT = 0,
    WX_API_ERR_TRANSIENT = 1,
    WX_API_ERR_TOKEN = 2
};
const char *wx_api_errcode_text(long errcode);
int wx_api_errcode_transient(long errcode);

#endif
