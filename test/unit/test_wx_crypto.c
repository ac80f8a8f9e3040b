/* Unit tests for wx_crypto: key derivation (aes_keys.tsv), the safe-mode
 * vectors (safe_mode.json, both directions) and the rejected inputs of
 * negative.json, plus size caps and the RNG path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kf.h"
#include "wx_crypto.h"
#include "wx_sign.h"
#include "testutil.h"

#define BIG (1u << 20)

static struct kf_str S(const char *s)
{
    return kf_str_c(s);
}

static void assert_hex_bytes(const unsigned char *got, size_t n,
                             const char *hex)
{
    size_t len;
    unsigned char *want = tu_unhex(hex, &len);

    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
    free(want);
}

/* Initialises c from a safe_mode.json / negative.json entry and checks the
 * derived key against the vector's aes_key_hex / iv_hex when present. */
static void init_from(struct wx_crypto *c, const json_t *v)
{
    const char *key = json_string_value(json_object_get(v, "aes_key_hex"));
    const char *iv = json_string_value(json_object_get(v, "iv_hex"));

    assert_int_equal(wx_crypto_init(c, S(tu_jstr(v, "encoding_aes_key")),
                                    S(tu_jstr(v, "appid"))), 0);
    if (key)
        assert_hex_bytes(c->key, sizeof(c->key), key);
    if (iv)
        assert_hex_bytes(c->iv, sizeof(c->iv), iv);
}

static json_t *vector_by_id(json_t *all, const char *id)
{
    size_t i;
    json_t *v;

    json_array_foreach(all, i, v)
        if (strcmp(tu_jstr(v, "id"), id) == 0)
            return v;
    fail_msg("no vector %s", id);
    return NULL;
}

static void test_key_derivation_matches_aes_keys_tsv(void **state)
{
    struct tu_tsv t;
    size_t ckey, chex, civ, ccanon, i, noncanonical = 0;

    (void)state;
    tu_tsv_load(&t, VEC("aes_keys.tsv"));
    ckey = tu_tsv_col(&t, "encoding_aes_key");
    chex = tu_tsv_col(&t, "aes_key_hex");
    civ = tu_tsv_col(&t, "iv_hex");
    ccanon = tu_tsv_col(&t, "canonical_base64");
    for (i = 1; i < t.nrows; i++) {
        char **r = t.rows[i];
        struct wx_crypto c;

        assert_int_equal(wx_crypto_init(&c, S(r[ckey]), S("wxappid")), 0);
        assert_hex_bytes(c.key, sizeof(c.key), r[chex]);
        assert_hex_bytes(c.iv, sizeof(c.iv), r[civ]);
        noncanonical += strcmp(r[ccanon], "no") == 0;
        wx_crypto_release(&c);
    }
    assert_true(noncanonical >= 1);
    tu_tsv_release(&t);
}

static void test_key_init_rejects_negative_aes_keys(void **state)
{
    json_t *all = tu_read_json(VEC("negative.json"));
    size_t i, n = 0;
    json_t *v;

    (void)state;
    json_array_foreach(all, i, v) {
        struct wx_crypto c;

        if (strcmp(tu_jstr(v, "kind"), "aes_key") != 0)
            continue;
        n++;
        assert_int_equal(wx_crypto_init(&c, S(tu_jstr(v, "encoding_aes_key")),
                                         S("wx62dd79ea990faa89")),
                         KF_EAESKEY);
        wx_crypto_release(&c);
    }
    assert_true(n >= 3);
    json_decref(all);
}

/* Mutations of a valid key: characters outside [A-Za-z0-9] (even valid
 * base64 ones), an embedded NUL, and bad appid lengths. */
