/* fcgi: the wxkf program's FastCGI side — the worker process (accept
 * loop, request I/O, response helpers) and the route table. Only lib/
 * headers and this one are included by fcgi/ files. */
#ifndef FCGI_WXKF_H
#define FCGI_WXKF_H

#include <fcgiapp.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>

#include "callback.h"
#include "config.h"
#include "history.h"
#include "journal.h"
#include "http.h"
#include "kf.h"
#include "log.h"
#include "outbound.h"
#include "user_profile.h"
#include "route.h"
#include "store.h"
#include "wx_api.h"

/* Which process an app is: what app_open builds beyond the parts both
 * use (config, log, store, route, wx_api, outbound, metrics). */
enum app_kind {
    APP_WORKER,     /* `wxkf fcgi`: also the callback (AES keys), its
                       journal and the history reads */
    APP_JOBS,       /* `wxkf jobs`: nothing more */
};

/* Everything a process keeps between requests (or passes). It owns each
 * part; the parts borrow one another: route the store, callback the
 * route, outbound the route and wx_api. */
struct app {
    struct config cfg;
    struct log log;
    struct store store;
    struct route route;         /* routing, presence, sessions (Redis) */
    struct callback cb;         /* APP_WORKER only (else zeroed) */
    struct wx_api *api;         /* WeChat's API (one curl handle) */
    struct outbound outbound;
    struct history history;     /* APP_WORKER: PostgreSQL reads (lazy
                                   connection) */
    struct user_profile profile; /* APP_WORKER: who a user is (lazy
                                   connection) */
    struct pg_conn *tokens_db;  /* APP_WORKER: API tokens' lookups (lazy
                                   connection; lib/api_token) */
    struct metrics *metrics;    /* this process's counts (lib/metrics) */
    struct journal journal;     /* APP_WORKER: callbacks kept while Redis
                                   is away */
    int64_t next_replay_ms;     /* when to look at the journal again */
    unsigned long redis_failures; /* store.failures already counted */
    unsigned long redis_failovers, redis_wait_shorts;   /* the same */
    int replay_unconfirmed;   /* the last replay stopped: WAIT fell short */
    int64_t ready_at_ms;        /* when /readyz last checked (0: never) */
    int ready_state;            /* what it found: 0 ready, 1 no Redis,
                                   2 no PostgreSQL */
    const char *process;        /* "fcgi" or "jobs", a metrics label */
};

struct fcgi_req {
    FCGX_Request *fx;
    struct app *app;
    struct log log;             /* carries the request id */
    struct kf_str method, path, rid;
    struct kf_str param;        /* the '*' segment of the matched route */
    struct http_query query;
    struct kf_buf body;
    int status;                 /* set by the responder, for the log */
    const char *route;          /* the matched route's pattern, or NULL */
    /* The caller once identified (api.c: the first api_authenticate or
     * api_staff_session of the request keeps it; later ones reuse it):
     * borrowed from routes_dispatch, NULL outside it. */
    struct auth *caller;
    int caller_known;
};

/* The least caller a route needs. routes_dispatch refuses anyone below
 * it before the handler runs (api_authorize); the handler keeps its
 * finer checks (an agent's own sessions and users). A row of the route
 * table without one does not compile (-Wmissing-field-initializers) and
 * API_ROLE_UNDECLARED is refused to everyone. */
enum api_role {
    API_ROLE_UNDECLARED = 0,
    API_ROLE_PUBLIC,        /* anyone (the handler checks its own proof:
                               WeChat's signature, a password) */
    API_ROLE_TICKET,        /* a push ticket in the URL and nothing else */
    API_ROLE_SIGNED_IN,     /* a staff session cookie, any role */
    API_ROLE_STAFF,         /* any credential: an agent (token or cookie),
                               a supervisor (reads; writes only as the
                               agent account it is linked to), an admin */
    API_ROLE_AGENT,         /* agents only */
    API_ROLE_SUPERVISOR,    /* supervisors and admins */
    API_ROLE_ADMIN,         /* admins only */
    API_ROLE_TEAM,          /* any credential, a supervisor's writes
                               included (e.g. a whisper) */
};
/* "public", "ticket", "signed_in", "staff", "agent", "supervisor",
 * "admin", "team"; "undeclared" for anything else. Static. */
