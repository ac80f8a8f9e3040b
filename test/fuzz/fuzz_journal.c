/* fuzz_journal: lib/journal's replay reader — what a worker (or `wxkf
 * jobs`) reads back from <journal_dir> after Redis was away: the line
 * splitter, the JSON decoder, the base64 body, the bookkeeping of
 * replayed / quarantined / left records and the rewrite of the rest of the
 * file when a record stops the replay (keep_rest), the quarantine of what
 * cannot be replayed, and the resync on a record glued onto a line cut
 * short. Each input is written
 * as the journal files into a private directory (mkdtemp, in /dev/shm
 * when there is one, so fdatasync costs nothing) and replayed with
 * journal_replay().
 *
 * Input: data[0] flags, data[1] stop, data[2] fail bits, data[3] split,
 * then the bytes of the journal.
 *   flags & 3: 0 everything is callbacks.jsonl (Redis was away, nothing
 *                replayed yet);
 *              1 everything is callbacks.replay.jsonl (a replay that
 *                stopped earlier left it);
 *              2 both: up to the first newline at or after
 *                size * data[3] / 256 is the replay file, the rest
 *                callbacks.jsonl;
 *              3 both, cut at exactly that offset (a line split across
 *                the two files).
 *   flags & 4: apply = what fcgi/worker.c's replay_one does: the query
 *              parsed, then callback_handle() with req.replay = 1 and a
 *              store held in its backoff state, so a push that passes
 *              every check stops the replay with KF_EBACKEND (Redis gone
 *              again) and the rest must be kept.
 *   otherwise apply returns KF_EBACKEND on its data[1]-th call (1-based;
 *   0 = never) and KF_EINVAL on call i when bit i % 8 of data[2] is set.
 *   flags & 8: before the replay, journal_append() adds one more record
 *              to callbacks.jsonl, as a worker does while Redis is away
 *              (it answered 200 for it), after whatever the file holds —
 *              a line a crash or a failed write cut short included.
 *   flags & 16 (with 8): between that appender's check of the last byte
 *              and its write, the first 1 + data[3] % (n - 1) bytes of a
 *              record (n: its length) land in the file — another
 *              appender's write cut short, as appenders that shared their
 *              lock allowed; the record is then glued onto them.
 * Checks:
 *  - every record apply gets is the next one a model of the format
 *    predicts (a line ending in '\n', a JSON object with strings x, rid
 *    and integers t, ms — a verified record — or else strings q, b, rid
 *    and integers t, ms, x or b decoded as base64; a line that is not one
 *    may end with one, from the first '{"' on which the rest is one; blank
 *    lines are skipped), in file order; where x or b is canonical base64
 *    the model decodes it independently, so the body must be exactly
 *    those bytes;
 *  - a record's strings are NUL-terminated views and all of it fits in
 *    its line (nothing read outside the input);
 *  - each record survives journal_append() + journal_replay() in another
 *    directory unchanged (writer and reader agree);
 *  - counts: without a stop, left = 0, quarantined = the pieces the model
 *    refuses + apply's refusals, and the quarantine file holds that many
 *    lines, nothing pending afterwards; after a stop, rc = KF_EBACKEND,
 *    the replay file is byte for byte the rest of the file from the
 *    record that stopped, left = its lines, the other file untouched,
 *    quarantined = the refusals before it, and a second replay starts
 *    with the record that stopped and quarantines the rest of them;
 *  - flags & 8: the record journal_append() accepted is replayed.
 *
 * FUZZ_JOURNAL_SEEDS=DIR build/fuzz/fuzz_journal writes the seed corpus
 * (records made by journal_append from real callbacks) into DIR and
 * exits: test/fuzz/corpus/journal/ was made that way. FUZZ_VERBOSE=1
 * prints the layout, the counts and rc of each input. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "callback.h"
#include "config.h"
#include "fuzz.h"
#include "http.h"
#include "journal.h"
#include "store.h"
#include "wx_crypto.h"
#include "wx_sign.h"

#define REC_MAX (4 * 1024 * 1024)   /* lib/journal.c: longer lines drop */
#define HDR 4

static char dir[512], scratch[600];
static struct config cfg;
static struct store st;
static struct route rt;
static struct callback cb;
static int verbose;             /* FUZZ_VERBOSE=1: one line per input */

/* ------------------------------------------------------------- the model */

