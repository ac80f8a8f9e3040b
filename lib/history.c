/* history: reads of the archived messages from PostgreSQL. */
#include "history.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg.h"

#include "banned.h"

/* 10000-01-01T00:00:00Z in microseconds: cursors stay below it. */
#define US_END INT64_C(253402300800000000)
#define PATTERN_MAX 1024       /* escaped search text: 100 chars * 4 * 2 */

/* A timestamptz column as RFC 3339 in UTC with milliseconds. */
#define TS(c) "to_char(" c " AT TIME ZONE 'UTC', "                        \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "

/* The columns every read of messages returns, in this order. */
#define COLS                                                              \
    "id, direction, msgtype, content, media_id, status, errcode, agent, " \
    "session_id, openid, " TS("created_at") "payload::text, "             \
    "(extract(epoch FROM created_at) * 1000000)::bigint "
enum { C_ID, C_DIR, C_TYPE, C_CONTENT, C_MEDIA, C_STATUS, C_ERRCODE,
       C_AGENT, C_SESSION, C_OPENID, C_AT, C_PAYLOAD, C_US, NCOLS };

/* The columns of a closed session, in this order (the cursor: closed_at
 * and id). */
#define SCOLS                                                             \
    "id, openid, agent, grp, " TS("opened_at") TS("closed_at")            \
    "close_reason, summary, coalesce(array_to_json(labels), '[]')::text, " \
    "(extract(epoch FROM closed_at) * 1000000)::bigint "
enum { S_ID, S_OPENID, S_AGENT, S_GRP, S_OPENED, S_CLOSED, S_REASON,
       S_SUMMARY, S_LABELS, S_US, SNCOLS };

/* Prepared once per connection. Keyset conditions are row comparisons on
 * (created_at, id), which the indexes serve in order. */
static const struct stmt {
    const char *name;
    int nparams;
    const char *sql;
} stmts[] = {
    { "history_user", 4,
      "SELECT " COLS "FROM messages WHERE openid = $1 "
      "AND (created_at, id) < ($2::timestamptz, $3::bigint) "
      "ORDER BY created_at DESC, id DESC LIMIT $4::int" },
    { "history_session", 5,
      "SELECT " COLS "FROM messages WHERE session_id = $1::bigint "
      "AND openid = $2 "
      "AND (created_at, id) > ($3::timestamptz, $4::bigint) "
      "ORDER BY created_at, id LIMIT $5::int" },
    { "history_search", 4,
      "SELECT " COLS "FROM messages WHERE content ILIKE $1 "
      "AND (created_at, id) < ($2::timestamptz, $3::bigint) "
      "ORDER BY created_at DESC, id DESC LIMIT $4::int" },
    { "history_latest_session", 1,
      "SELECT id FROM sessions WHERE openid = $1 "
      "ORDER BY closed_at IS NULL DESC, opened_at DESC, id DESC LIMIT 1" },
    /* $1 the agent (NULL: every agent's), $2 an ILIKE pattern on the
     * summary (NULL: any), $3 a label's name (NULL: any) */
    { "history_closed", 6,
      "SELECT " SCOLS "FROM sessions WHERE closed_at IS NOT NULL "
      "AND ($1::text IS NULL OR agent = $1) "
      "AND ($2::text IS NULL OR summary ILIKE $2) "
      "AND ($3::text IS NULL OR labels @> ARRAY[$3::text]) "
      "AND (closed_at, id) < ($4::timestamptz, $5::bigint) "
      "ORDER BY closed_at DESC, id DESC LIMIT $6::int" },
    { "history_served", 3,
      "SELECT 1 FROM sessions WHERE id = $1::bigint AND openid = $2 "
      "AND agent = $3" },
};
#define NSTMTS (sizeof(stmts) / sizeof(stmts[0]))

void history_init(struct history *h, const char *dsn)
{
    memset(h, 0, sizeof(*h));
    h->dsn = dsn;
}

void history_release(struct history *h)
{
    pg_close(h->db);
    h->db = NULL;
}

