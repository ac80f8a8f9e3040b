/* label: an account's wrap-up labels in PostgreSQL. */
#include "label.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

#include "banned.h"

#define COLS "id, name, color"

int label_check_name(const char *name, const char **why)
{
    size_t n = strlen(name);
    int rc = kf_text_check(name, LABEL_NAME_CHARS, 0);

    if (rc == 0 && (n == 0 || name[0] == ' ' || name[n - 1] == ' ' ||
                    n >= LABEL_NAME_SIZE ||
                    strncmp(name, "\xe3\x80\x80", 3) == 0 ||
                    (n >= 3 && strcmp(name + n - 3, "\xe3\x80\x80") == 0)))
        rc = KF_EINVAL;
    if (rc < 0 && why)
        *why = rc == KF_EPARSE ? "name is not valid UTF-8" :
               rc == KF_ETOOBIG ? "name is longer than 20 characters" :
               "name must be 1-20 characters without control characters, "
               "not starting or ending with a space";
    return rc < 0 ? KF_EINVAL : 0;
}

int label_check_color(const char *color, char *out)
{
    size_t i;

    if (strlen(color) != 7 || color[0] != '#')
        return KF_EINVAL;
    out[0] = '#';
    for (i = 1; i < 7; i++) {
        char c = color[i];

        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return KF_EINVAL;
        out[i] = c;
    }
    out[7] = '\0';
    return 0;
}

int label_open(const char *dsn, struct pg_conn **out)
{
    int rc = pg_open(dsn, "wxkf-label", PG_USE_REQUEST, out, NULL);

    return rc == KF_ENOMEM ? rc : rc < 0 ? KF_EBACKEND : 0;
}

/* A failure of pg as the verbs return it: the refusal of scope
 * REFUSAL_LABEL its code means (unique violation: the name is taken),
 * else a backend failure. */
static int failed(int rc, const struct refusal **why)
{
    if (rc == KF_EEXISTS) {
        *why = refusal_get(REFUSAL_LABEL_EXISTS);
        return rc;
    }
    return rc == KF_ENOMEM || rc == KF_EBACKEND ? rc : KF_EIO;
}

static int refuse(enum refusal_id id, const struct refusal **why)
{
    *why = refusal_get(id);
    return (*why)->rc;
}

static int row_json(const struct pg_res *res, int i, json_t **out)
{
    char *end;
    long long id;

    errno = 0;
    id = strtoll(pg_res_value(res, i, 0), &end, 10);
    if (errno || *end)
        return KF_EIO;
    *out = json_pack("{s:I,s:s,s:s}", "id", (json_int_t)id, "name",
                     pg_res_value(res, i, 1), "color",
                     pg_res_value(res, i, 2));
    return *out ? 0 : KF_ENOMEM;
}

/* The one label a statement returned; KF_ENOTFOUND for none. */
static int one(struct pg_res *res, json_t **out, const struct refusal **why)
{
    if (pg_res_rows(res) != 1)
        return refuse(REFUSAL_NO_LABEL, why);
    return row_json(res, 0, out);
}

int label_list(struct pg_conn *db, const char *app_id, json_t **out)
{
    const char *params[1] = { app_id };
    struct pg_res *res = NULL;
    json_t *list = NULL, *l;
    int rc, i;

    *out = NULL;
    rc = pg_exec(db, "SELECT " COLS " FROM labels WHERE app_id = $1 "
                 "ORDER BY id", 1, params, PG_RETRY, &res, NULL);
    if (rc < 0)
        return rc == KF_ENOMEM || rc == KF_EBACKEND ? rc : KF_EIO;
    list = json_array();
    rc = list ? 0 : KF_ENOMEM;
    for (i = 0; rc == 0 && i < pg_res_rows(res); i++) {
        rc = row_json(res, i, &l);
        if (rc == 0 && json_array_append_new(list, l) < 0)
            rc = KF_ENOMEM;
    }
    pg_res_free(res);
    if (rc == 0)
        *out = json_pack("{s:o}", "labels", list);
    else
        json_decref(list);
    return rc < 0 ? rc : *out ? 0 : KF_ENOMEM;
}

