/* auth: bearer tokens for the REST API. */
#include "auth.h"

#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "agent.h"

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

int auth_identify(struct route *r, const struct config *cfg,
                  struct kf_str authorization, struct auth *out)
{
    char tok[AUTH_TOKEN_MAX + 1], hash[AGENT_HASH_SIZE];
    const char *admin = cfg->api.admin_token_sha256;
    struct kf_str t;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = auth_bearer(authorization, &t);
    if (rc < 0)
        return rc;
    memcpy(tok, t.p, t.len);
    tok[t.len] = '\0';
    rc = agent_token_hash(tok, hash);
    OPENSSL_cleanse(tok, sizeof(tok));
    if (rc < 0)
        return rc;
    if (strlen(admin) == 64 && CRYPTO_memcmp(hash, admin, 64) == 0) {
        out->role = AUTH_ADMIN;
        return 0;
    }
    rc = route_token_agent(r, hash, out->account, sizeof(out->account),
                           out->status, sizeof(out->status));
    if (rc == KF_ENOTFOUND)
        return KF_EBADSIG;
    if (rc == 0)
        out->role = AUTH_AGENT;
    return rc;
}
