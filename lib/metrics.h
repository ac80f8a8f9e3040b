/* metrics: Prometheus metrics summed over every process. Each `wxkf fcgi`
 * worker and `wxkf jobs` process counts into its own fixed-size registry
 * (no Redis, no allocation, no system call while counting) and flushes the
 * deltas now and then to the hash "wxkf:{APPID}:metrics" in one round trip
 * (a Lua script of HINCRBYs, applied at most once per batch even when a
 * reply is lost). GET /metrics reads that hash in one round trip and
 * renders the text exposition format 0.0.4. The families, their types,
 * labels and help live in one static table in metrics.c (docs/metrics.md).
 * Hash fields read back are untrusted: malformed ones are skipped. */
#ifndef METRICS_H
#define METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "kf.h"
#include "store.h"

/* The families (counters and the histogram are counted here; gauges are
 * passed to metrics_render). Use these names: an unknown one is counted
 * into METRICS_SERIES_DROPPED instead. Labels in braces. */
#define METRICS_HTTP_REQUESTS     "wxkf_http_requests_total" /* route,status */
#define METRICS_CALLBACK_DURATION "wxkf_callback_duration_seconds" /* [mode] */
#define METRICS_MESSAGES          "wxkf_messages_total"  /* direction,type */
#define METRICS_ROUTING_OUTCOMES  "wxkf_routing_outcomes_total" /* outcome,
                                                                   policy */
#define METRICS_WECHAT_API_CALLS  "wxkf_wechat_api_calls_total" /* api,
                                                                   errcode */
#define METRICS_TOKEN_REFRESHES   "wxkf_wechat_token_refreshes_total"
/* kind */
#define METRICS_RATELIMIT_REJECTIONS "wxkf_ratelimit_rejections_total"
#define METRICS_REDIS_ERRORS      "wxkf_redis_errors_total"      /* process */
#define METRICS_REDIS_FAILOVERS   "wxkf_redis_failovers_total"   /* process */
#define METRICS_REDIS_WAIT_SHORT  "wxkf_redis_wait_short_total"
#define METRICS_JOURNAL_QUARANTINED "wxkf_journal_quarantined_total"
#define METRICS_POSTGRES_ERRORS   "wxkf_postgres_errors_total"   /* process */
#define METRICS_SLOW_REQUESTS     "wxkf_slow_requests_total"     /* route */
#define METRICS_SERIES_DROPPED    "wxkf_metrics_series_dropped_total"
#define METRICS_MEDIA_REMOVED     "wxkf_media_removed_total"     /* reason */
#define METRICS_MEDIA_QUOTA_REFUSED "wxkf_media_quota_refused_total"
#define METRICS_WECHAT_KF_POLLS   "wxkf_wechat_kf_polls_total"   /* result */
#define METRICS_WECHAT_KF_STEPS   "wxkf_wechat_kf_session_steps_total"
                                                           /* outcome */
/* gauges */
#define METRICS_QUEUE_LENGTH       "wxkf_queue_length"             /* group */
#define METRICS_AGENTS             "wxkf_agents"                   /* status */
#define METRICS_SESSIONS_ACTIVE    "wxkf_sessions_active"
#define METRICS_AGENT_ONLINE_RATE  "wxkf_agent_online_rate"
#define METRICS_ARCHIVER_LAG       "wxkf_archiver_lag_seconds"
#define METRICS_ARCHIVER_PENDING   "wxkf_archiver_pending"
#define METRICS_WECHAT_BUDGET_LEFT "wxkf_wechat_api_budget_left"   /* api */
#define METRICS_MEDIA_BYTES        "wxkf_media_bytes"
#define METRICS_MEDIA_FILES        "wxkf_media_files"
#define METRICS_MEDIA_QUOTA_BYTES  "wxkf_media_quota_bytes"
#define METRICS_MEDIA_JOBS         "wxkf_media_jobs"

/* Limits. A label set is at most METRICS_LABELS_MAX bytes (buffers for
 * metrics_labels: METRICS_LABELS_MAX + 1); one escaped value at most
 * METRICS_VALUE_MAX bytes (longer values are cut); at most
 * METRICS_PAIRS_MAX pairs. A registry holds METRICS_SERIES_MAX series,
 * METRICS_ARENA bytes of label sets and METRICS_VALUES counters (a
 * counter series takes 1, a histogram series 14); past any of them a new
 * series is counted into METRICS_SERIES_DROPPED. metrics_render reads at
 * most METRICS_FIELDS_MAX hash fields. */
#define METRICS_LABELS_MAX 160
#define METRICS_VALUE_MAX 64
#define METRICS_PAIRS_MAX 8
#define METRICS_SERIES_MAX 512
#define METRICS_ARENA 32768
#define METRICS_VALUES 4096
#define METRICS_FIELDS_MAX 20000

