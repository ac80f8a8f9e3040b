/* wrapup: what an agent writes when it closes a session — the summary
 * (optional, WRAPUP_SUMMARY_CHARS characters at most), its validation as
 * untrusted input, and the JSON object it travels in: the close event's
 * payload, which the archiver keeps on the session in PostgreSQL
 * (sessions.summary, sql/0006_wrapup.sql; docs/history.md). */
#ifndef WRAPUP_H
#define WRAPUP_H

#include <stddef.h>

#include "kf.h"

#define WRAPUP_SUMMARY_CHARS 500    /* characters (code points) */
#define WRAPUP_JSON_MAX 4096        /* the payload: 500 * 6 escaped + room */

/* 0 when summary (NUL-terminated, untrusted) is a summary we keep: UTF-8,
 * 0..WRAPUP_SUMMARY_CHARS characters, no control characters other than
 * line feed and tab. Else KF_EINVAL, and why (NULL ok) says why in
 * English for the API's message. */
KF_WUR int wrapup_check_summary(const char *summary, const char **why);

/* The close event's payload for summary (checked first: KF_EINVAL as
 * above) into out (cap bytes, >= WRAPUP_JSON_MAX): {"summary":"..."},
 * or "" when summary is NULL or only spaces (no wrap-up). KF_ENOMEM. */
KF_WUR int wrapup_payload(const char *summary, char *out, size_t cap,
                          const char **why);

#endif
