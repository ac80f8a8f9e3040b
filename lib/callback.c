/* callback: the WeChat push pipeline. */
#include "callback.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "wx_reply.h"
#include "wx_sign.h"
#include "wx_xml.h"

#include "banned.h"

#define OPENID_MAX 64
#define PAYLOAD_MAX (WX_XML_MAX + 4096)
#define REPLY_MAX (16 * 1024)

int callback_init(struct callback *cb, const struct config *cfg,
                  struct store *store)
{
    const char *keys[2] = { cfg->wechat.encoding_aes_key,
                            cfg->wechat.encoding_aes_key_prev };
    int i, rc;

    memset(cb, 0, sizeof(*cb));
    cb->cfg = cfg;
    cb->store = store;
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

static int valid_openid(struct kf_str s)
{
    size_t i;

    if (s.len == 0 || s.len > OPENID_MAX)
        return 0;
    for (i = 0; i < s.len; i++) {
        char c = s.p[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int validate(const struct callback *cb, const struct wx_msg *m)
{
    const char *gh = cb->cfg->wechat.original_id;

    if (m->msgtype.len == 0 || m->to_user.len == 0 || m->create_time == 0)
        return KF_EPARSE;
    if (!valid_openid(m->from_user))
        return KF_EINVAL;
    if (*gh && !kf_str_eq_c(m->to_user, gh))
        return KF_EACCOUNT;
    return 0;
}

/* The passive reply we would give on a first delivery (pre-encryption). */
static int build_reply(const struct callback *cb, const struct wx_msg *m,
                       int64_t now, struct kf_buf *out)
{
    struct wx_reply r;

    memset(&r, 0, sizeof(r));
    r.type = WX_REPLY_SUCCESS;
    if (m->type == WX_MSG_EVENT && m->event == WX_EV_SUBSCRIBE &&
        *cb->cfg->texts.welcome) {
        r.type = WX_REPLY_TEXT;
        r.content = kf_str_c(cb->cfg->texts.welcome);
    }
    r.to_user = m->from_user;
    r.from_user = m->to_user;
    r.create_time = (uint64_t)now;
    return wx_reply_build(&r, out);
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

        if (m->fields[i].name.len >= sizeof(name))
            continue;
        memcpy(name, m->fields[i].name.p, m->fields[i].name.len);
        name[m->fields[i].name.len] = '\0';
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

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Dedupe + record + remembered reply, in one Redis round trip. */
static int record(struct callback *cb, const struct callback_req *req,
                  const struct wx_msg *m, struct kf_str reply,
                  struct kf_buf *stored, int *dup)
{
    struct kf_buf key, payload;
    char ctime[24], msgid[24], recv[24];
    int rc;

    kf_buf_init(&key, 512);
    kf_buf_init(&payload, PAYLOAD_MAX);
    snprintf(ctime, sizeof(ctime), "%llu", (unsigned long long)m->create_time);
    snprintf(msgid, sizeof(msgid), "%llu", (unsigned long long)m->msgid);
    snprintf(recv, sizeof(recv), "%lld", (long long)wall_ms());
    rc = wx_xml_dedupe_key(m, &key);
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

        rc = store_ingest(cb->store, kf_buf_str(&key),
                          cb->cfg->wechat.dedupe_ttl, reply, f,
                          sizeof(f) / sizeof(f[0]), stored, dup);
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

int callback_handle(struct callback *cb, const struct callback_req *req,
                    struct callback_res *res)
{
    struct kf_str etype = param(req, "encrypt_type");
    struct wx_msg *env = NULL, *m = NULL;
    struct kf_buf plain, reply;
    int rc, key = 0;

    kf_buf_init(&plain, WX_XML_MAX);
    kf_buf_init(&reply, REPLY_MAX);
    rc = check_signature(cb, req);
    if (rc < 0)
        goto out;
    if (req->body.len > (size_t)cb->cfg->http.max_body) {
        rc = KF_ETOOBIG;
        goto out;
    }
    res->encrypted = kf_str_eq_c(etype, "aes");
    if (!res->encrypted && etype.len && !kf_str_eq_c(etype, "raw")) {
        rc = KF_EPARSE;
        goto out;
    }
    rc = wx_xml_parse(req->body, &env, NULL);
    if (rc == 0 && res->encrypted) {
        rc = decrypt(cb, req, env, &plain, &key);
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
    rc = build_reply(cb, m, req->now, &reply);
    if (rc == 0)
        rc = record(cb, req, m, kf_buf_str(&reply), &res->body,
                    &res->duplicate);
    if (rc < 0 || is_success(kf_buf_str(&res->body)))
        goto out;
    res->content_type = "text/xml; charset=utf-8";
    if (res->encrypted) {
        kf_buf_reset(&reply);
        rc = kf_buf_append_str(&reply, kf_buf_str(&res->body));
        if (rc == 0)
            rc = seal(cb, key, req, kf_buf_str(&reply), &res->body);
    }
out:
    wx_xml_msg_free(env);
    wx_xml_msg_free(m);
    kf_buf_release(&plain);
    kf_buf_release(&reply);
    return rc;
}
