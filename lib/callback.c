/* callback: the WeChat push pipeline. */
#include "callback.h"

#include "journal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "wx_reply.h"
#include "wx_sign.h"
#include "wx_xml.h"

#include "banned.h"

#define PAYLOAD_MAX (2 * WX_XML_MAX + 4096)   /* JSON escaping doubles */
#define REPLY_MAX (16 * 1024)

int callback_init(struct callback *cb, const struct config *cfg,
                  struct route *route)
{
    const char *keys[2] = { cfg->wechat.encoding_aes_key,
                            cfg->wechat.encoding_aes_key_prev };
    int i, rc;

    memset(cb, 0, sizeof(*cb));
    cb->cfg = cfg;
    cb->route = route;
    cb->encoding = config_encoding(cfg);
    for (i = 0; i < 2 && keys[i] && *keys[i]; i++) {
        rc = wx_crypto_init(&cb->crypto[i], kf_str_c(keys[i]),
                            kf_str_c(cfg->wechat.app_id));
        if (rc < 0) {
            callback_release(cb);
            return rc;
        }
        cb->ncrypto = i + 1;
    }
    return 0;
}

void callback_release(struct callback *cb)
{
    int i;

    for (i = 0; i < cb->ncrypto; i++)
        wx_crypto_release(&cb->crypto[i]);
    cb->ncrypto = 0;
}

void callback_res_init(struct callback_res *res)
{
    memset(res, 0, sizeof(*res));
    kf_buf_init(&res->body, REPLY_MAX);
    res->content_type = "text/plain; charset=utf-8";
}

void callback_res_release(struct callback_res *res)
{
    kf_buf_release(&res->body);
}

static struct kf_str param(const struct callback_req *req, const char *name)
{
    struct kf_str v;

    http_query_get(req->query, name, &v);
    return v;
}

/* The URL signature (every GET and POST) and the timestamp window. */
static int check_signature(const struct callback *cb,
                           const struct callback_req *req)
{
    int rc = wx_sign_verify(kf_str_c(cb->cfg->wechat.token),
                            param(req, "timestamp"), param(req, "nonce"),
                            param(req, "signature"));

    if (rc == 0)
        rc = wx_sign_check_time(param(req, "timestamp"), req->now,
                                (unsigned)cb->cfg->wechat.timestamp_window);
    return rc == KF_EPARSE ? KF_EBADSIG : rc;
}

int callback_verify(struct callback *cb, const struct callback_req *req,
                    struct callback_res *res)
{
    struct kf_str echostr = param(req, "echostr");
    int rc = check_signature(cb, req);

    if (rc < 0)
        return rc;
    if (echostr.len == 0 || echostr.len > CALLBACK_ECHOSTR_MAX)
        return KF_EINVAL;
    return kf_buf_append_str(&res->body, echostr);
}

/* Safe/compatible mode: check msg_signature over Encrypt, decrypt with the
 * current key and then the previous one (key rotation). *used is the key
 * that worked, so the reply is encrypted with it. */
static int decrypt(struct callback *cb, const struct callback_req *req,
                   const struct wx_msg *env, struct kf_buf *plain, int *used)
{
    int rc = KF_ENOKEY, i;

    if (env->encrypt.len == 0)
        return KF_EPARSE;
    rc = wx_sign_verify_msg(kf_str_c(cb->cfg->wechat.token),
                            param(req, "timestamp"), param(req, "nonce"),
                            env->encrypt, param(req, "msg_signature"));
    if (rc < 0)
        return rc;
    if (cb->ncrypto == 0)
        return KF_ENOKEY;
    for (i = 0; i < cb->ncrypto; i++) {
        int r = wx_crypto_decrypt(&cb->crypto[i], env->encrypt, plain, NULL);

        if (r == 0) {
            *used = i;
            return 0;
        }
        if (i == 0)
            rc = r;       /* report what the current key said */
    }
    return rc;
}

/* What a push must hold whatever the configuration. */
static int check_fields(const struct wx_msg *m)
{
    if (m->msgtype.len == 0 || m->to_user.len == 0 || m->create_time == 0)
        return KF_EPARSE;
    /* Bounded here so the dedupe key, the reply and its encryption always
     * fit: nothing can fail after the push is recorded. */
    if (!kf_openid_ok(m->from_user) || m->to_user.len > KF_OPENID_MAX ||
        m->msgtype.len > 32 || m->event_name.len > 64)
        return KF_EINVAL;
    return 0;
}

