/* archive: the event stream into PostgreSQL, exactly once. */
#include "archive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "pg.h"

#include "banned.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
#define CLAIM_EVERY_MS 1000
#define TIDY_EVERY_MS 1000
#define FORGET_MS "86400000"        /* a consumer idle a day, none pending */
#define COPY_MAX ((size_t)512 << 20)
#define NAME_MAX_LEN 64             /* longest field name put in JSON */
#define TS_MAX 253402300799999LL    /* 9999-12-31T23:59:59.999Z */
#define MONTH_MIN (2000 * 12)       /* partitions only from 2000 on */

/* --- time ---------------------------------------------------------------- */

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- SQL ------------------------------------------------------------------
 * Each batch is COPYed into a temporary table (one row per entry, the
 * fields it has, text as it came), then each target table gets one set
 * statement that skips what is already there. `kind` is our
 * classification; `type` the entry's own (kept for other_events). Rows
 * are inserted in stream order (the order of the COPY), so two archivers
 * writing the same entries take their locks in the same order. */

static const char setup_sql[] =
    "SET client_min_messages = warning;"
    "CREATE TEMP TABLE IF NOT EXISTS wxkf_arch ("
    " event_id text NOT NULL, ems bigint NOT NULL, eseq bigint NOT NULL,"
    " kind text NOT NULL, ts bigint NOT NULL, type text, openid text,"
    " msgtype text, msgid text, session text, agent text, grp text,"
    " reason text, why text, payload text, status text, prev text,"
    " errcode text, errmsg text, sender text, media_id text, path text,"
    " content_type text, size text, msg text, fields text"
    ") ON COMMIT DELETE ROWS";

#define AT "(timestamptz 'epoch' + ts * interval '1 millisecond')"
#define SESS "(CASE WHEN session ~ '^[0-9]{1,18}$' THEN session::bigint END)"
#define INT4(c) "(CASE WHEN " c " ~ '^-?[0-9]{1,9}$' THEN " c "::integer END)"

enum kind {
    K_MSG_IN, K_MSG_OUT, K_DELIVERY, K_ASSIGN, K_REASSIGN, K_TRANSFER,
    K_QUEUE, K_CLOSE, K_PRESENCE, K_MEDIA_STORED, K_MEDIA_FAILED, K_OTHER,
    K_BAD,          /* not representable: straight to archive_rejects */
    K_GONE          /* pending, but deleted from the stream */
};
#define NAMED_KINDS K_OTHER
static const char *const kind_names[] = {
    "msg_in", "msg_out", "delivery", "assign", "reassign", "transfer",
    "queue", "close", "presence", "media_stored", "media_failed", "other",
};
#define BIT(k) (1u << (k))
#define SESSION_KINDS (BIT(K_ASSIGN) | BIT(K_REASSIGN) | BIT(K_TRANSFER) | \
                       BIT(K_QUEUE) | BIT(K_CLOSE))
#define OUT_KINDS (BIT(K_MSG_OUT) | BIT(K_DELIVERY))

static const char messages_sql[] =
    "INSERT INTO messages (event_id, msgid, session_id, openid, agent,"
    " direction, msgtype, content, media_id, status, payload, created_at) "
    "SELECT event_id, nullif(msgid, ''), " SESS ", coalesce(openid, ''),"
    " nullif(agent, ''), CASE kind WHEN 'msg_in' THEN 'i' ELSE 'o' END,"
    " coalesce(nullif(msgtype, ''), 'unknown'),"
    " coalesce(p->>'Content', p->>'Recognition', p->>'Title',"
    "          p->>'Label', p->>'content', p->>'title'),"
    " coalesce(p->>'MediaId', p->>'media_id'),"
    " CASE kind WHEN 'msg_out' THEN 'sending' END, p, " AT
    " FROM (SELECT *, coalesce(nullif(payload, ''), '{}')::jsonb ||"
    "         CASE WHEN kind = 'msg_out' AND sender <> ''"
    "         THEN jsonb_build_object('by', sender) ELSE '{}' END AS p"
    "       FROM wxkf_arch WHERE kind IN ('msg_in', 'msg_out')"
    "       OFFSET 0) x "            /* parse each payload once */
    "ON CONFLICT (event_id, created_at) DO NOTHING";

static const char deliveries_sql[] =
    "INSERT INTO deliveries (event_id, msgid, openid, agent, status,"
    " errcode, errmsg, at) "
    "SELECT event_id, msgid, nullif(openid, ''), nullif(agent, ''),"
    " coalesce(nullif(status, ''), 'unknown'), " INT4("errcode") ","
    " nullif(errmsg, ''), " AT " FROM wxkf_arch WHERE kind = 'delivery' "
    "ON CONFLICT (event_id) DO NOTHING";

/* One row per session of the batch, merged so that any order of arrival
 * gives the same row: the earliest opening, first assignment and close;
 * agent, grp and why of the latest assignment (routed_by). */
#define NEWER "(EXCLUDED.routed_by IS NOT NULL AND (s.routed_by IS NULL OR" \
    " wxkf_event_ord(EXCLUDED.routed_by) > wxkf_event_ord(s.routed_by)))"
