/* fuzz_crypto: lib/wx_crypto's safe-mode decryptor with the fixed S-key
 * EncodingAESKey and AppID, then lib/wx_xml on what it yields (the
 * decrypt-then-parse path of a push). data[0] picks what the rest is:
 *   0  an Encrypt text, as it comes out of the envelope;
 *   1  a plaintext frame (random || len || msg || appid || pad), which
 *      the harness AES-encrypts without padding and base64-encodes, so
 *      the fuzzer reaches the padding, length and AppID checks;
 *   2  random(16) || msg: wx_crypto_encrypt, then decrypt must give msg
 *      and random back.
 * Modes 0 and 1 are differential: the harness decrypts with OpenSSL and
 * applies the rules of wx_crypto.h itself, and the rc and the message
 * must agree with wx_crypto_decrypt. data[1] of mode 1 sets the cap of
 * the message buffer (0 = WX_XML_MAX, as lib/callback uses). */
#include <string.h>

#include <openssl/evp.h>

#include "fuzz.h"
#include "kf.h"
#include "wx_crypto.h"
#include "wx_xml.h"

static struct wx_crypto crypto;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (wx_crypto_init(&crypto, KF_STR(FZ_AESKEY), KF_STR(FZ_APPID)) != 0)
        abort();
    return 0;
}

/* What the header promises for an Encrypt text: strict base64 (alphabet,
 * length % 4, at most two '=' and only at the end). Returns the rc the
 * text must get before decryption, or 0 and the decoded length. */
static int ref_b64(const char *p, size_t n, size_t *out)
{
    size_t pad = 0, i;

    if (n > WX_CRYPTO_B64_MAX)
        return KF_ETOOBIG;
    if (n % 4)
        return KF_EBASE64;
    while (pad < 2 && pad < n && p[n - 1 - pad] == '=')
        pad++;
    for (i = 0; i < n - pad; i++) {
        char c = p[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '/'))
            return KF_EBASE64;
    }
    *out = n / 4 * 3 - pad;
    return 0;
}

/* The framing rules of wx_crypto.h over a decrypted buffer. */
static int ref_unframe(const unsigned char *p, size_t n, size_t cap,
                       size_t *mlen)
{
    unsigned k = p[n - 1], i;
    size_t rem;
    uint64_t len;

    if (k < 1 || k > WX_CRYPTO_BLOCK)
        return KF_EPADDING;
    for (i = 1; i <= k; i++)
        if (p[n - i] != k)
            return KF_EPADDING;
    rem = n - k;
    if (rem < 20)
        return KF_ELENGTH;
    len = (uint64_t)p[16] << 24 | (uint64_t)p[17] << 16 |
          (uint64_t)p[18] << 8 | p[19];
    if (20 + len > rem)
        return KF_ELENGTH;
    if (rem - 20 - len != crypto.appid_len ||
        memcmp(p + 20 + len, crypto.appid, crypto.appid_len) != 0)
        return KF_EAPPID;
    if (len > cap)
        return KF_ETOOBIG;
    *mlen = (size_t)len;
    return 0;
}

static void aes(int enc, const unsigned char *in, size_t n,
                unsigned char *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0;

    FZ_CHECK(ctx != NULL);
    FZ_CHECK(EVP_CipherInit_ex(ctx, EVP_aes_256_cbc(), NULL, crypto.key,
                               crypto.iv, enc) == 1);
    FZ_CHECK(EVP_CIPHER_CTX_set_padding(ctx, 0) == 1);
    FZ_CHECK(EVP_CipherUpdate(ctx, out, &l1, in, (int)n) == 1);
    FZ_CHECK(EVP_CipherFinal_ex(ctx, out + l1, &l2) == 1);
    FZ_CHECK((size_t)(l1 + l2) == n);
    EVP_CIPHER_CTX_free(ctx);
}

/* The rest of a push: the plaintext is an XML body (test/fuzz/fuzz_xml.c
 * checks the parser's contract in depth). */
static void parse(struct kf_str plain)
{
    struct wx_msg *m = NULL;
    struct kf_buf key;

    if (wx_xml_parse(plain, &m, NULL) == 0) {
        FZ_CHECK(m != NULL);
        kf_buf_init(&key, WX_XML_MAX + 128);
        FZ_CHECK((wx_xml_dedupe_key(m, &key) == 0) ==
                 (m->from_user.len > 0));
        kf_buf_release(&key);
    }
    wx_xml_msg_free(m);
}

