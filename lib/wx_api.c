/* wx_api: WeChat's HTTP API over one reused curl handle — the access
 * token (wx_token keeps it in Redis), admission (bucket and budgets), the
 * retry loop and the wrappers. */
#include "wx_api.h"

#include "metrics.h"

#include <stdarg.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "http_client.h"
#include "wx_token.h"

#include "banned.h"

#define JSON_MAX (2u << 20)         /* a JSON answer */
#define URL_MAX 8192
#define TOKEN_WAIT_MS 3000          /* for another process's fetch */
#define LOCK_TTL_MIN_MS 10000
#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 2000
#define SLEEP_TOTAL_MS 5000         /* all backoff sleeps of one call */
#define AGAIN 1                     /* internal: transient, may retry */

static const char SEND_PATH[] = "/cgi-bin/message/custom/send";

struct wx_api {
    const struct config *cfg;       /* borrowed */
    struct wx_token tk;
    CURL *curl;
    struct curl_slist *json_hdrs, *mime_hdrs;
    struct kf_buf resp;             /* JSON answers */
    struct kf_buf *sink;            /* where the answer goes */
    int sink_rc;                    /* why on_data refused */
    char ctype[128];                /* the answer's Content-Type */
    char token[WX_TOKEN_MAX];       /* the one this call uses */
    uint64_t rng;                   /* backoff jitter */
    struct metrics *metrics;        /* borrowed, or NULL */
};

/* One request; the retry loop runs it as often as needed. */
struct req {
    const char *method;             /* "GET" | "POST" */
    const char *path;
    const char *query;              /* escaped, no access_token; or NULL */
    const char *body;               /* POST: JSON text, or NULL */
    size_t body_len;
    const char *filename;           /* set: multipart POST of field "media"
                                       with data instead of body */
    const void *data;
    size_t data_len;
    struct kf_buf *media;           /* media/get: the bytes go here */
    const char *budget;             /* daily budget it spends, or NULL */
    long budget_limit;
    int is_token;                   /* an access-token fetch */
};

enum verdict { V_OK, V_RETRY, V_TOKEN, V_FAIL };

/* xorshift64*: jitter needs no cryptographic quality. */
static uint64_t rng_next(struct wx_api *a)
{
    a->rng ^= a->rng >> 12;
    a->rng ^= a->rng << 25;
    a->rng ^= a->rng >> 27;
    return a->rng * 2685821657736338717ULL;
}

/* --- results ------------------------------------------------------------ */

void wx_api_result_init(struct wx_api_result *r)
{
    memset(r, 0, sizeof(*r));
}

void wx_api_result_release(struct wx_api_result *r)
{
    json_decref(r->body);
    r->body = NULL;
}

static void set_msg(struct wx_api_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_msg(struct wx_api_result *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->errmsg, sizeof(r->errmsg), fmt, ap);
    va_end(ap);
    kf_utf8_trim(r->errmsg);     /* WeChat's text, cut or not UTF-8 */
}

/* Replaces every occurrence of secret in s by "***". */
static void scrub(char *s, const char *secret)
{
    size_t n = strlen(secret);
    char *p;

    if (n == 0)
        return;
    while ((p = strstr(s, secret)) != NULL) {
        memcpy(p, "***", 3);
        memmove(p + 3, p + n, strlen(p + n) + 1);
    }
}

/* --- one HTTP request -------------------------------------------------- */

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    struct wx_api *a = ud;
    int rc = kf_buf_append(a->sink, p, size * n);

    if (rc < 0) {
        a->sink_rc = rc;
        return 0;
    }
    return size * n;
}

/* Appends name=escaped(value). */
static int add_param(struct wx_api *a, struct kf_buf *b, const char *name,
                     const char *value)
{
    char *esc = curl_easy_escape(a->curl, value, 0);
    int rc;

    if (!esc)
        return KF_ENOMEM;
    rc = kf_buf_printf(b, "%s%s=%s", b->len ? "&" : "", name, esc);
    OPENSSL_cleanse(esc, strlen(esc));
    curl_free(esc);
    return rc;
}

static int build_url(struct wx_api *a, const struct req *q, const char *tok,
                     struct kf_buf *url)
{
    const char *base = a->cfg->wechat.api_base;
    size_t n = strlen(base);
    struct kf_buf qs;
    int rc;

