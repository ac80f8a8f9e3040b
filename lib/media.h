/* media: the media store — the images, voice and video users send, which
 * WeChat keeps only 3 days. `wxkf jobs` reads the msg_in entries of P
 * events through the Redis consumer group "media", fetches each MediaId
 * (and a video's ThumbMediaId) with media/get, writes the bytes
 * atomically under [media] dir as <YYYY>/<MM>/<media_id>.<ext> — an
 * AMR voice also as <media_id>.wav next to it, which browsers play
 * (lib/voice.c) — and records them (P media:<media_id>, a media_stored
 * or media_failed event).
 * The REST API serves a stored file to an admin, or to the agent whose
 * session the user is in. See docs/media.md. */
#ifndef MEDIA_H
#define MEDIA_H

#include <stdint.h>

#include "refusal.h"

#include "config.h"
#include "kf.h"
#include "store.h"
#include "wx_api.h"

#define MEDIA_ID_MAX 128        /* [A-Za-z0-9_-]{1,128} */
#define MEDIA_GROUP "media"     /* the consumer group on P events */
#define MEDIA_MAX_ATTEMPTS 40   /* transient failures before giving up */

struct media {
    struct store *store;        /* borrowed */
    struct wx_api *api;         /* borrowed; NULL = serving only */
    const struct config *cfg;   /* borrowed: [media], [wechat] timeouts */
    char consumer[128];         /* "hostname:pid" */
    long idle_ms;               /* claim another consumer's entries that
                                   were idle this long (60000) */
    long max_fetches;           /* fetches started per pass (10) */
    long budget_ms;             /* no fetch starts after this long in a
                                   pass (2000) */
    int64_t pause_until_ms;     /* after an I/O error: no pass before */
    char claim_cursor[48];      /* XAUTOCLAIM's */
    struct store_script script;    /* lib/lua/media.lua */
    struct store_script keep;      /* lib/lua/media_keep.lua (media_keep) */
};

/* cfg, st and api must outlive m. Never fails. */
void media_init(struct media *m, struct store *st, struct wx_api *api,
                const struct config *cfg);
void media_release(struct media *m);              /* safe twice */

/* 1 if id is a media_id we accept: [A-Za-z0-9_-]{1,128}; else 0. Only
 * such an id ever becomes part of a key or a path. */
int media_id_ok(struct kf_str id);

/* 1 if rel is a path we write or read under [media] dir: segments of
 * [A-Za-z0-9_.-] that are not "." or "..", at most 512 bytes; else 0. */
int media_rel_ok(const char *rel);

/* The file extension for a Content-Type ("image/jpeg; x=y" -> "jpg"):
 * jpg, png, gif, amr, speex, mp3, wav, mp4, else "bin". Static text. */
const char *media_ext(struct kf_str content_type);
/* The Content-Type we store and serve for an extension of media_ext
 * ("bin" -> "application/octet-stream"). Static text. */
const char *media_content_type(const char *ext);

/* Writes len bytes to dir/rel atomically: a temporary file in the same
 * directory, fsync, rename, fsync of the directory. Missing directories
 * are created (0750). rel must not contain "..". KF_EIO on failure (the
 * temporary file is removed). */
KF_WUR int media_write_file(const char *dir, const char *rel,
                            const void *data, size_t len);

struct media_counts {
    long acked;         /* entries that were not media (or deleted) */
    long queued;        /* media messages that became jobs */
    long stored;        /* files written and recorded */
    long failed;        /* media_failed recorded (permanent) */
    long retried;       /* transient failures, left pending */
    long waiting;       /* pending, not tried this pass (backoff, budget) */
    long refused_quota; /* failed: larger than [media] max_disk_mb */
    long playable;      /* stored voices with a playable (WAV) copy */
    long unplayable;    /* AMR voices the decoder refused: stored alone */
    long removed_retention, removed_quota;  /* files deleted (media_keep) */
};

/* One bounded pass: reads up to limit new entries of P events (and
 * entries an earlier version left pending, XAUTOCLAIM after idle_ms) and
 * acknowledges them all at once, media messages becoming jobs in P
 * media_jobs; then works on up to limit due jobs (leased for idle_ms), at
 * most max_fetches fetches within budget_ms. A job waiting for a retry
 * waits in P media_jobs, never in the stream. When [media] fetch = 0 or
 * m->api is NULL it only drops the group (and notes that fetching was
 * off, so entries appended meanwhile are never fetched). Returns
 * KF_EBACKEND when Redis failed (nothing is lost: the jobs stay),
 * KF_EIO when the media dir could not be written (then passes pause for
 * 10 s). Counts are added to c. */
KF_WUR int media_fetch_pass(struct media *m, int64_t now_ms, long limit,
                            struct media_counts *c);

/* An open stored file, for the API to stream. */
struct media_file {
    int fd;                     /* -1 when closed */
    uint64_t size;
    char content_type[64];
    char ext[8];
    /* why not (lib/refusal.h, scope REFUSAL_MEDIA): BAD_MEDIA_ID,
     * BAD_MEDIA_FORMAT, MEDIA_NOT_YOURS, NO_MEDIA, NO_PLAYABLE,
     * MEDIA_FAILED; NULL when opened or when the failure is no refusal
     * (Redis down) */
    const struct refusal *why;
};

void media_file_init(struct media_file *f);
void media_file_release(struct media_file *f);    /* closes; safe twice */

/* Opens the stored file of media_id for agent ("" = an admin, who may
 * see any): the original when format is empty, its playable copy when
 * format is "wav" (a voice's WAV). KF_EINVAL + f->why BAD_MEDIA_ID
 * (malformed), BAD_MEDIA_FORMAT (another format) or MEDIA_NOT_YOURS (the
 * user is not in one of the agent's sessions); KF_ENOTFOUND + why
 * NO_MEDIA (unknown, not stored yet, or the file is gone), NO_PLAYABLE
 * (stored without a playable copy) or MEDIA_FAILED; KF_EBACKEND when
 * Redis is down. Never opens anything outside [media] dir (checked with
 * realpath, no symlink at the end). */
KF_WUR int media_open(struct media *m, struct kf_str media_id,
                      struct kf_str format, const char *agent,
                      struct media_file *f);
/* Reads up to cap bytes; *n = 0 at the end. KF_EIO on error. */
KF_WUR int media_file_read(struct media_file *f, void *buf, size_t cap,
                           size_t *n);

#endif
