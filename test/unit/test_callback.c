/* Tests of lib/callback: the whole push pipeline (signature, decryption,
 * parsing, reply, the Redis round trip, reply encryption) against the
 * vectors and a private redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "callback.h"
#include "journal.h"
#include "route.h"
#include "testutil.h"
#include "wx_sign.h"
#include "wx_xml.h"

#define APPID "wx62dd79ea990faa89"
#define TOKEN "kfDemoToken2024"
#define AESKEY "GnuI7ALyFFPzKoRDeoH4AjRVnTmwiTVawEMOHmFkHBD"
#define OTHERKEY "hH8uaXHPRkNIubnN1ijh2DhQ5AIFyjQJotezXqlz0VU"
#define GHID "gh_3f2a9c1d7e5b"
#define STREAM "wxkf:{" APPID "}:events"
#define WELCOME "欢迎 ]]> <b>&"

struct fixture {
    struct tu_redis redis;
    struct config cfg;
    struct store store;
    struct route route;         /* the callback borrows it */
    struct callback cb;
    int cb_ready;
    int replayed_dups;          /* replay_rec: records already in Redis */
};

static void set(char **field, const char *v)
{
    free(*field);
    *field = strdup(v);
    assert_non_null(*field);
}

static int setup(void **st)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char url[64];

    assert_non_null(f);
    tu_redis_start(&f->redis);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", f->redis.port);
    config_init(&f->cfg);
    set(&f->cfg.wechat.app_id, APPID);
    set(&f->cfg.wechat.token, TOKEN);
    set(&f->cfg.wechat.encoding_aes_key, AESKEY);
    /* plaintext and encrypted pushes alike; the tests of the encoding
     * itself set it */
    set(&f->cfg.wechat.encoding, "compatible");
    set(&f->cfg.wechat.original_id, GHID);
    set(&f->cfg.texts.welcome, WELCOME);
    /* No agents exist here: routing queues every user; with these texts
     * empty the answer stays "success", as before routing existed. */
    set(&f->cfg.texts.no_agent, "");
    set(&f->cfg.texts.queued, "");
    set(&f->cfg.redis.url, url);
    f->cfg.wechat.timestamp_window = 0;    /* vectors are from 2024 */
    assert_int_equal(store_init(&f->store, url, APPID, 500, 1000), 0);
    *st = f;
    return 0;
}

static void ready(struct fixture *f)
{
    assert_int_equal(route_init(&f->route, &f->store, &f->cfg), 0);
    assert_int_equal(callback_init(&f->cb, &f->cfg, &f->route), 0);
    f->cb_ready = 1;
}

static int teardown(void **st)
{
    struct fixture *f = *st;

    if (f->cb_ready)
        callback_release(&f->cb);
    store_release(&f->store);
    config_release(&f->cfg);
    tu_redis_stop(&f->redis);
    free(f);
    return 0;
}

static long redis_long(struct fixture *f, const char *a, const char *b)
{
    const char *argv[] = { a, b, NULL };
    char *s = tu_redis_cmd(&f->redis, argv);
    long n = strtol(s, NULL, 10);

    free(s);
    return n;
}

/* Messages recorded (routing adds other events to the stream). */
static long xlen(struct fixture *f)
{
    const char *argv[] = {
        "EVAL",
        "local n = 0 for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-',"
        " '+')) do if e[2][2] == 'msg_in' then n = n + 1 end end return n",
        "1", STREAM, NULL };
    char *s = tu_redis_cmd(&f->redis, argv);
    long n = strtol(s, NULL, 10);

    free(s);
    return n;
}

/* Runs one push; the query string is built from NULL-terminated pairs. */
static int push(struct fixture *f, const char *qs, const char *body,
                int64_t now, struct callback_res *res)
{
    struct http_query q;
    struct callback_req req;
    int rc;

    http_query_init(&q);
    assert_int_equal(http_query_parse(&q, kf_str_c(qs)), 0);
    memset(&req, 0, sizeof(req));
    req.query = &q;
    req.body = kf_str_c(body);
    req.rid = KF_STR("test-rid");
    req.now = now;
    req.now_ms = now * 1000;
    rc = callback_handle(&f->cb, &req, res);
    http_query_release(&q);
    return rc;
}

/* A validly signed plaintext query for timestamp ts. */
static void signed_qs(char *out, size_t n, const char *ts, const char *nonce)
{
    struct kf_str parts[3] = { KF_STR(TOKEN), kf_str_c(ts),
                               kf_str_c(nonce) };
    char sig[WX_SIGN_HEX];

    assert_int_equal(wx_sign_compute(parts, 3, sig), 0);
    snprintf(out, n, "signature=%s&timestamp=%s&nonce=%s", sig, ts, nonce);
}

/* A validly signed safe-mode query over encrypt. */
static void signed_aes_qs(char *out, size_t n, const char *ts,
                          const char *nonce, const char *encrypt)
{
    struct kf_str parts[4] = { KF_STR(TOKEN), kf_str_c(ts), kf_str_c(nonce),
                               kf_str_c(encrypt) };
    char base[256], msig[WX_SIGN_HEX];

    signed_qs(base, sizeof(base), ts, nonce);
    assert_int_equal(wx_sign_compute(parts, 4, msig), 0);
    snprintf(out, n, "%s&encrypt_type=aes&msg_signature=%s", base, msig);
}

/* A safe-mode push of xml (encrypted with the current key, signed). */
/* Safe-mode body of xml, encrypted afresh (a new random prefix each
 * call), and its signed query. */
