/* report: the reports of a team's past days — the daily roll-ups
 * (table report_days, sql/0009_reports.sql: per account, day and agent,
 * group or hour of the day) built from the archived history by the SQL
 * function wxkf_report_build, the reads of a date range (sums, and the
 * medians and 90th percentiles of the first responses and queue waits
 * computed by PostgreSQL over every session of the range), their JSON,
 * CSV (UTF-8 with a BOM) and XLSX (libxlsxwriter, the only user) forms,
 * and the export of archived conversations as CSV or JSON. Dates are
 * untrusted input: checked here, passed as parameters. docs/reports.md. */
#ifndef REPORT_H
#define REPORT_H

#include <stddef.h>

#include <jansson.h>

#include "kf.h"
#include "refusal.h"

#define REPORT_RANGE_MAX 366        /* days one report covers at most */
#define REPORT_EXPORT_MAX 100000    /* messages of one conversation export */
#define REPORT_CSV_MAX (64L * 1024 * 1024)  /* bytes of one CSV answer */

struct pg_conn;
struct pg_res;
struct pg_err;

/* Working hours: [reports] work_start..work_end (hours 0..24, local)
 * on the ISO weekdays listed in work_days ("12345"); utc_offset is the
 * day's, in minutes ([api] stats_utc_offset). Borrowed strings. */
struct report_hours {
    long utc_offset, start, end;
    const char *days;
};

/* "YYYY-MM-DD" (exactly, a real date from 2000 to 2199) → days since
 * 1970-01-01. KF_EINVAL otherwise. */
KF_WUR int report_day_parse(struct kf_str s, long *day);
/* The date of day as "YYYY-MM-DD" in out (11 bytes). */
void report_day_format(long day, char out[11]);
#define REPORT_DEFAULT_DAYS 7   /* a query without from and to */

/* The local day (at utc_offset minutes) of the wall clock ms. */
long report_today(long long now_ms, long utc_offset);
/* A range of days from the query's from and to: both dates, from <= to,
 * at most REPORT_RANGE_MAX days. Else KF_EINVAL and *why (scope
 * REFUSAL_REPORT). */
KF_WUR int report_range(struct kf_str from, struct kf_str to, long *lo,
                        long *hi, const struct refusal **why);

/* Rebuilds the rows of day for app_id in one transaction (the day's old
 * rows deleted, the new ones inserted): running it again gives the same
 * rows. *rows (may be NULL) gets how many. pg's kf codes. */
KF_WUR int report_build(struct pg_conn *db, const char *app_id, long day,
                        const struct report_hours *h, int *rows,
                        struct pg_err *e);

enum report_by { REPORT_BY_AGENT, REPORT_BY_GROUP, REPORT_BY_HOUR,
                 REPORT_BY_DAY };
/* "agent", "group", "hour" or "day"; else KF_EINVAL. */
KF_WUR int report_by_parse(struct kf_str s, enum report_by *by);
const char *report_by_name(enum report_by by);   /* static */

/* The report of days lo..hi by by: one row per agent (group, hour, day)
 * in key order, then the totals row (its key NULL). Columns as
 * docs/api.md's. On success *res is new: pg_res_free() it. */
KF_WUR int report_query(struct pg_conn *db, const char *app_id, long lo,
                        long hi, enum report_by by, struct pg_res **res,
                        struct pg_err *e);

/* {"from","to","by","rows":[{column: value}],"total":{...}}; numbers
 * as numbers, absent figures null, labels an object. NULL if out of
 * memory. */
json_t *report_json(const struct pg_res *res, long lo, long hi,
                    enum report_by by);
/* The CSV: a UTF-8 BOM, the header, one record per row and the totals
 * ("total"), CRLF; labels as "name:n; name:n". Appended to out. */
KF_WUR int report_csv(const struct pg_res *res, struct kf_buf *out);
/* The same table as an XLSX workbook written to path (a new file).
 * KF_EIO when libxlsxwriter fails. */
KF_WUR int report_xlsx(const struct pg_res *res, const char *path);

/* Which conversations an export holds: one user, one session, or the
 * messages of days lo..hi (any of them together narrows it). */
struct report_export {
    const char *openid;             /* NULL: any */
    const char *session;            /* decimal id; NULL: any */
    long lo, hi;                    /* days; lo > hi: any */
    long utc_offset;
};
/* The messages, oldest first: at (ISO 8601 with the offset), session,
 * openid, agent, direction, msgtype, content, media_id, status. More
 * than REPORT_EXPORT_MAX: KF_ETOOBIG. On success *res is new. */
KF_WUR int report_export_query(struct pg_conn *db,
                               const struct report_export *x,
                               struct pg_res **res, struct pg_err *e);
/* The export as CSV (BOM, header, CRLF) appended to out, or as a JSON
 * array of objects (NULL if out of memory). */
KF_WUR int report_export_csv(const struct pg_res *res, struct kf_buf *out);
json_t *report_export_json(const struct pg_res *res);

#endif
