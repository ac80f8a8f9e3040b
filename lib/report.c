/* report: daily roll-ups, their reads and exports (report.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xlsxwriter.h>

#include "canned.h"
#include "pg.h"
#include "report.h"

#include "banned.h"

/* A column of a table we answer: its name and how its text is typed in
 * JSON: 's' string, 'i' integer, 'f' number, 'j' JSON text. */
struct col {
    const char *name;
    char type;
};

static const struct col report_cols[] = {
    { "key", 's' },          { "name", 's' },
    { "sessions", 'i' },     { "msgs_in", 'i' },
    { "msgs_out", 'i' },     { "frt_median_s", 'f' },
    { "frt_p90_s", 'f' },    { "handled", 'i' },
    { "handle_avg_s", 'f' }, { "transfers", 'i' },
    { "queued", 'i' },       { "wait_median_s", 'f' },
    { "wait_p90_s", 'f' },   { "abandoned", 'i' },
    { "after_hours", 'i' },  { "agents", 'i' },
    { "labels", 'j' },       { NULL, 0 },
};

static const struct col export_cols[] = {
    { "at", 's' },      { "session", 'i' },   { "openid", 's' },
    { "agent", 's' },   { "direction", 's' }, { "msgtype", 's' },
    { "content", 's' }, { "media_id", 's' },  { "status", 's' },
    { NULL, 0 },
};

/* --- days ---------------------------------------------------------------- */