static void seal_push(struct fixture *f, const char *xml, const char *ts,
                      const char *nonce, char *qs, size_t qn, char *body,
                      size_t bn)
{
    struct kf_buf enc;

    kf_buf_init(&enc, 65536);
    assert_int_equal(wx_crypto_encrypt(&f->cb.crypto[0], kf_str_c(xml), NULL,
                                       &enc), 0);
    snprintf(body, bn, "<xml><ToUserName><![CDATA[" GHID "]]></ToUserName>"
             "<Encrypt><![CDATA[%s]]></Encrypt></xml>", enc.p);
    signed_aes_qs(qs, qn, ts, nonce, enc.p);
    kf_buf_release(&enc);
}

static int push_safe(struct fixture *f, const char *xml, const char *ts,
                     const char *nonce, int64_t now, struct callback_res *res)
{
    char qs[512], env[2048];

    seal_push(f, xml, ts, nonce, qs, sizeof(qs), env, sizeof(env));
    return push(f, qs, env, now, res);
}

static char *vector_qs(const json_t *v)
{
    const json_t *q = json_object_get(v, "query");
    const char *k;
    json_t *val;
    char *out = calloc(1, 1024);

    assert_non_null(out);
    json_object_foreach((json_t *)q, k, val) {
        size_t len = strlen(out);

        snprintf(out + len, 1024 - len, "%s%s=%s", len ? "&" : "", k,
                 json_string_value(val));
    }
    return out;
}

static void test_callback_accepts_every_inbound_safe_mode_vector(void **st)
{
    struct fixture *f = *st;
    json_t *all = tu_read_json(VEC("safe_mode.json")), *v;
    size_t i, n = 0;

    ready(f);
    json_array_foreach(all, i, v) {
        const char *mode[] = { "post_body_safe_mode",
                               "post_body_compatible_mode" };
        struct callback_res res;
        char *qs;
        int m;

        if (!json_object_get(v, "query"))
            continue;
        qs = vector_qs(v);
        for (m = 0; m < 2; m++) {       /* the second one is a retry */
            callback_res_init(&res);
            assert_int_equal(push(f, qs, tu_jstr(v, mode[m]), 0, &res), 0);
            assert_string_equal(res.body.p, "success");
            assert_int_equal(res.encrypted, 1);
            assert_int_equal(res.duplicate, m);
            assert_string_equal(res.openid, "oKx3Q6vW2mZ8yT1pR4sN7uJ0bC5d");
            callback_res_release(&res);
        }
        free(qs);
        n++;
        assert_int_equal(xlen(f), (long)n);
    }
    assert_int_equal(n, 3);
    json_decref(all);
}

/* The stage each negative vector must be rejected at (0: any stage). */
static int negative_rc(const char *kind, const char *id)
{
    if (strcmp(id, "S-neg-wrong-key") == 0 || strcmp(id, "S-neg-empty") == 0)
        return 0;
    if (!strcmp(kind, "url_signature") || !strcmp(kind, "msg_signature"))
        return KF_EBADSIG;
    if (!strcmp(kind, "base64"))
        return KF_EBASE64;
    if (!strcmp(kind, "ciphertext_length"))
        return KF_ECIPHER;
    if (!strcmp(kind, "padding"))
        return KF_EPADDING;
    if (!strcmp(kind, "length"))
        return KF_ELENGTH;
    if (!strcmp(kind, "appid"))
        return KF_EAPPID;
    fail_msg("unknown kind %s", kind);
    return 0;
}

static void test_callback_rejects_every_negative_vector_storing_nothing(
    void **st)
{
    struct fixture *f = *st;
    json_t *all = tu_read_json(VEC("negative.json")), *v;
    size_t i, n = 0;

    ready(f);
    json_array_foreach(all, i, v) {
        const char *kind = tu_jstr(v, "kind"), *id = tu_jstr(v, "id");
        struct callback_res res;
        char qs[512], body[4096];
        int rc, want;

        if (!strcmp(kind, "aes_key"))
            continue;           /* see the config test below */
        if (!strcmp(kind, "url_signature")) {
            snprintf(qs, sizeof(qs), "signature=%s&timestamp=%s&nonce=%s",
                     tu_jstr(v, "signature"), tu_jstr(v, "timestamp"),
                     tu_jstr(v, "nonce"));
            snprintf(body, sizeof(body), "<xml/>");
        } else {
            signed_qs(qs, sizeof(qs), tu_jstr(v, "timestamp"),
                      tu_jstr(v, "nonce"));
            snprintf(qs + strlen(qs), sizeof(qs) - strlen(qs),
                     "&encrypt_type=aes&msg_signature=%s",
                     tu_jstr(v, "msg_signature"));
            snprintf(body, sizeof(body),
                     "<xml><ToUserName><![CDATA[" GHID "]]></ToUserName>"
                     "<Encrypt><![CDATA[%s]]></Encrypt></xml>",
                     tu_jstr(v, "encrypt"));
        }
        callback_res_init(&res);
        rc = push(f, qs, body, 0, &res);
        want = negative_rc(json_string_value(json_object_get(
                               v, "strict_reference_result"))
                               ? tu_jstr(v, "strict_reference_result")
                               : kind, id);
        if (rc == 0 || (want && rc != want))
            fail_msg("%s: got %d (%s), want %d", id, rc, kf_strerror(rc),
                     want);
        callback_res_release(&res);
        n++;
    }
    assert_true(n >= 20);
    assert_int_equal(redis_long(f, "XLEN", STREAM), 0);
    assert_int_equal(redis_long(f, "DBSIZE", NULL), 0);
    json_decref(all);
}