    while (n > 0 && base[n - 1] == '/')
        n--;
    kf_buf_init(&qs, URL_MAX);
    rc = q->is_token ? 0 : add_param(a, &qs, "access_token", tok);
    if (rc == 0 && q->query && *q->query)
        rc = kf_buf_printf(&qs, "%s%s", qs.len ? "&" : "", q->query);
    if (rc == 0)
        rc = kf_buf_append(url, base, n);
    if (rc == 0)
        rc = kf_buf_append_c(url, q->path);
    if (rc == 0 && qs.len)
        rc = kf_buf_printf(url, "?%s", qs.p);
    if (qs.p)
        OPENSSL_cleanse(qs.p, qs.len);
    kf_buf_release(&qs);
    return rc;
}

#define SET(opt, val)                                       \
    do {                                                    \
        if (curl_easy_setopt(c, opt, val) != CURLE_OK)      \
            return KF_EINVAL;                               \
    } while (0)

static int set_options(struct wx_api *a, const struct req *q,
                       const char *url, curl_mime *mime)
{
    const struct config *cfg = a->cfg;
    const struct http_client_opts o = {
        url, cfg->wechat.api_connect_timeout_ms, cfg->wechat.api_timeout_ms,
        cfg->wechat.ca_file
    };
    CURL *c = a->curl;

    if (http_client_setup(c, &o) < 0)
        return KF_EINVAL;
    SET(CURLOPT_WRITEFUNCTION, on_data);
    SET(CURLOPT_WRITEDATA, a);
    if (mime) {
        SET(CURLOPT_MIMEPOST, mime);
        SET(CURLOPT_HTTPHEADER, a->mime_hdrs);
    } else if (strcmp(q->method, "POST") == 0) {
        SET(CURLOPT_POSTFIELDS, q->body ? q->body : "");
        SET(CURLOPT_POSTFIELDSIZE_LARGE,
            (curl_off_t)(q->body ? q->body_len : 0));
        SET(CURLOPT_HTTPHEADER, a->json_hdrs);
    } else {
        SET(CURLOPT_HTTPGET, 1L);
    }
    return 0;
}

#undef SET

/* The multipart form: one part "media" with the bytes. Built afresh for
 * each attempt: curl does not rewind a reused one after a reset. */
static curl_mime *media_form(struct wx_api *a, const struct req *q)
{
    curl_mime *m = curl_mime_init(a->curl);
    curl_mimepart *p = m ? curl_mime_addpart(m) : NULL;

    if (!p || curl_mime_name(p, "media") != CURLE_OK ||
        curl_mime_filename(p, q->filename) != CURLE_OK ||
        curl_mime_data(p, q->data, q->data_len) != CURLE_OK) {
        curl_mime_free(m);
        return NULL;
    }
    return m;
}

/* Errors of our setup rather than of the network: retrying cannot help. */
static int curl_permanent(CURLcode cc)
{
    switch (cc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_FAILED_INIT:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        return 1;
    default:
        return 0;
    }
}

/* Sends q. 0: an HTTP answer is in the sink (any status); AGAIN: a
 * transient network failure; < 0: permanent. The error text is curl's
 * generic one, which never contains the URL (and so the token). */
static int perform(struct wx_api *a, const struct req *q, const char *tok,
                   struct wx_api_result *res)
{
    curl_mime *mime = NULL;
    struct kf_buf url;
    char *ct = NULL;
    long status = 0;
    CURLcode cc;
    int rc;

    res->http_status = 0;
    a->sink = q->media ? q->media : &a->resp;
    a->sink_rc = 0;
    a->ctype[0] = '\0';
    kf_buf_reset(a->sink);
    kf_buf_init(&url, URL_MAX);
    curl_easy_reset(a->curl);       /* keeps the live connections */
    rc = build_url(a, q, tok, &url);
    if (rc == 0 && q->filename && !(mime = media_form(a, q)))
        rc = KF_ENOMEM;
    if (rc == 0)
        rc = set_options(a, q, url.p, mime);
    if (rc < 0) {
        set_msg(res, "request not built: %s", kf_strerror(rc));
        goto out;
    }
    cc = curl_easy_perform(a->curl);
    if (curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &status) ==
        CURLE_OK)
        res->http_status = (int)status;
    if (curl_easy_getinfo(a->curl, CURLINFO_CONTENT_TYPE, &ct) ==
        CURLE_OK && ct)
        snprintf(a->ctype, sizeof(a->ctype), "%s", ct);
    if (cc == CURLE_WRITE_ERROR && a->sink_rc < 0) {
        rc = a->sink_rc;
        set_msg(res, "answer larger than %zu bytes", a->sink->max);
    } else if (cc != CURLE_OK) {
        rc = curl_permanent(cc) ? KF_EBACKEND : AGAIN;
        set_msg(res, "curl: %s", curl_easy_strerror(cc));
    }
