/* staff: the staff users who sign in with a password — the staff_users
 * table (sql/0008_staff_users.sql, keyed by app_id and login), the checks
 * of its fields as untrusted input, and its verbs: add, get, list, set a
 * password, disable. A user has a role: agent (linked to its agent
 * account, which routing knows it by), supervisor (linked to an agent
 * account or not) or admin. Passwords
 * come in already hashed (lib/password); the hash never leaves this
 * module but for verification. Sessions and lock-out are
 * lib/staff_session's. Each verb takes a connection the caller opened
 * (staff_open). */
#ifndef STAFF_H
#define STAFF_H

#include <jansson.h>

#include "kf.h"
#include "password.h"

#define STAFF_LOGIN_SIZE 33         /* [a-z0-9][a-z0-9_-]{0,31} + NUL */
#define STAFF_NAME_CHARS 64
#define STAFF_NAME_SIZE 257         /* 64 characters of UTF-8 + NUL */
#define STAFF_ROLE_SIZE 12
#define STAFF_AGENT_SIZE 48

struct pg_conn;                     /* lib/pg */

struct staff_user {
    char login[STAFF_LOGIN_SIZE];
    char name[STAFF_NAME_SIZE];
    char role[STAFF_ROLE_SIZE];     /* agent, supervisor, admin */
    char agent[STAFF_AGENT_SIZE];   /* its agent account, else "" */
    char hash[PASSWORD_HASH_MAX];   /* argon2id encoded */
    int disabled;
};

/* 0 when s is a login: 1..32 of [a-z0-9_-], starting with a letter or
 * digit (it matches a URL path segment as is). Else KF_EINVAL. */
KF_WUR int staff_check_login(const char *s);
/* 0 when s is agent, supervisor or admin. Else KF_EINVAL. */
KF_WUR int staff_check_role(const char *s);
/* 0 when a user of role may be linked (linked 1) or not (0) to an agent
 * account: an agent must be (the account it signs in as), an admin must
 * not, a supervisor may (the identity it serves users under after a
 * take-over, sql/0011_supervise.sql). Else KF_EINVAL. */
KF_WUR int staff_check_agent_link(const char *role, int linked);
/* 0 when s is a display name: 1..64 characters, no control characters,
 * one line. Else KF_EINVAL. */
KF_WUR int staff_check_name(const char *s);

/* A connection (lib/pg) with the timeouts of use; pg_close() it.
 * KF_EBACKEND, KF_ENOMEM. */
KF_WUR int staff_open(const char *dsn, int request, struct pg_conn **out);

/* Errors of the verbs: KF_EBACKEND (unreachable, lost), KF_ENOMEM,
 * KF_EIO, and: */
/* INSERT of u (fields checked here; u->hash from password_hash) for
 * app_id. KF_EINVAL a field, KF_ENOTFOUND linked to no such agent, KF_EEXISTS the login is taken or the agent has a user already. */
KF_WUR int staff_add(struct pg_conn *db, const char *app_id,
                     const struct staff_user *u);
/* The user login of app_id into *out. KF_ENOTFOUND. */
KF_WUR int staff_get(struct pg_conn *db, const char *app_id,
                     const char *login, struct staff_user *out);
/* A new password hash; password_changed_at is now. KF_ENOTFOUND. */
KF_WUR int staff_set_password(struct pg_conn *db, const char *app_id,
                              const char *login, const char *hash);
/* Disables (1) or enables (0) the user. KF_ENOTFOUND. */
KF_WUR int staff_set_disabled(struct pg_conn *db, const char *app_id,
                              const char *login, int disabled);
/* Changes of one user (staff_update): NULL / -1 = keep. */
struct staff_change {
    const char *name;
    const char *role;       /* a new role; agent must be its account then */
    const char *agent;      /* role agent: the agent account, else NULL */
    int disabled;           /* 1, 0 or -1 */
};
/* Applies c to login of app_id (checked here; an agent user's account
 * must be an agent). KF_EINVAL a field, KF_ENOTFOUND no such user,
 * KF_EBUSY no such agent, KF_EEXISTS the agent has a user already.
 * *role_changed (may be NULL) = 1 when the role or the agent changed
 * (its sessions must end: they carry the old ones). */
KF_WUR int staff_update(struct pg_conn *db, const char *app_id,
                        const char *login, const struct staff_change *c,
                        int *role_changed);
/* {"users":[{login, name, role, agent (null when none), disabled,
 * created_at, updated_at, password_changed_at}...]} of app_id by login,
 * without hashes. On success *out is new: json_decref() it. */
KF_WUR int staff_list(struct pg_conn *db, const char *app_id, json_t **out);

#endif