struct rec {
    char *q, *rid;
    unsigned char *body;
    size_t qlen, ridlen, blen;
    long long t, ms;
    int verified;           /* x, not q and b */
    size_t off, len;        /* the record in its file (with the '\n') */
    int file;               /* 0 the first file replayed, 1 the second */
    long refused_before;    /* pieces quarantined before it */
};

struct model {
    struct rec *v;
    size_t n, cap;
    long lines[2];          /* lines per file, a cut-short last one too */
    long refused;           /* pieces that must be quarantined */
};

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict RFC 4648 base64 (padding only at the end, zero spare bits): 0
 * and the bytes, or -1. Written here, not taken from OpenSSL. */
static int strict_b64(const char *s, size_t n, unsigned char *out,
                      size_t *outlen)
{
    size_t i, o = 0;

    if (n % 4)
        return -1;
    for (i = 0; i < n; i += 4) {
        int a = b64val((unsigned char)s[i]), b = b64val((unsigned char)s[i + 1]);
        int c = b64val((unsigned char)s[i + 2]), d = b64val((unsigned char)s[i + 3]);
        int last = i + 4 == n;

        if (a < 0 || b < 0)
            return -1;
        if (c < 0 && !(last && s[i + 2] == '=' && s[i + 3] == '='))
            return -1;
        if (c >= 0 && d < 0 && !(last && s[i + 3] == '='))
            return -1;
        out[o++] = (unsigned char)(a << 2 | b >> 4);
        if (c < 0) {
            if (b & 15)
                return -1;
            break;
        }
        out[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
        if (d < 0) {
            if (c & 3)
                return -1;
            break;
        }
        out[o++] = (unsigned char)((c & 3) << 6 | d);
    }
    *outlen = o;
    return 0;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        abort();
    return p;
}

/* What lib/journal.c must make of one line (with its '\n' if it has
 * one): 0 and r filled, or -1 (not a record). */
static int model_line(const char *line, size_t len, struct rec *r)
{
    const char *q, *b, *rid;
    json_int_t t, ms;
    json_t *o;
    size_t blen, pad = 0, slen = 0;
    unsigned char *sbuf;
    int k, strict;

    if (len == 0 || len > REC_MAX || line[len - 1] != '\n')
        return -1;
    o = json_loadb(line, len - 1, 0, NULL);
    q = "";
    r->verified = o && json_unpack(o, "{s:s,s:s,s:I,s:I}", "x", &b, "rid",
                                   &rid, "t", &t, "ms", &ms) == 0;
    if (!o || (!r->verified &&
               json_unpack(o, "{s:s,s:s,s:s,s:I,s:I}", "q", &q, "b", &b,
                           "rid", &rid, "t", &t, "ms", &ms) < 0)) {
        json_decref(o);
        return -1;
    }
    blen = strlen(b);
    if (blen % 4) {
        json_decref(o);
        return -1;
    }
    r->body = xmalloc(blen / 4 * 3 + 1);
    sbuf = xmalloc(blen / 4 * 3 + 1);
    strict = strict_b64(b, blen, sbuf, &slen);
    /* OpenSSL's decoder is more lenient than base64 (it skips blanks
     * around, decodes '=' inside); the journal only promises to read back
     * what it wrote, which is canonical */
    k = EVP_DecodeBlock(r->body, (const unsigned char *)b, (int)blen);
    if (k < 0) {
        FZ_CHECK(strict < 0);       /* canonical base64 always decodes */
        free(r->body);
        free(sbuf);
        json_decref(o);
        return -1;
    }
    if (blen >= 1 && b[blen - 1] == '=')
        pad++;
    if (blen >= 2 && b[blen - 2] == '=')
        pad++;
    FZ_CHECK((size_t)k >= pad);
    r->blen = (size_t)k - pad;
    if (strict == 0)
        FZ_CHECK(r->blen == slen && memcmp(r->body, sbuf, slen) == 0);
    free(sbuf);
    r->qlen = strlen(q);
    r->ridlen = strlen(rid);
    r->q = xmalloc(r->qlen + 1);
    r->rid = xmalloc(r->ridlen + 1);
    memcpy(r->q, q, r->qlen + 1);
    memcpy(r->rid, rid, r->ridlen + 1);
    r->t = t;
    r->ms = ms;
    json_decref(o);
    return 0;
}

static void model_add(struct model *m, struct rec *r)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 16;
        m->v = realloc(m->v, m->cap * sizeof(*m->v));
        if (!m->v)
            abort();
    }
    m->v[m->n++] = *r;
}

/* A line that is not a record may end with one: from the first '{"' after
 * its start on which the rest of the line is a record. That offset, or 0
 * (none). */
