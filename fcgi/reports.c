/* reports: the routes of the team's reports and exports —
 * GET /api/v1/reports (JSON), /api/v1/reports/export (CSV or XLSX) and
 * GET /api/v1/history/export (conversations as CSV or JSON). Thin:
 * authenticate, check the query (lib/report's refusal rows), read on a
 * connection of the request, answer. docs/api.md, docs/reports.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "fcgi.h"
#include "label.h"
#include "pg.h"
#include "refusal.h"
#include "report.h"

#include "banned.h"

/* Who may read the team's figures and export conversations: admins and
 * supervisors (issue 18: a team lead reviews last week), here and
 * nowhere else. A supervisor's cookie arrives as AUTH_ADMIN on GET
 * today (api_authenticate) and as AUTH_SUPERVISOR where a route takes
 * roles as they are; both are let in. An API token needs the reports
 * or history scope (checked before this). */
static int may_see_reports(const struct auth *who)
{
    return who->role == AUTH_ADMIN || who->role == AUTH_SUPERVISOR;
}

static int authorized(struct fcgi_req *r)
{
    struct auth who;

    if (api_authenticate(r, &who, 0))
        return 0;
    if (!may_see_reports(&who)) {
        fcgi_error(r, 403, "forbidden", "this route is for admins", NULL);
        return 0;
    }
    return 1;
}

static int open_db(struct fcgi_req *r, struct pg_conn **db)
{
    int rc = label_open(r->app->cfg.postgres.dsn, db);

    if (rc < 0)
        api_label_failed(r, "report_db", rc, NULL, NULL);
    return rc;
}

static void refused(struct fcgi_req *r, enum refusal_id id,
                    const char *detail)
{
    api_refused(r, refusal_get(id), detail);
}

/* from, to and by of the query; answers and returns nonzero when one is
 * wrong. Neither from nor to: the account's last 7 days, by its own day
 * ([api] stats_utc_offset), which a browser elsewhere does not know. */
static int report_params(struct fcgi_req *r, long *lo, long *hi,
                         enum report_by *by)
{
    const struct refusal *why = NULL;
    struct kf_str from, to, b;
    int has_from = http_query_get(&r->query, "from", &from),
        has_to = http_query_get(&r->query, "to", &to);

    if (!has_from && !has_to) {
        *hi = report_today(kf_wall_ms(), r->app->cfg.api.stats_utc_offset);
        *lo = *hi - (REPORT_DEFAULT_DAYS - 1);
    } else if (report_range(from, to, lo, hi, &why) < 0) {
        api_refused(r, why, NULL);
        return -1;
    }
    if (!http_query_get(&r->query, "by", &b))
        b = KF_STR("agent");
    if (report_by_parse(b, by) < 0) {
        refused(r, REFUSAL_REPORT_INVALID,
                "by must be agent, group, hour or day");
        return -1;
    }
    return 0;
}

/* The report's rows, or NULL after answering. */
static struct pg_res *report_rows(struct fcgi_req *r, long *lo, long *hi,
                                  enum report_by *by)
{
    struct pg_conn *db = NULL;
    struct pg_res *res = NULL;
    struct pg_err e;
    int rc;

    if (!authorized(r) || report_params(r, lo, hi, by) ||
        open_db(r, &db) < 0)
        return NULL;
    rc = report_query(db, r->app->cfg.wechat.app_id, *lo, *hi, *by, &res,
                      &e);
    pg_close(db);
    if (rc < 0) {
        api_label_failed(r, "report_query", rc, NULL, NULL);
        return NULL;
    }
    return res;
}

/* GET /api/v1/reports?from=&to=&by= */
void api_reports(struct fcgi_req *r)
{
    enum report_by by;
    long lo, hi;
    struct pg_res *res = report_rows(r, &lo, &hi, &by);
    json_t *out;

    if (!res)
        return;
    out = report_json(res, lo, hi, by);
    pg_res_free(res);
    if (out)
        fcgi_json(r, 200, out);
    else
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
}

/* "Content-Disposition: attachment; filename="<stem>-<from>-<to>.<ext>"" */
static void disposition(char *hdr, size_t n, const char *stem, long lo,
                        long hi, const char *ext)
{
    char from[11], to[11];

    report_day_format(lo, from);
    report_day_format(hi, to);
    snprintf(hdr, n, "Content-Disposition: attachment; "
             "filename=\"%s-%s-%s.%s\"\r\n", stem, from, to, ext);
}

/* The XLSX of res through a temporary file (libxlsxwriter writes
 * files), read back whole and removed. */
static int xlsx_bytes(const struct pg_res *res, struct kf_buf *out)
{
    const char *dir = getenv("TMPDIR");
    char path[512];
    FILE *f = NULL;
    int fd, rc;

    if (snprintf(path, sizeof(path), "%s/wxkf-report-XXXXXX",
                 dir && *dir ? dir : "/tmp") >= (int)sizeof(path))
        return KF_EIO;
    fd = mkstemp(path);
    if (fd < 0)
        return KF_EIO;
    close(fd);
    rc = report_xlsx(res, path);
    if (rc == 0 && !(f = fopen(path, "rb")))
        rc = KF_EIO;
    while (rc == 0) {
        char chunk[16384];
        size_t got = fread(chunk, 1, sizeof(chunk), f);

        if (got == 0) {
            rc = ferror(f) ? KF_EIO : 0;
            break;
        }
        rc = kf_buf_append(out, chunk, got);
    }
    if (f)
        fclose(f);
    unlink(path);
    return rc;
}

