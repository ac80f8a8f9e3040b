/* fuzz_query: the callback's query string — lib/http's parser, then the
 * signature checks of lib/wx_sign with the fixed Token (the values the
 * fuzzer gives, and the right signature the harness computes for them).
 * Checks: a parse never keeps more than HTTP_QUERY_PARAMS, decoded values
 * hold no NUL, a failed parse shows nothing; re-encoding what was parsed
 * and parsing that again gives the same parameters; the signature over
 * the parsed timestamp/nonce verifies (URL and msg_signature), any other
 * 40-hex string does not, and the order of the parts does not matter. */
#include <string.h>

#include "fuzz.h"
#include "http.h"
#include "kf.h"
#include "wx_sign.h"

static const char *const params[] = {
    "signature", "timestamp", "nonce", "echostr", "openid",
    "encrypt_type", "msg_signature", "limit", "state", "",
};

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

/* Percent-encodes s onto b (every byte but the unreserved ones). */
static int encode(struct kf_buf *b, struct kf_str s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;
    int rc = 0;

    for (i = 0; i < s.len && rc == 0; i++) {
        unsigned char c = (unsigned char)s.p[i];
        char e[3] = { '%', hex[c >> 4], hex[c & 15] };

        rc = unreserved(c) ? kf_buf_append(b, &s.p[i], 1)
                           : kf_buf_append(b, e, 3);
    }
    return rc;
}

/* Parsing the canonical encoding of q gives q again. */
static void check_roundtrip(const struct http_query *q)
{
    struct http_query q2;
    struct kf_buf b;
    size_t i;
    int rc = 0;

    kf_buf_init(&b, HTTP_QUERY_MAX);
    for (i = 0; i < q->n && rc == 0; i++) {
        if (i)
            rc = kf_buf_append_c(&b, "&");
        if (rc == 0)
            rc = encode(&b, q->v[i].name);
        if (rc == 0)
            rc = kf_buf_append_c(&b, "=");
        if (rc == 0)
            rc = encode(&b, q->v[i].value);
    }
    if (rc == 0) {
        http_query_init(&q2);
        FZ_CHECK(http_query_parse(&q2, kf_buf_str(&b)) == 0);
        /* a piece with an empty name and value ("=") reparses as it is */
        FZ_CHECK(q2.n == q->n);
        for (i = 0; i < q->n; i++) {
            FZ_CHECK(kf_str_eq(q2.v[i].name, q->v[i].name));
            FZ_CHECK(kf_str_eq(q2.v[i].value, q->v[i].value));
        }
        http_query_release(&q2);
    }
    kf_buf_release(&b);
}

static struct kf_str get(const struct http_query *q, const char *name)
{
    struct kf_str v;
    size_t i;
    int found = http_query_get(q, name, &v);

    for (i = 0; i < q->n; i++)
        if (kf_str_eq_c(q->v[i].name, name))
            break;
    FZ_CHECK(found == (i < q->n));
    FZ_CHECK(v.p != NULL);
    if (found)
        FZ_CHECK(v.p == q->v[i].value.p && v.len == q->v[i].value.len);
    else
        FZ_CHECK(v.len == 0);
    return v;
}

static void check_signatures(const struct http_query *q)
{
    struct kf_str token = KF_STR(FZ_TOKEN), ts = get(q, "timestamp"),
                  nonce = get(q, "nonce"), sig = get(q, "signature"),
                  enc = get(q, "echostr"), msig = get(q, "msg_signature");
    struct kf_str p3[3] = { token, ts, nonce }, r3[3] = { nonce, ts, token };
    struct kf_str p4[4] = { token, ts, nonce, enc };
    char want[WX_SIGN_HEX], back[WX_SIGN_HEX];
    int rc;
    uint64_t t;

    /* whatever the query says */
    rc = wx_sign_verify(token, ts, nonce, sig);
    FZ_CHECK(rc == 0 || rc == KF_EBADSIG);
    rc = wx_sign_verify_msg(token, ts, nonce, enc, msig);
    FZ_CHECK(rc == 0 || rc == KF_EBADSIG);
    rc = wx_sign_check_time(ts, FZ_NOW, 300);
    FZ_CHECK(rc == (kf_parse_u64(ts, &t) < 0 ? KF_EPARSE
                    : (t > FZ_NOW ? t - FZ_NOW : FZ_NOW - t) > 300
                        ? KF_ESTALE : 0));
    (void)http_error_for(rc);

    /* the right signature verifies, in any order of the parts */
    FZ_CHECK(wx_sign_compute(p3, 3, want) == 0);
    FZ_CHECK(wx_sign_compute(r3, 3, back) == 0);
    FZ_CHECK(memcmp(want, back, WX_SIGN_HEX) == 0);
    FZ_CHECK(wx_sign_verify(token, ts, nonce, kf_str_c(want)) == 0);
    if (sig.len == WX_SIGN_HEX - 1 && memcmp(sig.p, want, sig.len) != 0)
        FZ_CHECK(wx_sign_verify(token, ts, nonce, sig) == KF_EBADSIG);
    if (enc.len) {
        FZ_CHECK(wx_sign_compute(p4, 4, want) == 0);
        FZ_CHECK(wx_sign_verify_msg(token, ts, nonce, enc,
                                    kf_str_c(want)) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_query q;
    size_t i, j;
    int rc;

    http_query_init(&q);
    rc = http_query_parse(&q, (struct kf_str){ (const char *)data, size });
    if (rc < 0) {
        FZ_CHECK(rc == KF_ETOOBIG || rc == KF_EPARSE || rc == KF_ENOMEM);
        FZ_CHECK(q.n == 0);
        FZ_CHECK(size > HTTP_QUERY_MAX || rc != KF_ETOOBIG ||
                 memchr(data, '&', size) != NULL);
    } else {
        FZ_CHECK(size <= HTTP_QUERY_MAX && q.n <= HTTP_QUERY_PARAMS);
        for (i = 0; i < q.n; i++) {
            FZ_CHECK(!memchr(q.v[i].name.p, '\0', q.v[i].name.len));
            FZ_CHECK(!memchr(q.v[i].value.p, '\0', q.v[i].value.len));
            FZ_CHECK(q.v[i].name.len + q.v[i].value.len <= size);
        }
        for (j = 0; j < sizeof(params) / sizeof(params[0]); j++)
            (void)get(&q, params[j]);
        check_roundtrip(&q);
        check_signatures(&q);
    }
    http_query_release(&q);
    http_query_release(&q);     /* safe twice */
    return 0;
}
