/* user_profile: who a user is (user/info look-ups, display name, remark,
 * notes, the profile page). */
#include "user_profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "lua.h"
#include "stream_group.h"
#include "wx_api.h"

#include "banned.h"

/* A timestamptz column as RFC 3339 UTC with milliseconds (NULL stays
 * NULL). */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', " \
                "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define NOTE_JSON(t)                                                     \
    "json_build_object('id', " t ".id, 'author', " t ".author, 'body', " \
    t ".body, 'created_at', " TS(t ".created_at") ", 'updated_at', "     \
    TS(t ".updated_at") ")"

void user_profile_init(struct user_profile *p, const char *dsn,
                       const char *app_id, enum pg_use use)
{
    memset(p, 0, sizeof(*p));
    p->dsn = dsn;
    p->app_id = app_id;
    p->use = use;
}

void user_profile_release(struct user_profile *p)
{
    pg_close(p->db);
    p->db = NULL;
}

int user_profile_text_ok(const char *s, size_t min, size_t max)
{
    if (kf_text_check(s, max, 0) < 0)
        return KF_EINVAL;
    return min > 0 && !*s ? KF_EINVAL : 0;
}

/* Copies j's member name into o when it is a string of at most max bytes
 * of valid text. */
static int keep_str(json_t *o, json_t *j, const char *name, size_t max)
{
    json_t *v = json_object_get(j, name);
    const char *s = json_string_value(v);

    if (!s || strlen(s) > max || user_profile_text_ok(s, 0, max) < 0)
        return 0;
    return json_object_set(o, name, v) < 0 ? KF_ENOMEM : 0;
}

static int keep_int(json_t *o, json_t *j, const char *name)
{
    json_t *v = json_object_get(j, name);

    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    return json_object_set(o, name, v) < 0 ? KF_ENOMEM : 0;
}

int user_profile_parse_info(json_t *j, json_t **out)
{
    json_t *o, *tags, *t, *mine = NULL;
    size_t i;
    int rc = 0;

    *out = NULL;
    if (!json_is_object(j))
        return KF_EPARSE;
    o = json_object();
    if (!o)
        return KF_ENOMEM;
    t = json_object_get(j, "subscribe");
    if (json_is_integer(t))
        rc = json_object_set_new(o, "subscribe",
                                 json_boolean(json_integer_value(t) == 1));
    if (rc == 0)
        rc = keep_int(o, j, "subscribe_time");
    if (rc == 0)
        rc = keep_str(o, j, "subscribe_scene", 64);
    if (rc == 0)
        rc = keep_str(o, j, "language", 32);
    if (rc == 0)
        rc = keep_str(o, j, "unionid", 64);
    if (rc == 0)
        rc = keep_str(o, j, "remark", 128);
    if (rc == 0)
        rc = keep_int(o, j, "qr_scene");
    if (rc == 0)
        rc = keep_str(o, j, "qr_scene_str", 128);
    tags = json_object_get(j, "tagid_list");
    if (rc == 0 && json_is_array(tags)) {
        mine = json_array();
        if (!mine)
            rc = KF_ENOMEM;
        json_array_foreach(tags, i, t) {
            if (rc < 0 || i >= 100)
                break;
            if (json_is_integer(t) && json_array_append(mine, t) < 0)
                rc = KF_ENOMEM;
        }
        if (rc == 0 && json_object_set_new(o, "tagid_list", mine) < 0)
            rc = KF_ENOMEM;
        mine = NULL;
    }
    if (rc < 0) {
        json_decref(mine);
        json_decref(o);
        return rc;
    }
    *out = o;
    return 0;
}

/* --- PostgreSQL --------------------------------------------------------- */

static int run(struct user_profile *p, const char *sql, int n,
               const char *const *params, unsigned flags,
               struct pg_res **res)
{
    struct pg_err e;
    int rc;

    if (!p->db) {
        rc = pg_new(p->dsn, "wxkf-profile", p->use, &p->db);
        if (rc < 0)
            return rc;
    }
    rc = pg_exec(p->db, sql, n, params, flags, res, &e);
    if (rc == KF_EIO || rc == KF_EBACKEND)
        return KF_EBACKEND;
    return rc;
}

