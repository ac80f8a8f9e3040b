/* journal: callbacks kept on disk while Redis is away (see journal.h). */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "banned.h"

#define REC_MAX (4 * 1024 * 1024)   /* one line, base64 body included */
#define APPEND_TRIES 8
#define REPLAY_ROUNDS 4

int journal_init(struct journal *j, const char *dir)
{
    memset(j, 0, sizeof(*j));
    if (!dir || !*dir)
        return 0;
    if (strlen(dir) >= sizeof(j->dir))
        return KF_ECONFIG;
    snprintf(j->dir, sizeof(j->dir), "%s", dir);
    snprintf(j->path, sizeof(j->path), "%s/callbacks.jsonl", dir);
    snprintf(j->replay, sizeof(j->replay), "%s/callbacks.replay.jsonl", dir);
    snprintf(j->lock, sizeof(j->lock), "%s/replay.lock", dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return KF_EIO;
    j->enabled = 1;
    return 0;
}

/* "\n" + the record as one line: {"q","b" (base64),"rid","t","ms"} +
 * "\n" (the first byte is written only after a line cut short). */
static char *encode(const struct journal_rec *r, size_t *len)
{
    size_t b64len = 4 * ((r->body.len + 2) / 3) + 1;
    unsigned char *b64 = malloc(b64len);
    json_t *o;
    char *s = NULL, *line = NULL;

    if (!b64)
        return NULL;
    EVP_EncodeBlock(b64, (const unsigned char *)r->body.p, (int)r->body.len);
    o = json_pack("{s:s%,s:s,s:s%,s:I,s:I}", "q", r->query.p, r->query.len,
                  "b", (const char *)b64, "rid", r->rid.p, r->rid.len, "t",
                  (json_int_t)r->now, "ms", (json_int_t)r->now_ms);
    free(b64);
    if (o)
        s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s) {            /* "\n" + s + "\n": see journal_append */
        *len = strlen(s);
        line = malloc(*len + 3);
        if (line) {
            line[0] = '\n';
            memcpy(line + 1, s, *len);
            memcpy(line + 1 + *len, "\n", 2);
            *len += 2;
        }
        free(s);
    }
    return line;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A new file's name must survive a crash too. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int journal_append(struct journal *j, const struct journal_rec *r)
{
    struct stat a, b;
    size_t len = 0;
    char *line;
    int i, fd, rc = KF_EIO;

    if (!j->enabled)
        return KF_EIO;
    line = encode(r, &len);
    if (!line)
        return KF_ENOMEM;
    for (i = 0; i < APPEND_TRIES; i++) {
        char last = '\n';

        fd = open(j->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            break;
        /* shared: appenders together, never while the replayer has it */
        while (flock(fd, LOCK_SH) < 0 && errno == EINTR)
            ;
        if (fstat(fd, &a) < 0 || stat(j->path, &b) < 0 ||
            a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
            close(fd);          /* taken for replay meanwhile: again */
            continue;
        }
        /* A line cut short (a writer killed mid-write, a disk that filled
         * up) must not swallow this record: start on a line of our own. A
         * blank line this may leave is dropped (and counted) by replay. */
        if (a.st_size > 0 && pread(fd, &last, 1, a.st_size - 1) != 1)
            last = 'x';
        if (write_all(fd, line + (last == '\n'), len - (last == '\n')) == 0 &&
            fdatasync(fd) == 0) {
            rc = 0;
            if (a.st_size == 0)
                sync_dir(j->dir);
        }
        close(fd);
        break;
    }
    free(line);
    return rc;
}

static int nonempty(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && st.st_size > 0;
}

int journal_pending(const struct journal *j)
{
    return j->enabled && (nonempty(j->replay) || nonempty(j->path));
}

/* Line -> record (borrowing from o and body). 0, or -1 if malformed. */
static int decode(const char *line, size_t n, json_t **o, unsigned char **body,
                  struct journal_rec *r)
{
    const char *q, *b, *rid;
    json_int_t t, ms;
    size_t blen, pad = 0;
    int k;

    *body = NULL;
    *o = json_loadb(line, n, 0, NULL);
    if (!*o || json_unpack(*o, "{s:s,s:s,s:s,s:I,s:I}", "q", &q, "b", &b,
                           "rid", &rid, "t", &t, "ms", &ms) < 0)
        return -1;
    blen = strlen(b);
    if (blen % 4)
        return -1;
    *body = malloc(blen / 4 * 3 + 1);
    if (!*body)
        return -1;
    k = EVP_DecodeBlock(*body, (const unsigned char *)b, (int)blen);
    if (k < 0)
        return -1;
    if (blen >= 1 && b[blen - 1] == '=')
        pad++;
    if (blen >= 2 && b[blen - 2] == '=')
        pad++;
    r->query = kf_str_c(q);
    r->body = (struct kf_str){ (const char *)*body, (size_t)k - pad };
    r->rid = kf_str_c(rid);
    r->now = (int64_t)t;
    r->now_ms = (int64_t)ms;
    return 0;
}

/* Writes the lines from `from` on (the record that failed and the rest)
 * as the new replay file: temp file, fsync, rename. */
static int keep_rest(struct journal *j, FILE *in, const char *from,
                     size_t n, long *left)
{
    char tmp[1200], *line = NULL;
    size_t cap = 0;
    ssize_t len;
    FILE *out;
    int rc = 0;

    snprintf(tmp, sizeof(tmp), "%s.tmp", j->replay);
    out = fopen(tmp, "we");
    if (!out)
        return KF_EIO;
    if (fwrite(from, 1, n, out) != n)
        rc = KF_EIO;
    (*left)++;
    while (rc == 0 && (len = getline(&line, &cap, in)) > 0) {
        if (fwrite(line, 1, (size_t)len, out) != (size_t)len)
            rc = KF_EIO;
        (*left)++;
    }
    free(line);
    if (fflush(out) != 0 || fsync(fileno(out)) != 0)
        rc = KF_EIO;
    if (fclose(out) != 0)
        rc = KF_EIO;
    if (rc == 0 && rename(tmp, j->replay) < 0)
        rc = KF_EIO;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

/* Counts the line in hand and the rest, leaving the file as it is. */
static int count_rest(FILE *in, long *left)
{
    char *line = NULL;
    size_t cap = 0;

    (*left)++;
    while (getline(&line, &cap, in) > 0)
        (*left)++;
    free(line);
    return ferror(in) ? KF_EIO : 0;
}

/* Replays the replay file; removes it when every record is done. */
static int replay_file(struct journal *j, journal_apply_fn apply, void *ctx,
                       struct journal_counts *c)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    FILE *in;
    int fd, rc = 0, first = 1;

    fd = open(j->replay, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : KF_EIO;
    /* appenders that opened it before the rename finish their write */
    while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
        ;
    in = fdopen(fd, "r");
    if (!in) {
        close(fd);
        return KF_EIO;
    }
    while ((len = getline(&line, &cap, in)) > 0) {
        struct journal_rec r;
        unsigned char *body = NULL;
        json_t *o = NULL;
        int a;

        if (len > REC_MAX || line[len - 1] != '\n' ||
            decode(line, (size_t)len - 1, &o, &body, &r) < 0) {
            first = 0;
            c->dropped++;               /* cut short: never acknowledged */
            json_decref(o);
            free(body);
            continue;
        }
        a = apply(ctx, &r);
        json_decref(o);
        free(body);
        if (a == KF_EBACKEND) {
            /* stopped at the first record: nothing to take out of the
             * file, so no rewrite (Redis out of memory answers the ping
             * and refuses every write: this runs each second) */
            rc = first ? count_rest(in, &c->left)
                       : keep_rest(j, in, line, (size_t)len, &c->left);
            if (rc == 0)
                rc = KF_EBACKEND;
            break;
        }
        first = 0;
        if (a < 0)
            c->dropped++;
        else
            c->replayed++;
    }
    free(line);
    fclose(in);
    if (rc == 0 && unlink(j->replay) < 0 && errno != ENOENT)
        rc = KF_EIO;
    return rc;
}

int journal_replay(struct journal *j, journal_apply_fn apply, void *ctx,
                   struct journal_counts *c)
{
    int lockfd, rc = 0, round;

    if (!j->enabled)
        return 0;
    lockfd = open(j->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lockfd < 0)
        return KF_EIO;
    if (flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
        close(lockfd);
        return 0;                       /* someone else is replaying */
    }
    for (round = 0; rc == 0 && round < REPLAY_ROUNDS; round++) {
        /* a replay file left by a run that stopped goes first */
        if (!nonempty(j->replay)) {
            if (!nonempty(j->path))
                break;
            if (rename(j->path, j->replay) < 0) {
                rc = errno == ENOENT ? 0 : KF_EIO;
                break;
            }
        }
        rc = replay_file(j, apply, ctx, c);
    }
    close(lockfd);                      /* releases the lock */
    return rc;
}
