/* wx_sign: WeChat callback signatures (SHA-1 over byte-sorted strings). */
#include "wx_sign.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "kf.h"
#include "banned.h"

/* memcmp order over the common prefix; on a tie the shorter sorts first. */
static int part_cmp(const struct kf_str *a, const struct kf_str *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->p, b->p, n) : 0;

    if (c != 0)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

/* Insertion sort of indices; n is at most WX_SIGN_MAX_PARTS. */
static void sort_parts(const struct kf_str *parts, size_t n, size_t *idx)
{
    size_t i, j;

    for (i = 0; i < n; i++) {
        size_t cur = i;

        for (j = i; j > 0 && part_cmp(&parts[idx[j - 1]], &parts[cur]) > 0;
             j--)
            idx[j] = idx[j - 1];
        idx[j] = cur;
    }
}

static int check_sizes(const struct kf_str *parts, size_t n)
{
    size_t i, total = 0;

    if (!parts || n == 0 || n > WX_SIGN_MAX_PARTS)
        return KF_EINVAL;
    for (i = 0; i < n; i++) {
        if (parts[i].len && !parts[i].p)
            return KF_EINVAL;
        if (parts[i].len > WX_SIGN_TOTAL_MAX - total)
            return KF_ETOOBIG;
        total += parts[i].len;
    }
    return 0;
}

int wx_sign_compute(const struct kf_str *parts, size_t n,
                    char out[WX_SIGN_HEX])
{
    size_t idx[WX_SIGN_MAX_PARTS], i;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = NULL;
    int rc;

    rc = check_sizes(parts, n);
    if (rc < 0)
        return rc;
    sort_parts(parts, n, idx);
    ctx = EVP_MD_CTX_new();
    if (!ctx)
        return KF_ENOMEM;
    rc = KF_ECRYPTO;
    if (EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1)
        goto out;
    for (i = 0; i < n; i++)
        if (parts[idx[i]].len &&
            EVP_DigestUpdate(ctx, parts[idx[i]].p, parts[idx[i]].len) != 1)
            goto out;
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 ||
        mdlen * 2 + 1 != WX_SIGN_HEX)
        goto out;
    kf_hex(md, mdlen, out);
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* Shared tail of both verifiers: parts[0] is the token. */
static int verify_parts(const struct kf_str *parts, size_t n,
                        struct kf_str sig)
{
    char want[WX_SIGN_HEX];
    size_t i;

    if (parts[0].len == 0 || sig.len != WX_SIGN_HEX - 1 || !sig.p)
        return KF_EBADSIG;
    for (i = 0; i < n && i < 3; i++)
        if (parts[i].len > WX_SIGN_PART_MAX)
            return KF_EBADSIG;
    if (wx_sign_compute(parts, n, want) < 0)
        return KF_EBADSIG;
    if (CRYPTO_memcmp(want, sig.p, WX_SIGN_HEX - 1) != 0)
        return KF_EBADSIG;
    return 0;
}

int wx_sign_verify(struct kf_str token, struct kf_str timestamp,
                   struct kf_str nonce, struct kf_str signature)
{
    struct kf_str parts[3] = { token, timestamp, nonce };

    return verify_parts(parts, 3, signature);
}

int wx_sign_verify_msg(struct kf_str token, struct kf_str timestamp,
                       struct kf_str nonce, struct kf_str encrypt,
                       struct kf_str msg_signature)
{
    struct kf_str parts[4] = { token, timestamp, nonce, encrypt };

    if (encrypt.len == 0)
        return KF_EBADSIG;
    return verify_parts(parts, 4, msg_signature);
}

int wx_sign_msg_hash(struct kf_str msg, char out[WX_SIGN_MSG_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (EVP_Digest(msg.len ? msg.p : "", msg.len, md, &n, EVP_sha256(),
                   NULL) != 1 || n * 2 + 1 != WX_SIGN_MSG_HEX)
        return KF_ECRYPTO;
    kf_hex(md, n, out);
    return 0;
}

int wx_sign_check_time(struct kf_str timestamp, int64_t now,
                       unsigned window_s)
{
    uint64_t ts, diff;
    int rc = kf_parse_u64(timestamp, &ts);

    if (rc < 0)
        return KF_EPARSE;
    if (window_s == 0)
        return 0;
    if (now >= 0) {
        uint64_t n = (uint64_t)now;

        diff = ts >= n ? ts - n : n - ts;
    } else {
        /* |now| computed without negating INT64_MIN. */
        uint64_t mag = (uint64_t)(-(now + 1)) + 1;

        if (ts > UINT64_MAX - mag)
            return KF_ESTALE;
        diff = ts + mag;
    }
    return diff > window_s ? KF_ESTALE : 0;
}
