/* archive: the event stream into PostgreSQL, exactly once — the pipeline
 * (lib/archive_stream reads and acknowledges, lib/archive_sql writes,
 * lib/archive_entry encodes). */
#include "archive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive_entry.h"
#include "archive_sql.h"
#include "archive_stream.h"

#include "banned.h"

#define CLAIM_EVERY_MS 1000
#define TIDY_EVERY_MS 1000

/* --- init ---------------------------------------------------------------- */

void archive_init(struct archive *a, struct store *st,
                  const struct config *cfg)
{
    char host[64];

    memset(a, 0, sizeof(*a));
    a->store = st;
    a->dsn = cfg->postgres.dsn;
    a->enabled = cfg->archiver.enabled != 0;
    a->batch = cfg->archiver.batch;
    a->batch_ms = cfg->archiver.batch_ms;
    a->claim_idle_ms = cfg->archiver.claim_idle_ms;
    a->keep_ms = cfg->archiver.keep_ms;
    a->hold_ms = cfg->archiver.group_hold_ms;
    a->db_backoff_ms = ARCHIVE_SQL_BACKOFF_MIN_MS;
    if (gethostname(host, sizeof(host)) < 0)
        snprintf(host, sizeof(host), "host");
    host[sizeof(host) - 1] = '\0';
    snprintf(a->consumer, sizeof(a->consumer), "%s:%ld", host,
             (long)getpid());
    archive_stream_init(a);
    kf_buf_init(&a->copy, ARCHIVE_ENTRY_COPY_MAX);
    kf_buf_init(&a->next, ARCHIVE_ENTRY_COPY_MAX);
    kf_buf_init(&a->sql, 16384);
}

static void batch_free(struct archive_batch *b);

void archive_release(struct archive *a)
{
    archive_sql_drop(a);        /* a batch in flight is rolled back */
    batch_free(a->inflight);
    a->inflight = NULL;
    kf_buf_release(&a->copy);
    kf_buf_release(&a->next);
    kf_buf_release(&a->sql);
}

/* --- the pipeline ----------------------------------------------------------
 * A batch's statements and its COMMIT go to PostgreSQL in one message and
 * are not waited for: meanwhile the next batch is read from Redis, parsed
 * and formatted. Its results are read (and its entries acknowledged) just
 * before the next batch is started, or at the end of the pass. */

struct archive_batch {
    struct archive_stream_entries rd;   /* the entries and their reply */
    struct archive_entry **v;   /* the `good` ones */
    size_t good;
    unsigned kinds;
    int claimed;                /* taken over from another consumer */
};

static void batch_free(struct archive_batch *b)
{
    if (!b)
        return;
    archive_stream_entries_release(&b->rd);
    free(b->v);
    free(b);
}

/* Takes what rd holds, even on error. */
static int batch_new(struct archive_stream_entries *rd, int claimed,
                     struct archive_batch **out)
{
    struct archive_batch *b = calloc(1, sizeof(*b));
    size_t i;

    *out = NULL;
    if (!b) {
        archive_stream_entries_release(rd);
        return KF_ENOMEM;
    }
    b->rd = *rd;
    memset(rd, 0, sizeof(*rd));
    b->claimed = claimed;
    b->v = calloc(b->rd.n ? b->rd.n : 1, sizeof(*b->v));
    if (!b->v) {
        batch_free(b);
        return KF_ENOMEM;
    }
    for (i = 0; i < b->rd.n; i++)
        if (b->rd.e[i].kind != ARCHIVE_ENTRY_GONE &&
            b->rd.e[i].kind != ARCHIVE_ENTRY_BAD)
            b->v[b->good++] = &b->rd.e[i];
    *out = b;
    return 0;
}

/* Acknowledges what b wrote (or set aside), counts it and frees b. */
static int batch_done(struct archive *a, const char *key,
                      struct archive_batch *b, struct archive_stats *st)
{
    const struct archive_entry *e = b->rd.e;
    size_t i;
    int rc;

    for (i = 0; i < b->rd.n; i++)
        if (b->claimed && e[i].done && e[i].kind != ARCHIVE_ENTRY_GONE)
            st->claimed++;
    rc = archive_stream_ack(a, key, e, b->rd.n);
    batch_free(b);
    return rc;
}

/* Entries gone from the stream are acknowledged; those PostgreSQL could
 * never take are set aside (the connection must be idle). */
static int batch_odd(struct archive *a, struct archive_batch *b,
                     struct archive_stats *st)
{
    struct archive_entry *e = b->rd.e;
    size_t i;
    int rc = 0;

    for (i = 0; i < b->rd.n && rc == 0; i++) {
        if (e[i].kind == ARCHIVE_ENTRY_GONE) {
            e[i].done = 1;
            st->deleted++;
        } else if (e[i].kind == ARCHIVE_ENTRY_BAD) {
            rc = archive_sql_set_aside(a, &e[i], st);
        }
    }
    return rc;
}

/* Finishes the batch in flight, if any: its results, the careful path
 * if PostgreSQL refused it, its acknowledgement. */