static void test_callback_init_rejects_invalid_aes_keys(void **st)
{
    struct fixture *f = *st;
    json_t *all = tu_read_json(VEC("negative.json")), *v;
    size_t i, n = 0;

    assert_int_equal(route_init(&f->route, &f->store, &f->cfg), 0);
    json_array_foreach(all, i, v) {
        if (strcmp(tu_jstr(v, "kind"), "aes_key"))
            continue;
        set(&f->cfg.wechat.encoding_aes_key, tu_jstr(v, "encoding_aes_key"));
        assert_int_equal(callback_init(&f->cb, &f->cfg, &f->route),
                         KF_EAESKEY);
        n++;
    }
    assert_int_equal(n, 3);
    json_decref(all);
}

/* Decrypts and verifies an encrypted reply envelope; returns the
 * plaintext reply parsed. */
static struct wx_msg *open_envelope(struct fixture *f, const char *env)
{
    struct wx_msg *e = NULL, *m = NULL;
    struct kf_str enc, sig, ts, nonce;
    struct kf_buf plain;

    kf_buf_init(&plain, 65536);
    assert_int_equal(wx_xml_parse(kf_str_c(env), &e, NULL), 0);
    assert_int_equal(wx_xml_field(e, "Encrypt", &enc), 0);
    assert_int_equal(wx_xml_field(e, "MsgSignature", &sig), 0);
    assert_int_equal(wx_xml_field(e, "TimeStamp", &ts), 0);
    assert_int_equal(wx_xml_field(e, "Nonce", &nonce), 0);
    assert_int_equal(wx_sign_verify_msg(KF_STR(TOKEN), ts, nonce, enc, sig),
                     0);
    assert_int_equal(wx_crypto_decrypt(&f->cb.crypto[0], enc, &plain, NULL),
                     0);
    assert_int_equal(wx_xml_parse(kf_buf_str(&plain), &m, NULL), 0);
    wx_xml_msg_free(e);
    kf_buf_release(&plain);
    return m;
}

static char *subscribe_xml(const char *ctime)
{
    char *b = malloc(512);

    assert_non_null(b);
    snprintf(b, 512,
             "<xml><ToUserName><![CDATA[" GHID "]]></ToUserName>"
             "<FromUserName><![CDATA[oNewFollower_1]]></FromUserName>"
             "<CreateTime>%s</CreateTime><MsgType><![CDATA[event]]>"
             "</MsgType><Event><![CDATA[subscribe]]></Event></xml>",
             ctime);
    return b;
}

static void test_callback_welcomes_a_new_follower_in_plaintext(void **st)
{
    struct fixture *f = *st;
    struct callback_res res;
    struct wx_msg *m = NULL;
    char qs[256], *body = subscribe_xml("1716300000");

    ready(f);
    signed_qs(qs, sizeof(qs), "1716300001", "42");
    callback_res_init(&res);
    assert_int_equal(push(f, qs, body, 1716300001, &res), 0);
    assert_string_equal(res.content_type, "text/xml; charset=utf-8");
    assert_int_equal(wx_xml_parse(kf_buf_str(&res.body), &m, NULL), 0);
    assert_true(kf_str_eq_c(m->content, WELCOME));
    assert_true(kf_str_eq_c(m->to_user, "oNewFollower_1"));
    assert_true(kf_str_eq_c(m->from_user, GHID));
    assert_true(kf_str_eq_c(m->msgtype, "text"));
    assert_int_equal(m->create_time, 1716300001);
    wx_xml_msg_free(m);
    callback_res_release(&res);
    free(body);
}

static void test_callback_encrypts_the_welcome_in_safe_mode(void **st)
{
    struct fixture *f = *st;
    struct kf_buf enc;
    struct callback_res res;
    struct wx_msg *m;
    char qs[512], body[2048], *xml = subscribe_xml("1716300100");
    int i;

    ready(f);
    kf_buf_init(&enc, 65536);
    assert_int_equal(wx_crypto_encrypt(&f->cb.crypto[0], kf_str_c(xml), NULL,
                                       &enc), 0);
    snprintf(body, sizeof(body),
             "<xml><ToUserName><![CDATA[" GHID "]]></ToUserName>"
             "<Encrypt><![CDATA[%s]]></Encrypt></xml>", enc.p);
    for (i = 0; i < 2; i++) {           /* first delivery, then a retry */
        signed_aes_qs(qs, sizeof(qs), i ? "1716300105" : "1716300101",
                      i ? "77" : "7", enc.p);
        callback_res_init(&res);
        assert_int_equal(push(f, qs, body, 1716300101 + 4 * i, &res), 0);
        assert_int_equal(res.duplicate, i);
        m = open_envelope(f, res.body.p);
        assert_true(kf_str_eq_c(m->content, WELCOME));
        assert_true(kf_str_eq_c(m->to_user, "oNewFollower_1"));
        assert_int_equal(m->create_time, 1716300101);  /* same reply */
        wx_xml_msg_free(m);
        callback_res_release(&res);
    }
    assert_int_equal(xlen(f), 1);
    kf_buf_release(&enc);
    free(xml);
}

static void test_callback_decrypts_with_the_previous_key_after_rotation(
    void **st)
{
    struct fixture *f = *st;
    json_t *all = tu_read_json(VEC("safe_mode.json")), *v;
    struct callback_res res;
    size_t i;

    set(&f->cfg.wechat.encoding_aes_key, OTHERKEY);
    set(&f->cfg.wechat.encoding_aes_key_prev, AESKEY);
    ready(f);
    json_array_foreach(all, i, v) {
        char *qs;

        if (!json_object_get(v, "query"))
            continue;
        qs = vector_qs(v);
        callback_res_init(&res);
        assert_int_equal(push(f, qs, tu_jstr(v, "post_body_safe_mode"), 0,
                              &res), 0);
        callback_res_release(&res);
        free(qs);
    }
    assert_int_equal(xlen(f), 3);
    json_decref(all);
}