static size_t model_resync(const char *line, size_t len, struct rec *r)
{
    size_t k;

    if (len > REC_MAX || line[len - 1] != '\n')
        return 0;
    for (k = 1; k + 1 < len - 1; k++)
        if (line[k] == '{' && line[k + 1] == '"' &&
            model_line(line + k, len - k, r) == 0)
            return k;
    return 0;
}

static void model_file(struct model *m, int file, const char *p, size_t n)
{
    size_t off = 0;

    while (off < n) {
        const char *nl = memchr(p + off, '\n', n - off);
        size_t len = nl ? (size_t)(nl - (p + off)) + 1 : n - off, k = 0;
        struct rec r;

        memset(&r, 0, sizeof(r));
        m->lines[file]++;
        if (len == 1 && p[off] == '\n') {
            off += len;                 /* blank: skipped */
            continue;
        }
        if (model_line(p + off, len, &r) == 0 ||
            (k = model_resync(p + off, len, &r)) > 0) {
            m->refused += k > 0;        /* the piece before it */
            r.off = off + k;
            r.len = len - k;
            r.file = file;
            r.refused_before = m->refused;
            model_add(m, &r);
        } else {
            m->refused++;
        }
        off += len;
    }
}

static void model_free(struct model *m)
{
    size_t i;

    for (i = 0; i < m->n; i++) {
        free(m->v[i].q);
        free(m->v[i].rid);
        free(m->v[i].body);
    }
    free(m->v);
}

static int same(const struct journal_rec *a, const struct rec *b)
{
    return a->query.len == b->qlen && memcmp(a->query.p, b->q, b->qlen) == 0 &&
           a->rid.len == b->ridlen && memcmp(a->rid.p, b->rid, b->ridlen) == 0 &&
           a->body.len == b->blen &&
           (b->blen == 0 || memcmp(a->body.p, b->body, b->blen) == 0) &&
           a->now == b->t && a->now_ms == b->ms &&
           a->verified == b->verified;
}

/* ---------------------------------------------------------------- files */

static void path_in(char *out, size_t n, const char *d, const char *name)
{
    snprintf(out, n, "%s/%s", d, name);
}

static void write_file(const char *path, const char *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    FZ_CHECK(fd >= 0);
    while (n) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        FZ_CHECK(w > 0);
        p += w;
        n -= (size_t)w;
    }
    FZ_CHECK(close(fd) == 0);
}

/* The whole file (malloc'd) or NULL if there is none. */
static char *read_file(const char *path, size_t *n)
{
    struct stat sb;
    char *buf;
    size_t off = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        FZ_CHECK(errno == ENOENT);
        return NULL;
    }
    FZ_CHECK(fstat(fd, &sb) == 0);
    buf = xmalloc((size_t)sb.st_size + 1);
    while (off < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + off, (size_t)sb.st_size - off);

        if (r < 0 && errno == EINTR)
            continue;
        FZ_CHECK(r > 0);
        off += (size_t)r;
    }
    close(fd);
    *n = off;
    return buf;
}

/* Replayed files are removed; an empty one nobody had to read may stay. */
static int gone_or_empty(const char *path)
{
    struct stat sb;

    if (stat(path, &sb) < 0)
        return errno == ENOENT;
    return S_ISREG(sb.st_mode) && sb.st_size == 0;
}

static long count_lines(const char *p, size_t n)
{
    long c = 0;
    size_t i;

    for (i = 0; i < n; i++)
        if (p[i] == '\n')
            c++;
    return c + (n && p[n - 1] != '\n');
}

/* Empties d (files only; the lock file too). */
static void clean(const char *d)
{
    static const char *const names[] = {
        "callbacks.jsonl", "callbacks.replay.jsonl",
        "callbacks.replay.jsonl.tmp", "replay.lock",
        "callbacks.quarantine.jsonl",
    };
    char p[700];
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        path_in(p, sizeof(p), d, names[i]);
        FZ_CHECK(unlink(p) == 0 || errno == ENOENT);
    }
}

static void cleanup(void)
{
    if (!*dir)
        return;
    clean(scratch);
    rmdir(scratch);
    clean(dir);
    rmdir(dir);
}

/* One callback a worker journals while Redis is away: journal_append
 * returned 0, so it was answered 200 and must be replayed, whatever the
 * file held before (a line cut short by a crash, a write that failed
 * half way with ENOSPC, garbage). */
