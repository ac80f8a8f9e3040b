/* profile: the REST routes of who a user is (/api/v1/users/{openid}/
 * profile and .../notes). Thin: authenticate, check that the caller may
 * see the user (admins: everyone; an agent: a user it serves or served),
 * read a bounded JSON body, call lib/user_profile, map the outcome. */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "auth.h"
#include "fcgi.h"
#include "metrics.h"
#include "user_profile.h"
#include "user_tags.h"
#include "refusal.h"

#include "banned.h"

static const char *actor(const struct auth *who)
{
    return who->role == AUTH_ADMIN ? "admin" : who->account;
}

/* The request's audit record: lib/user_profile's statements name the
 * action and the target (the user) themselves. */
static int audit_of(struct fcgi_req *r, const struct auth *who,
                    const char *action, struct audit *au)
{
    char o[65];

    snprintf(o, sizeof(o), "%.*s", (int)(r->param.len < 64 ? r->param.len
                                                           : 64), r->param.p);
    return api_audit(r, who, action, o, au);
}

/* Answers a lib/user_profile failure (not a refusal) and logs it. */
static void failed(struct fcgi_req *r, const char *ev, int rc,
                   const char *einval)
{
    if (rc == KF_EBACKEND) {
        metrics_inc(r->app->metrics, METRICS_POSTGRES_ERRORS,
                    "process=\"fcgi\"", 1);
        fcgi_error(r, 503, "backend_unavailable",
                   "postgresql is unreachable", NULL);
    } else if (rc == KF_EINVAL) {
        fcgi_error(r, 400, "invalid_field", einval, NULL);
    } else if (rc == KF_ENOTFOUND) {
        fcgi_error(r, 404, "no_note", "this user has no such note", NULL);
    } else {
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
    }
    log_warn(&r->log, "api", ev, "status=%d err=%s", r->status,
             kf_strerror(rc));
}

/* Authenticates and checks the caller may see r->param's profile: an
 * admin always, an agent when it serves the user now or served it
 * before. Answers and returns nonzero when not. */
static int may_see(struct fcgi_req *r, struct auth *who)
{
    json_t *s = NULL;
    const char *state, *agent;
    int rc, yes = 0;

    if (api_authenticate(r, who, 0))
        return 1;
    if (!kf_openid_ok(r->param)) {
        fcgi_error(r, 400, "invalid_field", "invalid openid", NULL);
        return 1;
    }
    if (who->role == AUTH_ADMIN)
        return 0;
    rc = route_session_view(&r->app->route, r->param, &s);
    if (rc == KF_EBACKEND) {
        api_backend_down(r);
        return 1;
    }
    state = json_string_value(json_object_get(s, "state"));
    agent = json_string_value(json_object_get(s, "agent"));
    yes = rc == 0 && state && agent && strcmp(state, "active") == 0 &&
          strcmp(agent, who->account) == 0;
    json_decref(s);
    if (!yes) {
        rc = user_profile_served(&r->app->profile, r->param, who->account,
                                 &yes);
        if (rc < 0) {
            failed(r, "profile_denied", rc, "invalid openid");
            return 1;
        }
    }
    if (!yes) {
        api_refused(r, refusal_get(REFUSAL_NOT_SERVED), NULL);
        log_info(&r->log, "api", "denied", "status=403 agent=%s",
                 who->account);
    }
    return !yes;
}

/* The profile page of r->param with "tags": the user's tags by name
 * (lib/user_tags); without it (the console shows the ids) when Redis
 * fails. */
static int page_of(struct fcgi_req *r, json_t **page)
{
    struct store_script sc;
    json_t *tags = NULL;
    int rc = user_profile_page(&r->app->profile, r->param, page);

    if (rc < 0)
        return rc;
    user_tags_script_init(&sc);
    rc = user_tags_name(&r->app->store, &sc, json_object_get(json_object_get(
                            *page, "info"), "tagid_list"), &tags, NULL);
    if (rc == 0 && json_object_set_new(*page, "tags", tags) < 0)
        rc = KF_ENOMEM;
    if (rc < 0)
        log_warn(&r->log, "api", "profile_tags", "err=%s", kf_strerror(rc));
    return 0;
}

