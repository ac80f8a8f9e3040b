/* auth: bearer tokens for the REST API. */
#include "auth.h"

#include <stdio.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "agent.h"
#include "agent_token.h"
#include "staff_session.h"

#include "banned.h"

int auth_bearer(struct kf_str header, struct kf_str *token)
{
    size_t i;

    if (header.len < 8 || strncasecmp(header.p, "Bearer ", 7) != 0)
        return KF_EBADSIG;
    *token = (struct kf_str){ header.p + 7, header.len - 7 };
    while (token->len && token->p[0] == ' ')
        token->p++, token->len--;
    if (token->len == 0 || token->len > AUTH_TOKEN_MAX)
        return KF_EBADSIG;
    for (i = 0; i < token->len; i++) {
        char c = token->p[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return KF_EBADSIG;
    }
    return 0;
}

void auth_address(struct kf_str a, char out[46])
{
    unsigned char v6[16];
    char buf[64];

    snprintf(out, 46, "unknown");
    if (a.len == 0 || a.len >= sizeof(buf))
        return;
    memcpy(buf, a.p, a.len);
    buf[a.len] = '\0';
    if (inet_pton(AF_INET, buf, v6) == 1) {
        snprintf(out, 46, "%u.%u.%u.%u", v6[0], v6[1], v6[2], v6[3]);
    } else if (inet_pton(AF_INET6, buf, v6) == 1) {
        /* one site gets a /64: keying by the whole address would let it
         * rotate through 2^64 of them */
        snprintf(out, 46, "%x:%x:%x:%x::/64", v6[0] << 8 | v6[1],
                 v6[2] << 8 | v6[3], v6[4] << 8 | v6[5], v6[6] << 8 | v6[7]);
    }
}

/* Runs auth.lua: args[0] is the op. out NULL: only success matters. */
static int run(struct route *r, const char *const *args, int n,
               struct store_reply **out)
{
    return store_run(r->store, &r->auth, 0, NULL, n, args, NULL, out);
}

/* Counts one failed attempt of a kind ("token" or "ticket") from
 * address. */
static int record_failure(struct route *r, const char *address,
                          const char *limit, const char *kind)
{
    char window[24];
    const char *args[] = { "fail", address, limit, window, kind };

    snprintf(window, sizeof(window), "%d", AUTH_WINDOW_MS);
    return run(r, args, 5, NULL);
}

/* Decodes a check/ticket reply into out: 0 (agent or admin as
 * expected), KF_ELIMIT or KF_EBADSIG. */
static int decode(const struct store_reply *rep, int is_admin,
                  struct auth *out)
{
    char ms[24];

    if (store_reply_at_is(rep, 0, "limited")) {
        store_reply_at_copy(rep, 1, ms, sizeof(ms));
        out->retry_after_s = (strtol(ms, NULL, 10) + 999) / 1000;
        if (out->retry_after_s < 1)
            out->retry_after_s = 1;
        return KF_ELIMIT;
    }
    if (is_admin && store_reply_at_is(rep, 0, "admin")) {
        out->role = AUTH_ADMIN;
        return 0;
    }
    if (!is_admin && store_reply_at_is(rep, 0, "agent")) {
        out->role = AUTH_AGENT;
        store_reply_at_copy(rep, 1, out->account, sizeof(out->account));
        store_reply_at_copy(rep, 2, out->status, sizeof(out->status));
        return 0;
    }
    return KF_EBADSIG;
}

/* Runs op (check or ticket) for hash; a failure is counted against the
 * address, tickets apart from tokens. */
static int identify(struct route *r, const struct config *cfg,
                    const char *op, char hash[AGENT_HASH_SIZE],
                    const char *address, int is_admin, struct auth *out)
{
    char limit[24];
    const char *args[4] = { op, address, limit, hash };
    struct store_reply *rep = NULL;
    int rc;

    snprintf(limit, sizeof(limit), "%ld", cfg->api.auth_failures_per_min);
    rc = run(r, args, 4, &rep);
    if (rc == 0 && strcmp(op, "check") == 0 && !is_admin)
        memcpy(out->token_sha256, hash, AGENT_HASH_SIZE);
    OPENSSL_cleanse(hash, AGENT_HASH_SIZE);
    if (rc < 0)
        return rc;
    rc = decode(rep, is_admin, out);
    if (rc < 0)
        OPENSSL_cleanse(out->token_sha256, sizeof(out->token_sha256));
    store_reply_free(rep);
    if (rc == KF_EBADSIG &&
        record_failure(r, address, limit,
                       strcmp(op, "ticket") == 0 ? "ticket" : "token") < 0)
        return KF_EBACKEND;
    return rc;
}

/* SHA-256 hex of a token given as a kf_str (already checked). */
static int hash_of(struct kf_str t, char hash[AGENT_HASH_SIZE])
{
    char tok[AUTH_TOKEN_MAX + 1];
    int rc;

    if (t.len > AUTH_TOKEN_MAX)
        return KF_EBADSIG;
    memcpy(tok, t.p, t.len);
    tok[t.len] = '\0';
    rc = agent_token_hash(tok, hash);
    OPENSSL_cleanse(tok, sizeof(tok));
    return rc;
}

int auth_identify(struct route *r, const struct config *cfg,
                  struct kf_str authorization, const char *address,
                  struct auth *out)
{
    const char *admin = cfg->api.admin_token_sha256;
    char hash[AGENT_HASH_SIZE];
    struct kf_str t;
    int rc, is_admin = 0;

    memset(out, 0, sizeof(*out));
    if (authorization.len == 0)
        return KF_EBADSIG;
    if (auth_bearer(authorization, &t) == 0) {
        rc = hash_of(t, hash);
        if (rc < 0)
            return rc;
        is_admin = strlen(admin) == 64 && CRYPTO_memcmp(hash, admin, 64) == 0;
        if (is_admin)
            hash[0] = '\0';     /* only the address is checked */
    } else {
        snprintf(hash, sizeof(hash), "-");  /* no token maps to "-" */
    }
    return identify(r, cfg, "check", hash, address, is_admin, out);
}

int auth_count_failure(struct route *r, const struct config *cfg,
                       const char *address, struct auth *out)
{
    char hash[AGENT_HASH_SIZE];

    memset(out, 0, sizeof(*out));
    snprintf(hash, sizeof(hash), "-");      /* no token maps to "-" */
    return identify(r, cfg, "check", hash, address, 0, out);
}

int auth_ticket_identify(struct route *r, const struct config *cfg,
                         struct kf_str ticket, const char *address,
                         struct auth *out)
{
    char hash[AGENT_HASH_SIZE];
    int rc;

    memset(out, 0, sizeof(*out));
    if (kf_is_hex(ticket, AUTH_TICKET_SIZE - 1)) {  /* 64 hex */
        rc = hash_of(ticket, hash);
        if (rc < 0)
            return rc;
    } else {
        snprintf(hash, sizeof(hash), "-");
    }
    return identify(r, cfg, "ticket", hash, address, 0, out);
}

int auth_ticket_issue(struct route *r, const struct auth *who,
                      char ticket[AUTH_TICKET_SIZE])
{
    unsigned char raw[32];
    char hash[AGENT_HASH_SIZE], ttl[24];
    char bound[68];
    const char *args[7] = { "ticket_new", "-", "0", hash, who->account, ttl,
                            bound };
    size_t i;
    int rc;

    if (who->role != AUTH_AGENT)
        return KF_EINVAL;
    if (strlen(who->token_sha256) == 64)
        snprintf(bound, sizeof(bound), "%s", who->token_sha256);
    else if (strlen(who->session_sha256) == 64)
        snprintf(bound, sizeof(bound), "s:%s", who->session_sha256);
    else
        return KF_EINVAL;
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return KF_ECRYPTO;
    for (i = 0; i < sizeof(raw); i++)
        snprintf(ticket + 2 * i, 3, "%02x", raw[i]);
    OPENSSL_cleanse(raw, sizeof(raw));
    rc = agent_token_hash(ticket, hash);
    if (rc < 0)
        return rc;
    snprintf(ttl, sizeof(ttl), "%d", AUTH_TICKET_TTL_S * 1000);
    rc = run(r, args, 7, NULL);
    if (rc < 0)
        OPENSSL_cleanse(ticket, AUTH_TICKET_SIZE);
    return rc;
}

int auth_cookie_identify(struct route *r, const struct config *cfg,
                         struct kf_str sid, struct auth *out)
{
    struct staff_session s;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = staff_session_get(r->store, sid, kf_wall_ms(),
                           cfg->api.session_idle * 1000,
                           cfg->api.session_max * 1000, &s);
    if (rc == KF_EBACKEND)
        return rc;
    if (rc < 0)
        return KF_EBADSIG;
    if (strcmp(s.role, "agent") == 0) {
        out->role = AUTH_AGENT;
        snprintf(out->account, sizeof(out->account), "%s", s.agent);
        snprintf(out->status, sizeof(out->status), "%s", s.agent_status);
    } else {
        out->role = strcmp(s.role, "admin") == 0 ? AUTH_ADMIN
                                                 : AUTH_SUPERVISOR;
        /* a supervisor's agent, when it has one (sql/0011) */
        snprintf(out->account, sizeof(out->account), "%s", s.agent);
        snprintf(out->status, sizeof(out->status), "%s", s.agent_status);
    }
    snprintf(out->login, sizeof(out->login), "%s", s.login);
    snprintf(out->name, sizeof(out->name), "%s", s.name);
    snprintf(out->staff_role, sizeof(out->staff_role), "%s", s.role);
    memcpy(out->session_sha256, s.hash, sizeof(out->session_sha256));
    memcpy(out->csrf, s.csrf, sizeof(out->csrf));
    OPENSSL_cleanse(&s, sizeof(s));
    return 0;
}
