/* http_client: the one place an outgoing curl handle is configured —
 * http/https only (redirects too), TLS verified (peer and host, against
 * an optional CA file), connect and total timeouts, no signals, the
 * "wxkf" user agent; proxies come from the environment (http_proxy,
 * https_proxy, no_proxy), as libcurl reads them. Used by wx_api (WeChat's
 * API), media (a video's download URL) and push (Nchan). */
#ifndef HTTP_CLIENT_H
#define HTTP_CLIENT_H

#include <curl/curl.h>

#include "kf.h"

struct http_client_opts {
    const char *url;          /* NULL: set later (CURLOPT_URL) */
    long connect_timeout_ms;  /* > 0 */
    long timeout_ms;          /* > 0: the whole transfer */
    const char *ca_file;      /* NULL or "": the system's CA store */
};

/* Sets those options on c (fresh or after curl_easy_reset). KF_EINVAL
 * when curl refuses one (c is then half set: reset or clean it up). */
KF_WUR int http_client_setup(CURL *c, const struct http_client_opts *o);

#endif
