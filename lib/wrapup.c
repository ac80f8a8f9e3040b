/* wrapup: the summary of a closed session and its payload. */
#include "wrapup.h"

#include <string.h>

#include <jansson.h>

#include "banned.h"

int wrapup_check_summary(const char *summary, const char **why)
{
    const unsigned char *p = (const unsigned char *)summary;
    size_t n = strlen(summary), i = 0, chars = 0;

    while (i < n) {
        uint32_t c;
        size_t len = kf_utf8_next(p + i, n - i, &c);

        if (len == 0) {
            if (why)
                *why = "summary is not valid UTF-8";
            return KF_EINVAL;
        }
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f ||
            (c >= 0x80 && c < 0xa0)) {
            if (why)
                *why = "summary must not contain control characters";
            return KF_EINVAL;
        }
        i += len;
        if (++chars > WRAPUP_SUMMARY_CHARS) {
            if (why)
                *why = "summary is longer than 500 characters";
            return KF_EINVAL;
        }
    }
    return 0;
}

/* 1 when s has something other than spaces, tabs and line feeds. */
static int has_text(const char *s)
{
    return s[strspn(s, " \t\n")] != '\0';
}

int wrapup_payload(const char *summary, char *out, size_t cap,
                   const char **why)
{
    json_t *o;
    size_t n;
    int rc;

    if (cap == 0)
        return KF_ETOOBIG;
    out[0] = '\0';
    if (!summary)
        return 0;
    rc = wrapup_check_summary(summary, why);
    if (rc < 0 || !has_text(summary))
        return rc;
    o = json_pack("{s:s}", "summary", summary);
    if (!o)
        return KF_ENOMEM;
    n = json_dumpb(o, out, cap - 1, JSON_COMPACT);
    json_decref(o);
    if (n == 0 || n >= cap - 1) {
        out[0] = '\0';
        return n == 0 ? KF_ENOMEM : KF_ETOOBIG;
    }
    out[n] = '\0';
    return 0;
}