static void test_callback_rejects_stale_and_future_timestamps(void **st)
{
    struct fixture *f = *st;
    struct callback_res res;
    char qs[256], *body = subscribe_xml("1716300200");

    f->cfg.wechat.timestamp_window = 300;
    ready(f);
    signed_qs(qs, sizeof(qs), "1716300200", "1");
    callback_res_init(&res);
    assert_int_equal(push(f, qs, body, 1716300200 + 301, &res), KF_ESTALE);
    assert_int_equal(push(f, qs, body, 1716300200 - 301, &res), KF_ESTALE);
    assert_int_equal(xlen(f), 0);
    assert_int_equal(push(f, qs, body, 1716300200 + 300, &res), 0);
    assert_int_equal(xlen(f), 1);
    callback_res_release(&res);
    free(body);
}

static void test_callback_rejects_a_push_for_another_account(void **st)
{
    struct fixture *f = *st;
    struct callback_res res;
    char qs[256];
    const char *body =
        "<xml><ToUserName><![CDATA[gh_000000000000]]></ToUserName>"
        "<FromUserName><![CDATA[oUser]]></FromUserName>"
        "<CreateTime>1716300300</CreateTime><MsgType><![CDATA[text]]>"
        "</MsgType><Content>hi</Content><MsgId>1</MsgId></xml>";

    ready(f);
    signed_qs(qs, sizeof(qs), "1716300300", "1");
    callback_res_init(&res);
    assert_int_equal(push(f, qs, body, 0, &res), KF_EACCOUNT);
    assert_int_equal(xlen(f), 0);
    callback_res_release(&res);
}

static void test_callback_rejects_invalid_openid_and_missing_fields(void **st)
{
    struct fixture *f = *st;
    struct callback_res res;
    char qs[256];
    static const char *const bodies[][2] = {
        { "<xml><ToUserName>" GHID "</ToUserName><FromUserName>o u:x"
          "</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>"
          "<MsgId>5</MsgId></xml>", "invalid" },
        { "<xml><ToUserName>" GHID "</ToUserName><FromUserName>oU"
          "</FromUserName><CreateTime>1</CreateTime><MsgId>5</MsgId></xml>",
          "parse" },
        { "<xml><ToUserName>" GHID "</ToUserName><FromUserName>oU"
          "</FromUserName><MsgType>text</MsgType><MsgId>5</MsgId></xml>",
          "parse" },
        { "<xml><ToUserName>" GHID "</ToUserName><CreateTime>1</CreateTime>"
          "<MsgType>text</MsgType><MsgId>5</MsgId></xml>", "parse" },
    };
    size_t i;

    ready(f);
    signed_qs(qs, sizeof(qs), "1716300300", "1");
    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        int want = bodies[i][1][0] == 'i' ? KF_EINVAL : KF_EPARSE;

        callback_res_init(&res);
        assert_int_equal(push(f, qs, bodies[i][0], 0, &res), want);
        callback_res_release(&res);
    }
    assert_int_equal(xlen(f), 0);
}

static void test_callback_refuses_encrypted_push_without_a_key(void **st)
{
    struct fixture *f = *st;
    json_t *all = tu_read_json(VEC("safe_mode.json")), *v;
    struct callback_res res;
    size_t i;

    set(&f->cfg.wechat.encoding_aes_key, "");
    ready(f);
    json_array_foreach(all, i, v) {
        char *qs;

        if (!json_object_get(v, "query"))
            continue;
        qs = vector_qs(v);
        callback_res_init(&res);
        assert_int_equal(push(f, qs, tu_jstr(v, "post_body_safe_mode"), 0,
                              &res), KF_ENOKEY);
        callback_res_release(&res);
        free(qs);
        break;
    }
    json_decref(all);
}

static void test_callback_trusts_only_the_decrypted_copy_in_compat_mode(
    void **st)
{
    struct fixture *f = *st;
    json_t *all = tu_read_json(VEC("safe_mode.json")), *v;
    struct callback_res res;
    const char *argv[] = { "EVAL",
                           "for _, e in ipairs(redis.call('XRANGE', KEYS[1],"
                           " '-', '+')) do if e[2][2] == 'msg_in' then"
                           " return e[2][20] end end", "1", STREAM, NULL };
    char *payload, *qs, *body, *p;
    size_t i;

    ready(f);
    v = NULL;
    for (i = 0; i < json_array_size(all) && !v; i++)
        if (strcmp(tu_jstr(json_array_get(all, i), "id"), "S-in-text") == 0)
            v = json_array_get(all, i);
    assert_non_null(v);
    body = strdup(tu_jstr(v, "post_body_compatible_mode"));
    p = strstr(body, "物流进度");
    assert_non_null(p);
    memcpy(p, "XXXXXXXXXXXX", 12);       /* tamper the plaintext copy */
    qs = vector_qs(v);
    callback_res_init(&res);
    assert_int_equal(push(f, qs, body, 0, &res), 0);
    payload = tu_redis_cmd(&f->redis, argv);
    assert_non_null(strstr(payload, "物流进度"));
    assert_null(strstr(payload, "XXXX"));
    free(payload);
    free(qs);
    free(body);
    callback_res_release(&res);
    json_decref(all);
}

