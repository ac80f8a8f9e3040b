/* archive_stream: the Redis half of lib/archive — the stream `P events`
 * read through the consumer group "archiver": creating the group, reading
 * our pending and new entries (XREADGROUP), taking over entries a dead
 * consumer left (XAUTOCLAIM), acknowledging (XACK), and the tidy script
 * (lib/lua/archive_tidy.lua) that trims below what every group still
 * needs, forgets idle consumers and measures the lag. A NOGROUP reply or
 * a new store connection (a fail-over, a restart) makes the next pass
 * create the group again. Through lib/store only (store_cmd, store_run);
 * works on struct archive's store. */
#ifndef ARCHIVE_STREAM_H
#define ARCHIVE_STREAM_H

#include <stddef.h>

#include "archive.h"
#include "archive_entry.h"

#define ARCHIVE_STREAM_CURSOR 48    /* a stream id as text, with its NUL */

/* The entries of one XREADGROUP or XAUTOCLAIM reply: e[0..n) point into
 * the reply, which this owns. */
struct archive_stream_entries {
    struct store_reply *r;
    struct kf_str *f;               /* every entry's names and values */
    struct archive_entry *e;
    size_t n;                       /* entries with an id */
    size_t listed;                  /* elements the reply listed */
};
/* Safe twice. */
void archive_stream_entries_release(struct archive_stream_entries *rd);

/* The claim cursor and the tidy script (lib/lua/archive_tidy.lua) of a
 * (from archive_init). */
void archive_stream_init(struct archive *a);

/* The stream's full key name into out[0..n). KF_ECONFIG if too long. */
KF_WUR int archive_stream_key(const struct archive *a, char *out, size_t n);

/* Creates the group (and the stream) unless done on this connection. */
KF_WUR int archive_stream_group(struct archive *a, const char *key);

/* XREADGROUP of up to a->batch entries after cursor ("0" and after: our
 * pending ones, then cursor becomes the last id read; ">": new ones).
 * On success rd is filled (release it). KF_EBACKEND. */
KF_WUR int archive_stream_read(struct archive *a, const char *key,
                               char cursor[ARCHIVE_STREAM_CURSOR],
                               struct archive_stream_entries *rd);

/* XAUTOCLAIM of up to a->batch entries idle over a->claim_idle_ms from
 * a->claim_cursor; next gets the cursor to go on from ("0-0": done). On
 * success rd is filled (release it). KF_EBACKEND. */
KF_WUR int archive_stream_claim(struct archive *a, const char *key,
                                char next[ARCHIVE_STREAM_CURSOR],
                                struct archive_stream_entries *rd);

/* XACK of every entry of e[0..n) marked done. */
KF_WUR int archive_stream_ack(struct archive *a, const char *key,
                              const struct archive_entry *e, size_t n);

/* The tidy script: with trim, trims the stream below what every group
 * needs (and below now - keep_ms) and forgets our consumers idle a day
 * with nothing pending (stream_group_forget); always measures the lag
 * into *lag and the entries trimmed into *trimmed. KF_EBACKEND. */
KF_WUR int archive_stream_tidy(struct archive *a, int trim,
                               struct archive_lag *lag, long *trimmed);

#endif
