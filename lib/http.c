/* http: query strings and error mapping. */
#include "http.h"

#include <stdlib.h>
#include <string.h>

#include "banned.h"

void http_query_init(struct http_query *q)
{
    q->buf = NULL;
    q->n = 0;
}

void http_query_release(struct http_query *q)
{
    free(q->buf);
    q->buf = NULL;
    q->n = 0;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes src into dst (room for src.len bytes); returns decoded length. */
static int decode(struct kf_str src, char *dst, size_t *len)
{
    size_t i, n = 0;

    for (i = 0; i < src.len; i++) {
        char c = src.p[i];

        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi, lo;

            if (i + 2 >= src.len)
                return KF_EPARSE;
            hi = hexv(src.p[i + 1]);
            lo = hexv(src.p[i + 2]);
            if (hi < 0 || lo < 0)
                return KF_EPARSE;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0')
            return KF_EPARSE;
        dst[n++] = c;
    }
    *len = n;
    return 0;
}

static int parse(struct http_query *q, struct kf_str qs);

int http_query_parse(struct http_query *q, struct kf_str qs)
{
    int rc = parse(q, qs);

    if (rc < 0)
        q->n = 0;     /* nothing half-parsed is visible */
    return rc;
}

static int parse(struct http_query *q, struct kf_str qs)
{
    size_t pos = 0, out = 0;
    int rc;

    http_query_release(q);
    if (qs.len > HTTP_QUERY_MAX)
        return KF_ETOOBIG;
    q->buf = malloc(qs.len + 1);
    if (!q->buf)
        return KF_ENOMEM;
    while (pos < qs.len) {
        const char *amp = memchr(qs.p + pos, '&', qs.len - pos);
        size_t end = amp ? (size_t)(amp - qs.p) : qs.len;
        const char *eq = memchr(qs.p + pos, '=', end - pos);
        struct kf_str name, value;
        size_t nlen, vlen;

        if (end == pos) {                 /* empty piece: "a=1&&b=2" */
            pos++;
            continue;
        }
        if (q->n == HTTP_QUERY_PARAMS)
            return KF_ETOOBIG;
        name.p = qs.p + pos;
        name.len = (eq ? (size_t)(eq - qs.p) : end) - pos;
        value.p = eq ? eq + 1 : qs.p + end;
        value.len = eq ? end - (size_t)(eq + 1 - qs.p) : 0;
        rc = decode(name, q->buf + out, &nlen);
        if (rc < 0)
            return rc;
        q->v[q->n].name = (struct kf_str){ q->buf + out, nlen };
        out += nlen;
        rc = decode(value, q->buf + out, &vlen);
        if (rc < 0)
            return rc;
        q->v[q->n].value = (struct kf_str){ q->buf + out, vlen };
        out += vlen;
        q->n++;
        pos = end + 1;
    }
    return 0;
}

int http_query_get(const struct http_query *q, const char *name,
                   struct kf_str *out)
{
    size_t i;

    for (i = 0; i < q->n; i++)
        if (kf_str_eq_c(q->v[i].name, name)) {
            *out = q->v[i].value;
            return 1;
        }
    *out = (struct kf_str){ "", 0 };
    return 0;
}

struct http_error http_error_for(int rc)
{
    switch (rc) {
    case KF_EBADSIG:
        return (struct http_error){ 403, "bad_signature",
                                    "signature mismatch" };
    case KF_ESTALE:
        return (struct http_error){ 403, "stale_timestamp",
                                    "timestamp outside the allowed window" };
    case KF_ETOOBIG:
        return (struct http_error){ 413, "body_too_large",
                                    "request body exceeds the limit" };
    case KF_EDTD:
        return (struct http_error){ 400, "dtd_refused",
                                    "DTD or entity declaration refused" };
    case KF_EBASE64:
        return (struct http_error){ 400, "bad_base64",
                                    "Encrypt is not valid base64" };
    case KF_ECIPHER:
        return (struct http_error){ 400, "bad_ciphertext",
                                    "ciphertext length is not a positive "
                                    "multiple of 32" };
    case KF_EPADDING:
        return (struct http_error){ 400, "bad_padding",
                                    "invalid PKCS#7 padding" };
    case KF_ELENGTH:
        return (struct http_error){ 400, "bad_length",
                                    "message length field past the end" };
    case KF_EAPPID:
        return (struct http_error){ 400, "appid_mismatch",
                                    "message is for another AppID" };
    case KF_EACCOUNT:
        return (struct http_error){ 400, "account_mismatch",
                                    "ToUserName is not this account" };
    case KF_ENOKEY:
        return (struct http_error){ 400, "encryption_not_configured",
                                    "encrypted callback but no "
                                    "EncodingAESKey is configured" };
    case KF_EENCODING:
        return (struct http_error){ 400, "encoding_refused",
                                    "[wechat] encoding refuses this "
                                    "callback (safe: encrypted only; "
                                    "plaintext: plaintext only)" };
    case KF_EREPLAY:
        return (struct http_error){ 403, "signature_reused",
                                    "this signed query already came with "
                                    "another message" };
    case KF_EINVAL:
        return (struct http_error){ 400, "invalid_field",
                                    "a field is missing or invalid" };
    case KF_EBACKEND:
        return (struct http_error){ 503, "backend_unavailable",
                                    "a backend service is unavailable" };
    case KF_ENOMEM:
    case KF_EIO:
    case KF_ECRYPTO:
        return (struct http_error){ 500, "internal_error",
                                    "internal error" };
    default:
        return (struct http_error){ 400, "malformed_xml",
                                    "malformed request body" };
    }
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}
