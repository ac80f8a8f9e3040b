/* archive_stream: the Redis half of lib/archive. */
#include "archive_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "banned.h"

#define FORGET_MS "86400000"        /* a consumer idle a day, none pending */

/* --- Redis: trimming and lag, in one script ------------------------------
 * For every group on the stream: the first entry it still needs (its
 * oldest pending entry, else the one after its last delivered); another
 * group than ours needs nothing older than now - hold_ms (hold_ms 0: no
 * bound), so no other group can stop the trimming for longer. With
 * ARGV[2] = 1 the stream is trimmed (MINID) below the smallest of those,
 * and below now - keep_ms, and consumers of our group idle a day with
 * nothing pending are forgotten. KEYS[1] = the stream; ARGV: group, trim,
 * keep_ms, consumer, forget_ms, hold_ms. Returns {pending, undelivered
 * (counted up to 10,000 when Redis does not know it), oldest unarchived
 * id or '', trimmed, other groups held back by the bound}. */
static const char tidy_lua[] =
    "local S, g, me = KEYS[1], ARGV[1], ARGV[4]\n"
    "if redis.call('EXISTS', S) == 0 then return { 0, 0, '', 0, 0 } end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(t[2] / 1000)\n"
    "local hold, behind, bound = tonumber(ARGV[6]), 0, nil\n"
    "if hold > 0 and now - hold > 0 then\n"
    "    bound = string.format('%.0f-0', now - hold)\n"
    "end\n"
    "local function split(id)\n"
    "    local ms, seq = string.match(id, '^(%d+)%-(%d+)$')\n"
    "    return tonumber(ms), tonumber(seq)\n"
    "end\n"
    "local function less(a, b)\n"
    "    local am, as = split(a)\n"
    "    local bm, bs = split(b)\n"
    "    return am < bm or (am == bm and as < bs)\n"
    "end\n"
    "local function after(id)\n"
    "    local ms, seq = split(id)\n"
    "    return string.format('%.0f-%.0f', ms, seq + 1)\n"
    "end\n"
    "local need, pending, undelivered, oldest, mine = nil, 0, 0, '', false\n"
    "for _, raw in ipairs(redis.call('XINFO', 'GROUPS', S)) do\n"
    "    local h = {}\n"
    "    for i = 1, #raw - 1, 2 do h[raw[i]] = raw[i + 1] end\n"
    "    local first, last = nil, h['last-delivered-id']\n"
    "    if h.pending > 0 then\n"
    "        first = redis.call('XPENDING', S, h.name)[2]\n"
    "    else\n"
    "        first = after(last)\n"
    "    end\n"
    "    if h.name ~= g and bound and less(first, bound) then\n"
    "        first, behind = bound, behind + 1\n"
    "    end\n"
    "    if not need or less(first, need) then need = first end\n"
    "    if h.name == g then\n"
    "        mine = true\n"
    "        pending = h.pending\n"
    "        local top = redis.call('XREVRANGE', S, '+', '-', 'COUNT', 1)\n"
    "        if #top == 0 or not less(last, top[1][1]) then\n"
    "            undelivered = 0\n"
    "        elseif h.lag then\n"
    "            -- Redis's count; it can be off after a restart: bound it\n"
    "            undelivered = math.max(1, math.min(h.lag,\n"
    "                                   redis.call('XLEN', S)))\n"
    "        else\n"
    "            -- unknown to Redis (after XDEL or SETID): count, up to 10k\n"
    "            undelivered = #redis.call('XRANGE', S, '(' .. last, '+',\n"
    "                                      'COUNT', 10000)\n"
    "        end\n"
    "        if h.pending > 0 then\n"
    "            oldest = first\n"
    "        else\n"
    "            local nx = redis.call('XRANGE', S, '(' .. last, '+',\n"
    "                                  'COUNT', 1)\n"
    "            if #nx > 0 then oldest = nx[1][1] end\n"
    "        end\n"
    "    end\n"
    "end\n"
    "if not mine then\n"
    "    undelivered = redis.call('XLEN', S)\n"
    "    local nx = redis.call('XRANGE', S, '-', '+', 'COUNT', 1)\n"
    "    if #nx > 0 then oldest = nx[1][1] end\n"
    "end\n"
    "local trimmed = 0\n"
    "if ARGV[2] == '1' and need then\n"
    "    local keep = tonumber(ARGV[3])\n"
    "    if keep > 0 then\n"
    "        local floor = string.format('%.0f-0', now - keep)\n"
    "        if now - keep < 0 then floor = '0-0' end\n"
    "        if less(floor, need) then need = floor end\n"
    "    end\n"
    "    trimmed = redis.call('XTRIM', S, 'MINID', need)\n"
    "    if mine then\n"
    "        for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', S, g)) do\n"
    "            local h = {}\n"
    "            for i = 1, #c - 1, 2 do h[c[i]] = c[i + 1] end\n"
    "            if h.name ~= me and h.pending == 0 and\n"
    "               h.idle > tonumber(ARGV[5]) then\n"
    "                redis.call('XGROUP', 'DELCONSUMER', S, g, h.name)\n"
    "            end\n"
    "        end\n"
    "    end\n"
    "end\n"
    "return { pending, undelivered, oldest, trimmed, behind }\n";

