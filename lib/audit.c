/* audit: the audit record and its two ways into audit_log. */
#include "audit.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "pg.h"
#include "store.h"

#include "banned.h"

static int in_set(const char *s, size_t min, size_t max, const char *extra)
{
    size_t n = strlen(s), i;

    if (n < min || n > max)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || strchr(extra, c)))
            return 0;
    }
    return 1;
}

/* UTF-8 without control characters (C0, DEL, C1), min..max bytes. */
static int text_ok(const char *s, size_t min, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0;

    if (n < min || n > max)
        return 0;
    while (i < n) {
        uint32_t cp;
        size_t len = kf_utf8_next(p + i, n - i, &cp);

        if (len == 0 || cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
            return 0;
        i += len;
    }
    return 1;
}

static int ip_ok(const char *s)
{
    size_t i, n = strlen(s);

    if (n > AUDIT_IP_MAX)
        return 0;
    for (i = 0; i < n; i++)
        if (!strchr("0123456789abcdefABCDEF:.", s[i]))
            return 0;
    return 1;
}

static int role_ok(const char *s)
{
    static const char *const roles[] = { "agent", "supervisor", "admin",
                                         "cli", "none" };
    size_t i;

    for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (strcmp(s, roles[i]) == 0)
            return 1;
    return 0;
}

/* <object>.<verb>: [a-z][a-z_]* on each side of one dot. */
static int action_ok(const char *s)
{
    const char *dot = strchr(s, '.');
    size_t n = strlen(s), i;

    if (!dot || n > AUDIT_ACTION_MAX || dot == s || !dot[1] ||
        dot[1] < 'a' || dot[1] > 'z' || s[0] < 'a' || s[0] > 'z')
        return 0;
    for (i = 0; i < n; i++)
        if (s + i != dot && !((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
            return 0;
    return 1;
}

static int detail_ok(const char *s)
{
    json_t *j;
    int ok;

    if (strlen(s) > AUDIT_DETAIL_MAX)
        return 0;
    j = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
    ok = json_is_object(j);
    json_decref(j);
    return ok;
}

static int copy(char *dst, size_t n, const char *src)
{
    int w = snprintf(dst, n, "%s", src ? src : "");

    return w >= 0 && (size_t)w < n;
}

int audit_init(struct audit *a, const char *app_id, const char *actor,
               const char *role, const char *ip, const char *request_id)
{
    memset(a, 0, sizeof(*a));
    if (!app_id || !actor || !role ||
        !copy(a->app_id, sizeof(a->app_id), app_id) ||
        !copy(a->actor, sizeof(a->actor), actor) ||
        !copy(a->role, sizeof(a->role), role) ||
        !copy(a->ip, sizeof(a->ip), ip) ||
        !copy(a->request_id, sizeof(a->request_id), request_id) ||
        !in_set(a->app_id, 1, AUDIT_APP_ID_MAX, "_-") ||
        !text_ok(a->actor, 1, AUDIT_ACTOR_MAX) || !role_ok(a->role) ||
        !ip_ok(a->ip) || !in_set(a->request_id, 0, AUDIT_RID_MAX, "_-")) {
        memset(a, 0, sizeof(*a));
        return KF_EINVAL;
    }
    snprintf(a->detail, sizeof(a->detail), "{}");
    return 0;
}

int audit_set_target(struct audit *a, const char *target)
{
    char t[AUDIT_TARGET_MAX + 1];

    if (!copy(t, sizeof(t), target) || !text_ok(t, 0, AUDIT_TARGET_MAX))
        return KF_EINVAL;
    memcpy(a->target, t, sizeof(t));
    return 0;
}

int audit_target_id(struct audit *a, int64_t id)
{
    char t[24];

    snprintf(t, sizeof(t), "%lld", (long long)id);
    return audit_set_target(a, t);
}

int audit_set(struct audit *a, const char *action, const char *target,
              const char *detail)
{
    a->action[0] = '\0';
    if (!action || !action_ok(action) || (detail && !detail_ok(detail)) ||
        audit_set_target(a, target) < 0)
        return KF_EINVAL;
    snprintf(a->detail, sizeof(a->detail), "%s", detail ? detail : "{}");
    snprintf(a->action, sizeof(a->action), "%s", action);
    return 0;
}

int audit_check(const struct audit *a)
{
    return in_set(a->app_id, 1, AUDIT_APP_ID_MAX, "_-") &&
                   text_ok(a->actor, 1, AUDIT_ACTOR_MAX) &&
                   role_ok(a->role) && ip_ok(a->ip) &&
                   in_set(a->request_id, 0, AUDIT_RID_MAX, "_-") &&
                   action_ok(a->action) &&
                   text_ok(a->target, 0, AUDIT_TARGET_MAX) &&
                   detail_ok(a->detail)
               ? 0 : KF_EINVAL;
}

/* --- PostgreSQL ---------------------------------------------------------- */

static const char insert_sql[] =
    "INSERT INTO audit_log (app_id, actor, role, action, target, ip,"
    " request_id, detail) VALUES ($1, $2, $3, $4, nullif($5, ''),"
    " nullif($6, ''), nullif($7, ''), $8::jsonb)";

int audit_pg_insert(struct pg_conn *c, const struct audit *a,
                    struct pg_err *e)
{
    const char *params[8] = { a->app_id, a->actor, a->role, a->action,
                              a->target, a->ip, a->request_id, a->detail };

    if (audit_check(a) < 0)
        return KF_EINVAL;
    return pg_exec(c, insert_sql, 8, params, 0, NULL, e);
}

int audit_pg_begin(struct pg_conn *c, struct pg_err *e)
{
    return pg_exec(c, "BEGIN", 0, NULL, 0, NULL, e);
}

int audit_pg_end(struct pg_conn *c, const struct audit *a, int rc,
                 struct pg_err *e)
{
    if (rc == 0)
        rc = audit_pg_insert(c, a, e);
    if (rc == 0)
        rc = pg_exec(c, "COMMIT", 0, NULL, 0, NULL, e);
    if (rc < 0 && pg_in_transaction(c) &&
        pg_exec(c, "ROLLBACK", 0, NULL, 0, NULL, NULL) < 0)
        pg_disconnect(c);       /* the server rolls it back */
    return rc;
}

/* --- Redis --------------------------------------------------------------- */

int audit_redis_arm(struct store *s, struct audit *a)
{
    if (audit_check(a) < 0)
        return KF_EINVAL;
    a->argv[0] = AUDIT_MARKER;
    a->argv[1] = a->action;
    a->argv[2] = a->target;
    a->argv[3] = a->actor;
    a->argv[4] = a->role;
    a->argv[5] = a->ip;
    a->argv[6] = a->request_id;
    a->argv[7] = a->detail;
    s->tail = a->argv;
    s->ntail = AUDIT_NARGS;
    return 0;
}

void audit_redis_disarm(struct store *s)
{
    s->tail = NULL;
    s->ntail = 0;
}