/* The first column of the first row as JSON (a JSON text or NULL). */
static int one_json(struct user_profile *p, const char *sql, int n,
                    const char *const *params, unsigned flags, json_t **out)
{
    struct pg_res *res = NULL;
    int rc = run(p, sql, n, params, flags, &res);

    *out = NULL;
    if (rc == 0 && pg_res_rows(res) == 1 && !pg_res_isnull(res, 0, 0)) {
        *out = json_loadb(pg_res_value(res, 0, 0), pg_res_len(res, 0, 0), 0,
                          NULL);
        if (!*out)
            rc = KF_EIO;
    }
    pg_res_free(res);
    return rc;
}

/* openid as a NUL-terminated copy (buf: 65 bytes); KF_EINVAL if bad. */
static int openid_c(struct kf_str s, char *buf)
{
    if (!kf_openid_ok(s))
        return KF_EINVAL;
    memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    return 0;
}

static const char page_sql[] =
    "SELECT json_build_object("
    "'openid', $2::text,"
    "'display_name', u.display_name, 'remark', u.remark, 'info', u.info,"
    "'fetched_at', " TS("u.fetched_at") ","
    "'fetch_error', CASE WHEN u.fetch_errcode IS NULL THEN NULL ELSE "
    "json_build_object('errcode', u.fetch_errcode, 'errmsg', u.fetch_error)"
    " END,"
    "'updated_at', " TS("u.updated_at") ","
    "'notes', coalesce((SELECT json_agg(" NOTE_JSON("n")
    " ORDER BY n.created_at DESC, n.id DESC) FROM (SELECT * FROM user_notes "
    "WHERE app_id = $1 AND openid = $2 ORDER BY created_at DESC, id DESC "
    "LIMIT $3::int) n), '[]'::json),"
    "'sessions', coalesce((SELECT json_agg(json_build_object("
    "'id', s.id, 'opened_at', " TS("s.opened_at") ", 'closed_at', "
    TS("s.closed_at") ", 'agent', s.agent, 'agent_nick', a.nick, "
    "'close_reason', s.close_reason, 'summary', s.summary, 'labels', "
    "coalesce(to_json(s.labels), '[]'::json), 'messages', (SELECT count(*) FROM "
    "messages m WHERE m.session_id = s.id AND m.openid = s.openid "
    "AND m.direction <> 'w')) "
    "ORDER BY s.opened_at DESC, s.id DESC) FROM (SELECT * FROM sessions "
    "WHERE openid = $2 ORDER BY opened_at DESC, id DESC LIMIT $4::int) s "
    "LEFT JOIN agents a ON a.account = s.agent), '[]'::json))::text "
    "FROM (SELECT 1) one LEFT JOIN user_profiles u "
    "ON u.app_id = $1 AND u.openid = $2";

int user_profile_page(struct user_profile *p, struct kf_str openid,
                      json_t **out)
{
    char o[65], nn[16], ns[16];
    const char *params[4] = { p->app_id, o, nn, ns };
    int rc = openid_c(openid, o);

    *out = NULL;
    if (rc < 0)
        return rc;
    snprintf(nn, sizeof(nn), "%d", PROFILE_NOTES_MAX);
    snprintf(ns, sizeof(ns), "%d", PROFILE_SESSIONS_MAX);
    rc = one_json(p, page_sql, 4, params, PG_RETRY, out);
    if (rc == 0 && !*out)
        rc = KF_EIO;
    return rc;
}

int user_profile_served(struct user_profile *p, struct kf_str openid,
                   const char *agent, int *yes)
{
    char o[65];
    const char *params[2] = { o, agent };
    struct pg_res *res = NULL;
    int rc = openid_c(openid, o);

    *yes = 0;
    if (rc < 0)
        return rc;
    /* the session's latest agent, one it was transferred to, or the
     * agent of a message (a session's first agent before a transfer) */
    rc = run(p, "SELECT 1 FROM sessions WHERE openid = $1 AND agent = $2 "
             "UNION ALL SELECT 1 FROM transfers WHERE openid = $1 AND "
             "to_agent = $2 UNION ALL (SELECT 1 FROM messages WHERE "
             "openid = $1 AND agent = $2 LIMIT 1) LIMIT 1", 2, params,
             PG_RETRY, &res);
    if (rc == 0)
        *yes = pg_res_rows(res) > 0;
    pg_res_free(res);
    return rc;
}