/* --- cursors ------------------------------------------------------------ */

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding; out must hold 4 * ceil(n / 3) + 1 bytes. */
static void b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i;
    char *o = out;

    for (i = 0; i + 2 < n; i += 3) {
        *o++ = b64url[in[i] >> 2];
        *o++ = b64url[(in[i] & 3) << 4 | in[i + 1] >> 4];
        *o++ = b64url[(in[i + 1] & 15) << 2 | in[i + 2] >> 6];
        *o++ = b64url[in[i + 2] & 63];
    }
    if (n - i == 1) {
        *o++ = b64url[in[i] >> 2];
        *o++ = b64url[(in[i] & 3) << 4];
    } else if (n - i == 2) {
        *o++ = b64url[in[i] >> 2];
        *o++ = b64url[(in[i] & 3) << 4 | in[i + 1] >> 4];
        *o++ = b64url[(in[i + 1] & 15) << 2];
    }
    *o = '\0';
}

/* Decodes s into out (at most max bytes); KF_EINVAL for anything that is
 * not base64url without padding. Non-canonical trailing bits are caught
 * by the caller's re-encoding. */
static int b64url_decode(struct kf_str s, unsigned char *out, size_t max,
                         size_t *n)
{
    uint32_t acc = 0;
    size_t i, bits = 0;

    *n = 0;
    if (s.len % 4 == 1)
        return KF_EINVAL;
    for (i = 0; i < s.len; i++) {
        const char *c = s.p[i] ? memchr(b64url, s.p[i], 64) : NULL;

        if (!c)
            return KF_EINVAL;
        acc = (acc << 6 | (uint32_t)(c - b64url)) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (*n >= max)
                return KF_EINVAL;
            out[(*n)++] = (unsigned char)(acc >> bits);
        }
    }
    return 0;
}

int history_cursor_encode(const struct history_cursor *c, char *out,
                          size_t out_len)
{
    char text[48];
    int n;

    if (c->us < 0 || c->us >= US_END || c->id < 0)
        return KF_EINVAL;
    n = snprintf(text, sizeof(text), "%lld:%lld", (long long)c->us,
                 (long long)c->id);
    if (n < 0 || (size_t)n >= sizeof(text) ||
        out_len < 4 * (((size_t)n + 2) / 3) + 1)
        return KF_EINVAL;
    b64url_encode((const unsigned char *)text, (size_t)n, out);
    return 0;
}

/* A canonical decimal int64 >= 0 (no sign, no leading zero). */
static int parse_decimal(const char *p, size_t len, int64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (len == 0 || len > 19 || (len > 1 && p[0] == '0'))
        return KF_EINVAL;
    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return KF_EINVAL;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > INT64_MAX)
        return KF_EINVAL;
    *out = (int64_t)v;
    return 0;
}

int history_cursor_decode(struct kf_str s, struct history_cursor *out)
{
    unsigned char raw[48];
    char again[HISTORY_CURSOR_LEN];
    const char *colon;
    size_t n;
    int rc;

    if (s.len == 0 || s.len >= HISTORY_CURSOR_LEN)
        return KF_EINVAL;
    rc = b64url_decode(s, raw, sizeof(raw), &n);
    if (rc < 0)
        return rc;
    colon = memchr(raw, ':', n);
    if (!colon ||
        parse_decimal((const char *)raw, (size_t)(colon - (char *)raw),
                      &out->us) < 0 ||
        parse_decimal(colon + 1, n - (size_t)(colon - (char *)raw) - 1,
                      &out->id) < 0)
        return KF_EINVAL;
    rc = history_cursor_encode(out, again, sizeof(again));
    if (rc < 0 || strlen(again) != s.len || memcmp(again, s.p, s.len) != 0)
        return KF_EINVAL;
    return 0;
}

/* The cursor as statement parameters: a timestamptz literal (exact to the
 * microsecond, unlike a float) and the id. NULL: before/after every row. */
