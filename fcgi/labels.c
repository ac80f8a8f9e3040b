/* labels: the routes of the account's wrap-up labels — GET /api/v1/labels
 * (agents and admins: agents pick from it when they close a session),
 * POST /api/v1/labels, PATCH and DELETE /api/v1/labels/{id} (admins).
 * Thin: authenticate, check the body field by field, call lib/label on a
 * connection of the request, answer from its refusal row. */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "auth.h"
#include "fcgi.h"
#include "label.h"
#include "pg.h"
#include "refusal.h"

#include "banned.h"

void api_label_failed(struct fcgi_req *r, const char *ev, int rc,
                      const struct refusal *why, const char *detail)
{
    if (why)
        api_refused(r, why, detail);
    else if (rc == KF_EBACKEND)
        fcgi_error(r, 503, "backend_unavailable",
                   "postgresql is unreachable", NULL);
    else
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
    log_warn(&r->log, "api", ev, "status=%d err=%s", r->status,
             kf_strerror(rc));
}

static int open_db(struct fcgi_req *r, struct pg_conn **db)
{
    int rc = label_open(r->app->cfg.postgres.dsn, db);

    if (rc < 0)
        api_label_failed(r, "label_db", rc, NULL, NULL);
    return rc;
}

/* {id}: 1..2^53 in decimal; anything else is no label (404). */
static int id_param(struct fcgi_req *r, int64_t *id)
{
    uint64_t v;

    if (kf_parse_u64(r->param, &v) == 0 && v >= 1 &&
        v <= ((uint64_t)1 << 53)) {
        *id = (int64_t)v;
        return 0;
    }
    api_refused(r, refusal_get(REFUSAL_NO_LABEL), NULL);
    return -1;
}

/* The body of an admin's write and its name and color (each NULL when
 * absent); answers (401/403, 400 when one is there and not a label's)
 * and returns NULL when it cannot go on. */
static json_t *label_body(struct fcgi_req *r, struct auth *who,
                          const char **name, const char **color)
{
    const char *why = NULL;
    json_t *body;
    char c[8];

    if (api_authenticate(r, who, 1) || !(body = api_json_body(r)))
        return NULL;
    if (api_str_field(r, body, "name", name) ||
        api_str_field(r, body, "color", color)) {
        why = "";
    } else if (*name && label_check_name(*name, &why) < 0) {
        fcgi_error(r, 400, "invalid_field", why, NULL);
    } else if (*color && label_check_color(*color, c) < 0) {
        why = "color must be # and 6 hex digits";
        fcgi_error(r, 400, "invalid_field", why, NULL);
    }
    if (why) {
        json_decref(body);
        return NULL;
    }
    return body;
}

/* GET /api/v1/labels */
void api_labels_list(struct fcgi_req *r)
{
    struct pg_conn *db = NULL;
    struct auth who;
    json_t *out = NULL;
    int rc;

    if (api_authenticate(r, &who, 0) || open_db(r, &db) < 0)
        return;
    rc = label_list(db, r->app->cfg.wechat.app_id, &out);
    pg_close(db);
    if (rc < 0)
        api_label_failed(r, "label_list", rc, NULL, NULL);
    else
        fcgi_json(r, 200, out);
}

/* POST /api/v1/labels {"name","color"} */
void api_labels_create(struct fcgi_req *r)
{
    const struct refusal *why = NULL;
    const char *name, *color;
    struct pg_conn *db = NULL;
    json_t *body, *out = NULL;
    struct auth who;
    struct audit au;
    int rc;

    if (!(body = label_body(r, &who, &name, &color)))
        return;
    if (!name || !color) {
        fcgi_error(r, 400, "invalid_field", "fields name and color are "
                   "required", NULL);
    } else if (api_audit(r, &who, "label.create", name, &au) == 0 &&
               open_db(r, &db) == 0) {
        if ((rc = audit_pg_begin(db, NULL)) == 0)
            rc = audit_pg_end(db, &au, label_create(db,
                              r->app->cfg.wechat.app_id, name, color, &out,
                              &why), NULL);
        pg_close(db);
        if (rc < 0) {
            api_label_failed(r, "label_create", rc, why, NULL);
        } else {
            log_info(&r->log, "api", "label_create", "id=%lld",
                     (long long)json_integer_value(json_object_get(out,
                                                                   "id")));
            fcgi_json(r, 201, out);
        }
    }
    json_decref(body);
}

/* PATCH /api/v1/labels/{id} {"name"?, "color"?} */
void api_label_patch(struct fcgi_req *r)
{
    const struct refusal *why = NULL;
    const char *name, *color;
    struct pg_conn *db = NULL;
    json_t *body, *out = NULL;
    struct auth who;
    struct audit au;
    int64_t id;
    int rc;

    if (!(body = label_body(r, &who, &name, &color)))
        return;
    if (id_param(r, &id) < 0 ||
        api_audit(r, &who, "label.update", NULL, &au)) {
        json_decref(body);
        return;
    }
    if (!name && !color) {
        fcgi_error(r, 400, "invalid_field", "nothing to change: name or "
                   "color", NULL);
    } else if (audit_target_id(&au, id) == 0 && open_db(r, &db) == 0) {
        if ((rc = audit_pg_begin(db, NULL)) == 0)
            rc = audit_pg_end(db, &au, label_update(db,
                              r->app->cfg.wechat.app_id, id, name, color,
                              &out, &why), NULL);
        pg_close(db);
        if (rc < 0) {
            api_label_failed(r, "label_update", rc, why, NULL);
        } else {
            log_info(&r->log, "api", "label_update", "id=%lld",
                     (long long)id);
            fcgi_json(r, 200, out);
        }
    }
    json_decref(body);
}

/* DELETE /api/v1/labels/{id}: sessions keep the name they were closed
 * with. */
void api_label_delete(struct fcgi_req *r)
{
    const struct refusal *why = NULL;
    struct pg_conn *db = NULL;
    struct auth who;
    struct audit au;
    int64_t id;
    int rc;

    if (api_authenticate(r, &who, 1) || id_param(r, &id) < 0 ||
        api_audit(r, &who, "label.delete", NULL, &au) ||
        audit_target_id(&au, id) < 0 || open_db(r, &db) < 0)
        return;
    if ((rc = audit_pg_begin(db, NULL)) == 0)
        rc = audit_pg_end(db, &au, label_delete(db, r->app->cfg.wechat.app_id,
                                                id, &why), NULL);
    pg_close(db);
    if (rc < 0) {
        api_label_failed(r, "label_delete", rc, why, NULL);
        return;
    }
    log_info(&r->log, "api", "label_delete", "id=%lld", (long long)id);
    fcgi_json(r, 200, json_pack("{s:I,s:b}", "id", (json_int_t)id,
                                "removed", 1));
}