static void test_key_init_rejects_bad_key_and_appid(void **state)
{
    struct tu_tsv t;
    const char *good;
    char key[WX_CRYPTO_KEY_CHARS + 1];
    static const char bad[] = { '+', '/', '=', '\0', ' ', '-', '_' };
    char appid[WX_CRYPTO_APPID_MAX + 2];
    struct wx_crypto c;
    size_t i;

    (void)state;
    tu_tsv_load(&t, VEC("aes_keys.tsv"));
    good = t.rows[1][tu_tsv_col(&t, "encoding_aes_key")];
    assert_int_equal(strlen(good), WX_CRYPTO_KEY_CHARS);
    for (i = 0; i < sizeof(bad); i++) {
        memcpy(key, good, sizeof(key));
        key[10] = bad[i];
        assert_int_equal(wx_crypto_init(&c, (struct kf_str){
                                                key, WX_CRYPTO_KEY_CHARS },
                                        S("wx1")), KF_EAESKEY);
        memcpy(key, good, sizeof(key));
        key[WX_CRYPTO_KEY_CHARS - 1] = bad[i];
        assert_int_equal(wx_crypto_init(&c, (struct kf_str){
                                                key, WX_CRYPTO_KEY_CHARS },
                                        S("wx1")), KF_EAESKEY);
    }
    assert_int_equal(wx_crypto_init(&c, S(""), S("wx1")), KF_EAESKEY);
    memset(appid, 'a', sizeof(appid));
    assert_int_equal(wx_crypto_init(&c, S(good), S("")), KF_EINVAL);
    assert_int_equal(wx_crypto_init(&c, S(good), (struct kf_str){
                                                    appid, 64 }),
                     KF_EINVAL);
    /* A failed init leaves nothing behind. */
    assert_int_equal(c.appid_len, 0);
    assert_int_equal(c.key[0] | c.key[31] | c.iv[0], 0);
    assert_int_equal(wx_crypto_init(&c, S(good), (struct kf_str){
                                                    appid, 63 }), 0);
    assert_int_equal(c.appid_len, 63);
    wx_crypto_release(&c);
    tu_tsv_release(&t);
}

static void test_release_wipes_key(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    struct wx_crypto c, zero;

    (void)state;
    init_from(&c, json_array_get(all, 0));
    memset(&zero, 0, sizeof(zero));
    assert_memory_not_equal(c.key, zero.key, sizeof(c.key));
    wx_crypto_release(&c);
    assert_memory_equal(&c, &zero, sizeof(c));
    wx_crypto_release(&c);
    json_decref(all);
}

/* Checks one decryption of v's `encrypt` against plaintext/random_hex. */
static void check_decrypt(const struct wx_crypto *c, const json_t *v)
{
    struct kf_buf msg;
    unsigned char rnd[16];
    const char *plain = tu_jstr(v, "plaintext");
    size_t plen = strlen(plain);

    kf_buf_init(&msg, BIG);
    memset(rnd, 0xa5, sizeof(rnd));
    assert_int_equal(wx_crypto_decrypt(c, S(tu_jstr(v, "encrypt")), &msg,
                                       rnd), 0);
    assert_int_equal(msg.len, plen);
    assert_int_equal(msg.len, json_integer_value(
                                  json_object_get(v, "plaintext_len_bytes")));
    assert_memory_equal(msg.p, plain, plen);
    assert_hex_bytes(rnd, sizeof(rnd), tu_jstr(v, "random_hex"));
    /* random_out is optional. */
    assert_int_equal(wx_crypto_decrypt(c, S(tu_jstr(v, "encrypt")), &msg,
                                       NULL), 0);
    assert_int_equal(msg.len, plen);
    kf_buf_release(&msg);
}

