/* history: reads of the archived messages and sessions from PostgreSQL —
 * one lazy connection per process, prepared statements, keyset pages. A
 * user's messages newest first, one session's transcript oldest first, a
 * text search for admins, and the closed sessions (an agent's own, or
 * everyone's) with their wrap-up summaries, searchable by summary. Pages are cut at an opaque cursor (base64url of
 * "created_at_us:id"): rows with the same created_at are ordered by id, so
 * following `next` returns every row exactly once. The rows are written by
 * the archiver (`wxkf jobs`); this module never writes (its session is
 * read-only). Its connection has lib/pg's PG_USE_REQUEST timeouts: a
 * connection attempt gives up after 2 s, a statement after 5 s (server
 * side; the client waits 2 s more, then drops the connection). */
#ifndef HISTORY_H
#define HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kf.h"

#define HISTORY_PAGE_DEFAULT 50     /* rows of a user page or a search */
#define HISTORY_PAGE_MAX 200
#define HISTORY_TRANSCRIPT_MAX 1000 /* rows of one transcript answer */
#define HISTORY_SEARCH_MIN 2        /* characters of search text */
#define HISTORY_SEARCH_MAX 100
#define HISTORY_CURSOR_LEN 64       /* an encoded cursor with its NUL */

struct pg_conn;                     /* lib/pg */

struct history {
    const char *dsn;                /* borrowed */
    struct pg_conn *db;             /* NULL until the first read */
    unsigned long connects;         /* connections made (for tests, logs) */
};

/* A position between rows: created_at in microseconds since the epoch
 * (0 .. year 9999) and the row id. */
struct history_cursor {
    int64_t us;
    int64_t id;
};

/* Does not connect: the first read does. dsn is borrowed and must outlive
 * h. Never fails. */
void history_init(struct history *h, const char *dsn);
/* Closes the connection, if any. Safe twice. */
void history_release(struct history *h);

/* out (>= HISTORY_CURSOR_LEN bytes) gets the cursor's text. KF_EINVAL for
 * a position outside the ranges above. */
KF_WUR int history_cursor_encode(const struct history_cursor *c, char *out,
                                 size_t out_len);
/* Only what history_cursor_encode makes is accepted (canonical base64url
 * without padding of canonical decimals); anything else -> KF_EINVAL. */
KF_WUR int history_cursor_decode(struct kf_str s, struct history_cursor *out);

/* The ILIKE pattern finding text anywhere: '%' + text with '\', '%' and
 * '_' escaped by '\' + '%', appended to out (NUL-terminated). text must
 * be valid UTF-8 without NUL, HISTORY_SEARCH_MIN..MAX characters, else
 * KF_EINVAL. */
KF_WUR int history_like_pattern(struct kf_str text, struct kf_buf *out);

/* The reads. On success *out is a new object the caller json_decref()s:
 * {"messages":[message...],"next":"cursor"|null}, a message being
 * {"id","openid","direction":"in"|"out","msgtype","content","media_id",
 *  "agent","session_id","created_at" (RFC 3339 UTC, ms),"payload",
 *  and for "out" also "status","errcode"} with null for what is unknown.
 * Errors: KF_EINVAL for an argument out of range, KF_EBACKEND when
 * PostgreSQL is unreachable or fails (the next call reconnects), KF_EIO
 * for a row that cannot be represented, KF_ENOMEM. */

/* openid's messages before the cursor (NULL: the newest), newest first;
 * limit 1..HISTORY_PAGE_MAX. */
KF_WUR int history_user_page(struct history *h, struct kf_str openid,
                             const struct history_cursor *before, long limit,
                             json_t **out);

/* The messages of openid's session session_id (0: its current session,
 * else its latest, from the sessions table; KF_ENOTFOUND if it has none)
 * after the cursor (NULL: from the start), oldest first; limit
 * 1..HISTORY_TRANSCRIPT_MAX. *out also has "session_id". */
KF_WUR int history_transcript(struct history *h, struct kf_str openid,
                              int64_t session_id,
                              const struct history_cursor *after, long limit,
                              json_t **out);

/* Every user's messages whose content contains text (case-insensitive;
 * text as for history_like_pattern) before the cursor, newest first;
 * limit 1..HISTORY_PAGE_MAX. */
KF_WUR int history_search(struct history *h, struct kf_str text,
                          const struct history_cursor *before, long limit,
                          json_t **out);

/* Closed sessions, newest close first, before the cursor (closed_at and
 * id): agent's (NULL: everyone's); when text.len > 0 only those whose
 * summary contains text (as for history_like_pattern); when label is not
 * NULL only those closed with that label (its name); limit
 * 1..HISTORY_PAGE_MAX. *out: {"sessions":[session...],"next"}, a session
 * being {"id","openid","agent","group","opened_at","closed_at",
 * "close_reason","summary","labels":[name...]} (null for what is
 * unknown). Errors as above. */
KF_WUR int history_closed(struct history *h, const char *agent,
                          struct kf_str text, const char *label,
                          const struct history_cursor *before, long limit,
                          json_t **out);

/* 0 when the archived session session_id is openid's and agent was its
 * (last) agent; KF_ENOTFOUND when not, KF_EINVAL for bad arguments,
 * KF_EBACKEND. */
KF_WUR int history_served(struct history *h, struct kf_str openid,
                          int64_t session_id, const char *agent);

#endif
