/* api_token: named API tokens (parameterized SQL through lib/pg). */
#include "api_token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "agent_token.h"
#include "pg.h"

#include "banned.h"

static const struct {
    const char *name;
    unsigned bit;
} scope_names[] = {
    { "read", API_SCOPE_READ },
    { "agents", API_SCOPE_AGENTS },
    { "reports", API_SCOPE_REPORTS },
    { "history", API_SCOPE_HISTORY },
};
#define NSCOPES (sizeof(scope_names) / sizeof(scope_names[0]))

unsigned api_token_scope(const char *name)
{
    size_t i;

    for (i = 0; i < NSCOPES; i++)
        if (strcmp(name, scope_names[i].name) == 0)
            return scope_names[i].bit;
    return 0;
}

int api_token_scopes_parse(const char *csv, unsigned *out)
{
    char word[16];
    const char *p = csv, *end;
    size_t n;

    *out = 0;
    for (;;) {
        end = strchr(p, ',');
        n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 || n >= sizeof(word))
            return KF_EINVAL;
        memcpy(word, p, n);
        word[n] = '\0';
        if (!api_token_scope(word))
            return KF_EINVAL;
        *out |= api_token_scope(word);
        if (!end)
            return 0;
        p = end + 1;
    }
}

int api_token_scopes_json_parse(const json_t *a, unsigned *out)
{
    const json_t *v;
    size_t i;

    *out = 0;
    if (!json_is_array(a) || json_array_size(a) == 0 ||
        json_array_size(a) > NSCOPES)
        return KF_EINVAL;
    json_array_foreach(a, i, v) {
        const char *name = json_string_value(v);
        unsigned bit = name ? api_token_scope(name) : 0;

        if (!bit)
            return KF_EINVAL;
        *out |= bit;
    }
    return 0;
}

