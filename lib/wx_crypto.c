/* wx_crypto: safe-mode message crypto — AES-256-CBC, PKCS#7 to 32 bytes. */
#include "wx_crypto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "banned.h"

#define HEAD_LEN (WX_CRYPTO_RANDOM_LEN + 4)    /* random || msg_len */

static int is_alnum(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (ch >= '0' && ch <= '9');
}

static int is_b64(char ch)
{
    return is_alnum(ch) || ch == '+' || ch == '/';
}

int wx_crypto_init(struct wx_crypto *c, struct kf_str encoding_aes_key,
                   struct kf_str appid)
{
    char in[WX_CRYPTO_KEY_CHARS + 1];
    unsigned char raw[(WX_CRYPTO_KEY_CHARS + 1) / 4 * 3];
    size_t i;
    int n, rc = KF_EAESKEY;

    memset(c, 0, sizeof(*c));
    if (encoding_aes_key.len != WX_CRYPTO_KEY_CHARS || !encoding_aes_key.p)
        return KF_EAESKEY;
    for (i = 0; i < WX_CRYPTO_KEY_CHARS; i++)
        if (!is_alnum(encoding_aes_key.p[i]))
            return KF_EAESKEY;
    if (appid.len == 0 || appid.len > WX_CRYPTO_APPID_MAX || !appid.p)
        return KF_EINVAL;
    memcpy(in, encoding_aes_key.p, WX_CRYPTO_KEY_CHARS);
    in[WX_CRYPTO_KEY_CHARS] = '=';
    /* EVP_DecodeBlock counts the zero byte the '=' stands for and ignores
     * the discarded low bits of the 43rd character (non-canonical keys). */
    n = EVP_DecodeBlock(raw, (const unsigned char *)in, (int)sizeof(in));
    if (n != (int)sizeof(c->key) + 1)
        goto out;
    memcpy(c->key, raw, sizeof(c->key));
    memcpy(c->iv, raw, sizeof(c->iv));
    memcpy(c->appid, appid.p, appid.len);
    c->appid[appid.len] = '\0';
    c->appid_len = appid.len;
    rc = 0;
out:
    OPENSSL_cleanse(in, sizeof(in));
    OPENSSL_cleanse(raw, sizeof(raw));
    return rc;
}

void wx_crypto_release(struct wx_crypto *c)
{
    OPENSSL_cleanse(c, sizeof(*c));
}

/* Strict base64: standard alphabet, length a multiple of 4, at most two
 * '=' and only at the end. On success *out is malloc'd (NULL when *n is
 * 0); caller frees. */
static int b64_decode(struct kf_str in, unsigned char **out, size_t *n)
{
    size_t pad = 0, i;
    unsigned char *buf;
    int got;

    *out = NULL;
    *n = 0;
    if (in.len == 0)
        return 0;
    if (in.len % 4 != 0 || !in.p)
        return KF_EBASE64;
    while (pad < 2 && in.p[in.len - 1 - pad] == '=')
        pad++;
    for (i = 0; i < in.len - pad; i++)
        if (!is_b64(in.p[i]))
            return KF_EBASE64;
    buf = malloc(in.len / 4 * 3);
    if (!buf)
        return KF_ENOMEM;
    got = EVP_DecodeBlock(buf, (const unsigned char *)in.p, (int)in.len);
    if (got < 0 || (size_t)got != in.len / 4 * 3) {
        free(buf);
        return KF_EBASE64;
    }
    *out = buf;
    *n = (size_t)got - pad;
    return 0;
}

/* n bytes in -> n bytes out, no library padding; n is a multiple of 32
 * and at most WX_CRYPTO_CIPHER_MAX. */
static int aes_cbc(const struct wx_crypto *c, int enc,
                   const unsigned char *in, size_t n, unsigned char *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0, rc = KF_ECRYPTO;

    if (!ctx)
        return KF_ENOMEM;
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_cbc(), NULL, c->key, c->iv,
                          enc) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx, 0) != 1 ||
        EVP_CipherUpdate(ctx, out, &l1, in, (int)n) != 1 ||
        EVP_CipherFinal_ex(ctx, out + l1, &l2) != 1 ||
        (size_t)l1 + (size_t)l2 != n)
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

/* Checks padding, length field and appid of a decrypted buffer of n bytes
 * (n >= 32, n % 32 == 0); on success *mlen is the message length. */
