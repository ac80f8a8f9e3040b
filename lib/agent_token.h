/* agent_token: the agents' API tokens — "wxa_" + 64 hex from RAND_bytes,
 * shown once and stored (PostgreSQL, the Redis mirror) only as their
 * SHA-256 in lowercase hex, which is also the key lib/auth looks up. */
#ifndef AGENT_TOKEN_H
#define AGENT_TOKEN_H

#include "agent.h"
#include "kf.h"

/* A fresh token: 32 bytes from RAND_bytes as "wxa_" + 64 lowercase hex.
 * hash gets agent_token_hash(token). KF_ECRYPTO if OpenSSL fails. */
KF_WUR int agent_token_new(char token[AGENT_TOKEN_SIZE],
                           char hash[AGENT_HASH_SIZE]);
/* The same with another 4-character prefix (lib/api_token: "wxt_"). */
KF_WUR int agent_token_new_prefixed(const char prefix[5],
                                    char token[AGENT_TOKEN_SIZE],
                                    char hash[AGENT_HASH_SIZE]);
/* SHA-256 of the token's bytes as 64 lowercase hex: the only form in
 * which tokens are stored, and the key to authenticate with. */
KF_WUR int agent_token_hash(const char *token, char hex[AGENT_HASH_SIZE]);
/* 1 if h is 64 lowercase hex digits and a NUL (a stored hash). */
int agent_token_is_hash(const char *h);

#endif