static void test_callback_answers_backend_unavailable_when_redis_is_down(
    void **st)
{
    struct fixture *f = *st;
    struct callback_res res;
    char qs[256], *body = subscribe_xml("1716300400");

    ready(f);
    tu_redis_stop(&f->redis);
    signed_qs(qs, sizeof(qs), "1716300400", "1");
    callback_res_init(&res);
    assert_int_equal(push(f, qs, body, 0, &res), KF_EBACKEND);
    callback_res_release(&res);
    free(body);
}

static char *text_xml(const char *openid, const char *msgid,
                      const char *content);

/* The routing decision of res as the log line writes it. */
static const char *decided(const struct callback_res *res)
{
    static char d[ROUTE_DECISION_STR_MAX];

    return route_decision_str(&res->decision, d);
}

/* A callback with a journal in dir (a mkdtemp template), Redis stopped. */
static void journal_with_redis_down(struct fixture *f, struct journal *j,
                                    char *dir)
{
    ready(f);
    assert_non_null(mkdtemp(dir));
    assert_int_equal(journal_init(j, dir), 0);
    f->cb.journal = j;
    tu_redis_stop(&f->redis);
}

/* Redis down with a journal: kept on disk and answered with the fallback
 * text (events: success); the journal line replays to the same push. */
static void test_callback_keeps_pushes_in_the_journal_when_redis_is_down(
    void **st)
{
    struct fixture *f = *st;
    struct callback_res res;
    struct journal j;
    char qs[256], dir[64] = "/tmp/wxkf-cbj-XXXXXX", cmd[96];
    char *body = text_xml("oJournal1", "9100000000000000001", "hello"),
         *ev = subscribe_xml("1716300500");

    journal_with_redis_down(f, &j, dir);
    signed_qs(qs, sizeof(qs), "1716300500", "7");
    callback_res_init(&res);
    assert_int_equal(push(f, qs, body, 1716300500, &res), 0);
    assert_true(res.journaled);
    assert_string_equal(decided(&res), "journaled");
    assert_non_null(strstr(res.body.p, "<Content><![CDATA["));
    assert_non_null(strstr(res.body.p, f->cfg.texts.fallback));
    callback_res_release(&res);
    callback_res_init(&res);
    assert_int_equal(push(f, qs, ev, 1716300500, &res), 0);
    assert_true(res.journaled);
    assert_string_equal(res.body.p, "success");
    callback_res_release(&res);
    assert_true(journal_pending(&j));
    f->cb.journal = NULL;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(body);
    free(ev);
}

static char *text_xml(const char *openid, const char *msgid,
                      const char *content)
{
    char *b = malloc(1024);

    assert_non_null(b);
    snprintf(b, 1024,
             "<xml><ToUserName><![CDATA[" GHID "]]></ToUserName>"
             "<FromUserName><![CDATA[%s]]></FromUserName>"
             "<CreateTime>1716300500</CreateTime><MsgType><![CDATA[text]]>"
             "</MsgType><Content><![CDATA[%s]]></Content>"
             "<MsgId>%s</MsgId></xml>", openid, content, msgid);
    return b;
}

/* A journal record through the callback path again (callback_replay, as
 * the worker's replay). */
static int replay_rec(void *ctx, const struct journal_rec *jr)
{
    struct fixture *f = ctx;
    struct callback_res res;
    int rc;

    callback_res_init(&res);
    rc = callback_replay(&f->cb, jr, &res);
    if (rc == 0 && res.duplicate)
        f->replayed_dups++;
    callback_res_release(&res);
    return rc;
}

/* [redis] wait_replicas = 1 and no replica confirms: the push is routed
 * and answered as usual but only after a copy is on disk; replaying that
 * copy stops (keeping it) until a replica has the write. */
static void test_callback_journals_a_push_no_replica_confirmed(void **st)
{
    struct fixture *f = *st;
    struct callback_res res;
    struct journal j;
    struct journal_counts c = { 0, 0, 0 };
    struct tu_redis replica;
    char qs[256], dir[64] = "/tmp/wxkf-cbw-XXXXXX", cmd[96];
    char *body = text_xml("oWaitReplica1", "9100000000000000077", "hi");

    ready(f);
    f->store.wait_replicas = 1;
    f->store.wait_timeout_ms = 50;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(journal_init(&j, dir), 0);
    f->cb.journal = &j;
    signed_qs(qs, sizeof(qs), "1716300500", "9");
    callback_res_init(&res);
    assert_int_equal(push(f, qs, body, 1716300500, &res), 0);
    assert_true(res.unreplicated);
    assert_false(res.journaled);
    assert_string_equal(decided(&res), "offline:1");   /* routed as usual */
    assert_true(journal_pending(&j));
    callback_res_release(&res);
    /* without a journal the same push cannot be acknowledged */
    f->cb.journal = NULL;
    callback_res_init(&res);
    assert_int_equal(push(f, qs, body, 1716300500, &res), KF_EBACKEND);
    callback_res_release(&res);
    f->cb.journal = &j;
    /* no replica yet: the replay stops at the record and keeps it */
    assert_int_equal(journal_replay(&j, replay_rec, f, &c), KF_EBACKEND);
    assert_int_equal(c.replayed, 0);
    assert_int_equal(c.left, 1);
    assert_true(journal_pending(&j));
    /* a replica syncs the master: now WAIT confirms and the copy goes */
    tu_redis_start_replica(&replica, 0, f->redis.port);
    f->store.wait_timeout_ms = 500;
    memset(&c, 0, sizeof(c));
    assert_int_equal(journal_replay(&j, replay_rec, f, &c), 0);
    assert_int_equal(c.replayed, 1);
    assert_int_equal(f->replayed_dups, 1);   /* the master had it */
    assert_int_equal(c.left, 0);
    assert_false(journal_pending(&j));
    tu_redis_stop(&replica);
    f->cb.journal = NULL;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(body);
}