static int cursor_params(const struct history_cursor *c, int desc,
                         char *at, size_t at_len, char *id, size_t id_len)
{
    struct tm tm;
    time_t secs;
    int n;

    if (!c) {
        snprintf(at, at_len, "%s", desc ? "infinity" : "-infinity");
        snprintf(id, id_len, "%lld", desc ? (long long)INT64_MAX : -1LL);
        return 0;
    }
    if (c->us < 0 || c->us >= US_END || c->id < 0)
        return KF_EINVAL;
    secs = (time_t)(c->us / 1000000);
    if (!gmtime_r(&secs, &tm))
        return KF_EINVAL;
    n = snprintf(at, at_len, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (long long)(c->us % 1000000));
    if (n < 0 || (size_t)n >= at_len)
        return KF_EINVAL;
    snprintf(id, id_len, "%lld", (long long)c->id);
    return 0;
}

/* --- search text -------------------------------------------------------- */

/* Characters in s if it is valid UTF-8 without NUL, else -1. */
static long utf8_chars(struct kf_str s)
{
    const unsigned char *p = (const unsigned char *)s.p;
    size_t i = 0;
    long n = 0;

    while (i < s.len) {
        uint32_t cp;
        size_t len = kf_utf8_next(p + i, s.len - i, &cp);

        if (len == 0 || cp == 0)
            return -1;
        i += len;
        n++;
    }
    return n;
}

int history_like_pattern(struct kf_str text, struct kf_buf *out)
{
    long chars = utf8_chars(text);
    size_t i;
    int rc;

    if (chars < HISTORY_SEARCH_MIN || chars > HISTORY_SEARCH_MAX)
        return KF_EINVAL;
    rc = kf_buf_append(out, "%", 1);
    for (i = 0; rc == 0 && i < text.len; i++) {
        char c = text.p[i];

        if (c == '\\' || c == '%' || c == '_')
            rc = kf_buf_append(out, "\\", 1);
        if (rc == 0)
            rc = kf_buf_append(out, &c, 1);
    }
    if (rc == 0)
        rc = kf_buf_append(out, "%", 1);
    return rc;
}

/* --- the connection ----------------------------------------------------- */

/* On every new connection: a read-only session and every statement. */
static int setup(struct pg_conn *db, void *arg)
{
    size_t i;
    int rc = pg_exec(db, "SET default_transaction_read_only = on", 0, NULL,
                     0, NULL, NULL);

    (void)arg;
    for (i = 0; rc == 0 && i < NSTMTS; i++)
        rc = pg_prepare(db, stmts[i].name, stmts[i].sql, stmts[i].nparams,
                        NULL);
    return rc;
}

/* Runs a prepared statement; *out gets its rows. Connections come from
 * lib/pg (a request's timeouts; a read found on a broken connection is
 * run once more on a new one). Any failure drops the connection: the
 * next read starts on a fresh one. Every failure is KF_EBACKEND. */
static int run(struct history *h, const char *stmt, int n,
               const char *const *params, struct pg_res **out)
{
    int rc;

    *out = NULL;
    if (!h->db) {
        rc = pg_new(h->dsn, "wxkf-history", PG_USE_REQUEST, &h->db);
        if (rc < 0)
            return rc;
        pg_on_connect(h->db, setup, NULL);
    }
    rc = pg_exec_prepared(h->db, stmt, n, params, PG_RETRY, out, NULL);
    h->connects = pg_connects(h->db);
    if (rc < 0)
        pg_disconnect(h->db);
    return rc == KF_ENOMEM ? rc : rc < 0 ? KF_EBACKEND : 0;
}

/* --- rows to JSON ------------------------------------------------------- */

static int parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return KF_EIO;
    *out = (int64_t)v;
    return 0;
}

static struct kf_str value(const struct pg_res *res, int row, int col)
{
    return (struct kf_str){ pg_res_value(res, row, col),
                            pg_res_len(res, row, col) };
}

static int put(json_t *o, const char *key, json_t *v)
{
    return json_object_set_new(o, key, v) < 0 ? KF_ENOMEM : 0;
}