static struct journal_rec acked;
static char *acked_line;        /* acked as journal_append writes it */
static size_t acked_len;

/* What lands in the file between the appender's check and its write. */
struct inject {
    const char *path;
    size_t n;
};

static void inject_piece(void *ctx)
{
    const struct inject *in = ctx;
    int fd = open(in->path, O_WRONLY | O_APPEND | O_CLOEXEC);

    FZ_CHECK(fd >= 0);
    FZ_CHECK(write(fd, acked_line, in->n) == (ssize_t)in->n);
    close(fd);
}

/* The acked record; with inject > 0, that many bytes of another record
 * land between the appender's check and its write. */
static void append_acked(size_t inject)
{
    struct journal j;
    struct inject in;

    FZ_CHECK(journal_init(&j, dir) == 0);
    if (inject) {
        path_in(j.path, sizeof(j.path), dir, "callbacks.jsonl");
        in.path = j.path;
        in.n = inject;
        j.before_write = inject_piece;
        j.hook_ctx = &in;
    }
    FZ_CHECK(journal_append(&j, &acked) == 0);
}

/* ----------------------------------------------------------- apply */

struct run {
    const struct model *m;
    size_t next;            /* index in m->v of the next record expected */
    long calls, ok, errs;
    int stop_at, fail_bits, via_callback;
    long stopped;           /* index in m->v of the record that stopped */
    long acked_seen;        /* calls with the record append_acked wrote */
};

/* journal_append + journal_replay elsewhere give back the same record. */
static struct journal_rec *roundtrip_want;
static int roundtrip_seen;

static int roundtrip_apply(void *ctx, const struct journal_rec *r)
{
    const struct journal_rec *w = roundtrip_want;

    (void)ctx;
    roundtrip_seen++;
    FZ_CHECK(r->query.len == w->query.len &&
             memcmp(r->query.p, w->query.p, w->query.len) == 0);
    FZ_CHECK(r->rid.len == w->rid.len &&
             memcmp(r->rid.p, w->rid.p, w->rid.len) == 0);
    FZ_CHECK(r->body.len == w->body.len &&
             (w->body.len == 0 ||
              memcmp(r->body.p, w->body.p, w->body.len) == 0));
    FZ_CHECK(r->now == w->now && r->now_ms == w->now_ms);
    FZ_CHECK(r->verified == w->verified);
    return 0;
}

static void roundtrip(const struct journal_rec *r)
{
    struct journal j;
    struct journal_counts c = { 0, 0, 0 };
    struct journal_rec copy = *r;
    int rc;

    FZ_CHECK(journal_init(&j, scratch) == 0);
    rc = journal_append(&j, r);
    FZ_CHECK(rc == 0);      /* what the reader took, the writer can keep */
    FZ_CHECK(journal_pending(&j));
    roundtrip_want = &copy;
    roundtrip_seen = 0;
    FZ_CHECK(journal_replay(&j, roundtrip_apply, NULL, &c) == 0);
    FZ_CHECK(roundtrip_seen == 1 && c.replayed == 1 &&
             c.quarantined == 0 && c.left == 0);
    FZ_CHECK(!journal_pending(&j));
}

/* What fcgi/worker.c's replay_one does with a record: callback_replay. */
static int through_callback(const struct journal_rec *jr)
{
    struct callback_res res;
    int rc;

    callback_res_init(&res);
    rc = callback_replay(&cb, jr, &res);
    FZ_CHECK(rc < 0);               /* Redis is down, or a bad query */
    FZ_CHECK(!res.journaled);       /* a replay is never journaled again */
    callback_res_release(&res);
    return rc;
}

static int apply(void *ctx, const struct journal_rec *r)
{
    struct run *run = ctx;
    const struct rec *want;
    long i = run->calls++;
    int rc;

    /* the next record of the model, in file order */
    FZ_CHECK(run->next < run->m->n);
    want = &run->m->v[run->next];
    FZ_CHECK(same(r, want));
    if (r->verified && r->rid.len == acked.rid.len &&
        memcmp(r->rid.p, acked.rid.p, acked.rid.len) == 0 &&
        r->body.len == acked.body.len &&
        memcmp(r->body.p, acked.body.p, acked.body.len) == 0 &&
        r->now == acked.now && r->now_ms == acked.now_ms)
        run->acked_seen++;
    /* views: NUL-terminated, no NUL inside, all within the line */
    FZ_CHECK(r->query.p && r->rid.p && r->body.p);
    FZ_CHECK(r->query.p[r->query.len] == '\0' &&
             strlen(r->query.p) == r->query.len);
    FZ_CHECK(r->rid.p[r->rid.len] == '\0' && strlen(r->rid.p) == r->rid.len);
    FZ_CHECK(r->query.len + r->rid.len + r->body.len < want->len);
    roundtrip(r);

    if (run->via_callback)
        rc = through_callback(r);
    else if (run->stop_at && i + 1 == run->stop_at)
        rc = KF_EBACKEND;
    else if (run->fail_bits >> (i % 8) & 1)
        rc = KF_EINVAL;
    else
        rc = 0;
    if (rc == KF_EBACKEND) {
        run->stopped = (long)run->next;   /* stays: the next run's first */
        return rc;
    }
    run->next++;
    if (rc < 0)
        run->errs++;
    else
        run->ok++;
    return rc;
}