static void test_decrypt_vectors_give_plaintext_and_random(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    size_t i, n = 0, files = 0;
    json_t *v;

    (void)state;
    json_array_foreach(all, i, v) {
        struct wx_crypto c;
        const char *file;

        if (strcmp(tu_jstr(v, "direction"), "decrypt") != 0)
            continue;
        n++;
        /* The push is authentic before we decrypt it. */
        assert_int_equal(wx_sign_verify_msg(S(tu_jstr(v, "token")),
                                            S(tu_jstr(v, "timestamp")),
                                            S(tu_jstr(v, "nonce")),
                                            S(tu_jstr(v, "encrypt")),
                                            S(tu_jstr(v, "msg_signature"))),
                         0);
        init_from(&c, v);
        check_decrypt(&c, v);
        file = json_string_value(json_object_get(v,
                                                 "expected_plaintext_file"));
        if (file) {
            char path[256];
            size_t flen;
            char *body;
            int w = snprintf(path, sizeof(path), "../vectors/%s", file);

            assert_true(w > 0 && (size_t)w < sizeof(path));
            body = tu_read_file(path, &flen);
            assert_int_equal(flen, strlen(tu_jstr(v, "plaintext")));
            assert_memory_equal(body, tu_jstr(v, "plaintext"), flen);
            free(body);
            files++;
        }
        wx_crypto_release(&c);
    }
    assert_true(n >= 4);
    assert_true(files >= 1);
    json_decref(all);
}

/* Our ciphertext is ciphertext_len bytes, i.e. the pad is pad_len. */
static void check_pad(const json_t *v, const struct kf_buf *b64)
{
    size_t ct = (size_t)json_integer_value(json_object_get(v,
                                                           "ciphertext_len"));
    size_t pad = (size_t)json_integer_value(json_object_get(v, "pad_len"));
    size_t body = 20 + strlen(tu_jstr(v, "plaintext")) +
                  strlen(tu_jstr(v, "appid"));
    size_t hexlen;
    unsigned char *padded = tu_unhex(tu_jstr(v, "padded_plaintext_hex"),
                                     &hexlen);
    size_t i;

    assert_int_equal(b64->len, (ct + 2) / 3 * 4);
    assert_true(pad >= 1 && pad <= 32);
    assert_int_equal(body + pad, ct);
    assert_int_equal(hexlen, ct);
    for (i = 0; i < pad; i++)
        assert_int_equal(padded[ct - 1 - i], pad);
    free(padded);
}

static void encrypt_and_sign(const json_t *v)
{
    struct wx_crypto c;
    struct kf_buf b64;
    size_t rlen;
    unsigned char *rnd = tu_unhex(tu_jstr(v, "random_hex"), &rlen);
    struct kf_str parts[4];
    char sig[WX_SIGN_HEX];

    assert_int_equal(rlen, 16);
    init_from(&c, v);
    kf_buf_init(&b64, BIG);
    assert_int_equal(wx_crypto_encrypt(&c, S(tu_jstr(v, "plaintext")), rnd,
                                       &b64), 0);
    assert_string_equal(b64.p, tu_jstr(v, "encrypt"));
    assert_null(memchr(b64.p, '\n', b64.len));
    check_pad(v, &b64);
    parts[0] = S(tu_jstr(v, "token"));
    parts[1] = S(tu_jstr(v, "timestamp"));
    parts[2] = S(tu_jstr(v, "nonce"));
    parts[3] = kf_buf_str(&b64);
    assert_int_equal(wx_sign_compute(parts, 4, sig), 0);
    assert_string_equal(sig, tu_jstr(v, "msg_signature"));
    kf_buf_release(&b64);
    free(rnd);
    wx_crypto_release(&c);
}

static void test_encrypt_vectors_give_exact_ciphertext(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    size_t i, n = 0;
    json_t *v;

    (void)state;
    json_array_foreach(all, i, v) {
        if (strcmp(tu_jstr(v, "direction"), "encrypt") != 0)
            continue;
        n++;
        encrypt_and_sign(v);
    }
    assert_true(n >= 10);
    json_decref(all);
}

/* Every vector, whichever its direction, decrypts to its plaintext and
 * re-encrypts (same random) to the same Encrypt text. */
static void test_all_vectors_round_trip(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    size_t i;
    json_t *v;

    (void)state;
    assert_true(json_array_size(all) > 0);
    json_array_foreach(all, i, v) {
        struct wx_crypto c;
        struct kf_buf msg, b64;
        unsigned char rnd[16];

        init_from(&c, v);
        check_decrypt(&c, v);
        kf_buf_init(&msg, BIG);
        kf_buf_init(&b64, BIG);
        assert_int_equal(wx_crypto_decrypt(&c, S(tu_jstr(v, "encrypt")),
                                           &msg, rnd), 0);
        assert_int_equal(wx_crypto_encrypt(&c, kf_buf_str(&msg), rnd, &b64),
                         0);
        assert_string_equal(b64.p, tu_jstr(v, "encrypt"));
        kf_buf_release(&msg);
        kf_buf_release(&b64);
        wx_crypto_release(&c);
    }
    json_decref(all);
}