/* A text column as a string, null when NULL. */
static int put_text(json_t *o, const char *key, const struct pg_res *res, int row,
                    int col)
{
    struct kf_str s = value(res, row, col);

    if (pg_res_isnull(res, row, col))
        return put(o, key, json_null());
    if (utf8_chars(s) < 0)
        return KF_EIO;
    return put(o, key, json_stringn(s.p, s.len));
}

static int put_int(json_t *o, const char *key, const struct pg_res *res, int row,
                   int col)
{
    int64_t v;

    if (pg_res_isnull(res, row, col))
        return put(o, key, json_null());
    if (parse_i64(pg_res_value(res, row, col), &v) < 0)
        return KF_EIO;
    return put(o, key, json_integer((json_int_t)v));
}

/* jsonb as stored; jansson cannot hold every number jsonb can (1e400):
 * such a payload comes as its JSON text. */
static int put_payload(json_t *o, const struct pg_res *res, int row)
{
    struct kf_str s = value(res, row, C_PAYLOAD);
    json_t *v = json_loadb(s.p, s.len, JSON_DECODE_ANY, NULL);

    if (!v)
        return put_text(o, "payload", res, row, C_PAYLOAD);
    return put(o, "payload", v);
}

static int row_json(const struct pg_res *res, int i, json_t **out)
{
    const char *dir = pg_res_value(res, i, C_DIR);
    json_t *m = json_object();
    int rc = m ? 0 : KF_ENOMEM;

    if (rc == 0 && strcmp(dir, "i") != 0 && strcmp(dir, "o") != 0 &&
        strcmp(dir, "w") != 0)
        rc = KF_EIO;
    if (rc == 0)
        rc = put_int(m, "id", res, i, C_ID);
    if (rc == 0)
        rc = put_text(m, "openid", res, i, C_OPENID);
    if (rc == 0)        /* a whisper: staff's internal note, never sent */
        rc = put(m, "direction", json_string(dir[0] == 'i' ? "in"
                                             : dir[0] == 'o' ? "out"
                                                             : "whisper"));
    if (rc == 0 && dir[0] == 'w')
        rc = put(m, "whisper", json_true());
    if (rc == 0)
        rc = put_text(m, "msgtype", res, i, C_TYPE);
    if (rc == 0)
        rc = put_text(m, "content", res, i, C_CONTENT);
    if (rc == 0)
        rc = put_text(m, "media_id", res, i, C_MEDIA);
    if (rc == 0 && dir[0] == 'o')
        rc = put_text(m, "status", res, i, C_STATUS);
    if (rc == 0 && dir[0] == 'o')
        rc = put_int(m, "errcode", res, i, C_ERRCODE);
    if (rc == 0)
        rc = put_text(m, "agent", res, i, C_AGENT);
    if (rc == 0)
        rc = put_int(m, "session_id", res, i, C_SESSION);
    if (rc == 0)
        rc = put_text(m, "created_at", res, i, C_AT);
    if (rc == 0)
        rc = put_payload(m, res, i);
    if (rc < 0)
        json_decref(m);
    *out = rc < 0 ? NULL : m;
    return rc;
}

/* What a page is made of: its list's key, the columns of its rows, how a
 * row becomes JSON and which columns hold the cursor. */
struct page_kind {
    const char *key;
    int ncols;
    int (*row)(const struct pg_res *res, int i, json_t **out);
    int us_col, id_col;
};

static int session_json(const struct pg_res *res, int i, json_t **out);

static const struct page_kind messages_page = {
    "messages", NCOLS, row_json, C_US, C_ID
};
static const struct page_kind sessions_page = {
    "sessions", SNCOLS, session_json, S_US, S_ID
};

static int row_cursor(const struct pg_res *res, int i,
                      const struct page_kind *k, json_t **out)
{
    struct history_cursor c;
    char text[HISTORY_CURSOR_LEN];

    if (parse_i64(pg_res_value(res, i, k->us_col), &c.us) < 0 ||
        parse_i64(pg_res_value(res, i, k->id_col), &c.id) < 0 ||
        history_cursor_encode(&c, text, sizeof(text)) < 0)
        return KF_EIO;
    *out = json_string(text);
    return *out ? 0 : KF_ENOMEM;
}