/* GET /api/v1/reports/export?from=&to=&by=&format=csv|xlsx */
void api_reports_export(struct fcgi_req *r)
{
    enum report_by by;
    long lo, hi;
    struct kf_str fmt;
    struct pg_res *res;
    struct kf_buf body;
    char hdr[160];
    int xlsx, rc;

    if (!http_query_get(&r->query, "format", &fmt))
        fmt = KF_STR("csv");
    xlsx = kf_str_eq_c(fmt, "xlsx");
    if (!xlsx && !kf_str_eq_c(fmt, "csv")) {
        if (authorized(r))
            refused(r, REFUSAL_REPORT_INVALID, "format must be csv or xlsx");
        return;
    }
    if (!(res = report_rows(r, &lo, &hi, &by)))
        return;
    kf_buf_init(&body, REPORT_CSV_MAX);
    rc = xlsx ? xlsx_bytes(res, &body) : report_csv(res, &body);
    pg_res_free(res);
    disposition(hdr, sizeof(hdr), report_by_name(by), lo, hi,
                xlsx ? "xlsx" : "csv");
    if (rc == 0)
        fcgi_respond(r, 200, xlsx ? "application/vnd.openxmlformats-"
                                    "officedocument.spreadsheetml.sheet"
                                  : "text/csv; charset=utf-8",
                     hdr, kf_buf_str(&body));
    else
        api_label_failed(r, "report_export", rc, NULL, NULL);
    kf_buf_release(&body);
}

/* The export's filters from the query (values copied into the arrays);
 * answers and returns nonzero when they are wrong or absent. */
static int export_params(struct fcgi_req *r, struct report_export *x,
                         char openid[65], char session[21])
{
    const struct refusal *why = NULL;
    struct kf_str o, s, from, to;
    uint64_t id;

    x->openid = x->session = NULL;
    x->lo = 1;
    x->hi = 0;
    x->utc_offset = r->app->cfg.api.stats_utc_offset;
    if (http_query_get(&r->query, "openid", &o)) {
        if (!kf_openid_ok(o)) {
            refused(r, REFUSAL_REPORT_INVALID, "openid is not an OpenID");
            return -1;
        }
        memcpy(openid, o.p, o.len);
        openid[o.len] = '\0';
        x->openid = openid;
    }
    if (http_query_get(&r->query, "session", &s)) {
        if (s.len > 19 || kf_parse_u64(s, &id) < 0) {
            refused(r, REFUSAL_REPORT_INVALID, "session is not a session id");
            return -1;
        }
        snprintf(session, 21, "%llu", (unsigned long long)id);
        x->session = session;
    }
    if ((http_query_get(&r->query, "from", &from) |
         http_query_get(&r->query, "to", &to)) &&
        report_range(from, to, &x->lo, &x->hi, &why) < 0) {
        api_refused(r, why, NULL);
        return -1;
    }
    if (!x->openid && !x->session && x->lo > x->hi) {
        refused(r, REFUSAL_REPORT_INVALID,
                "give openid, session or from and to");
        return -1;
    }
    return 0;
}

/* GET /api/v1/history/export?openid=|session=|from=&to=&format=csv|json */
void api_history_export(struct fcgi_req *r)
{
    struct report_export x;
    char openid[65], session[21], hdr[160];
    struct pg_conn *db = NULL;
    struct pg_res *res = NULL;
    struct kf_str fmt;
    struct kf_buf body;
    struct pg_err e;
    int csv, rc;

    if (!authorized(r))
        return;
    if (!http_query_get(&r->query, "format", &fmt))
        fmt = KF_STR("csv");
    csv = kf_str_eq_c(fmt, "csv");
    if (!csv && !kf_str_eq_c(fmt, "json")) {
        refused(r, REFUSAL_REPORT_INVALID, "format must be csv or json");
        return;
    }
    if (export_params(r, &x, openid, session) || open_db(r, &db) < 0)
        return;
    rc = report_export_query(db, &x, &res, &e);
    pg_close(db);
    if (rc == KF_ETOOBIG) {
        refused(r, REFUSAL_EXPORT_TOO_BIG, NULL);
        return;
    }
    if (rc < 0) {
        api_label_failed(r, "history_export", rc, NULL, NULL);
        return;
    }
    snprintf(hdr, sizeof(hdr), "Content-Disposition: attachment; "
             "filename=\"conversations.%s\"\r\n", csv ? "csv" : "json");
    kf_buf_init(&body, REPORT_CSV_MAX);
    if (csv) {
        rc = report_export_csv(res, &body);
        if (rc == 0)
            fcgi_respond(r, 200, "text/csv; charset=utf-8", hdr,
                         kf_buf_str(&body));
    } else {
        char *text = NULL;
        json_t *a = report_export_json(res);

        if (a && (text = json_dumps(a, JSON_COMPACT)))
            fcgi_respond(r, 200, "application/json; charset=utf-8", hdr,
                         kf_str_c(text));
        else
            rc = KF_ENOMEM;
        free(text);
        json_decref(a);
    }
    if (rc < 0)
        api_label_failed(r, "history_export", rc, NULL, NULL);
    pg_res_free(res);
    kf_buf_release(&body);
}