void archive_stream_init(struct archive *a)
{
    snprintf(a->claim_cursor, sizeof(a->claim_cursor), "0-0");
    store_script_init(&a->tidy, tidy_lua);
}

void archive_stream_read_release(struct archive_read *rd)
{
    size_t i;

    for (i = 0; rd->e && i < rd->n; i++)
        archive_entry_release(&rd->e[i]);
    free(rd->e);
    free(rd->f);
    if (rd->r)
        freeReplyObject(rd->r);
    memset(rd, 0, sizeof(*rd));
}

int archive_stream_key(const struct archive *a, char *out, size_t n)
{
    int len = snprintf(out, n, "%sevents", a->store->prefix);

    return len < 0 || (size_t)len >= n ? KF_ECONFIG : 0;
}

/* One command on the store's connection. A broken connection is dropped
 * (store_connect makes a new one next time). An error reply is
 * KF_EBACKEND; NOGROUP makes the next pass create the group again.
 * On success *out is new; the caller frees it with freeReplyObject(). */
static int redis_cmd(struct archive *a, int argc, const char **argv,
                     const size_t *lens, redisReply **out)
{
    struct store *s = a->store;

    *out = NULL;
    if (store_connect(s) < 0)
        return KF_EBACKEND;
    *out = redisCommandArgv(s->rc, argc, argv, lens);
    if (!*out) {
        redisFree(s->rc);
        s->rc = NULL;
        a->group_ready = 0;
        return KF_EBACKEND;
    }
    if ((*out)->type == REDIS_REPLY_ERROR) {
        if (!strncmp((*out)->str, "NOGROUP", 7) ||
            store_reply_role_error(s, *out))  /* a fail-over: new master */
            a->group_ready = 0;
        freeReplyObject(*out);
        *out = NULL;
        return KF_EBACKEND;
    }
    return 0;
}


int archive_stream_group(struct archive *a, const char *key)
{
    const char *argv[] = { "XGROUP", "CREATE", key, ARCHIVE_GROUP, "0",
                           "MKSTREAM" };
    redisReply *r;

    if (a->group_ready)
        return 0;
    if (store_connect(a->store) < 0)
        return KF_EBACKEND;
    r = redisCommandArgv(a->store->rc, 6, argv, NULL);
    if (!r) {
        redisFree(a->store->rc);
        a->store->rc = NULL;
        return KF_EBACKEND;
    }
    a->group_ready = r->type != REDIS_REPLY_ERROR ||
                     !strncmp(r->str, "BUSYGROUP", 9);
    store_reply_role_error(a->store, r);
    freeReplyObject(r);
    return a->group_ready ? 0 : KF_EBACKEND;
}