/* -------------------------------------------------------------- the run */

/* The end of a replay that went through: nothing pending, the replay file
 * gone, an acknowledged record seen if one was appended, the quarantine
 * file holding one line per piece quarantined; frees. */
static int all_replayed(struct journal *j, const char *p_replay,
                        const uint8_t *data, const struct run *run,
                        struct model *m, char *disk[2], long quarantined)
{
    size_t qlen = 0;
    char *q = read_file(j->quarantine, &qlen);

    FZ_CHECK(!journal_pending(j));
    FZ_CHECK(gone_or_empty(p_replay));
    FZ_CHECK(!(data[0] & 8) || run->acked_seen > 0);
    FZ_CHECK(count_lines(q ? q : "", qlen) == quarantined);
    FZ_CHECK(qlen == 0 || q[qlen - 1] == '\n');
    free(q);
    model_free(m);
    free(disk[0]);
    free(disk[1]);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char p_path[700], p_replay[700];
    const char *in = (const char *)data + HDR;
    const char *part[2];          /* [0] replayed first, [1] second */
    size_t plen[2] = { 0, 0 }, n = size - HDR, cut, rest_len = 0;
    char *disk[2];
    size_t dlen[2] = { 0, 0 };
    int layout, second;            /* callbacks.jsonl follows a replay file */
    struct model m;
    struct run run;
    struct journal j;
    struct journal_counts c = { 0, 0, 0 }, c2 = { 0, 0, 0 };
    char *rest, *other;
    size_t other_len = 0;
    long before_stop;
    int rc;

    if (size < HDR)
        return 0;
    layout = data[0] & 3;
    clean(dir);
    path_in(p_path, sizeof(p_path), dir, "callbacks.jsonl");
    path_in(p_replay, sizeof(p_replay), dir, "callbacks.replay.jsonl");

    /* the files as the input lays them out */
    cut = (size_t)((unsigned long long)n * data[3] / 256);
    if (layout == 2) {
        const char *nl = memchr(in + cut, '\n', n - cut);

        cut = nl ? (size_t)(nl - in) + 1 : n;
    }
    if (layout == 0) {
        write_file(p_path, in, n);
    } else if (layout == 1) {
        write_file(p_replay, in, n);
    } else {
        write_file(p_replay, in, cut);
        write_file(p_path, in + cut, n - cut);
    }
    /* a worker that journals one more callback now (and answers 200) */
    if (data[0] & 8)
        append_acked(data[0] & 16 ? 1 + data[3] % (acked_len - 1) : 0);

    /* what is on disk, in the order journal_replay takes it: the replay
     * file (a nonempty one) first, then callbacks.jsonl */
    disk[0] = read_file(p_replay, &dlen[0]);
    disk[1] = read_file(p_path, &dlen[1]);
    if (dlen[0] > 0) {
        part[0] = disk[0];
        plen[0] = dlen[0];
        part[1] = disk[1] ? disk[1] : "";
        plen[1] = dlen[1];
        second = 1;
    } else {
        part[0] = disk[1] ? disk[1] : "";
        plen[0] = disk[1] ? dlen[1] : 0;
        part[1] = "";
        plen[1] = 0;
        second = 0;
    }
    n = plen[0] + plen[1];

    memset(&m, 0, sizeof(m));
    model_file(&m, 0, part[0], plen[0]);
    if (second)
        model_file(&m, 1, part[1], plen[1]);

    memset(&run, 0, sizeof(run));
    run.m = &m;
    run.stop_at = data[1];
    run.fail_bits = data[2];
    run.via_callback = (data[0] & 4) != 0;
    run.stopped = -1;

