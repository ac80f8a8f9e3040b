/* archive_sql: the PostgreSQL half of lib/archive. */
#include "archive_sql.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pg.h"

#include "banned.h"

#define BACKOFF_MAX_MS 5000
#define MONTH_MIN (2000 * 12)       /* partitions only from 2000 on */

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
    " content_type text, size text, msg text, note text, marker text,"
    " fields text"
    ") ON COMMIT DELETE ROWS";

#define AT "(timestamptz 'epoch' + ts * interval '1 millisecond')"
#define SESS "(CASE WHEN session ~ '^[0-9]{1,18}$' THEN session::bigint END)"
#define INT4(c) "(CASE WHEN " c " ~ '^-?[0-9]{1,9}$' THEN " c "::integer END)"

#define BIT(k) ARCHIVE_ENTRY_BIT(ARCHIVE_ENTRY_##k)
#define SESSION_KINDS (BIT(ASSIGN) | BIT(REASSIGN) | BIT(TRANSFER) | \
                       BIT(QUEUE) | BIT(CLOSE))
#define OUT_KINDS (BIT(MSG_OUT) | BIT(DELIVERY))

static const char messages_sql[] =
    "INSERT INTO messages (event_id, msgid, session_id, openid, agent,"
    " direction, msgtype, content, media_id, status, payload, created_at) "
    "SELECT event_id, nullif(msgid, ''), " SESS ", coalesce(openid, ''),"
    " nullif(agent, ''), CASE kind WHEN 'msg_in' THEN 'i'"
    "  WHEN 'whisper' THEN 'w' ELSE 'o' END,"
    " coalesce(nullif(msgtype, ''), 'unknown'),"
    " coalesce(p->>'Content', p->>'Recognition', p->>'Title',"
    "          p->>'Label', p->>'content', p->>'title'),"
    " coalesce(p->>'MediaId', p->>'media_id'),"
    " CASE kind WHEN 'msg_out' THEN 'sending' END, p, " AT
    " FROM (SELECT *, coalesce(nullif(payload, ''), '{}')::jsonb ||"
    "         CASE WHEN kind = 'msg_out' AND sender <> ''"
    "         THEN jsonb_build_object('by', sender) ELSE '{}' END ||"
    "         CASE WHEN kind = 'msg_out' AND marker <> ''"
    "         THEN jsonb_build_object('marker', marker) ELSE '{}' END AS p"
    "       FROM wxkf_arch WHERE kind IN ('msg_in', 'msg_out', 'whisper')"
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
 * gives the same row: the earliest opening, first assignment and close
 * (with the close: its reason and the wrap-up of its payload, summary
 * and label names);
 * agent, grp and why of the latest assignment (routed_by). */
#define NEWER "(EXCLUDED.routed_by IS NOT NULL AND (s.routed_by IS NULL OR" \
    " wxkf_event_ord(EXCLUDED.routed_by) > wxkf_event_ord(s.routed_by)))"
#define FIRST_CLOSE "EXCLUDED.closed_at IS NOT NULL AND" \
    " (s.closed_at IS NULL OR EXCLUDED.closed_at < s.closed_at)"
