/* media: fetching inbound media into the store, and serving it. */
#include "media.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "http_client.h"
#include "media_keep.h"

#include "banned.h"

#define PATH_MAX_LEN 4096
#define PAYLOAD_MAX (64 * 1024)     /* a msg_in payload (callback's cap) */
#define IO_PAUSE_MS 10000
#define DOWNLOAD_TIMEOUT_MS 120000L
#define OP_ARGS 12
#define ROOM_FILES 1000         /* files a fetch may delete to make room */
#define JOB_TTL_S "259200"      /* 3 days: WeChat keeps a media no longer */
#define FAILED_TTL_S "604800"   /* a failure (or retry count): 7 days */

/* One pass's take. The group only reads P events: every entry it reads
 * is acknowledged at once, so it never holds back the archiver's trimming
 * for longer than a pass. An inbound image, voice, video or shortvideo
 * becomes a job: P media_job:<entry id> (openid, msgtype, payload, agent;
 * expires after JOB_TTL_S, when WeChat has forgotten the media anyway)
 * and a member of the sorted set P media_jobs scored by when it is due.
 * The group is created at id 0 the first time (entries already in the
 * stream are seen), at '$' after fetch = 0 dropped it (P media_off:
 * entries appended while fetching was off are not fetched). Entries an
 * earlier version left pending are claimed (XAUTOCLAIM) and handled the
 * same way; consumers gone for a day with nothing pending are removed
 * when the claim cursor wraps. Then up to COUNT due jobs are leased: their
 * score moves lease_ms ahead, so another consumer takes a job only if
 * this one died holding it.
 * KEYS[1] = P; ARGV: group, consumer, count, idle_ms, claim cursor,
 * now_ms, lease_ms. Returns { claim cursor, acked (not media), queued,
 * { {id, openid, msgtype, payload, agent}... } }. */
static const char take_lua[] =
    "local P = KEYS[1]\n"
    "local S, JOBS = P .. 'events', P .. 'media_jobs'\n"
    "local g, me, n = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "local now, lease = tonumber(ARGV[6]), tonumber(ARGV[7])\n"
    "local start = '0'\n"
    "if redis.call('EXISTS', P .. 'media_off') == 1 then start = '$' end\n"
    "local made = redis.pcall('XGROUP', 'CREATE', S, g, start, 'MKSTREAM')\n"
    "if made.err then\n"
    "    if not string.find(made.err, 'BUSYGROUP', 1, true) then\n"
    "        return redis.error_reply(made.err)\n"
    "    end\n"
    "else\n"
    "    redis.call('DEL', P .. 'media_off')\n"
    "end\n"
    "local MEDIA = { image = true, voice = true, video = true,\n"
    "                shortvideo = true }\n"
    "local acks, seen, queued = {}, {}, 0\n"
    "local function take(e)\n"
    "    local id, f = e[1], e[2]\n"
    "    if seen[id] then return end\n"
    "    seen[id] = true\n"
    "    acks[#acks + 1] = id\n"
    "    if type(f) ~= 'table' then return end\n"
    "    local h = {}\n"
    "    for i = 1, #f - 1, 2 do h[f[i]] = f[i + 1] end\n"
    "    if h.type ~= 'msg_in' or not MEDIA[h.msgtype] then return end\n"
    "    local k = P .. 'media_job:' .. id\n"
    "    redis.call('HSET', k, 'openid', h.openid or '', 'msgtype',\n"
    "               h.msgtype, 'payload', h.payload or '', 'agent',\n"
    "               h.agent or '')\n"
    "    redis.call('EXPIRE', k, " JOB_TTL_S ")\n"
    "    redis.call('ZADD', JOBS, 'NX', now, id)\n"
    "    queued = queued + 1\n"
    "end\n"
    "local cl = redis.call('XAUTOCLAIM', S, g, me, ARGV[4], ARGV[5],\n"
    "                      'COUNT', n)\n"
    "for _, e in ipairs(cl[2]) do take(e) end\n"
    "if cl[1] == '0-0' then\n"
    "    for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', S, g)) do\n"
    "        local h = {}\n"
    "        for i = 1, #c - 1, 2 do h[c[i]] = c[i + 1] end\n"
    "        if h.name ~= me and h.pending == 0 and h.idle > 86400000 then\n"
    "            redis.call('XGROUP', 'DELCONSUMER', S, g, h.name)\n"
    "        end\n"
    "    end\n"
    "end\n"
    "local new = redis.call('XREADGROUP', 'GROUP', g, me, 'COUNT', n,\n"
    "                       'STREAMS', S, '>')\n"
    "if type(new) == 'table' and type(new[1]) == 'table' then\n"
    "    for _, e in ipairs(new[1][2] or {}) do take(e) end\n"
    "end\n"
    "if #acks > 0 then redis.call('XACK', S, g, unpack(acks)) end\n"
    "local out = {}\n"
    "for _, id in ipairs(redis.call('ZRANGEBYSCORE', JOBS, '-inf', now,\n"
    "                               'LIMIT', 0, n)) do\n"
    "    local h = redis.call('HMGET', P .. 'media_job:' .. id, 'openid',\n"
    "                         'msgtype', 'payload', 'agent')\n"
    "    if not h[2] then\n"
    "        redis.call('ZREM', JOBS, id)\n"
    "    else\n"
    "        redis.call('ZADD', JOBS, 'XX', now + lease, id)\n"
    "        out[#out + 1] = { id, h[1] or '', h[2], h[3] or '', h[4] or '' }\n"
    "    end\n"
    "end\n"
    "return { cl[1], #acks - queued, queued, out }\n";

