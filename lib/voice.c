/* voice: AMR-NB and Speex files to WAV (opencore-amrnb's and libspeex's
 * decoders). */
#include "voice.h"

#include <stdint.h>
#include <string.h>

#include <opencore-amrnb/interf_dec.h>
#include <speex/speex.h>

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

/* The canonical 44-byte header of PCM 16-bit mono at `rate`. */
static void wav_header(unsigned char *h, uint32_t rate, uint32_t data_len)
{
    memcpy(h, "RIFF", 4);
    put32(h + 4, 36 + data_len);
    memcpy(h + 8, "WAVEfmt ", 8);
    put32(h + 16, 16);                  /* the fmt chunk's size */
    put16(h + 20, 1);                   /* PCM */
    put16(h + 22, 1);                   /* mono */
    put32(h + 24, rate);
    put32(h + 28, rate * 2);            /* bytes a second */
    put16(h + 32, 2);                   /* bytes a sample frame */
    put16(h + 34, 16);                  /* bits a sample */
    memcpy(h + 36, "data", 4);
    put32(h + 40, data_len);
}

/* Appends n 16-bit samples, little-endian. */
static int append_pcm(struct kf_buf *wav, const short *pcm, int n)
{
    unsigned char le[2 * 320];
    int i;

    for (i = 0; i < n; i++)
        put16(le + 2 * i, (unsigned)(uint16_t)pcm[i]);
    return kf_buf_append(wav, le, (size_t)n * 2);
}

