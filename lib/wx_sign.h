/* wx_sign: the SHA-1 signatures WeChat puts on every callback — the URL
 * `signature` over (token, timestamp, nonce), the safe-mode `msg_signature`
 * over (token, timestamp, nonce, Encrypt) — the optional timestamp window
 * check, and the SHA-256 of the message a URL signature is bound to (the
 * URL signature covers no body). Owns no state; every function is pure and
 * thread-safe. */
#ifndef WX_SIGN_H
#define WX_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "kf.h"

#define WX_SIGN_HEX 41          /* 40 lowercase hex digits + NUL */
#define WX_SIGN_MAX_PARTS 8
/* Bound on token, timestamp, nonce and signature (everything but Encrypt). */
#define WX_SIGN_PART_MAX 4096
/* Bound on the total hashed input: a 128 KiB Encrypt plus the small parts. */
#define WX_SIGN_TOTAL_MAX (128 * 1024 + 4 * WX_SIGN_PART_MAX)

/* out = lowercase hex SHA-1 of the n parts sorted in byte order (memcmp; a
 * prefix sorts first) and concatenated with no separator. parts is read
 * only during the call. n must be 1..WX_SIGN_MAX_PARTS (else KF_EINVAL);
 * a part or the total above WX_SIGN_TOTAL_MAX is KF_ETOOBIG; KF_ENOMEM or
 * KF_ECRYPTO if OpenSSL fails. out is NUL-terminated on success. */
KF_WUR int wx_sign_compute(const struct kf_str *parts, size_t n,
                           char out[WX_SIGN_HEX]);

/* 0 if signature is the URL signature of (token, timestamp, nonce), else
 * KF_EBADSIG. Exact, constant-time compare of the 40 hex digits (uppercase
 * hex is a mismatch). Fails closed: an empty token or signature, a
 * token/timestamp/nonce above WX_SIGN_PART_MAX or a SHA-1 failure is also
 * KF_EBADSIG. */
KF_WUR int wx_sign_verify(struct kf_str token, struct kf_str timestamp,
                          struct kf_str nonce, struct kf_str signature);

/* Same for the safe-mode msg_signature over (token, timestamp, nonce,
 * encrypt). An empty encrypt is KF_EBADSIG too (as in the official
 * sample, which refuses to sign empty input). */
KF_WUR int wx_sign_verify_msg(struct kf_str token, struct kf_str timestamp,
                              struct kf_str nonce, struct kf_str encrypt,
                              struct kf_str msg_signature);

/* 0 if timestamp (decimal unix seconds, see kf_parse_u64) is within
 * window_s seconds of now in either direction; KF_EPARSE if it is not a
 * decimal number; KF_ESTALE if |now - timestamp| > window_s. window_s == 0
 * disables the window (the timestamp must still parse). */
KF_WUR int wx_sign_check_time(struct kf_str timestamp, int64_t now,
                              unsigned window_s);

#define WX_SIGN_MSG_HEX 65      /* 64 lowercase hex digits + NUL */

/* out = lowercase hex SHA-256 of msg: what one signed query is bound to,
 * so the same query with another message can be told from a retry.
 * KF_ECRYPTO if OpenSSL fails. out is NUL-terminated on success. */
KF_WUR int wx_sign_msg_hash(struct kf_str msg, char out[WX_SIGN_MSG_HEX]);

#endif
