/* canned_db: the canned_replies table (parameterized SQL through lib/pg
 * only). */
#include "canned_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refusal.h"

#include "banned.h"

/* lib/refusal.h's canned_full message names the number. */
_Static_assert(CANNED_ROWS_MAX == 500, "canned_full's message says 500");

#define COLS "id, scope, owner, folder, title, body, sort, " \
             "to_char(updated_at AT TIME ZONE 'UTC', " \
             "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
/* The rows of one list: $1 app_id, $2 owner (NULL: the shared list). */
#define ONE_LIST "app_id = $1 AND owner IS NOT DISTINCT FROM $2"
/* Orders the writers of one list (its row count is checked). */
#define LOCK_LIST "SELECT pg_advisory_xact_lock(hashtext('wxkf-canned:' " \
                  "|| $1 || ':' || coalesce($2, '')))"

static int fail(struct canned_db_err *err, int rc, enum refusal_id id,
                const char *msg)
{
    err->why = id < REFUSAL_COUNT ? refusal_get(id) : NULL;
    snprintf(err->msg, sizeof(err->msg), "%s", msg);
    return rc;
}

static int refused(struct canned_db_err *err, enum refusal_id id)
{
    const struct refusal *r = refusal_get(id);

    return fail(err, r->rc, id, r->message ? r->message : r->code);
}

int canned_db_open(const char *dsn, struct pg_conn **out,
                   struct canned_db_err *err)
{
    struct pg_err e;
    int rc = pg_open(dsn, "wxkf-canned", PG_USE_REQUEST, out, &e);

    if (rc == KF_ENOMEM)
        return fail(err, rc, REFUSAL_COUNT, "out of memory");
    return rc < 0 ? fail(err, KF_EBACKEND, REFUSAL_COUNT, e.msg) : 0;
}

/* Runs sql; a failure is KF_EBACKEND (unreachable, timeout), KF_EINVAL
 * (data refused: the C checks should have caught it) or KF_EIO, with the
 * server's reason in err. */
static int run(struct pg_conn *db, const char *sql, int n,
               const char *const *params, struct pg_res **res,
               struct canned_db_err *err)
{
    struct pg_err e;
    int rc = pg_exec(db, sql, n, params, 0, res, &e);

    return rc < 0 ? fail(err, rc, REFUSAL_COUNT, e.msg) : 0;
}

static json_t *row_json(const struct pg_res *res, int i)
{
    long long id = strtoll(pg_res_value(res, i, 0), NULL, 10),
              sort = strtoll(pg_res_value(res, i, 6), NULL, 10);

    return json_pack("{s:I,s:s,s:o,s:s,s:s,s:s,s:I,s:s}", "id",
                     (json_int_t)id, "scope", pg_res_value(res, i, 1),
                     "owner", pg_res_isnull(res, i, 2)
                                  ? json_null()
                                  : json_string(pg_res_value(res, i, 2)),
                     "folder", pg_res_value(res, i, 3), "title",
                     pg_res_value(res, i, 4), "text", pg_res_value(res, i, 5),
                     "sort", (json_int_t)sort, "updated_at",
                     pg_res_value(res, i, 7));
}

/* The first row of res as JSON into *out (KF_ENOMEM). */
static int first_row(const struct pg_res *res, json_t **out,
                     struct canned_db_err *err)
{
    *out = row_json(res, 0);
    return *out ? 0 : fail(err, KF_ENOMEM, REFUSAL_COUNT, "out of memory");
}

int canned_db_list(struct pg_conn *db, const char *app_id, const char *owner,
                   json_t **out, struct canned_db_err *err)
{
    const char *p[] = { app_id, owner };
    struct pg_res *res = NULL;
    json_t *a;
    int rc, i;

    *out = NULL;
    rc = run(db, "SELECT " COLS " FROM canned_replies WHERE app_id = $1 "
             "AND (owner IS NULL OR owner = $2) ORDER BY owner NULLS "
             "FIRST, folder, sort, id LIMIT " KF_XSTR(CANNED_ROWS_MAX) " * 2",
             2, p, &res, err);
    if (rc < 0)
        return rc;
    a = json_array();
    for (i = 0; a && i < pg_res_rows(res); i++)
        if (json_array_append_new(a, row_json(res, i)) < 0) {
            json_decref(a);
            a = NULL;
        }
    pg_res_free(res);
    if (!a)
        return fail(err, KF_ENOMEM, REFUSAL_COUNT, "out of memory");
    *out = a;
    return 0;
}

