/* outbound: messages to users through WeChat's customer-service API — an
 * agent's reply (POST /api/v1/sessions/{openid}/messages) and wxkf's own
 * texts (the leave-a-message text after a queue timeout). It owns the
 * message validation, the window/quota reservation before WeChat is called
 * (lib/lua/outbound.lua), the delivery events (msg_out, delivery: sent,
 * queued, failed) and the outbox that `wxkf jobs` retries with backoff, so
 * nothing an agent sends is silently dropped; and the typing indicator
 * (POST /api/v1/sessions/{openid}/typing), rate-limited per user. wxkf's
 * own texts (greeting, leave-a-message) are reserved and queued by the
 * routing scripts (lib/lua/prelude.lua) and delivered here. */
#ifndef OUTBOUND_H
#define OUTBOUND_H

#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "kf.h"
#include "refusal.h"
#include "route.h"
#include "wx_api.h"

#define OUTBOUND_MAX_ATTEMPTS 8

struct outbound {
    struct route *route;          /* borrowed */
    struct wx_api *api;           /* borrowed */
    const struct config *cfg;     /* borrowed */
    struct store_script script;
    char owner[40];               /* this process's outbox leases */
    long lease_ms;                /* longer than the slowest send */
};

struct outbound_result {
    char id[40];                  /* "m_" + 32 hex */
    char status[12];              /* sent, queued, failed */
    const struct refusal *why;    /* a refusal (KF_EINVAL), else NULL:
                                     outside_48h_window, quota_exhausted,
                                     not_yours, no_session, invalid_field
                                     (lib/refusal.h, scope REFUSAL_SEND) */
    char message[256];            /* the refusal's message (invalid_field:
                                     which field), WeChat's text, or why
                                     WeChat could not be used */
    long errcode;                 /* WeChat's, when it refused */
    long left;                    /* sends left in the window */
    int unrecorded;               /* sent, but the "sent" event could not
                                     be written (Redis failed just then) */
};

void outbound_init(struct outbound *ob, struct route *r, struct wx_api *api,
                   const struct config *cfg);

/* Checks msg ({"msgtype":..., <msgtype>: {...}}, borrowed), reserves a send
 * in the user's window, calls WeChat. Returns 0 with res->status "sent" or
 * "queued" (a transient failure: `wxkf jobs` retries it); KF_EINVAL for a
 * refusal before WeChat (res->why says which); KF_EWECHAT when WeChat
 * refused it (res->errcode; status "failed", the send is given back);
 * KF_EIO when WeChat could not be used for a lasting reason (a wrong
 * api_base, TLS; status "failed", given back, res->message says why);
 * KF_EBACKEND when Redis is down before anything was sent. Once WeChat
 * accepted the message this returns 0 whatever happens next. by = the
 * agent, or "" for an admin. */
KF_WUR int outbound_send(struct outbound *ob, const char *by,
                         struct kf_str openid, json_t *msg, int64_t now_ms,
                         struct outbound_result *res);

#define OUTBOUND_TYPING_GAP_MS 10000    /* at most one Typing per user */
#define OUTBOUND_TYPING_RECENT_MS 30000 /* WeChat: a user's interaction
                                           this recent, else 45080 */

/* The agent (by; "" = an admin) is typing to openid: tells WeChat
 * (custom/typing "Typing") at most once per OUTBOUND_TYPING_GAP_MS per
 * user, only while the user's window is open. Returns 0 with res->status
 * "sent" (WeChat was told) or "skipped" and res->message why: "recent"
 * (told within the gap), "quiet" (the user's last interaction is older
 * than WeChat allows typing after), "already_typing" (WeChat: 45081);
 * KF_EINVAL with res->why (outside_48h_window, not_yours, no_session);
 * KF_EWECHAT (res->errcode), KF_EIO, KF_EBACKEND as outbound_send. */
KF_WUR int outbound_typing(struct outbound *ob, const char *by,
                           struct kf_str openid, int64_t now_ms,
                           struct outbound_result *res);

struct outbound_counts {
    long sent, failed, retried;
};

/* `wxkf jobs`: sends what is due in the outbox, one leased entry at a
 * time, until nothing is due or the wall clock passes deadline_ms (so the
 * routing sweep is never held up for long). Several `wxkf jobs` may run:
 * an entry is leased to one for longer than its slowest send, and its
 * outcome is written only by the lease holder. */
KF_WUR int outbound_deliver_due(struct outbound *ob, int64_t deadline_ms,
                                struct outbound_counts *c);

#endif
