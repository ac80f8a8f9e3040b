/* push: agents' feeds to their Nchan channels (see push.h). */
#include "push.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "http_client.h"
#include "route.h"

#include "banned.h"

#define PUSH_IO_TIMEOUT_MS 3000    /* > the longest BLOCK we ask for */
#define PUSH_BLOCK_MAX_MS 1000
#define PUSH_BATCH 100             /* entries per agent per pass (< 2m) */

int push_enabled(const struct config *cfg)
{
    return cfg->push.url && cfg->push.url[0];
}

static size_t discard(char *p, size_t size, size_t n, void *u)
{
    (void)p;
    (void)u;
    return size * n;
}

/* The shared setup (lib/http_client) for a request to Nchan, over its
 * unix socket when one is configured; the answer is thrown away. */
static int set_common(CURL *c, const char *url, long timeout_ms,
                      const char *socket)
{
    const struct http_client_opts o = { url, 1000L, timeout_ms, NULL };

    if (http_client_setup(c, &o) < 0 ||
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK)
        return KF_EINVAL;
    if (socket && socket[0] &&
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket) != CURLE_OK)
        return KF_EINVAL;
    return 0;
}

int push_open(struct push *p, const struct config *cfg, const struct log *log)
{
    CURL *c;
    int rc;

    memset(p, 0, sizeof(*p));
    p->log = log;
    if (strncmp(cfg->push.url, "http://", 7) != 0 &&
        strncmp(cfg->push.url, "https://", 8) != 0)
        return KF_ECONFIG;
    snprintf(p->url, sizeof(p->url), "%s", cfg->push.url);
    snprintf(p->socket, sizeof(p->socket), "%s", cfg->push.socket);
    rc = store_init_config(&p->store, cfg);
    if (rc < 0)
        return rc;
    p->store.io_timeout_ms = PUSH_IO_TIMEOUT_MS;   /* blocking XREAD */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return KF_ENOMEM;
    c = curl_easy_init();
    p->curl = c;
    if (!c)
        return KF_ENOMEM;
    return set_common(c, NULL, 2000L, p->socket);
}

void push_close(struct push *p)
{
    if (p->curl) {
        curl_easy_cleanup(p->curl);
        curl_global_cleanup();
        p->curl = NULL;
    }
    free(p->cur);
    p->cur = NULL;
    p->ncur = 0;
    store_release(&p->store);
}

static int by_account(const void *a, const void *b)
{
    return strcmp(((const struct push_cursor *)a)->account,
                  ((const struct push_cursor *)b)->account);
}

static struct push_cursor *find(struct push *p, const char *account)
{
    struct push_cursor key;

    snprintf(key.account, sizeof(key.account), "%s", account);
    return p->ncur ? bsearch(&key, p->cur, p->ncur, sizeof(*p->cur),
                             by_account)
                   : NULL;
}

/* Re-reads P agents: known agents keep their cursors, new ones start
 * PUSH_LOOKBACK_MS back, removed ones are dropped. */
static int refresh(struct push *p, int64_t now_ms)
{
    char key[160];
    const char *argv[] = { "SMEMBERS", key };
    redisReply *rep = NULL;
    struct push_cursor *next, *old;
    size_t i, n = 0;
    int rc;

    snprintf(key, sizeof(key), "%sagents", p->store.prefix);
    rc = store_command(&p->store, 2, argv, NULL, &rep);
    if (rc < 0)
        return rc;
    if (rep->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return KF_EBACKEND;
    }
    next = calloc(rep->elements ? rep->elements : 1, sizeof(*next));
    if (!next) {
        freeReplyObject(rep);
        return KF_ENOMEM;
    }
    for (i = 0; i < rep->elements && n < PUSH_AGENTS_MAX; i++) {
        const redisReply *e = rep->element[i];

        if (e->type != REDIS_REPLY_STRING || e->len == 0 ||
            e->len >= sizeof(next[n].account))
            continue;
        memcpy(next[n].account, e->str, e->len);
        old = find(p, next[n].account);
        if (old)
            memcpy(next[n].last, old->last, sizeof(old->last));
        else
            snprintf(next[n].last, sizeof(next[n].last), "%lld-0",
                     (long long)(now_ms - PUSH_LOOKBACK_MS));
        n++;
    }
    freeReplyObject(rep);
    qsort(next, n, sizeof(*next), by_account);
    free(p->cur);
    p->cur = next;
    p->ncur = n;
    p->next_refresh_ms = now_ms + PUSH_REFRESH_MS;
    return 0;
}

/* POST {"events":[...]} to the agent's channel (takes events). */
static int publish(struct push *p, const char *account, json_t *events)
{
    char url[640], *body;
    struct curl_slist *h;
    CURL *c = p->curl;
    long status = 0;
    CURLcode cc;

    body = events ? json_dumps(events, JSON_COMPACT) : NULL;
    json_decref(events);
    if (!body)
        return KF_ENOMEM;
    /* accounts are [A-Za-z0-9_@-]: nothing to escape in a path */
    snprintf(url, sizeof(url), "%s%s", p->url, account);
    h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    cc = curl_easy_perform(c);
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    free(body);
    if (cc != CURLE_OK || status < 200 || status > 299) {
        log_warn(p->log, "push", "publish_failed", "agent=%s status=%ld "
                 "err=%s", account, status,
                 cc == CURLE_OK ? "-" : curl_easy_strerror(cc));
        return KF_EBACKEND;
    }
    return 0;
}