int archive_stream_ack(struct archive *a, const char *key,
                       const struct archive_entry *e, size_t n)
{
    const char **argv = calloc(n + 3, sizeof(*argv));
    size_t *lens = calloc(n + 3, sizeof(*lens));
    size_t i, argc = 3;
    redisReply *r = NULL;
    int rc = 0;

    if (!argv || !lens) {
        rc = KF_ENOMEM;
        goto out;
    }
    argv[0] = "XACK";
    argv[1] = key;
    argv[2] = ARCHIVE_GROUP;
    for (i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    for (i = 0; i < n; i++)
        if (e[i].done) {
            argv[argc] = e[i].id.p;
            lens[argc++] = e[i].id.len;
        }
    if (argc > 3)
        rc = redis_cmd(a, (int)argc, argv, lens, &r);
out:
    if (r)
        freeReplyObject(r);
    free(argv);
    free(lens);
    return rc;
}

/* --- entries out of a reply ---------------------------------------------- */

static struct kf_str rstr(const redisReply *r)
{
    return (struct kf_str){ r->str, r->len };
}

/* One element of the list: [id, fields] (fields nil: deleted). 0 when it
 * has no id at all (nothing to acknowledge). */
static int take_entry(struct archive_entry *e, const redisReply *el,
                      struct kf_str *f)
{
    const redisReply *x;
    size_t i;

    if (el->type != REDIS_REPLY_ARRAY || el->elements != 2 ||
        el->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    x = el->element[1];
    if (x->type != REDIS_REPLY_ARRAY) {
        archive_entry_parse(e, rstr(el->element[0]), NULL, 0,
                            x->type == REDIS_REPLY_NIL);
        return 1;
    }
    for (i = 0; i < x->elements; i++)
        f[i] = x->element[i]->type == REDIS_REPLY_STRING
                   ? rstr(x->element[i]) : (struct kf_str){ NULL, 0 };
    archive_entry_parse(e, rstr(el->element[0]), f, x->elements, 0);
    return 1;
}

/* Takes ownership of r (list is inside it), even on error. */
static int take(redisReply *r, const redisReply *list,
                struct archive_read *rd)
{
    size_t i, nf = 0, at = 0;

    memset(rd, 0, sizeof(*rd));
    rd->r = r;
    rd->listed = list->elements;
    for (i = 0; i < list->elements; i++) {
        const redisReply *el = list->element[i];

        if (el->type == REDIS_REPLY_ARRAY && el->elements == 2 &&
            el->element[1]->type == REDIS_REPLY_ARRAY)
            nf += el->element[1]->elements;
    }
    rd->e = calloc(list->elements ? list->elements : 1, sizeof(*rd->e));
    rd->f = calloc(nf ? nf : 1, sizeof(*rd->f));
    if (!rd->e || !rd->f) {
        archive_stream_read_release(rd);
        return KF_ENOMEM;
    }
    for (i = 0; i < list->elements; i++)
        if (take_entry(&rd->e[rd->n], list->element[i], rd->f + at)) {
            at += rd->e[rd->n].nf;
            rd->n++;
        }
    return 0;
}

/* --- reading ------------------------------------------------------------- */

/* The entries array of an XREADGROUP reply (NULL when there are none). */
static const redisReply *read_entries(const redisReply *r)
{
    const redisReply *s;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return NULL;
    s = r->element[0];
    if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
        s->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    return s->element[1];
}

int archive_stream_read(struct archive *a, const char *key,
                        char cursor[ARCHIVE_STREAM_CURSOR],
                        struct archive_read *rd)
{
    char count[24];
    const char *argv[] = { "XREADGROUP", "GROUP", ARCHIVE_GROUP,
                           a->consumer, "COUNT", count, "STREAMS", key,
                           cursor };
    const redisReply *list;
    redisReply *r;
    size_t n;
    int rc;

    memset(rd, 0, sizeof(*rd));
    snprintf(count, sizeof(count), "%ld", a->batch);
    rc = redis_cmd(a, 9, argv, NULL, &r);
    if (rc < 0)
        return rc;
    list = read_entries(r);
    n = list ? list->elements : 0;
    if (strcmp(cursor, ">") != 0 && n) {
        const redisReply *last = list->element[n - 1];

        if (last->type == REDIS_REPLY_ARRAY && last->elements >= 1 &&
            last->element[0]->type == REDIS_REPLY_STRING)
            snprintf(cursor, ARCHIVE_STREAM_CURSOR, "%s",
                     last->element[0]->str);
    }
    if (!n) {
        freeReplyObject(r);
        return 0;
    }
    return take(r, list, rd);
}

int archive_stream_claim(struct archive *a, const char *key,
                         char next[ARCHIVE_STREAM_CURSOR],
                         struct archive_read *rd)
{
    char idle[24], count[24];
    const char *argv[] = { "XAUTOCLAIM", key, ARCHIVE_GROUP, a->consumer,
                           idle, a->claim_cursor, "COUNT", count };
    redisReply *r;
    int rc;

    memset(rd, 0, sizeof(*rd));
    snprintf(idle, sizeof(idle), "%ld", a->claim_idle_ms);
    snprintf(count, sizeof(count), "%ld", a->batch);
    rc = redis_cmd(a, 8, argv, NULL, &r);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return KF_EBACKEND;
    }
    snprintf(next, ARCHIVE_STREAM_CURSOR, "%s", r->element[0]->str);
    if (!r->element[1]->elements) {
        freeReplyObject(r);
        return 0;
    }
    return take(r, r->element[1], rd);
}

/* --- trimming and lag ---------------------------------------------------- */

static int64_t id_ms(const char *id)
{
    return strtoll(id, NULL, 10);
}

int archive_stream_tidy(struct archive *a, const char *key, int trim,
                        struct archive_lag *lag, long *trimmed)
{
    char keep[24], hold[24], forget[] = FORGET_MS;
    const char *argv[] = { NULL, NULL, "1", key, ARCHIVE_GROUP,
                           trim ? "1" : "0", keep, a->consumer, forget,
                           hold };
    redisReply *r = NULL;
    int rc;

    snprintf(keep, sizeof(keep), "%ld", a->keep_ms);
    snprintf(hold, sizeof(hold), "%ld", a->hold_ms);
    rc = store_eval(a->store, &a->tidy, 10, argv, NULL, &r);
    if (rc == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 5 ||
                    r->element[0]->type != REDIS_REPLY_INTEGER ||
                    r->element[1]->type != REDIS_REPLY_INTEGER ||
                    r->element[2]->type != REDIS_REPLY_STRING ||
                    r->element[3]->type != REDIS_REPLY_INTEGER ||
                    r->element[4]->type != REDIS_REPLY_INTEGER))
        rc = KF_EBACKEND;
    if (rc == 0) {
        memset(lag, 0, sizeof(*lag));
        lag->pending = r->element[0]->integer;
        lag->undelivered = r->element[1]->integer;
        if (r->element[2]->len) {
            lag->oldest_ms = id_ms(r->element[2]->str);
            lag->age_ms = kf_wall_ms() - lag->oldest_ms;
            if (lag->age_ms < 0)
                lag->age_ms = 0;
        }
        *trimmed = (long)r->element[3]->integer;
        lag->groups_behind = (long)r->element[4]->integer;
    }
    if (r)
        freeReplyObject(r);
    return rc;
}
