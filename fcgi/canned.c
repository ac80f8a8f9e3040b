/* canned: the canned-reply routes (GET/POST /api/v1/canned, PATCH/DELETE
 * /api/v1/canned/{id}, GET /api/v1/canned/export, POST
 * /api/v1/canned/import). Thin: authenticate (an admin works on the
 * account's shared list, an agent on its own list and reads the shared
 * one), check the fields with lib/canned, call lib/canned_db, answer
 * from lib/refusal's rows. */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "auth.h"
#include "canned.h"
#include "canned_db.h"
#include "fcgi.h"
#include "refusal.h"
#include "route.h"

#include "banned.h"

/* The list the caller writes: NULL (shared) for an admin, else its own. */
static const char *owner_of(const struct auth *who)
{
    return who->role == AUTH_AGENT ? who->account : NULL;
}

static const char *app_id(struct fcgi_req *r)
{
    return r->app->cfg.wechat.app_id;
}

/* Answers a canned_db failure: its refusal, else 503; logs it. */
static void db_failed(struct fcgi_req *r, const char *ev, int rc,
                      const struct canned_db_err *err)
{
    if (err->why)
        api_refused(r, err->why, err->msg);
    else if (rc == KF_EBACKEND)
        fcgi_error(r, 503, "backend_unavailable", "postgresql is "
                   "unreachable", NULL);
    else
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
    log_warn(&r->log, "canned", ev, "status=%d err=%s detail=%s", r->status,
             kf_strerror(rc), err->msg[0] ? err->msg : "-");
}

static int open_db(struct fcgi_req *r, struct pg_conn **db)
{
    struct canned_db_err err = { NULL, "" };
    int rc = canned_db_open(r->app->cfg.postgres.dsn, db, &err);

    if (rc < 0)
        db_failed(r, "db_unreachable", rc, &err);
    return rc;
}

static void invalid(struct fcgi_req *r, const char *msg)
{
    api_refused(r, refusal_get(REFUSAL_INVALID_FIELD), msg);
}

/* One string field checked by check into *out (unchanged when absent);
 * answers 400 when it is wrong. *set gets bit when present. */
static int str_field(struct fcgi_req *r, json_t *body, const char *name,
                     int (*check)(struct kf_str, struct canned_err *),
                     char **out, unsigned bit, unsigned *set)
{
    struct canned_err e = { "" };
    const char *v;

    if (api_str_field(r, body, name, &v))
        return 1;
    if (!v)
        return 0;
    if (check(kf_str_c(v), &e) < 0) {
        invalid(r, e.msg);
        return 1;
    }
    *out = (char *)v;
    *set |= bit;
    return 0;
}

/* The fields of a body (folder, title, text, sort) into *it (borrowed
 * from body); *set says which were there. Answers 400 when one is wrong
 * or, need_all, title or text is missing. */
static int read_item(struct fcgi_req *r, json_t *body, const struct auth *who,
                     struct canned_item *it, unsigned *set, int need_all)
{
    struct canned_err e = { "" };
    json_t *sort = json_object_get(body, "sort");
    const char *scope;

    *set = 0;
    if (api_str_field(r, body, "scope", &scope))
        return 1;
    if (scope && strcmp(scope, who->role == AUTH_AGENT ? "personal"
                                                       : "shared") != 0) {
        if (who->role == AUTH_AGENT && strcmp(scope, "shared") == 0)
            api_refused(r, refusal_get(REFUSAL_CANNED_SHARED), NULL);
        else
            invalid(r, who->role == AUTH_AGENT
                           ? "scope must be personal"
                           : "scope must be shared (admins manage the "
                             "shared list)");
        return 1;
    }
    if (str_field(r, body, "folder", canned_check_folder, &it->folder,
                  CANNED_SET_FOLDER, set) ||
        str_field(r, body, "title", canned_check_title, &it->title,
                  CANNED_SET_TITLE, set) ||
        str_field(r, body, "text", canned_check_text, &it->text,
                  CANNED_SET_TEXT, set))
        return 1;
    if (sort) {
        if (!json_is_integer(sort) ||
            canned_check_sort(json_integer_value(sort), &e) < 0) {
            invalid(r, "sort must be an integer 0.."
                    KF_XSTR(CANNED_SORT_MAX));
            return 1;
        }
        it->sort = (long)json_integer_value(sort);
        *set |= CANNED_SET_SORT;
    }
    if (need_all && !(*set & CANNED_SET_TITLE)) {
        invalid(r, "title is required");
        return 1;
    }
    if (need_all && !(*set & CANNED_SET_TEXT)) {
        invalid(r, "text is required");
        return 1;
    }
    if (!need_all && *set == 0) {
        invalid(r, "nothing to change: send folder, title, text or sort");
        return 1;
    }
    return 0;
}

