/* refusal: the one table of refusals — every sub-code a Lua script or a
 * lib/ verb reports by name ("not_yours", "agent_full", ...), the kf code
 * the verb returns for it, and what the REST API answers: HTTP status,
 * error code, message. A verb hands its caller the row (never a string
 * to compare again); fcgi/ answers from the row. Adding a sub-code to a
 * script means adding its row here (test_refusal reads lib/lua/ and
 * checks).
 *
 * The error-detail convention, lib -> fcgi: a verb returns 0 or a kf
 * code; when the failure is a refusal an API client is told about, it
 * also hands back which one as a `const struct refusal *` (a static row:
 * never freed, never NULL once set) — in an out-parameter named `why` or
 * a `why` member of its result struct. Text for the log (a backend's
 * message, the field a check names) goes in a bounded `msg` array of the
 * module's detail struct (`struct pg_err`, `struct agent_err`, ...); the
 * API shows it only where the row has no message of its own
 * (invalid_field). */
#ifndef REFUSAL_H
#define REFUSAL_H

#include "kf.h"

/* Which verbs report a row (a row may belong to several). The same
 * sub-code can mean different things to different verbs (not_yours of a
 * session, of a media file), so a sub-code is looked up in a scope. */
enum refusal_scope {
    REFUSAL_SESSION = 1,    /* route_session: lib/lua/session.lua */
    REFUSAL_PRESENCE = 2,   /* route_presence: lib/lua/presence.lua */
    REFUSAL_SEND = 4,       /* outbound_send: its checks, outbound.lua's
                               reserve, WeChat's errcodes */
    REFUSAL_MEDIA = 8,      /* media_open (its lookup script) */
    REFUSAL_READ = 16,      /* the API's own reads of a session or a
                               user's history (fcgi/api.c) */
    REFUSAL_INTERNAL = 32,  /* a programming error or a lost race, never
                               a client's doing */
    REFUSAL_AGENT = 64,     /* the agent verbs (agent_sync, agent_db):
                               looked up by the kf code they return */
    REFUSAL_CANNED = 128,   /* lib/canned_db: canned replies */
    REFUSAL_UPLOAD = 256,   /* media_out_check: an agent's upload */
    REFUSAL_LABEL = 512,    /* the label verbs (lib/label): looked up by
                               the kf code they return */
    REFUSAL_TRANSFER = 1024,    /* a transfer's note (lib/handover):
                                   looked up by the kf code */
    REFUSAL_REOPEN = 2048,  /* route_reopen: session.lua's reopen */
    REFUSAL_STAFF = 8192,   /* staff sign-in and sessions (fcgi/staff.c,
                               lib/staff, lib/staff_session) */
    REFUSAL_REPORT = 16384, /* lib/report: a report's or an export's
                               query */
    REFUSAL_SUPERVISE = 131072, /* lib/supervise: a whisper's text (by
                                   kf code), lib/lua/supervise.lua */
    REFUSAL_AUDIT = 65536,  /* the audit log's view (GET /api/v1/audit,
                               lib/audit_view) */
    REFUSAL_TOKEN = 524288, /* API tokens of machine clients
                               (lib/api_token, fcgi/tokens.c): looked up
                               by the kf code */
};

#define REFUSAL_S REFUSAL_SESSION
#define REFUSAL_P REFUSAL_PRESENCE
#define REFUSAL_O REFUSAL_SEND
#define REFUSAL_M REFUSAL_MEDIA
#define REFUSAL_R REFUSAL_READ
#define REFUSAL_I REFUSAL_INTERNAL
#define REFUSAL_A REFUSAL_AGENT
#define REFUSAL_C REFUSAL_CANNED
#define REFUSAL_U REFUSAL_UPLOAD
#define REFUSAL_L REFUSAL_LABEL
#define REFUSAL_T REFUSAL_TRANSFER
#define REFUSAL_RE REFUSAL_REOPEN
#define REFUSAL_SF REFUSAL_STAFF
#define REFUSAL_SV REFUSAL_SUPERVISE

/* X(ID, scopes, sub-code, kf code, HTTP status, API code, message,
 *   WeChat errcode meaning the same (0: none)). message NULL: the verb's
 * detail text is the message. Messages are the API's, byte for byte
 * (docs/api.md quotes them). */