/* A queue position (1 = next) as the number of users ahead of it:
 * what {n} says in [texts] queued and no_agent ("您前面还有 {n} 位"). */
static struct kf_str users_ahead(long pos, char buf[24])
{
    snprintf(buf, 24, "%ld", pos > 1 ? pos - 1 : 0);
    return kf_str_c(buf);
}

static int validate(const struct callback *cb, const struct wx_msg *m)
{
    const char *gh = cb->cfg->wechat.original_id;
    int rc = check_fields(m);

    if (rc == 0 && *gh && !kf_str_eq_c(m->to_user, gh))
        rc = KF_EACCOUNT;
    return rc;
}

/* Replaces every "{n}" in tpl with n. */
static int fill(const char *tpl, struct kf_str n, struct kf_buf *out)
{
    const char *p;
    int rc = 0;

    while (rc == 0 && (p = strstr(tpl, "{n}")) != NULL) {
        rc = kf_buf_append(out, tpl, (size_t)(p - tpl));
        if (rc == 0)
            rc = kf_buf_append_str(out, n);
        tpl = p + 3;
    }
    return rc < 0 ? rc : kf_buf_append_c(out, tpl);
}

/* The passive reply for a routing decision (the same one for a retry):
 * a text for welcome / queued / full / offline,
 * transfer_customer_service to the chosen agent in wechat_kf mode, else
 * "success". */
static int build_reply(const struct callback *cb, const struct wx_msg *m,
                       const struct route_decision *d, int64_t now,
                       struct kf_buf *out)
{
    const struct config *c = cb->cfg;
    char num[24];
    struct kf_buf text;
    struct wx_reply r;
    int rc = 0;

    kf_buf_init(&text, REPLY_MAX);
    memset(&r, 0, sizeof(r));
    r.type = WX_REPLY_SUCCESS;
    r.to_user = m->from_user;
    r.from_user = m->to_user;
    r.create_time = (uint64_t)now;
    if (d->kind == ROUTE_WELCOME && *c->texts.welcome) {
        r.type = WX_REPLY_TEXT;
        r.content = kf_str_c(c->texts.welcome);
    } else if (d->kind == ROUTE_QUEUED && *c->texts.queued) {
        rc = fill(c->texts.queued, users_ahead(d->n, num), &text);
        r.type = WX_REPLY_TEXT;
        r.content = kf_buf_str(&text);
    } else if (d->kind == ROUTE_FULL && *c->texts.queue_full) {
        snprintf(num, sizeof(num), "%ld", d->n);
        rc = fill(c->texts.queue_full, kf_str_c(num), &text);
        r.type = WX_REPLY_TEXT;
        r.content = kf_buf_str(&text);
    } else if (d->kind == ROUTE_OFFLINE && *c->texts.no_agent) {
        rc = fill(c->texts.no_agent, users_ahead(d->n, num), &text);
        r.type = WX_REPLY_TEXT;
        r.content = kf_buf_str(&text);
    } else if (d->kind == ROUTE_JOURNALED && *c->texts.fallback) {
        r.type = WX_REPLY_TEXT;
        r.content = kf_str_c(c->texts.fallback);
    } else if ((d->kind == ROUTE_ASSIGNED || d->kind == ROUTE_STICKY) &&
               cb->route->wechat_kf) {
        r.type = WX_REPLY_TRANSFER;
        r.kf_account = kf_str_c(d->agent);
    }
    if (rc == 0)
        rc = wx_reply_build(&r, out);
    kf_buf_release(&text);
    return rc;
}

static int payload_json(const struct wx_msg *m, struct kf_buf *out)
{
    json_t *o = json_object();
    char *s = NULL;
    size_t i;
    int rc = 0;

    if (!o)
        return KF_ENOMEM;
    for (i = 0; i < m->nfields && rc == 0; i++) {
        char name[128];
        json_t *v;

        if (m->fields[i].name.len >= sizeof(name)) {
            rc = KF_EINVAL;          /* no WeChat element is that long */
            break;
        }
        memcpy(name, m->fields[i].name.p, m->fields[i].name.len);
        name[m->fields[i].name.len] = '\0';
        if (json_object_get(o, name))
            continue;                /* the first one wins, as in wx_xml */
        v = json_stringn(m->fields[i].value.p, m->fields[i].value.len);
        if (!v || json_object_set_new(o, name, v) < 0)
            rc = KF_ENOMEM;
    }
    if (rc == 0) {
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        rc = s ? kf_buf_append_c(out, s) : KF_ENOMEM;
    }
    free(s);
    json_decref(o);
    return rc;
}

