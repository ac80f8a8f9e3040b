/* Unit tests for voice: a real AMR-NB file (test/data/voice/tone440-1s.amr,
 * a 1 s 440 Hz tone made by test/sim/audio.py with opencore-amrnb's encoder)
 * decoded into WAV — header fields, sample count, the tone itself — and
 * what is refused: truncated, garbage, reserved frame types, the F bit,
 * longer than 60 s, larger than the input cap, a too small output cap;
 * the same 1 s tone as Speex wideband (test/data/voice/tone440-1s.spx,
 * header-byte blocks as WeChat serves speex, and tone440-1s-bare.spx,
 * bare 60-byte frames; libspeex's encoder) decoded into 16 kHz WAV, and
 * what is refused there; and the duration of an MP3 (test/data/voice/tone440-2s.mp3, LAME's 2 s
 * tone), with its tags, and what is no MP3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"
#include "voice.h"

#define TONE "../data/voice/tone440-1s.amr"

static uint32_t le32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;

    return u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 |
           (uint32_t)u[3] << 24;
}

static unsigned le16(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;

    return u[0] | (unsigned)u[1] << 8;
}

static int16_t sample(const struct kf_buf *w, size_t i)
{
    return (int16_t)le16(w->p + VOICE_WAV_HEADER + 2 * i);
}

/* The tone file and a WAV buffer of cap bytes. */
struct tone {
    char *amr;
    size_t len;
    struct kf_buf wav;
    long ms;
};

static void tone_load(struct tone *t, size_t cap)
{
    t->amr = tu_read_file(TONE, &t->len);
    assert_non_null(t->amr);
    assert_int_equal(t->len, 6 + 50 * 32);  /* 50 frames of 12.2 kbit/s */
    kf_buf_init(&t->wav, cap);
    t->ms = -1;
}

/* Decodes the first len bytes of the tone. */
static int tone_decode(struct tone *t, size_t len)
{
    return voice_amr_to_wav((struct kf_str){ t->amr, len }, &t->wav,
                            &t->ms);
}

static void tone_release(struct tone *t)
{
    kf_buf_release(&t->wav);
    free(t->amr);
}

/* An AMR file of n NO_DATA frames (one byte each). Caller frees. */
static char *no_data_frames(size_t n, size_t *len)
{
    char *p = malloc(6 + n);

    assert_non_null(p);
    memcpy(p, "#!AMR\n", 6);
    memset(p + 6, 0x7c, n);             /* FT 15, Q 1 */
    *len = 6 + n;
    return p;
}

static void test_tone_decodes_to_a_canonical_wav(void **state)
{
    struct tone t;
    const char *w;

    (void)state;
    tone_load(&t, VOICE_WAV_MAX);
    assert_int_equal(tone_decode(&t, t.len), 0);
    w = t.wav.p;
    assert_int_equal(t.ms, 1000);
    assert_int_equal(t.wav.len, 44 + 8000 * 2);     /* 8000 samples */
    assert_memory_equal(w, "RIFF", 4);
    assert_int_equal(le32(w + 4), 36 + 16000);
    assert_memory_equal(w + 8, "WAVEfmt ", 8);
    assert_int_equal(le32(w + 16), 16);
    assert_int_equal(le16(w + 20), 1);          /* PCM */
    assert_int_equal(le16(w + 22), 1);          /* mono */
    assert_int_equal(le32(w + 24), 8000);
    assert_int_equal(le32(w + 28), 16000);
    assert_int_equal(le16(w + 32), 2);
    assert_int_equal(le16(w + 34), 16);
    assert_memory_equal(w + 36, "data", 4);
    assert_int_equal(le32(w + 40), 16000);
    tone_release(&t);
}

/* The decoded signal is the tone: a 440 Hz sine crosses zero 880 times a
 * second, and it is loud (the encoder got amplitude 8000). Measured on
 * the last half second, past the codec's start-up. */
static void test_tone_decodes_to_the_tone(void **state)
{
    struct tone t;
    size_t i, crossings = 0;
    double energy = 0;

    (void)state;
    tone_load(&t, VOICE_WAV_MAX);
    assert_int_equal(tone_decode(&t, t.len), 0);
    for (i = 4001; i < 8000; i++) {
        int16_t a = sample(&t.wav, i - 1), b = sample(&t.wav, i);

        crossings += (a < 0) != (b < 0);
        energy += (double)b * b;
    }
    assert_in_range(crossings, 440 - 20, 440 + 20);
    assert_true(energy / 3999 > 2000.0 * 2000.0);  /* RMS over 2000 */
    tone_release(&t);
}

