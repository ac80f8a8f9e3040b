/* archive_sql: the PostgreSQL half of lib/archive — the statements that
 * write a batch (the temporary table wxkf_arch filled by COPY, then one
 * INSERT … ON CONFLICT per target table, keyed by the stream entry id),
 * the monthly partitions, archive_rejects, and the archiver's one
 * connection through lib/pg: opening it with backoff, classifying what
 * failed (the data, or the connection/server), the pipelined batch (sent
 * without waiting, collected later) and the careful path that halves a
 * refused batch until the entry PostgreSQL refuses is alone. Works on
 * the connection fields of struct archive (lib/archive.h). */
#ifndef ARCHIVE_SQL_H
#define ARCHIVE_SQL_H

#include <stddef.h>

#include "archive.h"
#include "archive_entry.h"

#define ARCHIVE_SQL_BACKOFF_MIN_MS 250  /* after a failure; doubles to 5 s */

/* Connects if needed (no attempt while backing off: KF_EBACKEND) and
 * creates the session's temporary table. */
KF_WUR int archive_sql_ready(struct archive *a);
/* Closes the connection (a transaction open is rolled back). Safe twice. */
void archive_sql_drop(struct archive *a);

/* Writes v[0..n) in one transaction, one statement at a time, halving a
 * batch PostgreSQL refuses until the refused entry is alone, which goes
 * to archive_rejects. Entries written are marked done and counted in
 * st. KF_EBACKEND: nothing more could be written (retried later). */
KF_WUR int archive_sql_write(struct archive *a, struct archive_entry **v,
                             size_t n, struct archive_stats *st);

/* Keeps e (ARCHIVE_ENTRY_BAD) in archive_rejects with e->why_bad, marks it done
 * and counts it. KF_EBACKEND when PostgreSQL could not be reached. */
KF_WUR int archive_sql_set_aside(struct archive *a, struct archive_entry *e,
                                 struct archive_stats *st);

/* Starts the batch v[0..n) whose COPY text is in a->next and whose kinds
 * are `kinds`: the months, BEGIN and COPY (waited for), then every
 * statement and COMMIT (sent, not waited for). KF_EPARSE: PostgreSQL
 * refused the data (nothing is open); KF_EBACKEND. */
KF_WUR int archive_sql_start(struct archive *a, struct archive_entry **v,
                             size_t n, unsigned kinds);
/* Reads the results of the batch archive_sql_start sent: 0 when it was
 * committed; KF_EPARSE (refused data), KF_EBACKEND. */
KF_WUR int archive_sql_wait(struct archive *a);

/* v[0..n) were committed: marks them done and counts them in st. */
void archive_sql_written(struct archive *a, struct archive_entry **v,
                         size_t n, struct archive_stats *st);

#endif