/* Days since 1970-01-01 of y-m-d (proleptic Gregorian; H. Hinnant). */
static long days_from_civil(long y, long m, long d)
{
    long era, yoe, doy;

    y -= m <= 2;
    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

static void civil_from_days(long z, long *y, long *m, long *d)
{
    long era, doe, yoe, doy, mp;

    z += 719468;
    era = z / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp + (mp < 10 ? 3 : -9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int digits(const char *p, size_t n, long *out)
{
    size_t i;

    *out = 0;
    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return KF_EINVAL;
        *out = *out * 10 + (p[i] - '0');
    }
    return 0;
}

int report_day_parse(struct kf_str s, long *day)
{
    long y, m, d, cy, cm, cd;

    if (s.len != 10 || s.p[4] != '-' || s.p[7] != '-' ||
        digits(s.p, 4, &y) || digits(s.p + 5, 2, &m) ||
        digits(s.p + 8, 2, &d) || y < 2000 || y > 2199 || m < 1 ||
        m > 12 || d < 1 || d > 31)
        return KF_EINVAL;
    *day = days_from_civil(y, m, d);
    civil_from_days(*day, &cy, &cm, &cd);   /* 2023-02-30 comes back as */
    return cy == y && cm == m && cd == d ? 0 : KF_EINVAL; /* March */
}

void report_day_format(long day, char out[11])
{
    long y, m, d;

    civil_from_days(day, &y, &m, &d);
    out[0] = (char)('0' + (y / 1000) % 10);
    out[1] = (char)('0' + (y / 100) % 10);
    out[2] = (char)('0' + (y / 10) % 10);
    out[3] = (char)('0' + y % 10);
    out[4] = out[7] = '-';
    out[5] = (char)('0' + m / 10);
    out[6] = (char)('0' + m % 10);
    out[8] = (char)('0' + d / 10);
    out[9] = (char)('0' + d % 10);
    out[10] = '\0';
}

long report_today(long long now_ms, long utc_offset)
{
    long long local = now_ms + (long long)utc_offset * 60000;

    return (long)((local - (local < 0 ? 86399999 : 0)) / 86400000);
}

int report_range(struct kf_str from, struct kf_str to, long *lo, long *hi,
                 const struct refusal **why)
{
    if (report_day_parse(from, lo) < 0 || report_day_parse(to, hi) < 0 ||
        *lo > *hi) {
        *why = refusal_get(REFUSAL_REPORT_DATES);
        return KF_EINVAL;
    }
    if (*hi - *lo + 1 > REPORT_RANGE_MAX) {
        *why = refusal_get(REFUSAL_REPORT_TOO_LONG);
        return KF_EINVAL;
    }
    return 0;
}

/* --- building ------------------------------------------------------------ */

int report_build(struct pg_conn *db, const char *app_id, long day,
                 const struct report_hours *h, int *rows, struct pg_err *e)
{
    char date[11], off[16], start[8], end[8];
    const char *p[6] = { app_id, date, off, start, end, h->days };
    struct pg_res *res = NULL;
    int rc;

    report_day_format(day, date);
    snprintf(off, sizeof(off), "%ld", h->utc_offset);
    snprintf(start, sizeof(start), "%ld", h->start);
    snprintf(end, sizeof(end), "%ld", h->end);
    rc = pg_exec(db, "BEGIN", 0, NULL, 0, NULL, e);
    if (rc == 0)
        rc = pg_exec(db, "SELECT wxkf_report_build($1, $2::date,"
                     " $3::integer, $4::integer, $5::integer, $6)",
                     6, p, 0, &res, e);
    if (rc == 0)
        rc = pg_exec(db, "COMMIT", 0, NULL, 0, NULL, e);
    else if (pg_connected(db))
        pg_disconnect(db);          /* the server rolls back */
    if (rc == 0 && rows) {
        uint64_t n = 0;

        *rows = kf_parse_u64(kf_str_c(pg_res_value(res, 0, 0)), &n) == 0
                    ? (int)n : 0;
    }
    pg_res_free(res);
    return rc;
}

/* --- reading ------------------------------------------------------------- */

static const char *const by_names[] = { "agent", "group", "hour", "day" };

int report_by_parse(struct kf_str s, enum report_by *by)
{
    size_t i;

    for (i = 0; i < sizeof(by_names) / sizeof(by_names[0]); i++)
        if (kf_str_eq_c(s, by_names[i])) {
            *by = (enum report_by)i;
            return 0;
        }
    return KF_EINVAL;
}

const char *report_by_name(enum report_by by)
{
    return by_names[by];
}

/* $1 app, $2 from, $3 to, $4 by. "day" reads the group rows (every
 * session has one) keyed by their day. Sums over the days; the
 * percentiles over every session's figure of the range; the totals row
 * (GROUPING SETS' ()) has the key NULL. */
#define PCT(p) \
    "round((percentile_cont(" p ") WITHIN GROUP (ORDER BY x) / 1000)" \
    "::numeric, 1)"
static const char query_sql[] =
    "WITH r AS (SELECT CASE WHEN $4 = 'day' THEN to_char(d.day,"
    "  'YYYY-MM-DD') ELSE d.dim END AS k, d.* FROM report_days d"
    "  WHERE d.app_id = $1 AND d.day BETWEEN $2::date AND $3::date"
    "  AND d.kind = CASE WHEN $4 = 'day' THEN 'group' ELSE $4 END),"
    " c AS (SELECT k, sum(sessions) AS sessions, sum(msgs_in) AS msgs_in,"
    "  sum(msgs_out) AS msgs_out, sum(handled) AS handled,"
    "  sum(handle_ms) AS handle_ms, sum(transfers) AS transfers,"
    "  sum(queued) AS queued, sum(abandoned) AS abandoned,"
    "  sum(after_hours) AS after_hours, max(agents) AS agents"
    "  FROM r GROUP BY GROUPING SETS ((k), ())),"
    " f AS (SELECT k, " PCT("0.5") " AS med, " PCT("0.9")
    "  AS p90 FROM r, unnest(r.frt_ms) x GROUP BY GROUPING SETS ((k), ())),"
    " w AS (SELECT k, " PCT("0.5") " AS med, " PCT("0.9")
    "  AS p90 FROM r, unnest(r.wait_ms) x GROUP BY GROUPING SETS ((k), ())),"
    " l AS (SELECT k, jsonb_object_agg(l, n) AS labels FROM (SELECT k, l,"
    "  sum(n::bigint) AS n FROM r, jsonb_each_text(r.labels) e(l, n)"
    "  GROUP BY GROUPING SETS ((k, l), (l))) x GROUP BY k) "
    "SELECT c.k, CASE WHEN $4 = 'agent' THEN a.nick END,"
    " coalesce(c.sessions, 0), coalesce(c.msgs_in, 0),"
    " coalesce(c.msgs_out, 0), f.med, f.p90, coalesce(c.handled, 0),"
    " round((c.handle_ms::numeric / nullif(c.handled, 0)) / 1000, 1),"
    " coalesce(c.transfers, 0), coalesce(c.queued, 0), w.med, w.p90,"
    " coalesce(c.abandoned, 0), coalesce(c.after_hours, 0),"
    " coalesce(c.agents, 0), coalesce(l.labels, '{}') "
    "FROM c LEFT JOIN f ON f.k IS NOT DISTINCT FROM c.k"
    " LEFT JOIN w ON w.k IS NOT DISTINCT FROM c.k"
    " LEFT JOIN l ON l.k IS NOT DISTINCT FROM c.k"
    " LEFT JOIN agents a ON $4 = 'agent' AND a.account = c.k "
    "ORDER BY c.k IS NULL, c.k";

int report_query(struct pg_conn *db, const char *app_id, long lo, long hi,
                 enum report_by by, struct pg_res **res, struct pg_err *e)
{
    char from[11], to[11];
    const char *p[4] = { app_id, from, to, by_names[by] };

    report_day_format(lo, from);
    report_day_format(hi, to);
    return pg_exec(db, query_sql, 4, p, PG_RETRY, res, e);
}

/* --- answers ------------------------------------------------------------- */

static json_t *value_json(const struct pg_res *res, int row, int col,
                          char type)
{
    const char *v = pg_res_value(res, row, col);

    if (pg_res_isnull(res, row, col))
        return json_null();
    if (type == 'i')
        return json_integer(strtoll(v, NULL, 10));
    if (type == 'f')
        return json_real(strtod(v, NULL));
    if (type == 'j')
        return json_loads(v, 0, NULL);
    return json_string(v);
}

static json_t *row_json(const struct pg_res *res, int row,
                        const struct col *cols)
{
    json_t *o = json_object();
    int i;

    for (i = 0; o && cols[i].name; i++)
        if (json_object_set_new(o, cols[i].name,
                                value_json(res, row, i, cols[i].type))) {
            json_decref(o);
            return NULL;
        }
    return o;
}

json_t *report_json(const struct pg_res *res, long lo, long hi,
                    enum report_by by)
{
    char from[11], to[11];
    json_t *rows = json_array(), *total = NULL, *o;
    int i, n = pg_res_rows(res);

    report_day_format(lo, from);
    report_day_format(hi, to);
    for (i = 0; rows && i < n; i++) {
        json_t *r = row_json(res, i, report_cols);

        if (!r || (i == n - 1 && pg_res_isnull(res, i, 0))) {
            total = r;              /* the last row: the totals */
            if (!r)
                break;
        } else if (json_array_append_new(rows, r)) {
            break;
        }
    }
    o = json_pack("{s:s,s:s,s:s,s:o,s:o}", "from", from, "to", to, "by",
                  by_names[by], "rows", rows ? rows : json_null(), "total",
                  total ? total : json_null());
    return o;
}

/* "name:n; name:n" of a labels object (JSON text), keys in order. */
static int labels_text(const char *v, struct kf_buf *out)
{
    json_t *o = json_loads(v, 0, NULL);
    const char *k;
    json_t *n;
    int rc = 0, first = 1;

    json_object_foreach(o, k, n) {
        if (rc == 0)
            rc = kf_buf_printf(out, "%s%s:%lld", first ? "" : "; ", k,
                               (long long)json_integer_value(n));
        first = 0;
    }
    json_decref(o);
    return rc;
}

/* The text of a cell of a CSV or XLSX: the totals' key is "total". */
static int cell_text(const struct pg_res *res, int row, int col,
                     const struct col *cols, struct kf_buf *out)
{
    kf_buf_reset(out);
    if (col == 0 && cols == report_cols && pg_res_isnull(res, row, 0))
        return kf_buf_append_c(out, "total");
    if (cols[col].type == 'j')
        return labels_text(pg_res_value(res, row, col), out);
    return kf_buf_append_c(out, pg_res_value(res, row, col));
}

static int table_csv(const struct pg_res *res, const struct col *cols,
                     struct kf_buf *out)
{
    struct kf_buf cell;
    int rc, row, i, n = pg_res_rows(res);

    kf_buf_init(&cell, REPORT_CSV_MAX);
    rc = kf_buf_append_c(out, "\xEF\xBB\xBF");
    for (i = 0; rc == 0 && cols[i].name; i++)
        rc = kf_buf_printf(out, "%s%s", i ? "," : "", cols[i].name);
    if (rc == 0)
        rc = kf_buf_append_c(out, "\r\n");
    for (row = 0; rc == 0 && row < n; row++) {
        for (i = 0; rc == 0 && cols[i].name; i++) {
            if (i)
                rc = kf_buf_append_c(out, ",");
            if (rc == 0)
                rc = cell_text(res, row, i, cols, &cell);
            if (rc == 0 && kf_buf_append(&cell, "", 1) == 0)
                rc = canned_csv_field(out, cell.p);
        }
        if (rc == 0)
            rc = kf_buf_append_c(out, "\r\n");
    }
    kf_buf_release(&cell);
    return rc;
}

int report_csv(const struct pg_res *res, struct kf_buf *out)
{
    return table_csv(res, report_cols, out);
}

int report_xlsx(const struct pg_res *res, const char *path)
{
    lxw_workbook *wb = workbook_new(path);
    lxw_worksheet *ws = wb ? workbook_add_worksheet(wb, "report") : NULL;
    lxw_format *bold = wb ? workbook_add_format(wb) : NULL;
    struct kf_buf cell;
    int rc = ws && bold ? 0 : KF_EIO, row, i, n = pg_res_rows(res);

    kf_buf_init(&cell, REPORT_CSV_MAX);
    if (bold)
        format_set_bold(bold);
    for (i = 0; rc == 0 && report_cols[i].name; i++)
        if (worksheet_write_string(ws, 0, (lxw_col_t)i, report_cols[i].name,
                                   bold) != LXW_NO_ERROR)
            rc = KF_EIO;
    for (row = 0; rc == 0 && row < n; row++)
        for (i = 0; rc == 0 && report_cols[i].name; i++) {
            lxw_row_t at = (lxw_row_t)row + 1;
            char t = report_cols[i].type;

            if (i > 0 && pg_res_isnull(res, row, i))
                continue;
            if (t == 'i' || t == 'f') {
                if (worksheet_write_number(ws, at, (lxw_col_t)i,
                        strtod(pg_res_value(res, row, i), NULL), NULL))
                    rc = KF_EIO;
                continue;
            }
            rc = cell_text(res, row, i, report_cols, &cell);
            if (rc == 0 && kf_buf_append(&cell, "", 1) == 0 &&
                worksheet_write_string(ws, at, (lxw_col_t)i, cell.p,
                                       row == n - 1 && i == 0 ? bold
                                                              : NULL))
                rc = KF_EIO;
        }
    kf_buf_release(&cell);
    if (wb && workbook_close(wb) != LXW_NO_ERROR && rc == 0)
        rc = KF_EIO;
    return rc;
}

/* --- conversation export ------------------------------------------------- */

/* $1 openid, $2 session, $3 from, $4 to (NULL: any), $5 offset minutes,
 * $6 the cap + 1. */
static const char export_sql[] =
    "SELECT to_char((m.created_at AT TIME ZONE 'UTC') +"
    "  make_interval(mins => $5::integer), 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')"
    "  || CASE WHEN $5::integer < 0 THEN '-' ELSE '+' END"
    "  || to_char(make_interval(mins => abs($5::integer)), 'HH24:MI'),"
    " m.session_id, m.openid, m.agent, CASE m.direction WHEN 'i' THEN 'in'"
    " ELSE 'out' END, m.msgtype, m.content, m.media_id, m.status "
    "FROM messages m"
    " WHERE m.direction <> 'w'"           /* whispers are staff's only */
    " AND ($1::text IS NULL OR m.openid = $1)"
    " AND ($2::bigint IS NULL OR m.session_id = $2::bigint)"
    " AND ($3::date IS NULL OR m.created_at >= ($3::date::timestamp -"
    "  make_interval(mins => $5::integer)) AT TIME ZONE 'UTC')"
    " AND ($4::date IS NULL OR m.created_at < ($4::date::timestamp +"
    "  interval '1 day' - make_interval(mins => $5::integer))"
    "  AT TIME ZONE 'UTC')"
    " ORDER BY m.created_at, m.id LIMIT $6::integer";

int report_export_query(struct pg_conn *db, const struct report_export *x,
                        struct pg_res **res, struct pg_err *e)
{
    char from[11], to[11], off[16], cap[16];
    const char *p[6] = { x->openid, x->session, NULL, NULL, off, cap };
    int rc;

    if (x->lo <= x->hi) {
        report_day_format(x->lo, from);
        report_day_format(x->hi, to);
        p[2] = from;
        p[3] = to;
    }
    snprintf(off, sizeof(off), "%ld", x->utc_offset);
    snprintf(cap, sizeof(cap), "%d", REPORT_EXPORT_MAX + 1);
    rc = pg_exec(db, export_sql, 6, p, PG_RETRY, res, e);
    if (rc == 0 && pg_res_rows(*res) > REPORT_EXPORT_MAX) {
        pg_res_free(*res);
        *res = NULL;
        rc = KF_ETOOBIG;
    }
    return rc;
}

int report_export_csv(const struct pg_res *res, struct kf_buf *out)
{
    return table_csv(res, export_cols, out);
}

json_t *report_export_json(const struct pg_res *res)
{
    json_t *a = json_array();
    int i, n = pg_res_rows(res);

    for (i = 0; a && i < n; i++)
        if (json_array_append_new(a, row_json(res, i, export_cols))) {
            json_decref(a);
            return NULL;
        }
    return a;
}
