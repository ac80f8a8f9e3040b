/* callback: WeChat's callback to our server URL, end to end — URL
 * verification (GET) and message/event pushes (POST) in plaintext,
 * compatible and safe mode: signature and timestamp checks, decryption
 * with the current or previous EncodingAESKey, XML parsing, the passive
 * reply, the one Redis round trip that deduplicates and records the push,
 * and encryption of the reply. */
#ifndef CALLBACK_H
#define CALLBACK_H

#include <stdint.h>

#include "config.h"
#include "http.h"
#include "kf.h"
#include "route.h"
#include "wx_crypto.h"

#define CALLBACK_ECHOSTR_MAX 512

struct journal;

struct callback {
    const struct config *cfg;     /* borrowed; outlives the callback */
    struct journal *journal;      /* borrowed, or NULL: where a callback
                                     goes while Redis is unreachable */
    struct route *route;          /* borrowed (its store is the
                                     callback's Redis); outlives it */
    struct wx_crypto crypto[2];   /* current, previous EncodingAESKey */
    int ncrypto;
    enum config_encoding encoding; /* what the account sends */
};

struct callback_req {
    const struct http_query *query;   /* borrowed */
    struct kf_str body;               /* borrowed */
    struct kf_str rid;                /* request id */
    int64_t now;                      /* unix seconds */
    int64_t now_ms;                   /* the same instant in ms (0: now) */
    int replay;                       /* 1: from the journal (not again) */
};

/* What happened, for the log line and the response (copies). */
struct callback_res {
    struct kf_buf body;               /* the response body */
    const char *content_type;
    int encrypted, duplicate;
    char openid[65], msgtype[24], event[32];
    struct route_decision decision;   /* routing outcome (route_ingest) */
    int journaled;                /* Redis was away: kept in the journal */
    int unreplicated;             /* WAIT fell short (wait_replicas) */
};

/* cfg must already be validated (config_load); route is initialised
 * (route_init) from the same cfg, and both outlive cb. A bad
 * EncodingAESKey -> KF_EAESKEY. */
KF_WUR int callback_init(struct callback *cb, const struct config *cfg,
                         struct route *route);
void callback_release(struct callback *cb);        /* safe twice */

void callback_res_init(struct callback_res *res);
void callback_res_release(struct callback_res *res);

/* GET: checks signature and timestamp; res->body = echostr. */
KF_WUR int callback_verify(struct callback *cb,
                           const struct callback_req *req,
                           struct callback_res *res);
/* POST: the whole push. [wechat] encoding decides what is taken: safe
 * refuses a plaintext push, plaintext an encrypted one (KF_EENCODING,
 * KF_ENOKEY without a key). The signed query (signature, timestamp,
 * nonce) is bound in Redis to the first message it brings, for as long
 * as its timestamp is accepted: the same query with another message is
 * KF_EREPLAY and nothing is stored. On 0 res->body holds the reply to
 * send. When Redis cannot be reached and cb->journal is set, the verified
 * push (the plaintext XML) is appended to the journal (durably) and
 * answered with [texts] fallback for a
 * user's message, "success" otherwise (res->journaled = 1); a replayed
 * request (req->replay) is never journaled again: KF_EBACKEND.
 * With [redis] wait_replicas, a callback whose write fewer replicas
 * confirmed is answered normally but only once it is also in the journal
 * (res->unreplicated = 1; KF_EBACKEND if it cannot be kept); a replayed
 * one is KF_EBACKEND until its write is confirmed (the replay stops and
 * keeps it). */
KF_WUR int callback_handle(struct callback *cb,
                           const struct callback_req *req,
                           struct callback_res *res);

struct journal_rec;
/* A journal record recorded again with its request id and time. A
 * verified record (the push as it passed every check) is parsed and
 * recorded without those checks: a Token, EncodingAESKey, original_id or
 * max_body changed since cannot refuse it. A record of the older format
 * (the request as it arrived) goes through callback_handle again
 * (req->replay = 1). KF_EBACKEND: Redis is away (or, with wait_replicas,
 * no replica confirmed); another error: it cannot be replayed. */
KF_WUR int callback_replay(struct callback *cb, const struct journal_rec *jr,
                           struct callback_res *res);

#endif
