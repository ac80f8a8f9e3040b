/* Tests of lib/media: media_id validation, the extension map, the atomic
 * write, the fetch pass (against a private redis-server and the WeChat
 * simulator, test/sim/wechat_api_sim.py, both started once for the
 * suite) and opening a stored file for an agent. Every test starts from
 * an empty Redis, a reset simulator and an empty media dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "lua.h"
#include "media.h"
#include "media_keep.h"
#include "store.h"
#include "testutil.h"

/* media_open's format for the original file */
#define ORIG KF_STR("")
#include "wx_api.h"

#define APPID "wx5e1a6c0d2b3f4a59"
#define SECRET "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
#define P "wxkf:{" APPID "}:"
#define MEDIA_GET "/cgi-bin/media/get"
#define USER "oUserMedia00000000000000001"
#define NOW 1767225600000LL          /* 2026-01-01T00:00:00Z */
#define JPEG_ID "jpegMedia_0123456789-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL"

static const unsigned char jpeg[] = {
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00, 0x01,
    0x00, 0x00, 0x7f, 0x80, 0xfe, 0x00, 0x00, 0xff, 0xd9,
};

/* --- the simulator (tu_sim.c) ------------------------------------------ */

/* Media the simulator's media/get will answer for id. */
static void sim_media(const struct tu_sim *s, const char *id, const char *ct,
                      const void *data, size_t len)
{
    size_t b64len = 4 * ((len + 2) / 3) + 1;
    char *b64 = malloc(b64len), *body = malloc(b64len + 512);

    assert_non_null(b64);
    assert_non_null(body);
    EVP_EncodeBlock((unsigned char *)b64, data, (int)len);
    snprintf(body, b64len + 512, "{\"media_id\":\"%s\",\"content_type\":"
             "\"%s\",\"data_b64\":\"%s\"}", id, ct, b64);
    tu_sim_post(s, "/_sim/media", body);
    free(b64);
    free(body);
}

/* --- fixtures ------------------------------------------------------------ */

static struct tu_wx S;

struct fixture {
    struct config cfg;
    struct store st;
    struct wx_api *api;
    struct media m;
    struct media_counts c;
    char dir[64];
    redisContext *rc;
};

static int suite_setup(void **st)
{
    (void)st;
    tu_wx_start(&S, APPID, SECRET);
    return 0;
}

static int suite_teardown(void **st)
{
    (void)st;
    tu_wx_stop(&S);
    return 0;
}

