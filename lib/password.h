/* password: the staff users' passwords — the policy a new one must meet,
 * argon2id hashing (libargon2) into the encoded form PostgreSQL keeps
 * ("$argon2id$v=19$m=...,t=...,p=...$salt$hash": the parameters travel
 * with each hash, so raising them later leaves old hashes verifiable),
 * and verification. A password is never stored, logged or kept past the
 * call; the caller cleanses its own copy.
 *
 * The parameters: t = 2 passes over m = 19 MiB with p = 1 lane, a 16-byte
 * salt from RAND_bytes and a 32-byte tag. One hash or verify takes 65-100
 * ms on the 2-core development machine (docs/performance.md), during
 * which the FastCGI worker serves nothing else. */
#ifndef PASSWORD_H
#define PASSWORD_H

#include <stddef.h>

#include "kf.h"

#define PASSWORD_T 2
#define PASSWORD_M_KIB 19456
#define PASSWORD_P 1
#define PASSWORD_SALT_LEN 16
#define PASSWORD_TAG_LEN 32
#define PASSWORD_MIN_CHARS 10       /* characters (code points) */
#define PASSWORD_MAX_BYTES 128      /* longer is refused, never hashed */
#define PASSWORD_HASH_MAX 160       /* an encoded hash and its NUL */

/* 0 when pw[0..len) may be a password: UTF-8 of PASSWORD_MIN_CHARS
 * characters or more and at most PASSWORD_MAX_BYTES bytes, without
 * control characters. KF_EINVAL otherwise. */
KF_WUR int password_check(const char *pw, size_t len);

/* The argon2id encoded hash of pw[0..len) with a fresh salt into out.
 * KF_EINVAL if len is over PASSWORD_MAX_BYTES, KF_ECRYPTO if no salt,
 * KF_ENOMEM if argon2 cannot have its memory. */
KF_WUR int password_hash(const char *pw, size_t len,
                         char out[PASSWORD_HASH_MAX]);

/* 0 if pw[0..len) is the password of encoded (an argon2id hash);
 * KF_EBADSIG if not; KF_EINVAL if encoded is no argon2id hash or len is
 * over PASSWORD_MAX_BYTES (nothing is hashed then). encoded NULL: a
 * fixed hash of the same cost is verified and KF_EBADSIG returned — for
 * a login that does not exist, so that it costs what a wrong password
 * costs. */
KF_WUR int password_verify(const char *encoded, const char *pw, size_t len);

#endif
