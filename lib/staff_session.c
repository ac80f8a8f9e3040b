/* staff_session: password sign-in sessions and lock-out (staff.lua). */
#include "staff_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "agent_token.h"
#include "lua.h"
#include "store.h"

#include "banned.h"

int staff_session_expired(int64_t created_ms, int64_t last_ms,
                          int64_t now_ms, int64_t idle_ms, int64_t max_ms)
{
    return now_ms - last_ms >= idle_ms || now_ms - created_ms >= max_ms;
}

int64_t staff_lock_delay_ms(int64_t failures)
{
    int64_t d = STAFF_LOCK_BASE_MS, n;

    if (failures <= STAFF_LOCK_FREE)
        return 0;
    for (n = failures - STAFF_LOCK_FREE - 1; n > 0 && d < STAFF_LOCK_MAX_MS;
         n--)
        d *= 2;
    return d < STAFF_LOCK_MAX_MS ? d : STAFF_LOCK_MAX_MS;
}

int staff_csrf_ok(struct kf_str method, struct kf_str header,
                  const char *expected)
{
    if (kf_str_eq_c(method, "GET") || kf_str_eq_c(method, "HEAD") ||
        kf_str_eq_c(method, "OPTIONS"))
        return 1;
    return strlen(expected) == STAFF_SID_SIZE - 1 &&
           header.len == STAFF_SID_SIZE - 1 &&
           CRYPTO_memcmp(header.p, expected, header.len) == 0;
}

int staff_cookie_sid(struct kf_str c, struct kf_str *out)
{
    const size_t nlen = sizeof(STAFF_COOKIE) - 1;
    size_t i = 0, end;

    while (i < c.len) {
        while (i < c.len && (c.p[i] == ' ' || c.p[i] == ';'))
            i++;
        for (end = i; end < c.len && c.p[end] != ';'; end++)
            ;
        if (end - i > nlen && memcmp(c.p + i, STAFF_COOKIE, nlen) == 0 &&
            c.p[i + nlen] == '=') {
            *out = (struct kf_str){ c.p + i + nlen + 1, end - i - nlen - 1 };
            if (kf_is_hex(*out, STAFF_SID_SIZE - 1))
                return 0;
        }
        i = end;
    }
    *out = (struct kf_str){ "", 0 };
    return KF_ENOTFOUND;
}

/* staff.lua, its SHA-1 computed on first use (a process uses it from
 * one thread: the worker's request loop, or a command). */
static const struct store_script *script(void)
{
    static struct store_script sc;

    if (!sc.src)
        store_script_init(&sc, lua_staff);
    return &sc;
}

static int run(struct store *st, int n, const char *const *args,
               struct store_reply **out)
{
    int rc = store_run(st, script(), 0, NULL, n, args, NULL, out);

    return rc < 0 ? KF_EBACKEND : 0;
}

/* run, for an op whose answer is {n}: n into *v. */
static int run_int(struct store *st, int n, const char *const *args,
                   int64_t *v)
{
    struct store_reply *rep = NULL;
    int rc = run(st, n, args, &rep);

    *v = 0;
    if (rc == 0 && store_reply_at_int(rep, 0, v) < 0)
        rc = KF_EBACKEND;
    store_reply_free(rep);
    return rc;
}

