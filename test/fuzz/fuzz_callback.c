/* fuzz_callback: lib/callback end to end up to its one Redis round trip —
 * query parsing, the URL signature and timestamp window, the safe-mode
 * msg_signature, decryption with the current or the previous key, the
 * envelope and plaintext parses, validation, the event payload and the
 * de-duplication key. The store is held in its backoff state (no
 * connection is ever tried), so a push that gets that far ends with
 * KF_EBACKEND.
 *
 * Input: data[0] flags, data[1] clock skew, then "QUERY\nBODY".
 *   flags & 3: 0 raw: QUERY and BODY as they are (the signature is the
 *                fuzzer's, so almost always wrong);
 *              1 signed: timestamp, nonce, echostr, encrypt_type and
 *                msg_signature are taken from QUERY and the harness adds
 *                the right signature; with flags & 4 also the right
 *                msg_signature over BODY's Encrypt;
 *              2 sealed: BODY is the plaintext of a safe-mode push: the
 *                harness encrypts it (with the previous key if flags &
 *                64), wraps it in an envelope and signs both;
 *              3 verify: GET, the URL verification with echostr.
 *   (flags >> 3) & 3 in mode 1: encrypt_type absent, "raw", "aes", or as
 *   QUERY has it. flags & 128: [wechat] encoding = safe (else
 *   compatible, which takes both). The clock is the timestamp + 4 * (int8)data[1] seconds
 *   against a 300 s window.
 * Checks: a push never succeeds (Redis is down); a correctly signed and
 * sealed push fails only where its plaintext does (the parse, the
 * validation) or at Redis — never in the signature or crypto stages;
 * the timestamp window is applied exactly; safe mode refuses exactly the
 * signed pushes that are not encrypt_type=aes (compatible none); GET
 * answers echostr. */
#include <string.h>

#include "callback.h"
#include "config.h"
#include "fuzz.h"
#include "http.h"
#include "store.h"
#include "wx_crypto.h"
#include "wx_sign.h"
#include "wx_xml.h"

#define FZ_OTHERKEY "hH8uaXHPRkNIubnN1ijh2DhQ5AIFyjQJotezXqlz0VU"
#define WINDOW 300

static struct config cfg;
static struct store st;
static struct route rt;
static struct callback cb;
static int verbose;             /* FUZZ_VERBOSE=1: one line per input */

static void set(char **field, const char *v)
{
    free(*field);
    *field = strdup(v);
    if (!*field)
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    config_init(&cfg);
    set(&cfg.wechat.app_id, FZ_APPID);
    set(&cfg.wechat.token, FZ_TOKEN);
    set(&cfg.wechat.encoding_aes_key, FZ_AESKEY);
    set(&cfg.wechat.encoding, "compatible");    /* plaintext and aes */
    set(&cfg.wechat.encoding_aes_key_prev, FZ_OTHERKEY);
    set(&cfg.wechat.original_id, FZ_GHID);
    set(&cfg.texts.welcome, "欢迎 ]]> <b>&");
    set(&cfg.routing.keyword_groups, "订单:orders,refund:after_sales");
    set(&cfg.routing.menu_groups, "V1001_SALES:sales,V1002_HELP:support");
    cfg.wechat.timestamp_window = WINDOW;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (store_init(&st, "unix:/nonexistent/wxkf-fuzz.sock", FZ_APPID, 10,
                   10) != 0 ||
        route_init(&rt, &st, &cfg) != 0 ||
        callback_init(&cb, &cfg, &rt) != 0)
        abort();
    st.next_try_ms = INT64_MAX;     /* never connect */
    return 0;
}

static int append_enc(struct kf_buf *b, const char *name, struct kf_str v)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;
    int rc = kf_buf_printf(b, "%s%s=", b->len ? "&" : "", name);

    for (i = 0; i < v.len && rc == 0; i++) {
        unsigned char c = (unsigned char)v.p[i];
        char e[3] = { '%', hex[c >> 4], hex[c & 15] };

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
            (c >= '0' && c <= '9'))
            rc = kf_buf_append(b, &v.p[i], 1);
        else
            rc = kf_buf_append(b, e, 3);
    }
    return rc;
}

static struct kf_str param(const struct http_query *q, const char *name,
                           const char *def)
{
    struct kf_str v;

    return http_query_get(q, name, &v) ? v : kf_str_c(def);
}

