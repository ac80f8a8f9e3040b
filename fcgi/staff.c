/* staff: the routes of staff users' password sign-in — POST
 * /api/v1/auth/login (a session cookie and its CSRF token), GET
 * /api/v1/auth/me, POST /api/v1/auth/logout and /api/v1/auth/logout-all,
 * POST /api/v1/auth/password (the user's own, the old one required), and
 * the admin's user management: GET and POST /api/v1/staff (list, add),
 * PATCH /api/v1/staff/{login} (name, role, agent, disabled) and POST
 * /api/v1/staff/{login}/password (a reset). Thin: read a bounded body,
 * call lib/password, lib/staff and lib/staff_session, answer from the
 * refusal table. A password is
 * hashed at most once per request (65-100 ms of this worker,
 * docs/performance.md) and never logged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "audit.h"
#include "auth.h"
#include "fcgi.h"
#include "password.h"
#include "pg.h"
#include "refusal.h"
#include "staff.h"
#include "staff_session.h"

#include "banned.h"

static struct store *store_of(struct fcgi_req *r)
{
    return r->app->route.store;
}

static const char *app_id(struct fcgi_req *r)
{
    return r->app->cfg.wechat.app_id;
}

static void refuse(struct fcgi_req *r, enum refusal_id id)
{
    api_refused(r, refusal_get(id), NULL);
}

/* 503 for PostgreSQL (KF_EBACKEND) or Redis, 500 for the rest. */
static void failed(struct fcgi_req *r, const char *ev, int rc, int pg)
{
    if (rc == KF_EBACKEND)
        fcgi_error(r, 503, "backend_unavailable", pg ?
                   "postgresql is unreachable" : "redis is unreachable",
                   NULL);
    else
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
    log_warn(&r->log, "staff", ev, "status=%d err=%s", r->status,
             kf_strerror(rc));
}

/* The Set-Cookie header of sid ("" ends the cookie). */
static void cookie_header(struct fcgi_req *r, const char *sid, char *out,
                          size_t n)
{
    snprintf(out, n, "Set-Cookie: " STAFF_COOKIE "=%s; Path=/; HttpOnly; "
             "SameSite=Strict; Max-Age=%ld%s\r\nCache-Control: no-store\r\n",
             sid, sid[0] ? r->app->cfg.api.session_max : 0,
             r->app->cfg.api.cookie_secure ? "; Secure" : "");
}

/* A string member that must be there (400 invalid_field otherwise). */
static int need_str(struct fcgi_req *r, json_t *body, const char *name,
                    const char **out)
{
    if (api_str_field(r, body, name, out))
        return 1;
    if (*out)
        return 0;
    fcgi_error(r, 400, "invalid_field", name[0] == 'l'
               ? "field login is required" : "a password field is missing",
               NULL);
    return 1;
}

/* Checks login's password pw, with the lock-out: a locked login is
 * refused (429) before any hashing; a wrong password (or no such user,
 * verified against a dummy hash at the same cost) is counted. On success
 * u is the user; else the request is answered and nonzero returned. */
static int check_password(struct fcgi_req *r, const struct auth *who,
                          const char *login, const char *pw,
                          struct staff_user *u)
{
    struct pg_conn *db = NULL;
    struct audit au;
    int64_t ms = 0;
    char hdr[64];
    int rc, found;