    FZ_CHECK(journal_init(&j, dir) == 0);
    FZ_CHECK(journal_pending(&j) == (n > 0));
    rc = journal_replay(&j, apply, &run, &c);
    if (verbose)
        fprintf(stderr, "layout=%d callback=%d lines=%ld+%ld records=%zu "
                "rc=%s replayed=%ld quarantined=%ld left=%ld\n", layout,
                run.via_callback, m.lines[0], m.lines[1], m.n,
                kf_strerror(rc), c.replayed, c.quarantined, c.left);
    FZ_CHECK(rc == 0 || rc == KF_EBACKEND);
    FZ_CHECK(c.replayed == run.ok);

    if (rc == 0) {
        FZ_CHECK(run.stopped < 0 && run.next == m.n);
        FZ_CHECK(c.left == 0);
        FZ_CHECK(c.quarantined == m.refused + run.errs);
        return all_replayed(&j, p_replay, data, &run, &m, disk,
                            c.quarantined);
    }

    /* stopped: the record that stopped and every line after it are kept */
    FZ_CHECK(run.stopped >= 0 && (size_t)run.stopped < m.n);
    {
        const struct rec *s = &m.v[run.stopped];
        const int f = s->file;

        rest = read_file(p_replay, &rest_len);
        FZ_CHECK(rest != NULL);
        FZ_CHECK(rest_len == plen[f] - s->off &&
                 memcmp(rest, part[f] + s->off, rest_len) == 0);
        FZ_CHECK(c.left == count_lines(rest, rest_len));
        free(rest);
        /* the other file: untouched if it was still to come, else gone */
        other = read_file(p_path, &other_len);
        if (f == 0 && second && plen[1] > 0)
            FZ_CHECK(other && other_len == plen[1] &&
                     memcmp(other, part[1], plen[1]) == 0);
        else
            FZ_CHECK(!other || other_len == 0);
        free(other);
        /* every record before the one that stopped was applied, every
         * piece before it quarantined */
        FZ_CHECK(run.ok + run.errs == run.stopped);
        FZ_CHECK(c.quarantined == s->refused_before + run.errs);
        before_stop = s->refused_before;
    }
    FZ_CHECK(journal_pending(&j));

    /* Redis is back: the rest goes through, starting with the record
     * that stopped */
    run.stop_at = 0;
    run.fail_bits = 0;
    run.via_callback = 0;
    run.ok = run.errs = 0;
    run.next = (size_t)run.stopped;
    run.stopped = -1;
    rc = journal_replay(&j, apply, &run, &c2);
    FZ_CHECK(rc == 0 && run.stopped < 0 && run.next == m.n);
    FZ_CHECK(c2.left == 0 && c2.replayed == run.ok);
    FZ_CHECK(c2.quarantined == m.refused - before_stop);
    return all_replayed(&j, p_replay, data, &run, &m, disk,
                        c.quarantined + c2.quarantined);
}

/* ---------------------------------------------------------------- set up */

static void set(char **field, const char *v)
{
    free(*field);
    *field = strdup(v);
    if (!*field)
        abort();
}

static void write_seeds(const char *out);
static void make_acked(void);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    const char *seeds = getenv("FUZZ_JOURNAL_SEEDS");

    (void)argc;
    (void)argv;
    if (!tmp || !*tmp)
        tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof(dir), "%s/wxkf-fuzz-journal-XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(scratch, sizeof(scratch), "%s/again", dir);
    if (mkdir(scratch, 0700) < 0) {
        perror("mkdir");
        abort();
    }
    atexit(cleanup);
    verbose = getenv("FUZZ_VERBOSE") != NULL;

    config_init(&cfg);
    set(&cfg.wechat.app_id, FZ_APPID);
    set(&cfg.wechat.token, FZ_TOKEN);
    set(&cfg.wechat.encoding_aes_key, FZ_AESKEY);
    set(&cfg.wechat.encoding, "compatible");    /* plaintext and aes */
    set(&cfg.wechat.original_id, FZ_GHID);
    set(&cfg.texts.fallback, "稍后回复");
    cfg.wechat.timestamp_window = 300;
    if (store_init(&st, "unix:/nonexistent/wxkf-fuzz.sock", FZ_APPID, 10,
                   10) != 0 ||
        route_init(&rt, &st, &cfg) != 0 ||
        callback_init(&cb, &cfg, &rt) != 0)
        abort();
    st.next_try_ms = INT64_MAX;     /* never connect */
    make_acked();
    if (seeds) {
        write_seeds(seeds);
        exit(0);
    }
    return 0;
}