static int flush(struct archive *a, const char *key, struct archive_stats *st)
{
    struct archive_batch *b = a->inflight;
    int rc, rc2;

    if (!b)
        return 0;
    a->inflight = NULL;
    rc = a->db ? archive_sql_wait(a) : KF_EBACKEND;
    if (rc == 0)
        archive_sql_written(a, b->v, b->good, st);
    else if (rc == KF_EPARSE)
        rc = archive_sql_write(a, b->v, b->good, st);
    rc2 = batch_done(a, key, b, st);
    return rc < 0 ? rc : rc2;
}

/* Writes the entries rd holds (and takes them, even on error). They are
 * acknowledged when written, by this call or a later flush(). */
static int submit(struct archive *a, const char *key,
                  struct archive_stream_entries *rd, int claimed,
                  struct archive_stats *st)
{
    struct archive_batch *b;
    int rc = batch_new(rd, claimed, &b);

    if (rc == 0)
        rc = archive_entry_copy(b->v, b->good, &a->next, &b->kinds);
    if (rc == 0 || rc == KF_EPARSE)
        rc = flush(a, key, st) < 0 ? KF_EBACKEND : rc;
    if (rc == 0 || rc == KF_EPARSE)
        rc = batch_odd(a, b, st) < 0 ? KF_EBACKEND : rc;
    if (rc == KF_EPARSE)                /* too big: the careful path */
        rc = archive_sql_write(a, b->v, b->good, st);
    else if (rc == 0 && b->good) {
        rc = archive_sql_start(a, b->v, b->good, b->kinds);
        if (rc == 0) {
            a->inflight = b;
            return 0;
        }
        if (rc == KF_EPARSE)
            rc = archive_sql_write(a, b->v, b->good, st);
    }
    if (b) {
        int rc2 = batch_done(a, key, b, st);

        if (rc == 0)
            rc = rc2;
    }
    return rc;
}

/* Reads from `from` ("0" and after: our pending; ">": new) batch by
 * batch until fewer than a batch come back or the deadline passes. */
static int drain(struct archive *a, const char *key, const char *from,
                 int64_t deadline, struct archive_stats *st)
{
    char cursor[ARCHIVE_STREAM_CURSOR];

    snprintf(cursor, sizeof(cursor), "%s", from);
    for (;;) {
        struct archive_stream_entries rd;
        size_t n;
        int rc = archive_stream_read(a, key, cursor, &rd);

        if (rc < 0)
            return rc;
        n = rd.listed;
        if (n)
            rc = submit(a, key, &rd, 0, st);
        if (rc < 0 || n < (size_t)a->batch)
            return rc;
        if (kf_mono_ms() >= deadline) {
            st->more = 1;
            return 0;
        }
    }
}

/* Takes over what other consumers left pending over claim_idle_ms. */
static int claim(struct archive *a, const char *key, int64_t deadline,
                 struct archive_stats *st)
{
    for (;;) {
        char cursor[ARCHIVE_STREAM_CURSOR];
        struct archive_stream_entries rd;
        int rc = archive_stream_claim(a, key, cursor, &rd);

        if (rc < 0)
            return rc;
        if (rd.listed)
            rc = submit(a, key, &rd, 1, st);
        if (rc == 0)
            snprintf(a->claim_cursor, sizeof(a->claim_cursor), "%s", cursor);
        if (rc < 0 || !strcmp(a->claim_cursor, "0-0"))
            return rc;
        if (kf_mono_ms() >= deadline) {
            st->more = 1;
            return 0;
        }
    }
}

int archive_lag(struct archive *a, struct archive_lag *out)
{
    long trimmed = 0;

    memset(out, 0, sizeof(*out));
    return archive_stream_tidy(a, 0, out, &trimmed);
}

/* --- the pass ------------------------------------------------------------ */

int archive_pass(struct archive *a, struct archive_stats *st)
{
    int64_t t0 = kf_mono_ms(), deadline = t0 + a->batch_ms;
    long acked = st->written + st->rejected + st->deleted, trimmed = 0;
    char key[160];
    int rc, rc2;

    st->more = 0;
    if (!a->enabled)
        return 0;
    a->sqlstate[0] = '\0';
    rc = archive_stream_key(a, key, sizeof(key));
    if (rc == 0)
        rc = archive_sql_ready(a);
    if (rc == 0)
        rc = archive_stream_group(a, key);
    if (rc == 0)
        rc = drain(a, key, "0", deadline, st);
    if (rc == 0 && !st->more && t0 >= a->next_claim_ms) {
        rc = claim(a, key, deadline, st);
        a->next_claim_ms = t0 + CLAIM_EVERY_MS;
    }
    if (rc == 0 && !st->more)
        rc = drain(a, key, ">", deadline, st);
    rc2 = flush(a, key, st);
    if (rc == 0)
        rc = rc2;
    if (st->written + st->rejected + st->deleted != acked ||
        t0 >= a->next_tidy_ms) {
        rc2 = archive_stream_tidy(a, 1, &st->lag, &trimmed);
        if (rc2 == 0) {
            st->lag_known = 1;
            st->trimmed += trimmed;
            a->next_tidy_ms = t0 + TIDY_EVERY_MS;
        }
        if (rc == 0)
            rc = rc2;
    }
    if (rc < 0)
        st->errors++;
    snprintf(st->sqlstate, sizeof(st->sqlstate), "%s",
             rc < 0 ? a->sqlstate : "");
    st->last_rc = rc;
    return rc;
}
