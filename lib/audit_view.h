/* audit_view: the admin's view of the audit log (table audit_log,
 * sql/0002_history.sql and sql/0010_audit.sql) and its retention. One
 * account's rows (app_id), filtered by actor, action prefix, target and
 * a time range, newest first, a page at a time with the total; and the
 * deletion of rows older than [audit] keep_days in bounded batches, per
 * account. The filters are untrusted input: checked here, passed as
 * parameters. Writing audit rows is not this module's. docs/api.md. */
#ifndef AUDIT_VIEW_H
#define AUDIT_VIEW_H

#include <jansson.h>

#include "kf.h"
#include "refusal.h"

#define AUDIT_VIEW_LIMIT_DEFAULT 50
#define AUDIT_VIEW_LIMIT_MAX 200
#define AUDIT_VIEW_OFFSET_MAX 100000
#define AUDIT_VIEW_FILTER_MAX 128       /* bytes of actor, action, target */
#define AUDIT_VIEW_PURGE_BATCH 1000     /* rows one DELETE removes at most */

struct pg_conn;
struct pg_err;

/* One page's question. Strings borrowed; NULL: any. action is a prefix
 * ("session." matches "session.close"), actor and target exact. */
struct audit_view_query {
    const char *app_id;
    const char *actor, *action, *target;
    int has_from, has_to;
    long long from_s, to_s;         /* Unix seconds: from <= at < to */
    long limit, offset;
};

/* A from or to of the query as Unix seconds: "YYYY-MM-DD" is that day of
 * the account (utc_offset minutes east of UTC, [api] stats_utc_offset):
 * its start, or with end = 1 the next day's start (a `to` date includes
 * its whole day); "YYYY-MM-DDTHH:MM" or "YYYY-MM-DDTHH:MM:SS" (a space
 * for the T too) is the account's local time, with a trailing "Z" UTC.
 * Anything else (or a date outside 2000..2199) -> KF_EINVAL. */
KF_WUR int audit_view_time(struct kf_str s, long utc_offset, int end,
                           long long *out);

/* Checks one filter: at most AUDIT_VIEW_FILTER_MAX bytes (else
 * KF_ETOOBIG), UTF-8 without control characters and not empty (else
 * KF_EINVAL). */
KF_WUR int audit_view_filter(struct kf_str s);

/* The page q asks for: {"total": rows matching, "offset", "limit",
 * "rows": [{"id","at" (ISO 8601, UTC),"actor","role","action","target",
 * "ip","request_id","detail" (an object)}]}, absent values null. On
 * success *out is new. pg's kf codes. */
KF_WUR int audit_view_page(struct pg_conn *db,
                           const struct audit_view_query *q, json_t **out,
                           struct pg_err *e);

/* Deletes app_id's rows older than keep_days days (0: none), at most
 * AUDIT_VIEW_PURGE_BATCH a statement and max_batches statements (each
 * its own transaction); *deleted gets how many. pg's kf codes (what was
 * deleted before a failure stays deleted and is counted). */
KF_WUR int audit_view_purge(struct pg_conn *db, const char *app_id,
                            long keep_days, int max_batches, long *deleted,
                            struct pg_err *e);

#endif