static int stage_code(const char *stage)
{
    static const struct {
        const char *name;
        int rc;
    } map[] = { { "base64", KF_EBASE64 },  { "ciphertext_length", KF_ECIPHER },
                { "padding", KF_EPADDING }, { "length", KF_ELENGTH },
                { "appid", KF_EAPPID } };
    size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(stage, map[i].name) == 0)
            return map[i].rc;
    fail_msg("unknown stage %s", stage);
    return 0;
}

/* The decrypt stage a vector must fail at; 0 when it may legitimately
 * vary (a wrong key yields random bytes: padding, length or appid). */
static int expected_stage(const json_t *v)
{
    const char *s = json_string_value(
        json_object_get(v, "strict_reference_result"));

    if (json_object_get(v, "encrypted_with_key"))
        return 0;
    return stage_code(s ? s : tu_jstr(v, "kind"));
}

static int is_crypto_kind(const char *kind)
{
    return strcmp(kind, "base64") == 0 ||
           strcmp(kind, "ciphertext_length") == 0 ||
           strcmp(kind, "padding") == 0 || strcmp(kind, "length") == 0 ||
           strcmp(kind, "appid") == 0;
}

static void check_negative(const json_t *v)
{
    struct wx_crypto c;
    struct kf_buf msg;
    int want = expected_stage(v), rc, sig;
    const char *enc = tu_jstr(v, "encrypt");

    /* The msg_signature is valid, so only the decrypt stage can reject
     * (an empty Encrypt is refused by the signer already). */
    sig = wx_sign_verify_msg(S(tu_jstr(v, "token")),
                             S(tu_jstr(v, "timestamp")),
                             S(tu_jstr(v, "nonce")), S(enc),
                             S(tu_jstr(v, "msg_signature")));
    assert_int_equal(sig, enc[0] ? 0 : KF_EBADSIG);
    init_from(&c, v);
    kf_buf_init(&msg, BIG);
    rc = wx_crypto_decrypt(&c, S(enc), &msg, NULL);
    assert_int_not_equal(rc, 0);
    assert_int_equal(msg.len, 0);
    if (want)
        assert_int_equal(rc, want);
    else
        assert_true(rc == KF_EPADDING || rc == KF_ELENGTH ||
                    rc == KF_EAPPID);
    kf_buf_release(&msg);
    wx_crypto_release(&c);
}

static void test_decrypt_rejects_negative_vectors_at_their_stage(void **state)
{
    json_t *all = tu_read_json(VEC("negative.json"));
    size_t i, n = 0, exact = 0;
    json_t *v;

    (void)state;
    json_array_foreach(all, i, v) {
        if (!is_crypto_kind(tu_jstr(v, "kind")))
            continue;
        n++;
        exact += expected_stage(v) != 0;
        check_negative(v);
    }
    assert_true(n >= 20);
    assert_true(exact >= n - 1);
    json_decref(all);
}

/* S-neg-wrong-key decrypts fine with the key it was made with: the
 * rejection above really is the key. */
static void test_wrong_key_vector_decrypts_with_its_own_key(void **state)
{
    json_t *all = tu_read_json(VEC("negative.json"));
    size_t i, n = 0;
    json_t *v;

    (void)state;
    json_array_foreach(all, i, v) {
        const char *other = json_string_value(json_object_get(v,
                                                  "encrypted_with_key"));
        struct wx_crypto c;
        struct kf_buf msg;

        if (!other)
            continue;
        n++;
        assert_int_equal(wx_crypto_init(&c, S(other), S(tu_jstr(v, "appid"))),
                         0);
        kf_buf_init(&msg, BIG);
        assert_int_equal(wx_crypto_decrypt(&c, S(tu_jstr(v, "encrypt")), &msg,
                                           NULL), 0);
        assert_true(msg.len > 0);
        kf_buf_release(&msg);
        wx_crypto_release(&c);
    }
    assert_int_equal(n, 1);
    json_decref(all);
}