/* XREAD [BLOCK ms] COUNT n STREAMS key... id... for cursors [from, to). */
static int read_streams(struct push *p, size_t from, size_t to, long block_ms,
                        redisReply **rep)
{
    size_t n = to - from, i, argc = 0;
    const char **argv = calloc(6 + 2 * n, sizeof(*argv));
    char (*keys)[160] = calloc(n ? n : 1, sizeof(*keys));
    char block[24], count[24];
    int rc;

    if (!argv || !keys) {
        free(argv);
        free(keys);
        return KF_ENOMEM;
    }
    snprintf(block, sizeof(block), "%ld", block_ms);
    snprintf(count, sizeof(count), "%d", PUSH_BATCH);
    argv[argc++] = "XREAD";
    if (block_ms > 0) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "COUNT";
    argv[argc++] = count;
    argv[argc++] = "STREAMS";
    for (i = 0; i < n; i++) {
        snprintf(keys[i], sizeof(keys[i]), "%sinbox:%s", p->store.prefix,
                 p->cur[from + i].account);
        argv[argc++] = keys[i];
    }
    for (i = 0; i < n; i++)
        argv[argc++] = p->cur[from + i].last;
    rc = store_command(&p->store, (int)argc, argv, NULL, rep);
    free(argv);
    free(keys);
    if (rc == 0 && (*rep)->type == REDIS_REPLY_ERROR) {
        log_warn(p->log, "push", "xread_failed", "err=%s", (*rep)->str);
        freeReplyObject(*rep);
        *rep = NULL;
        rc = KF_EBACKEND;
    }
    return rc;
}

/* One stream of an XREAD reply: {key, {{id, fields}...}}. */
static void deliver(struct push *p, const redisReply *s,
                    struct push_counts *c)
{
    const redisReply *entries;
    const char *acct;
    struct push_cursor *cur;
    char prev[48];
    size_t plen = strlen(p->store.prefix) + strlen("inbox:"), i;
    json_t *list;

    if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
        s->element[0]->type != REDIS_REPLY_STRING ||
        s->element[0]->len <= plen || s->element[1]->type != REDIS_REPLY_ARRAY)
        return;
    acct = s->element[0]->str + plen;
    cur = find(p, acct);
    entries = s->element[1];
    if (!cur || entries->elements == 0)
        return;
    /* the id before this batch: a console whose cursor is older missed
     * something (a failed publish, a restart) and catches up first */
    snprintf(prev, sizeof(prev), "%s", cur->last);
    list = json_array();
    for (i = 0; list && i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        json_t *o = route_entry_json((const struct store_reply *)e);

        if (!o)
            continue;
        json_array_append_new(list, o);
        snprintf(cur->last, sizeof(cur->last), "%s", e->element[0]->str);
    }
    if (!list)
        return;
    c->entries += (long)json_array_size(list);
    if (publish(p, cur->account, json_pack("{s:s,s:o}", "prev", prev,
                                           "events", list)) == 0)
        c->published++;
    else
        c->failed++;
}

int push_pass(struct push *p, long block_ms, int64_t now_ms,
              struct push_counts *c)
{
    redisReply *rep = NULL;
    size_t i;
    int rc = 0;

    if (now_ms >= p->next_refresh_ms)
        rc = refresh(p, now_ms);
    if (rc < 0)
        return rc;
    if (p->ncur == 0) {
        /* nobody to follow: wait as a blocking read would */
        kf_sleep_ms(block_ms);
        return 0;
    }
    if (block_ms > PUSH_BLOCK_MAX_MS)
        block_ms = PUSH_BLOCK_MAX_MS;
    rc = read_streams(p, 0, p->ncur, block_ms, &rep);
    if (rc < 0)
        return rc;
    for (i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++)
        deliver(p, rep->element[i], c);
    freeReplyObject(rep);
    return 0;
}

int push_drop(const struct config *cfg, const char *account)
{
    char url[640];
    long status = 0;
    CURLcode cc;
    CURL *c;

    if (!push_enabled(cfg))
        return 0;
    c = curl_easy_init();
    if (!c)
        return KF_ENOMEM;
    snprintf(url, sizeof(url), "%s%s", cfg->push.url, account);
    if (set_common(c, url, 1000L, cfg->push.socket) < 0 ||
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE") != CURLE_OK) {
        curl_easy_cleanup(c);
        return KF_EBACKEND;
    }
    cc = curl_easy_perform(c);
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    /* 200/202 dropped, 404 there was none */
    return cc == CURLE_OK && (status < 300 || status == 404) ? 0 : KF_EBACKEND;
}