int label_create(struct pg_conn *db, const char *app_id, const char *name,
                 const char *color, json_t **out,
                 const struct refusal **why)
{
    char c[8];
    const char *params[3] = { app_id, name, c };
    struct pg_res *res = NULL;
    long long n;
    int rc;

    *out = NULL;
    if (label_check_name(name, NULL) < 0 || label_check_color(color, c) < 0)
        return refuse(REFUSAL_LABEL_INVALID, why);
    rc = pg_exec(db, "SELECT count(*) FROM labels WHERE app_id = $1", 1,
                 params, PG_RETRY, &res, NULL);
    if (rc < 0)
        return failed(rc, why);
    n = strtoll(pg_res_value(res, 0, 0), NULL, 10);
    pg_res_free(res);
    if (n >= LABELS_MAX)
        return refuse(REFUSAL_LABELS_FULL, why);
    rc = pg_exec(db, "INSERT INTO labels (app_id, name, color) "
                 "VALUES ($1, $2, $3) ON CONFLICT (app_id, name) DO NOTHING "
                 "RETURNING " COLS, 3, params, 0, &res, NULL);
    if (rc < 0)
        return failed(rc, why);
    rc = pg_res_rows(res) == 1 ? row_json(res, 0, out) :
         refuse(REFUSAL_LABEL_EXISTS, why);
    pg_res_free(res);
    return rc;
}

int label_update(struct pg_conn *db, const char *app_id, int64_t id,
                 const char *name, const char *color, json_t **out,
                 const struct refusal **why)
{
    char c[8], sid[24];
    const char *params[4] = { app_id, sid, name, color ? c : NULL };
    struct pg_res *res = NULL;
    int rc;

    *out = NULL;
    if ((name && label_check_name(name, NULL) < 0) ||
        (color && label_check_color(color, c) < 0))
        return refuse(REFUSAL_LABEL_INVALID, why);
    snprintf(sid, sizeof(sid), "%lld", (long long)id);
    rc = pg_exec(db, "UPDATE labels SET name = coalesce($3, name), "
                 "color = coalesce($4, color) "
                 "WHERE app_id = $1 AND id = $2::bigint RETURNING " COLS, 4,
                 params, 0, &res, NULL);
    if (rc < 0)
        return failed(rc, why);
    rc = one(res, out, why);
    pg_res_free(res);
    return rc;
}

int label_delete(struct pg_conn *db, const char *app_id, int64_t id,
                 const struct refusal **why)
{
    char sid[24];
    const char *params[2] = { app_id, sid };
    struct pg_res *res = NULL;
    int rc;

    snprintf(sid, sizeof(sid), "%lld", (long long)id);
    rc = pg_exec(db, "DELETE FROM labels WHERE app_id = $1 AND "
                 "id = $2::bigint RETURNING id", 2, params, 0, &res, NULL);
    if (rc < 0)
        return failed(rc, why);
    rc = pg_res_rows(res) == 1 ? 0 : refuse(REFUSAL_NO_LABEL, why);
    pg_res_free(res);
    return rc;
}

int label_names(struct pg_conn *db, const char *app_id, const int64_t *ids,
                size_t n, json_t **out, const struct refusal **why)
{
    char arr[LABELS_PER_SESSION * 24 + 4];
    const char *params[2] = { app_id, arr };
    struct pg_res *res = NULL;
    size_t i, len = 0;
    int rc = 0, k, found;

    *out = NULL;
    if (n > LABELS_PER_SESSION)
        return refuse(REFUSAL_LABEL_INVALID, why);
    arr[len++] = '{';
    for (i = 0; i < n; i++)
        len += (size_t)snprintf(arr + len, sizeof(arr) - len, "%s%lld",
                                i ? "," : "", (long long)ids[i]);
    snprintf(arr + len, sizeof(arr) - len, "}");
    rc = pg_exec(db, "SELECT id, name FROM labels WHERE app_id = $1 AND "
                 "id = ANY($2::bigint[])", 2, params, PG_RETRY, &res, NULL);
    if (rc < 0)
        return failed(rc, why);
    *out = json_array();
    rc = *out ? 0 : KF_ENOMEM;
    for (i = 0; rc == 0 && i < n; i++) {
        for (found = -1, k = 0; k < pg_res_rows(res); k++)
            if (strtoll(pg_res_value(res, k, 0), NULL, 10) == ids[i])
                found = k;
        if (found < 0)
            rc = refuse(REFUSAL_NO_LABEL, why);
        else if (json_array_append_new(
                     *out, json_string(pg_res_value(res, found, 1))) < 0)
            rc = KF_ENOMEM;
    }
    pg_res_free(res);
    if (rc < 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}
