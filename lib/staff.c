/* staff: the staff_users table (parameterized SQL through lib/pg). */
#include "staff.h"

#include <stdio.h>
#include <string.h>

#include "pg.h"

#include "banned.h"

int staff_check_login(const char *s)
{
    size_t i, n = strlen(s);

    if (n < 1 || n >= STAFF_LOGIN_SIZE)
        return KF_EINVAL;
    for (i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

        if (!alnum && (i == 0 || (c != '_' && c != '-')))
            return KF_EINVAL;
    }
    return 0;
}

int staff_check_role(const char *s)
{
    return strcmp(s, "agent") == 0 || strcmp(s, "supervisor") == 0 ||
           strcmp(s, "admin") == 0 ? 0 : KF_EINVAL;
}

int staff_check_agent_link(const char *role, int linked)
{
    if (strcmp(role, "agent") == 0)
        return linked ? 0 : KF_EINVAL;
    if (strcmp(role, "admin") == 0)
        return linked ? KF_EINVAL : 0;
    return 0;
}

int staff_check_name(const char *s)
{
    return s[0] && kf_text_check(s, STAFF_NAME_CHARS, 0) == 0 ? 0
                                                              : KF_EINVAL;
}

int staff_open(const char *dsn, int request, struct pg_conn **out)
{
    int rc = pg_open(dsn, "wxkf-staff", request ? PG_USE_REQUEST : PG_USE_CLI,
                     out, NULL);

    return rc == KF_ENOMEM ? rc : rc < 0 ? KF_EBACKEND : 0;
}

/* pg's class as the verbs return it. */
static int failed(int rc)
{
    return rc == KF_ENOMEM || rc == KF_EBACKEND || rc == KF_EEXISTS ? rc
                                                                     : KF_EIO;
}

int staff_add(struct pg_conn *db, const char *app_id,
              const struct staff_user *u)
{
    const char *p[6] = { app_id, u->login, u->name, u->role,
                         u->agent[0] ? u->agent : NULL, u->hash };
    struct pg_res *res = NULL;
    int rc;

    if (staff_check_login(u->login) < 0 || staff_check_name(u->name) < 0 ||
        staff_check_role(u->role) < 0 ||
        staff_check_agent_link(u->role, u->agent[0] != '\0') < 0 ||
        strncmp(u->hash, "$argon2id$", 10) != 0)
        return KF_EINVAL;
    /* a user linked to an agent only for an agent that exists */
    rc = pg_exec(db, "INSERT INTO staff_users (app_id, login, display_name, "
                 "role, agent, password_hash) SELECT $1, $2, $3, $4, $5, $6 "
                 "WHERE $5::text IS NULL OR EXISTS (SELECT 1 FROM agents "
                 "WHERE account = $5)", 6, p, 0, &res, NULL);
    if (rc < 0)
        return failed(rc);
    rc = pg_res_affected(res) == 1 ? 0 : KF_ENOTFOUND;
    pg_res_free(res);
    return rc;
}

int staff_get(struct pg_conn *db, const char *app_id, const char *login,
              struct staff_user *out)
{
    const char *p[2] = { app_id, login };
    struct pg_res *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (staff_check_login(login) < 0)
        return KF_ENOTFOUND;
    rc = pg_exec(db, "SELECT login, display_name, role, coalesce(agent, ''), "
                 "password_hash, disabled FROM staff_users WHERE app_id = $1 "
                 "AND login = $2", 2, p, PG_RETRY, &res, NULL);
    if (rc < 0)
        return failed(rc);
    if (pg_res_rows(res) != 1) {
        pg_res_free(res);
        return KF_ENOTFOUND;
    }
    snprintf(out->login, sizeof(out->login), "%s", pg_res_value(res, 0, 0));
    snprintf(out->name, sizeof(out->name), "%s", pg_res_value(res, 0, 1));
    snprintf(out->role, sizeof(out->role), "%s", pg_res_value(res, 0, 2));
    snprintf(out->agent, sizeof(out->agent), "%s", pg_res_value(res, 0, 3));
    snprintf(out->hash, sizeof(out->hash), "%s", pg_res_value(res, 0, 4));
    out->disabled = strcmp(pg_res_value(res, 0, 5), "t") == 0;
    pg_res_free(res);
    return 0;
}

/* An UPDATE of one user's row: KF_ENOTFOUND when there is none. */
static int update_one(struct pg_conn *db, const char *sql, const char *app_id,
                      const char *login, const char *value)
{
    const char *p[3] = { app_id, login, value };
    struct pg_res *res = NULL;
    int rc;

    if (staff_check_login(login) < 0)
        return KF_ENOTFOUND;
    rc = pg_exec(db, sql, 3, p, 0, &res, NULL);
    if (rc < 0)
        return failed(rc);
    rc = pg_res_affected(res) == 1 ? 0 : KF_ENOTFOUND;
    pg_res_free(res);
    return rc;
}