static redisReply *cmd(struct fixture *f, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = redisvCommand(f->rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

#define cmd_do(f, ...) tu_redis_do((f)->rc, __VA_ARGS__)

static int setup(void **st)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->rc = tu_wx_fresh(&S);
    snprintf(f->dir, sizeof(f->dir), "/tmp/wxkf-unit-media-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    config_init(&f->cfg);
    tu_wx_config(&f->cfg, &S, APPID, SECRET);
    tu_set_str(&f->cfg.media.dir, f->dir);
    f->cfg.wechat.api_timeout_ms = 3000;
    f->cfg.wechat.api_connect_timeout_ms = 1000;
    f->cfg.wechat.api_retries = 0;
    f->cfg.ratelimit.wechat_api_per_min = 100000;
    assert_int_equal(store_init(&f->st, S.redis_url, APPID, 500, 2000), 0);
    assert_int_equal(wx_api_new(&f->cfg, &f->st, &f->api), 0);
    media_init(&f->m, &f->st, f->api, &f->cfg);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    struct fixture *f = *st;
    char rm[128];

    media_release(&f->m);
    wx_api_free(f->api);
    store_release(&f->st);
    config_release(&f->cfg);
    redisFree(f->rc);
    snprintf(rm, sizeof(rm), "rm -rf '%s'", f->dir);
    assert_int_equal(system(rm), 0);
    free(f);
    return 0;
}

/* --- helpers ------------------------------------------------------------- */

/* A msg_in entry as the ingest script writes it. */
static void msg_in(struct fixture *f, const char *msgtype,
                   const char *payload, const char *agent)
{
    cmd_do(f, "XADD " P "events * type msg_in key k openid %s msgtype %s "
           "event %s msgid 1 create_time 1 recv_ms 1 rid r payload %s "
           "decision d agent %s session 1", USER, msgtype, "", payload,
           agent);
}

static void image_in(struct fixture *f, const char *id, const char *agent)
{
    char payload[512];

    snprintf(payload, sizeof(payload), "{\"ToUserName\":\"gh_x\","
             "\"FromUserName\":\"%s\",\"MsgType\":\"image\",\"PicUrl\":"
             "\"http://x/\",\"MediaId\":\"%s\",\"MsgId\":\"1\"}", USER, id);
    msg_in(f, "image", payload, agent);
}

static int pass(struct fixture *f, int64_t now)
{
    memset(&f->c, 0, sizeof(f->c));
    return media_fetch_pass(&f->m, now, 50, &f->c);
}

/* Entries of P events the media group read and did not acknowledge. */
static long long stream_pending(struct fixture *f)
{
    redisReply *r = cmd(f, "XPENDING " P "events " MEDIA_GROUP);
    long long n = r->type == REDIS_REPLY_ARRAY && r->elements > 0
                      ? r->element[0]->integer : -1;

    freeReplyObject(r);
    return n;
}

/* Media messages not done yet (jobs in P media_jobs); the stream holds
 * none of them back. */
static long long pending(struct fixture *f)
{
    redisReply *r = cmd(f, "ZCARD " P "media_jobs");
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

    freeReplyObject(r);
    assert_int_equal(stream_pending(f), 0);
    return n;
}

/* The stream entries of key whose type is type, as JSON objects (new). */
static json_t *events(struct fixture *f, const char *key, const char *type)
{
    redisReply *r = cmd(f, "XRANGE %s - +", key);
    json_t *out = json_array();
    size_t i, j;

    for (i = 0; i < r->elements; i++) {
        const redisReply *fl = r->element[i]->element[1];
        json_t *o = json_object();

        for (j = 0; j + 1 < fl->elements; j += 2)
            json_object_set_new(o, fl->element[j]->str,
                                json_string(fl->element[j + 1]->str));
        if (strcmp(json_string_value(json_object_get(o, "type")), type) == 0)
            json_array_append_new(out, o);
        else
            json_decref(o);
    }
    freeReplyObject(r);
    return out;
}

static char *hget(struct fixture *f, const char *key, const char *field)
{
    redisReply *r = cmd(f, "HGET %s %s", key, field);
    char *s = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;

    freeReplyObject(r);
    return s;
}

/* The file dir/rel, whole (caller frees); NULL if absent. */
static char *slurp(const char *dir, const char *rel, size_t *len)
{
    char path[512];
    FILE *fp;
    char *buf = malloc(1 << 20);

    assert_non_null(buf);
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    fp = fopen(path, "rb");
    if (!fp) {
        free(buf);
        return NULL;
    }
    *len = fread(buf, 1, 1 << 20, fp);
    fclose(fp);
    return buf;
}

static int exists(const char *dir, const char *rel)
{
    char path[512];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    return stat(path, &st) == 0;
}

/* Entries of a directory whose name starts with '.' (temporary files). */
static int dot_files(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;

    if (!d)
        return 0;
    while ((e = readdir(d)))
        n += e->d_name[0] == '.' && strcmp(e->d_name, ".") &&
             strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* --- names and types ----------------------------------------------------- */

static void test_media_id_accepts_only_safe_ids(void **st)
{
    char longest[MEDIA_ID_MAX + 2];

    (void)st;
    assert_true(media_id_ok(KF_STR(JPEG_ID)));
    assert_true(media_id_ok(KF_STR("a")));
    memset(longest, 'x', sizeof(longest));
    assert_true(media_id_ok((struct kf_str){ longest, MEDIA_ID_MAX }));
    assert_false(media_id_ok((struct kf_str){ longest, MEDIA_ID_MAX + 1 }));
    assert_false(media_id_ok(KF_STR("")));
    assert_false(media_id_ok(KF_STR("..")));
    assert_false(media_id_ok(KF_STR("../../etc/passwd")));
    assert_false(media_id_ok(KF_STR("a/b")));
    assert_false(media_id_ok(KF_STR("a.jpg")));
    assert_false(media_id_ok(KF_STR("a b")));
    assert_false(media_id_ok(KF_STR("a%2Fb")));
    assert_false(media_id_ok((struct kf_str){ "ab\0c", 4 }));
    assert_false(media_id_ok(KF_STR("\xe5\x9b\xbe")));
}

static void test_media_ext_follows_the_content_type(void **st)
{
    static const char *const cases[][2] = {
        { "image/jpeg", "jpg" }, { "IMAGE/JPEG", "jpg" },
        { "image/jpeg; charset=binary", "jpg" }, { "image/png", "png" },
        { "image/gif", "gif" }, { "audio/amr", "amr" },
        { "audio/speex", "speex" }, { "audio/x-speex", "speex" },
        { "audio/mpeg", "mp3" }, { "audio/mp3", "mp3" },
        { "video/mp4", "mp4" }, { "text/html", "bin" },
        { "image/jpegx", "bin" }, { "image/jpe", "bin" }, { "", "bin" },
        { "application/json", "bin" },
    };
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(media_ext(kf_str_c(cases[i][0])), cases[i][1]);
    assert_string_equal(media_content_type("jpg"), "image/jpeg");
    assert_string_equal(media_content_type("speex"), "audio/speex");
    assert_string_equal(media_content_type("mp3"), "audio/mpeg");
    assert_string_equal(media_content_type("mp4"), "video/mp4");
    assert_string_equal(media_content_type("bin"),
                        "application/octet-stream");
    assert_string_equal(media_content_type("html"),
                        "application/octet-stream");
}

/* --- the atomic write ---------------------------------------------------- */

static void test_media_write_file_is_atomic_and_makes_dirs(void **st)
{
    struct fixture *f = *st;
    char sub[128];
    struct stat sb;
    size_t len = 0;
    char *got;

    assert_int_equal(media_write_file(f->dir, "2026/01/a.jpg", jpeg,
                                      sizeof(jpeg)), 0);
    got = slurp(f->dir, "2026/01/a.jpg", &len);
    assert_non_null(got);
    assert_int_equal(len, sizeof(jpeg));
    assert_memory_equal(got, jpeg, sizeof(jpeg));
    free(got);
    snprintf(sub, sizeof(sub), "%s/2026/01", f->dir);
    assert_int_equal(dot_files(sub), 0);          /* no temporary left */
    assert_int_equal(stat(sub, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0750);
    snprintf(sub, sizeof(sub), "%s/2026/01/a.jpg", f->dir);
    assert_int_equal(stat(sub, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640);
    /* a rewrite replaces the whole file */
    assert_int_equal(media_write_file(f->dir, "2026/01/a.jpg", "xy", 2), 0);
    got = slurp(f->dir, "2026/01/a.jpg", &len);
    assert_int_equal(len, 2);
    free(got);
    /* only relative paths without dot segments */
    assert_int_equal(media_write_file(f->dir, "../a.jpg", "x", 1),
                     KF_EINVAL);
    assert_int_equal(media_write_file(f->dir, "2026/../../a.jpg", "x", 1),
                     KF_EINVAL);
    assert_int_equal(media_write_file(f->dir, "/etc/a.jpg", "x", 1),
                     KF_EINVAL);
    assert_int_equal(media_write_file(f->dir, "a//b.jpg", "x", 1),
                     KF_EINVAL);
    assert_int_equal(media_write_file(f->dir, "", "x", 1), KF_EINVAL);
    /* an unwritable place fails, and leaves nothing behind */
    assert_int_equal(media_write_file(f->dir, "file", "x", 1), 0);
    assert_int_equal(media_write_file(f->dir, "file/01/b.jpg", "x", 1),
                     KF_EIO);
    assert_int_equal(dot_files(f->dir), 0);
}

/* --- the fetch pass ------------------------------------------------------ */

static void test_media_pass_stores_an_image_sent_before_the_group(void **st)
{
    struct fixture *f = *st;
    json_t *ev, *inbox, *e;
    char *s, rel[256];
    size_t len = 0;

    sim_media(&S.sim, JPEG_ID, "image/jpeg", jpeg, sizeof(jpeg));
    image_in(f, JPEG_ID, "alice");          /* before the group exists */
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(f->c.stored, 1);
    assert_int_equal(f->c.failed, 0);
    snprintf(rel, sizeof(rel), "2026/01/%s.jpg", JPEG_ID);
    s = slurp(f->dir, rel, &len);
    assert_non_null(s);
    assert_int_equal(len, sizeof(jpeg));
    assert_memory_equal(s, jpeg, sizeof(jpeg));
    free(s);
    s = hget(f, P "media:" JPEG_ID, "path");
    assert_string_equal(s, rel);
    free(s);
    s = hget(f, P "media:" JPEG_ID, "openid");
    assert_string_equal(s, USER);
    free(s);
    s = hget(f, P "media:" JPEG_ID, "content_type");
    assert_string_equal(s, "image/jpeg");
    free(s);
    s = hget(f, P "media:" JPEG_ID, "size");
    assert_string_equal(s, "21");
    free(s);
    ev = events(f, P "events", "media_stored");
    assert_int_equal(json_array_size(ev), 1);
    e = json_array_get(ev, 0);
    assert_string_equal(json_string_value(json_object_get(e, "media_id")),
                        JPEG_ID);
    assert_string_equal(json_string_value(json_object_get(e, "path")), rel);
    assert_string_equal(json_string_value(json_object_get(e, "openid")),
                        USER);
    assert_string_equal(json_string_value(json_object_get(e, "size")), "21");
    assert_string_equal(json_string_value(json_object_get(e, "ts_ms")),
                        "1767225600000");
    inbox = events(f, P "inbox:alice", "media_stored");
    assert_int_equal(json_array_size(inbox), 1);
    json_decref(inbox);
    json_decref(ev);
    assert_int_equal(pending(f), 0);
    /* nothing is done twice */
    assert_int_equal(pass(f, NOW + 1000), 0);
    assert_int_equal(f->c.stored + f->c.failed + f->c.retried, 0);
    ev = events(f, P "events", "media_stored");
    assert_int_equal(json_array_size(ev), 1);
    json_decref(ev);
}

static void test_media_pass_acks_what_is_not_media(void **st)
{
    struct fixture *f = *st;
    json_t *ev;

    msg_in(f, "text", "{\"Content\":\"hi\"}", "alice");
    msg_in(f, "location", "{\"Label\":\"x\"}", "alice");
    cmd_do(f, "XADD " P "events * type assign openid %s agent alice", USER);
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(f->c.acked, 3);
    assert_int_equal(f->c.stored + f->c.failed + f->c.retried, 0);
    assert_int_equal(pending(f), 0);
    ev = events(f, P "events", "media_failed");
    assert_int_equal(json_array_size(ev), 0);
    json_decref(ev);
}

static void test_media_unknown_media_id_is_recorded_as_failed(void **st)
{
    struct fixture *f = *st;
    struct media_file mf;
    json_t *ev, *e;
    char *s;

    image_in(f, "noSuchMediaAtWeChat", "alice");
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(f->c.failed, 1);
    assert_int_equal(pending(f), 0);
    ev = events(f, P "events", "media_failed");
    assert_int_equal(json_array_size(ev), 1);
    e = json_array_get(ev, 0);
    assert_string_equal(json_string_value(json_object_get(e, "errcode")),
                        "40007");
    assert_string_equal(json_string_value(json_object_get(e, "reason")),
                        "wechat");
    assert_string_equal(json_string_value(json_object_get(e, "media_id")),
                        "noSuchMediaAtWeChat");
    json_decref(ev);
    s = hget(f, P "media:noSuchMediaAtWeChat", "path");
    assert_null(s);
    media_file_init(&mf);
    assert_int_equal(media_open(&f->m, KF_STR("noSuchMediaAtWeChat"), ORIG, "",
                                &mf), KF_ENOTFOUND);
    assert_non_null(mf.why);
    assert_string_equal(mf.why->sub, "media_failed");
    media_file_release(&mf);
}

/* The field names, in order, of the entries of key whose type is type:
 * "a,b,c;" per entry, into out. */
static void field_order(struct fixture *f, const char *key, const char *type,
                        char *out, size_t cap)
{
    redisReply *r = cmd(f, "XRANGE %s - +", key);
    size_t i, j, n = 0;

    out[0] = '\0';
    for (i = 0; i < r->elements; i++) {
        const redisReply *fl = r->element[i]->element[1];

        if (fl->elements < 2 || strcmp(fl->element[1]->str, type) != 0)
            continue;
        for (j = 0; j + 1 < fl->elements; j += 2) {
            int w = snprintf(out + n, cap - n, "%s%c", fl->element[j]->str,
                             j + 2 < fl->elements ? ',' : ';');

            assert_true(w > 0 && (size_t)w < cap - n);
            n += (size_t)w;
        }
    }
    freeReplyObject(r);
}

/* The events a console and the archiver read keep their layout: the same
 * fields in the same order, in P events and in the agent's feed. */
static void test_media_events_keep_their_field_order(void **st)
{
    struct fixture *f = *st;
    const char *keys[] = { P "events", P "inbox:alice" };
    char got[512];
    size_t i;

    sim_media(&S.sim, JPEG_ID, "image/jpeg", jpeg, sizeof(jpeg));
    image_in(f, JPEG_ID, "alice");
    image_in(f, "noSuchMediaAtWeChat", "alice");
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(f->c.stored, 1);
    assert_int_equal(f->c.failed, 1);
    for (i = 0; i < 2; i++) {
        field_order(f, keys[i], "media_stored", got, sizeof(got));
        assert_string_equal(got, "type,openid,media_id,path,content_type,"
                                 "size,ts_ms,msg,agent;");
        field_order(f, keys[i], "media_failed", got, sizeof(got));
        assert_string_equal(got, "type,openid,media_id,reason,errcode,"
                                 "errmsg,ts_ms,msg,agent;");
    }
}

static void test_media_bad_media_id_never_becomes_a_path(void **st)
{
    struct fixture *f = *st;
    json_t *ev;
    redisReply *r;

    image_in(f, "../../../tmp/evil", "alice");
    msg_in(f, "voice", "{\"Format\":\"amr\"}", "alice");   /* no MediaId */
    msg_in(f, "image", "not json", "alice");
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(f->c.failed, 3);
    assert_int_equal(pending(f), 0);
    ev = events(f, P "events", "media_failed");
    assert_int_equal(json_array_size(ev), 3);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(ev, 0), "reason")),
                        "bad_media_id");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(ev, 1), "reason")),
                        "no_media_id");
    json_decref(ev);
    r = cmd(f, "KEYS " P "media:*");
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
    assert_int_equal(dot_files(f->dir), 0);
    assert_false(exists(f->dir, "2026"));
}

