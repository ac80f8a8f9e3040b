/* auth: who is calling the REST API. Parses `Authorization: Bearer`,
 * checks admin tokens against the SHA-256 in the configuration (constant
 * time) and maps agent tokens to their account through the Redis mirror
 * (tokens are only ever stored as SHA-256). */
#ifndef AUTH_H
#define AUTH_H

#include "config.h"
#include "kf.h"
#include "route.h"

#define AUTH_TOKEN_MAX 128

enum auth_role { AUTH_NONE, AUTH_AGENT, AUTH_ADMIN };

struct auth {
    enum auth_role role;
    char account[48];           /* AUTH_AGENT */
    char status[16];            /* AUTH_AGENT: online, paused, offline */
};

/* "Bearer <token>" -> token (borrowed from header). Missing, another
 * scheme, an empty or over-long token, or bytes outside [A-Za-z0-9_-]
 * -> KF_EBADSIG. */
KF_WUR int auth_bearer(struct kf_str header, struct kf_str *token);

/* Identifies the caller. No or bad token -> KF_EBADSIG (401);
 * Redis down -> KF_EBACKEND. */
KF_WUR int auth_identify(struct route *r, const struct config *cfg,
                         struct kf_str authorization, struct auth *out);

#endif
