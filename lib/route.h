/* route: routing, presence and sessions — the C side of the Lua scripts in
 * lib/lua/ (embedded at build time). It owns the script arguments (the
 * routing configuration as one compact string), the group rules (menu
 * EventKey and keyword -> group) and the decoding of script replies. The
 * decisions themselves are made atomically inside Redis; see
 * docs/routing.md. */
#ifndef ROUTE_H
#define ROUTE_H

#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "agent.h"
#include "kf.h"
#include "refusal.h"
#include "store.h"
#include "wx_xml.h"

#define ROUTE_RULES_MAX CONFIG_RULES_MAX
#define ROUTE_NAME_MAX 65

struct route_rule {
    char key[ROUTE_NAME_MAX];     /* EventKey or keyword */
    char group[AGENT_GROUP_SIZE];
};

struct route {
    struct store *store;          /* borrowed */
    char cfg[4096];               /* "policy=..;cap=..;..." for the scripts
                                     (gp ≤ 2048 bytes, gt = the greeting
                                     in hex, ≤ 1200) */
    struct route_rule menu[ROUTE_RULES_MAX], keyword[ROUTE_RULES_MAX];
    int nmenu, nkeyword;
    long dedupe_ttl;
    int wechat_kf;                /* mode = wechat_kf */
    const char *leave_message;    /* [texts], borrowed */
    struct store_script ingest, presence, session, sweep, read, auth;
};

/* cfg must outlive r. Bad rules -> KF_ECONFIG (config_load validates the
 * same syntax, so this only fails on programming errors). */
KF_WUR int route_init(struct route *r, struct store *st,
                      const struct config *cfg);

enum route_action {
    ROUTE_RECORD,       /* record only (most events) */
    ROUTE_ROUTE,        /* a user message or a routing menu click */
    ROUTE_KF_CREATE,
    ROUTE_KF_CLOSE,
    ROUTE_KF_SWITCH
};

/* What a callback asks of routing: the action, and the group a rule
 * sends the user to ("" = none) — both derived from the message. */
void route_classify(const struct route *r, const struct wx_msg *m,
                    enum route_action *action, const char **group);
/* The customer-service window a message opens: "msg" for a user message
 * (48 h), "evt" for a menu click, subscribe or scan (1 min), else "". */
const char *route_window(const struct wx_msg *m);

struct route_ingest {
    struct kf_str dedupe_key;     /* suffix under P "dedupe:" */
    struct kf_str openid;
    enum route_action action;
    const char *group;
    const char *base_decision;    /* "none" or "welcome" */
    const char *window;           /* "msg", "evt" or "" (route_classify) */
    struct kf_str kf1, kf2;       /* KfAccount / From, To (kf events) */
    const struct store_field *fields;  /* the msg_in event */
    size_t nfields;
    int64_t now_ms;
    /* The signed query's binding: suffix under P "sig:" ("" = none), the
     * message's hash (wx_sign_msg_hash) and how long it is kept (s). */
    struct kf_str sig_key;
    const char *msg_hash;
    long sig_ttl;
};

/* The routing decision of a callback: made by lib/lua/ingest.lua,
 * decoded from its reply here only (route_ingest), read by callback.c
 * (the passive reply) and fcgi/ (logs, metrics). */
#define ROUTE_KINDS(X)                                                  \
    X(UNDECIDED, "")        /* no decision (none made yet, or failed) */ \
    X(NONE, "none")         /* recorded; nothing to tell the user */      \
    X(WELCOME, "welcome")   /* a subscribe: the welcome text */           \
    X(ASSIGNED, "assigned") /* agent: a new session given to agent */     \
    X(STICKY, "sticky")     /* agent: the session stays with agent */     \
    X(QUEUED, "queued")     /* n: position in the queue (1 = next) */     \
    X(OFFLINE, "offline")   /* n: position; no agent online or paused */  \
    X(FULL, "full")         /* n: queue length; refused by queue_max */   \
    X(JOURNALED, "journaled") /* Redis away: kept in the journal */
enum route_kind {
#define X(name, word) ROUTE_##name,
    ROUTE_KINDS(X)
#undef X
};

struct route_decision {
    enum route_kind kind;
    char agent[ROUTE_NAME_MAX];   /* ASSIGNED, STICKY; else "" */
    long n;                       /* QUEUED, OFFLINE, FULL; else 0 */
    int64_t time;                 /* unix s first decided (the reply's
                                   * CreateTime); 0 = not from Redis */
};

/* The kind's word ("assigned", ...; "" for ROUTE_UNDECIDED). */
const char *route_kind_name(enum route_kind k);
#define ROUTE_DECISION_STR_MAX (16 + ROUTE_NAME_MAX)
/* d as the logs and the msg_in event write it: "assigned:<agent>",
 * "queued:<n>", "none"; "-" for ROUTE_UNDECIDED. Returns out (of
 * ROUTE_DECISION_STR_MAX bytes). */
const char *route_decision_str(const struct route_decision *d,
                               char out[ROUTE_DECISION_STR_MAX]);