const char *api_role_name(enum api_role role);
/* Refuses the caller of r unless it is at least role (401 without a
 * credential, 403 with a wrong role, the codes of api_authenticate and
 * api_staff_session): answers and returns nonzero when refused. */
int api_authorize(struct fcgi_req *r, enum api_role role);

/* Borrowed: valid until the request ends; empty if absent. */
struct kf_str fcgi_param(const struct fcgi_req *r, const char *name);
/* Reads the body into r->body, at most max bytes (KF_ETOOBIG past it,
 * from CONTENT_LENGTH before reading anything). */
KF_WUR int fcgi_read_body(struct fcgi_req *r, size_t max);

/* Writes a complete response. extra_headers: "Name: value\r\n"... or NULL. */
void fcgi_respond(struct fcgi_req *r, int status, const char *content_type,
                  const char *extra_headers, struct kf_str body);
/* {"error":{"code":..,"message":..}} with status. */
void fcgi_error(struct fcgi_req *r, int status, const char *code,
                const char *message, const char *extra_headers);

/* JSON response (takes ownership of body, even on error). */
void fcgi_json(struct fcgi_req *r, int status, json_t *body);
/* The same with extra_headers ("Name: value\r\n"..., NULL none). */
void fcgi_json_with(struct fcgi_req *r, int status, json_t *body,
                    const char *extra_headers);

/* Shared by the REST handlers (api.c). Each answers the request itself
 * when it fails: api_authenticate (401/403/429/503; need_admin: agents
 * get 403) and api_need_agent return nonzero, api_json_body NULL (400,
 * 413; an empty body is {}), api_str_field nonzero (400 naming the field;
 * *out = NULL when absent). */
struct auth;
int api_authenticate(struct fcgi_req *r, struct auth *who, int need_admin);
int api_need_agent(struct fcgi_req *r, const struct auth *who);
/* api_authenticate for the supervisor's own routes (fcgi/supervise.c): a
 * supervisor stays AUTH_SUPERVISOR (its agent, if any, in account). */
int api_authenticate_staff(struct fcgi_req *r, struct auth *who);
/* Like api_authenticate for the team lead's routes (fcgi/board.c):
 * admins, and supervisors (signed in with a password) as themselves —
 * role AUTH_SUPERVISOR, their writes allowed; agents get 403. */
int api_authenticate_lead(struct fcgi_req *r, struct auth *who);
/* The staff user of the request's session cookie whatever its role (a
 * supervisor's writes included), the CSRF token checked for a method
 * that changes something; a bearer token does not count. Answers
 * 401/403/503 itself and returns nonzero. */
int api_staff_session(struct fcgi_req *r, struct auth *who);
json_t *api_json_body(struct fcgi_req *r);
/* The audit record (lib/audit) of this request's action by who (NULL:
 * nobody signed in) on target (NULL none): fcgi/audit.c. Answers 500 and
 * returns nonzero when it cannot be built. */
struct audit;
int api_audit(struct fcgi_req *r, const struct auth *who, const char *action,
              const char *target, struct audit *out);
/* The next lib/route (store_run) script runs with the request's audit
 * record armed (lib/audit; action NULL: not audited): *au is built first,
 * the caller runs the verb, then audit_redis_disarm. The script audits
 * where it makes the change (lib/lua/audit.lua). Answers and returns
 * nonzero when it cannot. */
int api_audit_arm(struct fcgi_req *r, const struct auth *who,
                  const char *action, struct kf_str target, struct audit *au);
/* The audit record of a command's change (actor and role 'cli', the
 * account of cfg): 0 or KF_EINVAL. */
int cli_audit(const struct config *cfg, const char *action,
              const char *target, struct audit *out);
/* Why a state-changing route (method, pattern of fcgi/routes.c) writes
 * no audit row (static text), or NULL: it must write one. */
