/* agent: the record, its validation and the list of records. */
#include "agent.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf.h"

#include "banned.h"

/* ---------------------------------------------------------------- errors */

int agent_fail(struct agent_err *err, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err) {
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return rc;
}

void agent_err_reset(struct agent_err *err)
{
    if (err) {
        err->msg[0] = '\0';
        err->mirror_stale = 0;
    }
}

/* ------------------------------------------------------------ validation */

static int is_word(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '_';
}

static int is_group_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

int agent_check_account(const char *s, struct agent_err *err)
{
    size_t i = 0, j;

    if (!s)
        s = "";
    while (i <= 10 && is_word((unsigned char)s[i]))
        i++;
    if (i >= 1 && i <= 10 && s[i] == '\0')
        return 0;
    if (i >= 1 && i <= 10 && s[i] == '@') {
        for (j = i + 1; j - i <= 31 && (is_word((unsigned char)s[j]) ||
                                        s[j] == '-'); j++)
            ;
        if (j - i - 1 >= 1 && j - i - 1 <= 30 && s[j] == '\0')
            return 0;
    }
    return agent_fail(err, KF_EINVAL, "account: must be 1-10 of [A-Za-z0-9_], "
                      "optionally followed by @ and 1-30 of [A-Za-z0-9_-]");
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid
 * (overlong, surrogate, beyond U+10FFFF, truncated); *cp gets it. */
static size_t utf8_next(const unsigned char *p, size_t n, unsigned long *cp)
{
    uint32_t c = 0;
    size_t len = kf_utf8_next(p, n, &c);

    *cp = c;
    return len;
}

int agent_check_nick(const char *nick, struct agent_err *err)
{
    const unsigned char *p = (const unsigned char *)(nick ? nick : "");
    size_t n = strlen((const char *)p), chars = 0, i = 0, len;
    unsigned long c;

    if (n == 0)
        return agent_fail(err, KF_EINVAL, "nick: must not be empty");
    if (n > 255)
        return agent_fail(err, KF_EINVAL, "nick: longer than 255 bytes");
    while (i < n) {
        len = utf8_next(p + i, n - i, &c);
        if (len == 0)
            return agent_fail(err, KF_EINVAL, "nick: not valid UTF-8");
        if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0))
            return agent_fail(err, KF_EINVAL,
                              "nick: control characters are not allowed");
        i += len;
        chars++;
    }
    if (chars > AGENT_NICK_CHARS)
        return agent_fail(err, KF_EINVAL, "nick: longer than %d characters",
                          AGENT_NICK_CHARS);
    return 0;
}

/* Non-ASCII code points that look like nothing or like a space, or are
 * not characters: refused in group names (they would make two names that
 * read the same). */
static int invisible(unsigned long c)
{
    return c < 0xa1 || c == 0xad || c == 0x1680 || c == 0x180e ||
           (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) ||
           (c >= 0x205f && c <= 0x206f) || c == 0x3000 ||
           (c >= 0xd800 && c <= 0xdfff) || c == 0xfeff ||
           (c >= 0xfff0 && c <= 0xffff) || (c >= 0xe0000 && c <= 0xe007f);
}

int agent_group_ok(const char *g, size_t n)
{
    const unsigned char *p = (const unsigned char *)g;
    size_t i = 0, chars = 0, len;
    unsigned long c;

    if (n == 0 || n >= AGENT_GROUP_SIZE)
        return 0;
    while (i < n) {
        if (p[i] < 0x80) {
            if (!is_group_char(p[i]))
                return 0;
            len = 1;
        } else {
            len = utf8_next(p + i, n - i, &c);
            if (len == 0 || invisible(c))
                return 0;
        }
        i += len;
        if (++chars > AGENT_GROUP_CHARS)
            return 0;
    }
    return 1;
}

int agent_check_group(const char *g, struct agent_err *err)
{
    if (!g)
        g = "";
    if (!agent_group_ok(g, strlen(g)))
        return agent_fail(err, KF_EINVAL,
                          "group: must be 1-%d characters, each [a-z0-9_-] "
                          "or a letter beyond ASCII (e.g. 售后), at most %d "
                          "bytes", AGENT_GROUP_CHARS, AGENT_GROUP_SIZE - 1);
    if (strcmp(g, "_all") == 0)
        return agent_fail(err, KF_EINVAL, "group: \"_all\" is reserved "
                          "(every agent is in it)");
    return 0;
}

void agent_init(struct agent *a)
{
    memset(a, 0, sizeof(*a));
    a->weight = 1;
}

static int copy_checked(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);

    if (len >= n)
        return KF_ETOOBIG;
    memcpy(dst, src, len + 1);
    return 0;
}

int agent_set_account(struct agent *a, const char *account,
                      struct agent_err *err)
{
    int rc = agent_check_account(account, err);

    if (rc == 0 && copy_checked(a->account, sizeof(a->account), account))
        rc = agent_fail(err, KF_EINVAL, "account: too long");
    return rc;
}

