/* audit: the audit record of one state-changing staff action — who
 * (actor: a staff login, an agent account, 'admin' for the bootstrap
 * token, 'cli' for a command, 'anonymous' for a failed sign-in), in
 * which role, what (action `<object>.<verb>`), on what (target), from
 * where (ip), under which request (request_id), for which account
 * (app_id) and a detail JSON object; every field bounded and checked —
 * and its two ways into audit_log (sql/0010_audit.sql):
 *  - PostgreSQL: audit_pg_begin before the module's statements and
 *    audit_pg_end after them put the row in the SAME transaction (no row
 *    without the change, no change without the row);
 *  - Redis: audit_redis_arm makes the next store_run append the record
 *    to the script's ARGV (AUDIT_NARGS values after a marker); the
 *    script's `audit()` (lib/lua/audit.lua, in front of every script)
 *    XADDs a `type=audit` entry onto the account's event stream in the
 *    same script run, and the archiver copies it into audit_log exactly
 *    once (event_id = the stream id, lib/archive_sql.c). */
#ifndef AUDIT_H
#define AUDIT_H

#include "kf.h"

struct pg_conn;
struct pg_err;
struct store;

#define AUDIT_APP_ID_MAX 32
#define AUDIT_ACTOR_MAX 64
#define AUDIT_ROLE_MAX 11
#define AUDIT_ACTION_MAX 48
#define AUDIT_TARGET_MAX 256
#define AUDIT_IP_MAX 45
#define AUDIT_RID_MAX 64
#define AUDIT_DETAIL_MAX 2048       /* the detail object's JSON text */
#define AUDIT_NARGS 8               /* the marker and 7 fields (store_run) */
#define AUDIT_MARKER "\001audit"    /* ARGV[#ARGV - 7] of an audited run */

struct audit {
    char app_id[AUDIT_APP_ID_MAX + 1];
    char actor[AUDIT_ACTOR_MAX + 1];
    char role[AUDIT_ROLE_MAX + 1];  /* agent supervisor admin cli none */
    char ip[AUDIT_IP_MAX + 1];      /* "" unknown */
    char request_id[AUDIT_RID_MAX + 1];     /* "" none */
    char action[AUDIT_ACTION_MAX + 1];      /* "" not set yet */
    char target[AUDIT_TARGET_MAX + 1];      /* "" none */
    char detail[AUDIT_DETAIL_MAX + 1];      /* a JSON object */
    const char *argv[AUDIT_NARGS];  /* audit_redis_arm: views of the above */
};

/* Who and from where. app_id: 1..32 of [A-Za-z0-9_-]; actor: 1..64
 * bytes of UTF-8 without control characters; role: agent, supervisor,
 * admin, cli or none; ip (NULL or "" unknown): an IPv4/IPv6 literal's
 * characters, at most 45; request_id (NULL or "" none): 1..64 of
 * [A-Za-z0-9_-]. The action is cleared. KF_EINVAL (a is then zeroed). */
KF_WUR int audit_init(struct audit *a, const char *app_id, const char *actor,
                      const char *role, const char *ip,
                      const char *request_id);
/* What: action `<object>.<verb>` ([a-z][a-z_]* twice, at most 48 bytes),
 * target (NULL or "" none; at most 256 bytes of UTF-8 without control
 * characters), detail (NULL: {}; else a JSON object, at most 2048
 * bytes as text). KF_EINVAL (a's action is then ""). */
KF_WUR int audit_set(struct audit *a, const char *action, const char *target,
                     const char *detail);
/* Changes the target only (e.g. to an id known after the change). */
KF_WUR int audit_set_target(struct audit *a, const char *target);
/* The same with a number (a row's id) as the target. */
KF_WUR int audit_target_id(struct audit *a, int64_t id);
/* 0 when every field is valid and the action is set, else KF_EINVAL. */
KF_WUR int audit_check(const struct audit *a);

/* --- PostgreSQL ---------------------------------------------------------
 * rc = audit_pg_begin(db, e);
 * if (rc == 0) rc = module_verb(db, ...);        (its statements)
 * rc = audit_pg_end(db, &a, rc, e);
 * audit_pg_end: rc == 0 -> inserts the row and commits (the insert's or
 * the commit's failure rolls everything back and is returned); rc < 0 ->
 * rolls back and returns rc. A module that holds its own transaction
 * calls audit_pg_insert inside it instead. */
/* A module that writes its change and the row in ONE statement (a
 * data-modifying CTE, lib/user_profile) starts the row's INSERT with
 * this and selects, in order, app_id, actor, role, ip, request_id,
 * action, target, detail. */
#define AUDIT_LOG_INSERT                                                  \
    "INSERT INTO audit_log (app_id, actor, role, ip, request_id, action," \
    " target, detail) "
KF_WUR int audit_pg_begin(struct pg_conn *c, struct pg_err *e);
KF_WUR int audit_pg_end(struct pg_conn *c, const struct audit *a, int rc,
                        struct pg_err *e);
KF_WUR int audit_pg_insert(struct pg_conn *c, const struct audit *a,
                           struct pg_err *e);

/* --- Redis --------------------------------------------------------------
 * audit_redis_arm(store, &a);
 * rc = module_verb(store, ...);                  (one store_run)
 * audit_redis_disarm(store);
 * The next store_run on s (only that one) gets a's AUDIT_NARGS values
 * after its own arguments; a must not change or go away until then (or
 * until disarmed). KF_EINVAL when a is not valid (nothing armed). */
KF_WUR int audit_redis_arm(struct store *s, struct audit *a);
void audit_redis_disarm(struct store *s);

#endif
