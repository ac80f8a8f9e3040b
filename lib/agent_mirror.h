/* agent_mirror: the Redis mirror of the agent records, which routing and
 * lib/auth read — P agents (the accounts), P agent:<acct> (nick weight
 * capacity groups status token_sha256), P group:<g> and P token:<sha256
 * hex> -> acct (P is the account prefix, see docs/routing.md, "Agents").
 * Every change is one atomic script; the walks below let lib/agent_sync
 * find what PostgreSQL no longer backs. */
#ifndef AGENT_MIRROR_H
#define AGENT_MIRROR_H

#include <stddef.h>

#include "agent.h"
#include "kf.h"

struct store;

/* Connects, or heals a broken connection. KF_EBACKEND "Redis
 * unreachable" if it cannot. */
KF_WUR int agent_mirror_connect(struct store *s, struct agent_err *err);

/* One atomic script: HSET P agent:<acct> nick weight capacity ("" =
 * default) groups; status=offline only if the hash is new (an existing
 * status is kept); SADD P agents; moves acct between the P group:<g> sets
 * to match a->groups. token_hash (NULL = keep) becomes P token:<hash> ->
 * acct and the token key it replaces is deleted. KF_EBACKEND if Redis is
 * unreachable. */
KF_WUR int agent_mirror_put(struct store *s, const struct agent *a,
                            const char *token_hash, struct agent_err *err);
/* Deletes acct from P agents and its groups, P agent:<acct>, its token
 * key and its feed P inbox:<acct>, atomically and only if P load:<acct>
 * is empty and it is offline; else KF_EBUSY "agent has active sessions;
 * set it offline first" (or "agent is online; ..."). An agent missing
 * from Redis is not an error. */
KF_WUR int agent_mirror_remove(struct store *s, const char *account,
                               struct agent_err *err);
/* The account's presence ("online", "paused", "offline") into status
 * and, when load is not NULL, the number of users it serves now (P
 * load:<acct>). KF_ENOTFOUND if it is not mirrored. */
KF_WUR int agent_mirror_status(struct store *s, const char *account,
                               char status[16], long long *load,
                               struct agent_err *err);

/* Called with a valid account name (borrowed for the call); a negative
 * return stops the walk and is returned by it. */
typedef int agent_mirror_fn(void *ctx, const char *account);

/* fn for each member of P agents that is a valid account. */
KF_WUR int agent_mirror_each_member(struct store *s, agent_mirror_fn *fn,
                                    void *ctx, struct agent_err *err);
/* fn for each P agent:<acct> hash (SCAN) whose acct is a valid account,
 * e.g. one left behind by a lost P agents set. */
KF_WUR int agent_mirror_each_hash(struct store *s, agent_mirror_fn *fn,
                                  void *ctx, struct agent_err *err);
/* Deletes the P token:<h> keys their account's hash does not name and
 * the P group:<g> members whose hash does not list g (never _all), each
 * by a guarded script; adds how many it removed to *swept. Keys of
 * another type are skipped. */
KF_WUR int agent_mirror_sweep(struct store *s, size_t *swept,
                              struct agent_err *err);

#endif
