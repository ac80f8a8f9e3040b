/* media_keep: how long and how much of the media store is kept. Every
 * stored file is indexed in Redis (P media_files, a sorted set of
 * media_ids by stored_ms, and P media_bytes, the bytes they take; the
 * fetch adds to them, lib/media.c). `wxkf jobs` deletes the files stored
 * before [media] retention_days, and the oldest ones while the store holds
 * more than [media] max_disk_mb; a fetch makes room the same way before it
 * writes. A deleted file takes its P media:<media_id> hash with it, so
 * the API answers no_media for it. Files stored by a version without the
 * index are indexed a bounded step at a time. See docs/media.md. */
#ifndef MEDIA_KEEP_H
#define MEDIA_KEEP_H

#include <stdint.h>

#include "kf.h"
#include "media.h"

/* The script of this module, for media_init. Never fails. */
void media_keep_script_init(struct store_script *sc);

/* Makes room for need more bytes under [media] max_disk_mb by deleting
 * the oldest stored files, at most limit of them. 0 when there is room
 * (always without a quota); KF_ETOOBIG when need alone is over the
 * quota; KF_ELIMIT when limit files went and there is still no room;
 * KF_EIO when a file could not be deleted (it stays indexed);
 * KF_EBACKEND. Deletions are counted in c->removed_quota. */
KF_WUR int media_keep_room(struct media *m, int64_t need, long limit,
                           struct media_counts *c);

/* One bounded step of upkeep at now_ms: indexes up to limit keys of an
 * earlier version's files, deletes up to limit files stored before now -
 * retention_days (c->removed_retention) or past the quota
 * (c->removed_quota), oldest first. Errors as media_keep_room. */
KF_WUR int media_keep_tidy(struct media *m, int64_t now_ms, long limit,
                           struct media_counts *c);

struct media_usage {
    int64_t bytes, files;       /* what the index holds */
    int64_t jobs;               /* media messages not done (P media_jobs) */
};

/* Fills u. KF_EBACKEND. */
KF_WUR int media_keep_usage(struct media *m, struct media_usage *u);

#endif
