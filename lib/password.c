/* password: argon2id hashes of the staff users' passwords. */
#include "password.h"

#include <stdint.h>
#include <string.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "banned.h"

/* A hash of a password nobody has, with the parameters above: what an
 * unknown login is verified against. */
static const char dummy[] =
    "$argon2id$v=19$m=19456,t=2,p=1$d3hrZi1kdW1teS1zYWx0IQ$"
    "5sV9fsgbH4apGcnorlPwSYzMCvdOa4szJPAxLUJ7yZ8";

int password_check(const char *pw, size_t len)
{
    size_t i = 0, chars = 0, n;
    uint32_t cp;

    if (len > PASSWORD_MAX_BYTES)
        return KF_EINVAL;
    while (i < len) {
        n = kf_utf8_next((const unsigned char *)pw + i, len - i, &cp);
        if (n == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
            return KF_EINVAL;
        i += n;
        chars++;
    }
    return chars >= PASSWORD_MIN_CHARS ? 0 : KF_EINVAL;
}

int password_hash(const char *pw, size_t len, char out[PASSWORD_HASH_MAX])
{
    unsigned char salt[PASSWORD_SALT_LEN];
    int rc;

    out[0] = '\0';
    if (len > PASSWORD_MAX_BYTES)
        return KF_EINVAL;
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return KF_ECRYPTO;
    rc = argon2id_hash_encoded(PASSWORD_T, PASSWORD_M_KIB, PASSWORD_P, pw,
                               len, salt, sizeof(salt), PASSWORD_TAG_LEN, out,
                               PASSWORD_HASH_MAX);
    OPENSSL_cleanse(salt, sizeof(salt));
    if (rc == ARGON2_OK)
        return 0;
    out[0] = '\0';
    return rc == ARGON2_MEMORY_ALLOCATION_ERROR ? KF_ENOMEM : KF_ECRYPTO;
}

int password_verify(const char *encoded, const char *pw, size_t len)
{
    int rc;

    if (len > PASSWORD_MAX_BYTES)
        return KF_EINVAL;
    if (!encoded) {
        rc = argon2id_verify(dummy, pw, len);
        return rc == ARGON2_MEMORY_ALLOCATION_ERROR ? KF_ENOMEM : KF_EBADSIG;
    }
    if (strncmp(encoded, "$argon2id$", 10) != 0 ||
        strlen(encoded) >= PASSWORD_HASH_MAX)
        return KF_EINVAL;
    rc = argon2id_verify(encoded, pw, len);
    if (rc == ARGON2_OK)
        return 0;
    if (rc == ARGON2_VERIFY_MISMATCH)
        return KF_EBADSIG;
    return rc == ARGON2_MEMORY_ALLOCATION_ERROR ? KF_ENOMEM : KF_EINVAL;
}
