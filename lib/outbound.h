/* outbound: messages to users through WeChat's customer-service API — an
 * agent's reply (POST /api/v1/sessions/{openid}/messages) and wxkf's own
 * texts (the leave-a-message text after a queue timeout). It owns the
 * message validation, the window/quota reservation before WeChat is called
 * (lib/lua/outbound.lua), the delivery events (msg_out, delivery: sent,
 * queued, failed) and the outbox that `wxkf jobs` retries with backoff, so
 * nothing an agent sends is silently dropped. */
#ifndef OUTBOUND_H
#define OUTBOUND_H

#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "kf.h"
#include "route.h"
#include "wx_api.h"

#define OUTBOUND_MAX_ATTEMPTS 8

struct outbound {
    struct route *route;          /* borrowed */
    struct wx_api *api;           /* borrowed */
    const struct config *cfg;     /* borrowed */
    struct store_script script;
};

struct outbound_result {
    char id[40];                  /* "m_" + 32 hex */
    char status[12];              /* sent, queued, failed */
    char code[40];                /* a refusal: outside_48h_window,
                                     quota_exhausted, not_yours,
                                     no_session, invalid_field, ... */
    char message[256];
    long errcode;                 /* WeChat's, when it refused */
    long left;                    /* sends left in the window */
};

void outbound_init(struct outbound *ob, struct route *r, struct wx_api *api,
                   const struct config *cfg);

/* Checks msg ({"msgtype":..., <msgtype>: {...}}, borrowed), reserves a send
 * in the user's window, calls WeChat. Returns 0 with res->status "sent" or
 * "queued" (a transient failure: `wxkf jobs` retries it); KF_EINVAL for a
 * refusal before WeChat (res->code says which); KF_EWECHAT when WeChat
 * refused it (res->errcode; status "failed", the send is given back);
 * KF_EBACKEND when Redis is down (nothing was reserved or sent). by = the
 * agent, or "" for an admin. */
KF_WUR int outbound_send(struct outbound *ob, const char *by,
                         struct kf_str openid, json_t *msg, int64_t now_ms,
                         struct outbound_result *res);

struct outbound_counts {
    long sent, failed, retried;
};

/* `wxkf jobs`: sends what is due in the outbox (bounded by limit). */
KF_WUR int outbound_deliver_due(struct outbound *ob, int64_t now_ms,
                                long limit, struct outbound_counts *c);

#endif