static void test_media_too_big_is_failed_not_retried(void **st)
{
    struct fixture *f = *st;
    static char big[4096];
    json_t *ev;

    memset(big, 'z', sizeof(big));
    f->cfg.media.max_bytes = 1024;
    sim_media(&S.sim, "bigOne", "image/png", big, sizeof(big));
    image_in(f, "bigOne", "");
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(f->c.failed, 1);
    assert_int_equal(pending(f), 0);
    ev = events(f, P "events", "media_failed");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(ev, 0), "reason")),
                        "too_big");
    json_decref(ev);
    ev = events(f, P "inbox:", "media_failed");     /* no agent: no feed */
    assert_int_equal(json_array_size(ev), 0);
    json_decref(ev);
}

static void test_media_transient_failure_stays_pending_then_succeeds(
    void **st)
{
    struct fixture *f = *st;
    char *s;

    sim_media(&S.sim, JPEG_ID, "image/jpeg", jpeg, sizeof(jpeg));
    tu_sim_post(&S.sim, "/_sim/fault", "{\"path\":\"" MEDIA_GET "\","
             "\"kind\":\"http\",\"status\":502,\"count\":1}");
    image_in(f, JPEG_ID, "alice");
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(f->c.retried, 1);
    assert_int_equal(f->c.stored, 0);
    assert_int_equal(pending(f), 1);
    s = hget(f, P "media:" JPEG_ID, "attempts");
    assert_string_equal(s, "1");
    free(s);
    s = hget(f, P "media:" JPEG_ID, "retry_ms");
    assert_string_equal(s, "1767225602000");           /* 2 s later */
    free(s);
    /* backing off: the next pass does not even take it */
    assert_int_equal(pass(f, NOW + 1000), 0);
    assert_int_equal(f->c.retried + f->c.stored + f->c.waiting, 0);
    assert_int_equal(pending(f), 1);
    /* later: due again, and stored */
    assert_int_equal(pass(f, NOW + 3000), 0);
    assert_int_equal(f->c.stored, 1);
    assert_int_equal(pending(f), 0);
    assert_true(exists(f->dir, "2026/01/" JPEG_ID ".jpg"));
}

