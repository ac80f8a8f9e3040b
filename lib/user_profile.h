/* user_profile: who a user is. It owns the PostgreSQL tables user_profiles
 * (what WeChat's cgi-bin/user/info said, the agents' display name and the
 * remark) and user_notes (agents' private notes on a user), keyed by the
 * account's AppID and the OpenID; the look-ups `wxkf jobs` makes (a Redis
 * sorted set of OpenIDs fed from the event stream, lib/lua/user_profile.lua:
 * at most one successful look-up a day per user, failures retried with
 * exponential back-off); the remark pushed to WeChat
 * (cgi-bin/user/info/updateremark); the profile page the API answers
 * (profile, notes, past sessions with their message counts). Every
 * change an agent or admin makes is written to audit_log in the same
 * transaction. The callback path never calls it. (Not named "profile":
 * libkrb5, which libpq loads, exports profile_init and profile_release.) */
#ifndef USER_PROFILE_H
#define USER_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kf.h"
#include "pg.h"
#include "refusal.h"
#include "store.h"
#include "user_tags.h"

struct wx_api;
struct wx_api_result;

#define PROFILE_REMARK_MAX 30       /* characters: WeChat's limit */
#define PROFILE_NAME_MAX 64         /* characters of a display name */
#define PROFILE_NOTE_MAX 2000       /* characters of a note */
#define PROFILE_NOTES_MAX 100       /* notes a profile page shows */
#define PROFILE_SESSIONS_MAX 50     /* past sessions a profile page shows */
#define PROFILE_FRESH_MS (24LL * 3600 * 1000)   /* a look-up lasts a day */
#define PROFILE_RETRY_MS 60000      /* first retry after a failure */
#define PROFILE_RETRY_MAX_MS (6LL * 3600 * 1000)
#define PROFILE_LEASE_MS 60000
/* A consumer of the profile group idle an hour is a `wxkf jobs` gone for
 * good (a live one reads every pass): forgotten (lib/stream_group.h).
 * Nothing is lost if it was not: it holds no entries past its script. */
#define PROFILE_FORGET_MS 3600000L
#define PROFILE_GROUP "profile"     /* the consumer group on P events */
/* Stream entries a pass reads (and acknowledges) at most: far more than
 * the look-ups a pass makes, so the group keeps up with a burst of
 * messages and never holds back the archiver's trimming. */
#define PROFILE_READ_MAX 5000

/* One account's profiles in one PostgreSQL database: a lazy connection
 * (the first verb connects). */
struct user_profile {
    const char *dsn;                /* borrowed */
    const char *app_id;             /* borrowed */
    enum pg_use use;
    struct pg_conn *db;             /* NULL until the first verb */
    /* The audit record (lib/audit) of the request's change, borrowed:
     * set with user_profile_audit around a verb; NULL: the row has the
     * verb's actor only. */
    const struct audit *audit;
};

/* The changes until the next call are audited with au's actor, role,
 * address and request id (NULL: only the verb's actor). au is borrowed:
 * set it back to NULL before it goes away. */
struct audit;
void user_profile_audit(struct user_profile *p, const struct audit *au);

/* dsn and app_id are borrowed and must outlive p. Never fails. */
void user_profile_init(struct user_profile *p, const char *dsn,
                       const char *app_id, enum pg_use use);
void user_profile_release(struct user_profile *p); /* safe twice */

/* 0 when s is one line of text (kf_text_check, lines 0) of at most max
 * characters, and not empty when min is 1 (min is 0 or 1), else
 * KF_EINVAL. */
KF_WUR int user_profile_text_ok(const char *s, size_t min, size_t max);

/* What WeChat's user/info answer j (borrowed) says, as a new object of
 * the fields wxkf keeps, each checked: {"subscribe": bool,
 * "subscribe_time": epoch s, "subscribe_scene", "language", "unionid",
 * "remark", "tagid_list": [int], "qr_scene": int, "qr_scene_str"}; a
 * field absent or of the wrong type is left out (nickname and headimgurl,
 * which WeChat no longer fills, are never kept). KF_EPARSE if j is not an
 * object, KF_ENOMEM. On success *out is new: json_decref() it. */
KF_WUR int user_profile_parse_info(json_t *j, json_t **out);

/* --- `wxkf jobs`: the look-ups ---------------------------------------- */

struct user_profile_counts {
    long queued;        /* users added to the due set */
    long fetched;       /* look-ups that succeeded */
    long fresh;         /* due but looked up less than a day ago */
    long failed;        /* permanent WeChat errors (kept on the profile) */
    long retried;       /* transient failures, due again later */
    long tags;          /* the account's tag list fetched (tags/get) */
    long tags_failed;   /* ... and failed (tried again a minute later) */
};

