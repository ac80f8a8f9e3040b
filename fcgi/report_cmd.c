/* report_cmd: `wxkf report rebuild -c FILE --day YYYY-MM-DD [--to
 * YYYY-MM-DD]` — rebuilds the reports of a day (or of each day of a
 * range, at most 366) from the archive, as `wxkf jobs` does for today
 * and yesterday (lib/report, docs/reports.md). */
#include <stdio.h>
#include <string.h>

#include "fcgi.h"
#include "pg.h"
#include "report.h"

#include "banned.h"

static const char usage[] =
    "usage: wxkf report rebuild -c FILE --day YYYY-MM-DD [--to YYYY-MM-DD]\n"
    "\n"
    "Rebuilds the daily report rows of the day (or of every day from --day\n"
    "to --to, at most 366) from the archived history, in one transaction\n"
    "per day; running it again gives the same rows.\n";

int cmd_report(int argc, char **argv)
{
    const char *path = cli_opt(argc, argv, "-c");
    const char *day = cli_opt(argc, argv, "--day");
    const char *to = cli_opt(argc, argv, "--to");
    const struct refusal *why = NULL;
    struct config cfg;
    struct pg_conn *db = NULL;
    struct pg_err e = { 0, "", "", 0 };
    long lo, hi, d;
    int rc, n;

    if (argc < 3 || strcmp(argv[2], "rebuild") || !path || !day) {
        fputs(usage, argc > 2 && !strcmp(argv[2], "--help") ? stdout
                                                            : stderr);
        return argc > 2 && !strcmp(argv[2], "--help") ? 0 : 2;
    }
    if (report_range(kf_str_c(day), kf_str_c(to ? to : day), &lo, &hi,
                     &why) < 0) {
        fprintf(stderr, "wxkf report: %s\n", why->message);
        return 2;
    }
    if (cli_load(&cfg, path)) {
        config_release(&cfg);
        return 1;
    }
    rc = pg_open(cfg.postgres.dsn, "wxkf-report", PG_USE_CLI, &db, &e);
    for (d = lo; rc == 0 && d <= hi; d++) {
        struct report_hours h = { cfg.api.stats_utc_offset,
                                  cfg.reports.work_start,
                                  cfg.reports.work_end,
                                  cfg.reports.work_days };
        char date[11];

        rc = report_build(db, cfg.wechat.app_id, d, &h, &n, &e);
        report_day_format(d, date);
        if (rc == 0)
            printf("report: %s rebuilt (%d rows)\n", date, n);
    }
    if (rc < 0)
        fprintf(stderr, "wxkf report: %s%s%s\n", kf_strerror(rc),
                *e.msg ? ": " : "", e.msg);
    pg_close(db);
    config_release(&cfg);
    return rc < 0 ? 1 : 0;
}