out:
    /* curl keeps its own copy; ours, with the token, goes now */
    if (url.p)
        OPENSSL_cleanse(url.p, url.len);
    kf_buf_release(&url);
    curl_easy_reset(a->curl);       /* drops curl's copy and the form */
    curl_mime_free(mime);
    return rc;
}

/* --- what the answer says ---------------------------------------------- */

static int ctype_json(const char *ct)
{
    for (; *ct; ct++)
        if (strncasecmp(ct, "json", 4) == 0)
            return 1;
    return 0;
}

static int ctype_text(const char *ct)
{
    return strncasecmp(ct, "text/", 5) == 0;
}

static void take_errmsg(struct wx_api *a, json_t *j,
                        struct wx_api_result *res)
{
    const char *m = json_string_value(json_object_get(j, "errmsg"));
    const char *known = wx_api_errcode_text(res->errcode);

    if (m && *m)
        set_msg(res, "%s", m);
    else
        set_msg(res, "errcode %ld%s%s", res->errcode, known ? ": " : "",
                known ? known : "");
    if (strlen(a->token) >= 8)
        scrub(res->errmsg, a->token);
    if (strlen(a->cfg->wechat.app_secret) >= 8)
        scrub(res->errmsg, a->cfg->wechat.app_secret);
}

/* Success = HTTP 200 and no errcode (or 0). A binary media/get answer is
 * anything that is not JSON. */
static enum verdict judge(struct wx_api *a, const struct req *q,
                          struct wx_api_result *res, int *fail)
{
    const struct kf_buf *b = a->sink;
    int st = res->http_status;
    json_t *j, *ec;

    if (st >= 500 || st == 429) {
        set_msg(res, "HTTP %d", st);
        return V_RETRY;
    }
    if (st != 200) {
        set_msg(res, "HTTP %d", st);
        *fail = KF_EBACKEND;
        return V_FAIL;
    }
    if (q->media && !ctype_json(a->ctype) && !ctype_text(a->ctype))
        return V_OK;
    j = b->len ? json_loadb(b->p, b->len, 0, NULL) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        if (q->media && ctype_text(a->ctype))
            return V_OK;
        set_msg(res, "answer is not a JSON object");
        return V_RETRY;
    }
    json_decref(res->body);
    res->body = j;
    ec = json_object_get(j, "errcode");
    if (!json_is_integer(ec) || json_integer_value(ec) == 0) {
        res->errcode = 0;
        res->errmsg[0] = '\0';
        return V_OK;
    }
    res->errcode = (long)json_integer_value(ec);
    take_errmsg(a, j, res);
    if (q->media)
        kf_buf_reset(q->media);
    switch (wx_api_errcode_transient(res->errcode)) {
    case WX_API_ERR_TRANSIENT:
        return V_RETRY;
    case WX_API_ERR_TOKEN:
        if (!q->is_token)       /* from the token endpoint: bad secret */
            return V_TOKEN;
        break;
    }
    *fail = KF_EWECHAT;
    return V_FAIL;
}

static enum verdict attempt(struct wx_api *a, const struct req *q,
                            struct wx_api_result *res, int *fail)
{
    int rc;

    json_decref(res->body);         /* the body is the last answer's */
    res->body = NULL;
    rc = perform(a, q, a->token, res);

    if (rc == AGAIN)
        return V_RETRY;
    if (rc < 0) {
        *fail = rc;
        return V_FAIL;
    }
    return judge(a, q, res, fail);
}

/* --- the access token -------------------------------------------------- */

/* The token request: stable_token (POST JSON, never force_refresh) or
 * the classic GET /cgi-bin/token. Its texts hold the AppSecret. */
static int token_request(struct wx_api *a, struct req *q, char **body,
                         struct kf_buf *query)
{
    const struct config *cfg = a->cfg;
    json_t *j;
    int rc;

