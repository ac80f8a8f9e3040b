/* media_keep: retention and the disk quota of the media store. */
#include "media_keep.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "banned.h"

#define MIB (1024LL * 1024LL)
#define DAY_MS 86400000LL
#define PICK_MAX 100            /* files chosen per round trip */

/* KEYS[1] = P; ARGV[1] = op:
 *   pick  cut_ms quota need n -> { used, { {mid, path, size, why}... } }:
 *         the oldest files, at most n, stored before cut_ms (why =
 *         retention) or to delete so that used + need <= quota (why =
 *         quota; quota 0 = none)
 *   forget mid                -> 1 when mid was indexed: its hash, its
 *                                index entry and its bytes are gone
 *   usage                     -> { bytes, files, jobs }
 *   index n                   -> indexes the stored hashes of an earlier
 *                                version, SCAN COUNT n at a time; 1 while
 *                                there is more, 0 when done (for good) */
static const char keep_lua[] =
    "local P, op = KEYS[1], ARGV[1]\n"
    "local FILES, BYTES = P .. 'media_files', P .. 'media_bytes'\n"
    "local function used()\n"
    "    return tonumber(redis.call('GET', BYTES) or '0') or 0\n"
    "end\n"
    "if op == 'pick' then\n"
    "    local cut, quota = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "    local need, u = tonumber(ARGV[4]), used()\n"
    "    local out, freed = {}, 0\n"
    "    local old = redis.call('ZRANGE', FILES, 0, tonumber(ARGV[5]) - 1,\n"
    "                           'WITHSCORES')\n"
    "    for i = 1, #old - 1, 2 do\n"
    "        local why\n"
    "        if tonumber(old[i + 1]) < cut then why = 'retention'\n"
    "        elseif quota > 0 and u - freed + need > quota then\n"
    "            why = 'quota'\n"
    "        else break end\n"
    "        local h = redis.call('HMGET', P .. 'media:' .. old[i], 'path',\n"
    "                             'size')\n"
    "        local size = tonumber(h[2] or '0') or 0\n"
    "        freed = freed + size\n"
    "        out[#out + 1] = { old[i], h[1] or '', tostring(size), why }\n"
    "    end\n"
    "    return { u, out }\n"
    "elseif op == 'forget' then\n"
    "    if not redis.call('ZSCORE', FILES, ARGV[2]) then return 0 end\n"
    "    local k = P .. 'media:' .. ARGV[2]\n"
    "    local size = tonumber(redis.call('HGET', k, 'size') or '0') or 0\n"
    "    redis.call('ZREM', FILES, ARGV[2])\n"
    "    redis.call('DECRBY', BYTES, size)\n"
    "    redis.call('DEL', k)\n"
    "    return 1\n"
    "elseif op == 'usage' then\n"
    "    return { used(), redis.call('ZCARD', FILES),\n"
    "             redis.call('ZCARD', P .. 'media_jobs') }\n"
    "elseif op == 'index' then\n"
    "    if redis.call('EXISTS', P .. 'media_indexed') == 1 then return 0 end\n"
    "    local cur = redis.call('GET', P .. 'media_index_cursor') or '0'\n"
    "    local r = redis.call('SCAN', cur, 'MATCH', P .. 'media:*', 'COUNT',\n"
    "                         ARGV[2])\n"
    "    for _, k in ipairs(r[2]) do\n"
    "        local id = string.sub(k, #P + 7)\n"
    "        if redis.call('TYPE', k).ok == 'hash' and\n"
    "           not redis.call('ZSCORE', FILES, id) then\n"
    "            local h = redis.call('HMGET', k, 'path', 'size', 'stored_ms')\n"
    "            if h[1] and tonumber(h[2]) and tonumber(h[3]) then\n"
    "                redis.call('ZADD', FILES, h[3], id)\n"
    "                redis.call('INCRBY', BYTES, h[2])\n"
    "            end\n"
    "        end\n"
    "    end\n"
    "    if r[1] == '0' then\n"
    "        redis.call('SET', P .. 'media_indexed', '1')\n"
    "        redis.call('DEL', P .. 'media_index_cursor')\n"
    "        return 0\n"
    "    end\n"
    "    redis.call('SET', P .. 'media_index_cursor', r[1])\n"
    "    return 1\n"
    "end\n"
    "return redis.error_reply('unknown media_keep op')\n";

void media_keep_script_init(struct store_script *sc)
{
    store_script_init(sc, keep_lua);
}

/* Runs the keep script with args (C strings). On success *out is new. */
static int keep(struct media *m, const char *const *args, int n,
                redisReply **out)
{
    const char *argv[10];
    int i;

    argv[2] = "1";
    argv[3] = m->store->prefix;
    for (i = 0; i < n && i < 6; i++)
        argv[4 + i] = args[i];
    return store_eval(m->store, &m->keep, 4 + i, argv, NULL, out);
}

static int forget(struct media *m, const char *mid)
{
    const char *args[] = { "forget", mid };
    redisReply *r = NULL;
    int rc = keep(m, args, 2, &r);

    if (r)
        freeReplyObject(r);
    return rc;
}