/* The per-media steps. KEYS[1] = P; ARGV[1] = op:
 *   begin  mid now                 -> {stored | failed | wait | go,
 *                                      retry_ms or "0"}
 *   stored mid path ct size openid now agent msg     -> 1 (0: already)
 *          (also indexed: P media_files by stored_ms, P media_bytes)
 *   failed key_mid event_mid openid now agent msg reason errcode errmsg
 *                                  -> 1 (0: already); key_mid "" = no hash
 *   retry  mid now min_delay_ms    -> {attempts so far, retry_ms}
 *   done   job_id                  -> the job is finished: removed
 *   later  job_id due_ms           -> the job is due again then
 *   off    group                   -> drops the group (1 if it existed)
 *                                     and notes that fetching was off
 *   lookup mid agent               -> {ok, path, ct, size} | {no_media} |
 *                                     {not_yours} | {media_failed}
 * A failure's hash, and a retry count, expire after FAILED_TTL_S.
 * Events go to P events and to the feed of the agent the message was
 * routed to (as the ingest script's inbox()). */
static const char op_lua[] =
    "local P, op = KEYS[1], ARGV[1]\n"
    "local function mkey(id) return P .. 'media:' .. id end\n"
    "local function emit(agent, f)\n"
    "    redis.call('XADD', P .. 'events', '*', unpack(f))\n"
    "    if agent ~= '' then\n"
    "        redis.call('XADD', P .. 'inbox:' .. agent, 'MAXLEN', '~', 10000,\n"
    "                   '*', unpack(f))\n"
    "    end\n"
    "end\n"
    "if op == 'begin' then\n"
    "    local h = redis.call('HMGET', mkey(ARGV[2]), 'path', 'error',\n"
    "                         'retry_ms')\n"
    "    if h[1] then return { 'stored', '0' } end\n"
    "    if h[2] then return { 'failed', '0' } end\n"
    "    if h[3] and tonumber(h[3]) > tonumber(ARGV[3]) then\n"
    "        return { 'wait', h[3] }\n"
    "    end\n"
    "    return { 'go', '0' }\n"
    "elseif op == 'stored' then\n"
    "    local k = mkey(ARGV[2])\n"
    "    if redis.call('HEXISTS', k, 'path') == 1 then return 0 end\n"
    "    redis.call('HSET', k, 'path', ARGV[3], 'content_type', ARGV[4],\n"
    "               'size', ARGV[5], 'openid', ARGV[6], 'stored_ms', ARGV[7],\n"
    "               'msg', ARGV[9])\n"
    "    redis.call('HDEL', k, 'retry_ms')\n"
    "    redis.call('PERSIST', k)\n"
    "    redis.call('ZADD', P .. 'media_files', ARGV[7], ARGV[2])\n"
    "    redis.call('INCRBY', P .. 'media_bytes', ARGV[5])\n"
    "    emit(ARGV[8], { 'type', 'media_stored', 'openid', ARGV[6],\n"
    "                    'media_id', ARGV[2], 'path', ARGV[3],\n"
    "                    'content_type', ARGV[4], 'size', ARGV[5],\n"
    "                    'ts_ms', ARGV[7], 'msg', ARGV[9],\n"
    "                    'agent', ARGV[8] })\n"
    "    return 1\n"
    "elseif op == 'failed' then\n"
    "    if ARGV[2] ~= '' then\n"
    "        local k = mkey(ARGV[2])\n"
    "        if redis.call('HEXISTS', k, 'path') == 1 or\n"
    "           redis.call('HEXISTS', k, 'error') == 1 then return 0 end\n"
    "        redis.call('HSET', k, 'error', ARGV[8], 'errcode', ARGV[9],\n"
    "                   'openid', ARGV[4], 'failed_ms', ARGV[5],\n"
    "                   'msg', ARGV[7])\n"
    "        redis.call('HDEL', k, 'retry_ms')\n"
    "        redis.call('EXPIRE', k, " FAILED_TTL_S ")\n"
    "    end\n"
    "    emit(ARGV[6], { 'type', 'media_failed', 'openid', ARGV[4],\n"
    "                    'media_id', ARGV[3], 'reason', ARGV[8],\n"
    "                    'errcode', ARGV[9], 'errmsg', ARGV[10],\n"
    "                    'ts_ms', ARGV[5], 'msg', ARGV[7],\n"
    "                    'agent', ARGV[6] })\n"
    "    return 1\n"
    "elseif op == 'retry' then\n"
    "    local k = mkey(ARGV[2])\n"
    "    local n = redis.call('HINCRBY', k, 'attempts', 1)\n"
    "    local d = 1000 * 2 ^ math.min(n, 11)\n"
    "    if d > 1800000 then d = 1800000 end\n"
    "    local min = tonumber(ARGV[4]) or 0\n"
    "    if min > d then d = min end\n"
    "    local due = string.format('%.0f', tonumber(ARGV[3]) + d)\n"
    "    redis.call('HSET', k, 'retry_ms', due)\n"
    "    redis.call('EXPIRE', k, " FAILED_TTL_S ")\n"
    "    return { n, due }\n"
    "elseif op == 'done' then\n"
    "    redis.call('ZREM', P .. 'media_jobs', ARGV[2])\n"
    "    return redis.call('DEL', P .. 'media_job:' .. ARGV[2])\n"
    "elseif op == 'later' then\n"
    "    return redis.call('ZADD', P .. 'media_jobs', 'XX', ARGV[3], ARGV[2])\n"
    "elseif op == 'off' then\n"
    "    -- NX: once done, a pass with fetching off writes nothing\n"
    "    redis.call('SET', P .. 'media_off', '1', 'NX')\n"
    "    local d = redis.pcall('XGROUP', 'DESTROY', P .. 'events', ARGV[2])\n"
    "    if type(d) == 'number' then return d end\n"
    "    return 0\n"
    "elseif op == 'lookup' then\n"
    "    local h = redis.call('HMGET', mkey(ARGV[2]), 'path', 'content_type',\n"
    "                         'size', 'openid', 'error')\n"
    "    if not h[1] and not h[5] then return { 'no_media' } end\n"
    "    local a = ARGV[3]\n"
    "    if a ~= '' and (not h[4] or\n"
    "       (redis.call('SISMEMBER', P .. 'load:' .. a, h[4]) == 0 and\n"
    "        redis.call('HGET', P .. 'sess:' .. h[4], 'agent') ~= a)) then\n"
    "        return { 'not_yours' }\n"
    "    end\n"
    "    if not h[1] then return { 'media_failed' } end\n"
    "    return { 'ok', h[1], h[2] or '', h[3] or '0' }\n"
    "end\n"
    "return redis.error_reply('unknown media op')\n";

