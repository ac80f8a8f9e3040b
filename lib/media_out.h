/* media_out: what an agent may send WeChat as media — an image, a voice
 * (AMR or MP3), a video (MP4) or a video's thumbnail (JPEG) — recognised
 * from the bytes themselves (the Content-Type the client sends must
 * agree), and WeChat's limits checked before anything is uploaded:
 * images 2 MiB, voice 2 MiB and 60 s, video 10 MiB, thumbnails 64 KiB.
 * WeChat's customer-service messages have no file type for Official
 * Accounts: nothing else is taken. See docs/api.md (POST /api/v1/media)
 * and docs/media.md. */
#ifndef MEDIA_OUT_H
#define MEDIA_OUT_H

#include "kf.h"
#include "refusal.h"

#define MEDIA_OUT_MAX (10 * 1024 * 1024)    /* the largest: a video */

struct media_out {
    const char *type;       /* WeChat's media/upload type: image, voice,
                               video or thumb (static text) */
    const char *filename;   /* the upload's file name: upload.jpg, ... */
    long ms;                /* a voice's duration, else 0 */
    /* why not (lib/refusal.h, scope REFUSAL_UPLOAD): UNSUPPORTED_MEDIA,
     * IMAGE_TOO_LARGE, VOICE_TOO_LARGE, VIDEO_TOO_LARGE, THUMB_TOO_LARGE,
     * VOICE_TOO_LONG, BAD_VOICE; NULL when accepted */
    const struct refusal *why;
};

/* Checks body, sent with content_type ("image/png; x" compares as
 * "image/png"), as the upload kind asked for: "thumb" for a video's
 * thumbnail, anything else (usually empty) for a media message. Fills
 * out. 0 when WeChat would take it; else KF_EINVAL or KF_ETOOBIG with
 * out->why. */
KF_WUR int media_out_check(struct kf_str content_type, struct kf_str kind,
                           struct kf_str body, struct media_out *out);

#endif