const char *api_audit_exempt(const char *method, const char *path);
/* An agent as the API and `wxkf agent` show it (admin.c), never with a
 * token: {account, nick, weight, capacity (0 = the default), groups,
 * status, load}; status NULL and load < 0 (unknown: Redis down) are
 * null. NULL if out of memory. */
struct agent;
json_t *api_agent_json(const struct agent *a, const char *status,
                       long long load);
int api_str_field(struct fcgi_req *r, json_t *o, const char *name,
                  const char **out);
void api_backend_down(struct fcgi_req *r);   /* 503 redis */
/* Admins read every user's data; an agent only that of a user it serves
 * now (an active session with it). Answers when refused (nonzero). */
int api_may_read_user(struct fcgi_req *r, const struct auth *who,
                      struct kf_str openid);
/* A refusal as the table says (lib/refusal.h): its status, code and
 * message, or detail where the row has none (invalid_field). */
struct refusal;
void api_refused(struct fcgi_req *r, const struct refusal *why,
                 const char *detail);

/* The REST API handlers (api.c). */
void api_me(struct fcgi_req *r);
void api_me_status(struct fcgi_req *r);
void api_me_heartbeat(struct fcgi_req *r);
void api_me_sessions(struct fcgi_req *r);
void api_me_colleagues(struct fcgi_req *r);
void api_session_view(struct fcgi_req *r);
void api_session_close(struct fcgi_req *r);
void api_session_transfer(struct fcgi_req *r);
void api_stats(struct fcgi_req *r);
void api_me_events(struct fcgi_req *r);
void api_session_send(struct fcgi_req *r);
void api_session_typing(struct fcgi_req *r);
void api_user_messages(struct fcgi_req *r);
void api_session_transcript(struct fcgi_req *r);
void api_search(struct fcgi_req *r);
void api_history_sessions(struct fcgi_req *r);
void api_session_reopen_peek(struct fcgi_req *r);   /* fcgi/reopen.c */
void api_session_reopen(struct fcgi_req *r);
void api_session_whisper(struct fcgi_req *r);       /* fcgi/supervise.c */
void api_session_takeover(struct fcgi_req *r);
void api_labels_list(struct fcgi_req *r);       /* fcgi/labels.c */
void api_labels_create(struct fcgi_req *r);
void api_label_patch(struct fcgi_req *r);
void api_label_delete(struct fcgi_req *r);
/* Answers a failed lib/label verb: its refusal row (detail for a row
 * without a message of its own), else 503 or 500; logs ev. */
void api_label_failed(struct fcgi_req *r, const char *ev, int rc,
                      const struct refusal *why, const char *detail);
void api_media_get(struct fcgi_req *r);
void api_media_upload(struct fcgi_req *r);
void api_stream_ticket(struct fcgi_req *r);
void api_stream(struct fcgi_req *r);

/* Reports and exports (reports.c). */
void api_reports(struct fcgi_req *r);
void api_reports_export(struct fcgi_req *r);
void api_history_export(struct fcgi_req *r);

/* The admin's audit view (audit_view.c). */
void api_audit_view(struct fcgi_req *r);
/* API tokens of machine clients (tokens.c). */
void api_tokens_list(struct fcgi_req *r);
void api_tokens_create(struct fcgi_req *r);
void api_token_delete(struct fcgi_req *r);

/* Who a user is (profile.c). */
void api_profile_get(struct fcgi_req *r);
void api_profile_patch(struct fcgi_req *r);
void api_note_add(struct fcgi_req *r);
void api_note_edit(struct fcgi_req *r);
void api_note_delete(struct fcgi_req *r);
/* Canned replies (canned.c). */
void api_canned_list(struct fcgi_req *r);
void api_canned_create(struct fcgi_req *r);
void api_canned_patch(struct fcgi_req *r);
void api_canned_delete(struct fcgi_req *r);
void api_canned_export(struct fcgi_req *r);
void api_canned_import(struct fcgi_req *r);

