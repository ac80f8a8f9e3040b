/* kf: the shared vocabulary of wxkf — byte views (kf_str), capped growable
 * buffers (kf_buf) and the error codes every lib/ function returns. */
#ifndef KF_H
#define KF_H

#include <stddef.h>
#include <stdint.h>

#define KF_WUR __attribute__((warn_unused_result))

#define KF_ERRORS(X)                                                    \
    X(ENOMEM, -1, "out of memory")                                      \
    X(ETOOBIG, -2, "input exceeds limit")                               \
    X(EPARSE, -3, "malformed input")                                    \
    X(EBADSIG, -4, "signature mismatch")                                \
    X(EBACKEND, -5, "backend unavailable")                              \
    X(ESTALE, -6, "timestamp outside the allowed window")               \
    X(EINVAL, -7, "invalid argument")                                   \
    X(EBASE64, -8, "invalid base64")                                    \
    X(ECIPHER, -9, "ciphertext length is not a positive multiple of 32") \
    X(EPADDING, -10, "invalid PKCS#7 padding")                          \
    X(ELENGTH, -11, "message length field inconsistent with the data")  \
    X(EAPPID, -12, "appid mismatch")                                    \
    X(EAESKEY, -13, "invalid EncodingAESKey")                           \
    X(EDTD, -14, "DTD or entity declaration refused")                   \
    X(ECONFIG, -15, "invalid configuration")                            \
    X(EIO, -16, "I/O error")                                            \
    X(ENOTFOUND, -17, "not found")                                      \
    X(ECRYPTO, -18, "crypto library failure")                           \
    X(EACCOUNT, -19, "message addressed to another account")            \
    X(ENOKEY, -20, "encryption is not configured")                      \
    X(ELIMIT, -21, "rate limit or budget reached")                      \
    X(EWECHAT, -22, "WeChat refused the request")                       \
    X(EENCODING, -23, "callback encryption refused by [wechat] encoding") \
    X(EREPLAY, -24, "signed query already used with another message")   \
    X(EVERSION, -25, "server version too old")                          \
    X(EEXISTS, -26, "already exists")                                   \
    X(EBUSY, -27, "in use: refused until it is released")

enum kf_err {
    KF_OK = 0,
#define X(name, code, msg) KF_##name = code,
    KF_ERRORS(X)
#undef X
};

/* Static text for rc (never NULL). */
const char *kf_strerror(int rc);

/* A borrowed view of bytes; never assumed NUL-terminated. */
struct kf_str {
    const char *p;
    size_t len;
};

/* A macro's value as a string literal: KF_XSTR(AGENT_WEIGHT_MAX) is "100". */
#define KF_XSTR_(x) #x
#define KF_XSTR(x) KF_XSTR_(x)
#define KF_STR(lit) ((struct kf_str){ (lit), sizeof(lit) - 1 })
struct kf_str kf_str_c(const char *s);             /* NULL -> empty */
int kf_str_eq(struct kf_str a, struct kf_str b);   /* 1 if same bytes */
int kf_str_eq_c(struct kf_str a, const char *b);

/* A growable byte buffer with a hard cap. p is always NUL-terminated
 * (the NUL is not counted in len) once anything was appended. */
struct kf_buf {
    char *p;
    size_t len, cap, max;
};

void kf_buf_init(struct kf_buf *b, size_t max);    /* never fails */
KF_WUR int kf_buf_append(struct kf_buf *b, const void *p, size_t n);
KF_WUR int kf_buf_append_str(struct kf_buf *b, struct kf_str s);
KF_WUR int kf_buf_append_c(struct kf_buf *b, const char *s);
KF_WUR int kf_buf_printf(struct kf_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void kf_buf_reset(struct kf_buf *b);               /* len = 0, keeps memory */
void kf_buf_release(struct kf_buf *b);             /* safe twice */
/* Hands p to the caller (who frees it) and resets b. Never NULL on a
 * buffer that had an append; may be NULL on an untouched one. */
char *kf_buf_detach(struct kf_buf *b, size_t *len);
static inline struct kf_str kf_buf_str(const struct kf_buf *b)
{
    return (struct kf_str){ b->p ? b->p : "", b->len };
}

/* The length (1..4) of the valid UTF-8 sequence at p[0..n) — the shortest
 * form of a Unicode scalar value (no surrogates, nothing past U+10FFFF) —
 * and its code point in *cp; 0 if the bytes are not one. NUL counts as
 * valid (callers that refuse it check *cp). n must be >= 1. */
size_t kf_utf8_next(const unsigned char *p, size_t n, uint32_t *cp);
/* Checks s (NUL-terminated, untrusted text a person wrote: a summary, a
 * label): 0 when it is UTF-8 of at most max_chars characters (code
 * points) without control characters (C0, DEL, C1) — line feeds and tabs
 * allowed when lines is 1, U+2028/U+2029 (line breaks) refused when 0. KF_EPARSE not UTF-8, KF_EINVAL a control
 * character, KF_ETOOBIG too long. */
int kf_text_check(const char *s, size_t max_chars, int lines);
/* Ends s (NUL-terminated) before its first byte that does not begin a
 * complete valid UTF-8 sequence — e.g. a character cut in half by a
 * bounded copy — so the text is safe to put into JSON. */
void kf_utf8_trim(char *s);

/* 1 when s is an OpenID as WeChat makes them: 1..KF_OPENID_MAX of
 * [A-Za-z0-9_-]. */
#define KF_OPENID_MAX 64
int kf_openid_ok(struct kf_str s);

/* Writes the n bytes at p as 2n lowercase hex digits and a NUL into out
 * (2n + 1 bytes). Never fails. */
void kf_hex(const void *p, size_t n, char *out);
/* 1 when s is exactly len lowercase hex digits (a token's id or hash as
 * kf_hex writes it), else 0. */
int kf_is_hex(struct kf_str s, size_t len);

/* Clocks in milliseconds: wall (CLOCK_REALTIME, for timestamps shared
 * between processes and hosts) and monotonic (for timeouts and backoff
 * inside one process). kf_sleep_ms sleeps the whole time, through
 * signals. */
int64_t kf_wall_ms(void);
int64_t kf_mono_ms(void);
void kf_sleep_ms(long ms);

/* Parse a decimal uint64 that fills all of s (no sign, no spaces). */
KF_WUR int kf_parse_u64(struct kf_str s, uint64_t *out);

#endif