static const char sessions_sql[] =
    "WITH ev AS ("
    " SELECT " SESS " AS id, kind, openid, nullif(agent, '') AS agent,"
    "  nullif(grp, '') AS grp, nullif(reason, '') AS reason,"
    "  nullif(why, '') AS why, " AT " AS at, event_id, ems, eseq,"
    "  left(nullif(btrim(w->>'summary'), ''), 500) AS summary,"
    "  CASE WHEN jsonb_typeof(w->'labels') = 'array' THEN ARRAY("
    "   SELECT left(x, 20) FROM jsonb_array_elements_text(w->'labels') x"
    "   LIMIT 5) END AS labels"
    " FROM (SELECT *, CASE WHEN kind = 'close' AND payload LIKE '{%'"
    "   THEN payload::jsonb END AS w FROM wxkf_arch"
    "  WHERE kind IN ('assign', 'reassign', 'transfer', 'queue', 'close')"
    "  OFFSET 0) a),"             /* parse each payload once */
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
    " assigned_at, closed_at, close_reason, why, routed_by, summary,"
    " labels) "
    "SELECT f.id, coalesce(f.openid, ''), coalesce(r.agent, c.agent),"
    " coalesce(r.grp, f.grp0), f.opened, f.assigned, c.at, c.reason,"
    " r.why::jsonb, r.event_id, c.summary, c.labels "
    "FROM f LEFT JOIN r ON r.id = f.id LEFT JOIN c ON c.id = f.id "
    "ORDER BY f.id "
    "ON CONFLICT (id) DO UPDATE SET"
    " opened_at = LEAST(s.opened_at, EXCLUDED.opened_at),"
    " assigned_at = LEAST(s.assigned_at, EXCLUDED.assigned_at),"
    " close_reason = CASE WHEN " FIRST_CLOSE
    "  THEN EXCLUDED.close_reason ELSE s.close_reason END,"
    " summary = CASE WHEN " FIRST_CLOSE
    "  THEN EXCLUDED.summary ELSE s.summary END,"
    " labels = CASE WHEN " FIRST_CLOSE
    "  THEN EXCLUDED.labels ELSE s.labels END,"
    " closed_at = LEAST(s.closed_at, EXCLUDED.closed_at),"
    " agent = CASE WHEN " NEWER " THEN EXCLUDED.agent"
    "  ELSE coalesce(s.agent, EXCLUDED.agent) END,"
    " grp = CASE WHEN " NEWER " THEN EXCLUDED.grp"
    "  ELSE coalesce(s.grp, EXCLUDED.grp) END,"
    " why = CASE WHEN " NEWER " THEN EXCLUDED.why ELSE s.why END,"
    " routed_by = CASE WHEN " NEWER " THEN EXCLUDED.routed_by"
    "  ELSE s.routed_by END";

/* Reassignments and transfers. A transfer's events carry the giver
 * (by) and its note (note, '' none): a transfer to an agent is a
 * `transfer`, one to a group a `reassign`, or an `assign` of a waiting
 * user, or a `queue` when nobody in the group could take the user. The
 * assignment that takes such a user from the queue later carries them
 * again (reason dequeued) and is not a second transfer. */
static const char transfers_sql[] =
    "INSERT INTO transfers (event_id, session_id, openid, to_agent, grp,"
    " kind, reason, by_agent, note, at) "
    "SELECT event_id, " SESS ", coalesce(openid, ''), nullif(agent, ''),"
    " nullif(grp, ''), kind, nullif(reason, ''), nullif(sender, ''),"
    " left(nullif(note, ''), 200), " AT
    " FROM wxkf_arch WHERE kind IN ('reassign', 'transfer') OR"
    " (kind IN ('assign', 'queue') AND note IS NOT NULL AND"
    "  reason IS DISTINCT FROM 'dequeued') "
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

/* Audit entries (lib/lua/audit.lua): the record travels as the entry's
 * fields (JSON); one row per entry, exactly once (the unique index on
 * app_id and event_id, sql/0010_audit.sql). */
static const char audit_sql[] =
    "INSERT INTO audit_log (app_id, actor, role, action, target, ip,"
    " request_id, detail, event_id, at) "
    "SELECT f->>'app', f->>'actor', nullif(f->>'role', ''), f->>'action',"
    " nullif(f->>'target', ''), nullif(f->>'ip', ''), nullif(f->>'rid', ''),"
    " coalesce(nullif(f->>'detail', ''), '{}')::jsonb, event_id, " AT
    " FROM (SELECT event_id, ts, fields::jsonb AS f FROM wxkf_arch"
    "       WHERE kind = 'audit' OFFSET 0) x "
    "ON CONFLICT (app_id, event_id) WHERE event_id IS NOT NULL DO NOTHING";

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
    { BIT(MSG_IN) | BIT(MSG_OUT) | BIT(WHISPER), messages_sql },
    { BIT(DELIVERY), deliveries_sql },
    { SESSION_KINDS, sessions_sql },
    { BIT(ASSIGN) | BIT(REASSIGN) | BIT(TRANSFER) | BIT(QUEUE),
      transfers_sql },
    { BIT(PRESENCE), presence_sql },
    { BIT(MEDIA_STORED) | BIT(MEDIA_FAILED), media_sql },
    { BIT(AUDIT), audit_sql },
    { BIT(OTHER), other_sql },
    { OUT_KINDS, out_lock_sql },             /* last: held briefly */
    { OUT_KINDS, status_sql },
};

static const char ensure_month_sql[] =
    "SELECT wxkf_ensure_month(timestamptz 'epoch' +"
    " $1::bigint * interval '1 millisecond')";