static void test_media_rate_limit_leaves_it_pending_without_an_attempt(
    void **st)
{
    struct fixture *f = *st;
    char *s;

    f->cfg.ratelimit.wechat_api_per_min = 1;
    sim_media(&S.sim, "m1", "image/jpeg", jpeg, sizeof(jpeg));
    sim_media(&S.sim, "m2", "image/jpeg", jpeg, sizeof(jpeg));
    image_in(f, "m1", "");
    image_in(f, "m2", "");
    assert_int_equal(pass(f, NOW), 0);
    /* one token: the access token fetch is not counted; m1 goes, m2
     * waits for the bucket */
    assert_int_equal(f->c.stored, 1);
    assert_int_equal(f->c.waiting, 1);
    assert_int_equal(pending(f), 1);
    s = hget(f, P "media:m2", "attempts");
    assert_null(s);
}

/* An earlier version left media entries pending in the group until they
 * were fetched; a consumer that died (or was upgraded) holding them: they
 * are claimed after idle_ms and become jobs. */
static void test_media_dead_consumers_entries_are_claimed(void **st)
{
    struct fixture *f = *st;
    redisReply *r;

    sim_media(&S.sim, JPEG_ID, "image/jpeg", jpeg, sizeof(jpeg));
    image_in(f, JPEG_ID, "alice");
    cmd_do(f, "XGROUP CREATE " P "events " MEDIA_GROUP " 0");
    r = cmd(f, "XREADGROUP GROUP " MEDIA_GROUP " dead:1 COUNT 10 STREAMS "
            P "events >");
    freeReplyObject(r);
    assert_int_equal(stream_pending(f), 1);
    f->m.idle_ms = 1000;
    /* not idle long enough yet */
    memset(&f->c, 0, sizeof(f->c));
    assert_int_equal(media_fetch_pass(&f->m, NOW, 50, &f->c), 0);
    assert_int_equal(f->c.stored + f->c.queued, 0);
    assert_int_equal(stream_pending(f), 1);
    tu_sleep_ms(1100);
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(f->c.queued, 1);
    assert_int_equal(f->c.stored, 1);
    assert_int_equal(pending(f), 0);
    assert_true(exists(f->dir, "2026/01/" JPEG_ID ".jpg"));
    r = cmd(f, "XINFO CONSUMERS " P "events " MEDIA_GROUP);
    assert_int_equal(r->elements, 2);       /* gone < 1 day: kept */
    freeReplyObject(r);
}

static void test_media_video_follows_video_url_and_fetches_the_thumb(
    void **st)
{
    struct fixture *f = *st;
    static const char mp4[] = "\0\0\0\x18" "ftypmp42 fake video bytes";
    char payload[512], json[256];
    size_t len = 0;
    char *s;

    sim_media(&S.sim, "vidBytes", "video/mp4", mp4, sizeof(mp4) - 1);
    snprintf(json, sizeof(json), "{\"video_url\":\"%s/_sim/media/vidBytes\"}",
             S.sim.base);
    sim_media(&S.sim, "vid1", "application/json", json, strlen(json));
    sim_media(&S.sim, "thumb1", "image/jpeg", jpeg, sizeof(jpeg));
    snprintf(payload, sizeof(payload), "{\"MsgType\":\"video\","
             "\"MediaId\":\"vid1\",\"ThumbMediaId\":\"thumb1\"}");
    msg_in(f, "video", payload, "alice");
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(f->c.stored, 2);
    assert_int_equal(pending(f), 0);
    s = slurp(f->dir, "2026/01/vid1.mp4", &len);
    assert_non_null(s);
    assert_int_equal(len, sizeof(mp4) - 1);
    assert_memory_equal(s, mp4, len);
    free(s);
    assert_true(exists(f->dir, "2026/01/thumb1.jpg"));
    /* a shortvideo whose thumb is the same id is fetched once */
    sim_media(&S.sim, "short1", "video/mp4", mp4, sizeof(mp4) - 1);
    msg_in(f, "shortvideo", "{\"MediaId\":\"short1\",\"ThumbMediaId\":"
           "\"short1\"}", "alice");
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(f->c.stored, 1);
    assert_true(exists(f->dir, "2026/01/short1.mp4"));
}

static void test_media_budget_bounds_a_pass(void **st)
{
    struct fixture *f = *st;
    char id[32];
    int i;

    for (i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "many%d", i);
        sim_media(&S.sim, id, "audio/amr", "#!AMR\n", 6);
        image_in(f, id, "");
    }
    f->m.max_fetches = 2;
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(f->c.stored, 2);
    assert_int_equal(f->c.waiting, 3);
    assert_int_equal(pending(f), 3);
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(pending(f), 0);
    assert_true(exists(f->dir, "2026/01/many4.amr"));
}

