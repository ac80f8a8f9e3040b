/* supervise: whispers and take-overs in a user's live session. */
#include "supervise.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "lua.h"
#include "store.h"

#include "banned.h"

int supervise_check_whisper(const char *text, const struct refusal **why)
{
    const struct refusal *row = NULL;
    const char *p;
    int rc = kf_text_check(text, SUPERVISE_WHISPER_CHARS, 1);

    if (rc == 0) {
        for (p = text; *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
             p++)
            ;
        if (*p)
            return 0;
        row = refusal_get(REFUSAL_WHISPER_EMPTY);
    } else {
        row = refusal_by_rc(REFUSAL_SUPERVISE, rc);
        if (!row)               /* kf_text_check has no other code */
            row = refusal_get(REFUSAL_WHISPER_INVALID);
    }
    if (why)
        *why = row;
    return row->rc;
}

/* Runs supervise.lua's op (args after openid: n of them); a refusal is
 * its row. On success *out is new: store_reply_free() it. */
static int run(struct route *r, const char *op, struct kf_str openid,
               int64_t now_ms, const char *const *more, int n,
               struct store_reply **out, const struct refusal **why)
{
    struct store_script sc;
    char now[24], o[72], code[32];
    const char *args[8] = { op, now, r->cfg, o };
    int i, rc;

    *out = NULL;
    if (openid.len >= sizeof(o) || !kf_openid_ok(openid)) {
        *why = refusal_get(REFUSAL_SV_NO_SESSION);
        return (*why)->rc;
    }
    snprintf(o, sizeof(o), "%.*s", (int)openid.len, openid.p);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    for (i = 0; i < n; i++)
        args[4 + i] = more[i];
    store_script_init(&sc, lua_supervise);
    rc = store_run(r->store, &sc, 0, NULL, 4 + n, args, NULL, out);
    if (rc < 0)
        return rc;
    if (store_reply_at_is(*out, 0, "err")) {
        if (store_reply_at_copy(*out, 1, code, sizeof(code)) < 0)
            code[0] = '\0';
        *why = refusal_find(REFUSAL_SUPERVISE, kf_str_c(code),
                            REFUSAL_BAD_OP);
        store_reply_free(*out);
        *out = NULL;
        return (*why)->rc;
    }
    return 0;
}

static int new_msgid(char msgid[SUPERVISE_MSGID_SIZE])
{
    unsigned char raw[8];

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return KF_ECRYPTO;
    memcpy(msgid, "w_", 2);
    kf_hex(raw, sizeof(raw), msgid + 2);
    return 0;
}

int supervise_whisper(struct route *r, struct kf_str openid, const char *by,
                      const struct supervise_author *who, const char *text,
                      int64_t now_ms, char session[24], char agent[48],
                      char msgid[SUPERVISE_MSGID_SIZE],
                      const struct refusal **why)
{
    struct store_reply *rep = NULL;
    json_t *p = NULL;
    char *payload = NULL;
    const char *more[3];
    int rc;

    session[0] = agent[0] = msgid[0] = '\0';
    rc = supervise_check_whisper(text, why);
    if (rc < 0)
        return rc;
    rc = new_msgid(msgid);
    if (rc < 0)
        return rc;
    p = json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", msgid, "content", text,
                  "author", who->author, "author_name", who->name,
                  "author_role", who->role);
    payload = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    if (!payload)
        return KF_ENOMEM;
    more[0] = by;
    more[1] = msgid;
    more[2] = payload;
    rc = run(r, "whisper", openid, now_ms, more, 3, &rep, why);
    if (rc == 0 && (store_reply_at_copy(rep, 1, session, 24) < 0 ||
                    store_reply_at_copy(rep, 2, agent, 48) < 0))
        rc = KF_EIO;
    store_reply_free(rep);
    free(payload);
    return rc;
}

int supervise_takeover(struct route *r, struct kf_str openid,
                       const char *agent, const char *login,
                       const char *name, int64_t now_ms, char prev[48],
                       const struct refusal **why)
{
    struct store_reply *rep = NULL;
    const char *more[3] = { agent, login, name };
    int rc;

    prev[0] = '\0';
    rc = run(r, "takeover", openid, now_ms, more, 3, &rep, why);
    if (rc == 0 && store_reply_at_copy(rep, 3, prev, 48) < 0)
        rc = KF_EIO;
    store_reply_free(rep);
    return rc;
}