/* The {id} of the path: 1..2^53 (what JSON numbers carry exactly). */
static int path_id(struct fcgi_req *r, int64_t *id)
{
    uint64_t n;

    if (kf_parse_u64(r->param, &n) == 0 && n >= 1 &&
        n <= ((uint64_t)1 << 53)) {
        *id = (int64_t)n;
        return 0;
    }
    api_refused(r, refusal_get(REFUSAL_CANNED_UNKNOWN), NULL);
    return 1;
}

/* Adds "rendered" to each reply: its text with the variables filled for
 * the user openid and the calling agent. */
static int render_all(struct fcgi_req *r, const struct auth *who,
                      struct kf_str openid, json_t *list)
{
    char nickname[4 * CANNED_NAME_MAX + 1];
    struct canned_vars v = { nickname, NULL, r->app->cfg.wechat.account_name };
    json_t *me = NULL, *it;
    struct kf_buf out;
    size_t i;
    int rc = 0;

    /* Where a display name source (the user's profile) plugs in: its
     * name instead of NULL. */
    canned_nickname(NULL, openid, nickname, sizeof(nickname));
    if (who->role == AUTH_AGENT &&
        route_agent_info(&r->app->route, who->account, &me) == 0)
        v.agent = json_string_value(json_object_get(me, "nick"));
    kf_buf_init(&out, CANNED_RENDER_MAX);
    json_array_foreach(list, i, it) {
        const char *text = json_string_value(json_object_get(it, "text"));

        kf_buf_reset(&out);
        rc = canned_render(kf_str_c(text), &v, &out);
        if (rc == 0)
            rc = json_object_set_new(it, "rendered",
                                     json_stringn(kf_buf_str(&out).p,
                                                  out.len)) < 0
                     ? KF_ENOMEM : 0;
        if (rc < 0)
            break;
    }
    kf_buf_release(&out);
    json_decref(me);
    return rc;
}