/* {"<key>":[...],"next":...} from up to limit + 1 rows: the extra row
 * only says that there is more. */
static int page_json(const struct pg_res *res, const struct page_kind *k,
                     long limit, json_t **out)
{
    int n = pg_res_rows(res), i, rc = 0;
    json_t *page = json_object(), *list = json_array(), *m;

    if (!page || !list) {
        json_decref(list);
        rc = KF_ENOMEM;
        goto out;
    }
    rc = put(page, k->key, list);
    if (rc == 0 && pg_res_fields(res) != k->ncols)
        rc = KF_EIO;
    for (i = 0; rc == 0 && i < n && i < limit; i++) {
        rc = k->row(res, i, &m);
        if (rc == 0 && json_array_append_new(list, m) < 0)
            rc = KF_ENOMEM;
    }
    if (rc == 0 && n > limit)
        rc = row_cursor(res, (int)limit - 1, k, &m);
    else if (rc == 0)
        m = json_null();
    if (rc == 0)
        rc = put(page, "next", m);
out:
    if (rc < 0)
        json_decref(page);
    *out = rc < 0 ? NULL : page;
    return rc;
}

/* A closed session: {"id","openid","agent","group","opened_at",
 * "closed_at","close_reason","summary","labels"}. */
static int session_json(const struct pg_res *res, int i, json_t **out)
{
    static const struct { const char *key; int col; } text[] = {
        { "openid", S_OPENID }, { "agent", S_AGENT }, { "group", S_GRP },
        { "opened_at", S_OPENED }, { "closed_at", S_CLOSED },
        { "close_reason", S_REASON }, { "summary", S_SUMMARY },
    };
    json_t *o = json_object();
    int rc = o ? put_int(o, "id", res, i, S_ID) : KF_ENOMEM;
    size_t k;

    for (k = 0; rc == 0 && k < sizeof(text) / sizeof(text[0]); k++)
        rc = put_text(o, text[k].key, res, i, text[k].col);
    if (rc == 0) {
        json_t *l = json_loads(pg_res_value(res, i, S_LABELS), 0, NULL);

        rc = json_is_array(l) ? put(o, "labels", l) : KF_EIO;
        if (rc == KF_EIO)
            json_decref(l);
    }
    if (rc < 0)
        json_decref(o);
    *out = rc < 0 ? NULL : o;
    return rc;
}

/* --- the reads ---------------------------------------------------------- */

static int copy_openid(struct kf_str openid, char *out, size_t out_len)
{
    if (openid.len == 0 || openid.len > 64 || openid.len >= out_len ||
        memchr(openid.p, '\0', openid.len))
        return KF_EINVAL;
    memcpy(out, openid.p, openid.len);
    out[openid.len] = '\0';
    return 0;
}

/* Runs stmt (whose last three parameters are the cursor and the limit)
 * and makes the page. */
static int read_page(struct history *h, const char *stmt,
                     const struct page_kind *k, const char **params, int n,
                     const struct history_cursor *c, int desc, long limit,
                     json_t **out)
{
    char at[48], id[24], lim[24];
    struct pg_res *res = NULL;
    int rc = cursor_params(c, desc, at, sizeof(at), id, sizeof(id));

    if (rc < 0)
        return rc;
    snprintf(lim, sizeof(lim), "%ld", limit + 1);
    params[n - 3] = at;
    params[n - 2] = id;
    params[n - 1] = lim;
    rc = run(h, stmt, n, params, &res);
    if (rc == 0)
        rc = page_json(res, k, limit, out);
    pg_res_free(res);
    return rc;
}