int agent_set_nick(struct agent *a, const char *nick, struct agent_err *err)
{
    int rc = agent_check_nick(nick, err);

    if (rc == 0 && copy_checked(a->nick, sizeof(a->nick), nick))
        rc = agent_fail(err, KF_EINVAL, "nick: longer than 255 bytes");
    return rc;
}

static int has_group(const struct agent *a, int upto, const char *g)
{
    int i;

    for (i = 0; i < upto; i++)
        if (strcmp(a->groups[i], g) == 0)
            return 1;
    return 0;
}

int agent_add_group(struct agent *a, const char *group, struct agent_err *err)
{
    int rc = agent_check_group(group, err);

    if (rc < 0)
        return rc;
    if (has_group(a, a->ngroups, group))
        return agent_fail(err, KF_EINVAL, "group: \"%s\" given twice", group);
    if (a->ngroups >= AGENT_MAX_GROUPS)
        return agent_fail(err, KF_EINVAL, "group: at most %d groups",
                          AGENT_MAX_GROUPS);
    memcpy(a->groups[a->ngroups++], group, strlen(group) + 1);
    return 0;
}

static int terminated(const char *p, size_t n)
{
    return memchr(p, '\0', n) != NULL;
}

static int check_groups(const struct agent *a, struct agent_err *err)
{
    int i, rc;

    if (a->ngroups < 0 || a->ngroups > AGENT_MAX_GROUPS)
        return agent_fail(err, KF_EINVAL, "group: at most %d groups",
                          AGENT_MAX_GROUPS);
    for (i = 0; i < a->ngroups; i++) {
        if (!terminated(a->groups[i], sizeof(a->groups[i])))
            return agent_fail(err, KF_EINVAL, "group: too long");
        rc = agent_check_group(a->groups[i], err);
        if (rc < 0)
            return rc;
        if (has_group(a, i, a->groups[i]))
            return agent_fail(err, KF_EINVAL, "group: \"%s\" given twice",
                              a->groups[i]);
    }
    return 0;
}

int agent_check_weight(long long w, struct agent_err *err)
{
    return w >= AGENT_WEIGHT_MIN && w <= AGENT_WEIGHT_MAX
               ? 0 : agent_fail(err, KF_EINVAL, "weight: must be %d..%d",
                                AGENT_WEIGHT_MIN, AGENT_WEIGHT_MAX);
}

int agent_check_capacity(long long c, struct agent_err *err)
{
    return c >= 0 && c <= AGENT_CAPACITY_MAX
               ? 0 : agent_fail(err, KF_EINVAL, "capacity: must be 1..%d "
                                "(0 = the default)", AGENT_CAPACITY_MAX);
}

int agent_validate(const struct agent *a, struct agent_err *err)
{
    int rc = 0;

    if (!terminated(a->account, sizeof(a->account)))
        return agent_fail(err, KF_EINVAL, "account: too long");
    if (!terminated(a->nick, sizeof(a->nick)))
        return agent_fail(err, KF_EINVAL, "nick: longer than 255 bytes");
    rc = agent_check_account(a->account, err);
    if (rc == 0)
        rc = agent_check_nick(a->nick, err);
    if (rc == 0)
        rc = agent_check_weight(a->weight, err);
    if (rc == 0)
        rc = agent_check_capacity(a->capacity, err);
    if (rc == 0)
        rc = check_groups(a, err);
    return rc;
}

int agent_has_group(const struct agent *a, const char *g)
{
    return has_group(a, a->ngroups, g);
}

int agent_check_patch(const struct agent *v, unsigned set,
                      struct agent_err *err)
{
    int rc = agent_check_account(v->account, err);

    if (rc == 0 && (set & AGENT_SET_NICK))
        rc = terminated(v->nick, sizeof(v->nick))
                 ? agent_check_nick(v->nick, err)
                 : agent_fail(err, KF_EINVAL, "nick: longer than 255 bytes");
    if (rc == 0 && (set & AGENT_SET_WEIGHT))
        rc = agent_check_weight(v->weight, err);
    if (rc == 0 && (set & AGENT_SET_CAPACITY))
        rc = agent_check_capacity(v->capacity, err);
    if (rc == 0 && (set & AGENT_SET_GROUPS))
        rc = check_groups(v, err);
    return rc;
}

int agent_split_groups(const char *p, size_t len,
                       char (*out)[AGENT_GROUP_SIZE], int max, int *n,
                       int lenient)
{
    size_t i = 0, j;

    *n = 0;
    while (i < len) {
        for (j = i; j < len && p[j] != ','; j++)
            ;
        if (j - i >= 1 && j - i < AGENT_GROUP_SIZE && *n < max) {
            memcpy(out[*n], p + i, j - i);
            out[(*n)++][j - i] = '\0';
        } else if (!lenient) {
            return KF_EPARSE;
        }
        i = j + 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ list */

void agent_list_init(struct agent_list *l)
{
    memset(l, 0, sizeof(*l));
}

void agent_list_release(struct agent_list *l)
{
    free(l->v);
    free(l->token_sha256);
    agent_list_init(l);
}
