/* journal: WeChat callbacks that could not reach Redis, kept on local disk
 * until they can. When the one round trip of a callback fails, the worker
 * appends the request as it arrived (query string, body, request id,
 * arrival time) to <dir>/callbacks.jsonl — one JSON line, written with one
 * write(2) and fdatasync'd before the 200 goes out — and answers the
 * configured fallback text. Once Redis answers again, whichever process
 * gets the replay lock first (a worker between requests, or `wxkf jobs`)
 * renames the file aside and feeds every record through the callback path
 * again with its original time; the dedupe key makes a record that is
 * replayed twice count once. Appenders hold a shared lock on the file and
 * re-check after locking that it is still the one at the path, so a record
 * is never written into a file the replayer has taken away. */
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
};

/* One callback as it arrived. */
struct journal_rec {
    struct kf_str query, body, rid;
    int64_t now, now_ms;
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
 * this record and the rest) or another error (this record is dropped and
 * counted). */
typedef int (*journal_apply_fn)(void *ctx, const struct journal_rec *r);

struct journal_counts {
    long replayed, dropped, left;
};

/* Replays what is pending unless another process is at it (then 0 at
 * once). Records that cannot be read back (a write cut short by a crash,
 * which was never acknowledged) are dropped and counted. KF_EBACKEND when
 * apply stopped it (the rest stays for the next time), KF_EIO. */
KF_WUR int journal_replay(struct journal *j, journal_apply_fn apply,
                          void *ctx, struct journal_counts *c);

#endif