void media_init(struct media *m, struct store *st, struct wx_api *api,
                const struct config *cfg)
{
    char host[64];

    memset(m, 0, sizeof(*m));
    m->store = st;
    m->api = api;
    m->cfg = cfg;
    m->idle_ms = 60000;
    m->max_fetches = 10;
    m->budget_ms = 2000;
    if (gethostname(host, sizeof(host)) < 0)
        snprintf(host, sizeof(host), "host");
    host[sizeof(host) - 1] = '\0';
    snprintf(m->consumer, sizeof(m->consumer), "%s:%ld", host,
             (long)getpid());
    snprintf(m->claim_cursor, sizeof(m->claim_cursor), "0-0");
    store_script_init(&m->take, take_lua);
    store_script_init(&m->op, op_lua);
    media_keep_script_init(&m->keep);
}

void media_release(struct media *m)
{
    m->store = NULL;
    m->api = NULL;
}

/* --- names --------------------------------------------------------------- */

static int id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-';
}

int media_id_ok(struct kf_str id)
{
    size_t i;

    if (id.len == 0 || id.len > MEDIA_ID_MAX)
        return 0;
    for (i = 0; i < id.len; i++)
        if (!id_char(id.p[i]))
            return 0;
    return 1;
}

static const struct {
    const char *type, *ext;
} types[] = {
    { "image/jpeg", "jpg" }, { "image/jpg", "jpg" },
    { "image/pjpeg", "jpg" }, { "image/png", "png" },
    { "image/gif", "gif" }, { "audio/amr", "amr" },
    { "audio/speex", "speex" }, { "audio/x-speex", "speex" },
    { "audio/mpeg", "mp3" }, { "audio/mp3", "mp3" },
    { "video/mp4", "mp4" },
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

const char *media_ext(struct kf_str ct)
{
    size_t n = 0, i;

    while (n < ct.len && ct.p[n] != ';' && ct.p[n] != ' ')
        n++;
    for (i = 0; i < NTYPES; i++)
        if (strlen(types[i].type) == n &&
            strncasecmp(ct.p, types[i].type, n) == 0)
            return types[i].ext;
    return "bin";
}

const char *media_content_type(const char *ext)
{
    size_t i;

    for (i = 0; i < NTYPES; i++)
        if (strcmp(ext, types[i].ext) == 0)
            return types[i].type;     /* the first is the canonical one */
    return "application/octet-stream";
}

/* rel: relative, of [A-Za-z0-9_./-], no empty, "." or ".." segment. */
int media_rel_ok(const char *rel)
{
    const char *seg = rel, *p;

    if (!*rel || strlen(rel) > 512)
        return 0;
    for (p = rel;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - seg);

            if (n == 0 || (n == 1 && seg[0] == '.') ||
                (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return 0;
            if (*p == '\0')
                return 1;
            seg = p + 1;
        } else if (!id_char(*p) && *p != '.') {
            return 0;
        }
    }
}

/* --- the atomic write ---------------------------------------------------- */

/* mkdir -p; path is restored before returning. */
static int make_dirs(char *path)
{
    char *p;

    for (p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0750) < 0 && errno != EEXIST) {
            *p = '/';
            return KF_EIO;
        }
        *p = '/';
    }
    return mkdir(path, 0750) < 0 && errno != EEXIST ? KF_EIO : 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return KF_EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

    if (fd < 0)
        return KF_EIO;
    rc = fsync(fd) < 0 ? KF_EIO : 0;
    close(fd);
    return rc;
}