int history_user_page(struct history *h, struct kf_str openid,
                      const struct history_cursor *before, long limit,
                      json_t **out)
{
    char o[72];
    const char *params[4] = { o };

    *out = NULL;
    if (limit < 1 || limit > HISTORY_PAGE_MAX ||
        copy_openid(openid, o, sizeof(o)) < 0)
        return KF_EINVAL;
    return read_page(h, "history_user", &messages_page, params, 4, before, 1,
                     limit, out);
}

/* The user's current session, else its latest. */
static int latest_session(struct history *h, const char *openid,
                          int64_t *out)
{
    const char *params[1] = { openid };
    struct pg_res *res = NULL;
    int rc = run(h, "history_latest_session", 1, params, &res);

    if (rc == 0 && pg_res_rows(res) != 1)
        rc = KF_ENOTFOUND;
    else if (rc == 0)
        rc = parse_i64(pg_res_value(res, 0, 0), out);
    pg_res_free(res);
    return rc;
}

int history_transcript(struct history *h, struct kf_str openid,
                       int64_t session_id, const struct history_cursor *after,
                       long limit, json_t **out)
{
    char o[72], sid[24];
    const char *params[5] = { sid, o };
    int rc;

    *out = NULL;
    if (limit < 1 || limit > HISTORY_TRANSCRIPT_MAX || session_id < 0 ||
        copy_openid(openid, o, sizeof(o)) < 0)
        return KF_EINVAL;
    rc = session_id ? 0 : latest_session(h, o, &session_id);
    if (rc < 0)
        return rc;
    snprintf(sid, sizeof(sid), "%lld", (long long)session_id);
    rc = read_page(h, "history_session", &messages_page, params, 5, after, 0,
                   limit, out);
    if (rc == 0)
        rc = put(*out, "session_id", json_integer((json_int_t)session_id));
    if (rc < 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

int history_search(struct history *h, struct kf_str text,
                   const struct history_cursor *before, long limit,
                   json_t **out)
{
    struct kf_buf pattern;
    const char *params[4];
    int rc;

    *out = NULL;
    if (limit < 1 || limit > HISTORY_PAGE_MAX)
        return KF_EINVAL;
    kf_buf_init(&pattern, PATTERN_MAX);
    rc = history_like_pattern(text, &pattern);
    if (rc == KF_ETOOBIG)
        rc = KF_EINVAL;
    if (rc == 0) {
        params[0] = pattern.p;
        rc = read_page(h, "history_search", &messages_page, params, 4,
                       before, 1, limit, out);
    }
    kf_buf_release(&pattern);
    return rc;
}

int history_closed(struct history *h, const char *agent, struct kf_str text,
                   const char *label, const struct history_cursor *before,
                   long limit, json_t **out)
{
    struct kf_buf pattern;
    const char *params[6] = { agent, NULL, label };
    int rc = 0;

    *out = NULL;
    if (limit < 1 || limit > HISTORY_PAGE_MAX ||
        (agent && (!*agent || strlen(agent) > 64)) ||
        (label && (!*label || strlen(label) > 80)))
        return KF_EINVAL;
    kf_buf_init(&pattern, PATTERN_MAX);
    if (text.len > 0) {
        rc = history_like_pattern(text, &pattern);
        if (rc == KF_ETOOBIG)
            rc = KF_EINVAL;
        params[1] = pattern.p;
    }
    if (rc == 0)
        rc = read_page(h, "history_closed", &sessions_page, params, 6,
                       before, 1, limit, out);
    kf_buf_release(&pattern);
    return rc;
}

int history_served(struct history *h, struct kf_str openid,
                   int64_t session_id, const char *agent)
{
    char o[72], sid[24];
    const char *params[3] = { sid, o, agent };
    struct pg_res *res = NULL;
    int rc;

    if (session_id < 1 || !agent || !*agent ||
        copy_openid(openid, o, sizeof(o)) < 0)
        return KF_EINVAL;
    snprintf(sid, sizeof(sid), "%lld", (long long)session_id);
    rc = run(h, "history_served", 3, params, &res);
    if (rc == 0 && pg_res_rows(res) != 1)
        rc = KF_ENOTFOUND;
    pg_res_free(res);
    return rc;
}