/* 32 random bytes as 64 hex. */
static int random_hex(char out[STAFF_SID_SIZE])
{
    unsigned char raw[32];

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return KF_ECRYPTO;
    kf_hex(raw, sizeof(raw), out);
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

int staff_session_new(struct store *st, const struct staff_user *u,
                      int64_t now_ms, int64_t idle_ms, int64_t max_ms,
                      char sid[STAFF_SID_SIZE], char csrf[STAFF_SID_SIZE])
{
    char hash[STAFF_SID_SIZE], now[24], idle[24], max[24];
    const char *args[10] = { "new", hash, u->login, u->role, u->agent, csrf,
                             u->name, now, idle, max };
    int rc;

    rc = random_hex(sid);
    if (rc == 0)
        rc = random_hex(csrf);
    if (rc == 0)
        rc = agent_token_hash(sid, hash);
    if (rc < 0)
        goto out;
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(idle, sizeof(idle), "%lld", (long long)idle_ms);
    snprintf(max, sizeof(max), "%lld", (long long)max_ms);
    rc = run(st, 10, args, NULL);
out:
    if (rc < 0) {
        OPENSSL_cleanse(sid, STAFF_SID_SIZE);
        OPENSSL_cleanse(csrf, STAFF_SID_SIZE);
    }
    return rc;
}

static void copy_at(const struct store_reply *rep, size_t i, char *out,
                    size_t n)
{
    if (store_reply_at_copy(rep, i, out, n) < 0)
        out[0] = '\0';
}

int staff_session_get(struct store *st, struct kf_str sid, int64_t now_ms,
                      int64_t idle_ms, int64_t max_ms,
                      struct staff_session *out)
{
    char id[STAFF_SID_SIZE], now[24], idle[24], max[24];
    const char *args[5] = { "get", out->hash, now, idle, max };
    struct store_reply *rep = NULL;
    int64_t created = 0, last = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!kf_is_hex(sid, STAFF_SID_SIZE - 1))
        return KF_ENOTFOUND;
    memcpy(id, sid.p, sid.len);
    id[sid.len] = '\0';
    rc = agent_token_hash(id, out->hash);
    OPENSSL_cleanse(id, sizeof(id));
    if (rc < 0)
        return rc;
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(idle, sizeof(idle), "%lld", (long long)idle_ms);
    snprintf(max, sizeof(max), "%lld", (long long)max_ms);
    rc = run(st, 5, args, &rep);
    if (rc < 0)
        return rc;
    if (!store_reply_at_is(rep, 0, "ok") ||
        store_reply_at_int(rep, 6, &created) < 0 ||
        store_reply_at_int(rep, 7, &last) < 0) {
        store_reply_free(rep);
        return KF_ENOTFOUND;
    }
    copy_at(rep, 1, out->login, sizeof(out->login));
    copy_at(rep, 2, out->role, sizeof(out->role));
    copy_at(rep, 3, out->agent, sizeof(out->agent));
    copy_at(rep, 4, out->csrf, sizeof(out->csrf));
    copy_at(rep, 5, out->name, sizeof(out->name));
    copy_at(rep, 8, out->agent_status, sizeof(out->agent_status));
    store_reply_free(rep);
    if (staff_session_expired(created, last, now_ms, idle_ms, max_ms) ||
        strcmp(out->agent_status, "gone") == 0) {
        rc = staff_session_end(st, out->hash);
        memset(out, 0, sizeof(*out));
        return rc < 0 ? rc : KF_ENOTFOUND;
    }
    return 0;
}

int staff_session_end(struct store *st, const char *hash)
{
    const char *args[2] = { "end", hash };

    return run(st, 2, args, NULL);
}

int staff_session_end_all(struct store *st, const char *login,
                          const char *keep_hash, long *n)
{
    const char *args[3] = { "end_all", login, keep_hash ? keep_hash : "" };
    int64_t v;
    int rc = run_int(st, 3, args, &v);

    if (n)
        *n = (long)v;
    return rc;
}

int staff_lock_check(struct store *st, const char *login, int64_t now_ms,
                     int64_t *left_ms)
{
    char now[24];
    const char *args[3] = { "lock", login, now };
    struct store_reply *rep = NULL;
    int rc;

    *left_ms = 0;
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    rc = run(st, 3, args, &rep);
    if (rc == 0 && store_reply_at_is(rep, 0, "locked")) {
        if (store_reply_at_int(rep, 1, left_ms) < 0 || *left_ms < 1)
            *left_ms = 1;
        rc = KF_ELIMIT;
    }
    store_reply_free(rep);
    return rc;
}

int staff_lock_fail(struct store *st, const char *login, int64_t now_ms,
                    int64_t *locked_ms)
{
    char until[24];
    const char *fail[2] = { "fail", login },
               *lock[3] = { "lock_until", login, until };
    const char *const *tail = st->tail;     /* an armed audit record */
    int ntail = st->ntail, rc;
    int64_t n;

    rc = run_int(st, 2, fail, &n);
    *locked_ms = rc == 0 ? staff_lock_delay_ms(n) : 0;
    if (rc < 0 || *locked_ms == 0)
        return rc;
    snprintf(until, sizeof(until), "%lld", (long long)(now_ms + *locked_ms));
    st->tail = tail;            /* the lock-out is audited too */
    st->ntail = ntail;
    return run(st, 3, lock, NULL);
}

int staff_lock_clear(struct store *st, const char *login)
{
    const char *args[2] = { "unlock", login };

    return run(st, 2, args, NULL);
}