void user_profile_audit(struct user_profile *p, const struct audit *au)
{
    p->audit = au;
}

/* The audit row's who, role, address and request id: the request's
 * record, else actor alone (SQL NULLs). */
static void who_params(const struct user_profile *p, const char *actor,
                       const char *out[4])
{
    const struct audit *a = p->audit;

    out[0] = a ? a->actor : actor;
    out[1] = a ? a->role : NULL;
    out[2] = a && a->ip[0] ? a->ip : NULL;
    out[3] = a && a->request_id[0] ? a->request_id : NULL;
}

/* Sets one column of the profile (col is a constant of ours) and writes
 * the audit row, in one statement. */
static int set_field(struct user_profile *p, const char *sql,
                     struct kf_str openid, const char *value,
                     const char *actor)
{
    char o[65];
    const char *params[7] = { p->app_id, o, value && *value ? value : NULL };
    int rc = openid_c(openid, o);

    if (rc < 0)
        return rc;
    who_params(p, actor, params + 3);
    return run(p, sql, 7, params, 0, NULL);
}

#define SET_SQL(col, action)                                              \
    "WITH u AS (INSERT INTO user_profiles (app_id, openid, " col ") "     \
    "VALUES ($1, $2, $3) ON CONFLICT (app_id, openid) DO UPDATE SET "     \
    col " = EXCLUDED." col ", updated_at = now() RETURNING openid) "      \
    AUDIT_LOG_INSERT "SELECT $1, $4, $5, $6, $7, '"                     \
    action "', u.openid, json_build_object('app_id', $1::text, '" col     \
    "', $3::text) FROM u"

int user_profile_set_name(struct user_profile *p, struct kf_str openid,
                     const char *name, const char *actor)
{
    if (name && user_profile_text_ok(name, 0, PROFILE_NAME_MAX) < 0)
        return KF_EINVAL;
    return set_field(p, SET_SQL("display_name", "user.display_name"), openid,
                     name, actor);
}

int user_profile_set_remark(struct user_profile *p, struct wx_api *api,
                       struct kf_str openid, const char *remark,
                       const char *actor, struct wx_api_result *res)
{
    char o[65];
    json_t *body;
    int rc = openid_c(openid, o);

    if (rc < 0 || !remark ||
        user_profile_text_ok(remark, 0, PROFILE_REMARK_MAX) < 0)
        return KF_EINVAL;
    body = json_pack("{s:s,s:s}", "openid", o, "remark", remark);
    if (!body)
        return KF_ENOMEM;
    rc = wx_api_call(api, "POST", "/cgi-bin/user/info/updateremark", NULL,
                     body, res);
    json_decref(body);
    if (rc < 0)
        return rc;
    return set_field(p, SET_SQL("remark", "user.remark"), openid, remark,
                     actor);
}

int user_profile_note_add(struct user_profile *p, struct kf_str openid,
                     const char *author, const char *body, json_t **out)
{
    char o[65];
    const char *params[8] = { p->app_id, o, author, body };
    json_t *n = NULL;
    int rc = openid_c(openid, o);

    who_params(p, author, params + 4);
    if (out)
        *out = NULL;
    if (rc < 0 || user_profile_text_ok(body, 1, PROFILE_NOTE_MAX) < 0)
        return KF_EINVAL;
    rc = one_json(p,
        "WITH n AS (INSERT INTO user_notes (app_id, openid, author, body) "
        "VALUES ($1, $2, $3, $4) RETURNING *), "
        "a AS (" AUDIT_LOG_INSERT "SELECT $1, $5, $6, $7, $8, "
        "'user_note.add', n.openid, json_build_object('app_id', "
        "$1::text, 'note', n.id, 'body', n.body) FROM n) "
        "SELECT " NOTE_JSON("n") "::text FROM n", 8, params, 0, &n);
    if (rc == 0 && !n)
        rc = KF_EIO;
    if (rc == 0 && out)
        *out = n;
    else
        json_decref(n);
    return rc;
}