int media_write_file(const char *dir, const char *rel, const void *data,
                     size_t len)
{
    char full[PATH_MAX_LEN], tmp[PATH_MAX_LEN], *slash;
    int n, fd, rc = KF_EIO;

    if (!dir || !*dir || !media_rel_ok(rel))
        return KF_EINVAL;
    n = snprintf(full, sizeof(full), "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= sizeof(full))
        return KF_ETOOBIG;
    slash = strrchr(full, '/');
    *slash = '\0';
    n = snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", full, slash + 1);
    if (n < 0 || (size_t)n >= sizeof(tmp) || make_dirs(full) < 0)
        return KF_EIO;
    fd = mkstemp(tmp);
    if (fd < 0)
        return KF_EIO;
    if (fchmod(fd, 0640) == 0 && write_all(fd, data, len) == 0 &&
        fsync(fd) == 0)
        rc = 0;
    if (close(fd) < 0)
        rc = KF_EIO;
    *slash = '/';
    if (rc == 0 && rename(tmp, full) < 0)
        rc = KF_EIO;
    *slash = '\0';
    if (rc < 0)
        unlink(tmp);
    else
        rc = fsync_dir(full);   /* makes the rename itself durable */
    return rc;
}

/* --- Redis ---------------------------------------------------------------- */

/* Runs the op script with args (C strings). On success *out is new. */
static int op(struct media *m, const char *const *args, int n,
              redisReply **out)
{
    const char *argv[OP_ARGS + 4];
    size_t lens[OP_ARGS + 4];
    int i, argc = 4;

    if (n > OP_ARGS)
        return KF_EINVAL;
    argv[2] = "1";
    lens[2] = 1;
    argv[3] = m->store->prefix;
    lens[3] = strlen(m->store->prefix);
    for (i = 0; i < n; i++, argc++) {
        argv[argc] = args[i];
        lens[argc] = strlen(args[i]);
    }
    return store_eval(m->store, &m->op, argc, argv, lens, out);
}

/* The op script, when only success matters. */
static int op_run(struct media *m, const char *const *args, int n)
{
    redisReply *r = NULL;
    int rc = op(m, args, n, &r);

    if (r)
        freeReplyObject(r);
    return rc;
}

/* The take script; jobs are leased for idle_ms. */
static int take(struct media *m, int64_t now_ms, long limit,
                redisReply **out)
{
    char count[24], idle[24], now[24];
    const char *argv[11];
    size_t lens[11];
    int i;

    snprintf(count, sizeof(count), "%ld", limit);
    snprintf(idle, sizeof(idle), "%ld", m->idle_ms);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    argv[2] = "1";
    argv[3] = m->store->prefix;
    argv[4] = MEDIA_GROUP;
    argv[5] = m->consumer;
    argv[6] = count;
    argv[7] = idle;
    argv[8] = m->claim_cursor;
    argv[9] = now;
    argv[10] = idle;
    for (i = 2; i < 11; i++)
        lens[i] = strlen(argv[i]);
    return store_eval(m->store, &m->take, 11, argv, lens, out);
}

static int is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING ||
                 r->type == REDIS_REPLY_STATUS);
}