static const char sessions_sql[] =
    "WITH ev AS ("
    " SELECT " SESS " AS id, kind, openid, nullif(agent, '') AS agent,"
    "  nullif(grp, '') AS grp, nullif(reason, '') AS reason,"
    "  nullif(why, '') AS why, " AT " AS at, event_id, ems, eseq"
    " FROM wxkf_arch WHERE kind IN ('assign', 'reassign', 'transfer',"
    "  'queue', 'close')),"
    " r AS (SELECT DISTINCT ON (id) * FROM ev"
    "  WHERE kind IN ('assign', 'reassign', 'transfer')"
    "  ORDER BY id, ems DESC, eseq DESC),"
    " c AS (SELECT DISTINCT ON (id) * FROM ev WHERE kind = 'close'"
    "  ORDER BY id, ems, eseq),"
    " f AS (SELECT id, min(openid) AS openid, min(at) AS opened,"
    "  min(at) FILTER (WHERE kind <> 'queue' AND kind <> 'close')"
    "   AS assigned,"
    "  (array_agg(grp ORDER BY ems, eseq) FILTER (WHERE grp IS NOT NULL))[1]"
    "   AS grp0"
    "  FROM ev WHERE id IS NOT NULL GROUP BY id) "
    "INSERT INTO sessions AS s (id, openid, agent, grp, opened_at,"
    " assigned_at, closed_at, close_reason, why, routed_by) "
    "SELECT f.id, coalesce(f.openid, ''), coalesce(r.agent, c.agent),"
    " coalesce(r.grp, f.grp0), f.opened, f.assigned, c.at, c.reason,"
    " r.why::jsonb, r.event_id "
    "FROM f LEFT JOIN r ON r.id = f.id LEFT JOIN c ON c.id = f.id "
    "ORDER BY f.id "
    "ON CONFLICT (id) DO UPDATE SET"
    " opened_at = LEAST(s.opened_at, EXCLUDED.opened_at),"
    " assigned_at = LEAST(s.assigned_at, EXCLUDED.assigned_at),"
    " close_reason = CASE WHEN EXCLUDED.closed_at IS NOT NULL AND"
    "  (s.closed_at IS NULL OR EXCLUDED.closed_at < s.closed_at)"
    "  THEN EXCLUDED.close_reason ELSE s.close_reason END,"
    " closed_at = LEAST(s.closed_at, EXCLUDED.closed_at),"
    " agent = CASE WHEN " NEWER " THEN EXCLUDED.agent"
    "  ELSE coalesce(s.agent, EXCLUDED.agent) END,"
    " grp = CASE WHEN " NEWER " THEN EXCLUDED.grp"
    "  ELSE coalesce(s.grp, EXCLUDED.grp) END,"
    " why = CASE WHEN " NEWER " THEN EXCLUDED.why ELSE s.why END,"
    " routed_by = CASE WHEN " NEWER " THEN EXCLUDED.routed_by"
    "  ELSE s.routed_by END";

static const char transfers_sql[] =
    "INSERT INTO transfers (event_id, session_id, openid, to_agent, grp,"
    " kind, reason, at) "
    "SELECT event_id, " SESS ", coalesce(openid, ''), nullif(agent, ''),"
    " nullif(grp, ''), kind, nullif(reason, ''), " AT
    " FROM wxkf_arch WHERE kind IN ('reassign', 'transfer') "
    "ON CONFLICT (event_id) DO NOTHING";

static const char presence_sql[] =
    "INSERT INTO presence_changes (event_id, agent, status, prev, reason,"
    " at) "
    "SELECT event_id, agent, status, nullif(prev, ''), nullif(reason, ''), "
    AT " FROM wxkf_arch WHERE kind = 'presence' "
    "ON CONFLICT (event_id) DO NOTHING";

static const char media_sql[] =
    "INSERT INTO media_files (event_id, message_event, media_id, openid,"
    " status, path, content_type, size, reason, errcode, errmsg, at) "
    "SELECT event_id, nullif(msg, ''), media_id, nullif(openid, ''),"
    " CASE kind WHEN 'media_stored' THEN 'stored' ELSE 'failed' END,"
    " nullif(path, ''), nullif(content_type, ''),"
    " CASE WHEN size ~ '^[0-9]{1,18}$' THEN size::bigint END,"
    " nullif(reason, ''), " INT4("errcode") ", nullif(errmsg, ''), " AT
    " FROM wxkf_arch WHERE kind IN ('media_stored', 'media_failed') "
    "ON CONFLICT (event_id) DO NOTHING";

static const char other_sql[] =
    "INSERT INTO other_events (event_id, type, openid, fields, at) "
    "SELECT event_id, coalesce(type, ''), nullif(openid, ''),"
    " fields::jsonb, " AT " FROM wxkf_arch WHERE kind = 'other' "
    "ON CONFLICT (event_id) DO NOTHING";

/* A message and its deliveries may be archived in either order, by two
 * archivers at once: each recomputes the status from every delivery
 * committed so far, under one lock, so the later transaction always sees
 * the earlier one's rows. (Any constant; migrate.c uses ...221.) */
static const char out_lock_sql[] = "SELECT pg_advisory_xact_lock(7305418222)";
static const char status_sql[] =
    "UPDATE messages m SET status = d.status, errcode = d.errcode "
    "FROM (SELECT DISTINCT ON (msgid) msgid, status, errcode"
    "      FROM deliveries WHERE msgid IN (SELECT msgid FROM wxkf_arch"
    "        WHERE kind IN ('msg_out', 'delivery') AND msgid IS NOT NULL)"
    "      ORDER BY msgid, wxkf_event_ord(event_id) DESC) d "
    "WHERE m.msgid = d.msgid AND m.direction = 'o' AND"
    " (m.status IS DISTINCT FROM d.status OR"
    "  m.errcode IS DISTINCT FROM d.errcode)";

