/* auth: who is calling the REST API. Parses `Authorization: Bearer`,
 * checks admin tokens against the SHA-256 in the configuration (constant
 * time) and maps agent tokens to their account through the Redis mirror
 * (tokens are only ever stored as SHA-256), and brakes guessing: past
 * [api] auth_failures_per_min failed attempts from one client address in
 * a minute, its failed attempts get KF_ELIMIT until the minute is over;
 * a right token or ticket is never refused. Bad stream tickets are
 * counted apart from bad tokens (lib/lua/auth.lua). */
#ifndef AUTH_H
#define AUTH_H

#include "config.h"
#include "kf.h"
#include "route.h"

#define AUTH_TOKEN_MAX 128
#define AUTH_WINDOW_MS 60000
#define AUTH_TICKET_SIZE 65       /* 64 hex + NUL */
#define AUTH_TICKET_TTL_S 60

/* AUTH_SUPERVISOR: a staff user of role supervisor (cookie only); the
 * API serves its reads as an admin's, and its other requests, and those
 * of /api/v1/me..., as its agent's when it is linked to one (account; a
 * supervisor without one is refused them), but for the supervisor's own
 * routes (whisper, take-over: fcgi/api.c, api_authenticate). */
enum auth_role { AUTH_NONE, AUTH_AGENT, AUTH_ADMIN, AUTH_SUPERVISOR };

struct auth {
    enum auth_role role;
    char account[48];           /* AUTH_AGENT; AUTH_SUPERVISOR's agent or "" */
    char status[16];            /* of account: online, paused, offline */
    char token_sha256[65];      /* AUTH_AGENT by token: its hash */
    long retry_after_s;         /* KF_ELIMIT: when to try again */
    /* A staff user signed in with a password (auth_cookie_identify);
     * login "" for a bearer token. */
    char login[33], name[257], staff_role[12];
    char session_sha256[65];    /* the session's key (lib/staff_session) */
    char csrf[65];              /* the session's CSRF token */
    /* A named API token (lib/api_token; role AUTH_ADMIN within its
     * scopes): its id (0: not one), scopes and name. */
    long long api_token_id;
    unsigned api_scopes;
    char api_token_name[257];
};

/* "Bearer <token>" -> token (borrowed from header). Missing, another
 * scheme, an empty or over-long token, or bytes outside [A-Za-z0-9_-]
 * -> KF_EBADSIG. */
KF_WUR int auth_bearer(struct kf_str header, struct kf_str *token);

/* The client address as a rate-limit key: an IPv4 literal as is, an IPv6
 * one as its /64 (one end site: "2001:db8:1:2::/64"), anything else
 * "unknown". */
void auth_address(struct kf_str remote_addr, char out[46]);

/* Identifies the caller from `authorization` (the header's value) and
 * its client address (auth_address). A right token -> 0, always; no
 * header -> KF_EBADSIG without counting; a bad token -> KF_EBADSIG,
 * counted against the address, or, the address over its limit,
 * KF_ELIMIT with out->retry_after_s (not counted again); Redis down ->
 * KF_EBACKEND. */
KF_WUR int auth_identify(struct route *r, const struct config *cfg,
                         struct kf_str authorization, const char *address,
                         struct auth *out);

/* A failed attempt that is no token auth_identify knows (a named API
 * token PostgreSQL does not have, fcgi/api.c), counted against the
 * address like a bad token: KF_EBADSIG, or KF_ELIMIT with
 * out->retry_after_s when the address is over its limit, KF_EBACKEND. */
KF_WUR int auth_count_failure(struct route *r, const struct config *cfg,
                              const char *address, struct auth *out);

/* Identifies a staff user by the session id of its cookie (the
 * wxkf_sid value, staff_cookie_sid): role agent -> AUTH_AGENT as its
 * agent account (status from the mirror), admin -> AUTH_ADMIN,
 * supervisor -> AUTH_SUPERVISOR (with its agent account and status when
 * linked to one); login, name, staff_role, csrf and
 * session_sha256 filled. Unknown or expired -> KF_EBADSIG (not counted
 * by the brake: the id is 256 random bits and never guessed by
 * retrying), Redis down -> KF_EBACKEND. */
KF_WUR int auth_cookie_identify(struct route *r, const struct config *cfg,
                                struct kf_str sid, struct auth *out);

/* A push-subscription ticket for the agent who (an agent identified by
 * its token): 32 random bytes as hex, kept (as SHA-256) for
 * AUTH_TICKET_TTL_S; good for ONE subscription, and only while that token
 * is the agent's (an agent signed in with a password: while that session
 * lasts). KF_EBACKEND if Redis is down, KF_ECRYPTO. */
KF_WUR int auth_ticket_issue(struct route *r, const struct auth *who,
                             char ticket[AUTH_TICKET_SIZE]);
/* Like auth_identify for a ticket (from a URL): the agent it was issued
 * to, if that is still an agent. Bad or expired -> KF_EBADSIG or
 * KF_ELIMIT like a bad token, but counted apart: bad tickets never
 * brake tokens (a web page can make a browser send them). */
KF_WUR int auth_ticket_identify(struct route *r, const struct config *cfg,
                                struct kf_str ticket, const char *address,
                                struct auth *out);

#endif
