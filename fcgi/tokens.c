/* tokens: the admin's routes of named API tokens for machine clients —
 * GET /api/v1/tokens (with each one's last use), POST /api/v1/tokens (the
 * secret in the answer, once) and DELETE /api/v1/tokens/{id} (revoked
 * from the next request on). Thin over lib/api_token, on the worker's
 * lazy connection (app->tokens_db); an API token itself never manages
 * tokens (no scope covers these routes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_token.h"
#include "auth.h"
#include "audit.h"
#include "fcgi.h"
#include "pg.h"
#include "refusal.h"

#include "banned.h"

/* A verb's failure: its refusal row, else 503 or 500 (as a label
 * verb's: the same PostgreSQL classes). */
static void failed(struct fcgi_req *r, const char *ev, int rc)
{
    api_label_failed(r, ev, rc, refusal_by_rc(REFUSAL_TOKEN, rc),
                     "name must be 1 to 64 characters on one line and "
                     "scopes a list of read, agents, reports, history");
}

static const char *app_id(struct fcgi_req *r)
{
    return r->app->cfg.wechat.app_id;
}

void api_tokens_list(struct fcgi_req *r)
{
    struct auth who;
    json_t *list = NULL;
    int rc;

    if (api_authenticate(r, &who, 1))
        return;
    rc = api_token_list(r->app->tokens_db, app_id(r), &list);
    if (rc < 0)
        failed(r, "list", rc);
    else
        fcgi_json(r, 200, list);
}

/* POST /api/v1/tokens {name, scopes: [...]}: 201 with the token's row
 * and, this once, its secret. */
void api_tokens_create(struct fcgi_req *r)
{
    const char *name = NULL;
    struct audit au;
    struct auth who;
    json_t *body, *t = NULL;
    unsigned scopes = 0;
    int rc;

    if (api_authenticate(r, &who, 1) || !(body = api_json_body(r)))
        return;
    if (api_str_field(r, body, "name", &name))
        goto out;
    /* checked before the audit record is made of the name */
    rc = !name || api_token_check_name(name) < 0 ||
         api_token_scopes_json_parse(json_object_get(body, "scopes"),
                                     &scopes) < 0
         ? KF_EINVAL : 0;
    if (rc == 0 && api_audit(r, &who, "token.create", name, &au))
        goto out;
    if (rc == 0 && (rc = audit_pg_begin(r->app->tokens_db, NULL)) == 0)
        rc = audit_pg_end(r->app->tokens_db, &au,
                          api_token_add(r->app->tokens_db, app_id(r), name,
                                        scopes, who.login[0] ? who.login
                                                             : "admin", &t),
                          NULL);
    if (rc < 0) {
        failed(r, "create", rc);
        goto out;
    }
    log_info(&r->log, "tokens", "create", "id=%lld by=%s",
             (long long)json_integer_value(json_object_get(t, "id")),
             who.login[0] ? who.login : "admin");
    fcgi_json_with(r, 201, t, "Cache-Control: no-store\r\n");
out:
    json_decref(body);
}

/* DELETE /api/v1/tokens/{id}: revoked (again: no change); the row. */
void api_token_delete(struct fcgi_req *r)
{
    struct audit au;
    struct auth who;
    json_t *t = NULL;
    char target[24];
    long long id = 0;
    size_t i;
    int rc;

    if (api_authenticate(r, &who, 1))
        return;
    for (i = 0; i < r->param.len && i < 18; i++) {
        if (r->param.p[i] < '0' || r->param.p[i] > '9')
            break;
        id = id * 10 + (r->param.p[i] - '0');
    }
    rc = i == r->param.len && i > 0 && i <= 18 ? 0 : KF_ENOTFOUND;
    snprintf(target, sizeof(target), "%lld", id);
    if (rc == 0 && api_audit(r, &who, "token.revoke", target, &au))
        return;
    if (rc == 0 && (rc = audit_pg_begin(r->app->tokens_db, NULL)) == 0)
        rc = audit_pg_end(r->app->tokens_db, &au,
                          api_token_revoke(r->app->tokens_db, app_id(r), id,
                                           &t), NULL);
    if (rc < 0) {
        failed(r, "revoke", rc);
        return;
    }
    log_info(&r->log, "tokens", "revoke", "id=%lld by=%s", id,
             who.login[0] ? who.login : "admin");
    fcgi_json(r, 200, t);
}