/* --- fetching ------------------------------------------------------------- */

/* One msg_in entry, borrowed from the take reply. */
struct entry {
    const char *id, *openid, *msgtype, *agent;
    struct kf_str payload;
};

/* What a pass may still do. */
struct pass {
    long fetches_left;
    int64_t deadline;           /* monotonic ms */
    int stop;                   /* no more fetches this pass */
    int io_error;
    int64_t now;                /* the caller's wall clock */
};

/* A media's state after a pass: *due = 0 when it is stored or failed for
 * good, else the wall-clock ms it should be tried again (p->now: the next
 * pass). */

static int record_failed(struct media *m, const struct pass *p,
                         const struct entry *e, const char *key_mid,
                         const char *event_mid, const char *reason,
                         long errcode, const char *errmsg)
{
    char now[24], code[24];
    const char *args[] = { "failed", key_mid, event_mid, e->openid, now,
                           e->agent, e->id, reason, code, errmsg };

    snprintf(now, sizeof(now), "%lld", (long long)p->now);
    snprintf(code, sizeof(code), "%ld", errcode);
    return op_run(m, args, 10);
}

struct sink {
    struct kf_buf *b;
    int too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    struct sink *k = ud;
    int rc = kf_buf_append(k->b, p, size * n);

    k->too_big |= rc == KF_ETOOBIG;
    return rc == 0 ? size * n : 0;
}

#define SET(opt, val)                                       \
    do {                                                    \
        if (curl_easy_setopt(c, opt, val) != CURLE_OK)      \
            goto out;                                       \
    } while (0)

/* A video's bytes from the video_url media/get answered (http or https
 * only, TLS verified, capped at out's max). KF_ETOOBIG over the cap,
 * KF_ENOTFOUND for a 4xx (the link is dead), KF_EBACKEND otherwise. */
static int download(struct media *m, const char *url, struct kf_buf *out,
                    char *ct, size_t ct_len)
{
    const struct config *cfg = m->cfg;
    const struct http_client_opts o = {
        url, cfg->wechat.api_connect_timeout_ms, DOWNLOAD_TIMEOUT_MS,
        cfg->wechat.ca_file
    };
    CURL *c = curl_easy_init();
    struct sink k = { out, 0 };
    char *type = NULL;
    long status = 0;
    CURLcode cc;
    int rc = KF_EBACKEND;

    if (!c)
        return KF_ENOMEM;
    if (http_client_setup(c, &o) < 0)
        goto out;
    SET(CURLOPT_LOW_SPEED_LIMIT, 1024L);     /* a stalled transfer ends */
    SET(CURLOPT_LOW_SPEED_TIME, 15L);
    SET(CURLOPT_FOLLOWLOCATION, 1L);
    SET(CURLOPT_MAXREDIRS, 3L);
    SET(CURLOPT_WRITEFUNCTION, on_data);
    SET(CURLOPT_WRITEDATA, &k);
    cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (cc == CURLE_WRITE_ERROR && k.too_big)
        rc = KF_ETOOBIG;
    else if (cc == CURLE_OK && status == 200)
        rc = 0;
    else if (cc == CURLE_OK && status >= 400 && status < 500 &&
             status != 429)
        rc = KF_ENOTFOUND;
    if (rc == 0 && curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type) ==
                       CURLE_OK && type)
        snprintf(ct, ct_len, "%s", type);
out:
    curl_easy_cleanup(c);
    if (rc < 0)
        kf_buf_reset(out);
    return rc;
}

#undef SET

/* media/get, following a video's {"video_url"} answer. On success out
 * holds the bytes and ct their Content-Type. */
static int fetch(struct media *m, const char *mid, struct kf_buf *out,
                 char *ct, size_t ct_len, struct wx_api_result *res)
{
    const char *url;
    int rc = wx_api_media_get(m->api, mid, out, ct, ct_len, res);

    if (rc < 0 || !res->body)
        return rc;
    url = json_string_value(json_object_get(res->body, "video_url"));
    kf_buf_reset(out);
    if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)))
        return KF_EPARSE;
    ct[0] = '\0';
    return download(m, url, out, ct, ct_len);
}

/* Writes and records a fetched file, after making room for it under the
 * quota. KF_ELIMIT: no room yet (try again); KF_EIO: not written. */