/* Redis is away: a plaintext and a safe-mode push are journaled and
 * answered 200. Before Redis is back the Token, the EncodingAESKey (no
 * _prev kept), original_id and max_body change and the workers restart
 * with them. Both pushes are still replayed into Redis: they were
 * verified before they were journaled. */
static void test_callback_replays_the_journal_after_the_token_and_key_change(
    void **st)
{
    struct fixture *f = *st;
    struct callback_res res;
    struct journal j;
    struct journal_counts c = { 0, 0, 0 };
    char qs[256], dir[64] = "/tmp/wxkf-cbk-XXXXXX", cmd[96];
    char *plain = text_xml("oJournalCfg1", "9100000000000000201", "plain"),
         *safe = text_xml("oJournalCfg2", "9100000000000000202", "safe");
    int port = f->redis.port;

    journal_with_redis_down(f, &j, dir);
    signed_qs(qs, sizeof(qs), "1716300500", "11");
    callback_res_init(&res);
    assert_int_equal(push(f, qs, plain, 1716300500, &res), 0);
    assert_true(res.journaled);
    callback_res_release(&res);
    callback_res_init(&res);
    assert_int_equal(push_safe(f, safe, "1716300501", "12", 1716300501, &res),
                     0);
    assert_true(res.journaled && res.encrypted);
    callback_res_release(&res);

    /* the configuration changes; the workers restart with it */
    f->cb.journal = NULL;
    callback_release(&f->cb);
    f->cb_ready = 0;
    set(&f->cfg.wechat.token, "aNewToken2025xyz");
    set(&f->cfg.wechat.encoding_aes_key, OTHERKEY);
    set(&f->cfg.wechat.original_id, "gh_0123456789ab");
    f->cfg.http.max_body = 64;
    ready(f);
    tu_redis_start_on(&f->redis, port);
    f->store.next_try_ms = 0;
    assert_int_equal(journal_replay(&j, replay_rec, f, &c), 0);
    assert_int_equal(c.replayed, 2);
    assert_int_equal(f->replayed_dups, 0);
    assert_int_equal(c.left, 0);
    assert_false(journal_pending(&j));
    assert_int_equal(xlen(f), 2);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(plain);
    free(safe);
}

static void add_online_agent(struct fixture *f, const char *acct)
{
    const char *hset[] = { "HSET", NULL, "weight", "1", "capacity", "3",
                           "groups", "", NULL };
    const char *sadd[] = { "SADD", "wxkf:{" APPID "}:agents", acct, NULL };
    char key[128], status[16];
    long moved;

    snprintf(key, sizeof(key), "wxkf:{" APPID "}:agent:%s", acct);
    hset[1] = key;
    free(tu_redis_cmd(&f->redis, hset));
    free(tu_redis_cmd(&f->redis, sadd));
    assert_int_equal(route_presence(&f->route, acct, "online", "test",
                                    1716300400000LL, status, sizeof(status),
                                    &moved, NULL), 0);
}

static void test_callback_transfers_to_the_chosen_kf_account_in_wechat_kf_mode(
    void **st)
{
    struct fixture *f = *st;
    struct callback_res res;
    struct wx_msg *m = NULL;
    struct kf_str kf;
    char qs[256], *body = text_xml("oKfUser_1", "9001", "hello");

    set(&f->cfg.wechat.mode, "wechat_kf");
    ready(f);
    add_online_agent(f, "kf01@shop_wx");
    signed_qs(qs, sizeof(qs), "1716300500", "5");
    callback_res_init(&res);
    assert_int_equal(push(f, qs, body, 1716300500, &res), 0);
    assert_string_equal(decided(&res), "assigned:kf01@shop_wx");
    assert_int_equal(wx_xml_parse(kf_buf_str(&res.body), &m, NULL), 0);
    assert_true(kf_str_eq_c(m->msgtype, "transfer_customer_service"));
    assert_int_equal(wx_xml_field(m, "TransInfo", &kf), 0);
    assert_true(kf_str_eq_c(kf, "kf01@shop_wx"));
    assert_true(kf_str_eq_c(m->to_user, "oKfUser_1"));
    wx_xml_msg_free(m);
    callback_res_release(&res);
    free(body);
}

static void test_callback_tells_a_waiting_user_how_many_are_ahead(void **st)
{
    struct fixture *f = *st;
    struct callback_res res;
    struct wx_msg *m;
    char *xml;
    int i;

    set(&f->cfg.texts.queued, "您前面还有 {n} 位");
    ready(f);
    add_online_agent(f, "solo");
    for (i = 0; i < 5; i++) {        /* capacity 3: users 4 and 5 wait */
        char openid[32], msgid[16], nonce[16];

        snprintf(openid, sizeof(openid), "oQueue_%d", i);
        snprintf(msgid, sizeof(msgid), "%d", 7700 + i);
        snprintf(nonce, sizeof(nonce), "9%d", i); /* a query per push */
        xml = text_xml(openid, msgid, "排队");
        callback_res_init(&res);
        assert_int_equal(push_safe(f, xml, "1716300500", nonce, 1716300500,
                                   &res), 0);
        if (i < 3) {
            assert_string_equal(res.body.p, "success");
        } else {
            char want[64];

            /* the first one waiting is next: nobody ahead (issue 17) */
            m = open_envelope(f, res.body.p);
            snprintf(want, sizeof(want), "您前面还有 %d 位", i - 3);
            assert_true(kf_str_eq_c(m->content, want));
            wx_xml_msg_free(m);
        }
        callback_res_release(&res);
        free(xml);
    }
}