static const struct stmt {
    unsigned kinds;
    const char *sql;
} stmts[] = {
    { BIT(K_MSG_IN) | BIT(K_MSG_OUT), messages_sql },
    { BIT(K_DELIVERY), deliveries_sql },
    { SESSION_KINDS, sessions_sql },
    { BIT(K_REASSIGN) | BIT(K_TRANSFER), transfers_sql },
    { BIT(K_PRESENCE), presence_sql },
    { BIT(K_MEDIA_STORED) | BIT(K_MEDIA_FAILED), media_sql },
    { BIT(K_OTHER), other_sql },
    { OUT_KINDS, out_lock_sql },             /* last: held briefly */
    { OUT_KINDS, status_sql },
};

static const char ensure_month_sql[] =
    "SELECT wxkf_ensure_month(timestamptz 'epoch' +"
    " $1::bigint * interval '1 millisecond')";

static const char reject_sql[] =
    "INSERT INTO archive_rejects (event_id, raw, error) VALUES ($1, $2, $3)"
    " ON CONFLICT (event_id) DO NOTHING";

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

/* --- init ---------------------------------------------------------------- */

void archive_init(struct archive *a, struct store *st,
                  const struct config *cfg)
{
    char host[64];

    memset(a, 0, sizeof(*a));
    a->store = st;
    a->dsn = cfg->postgres.dsn;
    a->enabled = cfg->archiver.enabled != 0;
    a->batch = cfg->archiver.batch;
    a->batch_ms = cfg->archiver.batch_ms;
    a->claim_idle_ms = cfg->archiver.claim_idle_ms;
    a->keep_ms = cfg->archiver.keep_ms;
    a->hold_ms = cfg->archiver.group_hold_ms;
    a->db_backoff_ms = BACKOFF_MIN_MS;
    if (gethostname(host, sizeof(host)) < 0)
        snprintf(host, sizeof(host), "host");
    host[sizeof(host) - 1] = '\0';
    snprintf(a->consumer, sizeof(a->consumer), "%s:%ld", host,
             (long)getpid());
    snprintf(a->claim_cursor, sizeof(a->claim_cursor), "0-0");
    store_script_init(&a->tidy, tidy_lua);
    kf_buf_init(&a->copy, COPY_MAX);
    kf_buf_init(&a->next, COPY_MAX);
    kf_buf_init(&a->sql, 16384);
}

static void batch_free(struct archive_batch *b);

static void db_drop(struct archive *a)
{
    pg_close(a->db);
    a->db = NULL;
}

void archive_release(struct archive *a)
{
    db_drop(a);                 /* a batch in flight is rolled back */
    batch_free(a->inflight);
    a->inflight = NULL;
    kf_buf_release(&a->copy);
    kf_buf_release(&a->next);
    kf_buf_release(&a->sql);
}

/* --- PostgreSQL: connection and errors ----------------------------------- */

/* After any PostgreSQL failure: nothing is tried again before the backoff
 * has passed (the entries wait in the stream or our pending list). */
static void db_back_off(struct archive *a)
{
    a->db_next_try_ms = kf_mono_ms() + a->db_backoff_ms;
    a->db_backoff_ms = a->db_backoff_ms * 2 > BACKOFF_MAX_MS
                           ? BACKOFF_MAX_MS : a->db_backoff_ms * 2;
}

static void note_error(struct archive *a, const struct pg_err *e)
{
    snprintf(a->sqlstate, sizeof(a->sqlstate), "%s", e->sqlstate);
    snprintf(a->error, sizeof(a->error), "%s", e->msg[0] ? e->msg : "error");
}

/* The failed statement's fault (data PostgreSQL refuses: lib/pg's
 * KF_EINVAL and KF_EEXISTS) is KF_EPARSE: the batch is split until the
 * entry is found. Anything else (connection, server, schema) is
 * KF_EBACKEND: retried later, nothing is acknowledged. */
static int db_failed(struct archive *a, const struct pg_err *e)
{
    note_error(a, e);
    if (e->lost) {
        db_drop(a);
        db_back_off(a);
        return KF_EBACKEND;
    }
    if (e->rc == KF_EINVAL || e->rc == KF_EEXISTS)
        return KF_EPARSE;
    db_back_off(a);
    return KF_EBACKEND;
}

static int db_exec(struct archive *a, const char *sql)
{
    struct pg_err e;

    if (pg_exec(a->db, sql, 0, NULL, 0, NULL, &e) == 0)
        return 0;
    return db_failed(a, &e);
}

/* One connection at a time, made here (lib/pg's PG_USE_ARCHIVER
 * timeouts), with the session's temporary table. */
static int db_ready(struct archive *a)
{
    struct pg_err e;
    int rc;

    if (kf_mono_ms() < a->db_next_try_ms)
        return KF_EBACKEND;
    if (a->db)
        return 0;
    rc = pg_open(a->dsn, "wxkf-archiver", PG_USE_ARCHIVER, &a->db, &e);
    if (rc == KF_ENOMEM)
        return rc;
    if (rc < 0) {
        note_error(a, &e);
        db_back_off(a);
        return KF_EBACKEND;
    }
    a->nmonths = 0;
    a->connects++;
    if (db_exec(a, setup_sql) < 0) {
        db_drop(a);
        return KF_EBACKEND;
    }
    return 0;
}

static void db_ok(struct archive *a)
{
    a->db_backoff_ms = BACKOFF_MIN_MS;
}

/* --- entries ------------------------------------------------------------- */

