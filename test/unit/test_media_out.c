/* Unit tests for media_out: an agent's uploads recognised from their
 * bytes (the Content-Type must agree), WeChat's size limits per kind, a
 * voice's 60 s (real AMR and MP3 files of test/data/voice), thumbnails,
 * and what is refused with which row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "media_out.h"
#include "testutil.h"

#define MIB (1024 * 1024)

static const char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
static const char jpeg[] = "\xff\xd8\xff\xe0\0\x10JFIF";
static const char mp4[] = "\0\0\0\x18" "ftypmp42\0\0\0\0";

/* body: len bytes starting with head (the rest zero). Caller frees. */
static char *padded(const char *head, size_t hlen, size_t len)
{
    char *p = calloc(1, len);

    assert_non_null(p);
    memcpy(p, head, hlen < len ? hlen : len);
    return p;
}

/* media_out_check on a file of test/data/voice, copied n times after
 * its own header (AMR) or whole (MP3). */
static int check_file(const char *path, const char *ct, size_t n,
                      struct media_out *out)
{
    size_t len, skip = strstr(path, ".amr") ? 6 : 0, i, total;
    char *f = tu_read_file(path, &len), *p;
    int rc;

    assert_non_null(f);
    total = len + (n - 1) * (len - skip);
    p = malloc(total);
    assert_non_null(p);
    memcpy(p, f, len);
    for (i = 1; i < n; i++)
        memcpy(p + len + (i - 1) * (len - skip), f + skip, len - skip);
    rc = media_out_check(kf_str_c(ct), kf_str_c(""),
                         (struct kf_str){ p, total }, out);
    free(p);
    free(f);
    return rc;
}

static int check(const char *ct, const char *kind, const char *head,
                 size_t hlen, size_t len, struct media_out *out)
{
    char *p = padded(head, hlen, len);
    int rc = media_out_check(kf_str_c(ct), kf_str_c(kind),
                             (struct kf_str){ p, len }, out);

    free(p);
    return rc;
}

static void test_each_kind_goes_as_its_wechat_type(void **state)
{
    static const struct {
        const char *ct, *kind, *head;
        size_t hlen, len;
        const char *type, *filename;
    } ok[] = {
        { "image/png", "", png, sizeof(png) - 1, 100, "image",
          "upload.png" },
        { "image/jpeg; q=1", "", jpeg, sizeof(jpeg) - 1, 100, "image",
          "upload.jpg" },
        { "video/mp4", "", mp4, sizeof(mp4) - 1, 5000, "video",
          "upload.mp4" },
        { "image/jpeg", "thumb", jpeg, sizeof(jpeg) - 1, 1000, "thumb",
          "thumb.jpg" },
    };
    struct media_out o;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(check(ok[i].ct, ok[i].kind, ok[i].head, ok[i].hlen,
                               ok[i].len, &o), 0);
        assert_string_equal(o.type, ok[i].type);
        assert_string_equal(o.filename, ok[i].filename);
        assert_null(o.why);
        assert_int_equal(o.ms, 0);
    }
}

static void test_voice_files_are_measured(void **state)
{
    struct media_out o;

    (void)state;
    assert_int_equal(check_file("../data/voice/tone440-1s.amr", "audio/amr",
                                1, &o), 0);
    assert_string_equal(o.type, "voice");
    assert_string_equal(o.filename, "upload.amr");
    assert_int_equal(o.ms, 1000);
    assert_int_equal(check_file("../data/voice/tone440-2s.mp3", "audio/mpeg",
                                1, &o), 0);
    assert_string_equal(o.filename, "upload.mp3");
    assert_int_equal(o.ms, 2088);
    assert_int_equal(check_file("../data/voice/tone440-2s.mp3", "audio/mp3",
                                1, &o), 0);
}

static void test_voice_over_sixty_seconds_is_refused(void **state)
{
    struct media_out o;

    (void)state;
    assert_int_equal(check_file("../data/voice/tone440-1s.amr", "audio/amr",
                                60, &o), 0);
    assert_int_equal(o.ms, 60000);
    assert_int_equal(check_file("../data/voice/tone440-1s.amr", "audio/amr",
                                61, &o), KF_EINVAL);
    assert_string_equal(o.why->code, "voice_too_long");
    assert_int_equal(o.why->status, 400);
    assert_int_equal(check_file("../data/voice/tone440-2s.mp3", "audio/mpeg",
                                29, &o), KF_EINVAL);
    assert_string_equal(o.why->code, "voice_too_long");
}

static void test_malformed_voice_is_refused(void **state)
{
    struct media_out o;

    (void)state;
    assert_int_equal(check("audio/amr", "", "#!AMR\n\x3c", 7, 20, &o),
                     KF_EINVAL);        /* a 12.2 frame cut short */
    assert_string_equal(o.why->code, "bad_voice");
    assert_int_equal(check("audio/mpeg", "", "ID3\x04\0\0\0\0\0\0", 10, 10,
                           &o), KF_EINVAL);     /* a tag, no frame */
    assert_string_equal(o.why->code, "bad_voice");
}

static void test_sizes_are_wechats_per_kind(void **state)
{
    static const struct {
        const char *ct, *kind, *head;
        size_t hlen, max;
    } cases[] = {
        { "image/png", "", png, sizeof(png) - 1, 2 * MIB },
        { "audio/amr", "", "#!AMR\n", 6, 2 * MIB },
        { "video/mp4", "", mp4, sizeof(mp4) - 1, 10 * MIB },
        { "image/jpeg", "thumb", jpeg, sizeof(jpeg) - 1, 64 * 1024 },
    };
    struct media_out o;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(check(cases[i].ct, cases[i].kind, cases[i].head,
                               cases[i].hlen, cases[i].max + 1, &o),
                         KF_ETOOBIG);
        assert_string_equal(o.why->code, "media_too_large");
        assert_int_equal(o.why->status, 413);
    }
    /* a video's limit is the largest the route reads */
    assert_int_equal(MEDIA_OUT_MAX, 10 * MIB);
}

static void test_type_comes_from_the_bytes_and_must_agree(void **state)
{
    static const struct {
        const char *ct, *kind, *head;
        size_t hlen;
    } bad[] = {
        { "image/jpeg", "", png, sizeof(png) - 1 },     /* disagrees */
        { "audio/amr", "", mp4, sizeof(mp4) - 1 },
        { "video/mp4", "", "#!AMR\n", 6 },
        { "application/pdf", "", "%PDF-1.7", 8 },       /* no file type */
        { "text/plain", "", "hello", 5 },
        { "image/svg+xml", "", "<svg/>", 6 },
        { "", "", jpeg, sizeof(jpeg) - 1 },
        { "image/png", "thumb", png, sizeof(png) - 1 },  /* thumbs: JPEG */
        { "video/mp4", "thumb", mp4, sizeof(mp4) - 1 },
    };
    struct media_out o;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(check(bad[i].ct, bad[i].kind, bad[i].head,
                               bad[i].hlen, 64, &o), KF_EINVAL);
        assert_string_equal(o.why->code, "unsupported_media");
        assert_null(o.type);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_kind_goes_as_its_wechat_type),
        cmocka_unit_test(test_voice_files_are_measured),
        cmocka_unit_test(test_voice_over_sixty_seconds_is_refused),
        cmocka_unit_test(test_malformed_voice_is_refused),
        cmocka_unit_test(test_sizes_are_wechats_per_kind),
        cmocka_unit_test(test_type_comes_from_the_bytes_and_must_agree),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