static int unframe(const struct wx_crypto *c, const unsigned char *p,
                   size_t n, uint32_t *mlen)
{
    unsigned k = p[n - 1], bad = 0, i;
    size_t rem, tail;
    uint32_t len;

    if (k < 1 || k > WX_CRYPTO_BLOCK)
        return KF_EPADDING;
    for (i = 1; i <= k; i++)
        bad |= p[n - i] ^ k;
    if (bad)
        return KF_EPADDING;
    rem = n - k;
    if (rem < HEAD_LEN)
        return KF_ELENGTH;
    len = (uint32_t)p[16] << 24 | (uint32_t)p[17] << 16 |
          (uint32_t)p[18] << 8 | (uint32_t)p[19];
    /* 64-bit sum: 20 + 0xFFFFFFF0 must not wrap. */
    if ((uint64_t)HEAD_LEN + len > rem)
        return KF_ELENGTH;
    tail = rem - HEAD_LEN - len;
    if (tail != c->appid_len ||
        CRYPTO_memcmp(p + HEAD_LEN + len, c->appid, tail) != 0)
        return KF_EAPPID;
    *mlen = len;
    return 0;
}

int wx_crypto_decrypt(const struct wx_crypto *c, struct kf_str encrypt_b64,
                      struct kf_buf *msg, unsigned char random_out[16])
{
    unsigned char *raw = NULL, *plain = NULL;
    size_t n = 0;
    uint32_t mlen = 0;
    int rc;

    kf_buf_reset(msg);
    if (encrypt_b64.len > WX_CRYPTO_B64_MAX)
        return KF_ETOOBIG;
    rc = b64_decode(encrypt_b64, &raw, &n);
    if (rc < 0)
        goto out;
    rc = KF_ECIPHER;
    if (n == 0 || n % WX_CRYPTO_BLOCK != 0)
        goto out;
    rc = KF_ENOMEM;
    plain = malloc(n);
    if (!plain)
        goto out;
    rc = aes_cbc(c, 0, raw, n, plain);
    if (rc < 0)
        goto out;
    rc = unframe(c, plain, n, &mlen);
    if (rc < 0)
        goto out;
    rc = kf_buf_append(msg, plain + HEAD_LEN, mlen);
    if (rc == 0 && random_out)
        memcpy(random_out, plain, WX_CRYPTO_RANDOM_LEN);
out:
    free(raw);
    free(plain);
    return rc;
}

/* Writes random || msg_len || msg || appid || pad into p (total bytes). */
static int frame(const struct wx_crypto *c, struct kf_str msg,
                 const unsigned char *random16, unsigned char *p,
                 size_t total)
{
    size_t body = HEAD_LEN + msg.len + c->appid_len;
    uint32_t len = (uint32_t)msg.len;

    if (random16)
        memcpy(p, random16, WX_CRYPTO_RANDOM_LEN);
    else if (RAND_bytes(p, WX_CRYPTO_RANDOM_LEN) != 1)
        return KF_ECRYPTO;
    p[16] = (unsigned char)(len >> 24);
    p[17] = (unsigned char)(len >> 16);
    p[18] = (unsigned char)(len >> 8);
    p[19] = (unsigned char)len;
    if (msg.len)
        memcpy(p + HEAD_LEN, msg.p, msg.len);
    memcpy(p + HEAD_LEN + msg.len, c->appid, c->appid_len);
    memset(p + body, (int)(total - body), total - body);
    return 0;
}

int wx_crypto_encrypt(const struct wx_crypto *c, struct kf_str msg,
                      const unsigned char *random16, struct kf_buf *b64_out)
{
    unsigned char *plain = NULL, *ct = NULL, *b64 = NULL;
    size_t body, total, b64len;
    int rc, got;

    kf_buf_reset(b64_out);
    if (msg.len && !msg.p)
        return KF_EINVAL;
    /* Keep body <= CIPHER_MAX - 1 so the padded size stays in bounds. */
    if (msg.len > WX_CRYPTO_CIPHER_MAX - 1 - HEAD_LEN - c->appid_len)
        return KF_ETOOBIG;
    body = HEAD_LEN + msg.len + c->appid_len;
    total = body + (WX_CRYPTO_BLOCK - body % WX_CRYPTO_BLOCK);
    b64len = (total + 2) / 3 * 4;
    if (b64len > b64_out->max)
        return KF_ETOOBIG;
    rc = KF_ENOMEM;
    plain = malloc(total);
    ct = malloc(total);
    b64 = malloc(b64len + 1);
    if (!plain || !ct || !b64)
        goto out;
    rc = frame(c, msg, random16, plain, total);
    if (rc < 0)
        goto out;
    rc = aes_cbc(c, 1, plain, total, ct);
    if (rc < 0)
        goto out;
    got = EVP_EncodeBlock(b64, ct, (int)total);
    rc = KF_ECRYPTO;
    if (got < 0 || (size_t)got != b64len)
        goto out;
    rc = kf_buf_append(b64_out, b64, b64len);
out:
    free(plain);
    free(ct);
    free(b64);
    return rc;
}
