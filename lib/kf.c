/* kf: error strings, byte views and capped buffers. */
#include "kf.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "banned.h"

const char *kf_strerror(int rc)
{
    switch (rc) {
    case KF_OK:
        return "ok";
#define X(name, code, msg) \
    case KF_##name:        \
        return msg;
        KF_ERRORS(X)
#undef X
    }
    return "unknown error";
}

struct kf_str kf_str_c(const char *s)
{
    return (struct kf_str){ s ? s : "", s ? strlen(s) : 0 };
}

int kf_str_eq(struct kf_str a, struct kf_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

int kf_str_eq_c(struct kf_str a, const char *b)
{
    return kf_str_eq(a, kf_str_c(b));
}

void kf_buf_init(struct kf_buf *b, size_t max)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static int grow(struct kf_buf *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (extra > b->max || b->len > b->max - extra)
        return KF_ETOOBIG;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->p, cap);
    if (!p)
        return KF_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int kf_buf_append(struct kf_buf *b, const void *p, size_t n)
{
    int rc = grow(b, n);

    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int kf_buf_append_str(struct kf_buf *b, struct kf_str s)
{
    return kf_buf_append(b, s.p, s.len);
}

int kf_buf_append_c(struct kf_buf *b, const char *s)
{
    return kf_buf_append(b, s, strlen(s));
}

int kf_buf_printf(struct kf_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return KF_EINVAL;
    rc = grow(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void kf_buf_reset(struct kf_buf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

void kf_buf_release(struct kf_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

char *kf_buf_detach(struct kf_buf *b, size_t *len)
{
    char *p = b->p;

    if (len)
        *len = b->len;
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

int kf_openid_ok(struct kf_str s)
{
    size_t i;

    if (s.len < 1 || s.len > KF_OPENID_MAX)
        return 0;
    for (i = 0; i < s.len; i++) {
        char c = s.p[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

size_t kf_utf8_next(const unsigned char *p, size_t n, uint32_t *cp)
{
    uint32_t c;
    size_t len, i;

    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2, c = p[0] & 0x1fu;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3, c = p[0] & 0x0fu;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4, c = p[0] & 0x07u;
    else
        return 0;       /* continuation byte, C0/C1 overlong lead, > F4 */
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3fu);
    }
    if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
        c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

int kf_text_check(const char *s, size_t max_chars, int lines)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, chars = 0;

    while (i < n) {
        uint32_t c;
        size_t len = kf_utf8_next(p + i, n - i, &c);

        if (len == 0)
            return KF_EPARSE;
        if ((c < 0x20 && !(lines && (c == '\n' || c == '\t'))) ||
            (c >= 0x7f && c < 0xa0) ||
            (!lines && (c == 0x2028 || c == 0x2029)))  /* line breaks */
            return KF_EINVAL;
        i += len;
        if (++chars > max_chars)
            return KF_ETOOBIG;
    }
    return 0;
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kf_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t kf_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

void kf_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int kf_parse_u64(struct kf_str s, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (s.len == 0 || s.len > 20)
        return KF_EPARSE;
    for (i = 0; i < s.len; i++) {
        unsigned d;

        if (s.p[i] < '0' || s.p[i] > '9')
            return KF_EPARSE;
        d = (unsigned)(s.p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return KF_EPARSE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

void kf_utf8_trim(char *s)
{
    size_t i = 0, n = strlen(s), k;
    uint32_t cp;

    while (i < n) {
        k = kf_utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (k == 0)
            break;
        i += k;
    }
    s[i] = '\0';
}

void kf_hex(const void *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = p;
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int kf_is_hex(struct kf_str s, size_t len)
{
    size_t i;

    if (s.len != len)
        return 0;
    for (i = 0; i < len; i++)
        if (!((s.p[i] >= '0' && s.p[i] <= '9') ||
              (s.p[i] >= 'a' && s.p[i] <= 'f')))
            return 0;
    return 1;
}
