/* http: the HTTP vocabulary shared by the worker's routes — URL query
 * strings (bounded, percent-decoded into one owned buffer) and the mapping
 * from a kf error code to an HTTP status and a stable snake_case code. */
#ifndef HTTP_H
#define HTTP_H

#include "kf.h"

#define HTTP_QUERY_MAX 4096   /* bytes of QUERY_STRING we accept */
#define HTTP_QUERY_PARAMS 32  /* parameters we keep */

struct http_param {
    struct kf_str name, value;
};

struct http_query {
    char *buf;                /* owned: decoded names and values */
    struct http_param v[HTTP_QUERY_PARAMS];
    size_t n;
};

void http_query_init(struct http_query *q);
/* Parses a=b&c=d (percent- and '+'-decoding). Longer than HTTP_QUERY_MAX
 * or more than HTTP_QUERY_PARAMS parameters -> KF_ETOOBIG; a malformed
 * %xx escape or a decoded NUL -> KF_EPARSE. */
KF_WUR int http_query_parse(struct http_query *q, struct kf_str qs);
/* First value of name; borrowed from q. Returns 1 if present, else 0 and
 * *out is empty. */
int http_query_get(const struct http_query *q, const char *name,
                   struct kf_str *out);
void http_query_release(struct http_query *q);   /* safe twice */

/* A response error: HTTP status, stable code, human message. */
struct http_error {
    int status;
    const char *code;
    const char *message;
};

/* The error a callback failure maps to (e.g. KF_EBADSIG -> 403
 * bad_signature, KF_EPADDING -> 400 bad_padding). */
struct http_error http_error_for(int rc);
const char *http_reason(int status);   /* "OK", "Not Found", ... */

#endif