    q->is_token = 1;
    if (strcmp(cfg->wechat.token_endpoint, "token") == 0) {
        q->method = "GET";
        q->path = "/cgi-bin/token";
        rc = add_param(a, query, "grant_type", "client_credential");
        if (rc == 0)
            rc = add_param(a, query, "appid", cfg->wechat.app_id);
        if (rc == 0)
            rc = add_param(a, query, "secret", cfg->wechat.app_secret);
        q->query = query->p;
        return rc;
    }
    q->method = "POST";
    q->path = "/cgi-bin/stable_token";
    j = json_pack("{s:s, s:s, s:s, s:b}", "grant_type", "client_credential",
                  "appid", cfg->wechat.app_id, "secret",
                  cfg->wechat.app_secret, "force_refresh", 0);
    *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!*body)
        return KF_ENOMEM;
    q->body = *body;
    q->body_len = strlen(*body);
    return 0;
}

/* The token and its lifetime from the endpoint's answer. */
static int token_answer(struct wx_api_result *res, char *tok,
                        long *expires_in)
{
    const char *t = json_string_value(json_object_get(res->body,
                                                      "access_token"));
    json_t *e = json_object_get(res->body, "expires_in");

    if (!t || !*t || strlen(t) >= WX_TOKEN_MAX || !json_is_integer(e) ||
        json_integer_value(e) <= 0 || json_integer_value(e) > 86400 * 30) {
        set_msg(res, "answer without a usable access_token/expires_in");
        return AGAIN;
    }
    memcpy(tok, t, strlen(t) + 1);
    *expires_in = (long)json_integer_value(e);
    return 0;
}

/* One HTTP request to the token endpoint. 0: tok (WX_TOKEN_MAX) and
 * *expires_in set; AGAIN; < 0. Leaves no token in res or a->resp. */
/* One HTTP attempt at path, by WeChat's errcode, or "http_<status>" /
 * "network" when WeChat did not answer with JSON. */
static void count_call(struct wx_api *a, const char *path,
                       const struct wx_api_result *res)
{
    char code[32], labels[METRICS_LABELS_MAX + 1];

    if (!a->metrics)
        return;
    if (res->http_status == 0)
        snprintf(code, sizeof(code), "network");
    else if (res->http_status != 200)
        snprintf(code, sizeof(code), "http_%d", res->http_status);
    else
        snprintf(code, sizeof(code), "%ld", res->errcode);
    if (metrics_labels(labels, sizeof(labels), 2, "api", path, "errcode",
                       code) == 0)
        metrics_inc(a->metrics, METRICS_WECHAT_API_CALLS, labels, 1);
}

static int fetch_token(struct wx_api *a, struct wx_api_result *res,
                       char *tok, long *expires_in)
{
    struct req q = { 0 };
    struct kf_buf query;
    char *body = NULL;
    enum verdict v;
    int rc, fail = KF_EBACKEND;

    kf_buf_init(&query, URL_MAX);
    rc = token_request(a, &q, &body, &query);
    if (rc < 0)
        goto out;
    v = attempt(a, &q, res, &fail);
    count_call(a, q.path, res);
    rc = v == V_OK ? token_answer(res, tok, expires_in)
         : v == V_RETRY ? AGAIN : fail;
    if (rc == 0 && a->metrics)
        metrics_inc(a->metrics, METRICS_TOKEN_REFRESHES, "", 1);
out:
    if (rc != 0) {
        char why[sizeof(res->errmsg)];

        memcpy(why, res->errmsg, sizeof(why));
        set_msg(res, "token endpoint: %s", why);
    }
    json_decref(res->body);
    res->body = NULL;
    if (a->resp.p)
        OPENSSL_cleanse(a->resp.p, a->resp.len);
    if (body)
        OPENSSL_cleanse(body, strlen(body));
    free(body);
    if (query.p)
        OPENSSL_cleanse(query.p, query.len);
    kf_buf_release(&query);
    return rc;
}

static long lock_ttl(const struct wx_api *a)
{
    long t = a->cfg->wechat.api_timeout_ms + 2000;

    return t > LOCK_TTL_MIN_MS ? t : LOCK_TTL_MIN_MS;
}

static void limit_msg(struct wx_api_result *res,
                      const struct wx_token_refusal *why, const char *what)
{
    res->transient = 1;
    res->retry_after_ms = why->retry_after_ms;
    if (why->budget)
        set_msg(res, "daily %s budget used up ([ratelimit] %s_per_day)",
                what, what);
    else
        set_msg(res, "rate limit ([ratelimit] wechat_api_per_min): next "
                     "token in %lld ms", (long long)why->retry_after_ms);
}