enum col {
    C_EVENT_ID, C_EMS, C_ESEQ, C_KIND, C_TS, C_TYPE, C_OPENID, C_MSGTYPE,
    C_MSGID, C_SESSION, C_AGENT, C_GRP, C_REASON, C_WHY, C_PAYLOAD,
    C_STATUS, C_PREV, C_ERRCODE, C_ERRMSG, C_SENDER, C_MEDIA_ID, C_PATH,
    C_CTYPE, C_SIZE, C_MSG, C_FIELDS, NCOLS
};

/* Stream field -> column (msgid, id, recv_ms, ts_ms are read apart). */
static const struct {
    const char *name;
    enum col col;
} field_cols[] = {
    { "type", C_TYPE }, { "openid", C_OPENID }, { "msgtype", C_MSGTYPE },
    { "session", C_SESSION }, { "agent", C_AGENT }, { "group", C_GRP },
    { "reason", C_REASON }, { "why", C_WHY }, { "payload", C_PAYLOAD },
    { "status", C_STATUS }, { "prev", C_PREV }, { "errcode", C_ERRCODE },
    { "errmsg", C_ERRMSG }, { "by", C_SENDER }, { "media_id", C_MEDIA_ID },
    { "path", C_PATH }, { "content_type", C_CTYPE }, { "size", C_SIZE },
    { "msg", C_MSG },
};

struct entry {
    struct kf_str id;
    enum kind kind;
    const redisReply *f;        /* field, value, ... (NULL: deleted) */
    struct kf_str col[NCOLS];   /* p NULL: SQL NULL */
    struct kf_str msgid, xid, recv_ms, ts_ms;
    int64_t ms, seq, ts;
    char num[3][24];            /* ems, eseq, ts as text */
    char *json;                 /* K_OTHER: the fields (malloc'd) */
    const char *why_bad;        /* K_BAD: static text */
    int done;                   /* written (or rejected): acknowledge */
};

/* Strict UTF-8 without NUL: PostgreSQL text can hold nothing else. */
static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint32_t cp;
        size_t len = kf_utf8_next(s + i, n - i, &cp);

        if (len == 0 || cp == 0)
            return 0;
        i += len;
    }
    return 1;
}

/* A decimal in 0..max that fills s. */
static int parse_num(struct kf_str s, int64_t max, int64_t *out)
{
    uint64_t v;

    if (!s.p || kf_parse_u64(s, &v) < 0 || v > (uint64_t)max)
        return 0;
    *out = (int64_t)v;
    return 1;
}

static int parse_id(struct entry *e)
{
    const char *dash = memchr(e->id.p, '-', e->id.len);

    if (!dash)
        return 0;
    return parse_num((struct kf_str){ e->id.p, (size_t)(dash - e->id.p) },
                     TS_MAX, &e->ms) &&
           parse_num((struct kf_str){ dash + 1,
                                      e->id.len - (size_t)(dash + 1 -
                                                           e->id.p) },
                     INT64_MAX, &e->seq);
}

static int is_digits(struct kf_str s, size_t max)
{
    size_t i;

    if (!s.p || s.len == 0 || s.len > max)
        return 0;
    for (i = 0; i < s.len; i++)
        if (s.p[i] < '0' || s.p[i] > '9')
            return 0;
    return 1;
}

static int nonempty(struct kf_str s)
{
    return s.p && s.len > 0;
}

static struct kf_str rstr(const redisReply *r)
{
    return (struct kf_str){ r->str, r->len };
}

static void take_field(struct entry *e, struct kf_str name,
                       struct kf_str v)
{
    size_t i;

    for (i = 0; i < sizeof(field_cols) / sizeof(field_cols[0]); i++)
        if (kf_str_eq_c(name, field_cols[i].name)) {
            if (!e->col[field_cols[i].col].p)   /* the first one wins */
                e->col[field_cols[i].col] = v;
            return;
        }
    if (kf_str_eq_c(name, "msgid") && !e->msgid.p)
        e->msgid = v;
    else if (kf_str_eq_c(name, "id") && !e->xid.p)
        e->xid = v;
    else if (kf_str_eq_c(name, "recv_ms") && !e->recv_ms.p)
        e->recv_ms = v;
    else if (kf_str_eq_c(name, "ts_ms") && !e->ts_ms.p)
        e->ts_ms = v;
}

static enum kind kind_of(struct kf_str type)
{
    int k;

    for (k = 0; k < NAMED_KINDS; k++)
        if (kf_str_eq_c(type, kind_names[k]))
            return (enum kind)k;
    return K_OTHER;
}

/* An entry missing what its table needs goes to other_events instead. */
static enum kind checked_kind(const struct entry *e, enum kind k)
{
    switch (k) {
    case K_DELIVERY:
        return nonempty(e->col[C_MSGID]) ? k : K_OTHER;
    case K_ASSIGN: case K_REASSIGN: case K_TRANSFER: case K_QUEUE:
    case K_CLOSE:
        return is_digits(e->col[C_SESSION], 18) ? k : K_OTHER;
    case K_PRESENCE:
        return nonempty(e->col[C_AGENT]) && nonempty(e->col[C_STATUS])
                   ? k : K_OTHER;
    case K_MEDIA_STORED: case K_MEDIA_FAILED:
        return nonempty(e->col[C_MEDIA_ID]) ? k : K_OTHER;
    default:
        return k;
    }
}

