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
#include <jansson.h>

#include "http_client.h"
#include "lua.h"
#include "stream_group.h"
#include "media_keep.h"
#include "voice.h"

#include "banned.h"

#define PATH_MAX_LEN 4096
#define PAYLOAD_MAX (64 * 1024)     /* a msg_in payload (callback's cap) */
#define IO_PAUSE_MS 10000
#define DOWNLOAD_TIMEOUT_MS 120000L
#define ROOM_FILES 1000         /* files a fetch may delete to make room */

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
    store_script_init(&m->script, lua_media);
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
    { "audio/x-speex-with-header-byte", "speex" },
    { "audio/mpeg", "mp3" }, { "audio/mp3", "mp3" },
    { "audio/wav", "wav" }, { "audio/x-wav", "wav" },
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

/* Every call runs m->script (lib/lua/media.lua) with args[0] = the op. */

/* The take op; jobs are leased for idle_ms. On success *out is new. */
static int take(struct media *m, int64_t now_ms, long limit,
                struct store_reply **out)
{
    char count[24], idle[24], now[24];
    const char *args[] = { "take", MEDIA_GROUP, m->consumer, count, idle,
                           m->claim_cursor, now, idle };

    snprintf(count, sizeof(count), "%ld", limit);
    snprintf(idle, sizeof(idle), "%ld", m->idle_ms);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    return store_run(m->store, &m->script, 0, NULL, 8, args, NULL, out);
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
    return store_run(m->store, &m->script, 0, NULL, 10, args, NULL, NULL);
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

/* A voice's playable copy: the WAV of an AMR or Speex file
 * (lib/voice.c). wav is left empty when there is none (not a voice, or
 * the decoder refuses it: the original is then stored alone, counted in
 * c->unplayable). */
static void make_playable(const char *ext, const struct kf_buf *b,
                          struct kf_buf *wav, long *ms,
                          struct media_counts *c)
{
    int rc;

    if (strcmp(ext, "amr") == 0)
        rc = voice_amr_to_wav(kf_buf_str(b), wav, ms);
    else if (strcmp(ext, "speex") == 0)
        rc = voice_speex_to_wav(kf_buf_str(b), wav, ms);
    else
        return;
    if (rc < 0) {
        kf_buf_reset(wav);
        c->unplayable++;
    }
}

/* The relative path of a stored file: <YYYY>/<MM>/<mid>.<ext>. */
static int rel_path(int64_t now_ms, const char *mid, const char *ext,
                    char *rel, size_t len)
{
    time_t secs = (time_t)(now_ms / 1000);
    struct tm tm;
    int n;

    if (!gmtime_r(&secs, &tm))
        return KF_EINVAL;
    n = snprintf(rel, len, "%04d/%02d/%s.%s", tm.tm_year + 1900,
                 tm.tm_mon + 1, mid, ext);
    return n < 0 || (size_t)n >= len ? KF_ETOOBIG : 0;
}

/* Writes the file and its playable copy (when there is one). */
static int write_both(struct media *m, const char *rel, const struct kf_buf *b,
                      const char *play_rel, const struct kf_buf *wav)
{
    int rc = media_write_file(m->cfg->media.dir, rel, b->p ? b->p : "",
                              b->len);

    if (rc == 0 && wav->len > 0)
        rc = media_write_file(m->cfg->media.dir, play_rel, wav->p,
                              wav->len);
    return rc < 0 ? KF_EIO : 0;
}

/* Writes and records a fetched file (and a voice's playable copy), after
 * making room for both under the quota. KF_ELIMIT: no room yet (try
 * again); KF_EIO: not written. */
static int store_bytes(struct media *m, const struct pass *p,
                       const struct entry *e, const char *mid,
                       const struct kf_buf *b, const char *ct,
                       struct media_counts *c)
{
    const char *ext = media_ext(kf_str_c(ct));
    char rel[256], play_rel[256] = "", size[24], now[24], psize[24] = "0",
         pms[24] = "0";
    const char *args[] = { "stored", mid, rel, media_content_type(ext),
                           size, e->openid, now, e->agent, e->id,
                           play_rel, psize, pms };
    struct kf_buf wav;
    long ms = 0;
    int rc;