    if (staff_check_login(login) < 0) {
        rc = password_verify(NULL, pw, strlen(pw));
        refuse(r, REFUSAL_WRONG_CREDENTIALS);
        return 1;
    }
    rc = staff_lock_check(store_of(r), login, kf_wall_ms(), &ms);
    if (rc == KF_ELIMIT) {
        snprintf(hdr, sizeof(hdr), "Retry-After: %lld\r\n",
                 (long long)(ms + 999) / 1000);
        fcgi_error(r, 429, refusal_get(REFUSAL_ACCOUNT_LOCKED)->code,
                   refusal_get(REFUSAL_ACCOUNT_LOCKED)->message, hdr);
        log_info(&r->log, "staff", "locked", "login=%s", login);
        return 1;
    }
    if (rc < 0) {
        failed(r, "login", rc, 0);          /* Redis */
        return 1;
    }
    rc = staff_open(r->app->cfg.postgres.dsn, 1, &db);
    if (rc < 0) {
        failed(r, "login", rc, 1);
        return 1;
    }
    rc = staff_get(db, app_id(r), login, u);
    pg_close(db);
    if (rc < 0 && rc != KF_ENOTFOUND) {
        failed(r, "login", rc, 1);
        return 1;
    }
    found = rc == 0;
    rc = password_verify(found ? u->hash : NULL, pw, strlen(pw));
    OPENSSL_cleanse(u->hash, sizeof(u->hash));
    if (rc == 0)
        rc = staff_lock_clear(store_of(r), login);
    else if (rc == KF_EBADSIG || rc == KF_EINVAL) {
        /* audited: the failure and, when it locks the login, the lock */
        if (api_audit(r, who, "staff.login_failed", login, &au) ||
            audit_redis_arm(store_of(r), &au) < 0)
            return 1;
        rc = staff_lock_fail(store_of(r), login, kf_wall_ms(), &ms) < 0
             ? KF_EBACKEND : KF_EBADSIG;
        audit_redis_disarm(store_of(r));
    }
    if (rc == KF_EBADSIG) {
        refuse(r, REFUSAL_WRONG_CREDENTIALS);
        log_info(&r->log, "staff", "wrong_password", "login=%s locked_ms=%lld",
                 login, (long long)ms);
    } else if (rc < 0) {
        failed(r, "login", rc, 0);
    } else if (u->disabled) {
        refuse(r, REFUSAL_ACCOUNT_DISABLED);
        rc = KF_EINVAL;
    }
    return rc < 0;
}

static json_t *me_json(const char *login, const char *name, const char *role,
                       const char *agent, const char *csrf)
{
    return json_pack("{s:s,s:s,s:s,s:o,s:s}", "login", login, "name", name,
                     "role", role, "agent",
                     agent[0] ? json_string(agent) : json_null(),
                     "csrf_token", csrf);
}

/* A sign-in's body must say it is JSON: an HTML form of another site
 * can POST text/plain that looks like JSON, never application/json (that
 * needs CORS), so no page can sign a browser in as someone else. */
static int json_typed(struct fcgi_req *r)
{
    struct kf_str ct = fcgi_param(r, "CONTENT_TYPE");
    const size_t n = sizeof("application/json") - 1;

    if (ct.len >= n && strncasecmp(ct.p, "application/json", n) == 0 &&
        (ct.len == n || ct.p[n] == ';' || ct.p[n] == ' '))
        return 1;
    fcgi_error(r, 400, "bad_body",
               "Content-Type must be application/json", NULL);
    return 0;
}

void api_auth_login(struct fcgi_req *r)
{
    char sid[STAFF_SID_SIZE], csrf[STAFF_SID_SIZE], hdr[256];
    const char *login = NULL, *pw = NULL;
    struct staff_user u;
    struct auth who;
    struct audit au;
    json_t *body;
    int rc;

    if (!json_typed(r) || !(body = api_json_body(r)))
        return;
    if (need_str(r, body, "login", &login) ||
        need_str(r, body, "password", &pw) ||
        check_password(r, NULL, login, pw, &u))
        goto out;
    memset(&who, 0, sizeof(who));
    snprintf(who.login, sizeof(who.login), "%s", u.login);
    snprintf(who.staff_role, sizeof(who.staff_role), "%s", u.role);
    if (api_audit(r, &who, "staff.login", u.login, &au) ||
        audit_redis_arm(store_of(r), &au) < 0)
        goto out;
    rc = staff_session_new(store_of(r), &u, kf_wall_ms(),
                           r->app->cfg.api.session_idle * 1000,
                           r->app->cfg.api.session_max * 1000, sid, csrf);
    audit_redis_disarm(store_of(r));
    if (rc < 0) {
        failed(r, "login", rc, 0);
        goto out;
    }
    cookie_header(r, sid, hdr, sizeof(hdr));
    fcgi_json_with(r, 200, me_json(u.login, u.name, u.role, u.agent, csrf), hdr);
    log_info(&r->log, "staff", "login", "login=%s role=%s", u.login, u.role);
    OPENSSL_cleanse(sid, sizeof(sid));
    OPENSSL_cleanse(hdr, sizeof(hdr));
out:
    json_decref(body);
}