/* [wechat] encoding unset with a key: safe. A plaintext push is refused
 * (with or without encrypt_type=raw) and nothing is stored; the same
 * message encrypted goes through. */
static void test_callback_safe_encoding_refuses_plaintext_storing_nothing(
    void **st)
{
    struct fixture *f = *st;
    struct callback_res res;
    char qs[512], body[2048], raw[600];
    char *xml = text_xml("oSafeOnly_1", "9100000000000000301", "hi");

    set(&f->cfg.wechat.encoding, "");
    ready(f);
    assert_int_equal(f->cb.encoding, CONFIG_ENC_SAFE);
    signed_qs(qs, sizeof(qs), "1716300500", "301");
    snprintf(raw, sizeof(raw), "%s&encrypt_type=raw", qs);
    callback_res_init(&res);
    assert_int_equal(push(f, qs, xml, 1716300500, &res), KF_EENCODING);
    assert_int_equal(push(f, raw, xml, 1716300500, &res), KF_EENCODING);
    callback_res_release(&res);
    assert_int_equal(redis_long(f, "DBSIZE", NULL), 0);
    seal_push(f, xml, "1716300500", "302", qs, sizeof(qs), body,
              sizeof(body));
    callback_res_init(&res);
    assert_int_equal(push(f, qs, body, 1716300500, &res), 0);
    assert_int_equal(res.encrypted, 1);
    callback_res_release(&res);
    assert_int_equal(xlen(f), 1);
    free(xml);
}

/* encoding = plaintext with a key set: WeChat sends no encrypted push
 * then, so one is refused; plaintext goes through. */
static void test_callback_plaintext_encoding_refuses_encrypted_push(
    void **st)
{
    struct fixture *f = *st;
    struct callback_res res;
    char qs[512], body[2048];
    char *xml = text_xml("oPlainOnly_1", "9100000000000000311", "hi");

    set(&f->cfg.wechat.encoding, "plaintext");
    ready(f);
    seal_push(f, xml, "1716300500", "311", qs, sizeof(qs), body,
              sizeof(body));
    callback_res_init(&res);
    assert_int_equal(push(f, qs, body, 1716300500, &res), KF_EENCODING);
    callback_res_release(&res);
    assert_int_equal(redis_long(f, "DBSIZE", NULL), 0);
    signed_qs(qs, sizeof(qs), "1716300500", "312");
    callback_res_init(&res);
    assert_int_equal(push(f, qs, xml, 1716300500, &res), 0);
    callback_res_release(&res);
    assert_int_equal(xlen(f), 1);
    free(xml);
}

/* TTL of the one signed-query binding in Redis (-2: none). */
static long binding_ttl_left(struct fixture *f)
{
    const char *argv[] = { "EVAL",
                           "local k = redis.call('KEYS', ARGV[1]) "
                           "if #k ~= 1 then return -2 - #k end "
                           "return redis.call('TTL', k[1])", "0",
                           "wxkf:{" APPID "}:sig:*", NULL };
    char *s = tu_redis_cmd(&f->redis, argv);
    long n = strtol(s, NULL, 10);

    free(s);
    return n;
}

/* One signed query, one message: a retry (the same message, even
 * encrypted afresh) is a duplicate; another message under that query —
 * what anyone who saw the URL could send — is KF_EREPLAY and stores
 * nothing, not even its dedupe key; a journal replay of the first
 * message is not refused. The binding lasts while the timestamp can
 * pass: 2 x timestamp_window + 60 s. */