    kf_buf_init(&wav, VOICE_SPEEX_WAV_MAX);   /* the larger of the two */
    make_playable(ext, b, &wav, &ms, c);
    rc = rel_path(p->now, mid, ext, rel, sizeof(rel));
    if (rc == 0 && wav.len > 0) {
        rc = rel_path(p->now, mid, "wav", play_rel, sizeof(play_rel));
        snprintf(psize, sizeof(psize), "%zu", wav.len);
        snprintf(pms, sizeof(pms), "%ld", ms);
    }
    if (rc < 0)
        goto out;
    snprintf(size, sizeof(size), "%zu", b->len);
    snprintf(now, sizeof(now), "%lld", (long long)p->now);
    rc = media_keep_room(m, (int64_t)(b->len + wav.len), ROOM_FILES, c);
    if (rc == KF_ETOOBIG) {
        c->refused_quota++;
        c->failed++;
        rc = record_failed(m, p, e, mid, mid, "quota", 0,
                           "over [media] max_disk_mb");
        goto out;
    }
    if (rc == KF_EIO)           /* an old file would not go: wait */
        rc = KF_ELIMIT;
    if (rc == 0)
        rc = write_both(m, rel, b, play_rel, &wav);
    if (rc == 0)
        rc = store_run(m->store, &m->script, 0, NULL, 12, args, NULL, NULL);
    c->playable += rc == 0 && wav.len > 0;
out:
    kf_buf_release(&wav);
    return rc;
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
    struct store_reply *r = NULL;
    int64_t attempts = 0;
    int rc;

    snprintf(now, sizeof(now), "%lld", (long long)p->now);
    snprintf(min, sizeof(min), "%lld", res->retry_after_ms);
    rc = store_run(m->store, &m->script, 0, NULL, 4, args, NULL, &r);
    if (rc < 0)
        return rc;
    if (store_reply_len(r) != 2 || store_reply_at_int(r, 0, &attempts) < 0 ||
        store_reply_at_int(r, 1, due) < 0)
        attempts = 0;               /* not an answer: give up */
    store_reply_free(r);
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
    struct store_reply *r = NULL;
    struct kf_str state, at;
    int rc, done, go;

    snprintf(now, sizeof(now), "%lld", (long long)p->now);
    rc = store_run(m->store, &m->script, 0, NULL, 3, args, NULL, &r);
    if (rc < 0)
        return rc;
    if (store_reply_len(r) != 2 || store_reply_at_str(r, 0, &state) < 0 ||
        store_reply_at_str(r, 1, &at) < 0) {
        store_reply_free(r);
        return KF_EBACKEND;
    }
    done = store_reply_at_is(r, 0, "stored") ||
           store_reply_at_is(r, 0, "failed");
    go = store_reply_at_is(r, 0, "go");
    *due = done ? 0 : go ? p->now : strtoll(at.p, NULL, 10);
    store_reply_free(r);
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

static int entry_from(const struct store_reply *r, struct entry *e)
{
    struct kf_str v[5];
    size_t i;

    if (store_reply_len(r) != 5)
        return KF_EBACKEND;
    for (i = 0; i < 5; i++)
        if (store_reply_at_str(r, i, &v[i]) < 0)
            return KF_EBACKEND;
    e->id = v[0].p;         /* each also NUL-terminated */
    e->openid = v[1].p;
    e->msgtype = v[2].p;
    e->payload = v[3];
    e->agent = v[4].p;
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
static int process(struct media *m, struct pass *p,
                   const struct store_reply *r,
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

        rc = store_run(m->store, &m->script, 0, NULL, 2, args, NULL, NULL);
    } else if (rc == 0) {
        char at[24];
        const char *args[] = { "later", e.id, at };

        snprintf(at, sizeof(at), "%lld", (long long)next);
        rc = store_run(m->store, &m->script, 0, NULL, 3, args, NULL, NULL);
    }
    json_decref(pl);
    return rc;
}

int media_fetch_pass(struct media *m, int64_t now_ms, long limit,
                     struct media_counts *c)
{
    struct pass p = { m->max_fetches, kf_mono_ms() + m->budget_ms, 0, 0,
                      now_ms };
    struct store_reply *r = NULL;
    const struct store_reply *list;
    int64_t acked = 0, queued = 0;
    size_t i;
    int rc;