/* Every field as a JSON object of strings (the first of a name wins). */
static char *fields_json(const redisReply *f)
{
    json_t *o = json_object();
    char *s = NULL;
    size_t i;
    int ok = o != NULL;

    for (i = 0; ok && i + 1 < f->elements; i += 2) {
        const redisReply *n = f->element[i], *v = f->element[i + 1];
        json_t *js;

        if (n->len > NAME_MAX_LEN)
            continue;
        if (json_object_getn(o, n->str, n->len))
            continue;
        js = json_stringn(v->str, v->len);
        ok = js && json_object_setn_new(o, n->str, n->len, js) == 0;
    }
    if (ok)
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

static void set_num(struct entry *e, int i, enum col c, int64_t v)
{
    snprintf(e->num[i], sizeof(e->num[i]), "%lld", (long long)v);
    e->col[c] = kf_str_c(e->num[i]);
}

static void bad(struct entry *e, const char *why)
{
    e->kind = K_BAD;
    e->why_bad = why;
}

/* Fills e from one entry of an XREADGROUP / XAUTOCLAIM reply. Returns 0
 * if the reply element has no id at all (nothing to acknowledge). */
static int parse_entry(struct entry *e, const redisReply *el)
{
    const redisReply *f;
    size_t i;

    memset(e, 0, sizeof(*e));
    if (el->type != REDIS_REPLY_ARRAY || el->elements != 2 ||
        el->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    e->id = rstr(el->element[0]);
    f = el->element[1];
    if (!parse_id(e)) {
        bad(e, "malformed entry id");
        return 1;
    }
    if (f->type == REDIS_REPLY_NIL) {
        e->kind = K_GONE;
        return 1;
    }
    if (f->type != REDIS_REPLY_ARRAY || f->elements % 2) {
        bad(e, "malformed entry");
        return 1;
    }
    e->f = f;
    for (i = 0; i < f->elements; i++)
        if (f->element[i]->type != REDIS_REPLY_STRING ||
            !utf8_ok((const unsigned char *)f->element[i]->str,
                     f->element[i]->len)) {
            bad(e, "a field is not UTF-8 text without NUL");
            return 1;
        }
    for (i = 0; i < f->elements; i += 2)
        take_field(e, rstr(f->element[i]), rstr(f->element[i + 1]));
    e->kind = kind_of(e->col[C_TYPE]);
    e->col[C_MSGID] = e->kind == K_MSG_IN ? e->msgid : e->xid;
    e->kind = checked_kind(e, e->kind);
    if (!parse_num(e->kind == K_MSG_IN ? e->recv_ms : e->ts_ms, TS_MAX,
                   &e->ts))
        e->ts = e->ms;
    if (e->kind == K_OTHER) {
        e->json = fields_json(f);
        if (!e->json) {
            bad(e, "fields cannot be written as JSON");
            return 1;
        }
        e->col[C_FIELDS] = kf_str_c(e->json);
    }
    e->col[C_EVENT_ID] = e->id;
    e->col[C_KIND] = kf_str_c(kind_names[e->kind]);
    set_num(e, 0, C_EMS, e->ms);
    set_num(e, 1, C_ESEQ, e->seq);
    set_num(e, 2, C_TS, e->ts);
    return 1;
}

/* --- COPY text ----------------------------------------------------------- */

static int copy_value(struct kf_buf *b, struct kf_str v)
{
    size_t i, run = 0;
    int rc = 0;

    if (!v.p)
        return kf_buf_append(b, "\\N", 2);
    for (i = 0; i < v.len && rc == 0; i++) {
        const char *esc = NULL;

        switch (v.p[i]) {
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: continue;
        }
        rc = kf_buf_append(b, v.p + run, i - run);
        if (rc == 0)
            rc = kf_buf_append(b, esc, 2);
        run = i + 1;
    }
    return rc < 0 ? rc : kf_buf_append(b, v.p + run, v.len - run);
}

static int copy_row(struct kf_buf *b, const struct entry *e)
{
    int c, rc = 0;

    for (c = 0; c < NCOLS && rc == 0; c++) {
        rc = copy_value(b, e->col[c]);
        if (rc == 0)
            rc = kf_buf_append(b, c + 1 < NCOLS ? "\t" : "\n", 1);
    }
    return rc;
}

static int copy_in(struct archive *a, const struct kf_buf *data)
{
    struct pg_err e;

    if (pg_copy_in(a->db, "COPY wxkf_arch FROM STDIN", data->p, data->len,
                   &e) == 0)
        return 0;
    return db_failed(a, &e);
}

/* --- writing ------------------------------------------------------------- */

static int month_of(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (!gmtime_r(&t, &tm))
        return -1;
    return (tm.tm_year + 1900) * 12 + tm.tm_mon;
}

/* wxkf_ensure_month for each month of the batch's messages not seen yet
 * on this connection (2000 .. a year ahead; others land in the default
 * partition). Outside the batch's transaction: it may create a table. */
static int ensure_months(struct archive *a, struct entry **v, size_t n)
{
    int top = month_of(clock_ms(CLOCK_REALTIME)) + 12;
    size_t i;
    int j;

    for (i = 0; i < n; i++) {
        int m;
        const char *param;
        struct pg_err e;
        int rc = 0;

        if (v[i]->kind != K_MSG_IN && v[i]->kind != K_MSG_OUT)
            continue;
        m = month_of(v[i]->ts);
        if (m < MONTH_MIN || m > top)
            continue;
        for (j = 0; j < a->nmonths && a->months[j] != m; j++)
            ;
        if (j < a->nmonths)
            continue;
        param = v[i]->num[2];
        if (pg_exec(a->db, ensure_month_sql, 1, &param, 0, NULL, &e) < 0)
            rc = db_failed(a, &e);
        if (rc < 0)
            return rc == KF_EPARSE ? KF_EBACKEND : rc;
        if (a->nmonths == ARCHIVE_MONTHS)
            a->nmonths = 0;
        a->months[a->nmonths++] = m;
    }
    return 0;
}

static void rollback(struct archive *a)
{
    if (pg_in_transaction(a->db) &&
        pg_exec(a->db, "ROLLBACK", 0, NULL, 0, NULL, NULL) < 0)
        db_drop(a);             /* the server rolls back */
}

/* The COPY text of v[0..n) into out; *kinds gets their kinds. Too big
 * for the buffer is KF_EPARSE (split the batch). */
static int format(struct entry **v, size_t n, struct kf_buf *out,
                  unsigned *kinds)
{
    size_t i;
    int rc = 0;

    kf_buf_reset(out);
    *kinds = 0;
    for (i = 0; i < n && rc == 0; i++) {
        *kinds |= BIT(v[i]->kind);
        rc = copy_row(out, v[i]);
    }
    return rc == KF_ETOOBIG ? KF_EPARSE : rc;
}

static void mark_written(struct entry **v, size_t n, struct archive *a,
                         struct archive_stats *st)
{
    size_t i;

    for (i = 0; i < n; i++)
        v[i]->done = 1;
    st->written += (long)n;
    st->batches++;
    db_ok(a);
}

/* v[0..n) in one transaction, one statement at a time (the careful path,
 * after PostgreSQL refused a batch). KF_EPARSE: it refused the data. */
static int write_batch(struct archive *a, struct entry **v, size_t n,
                       struct archive_stats *st)
{
    unsigned kinds = 0;
    size_t i;
    int rc = db_ready(a);

    if (rc == 0)
        rc = ensure_months(a, v, n);
    if (rc == 0)
        rc = format(v, n, &a->copy, &kinds);
    if (rc == 0)
        rc = db_exec(a, "BEGIN");
    if (rc == 0)
        rc = copy_in(a, &a->copy);
    for (i = 0; i < sizeof(stmts) / sizeof(stmts[0]) && rc == 0; i++)
        if (stmts[i].kinds & kinds)
            rc = db_exec(a, stmts[i].sql);
    if (rc == 0)
        rc = db_exec(a, "COMMIT");
    if (rc < 0) {
        rollback(a);
        return rc;
    }
    mark_written(v, n, a, st);
    return 0;
}

/* The entry as netstrings: "<len>:<bytes>," per field and value. */
static int raw_entry(const struct entry *e, struct kf_buf *out)
{
    size_t i;
    int rc = 0;

    for (i = 0; e->f && i < e->f->elements && rc == 0; i++) {
        const redisReply *x = e->f->element[i];

        if (x->type != REDIS_REPLY_STRING)
            continue;
        rc = kf_buf_printf(out, "%zu:", x->len);
        if (rc == 0)
            rc = kf_buf_append(out, x->str, x->len);
        if (rc == 0)
            rc = kf_buf_append(out, ",", 1);
    }
    return rc;
}

/* Keeps an entry PostgreSQL cannot take in archive_rejects. */
static int reject(struct archive *a, struct entry *e, const char *error,
                  struct archive_stats *st)
{
    struct kf_buf raw, id;
    const char *vals[3];
    int lens[3], fmts[3] = { 0, 1, 0 };
    struct pg_err pe;
    int rc;

    kf_buf_init(&raw, COPY_MAX);
    kf_buf_init(&id, 64);
    rc = raw_entry(e, &raw);
    if (rc == 0)
        rc = kf_buf_append_str(&id, e->id);
    if (rc == 0 && !utf8_ok((const unsigned char *)id.p, id.len))
        rc = KF_EINVAL;                 /* no id we could ever store */
    if (rc == 0) {
        vals[0] = id.p;
        vals[1] = raw.p ? raw.p : "";
        vals[2] = error;
        lens[0] = (int)id.len;
        lens[1] = (int)raw.len;
        lens[2] = (int)strlen(error);
        if (pg_exec_len(a->db, reject_sql, 3, vals, lens, fmts, NULL,
                        &pe) < 0) {
            if (db_failed(a, &pe) == KF_EPARSE)
                db_back_off(a);
            rc = KF_EBACKEND;
        }
    }
    if (rc == 0 || rc == KF_EINVAL) {
        e->done = 1;
        st->rejected++;
        rc = 0;
    }
    kf_buf_release(&raw);
    kf_buf_release(&id);
    return rc;
}

/* Writes v[0..n); a batch PostgreSQL refuses is halved until the entry
 * it refuses is alone, which goes to archive_rejects. */
static int write_range(struct archive *a, struct entry **v, size_t n,
                       struct archive_stats *st)
{
    int rc = write_batch(a, v, n, st);
    char why[sizeof(a->error)];

    if (rc != KF_EPARSE)
        return rc;
    if (n == 1) {
        snprintf(why, sizeof(why), "%s", a->error);
        rc = db_ready(a);
        return rc < 0 ? rc : reject(a, v[0], why, st);
    }
    rc = write_range(a, v, n / 2, st);
    return rc < 0 ? rc : write_range(a, v + n / 2, n - n / 2, st);
}

/* --- Redis --------------------------------------------------------------- */

static int stream_key(const struct archive *a, char *out, size_t n)
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

static int group_ready(struct archive *a, const char *key)
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

/* XACK of every entry written or rejected. */
static int ack(struct archive *a, const char *key, const struct entry *e,
               size_t n)
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

/* --- the pipeline ----------------------------------------------------------
 * A batch's statements and its COMMIT go to PostgreSQL in one message and
 * are not waited for: meanwhile the next batch is read from Redis, parsed
 * and formatted. Its results are read (and its entries acknowledged) just
 * before the next batch is started, or at the end of the pass. */

struct archive_batch {
    redisReply *r;              /* owns what the entries point into */
    struct entry *e;            /* m entries; v: the `good` ones */
    struct entry **v;
    size_t m, good;
    unsigned kinds;
    int claimed;                /* taken over from another consumer */
};

static void batch_free(struct archive_batch *b)
{
    size_t i;

    if (!b)
        return;
    for (i = 0; b->e && i < b->m; i++)
        free(b->e[i].json);
    free(b->e);
    free(b->v);
    if (b->r)
        freeReplyObject(b->r);
    free(b);
}

/* Takes ownership of r (list is inside it), even on error. */
static int batch_new(redisReply *r, const redisReply *list, int claimed,
                     struct archive_batch **out)
{
    struct archive_batch *b = calloc(1, sizeof(*b));
    size_t n = list->elements, i;

    *out = NULL;
    if (!b) {
        freeReplyObject(r);
        return KF_ENOMEM;
    }
    b->r = r;
    b->claimed = claimed;
    b->e = calloc(n ? n : 1, sizeof(*b->e));
    b->v = calloc(n ? n : 1, sizeof(*b->v));
    if (!b->e || !b->v) {
        batch_free(b);
        return KF_ENOMEM;
    }
    for (i = 0; i < n; i++)
        if (parse_entry(&b->e[b->m], list->element[i]))
            b->m++;
    for (i = 0; i < b->m; i++)
        if (b->e[i].kind != K_GONE && b->e[i].kind != K_BAD)
            b->v[b->good++] = &b->e[i];
    *out = b;
    return 0;
}

/* Acknowledges what b wrote (or set aside), counts it and frees b. */
static int batch_done(struct archive *a, const char *key,
                      struct archive_batch *b, struct archive_stats *st)
{
    size_t i;
    int rc;

    for (i = 0; i < b->m; i++)
        if (b->claimed && b->e[i].done && b->e[i].kind != K_GONE)
            st->claimed++;
    rc = ack(a, key, b->e, b->m);
    batch_free(b);
    return rc;
}

/* Entries gone from the stream are acknowledged; those PostgreSQL could
 * never take are set aside (the connection must be idle). */
static int batch_odd(struct archive *a, struct archive_batch *b,
                     struct archive_stats *st)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < b->m && rc == 0; i++) {
        if (b->e[i].kind == K_GONE) {
            b->e[i].done = 1;
            st->deleted++;
        } else if (b->e[i].kind == K_BAD) {
            rc = db_ready(a);
            if (rc == 0)
                rc = reject(a, &b->e[i], b->e[i].why_bad, st);
        }
    }
    return rc;
}