/* GET /api/v1/users/{openid}/profile */
void api_profile_get(struct fcgi_req *r)
{
    struct auth who;
    json_t *page = NULL;
    int rc;

    if (may_see(r, &who))
        return;
    rc = page_of(r, &page);
    if (rc < 0) {
        failed(r, "profile", rc, "invalid openid");
        return;
    }
    fcgi_json(r, 200, page);
    log_info(&r->log, "api", "profile", "status=200 by=%s", actor(&who));
}

/* PATCH /api/v1/users/{openid}/profile {"display_name"?, "remark"?}:
 * the remark is pushed to WeChat first; a refusal there changes
 * nothing. */
void api_profile_patch(struct fcgi_req *r)
{
    struct wx_api_result res;
    struct auth who;
    struct audit au;
    const char *name, *remark;
    json_t *body, *page = NULL;
    int rc = 0;

    if (may_see(r, &who))
        return;
    body = api_json_body(r);
    if (!body)
        return;
    if (api_str_field(r, body, "display_name", &name) ||
        api_str_field(r, body, "remark", &remark)) {
        json_decref(body);
        return;
    }
    if ((name && user_profile_text_ok(name, 0, PROFILE_NAME_MAX) < 0) ||
        (remark && user_profile_text_ok(remark, 0, PROFILE_REMARK_MAX) < 0)) {
        fcgi_error(r, 400, "invalid_field", name &&
                   user_profile_text_ok(name, 0, PROFILE_NAME_MAX) < 0
                   ? "display_name must be 0..64 characters of text"
                   : "remark must be 0..30 characters of text", NULL);
        json_decref(body);
        return;
    }
    if (audit_of(r, &who, "user.profile", &au)) {
        json_decref(body);
        return;
    }
    wx_api_result_init(&res);
    user_profile_audit(&r->app->profile, &au);
    if (remark)
        rc = user_profile_set_remark(&r->app->profile, r->app->api, r->param,
                                remark, actor(&who), &res);
    if (rc == 0 && name)
        rc = user_profile_set_name(&r->app->profile, r->param, name,
                                   actor(&who));
    user_profile_audit(&r->app->profile, NULL);
    if (rc == 0)
        rc = page_of(r, &page);
    /* WeChat's own errcode (45009 included, though transient) is shown
     * to the agent as WeChat's answer; no answer at all is "unreachable" */
    if (rc < 0 && res.errcode != 0) {
        fcgi_json(r, 502, json_pack("{s:{s:s,s:s,s:I}}", "error", "code",
                                    "wechat_refused", "message", res.errmsg,
                                    "errcode", (json_int_t)res.errcode));
        log_warn(&r->log, "api", "profile_patch", "status=502 errcode=%ld",
                 res.errcode);
    } else if (rc == KF_ELIMIT || (rc == KF_EBACKEND && res.attempts)) {
        fcgi_error(r, 502, "wechat_unreachable", "WeChat could not be "
                   "reached; try again", NULL);
        log_warn(&r->log, "api", "profile_patch", "status=502 err=%s",
                 kf_strerror(rc));
    } else if (rc < 0) {
        failed(r, "profile_patch", rc, "invalid field");
    } else {
        fcgi_json(r, 200, page);
        log_info(&r->log, "api", "profile_patch", "status=200 by=%s "
                 "name=%d remark=%d", actor(&who), name != NULL,
                 remark != NULL);
    }
    wx_api_result_release(&res);
    json_decref(body);
}