/* Edits (body) or deletes (body NULL) note id of openid. The statement
 * answers the note's author ("" when there is no such note) and, when
 * the change was made, the note. */
static int note_change(struct user_profile *p, struct kf_str openid,
                       int64_t id, const char *actor, int admin,
                       const char *body, json_t **out,
                       const struct refusal **why)
{
    static const char edit[] =
        "WITH n AS (SELECT id, author FROM user_notes WHERE app_id = $1 "
        "AND openid = $2 AND id = $3::bigint), "
        "u AS (UPDATE user_notes t SET body = $10, updated_at = now() "
        "FROM n WHERE t.id = n.id AND ($5::boolean OR t.author = $4) "
        "RETURNING t.*), "
        "a AS (" AUDIT_LOG_INSERT "SELECT $1, $6, $7, $8, $9, "
        "'user_note.edit', u.openid, json_build_object('app_id', "
        "$1::text, 'note', u.id, 'author', u.author, 'body', u.body) "
        "FROM u) "
        "SELECT json_build_object('author', (SELECT author FROM n), "
        "'note', (SELECT " NOTE_JSON("u") " FROM u))::text";
    static const char del[] =
        "WITH n AS (SELECT id, author FROM user_notes WHERE app_id = $1 "
        "AND openid = $2 AND id = $3::bigint), "
        "u AS (DELETE FROM user_notes t USING n WHERE t.id = n.id AND "
        "($5::boolean OR t.author = $4) RETURNING t.*), "
        "a AS (" AUDIT_LOG_INSERT "SELECT $1, $6, $7, $8, $9, "
        "'user_note.delete', u.openid, json_build_object("
        "'app_id', $1::text, 'note', u.id, 'author', u.author, 'body', "
        "u.body) FROM u) "
        "SELECT json_build_object('author', (SELECT author FROM n), "
        "'note', (SELECT " NOTE_JSON("u") " FROM u))::text";
    char o[65], ids[24];
    const char *params[10] = { p->app_id, o, ids, actor,
                               admin ? "true" : "false" };
    json_t *r = NULL, *note;
    int rc = openid_c(openid, o);

    if (out)
        *out = NULL;
    if (rc < 0 || id < 1 ||
        (body && user_profile_text_ok(body, 1, PROFILE_NOTE_MAX) < 0))
        return KF_EINVAL;
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    who_params(p, actor, params + 5);
    params[9] = body;
    rc = one_json(p, body ? edit : del, body ? 10 : 9, params, 0, &r);
    if (rc == 0 && !r)
        rc = KF_EIO;
    if (rc < 0)
        return rc;
    note = json_object_get(r, "note");
    if (!json_is_string(json_object_get(r, "author"))) {
        rc = KF_ENOTFOUND;
    } else if (!json_is_object(note)) {
        *why = refusal_get(REFUSAL_NOT_AUTHOR);
        rc = (*why)->rc;
    } else if (out) {
        *out = json_incref(note);
    }
    json_decref(r);
    return rc;
}

int user_profile_note_edit(struct user_profile *p, struct kf_str openid,
                           int64_t id, const char *actor, int admin,
                           const char *body, json_t **out,
                           const struct refusal **why)
{
    if (!body)
        return KF_EINVAL;
    return note_change(p, openid, id, actor, admin, body, out, why);
}

int user_profile_note_delete(struct user_profile *p, struct kf_str openid,
                             int64_t id, const char *actor, int admin,
                             const struct refusal **why)
{
    return note_change(p, openid, id, actor, admin, NULL, NULL, why);
}

/* --- `wxkf jobs` -------------------------------------------------------- */