/* BEGIN and COPY (waited for), then the statements and COMMIT (not). */
static int batch_start(struct archive *a, struct archive_batch *b)
{
    struct pg_err e;
    size_t i;
    int rc = ensure_months(a, b->v, b->good);

    kf_buf_reset(&a->sql);
    for (i = 0; i < sizeof(stmts) / sizeof(stmts[0]) && rc == 0; i++)
        if (stmts[i].kinds & b->kinds) {
            rc = kf_buf_append_c(&a->sql, stmts[i].sql);
            if (rc == 0)
                rc = kf_buf_append_c(&a->sql, ";\n");
        }
    if (rc == 0)
        rc = kf_buf_append_c(&a->sql, "COMMIT");
    if (rc == 0)
        rc = db_exec(a, "BEGIN");
    if (rc == 0)
        rc = copy_in(a, &a->next);
    if (rc == 0 && pg_send(a->db, a->sql.p, &e) < 0)
        rc = db_failed(a, &e);
    if (rc < 0)
        rollback(a);
    return rc;
}

/* Reads the results of the batch in flight. */
static int batch_wait(struct archive *a)
{
    struct pg_err e;
    int rc = 0;

    if (pg_collect(a->db, &e) < 0)
        rc = db_failed(a, &e);
    if (rc < 0)
        rollback(a);
    return rc;
}

