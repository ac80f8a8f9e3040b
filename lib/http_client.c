/* http_client: one curl setup for every outgoing HTTP request. */
#include "http_client.h"

#include "banned.h"

#define SET(opt, val)                                       \
    do {                                                    \
        if (curl_easy_setopt(c, opt, val) != CURLE_OK)      \
            return KF_EINVAL;                               \
    } while (0)

int http_client_setup(CURL *c, const struct http_client_opts *o)
{
    if (!c || !o || o->connect_timeout_ms <= 0 || o->timeout_ms <= 0)
        return KF_EINVAL;
    if (o->url)
        SET(CURLOPT_URL, o->url);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, o->timeout_ms);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_file && *o->ca_file)
        SET(CURLOPT_CAINFO, o->ca_file);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_USERAGENT, "wxkf");
    return 0;
}

#undef SET
