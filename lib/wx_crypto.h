/* wx_crypto: WeChat safe/compatible-mode message crypto
 * (docs/wechat-protocol.md §5).
 * Owns the AES key derived from the EncodingAESKey and the AppID embedded
 * in every plaintext; turns an `Encrypt` base64 text into the message and
 * back. Plaintext layout: random(16) || msg_len(4, big-endian) || msg ||
 * appid || PKCS#7 padding to 32; AES-256-CBC, IV = key[0..15].
 * An initialised struct is read-only, so one can serve many threads. */
#ifndef WX_CRYPTO_H
#define WX_CRYPTO_H

#include <stddef.h>

#include "kf.h"

#define WX_CRYPTO_KEY_CHARS 43        /* EncodingAESKey length */
#define WX_CRYPTO_APPID_MAX 63
#define WX_CRYPTO_RANDOM_LEN 16
#define WX_CRYPTO_BLOCK 32            /* PKCS#7 block size (not 16) */
/* Bound on an Encrypt text, both directions. */
#define WX_CRYPTO_B64_MAX (128 * 1024)
/* Largest ciphertext that fits in WX_CRYPTO_B64_MAX base64 characters. */
#define WX_CRYPTO_CIPHER_MAX (WX_CRYPTO_B64_MAX / 4 * 3)

struct wx_crypto {
    unsigned char key[32];
    unsigned char iv[16];
    char appid[WX_CRYPTO_APPID_MAX + 1];   /* NUL-terminated copy */
    size_t appid_len;
};

/* encoding_aes_key must be exactly 43 characters of [A-Za-z0-9] that
 * decode (with "=" appended) to 32 bytes; the 2 discarded bits of the last
 * character may be non-zero. Else KF_EAESKEY. appid must be 1..63 bytes,
 * else KF_EINVAL. Both views are copied; on failure *c is zeroed, so
 * wx_crypto_release() is always safe after init. */
KF_WUR int wx_crypto_init(struct wx_crypto *c, struct kf_str encoding_aes_key,
                          struct kf_str appid);

/* Decrypt an Encrypt text (exactly as extracted, no whitespace). msg is
 * reset, then on success holds exactly msg_len bytes (binary safe, NUL
 * after them); its cap bounds the message (KF_ETOOBIG). random_out (may be
 * NULL) receives the 16-byte random prefix on success. Errors by stage:
 *   KF_ETOOBIG  encrypt_b64 longer than WX_CRYPTO_B64_MAX
 *   KF_EBASE64  bad character, length not a multiple of 4, misplaced '='
 *   KF_ECIPHER  decoded length 0 or not a multiple of 32
 *   KF_EPADDING last byte not 1..32, or the pad bytes not all equal
 *   KF_ELENGTH  under 20 bytes left, or 20 + msg_len beyond the data
 *   KF_EAPPID   trailing appid differs in length or bytes
 *   KF_ENOMEM, KF_ECRYPTO
 * c, encrypt_b64 and random_out are only used during the call. */
KF_WUR int wx_crypto_decrypt(const struct wx_crypto *c,
                             struct kf_str encrypt_b64, struct kf_buf *msg,
                             unsigned char random_out[16]);

/* Encrypt msg for a reply. random16 (16 bytes, read during the call) is the
 * random prefix; NULL draws it from RAND_bytes. Always pads (a full block
 * of 0x20 when already aligned). b64_out is reset, then on success holds
 * the base64 text (no newlines, NUL-terminated). KF_ETOOBIG if the result
 * would exceed WX_CRYPTO_B64_MAX or b64_out's cap; KF_ENOMEM; KF_ECRYPTO
 * (RNG or cipher failure). */
KF_WUR int wx_crypto_encrypt(const struct wx_crypto *c, struct kf_str msg,
                             const unsigned char *random16,
                             struct kf_buf *b64_out);

/* Wipes the key material and appid. Safe twice. */
void wx_crypto_release(struct wx_crypto *c);

#endif