/* Appends the decoded frames (already checked by count_frames). */
static int decode(struct kf_str amr, struct kf_buf *wav)
{
    const unsigned char *p = (const unsigned char *)amr.p;
    size_t at = AMR_MAGIC_LEN;
    short pcm[FRAME_SAMPLES];
    void *dec = Decoder_Interface_init();
    int rc = 0;

    if (!dec)
        return KF_ENOMEM;
    while (rc == 0 && at < amr.len) {
        Decoder_Interface_Decode(dec, p + at, pcm, 0);
        rc = append_pcm(wav, pcm, FRAME_SAMPLES);
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
    wav_header(h, VOICE_RATE, (uint32_t)(frames * FRAME_SAMPLES * 2));
    rc = kf_buf_append(wav, h, sizeof(h));
    if (rc == 0)
        rc = decode(amr, wav);
    if (rc < 0)
        kf_buf_reset(wav);
    return rc;
}

/* --- Speex ---------------------------------------------------------------- */

#define SPX_SAMPLES 320             /* 20 ms at 16 kHz */

/* 1 when the file is header-byte blocks: each a length byte (1..255)
 * and that many bytes, tiling the file exactly. */
static int header_byte_blocks(const unsigned char *p, size_t n)
{
    size_t at = 0;

    while (at < n) {
        if (p[at] == 0 || n - at - 1 < p[at])
            return 0;
        at += 1 + (size_t)p[at];
    }
    return n > 0;
}

/* Decodes every frame of one block onto wav: *frames counts them. A
 * block must hold at least one frame; -2 from the decoder (a corrupt
 * frame) or a frame past VOICE_MAX_MS stops it. */
static int speex_block(void *st, SpeexBits *bits, const unsigned char *p,
                       int len, struct kf_buf *wav, long *frames)
{
    short pcm[SPX_SAMPLES];
    int got = 0, r, rc = 0;

    speex_bits_read_from(bits, (const char *)p, len);
    while (rc == 0 && speex_bits_remaining(bits) > 0) {
        r = speex_decode_int(st, bits, pcm);
        if (r == -1)
            break;                      /* the terminator, or padding */
        if (r != 0)
            return KF_EPARSE;
        if (++*frames > VOICE_MAX_MS / VOICE_FRAME_MS)
            return KF_ETOOBIG;
        got++;
        rc = append_pcm(wav, pcm, SPX_SAMPLES);
    }
    return rc < 0 ? rc : got > 0 ? 0 : KF_EPARSE;
}

/* Decodes the file in one framing (hb: header-byte blocks, else bare
 * frames) after wav's header room. */
static int speex_decode_all(struct kf_str spx, int hb, struct kf_buf *wav,
                            long *frames)
{
    const unsigned char *p = (const unsigned char *)spx.p;
    size_t at = 0;
    int rate = VOICE_SPEEX_RATE, enh = 1, rc = 0;
    SpeexBits bits;
    void *st = speex_decoder_init(speex_lib_get_mode(SPEEX_MODEID_WB));

    if (!st)
        return KF_ENOMEM;
    speex_decoder_ctl(st, SPEEX_SET_SAMPLING_RATE, &rate);
    speex_decoder_ctl(st, SPEEX_SET_ENH, &enh);
    speex_bits_init(&bits);
    *frames = 0;
    while (rc == 0 && at < spx.len) {
        size_t len = hb ? p[at] : VOICE_SPEEX_FRAME;

        at += hb;
        rc = speex_block(st, &bits, p + at, (int)len, wav, frames);
        at += len;
    }
    speex_bits_destroy(&bits);
    speex_decoder_destroy(st);
    return rc;
}

int voice_speex_to_wav(struct kf_str spx, struct kf_buf *wav, long *ms)
{
    const unsigned char *p = (const unsigned char *)spx.p;
    unsigned char h[VOICE_WAV_HEADER] = { 0 };
    int framings[2], nf = 0, i, rc = KF_EPARSE;
    long frames = 0;

    kf_buf_reset(wav);
    *ms = 0;
    if (spx.len > VOICE_SPEEX_MAX)
        return KF_ETOOBIG;
    if (header_byte_blocks(p, spx.len))
        framings[nf++] = 1;
    if (spx.len > 0 && spx.len % VOICE_SPEEX_FRAME == 0)
        framings[nf++] = 0;
    /* a bare file may tile as blocks by chance: it then fails to decode
     * as such (or decodes as noise, which no check can tell) */
    for (i = 0; i < nf && rc == KF_EPARSE; i++) {
        kf_buf_reset(wav);
        rc = kf_buf_append(wav, h, sizeof(h));
        if (rc == 0)
            rc = speex_decode_all(spx, framings[i], wav, &frames);
    }
    if (rc < 0) {
        kf_buf_reset(wav);
        return rc;
    }
    wav_header((unsigned char *)wav->p, VOICE_SPEEX_RATE,
               (uint32_t)(wav->len - VOICE_WAV_HEADER));
    *ms = frames * VOICE_FRAME_MS;
    return 0;
}

/* --- MP3 ------------------------------------------------------------------ */

/* kbit/s of Layer III by bitrate index: MPEG-1, then MPEG-2/2.5 (0 = free
 * format or bad: refused). */
static const unsigned short l3_kbps[2][16] = {
    { 0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0 },
    { 0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0 },
};
static const unsigned mpeg1_hz[3] = { 44100, 48000, 32000 };

/* The frame at p (n bytes left): its length and samples at rate *hz, or
 * 0 when p starts no Layer III frame. */
static size_t mp3_frame(const unsigned char *p, size_t n, unsigned *hz,
                        unsigned *samples)
{
    unsigned version, bri, sri, pad, kbps;
    size_t len;

    if (n < 4 || p[0] != 0xff || (p[1] & 0xe0) != 0xe0)
        return 0;
    version = (p[1] >> 3) & 3;          /* 0 2.5, 1 reserved, 2 v2, 3 v1 */
    bri = p[2] >> 4;
    sri = (p[2] >> 2) & 3;
    pad = (p[2] >> 1) & 1;
    if (version == 1 || ((p[1] >> 1) & 3) != 1 || sri == 3)
        return 0;                       /* reserved, or not Layer III */
    kbps = l3_kbps[version == 3 ? 0 : 1][bri];
    if (kbps == 0)
        return 0;
    *hz = mpeg1_hz[sri] >> (version == 3 ? 0 : version == 2 ? 1 : 2);
    *samples = version == 3 ? 1152 : 576;
    len = (size_t)(*samples / 8) * kbps * 1000 / *hz + pad;
    return len <= n ? len : 0;
}

/* Bytes of an ID3v2 tag at the start (its size is 4 syncsafe bytes). */
static size_t id3v2_len(const unsigned char *p, size_t n)
{
    if (n < 10 || memcmp(p, "ID3", 3) || (p[6] | p[7] | p[8] | p[9]) & 0x80)
        return 0;
    return 10 + ((size_t)p[6] << 21 | (size_t)p[7] << 14 |
                 (size_t)p[8] << 7 | p[9]) + (p[5] & 0x10 ? 10 : 0);
}

int voice_mp3_ms(struct kf_str mp3, long *ms)
{
    const unsigned char *p = (const unsigned char *)mp3.p;
    size_t at = id3v2_len(p, mp3.len), end = mp3.len;
    double total = 0;
    long frames = 0;

    *ms = 0;
    if (end >= 128 && memcmp(p + end - 128, "TAG", 3) == 0)
        end -= 128;                     /* ID3v1 */
    while (at < end) {
        unsigned hz = 0, samples = 0;
        size_t len = mp3_frame(p + at, end - at, &hz, &samples);

        if (len == 0)
            return KF_EPARSE;
        total += samples * 1000.0 / hz;
        if (total > VOICE_MAX_MS)
            return KF_ETOOBIG;
        frames++;
        at += len;
    }
    if (frames == 0 || at > end)
        return KF_EPARSE;
    *ms = (long)(total + 0.5);
    return 0;
}
