/* version: the oldest Redis and PostgreSQL wxkf works with and why,
 * reading the versions those servers report (INFO's redis_version,
 * libpq's server version number), comparing them, and the one sentence
 * that names a server too old. (The nginx and Nchan minimums are checked
 * by scripts/stack.sh, where nginx is known; docs/operations.md lists
 * all four.) */
#ifndef VERSION_H
#define VERSION_H

#include <stddef.h>

#include "kf.h"

struct version {
    unsigned major, minor, patch;
};

enum version_server { VERSION_REDIS, VERSION_POSTGRES };

/* What wxkf needs of one kind of server. Static; never NULL for a valid
 * enum value. */
struct version_need {
    const char *name;           /* "redis" */
    struct version min;
    const char *why;            /* the features that set min */
};
const struct version_need *version_need(enum version_server s);

/* "MAJOR[.MINOR[.PATCH]]" at the start of s; whatever follows the last
 * number (" (Debian 15.18-0+deb12u1)", "-rc1", "\r") is ignored, missing
 * parts are 0. KF_EPARSE when s does not start with a digit or a part is
 * above 99999. */
KF_WUR int version_parse(struct kf_str s, struct version *out);
/* <0, 0, >0 as a is older than, the same as, newer than b. */
int version_cmp(const struct version *a, const struct version *b);
/* The redis_version field of an INFO reply (lines "key:value" separated
 * by \r\n). KF_ENOTFOUND without one, KF_EPARSE when it is malformed. */
KF_WUR int version_from_redis_info(struct kf_str info, struct version *out);
/* libpq's PQserverVersion number: 150018 is 15.18 (10 and later),
 * 90624 is 9.6.24. KF_EPARSE for 0 (unknown) or a negative number. */
KF_WUR int version_from_pg_num(int num, struct version *out);

/* 0 when v is at least what wxkf needs of s. Otherwise KF_EVERSION and,
 * when msg is not NULL, the sentence for the operator in msg[0..n), e.g.
 * "redis 6.0.16 is too old: wxkf needs >= 6.2.0 (XAUTOCLAIM, ...)";
 * msg always gets "<name> <v>" otherwise. */
KF_WUR int version_check(enum version_server s, const struct version *v,
                         char *msg, size_t n);

#endif