/* How long a signed query stays bound to its message: as long as its
 * timestamp can pass the window (first seen up to a window early, then
 * accepted up to a window late), plus a minute of clock skew between
 * hosts. Without a window a signature never expires: two days. */
static long binding_ttl(const struct config *c)
{
    long w = c->wechat.timestamp_window > 0 ? c->wechat.timestamp_window
                                            : 86400;

    return 2 * w + 60;
}

/* "<signature>:<timestamp>:<nonce>" (checked: 40 hex digits, a decimal
 * number, then the nonce; so the split is unambiguous): the key the
 * message this signed query brings is bound to. */
static int binding_key(const struct callback_req *req, struct kf_buf *key)
{
    int rc = kf_buf_append_str(key, param(req, "signature"));

    if (rc == 0)
        rc = kf_buf_append_c(key, ":");
    if (rc == 0)
        rc = kf_buf_append_str(key, param(req, "timestamp"));
    if (rc == 0)
        rc = kf_buf_append_c(key, ":");
    if (rc == 0)
        rc = kf_buf_append_str(key, param(req, "nonce"));
    return rc;
}

/* Binding + dedupe + routing + record, in one Redis round trip. skey is
 * the signed query's binding key (binding_key(); empty: none, a journal
 * record kept before keys were journaled); msg is the message as
 * received (decrypted in safe mode), whose hash the key is bound to. */
static int record(struct callback *cb, const struct callback_req *req,
                  struct kf_str skey, struct kf_str msg,
                  const struct wx_msg *m, struct route_decision *decision,
                  int *dup, int *replicated)
{
    struct kf_buf key, payload;
    char ctime[24], msgid[24], recv[24], hash[WX_SIGN_MSG_HEX];
    struct route_ingest in;
    int rc;

    kf_buf_init(&key, 512);
    kf_buf_init(&payload, PAYLOAD_MAX);
    snprintf(ctime, sizeof(ctime), "%llu", (unsigned long long)m->create_time);
    snprintf(msgid, sizeof(msgid), "%llu", (unsigned long long)m->msgid);
    snprintf(recv, sizeof(recv), "%lld",
             (long long)(req->now_ms ? req->now_ms : kf_wall_ms()));
    rc = wx_xml_dedupe_key(m, &key);
    if (rc == 0)
        rc = wx_sign_msg_hash(msg, hash);
    if (rc == 0)
        rc = payload_json(m, &payload);
    if (rc == 0) {
        const struct store_field f[] = {
            { KF_STR("type"), KF_STR("msg_in") },
            { KF_STR("key"), kf_buf_str(&key) },
            { KF_STR("openid"), m->from_user },
            { KF_STR("msgtype"), m->msgtype },
            { KF_STR("event"), m->event_name },
            { KF_STR("msgid"), m->has_msgid ? kf_str_c(msgid) : KF_STR("") },
            { KF_STR("create_time"), kf_str_c(ctime) },
            { KF_STR("recv_ms"), kf_str_c(recv) },
            { KF_STR("rid"), req->rid },
            { KF_STR("payload"), kf_buf_str(&payload) },
        };

        memset(&in, 0, sizeof(in));
        in.dedupe_key = kf_buf_str(&key);
        in.openid = m->from_user;
        route_classify(cb->route, m, &in.action, &in.group);
        in.window = route_window(m);
        in.base_decision = m->type == WX_MSG_EVENT &&
                                   m->event == WX_EV_SUBSCRIBE &&
                                   *cb->cfg->texts.welcome
                               ? "welcome" : "none";
        in.kf1 = m->event == WX_EV_KF_SWITCH_SESSION ? m->from_kf_account
                                                     : m->kf_account;
        in.kf2 = m->to_kf_account;
        in.fields = f;
        in.nfields = sizeof(f) / sizeof(f[0]);
        in.now_ms = req->now_ms ? req->now_ms : kf_wall_ms();
        in.sig_key = skey;
        in.msg_hash = hash;
        in.sig_ttl = binding_ttl(cb->cfg);
        rc = route_ingest(cb->route, &in, decision, dup, replicated);
    }
    kf_buf_release(&key);
    kf_buf_release(&payload);
    return rc;
}

