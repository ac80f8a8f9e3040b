/* version: minimum server versions, reading and comparing versions. */
#include "version.h"

#include <stdio.h>
#include <string.h>

#include "banned.h"

#define PART_MAX 99999u

/* Derived from what lib/ and lib/lua send and what sql/ creates
 * (docs/operations.md, "Versions"); raise them with the feature. */
static const struct version_need needs[] = {
    [VERSION_REDIS] = { "redis", { 6, 2, 0 },
                        "XAUTOCLAIM, GETDEL, XTRIM MINID" },
    [VERSION_POSTGRES] = { "postgres", { 11, 0, 0 },
                           "DEFAULT partitions, unique keys, indexes and "
                           "ON CONFLICT on a partitioned table" },
};

const struct version_need *version_need(enum version_server s)
{
    return &needs[s];
}

/* Digits at s->p[*i..]; moves *i past them. 0 when there are none or the
 * number is above PART_MAX. */
static int number(struct kf_str s, size_t *i, unsigned *out)
{
    size_t start = *i;
    unsigned v = 0;

    while (*i < s.len && s.p[*i] >= '0' && s.p[*i] <= '9') {
        v = v * 10 + (unsigned)(s.p[*i] - '0');
        if (v > PART_MAX)
            return 0;
        (*i)++;
    }
    *out = v;
    return *i > start;
}

int version_parse(struct kf_str s, struct version *out)
{
    unsigned *part[] = { &out->major, &out->minor, &out->patch };
    size_t i = 0, k;

    memset(out, 0, sizeof(*out));
    for (k = 0; k < 3; k++) {
        if (!number(s, &i, part[k]))
            return KF_EPARSE;   /* no digits, or a part too big */
        /* a part goes on only after a dot followed by a digit */
        if (i + 1 >= s.len || s.p[i] != '.' || s.p[i + 1] < '0' ||
            s.p[i + 1] > '9')
            return 0;
        i++;
    }
    return 0;
}

int version_cmp(const struct version *a, const struct version *b)
{
    if (a->major != b->major)
        return a->major < b->major ? -1 : 1;
    if (a->minor != b->minor)
        return a->minor < b->minor ? -1 : 1;
    if (a->patch != b->patch)
        return a->patch < b->patch ? -1 : 1;
    return 0;
}

int version_from_redis_info(struct kf_str info, struct version *out)
{
    static const char key[] = "redis_version:";
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    while (i < info.len) {
        const char *nl = memchr(info.p + i, '\n', info.len - i);
        size_t end = nl ? (size_t)(nl - info.p) : info.len;

        if (end - i >= sizeof(key) - 1 &&
            memcmp(info.p + i, key, sizeof(key) - 1) == 0) {
            struct kf_str v = { info.p + i + sizeof(key) - 1,
                                end - i - (sizeof(key) - 1) };

            return version_parse(v, out);
        }
        i = end + 1;
    }
    return KF_ENOTFOUND;
}

int version_from_pg_num(int num, struct version *out)
{
    memset(out, 0, sizeof(*out));
    if (num <= 0)
        return KF_EPARSE;
    out->major = (unsigned)num / 10000;
    if (out->major >= 10) {
        out->minor = (unsigned)num % 10000;
    } else {
        out->minor = (unsigned)num / 100 % 100;
        out->patch = (unsigned)num % 100;
    }
    return 0;
}

int version_check(enum version_server s, const struct version *v,
                  char *msg, size_t n)
{
    const struct version_need *need = version_need(s);
    int old = version_cmp(v, &need->min) < 0;

    if (msg && n) {
        if (old)
            snprintf(msg, n, "%s %u.%u.%u is too old: wxkf needs >= "
                     "%u.%u.%u (%s)", need->name, v->major, v->minor,
                     v->patch, need->min.major, need->min.minor,
                     need->min.patch, need->why);
        else
            snprintf(msg, n, "%s %u.%u.%u", need->name, v->major,
                     v->minor, v->patch);
    }
    return old ? KF_EVERSION : 0;
}