/* Finishes the batch in flight, if any: its results, the careful path
 * if PostgreSQL refused it, its acknowledgement. */
static int flush(struct archive *a, const char *key, struct archive_stats *st)
{
    struct archive_batch *b = a->inflight;
    int rc, rc2;

    if (!b)
        return 0;
    a->inflight = NULL;
    rc = a->db ? batch_wait(a) : KF_EBACKEND;
    if (rc == 0)
        mark_written(b->v, b->good, a, st);
    else if (rc == KF_EPARSE)
        rc = write_range(a, b->v, b->good, st);
    rc2 = batch_done(a, key, b, st);
    return rc < 0 ? rc : rc2;
}

/* Writes the entries of one reply (an array of [id, fields]); takes
 * ownership of r, which holds list. They are acknowledged when written,
 * by this call or a later flush(). */
static int submit(struct archive *a, const char *key, redisReply *r,
                  const redisReply *list, int claimed,
                  struct archive_stats *st)
{
    struct archive_batch *b;
    int rc = batch_new(r, list, claimed, &b);

    if (rc == 0)
        rc = format(b->v, b->good, &a->next, &b->kinds);
    if (rc == 0 || rc == KF_EPARSE)
        rc = flush(a, key, st) < 0 ? KF_EBACKEND : rc;
    if (rc == 0 || rc == KF_EPARSE)
        rc = batch_odd(a, b, st) < 0 ? KF_EBACKEND : rc;
    if (rc == KF_EPARSE)                /* too big: the careful path */
        rc = write_range(a, b->v, b->good, st);
    else if (rc == 0 && b->good) {
        rc = batch_start(a, b);
        if (rc == 0) {
            a->inflight = b;
            return 0;
        }
        if (rc == KF_EPARSE)
            rc = write_range(a, b->v, b->good, st);
    }
    if (b) {
        int rc2 = batch_done(a, key, b, st);

        if (rc == 0)
            rc = rc2;
    }
    return rc;
}

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