/* Internal to metrics.c (here because the caller allocates). */
struct metrics_series {
    uint32_t hash;
    uint16_t fam, label_off, label_len, val;
};

/* About 110 KiB: keep it in static storage or inside a heap object, not
 * in a small stack frame. One per process, not thread-safe (our
 * processes are single-threaded). Call metrics_init after fork(), not
 * before: as a safety net, the first flush in a child notices the new
 * pid, drops everything the registry held (the parent's counts, and any
 * the child made before that flush) and takes a new identity. */
struct metrics {
    struct metrics_series series[METRICS_SERIES_MAX];
    uint16_t slot[2 * METRICS_SERIES_MAX];   /* series index + 1; 0 = free */
    char arena[METRICS_ARENA];               /* label sets, not terminated */
    int64_t cur[METRICS_VALUES];             /* counted since the batch */
    int64_t pend[METRICS_VALUES];            /* the batch being delivered */
    int64_t dropped, dropped_pend;
    size_t nseries, arena_used, vals_used;
    uint64_t seq;                            /* of the batch in pend */
    int64_t last_flush_ms;
    int dirty, has_pend;
    long pid;
    char id[17];                             /* random, hex: this process */
    struct store_script script;              /* lib/lua/metrics.lua */
};

void metrics_init(struct metrics *m);          /* never fails */
void metrics_release(struct metrics *m);       /* safe twice */

/* Counts by (> 0; else nothing) into counter family name with the label
 * set labels (built by metrics_labels: sorted by name, escaped, no braces;
 * "" or NULL for none). Constant time in practice, no allocation, no
 * system call. An unknown or non-counter name, labels that are not a
 * valid set for the family, or a full registry count `by` into
 * METRICS_SERIES_DROPPED instead. Counters saturate at INT64_MAX. */
void metrics_inc(struct metrics *m, const char *name, const char *labels,
                 int64_t by);
/* Observes seconds (NaN and negatives count as 0; capped at 10^6) in
 * histogram family name: buckets le = 0.001 0.0025 0.005 0.01 0.02 0.05
 * 0.1 0.25 0.5 1 2.5 5 +Inf, _sum (kept as whole microseconds), _count.
 * Otherwise as metrics_inc (a refused observation counts 1 dropped). */
void metrics_observe(struct metrics *m, const char *name, const char *labels,
                     double seconds);

/* Writes to out (len bytes) the label set of npairs (name, value) pairs
 * given as 2 * npairs const char * arguments: sorted by name, values
 * escaped (\\ \" \n), other control bytes and invalid UTF-8 as '?',
 * each value cut to METRICS_VALUE_MAX bytes at a character boundary.
 * npairs 0 gives "". KF_EINVAL for a bad or duplicate name ("le" and
 * "__*" are reserved), a NULL value, npairs outside 0..METRICS_PAIRS_MAX,
 * or a result longer than METRICS_LABELS_MAX or len - 1; then out (if len
 * > 0) holds a set metrics_inc refuses, so a series is never merged into
 * the wrong one. Example: metrics_labels(l, sizeof(l), 2, "route",
 * "/wechat", "status", "200") -> route="/wechat",status="200". */
KF_WUR int metrics_labels(char *out, size_t len, int npairs, ...);

/* 1 when something waits to be flushed (new counts or a batch that
 * failed) and interval_ms passed since the last flush attempt. */
int metrics_due(const struct metrics *m, int64_t now_mono_ms,
                int64_t interval_ms);

/* Sends the batch to <s->prefix>metrics in one round trip (two the first
 * time a server sees the script). The batch is every nonzero delta
 * counted since the last successful flush; after a failure the same
 * batch, with the same sequence number, is sent again as is — Redis
 * applies a batch at most once, even if a failed attempt reached it —
 * and what was counted meanwhile follows in the next flush. 0 (also when
 * there is nothing to send), KF_EBACKEND (kept for the next try),
 * KF_ENOMEM/KF_ETOOBIG. Records now_mono_ms as the last attempt. */
KF_WUR int metrics_flush(struct metrics *m, struct store *s,
                         int64_t now_mono_ms);

/* A gauge value supplied by the caller of metrics_render. name must be a
 * gauge family; labels as for metrics_inc (NULL = none). Borrowed. */
struct metrics_gauge {
    const char *name;
    const char *labels;
    double value;
};

/* Appends to out the exposition text (Content-Type: text/plain;
 * version=0.0.4) of the hash <s->prefix>metrics plus the ng gauges of g:
 * families in name order, each with # HELP and # TYPE (also when it has
 * no sample), series sorted by label set. Malformed fields, unknown
 * families, invalid gauges and duplicates are skipped. One round trip.
 * KF_EBACKEND, KF_ENOMEM, or KF_ETOOBIG past out->max; on error out may
 * hold part of the text. */
KF_WUR int metrics_render(struct store *s, const struct metrics_gauge *g,
                          size_t ng, struct kf_buf *out);

#endif
