/* voice: voice files. WeChat sends users' voice as AMR-NB (Format=amr:
 * the "#!AMR\n" storage format of RFC 4867, 20 ms frames at 8 kHz) or
 * Speex wideband (Format=speex, 20 ms frames at 16 kHz), which browsers
 * cannot play; this module decodes such a file into WAV (PCM, 16-bit,
 * mono, a 44-byte header, 8 or 16 kHz). It also measures an AMR
 * file's duration without decoding it, and an MP3 file's by its frame
 * headers: an agent's voice upload is checked against WeChat's 60 s
 * before it goes to WeChat. It is the only user of the opencore-amrnb
 * and libspeex libraries. Input is untrusted: bounded in size and duration, every
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
#define VOICE_SPEEX_MAX (512 * 1024)  /* bytes of Speex we decode */
#define VOICE_SPEEX_RATE 16000        /* wideband */
#define VOICE_SPEEX_FRAME 60          /* bytes of a frame without framing */
/* the largest WAV of a Speex file: 60 s at 16 kHz + header */
#define VOICE_SPEEX_WAV_MAX (VOICE_WAV_HEADER + \
                             VOICE_MAX_MS / 1000 * VOICE_SPEEX_RATE * 2)

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

/* Decodes a Speex wideband file into wav (reset first; its cap must
 * allow VOICE_SPEEX_WAV_MAX, else KF_ETOOBIG) at 16 kHz. Two framings
 * are taken: "audio/x-speex-with-header-byte" (each block starts with
 * its length in one byte, then one or more frames; the blocks must tile
 * the file exactly), which is how WeChat serves its speex voice, and
 * else bare frames of VOICE_SPEEX_FRAME bytes (the file's size a
 * multiple of it), how WeChat's own published decoder reads them.
 * KF_EPARSE when neither framing fits or a frame does not decode (a
 * corrupt stream), KF_ETOOBIG over VOICE_SPEEX_MAX bytes or VOICE_MAX_MS;
 * KF_ENOMEM. *ms = the duration (20 ms a frame). wav is empty on error. */
KF_WUR int voice_speex_to_wav(struct kf_str spx, struct kf_buf *wav,
                              long *ms);

/* The duration of an MP3 file (MPEG-1/2/2.5 Layer III) in ms: an ID3v2
 * tag at the start and an ID3v1 tag at the end are skipped, every byte
 * between must be a frame. KF_EPARSE when it is not one (no frame, a
 * byte that starts none, a frame cut short), KF_ETOOBIG over
 * VOICE_MAX_MS. */
KF_WUR int voice_mp3_ms(struct kf_str mp3, long *ms);

#endif