/* Safe-mode reply: encrypt, sign with a fresh nonce, wrap. */
static int seal(struct callback *cb, int key, const struct callback_req *req,
                struct kf_str reply, struct kf_buf *out)
{
    struct kf_buf enc;
    unsigned char rnd[4];
    char nonce[16], ts[24], sig[WX_SIGN_HEX];
    struct kf_str parts[4];
    int rc;

    kf_buf_init(&enc, REPLY_MAX * 2);
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return KF_ECRYPTO;
    snprintf(nonce, sizeof(nonce), "%u",
             (unsigned)(rnd[0] | rnd[1] << 8 | rnd[2] << 16 |
                        (unsigned)(rnd[3] & 0x7f) << 24));
    snprintf(ts, sizeof(ts), "%lld", (long long)req->now);
    rc = wx_crypto_encrypt(&cb->crypto[key], reply, NULL, &enc);
    if (rc < 0)
        goto out;
    parts[0] = kf_str_c(cb->cfg->wechat.token);
    parts[1] = kf_str_c(ts);
    parts[2] = kf_str_c(nonce);
    parts[3] = kf_buf_str(&enc);
    rc = wx_sign_compute(parts, 4, sig);
    if (rc == 0) {
        kf_buf_reset(out);
        rc = wx_reply_envelope(kf_buf_str(&enc), kf_str_c(sig),
                               (uint64_t)req->now, kf_str_c(nonce), out);
    }
out:
    kf_buf_release(&enc);
    return rc;
}

static void describe(struct callback_res *res, const struct wx_msg *m)
{
    snprintf(res->openid, sizeof(res->openid), "%.*s", (int)m->from_user.len,
             m->from_user.p);
    snprintf(res->msgtype, sizeof(res->msgtype), "%s",
             wx_xml_msgtype_name(m->type));
    snprintf(res->event, sizeof(res->event), "%s",
             wx_xml_event_name(m->event));
}

static int is_success(struct kf_str s)
{
    return s.len == 0 || kf_str_eq_c(s, "success");
}

/* [wechat] encoding: only what the account sends. Plaintext mode with
 * no key at all leaves an encrypted push to decrypt() (KF_ENOKEY). */
static int check_encoding(const struct callback *cb, int encrypted)
{
    if (!encrypted && cb->encoding == CONFIG_ENC_SAFE)
        return KF_EENCODING;
    if (encrypted && cb->encoding == CONFIG_ENC_PLAINTEXT && cb->ncrypto)
        return KF_EENCODING;
    return 0;
}

static int journal_usable(const struct callback *cb)
{
    return cb->journal && cb->journal->enabled;
}

int callback_handle(struct callback *cb, const struct callback_req *req,
                    struct callback_res *res)
{
    struct kf_str etype = param(req, "encrypt_type");
    struct wx_msg *env = NULL, *m = NULL;
    struct kf_buf plain, reply, skey;
    struct journal_rec jr = { { "", 0 }, req->body, req->rid, req->now,
                              req->now_ms, 1 };
    int rc, key = 0, replicated = 1;