static char *dup_c(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);

    if (p)
        memcpy(p, s, n);
    return p;
}

int canned_db_items(struct pg_conn *db, const char *app_id, const char *owner,
                    struct canned_list *l, struct canned_db_err *err)
{
    const char *p[] = { app_id, owner };
    struct pg_res *res = NULL;
    int rc, i, n;

    canned_list_release(l);
    rc = run(db, "SELECT folder, title, body, sort FROM canned_replies "
             "WHERE " ONE_LIST " ORDER BY folder, sort, id LIMIT "
             KF_XSTR(CANNED_ROWS_MAX), 2, p, &res, err);
    if (rc < 0)
        return rc;
    n = pg_res_rows(res);
    l->v = calloc((size_t)n + 1, sizeof(*l->v));
    rc = l->v ? 0 : KF_ENOMEM;
    if (l->v)
        l->cap = (size_t)n + 1;
    for (i = 0; rc == 0 && i < n; i++) {
        struct canned_item *it = &l->v[i];

        l->len++;
        it->folder = dup_c(pg_res_value(res, i, 0));
        it->title = dup_c(pg_res_value(res, i, 1));
        it->text = dup_c(pg_res_value(res, i, 2));
        it->sort = strtol(pg_res_value(res, i, 3), NULL, 10);
        if (!it->folder || !it->title || !it->text)
            rc = KF_ENOMEM;
    }
    pg_res_free(res);
    if (rc < 0) {
        canned_list_release(l);
        return fail(err, rc, REFUSAL_COUNT, "out of memory");
    }
    return 0;
}

/* BEGIN and the list's lock. Inside a transaction of the caller's (an
 * audited write, lib/audit) only the lock: *own = 0, and the caller
 * commits or rolls back. */
static int begin_list(struct pg_conn *db, const char *app_id,
                      const char *owner, int *own, struct canned_db_err *err)
{
    const char *p[] = { app_id, owner };
    int rc;

    *own = !pg_in_transaction(db);
    rc = *own ? run(db, "BEGIN", 0, NULL, NULL, err) : 0;

    if (rc == 0)
        rc = run(db, LOCK_LIST, 2, p, NULL, err);
    return rc;
}

/* COMMIT after rc == 0, else ROLLBACK (own: a transaction begin_list
 * began); returns rc or COMMIT's failure. */
static int end_list(struct pg_conn *db, int own, int rc,
                    struct canned_db_err *err)
{
    struct canned_db_err ignored;

    if (!own)
        return rc;
    if (rc == 0)
        return run(db, "COMMIT", 0, NULL, NULL, err);
    if (pg_in_transaction(db) &&
        run(db, "ROLLBACK", 0, NULL, NULL, &ignored) < 0)
        pg_disconnect(db);
    return rc;
}

static void sort_text(long sort, char out[24])
{
    snprintf(out, 24, "%ld", sort);
}

#define INSERT_ROW "INSERT INTO canned_replies (app_id, scope, owner, " \
    "folder, title, body, sort) VALUES ($1, CASE WHEN $2::text IS NULL " \
    "THEN 'shared' ELSE 'personal' END, $2, $3, $4, $5, $6::integer) "

int canned_db_add(struct pg_conn *db, const char *app_id, const char *owner,
                  const struct canned_item *it, json_t **out,
                  struct canned_db_err *err)
{
    const char *p[] = { app_id, owner };
    char sort[24];
    const char *q[] = { app_id, owner, it->folder, it->title, it->text,
                        sort };
    struct pg_res *res = NULL;
    int rc, own;