static void test_media_fetch_off_reads_nothing(void **st)
{
    struct fixture *f = *st;
    redisReply *r;

    f->cfg.media.fetch = 0;
    image_in(f, JPEG_ID, "alice");
    assert_int_equal(pass(f, NOW), 0);
    r = cmd(f, "XINFO GROUPS " P "events");
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
}

static void test_media_unwritable_dir_pauses_and_loses_nothing(void **st)
{
    struct fixture *f = *st;
    char blocker[128];
    FILE *fp;

    snprintf(blocker, sizeof(blocker), "%s/2026", f->dir);
    fp = fopen(blocker, "w");               /* a file where a dir goes */
    assert_non_null(fp);
    fclose(fp);
    sim_media(&S.sim, JPEG_ID, "image/jpeg", jpeg, sizeof(jpeg));
    image_in(f, JPEG_ID, "alice");
    assert_int_equal(pass(f, NOW), KF_EIO);
    assert_int_equal(pending(f), 1);
    assert_int_equal(pass(f, NOW + 5000), 0);        /* paused */
    assert_int_equal(f->c.waiting, 0);
    assert_int_equal(unlink(blocker), 0);
    assert_int_equal(pass(f, NOW + 10000), 0);
    assert_int_equal(f->c.stored, 1);
    assert_int_equal(pending(f), 0);
}

/* The id of the last entry of P events. */
static char *last_id(struct fixture *f)
{
    redisReply *r = cmd(f, "XREVRANGE " P "events + - COUNT 1");
    char *id;

    assert_int_equal(r->elements, 1);
    id = strdup(r->element[0]->element[0]->str);
    freeReplyObject(r);
    return id;
}

/* The media group's field of XINFO GROUPS ("" when there is no group). */
static char *group_field(struct fixture *f, const char *field)
{
    redisReply *r = cmd(f, "XINFO GROUPS " P "events");
    char *v = strdup("");
    size_t i, j;

    for (i = 0; i < r->elements; i++) {
        const redisReply *g = r->element[i];

        if (strcmp(g->element[1]->str, MEDIA_GROUP))
            continue;
        for (j = 0; j + 1 < g->elements; j += 2)
            if (!strcmp(g->element[j]->str, field)) {
                free(v);
                v = g->element[j + 1]->type == REDIS_REPLY_INTEGER
                        ? malloc(24) : strdup(g->element[j + 1]->str);
                if (g->element[j + 1]->type == REDIS_REPLY_INTEGER)
                    snprintf(v, 24, "%lld", g->element[j + 1]->integer);
            }
    }
    freeReplyObject(r);
    return v;
}

/* The archiver trims below the first entry a group still needs: its
 * oldest pending entry, else the one after its last delivered. A media
 * that keeps failing must not be that entry. */
static void test_media_failing_media_does_not_hold_the_stream(void **st)
{
    struct fixture *f = *st;
    char *id, *v;
    redisReply *r;
    int i;

    tu_sim_post(&S.sim, "/_sim/fault", "{\"path\":\"" MEDIA_GET "\","
             "\"kind\":\"http\",\"status\":502,\"count\":100}");
    image_in(f, JPEG_ID, "alice");
    id = last_id(f);
    for (i = 0; i < 3; i++) {
        assert_int_equal(pass(f, NOW + i * 3600000LL), 0);
        assert_int_equal(f->c.retried, 1);
        msg_in(f, "text", "{\"Content\":\"hi\"}", "alice");
    }
    assert_int_equal(pass(f, NOW + 3 * 3600000LL), 0);
    v = group_field(f, "pending");
    assert_string_equal(v, "0");
    free(v);
    free(id);
    id = last_id(f);
    v = group_field(f, "last-delivered-id");
    assert_string_equal(v, id);             /* everything read and acked */
    free(v);
    free(id);
    assert_int_equal(pending(f), 1);        /* the job waits apart */
    /* its retry count and its job expire (WeChat forgets it in 3 days) */
    r = cmd(f, "TTL " P "media:" JPEG_ID);
    assert_true(r->integer > 0 && r->integer <= 7 * 86400);
    freeReplyObject(r);
    r = cmd(f, "ZRANGE " P "media_jobs 0 0");
    id = strdup(r->element[0]->str);
    freeReplyObject(r);
    r = cmd(f, "TTL " P "media_job:%s", id);
    assert_true(r->integer > 0 && r->integer <= 3 * 86400);
    freeReplyObject(r);
    free(id);
}

/* fetch = 0 after fetch = 1: the group goes (it would hold trimming for
 * good); fetch = 1 again: what came meanwhile is not fetched, what comes
 * after is. */
static void test_media_fetch_off_drops_the_group(void **st)
{
    struct fixture *f = *st;
    char *v;

    sim_media(&S.sim, "whileOff", "image/jpeg", jpeg, sizeof(jpeg));
    sim_media(&S.sim, "afterOn", "image/jpeg", jpeg, sizeof(jpeg));
    msg_in(f, "text", "{\"Content\":\"hi\"}", "alice");
    assert_int_equal(pass(f, NOW), 0);
    v = group_field(f, "pending");
    assert_string_equal(v, "0");
    free(v);
    f->cfg.media.fetch = 0;
    assert_int_equal(pass(f, NOW), 0);
    v = group_field(f, "pending");
    assert_string_equal(v, "");             /* no group */
    free(v);
    image_in(f, "whileOff", "alice");
    assert_int_equal(pass(f, NOW), 0);
    f->cfg.media.fetch = 1;
    assert_int_equal(pass(f, NOW + 1000), 0);
    assert_int_equal(f->c.queued + f->c.stored, 0);
    image_in(f, "afterOn", "alice");
    assert_int_equal(pass(f, NOW + 2000), 0);
    assert_int_equal(f->c.stored, 1);
    assert_true(exists(f->dir, "2026/01/afterOn.jpg"));
    assert_false(exists(f->dir, "2026/01/whileOff.jpg"));
}

static long long get_ll(struct fixture *f, const char *fmt, const char *a)
{
    redisReply *r = cmd(f, fmt, a);
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer
                  : r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;

    freeReplyObject(r);
    return n;
}