/* The callback's one Redis round trip (with WAIT when [redis]
 * wait_replicas is set: *replicated = 0 when fewer replicas confirmed
 * the write in time; always 1 without it). *d gets the decision and the
 * time it was first made (the reply's CreateTime); *dup = 1 when this is
 * a retry (it is the first delivery's). OFFLINE means no agent is online
 * or paused; with only paused agents the user is QUEUED (they are at
 * work and will take users again). With a sig_key, the first message
 * seen under it is remembered for sig_ttl s; the same key with another
 * msg_hash is KF_EREPLAY and nothing is recorded (a retry carries the
 * same message). A key with a NUL byte, or more than
 * ROUTE_INGEST_FIELDS_MAX fields -> KF_EINVAL. */
#define ROUTE_INGEST_FIELDS_MAX 23
KF_WUR int route_ingest(struct route *r, const struct route_ingest *in,
                        struct route_decision *d, int *dup,
                        int *replicated);

/* Presence. op: "online", "paused", "offline", "heartbeat". status (>= 16
 * bytes) gets the status after the call; *moved counts sessions moved off
 * (offline) or waiting users assigned (online). A refusal sets *why (NULL
 * ok) to its row of lib/refusal.h (scope REFUSAL_PRESENCE) and returns
 * the row's code: unknown agent -> KF_ENOTFOUND; bad op -> KF_EINVAL. */
KF_WUR int route_presence(struct route *r, const char *agent,
                          const char *op, const char *reason, int64_t now_ms,
                          char *status, size_t status_len, long *moved,
                          const struct refusal **why);

/* A supervisor or an admin (by: its login, or "admin" for a token)
 * forces agent's status: "paused" (only an agent at work: else
 * REFUSAL_NOT_AT_WORK) or "offline" (its sessions move on as when it
 * goes offline itself). The agent's feed is told (type presence, reason
 * forced, by); its record keeps status_by until it sets a status
 * itself. out (>= 16 bytes) gets the status after, *moved the sessions
 * moved off. Refusals as route_presence's. */
KF_WUR int route_force_status(struct route *r, const char *agent,
                              const char *status, const char *by,
                              int64_t now_ms, char *out, size_t out_len,
                              long *moved, const struct refusal **why);

/* A supervisor or an admin moves a user waiting in a queue to to_agent
 * (online or paused with a free slot) or, to_agent NULL, to to_group's
 * queue (routed there: an agent of that group with room takes it at
 * once). Refusals (scope REFUSAL_SESSION): no_session, not_waiting,
 * same_group, and a transfer's (unknown_agent, agent_offline,
 * agent_full, unknown_group). result as route_session's. */
KF_WUR int route_move(struct route *r, struct kf_str openid,
                      const char *to_agent, const char *to_group,
                      int64_t now_ms, char *result, size_t result_len,
                      const struct refusal **why);

/* An action on a session. op: "close", "transfer_agent",
 * "transfer_group", "answered" (another: bad_op, Redis not asked). by = the acting agent, or "" for an
 * admin. target: the agent or group of a transfer; for "close" the
 * wrap-up (route_wrapup_json; NULL or "" none), kept as the close
 * event's payload. A refusal sets *why (NULL ok) to its row of lib/refusal.h
 * (scope REFUSAL_SESSION: no_session, not_yours, unknown_agent,
 * agent_offline, agent_full, same_agent, unknown_group, not_active,
 * bad_op; REFUSAL_REFUSED for anything else) and returns the row's code
 * (KF_ENOTFOUND for no session, else KF_EINVAL). On success result gets
 * e.g. "closed", "assigned:<agent>", "queued:<n>". */
KF_WUR int route_session(struct route *r, const char *op, struct kf_str openid,
                         const char *by, const char *target, int64_t now_ms,
                         char *result, size_t result_len,
                         const struct refusal **why);

/* A transfer (route_session's "transfer_agent" when to_agent is set,
 * else "transfer_group" to to_group) with the giver's note (checked with
 * handover_check_note first; NULL or "" none): the session keeps the
 * giver, its nickname, the note and the time, and the assignment or
 * queue event it makes carries them (lib/handover.h). Refusals and
 * result as route_session's. */
KF_WUR int route_transfer(struct route *r, struct kf_str openid,
                          const char *by, const char *to_agent,
                          const char *to_group, const char *note,
                          int64_t now_ms, char *result, size_t result_len,
                          const struct refusal **why);
/* What a reopen did, or what a peek saw. */
struct route_reopen {
    int already;                  /* the agent has the user already */
    char agent[ROUTE_NAME_MAX];   /* the session's agent (of a peek: ""
                                     when none; of a "held" refusal: the
                                     agent who has the user) */
    char state[16];               /* peek: "active", "waiting" or "" */
    int64_t session_id;           /* reopen: the live session's id */
    int64_t window_end_ms;        /* peek: when the window closes; 0 =
                                     no window known */
    long left;                    /* sends left in the window now */
};