void api_auth_me(struct fcgi_req *r)
{
    struct auth who;

    if (api_staff_session(r, &who))
        return;
    fcgi_json(r, 200, me_json(who.login, who.name, who.staff_role,
                              who.role == AUTH_AGENT ? who.account : "",
                              who.csrf));
}

/* Ends the caller's session (all: every session of the user). */
static void logout(struct fcgi_req *r, int all)
{
    char hdr[256];
    struct auth who;
    struct audit au;
    long n = 1;
    int rc;

    if (api_staff_session(r, &who) ||
        api_audit(r, &who, all ? "staff.logout_all" : "staff.logout",
                  who.login, &au) || audit_redis_arm(store_of(r), &au) < 0)
        return;
    rc = all ? staff_session_end_all(store_of(r), who.login, NULL, &n)
             : staff_session_end(store_of(r), who.session_sha256);
    audit_redis_disarm(store_of(r));
    if (rc < 0) {
        failed(r, "logout", rc, 0);
        return;
    }
    cookie_header(r, "", hdr, sizeof(hdr));
    fcgi_json_with(r, 200, json_pack("{s:I}", "ended", (json_int_t)n), hdr);
    log_info(&r->log, "staff", all ? "logout_all" : "logout", "login=%s "
             "ended=%ld", who.login, n);
}

void api_auth_logout(struct fcgi_req *r)
{
    logout(r, 0);
}

void api_auth_logout_all(struct fcgi_req *r)
{
    logout(r, 1);
}

/* Hashes pw (checked first: 400 weak_password) and stores it as login's
 * password; then every session of login but keep_hash (NULL: all) ends
 * and its lock-out is forgotten. Answers errors; 0 on success. */
static int set_password(struct fcgi_req *r, const struct auth *who,
                        const char *action, const char *login,
                        const char *pw, const char *keep_hash, long *ended)
{
    char hash[PASSWORD_HASH_MAX];
    struct pg_conn *db = NULL;
    struct audit au;
    int rc;

    if (password_check(pw, strlen(pw)) < 0) {
        refuse(r, REFUSAL_WEAK_PASSWORD);
        return 1;
    }
    if (api_audit(r, who, action, login, &au))
        return 1;
    rc = password_hash(pw, strlen(pw), hash);
    if (rc == 0)
        rc = staff_open(r->app->cfg.postgres.dsn, 1, &db);
    if (rc == 0 && (rc = audit_pg_begin(db, NULL)) == 0)
        rc = audit_pg_end(db, &au, staff_set_password(db, app_id(r), login,
                                                      hash), NULL);
    pg_close(db);
    if (rc == KF_ENOTFOUND) {
        refuse(r, REFUSAL_NO_STAFF);
        return 1;
    }
    if (rc < 0) {
        failed(r, "password", rc, 1);
        return 1;
    }
    rc = staff_session_end_all(store_of(r), login, keep_hash, ended);
    if (rc == 0)
        rc = staff_lock_clear(store_of(r), login);
    if (rc < 0) {
        failed(r, "password", rc, 0);
        return 1;
    }
    return 0;
}

/* POST /api/v1/auth/password {old_password, new_password}: the user's
 * own, with the old one checked like a sign-in (lock-out included);
 * the user's other sessions end. */
void api_auth_password(struct fcgi_req *r)
{
    const char *old = NULL, *pw = NULL;
    struct staff_user u;
    struct auth who;
    json_t *body;
    long ended = 0;

    if (api_staff_session(r, &who) || !(body = api_json_body(r)))
        return;
    if (need_str(r, body, "old_password", &old) ||
        need_str(r, body, "new_password", &pw) ||
        check_password(r, &who, who.login, old, &u) ||
        set_password(r, &who, "staff.password", who.login, pw,
                     who.session_sha256, &ended))
        goto out;
    fcgi_json(r, 200, json_pack("{s:s,s:I}", "login", who.login,
                                "other_sessions_ended", (json_int_t)ended));
    log_info(&r->log, "staff", "password", "login=%s ended=%ld", who.login,
             ended);
out:
    json_decref(body);
}

/* GET /api/v1/staff: every staff user of the account (admins; a
 * supervisor reads it too). */