    *out = NULL;
    sort_text(it->sort, sort);
    rc = begin_list(db, app_id, owner, &own, err);
    if (rc == 0)
        rc = run(db, "SELECT count(*) >= " KF_XSTR(CANNED_ROWS_MAX)
                 " FROM canned_replies WHERE " ONE_LIST, 2, p, &res, err);
    if (rc == 0 && strcmp(pg_res_value(res, 0, 0), "t") == 0)
        rc = refused(err, REFUSAL_CANNED_FULL);
    pg_res_free(res);
    res = NULL;
    if (rc == 0)
        rc = run(db, INSERT_ROW "RETURNING " COLS, 6, q, &res, err);
    if (rc == 0)
        rc = first_row(res, out, err);
    pg_res_free(res);
    rc = end_list(db, own, rc, err);
    if (rc < 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

/* Why no row id of owner's list was found: CANNED_SHARED when an agent
 * named a shared row, else CANNED_UNKNOWN (or the backend's failure). */
static int not_found(struct pg_conn *db, const char *app_id, const char *id,
                     const char *owner, struct canned_db_err *err)
{
    const char *p[] = { app_id, id };
    struct pg_res *res = NULL;
    int rc = run(db, "SELECT 1 FROM canned_replies WHERE app_id = $1 AND "
                 "id = $2::bigint AND owner IS NULL", 2, p, &res, err);

    if (rc == 0)
        rc = refused(err, owner && pg_res_rows(res) == 1
                              ? REFUSAL_CANNED_SHARED
                              : REFUSAL_CANNED_UNKNOWN);
    pg_res_free(res);
    return rc;
}

int canned_db_update(struct pg_conn *db, const char *app_id, int64_t id,
                     const char *owner, unsigned set,
                     const struct canned_item *it, json_t **out,
                     struct canned_db_err *err)
{
    char ids[24], sort[24];
    const char *p[] = {
        app_id, owner, ids,
        set & CANNED_SET_FOLDER ? it->folder : NULL,
        set & CANNED_SET_TITLE ? it->title : NULL,
        set & CANNED_SET_TEXT ? it->text : NULL,
        set & CANNED_SET_SORT ? sort : NULL,
    };
    struct pg_res *res = NULL;
    int rc;

    *out = NULL;
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    sort_text(it->sort, sort);
    rc = run(db, "UPDATE canned_replies SET folder = coalesce($4, folder), "
             "title = coalesce($5, title), body = coalesce($6, body), "
             "sort = coalesce($7::integer, sort), updated_at = now() WHERE "
             ONE_LIST " AND id = $3::bigint RETURNING " COLS, 7, p, &res,
             err);
    if (rc == 0 && pg_res_rows(res) == 0)
        rc = not_found(db, app_id, ids, owner, err);
    else if (rc == 0)
        rc = first_row(res, out, err);
    pg_res_free(res);
    return rc;
}

int canned_db_remove(struct pg_conn *db, const char *app_id, int64_t id,
                     const char *owner, struct canned_db_err *err)
{
    char ids[24];
    const char *p[] = { app_id, owner, ids };
    struct pg_res *res = NULL;
    int rc;

    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    rc = run(db, "DELETE FROM canned_replies WHERE " ONE_LIST
             " AND id = $3::bigint", 3, p, &res, err);
    if (rc == 0 && pg_res_affected(res) == 0)
        rc = not_found(db, app_id, ids, owner, err);
    pg_res_free(res);
    return rc;
}

int canned_db_import(struct pg_conn *db, const char *app_id,
                     const char *owner, const struct canned_list *l,
                     int replace, struct canned_db_err *err)
{
    const char *p[] = { app_id, owner };
    struct pg_res *res = NULL;
    size_t i;
    int own, rc = begin_list(db, app_id, owner, &own, err);

    if (rc == 0 && replace)
        rc = run(db, "DELETE FROM canned_replies WHERE " ONE_LIST, 2, p,
                 NULL, err);
    if (rc == 0)
        rc = run(db, "SELECT count(*) FROM canned_replies WHERE " ONE_LIST,
                 2, p, &res, err);
    if (rc == 0 && strtol(pg_res_value(res, 0, 0), NULL, 10) +
                           (long)l->len > CANNED_ROWS_MAX)
        rc = refused(err, REFUSAL_CANNED_FULL);
    pg_res_free(res);
    for (i = 0; rc == 0 && i < l->len; i++) {
        char sort[24];
        const char *q[] = { app_id, owner, l->v[i].folder, l->v[i].title,
                            l->v[i].text, sort };

        sort_text(l->v[i].sort, sort);
        rc = run(db, INSERT_ROW, 6, q, NULL, err);
    }
    return end_list(db, own, rc, err);
}