static int store_bytes(struct media *m, const struct pass *p,
                       const struct entry *e, const char *mid,
                       const struct kf_buf *b, const char *ct,
                       struct media_counts *c)
{
    const char *ext = media_ext(kf_str_c(ct));
    char rel[256], size[24], now[24];
    time_t secs = (time_t)(p->now / 1000);
    const char *args[] = { "stored", mid, rel, media_content_type(ext),
                           size, e->openid, now, e->agent, e->id };
    struct tm tm;
    int rc;

    if (!gmtime_r(&secs, &tm))
        return KF_EINVAL;
    snprintf(rel, sizeof(rel), "%04d/%02d/%s.%s", tm.tm_year + 1900,
             tm.tm_mon + 1, mid, ext);
    snprintf(size, sizeof(size), "%zu", b->len);
    snprintf(now, sizeof(now), "%lld", (long long)p->now);
    rc = media_keep_room(m, (int64_t)b->len, ROOM_FILES, c);
    if (rc == KF_ETOOBIG) {
        c->refused_quota++;
        c->failed++;
        return record_failed(m, p, e, mid, mid, "quota", 0,
                             "over [media] max_disk_mb");
    }
    if (rc == KF_EIO)           /* an old file would not go: wait */
        rc = KF_ELIMIT;
    if (rc < 0)
        return rc;
    rc = media_write_file(m->cfg->media.dir, rel, b->p ? b->p : "", b->len);
    return rc < 0 ? KF_EIO : op_run(m, args, 9);
}

/* A transient failure: back off (the op script), or give up after
 * MEDIA_MAX_ATTEMPTS. */
static int retry_later(struct media *m, struct pass *p,
                       const struct entry *e, const char *mid,
                       const struct wx_api_result *res, int64_t *due,
                       struct media_counts *c)
{
    char now[24], min[24];
    const char *args[] = { "retry", mid, now, min };
    redisReply *r = NULL;
    long long attempts = 0;
    int rc;

    snprintf(now, sizeof(now), "%lld", (long long)p->now);
    snprintf(min, sizeof(min), "%lld", res->retry_after_ms);
    rc = op(m, args, 4, &r);
    if (rc < 0)
        return rc;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER && is_str(r->element[1])) {
        attempts = r->element[0]->integer;
        *due = strtoll(r->element[1]->str, NULL, 10);
    }
    freeReplyObject(r);
    p->stop = 1;            /* most likely WeChat or the network: wait */
    if (attempts > 0 && attempts < MEDIA_MAX_ATTEMPTS) {
        c->retried++;
        if (*due <= p->now)
            *due = p->now;
        return 0;
    }
    *due = 0;
    c->failed++;
    return record_failed(m, p, e, mid, mid, "gave_up", res->errcode,
                         res->errmsg);
}

/* The outcome of one fetch: stored, failed for good, or retried. */
static int settle(struct media *m, struct pass *p, const struct entry *e,
                  const char *mid, int rc, const struct kf_buf *b,
                  const char *ct, const struct wx_api_result *res,
                  int64_t *due, struct media_counts *c)
{
    *due = 0;
    if (rc == 0) {
        long refused = c->refused_quota;

        rc = store_bytes(m, p, e, mid, b, ct, c);
        if (rc == KF_EIO || rc == KF_ELIMIT) {
            p->io_error |= rc == KF_EIO;
            p->stop = 1;
            c->waiting++;
            *due = p->now;
            return 0;
        }
        c->stored += rc == 0 && c->refused_quota == refused;
        return rc;
    }
    if (rc == KF_ELIMIT) {              /* the bucket or a daily budget */
        p->stop = 1;
        c->waiting++;
        *due = p->now;
        return 0;
    }
    if (rc == KF_EWECHAT || rc == KF_ETOOBIG || rc == KF_EPARSE ||
        rc == KF_ENOTFOUND) {
        c->failed++;
        return record_failed(m, p, e, mid, mid,
                             rc == KF_EWECHAT ? "wechat"
                             : rc == KF_ETOOBIG ? "too_big"
                             : rc == KF_EPARSE ? "bad_answer"
                                               : "video_url_gone",
                             rc == KF_EWECHAT ? res->errcode : 0,
                             rc == KF_ETOOBIG ? "over [media] max_bytes"
                                              : res->errmsg);
    }
    return retry_later(m, p, e, mid, res, due, c);
}