int staff_set_password(struct pg_conn *db, const char *app_id,
                       const char *login, const char *hash)
{
    if (strncmp(hash, "$argon2id$", 10) != 0)
        return KF_EINVAL;
    return update_one(db, "UPDATE staff_users SET password_hash = $3, "
                      "password_changed_at = now(), updated_at = now() "
                      "WHERE app_id = $1 AND login = $2", app_id, login,
                      hash);
}

int staff_set_disabled(struct pg_conn *db, const char *app_id,
                       const char *login, int disabled)
{
    return update_one(db, "UPDATE staff_users SET disabled = $3, "
                      "updated_at = now() WHERE app_id = $1 AND login = $2",
                      app_id, login, disabled ? "true" : "false");
}

int staff_update(struct pg_conn *db, const char *app_id, const char *login,
                 const struct staff_change *c, int *role_changed)
{
    const char *p[6] = { app_id, login, c->name, c->role, c->agent,
                         c->disabled < 0 ? NULL
                         : c->disabled ? "true" : "false" };
    struct pg_res *res = NULL;
    int rc;

    if (role_changed)
        *role_changed = 0;
    if (staff_check_login(login) < 0)
        return KF_ENOTFOUND;
    if ((c->name && staff_check_name(c->name) < 0) ||
        (c->role && staff_check_role(c->role) < 0) ||
        (c->role && (strcmp(c->role, "agent") == 0) != (c->agent != NULL)) ||
        (!c->role && c->agent))
        return KF_EINVAL;
    if (c->agent) {
        const char *a[1] = { c->agent };

        rc = pg_exec(db, "SELECT 1 FROM agents WHERE account = $1", 1, a,
                     PG_RETRY, &res, NULL);
        if (rc < 0)
            return failed(rc);
        rc = pg_res_rows(res) == 1 ? 0 : KF_EBUSY;
        pg_res_free(res);
        if (rc < 0)
            return rc;
    }
    /* the old role and agent, to tell whether they changed */
    rc = pg_exec(db, "UPDATE staff_users u SET display_name = "
                 "coalesce($3, u.display_name), role = coalesce($4, u.role), "
                 "agent = CASE WHEN $4::text IS NULL THEN u.agent "
                 "ELSE $5 END, "
                 "disabled = coalesce($6::boolean, u.disabled), "
                 "updated_at = now() FROM staff_users o WHERE u.app_id = $1 "
                 "AND u.login = $2 AND o.app_id = u.app_id AND o.login = "
                 "u.login RETURNING o.role IS DISTINCT FROM u.role OR "
                 "o.agent IS DISTINCT FROM u.agent", 6, p, 0, &res, NULL);
    if (rc < 0)
        return failed(rc);
    rc = pg_res_rows(res) == 1 ? 0 : KF_ENOTFOUND;
    if (rc == 0 && role_changed)
        *role_changed = strcmp(pg_res_value(res, 0, 0), "t") == 0;
    pg_res_free(res);
    return rc;
}

/* Timestamps as the API writes them: UTC, ISO 8601 with a Z. */
#define TS(c) "to_char(" c " AT TIME ZONE 'UTC', " \
              "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

int staff_list(struct pg_conn *db, const char *app_id, json_t **out)
{
    const char *p[1] = { app_id };
    struct pg_res *res = NULL;
    json_t *list, *u;
    int rc, i;

    *out = NULL;
    rc = pg_exec(db, "SELECT login, display_name, role, coalesce(agent, ''), "
                 "disabled, "
                 TS("created_at") ", " TS("updated_at") ", "
                 TS("password_changed_at") " FROM staff_users "
                 "WHERE app_id = $1 ORDER BY login", 1, p, PG_RETRY, &res,
                 NULL);
    if (rc < 0)
        return failed(rc);
    list = json_array();
    rc = list ? 0 : KF_ENOMEM;
    for (i = 0; rc == 0 && i < pg_res_rows(res); i++) {
        u = json_pack("{s:s,s:s,s:s,s:o,s:b,s:s,s:s,s:s}",
                      "login", pg_res_value(res, i, 0),
                      "name", pg_res_value(res, i, 1),
                      "role", pg_res_value(res, i, 2),
                      "agent", !pg_res_value(res, i, 3)[0] ? json_null()
                          : json_string(pg_res_value(res, i, 3)),
                      "disabled", strcmp(pg_res_value(res, i, 4), "t") == 0,
                      "created_at", pg_res_value(res, i, 5),
                      "updated_at", pg_res_value(res, i, 6),
                      "password_changed_at", pg_res_value(res, i, 7));
        if (!u || json_array_append_new(list, u) < 0)
            rc = KF_ENOMEM;
    }
    pg_res_free(res);
    if (rc == 0)
        *out = json_pack("{s:o}", "users", list);
    else
        json_decref(list);
    return rc < 0 ? rc : *out ? 0 : KF_ENOMEM;
}