static int sign(struct kf_str *parts, size_t n, char out[WX_SIGN_HEX])
{
    return wx_sign_compute(parts, n, out);
}

/* The Encrypt of an envelope body, copied to enc (empty if none). */
static void envelope_encrypt(struct kf_str body, struct kf_buf *enc)
{
    struct wx_msg *m = NULL;

    if (wx_xml_parse(body, &m, NULL) == 0 &&
        kf_buf_append_str(enc, m->encrypt) < 0)
        abort();
    wx_xml_msg_free(m);
}

/* The safe-mode body WeChat sends: ToUserName and Encrypt. */
static int seal(struct kf_str plain, int prev, struct kf_buf *body,
                struct kf_buf *enc)
{
    static const unsigned char rnd[16] = "fuzzfuzzfuzzfuzz";
    int rc = wx_crypto_encrypt(&cb.crypto[prev], plain, rnd, enc);

    if (rc == 0)
        rc = kf_buf_printf(body, "<xml><ToUserName><![CDATA[%s]]>"
                           "</ToUserName><Encrypt><![CDATA[%s]]></Encrypt>"
                           "</xml>", FZ_GHID, enc->p);
    return rc;
}

struct input {
    int mode, fix_msgsig, etype, prev, safe;
    int skew;
    struct kf_str query, body;
};

static void split(const uint8_t *data, size_t size, struct input *in)
{
    const char *p = (const char *)data + 2;
    const char *nl = memchr(p, '\n', size - 2);

    in->mode = data[0] & 3;
    in->fix_msgsig = (data[0] & 4) != 0;
    in->etype = (data[0] >> 3) & 3;
    in->prev = (data[0] & 64) != 0;
    in->safe = (data[0] & 128) != 0;
    in->skew = (int8_t)data[1] * 4;
    in->query = (struct kf_str){ p, nl ? (size_t)(nl - p) : size - 2 };
    in->body = nl ? (struct kf_str){ nl + 1, size - 2 - in->query.len - 1 }
                  : KF_STR("");
}

/* The outcome a signed request must have, as far as the harness can tell
 * without redoing the callback's work: 1 if the timestamp is a number
 * and within the window. */
static int in_window(struct kf_str ts, int skew, int64_t *now)
{
    uint64_t t;

    if (kf_parse_u64(ts, &t) < 0 || t > (uint64_t)INT64_MAX - 1000) {
        *now = FZ_NOW;
        return 0;
    }
    *now = (int64_t)t + skew;
    return skew >= -WINDOW && skew <= WINDOW;
}