struct user_profile_jobs {
    struct user_profile *p;              /* borrowed */
    struct store *store;            /* borrowed */
    struct wx_api *api;             /* borrowed */
    struct store_script script;     /* lib/lua/user_profile.lua */
    char consumer[64];
    long forget_ms;                 /* PROFILE_FORGET_MS (tests: less) */
    struct store_script tags;       /* lib/lua/user_tags.lua */
    int tags_unknown;               /* a profile named a tag id the kept
                                       list lacks: fetch it again */
};

/* All borrowed; they must outlive j. Never fails. */
void user_profile_jobs_init(struct user_profile_jobs *j,
                            struct user_profile *p, struct store *st,
                            struct wx_api *api);
/* One pass: reads up to limit new events (queuing the OpenIDs of inbound
 * messages) and looks up at most limit due users. A user whose last
 * successful look-up is younger than PROFILE_FRESH_MS is not asked
 * again. A permanent WeChat error (40003 invalid openid, …) is kept on
 * the profile (fetch_errcode, fetch_error) and retried only a day later;
 * a transient one (network, 45009, rate limit, PostgreSQL down) is due
 * again after PROFILE_RETRY_MS doubled per failure in a row, at most
 * PROFILE_RETRY_MAX_MS. Then the account's tag list (tags/get) is
 * fetched when lib/user_tags says it is due (hourly, or a profile just
 * fetched names an id it lacks); a failure is counted and tried again a
 * minute later. KF_EBACKEND when Redis fails. */
KF_WUR int user_profile_jobs_pass(struct user_profile_jobs *j, int64_t now_ms,
                             long limit, struct user_profile_counts *c);

/* --- the API's verbs ---------------------------------------------------- */

/* The profile page of openid: {"openid", "display_name", "remark",
 * "info": {user_profile_parse_info's fields} | null, "fetched_at",
 * "fetch_error": {"errcode","errmsg"} | null, "updated_at",
 * "notes": [{"id","author","body","created_at","updated_at"}...] newest
 * first (PROFILE_NOTES_MAX), "sessions": [{"id","opened_at","closed_at",
 * "agent","agent_nick","close_reason","messages"}...] newest first
 * (PROFILE_SESSIONS_MAX)}; times RFC 3339 UTC, null when unknown. A user
 * never looked up has null fields and whatever sessions exist. On
 * success *out is new. KF_EINVAL for a bad OpenID, KF_EBACKEND. */
KF_WUR int user_profile_page(struct user_profile *p, struct kf_str openid,
                        json_t **out);

/* 1 in *yes when agent has or had a session with openid. */
KF_WUR int user_profile_served(struct user_profile *p, struct kf_str openid,
                          const char *agent, int *yes);

/* Sets the display name (NULL or "" clears it); actor goes to audit_log.
 * KF_EINVAL for a name that fails
 * user_profile_text_ok(0..PROFILE_NAME_MAX). */
KF_WUR int user_profile_set_name(struct user_profile *p, struct kf_str openid,
                            const char *name, const char *actor);

/* Pushes remark ("" clears; at most PROFILE_REMARK_MAX characters,
 * checked before WeChat is asked: KF_EINVAL) with updateremark, then
 * keeps it on the profile and in audit_log. KF_EWECHAT when WeChat
 * refused (res->errcode, res->errmsg), KF_EBACKEND when WeChat or
 * PostgreSQL could not be reached, KF_ELIMIT as wx_api_call. res must
 * be initialized by the caller and released by it. */
KF_WUR int user_profile_set_remark(struct user_profile *p, struct wx_api *api,
                              struct kf_str openid, const char *remark,
                              const char *actor, struct wx_api_result *res);

/* Notes. body: 1..PROFILE_NOTE_MAX characters (else KF_EINVAL). On
 * success *out (if out) is the note as user_profile_page shows it. Editing or
 * deleting: KF_ENOTFOUND when openid has no note id; a note of another
 * author (unless admin) is refused: KF_EINVAL with *why =
 * REFUSAL_NOT_AUTHOR's row. */
KF_WUR int user_profile_note_add(struct user_profile *p, struct kf_str openid,
                            const char *author, const char *body,
                            json_t **out);
KF_WUR int user_profile_note_edit(struct user_profile *p, struct kf_str openid,
                             int64_t id, const char *actor, int admin,
                             const char *body, json_t **out,
                             const struct refusal **why);
KF_WUR int user_profile_note_delete(struct user_profile *p,
                                    struct kf_str openid, int64_t id,
                                    const char *actor, int admin,
                                    const struct refusal **why);

#endif