static void test_callback_binds_a_signed_query_to_its_first_message(
    void **st)
{
    struct fixture *f = *st;
    struct callback_res res;
    char qs[512], body[2048], body2[2048], qs2[512];
    char *a = text_xml("oVictim_0001", "9100000000000000401", "mine");
    char *b = text_xml("oForger_0001", "9100000000000000402", "forged");
    struct journal_rec jr;
    const char *exists[] = { "EXISTS", "wxkf:{" APPID "}:dedupe:msgid:"
                             "oForger_0001:9100000000000000402", NULL };
    char *n;
    int i;

    f->cfg.wechat.timestamp_window = 300;
    ready(f);
    signed_qs(qs, sizeof(qs), "1716300500", "401");
    for (i = 0; i < 2; i++) {           /* first delivery, then a retry */
        callback_res_init(&res);
        assert_int_equal(push(f, qs, a, 1716300500 + i, &res), 0);
        assert_int_equal(res.duplicate, i);
        callback_res_release(&res);
    }
    callback_res_init(&res);
    assert_int_equal(push(f, qs, b, 1716300502, &res), KF_EREPLAY);
    callback_res_release(&res);
    assert_int_equal(xlen(f), 1);
    n = tu_redis_cmd(&f->redis, exists);
    assert_string_equal(n, "0");
    free(n);
    assert_true(binding_ttl_left(f) > 600 && binding_ttl_left(f) <= 660);
    /* the journal's copy of the first delivery replays as a duplicate,
     * in the old record format (query as it arrived)... */
    jr = (struct journal_rec){ kf_str_c(qs), kf_str_c(a), KF_STR("r"),
                               1716300500, 1716300500000, 0 };
    callback_res_init(&res);
    assert_int_equal(callback_replay(&f->cb, &jr, &res), 0);
    assert_int_equal(res.duplicate, 1);
    callback_res_release(&res);
    jr.body = kf_str_c(b);
    callback_res_init(&res);
    assert_int_equal(callback_replay(&f->cb, &jr, &res), KF_EREPLAY);
    callback_res_release(&res);
    /* ...and as a verified record, which carries its binding key */
    {
        char key[256], sig[WX_SIGN_HEX];
        struct kf_str parts[3] = { KF_STR(TOKEN), KF_STR("1716300500"),
                                   KF_STR("401") };

        assert_int_equal(wx_sign_compute(parts, 3, sig), 0);
        snprintf(key, sizeof(key), "%s:1716300500:401", sig);
        jr = (struct journal_rec){ kf_str_c(key), kf_str_c(a), KF_STR("r"),
                                   1716300500, 1716300500000, 1 };
        callback_res_init(&res);
        assert_int_equal(callback_replay(&f->cb, &jr, &res), 0);
        assert_int_equal(res.duplicate, 1);
        callback_res_release(&res);
        jr.body = kf_str_c(b);
        callback_res_init(&res);
        assert_int_equal(callback_replay(&f->cb, &jr, &res), KF_EREPLAY);
        callback_res_release(&res);
    }
    /* the forged message under a query of its own is just a message */
    signed_qs(qs2, sizeof(qs2), "1716300500", "402");
    callback_res_init(&res);
    assert_int_equal(push(f, qs2, b, 1716300502, &res), 0);
    callback_res_release(&res);
    assert_int_equal(xlen(f), 2);
    /* safe mode: the same message sealed twice under one signature is a
     * retry; a different message sealed under it is refused */
    seal_push(f, a, "1716300510", "403", qs, sizeof(qs), body, sizeof(body));
    seal_push(f, a, "1716300510", "403", qs2, sizeof(qs2), body2,
              sizeof(body2));
    assert_string_not_equal(body, body2);
    callback_res_init(&res);
    assert_int_equal(push(f, qs, body, 1716300510, &res), 0);
    assert_int_equal(push(f, qs2, body2, 1716300510, &res), 0);
    assert_int_equal(res.duplicate, 1);
    callback_res_release(&res);
    free(b);
    b = text_xml("oVictim_0001", "9100000000000000404", "forged too");
    seal_push(f, b, "1716300510", "403", qs2, sizeof(qs2), body2,
              sizeof(body2));
    callback_res_init(&res);
    assert_int_equal(push(f, qs2, body2, 1716300510, &res), KF_EREPLAY);
    callback_res_release(&res);
    assert_int_equal(xlen(f), 2);
    free(a);
    free(b);
}

static void test_callback_verifies_the_server_url(void **st)
{
    struct fixture *f = *st;
    struct tu_tsv t;
    size_t i, ok = 0;

    ready(f);
    tu_tsv_load(&t, VEC("signature.tsv"));
    for (i = 1; i < t.nrows; i++) {
        const char *echo = t.rows[i][tu_tsv_col(&t, "echostr")];
        char qs[512];
        struct http_query q;
        struct callback_req req;
        struct callback_res res;

        if (strcmp(echo, "-") == 0)
            continue;
        set(&f->cfg.wechat.token, t.rows[i][tu_tsv_col(&t, "token")]);
        snprintf(qs, sizeof(qs), "signature=%s&timestamp=%s&nonce=%s"
                 "&echostr=%s", t.rows[i][tu_tsv_col(&t, "signature")],
                 t.rows[i][tu_tsv_col(&t, "timestamp")],
                 t.rows[i][tu_tsv_col(&t, "nonce")], echo);
        http_query_init(&q);
        assert_int_equal(http_query_parse(&q, kf_str_c(qs)), 0);
        req = (struct callback_req){ &q, { "", 0 }, KF_STR("r"), 0, 0, 0 };
        callback_res_init(&res);
        assert_int_equal(callback_verify(&f->cb, &req, &res), 0);
        assert_string_equal(res.body.p, echo);
        /* One changed digit: no echo. */
        qs[10] = qs[10] == '0' ? '1' : '0';
        assert_int_equal(http_query_parse(&q, kf_str_c(qs)), 0);
        kf_buf_reset(&res.body);
        assert_int_equal(callback_verify(&f->cb, &req, &res), KF_EBADSIG);
        assert_int_equal(res.body.len, 0);
        callback_res_release(&res);
        http_query_release(&q);
        ok++;
    }
    assert_true(ok >= 2);
    tu_tsv_release(&t);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_callback_accepts_every_inbound_safe_mode_vector),
        T(test_callback_rejects_every_negative_vector_storing_nothing),
        T(test_callback_init_rejects_invalid_aes_keys),
        T(test_callback_welcomes_a_new_follower_in_plaintext),
        T(test_callback_encrypts_the_welcome_in_safe_mode),
        T(test_callback_decrypts_with_the_previous_key_after_rotation),
        T(test_callback_rejects_stale_and_future_timestamps),
        T(test_callback_rejects_a_push_for_another_account),
        T(test_callback_rejects_invalid_openid_and_missing_fields),
        T(test_callback_refuses_encrypted_push_without_a_key),
        T(test_callback_trusts_only_the_decrypted_copy_in_compat_mode),
        T(test_callback_answers_backend_unavailable_when_redis_is_down),
        T(test_callback_keeps_pushes_in_the_journal_when_redis_is_down),
        T(test_callback_journals_a_push_no_replica_confirmed),
        T(test_callback_replays_the_journal_after_the_token_and_key_change),
        T(test_callback_verifies_the_server_url),
        T(test_callback_safe_encoding_refuses_plaintext_storing_nothing),
        T(test_callback_plaintext_encoding_refuses_encrypted_push),
        T(test_callback_binds_a_signed_query_to_its_first_message),
        T(test_callback_transfers_to_the_chosen_kf_account_in_wechat_kf_mode),
        T(test_callback_tells_a_waiting_user_how_many_are_ahead),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