/* Configured appid differs from the one inside the plaintext: same
 * length, a prefix, and an extension. */
static void test_decrypt_rejects_other_appid(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    json_t *v = vector_by_id(all, "S-in-text");
    const char *key = tu_jstr(v, "encoding_aes_key");
    const char *appid = tu_jstr(v, "appid");
    size_t alen = strlen(appid);
    char other[WX_CRYPTO_APPID_MAX + 1];
    struct wx_crypto c;
    struct kf_buf msg;

    (void)state;
    assert_true(alen + 1 <= WX_CRYPTO_APPID_MAX);
    kf_buf_init(&msg, BIG);
    memcpy(other, appid, alen + 1);
    other[alen - 1] = other[alen - 1] == '0' ? '1' : '0';
    assert_int_equal(wx_crypto_init(&c, S(key), S(other)), 0);
    assert_int_equal(wx_crypto_decrypt(&c, S(tu_jstr(v, "encrypt")), &msg,
                                       NULL), KF_EAPPID);
    assert_int_equal(wx_crypto_init(&c, S(key),
                                    (struct kf_str){ appid, alen - 1 }), 0);
    assert_int_equal(wx_crypto_decrypt(&c, S(tu_jstr(v, "encrypt")), &msg,
                                       NULL), KF_EAPPID);
    memcpy(other, appid, alen);
    other[alen] = 'x';
    assert_int_equal(wx_crypto_init(&c, S(key),
                                    (struct kf_str){ other, alen + 1 }), 0);
    assert_int_equal(wx_crypto_decrypt(&c, S(tu_jstr(v, "encrypt")), &msg,
                                       NULL), KF_EAPPID);
    assert_int_equal(msg.len, 0);
    kf_buf_release(&msg);
    wx_crypto_release(&c);
    json_decref(all);
}

/* Strict base64: mutations of a valid Encrypt text. */
static void test_decrypt_rejects_malformed_base64(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    json_t *v = vector_by_id(all, "S-in-text");
    const char *enc = tu_jstr(v, "encrypt");
    size_t len = strlen(enc), k;
    char *m = malloc(len + 2);
    static const char bad[] = { '=', '*', '-', '_', ' ', '\n', '\0', '.' };
    struct wx_crypto c;
    struct kf_buf msg;

    (void)state;
    assert_non_null(m);
    init_from(&c, v);
    kf_buf_init(&msg, BIG);
    for (k = 0; k < sizeof(bad); k++) {
        memcpy(m, enc, len + 1);
        m[8] = bad[k];
        assert_int_equal(wx_crypto_decrypt(&c, (struct kf_str){ m, len },
                                           &msg, NULL), KF_EBASE64);
    }
    /* Length not a multiple of 4 (a trailing newline, one char short). */
    memcpy(m, enc, len + 1);
    m[len] = '\n';
    assert_int_equal(wx_crypto_decrypt(&c, (struct kf_str){ m, len + 1 },
                                       &msg, NULL), KF_EBASE64);
    assert_int_equal(wx_crypto_decrypt(&c, (struct kf_str){ m, len - 1 },
                                       &msg, NULL), KF_EBASE64);
    /* Three '=' and '=' inside the last quantum are invalid. */
    assert_int_equal(wx_crypto_decrypt(&c, S("AAAAA==="), &msg, NULL),
                     KF_EBASE64);
    assert_int_equal(wx_crypto_decrypt(&c, S("AAAAA=A="), &msg, NULL),
                     KF_EBASE64);
    /* Valid base64, wrong size: 3 bytes. */
    assert_int_equal(wx_crypto_decrypt(&c, S("AAAA"), &msg, NULL),
                     KF_ECIPHER);
    /* And the unmodified text still decrypts. */
    assert_int_equal(wx_crypto_decrypt(&c, S(enc), &msg, NULL), 0);
    free(m);
    kf_buf_release(&msg);
    wx_crypto_release(&c);
    json_decref(all);
}