#define REFUSALS(X)                                                         \
    X(NO_SESSION, REFUSAL_S | REFUSAL_R, "no_session", KF_ENOTFOUND, 404,   \
      "no_session", "this user has no session", 0)                          \
    X(NOT_YOURS, REFUSAL_S | REFUSAL_O | REFUSAL_R, "not_yours", KF_EINVAL, \
      403, "not_yours", "the session is another agent's", 0)                \
    X(UNKNOWN_AGENT, REFUSAL_S | REFUSAL_RE, "unknown_agent", KF_EINVAL,    \
      404, "unknown_agent", "no such agent", 0)                             \
    X(UNKNOWN_GROUP, REFUSAL_S, "unknown_group", KF_EINVAL, 404,            \
      "unknown_group", "no such group", 0)                                  \
    X(AGENT_OFFLINE, REFUSAL_S | REFUSAL_RE, "agent_offline", KF_EINVAL,    \
      409, "agent_offline", "the agent is offline", 0)                      \
    X(AGENT_FULL, REFUSAL_S | REFUSAL_RE, "agent_full", KF_EINVAL, 409,     \
      "agent_full", "the agent is at capacity", 0)                          \
    X(SAME_AGENT, REFUSAL_S, "same_agent", KF_EINVAL, 409, "same_agent",    \
      "the session is already with that agent", 0)                          \
    X(NOT_ACTIVE, REFUSAL_S, "not_active", KF_EINVAL, 400, "refused",       \
      "the session action was refused", 0)                                  \
    X(NOT_WAITING, REFUSAL_S, "not_waiting", KF_EINVAL, 409,               \
      "not_waiting", "the user is not waiting in a queue", 0)               \
    X(SAME_GROUP, REFUSAL_S, "same_group", KF_EINVAL, 409, "same_group",    \
      "the user is already waiting in that group", 0)                       \
    X(NOT_AT_WORK, REFUSAL_P, "not_at_work", KF_EINVAL, 409,               \
      "not_at_work", "the agent is offline: only an agent at work can be "  \
      "paused", 0)                                                          \
    X(REFUSED, REFUSAL_S | REFUSAL_O | REFUSAL_RE, "", KF_EINVAL, 400,      \
      "refused", "the session action was refused", 0)                       \
    X(HELD, REFUSAL_RE, "held", KF_EBUSY, 409, "user_taken",                \
      "the user is in a session with another agent", 0)                     \
    X(AGENT_GONE, REFUSAL_P, "unknown_agent", KF_ENOTFOUND, 404,            \
      "unknown_agent", "agent not found", 0)                                \
    X(BAD_STATUS, REFUSAL_P, "bad_status", KF_EINVAL, 500,                  \
      "internal_error", "internal error", 0)                                \
    X(FROM_WECHAT, REFUSAL_P, "presence_from_wechat", KF_EINVAL, 409,       \
      "presence_from_wechat", "this agent goes online and offline in "      \
      "WeChat's customer-service tool (mode wechat_kf); here it can only "  \
      "pause and resume", 0)                                                \
    X(OUTSIDE_WINDOW, REFUSAL_O | REFUSAL_RE, "outside_48h_window",         \
      KF_EINVAL, 409, "outside_48h_window", "the user has not written "     \
      "within the customer-service window (48 h after a message)", 45015)   \
    X(QUOTA_EXHAUSTED, REFUSAL_O | REFUSAL_RE, "quota_exhausted",           \
      KF_EINVAL, 409, "quota_exhausted",                                    \
      "no sends left until the user writes again", 45047)                   \
    X(SEND_NO_SESSION, REFUSAL_O, "no_session", KF_EINVAL, 404,             \
      "no_session", "this user has no session with you", 0)                 \
    X(INVALID_FIELD, REFUSAL_O | REFUSAL_C, "invalid_field", KF_EINVAL,     \
      400, "invalid_field", NULL, 0)                                        \
    X(BAD_MEDIA_ID, REFUSAL_M, "bad_media_id", KF_EINVAL, 404, "no_media",  \
      "no such media", 0)                                                   \
    X(MEDIA_NOT_YOURS, REFUSAL_M, "not_yours", KF_EINVAL, 403, "not_yours", \
      "the user is not in one of your sessions", 0)                         \
    X(MEDIA_FAILED, REFUSAL_M, "media_failed", KF_ENOTFOUND, 404,           \
      "media_failed", "the media could not be fetched from WeChat", 0)      \
    X(NO_MEDIA, REFUSAL_M, "no_media", KF_ENOTFOUND, 404, "no_media",       \
      "no such media, or not stored yet", 0)                                \
    X(NO_PLAYABLE, REFUSAL_M, "no_playable", KF_ENOTFOUND, 404,             \
      "no_playable", "this media has no playable copy", 0)                  \
    X(BAD_MEDIA_FORMAT, REFUSAL_M, "bad_format", KF_EINVAL, 400,            \
      "bad_format", "format must be wav", 0)                                \
    X(NOT_SERVED, REFUSAL_R, "not_served", KF_EINVAL, 403, "not_yours",     \
      "the user is not served by you", 0)                                   \
    X(NOT_AUTHOR, REFUSAL_R, "not_author", KF_EINVAL, 403, "not_author",    \
      "only the note's author or an admin may change it", 0)                \
    X(BAD_OP, REFUSAL_S | REFUSAL_O | REFUSAL_I | REFUSAL_RE, "bad_op",     \
      KF_EINVAL, 500, "internal_error", "internal error", 0)                \
    X(LOST_LEASE, REFUSAL_I, "lost_lease", KF_EINVAL, 500,                  \
      "internal_error", "internal error", 0)                                \
    X(NO_AGENT, REFUSAL_A, "unknown_agent", KF_ENOTFOUND, 404,              \
      "unknown_agent", "no such agent", 0)                                  \
    X(ACCOUNT_EXISTS, REFUSAL_A, "account_exists", KF_EEXISTS, 409,         \
      "account_exists", "an agent with this account exists", 0)             \
    X(AGENT_BUSY, REFUSAL_A, "agent_busy", KF_EBUSY, 409, "agent_busy",     \
      NULL, 0)                                                             \
    X(AGENT_INVALID, REFUSAL_A, "invalid_field", KF_EINVAL, 400,            \
      "invalid_field", NULL, 0)                                             \
    X(CANNED_UNKNOWN, REFUSAL_C, "no_canned", KF_ENOTFOUND, 404,            \
      "no_canned", "no such canned reply", 0)                               \
    X(CANNED_SHARED, REFUSAL_C, "shared", KF_EINVAL, 403, "canned_shared",  \
      "shared canned replies are managed by admins", 0)                     \
    X(CANNED_FULL, REFUSAL_C, "canned_full", KF_ELIMIT, 409,                \
      "canned_full", "the list holds 500 canned replies already", 0)        \
    X(CANNED_BAD_CSV, REFUSAL_C, "invalid_csv", KF_EPARSE, 400,             \
      "invalid_csv", "the CSV file was refused; nothing was imported", 0)   \
    X(UNSUPPORTED_MEDIA, REFUSAL_U, "unsupported", KF_EINVAL, 400,          \
      "unsupported_media", "the body must be a JPEG, PNG or GIF image, an " \
      "AMR or MP3 voice or an MP4 video (a thumb: a JPEG) with the "        \
      "matching Content-Type", 0)                                           \
    X(IMAGE_TOO_LARGE, REFUSAL_U, "image_too_large", KF_ETOOBIG, 413,       \
      "media_too_large", "images are limited to 2 MiB", 40009)              \
    X(VOICE_TOO_LARGE, REFUSAL_U, "voice_too_large", KF_ETOOBIG, 413,       \
      "media_too_large", "voice messages are limited to 2 MiB", 40010)      \
    X(VIDEO_TOO_LARGE, REFUSAL_U, "video_too_large", KF_ETOOBIG, 413,       \
      "media_too_large", "videos are limited to 10 MiB", 40011)             \
    X(THUMB_TOO_LARGE, REFUSAL_U, "thumb_too_large", KF_ETOOBIG, 413,       \
      "media_too_large", "a video's thumbnail is limited to 64 KiB", 40006) \
    X(VOICE_TOO_LONG, REFUSAL_U, "voice_too_long", KF_EINVAL, 400,          \
      "voice_too_long", "voice messages are limited to 60 seconds", 0)      \
    X(BAD_VOICE, REFUSAL_U, "bad_voice", KF_EINVAL, 400, "bad_voice",       \
      "the voice file is no AMR-NB or MP3 WeChat can take", 0)              \
    X(NO_LABEL, REFUSAL_L, "unknown_label", KF_ENOTFOUND, 404,              \
      "unknown_label", "no such label", 0)                                  \
    X(LABEL_EXISTS, REFUSAL_L, "label_exists", KF_EEXISTS, 409,             \
      "label_exists", "a label with this name exists", 0)                   \
    X(LABELS_FULL, REFUSAL_L, "labels_full", KF_ETOOBIG, 409,               \
      "labels_full", "an account has at most 100 labels", 0)                \
    X(LABEL_INVALID, REFUSAL_L, "invalid_field", KF_EINVAL, 400,            \
      "invalid_field", NULL, 0)                                             \
    X(NOTE_TOO_LONG, REFUSAL_T, "note_too_long", KF_ETOOBIG, 400,           \
      "note_too_long", "the note is longer than 200 characters", 0)         \
    X(NOTE_INVALID, REFUSAL_T, "note_invalid", KF_EINVAL, 400,              \
      "invalid_note", "the note must be text without control characters "   \
      "or line breaks", 0)                                                  \
    X(NOTE_NOT_UTF8, REFUSAL_T, "note_not_utf8", KF_EPARSE, 400,            \
      "invalid_note", "the note is not valid UTF-8", 0)                     \
    X(WRONG_CREDENTIALS, REFUSAL_SF, "wrong_credentials", KF_EBADSIG, 401,  \
      "wrong_credentials", "the login or the password is wrong", 0)         \
    X(ACCOUNT_LOCKED, REFUSAL_SF, "account_locked", KF_ELIMIT, 429,         \
      "account_locked", "too many wrong passwords: this login is locked "   \
      "for a while (Retry-After)", 0)                                       \
    X(ACCOUNT_DISABLED, REFUSAL_SF, "account_disabled", KF_EINVAL, 403,     \
      "account_disabled", "this user is disabled", 0)                       \
    X(CSRF_FAILED, REFUSAL_SF, "csrf_failed", KF_EBADSIG, 403,              \
      "csrf_failed", "the X-CSRF-Token header is missing or wrong", 0)      \
    X(READ_ONLY, REFUSAL_SF, "read_only", KF_EINVAL, 403, "read_only",      \
      "supervisors may only read here", 0)                                  \
    X(WEAK_PASSWORD, REFUSAL_SF, "weak_password", KF_EINVAL, 400,           \
      "weak_password", "a password is 10 to 128 bytes of text: at least "   \
      "10 characters, no control characters", 0)                            \
    X(NO_STAFF, REFUSAL_SF, "unknown_user", KF_ENOTFOUND, 404,              \
      "unknown_user", "no such user", 0)                                    \
    X(NOT_SIGNED_IN, REFUSAL_SF, "not_signed_in", KF_EBADSIG, 401,          \
      "not_signed_in", "sign in with a password first (a session cookie "   \
      "is required)", 0)                                                    \
    X(LOGIN_TAKEN, REFUSAL_SF, "login_taken", KF_EEXISTS, 409,              \
      "login_taken", "this login is taken, or the agent has a user "        \
      "already", 0)                                                         \
    X(STAFF_SELF, REFUSAL_SF, "cannot_change_self", KF_EBUSY, 409,          \
      "cannot_change_self", "you cannot disable yourself or change your "   \
      "own role", 0)                                                        \
    X(STAFF_INVALID, REFUSAL_SF, "invalid_field", KF_EINVAL, 400,           \
      "invalid_field", NULL, 0)                                             \
    X(REPORT_DATES, REFUSAL_REPORT, "invalid_range", KF_EINVAL, 400,        \
      "invalid_range", "from and to must be dates (YYYY-MM-DD), from not "  \
      "after to", 0)                                                       \
    X(REPORT_TOO_LONG, REFUSAL_REPORT, "range_too_long", KF_EINVAL, 400,    \
      "range_too_long", "a report covers at most 366 days", 0)             \
    X(REPORT_INVALID, REFUSAL_REPORT, "invalid_field", KF_EINVAL, 400,      \
      "invalid_field", NULL, 0)                                            \
    X(EXPORT_TOO_BIG, REFUSAL_REPORT, "export_too_large", KF_ETOOBIG, 413,  \
      "export_too_large", "an export holds at most 100000 messages: "      \
      "narrow it", 0)                                                      \
    X(WHISPER_TOO_LONG, REFUSAL_SV, "whisper_too_long", KF_ETOOBIG, 400,    \
      "whisper_too_long", "a whisper is at most 500 characters", 0)         \
    X(WHISPER_INVALID, REFUSAL_SV, "whisper_invalid", KF_EINVAL, 400,       \
      "invalid_whisper", "a whisper must be text without control "          \
      "characters", 0)                                                      \
    X(WHISPER_NOT_UTF8, REFUSAL_SV, "whisper_not_utf8", KF_EPARSE, 400,     \
      "invalid_whisper", "the whisper is not valid UTF-8", 0)               \
    X(WHISPER_EMPTY, REFUSAL_SV, "whisper_empty", KF_EINVAL, 400,           \
      "invalid_whisper", "the whisper is empty", 0)                         \
    X(SV_NO_SESSION, REFUSAL_SV, "no_session", KF_ENOTFOUND, 404,           \
      "no_session", "this user has no session", 0)                          \
    X(SV_NOT_YOURS, REFUSAL_SV, "not_yours", KF_EINVAL, 403, "not_yours",   \
      "the session is another agent's", 0)                                  \
    X(SV_NOT_ACTIVE, REFUSAL_SV, "not_active", KF_EINVAL, 409,              \
      "not_active", "only a session an agent is serving can be taken "      \
      "over", 0)                                                            \
    X(SV_UNKNOWN_AGENT, REFUSAL_SV, "unknown_agent", KF_ENOTFOUND, 404,     \
      "unknown_agent", "no such agent", 0)                                  \
    X(SV_SAME_AGENT, REFUSAL_SV, "same_agent", KF_EINVAL, 409,              \
      "same_agent", "the session is already with that agent", 0)            \
    X(NO_AGENT_IDENTITY, REFUSAL_SV, "no_agent_identity", KF_EINVAL, 409,   \
      "no_agent_identity", "taking over needs an agent account linked to "  \
      "this supervisor (wxkf user add --role supervisor --agent ACCOUNT)",  \
      0)                                                                    \
    X(AUDIT_TIME, REFUSAL_AUDIT, "invalid_time", KF_EINVAL, 400,            \
      "invalid_time", "from and to must be dates (YYYY-MM-DD) or times "   \
      "(YYYY-MM-DDTHH:MM[:SS], Z for UTC), from before to", 0)             \
    X(AUDIT_LIMIT, REFUSAL_AUDIT, "invalid_limit", KF_EINVAL, 400,          \
      "invalid_limit", "limit must be 1..200 and offset 0..100000", 0)      \
    X(AUDIT_FILTER_LONG, REFUSAL_AUDIT, "filter_too_long", KF_ETOOBIG, 400, \
      "filter_too_long", "actor, action and target are at most 128 bytes",  \
      0)                                                                    \
    X(AUDIT_FILTER, REFUSAL_AUDIT, "invalid_filter", KF_EINVAL, 400,        \
      "invalid_filter", "actor, action and target must be non-empty text "  \
      "without control characters", 0)                                      \
    X(TOKEN_SCOPE, REFUSAL_TOKEN, "scope", KF_EBADSIG, 403, "scope",       \
      "this API token's scopes do not cover this route", 0)               \
    X(NO_TOKEN, REFUSAL_TOKEN, "unknown_token", KF_ENOTFOUND, 404,         \
      "unknown_token", "no such API token", 0)                             \
    X(TOKEN_NAME_TAKEN, REFUSAL_TOKEN, "token_name_taken", KF_EEXISTS,     \
      409, "token_name_taken", "a live API token has this name already",  \
      0)                                                                   \
    X(TOO_MANY_TOKENS, REFUSAL_TOKEN, "too_many_tokens", KF_ELIMIT, 409,   \
      "too_many_tokens", "an account has at most 100 live API tokens: "    \
      "revoke one first", 0)                                               \
    X(TOKEN_INVALID, REFUSAL_TOKEN, "invalid_field", KF_EINVAL, 400,       \
      "invalid_field", NULL, 0)