static int redis_down(struct wx_api_result *res, int rc)
{
    res->transient = 1;
    set_msg(res, "redis: %s", kf_strerror(rc));
    return KF_EBACKEND;
}

struct fetch_ctx {
    struct wx_api *a;
    struct wx_api_result *res;
};

static int fetch_cb(void *ctx, char *tok, long *expires_in, int *answered)
{
    struct fetch_ctx *c = ctx;
    int rc = fetch_token(c->a, c->res, tok, expires_in);

    *answered = c->res->http_status != 0;
    return rc;
}

/* Puts a usable access token in a->token (wx_token_get decides whether
 * we fetch it, wait for it, or use the cached one). */
static int token_get(struct wx_api *a, struct wx_api_result *res)
{
    struct fetch_ctx c = { a, res };
    const struct wx_token_fetcher f = {
        fetch_cb, &c, a->cfg->ratelimit.token_per_day, lock_ttl(a),
        TOKEN_WAIT_MS,
    };
    struct wx_token_refusal why;
    enum wx_token_stop stop;
    int rc = wx_token_get(&a->tk, &f, a->token, &stop, &why);

    switch (stop) {
    case WX_TOKEN_STOP_REDIS:
        return redis_down(res, rc);
    case WX_TOKEN_STOP_BUDGET:
        limit_msg(res, &why, "token");
        return rc;
    case WX_TOKEN_STOP_WAIT:
        set_msg(res, "no access token: another process is fetching it");
        return AGAIN;
    default:
        return rc;              /* 0, or fetch_token's AGAIN or code */
    }
}

/* --- the retry loop ----------------------------------------------------- */

/* The bucket (and q's budget) for one attempt. */
static int admit(struct wx_api *a, const struct req *q,
                 struct wx_api_result *res, int64_t *at)
{
    struct wx_token_refusal why;
    int rc;

    *at = kf_wall_ms();
    rc = wx_token_admit(&a->tk, *at, a->cfg->ratelimit.wechat_api_per_min,
                        q->budget, q->budget_limit, &why);
    if (rc == KF_ELIMIT && a->metrics)
        metrics_inc(a->metrics, METRICS_RATELIMIT_REJECTIONS,
                    q->budget ? "kind=\"wechat_budget\""
                              : "kind=\"wechat_api\"", 1);
    if (rc == KF_ELIMIT)
        limit_msg(res, &why, q->budget ? q->budget : "");
    else if (rc < 0)
        rc = redis_down(res, rc);
    return rc;
}

/* Full jitter: a random sleep in [0, min(cap, base * 2^retry)], within
 * what is left of the call's sleep allowance. Returns the ms slept. */
static long back_off(struct wx_api *a, long retry, long left_ms)
{
    long cap = BACKOFF_BASE_MS << (retry < 5 ? retry : 5), ms;

    if (cap > BACKOFF_CAP_MS)
        cap = BACKOFF_CAP_MS;
    ms = (long)(rng_next(a) % (uint64_t)(cap + 1));
    if (ms > left_ms)
        ms = left_ms;
    if (ms > 0)
        kf_sleep_ms(ms);
    return ms;
}

static void reset_result(struct wx_api_result *res)
{
    wx_api_result_release(res);
    wx_api_result_init(res);
}

static int run(struct wx_api *a, const struct req *q,
               struct wx_api_result *res)
{
    long retries = 0, slept = 0;
    int refreshed = 0, rc, rc2 = 0, fail = KF_EBACKEND, dropped;
    enum verdict v;
    int64_t at = 0;

    reset_result(res);
    for (;;) {
        rc = token_get(a, res);
        if (rc == 0)
            rc = admit(a, q, res, &at);
        if (rc < 0)
            break;
        if (rc == AGAIN) {
            v = V_RETRY;
        } else {
            res->attempts++;
            v = attempt(a, q, res, &fail);
            count_call(a, q->path, res);
            if (q->budget && res->http_status == 0)
                rc2 = wx_token_refund(&a->tk, at, q->budget);
        }
        rc = 0;
        if (v == V_OK) {
            res->errcode = 0;
            res->errmsg[0] = '\0';
            res->transient = 0;
            break;
        }
        if (v == V_TOKEN && !refreshed) {
            /* that exact token: a newer one from elsewhere survives */
            refreshed = 1;
            rc2 = wx_token_drop(&a->tk, a->token, &dropped);
            continue;
        }
        if (v != V_RETRY) {
            rc = v == V_TOKEN ? KF_EWECHAT : fail;
            res->transient = 0;
            break;
        }
        if (retries >= a->cfg->wechat.api_retries) {
            rc = KF_EBACKEND;
            res->transient = 1;
            break;
        }
        slept += back_off(a, retries++, SLEEP_TOTAL_MS - slept);
    }
    (void)rc2;
    OPENSSL_cleanse(a->token, sizeof(a->token));
    return rc;
}

