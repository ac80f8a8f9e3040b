/* voice: AMR-NB files to WAV (opencore-amrnb's decoder). */
#include "voice.h"

#include <stdint.h>
#include <string.h>

#include <opencore-amrnb/interf_dec.h>

#include "banned.h"

#define AMR_MAGIC "#!AMR\n"
#define AMR_MAGIC_LEN 6
#define FRAME_SAMPLES 160           /* 20 ms at 8 kHz */
#define MAX_FRAMES (VOICE_MAX_MS / VOICE_FRAME_MS)

/* Bytes of a frame, its table-of-contents byte included, by frame type
 * (RFC 4867 section 5.3 / 3GPP TS 26.101): the 8 modes 4.75..12.2
 * kbit/s, SID, then 9..14 not used in files (0: refused), 15 NO_DATA. */
static const unsigned char frame_len[16] = {
    13, 14, 16, 18, 20, 21, 27, 32, 6, 0, 0, 0, 0, 0, 0, 1
};

/* Walks the frames: *frames = how many. The checks of voice_amr_ms. */
static int count_frames(struct kf_str amr, long *frames)
{
    const unsigned char *p = (const unsigned char *)amr.p;
    size_t at = AMR_MAGIC_LEN;
    long n = 0;

    *frames = 0;
    if (amr.len > VOICE_AMR_MAX)
        return KF_ETOOBIG;
    if (amr.len < AMR_MAGIC_LEN || memcmp(p, AMR_MAGIC, AMR_MAGIC_LEN))
        return KF_EPARSE;
    while (at < amr.len) {
        unsigned toc = p[at], len = frame_len[(toc >> 3) & 15];

        if ((toc & 0x80) || len == 0 || amr.len - at < len)
            return KF_EPARSE;   /* F bit, reserved type, cut short */
        if (++n > MAX_FRAMES)
            return KF_ETOOBIG;
        at += len;
    }
    if (n == 0)
        return KF_EPARSE;
    *frames = n;
    return 0;
}

int voice_amr_ms(struct kf_str amr, long *ms)
{
    long frames = 0;
    int rc = count_frames(amr, &frames);

    *ms = frames * VOICE_FRAME_MS;
    return rc;
}

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)((v >> 8) & 0xff);
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

/* The canonical 44-byte header of PCM 16-bit 8 kHz mono. */
static void wav_header(unsigned char *h, uint32_t data_len)
{
    memcpy(h, "RIFF", 4);
    put32(h + 4, 36 + data_len);
    memcpy(h + 8, "WAVEfmt ", 8);
    put32(h + 16, 16);                  /* the fmt chunk's size */
    put16(h + 20, 1);                   /* PCM */
    put16(h + 22, 1);                   /* mono */
    put32(h + 24, VOICE_RATE);
    put32(h + 28, VOICE_RATE * 2);      /* bytes a second */
    put16(h + 32, 2);                   /* bytes a sample frame */
    put16(h + 34, 16);                  /* bits a sample */
    memcpy(h + 36, "data", 4);
    put32(h + 40, data_len);
}

/* Appends the decoded frames (already checked by count_frames). */
static int decode(struct kf_str amr, struct kf_buf *wav)
{
    const unsigned char *p = (const unsigned char *)amr.p;
    size_t at = AMR_MAGIC_LEN;
    short pcm[FRAME_SAMPLES];
    unsigned char le[FRAME_SAMPLES * 2];
    void *dec = Decoder_Interface_init();
    int rc = 0, i;

    if (!dec)
        return KF_ENOMEM;
    while (rc == 0 && at < amr.len) {
        Decoder_Interface_Decode(dec, p + at, pcm, 0);
        for (i = 0; i < FRAME_SAMPLES; i++)
            put16(le + 2 * i, (unsigned)(uint16_t)pcm[i]);
        rc = kf_buf_append(wav, le, sizeof(le));
        at += frame_len[(p[at] >> 3) & 15];
    }
    Decoder_Interface_exit(dec);
    return rc;
}

int voice_amr_to_wav(struct kf_str amr, struct kf_buf *wav, long *ms)
{
    unsigned char h[VOICE_WAV_HEADER];
    long frames = 0;
    int rc = count_frames(amr, &frames);

    kf_buf_reset(wav);
    *ms = frames * VOICE_FRAME_MS;
    if (rc < 0)
        return rc;
    wav_header(h, (uint32_t)(frames * FRAME_SAMPLES * 2));
    rc = kf_buf_append(wav, h, sizeof(h));
    if (rc == 0)
        rc = decode(amr, wav);
    if (rc < 0)
        kf_buf_reset(wav);
    return rc;
}