enum refusal_id {
#define X(id, scopes, sub, rc, status, code, message, errcode) REFUSAL_##id,
    REFUSALS(X)
#undef X
    REFUSAL_COUNT
};

struct refusal {
    enum refusal_id id;
    unsigned scopes;            /* enum refusal_scope bits */
    const char *sub;            /* what the script or verb reports ("":
                                   the scope's "anything else") */
    int rc;                     /* the kf code the verb returns */
    int status;                 /* HTTP */
    const char *code;           /* the API's error code */
    const char *message;        /* the API's message; NULL: the detail */
    long wx_errcode;            /* WeChat's errcode for the same, or 0 */
};

/* The row of id (static; never NULL for a valid id). */
const struct refusal *refusal_get(enum refusal_id id);
/* The row scope reports as sub (untrusted bytes: compared, never kept);
 * the row of otherwise when none matches. Never NULL. */
const struct refusal *refusal_find(unsigned scope, struct kf_str sub,
                                   enum refusal_id otherwise);
/* The row of scope a verb's kf code rc means (the first such row), or
 * NULL (rc is no refusal: a backend failure). */
const struct refusal *refusal_by_rc(unsigned scope, int rc);
/* The row of scope WeChat's errcode means, or NULL. */
const struct refusal *refusal_by_errcode(unsigned scope, long errcode);

#endif
