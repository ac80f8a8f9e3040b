/* audit: the one place that builds the audit record (lib/audit) of a
 * request — who from struct auth (a staff login with its role, else an
 * agent account as 'agent' or 'admin' for the bootstrap token; nobody:
 * 'anonymous' as 'none'), from where (REMOTE_ADDR, which nginx passes),
 * under which request (REQUEST_ID) and for the account of this worker
 * ([wechat] app_id) — and the audited writes of the handlers:
 * api_audit_pg_* around a lib verb's PostgreSQL statements, the arming of
 * the store around a lib verb's Lua script. */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "auth.h"
#include "fcgi.h"

#include "banned.h"

int api_audit(struct fcgi_req *r, const struct auth *who, const char *action,
              const char *target, struct audit *out)
{
    char ip[AUDIT_IP_MAX + 1], rid[AUDIT_RID_MAX + 1];
    struct kf_str addr = fcgi_param(r, "REMOTE_ADDR");
    const char *actor = "anonymous", *role = "none";
    int rc;

    if (who && who->login[0]) {
        actor = who->login;
        role = who->staff_role;
    } else if (who && who->role == AUTH_AGENT) {
        actor = who->account;
        role = "agent";
    } else if (who && who->role == AUTH_ADMIN) {
        actor = "admin";
        role = "admin";
    }
    /* over-long or odd request facts are kept as unknown, never refused */
    snprintf(ip, sizeof(ip), "%.*s", addr.len < sizeof(ip) ? (int)addr.len
             : 0, addr.p ? addr.p : "");
    snprintf(rid, sizeof(rid), "%.*s", r->rid.len < sizeof(rid)
             ? (int)r->rid.len : 0, r->rid.p ? r->rid.p : "");
    rc = audit_init(out, r->app->cfg.wechat.app_id, actor, role, ip, rid);
    if (rc < 0)
        rc = audit_init(out, r->app->cfg.wechat.app_id, actor, role, "",
                        "");
    if (rc == 0)
        rc = audit_set(out, action, target, NULL);
    if (rc < 0) {
        fcgi_error(r, 500, "internal_error", "internal error", NULL);
        log_warn(&r->log, "api", "audit_record", "action=%s err=%s", action,
                 kf_strerror(rc));
    }
    return rc;
}

int cli_audit(const struct config *cfg, const char *action,
              const char *target, struct audit *out)
{
    int rc = audit_init(out, cfg->wechat.app_id, "cli", "cli", NULL, NULL);

    return rc < 0 ? rc : audit_set(out, action, target, NULL);
}

/* The state-changing routes that write no audit row, and why: the one
 * list (docs/security.md repeats it; test_audit.py reads it through
 * `wxkf routes`). Every other POST, PATCH and DELETE writes one. */
static const struct {
    const char *method, *path, *why;
} exempt[] = {
    { "POST", "/wechat", "WeChat's own callbacks, not a staff action; "
      "every message is kept in the history" },
    { "POST", "/api/v1/me/heartbeat", "a heartbeat is not an action: it "
      "only keeps the agent's status" },
    { "POST", "/api/v1/sessions/*/typing", "a typing indicator is not an "
      "action and changes nothing kept" },
    { "POST", "/api/v1/sessions/*/messages", "an agent's message to a user "
      "is kept in the history (messages) with its author" },
    { "POST", "/api/v1/media", "an upload only stages a file for the "
      "message that uses it, which the history keeps with its author" },
    { "POST", "/api/v1/me/stream-ticket", "a 60-second ticket to read the "
      "agent's own push stream; it changes nothing anyone sees" },
};

const char *api_audit_exempt(const char *method, const char *path)
{
    size_t i;

    for (i = 0; i < sizeof(exempt) / sizeof(exempt[0]); i++)
        if (strcmp(method, exempt[i].method) == 0 &&
            strcmp(path, exempt[i].path) == 0)
            return exempt[i].why;
    return NULL;
}