static void test_duration_is_counted_without_decoding(void **state)
{
    struct tone t;

    (void)state;
    tone_load(&t, VOICE_WAV_MAX);
    assert_int_equal(voice_amr_ms((struct kf_str){ t.amr, t.len }, &t.ms),
                     0);
    assert_int_equal(t.ms, 1000);
    tone_release(&t);
}

static void test_truncated_file_is_refused_and_wav_left_empty(void **state)
{
    struct tone t;

    (void)state;
    tone_load(&t, VOICE_WAV_MAX);
    assert_int_equal(kf_buf_append(&t.wav, "old", 3), 0);
    assert_int_equal(tone_decode(&t, t.len - 1), KF_EPARSE);
    assert_int_equal(t.wav.len, 0);
    tone_release(&t);
}

static void test_garbage_is_refused(void **state)
{
    static const struct {
        const char *p;
        size_t len;
    } bad[] = {
        { "", 0 },
        { "#!AMR", 5 },                     /* header cut short */
        { "#!AMR\n", 6 },                   /* no frame */
        { "#!AMR-WB\n\x7c", 10 },           /* wide band: not ours */
        { "RIFF\0\0\0\0WAVE", 12 },
        { "#!AMR\n\x4c", 7 },               /* FT 9: not in files */
        { "#!AMR\n\x74", 7 },               /* FT 14 */
        { "#!AMR\n\xfc", 7 },               /* the F bit */
        { "#!AMR\n\x3c\x00\x00", 9 },       /* FT 7 needs 32 bytes */
    };
    struct kf_buf w;
    size_t i;
    long ms = 7;

    (void)state;
    kf_buf_init(&w, VOICE_WAV_MAX);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct kf_str s = { bad[i].p, bad[i].len };

        assert_int_equal(voice_amr_to_wav(s, &w, &ms), KF_EPARSE);
        assert_int_equal(w.len, 0);
        assert_int_equal(voice_amr_ms(s, &ms), KF_EPARSE);
        assert_int_equal(ms, 0);
    }
    kf_buf_release(&w);
}

static void test_sixty_seconds_pass_and_one_frame_more_is_refused(void **s)
{
    struct kf_buf w;
    size_t len;
    char *amr = no_data_frames(3000, &len);
    long ms = 0;

    (void)s;
    kf_buf_init(&w, VOICE_WAV_MAX);
    assert_int_equal(voice_amr_to_wav((struct kf_str){ amr, len }, &w, &ms),
                     0);
    assert_int_equal(ms, 60000);
    assert_int_equal(w.len, VOICE_WAV_MAX);
    free(amr);
    amr = no_data_frames(3001, &len);
    assert_int_equal(voice_amr_to_wav((struct kf_str){ amr, len }, &w, &ms),
                     KF_ETOOBIG);
    assert_int_equal(w.len, 0);
    assert_int_equal(voice_amr_ms((struct kf_str){ amr, len }, &ms),
                     KF_ETOOBIG);
    kf_buf_release(&w);
    free(amr);
}

static void test_input_over_the_cap_is_refused_before_parsing(void **state)
{
    size_t len;
    char *amr = no_data_frames(VOICE_AMR_MAX, &len);
    long ms = 0;

    (void)state;
    assert_int_equal(voice_amr_ms((struct kf_str){ amr, len }, &ms),
                     KF_ETOOBIG);
    free(amr);
}

static void test_output_cap_too_small_is_refused(void **state)
{
    struct tone t;

    (void)state;
    tone_load(&t, 1000);
    assert_int_equal(tone_decode(&t, t.len), KF_ETOOBIG);
    assert_int_equal(t.wav.len, 0);
    tone_release(&t);
}

/* --- MP3 ------------------------------------------------------------------ */

#define MP3 "../data/voice/tone440-2s.mp3"

/* The MP3 file copied n times into one buffer after a prefix of pre
 * bytes (left for the caller to fill). Caller frees. */
static char *mp3_times(size_t n, size_t pre, size_t *len)
{
    size_t one, i;
    char *f = tu_read_file(MP3, &one), *p;

    assert_non_null(f);
    p = malloc(pre + n * one + 1);
    assert_non_null(p);
    for (i = 0; i < n; i++)
        memcpy(p + pre + i * one, f, one);
    *len = pre + n * one;
    free(f);
    return p;
}

static void test_mp3_duration_counts_its_frames(void **state)
{
    size_t len;
    char *p = mp3_times(1, 0, &len);
    long ms = 0;

    (void)state;
    /* 2 s of tone plus LAME's encoder delay and padding: 58 frames of
     * 576 samples at 16 kHz */
    assert_int_equal(voice_mp3_ms((struct kf_str){ p, len }, &ms), 0);
    assert_int_equal(ms, 58 * 36);
    free(p);
}