/* Deletes one chosen file, then its record. A file already gone is no
 * error; one that cannot be deleted keeps its record. */
static int delete_one(struct media *m, const redisReply *v,
                      struct media_counts *c)
{
    char full[4096];
    const char *mid, *path, *why;
    int n;

    if (v->type != REDIS_REPLY_ARRAY || v->elements != 4 ||
        v->element[0]->type != REDIS_REPLY_STRING ||
        v->element[1]->type != REDIS_REPLY_STRING ||
        v->element[3]->type != REDIS_REPLY_STRING)
        return KF_EBACKEND;
    mid = v->element[0]->str;
    path = v->element[1]->str;
    why = v->element[3]->str;
    if (*path && media_rel_ok(path)) {
        n = snprintf(full, sizeof(full), "%s/%s", m->cfg->media.dir, path);
        if (n < 0 || (size_t)n >= sizeof(full))
            return KF_ETOOBIG;
        if (unlink(full) < 0 && errno != ENOENT)
            return KF_EIO;
    }
    if (!strcmp(why, "retention"))
        c->removed_retention++;
    else
        c->removed_quota++;
    return forget(m, mid);
}

/* One round: picks up to n files and deletes them. *picked = how many,
 * *used = the bytes indexed before. */
static int round_trip(struct media *m, int64_t cut, int64_t need, long n,
                      long *picked, int64_t *used, struct media_counts *c)
{
    char scut[24], squota[24], sneed[24], sn[24];
    const char *args[] = { "pick", scut, squota, sneed, sn };
    redisReply *r = NULL, *list;
    size_t i;
    int rc;

    snprintf(scut, sizeof(scut), "%lld", (long long)cut);
    snprintf(squota, sizeof(squota), "%lld",
             (long long)m->cfg->media.max_disk_mb * MIB);
    snprintf(sneed, sizeof(sneed), "%lld", (long long)need);
    snprintf(sn, sizeof(sn), "%ld", n);
    *picked = 0;
    rc = keep(m, args, 5, &r);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return KF_EBACKEND;
    }
    *used = r->element[0]->integer;
    list = r->element[1];
    for (i = 0; i < list->elements && rc == 0; i++)
        rc = delete_one(m, list->element[i], c);
    *picked = (long)i;
    freeReplyObject(r);
    return rc;
}

/* Deletes what is due (cut, quota with need), at most limit files.
 * *room = 1 when used + need fits the quota afterwards. */
static int sweep(struct media *m, int64_t cut, int64_t need, long limit,
                 int *room, struct media_counts *c)
{
    int64_t quota = (int64_t)m->cfg->media.max_disk_mb * MIB, used = 0;
    long picked = 0, done = 0;
    int rc;

    do {
        long n = limit - done < PICK_MAX ? limit - done : PICK_MAX;

        rc = n > 0 ? round_trip(m, cut, need, n, &picked, &used, c) : 0;
        done += picked;
    } while (rc == 0 && picked > 0 && done < limit);
    *room = 0;
    if (rc == 0 && picked == 0)         /* nothing was left to delete */
        *room = quota == 0 || used + need <= quota;
    return rc;
}

int media_keep_room(struct media *m, int64_t need, long limit,
                    struct media_counts *c)
{
    int64_t quota = (int64_t)m->cfg->media.max_disk_mb * MIB;
    int room = 0, rc;

    if (quota == 0)
        return 0;
    if (need > quota)
        return KF_ETOOBIG;
    rc = sweep(m, 0, need, limit, &room, c);
    return rc < 0 ? rc : room ? 0 : KF_ELIMIT;
}

int media_keep_tidy(struct media *m, int64_t now_ms, long limit,
                    struct media_counts *c)
{
    const char *args[] = { "index", NULL };
    redisReply *r = NULL;
    char n[24];
    int64_t cut = 0;
    int room, rc;

    snprintf(n, sizeof(n), "%ld", limit);
    args[1] = n;
    rc = keep(m, args, 2, &r);
    if (r)
        freeReplyObject(r);
    if (rc < 0)
        return rc;
    if (m->cfg->media.retention_days > 0)
        cut = now_ms - (int64_t)m->cfg->media.retention_days * DAY_MS;
    return sweep(m, cut, 0, limit, &room, c);
}

int media_keep_usage(struct media *m, struct media_usage *u)
{
    const char *args[] = { "usage" };
    redisReply *r = NULL;
    int rc = keep(m, args, 1, &r);
    size_t i;

    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        rc = KF_EBACKEND;
    for (i = 0; rc == 0 && i < 3; i++)
        if (r->element[i]->type != REDIS_REPLY_INTEGER)
            rc = KF_EBACKEND;
    if (rc == 0) {
        u->bytes = r->element[0]->integer;
        u->files = r->element[1]->integer;
        u->jobs = r->element[2]->integer;
    }
    freeReplyObject(r);
    return rc;
}