static void test_decrypt_rejects_oversized_input(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    size_t n = WX_CRYPTO_B64_MAX + 4;
    char *big = malloc(n);
    struct wx_crypto c;
    struct kf_buf msg;

    (void)state;
    assert_non_null(big);
    memset(big, 'A', n);
    init_from(&c, json_array_get(all, 0));
    kf_buf_init(&msg, BIG);
    assert_int_equal(wx_crypto_decrypt(&c, (struct kf_str){ big, n }, &msg,
                                       NULL), KF_ETOOBIG);
    /* At the cap the size is accepted and the content is judged. */
    assert_int_not_equal(wx_crypto_decrypt(&c, (struct kf_str){
                                                   big, WX_CRYPTO_B64_MAX },
                                           &msg, NULL), KF_ETOOBIG);
    free(big);
    kf_buf_release(&msg);
    wx_crypto_release(&c);
    json_decref(all);
}

static void test_decrypt_respects_msg_cap(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    json_t *v = vector_by_id(all, "S-in-text");
    size_t plen = strlen(tu_jstr(v, "plaintext"));
    struct wx_crypto c;
    struct kf_buf msg;

    (void)state;
    init_from(&c, v);
    kf_buf_init(&msg, plen - 1);
    assert_int_equal(wx_crypto_decrypt(&c, S(tu_jstr(v, "encrypt")), &msg,
                                       NULL), KF_ETOOBIG);
    assert_int_equal(msg.len, 0);
    kf_buf_release(&msg);
    kf_buf_init(&msg, plen);
    assert_int_equal(wx_crypto_decrypt(&c, S(tu_jstr(v, "encrypt")), &msg,
                                       NULL), 0);
    assert_int_equal(msg.len, plen);
    kf_buf_release(&msg);
    wx_crypto_release(&c);
    json_decref(all);
}

/* Builds a message of n bytes including every byte value (NULs too). */
static char *binary_msg(size_t n)
{
    char *p = malloc(n ? n : 1);
    size_t i;

    assert_non_null(p);
    for (i = 0; i < n; i++)
        p[i] = (char)(unsigned char)(i * 7);
    return p;
}

static void round_trip(const struct wx_crypto *c, struct kf_str m,
                       const unsigned char *rnd, struct kf_buf *b64)
{
    struct kf_buf back;
    unsigned char got[16];

    kf_buf_init(&back, BIG);
    assert_int_equal(wx_crypto_encrypt(c, m, rnd, b64), 0);
    assert_int_equal(wx_crypto_decrypt(c, kf_buf_str(b64), &back, got), 0);
    assert_int_equal(back.len, m.len);
    if (m.len)
        assert_memory_equal(back.p, m.p, m.len);
    if (rnd)
        assert_memory_equal(got, rnd, 16);
    kf_buf_release(&back);
}

static void test_empty_message_round_trips(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    struct wx_crypto c;
    struct kf_buf b64;

    (void)state;
    init_from(&c, json_array_get(all, 0));
    kf_buf_init(&b64, BIG);
    round_trip(&c, S(""), NULL, &b64);
    round_trip(&c, (struct kf_str){ NULL, 0 }, NULL, &b64);
    kf_buf_release(&b64);
    wx_crypto_release(&c);
    json_decref(all);
}

/* Every length across two blocks: sizes step by 32 and aligned bodies
 * get a whole extra block; binary content survives. */