void api_staff_list(struct fcgi_req *r)
{
    struct pg_conn *db = NULL;
    struct auth who;
    json_t *list = NULL;
    int rc;

    if (api_authenticate(r, &who, 1))
        return;
    rc = staff_open(r->app->cfg.postgres.dsn, 1, &db);
    if (rc == 0)
        rc = staff_list(db, app_id(r), &list);
    pg_close(db);
    if (rc < 0)
        failed(r, "staff_list", rc, 1);
    else
        fcgi_json(r, 200, list);
}

/* Answers status with the user login as the API shows one (never its
 * hash) and, when key is not NULL, key: n. 0, or answered otherwise. */
static int answer_user(struct fcgi_req *r, int status, const char *login,
                       const char *key, long n)
{
    struct pg_conn *db = NULL;
    struct staff_user u;
    json_t *o;
    int rc = staff_open(r->app->cfg.postgres.dsn, 1, &db);

    if (rc == 0)
        rc = staff_get(db, app_id(r), login, &u);
    pg_close(db);
    if (rc < 0) {
        failed(r, "staff_get", rc, 1);
        return 1;
    }
    OPENSSL_cleanse(u.hash, sizeof(u.hash));
    o = json_pack("{s:s,s:s,s:s,s:o,s:b}", "login", u.login, "name", u.name,
                  "role", u.role, "agent", u.agent[0] ? json_string(u.agent)
                                                      : json_null(),
                  "disabled", u.disabled);
    if (o && key)
        json_object_set_new(o, key, json_integer(n));
    fcgi_json(r, status, o);
    return 0;
}

static void invalid(struct fcgi_req *r)
{
    api_refused(r, refusal_get(REFUSAL_STAFF_INVALID),
                "login (1-32 of a-z 0-9 _ -), name (1-64 characters), role "
                "(agent, supervisor, admin), agent (for role agent only) and "
                "disabled (true or false) must be valid");
}

/* POST /api/v1/staff {login, name, role, agent, password}: an admin
 * adds a user (an agent user: linked to its agent account). */
void api_staff_create(struct fcgi_req *r)
{
    const char *login = NULL, *name = NULL, *role = NULL, *agent = NULL,
               *pw = NULL;
    struct pg_conn *db = NULL;
    struct staff_user u;
    struct audit au;
    struct auth who;
    json_t *body;
    int rc;

    if (api_authenticate(r, &who, 1) || !(body = api_json_body(r)))
        return;
    if (api_str_field(r, body, "login", &login) ||
        api_str_field(r, body, "name", &name) ||
        api_str_field(r, body, "role", &role) ||
        api_str_field(r, body, "agent", &agent) ||
        need_str(r, body, "password", &pw))
        goto out;
    if (!login || !name || !role || staff_check_login(login) < 0 ||
        staff_check_name(name) < 0 || staff_check_role(role) < 0 ||
        (strcmp(role, "agent") == 0) != (agent != NULL) ||
        (agent && (!agent[0] || strlen(agent) >= STAFF_AGENT_SIZE))) {
        invalid(r);
        goto out;
    }
    if (password_check(pw, strlen(pw)) < 0) {
        refuse(r, REFUSAL_WEAK_PASSWORD);
        goto out;
    }
    memset(&u, 0, sizeof(u));
    snprintf(u.login, sizeof(u.login), "%s", login);
    snprintf(u.name, sizeof(u.name), "%s", name);
    snprintf(u.role, sizeof(u.role), "%s", role);
    snprintf(u.agent, sizeof(u.agent), "%s", agent ? agent : "");
    if (api_audit(r, &who, "staff.create", u.login, &au))
        goto out;
    rc = password_hash(pw, strlen(pw), u.hash);
    if (rc == 0)
        rc = staff_open(r->app->cfg.postgres.dsn, 1, &db);
    if (rc == 0 && (rc = audit_pg_begin(db, NULL)) == 0)
        rc = audit_pg_end(db, &au, staff_add(db, app_id(r), &u), NULL);
    pg_close(db);
    OPENSSL_cleanse(u.hash, sizeof(u.hash));
    if (rc == KF_EEXISTS)
        refuse(r, REFUSAL_LOGIN_TAKEN);
    else if (rc == KF_ENOTFOUND)
        refuse(r, REFUSAL_UNKNOWN_AGENT);
    else if (rc < 0)
        failed(r, "staff_add", rc, 1);
    else if (answer_user(r, 201, u.login, NULL, 0) == 0)
        log_info(&r->log, "staff", "add", "login=%s role=%s by=%s", u.login,
                 u.role, who.login[0] ? who.login : "admin");
out:
    json_decref(body);
}