/* --- the client ---------------------------------------------------------- */

int wx_api_new(const struct config *cfg, struct store *st,
               struct wx_api **out)
{
    struct wx_api *a;

    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return KF_ENOMEM;
    a = calloc(1, sizeof(*a));
    if (!a) {
        curl_global_cleanup();
        return KF_ENOMEM;
    }
    a->cfg = cfg;
    wx_token_init(&a->tk, st);
    kf_buf_init(&a->resp, JSON_MAX);
    a->curl = curl_easy_init();
    a->json_hdrs = curl_slist_append(NULL, "Content-Type: application/json;"
                                           " charset=utf-8");
    if (a->json_hdrs)
        a->json_hdrs = curl_slist_append(a->json_hdrs, "Expect:");
    a->mime_hdrs = curl_slist_append(NULL, "Expect:");
    if (!a->curl || !a->json_hdrs || !a->mime_hdrs ||
        RAND_bytes((unsigned char *)&a->rng, sizeof(a->rng)) != 1) {
        wx_api_free(a);
        return KF_ENOMEM;
    }
    a->rng |= 1;                    /* xorshift needs a non-zero state */
    *out = a;
    return 0;
}

void wx_api_free(struct wx_api *a)
{
    if (!a)
        return;
    if (a->curl)
        curl_easy_cleanup(a->curl);
    curl_slist_free_all(a->json_hdrs);
    curl_slist_free_all(a->mime_hdrs);
    if (a->resp.p)
        OPENSSL_cleanse(a->resp.p, a->resp.len);
    kf_buf_release(&a->resp);
    free(a);
    curl_global_cleanup();
}

static const char *budget_of(const struct wx_api *a, const char *path,
                             long *limit)
{
    if (strcmp(path, SEND_PATH) != 0)
        return NULL;
    *limit = a->cfg->ratelimit.send_per_day;
    return "send";
}

/* Runs q with body (owned: freed here) as its JSON text. */
static int run_json(struct wx_api *a, struct req *q, json_t *body,
                    struct wx_api_result *res)
{
    char *text = NULL;
    int rc;

    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (!text) {
            reset_result(res);
            return KF_ENOMEM;
        }
        q->body = text;
        q->body_len = strlen(text);
    }
    q->budget = budget_of(a, q->path, &q->budget_limit);
    rc = run(a, q, res);
    free(text);
    return rc;
}

int wx_api_call(struct wx_api *a, const char *method, const char *path,
                const char *query, json_t *body, struct wx_api_result *res)
{
    struct req q = { .method = method, .path = path, .query = query };

    if (!method || !path || path[0] != '/' ||
        (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) ||
        (body && strcmp(method, "GET") == 0)) {
        reset_result(res);
        return KF_EINVAL;
    }
    return run_json(a, &q, body ? json_incref(body) : NULL, res);
}

static int post(struct wx_api *a, const char *path, json_t *body,
                struct wx_api_result *res)
{
    struct req q = { .method = "POST", .path = path };

    if (!body) {
        reset_result(res);
        return KF_ENOMEM;
    }
    return run_json(a, &q, body, res);
}

/* GET path, no query but the token. */
static int get(struct wx_api *a, const char *path, struct wx_api_result *res)
{
    struct req q = { .method = "GET", .path = path };

    return run_json(a, &q, NULL, res);
}

static int bad_args(struct wx_api_result *res)
{
    reset_result(res);
    return KF_EINVAL;
}

int wx_api_send(struct wx_api *a, const char *touser, const char *kf_account,
                const char *msgtype, json_t *payload,
                struct wx_api_result *res)
{
    json_t *b;