static void test_mp3_tags_are_skipped(void **state)
{
    size_t len;
    char *p = mp3_times(1, 20, &len), *q;
    long ms = 0;

    (void)state;
    memcpy(p, "ID3\x04\x00\x00\x00\x00\x00\x0a", 10);  /* 10 bytes */
    memset(p + 10, 0, 10);
    q = realloc(p, len + 128);
    assert_non_null(q);
    memset(q + len, 0, 128);
    memcpy(q + len, "TAG", 3);                  /* ID3v1 */
    assert_int_equal(voice_mp3_ms((struct kf_str){ q, len + 128 }, &ms), 0);
    assert_int_equal(ms, 58 * 36);
    free(q);
}

static void test_mp3_that_is_none_is_refused(void **state)
{
    size_t len;
    char *p = mp3_times(1, 0, &len);
    long ms = 7;

    (void)state;
    assert_int_equal(voice_mp3_ms((struct kf_str){ p, len - 1 }, &ms),
                     KF_EPARSE);                /* the last frame cut */
    assert_int_equal(ms, 0);
    p[144 * 3] = 'x';                           /* the 4th frame's sync */
    assert_int_equal(voice_mp3_ms((struct kf_str){ p, len }, &ms),
                     KF_EPARSE);
    assert_int_equal(voice_mp3_ms((struct kf_str){ "", 0 }, &ms),
                     KF_EPARSE);
    assert_int_equal(voice_mp3_ms(kf_str_c("#!AMR\n\x7c"), &ms), KF_EPARSE);
    free(p);
}

static void test_mp3_over_sixty_seconds_is_refused(void **state)
{
    size_t len;
    char *p = mp3_times(28, 0, &len);       /* 58.464 s */
    long ms = 0;

    (void)state;
    assert_int_equal(voice_mp3_ms((struct kf_str){ p, len }, &ms), 0);
    assert_int_equal(ms, 28 * 58 * 36);
    free(p);
    p = mp3_times(29, 0, &len);             /* 60.552 s */
    assert_int_equal(voice_mp3_ms((struct kf_str){ p, len }, &ms),
                     KF_ETOOBIG);
    free(p);
}

/* --- Speex ---------------------------------------------------------------- */

#define SPX "../data/voice/tone440-1s.spx"
#define SPX_BARE "../data/voice/tone440-1s-bare.spx"

static int spx_decode(const char *p, size_t len, struct kf_buf *w, long *ms)
{
    return voice_speex_to_wav((struct kf_str){ p, len }, w, ms);
}

static void test_speex_decodes_to_a_16khz_wav_of_the_tone(void **state)
{
    struct kf_buf w;
    size_t len, i, crossings = 0;
    char *f = tu_read_file(SPX, &len);
    double energy = 0;
    long ms = -1;

    (void)state;
    assert_non_null(f);
    assert_int_equal(len, 50 * 61);     /* 50 blocks: length byte + 60 */
    kf_buf_init(&w, VOICE_SPEEX_WAV_MAX);
    assert_int_equal(spx_decode(f, len, &w, &ms), 0);
    assert_int_equal(ms, 1000);
    assert_int_equal(w.len, 44 + 16000 * 2);
    assert_memory_equal(w.p, "RIFF", 4);
    assert_int_equal(le32(w.p + 4), 36 + 32000);
    assert_memory_equal(w.p + 8, "WAVEfmt ", 8);
    assert_int_equal(le16(w.p + 20), 1);
    assert_int_equal(le16(w.p + 22), 1);
    assert_int_equal(le32(w.p + 24), 16000);
    assert_int_equal(le32(w.p + 28), 32000);
    assert_memory_equal(w.p + 36, "data", 4);
    assert_int_equal(le32(w.p + 40), 32000);
    /* 440 Hz: 440 zero crossings in the last half second, and loud */
    for (i = 8001; i < 16000; i++) {
        int16_t a = sample(&w, i - 1), b = sample(&w, i);

        crossings += (a < 0) != (b < 0);
        energy += (double)b * b;
    }
    assert_in_range(crossings, 440 - 20, 440 + 20);
    assert_true(energy / 7999 > 2000.0 * 2000.0);
    kf_buf_release(&w);
    free(f);
}

