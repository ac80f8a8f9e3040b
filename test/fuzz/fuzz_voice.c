/* fuzz_voice: lib/voice — AMR-NB files, as `wxkf jobs` gets users' voice
 * messages from WeChat, measured (voice_amr_ms) and decoded into WAV
 * (voice_amr_to_wav, opencore-amrnb's decoder); the same bytes as a
 * Speex voice (voice_speex_to_wav, libspeex's decoder, both framings);
 * and as an agent's MP3 upload (voice_mp3_ms).
 *
 * Input: data[0] flags, then the bytes.
 *   flags & 1: the harness puts the "#!AMR\n" header in front of the
 *              bytes (so the fuzzer explores frames from the start);
 *   otherwise the bytes are the whole file.
 * Checks:
 *  - both verbs give the same answer and the same duration;
 *  - accepted: 20 ms a frame, 0 < ms <= VOICE_MAX_MS, the WAV is its
 *    44-byte header (RIFF/WAVE, data size = 2 bytes a sample) and 160
 *    samples a frame;
 *  - refused: only KF_EPARSE or KF_ETOOBIG, the WAV buffer empty;
 *  - as Speex: accepted, 20 ms a frame within VOICE_MAX_MS, a 16 kHz WAV
 *    of 320 samples a frame with consistent sizes; else those two codes,
 *    the WAV empty and ms 0;
 *  - as MP3: 0 < ms <= VOICE_MAX_MS when accepted, else KF_EPARSE or
 *    KF_ETOOBIG with ms 0. */
#include <string.h>

#include "fuzz.h"
#include "voice.h"

static uint32_t le32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;

    return u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 |
           (uint32_t)u[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char file[VOICE_AMR_MAX + 64];
    struct kf_buf wav;
    struct kf_str in;
    long ms = -1, ms2 = -1;
    size_t n = 0;
    int rc, rc2;

    if (size < 1)
        return 0;
    if (data[0] & 1) {
        memcpy(file, "#!AMR\n", 6);
        n = 6;
    }
    if (size - 1 > sizeof(file) - n)
        return 0;
    memcpy(file + n, data + 1, size - 1);
    in = (struct kf_str){ file, n + size - 1 };

    kf_buf_init(&wav, VOICE_WAV_MAX);
    rc = voice_amr_ms(in, &ms);
    rc2 = voice_amr_to_wav(in, &wav, &ms2);
    FZ_CHECK(rc == rc2 && ms == ms2);
    if (rc == 0) {
        FZ_CHECK(ms > 0 && ms <= VOICE_MAX_MS && ms % VOICE_FRAME_MS == 0);
        FZ_CHECK(wav.len == VOICE_WAV_HEADER + (size_t)ms / 20 * 320);
        FZ_CHECK(memcmp(wav.p, "RIFF", 4) == 0 &&
                 memcmp(wav.p + 8, "WAVEfmt ", 8) == 0 &&
                 memcmp(wav.p + 36, "data", 4) == 0);
        FZ_CHECK(le32(wav.p + 40) == wav.len - VOICE_WAV_HEADER);
        FZ_CHECK(le32(wav.p + 4) == wav.len - 8);
    } else {
        FZ_CHECK(rc == KF_EPARSE || rc == KF_ETOOBIG);
        FZ_CHECK(wav.len == 0);
    }
    kf_buf_release(&wav);
    /* the same bytes as Speex (no AMR header: flag 1 clear) */
    kf_buf_init(&wav, VOICE_SPEEX_WAV_MAX);
    rc = voice_speex_to_wav(in, &wav, &ms);
    if (rc == 0) {
        FZ_CHECK(ms > 0 && ms <= VOICE_MAX_MS && ms % VOICE_FRAME_MS == 0);
        FZ_CHECK(wav.len == VOICE_WAV_HEADER + (size_t)ms / 20 * 640);
        FZ_CHECK(le32(wav.p + 24) == VOICE_SPEEX_RATE);
        FZ_CHECK(le32(wav.p + 40) == wav.len - VOICE_WAV_HEADER);
        FZ_CHECK(le32(wav.p + 4) == wav.len - 8);
    } else {
        FZ_CHECK(rc == KF_EPARSE || rc == KF_ETOOBIG);
        FZ_CHECK(wav.len == 0 && ms == 0);
    }
    kf_buf_release(&wav);
    rc = voice_mp3_ms(in, &ms);
    FZ_CHECK(rc == 0 ? ms > 0 && ms <= VOICE_MAX_MS
                     : (rc == KF_EPARSE || rc == KF_ETOOBIG) && ms == 0);
    return 0;
}