void user_profile_jobs_init(struct user_profile_jobs *j,
                            struct user_profile *p, struct store *st,
                            struct wx_api *api)
{
    memset(j, 0, sizeof(*j));
    j->p = p;
    j->store = st;
    j->api = api;
    store_script_init(&j->script, lua_user_profile);
    snprintf(j->consumer, sizeof(j->consumer), "jobs-%ld", (long)getpid());
    j->forget_ms = PROFILE_FORGET_MS;
    user_tags_script_init(&j->tags);
}

/* 1 in *fresh when openid was looked up successfully within a day. */
static int is_fresh(struct user_profile *p, const char *openid, int *fresh)
{
    const char *params[2] = { p->app_id, openid };
    struct pg_res *res = NULL;
    int rc = run(p, "SELECT 1 FROM user_profiles WHERE app_id = $1 AND "
                 "openid = $2 AND fetched_at > now() - interval '1 day'",
                 2, params, PG_RETRY, &res);

    *fresh = rc == 0 && pg_res_rows(res) > 0;
    pg_res_free(res);
    return rc;
}

/* Keeps a look-up's outcome: info (a JSON text) or WeChat's error. The
 * remark WeChat has becomes the profile's (cut to PROFILE_REMARK_MAX
 * characters, the column's CHECK, should WeChat ever hold a longer one). */
static int keep(struct user_profile *p, const char *openid, const char *info,
                const char *errcode, const char *errmsg)
{
    const char *params[5] = { p->app_id, openid, info, errcode, errmsg };

    return run(p,
        "INSERT INTO user_profiles (app_id, openid, info, remark, "
        "fetched_at, fetch_errcode, fetch_error) VALUES ($1, $2, "
        "$3::jsonb, left($3::jsonb ->> 'remark', 30), now(), $4::int, $5) "
        "ON CONFLICT (app_id, openid) DO UPDATE SET "
        "info = coalesce(EXCLUDED.info, user_profiles.info), "
        "remark = CASE WHEN EXCLUDED.info IS NULL THEN user_profiles.remark "
        "ELSE EXCLUDED.remark END, fetched_at = now(), "
        "fetch_errcode = EXCLUDED.fetch_errcode, "
        "fetch_error = EXCLUDED.fetch_error, updated_at = now()",
        5, params, 0, NULL);
}

static int settle(struct user_profile_jobs *j, const char *op,
                  const char *openid, int64_t now_ms)
{
    char now[24], base[24], max[24];
    const char *args[5] = { op, openid, now, base, max };

    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(base, sizeof(base), "%d", PROFILE_RETRY_MS);
    snprintf(max, sizeof(max), "%lld", (long long)PROFILE_RETRY_MAX_MS);
    return store_run(j->store, &j->script, 0, NULL,
                     strcmp(op, "done") == 0 ? 2 : 5, args, NULL, NULL);
}

/* Notes when info's tagid_list names an id the kept tag list lacks. */
static int note_unknown_tags(struct user_profile_jobs *j, json_t *info)
{
    json_t *ids = json_object_get(info, "tagid_list"), *named = NULL;
    int unknown = 0, rc;

    if (json_array_size(ids) == 0)
        return 0;
    rc = user_tags_name(j->store, &j->tags, ids, &named, &unknown);
    json_decref(named);
    if (rc == 0 && unknown > 0)
        j->tags_unknown = 1;
    return rc;
}

/* Fetches the account's tag list (tags/get) when it is due. A failure
 * of WeChat's is counted, not returned: the list is due again a minute
 * later (user_tags_due noted the attempt). */
static int refresh_tags(struct user_profile_jobs *j, int64_t now_ms,
                        struct user_profile_counts *c)
{
    struct wx_api_result res;
    struct user_tags *t;
    int due, rc = user_tags_due(j->store, &j->tags, now_ms, j->tags_unknown,
                                &due);

    if (rc < 0 || !due)
        return rc;
    j->tags_unknown = 0;
    t = malloc(sizeof(*t));
    if (!t)
        return KF_ENOMEM;
    wx_api_result_init(&res);
    rc = wx_api_call(j->api, "GET", "/cgi-bin/tags/get", NULL, NULL, &res);
    if (rc == 0)
        rc = user_tags_parse(res.body, t);
    if (rc == 0) {
        rc = user_tags_put(j->store, &j->tags, t, now_ms);
        if (rc == 0)
            c->tags++;
    } else {
        c->tags_failed++;
        rc = 0;
    }
    wx_api_result_release(&res);
    free(t);
    return rc;
}