/* Bare 60-byte frames decode to exactly the samples of the framed file. */
static void test_speex_bare_frames_decode_the_same(void **state)
{
    struct kf_buf a, b;
    size_t la, lb;
    char *fa = tu_read_file(SPX, &la), *fb = tu_read_file(SPX_BARE, &lb);
    long ms = -1;

    (void)state;
    assert_non_null(fa);
    assert_non_null(fb);
    assert_int_equal(lb, 50 * 60);
    kf_buf_init(&a, VOICE_SPEEX_WAV_MAX);
    kf_buf_init(&b, VOICE_SPEEX_WAV_MAX);
    assert_int_equal(spx_decode(fa, la, &a, &ms), 0);
    assert_int_equal(spx_decode(fb, lb, &b, &ms), 0);
    assert_int_equal(ms, 1000);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len);
    kf_buf_release(&a);
    kf_buf_release(&b);
    free(fa);
    free(fb);
}

static void test_speex_that_is_none_is_refused(void **state)
{
    /* a frame of narrowband mode 9 (invalid); a block that is only a
     * terminator (mode 15); blocks that do not tile the file */
    static const char bad_mode[] = { 1, 0x48 }, only_end[] = { 1, 0x78 },
                      no_tile[] = { 5, 1, 2, 3 };
    struct kf_buf w;
    size_t len;
    char *f = tu_read_file(SPX, &len);
    long ms = -1;

    (void)state;
    assert_non_null(f);
    kf_buf_init(&w, VOICE_SPEEX_WAV_MAX);
    assert_int_equal(spx_decode(bad_mode, 2, &w, &ms), KF_EPARSE);
    assert_int_equal(spx_decode(only_end, 2, &w, &ms), KF_EPARSE);
    assert_int_equal(spx_decode(no_tile, 4, &w, &ms), KF_EPARSE);
    assert_int_equal(spx_decode("", 0, &w, &ms), KF_EPARSE);
    /* the last block cut short: neither framing fits */
    assert_int_equal(spx_decode(f, len - 7, &w, &ms), KF_EPARSE);
    assert_int_equal(w.len, 0);
    assert_int_equal(ms, 0);
    kf_buf_release(&w);
    free(f);
}

static void test_speex_over_sixty_seconds_or_the_cap_is_refused(void **st)
{
    struct kf_buf w;
    size_t len, i;
    char *f = tu_read_file(SPX, &len), *big = calloc(1, VOICE_SPEEX_MAX + 1);
    long ms = -1;

    (void)st;
    assert_non_null(f);
    assert_non_null(big);
    for (i = 0; i < 61; i++)
        memcpy(big + i * len, f, len);
    kf_buf_init(&w, VOICE_SPEEX_WAV_MAX);
    assert_int_equal(spx_decode(big, 60 * len, &w, &ms), 0);
    assert_int_equal(ms, 60000);
    assert_int_equal(w.len, VOICE_SPEEX_WAV_MAX);
    assert_int_equal(spx_decode(big, 61 * len, &w, &ms), KF_ETOOBIG);
    assert_int_equal(w.len, 0);
    assert_int_equal(spx_decode(big, VOICE_SPEEX_MAX + 1, &w, &ms),
                     KF_ETOOBIG);
    kf_buf_release(&w);
    /* an output cap too small for the WAV */
    kf_buf_init(&w, 44 + 16000);
    assert_int_equal(spx_decode(f, len, &w, &ms), KF_ETOOBIG);
    assert_int_equal(w.len, 0);
    kf_buf_release(&w);
    free(big);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tone_decodes_to_a_canonical_wav),
        cmocka_unit_test(test_tone_decodes_to_the_tone),
        cmocka_unit_test(test_duration_is_counted_without_decoding),
        cmocka_unit_test(test_truncated_file_is_refused_and_wav_left_empty),
        cmocka_unit_test(test_garbage_is_refused),
        cmocka_unit_test(test_sixty_seconds_pass_and_one_frame_more_is_refused),
        cmocka_unit_test(test_input_over_the_cap_is_refused_before_parsing),
        cmocka_unit_test(test_output_cap_too_small_is_refused),
        cmocka_unit_test(test_speex_decodes_to_a_16khz_wav_of_the_tone),
        cmocka_unit_test(test_speex_bare_frames_decode_the_same),
        cmocka_unit_test(test_speex_that_is_none_is_refused),
        cmocka_unit_test(test_speex_over_sixty_seconds_or_the_cap_is_refused),
        cmocka_unit_test(test_mp3_duration_counts_its_frames),
        cmocka_unit_test(test_mp3_tags_are_skipped),
        cmocka_unit_test(test_mp3_that_is_none_is_refused),
        cmocka_unit_test(test_mp3_over_sixty_seconds_is_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