    kf_buf_init(&plain, WX_XML_MAX);
    kf_buf_init(&reply, REPLY_MAX);
    kf_buf_init(&skey, 2 * WX_SIGN_PART_MAX + 64);
    rc = check_signature(cb, req);
    if (rc == 0)
        rc = binding_key(req, &skey);
    if (rc < 0)
        goto out;
    jr.query = kf_buf_str(&skey);   /* replay binds the query again */
    if (req->body.len > (size_t)cb->cfg->http.max_body) {
        rc = KF_ETOOBIG;
        goto out;
    }
    res->encrypted = kf_str_eq_c(etype, "aes");
    if (!res->encrypted && etype.len && !kf_str_eq_c(etype, "raw")) {
        rc = KF_EINVAL;         /* 400 invalid_field, not a body problem */
        goto out;
    }
    rc = check_encoding(cb, res->encrypted);
    if (rc < 0)
        goto out;
    rc = wx_xml_parse(req->body, &env, NULL);
    if (rc == 0 && res->encrypted) {
        rc = decrypt(cb, req, env, &plain, &key);
        jr.body = kf_buf_str(&plain);   /* the journal keeps what we read */
        if (rc == 0)
            rc = wx_xml_parse(kf_buf_str(&plain), &m, NULL);
    } else if (rc == 0) {
        m = env;
        env = NULL;
    }
    if (rc == 0)
        rc = validate(cb, m);
    if (rc < 0)
        goto out;
    describe(res, m);
    rc = record(cb, req, kf_buf_str(&skey),
                res->encrypted ? kf_buf_str(&plain) : req->body, m,
                &res->decision, &res->duplicate, &replicated);
    if (rc == 0 && !replicated) {
        /* [redis] wait_replicas: the master has it, too few replicas do.
         * Acknowledged only with a copy on disk, kept until a replay sees
         * it replicated (a lost master cannot lose it then). */
        res->unreplicated = 1;
        if (req->replay)
            rc = KF_EBACKEND;
        else if (!journal_usable(cb) || journal_append(cb->journal, &jr) < 0)
            rc = KF_EBACKEND;
    } else if (rc == KF_EBACKEND && !req->replay && journal_usable(cb)) {
        /* acknowledged only once it is on disk */
        if (journal_append(cb->journal, &jr) == 0) {
            res->journaled = 1;
            memset(&res->decision, 0, sizeof(res->decision));
            res->decision.kind = *route_window(m) == 'm' ? ROUTE_JOURNALED
                                                         : ROUTE_NONE;
            rc = 0;
        }
    }
    if (rc == 0)    /* the reply of a retry is the first one's */
        rc = build_reply(cb, m, &res->decision,
                         res->decision.time > 0 ? res->decision.time
                                                : (int64_t)req->now,
                         &reply);
    if (rc < 0)
        goto out;
    if (is_success(kf_buf_str(&reply)))
        rc = kf_buf_append_c(&res->body, "success");
    else if (res->encrypted)
        rc = seal(cb, key, req, kf_buf_str(&reply), &res->body);
    else
        rc = kf_buf_append_str(&res->body, kf_buf_str(&reply));
    if (rc == 0 && !is_success(kf_buf_str(&res->body)))
        res->content_type = "text/xml; charset=utf-8";
out:
    wx_xml_msg_free(env);
    wx_xml_msg_free(m);
    kf_buf_release(&skey);
    kf_buf_release(&plain);
    kf_buf_release(&reply);
    return rc;
}

/* A verified record: recorded again without the checks it passed when it
 * arrived (the Token, the keys, original_id or max_body may have changed
 * since; WeChat got a 200 for it). Its signed query's binding key comes
 * with it (jr->query), so a second message journaled under the same
 * signed URL is refused at replay like it would have been live. */
static int replay_verified(struct callback *cb, const struct journal_rec *jr,
                           struct callback_res *res)
{
    struct callback_req req;
    struct wx_msg *m = NULL;
    int rc, replicated = 1;

    memset(&req, 0, sizeof(req));
    req.body = jr->body;
    req.rid = jr->rid;
    req.now = jr->now;
    req.now_ms = jr->now_ms;
    req.replay = 1;
    rc = wx_xml_parse(jr->body, &m, NULL);
    if (rc == 0)
        rc = check_fields(m);
    if (rc == 0) {
        describe(res, m);
        rc = record(cb, &req, jr->query, jr->body, m, &res->decision,
                    &res->duplicate, &replicated);
    }
    if (rc == 0 && !replicated) {
        res->unreplicated = 1;      /* kept until a replica has it */
        rc = KF_EBACKEND;
    }
    wx_xml_msg_free(m);
    return rc;
}

int callback_replay(struct callback *cb, const struct journal_rec *jr,
                    struct callback_res *res)
{
    struct http_query q;
    struct callback_req req;
    int rc;

    if (jr->verified)
        return replay_verified(cb, jr, res);
    http_query_init(&q);
    rc = http_query_parse(&q, jr->query);
    if (rc == 0) {
        memset(&req, 0, sizeof(req));
        req.query = &q;
        req.body = jr->body;
        req.rid = jr->rid;
        req.now = jr->now;
        req.now_ms = jr->now_ms;
        req.replay = 1;
        rc = callback_handle(cb, &req, res);
    }
    http_query_release(&q);
    return rc;
}