static const char reject_sql[] =
    "INSERT INTO archive_rejects (event_id, raw, error) VALUES ($1, $2, $3)"
    " ON CONFLICT (event_id) DO NOTHING";

/* --- the connection and its errors --------------------------------------- */

void archive_sql_drop(struct archive *a)
{
    pg_close(a->db);
    a->db = NULL;
}


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
        archive_sql_drop(a);
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
int archive_sql_ready(struct archive *a)
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
        archive_sql_drop(a);
        return KF_EBACKEND;
    }
    return 0;
}

static void db_ok(struct archive *a)
{
    a->db_backoff_ms = ARCHIVE_SQL_BACKOFF_MIN_MS;
}


/* --- writing ------------------------------------------------------------- */

static int copy_in(struct archive *a, const struct kf_buf *data)
{
    struct pg_err e;

    if (pg_copy_in(a->db, "COPY wxkf_arch FROM STDIN", data->p, data->len,
                   &e) == 0)
        return 0;
    return db_failed(a, &e);
}

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
static int ensure_months(struct archive *a, struct archive_entry **v,
                         size_t n)
{
    int top = month_of(kf_wall_ms()) + 12;
    size_t i;
    int j;

    for (i = 0; i < n; i++) {
        int m;
        const char *param;
        struct pg_err e;
        int rc = 0;

        if (v[i]->kind != ARCHIVE_ENTRY_MSG_IN &&
            v[i]->kind != ARCHIVE_ENTRY_MSG_OUT)
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
        archive_sql_drop(a);    /* the server rolls back */
}

void archive_sql_written(struct archive *a, struct archive_entry **v,
                         size_t n, struct archive_stats *st)
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
static int write_batch(struct archive *a, struct archive_entry **v, size_t n,
                       struct archive_stats *st)
{
    unsigned kinds = 0;
    size_t i;
    int rc = archive_sql_ready(a);

    if (rc == 0)
        rc = ensure_months(a, v, n);
    if (rc == 0)
        rc = archive_entry_copy(v, n, &a->copy, &kinds);
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
    archive_sql_written(a, v, n, st);
    return 0;
}

/* Keeps an entry PostgreSQL cannot take in archive_rejects. */
static int reject(struct archive *a, struct archive_entry *e,
                  const char *error, struct archive_stats *st)
{
    struct kf_buf raw, id;
    const char *vals[3];
    int lens[3], fmts[3] = { 0, 1, 0 };
    struct pg_err pe;
    int rc;

    kf_buf_init(&raw, ARCHIVE_ENTRY_COPY_MAX);
    kf_buf_init(&id, 64);
    rc = archive_entry_raw(e, &raw);
    if (rc == 0)
        rc = kf_buf_append_str(&id, e->id);
    if (rc == 0 &&
        !archive_entry_text_ok((struct kf_str){ id.p, id.len }))
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

int archive_sql_set_aside(struct archive *a, struct archive_entry *e,
                          struct archive_stats *st)
{
    int rc = archive_sql_ready(a);

    return rc < 0 ? rc : reject(a, e, e->why_bad, st);
}

int archive_sql_write(struct archive *a, struct archive_entry **v, size_t n,
                      struct archive_stats *st)
{
    int rc = write_batch(a, v, n, st);
    char why[sizeof(a->error)];

    if (rc != KF_EPARSE)
        return rc;
    if (n == 1) {
        snprintf(why, sizeof(why), "%s", a->error);
        rc = archive_sql_ready(a);
        return rc < 0 ? rc : reject(a, v[0], why, st);
    }
    rc = archive_sql_write(a, v, n / 2, st);
    return rc < 0 ? rc : archive_sql_write(a, v + n / 2, n - n / 2, st);
}

/* --- the pipelined batch ------------------------------------------------- */

int archive_sql_start(struct archive *a, struct archive_entry **v, size_t n,
                      unsigned kinds)
{
    struct pg_err e;
    size_t i;
    int rc = ensure_months(a, v, n);

    kf_buf_reset(&a->sql);
    for (i = 0; i < sizeof(stmts) / sizeof(stmts[0]) && rc == 0; i++)
        if (stmts[i].kinds & kinds) {
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

int archive_sql_wait(struct archive *a)
{
    struct pg_err e;
    int rc = 0;

    if (pg_collect(a->db, &e) < 0)
        rc = db_failed(a, &e);
    if (rc < 0)
        rollback(a);
    return rc;
}