/* The note's body from the request (answers 400 when missing or bad). */
static json_t *note_body(struct fcgi_req *r, const char **text)
{
    json_t *body = api_json_body(r);

    if (!body)
        return NULL;
    if (api_str_field(r, body, "body", text)) {
        json_decref(body);
        return NULL;
    }
    if (!*text || user_profile_text_ok(*text, 1, PROFILE_NOTE_MAX) < 0) {
        fcgi_error(r, 400, "invalid_field",
                   "body must be 1..2000 characters of text", NULL);
        json_decref(body);
        return NULL;
    }
    return body;
}

/* ?id=N of a note; answers 400 when absent or bad. */
static int note_id(struct fcgi_req *r, int64_t *id)
{
    struct kf_str v;
    uint64_t n;

    if (http_query_get(&r->query, "id", &v) && kf_parse_u64(v, &n) == 0 &&
        n >= 1 && n <= INT64_MAX) {
        *id = (int64_t)n;
        return 0;
    }
    fcgi_error(r, 400, "invalid_field", "id must be a note id", NULL);
    return 1;
}

/* POST /api/v1/users/{openid}/notes {"body"} */
void api_note_add(struct fcgi_req *r)
{
    struct auth who;
    struct audit au;
    const char *text;
    json_t *body, *note = NULL;
    int rc;

    if (may_see(r, &who) || !(body = note_body(r, &text)))
        return;
    if (audit_of(r, &who, "user_note.add", &au)) {
        json_decref(body);
        return;
    }
    user_profile_audit(&r->app->profile, &au);
    rc = user_profile_note_add(&r->app->profile, r->param, actor(&who), text,
                          &note);
    user_profile_audit(&r->app->profile, NULL);
    if (rc < 0)
        failed(r, "note_add", rc, "invalid note");
    else {
        fcgi_json(r, 201, note);
        log_info(&r->log, "api", "note_add", "status=201 by=%s",
                 actor(&who));
    }
    json_decref(body);
}

/* PATCH /api/v1/users/{openid}/notes?id=N {"body"}, DELETE ...?id=N:
 * the author or an admin. */
static void note_change(struct fcgi_req *r, int del)
{
    const struct refusal *why = NULL;
    struct auth who;
    struct audit au;
    const char *text = NULL;
    json_t *body = NULL, *note = NULL;
    int64_t id;
    int rc;

    if (may_see(r, &who) || note_id(r, &id) ||
        (!del && !(body = note_body(r, &text))))
        return;
    if (audit_of(r, &who, del ? "user_note.delete" : "user_note.edit",
                 &au)) {
        json_decref(body);
        return;
    }
    user_profile_audit(&r->app->profile, &au);
    if (del)
        rc = user_profile_note_delete(&r->app->profile, r->param, id,
                                      actor(&who), who.role == AUTH_ADMIN,
                                      &why);
    else
        rc =
            user_profile_note_edit(&r->app->profile, r->param, id, actor(&who),
                                   who.role == AUTH_ADMIN, text, &note, &why);
    user_profile_audit(&r->app->profile, NULL);
    if (rc < 0 && why) {
        api_refused(r, why, NULL);
        log_info(&r->log, "api", del ? "note_delete" : "note_edit",
                 "status=%d by=%s", r->status, actor(&who));
    } else if (rc < 0) {
        failed(r, del ? "note_delete" : "note_edit", rc, "invalid note");
    } else {
        if (del)
            fcgi_json(r, 200, json_pack("{s:I,s:b}", "id", (json_int_t)id,
                                        "deleted", 1));
        else
            fcgi_json(r, 200, note);
        log_info(&r->log, "api", del ? "note_delete" : "note_edit",
                 "status=%d by=%s id=%lld", r->status, actor(&who),
                 (long long)id);
    }
    json_decref(body);
}

void api_note_edit(struct fcgi_req *r)
{
    note_change(r, 0);
}

void api_note_delete(struct fcgi_req *r)
{
    note_change(r, 1);
}