static int openid_ok(struct kf_str s)
{
    size_t i;

    for (i = 0; i < s.len; i++) {
        char c = s.p[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return s.len >= 1 && s.len <= 64;
}

void api_canned_list(struct fcgi_req *r)
{
    struct canned_db_err err = { NULL, "" };
    struct pg_conn *db = NULL;
    struct kf_str openid;
    struct auth who;
    json_t *list = NULL;
    int rc, render = 0;

    if (api_authenticate(r, &who, 0))
        return;
    if (http_query_get(&r->query, "openid", &openid)) {
        if (!openid_ok(openid)) {
            invalid(r, "openid must be 1..64 of [A-Za-z0-9_-]");
            return;
        }
        if (api_may_read_user(r, &who, openid))
            return;
        render = 1;
    }
    if (open_db(r, &db) < 0)
        return;
    rc = canned_db_list(db, app_id(r), owner_of(&who), &list, &err);
    pg_close(db);
    if (rc == 0 && render && render_all(r, &who, openid, list) < 0) {
        json_decref(list);
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
        return;
    }
    if (rc < 0) {
        db_failed(r, "list_failed", rc, &err);
        return;
    }
    fcgi_json(r, 200, json_pack("{s:o}", "replies", list));
}

void api_canned_create(struct fcgi_req *r)
{
    struct canned_db_err err = { NULL, "" };
    struct canned_item it = { "", NULL, NULL, 0 };
    struct pg_conn *db = NULL;
    struct auth who;
    struct audit au;
    json_t *body = NULL, *row = NULL;
    unsigned set;
    int rc;

    if (api_authenticate(r, &who, 0) || !(body = api_json_body(r)))
        return;
    if (read_item(r, body, &who, &it, &set, 1) ||
        api_audit(r, &who, "canned.create", it.title, &au) ||
        open_db(r, &db) < 0) {
        json_decref(body);
        return;
    }
    if ((rc = audit_pg_begin(db, NULL)) == 0)
        rc = audit_pg_end(db, &au, canned_db_add(db, app_id(r),
                          owner_of(&who), &it, &row, &err), NULL);
    pg_close(db);
    json_decref(body);
    if (rc < 0) {
        db_failed(r, "add_failed", rc, &err);
        return;
    }
    fcgi_json(r, 201, row);
    log_info(&r->log, "canned", "added", "status=201 by=%s",
             who.role == AUTH_AGENT ? who.account : "admin");
}

void api_canned_patch(struct fcgi_req *r)
{
    struct canned_db_err err = { NULL, "" };
    struct canned_item it = { NULL, NULL, NULL, 0 };
    struct pg_conn *db = NULL;
    struct auth who;
    struct audit au;
    json_t *body = NULL, *row = NULL;
    unsigned set;
    int64_t id;
    int rc;

    if (api_authenticate(r, &who, 0) || path_id(r, &id) ||
        !(body = api_json_body(r)))
        return;
    if (read_item(r, body, &who, &it, &set, 0) ||
        api_audit(r, &who, "canned.update", NULL, &au) ||
        audit_target_id(&au, id) < 0 || open_db(r, &db) < 0) {
        json_decref(body);
        return;
    }
    if ((rc = audit_pg_begin(db, NULL)) == 0)
        rc = audit_pg_end(db, &au, canned_db_update(db, app_id(r), id,
                          owner_of(&who), set, &it, &row, &err), NULL);
    pg_close(db);
    json_decref(body);
    if (rc < 0) {
        db_failed(r, "update_failed", rc, &err);
        return;
    }
    fcgi_json(r, 200, row);
}

void api_canned_delete(struct fcgi_req *r)
{
    struct canned_db_err err = { NULL, "" };
    struct pg_conn *db = NULL;
    struct auth who;
    struct audit au;
    int64_t id;
    int rc;

    if (api_authenticate(r, &who, 0) || path_id(r, &id) ||
        api_audit(r, &who, "canned.delete", NULL, &au) ||
        audit_target_id(&au, id) < 0 || open_db(r, &db) < 0)
        return;
    if ((rc = audit_pg_begin(db, NULL)) == 0)
        rc = audit_pg_end(db, &au, canned_db_remove(db, app_id(r), id,
                          owner_of(&who), &err), NULL);
    pg_close(db);
    if (rc < 0) {
        db_failed(r, "remove_failed", rc, &err);
        return;
    }
    fcgi_respond(r, 204, "text/plain; charset=utf-8", NULL, KF_STR(""));
}

/* ?scope=shared|personal: the list an export reads (*owner), by default
 * the one the caller writes. An admin has no personal list. */
static int export_scope(struct fcgi_req *r, const struct auth *who,
                        const char **owner)
{
    struct kf_str s;

    *owner = owner_of(who);
    if (!http_query_get(&r->query, "scope", &s))
        return 0;
    if (kf_str_eq_c(s, "shared")) {
        *owner = NULL;
        return 0;
    }
    if (kf_str_eq_c(s, "personal") && who->role == AUTH_AGENT)
        return 0;
    invalid(r, who->role == AUTH_AGENT ? "scope must be shared or personal"
                                       : "scope must be shared");
    return 1;
}

void api_canned_export(struct fcgi_req *r)
{
    struct canned_db_err err = { NULL, "" };
    struct canned_list l;
    struct pg_conn *db = NULL;
    struct kf_buf csv;
    struct auth who;
    const char *owner;
    int rc;

    if (api_authenticate(r, &who, 0) || export_scope(r, &who, &owner) ||
        open_db(r, &db) < 0)
        return;
    canned_list_init(&l);
    kf_buf_init(&csv, (size_t)CANNED_CSV_MAX * 4);
    rc = canned_db_items(db, app_id(r), owner, &l, &err);
    pg_close(db);
    if (rc == 0)
        rc = canned_csv_encode(l.v, l.len, &csv);
    if (rc == 0)
        fcgi_respond(r, 200, "text/csv; charset=utf-8",
                     owner ? "Content-Disposition: attachment; "
                             "filename=\"canned-personal.csv\"\r\n"
                           : "Content-Disposition: attachment; "
                             "filename=\"canned-shared.csv\"\r\n",
                     kf_buf_str(&csv));
    else if (err.why || rc == KF_EBACKEND)
        db_failed(r, "export_failed", rc, &err);
    else
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
    kf_buf_release(&csv);
    canned_list_release(&l);
}

/* 400 invalid_csv with what is wrong as a whole and the bad rows. */
static void csv_refused(struct fcgi_req *r, const struct canned_err *e,
                        const struct canned_csv_errors *errs)
{
    const struct refusal *why = refusal_get(REFUSAL_CANNED_BAD_CSV);
    json_t *rows = json_array();
    size_t i;

    for (i = 0; rows && i < errs->n; i++)
        json_array_append_new(rows, json_pack("{s:I,s:s}", "row",
                                              (json_int_t)errs->v[i].row,
                                              "message", errs->v[i].msg));
    fcgi_json(r, why->status,
              json_pack("{s:{s:s,s:s,s:s,s:o,s:I}}", "error", "code",
                        why->code, "message", why->message, "detail",
                        e->msg, "rows", rows, "more_rows",
                        (json_int_t)errs->more));
}

void api_canned_import(struct fcgi_req *r)
{
    struct canned_csv_errors errs;
    struct canned_db_err err = { NULL, "" };
    struct canned_err e = { "" };
    struct canned_list l;
    struct pg_conn *db = NULL;
    struct kf_str replace;
    struct auth who;
    struct audit au;
    int rc;

    if (api_authenticate(r, &who, 0))
        return;
    rc = fcgi_read_body(r, CANNED_CSV_MAX);
    if (rc == KF_ETOOBIG) {
        fcgi_error(r, 413, "body_too_large", "a CSV import is limited to "
                   KF_XSTR(CANNED_CSV_MAX) " bytes", NULL);
        return;
    }
    if (rc < 0) {
        fcgi_error(r, 400, "bad_body", "could not read the body", NULL);
        return;
    }
    canned_list_init(&l);
    rc = canned_csv_decode(kf_buf_str(&r->body), &l, &e, &errs);
    if (rc == KF_EPARSE || rc == KF_ETOOBIG) {
        csv_refused(r, &e, &errs);
        log_info(&r->log, "canned", "import_refused", "status=%d rows=%zu "
                 "detail=%s", r->status, errs.n + errs.more, e.msg);
        return;
    }
    if (rc < 0) {
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
        return;
    }
    if (api_audit(r, &who, "canned.import", NULL, &au) == 0 &&
        open_db(r, &db) == 0) {
        int repl = http_query_get(&r->query, "replace", &replace) &&
                   kf_str_eq_c(replace, "1");

        if ((rc = audit_pg_begin(db, NULL)) == 0)
            rc = audit_pg_end(db, &au, canned_db_import(db, app_id(r),
                              owner_of(&who), &l, repl, &err), NULL);
        pg_close(db);
        if (rc < 0)
            db_failed(r, "import_failed", rc, &err);
        else
            fcgi_json(r, 200, json_pack("{s:I,s:b}", "imported",
                                        (json_int_t)l.len, "replaced",
                                        repl));
        log_info(&r->log, "canned", "imported", "status=%d rows=%zu by=%s",
                 r->status, l.len,
                 who.role == AUTH_AGENT ? who.account : "admin");
    }
    canned_list_release(&l);
}