    if (!touser || !*touser || !msgtype || !*msgtype || !payload)
        return bad_args(res);
    b = json_pack("{s:s, s:s, s:O}", "touser", touser, "msgtype", msgtype,
                  msgtype, payload);
    if (b && kf_account && *kf_account &&
        json_object_set_new(b, "customservice",
                            json_pack("{s:s}", "kf_account",
                                      kf_account)) != 0) {
        json_decref(b);
        b = NULL;
    }
    return post(a, SEND_PATH, b, res);
}

int wx_api_typing(struct wx_api *a, const char *touser, const char *command,
                  struct wx_api_result *res)
{
    if (!touser || !command)
        return bad_args(res);
    return post(a, "/cgi-bin/message/custom/typing",
                json_pack("{s:s, s:s}", "touser", touser, "command",
                          command), res);
}

static int copy_media_id(const struct wx_api_result *res, char *media_id,
                         size_t n)
{
    const char *id = json_string_value(json_object_get(res->body,
                                                       "media_id"));
    size_t len;

    if (!id)
        id = json_string_value(json_object_get(res->body,
                                               "thumb_media_id"));
    if (!id || !*id)
        return KF_EPARSE;
    len = strlen(id);
    if (len >= n)
        return KF_ETOOBIG;
    memcpy(media_id, id, len + 1);
    return 0;
}

int wx_api_media_upload(struct wx_api *a, const char *type,
                        const char *filename, const void *data, size_t len,
                        char *media_id, size_t media_id_len,
                        struct wx_api_result *res)
{
    struct req q = { .method = "POST", .path = "/cgi-bin/media/upload",
                     .filename = filename, .data = data, .data_len = len };
    struct kf_buf query;
    int rc;

    if (!type || !filename || !*filename || (!data && len) || !media_id ||
        media_id_len == 0)
        return bad_args(res);
    media_id[0] = '\0';
    kf_buf_init(&query, URL_MAX);
    rc = add_param(a, &query, "type", type);
    if (rc == 0) {
        q.query = query.p;
        rc = run(a, &q, res);
    } else {
        reset_result(res);
    }
    if (rc == 0)
        rc = copy_media_id(res, media_id, media_id_len);
    kf_buf_release(&query);
    return rc;
}

int wx_api_media_get(struct wx_api *a, const char *media_id,
                     struct kf_buf *out, char *content_type, size_t ct_len,
                     struct wx_api_result *res)
{
    struct req q = { .method = "GET", .path = "/cgi-bin/media/get",
                     .media = out };
    struct kf_buf query;
    int rc;

    if (!media_id || !*media_id || !out)
        return bad_args(res);
    if (content_type && ct_len)
        content_type[0] = '\0';
    kf_buf_init(&query, URL_MAX);
    rc = add_param(a, &query, "media_id", media_id);
    if (rc == 0) {
        q.query = query.p;
        rc = run(a, &q, res);
    } else {
        reset_result(res);
    }
    if (rc == 0 && content_type && ct_len)
        snprintf(content_type, ct_len, "%s", a->ctype);
    if (rc != 0)
        kf_buf_reset(out);
    kf_buf_release(&query);
    return rc;
}

static int kf_account_post(struct wx_api *a, const char *path,
                           const char *kf_account, const char *key,
                           const char *value, struct wx_api_result *res)
{
    json_t *b;

    if (!kf_account || !*kf_account || (key && !value))
        return bad_args(res);
    b = key ? json_pack("{s:s, s:s}", "kf_account", kf_account, key, value)
            : json_pack("{s:s}", "kf_account", kf_account);
    return post(a, path, b, res);
}

int wx_api_kf_add(struct wx_api *a, const char *kf_account,
                  const char *nickname, struct wx_api_result *res)
{
    return kf_account_post(a, "/customservice/kfaccount/add", kf_account,
                           "nickname", nickname, res);
}

int wx_api_kf_update(struct wx_api *a, const char *kf_account,
                     const char *nickname, struct wx_api_result *res)
{
    return kf_account_post(a, "/customservice/kfaccount/update",
                           kf_account, "nickname", nickname, res);
}

int wx_api_kf_del(struct wx_api *a, const char *kf_account,
                  struct wx_api_result *res)
{
    return kf_account_post(a, "/customservice/kfaccount/del", kf_account,
                           NULL, NULL, res);
}

int wx_api_kf_invite(struct wx_api *a, const char *kf_account,
                     const char *invite_wx, struct wx_api_result *res)
{
    return kf_account_post(a, "/customservice/kfaccount/inviteworker",
                           kf_account, "invite_wx", invite_wx, res);
}