/* Decrypts b64 and checks the outcome against the reference. */
static void decrypt_checked(const char *b64, size_t n, size_t cap)
{
    unsigned char rnd[16], *raw = NULL, *plain = NULL;
    size_t rawlen = 0, mlen = 0;
    struct kf_buf msg;
    int want, rc;

    want = ref_b64(b64, n, &rawlen);
    if (want == 0 && (rawlen == 0 || rawlen % WX_CRYPTO_BLOCK))
        want = KF_ECIPHER;
    if (want == 0) {
        raw = malloc(n / 4 * 3 + 1);
        plain = malloc(rawlen);
        FZ_CHECK(raw && plain);
        FZ_CHECK(EVP_DecodeBlock(raw, (const unsigned char *)b64,
                                 (int)n) == (int)(n / 4 * 3));
        aes(0, raw, rawlen, plain);
        want = ref_unframe(plain, rawlen, cap, &mlen);
    }
    kf_buf_init(&msg, cap);
    rc = wx_crypto_decrypt(&crypto, (struct kf_str){ b64, n }, &msg, rnd);
    if (rc != want)
        fprintf(stderr, "wx_crypto_decrypt: rc %d (%s), expected %d (%s)\n",
                rc, kf_strerror(rc), want, kf_strerror(want));
    FZ_CHECK(rc == want);
    if (rc == 0) {
        FZ_CHECK(msg.len == mlen);
        FZ_CHECK(mlen == 0 || memcmp(msg.p, plain + 20, mlen) == 0);
        FZ_CHECK(msg.p == NULL || msg.p[msg.len] == '\0');
        FZ_CHECK(memcmp(rnd, plain, 16) == 0);
        parse(kf_buf_str(&msg));
    } else {
        FZ_CHECK(msg.len == 0);
    }
    kf_buf_release(&msg);
    free(raw);
    free(plain);
}

/* Mode 1: encrypt a frame as it is (whole 32-byte blocks). */
static void frame_mode(const uint8_t *data, size_t size)
{
    size_t cap = size ? (data[0] ? (size_t)data[0] * 8 : WX_XML_MAX) : 0;
    size_t n, b64n;
    unsigned char *ct, *b64;

    if (size < 1 + WX_CRYPTO_BLOCK)
        return;
    data++, size--;
    n = size / WX_CRYPTO_BLOCK * WX_CRYPTO_BLOCK;
    ct = malloc(n);
    b64n = (n + 2) / 3 * 4;
    b64 = malloc(b64n + 1);
    FZ_CHECK(ct && b64);
    aes(1, data, n, ct);
    FZ_CHECK(EVP_EncodeBlock(b64, ct, (int)n) == (int)b64n);
    decrypt_checked((const char *)b64, b64n, cap);
    free(ct);
    free(b64);
}

/* Mode 2: encrypt, then decrypt must give the same message back. */
static void roundtrip_mode(const uint8_t *data, size_t size)
{
    struct kf_str msg;
    struct kf_buf b64, back;
    unsigned char rnd[16];
    size_t body;
    int rc;

    if (size < 16)
        return;
    msg = (struct kf_str){ (const char *)data + 16, size - 16 };
    kf_buf_init(&b64, WX_CRYPTO_B64_MAX);
    kf_buf_init(&back, WX_CRYPTO_CIPHER_MAX);
    rc = wx_crypto_encrypt(&crypto, msg, data, &b64);
    FZ_CHECK(rc == 0);
    body = 20 + msg.len + crypto.appid_len;
    FZ_CHECK(b64.len == ((body / 32 + 1) * 32 + 2) / 3 * 4);
    rc = wx_crypto_decrypt(&crypto, kf_buf_str(&b64), &back, rnd);
    FZ_CHECK(rc == 0);
    FZ_CHECK(back.len == msg.len);
    FZ_CHECK(msg.len == 0 || memcmp(back.p, msg.p, msg.len) == 0);
    FZ_CHECK(memcmp(rnd, data, 16) == 0);
    parse(kf_buf_str(&back));
    kf_buf_release(&b64);
    kf_buf_release(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0:
        decrypt_checked(size > 1 ? (const char *)data + 1 : "", size - 1,
                        WX_XML_MAX);
        break;
    case 1:
        frame_mode(data + 1, size - 1);
        break;
    default:
        roundtrip_mode(data + 1, size - 1);
        break;
    }
    return 0;
}