/* Reads from `from` ("0" and after: our pending; ">": new) batch by
 * batch until fewer than a batch come back or the deadline passes. */
static int drain(struct archive *a, const char *key, const char *from,
                 int64_t deadline, struct archive_stats *st)
{
    char cursor[48], count[24];
    int pending = strcmp(from, ">") != 0;

    snprintf(cursor, sizeof(cursor), "%s", from);
    snprintf(count, sizeof(count), "%ld", a->batch);
    for (;;) {
        const char *argv[] = { "XREADGROUP", "GROUP", ARCHIVE_GROUP,
                               a->consumer, "COUNT", count, "STREAMS", key,
                               cursor };
        const redisReply *list;
        redisReply *r;
        size_t n;
        int rc = redis_cmd(a, 9, argv, NULL, &r);

        if (rc < 0)
            return rc;
        list = read_entries(r);
        n = list ? list->elements : 0;
        if (pending && n) {
            const redisReply *last = list->element[n - 1];

            if (last->type == REDIS_REPLY_ARRAY && last->elements >= 1 &&
                last->element[0]->type == REDIS_REPLY_STRING)
                snprintf(cursor, sizeof(cursor), "%s", last->element[0]->str);
        }
        if (n)
            rc = submit(a, key, r, list, 0, st);
        else
            freeReplyObject(r);
        if (rc < 0 || n < (size_t)a->batch)
            return rc;
        if (kf_mono_ms() >= deadline) {
            st->more = 1;
            return 0;
        }
    }
}

/* Takes over what other consumers left pending over claim_idle_ms. */
static int claim(struct archive *a, const char *key, int64_t deadline,
                 struct archive_stats *st)
{
    char idle[24], count[24], cursor[48];

    snprintf(idle, sizeof(idle), "%ld", a->claim_idle_ms);
    snprintf(count, sizeof(count), "%ld", a->batch);
    for (;;) {
        const char *argv[] = { "XAUTOCLAIM", key, ARCHIVE_GROUP, a->consumer,
                               idle, a->claim_cursor, "COUNT", count };
        redisReply *r;
        int rc = redis_cmd(a, 8, argv, NULL, &r);

        if (rc < 0)
            return rc;
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return KF_EBACKEND;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        if (r->element[1]->elements)
            rc = submit(a, key, r, r->element[1], 1, st);
        else
            freeReplyObject(r);
        if (rc == 0)
            snprintf(a->claim_cursor, sizeof(a->claim_cursor), "%s", cursor);
        if (rc < 0 || !strcmp(a->claim_cursor, "0-0"))
            return rc;
        if (kf_mono_ms() >= deadline) {
            st->more = 1;
            return 0;
        }
    }
}

static int64_t id_ms(const char *id)
{
    return strtoll(id, NULL, 10);
}

static int tidy(struct archive *a, const char *key, int trim,
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
            lag->age_ms = clock_ms(CLOCK_REALTIME) - lag->oldest_ms;
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

int archive_lag(struct archive *a, struct archive_lag *out)
{
    char key[160];
    long trimmed = 0;
    int rc = stream_key(a, key, sizeof(key));

    memset(out, 0, sizeof(*out));
    return rc < 0 ? rc : tidy(a, key, 0, out, &trimmed);
}

/* --- the pass ------------------------------------------------------------ */

int archive_pass(struct archive *a, struct archive_stats *st)
{
    int64_t t0 = kf_mono_ms(), deadline = t0 + a->batch_ms;
    long acked = st->written + st->rejected + st->deleted, trimmed = 0;
    char key[160];
    int rc, rc2;

    st->more = 0;
    if (!a->enabled)
        return 0;
    a->sqlstate[0] = '\0';
    rc = stream_key(a, key, sizeof(key));
    if (rc == 0)
        rc = db_ready(a);
    if (rc == 0)
        rc = group_ready(a, key);
    if (rc == 0)
        rc = drain(a, key, "0", deadline, st);
    if (rc == 0 && !st->more && t0 >= a->next_claim_ms) {
        rc = claim(a, key, deadline, st);
        a->next_claim_ms = t0 + CLAIM_EVERY_MS;
    }
    if (rc == 0 && !st->more)
        rc = drain(a, key, ">", deadline, st);
    rc2 = flush(a, key, st);
    if (rc == 0)
        rc = rc2;
    if (st->written + st->rejected + st->deleted != acked ||
        t0 >= a->next_tidy_ms) {
        rc2 = tidy(a, key, 1, &st->lag, &trimmed);
        if (rc2 == 0) {
            st->lag_known = 1;
            st->trimmed += trimmed;
            a->next_tidy_ms = t0 + TIDY_EVERY_MS;
        }
        if (rc == 0)
            rc = rc2;
    }
    if (rc < 0)
        st->errors++;
    snprintf(st->sqlstate, sizeof(st->sqlstate), "%s",
             rc < 0 ? a->sqlstate : "");
    st->last_rc = rc;
    return rc;
}