    if (!m->cfg->media.fetch || !m->api) {
        const char *args[] = { "off", MEDIA_GROUP };

        /* the group must not hold trimming */
        return store_run(m->store, &m->script, 0, NULL, 2, args, NULL, NULL);
    }
    if (limit < 1 || now_ms < m->pause_until_ms)
        return 0;
    rc = take(m, now_ms, limit, &r);
    if (rc < 0)
        return rc;
    list = store_reply_at(r, 3);
    if (store_reply_len(r) != 4 || store_reply_at_int(r, 1, &acked) < 0 ||
        store_reply_at_int(r, 2, &queued) < 0 ||
        store_reply_type(list) != STORE_ARRAY) {
        store_reply_free(r);
        return KF_EBACKEND;
    }
    if (store_reply_at_copy(r, 0, m->claim_cursor,
                            sizeof(m->claim_cursor)) < 0)
        snprintf(m->claim_cursor, sizeof(m->claim_cursor), "0-0");
    c->acked += (long)acked;
    c->queued += (long)queued;
    for (i = 0; i < store_reply_len(list) && rc == 0; i++)
        rc = process(m, &p, store_reply_at(list, i), c);
    store_reply_free(r);
    /* every claimable entry claimed: the idle consumers left hold none */
    if (rc == 0 && strcmp(m->claim_cursor, "0-0") == 0)
        rc = stream_group_forget(m->store, MEDIA_GROUP, m->consumer,
                                 STREAM_GROUP_FORGET_MS, NULL);
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

static int refuse(struct media_file *f, enum refusal_id id)
{
    f->why = refusal_get(id);
    return f->why->rc;
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
        return refuse(f, REFUSAL_NO_MEDIA);
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
    return rc < 0 ? refuse(f, REFUSAL_NO_MEDIA) : 0;
}

int media_open(struct media *m, struct kf_str media_id, struct kf_str format,
               const char *agent, struct media_file *f)
{
    char mid[MEDIA_ID_MAX + 1];
    const char *args[] = { "lookup", mid, agent ? agent : "",
                           format.len ? "wav" : "" }, *dot;
    struct store_reply *r = NULL;
    struct kf_str state, path;
    int rc;

    media_file_release(f);
    f->why = NULL;
    if (!media_id_ok(media_id))
        return refuse(f, REFUSAL_BAD_MEDIA_ID);
    if (format.len && !kf_str_eq_c(format, "wav"))
        return refuse(f, REFUSAL_BAD_MEDIA_FORMAT);
    snprintf(mid, sizeof(mid), "%.*s", (int)media_id.len, media_id.p);
    rc = store_run(m->store, &m->script, 0, NULL, 4, args, NULL, &r);
    if (rc < 0)
        return rc;
    if (store_reply_at_str(r, 0, &state) < 0) {
        rc = KF_EBACKEND;
    } else if (store_reply_at_is(r, 0, "not_yours")) {
        rc = refuse(f, REFUSAL_MEDIA_NOT_YOURS);
    } else if (store_reply_at_is(r, 0, "no_playable")) {
        rc = refuse(f, REFUSAL_NO_PLAYABLE);
    } else if (!store_reply_at_is(r, 0, "ok") || store_reply_len(r) != 4 ||
               store_reply_at_str(r, 1, &path) < 0) {
        rc = refuse(f, store_reply_at_is(r, 0, "media_failed")
                           ? REFUSAL_MEDIA_FAILED : REFUSAL_NO_MEDIA);
    } else {
        rc = open_inside(m->cfg->media.dir, path.p, f);
        dot = strrchr(path.p, '.');
        snprintf(f->ext, sizeof(f->ext), "%s",
                 dot && strlen(dot + 1) < sizeof(f->ext) ? dot + 1 : "bin");
        /* served as the type of its extension, never a stored string */
        snprintf(f->content_type, sizeof(f->content_type), "%s",
                 media_content_type(f->ext));
    }
    store_reply_free(r);
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
