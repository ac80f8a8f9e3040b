/* journal: WeChat callbacks that could not reach Redis, kept on local disk
 * until they can. When the one round trip of a callback fails, the worker
 * appends the push it verified (the plaintext XML after the signature,
 * timestamp, decryption and account checks, with the request id and
 * arrival time) to <dir>/callbacks.jsonl — one JSON line, written with one
 * write(2) and fdatasync'd before the 200 goes out — and answers the
 * configured fallback text. Once Redis answers again, whichever process
 * gets the replay lock first (a worker between requests, or `wxkf jobs`)
 * renames the file aside and feeds every record through the callback path
 * again with its original time, without verifying it again (a Token, key
 * or account changed meanwhile cannot refuse what WeChat got a 200 for);
 * the dedupe key makes a record that is replayed twice count once. What
 * cannot be replayed goes to <dir>/callbacks.quarantine.jsonl, never
 * deleted. Appenders hold an exclusive lock on the file from the check of
 * its last byte to the end of their write, and re-check after locking
 * that it is still the one at the path, so a record is never written into
 * a file the replayer has taken away nor glued onto half of another. */
#ifndef JOURNAL_H
#define JOURNAL_H

#include <stdint.h>

#include "kf.h"

struct journal {
    int enabled;
    char dir[1024];
    char path[1100];          /* <dir>/callbacks.jsonl: appended to */
    char replay[1100];        /* <dir>/callbacks.replay.jsonl: being replayed */
    char lock[1100];          /* <dir>/replay.lock */
    char quarantine[1100];    /* <dir>/callbacks.quarantine.jsonl */
    /* Tests only (NULL otherwise): called by an appender holding the
     * lock, after its check of the last byte and before its write. */
    void (*before_write)(void *ctx);
    void *hook_ctx;
};

/* One callback. verified = 1: body is the push as it was verified (the
 * plaintext XML), query its signed query's binding key ("signature:
 * timestamp:nonce"; empty in records kept before it was). verified = 0:
 * a record of the format
 * before that (query and body as they arrived), which replay has to
 * verify. */
struct journal_rec {
    struct kf_str query, body, rid;
    int64_t now, now_ms;
    int verified;
};

/* dir "" = no journal (appends fail with KF_EIO). Creates dir (0700) if
 * missing; KF_EIO (with errno) if it cannot. */
KF_WUR int journal_init(struct journal *j, const char *dir);

/* Appends r durably (written and fdatasync'd). KF_EIO if the disk said
 * no, KF_ENOMEM. */
KF_WUR int journal_append(struct journal *j, const struct journal_rec *r);

/* 1 when something waits to be replayed (two stat calls). */
int journal_pending(const struct journal *j);

/* apply returns 0 (done), KF_EBACKEND (Redis gone again: stop and keep
 * this record and the rest) or another error (this record goes to the
 * quarantine file and is counted). */
typedef int (*journal_apply_fn)(void *ctx, const struct journal_rec *r);

struct journal_counts {
    long replayed, quarantined, left;
};

/* Replays what is pending unless another process is at it (then 0 at
 * once). Lines that are not records (a write cut short by a crash or a
 * full disk, which was never acknowledged) go to the quarantine file and
 * are counted, like the records apply refuses; a record appended onto
 * such a line is found and replayed. KF_EBACKEND when apply stopped it
 * (the rest stays for the next time), KF_EIO (also when the quarantine
 * cannot be written: that line and the rest stay). */
KF_WUR int journal_replay(struct journal *j, journal_apply_fn apply,
                          void *ctx, struct journal_counts *c);

#endif