/* Looks one user up; the outcome settles it (done or later). */
static int look_up(struct user_profile_jobs *j, const char *openid,
                   int64_t now_ms, struct user_profile_counts *c)
{
    struct wx_api_result res;
    char q[128], code[24];
    json_t *info = NULL;
    char *text = NULL;
    int fresh, rc = is_fresh(j->p, openid, &fresh);

    if (rc == 0 && fresh) {
        c->fresh++;
        return settle(j, "done", openid, now_ms);
    }
    wx_api_result_init(&res);
    if (rc == 0) {
        snprintf(q, sizeof(q), "openid=%s&lang=zh_CN", openid);
        rc = wx_api_call(j->api, "GET", "/cgi-bin/user/info", q, NULL, &res);
    }
    if (rc == 0) {
        rc = user_profile_parse_info(res.body, &info);
        if (rc == 0) {
            text = json_dumps(info, JSON_COMPACT);
            rc = text ? keep(j->p, openid, text, NULL, NULL) : KF_ENOMEM;
        }
        if (rc == 0)
            rc = note_unknown_tags(j, info);
    } else if (rc == KF_EWECHAT && !res.transient) {
        snprintf(code, sizeof(code), "%ld", res.errcode);
        kf_utf8_trim(res.errmsg);
        rc = keep(j->p, openid, NULL, code, res.errmsg);
        if (rc == 0) {
            c->failed++;
            rc = KF_EWECHAT;
        }
    }
    free(text);
    json_decref(info);
    wx_api_result_release(&res);
    if (rc == 0)
        c->fetched++;
    if (rc == 0 || rc == KF_EWECHAT)
        return settle(j, "done", openid, now_ms);
    c->retried++;
    return settle(j, "later", openid, now_ms);
}

int user_profile_jobs_pass(struct user_profile_jobs *j, int64_t now_ms,
                           long limit, struct user_profile_counts *c)
{
    char n[24], now[24], lease[24], idle[24];
    const char *args[8] = { "take", PROFILE_GROUP, j->consumer, n, now,
                            lease, KF_XSTR(PROFILE_READ_MAX), idle };
    struct store_reply *r = NULL;
    const struct store_reply *list;
    struct kf_str cursor;
    int64_t queued;
    size_t i;
    int rc;

    snprintf(n, sizeof(n), "%ld", limit);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(lease, sizeof(lease), "%d", PROFILE_LEASE_MS);
    /* a consumer idle that long is gone: its entries are claimed, then
     * it is forgotten (below) */
    snprintf(idle, sizeof(idle), "%ld", j->forget_ms);
    rc = store_run(j->store, &j->script, 0, NULL, 8, args, NULL, &r);
    if (rc < 0)
        return rc;
    list = store_reply_at(r, 1);
    if (store_reply_len(r) != 3 || store_reply_at_int(r, 0, &queued) < 0 ||
        store_reply_type(list) != STORE_ARRAY ||
        store_reply_at_str(r, 2, &cursor) < 0) {
        store_reply_free(r);
        return KF_EBACKEND;
    }
    /* nothing left to claim: the idle consumers hold nothing */
    if (kf_str_eq_c(cursor, "0-0"))
        rc = stream_group_forget(j->store, PROFILE_GROUP, j->consumer,
                                 j->forget_ms, NULL);
    c->queued += (long)queued;
    for (i = 0; i < store_reply_len(list) && rc == 0; i++) {
        const char *o = store_reply_at_text(list, i);

        if (!kf_openid_ok((struct kf_str){ o, strlen(o) })) {
            if (*o)
                rc = settle(j, "done", o, now_ms);
            continue;
        }
        rc = look_up(j, o, now_ms, c);
    }
    store_reply_free(r);
    if (rc == 0)
        rc = refresh_tags(j, now_ms, c);
    return rc;
}