/* One media_id of an entry. */
static int fetch_one(struct media *m, struct pass *p, const struct entry *e,
                     const char *mid, int64_t *due, struct media_counts *c)
{
    char now[24], ct[128] = "";
    const char *args[] = { "begin", mid, now };
    struct wx_api_result res;
    struct kf_buf b;
    redisReply *r = NULL;
    int rc, done, go;

    snprintf(now, sizeof(now), "%lld", (long long)p->now);
    rc = op(m, args, 3, &r);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        !is_str(r->element[0]) || !is_str(r->element[1])) {
        freeReplyObject(r);
        return KF_EBACKEND;
    }
    done = !strcmp(r->element[0]->str, "stored") ||
           !strcmp(r->element[0]->str, "failed");
    go = !strcmp(r->element[0]->str, "go");
    *due = done ? 0 : go ? p->now : strtoll(r->element[1]->str, NULL, 10);
    freeReplyObject(r);
    if (done)
        return 0;
    if (*due < p->now)
        *due = p->now;
    if (!go || p->stop || p->fetches_left <= 0 || kf_mono_ms() >= p->deadline) {
        c->waiting++;           /* backing off, or out of budget */
        return 0;
    }
    p->fetches_left--;
    wx_api_result_init(&res);
    kf_buf_init(&b, (size_t)m->cfg->media.max_bytes);
    rc = fetch(m, mid, &b, ct, sizeof(ct), &res);
    rc = settle(m, p, e, mid, rc, &b, ct, &res, due, c);
    kf_buf_release(&b);
    wx_api_result_release(&res);
    return rc;
}

static int entry_from(const redisReply *r, struct entry *e)
{
    size_t i;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 5)
        return KF_EBACKEND;
    for (i = 0; i < 5; i++)
        if (!is_str(r->element[i]))
            return KF_EBACKEND;
    e->id = r->element[0]->str;
    e->openid = r->element[1]->str;
    e->msgtype = r->element[2]->str;
    e->payload = (struct kf_str){ r->element[3]->str, r->element[3]->len };
    e->agent = r->element[4]->str;
    return 0;
}

/* The media ids of a payload: MediaId, and a video's ThumbMediaId when it
 * differs. Returns how many (0: none). */
static int media_ids(json_t *pl, const char *msgtype, json_t *ids[2])
{
    int n = 0;

    ids[0] = json_object_get(pl, "MediaId");
    if (json_is_string(ids[0]))
        n = 1;
    if (n && (!strcmp(msgtype, "video") || !strcmp(msgtype, "shortvideo"))) {
        ids[1] = json_object_get(pl, "ThumbMediaId");
        if (json_is_string(ids[1]) && json_string_length(ids[1]) &&
            !json_equal(ids[0], ids[1]))
            n = 2;
    }
    return n;
}

/* One job (an inbound media message): removed once each of its media is
 * stored or failed for good, else due again when the earliest of them
 * is. */
static int process(struct media *m, struct pass *p, const redisReply *r,
                   struct media_counts *c)
{
    struct entry e;
    json_t *pl = NULL, *ids[2] = { NULL, NULL };
    int rc = entry_from(r, &e), n = 0, i;
    int64_t next = 0;

    if (rc < 0)
        return rc;
    if (e.payload.len <= PAYLOAD_MAX)
        pl = json_loadb(e.payload.p, e.payload.len, 0, NULL);
    n = media_ids(pl, e.msgtype, ids);
    if (n == 0) {
        c->failed++;
        rc = record_failed(m, p, &e, "", "", "no_media_id", 0, "");
    }
    for (i = 0; i < n && rc == 0; i++) {
        struct kf_str id = { json_string_value(ids[i]),
                             json_string_length(ids[i]) };
        char shown[MEDIA_ID_MAX + 1];
        int64_t due = 0;

        if (!media_id_ok(id)) {
            snprintf(shown, sizeof(shown), "%.*s",
                     (int)(id.len > MEDIA_ID_MAX ? MEDIA_ID_MAX : id.len),
                     id.p);
            c->failed++;
            rc = record_failed(m, p, &e, "", shown, "bad_media_id", 0, "");
            continue;
        }
        rc = fetch_one(m, p, &e, id.p, &due, c);
        if (due > 0 && (next == 0 || due < next))
            next = due;
    }
    if (rc == 0 && next == 0) {
        const char *args[] = { "done", e.id };

        rc = op_run(m, args, 2);
    } else if (rc == 0) {
        char at[24];
        const char *args[] = { "later", e.id, at };

        snprintf(at, sizeof(at), "%lld", (long long)next);
        rc = op_run(m, args, 3);
    }
    json_decref(pl);
    return rc;
}

static void set_cursor(char *dst, size_t n, const redisReply *r,
                       const char *dflt)
{
    if (is_str(r) && r->len < n)
        snprintf(dst, n, "%s", r->str);
    else
        snprintf(dst, n, "%s", dflt);
}

int media_fetch_pass(struct media *m, int64_t now_ms, long limit,
                     struct media_counts *c)
{
    struct pass p = { m->max_fetches, kf_mono_ms() + m->budget_ms, 0, 0,
                      now_ms };
    redisReply *r = NULL, *list;
    size_t i;
    int rc;

