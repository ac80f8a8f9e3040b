/* wrapup: the summary of a closed session and its payload. */
#include "wrapup.h"

#include <string.h>

#include <jansson.h>

#include "banned.h"

int wrapup_check_summary(const char *summary, const char **why)
{
    int rc = kf_text_check(summary, WRAPUP_SUMMARY_CHARS, 1);

    if (rc < 0 && why)
        *why = rc == KF_EPARSE ? "summary is not valid UTF-8" :
               rc == KF_ETOOBIG ? "summary is longer than 500 characters" :
               "summary must not contain control characters";
    return rc < 0 ? KF_EINVAL : 0;
}

/* 1 when s has something other than spaces, tabs and line feeds. */
static int has_text(const char *s)
{
    return s[strspn(s, " \t\n")] != '\0';
}

int wrapup_payload(const char *summary, json_t *labels, char *out,
                   size_t cap, const char **why)
{
    json_t *o;
    size_t n;
    int rc = 0;

    if (cap == 0)
        return KF_ETOOBIG;
    out[0] = '\0';
    if (summary)
        rc = wrapup_check_summary(summary, why);
    if (rc < 0)
        return rc;
    if (summary && !has_text(summary))
        summary = NULL;
    if (!summary && json_array_size(labels) == 0)
        return 0;
    o = json_object();
    if (!o || (summary && json_object_set_new(o, "summary",
                                              json_string(summary)) < 0) ||
        (json_array_size(labels) > 0 &&
         json_object_set(o, "labels", labels) < 0)) {
        json_decref(o);
        return KF_ENOMEM;
    }
    n = json_dumpb(o, out, cap - 1, JSON_COMPACT);
    json_decref(o);
    if (n == 0 || n >= cap - 1) {
        out[0] = '\0';
        return n == 0 ? KF_ENOMEM : KF_ETOOBIG;
    }
    out[n] = '\0';
    return 0;
}
