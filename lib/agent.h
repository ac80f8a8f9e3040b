/* agent: the agent record — its fields, their limits and validation, the
 * list of records and the error report every agent module fills. The
 * record is stored by lib/agent_db (PostgreSQL, the source of truth),
 * mirrored by lib/agent_mirror (Redis), kept in step by lib/agent_sync
 * and authenticated by lib/agent_token (see docs/routing.md, "Agents"). */
#ifndef AGENT_H
#define AGENT_H

#include <stddef.h>

#include "kf.h"

#define AGENT_MAX_GROUPS 16
/* A group name: 1..32 characters, each [a-z0-9_-] or a non-ASCII letter
 * (售后), at most 96 bytes of UTF-8; "_all" is reserved. The name is the
 * key (Redis group:<name>, [routing] rules): no separators, no spaces. */
#define AGENT_GROUP_CHARS 32
#define AGENT_GROUP_SIZE 97      /* its bytes with the NUL */
#define AGENT_NICK_CHARS 64      /* UTF-8 characters */
#define AGENT_TOKEN_PREFIX "wxa_"
#define AGENT_TOKEN_SIZE 69      /* "wxa_" + 64 hex + NUL */
#define AGENT_HASH_SIZE 65       /* SHA-256 as 64 lowercase hex + NUL */
/* The one definition of the agent limits: the API, the CLI, the config
 * ([routing] default_capacity) and the console (a test compares
 * nginx/html/index.html) all take them from here. */
#define AGENT_WEIGHT_MIN 1
#define AGENT_WEIGHT_MAX 100
#define AGENT_CAPACITY_MAX 10000 /* 1..max; 0 = [routing] default_capacity */

struct agent {
    /* ^[A-Za-z0-9_]{1,10}(@[A-Za-z0-9_-]{1,30})?$ (WeChat's kf_account) */
    char account[48];
    char nick[256];              /* 1..64 characters, <= 255 bytes */
    int weight;                  /* AGENT_WEIGHT_MIN..MAX */
    int capacity;                /* 0 = [routing] default_capacity */
    char groups[AGENT_MAX_GROUPS][AGENT_GROUP_SIZE]; /* agent_group_ok */
    int ngroups;
};

struct agent_err {
    char msg[256];               /* names the field or the failed step */
    int mirror_stale;            /* 1: PostgreSQL was written, Redis not */
};

/* Formats why into err->msg (err may be NULL) and returns rc. */
int agent_fail(struct agent_err *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Empties err (NULL is fine). */
void agent_err_reset(struct agent_err *err);

/* Empty record: weight 1, capacity default, no groups. Never fails. */
void agent_init(struct agent *a);

/* Each checks one field of untrusted input and, with KF_EINVAL, says why
 * in err->msg (which names the field). The setters copy on success. */
KF_WUR int agent_check_account(const char *account, struct agent_err *err);
KF_WUR int agent_check_nick(const char *nick, struct agent_err *err);
KF_WUR int agent_check_group(const char *group, struct agent_err *err);
/* 1 when p[0..n) is a group name (AGENT_GROUP_CHARS above; "_all" is
 * one here), else 0. Also used by lib/config for [routing] rules. */
int agent_group_ok(const char *p, size_t n);
KF_WUR int agent_set_account(struct agent *a, const char *account,
                             struct agent_err *err);
KF_WUR int agent_set_nick(struct agent *a, const char *nick,
                          struct agent_err *err);
/* Weight AGENT_WEIGHT_MIN..AGENT_WEIGHT_MAX; capacity 0..AGENT_CAPACITY_MAX
 * (0 = the default). */
KF_WUR int agent_check_weight(long long weight, struct agent_err *err);
KF_WUR int agent_check_capacity(long long capacity, struct agent_err *err);
/* Appends one group: refuses bad names, "_all", duplicates, a 17th. */
KF_WUR int agent_add_group(struct agent *a, const char *group,
                           struct agent_err *err);
/* 1 if a lists group g. */
int agent_has_group(const struct agent *a, const char *g);
/* The whole record, weight and capacity included. */
KF_WUR int agent_validate(const struct agent *a, struct agent_err *err);

/* Which fields a partial update changes (the others are kept). */
enum {
    AGENT_SET_NICK = 1,
    AGENT_SET_WEIGHT = 2,
    AGENT_SET_CAPACITY = 4,
    AGENT_SET_GROUPS = 8,
};

/* v.account and the fields named in set (KF_EINVAL naming the field). */
KF_WUR int agent_check_patch(const struct agent *v, unsigned set,
                             struct agent_err *err);

/* Splits the comma list p (len bytes, untrusted) into at most max names
 * of 1..AGENT_GROUP_SIZE-1 bytes; other names are skipped when lenient,
 * KF_EPARSE otherwise. *n gets the count. */
KF_WUR int agent_split_groups(const char *p, size_t len,
                              char (*out)[AGENT_GROUP_SIZE],
                              int max, int *n, int lenient);

/* Every row, ordered by account (bytewise). token_sha256[i] is the hash of
 * v[i]'s token ("" if none) — never print it. */
struct agent_list {
    struct agent *v;
    char (*token_sha256)[AGENT_HASH_SIZE];
    size_t len;
};

void agent_list_init(struct agent_list *l);    /* never fails */
void agent_list_release(struct agent_list *l); /* safe twice */

#endif