static void run(const struct input *in)
{
    struct http_query fq, q;
    struct kf_buf qs, body, enc;
    struct callback_req req;
    struct callback_res res;
    struct kf_str ts, nonce, etype, msig, echostr;
    char sig[WX_SIGN_HEX], msgsig[WX_SIGN_HEX];
    int rc, window, want_plain = 0, aes = 0;
    int64_t now;

    http_query_init(&fq);
    http_query_init(&q);
    kf_buf_init(&qs, 2 * HTTP_QUERY_MAX);
    kf_buf_init(&body, 2 * WX_XML_MAX);
    kf_buf_init(&enc, WX_CRYPTO_B64_MAX);
    callback_res_init(&res);
    if (http_query_parse(&fq, in->query) < 0)
        goto out;
    ts = param(&fq, "timestamp", "1716200000");
    nonce = param(&fq, "nonce", "1086175621");
    echostr = param(&fq, "echostr", "");
    msig = param(&fq, "msg_signature", "");
    etype = in->etype == 0 ? KF_STR("") : in->etype == 1 ? KF_STR("raw")
            : in->etype == 2 ? KF_STR("aes") : param(&fq, "encrypt_type", "");
    window = in_window(ts, in->skew, &now);

    if (in->mode == 0) {
        rc = http_query_parse(&q, in->query);
        if (rc == 0)
            rc = kf_buf_append_str(&body, in->body);
    } else {
        struct kf_str p3[3] = { KF_STR(FZ_TOKEN), ts, nonce };

        if (in->mode == 2) {
            etype = KF_STR("aes");
            rc = seal(in->body, in->prev, &body, &enc);
        } else {
            rc = kf_buf_append_str(&body, in->body);
            if (rc == 0 && in->fix_msgsig)
                envelope_encrypt(in->body, &enc);
        }
        if (rc < 0)
            goto out;
        aes = kf_str_eq_c(etype, "aes");
        if (enc.len && (in->mode == 2 || in->fix_msgsig)) {
            struct kf_str p4[4] = { KF_STR(FZ_TOKEN), ts, nonce,
                                    kf_buf_str(&enc) };

            if (sign(p4, 4, msgsig) < 0)
                goto out;
            msig = kf_str_c(msgsig);
        }
        if (sign(p3, 3, sig) < 0)
            goto out;
        rc = append_enc(&qs, "signature", kf_str_c(sig));
        if (rc == 0)
            rc = append_enc(&qs, "timestamp", ts);
        if (rc == 0)
            rc = append_enc(&qs, "nonce", nonce);
        if (rc == 0)
            rc = append_enc(&qs, "openid", KF_STR(FZ_OPENID));
        if (rc == 0 && etype.len)
            rc = append_enc(&qs, "encrypt_type", etype);
        if (rc == 0 && msig.len)
            rc = append_enc(&qs, "msg_signature", msig);
        if (rc == 0 && echostr.len)
            rc = append_enc(&qs, "echostr", echostr);
        if (rc == 0)
            rc = http_query_parse(&q, kf_buf_str(&qs));
        want_plain = in->mode == 2 || (aes && in->fix_msgsig && enc.len);
    }
    if (rc < 0)
        goto out;       /* too long once encoded: not a request */

    memset(&req, 0, sizeof(req));
    req.query = &q;
    req.body = kf_buf_str(&body);
    req.rid = KF_STR("fuzz");
    req.now = now;
    req.now_ms = (int64_t)FZ_NOW * 1000;  /* only Redis sees it */
    if (in->mode == 3) {
        rc = callback_verify(&cb, &req, &res);
        FZ_CHECK((rc == 0) == (window && echostr.len >= 1 &&
                               echostr.len <= CALLBACK_ECHOSTR_MAX));
        if (rc == 0)
            FZ_CHECK(kf_str_eq(kf_buf_str(&res.body), echostr));
        goto out;
    }
    cb.encoding = in->safe ? CONFIG_ENC_SAFE : CONFIG_ENC_COMPATIBLE;
    rc = callback_handle(&cb, &req, &res);
    if (verbose)
        fprintf(stderr, "mode=%d aes=%d window=%d rc=%s\n", in->mode, aes,
                window, kf_strerror(rc));
    FZ_CHECK(rc < 0);                     /* Redis is down */
    if (in->mode == 0)
        goto out;
    if (!window) {
        FZ_CHECK(rc == (kf_parse_u64(ts, &(uint64_t){ 0 }) < 0
                            ? KF_EBADSIG : KF_ESTALE));
        goto out;
    }
    if (in->safe && !aes) {
        /* refused before the body is read (its size and encrypt_type's
         * spelling are checked first) */
        FZ_CHECK(rc == KF_EENCODING || rc == KF_ETOOBIG || rc == KF_EINVAL);
        goto out;
    }
    FZ_CHECK(rc != KF_EENCODING);
    if (rc == KF_EBADSIG)
        FZ_CHECK(aes && !want_plain);     /* only a fuzzed msg_signature */
    if (want_plain) {
        struct wx_msg *m = NULL;
        int prc;

        /* the decrypted plaintext is BODY (mode 2) or unknown (mode 1) */
        FZ_CHECK(rc != KF_EBASE64 || in->mode == 1);
        FZ_CHECK(rc != KF_EBADSIG);
        if (in->mode == 2) {
            FZ_CHECK(rc != KF_ECIPHER && rc != KF_EPADDING &&
                     rc != KF_ELENGTH && rc != KF_EAPPID &&
                     rc != KF_ENOKEY && rc != KF_ECRYPTO);
            prc = wx_xml_parse(in->body, &m, NULL);
            if (prc < 0)
                FZ_CHECK(rc == prc);
            else
                FZ_CHECK(rc == KF_EBACKEND || rc == KF_EPARSE ||
                         rc == KF_EINVAL || rc == KF_EACCOUNT);
            wx_xml_msg_free(m);
        }
    }
out:
    callback_res_release(&res);
    http_query_release(&fq);
    http_query_release(&q);
    kf_buf_release(&qs);
    kf_buf_release(&body);
    kf_buf_release(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in;

    if (size < 2)
        return 0;
    split(data, size, &in);
    run(&in);
    return 0;
}
