/* audit_view: the admin's view of audit_log and its retention. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_view.h"
#include "pg.h"
#include "report.h"

#include "banned.h"

/* n decimal digits at p -> *v; nonzero if one is not a digit. */
static int digits(const char *p, int n, long *v)
{
    *v = 0;
    for (; n > 0; n--, p++) {
        if (*p < '0' || *p > '9')
            return 1;
        *v = *v * 10 + (*p - '0');
    }
    return 0;
}

int audit_view_time(struct kf_str s, long utc_offset, int end,
                    long long *out)
{
    long day, hh = 0, mm = 0, ss = 0;
    int utc = 0;

    if (s.len > 10 && s.p[s.len - 1] == 'Z') {
        utc = 1;
        s.len--;
    }
    if (report_day_parse((struct kf_str){ s.p, s.len < 10 ? s.len : 10 },
                         &day) < 0)
        return KF_EINVAL;
    if (s.len == 10 && !utc) {
        *out = (long long)(day + (end ? 1 : 0)) * 86400 -
               (long long)utc_offset * 60;
        return 0;
    }
    if ((s.len != 16 && s.len != 19) || (s.p[10] != 'T' && s.p[10] != ' ') ||
        digits(s.p + 11, 2, &hh) || s.p[13] != ':' ||
        digits(s.p + 14, 2, &mm) ||
        (s.len == 19 && (s.p[16] != ':' || digits(s.p + 17, 2, &ss))) ||
        hh > 23 || mm > 59 || ss > 59)
        return KF_EINVAL;
    *out = (long long)day * 86400 + hh * 3600 + mm * 60 + ss -
           (utc ? 0 : (long long)utc_offset * 60);
    return 0;
}

int audit_view_filter(struct kf_str s)
{
    char buf[AUDIT_VIEW_FILTER_MAX + 1];

    if (s.len > AUDIT_VIEW_FILTER_MAX)
        return KF_ETOOBIG;
    if (s.len == 0 || memchr(s.p, '\0', s.len))
        return KF_EINVAL;
    memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    return kf_text_check(buf, AUDIT_VIEW_FILTER_MAX, 0) == 0 ? 0 : KF_EINVAL;
}

/* The rows of one account that a query's filters keep ($1..$6). */
#define AUDIT_WHERE                                                        \
    " FROM audit_log WHERE app_id = $1"                                    \
    " AND ($2::text IS NULL OR actor = $2::text)"                          \
    " AND ($3::text IS NULL OR starts_with(action, $3::text))"             \
    " AND ($4::text IS NULL OR target = $4::text)"                         \
    " AND ($5::bigint IS NULL OR at >= to_timestamp($5::bigint))"          \
    " AND ($6::bigint IS NULL OR at < to_timestamp($6::bigint))"

static const char count_sql[] = "SELECT count(*)" AUDIT_WHERE;

static const char page_sql[] =
    "SELECT id, to_char(at AT TIME ZONE 'UTC',"
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), actor, role, action, target,"
    " ip, request_id, detail::text" AUDIT_WHERE
    " ORDER BY at DESC, id DESC LIMIT $7 OFFSET $8";

/* Column c of row i as a JSON string, null when SQL NULL. */
static json_t *text_or_null(const struct pg_res *res, int i, int c)
{
    return pg_res_isnull(res, i, c)
               ? json_null()
               : json_stringn(pg_res_value(res, i, c), pg_res_len(res, i, c));
}

static json_t *row_json(const struct pg_res *res, int i)
{
    static const char *const names[] = { "actor", "role", "action",
                                         "target", "ip", "request_id" };
    json_t *o = json_object(), *detail;
    size_t k;

    if (!o)
        return NULL;
    json_object_set_new(o, "id", json_integer(
                                     strtoll(pg_res_value(res, i, 0), NULL,
                                             10)));
    json_object_set_new(o, "at", text_or_null(res, i, 1));
    for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
        json_object_set_new(o, names[k], text_or_null(res, i, (int)k + 2));
    detail = json_loadb(pg_res_value(res, i, 8), pg_res_len(res, i, 8), 0,
                        NULL);
    json_object_set_new(o, "detail", detail ? detail : json_object());
    return o;
}

int audit_view_page(struct pg_conn *db, const struct audit_view_query *q,
                    json_t **out, struct pg_err *e)
{
    char from[24], to[24], limit[24], offset[24];
    const char *p[8] = { q->app_id, q->actor, q->action, q->target,
                         q->has_from ? from : NULL, q->has_to ? to : NULL,
                         limit, offset };
    struct pg_res *n = NULL, *res = NULL;
    json_t *rows = NULL;
    int rc, i;

    *out = NULL;
    snprintf(from, sizeof(from), "%lld", q->from_s);
    snprintf(to, sizeof(to), "%lld", q->to_s);
    snprintf(limit, sizeof(limit), "%ld", q->limit);
    snprintf(offset, sizeof(offset), "%ld", q->offset);
    rc = pg_exec(db, count_sql, 6, p, PG_RETRY, &n, e);
    if (rc == 0)
        rc = pg_exec(db, page_sql, 8, p, PG_RETRY, &res, e);
    if (rc == 0 && !(rows = json_array()))
        rc = KF_ENOMEM;
    for (i = 0; rc == 0 && i < pg_res_rows(res); i++)
        if (json_array_append_new(rows, row_json(res, i)) < 0)
            rc = KF_ENOMEM;
    if (rc == 0) {
        *out = json_pack("{s:I,s:i,s:i,s:o}", "total",
                         (json_int_t)strtoll(pg_res_value(n, 0, 0), NULL, 10),
                         "offset", (int)q->offset, "limit", (int)q->limit,
                         "rows", rows);
        rows = NULL;
        if (!*out)
            rc = KF_ENOMEM;
    }
    json_decref(rows);
    pg_res_free(n);
    pg_res_free(res);
    return rc;
}

int audit_view_purge(struct pg_conn *db, const char *app_id, long keep_days,
                     int max_batches, long *deleted, struct pg_err *e)
{
    static const char sql[] =
        "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log"
        " WHERE app_id = $1 AND at < now() - $2::integer * interval '1 day'"
        " LIMIT $3::integer)";
    char days[24], batch[24];
    const char *p[3] = { app_id, days, batch };
    struct pg_res *res = NULL;
    long n = AUDIT_VIEW_PURGE_BATCH;
    int rc = 0, i;

    *deleted = 0;
    if (keep_days <= 0)
        return 0;
    snprintf(days, sizeof(days), "%ld", keep_days);
    snprintf(batch, sizeof(batch), "%d", AUDIT_VIEW_PURGE_BATCH);
    for (i = 0; i < max_batches && n == AUDIT_VIEW_PURGE_BATCH; i++) {
        rc = pg_exec(db, sql, 3, p, 0, &res, e);
        if (rc < 0)
            break;
        n = pg_res_affected(res);
        *deleted += n;
        pg_res_free(res);
        res = NULL;
    }
    return rc;
}