int wx_api_kf_list(struct wx_api *a, struct wx_api_result *res)
{
    return get(a, "/cgi-bin/customservice/getkflist", res);
}

int wx_api_kf_online(struct wx_api *a, struct wx_api_result *res)
{
    return get(a, "/cgi-bin/customservice/getonlinekflist", res);
}

int wx_api_kf_session(struct wx_api *a, const char *op,
                      const char *kf_account, const char *openid,
                      struct wx_api_result *res)
{
    const char *path = NULL;

    if (op && strcmp(op, "create") == 0)
        path = "/customservice/kfsession/create";
    else if (op && strcmp(op, "close") == 0)
        path = "/customservice/kfsession/close";
    if (!path || !openid || !*openid)
        return bad_args(res);
    return kf_account_post(a, path, kf_account, "openid", openid, res);
}

void wx_api_set_metrics(struct wx_api *a, struct metrics *m)
{
    if (a)
        a->metrics = m;
}

int wx_api_spent(struct wx_api *a, const char *budget, long *spent)
{
    if (!budget || (strcmp(budget, "send") != 0 &&
                    strcmp(budget, "token") != 0))
        return KF_EINVAL;
    return wx_token_spent(&a->tk, kf_wall_ms(), budget, spent);
}

/* --- errcodes ------------------------------------------------------------ */

static const struct {
    long code;
    const char *text;
} errcodes[] = {
    { -1, "WeChat system busy: try again later" },
    { 40001, "invalid credential: wrong AppSecret, or the access_token is "
             "invalid or not the latest" },
    { 40003, "invalid openid: not a follower of this account" },
    { 40004, "invalid media type" },
    { 40005, "invalid file type" },
    { 40007, "invalid media_id" },
    { 40009, "invalid image size" },
    { 40013, "invalid appid" },
    { 40014, "invalid access_token" },
    { 40125, "invalid appsecret" },
    { 40164, "caller IP not in the account's whitelist" },
    { 40200, "this account type cannot use this API" },
    { 40243, "AppSecret frozen" },
    { 41001, "access_token missing" },
    { 41002, "appid missing" },
    { 41004, "appsecret missing" },
    { 42001, "access_token expired" },
    { 43004, "the user does not follow the account" },
    { 44002, "empty POST body" },
    { 45008, "news message with more than one article" },
    { 45009, "API call frequency or daily quota exceeded" },
    { 45015, "outside the 48-hour customer-service window or the user "
             "unfollowed" },
    { 45047, "the user's message quota of the current window is used up" },
    { 45072, "invalid typing command" },
    { 45080, "typing needs a message from the user within the last 30 s" },
    { 45081, "already typing" },
    { 47001, "malformed POST data" },
    { 48001, "API unauthorized for this account" },
    { 65400, "the new customer-service feature is not enabled" },
    { 65401, "invalid customer-service account" },
    { 65402, "the customer-service account is not bound to a WeChat user" },
    { 65403, "illegal nickname" },
    { 65404, "illegal customer-service account" },
    { 65405, "customer-service account limit (100) reached" },
    { 65406, "customer-service account exists" },
    { 65407, "the WeChat user is already one of the account's agents" },
    { 65408, "the WeChat user was already invited" },
    { 65409, "invalid WeChat ID" },
    { 65410, "the WeChat user is bound to too many customer-service "
             "accounts" },
    { 65411, "an invitation to bind the account is pending" },
    { 65412, "the customer-service account is already bound" },
    { 65413, "no session for this user" },
    { 65414, "the user is being served by another agent" },
    { 65415, "the agent is not online" },
    { 65416, "invalid query parameters" },
    { 65417, "query time range exceeds the limit" },
    { 89503, "IP call needs the administrator's confirmation" },
};

const char *wx_api_errcode_text(long errcode)
{
    size_t i;

    for (i = 0; i < sizeof(errcodes) / sizeof(errcodes[0]); i++)
        if (errcodes[i].code == errcode)
            return errcodes[i].text;
    return NULL;
}

int wx_api_errcode_transient(long errcode)
{
    switch (errcode) {
    case -1:
    case 45009:
        return WX_API_ERR_TRANSIENT;
    case 40001:
    case 40014:
    case 42001:
        return WX_API_ERR_TOKEN;
    default:
        return WX_API_ERR_PERMANENT;
    }
}