/* ------------------------------------------------------------- seeds */

/* A signed query for a callback at time t (and msg_signature over enc). */
static void signed_query(long long t, const char *nonce, const char *enc,
                         struct kf_buf *q)
{
    char ts[24], sig[WX_SIGN_HEX], msig[WX_SIGN_HEX];
    struct kf_str p[4];

    snprintf(ts, sizeof(ts), "%lld", t);
    p[0] = KF_STR(FZ_TOKEN);
    p[1] = kf_str_c(ts);
    p[2] = kf_str_c(nonce);
    if (wx_sign_compute(p, 3, sig) < 0 ||
        kf_buf_printf(q, "signature=%s&timestamp=%s&nonce=%s&openid=%s",
                      sig, ts, nonce, FZ_OPENID) < 0)
        abort();
    if (enc) {
        p[3] = kf_str_c(enc);
        if (wx_sign_compute(p, 4, msig) < 0 ||
            kf_buf_printf(q, "&encrypt_type=aes&msg_signature=%s", msig) < 0)
            abort();
    }
}

static const char acked_body[] =
    "<xml><ToUserName><![CDATA[" FZ_GHID "]]></ToUserName>"
    "<FromUserName><![CDATA[" FZ_OPENID "]]></FromUserName>"
    "<CreateTime>1716200000</CreateTime><MsgType><![CDATA[text]]>"
    "</MsgType><Content><![CDATA[acknowledged]]></Content>"
    "<MsgId>7965621149535921999</MsgId></xml>";

/* The record a worker acknowledges (a verified push), and its line. */
static void make_acked(void)
{
    struct journal jj;
    char p[700];

    acked.query = KF_STR("");
    acked.body = (struct kf_str){ acked_body, sizeof(acked_body) - 1 };
    acked.rid = KF_STR("acked-0001");
    acked.now = FZ_NOW;
    acked.now_ms = (int64_t)FZ_NOW * 1000 + 7;
    acked.verified = 1;
    FZ_CHECK(journal_init(&jj, scratch) == 0);
    FZ_CHECK(journal_append(&jj, &acked) == 0);
    path_in(p, sizeof(p), scratch, "callbacks.jsonl");
    acked_line = read_file(p, &acked_len);
    FZ_CHECK(acked_line && acked_len > 2);
    clean(scratch);
}

/* q NULL: a verified push, else a record of the older format. */
static void append(struct journal *jj, const char *q, const char *body,
                   size_t blen, const char *rid, long long t)
{
    struct journal_rec r;

    r.verified = q == NULL;         /* else the request as it arrived */
    r.query = kf_str_c(q ? q : "");
    r.body = (struct kf_str){ body, blen };
    r.rid = kf_str_c(rid);
    r.now = t;
    r.now_ms = t * 1000 + 123;
    if (journal_append(jj, &r) != 0)
        abort();
}

/* One seed: the header, then `file` as journal_append wrote it. */
static void seed(const char *out, const char *name, const uint8_t hdr[HDR],
                 const char *file, size_t n, const char *extra)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", out, name);
    f = fopen(path, "wb");
    if (!f || fwrite(hdr, 1, HDR, f) != HDR || fwrite(file, 1, n, f) != n ||
        (extra && fputs(extra, f) == EOF) || fclose(f) != 0)
        abort();
}