    if (!m->cfg->media.fetch || !m->api) {
        const char *args[] = { "off", MEDIA_GROUP };

        return op_run(m, args, 2);      /* the group must not hold trimming */
    }
    if (limit < 1 || now_ms < m->pause_until_ms)
        return 0;
    rc = take(m, now_ms, limit, &r);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[1]->type != REDIS_REPLY_INTEGER ||
        r->element[2]->type != REDIS_REPLY_INTEGER ||
        r->element[3]->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return KF_EBACKEND;
    }
    set_cursor(m->claim_cursor, sizeof(m->claim_cursor), r->element[0],
               "0-0");
    c->acked += (long)r->element[1]->integer;
    c->queued += (long)r->element[2]->integer;
    list = r->element[3];
    for (i = 0; i < list->elements && rc == 0; i++)
        rc = process(m, &p, list->element[i], c);
    freeReplyObject(r);
    if (rc == 0 && p.io_error) {
        m->pause_until_ms = now_ms + IO_PAUSE_MS;
        rc = KF_EIO;
    }
    return rc;
}

/* --- serving -------------------------------------------------------------- */

void media_file_init(struct media_file *f)
{
    memset(f, 0, sizeof(*f));
    f->fd = -1;
}

void media_file_release(struct media_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

static int refuse(struct media_file *f, int rc, const char *code)
{
    snprintf(f->code, sizeof(f->code), "%s", code);
    return rc;
}

/* Opens dir/rel if it resolves inside dir, is a regular file and its last
 * component is no symlink. */
static int open_inside(const char *dir, const char *rel, struct media_file *f)
{
    char full[PATH_MAX_LEN], *rdir = NULL, *rfull = NULL;
    struct stat st;
    size_t n;
    int rc = KF_ENOTFOUND;

    if (!media_rel_ok(rel) ||
        (size_t)snprintf(full, sizeof(full), "%s/%s", dir, rel) >=
            sizeof(full))
        return refuse(f, KF_ENOTFOUND, "no_media");
    rdir = realpath(dir, NULL);
    rfull = realpath(full, NULL);
    if (!rdir || !rfull)
        goto out;
    n = strlen(rdir);
    if (strncmp(rfull, rdir, n) != 0 || rfull[n] != '/')
        goto out;
    f->fd = open(rfull, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (f->fd < 0)
        goto out;
    if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        media_file_release(f);
        goto out;
    }
    f->size = (uint64_t)st.st_size;
    rc = 0;
out:
    free(rdir);
    free(rfull);
    return rc < 0 ? refuse(f, rc, "no_media") : 0;
}

int media_open(struct media *m, struct kf_str media_id, const char *agent,
               struct media_file *f)
{
    char mid[MEDIA_ID_MAX + 1];
    const char *args[] = { "lookup", mid, agent ? agent : "" }, *dot;
    redisReply *r = NULL;
    int rc;

    media_file_release(f);
    f->code[0] = '\0';
    if (!media_id_ok(media_id))
        return refuse(f, KF_EINVAL, "bad_media_id");
    snprintf(mid, sizeof(mid), "%.*s", (int)media_id.len, media_id.p);
    rc = op(m, args, 3, &r);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        !is_str(r->element[0])) {
        rc = KF_EBACKEND;
    } else if (strcmp(r->element[0]->str, "not_yours") == 0) {
        rc = refuse(f, KF_EINVAL, "not_yours");
    } else if (strcmp(r->element[0]->str, "ok") != 0 || r->elements != 4 ||
               !is_str(r->element[1])) {
        rc = refuse(f, KF_ENOTFOUND,
                    strcmp(r->element[0]->str, "media_failed") == 0
                        ? "media_failed" : "no_media");
    } else {
        rc = open_inside(m->cfg->media.dir, r->element[1]->str, f);
        dot = strrchr(r->element[1]->str, '.');
        snprintf(f->ext, sizeof(f->ext), "%s",
                 dot && strlen(dot + 1) < sizeof(f->ext) ? dot + 1 : "bin");
        /* served as the type of its extension, never a stored string */
        snprintf(f->content_type, sizeof(f->content_type), "%s",
                 media_content_type(f->ext));
    }
    freeReplyObject(r);
    return rc;
}

int media_file_read(struct media_file *f, void *buf, size_t cap, size_t *n)
{
    ssize_t got;

    *n = 0;
    if (f->fd < 0)
        return KF_EIO;
    do {
        got = read(f->fd, buf, cap);
    } while (got < 0 && errno == EINTR);
    if (got < 0)
        return KF_EIO;
    *n = (size_t)got;
    return 0;
}