/* lib/lua/README.md: ARGV[1] is the op. media.lua and media_keep.lua
 * refuse one they do not know (an error reply: KF_EBACKEND) and write
 * nothing, and they stand alone, without the routing prelude. */
static void test_media_scripts_refuse_an_unknown_op(void **st)
{
    struct fixture *f = *st;
    const char *const src[] = { lua_media, lua_media_keep };
    const char *args[] = { "no_such_op", MEDIA_GROUP, "me", "10", "1000",
                           "0-0", "1767225600000", "1000", "x", "y", "z" };
    size_t i;

    for (i = 0; i < 2; i++) {
        struct store_script sc;
        struct store_reply *r = NULL;

        assert_null(strstr(src[i], "local function parse_cfg("));
        store_script_init(&sc, src[i]);
        assert_int_equal(store_run(&f->st, &sc, 0, NULL, 11, args, NULL, &r),
                         KF_EBACKEND);
        assert_null(r);
        assert_non_null(strstr(store_error(&f->st), "unknown media"));
        assert_int_equal(get_ll(f, "DBSIZE", ""), 0);
    }
}

static void store_image(struct fixture *f, const char *id, int64_t at,
                        const void *data, size_t len)
{
    sim_media(&S.sim, id, "image/jpeg", data, len);
    image_in(f, id, "alice");
    assert_int_equal(pass(f, at), 0);
    assert_int_equal(f->c.stored, 1);
}

static void test_media_retention_deletes_old_files_and_records(void **st)
{
    struct fixture *f = *st;
    struct media_file mf;
    struct media_counts c;
    int64_t day = 86400000LL;

    store_image(f, "old1", NOW - 40 * day, jpeg, sizeof(jpeg));
    store_image(f, "new1", NOW - 2 * day, jpeg, sizeof(jpeg));
    assert_int_equal(get_ll(f, "GET %s", P "media_bytes"), 42);
    f->cfg.media.retention_days = 30;
    memset(&c, 0, sizeof(c));
    assert_int_equal(media_keep_tidy(&f->m, NOW, 100, &c), 0);
    assert_int_equal(c.removed_retention, 1);
    assert_int_equal(c.removed_quota, 0);
    assert_false(exists(f->dir, "2025/11/old1.jpg"));
    assert_true(exists(f->dir, "2025/12/new1.jpg"));
    assert_int_equal(get_ll(f, "EXISTS %s", P "media:old1"), 0);
    assert_int_equal(get_ll(f, "GET %s", P "media_bytes"), 21);
    assert_int_equal(get_ll(f, "ZCARD %s", P "media_files"), 1);
    media_file_init(&mf);
    assert_int_equal(media_open(&f->m, KF_STR("old1"), ORIG, "", &mf),
                     KF_ENOTFOUND);
    assert_non_null(mf.why);
    assert_string_equal(mf.why->sub, "no_media");
    assert_int_equal(media_open(&f->m, KF_STR("new1"), ORIG, "", &mf), 0);
    media_file_release(&mf);
    /* nothing more is due */
    memset(&c, 0, sizeof(c));
    assert_int_equal(media_keep_tidy(&f->m, NOW, 100, &c), 0);
    assert_int_equal(c.removed_retention + c.removed_quota, 0);
}

static void test_media_quota_deletes_the_oldest_to_make_room(void **st)
{
    struct fixture *f = *st;
    static char blob[400 * 1024], huge[1536 * 1024];
    struct media_usage u;
    json_t *ev;

    memset(blob, 'q', sizeof(blob));
    memset(huge, 'h', sizeof(huge));
    f->cfg.media.max_disk_mb = 1;
    store_image(f, "q1", NOW, blob, sizeof(blob));
    store_image(f, "q2", NOW + 1000, blob, sizeof(blob));
    assert_int_equal(f->c.removed_quota, 0);
    store_image(f, "q3", NOW + 2000, blob, sizeof(blob));
    assert_int_equal(f->c.removed_quota, 1);        /* q1 made room */
    assert_false(exists(f->dir, "2026/01/q1.jpg"));
    assert_true(exists(f->dir, "2026/01/q2.jpg"));
    assert_true(exists(f->dir, "2026/01/q3.jpg"));
    assert_int_equal(get_ll(f, "EXISTS %s", P "media:q1"), 0);
    assert_int_equal(media_keep_usage(&f->m, &u), 0);
    assert_int_equal(u.bytes, 2 * (int64_t)sizeof(blob));
    assert_int_equal(u.files, 2);
    assert_int_equal(u.jobs, 0);
    /* a file larger than the whole quota is refused, nothing deleted */
    sim_media(&S.sim, "huge1", "image/jpeg", huge, sizeof(huge));
    image_in(f, "huge1", "alice");
    assert_int_equal(pass(f, NOW + 3000), 0);
    assert_int_equal(f->c.refused_quota, 1);
    assert_int_equal(f->c.failed, 1);
    assert_int_equal(f->c.stored + f->c.removed_quota, 0);
    assert_int_equal(pending(f), 0);
    assert_false(exists(f->dir, "2026/01/huge1.jpg"));
    ev = events(f, P "events", "media_failed");
    assert_int_equal(json_array_size(ev), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(ev, 0), "reason")), "quota");
    json_decref(ev);
}

static void voice_in(struct fixture *f, const char *id, const void *amr,
                     size_t len)
{
    char payload[512];

    sim_media(&S.sim, id, "audio/amr", amr, len);
    snprintf(payload, sizeof(payload), "{\"MsgType\":\"voice\","
             "\"MediaId\":\"%s\",\"Format\":\"amr\"}", id);
    msg_in(f, "voice", payload, "alice");
}

/* An AMR voice is stored with a WAV copy next to it: recorded, announced,
 * served with ?format=wav, counted in the quota and deleted with it. */
