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

#include "kf.h"
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
    snprintf(j->quarantine, sizeof(j->quarantine),
             "%s/callbacks.quarantine.jsonl", dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return KF_EIO;
    j->enabled = 1;
    return 0;
}

/* "\n" + p[0..n) + "\n" (malloc'd; *len = n + 2): the leading byte is
 * written only after a line cut short (see append_line). */
static char *frame(const char *p, size_t n, size_t *len)
{
    char *line = malloc(n + 3);

    if (!line)
        return NULL;
    line[0] = '\n';
    memcpy(line + 1, p, n);
    memcpy(line + 1 + n, "\n", 2);
    *len = n + 2;
    return line;
}

/* o[name] = the bytes of v in hex. */
static int set_hex(json_t *o, const char *name, struct kf_str v)
{
    char *h = malloc(2 * v.len + 1);
    int rc;

    if (!h)
        return -1;
    kf_hex(v.p, v.len, h);
    rc = json_object_set_new(o, name, json_string(h));
    free(h);
    return rc;
}

/* Hex digits hex (even length) into out; the number of bytes or -1. */
static long unhex(const char *hex, unsigned char *out)
{
    size_t i, n = strlen(hex);

    if (n % 2)
        return -1;
    for (i = 0; i < n; i++) {
        int c = hex[i], v;

        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else
            return -1;
        if (i % 2)
            out[i / 2] |= (unsigned char)v;
        else
            out[i / 2] = (unsigned char)(v << 4);
    }
    return (long)(n / 2);
}

/* The record as one framed line: {"x" (base64 of the verified push),
 * "k" (hex of its signed query's binding key, when it has one: the
 * query is anybody's bytes, JSON strings must be UTF-8),"rid","t","ms"},
 * or for an unverified one (the format before the
 * verified plaintext was kept) {"q","b" (base64 of the body as it
 * arrived),"rid","t","ms"}. A record starts with '{"' and no other
 * unescaped '{"' is inside it: the reader resyncs there. */
static char *encode(const struct journal_rec *r, size_t *len)
{
    size_t b64len = 4 * ((r->body.len + 2) / 3) + 1;
    unsigned char *b64 = malloc(b64len);
    json_t *o;
    char *s = NULL, *line = NULL;

    if (!b64)
        return NULL;
    EVP_EncodeBlock(b64, (const unsigned char *)r->body.p, (int)r->body.len);
    if (r->verified) {
        o = json_pack("{s:s,s:s%,s:I,s:I}", "x", (const char *)b64, "rid",
                      r->rid.p, r->rid.len, "t", (json_int_t)r->now, "ms",
                      (json_int_t)r->now_ms);
        if (o && r->query.len && set_hex(o, "k", r->query) < 0) {
            json_decref(o);
            o = NULL;
        }
    } else
        o = json_pack("{s:s%,s:s,s:s%,s:I,s:I}", "q", r->query.p,
                      r->query.len, "b", (const char *)b64, "rid", r->rid.p,
                      r->rid.len, "t", (json_int_t)r->now, "ms",
                      (json_int_t)r->now_ms);
    free(b64);
    if (o)
        s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s)
        line = frame(s, strlen(s), len);
    free(s);
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

/* Appends a framed line to path, starting on a line of its own: the
 * check of the last byte and the write happen under one exclusive lock,
 * so no other appender can leave half a record in between (fdatasync
 * after unlocking). Re-checks after locking that the file is still the
 * one at the path: the replayer may have renamed it away meanwhile. */
static int append_line(struct journal *j, const char *path,
                       const char *line, size_t len)
{
    struct stat a, b;
    int i, fd, ok, rc = KF_EIO;

    for (i = 0; i < APPEND_TRIES; i++) {
        char last = '\n';

        fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            break;
        while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
            ;
        if (fstat(fd, &a) < 0 || stat(path, &b) < 0 ||
            a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
            close(fd);          /* taken for replay meanwhile: again */
            continue;
        }
        /* A line cut short (a writer killed mid-write, a disk that filled
         * up) must not swallow this record: start on a line of our own. A
         * blank line this may leave is skipped by replay. */
        if (a.st_size > 0 && pread(fd, &last, 1, a.st_size - 1) != 1)
            last = 'x';
        if (j->before_write)
            j->before_write(j->hook_ctx);
        ok = write_all(fd, line + (last == '\n'),
                       len - (last == '\n')) == 0;
        flock(fd, LOCK_UN);
        if (ok && fdatasync(fd) == 0) {
            rc = 0;
            if (a.st_size == 0)
                sync_dir(j->dir);
        }
        close(fd);
        break;
    }
    return rc;
}

