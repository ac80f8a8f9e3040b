/* staff_session: what a staff user's password sign-in leaves behind —
 * the console session (an opaque cookie id of 32 random bytes as hex,
 * kept in Redis under the account prefix only as its SHA-256, with an
 * idle and an absolute expiry), its CSRF token, sign-out (one session or
 * all of a user's), and the lock-out of a login after failed passwords
 * (per login, never per address; lib/lua/staff.lua). The time rules are
 * pure functions of an injected clock (staff_session_expired,
 * staff_lock_delay_ms, staff_csrf_ok) so that tests need no sleeping. */
#ifndef STAFF_SESSION_H
#define STAFF_SESSION_H

#include <stdint.h>

#include "kf.h"
#include "staff.h"

struct store;

#define STAFF_SID_SIZE 65               /* 64 hex + NUL */
#define STAFF_COOKIE "wxkf_sid"
#define STAFF_CSRF_HEADER "X-CSRF-Token"
/* Lock-out: STAFF_LOCK_FREE failed passwords in a row cost nothing more;
 * the next one locks the login for STAFF_LOCK_BASE_MS, and each further
 * one doubles it, up to STAFF_LOCK_MAX_MS. A right password ends it. */
#define STAFF_LOCK_FREE 4
#define STAFF_LOCK_BASE_MS 1000
#define STAFF_LOCK_MAX_MS 900000        /* 15 minutes */

struct staff_session {
    char login[STAFF_LOGIN_SIZE];
    char role[STAFF_ROLE_SIZE];
    char agent[STAFF_AGENT_SIZE];       /* role agent, else "" */
    char name[STAFF_NAME_SIZE];
    char csrf[STAFF_SID_SIZE];
    char agent_status[16];              /* online|paused|offline, "" */
    char hash[STAFF_SID_SIZE];          /* SHA-256 of the id: its key */
};

/* 1 when a session created at created_ms and last used at last_ms is
 * over: idle for idle_ms or more, or older than max_ms, at now_ms. */
int staff_session_expired(int64_t created_ms, int64_t last_ms,
                          int64_t now_ms, int64_t idle_ms, int64_t max_ms);
/* How long a login is locked after its failures-th failed password in a
 * row: 0 up to STAFF_LOCK_FREE, then STAFF_LOCK_BASE_MS doubling, capped
 * at STAFF_LOCK_MAX_MS. */
int64_t staff_lock_delay_ms(int64_t failures);
/* 1 when a request of method may go on as far as CSRF goes: GET, HEAD
 * and OPTIONS always; any other only with a header equal (constant
 * time) to the session's token expected (64 hex). */
int staff_csrf_ok(struct kf_str method, struct kf_str header,
                  const char *expected);
/* The session id from a Cookie header's value: the STAFF_COOKIE pair's
 * value if it is 64 lowercase hex. 0, or KF_ENOTFOUND. out borrows from
 * cookie. */
KF_WUR int staff_cookie_sid(struct kf_str cookie, struct kf_str *out);

/* A new session for u: sid gets the cookie's id, csrf its token (both
 * 64 hex). KF_ECRYPTO, KF_EBACKEND. */
KF_WUR int staff_session_new(struct store *st, const struct staff_user *u,
                             int64_t now_ms, int64_t idle_ms, int64_t max_ms,
                             char sid[STAFF_SID_SIZE],
                             char csrf[STAFF_SID_SIZE]);
/* The session of cookie id sid at now_ms (its last use becomes now).
 * Unknown, expired (then ended) or an agent's whose agent is gone ->
 * KF_ENOTFOUND; KF_EBACKEND. */
KF_WUR int staff_session_get(struct store *st, struct kf_str sid,
                             int64_t now_ms, int64_t idle_ms, int64_t max_ms,
                             struct staff_session *out);
/* Ends the session whose key is hash (staff_session.hash). */
KF_WUR int staff_session_end(struct store *st, const char *hash);
/* Ends every session of login but keep_hash (NULL: all); *n (NULL ok)
 * gets how many ended. KF_EBACKEND. */
KF_WUR int staff_session_end_all(struct store *st, const char *login,
                                 const char *keep_hash, long *n);

/* 0 when login may try a password at now_ms; KF_ELIMIT while it is
 * locked, with the ms left in *left_ms. KF_EBACKEND. */
KF_WUR int staff_lock_check(struct store *st, const char *login,
                            int64_t now_ms, int64_t *left_ms);
/* Counts a failed password of login at now_ms; *locked_ms gets how long
 * it is locked now (0: not). KF_EBACKEND. */
KF_WUR int staff_lock_fail(struct store *st, const char *login,
                           int64_t now_ms, int64_t *locked_ms);
/* A right password: the failures are forgotten. */
KF_WUR int staff_lock_clear(struct store *st, const char *login);

#endif
