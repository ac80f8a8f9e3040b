/* media_out: an agent's uploads, checked against WeChat's rules. */
#include "media_out.h"

#include <string.h>
#include <strings.h>

#include "voice.h"

#include "banned.h"

#define MIB (1024 * 1024)

/* A kind of file we take: how its bytes start, its Content-Types, and
 * what WeChat takes of it. */
struct kind {
    const char *name;           /* jpeg png gif amr mp3 mp4 */
    const char *types[2];       /* Content-Types that may come with it */
    const char *wx_type, *filename;
    size_t max;
    enum refusal_id too_big;
};

static const struct kind kinds[] = {
    { "jpeg", { "image/jpeg", NULL }, "image", "upload.jpg", 2 * MIB,
      REFUSAL_IMAGE_TOO_LARGE },
    { "png", { "image/png", NULL }, "image", "upload.png", 2 * MIB,
      REFUSAL_IMAGE_TOO_LARGE },
    { "gif", { "image/gif", NULL }, "image", "upload.gif", 2 * MIB,
      REFUSAL_IMAGE_TOO_LARGE },
    { "amr", { "audio/amr", NULL }, "voice", "upload.amr", 2 * MIB,
      REFUSAL_VOICE_TOO_LARGE },
    { "mp3", { "audio/mpeg", "audio/mp3" }, "voice", "upload.mp3", 2 * MIB,
      REFUSAL_VOICE_TOO_LARGE },
    { "mp4", { "video/mp4", NULL }, "video", "upload.mp4", 10 * MIB,
      REFUSAL_VIDEO_TOO_LARGE },
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

static const struct kind thumb = {
    "jpeg", { "image/jpeg", NULL }, "thumb", "thumb.jpg", 64 * 1024,
    REFUSAL_THUMB_TOO_LARGE
};

/* The kind the bytes start as, or NULL. */
static const char *sniff(struct kf_str b)
{
    const unsigned char *p = (const unsigned char *)b.p;

    if (b.len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return "jpeg";
    if (b.len >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
        return "png";
    if (b.len >= 6 && (memcmp(p, "GIF87a", 6) == 0 ||
                       memcmp(p, "GIF89a", 6) == 0))
        return "gif";
    if (b.len >= 6 && memcmp(p, "#!AMR\n", 6) == 0)
        return "amr";
    if ((b.len >= 3 && memcmp(p, "ID3", 3) == 0) ||
        (b.len >= 2 && p[0] == 0xff && (p[1] & 0xe6) == 0xe2))
        return "mp3";           /* a tag, or a Layer III frame's sync */
    if (b.len >= 12 && memcmp(p + 4, "ftyp", 4) == 0)
        return "mp4";
    return NULL;
}

/* 1 if ct (parameters ignored) is one of k's types. */
static int type_ok(const struct kind *k, struct kf_str ct)
{
    size_t n = 0, i;

    while (n < ct.len && ct.p[n] != ';' && ct.p[n] != ' ')
        n++;
    for (i = 0; i < 2 && k->types[i]; i++)
        if (strlen(k->types[i]) == n && !strncasecmp(ct.p, k->types[i], n))
            return 1;
    return 0;
}

static int refuse(struct media_out *out, enum refusal_id id)
{
    out->why = refusal_get(id);
    return out->why->rc;
}

/* A voice's duration, within WeChat's 60 s. */
static int voice_length(const struct kind *k, struct kf_str body,
                        struct media_out *out)
{
    int rc = strcmp(k->name, "amr") == 0 ? voice_amr_ms(body, &out->ms)
                                         : voice_mp3_ms(body, &out->ms);

    if (rc == KF_ETOOBIG)
        return refuse(out, REFUSAL_VOICE_TOO_LONG);
    return rc < 0 ? refuse(out, REFUSAL_BAD_VOICE) : 0;
}

int media_out_check(struct kf_str content_type, struct kf_str kind,
                    struct kf_str body, struct media_out *out)
{
    const char *name = sniff(body);
    const struct kind *k = NULL;
    size_t i;

    memset(out, 0, sizeof(*out));
    if (kf_str_eq_c(kind, "thumb")) {
        k = name && !strcmp(name, "jpeg") ? &thumb : NULL;
    } else {
        for (i = 0; name && i < NKINDS && !k; i++)
            if (strcmp(kinds[i].name, name) == 0)
                k = &kinds[i];
    }
    if (!k || !type_ok(k, content_type))
        return refuse(out, REFUSAL_UNSUPPORTED_MEDIA);
    if (body.len > k->max)
        return refuse(out, k->too_big);
    out->type = k->wx_type;
    out->filename = k->filename;
    if (strcmp(k->wx_type, "voice") == 0)
        return voice_length(k, body, out);
    return 0;
}
