/* voice: voice files. WeChat sends users' voice as AMR-NB (Format=amr:
 * the "#!AMR\n" storage format of RFC 4867, 20 ms frames at 8 kHz),
 * which browsers cannot play; this module decodes such a file into WAV
 * (PCM, 16-bit, 8 kHz, mono, a 44-byte header). It also measures an AMR
 * file's duration without decoding it, and an MP3 file's by its frame
 * headers: an agent's voice upload is checked against WeChat's 60 s
 * before it goes to WeChat. It is the only user of the opencore-amrnb
 * library. Input is untrusted: bounded in size and duration, every
 * frame's type checked before it is decoded. See docs/media.md. */
#ifndef VOICE_H
#define VOICE_H

#include <stddef.h>

#include "kf.h"

#define VOICE_AMR_MAX (256 * 1024)  /* bytes of AMR we decode */
#define VOICE_MAX_MS 60000          /* WeChat's voice messages: <= 60 s */
#define VOICE_FRAME_MS 20
#define VOICE_RATE 8000             /* samples a second */
#define VOICE_WAV_HEADER 44
/* the largest WAV we write: VOICE_MAX_MS of 16-bit samples + header */
#define VOICE_WAV_MAX (VOICE_WAV_HEADER + VOICE_MAX_MS / 1000 * VOICE_RATE * 2)

/* The duration of an AMR-NB file in ms (20 ms a frame, NO_DATA frames
 * included). KF_EPARSE when it is not one: no "#!AMR\n" header, no
 * frame, a frame of a reserved type or with the F bit set, a last frame
 * cut short; KF_ETOOBIG over VOICE_AMR_MAX bytes or VOICE_MAX_MS. */
KF_WUR int voice_amr_ms(struct kf_str amr, long *ms);

/* Decodes an AMR-NB file into wav (reset first; its cap must allow
 * VOICE_WAV_MAX, else KF_ETOOBIG). Errors as voice_amr_ms, checked before
 * anything is decoded, and KF_ENOMEM. *ms = the duration. wav is empty on
 * error. */
KF_WUR int voice_amr_to_wav(struct kf_str amr, struct kf_buf *wav, long *ms);

/* The duration of an MP3 file (MPEG-1/2/2.5 Layer III) in ms: an ID3v2
 * tag at the start and an ID3v1 tag at the end are skipped, every byte
 * between must be a frame. KF_EPARSE when it is not one (no frame, a
 * byte that starts none, a frame cut short), KF_ETOOBIG over
 * VOICE_MAX_MS. */
KF_WUR int voice_mp3_ms(struct kf_str mp3, long *ms);

#endif
