/* agent_token: making, hashing and recognising API tokens. */
#include "agent_token.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "kf.h"

#include "banned.h"

int agent_token_is_hash(const char *h)
{
    size_t i;

    for (i = 0; i < 64; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return 0;
    return h[64] == '\0';
}

int agent_token_hash(const char *token, char hex[AGENT_HASH_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL) != 1 ||
        n != 32)
        return KF_ECRYPTO;
    kf_hex(md, 32, hex);
    return 0;
}

int agent_token_new(char token[AGENT_TOKEN_SIZE], char hash[AGENT_HASH_SIZE])
{
    return agent_token_new_prefixed(AGENT_TOKEN_PREFIX, token, hash);
}

int agent_token_new_prefixed(const char prefix[5],
                             char token[AGENT_TOKEN_SIZE],
                             char hash[AGENT_HASH_SIZE])
{
    unsigned char raw[32];
    int rc;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return KF_ECRYPTO;
    memcpy(token, prefix, 4);
    kf_hex(raw, sizeof(raw), token + 4);
    OPENSSL_cleanse(raw, sizeof(raw));
    rc = agent_token_hash(token, hash);
    if (rc < 0)
        OPENSSL_cleanse(token, AGENT_TOKEN_SIZE);
    return rc;
}