static void write_seeds(const char *out)
{
    static const long long t = FZ_NOW;
    static const char text[] =
        "<xml><ToUserName><![CDATA[" FZ_GHID "]]></ToUserName>"
        "<FromUserName><![CDATA[" FZ_OPENID "]]></FromUserName>"
        "<CreateTime>1716200000</CreateTime><MsgType><![CDATA[text]]>"
        "</MsgType><Content><![CDATA[你好，我的订单还没发货]]></Content>"
        "<MsgId>7965621149535921905</MsgId></xml>";
    static const char event[] =
        "<xml><ToUserName><![CDATA[" FZ_GHID "]]></ToUserName>"
        "<FromUserName><![CDATA[" FZ_OPENID "]]></FromUserName>"
        "<CreateTime>1716200001</CreateTime><MsgType><![CDATA[event]]>"
        "</MsgType><Event><![CDATA[subscribe]]></Event>"
        "<EventKey><![CDATA[qrscene_123]]></EventKey></xml>";
    static const char binary[] = "\0\x01\xff\xfe<xml>\r\n\0";
    struct kf_buf q, q2, q3, enc, env;
    struct journal jj;
    char jdir[700], jpath[800], *file;
    size_t n = 0;
    static const struct {
        const char *name;
        uint8_t hdr[HDR];
    } variants[] = {
        { "path", { 0, 0, 0, 0 } },
        { "replay_file", { 1, 0, 0, 0 } },
        { "split_lines", { 2, 0, 0, 128 } },
        { "split_mid_line", { 3, 0, 0, 100 } },
        { "stop_2nd", { 0, 2, 0, 0 } },
        { "stop_1st_split", { 2, 1, 0, 64 } },
        { "refuse_some", { 0, 0, 0x05, 0 } },
        { "via_callback", { 4, 0, 0, 0 } },
        { "via_callback_split", { 6, 0, 0, 128 } },
        { "append_acked", { 8, 0, 0, 0 } },
        { "append_acked_replay_file", { 9, 2, 0, 0 } },
        { "append_acked_via_callback", { 14, 0, 0, 128 } },
        { "append_acked_injected", { 24, 0, 0, 40 } },
        { "append_acked_injected_stop", { 25, 2, 0, 90 } },
    };
    size_t i;

    if (mkdir(out, 0755) < 0 && errno != EEXIST)
        abort();
    kf_buf_init(&q, 4096);
    kf_buf_init(&q2, 4096);
    kf_buf_init(&q3, 4096);
    kf_buf_init(&enc, WX_CRYPTO_B64_MAX);
    kf_buf_init(&env, 2 * WX_CRYPTO_B64_MAX);
    signed_query(t, "1086175621", NULL, &q);
    signed_query(t + 1, "77", NULL, &q2);
    if (wx_crypto_encrypt(&cb.crypto[0], kf_str_c(text),
                          (const unsigned char *)"fuzzfuzzfuzzfuzz",
                          &enc) < 0 ||
        kf_buf_printf(&env, "<xml><ToUserName><![CDATA[%s]]></ToUserName>"
                      "<Encrypt><![CDATA[%s]]></Encrypt></xml>", FZ_GHID,
                      enc.p) < 0)
        abort();
    signed_query(t + 2, "5", enc.p, &q3);

    /* a journal as a worker leaves it: three callbacks (plain text, an
     * event, a safe-mode push) as older versions kept them, the first two
     * as verified pushes, then odd bodies */
    snprintf(jdir, sizeof(jdir), "%s/seedgen", dir);
    if (journal_init(&jj, jdir) != 0)
        abort();
    append(&jj, q.p, text, sizeof(text) - 1,
           "7c699bb4-1f0e-4d8a-9a51-0b0c0d0e0f10", t);
    append(&jj, q2.p, event, sizeof(event) - 1, "rid-2", t + 1);
    append(&jj, q3.p, env.p, env.len, "rid-3", t + 2);
    append(&jj, NULL, text, sizeof(text) - 1, "rid-4", t + 3);
    append(&jj, NULL, event, sizeof(event) - 1, "rid-5", t + 4);
    snprintf(jpath, sizeof(jpath), "%s/callbacks.jsonl", jdir);
    file = read_file(jpath, &n);
    if (!file)
        abort();
    for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
        seed(out, variants[i].name, variants[i].hdr, file, n, NULL);
    /* a write cut short by a crash, and a line that is not a record */
    seed(out, "cut_short", variants[0].hdr, file, n - n / 3, NULL);
    seed(out, "garbage_line", variants[0].hdr, file, n,
         "{\"q\":\"\",\"b\":\"A===\",\"rid\":\"x\",\"t\":1,\"ms\":2}\n"
         "not json\n{\"q\":1}\n");
    free(file);
    clean(jdir);

    append(&jj, "", "", 0, "", 0);
    append(&jj, "a=1&b=%00", binary, sizeof(binary) - 1, "r\n\"\\", -1);
    append(&jj, q.p, text, 1, "one", INT64_MAX / 1000);
    append(&jj, NULL, binary, sizeof(binary) - 1, "bin", 1);
    file = read_file(jpath, &n);
    if (!file)
        abort();
    seed(out, "odd_bodies", variants[0].hdr, file, n, NULL);
    seed(out, "odd_bodies_stop", variants[4].hdr, file, n, NULL);
    free(file);
    clean(jdir);
    rmdir(jdir);
    kf_buf_release(&q);
    kf_buf_release(&q2);
    kf_buf_release(&q3);
    kf_buf_release(&enc);
    kf_buf_release(&env);
}