static void test_padding_covers_every_length(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    struct wx_crypto c;
    struct kf_buf b64;
    unsigned char rnd[16] = { 0 };
    char *m = binary_msg(100);
    size_t len, full_blocks = 0;

    (void)state;
    init_from(&c, json_array_get(all, 0));
    kf_buf_init(&b64, BIG);
    for (len = 0; len <= 100; len++) {
        size_t body = 20 + len + c.appid_len;
        size_t ct = (body / 32 + 1) * 32;

        rnd[0] = (unsigned char)len;
        round_trip(&c, (struct kf_str){ m, len }, rnd, &b64);
        assert_int_equal(b64.len, (ct + 2) / 3 * 4);
        full_blocks += body % 32 == 0;
    }
    assert_true(full_blocks >= 2);
    free(m);
    kf_buf_release(&b64);
    wx_crypto_release(&c);
    json_decref(all);
}

static void test_encrypt_with_rng_differs_each_time(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    json_t *v = vector_by_id(all, "S-pad32");
    struct wx_crypto c;
    struct kf_buf a, b;
    struct kf_str m = S(tu_jstr(v, "plaintext"));

    (void)state;
    init_from(&c, v);
    kf_buf_init(&a, BIG);
    kf_buf_init(&b, BIG);
    round_trip(&c, m, NULL, &a);
    round_trip(&c, m, NULL, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_not_equal(a.p, b.p, a.len);
    kf_buf_release(&a);
    kf_buf_release(&b);
    wx_crypto_release(&c);
    json_decref(all);
}

static void test_encrypt_respects_caps(void **state)
{
    json_t *all = tu_read_json(VEC("safe_mode.json"));
    json_t *v = vector_by_id(all, "S-pad32");
    struct wx_crypto c;
    struct kf_buf b64;
    size_t want = strlen(tu_jstr(v, "encrypt"));
    size_t big = WX_CRYPTO_CIPHER_MAX;
    char *m = binary_msg(big);

    (void)state;
    init_from(&c, v);
    kf_buf_init(&b64, want - 1);
    assert_int_equal(wx_crypto_encrypt(&c, S(tu_jstr(v, "plaintext")), NULL,
                                       &b64), KF_ETOOBIG);
    assert_int_equal(b64.len, 0);
    kf_buf_release(&b64);
    kf_buf_init(&b64, want);
    assert_int_equal(wx_crypto_encrypt(&c, S(tu_jstr(v, "plaintext")), NULL,
                                       &b64), 0);
    kf_buf_release(&b64);
    /* The largest message that fits WX_CRYPTO_B64_MAX, and one more. */
    kf_buf_init(&b64, 2 * WX_CRYPTO_B64_MAX);
    big = WX_CRYPTO_CIPHER_MAX - 1 - 20 - c.appid_len;
    round_trip(&c, (struct kf_str){ m, big }, NULL, &b64);
    assert_true(b64.len <= WX_CRYPTO_B64_MAX);
    assert_int_equal(wx_crypto_encrypt(&c, (struct kf_str){ m, big + 1 },
                                       NULL, &b64), KF_ETOOBIG);
    free(m);
    kf_buf_release(&b64);
    wx_crypto_release(&c);
    json_decref(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_derivation_matches_aes_keys_tsv),
        cmocka_unit_test(test_key_init_rejects_negative_aes_keys),
        cmocka_unit_test(test_key_init_rejects_bad_key_and_appid),
        cmocka_unit_test(test_release_wipes_key),
        cmocka_unit_test(test_decrypt_vectors_give_plaintext_and_random),
        cmocka_unit_test(test_encrypt_vectors_give_exact_ciphertext),
        cmocka_unit_test(test_all_vectors_round_trip),
        cmocka_unit_test(test_decrypt_rejects_negative_vectors_at_their_stage),
        cmocka_unit_test(test_wrong_key_vector_decrypts_with_its_own_key),
        cmocka_unit_test(test_decrypt_rejects_other_appid),
        cmocka_unit_test(test_decrypt_rejects_malformed_base64),
        cmocka_unit_test(test_decrypt_rejects_oversized_input),
        cmocka_unit_test(test_decrypt_respects_msg_cap),
        cmocka_unit_test(test_empty_message_round_trips),
        cmocka_unit_test(test_padding_covers_every_length),
        cmocka_unit_test(test_encrypt_with_rng_differs_each_time),
        cmocka_unit_test(test_encrypt_respects_caps),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