/* An agent starts a new session with a user it served before (the
 * caller has checked that past_session was the agent's): atomically in
 * lib/lua/session.lua, under the rules of assignment — the user must
 * have no live session with another agent (else REFUSAL_HELD, its agent
 * in out->agent; with this agent: out->already, nothing changes), the
 * agent be online or paused with a free slot (agent_offline,
 * agent_full), the user's window be open with sends left
 * (outside_48h_window, quota_exhausted). A user waiting in the queue is
 * taken out of it. The assign event's reason is "reopen"; its why names
 * past_session. by: the acting agent, or "" for an admin. A refusal
 * sets *why to its row (scope REFUSAL_REOPEN) and returns the row's
 * code, as route_session does. */
KF_WUR int route_reopen(struct route *r, struct kf_str openid,
                        const char *agent, const char *by,
                        int64_t past_session, int64_t now_ms,
                        struct route_reopen *out,
                        const struct refusal **why);
/* Whether a reopen could work now: the user's live session (state,
 * agent) and window (end, sends left), read in the same script. */
KF_WUR int route_reopen_peek(struct route *r, struct kf_str openid,
                             int64_t now_ms, struct route_reopen *out);

struct route_sweep_counts {
    long agents_lost, sessions_expired, first_reply_reroutes,
        queue_timeouts, dequeued;
};

/* One bounded pass of the periodic work (heartbeat loss, idle expiry,
 * first-reply timeouts, queue timeouts, queue draining). */
KF_WUR int route_sweep(struct route *r, int64_t now_ms, long heartbeat_ttl_s,
                       long limit, struct route_sweep_counts *out);

/* An agent's feed: entries of P inbox:<agent> after the cursor `after`
 * (a stream id; "" or "0" = from the start), at most limit. *out is a new
 * array of {"id": ..., fields...}; next (>= 32 bytes) gets the cursor to
 * pass next time (unchanged when nothing is new). */
/* One entry of a feed (a stream entry {id, {field, value...}}) as the
 * API shows it: {"id": <stream id, the cursor>, fields...} ("why"
 * embedded as JSON; an entry's own "id" field, a message id, becomes
 * "msg_id"). NULL if it is not an entry (or out of memory). */
json_t *route_entry_json(const struct store_reply *e);

KF_WUR int route_inbox(struct route *r, const char *agent, const char *after,
                       long limit, json_t **out, char *next, size_t next_len);

/* Views. On success *out is a new reference; the caller json_decref()s.
 * agent_sessions: array of session objects; session: an object, or NULL
 * (and KF_ENOTFOUND) when the user has no session. */
KF_WUR int route_agent_sessions(struct route *r, const char *agent,
                                json_t **out);
KF_WUR int route_session_view(struct route *r, struct kf_str openid,
                              json_t **out);

/* Live routing figures: agents, online, paused, sessions_active, waiting,
 * and per agent its status, load and share of assigned sessions, per group
 * its queue length. On success *out is new; the caller json_decref()s. */
KF_WUR int route_stats(struct route *r, int64_t now_ms, json_t **out);

/* An agent's mirror record (nick, weight, capacity, groups, status, ...)
 * plus its load. Unknown -> KF_ENOTFOUND. */
KF_WUR int route_agent_info(struct route *r, const char *agent,
                            json_t **out);
/* The supervisors' live board: every agent by account as {account,
 * nick, status, status_by (who forced it; "" none), status_ms, groups
 * (comma-separated), load, capacity (the one routing applies),
 * sessions: [{openid, id, group, assigned_ms, user_ms (the user's last
 * message; 0 none), reply_ms (the agent's last send; 0 none),
 * answered}]}. Bounded by the agents' capacities. On success *out is a
 * new array; the caller json_decref()s. */
KF_WUR int route_board(struct route *r, json_t **out);

/* One page of the sessions for the admin's and supervisors' tables
 * (read.lua's page): state "" (active then waiting), "active" or
 * "waiting"; agent, group, prefix (an OpenID prefix) "" = any. The
 * active sessions by agent then user, then the waiting users longest
 * waiting first (one group: in queue order; with a prefix: by OpenID),
 * each a session object plus position (waiting) and window_end_ms (when
 * the user's customer-service window closes; absent when none is
 * known). *total counts every match; *capped = 1 when a prefix with a
 * group looked at only the first 2,000 matches. The filters must be
 * checked by the caller (agent_check_account, agent_check_group, an
 * OpenID's characters). On success *out is a new array; the caller
 * json_decref()s. */
struct route_page_query {
    const char *state, *agent, *group, *prefix;
    long offset, limit;
};
KF_WUR int route_page(struct route *r, const struct route_page_query *q,
                      int64_t now_ms, json_t **out, long *total,
                      int *capped);
/* The waiting queue: {"total":N,"groups":[{"group","length","waiting":
 * [{"openid","position","since_ms","session"}...]}]}, at most limit
 * users listed per group (0: none, the lengths only). */
KF_WUR int route_queue(struct route *r, long limit, json_t **out);
/* The account's agents and groups as colleagues see them:
 * {"agents":[{account, nick, status, weight, groups (comma-separated),
 * load, capacity (the one routing applies)} as strings, by account],
 * "groups":[{"group","online","waiting"}, sorted]} — no token hash. */
KF_WUR int route_colleagues(struct route *r, json_t **out);

#endif