static void test_media_voice_gets_a_playable_wav_copy(void **st)
{
    struct fixture *f = *st;
    struct media_file mf;
    struct media_counts c;
    static const char *const play[][2] = {
        { "play_type", "audio/wav" }, { "play_size", "16044" },
        { "play_ms", "1000" },
    };
    json_t *ev, *e;
    size_t len = 0, wlen = 0, i;
    char *amr = tu_read_file("../data/voice/tone440-1s.amr", &len), *s;

    assert_non_null(amr);
    voice_in(f, "voice1", amr, len);
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(f->c.stored, 1);
    assert_int_equal(f->c.playable, 1);
    assert_true(exists(f->dir, "2026/01/voice1.amr"));
    s = slurp(f->dir, "2026/01/voice1.wav", &wlen);
    assert_non_null(s);
    assert_int_equal(wlen, 44 + 16000);
    assert_memory_equal(s, "RIFF", 4);
    free(s);
    s = hget(f, P "media:voice1", "play_path");
    assert_string_equal(s, "2026/01/voice1.wav");
    free(s);
    s = hget(f, P "media:voice1", "play_ms");
    assert_string_equal(s, "1000");
    free(s);
    assert_int_equal(get_ll(f, "GET %s", P "media_bytes"),
                     (long long)(len + wlen));
    ev = events(f, P "events", "media_stored");
    e = json_array_get(ev, 0);
    for (i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_object_get(
                                e, play[i][0])), play[i][1]);
    json_decref(ev);
    media_file_init(&mf);
    assert_int_equal(media_open(&f->m, KF_STR("voice1"), KF_STR("wav"),
                                "", &mf), 0);
    assert_string_equal(mf.content_type, "audio/wav");
    assert_int_equal(mf.size, 16044);
    assert_int_equal(media_open(&f->m, KF_STR("voice1"), KF_STR(""),
                                "", &mf), 0);
    assert_string_equal(mf.content_type, "audio/amr");
    assert_int_equal(mf.size, len);
    assert_int_equal(media_open(&f->m, KF_STR("voice1"), KF_STR("mp3"),
                                "", &mf), KF_EINVAL);
    assert_string_equal(mf.why->sub, "bad_format");
    assert_int_equal(media_open(&f->m, KF_STR("voice1"), KF_STR("wav"),
                                "bob", &mf), KF_EINVAL);
    assert_string_equal(mf.why->sub, "not_yours");
    media_file_release(&mf);
    /* retention takes both files and all their bytes */
    f->cfg.media.retention_days = 1;
    memset(&c, 0, sizeof(c));
    assert_int_equal(media_keep_tidy(&f->m, NOW + 2 * 86400000LL, 100, &c),
                     0);
    assert_int_equal(c.removed_retention, 1);
    assert_false(exists(f->dir, "2026/01/voice1.amr"));
    assert_false(exists(f->dir, "2026/01/voice1.wav"));
    assert_int_equal(get_ll(f, "GET %s", P "media_bytes"), 0);
    free(amr);
}

/* A voice the decoder refuses (and any other media) is stored alone; its
 * playable copy is answered no_playable. */
static void test_media_undecodable_voice_is_stored_without_copy(void **st)
{
    struct fixture *f = *st;
    struct media_file mf;

    voice_in(f, "voice2", "#!AMR\n\x3c\x01", 8);    /* cut short */
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(f->c.stored, 1);
    assert_int_equal(f->c.playable, 0);
    assert_int_equal(f->c.unplayable, 1);
    assert_true(exists(f->dir, "2026/01/voice2.amr"));
    assert_false(exists(f->dir, "2026/01/voice2.wav"));
    assert_int_equal(get_ll(f, "GET %s", P "media_bytes"), 8);
    media_file_init(&mf);
    assert_int_equal(media_open(&f->m, KF_STR("voice2"), KF_STR("wav"), "",
                                &mf), KF_ENOTFOUND);
    assert_string_equal(mf.why->sub, "no_playable");
    assert_int_equal(media_open(&f->m, KF_STR("voice2"), ORIG, "",
                                &mf), 0);
    media_file_release(&mf);
}

/* A media_id is any [A-Za-z0-9_-]{1,128}: one that spells a key of the
 * store's own (a forged callback can send any) must not collide with it. */
static void test_media_ids_never_collide_with_the_stores_keys(void **st)
{
    static const char *const ids[] = { "jobs", "files", "bytes", "off",
                                       "indexed", "index_cursor", "job" };
    struct media_usage u;
    size_t i;

    for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        store_image(*st, ids[i], NOW + (int64_t)i, jpeg, sizeof(jpeg));
    assert_int_equal(media_keep_usage(&((struct fixture *)*st)->m, &u), 0);
    assert_int_equal(u.files, 7);
    assert_int_equal(u.bytes, 7 * (int64_t)sizeof(jpeg));
    assert_int_equal(u.jobs, 0);
}

/* Files stored before the index existed are indexed, then kept to the
 * same rules. */
static void test_media_keep_indexes_earlier_files(void **st)
{
    struct fixture *f = *st;
    struct media_counts c;
    int i;

    assert_int_equal(media_write_file(f->dir, "2025/01/legacy.jpg", jpeg,
                                      sizeof(jpeg)), 0);
    cmd_do(f, "HSET " P "media:legacy path 2025/01/legacy.jpg size 21 "
           "stored_ms %lld openid %s", NOW - 100 * 86400000LL, USER);
    cmd_do(f, "HSET " P "media:failedOne error wechat errcode 40007");
    f->cfg.media.retention_days = 30;
    memset(&c, 0, sizeof(c));
    for (i = 0; i < 10; i++)        /* SCAN 2 keys a step, to the end */
        assert_int_equal(media_keep_tidy(&f->m, NOW, 2, &c), 0);
    assert_int_equal(c.removed_retention, 1);
    assert_false(exists(f->dir, "2025/01/legacy.jpg"));
    assert_int_equal(get_ll(f, "EXISTS %s", P "media:legacy"), 0);
    assert_int_equal(get_ll(f, "EXISTS %s", P "media:failedOne"), 1);
    assert_int_equal(get_ll(f, "EXISTS %s", P "media_indexed"), 1);
    assert_int_equal(get_ll(f, "GET %s", P "media_bytes"), 0);
}

static void test_media_redis_down_is_backend_error(void **st)
{
    struct fixture *f = *st;
    struct store dead;
    struct media m;
    struct media_file mf;
    char url[64];

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", tu_free_port());
    assert_int_equal(store_init(&dead, url, APPID, 200, 200), 0);
    media_init(&m, &dead, f->api, &f->cfg);
    assert_int_equal(media_fetch_pass(&m, NOW, 50, &f->c), KF_EBACKEND);
    media_file_init(&mf);
    assert_int_equal(media_open(&m, KF_STR(JPEG_ID), ORIG, "", &mf),
                     KF_EBACKEND);
    media_file_release(&mf);
    media_release(&m);
    store_release(&dead);
}

/* --- serving ------------------------------------------------------------- */

static void read_all(struct media_file *mf, struct kf_buf *out)
{
    char buf[7];
    size_t n;

    do {
        assert_int_equal(media_file_read(mf, buf, sizeof(buf), &n), 0);
        assert_int_equal(kf_buf_append(out, buf, n), 0);
    } while (n > 0);
}