int journal_append(struct journal *j, const struct journal_rec *r)
{
    size_t len = 0;
    char *line;
    int rc;

    if (!j->enabled)
        return KF_EIO;
    line = encode(r, &len);
    if (!line)
        return KF_ENOMEM;
    rc = append_line(j, j->path, line, len);
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
    const char *q = "", *b, *rid, *kx = "";
    json_int_t t, ms;
    size_t blen, pad = 0, room;
    long klen = 0;
    int k, verified = 1;

    *body = NULL;
    *o = json_loadb(line, n, 0, NULL);
    if (!*o)
        return -1;
    if (json_unpack(*o, "{s:s,s?s,s:s,s:I,s:I}", "x", &b, "k", &kx, "rid",
                    &rid, "t", &t, "ms", &ms) < 0) {
        verified = 0;
        if (json_unpack(*o, "{s:s,s:s,s:s,s:I,s:I}", "q", &q, "b", &b,
                        "rid", &rid, "t", &t, "ms", &ms) < 0)
            return -1;
    }
    blen = strlen(b);
    if (blen % 4)
        return -1;
    room = blen / 4 * 3 + 1;            /* the body, then the key */
    *body = malloc(room + strlen(kx) / 2 + 1);
    if (!*body)
        return -1;
    k = EVP_DecodeBlock(*body, (const unsigned char *)b, (int)blen);
    if (k < 0)
        return -1;
    if (blen >= 1 && b[blen - 1] == '=')
        pad++;
    if (blen >= 2 && b[blen - 2] == '=')
        pad++;
    if (verified) {
        /* a query holds no NUL (http_query refuses %00): nor may a key */
        klen = unhex(kx, *body + room);
        if (klen < 0 || memchr(*body + room, '\0', (size_t)klen))
            return -1;
        (*body)[room + (size_t)klen] = '\0';
        q = (const char *)*body + room;
    }
    r->query = verified ? (struct kf_str){ q, (size_t)klen } : kf_str_c(q);
    r->body = (struct kf_str){ (const char *)*body, (size_t)k - pad };
    r->rid = kf_str_c(rid);
    r->now = (int64_t)t;
    r->now_ms = (int64_t)ms;
    r->verified = verified;
    return 0;
}

/* Bytes that cannot be replayed go to the quarantine file, one line
 * each, as they were: never deleted, for an operator to look at. */
static int quarantine(struct journal *j, const char *p, size_t n,
                      struct journal_counts *c)
{
    size_t len = 0;
    char *line = frame(p, n, &len);
    int rc;

    if (!line)
        return KF_ENOMEM;
    rc = append_line(j, j->quarantine, line, len);
    free(line);
    if (rc == 0)
        c->quarantined++;
    return rc;
}

/* The next '{"' in [p, end), or NULL. */
static const char *next_start(const char *p, const char *end)
{
    while (p < end && (p = memchr(p, '{', (size_t)(end - p))) != NULL) {
        if (p + 1 < end && p[1] == '"')
            return p;
        p++;
    }
    return NULL;
}

/* One line (with its '\n' if it has one) -> a record at line + *off.
 * A line that is not a record may still end with one: a record appended
 * onto the start of another that was cut short (by a version that did
 * not check and write under one lock, or a torn write). Then *off is
 * where that record starts (the next '{"' from which the rest decodes)
 * and the bytes before it are not a record. -1: no record in it. */
static int find_record(const char *line, size_t len, size_t *off,
                       json_t **o, unsigned char **body,
                       struct journal_rec *r)
{
    const char *p = line;

    if (len > REC_MAX || line[len - 1] != '\n')
        return -1;              /* cut short: never acknowledged */
    while (p) {
        *off = (size_t)(p - line);
        if (decode(p, len - 1 - *off, o, body, r) == 0)
            return 0;
        json_decref(*o);
        free(*body);
        *o = NULL;
        *body = NULL;
        p = next_start(p + 1, line + len - 1);
    }
    return -1;
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

/* Replays the replay file; removes it when every record is done. A
 * record apply refuses, and anything that is not a record, goes to the
 * quarantine file (blank lines are skipped). A replay stopped at the
 * file's first line leaves the file untouched; stopped later (after a
 * blank line too) the file is rewritten from the record that stopped. */
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
    while (rc == 0 && (len = getline(&line, &cap, in)) > 0) {
        struct journal_rec r;
        unsigned char *body = NULL;
        json_t *o = NULL;
        size_t off = 0, n = (size_t)len;
        int a = 0;

        if (n == 1 && line[0] == '\n') {
            first = 0;          /* taken out of the file if it stops */
            continue;
        }
        if (find_record(line, n, &off, &o, &body, &r) < 0) {
            rc = quarantine(j, line, n - (line[n - 1] == '\n'), c);
        } else {
            if (off > 0)
                rc = quarantine(j, line, off, c);
            if (rc == 0)
                a = apply(ctx, &r);
            if (rc == 0 && a == 0)
                c->replayed++;
            else if (rc == 0 && a != KF_EBACKEND)
                rc = quarantine(j, line + off, n - off - 1, c);
        }
        json_decref(o);
        free(body);
        if (rc < 0 || a == KF_EBACKEND) {
            /* Redis gone again, or the quarantine cannot be written:
             * this line (its record) and the rest stay. Stopped at the
             * first record, nothing is to be taken out of the file, so
             * it is not rewritten (Redis out of memory answers the ping
             * and refuses every write: this runs each second). */
            int k = rc == 0 && first && off == 0
                        ? count_rest(in, &c->left)
                        : keep_rest(j, in,
                                    line + (a == KF_EBACKEND ? off : 0),
                                    n - (a == KF_EBACKEND ? off : 0),
                                    &c->left);

            rc = k < 0 ? k : rc < 0 ? rc : KF_EBACKEND;
        }
        first = 0;
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