/* The {login} path segment into login; answers 404 when it is none. */
static int path_login(struct fcgi_req *r, char login[STAFF_LOGIN_SIZE])
{
    snprintf(login, STAFF_LOGIN_SIZE, "%.*s", (int)r->param.len, r->param.p);
    if (r->param.len < STAFF_LOGIN_SIZE && staff_check_login(login) == 0)
        return 0;
    refuse(r, REFUSAL_NO_STAFF);
    return 1;
}

/* PATCH /api/v1/staff/{login} {name, role, agent, disabled} (each
 * optional): an admin changes a user. A new role or agent, or disabled,
 * ends every session of the user (they carry the old role). An admin
 * cannot disable or re-role their own user (409 cannot_change_self). */
void api_staff_patch(struct fcgi_req *r)
{
    struct staff_change c = { NULL, NULL, NULL, -1 };
    char login[STAFF_LOGIN_SIZE];
    json_t *body, *d;
    struct auth who;
    long ended = 0;
    int rc, changed = 0;

    if (api_authenticate(r, &who, 1) || path_login(r, login) ||
        !(body = api_json_body(r)))
        return;
    d = json_object_get(body, "disabled");
    if (api_str_field(r, body, "name", &c.name) ||
        api_str_field(r, body, "role", &c.role) ||
        api_str_field(r, body, "agent", &c.agent))
        goto out;
    if ((d && !json_is_boolean(d)) ||
        (c.agent && strlen(c.agent) >= STAFF_AGENT_SIZE)) {
        invalid(r);
        goto out;
    }
    if (d)
        c.disabled = json_is_true(d);
    if (strcmp(who.login, login) == 0 &&
        (c.disabled == 1 || (c.role && strcmp(c.role, who.staff_role)))) {
        refuse(r, REFUSAL_STAFF_SELF);
        goto out;
    }
    {
        struct pg_conn *db = NULL;

        struct audit au;

        if (api_audit(r, &who, "staff.update", login, &au))
            goto out;
        rc = staff_open(r->app->cfg.postgres.dsn, 1, &db);
        if (rc == 0 && (rc = audit_pg_begin(db, NULL)) == 0)
            rc = audit_pg_end(db, &au, staff_update(db, app_id(r), login, &c,
                                                    &changed), NULL);
        pg_close(db);
    }
    if (rc == 0 && (changed || c.disabled == 1) &&
        staff_session_end_all(store_of(r), login, NULL, &ended) < 0) {
        failed(r, "staff_patch", KF_EBACKEND, 0);
        goto out;
    }
    if (rc == KF_EINVAL)
        invalid(r);
    else if (rc == KF_ENOTFOUND)
        refuse(r, REFUSAL_NO_STAFF);
    else if (rc == KF_EBUSY)
        refuse(r, REFUSAL_UNKNOWN_AGENT);
    else if (rc == KF_EEXISTS)
        refuse(r, REFUSAL_LOGIN_TAKEN);
    else if (rc < 0)
        failed(r, "staff_patch", rc, 1);
    else if (answer_user(r, 200, login, "sessions_ended", ended) == 0)
        log_info(&r->log, "staff", "change", "login=%s by=%s ended=%ld",
                 login, who.login[0] ? who.login : "admin", ended);
out:
    json_decref(body);
}

/* POST /api/v1/staff/{login}/password {new_password}: an admin's reset;
 * every session of the user ends and its lock-out is lifted. */
void api_staff_reset(struct fcgi_req *r)
{
    char login[STAFF_LOGIN_SIZE];
    const char *pw = NULL;
    struct auth who;
    json_t *body;
    long ended = 0;

    if (api_authenticate(r, &who, 1) || path_login(r, login) ||
        !(body = api_json_body(r)))
        return;
    if (need_str(r, body, "new_password", &pw) == 0 &&
        set_password(r, &who, "staff.password_reset", login, pw, NULL,
                     &ended) == 0) {
        fcgi_json(r, 200, json_pack("{s:s,s:I}", "login", login,
                                    "sessions_ended", (json_int_t)ended));
        log_info(&r->log, "staff", "reset", "login=%s by=%s ended=%ld",
                 login, who.login[0] ? who.login : "admin", ended);
    }
    json_decref(body);
}
