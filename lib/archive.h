/* archive: the event stream into PostgreSQL, exactly once. `wxkf jobs`
 * reads P events through the Redis consumer group "archiver" (one
 * consumer per process, "host:pid"), writes each batch in one
 * transaction (COPY into a temporary table, then one INSERT … ON CONFLICT
 * per target table, keyed by the stream entry id; sent without waiting
 * while the next batch is read) and acknowledges the entries only after
 * COMMIT. An entry delivered twice (a crash between
 * COMMIT and XACK, a claim, two archivers) writes nothing the second
 * time. Entries a dead consumer left pending are claimed (XAUTOCLAIM)
 * once idle for claim_idle_ms. The stream is trimmed only below what
 * every consumer group has acknowledged. See docs/history.md.
 * The pipeline is here; lib/archive_stream is the Redis side,
 * lib/archive_sql the PostgreSQL side, lib/archive_entry the encoding. */
#ifndef ARCHIVE_H
#define ARCHIVE_H

#include <stdint.h>

#include "config.h"
#include "kf.h"
#include "store.h"

#define ARCHIVE_GROUP "archiver"
#define ARCHIVE_MONTHS 64           /* months remembered as ensured */

struct pg_conn;                     /* lib/pg */
struct archive_batch;               /* a batch being written */

/* What is not archived yet. */
struct archive_lag {
    long long pending;      /* read by an archiver, not acknowledged */
    long long undelivered;  /* not read by any archiver yet */
    int64_t oldest_ms;      /* stream time of the oldest of those; 0 none */
    int64_t age_ms;         /* now - oldest_ms when measured; 0 none */
    long groups_behind;     /* other groups needing entries older than
                               [archiver] group_hold_ms: trimmed anyway */
};

/* Counts of passes: archive_pass adds to them (lag is overwritten). */
struct archive_stats {
    long written;           /* entries committed (repeats included) */
    long claimed;           /* taken over from another consumer */
    long rejected;          /* refused by PostgreSQL alone: in
                               archive_rejects, acknowledged */
    long deleted;           /* pending but gone from the stream: acked */
    long batches;           /* transactions committed */
    long trimmed;           /* stream entries trimmed */
    long errors;            /* passes that ended on an error */
    int last_rc;            /* the last pass's rc */
    char sqlstate[6];       /* of the last PostgreSQL error ("" none) */
    int more;               /* the last pass stopped with entries left */
    int lag_known;          /* lag below was measured (at least once) */
    struct archive_lag lag;
};

struct archive {
    struct store *store;            /* borrowed */
    const char *dsn;                /* borrowed (the config's) */
    int enabled;
    long batch;                     /* entries per transaction */
    long batch_ms;                  /* a pass stops reading after this */
    long claim_idle_ms;             /* claim entries idle this long */
    long keep_ms;                   /* archived entries younger than this
                                       stay in the stream */
    long hold_ms;                   /* another group holds trimming back
                                       this long at most (0: no bound) */
    char consumer[128];             /* "host:pid" */
    struct pg_conn *db;             /* NULL while disconnected */
    int64_t db_next_try_ms;         /* no connect before (monotonic) */
    long db_backoff_ms;
    int64_t next_claim_ms;          /* monotonic */
    int64_t next_tidy_ms;           /* monotonic */
    char claim_cursor[48];
    int months[ARCHIVE_MONTHS];     /* year * 12 + month - 1, ensured */
    int nmonths;
    unsigned long connects;         /* PostgreSQL connections made */
    int group_ready;                /* the group exists (as far as we know) */
    unsigned long group_conn;       /* on this connection (store reconnects) */
    char sqlstate[6];               /* of the last PostgreSQL error */
    char error[512];                /* its message (for archive_rejects
                                       only: it may quote data) */
    struct store_script tidy;
    struct kf_buf copy;             /* COPY data, the careful path */
    struct kf_buf next;             /* COPY data of the next batch */
    struct kf_buf sql;              /* statements of the batch started */
    struct archive_batch *inflight; /* sent, results not read yet */
};

/* st and cfg (its dsn) must outlive a. Takes [archiver] from cfg. Does not
 * connect. Never fails. */
void archive_init(struct archive *a, struct store *st,
                  const struct config *cfg);
/* Closes the PostgreSQL connection. Safe twice. */
void archive_release(struct archive *a);

/* One bounded pass: our own pending entries, then (at most once a
 * second) entries other consumers left idle over claim_idle_ms, then new
 * ones, batch by batch, until the stream is drained or batch_ms has
 * passed (then st->more = 1); then trims the stream and measures the
 * lag. Does nothing when [archiver] enabled = 0. KF_EBACKEND when Redis
 * or PostgreSQL failed (nothing is lost: the entries stay pending and
 * the next pass tries again; PostgreSQL is reconnected with backoff).
 * Counts are added to st. */
KF_WUR int archive_pass(struct archive *a, struct archive_stats *st);

/* Measures what is not archived yet (for logs and /metrics). */
KF_WUR int archive_lag(struct archive *a, struct archive_lag *out);

#endif