static void test_media_open_serves_only_the_sessions_agent(void **st)
{
    struct fixture *f = *st;
    struct media_file mf;
    struct kf_buf got;

    sim_media(&S.sim, JPEG_ID, "image/jpeg", jpeg, sizeof(jpeg));
    image_in(f, JPEG_ID, "alice");
    assert_int_equal(pass(f, NOW), 0);
    assert_int_equal(f->c.stored, 1);
    cmd_do(f, "SADD " P "load:alice %s", USER);
    media_file_init(&mf);
    kf_buf_init(&got, 1 << 20);
    assert_int_equal(media_open(&f->m, KF_STR(JPEG_ID), ORIG, "alice", &mf), 0);
    assert_int_equal(mf.size, sizeof(jpeg));
    assert_string_equal(mf.content_type, "image/jpeg");
    assert_string_equal(mf.ext, "jpg");
    read_all(&mf, &got);
    assert_int_equal(got.len, sizeof(jpeg));
    assert_memory_equal(got.p, jpeg, sizeof(jpeg));
    /* another agent */
    assert_int_equal(media_open(&f->m, KF_STR(JPEG_ID), ORIG, "bob", &mf),
                     KF_EINVAL);
    assert_non_null(mf.why);
    assert_string_equal(mf.why->sub, "not_yours");
    assert_int_equal(mf.fd, -1);
    /* the session hash names the agent too */
    cmd_do(f, "HSET " P "sess:%s agent bob", USER);
    assert_int_equal(media_open(&f->m, KF_STR(JPEG_ID), ORIG, "bob", &mf), 0);
    /* an admin sees everything */
    assert_int_equal(media_open(&f->m, KF_STR(JPEG_ID), ORIG, "", &mf), 0);
    /* closed session: the agent no longer */
    cmd_do(f, "DEL " P "sess:%s " P "load:alice", USER);
    assert_int_equal(media_open(&f->m, KF_STR(JPEG_ID), ORIG, "alice", &mf),
                     KF_EINVAL);
    /* unknown, malformed */
    assert_int_equal(media_open(&f->m, KF_STR("unknown1"), ORIG, "", &mf),
                     KF_ENOTFOUND);
    assert_non_null(mf.why);
    assert_string_equal(mf.why->sub, "no_media");
    assert_int_equal(media_open(&f->m, KF_STR("../etc"), ORIG, "", &mf),
                     KF_EINVAL);
    assert_non_null(mf.why);
    assert_string_equal(mf.why->sub, "bad_media_id");
    media_file_release(&mf);
    media_file_release(&mf);
    kf_buf_release(&got);
}

static void test_media_open_never_leaves_the_media_dir(void **st)
{
    struct fixture *f = *st;
    struct media_file mf;
    char link[256];

    media_file_init(&mf);
    cmd_do(f, "HSET " P "media:evil path ../../../etc/passwd openid %s",
           USER);
    assert_int_equal(media_open(&f->m, KF_STR("evil"), ORIG, "", &mf),
                     KF_ENOTFOUND);
    cmd_do(f, "HSET " P "media:evil path /etc/passwd");
    assert_int_equal(media_open(&f->m, KF_STR("evil"), ORIG, "", &mf),
                     KF_ENOTFOUND);
    /* a symlink inside the dir that points out of it */
    snprintf(link, sizeof(link), "%s/out.jpg", f->dir);
    assert_int_equal(symlink("/etc/passwd", link), 0);
    cmd_do(f, "HSET " P "media:evil path out.jpg");
    assert_int_equal(media_open(&f->m, KF_STR("evil"), ORIG, "", &mf),
                     KF_ENOTFOUND);
    /* a directory is no file */
    assert_int_equal(media_write_file(f->dir, "d/x.jpg", "x", 1), 0);
    cmd_do(f, "HSET " P "media:evil path d");
    assert_int_equal(media_open(&f->m, KF_STR("evil"), ORIG, "", &mf),
                     KF_ENOTFOUND);
    /* the stored file exists but is gone from disk */
    cmd_do(f, "HSET " P "media:evil path d/gone.jpg");
    assert_int_equal(media_open(&f->m, KF_STR("evil"), ORIG, "", &mf),
                     KF_ENOTFOUND);
    assert_non_null(mf.why);
    assert_string_equal(mf.why->sub, "no_media");
    /* served as its extension's type, whatever was stored */
    cmd_do(f, "HSET " P "media:evil path d/x.jpg content_type text/html");
    assert_int_equal(media_open(&f->m, KF_STR("evil"), ORIG, "", &mf), 0);
    assert_string_equal(mf.content_type, "image/jpeg");
    media_file_release(&mf);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_media_id_accepts_only_safe_ids),
        cmocka_unit_test(test_media_ext_follows_the_content_type),
        T(test_media_write_file_is_atomic_and_makes_dirs),
        T(test_media_pass_stores_an_image_sent_before_the_group),
        T(test_media_pass_acks_what_is_not_media),
        T(test_media_unknown_media_id_is_recorded_as_failed),
        T(test_media_events_keep_their_field_order),
        T(test_media_scripts_refuse_an_unknown_op),
        T(test_media_bad_media_id_never_becomes_a_path),
        T(test_media_too_big_is_failed_not_retried),
        T(test_media_transient_failure_stays_pending_then_succeeds),
        T(test_media_rate_limit_leaves_it_pending_without_an_attempt),
        T(test_media_dead_consumers_entries_are_claimed),
        T(test_media_video_follows_video_url_and_fetches_the_thumb),
        T(test_media_budget_bounds_a_pass),
        T(test_media_fetch_off_reads_nothing),
        T(test_media_unwritable_dir_pauses_and_loses_nothing),
        T(test_media_failing_media_does_not_hold_the_stream),
        T(test_media_fetch_off_drops_the_group),
        T(test_media_retention_deletes_old_files_and_records),
        T(test_media_quota_deletes_the_oldest_to_make_room),
        T(test_media_ids_never_collide_with_the_stores_keys),
        T(test_media_keep_indexes_earlier_files),
        T(test_media_redis_down_is_backend_error),
        T(test_media_open_serves_only_the_sessions_agent),
        T(test_media_voice_gets_a_playable_wav_copy),
        T(test_media_undecodable_voice_is_stored_without_copy),
        T(test_media_open_never_leaves_the_media_dir),
    };

    return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
