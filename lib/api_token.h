/* api_token: the named API tokens of machine clients — the api_tokens
 * table (sql/0012_api_tokens.sql, keyed by app_id and id), the fixed set
 * of scopes and which routes each opens, the secrets ("wxt_" + 64 hex
 * from RAND_bytes, shown once and stored only as their SHA-256, like
 * lib/agent_token's), the verbs add, list and revoke, and the lookup a
 * request authenticates with, which also records the token's last use at
 * most once a minute. There is no cache: a revoked token is refused from
 * the next lookup on. Each verb takes a connection the caller opened. */
#ifndef API_TOKEN_H
#define API_TOKEN_H

#include <jansson.h>

#include "agent.h"
#include "kf.h"

#define API_TOKEN_PREFIX "wxt_"
#define API_TOKEN_SIZE AGENT_TOKEN_SIZE     /* "wxt_" + 64 hex + NUL */
#define API_TOKEN_NAME_CHARS 64
#define API_TOKEN_NAME_SIZE 257             /* 64 characters of UTF-8 */
#define API_TOKEN_MAX_LIVE 100              /* unrevoked per account */
#define API_TOKEN_LIST_MAX 500              /* rows GET /api/v1/tokens shows */
#define API_TOKEN_TOUCH_S 60                /* last_used_at's resolution */

/* The scopes (docs/api.md, "API tokens"): bits of a token's set. */
enum api_scope {
    API_SCOPE_READ = 1,         /* the admin's GETs but history, reports */
    API_SCOPE_AGENTS = 2,       /* the agents: read, add, change, remove,
                                   new agent token */
    API_SCOPE_REPORTS = 4,      /* reports and their export */
    API_SCOPE_HISTORY = 8,      /* messages, transcripts, search, history
                                   sessions and export, media files */
};
#define API_SCOPE_ALL 15

struct pg_conn;

/* Who a request's token is (api_token_identify). */
struct api_token_who {
    long long id;
    unsigned scopes;
    char name[API_TOKEN_NAME_SIZE];
};

/* The scope called name ("read", ...), or 0. */
unsigned api_token_scope(const char *name);
/* A comma-separated list of scope names ("read,agents") into *out. 0, or
 * KF_EINVAL for an empty list or an unknown name. */
KF_WUR int api_token_scopes_parse(const char *csv, unsigned *out);
/* A JSON array of scope names into *out. KF_EINVAL: not an array of
 * known names, or empty. */
KF_WUR int api_token_scopes_json_parse(const json_t *a, unsigned *out);
/* The scopes as a new JSON array of names (the order of enum api_scope);
 * NULL when out of memory. */
json_t *api_token_scopes_json(unsigned scopes);

/* The scopes any one of which lets a token call method on route (the
 * route table's pattern, "/api/v1/agents/+"), or 0: no token may (token
 * and staff management, sign-in, the agents' own routes). */
unsigned api_token_route_scopes(struct kf_str method, const char *route);

/* 1 when s is a token's form: "wxt_" + 64 lowercase hex. */
int api_token_is_token(struct kf_str s);
/* 0 when s is a token's name: 1..64 characters, one line, no control
 * characters. Else KF_EINVAL. */
KF_WUR int api_token_check_name(const char *s);

/* Errors of the verbs: KF_EBACKEND (unreachable, lost), KF_ENOMEM,
 * KF_EIO, and: */
/* A new token named name with scopes for app_id, made by created_by (a
 * login, "admin" or "cli"). *out: {id, name, scopes, created_by,
 * created_at, last_used_at: null, revoked_at: null, token} — the secret,
 * the only time it is anywhere but in memory here. KF_EINVAL a field,
 * KF_EEXISTS a live token has that name, KF_ELIMIT API_TOKEN_MAX_LIVE
 * live tokens already. */
KF_WUR int api_token_add(struct pg_conn *db, const char *app_id,
                         const char *name, unsigned scopes,
                         const char *created_by, json_t **out);
/* {"tokens":[{id, name, scopes, created_by, created_at, last_used_at,
 * revoked_at}...]} of app_id, the newest first, at most
 * API_TOKEN_LIST_MAX (timestamps UTC ISO 8601, null when not yet). */
KF_WUR int api_token_list(struct pg_conn *db, const char *app_id,
                          json_t **out);
/* Revokes token id of app_id (again: keeps the first revoked_at); *out
 * is its row as api_token_list shows it. KF_ENOTFOUND. */
KF_WUR int api_token_revoke(struct pg_conn *db, const char *app_id,
                            long long id, json_t **out);
/* The live token whose SHA-256 is hash (64 lowercase hex) into *out, and
 * its last_used_at set to now if it is older than API_TOKEN_TOUCH_S (one
 * statement: a busy client writes once a minute). KF_ENOTFOUND: no such
 * live token. */
KF_WUR int api_token_identify(struct pg_conn *db, const char *app_id,
                              const char *hash, struct api_token_who *out);

#endif