/* Staff sign-in (staff.c). */
void api_auth_login(struct fcgi_req *r);
void api_auth_me(struct fcgi_req *r);
void api_auth_logout(struct fcgi_req *r);
void api_auth_logout_all(struct fcgi_req *r);
void api_auth_password(struct fcgi_req *r);
void api_staff_list(struct fcgi_req *r);
void api_staff_reset(struct fcgi_req *r);
void api_staff_create(struct fcgi_req *r);
void api_staff_patch(struct fcgi_req *r);

/* Admin routes (admin.c). */
void api_agents_list(struct fcgi_req *r);
void api_agents_create(struct fcgi_req *r);
void api_agent_get(struct fcgi_req *r);
void api_agent_patch(struct fcgi_req *r);
void api_agent_delete(struct fcgi_req *r);
void api_agent_token(struct fcgi_req *r);
void api_sessions_list(struct fcgi_req *r);     /* fcgi/board.c */
void api_queue(struct fcgi_req *r);
void api_queue_assign(struct fcgi_req *r);
void api_agent_force_status(struct fcgi_req *r);
void api_board(struct fcgi_req *r);

/* Dispatches one request through the route table (routes.c). */
void routes_dispatch(struct fcgi_req *r);
/* `wxkf routes`: the route table, a line per method of each row,
 * tab-separated: the method, the path pattern, the route's least role,
 * then "read" (GET, HEAD), "audited", or "exempt" and why
 * (api_audit_exempt). Returns the exit status. */
int routes_print(FILE *out);

/* Counts what the store failed since the last call (Redis errors). */
void app_count_store_failures(struct app *app);
/* Flushes app's metrics when a second has passed since the last flush;
 * a failure is logged at most once a minute. */
void app_flush_metrics(struct app *app);

/* GET /metrics (routes.c). */
void metrics_page(struct fcgi_req *r);

/* Loads the config and opens the log, the Redis store, the routing
 * state, WeChat's API, the outbound sender and the metrics; for
 * APP_WORKER also the callback (its AES keys), the journal and the
 * history reads. On failure it has said why (stderr or the log); call
 * app_close() either way. */
int app_open(struct app *app, const char *conf_path, enum app_kind kind);
void app_close(struct app *app);
/* 1 when the Redis of app (if it answers) or, with_pg, its PostgreSQL
 * (if it lets us log in) is older than wxkf needs (lib/version): logged
 * once (mod=version ev=server_too_old) and said on stderr, so the
 * program can refuse to start instead of failing later. */
int app_servers_too_old(struct app *app, int with_pg);

/* The signals of both processes (worker and jobs): SIGTERM, SIGINT,
 * SIGQUIT and SIGUSR1 all mean "finish what is in hand, then exit" and
 * run on_stop (which may only set a flag); SIGPIPE is ignored.
 * app_signals_block blocks those four in the calling thread (the mask
 * before in *old), e.g. around creating a thread that must never take
 * them. */
void app_signals_install(void (*on_stop)(int));
void app_signals_block(sigset_t *old);

/* `wxkf fcgi -c FILE`: runs the accept loop on fd 0 until SIGTERM. */
int worker_main(const char *conf_path);
/* `wxkf jobs -c FILE`: the sweeper loop until SIGTERM (jobs.c). */
int jobs_main(const char *conf_path);

/* `wxkf agent add|list|update|remove|token|sync -c FILE ...` (agent_cmd.c):
 * argv is main's. Returns the exit status: 0, 1 failed, 2 usage. */
int cmd_agent(int argc, char **argv);
/* `wxkf user ...` (user_cmd.c): staff users; the exit status. */
int cmd_user(int argc, char **argv);
/* `wxkf report rebuild -c FILE --day D [--to D]` (report_cmd.c). */
int cmd_report(int argc, char **argv);
/* `wxkf token add|list|revoke` (token_cmd.c). */
int cmd_token(int argc, char **argv);
/* For the commands (main.c): the value after option name in argv[3..]
 * (NULL when absent), and the config at path loaded into cfg (1 and a
 * message on standard error when it fails; config_release it either
 * way). */
const char *cli_opt(int argc, char **argv, const char *name);
int cli_load(struct config *cfg, const char *path);

#endif