json_t *api_token_scopes_json(unsigned scopes)
{
    json_t *a = json_array();
    size_t i;

    for (i = 0; a && i < NSCOPES; i++)
        if ((scopes & scope_names[i].bit) &&
            json_array_append_new(a, json_string(scope_names[i].name)) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* The scopes as a PostgreSQL array literal of their (fixed) names. */
static void scopes_literal(unsigned scopes, char *out, size_t n)
{
    size_t i, len = (size_t)snprintf(out, n, "{");

    for (i = 0; i < NSCOPES && len < n; i++)
        if (scopes & scope_names[i].bit)
            len += (size_t)snprintf(out + len, n - len, "%s%s",
                                    len > 1 ? "," : "", scope_names[i].name);
    if (len < n)
        snprintf(out + len, n - len, "}");
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

unsigned api_token_route_scopes(struct kf_str method, const char *route)
{
    static const char *const history[] = {
        "/api/v1/users/*/messages", "/api/v1/sessions/*/transcript",
        "/api/v1/search", "/api/v1/history/sessions",
        "/api/v1/history/export", "/api/v1/media/*",
    };
    int read = kf_str_eq_c(method, "GET") || kf_str_eq_c(method, "HEAD");
    size_t i;

    if (!route || starts(route, "/api/v1/tokens") ||
        starts(route, "/api/v1/staff") || starts(route, "/api/v1/auth/") ||
        starts(route, "/api/v1/me/"))
        return 0;
    if (strcmp(route, "/api/v1/me") == 0)  /* who the token is */
        return API_SCOPE_ALL;
    if (starts(route, "/api/v1/agents"))
        return read ? API_SCOPE_READ | API_SCOPE_AGENTS : API_SCOPE_AGENTS;
    if (starts(route, "/api/v1/reports"))
        return read ? API_SCOPE_REPORTS : 0;
    for (i = 0; i < sizeof(history) / sizeof(history[0]); i++)
        if (strcmp(route, history[i]) == 0)
            return read ? API_SCOPE_HISTORY : 0;
    return read ? API_SCOPE_READ : 0;
}

int api_token_is_token(struct kf_str s)
{
    return s.len == API_TOKEN_SIZE - 1 &&
           memcmp(s.p, API_TOKEN_PREFIX, 4) == 0 &&
           kf_is_hex((struct kf_str){ s.p + 4, s.len - 4 }, 64);
}

int api_token_check_name(const char *s)
{
    return s[0] && kf_text_check(s, API_TOKEN_NAME_CHARS, 0) == 0
           ? 0 : KF_EINVAL;
}

/* pg's class as the verbs return it. */
static int failed(int rc)
{
    return rc == KF_ENOMEM || rc == KF_EBACKEND || rc == KF_EEXISTS ? rc
                                                                     : KF_EIO;
}

/* Timestamps as the API writes them: UTC, ISO 8601 with a Z. */
#define TS(c) "to_char(" c " AT TIME ZONE 'UTC', " \
              "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
/* The columns of a row as row_json reads them. */
#define ROW_COLS "id, name, array_to_string(scopes, ','), created_by, " \
                 TS("created_at") ", " TS("last_used_at") ", " \
                 TS("revoked_at")

static json_t *ts_or_null(const struct pg_res *res, int i, int col)
{
    return pg_res_isnull(res, i, col) ? json_null()
                                      : json_string(pg_res_value(res, i, col));
}

/* Row i of a ROW_COLS result as the API shows a token (NULL: no
 * memory). */
static json_t *row_json(const struct pg_res *res, int i)
{
    unsigned scopes = 0;

    if (api_token_scopes_parse(pg_res_value(res, i, 2), &scopes) < 0)
        scopes = 0;             /* the table's CHECK makes this not happen */
    return json_pack("{s:I,s:s,s:o*,s:s,s:s,s:o*,s:o*}",
                     "id", (json_int_t)strtoll(pg_res_value(res, i, 0),
                                               NULL, 10),
                     "name", pg_res_value(res, i, 1),
                     "scopes", api_token_scopes_json(scopes),
                     "created_by", pg_res_value(res, i, 3),
                     "created_at", pg_res_value(res, i, 4),
                     "last_used_at", ts_or_null(res, i, 5),
                     "revoked_at", ts_or_null(res, i, 6));
}

int api_token_add(struct pg_conn *db, const char *app_id, const char *name,
                  unsigned scopes, const char *created_by, json_t **out)
{
    char token[API_TOKEN_SIZE], hash[AGENT_HASH_SIZE], lit[64], max[16];
    const char *p[6] = { app_id, name, lit, hash, created_by, max };
    struct pg_res *res = NULL;
    int rc;

    *out = NULL;
    if (api_token_check_name(name) < 0 || !scopes ||
        (scopes & ~(unsigned)API_SCOPE_ALL) || !created_by[0])
        return KF_EINVAL;
    scopes_literal(scopes, lit, sizeof(lit));
    snprintf(max, sizeof(max), "%d", API_TOKEN_MAX_LIVE);
    rc = agent_token_new_prefixed(API_TOKEN_PREFIX, token, hash);
    if (rc < 0)
        return rc;
    rc = pg_exec(db, "INSERT INTO api_tokens (app_id, name, scopes, "
                 "token_sha256, created_by) SELECT $1, $2, $3::text[], $4, "
                 "$5 WHERE (SELECT count(*) FROM api_tokens WHERE app_id = $1 "
                 "AND revoked_at IS NULL) < $6::int RETURNING " ROW_COLS,
                 6, p, 0, &res, NULL);
    OPENSSL_cleanse(hash, sizeof(hash));
    if (rc < 0) {
        OPENSSL_cleanse(token, sizeof(token));
        return failed(rc);
    }
    if (pg_res_rows(res) != 1) {
        rc = KF_ELIMIT;
    } else {
        *out = row_json(res, 0);
        if (!*out || json_object_set_new(*out, "token",
                                         json_string(token)) < 0)
            rc = KF_ENOMEM;
    }
    OPENSSL_cleanse(token, sizeof(token));
    pg_res_free(res);
    if (rc < 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

/* The rows of a ROW_COLS result as a new JSON array in *out. */
static int rows_json(const struct pg_res *res, json_t **out)
{
    json_t *list = json_array(), *t;
    int i;

    for (i = 0; list && i < pg_res_rows(res); i++) {
        t = row_json(res, i);
        if (!t || json_array_append_new(list, t) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    *out = list;
    return list ? 0 : KF_ENOMEM;
}

int api_token_list(struct pg_conn *db, const char *app_id, json_t **out)
{
    char max[16];
    const char *p[2] = { app_id, max };
    struct pg_res *res = NULL;
    json_t *list = NULL;
    int rc;

    *out = NULL;
    snprintf(max, sizeof(max), "%d", API_TOKEN_LIST_MAX);
    rc = pg_exec(db, "SELECT " ROW_COLS " FROM api_tokens WHERE app_id = $1 "
                 "ORDER BY id DESC LIMIT $2::int", 2, p, PG_RETRY, &res,
                 NULL);
    if (rc < 0)
        return failed(rc);
    rc = rows_json(res, &list);
    pg_res_free(res);
    if (rc == 0) {
        *out = json_pack("{s:o}", "tokens", list);
        rc = *out ? 0 : KF_ENOMEM;
    }
    return rc;
}

int api_token_revoke(struct pg_conn *db, const char *app_id, long long id,
                     json_t **out)
{
    char ids[24];
    const char *p[2] = { app_id, ids };
    struct pg_res *res = NULL;
    int rc;

    *out = NULL;
    if (id < 1)
        return KF_ENOTFOUND;
    snprintf(ids, sizeof(ids), "%lld", id);
    rc = pg_exec(db, "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, "
                 "now()) WHERE app_id = $1 AND id = $2::bigint RETURNING "
                 ROW_COLS, 2, p, 0, &res, NULL);
    if (rc < 0)
        return failed(rc);
    if (pg_res_rows(res) != 1) {
        rc = KF_ENOTFOUND;
    } else {
        *out = row_json(res, 0);
        rc = *out ? 0 : KF_ENOMEM;
    }
    pg_res_free(res);
    return rc;
}

int api_token_identify(struct pg_conn *db, const char *app_id,
                       const char *hash, struct api_token_who *out)
{
    char touch[16];
    const char *p[3] = { app_id, hash, touch };
    struct pg_res *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!agent_token_is_hash(hash))
        return KF_ENOTFOUND;
    snprintf(touch, sizeof(touch), "%d", API_TOKEN_TOUCH_S);
    /* the UPDATE writes only when the last use is a minute old */
    rc = pg_exec(db, "WITH t AS (SELECT id, name, scopes, last_used_at "
                 "FROM api_tokens WHERE app_id = $1 AND token_sha256 = $2 "
                 "AND revoked_at IS NULL), u AS (UPDATE api_tokens a SET "
                 "last_used_at = now() FROM t WHERE a.app_id = $1 AND "
                 "a.id = t.id AND (t.last_used_at IS NULL OR t.last_used_at "
                 "<= now() - make_interval(secs => $3::int))) "
                 "SELECT id, name, array_to_string(scopes, ',') FROM t",
                 3, p, 0, &res, NULL);
    if (rc < 0)
        return failed(rc);
    if (pg_res_rows(res) != 1) {
        rc = KF_ENOTFOUND;
    } else {
        out->id = strtoll(pg_res_value(res, 0, 0), NULL, 10);
        snprintf(out->name, sizeof(out->name), "%s", pg_res_value(res, 0, 1));
        rc = api_token_scopes_parse(pg_res_value(res, 0, 2), &out->scopes);
        if (rc < 0)
            rc = KF_EIO;
    }
    pg_res_free(res);
    return rc;
}
