/* wrapup: what an agent writes when it closes a session — the summary
 * (optional, WRAPUP_SUMMARY_CHARS characters at most) and the names of
 * the labels it picked (lib/label), the summary's validation as
 * untrusted input, and the JSON object both travel in: the close event's
 * payload, which the archiver keeps on the session in PostgreSQL
 * (sessions.summary and sessions.labels, sql/0006_wrapup.sql;
 * docs/history.md). */
#ifndef WRAPUP_H
#define WRAPUP_H

#include <stddef.h>

#include <jansson.h>

#include "kf.h"

#define WRAPUP_SUMMARY_CHARS 500    /* characters (code points) */
/* the payload: 500 * 6 escaped, 5 labels of 20 * 6 escaped, and room */
#define WRAPUP_JSON_MAX 4608

/* 0 when summary (NUL-terminated, untrusted) is a summary we keep: UTF-8,
 * 0..WRAPUP_SUMMARY_CHARS characters, no control characters other than
 * line feed and tab. Else KF_EINVAL, and why (NULL ok) says why in
 * English for the API's message. */
KF_WUR int wrapup_check_summary(const char *summary, const char **why);

/* The close event's payload for summary (checked first: KF_EINVAL as
 * above) and labels (a JSON array of label names, NULL or empty: none)
 * into out (cap bytes, >= WRAPUP_JSON_MAX):
 * {"summary":"...","labels":[...]} with what there is, or "" when there
 * is neither (summary NULL or only spaces). KF_ENOMEM, KF_ETOOBIG. */
KF_WUR int wrapup_payload(const char *summary, json_t *labels, char *out,
                          size_t cap, const char **why);

#endif
