/* Tests of lib/journal: records come back byte for byte and in order, a
 * replay stopped by Redis going away again keeps exactly the rest, a line
 * cut short by a crash goes to the quarantine file and a record glued
 * onto one is still found, an appender cut short in the middle of
 * another's check and write costs that one nothing, what apply refuses is
 * quarantined (never deleted), and appenders in other processes racing
 * the replayer lose nothing and duplicate nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal.h"
#include "testutil.h"

#define MANY 4000

struct seen {
    int n, fail_at;             /* fail_at: KF_EBACKEND on that call */
    int refuse_at;              /* KF_EINVAL on that call */
    char body[64][64];
    size_t len[64];
    char *hits;                 /* [MANY]: how often each id came back */
    struct kf_str want_query;   /* every record's query (binding key) */
    int unverified;             /* how many came back unverified */
};

static int apply(void *ctx, const struct journal_rec *r)
{
    struct seen *s = ctx;
    int i;

    if (s->fail_at && s->n + 1 == s->fail_at) {
        s->fail_at = 0;
        return KF_EBACKEND;
    }
    if (s->refuse_at && s->n + 1 == s->refuse_at) {
        s->refuse_at = 0;
        s->n++;
        return KF_EINVAL;
    }
    assert_int_equal(r->query.len, s->want_query.len);
    if (r->query.len)
        assert_memory_equal(r->query.p, s->want_query.p, r->query.len);
    if (!r->verified)
        s->unverified++;
    if (s->hits) {
        assert_int_equal(sscanf(r->body.p, "rec %d", &i), 1);
        assert_true(i >= 0 && i < MANY);
        s->hits[i]++;
    } else if (s->n < 64) {
        memcpy(s->body[s->n], r->body.p, r->body.len);
        s->len[s->n] = r->body.len;
    }
    s->n++;
    return 0;
}

static void make_dir(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/wxkf-journal-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int add(struct journal *j, const char *body, size_t len, int64_t now)
{
    struct journal_rec r = { KF_STR(""), { body, len }, KF_STR("rid1"), now,
                             now * 1000, 1 };

    return journal_append(j, &r);
}

/* The whole file as a string ("" if there is none); caller frees. */
static char *slurp(const char *path)
{
    char *buf = calloc(1, 65536);
    int fd = open(path, O_RDONLY);
    ssize_t n = 0;

    assert_non_null(buf);
    if (fd >= 0) {
        n = read(fd, buf, 65535);
        close(fd);
    }
    assert_true(n >= 0);
    return buf;
}

/* A fresh journal in a new directory, nothing seen yet. */
static void start(struct journal *j, struct seen *s, char *dir, size_t n)
{
    memset(s, 0, sizeof(*s));
    make_dir(dir, n);
    assert_int_equal(journal_init(j, dir), 0);
}

static void records_come_back_in_order_byte_for_byte(void **st)
{
    static const char bin[] = "<xml>\0\xff\x01]]></xml>";
    struct journal j;
    struct journal_counts c = { 0, 0, 0 };
    struct seen s;
    char dir[64];

    (void)st;
    start(&j, &s, dir, sizeof(dir));
    assert_false(journal_pending(&j));
    assert_int_equal(add(&j, "one", 3, 1700000000), 0);
    assert_int_equal(add(&j, bin, sizeof(bin) - 1, 1700000001), 0);
    assert_int_equal(add(&j, "", 0, 1700000002), 0);
    assert_true(journal_pending(&j));
    assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
    assert_int_equal(c.replayed, 3);
    assert_int_equal(c.quarantined, 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.len[0], 3);
    assert_memory_equal(s.body[0], "one", 3);
    assert_int_equal(s.len[1], sizeof(bin) - 1);
    assert_memory_equal(s.body[1], bin, sizeof(bin) - 1);
    assert_int_equal(s.len[2], 0);
    assert_false(journal_pending(&j));
    /* nothing pending: a replay does nothing */
    assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
    assert_int_equal(s.n, 3);
    remove_dir(dir);
}

static void a_stopped_replay_keeps_exactly_the_rest(void **st)
{
    struct journal j;
    struct journal_counts c = { 0, 0, 0 };
    struct seen s;
    char dir[64], b[16];
    int i;

    (void)st;
    start(&j, &s, dir, sizeof(dir));
    for (i = 0; i < 5; i++) {
        snprintf(b, sizeof(b), "m%d", i);
        assert_int_equal(add(&j, b, strlen(b), 1700000000 + i), 0);
    }
    s.fail_at = 3;              /* Redis goes away at the third */
    assert_int_equal(journal_replay(&j, apply, &s, &c), KF_EBACKEND);
    assert_int_equal(c.replayed, 2);
    assert_int_equal(c.left, 3);
    assert_true(journal_pending(&j));
    /* new callbacks meanwhile go to the journal as usual */
    assert_int_equal(add(&j, "m5", 2, 1700000005), 0);
    memset(&c, 0, sizeof(c));
    assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
    assert_int_equal(c.replayed, 4);
    assert_int_equal(s.n, 6);
    for (i = 0; i < 6; i++) {
        snprintf(b, sizeof(b), "m%d", i);
        assert_int_equal(s.len[i], strlen(b));
        assert_memory_equal(s.body[i], b, strlen(b));
    }
    assert_false(journal_pending(&j));
    remove_dir(dir);
}

/* Redis answering but refusing every write (out of memory): each try
 * stops at the first record and must not rewrite (and fsync) the whole
 * file again and again. */
static void a_replay_stopped_at_its_first_record_leaves_the_file(void **st)
{
    struct journal j;
    struct journal_counts c = { 0, 0, 0 };
    struct seen s;
    struct stat a, b;
    char dir[64], m[16];
    int i;

    (void)st;
    memset(&s, 0, sizeof(s));
    make_dir(dir, sizeof(dir));
    assert_int_equal(journal_init(&j, dir), 0);
    for (i = 0; i < 4; i++) {
        snprintf(m, sizeof(m), "m%d", i);
        assert_int_equal(add(&j, m, strlen(m), 1700000000 + i), 0);
    }
    s.fail_at = 1;
    assert_int_equal(journal_replay(&j, apply, &s, &c), KF_EBACKEND);
    assert_int_equal(c.left, 4);
    assert_int_equal(stat(j.replay, &a), 0);
    for (i = 0; i < 3; i++) {
        memset(&c, 0, sizeof(c));
        s.fail_at = 1;
        assert_int_equal(journal_replay(&j, apply, &s, &c), KF_EBACKEND);
        assert_int_equal(c.replayed + c.quarantined, 0);
        assert_int_equal(c.left, 4);
        assert_int_equal(stat(j.replay, &b), 0);
        assert_true(a.st_ino == b.st_ino);      /* the same file, unwritten */
        assert_true(a.st_size == b.st_size);
    }
    memset(&c, 0, sizeof(c));
    assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
    assert_int_equal(c.replayed, 4);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.body[3], "m3");
    assert_false(journal_pending(&j));
    remove_dir(dir);
}

/* A blank line before the record that stops is taken out with it: the
 * replay file left is exactly the rest from that record, and `left`
 * counts its lines (make fuzz found the file kept with the blank line
 * while `left` said one line less). */
static void a_stop_after_a_blank_line_keeps_the_rest_from_the_record(
    void **st)
{
    struct journal j;
    struct journal_counts c = { 0, 0, 0 };
    struct seen s;
    char dir[64], *all, *rest;
    int fd;

    (void)st;
    start(&j, &s, dir, sizeof(dir));
    fd = open(j.path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\n", 1), 1);
    close(fd);
    assert_int_equal(add(&j, "m0", 2, 1700000000), 0);
    assert_int_equal(add(&j, "m1", 2, 1700000001), 0);
    all = slurp(j.path);
    s.fail_at = 1;
    assert_int_equal(journal_replay(&j, apply, &s, &c), KF_EBACKEND);
    assert_int_equal(c.left, 2);
    rest = slurp(j.replay);
    assert_string_equal(rest, all + 1);
    free(rest);
    free(all);
    memset(&c, 0, sizeof(c));
    assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
    assert_int_equal(c.replayed, 2);
    assert_string_equal(s.body[1], "m1");
    assert_false(journal_pending(&j));
    remove_dir(dir);
}

static void a_line_cut_short_is_quarantined(void **st)
{
    struct journal j;
    struct journal_counts c = { 0, 0, 0 };
    struct seen s;
    char dir[64], *q;
    int fd;

    (void)st;
    start(&j, &s, dir, sizeof(dir));
    assert_int_equal(add(&j, "whole", 5, 1700000000), 0);
    fd = open(j.path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\"x\":\"sig", 9), 9);   /* a crash here */
    close(fd);
    /* the next record, acknowledged, must not be glued onto that line
     * (found by test/fuzz/fuzz_journal.c) */
    assert_int_equal(add(&j, "after", 5, 1700000001), 0);
    assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
    assert_int_equal(c.replayed, 2);
    assert_int_equal(c.quarantined, 1);
    assert_false(journal_pending(&j));
    q = slurp(j.quarantine);
    assert_string_equal(q, "{\"x\":\"sig\n");
    free(q);
    remove_dir(dir);
}

/* What an older version could leave: a record appended right onto a
 * record cut short (no newline between them). The reader finds the
 * record inside the damaged line; the piece before it is quarantined. */
static void a_record_glued_onto_a_cut_short_line_is_replayed(void **st)
{
    static const char garbage[] = "{\"x\":\"aGVs";
    struct journal j;
    struct journal_counts c = { 0, 0, 0 };
    struct seen s;
    char dir[64], path2[128], *whole, *q;
    int fd;

    (void)st;
    start(&j, &s, dir, sizeof(dir));
    /* the record as journal_append writes it, in a file of its own */
    snprintf(path2, sizeof(path2), "%s/one", dir);
    assert_int_equal(mkdir(path2, 0700), 0);
    {
        struct journal j2;

        assert_int_equal(journal_init(&j2, path2), 0);
        assert_int_equal(add(&j2, "glued", 5, 1700000000), 0);
        whole = slurp(j2.path);
    }
    fd = open(j.path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, garbage, strlen(garbage)),
                     (ssize_t)strlen(garbage));
    assert_int_equal(write(fd, whole, strlen(whole)), (ssize_t)strlen(whole));
    close(fd);
    assert_int_equal(add(&j, "next", 4, 1700000001), 0);
    assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
    assert_int_equal(c.replayed, 2);
    assert_int_equal(s.len[0], 5);
    assert_memory_equal(s.body[0], "glued", 5);
    assert_memory_equal(s.body[1], "next", 4);
    assert_int_equal(c.quarantined, 1);
    q = slurp(j.quarantine);
    assert_int_equal(strlen(q), strlen(garbage) + 1);
    assert_memory_equal(q, garbage, strlen(garbage));
    free(q);
    free(whole);
    remove_dir(dir);
}

/* 1 if pid waits for a flock (a "->" line of /proc/locks). */
static int waiting_for_a_lock(pid_t pid)
{
    char *locks = slurp("/proc/locks"), *p, pat[32];
    int found = 0;

    snprintf(pat, sizeof(pat), " %d ", (int)pid);
    for (p = strstr(locks, "-> FLOCK"); p && !found;
         p = strstr(p + 1, "-> FLOCK")) {
        char *eol = strchr(p, '\n'), *hit = strstr(p, pat);

        found = hit && (!eol || hit < eol);
    }
    free(locks);
    return found;
}

struct cut {
    const char *dir;
    pid_t pid;
    int child_done;
};

/* Appender A's hook: the disk fills up 20 bytes into its write. */
static void disk_fills_up(void *path)
{
    struct stat sb;
    struct rlimit rl;

    if (stat(path, &sb) < 0)
        _exit(2);
    rl.rlim_cur = rl.rlim_max = (rlim_t)sb.st_size + 20;
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
        _exit(2);
}

/* Appender B's hook, between its check of the last byte and its write:
 * appender A, in another process, appends a record of its own and its
 * write is cut short half way (a full disk: RLIMIT_FSIZE), as a crash
 * mid-write would leave it. Goes on once A has finished, or is waiting
 * for the lock B holds (bounded: 10 s). */
static void cut_short_appender(void *ctx)
{
    struct cut *cut = ctx;
    int i, status;

    if (cut->pid)
        return;                 /* once */
    cut->pid = fork();
    assert_true(cut->pid >= 0);
    if (cut->pid == 0) {
        struct journal a;

        signal(SIGXFSZ, SIG_IGN);
        if (journal_init(&a, cut->dir) < 0)
            _exit(2);
        a.before_write = disk_fills_up;
        a.hook_ctx = a.path;
        /* the disk is full: this appender is told so (no 200) */
        _exit(add(&a, "appender A, cut short", 21, 1700000002) == KF_EIO
                  ? 0 : 1);
    }
    for (i = 0; i < 1000; i++) {
        if (waitpid(cut->pid, &status, WNOHANG) == cut->pid) {
            assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
            cut->child_done = 1;
            return;
        }
        if (waiting_for_a_lock(cut->pid))
            return;
        tu_sleep_ms(10);
    }
    fail_msg("appender A neither finished nor waited for the lock");
}

#define B_START "{\"x\":\"YXBwZW5kZXIgQg==\""     /* "appender B" */

/* Appender B checks that the file ends in a newline; before B writes,
 * appender A writes half a record and fails. B's record, acknowledged,
 * must still be replayed: check and write are one step under the lock. */
static void an_appender_cut_short_during_anothers_append_costs_it_nothing(
    void **st)
{
    struct journal j;
    struct journal_counts c = { 0, 0, 0 };
    struct seen s;
    struct cut cut;
    char dir[64], *file, *line2;
    int status;

    (void)st;
    memset(&cut, 0, sizeof(cut));
    start(&j, &s, dir, sizeof(dir));
    assert_int_equal(add(&j, "first", 5, 1700000000), 0);
    cut.dir = dir;
    j.before_write = cut_short_appender;
    j.hook_ctx = &cut;
    assert_int_equal(add(&j, "appender B", 10, 1700000001), 0);  /* 200 */
    j.before_write = NULL;
    if (!cut.child_done) {
        assert_int_equal(waitpid(cut.pid, &status, 0), cut.pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    /* B's record is on a line of its own, A's piece after it */
    file = slurp(j.path);
    line2 = strchr(file, '\n');
    assert_non_null(line2);
    assert_memory_equal(line2 + 1, B_START, strlen(B_START));
    free(file);
    assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(c.replayed, 2);
    assert_int_equal(c.quarantined, 1);       /* A's piece */
    assert_memory_equal(s.body[0], "first", 5);
    assert_int_equal(s.len[1], 10);
    assert_memory_equal(s.body[1], "appender B", 10);
    assert_false(journal_pending(&j));
    remove_dir(dir);
}

/* A record apply refuses is not lost: it goes to the quarantine file
 * (counted), the rest is replayed, and nothing deletes that file. */
static void a_record_apply_refuses_is_quarantined_never_deleted(void **st)
{
    struct journal j, j2;
    struct journal_counts c = { 0, 0, 0 };
    struct seen s, s2;
    char dir[64], *q, *q2;

    (void)st;
    memset(&s2, 0, sizeof(s2));
    start(&j, &s, dir, sizeof(dir));
    assert_int_equal(add(&j, "m0", 2, 1700000000), 0);
    assert_int_equal(add(&j, "refused", 7, 1700000001), 0);
    assert_int_equal(add(&j, "m2", 2, 1700000002), 0);
    q = slurp(j.path);
    s.refuse_at = 2;
    assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
    assert_int_equal(c.replayed, 2);
    assert_int_equal(c.quarantined, 1);
    assert_false(journal_pending(&j));
    q2 = slurp(j.quarantine);
    /* the refused record's line, byte for byte, readable as a record */
    assert_non_null(strstr(q, q2));
    assert_int_equal(journal_init(&j2, dir), 0);
    snprintf(j2.path, sizeof(j2.path), "%s", j.quarantine);
    assert_int_equal(journal_replay(&j2, apply, &s2, &c), 0);
    assert_int_equal(s2.n, 1);
    assert_memory_equal(s2.body[0], "refused", 7);
    free(q);
    free(q2);
    /* a later replay with nothing pending leaves the quarantine alone */
    assert_int_equal(add(&j, "m3", 2, 1700000003), 0);
    s.refuse_at = 0;
    memset(&c, 0, sizeof(c));
    assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
    assert_int_equal(c.replayed, 1);
    remove_dir(dir);
}

/* r appended twice comes back twice with its query byte for byte; how
 * many of the two came back unverified. */
static int round_trip(const struct journal_rec *r)
{
    struct journal j;
    struct journal_counts c = { 0, 0, 0 };
    struct seen s;
    char dir[64];

    start(&j, &s, dir, sizeof(dir));
    assert_int_equal(journal_append(&j, r), 0);
    assert_int_equal(journal_append(&j, r), 0);
    s.want_query = r->query;
    assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.len[1], r->body.len);
    assert_memory_equal(s.body[1], r->body.p, r->body.len);
    remove_dir(dir);
    return s.unverified;
}

/* Records of the format before the verified push was kept (the request
 * as it arrived) are still read back, marked unverified. */
static void unverified_records_come_back_with_their_query(void **st)
{
    struct journal_rec r = { KF_STR("signature=ab&timestamp=1"),
                             KF_STR("<xml/>"), KF_STR("rid9"), 1700000000,
                             1700000000123, 0 };

    (void)st;
    assert_int_equal(round_trip(&r), 2);
}

/* A verified record keeps its signed query's binding key byte for byte,
 * whatever bytes the query held (not UTF-8, quotes, a record start). */
static void verified_records_keep_their_binding_key(void **st)
{
    static const char key[] = "0123456789abcdef0123456789abcdef01234567:"
                              "1700000000:\xff\xfe{\"x\":\"\\";
    struct journal_rec r = { { key, sizeof(key) - 1 }, KF_STR("<xml/>"),
                             KF_STR("rid8"), 1700000000, 1700000000123, 1 };

    (void)st;
    assert_int_equal(round_trip(&r), 0);
}

static void appenders_racing_the_replayer_lose_nothing(void **st)
{
    struct journal j;
    struct journal_counts c = { 0, 0, 0 };
    struct seen s;
    char dir[64], b[32];
    pid_t kids[4];
    int i, k, status, running = 4, rounds;

    (void)st;
    start(&j, &s, dir, sizeof(dir));
    s.hits = calloc(MANY, 1);
    assert_non_null(s.hits);
    for (k = 0; k < 4; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            for (i = k; i < MANY; i += 4) {
                snprintf(b, sizeof(b), "rec %d", i);
                if (add(&j, b, strlen(b), 1700000000) != 0)
                    _exit(1);
            }
            _exit(0);
        }
    }
    /* replay while they write (bounded: at most 10,000 rounds of at
     * least 5 ms) */
    for (rounds = 0; rounds < 10000 && running > 0; rounds++) {
        assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
        tu_sleep_ms(5);
        for (k = 0; k < 4; k++)
            if (kids[k] > 0 && waitpid(kids[k], &status, WNOHANG) ==
                    kids[k]) {
                assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
                kids[k] = 0;
                running--;
            }
    }
    assert_int_equal(running, 0);
    assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
    assert_false(journal_pending(&j));
    assert_int_equal(c.replayed, MANY);
    assert_int_equal(c.quarantined, 0);
    for (i = 0; i < MANY; i++)
        assert_int_equal(s.hits[i], 1);
    free(s.hits);
    remove_dir(dir);
}

static void without_a_journal_appends_fail(void **st)
{
    struct journal j;
    struct journal_counts c = { 0, 0, 0 };
    struct seen s;

    (void)st;
    memset(&s, 0, sizeof(s));
    assert_int_equal(journal_init(&j, ""), 0);
    assert_false(journal_pending(&j));
    assert_int_equal(add(&j, "x", 1, 1), KF_EIO);
    assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
    assert_int_equal(journal_init(&j, "/proc/no/such/dir"), KF_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(records_come_back_in_order_byte_for_byte),
        cmocka_unit_test(a_stopped_replay_keeps_exactly_the_rest),
        cmocka_unit_test(a_replay_stopped_at_its_first_record_leaves_the_file),
        cmocka_unit_test(a_stop_after_a_blank_line_keeps_the_rest_from_the_record),
        cmocka_unit_test(a_line_cut_short_is_quarantined),
        cmocka_unit_test(a_record_glued_onto_a_cut_short_line_is_replayed),
        cmocka_unit_test(
            an_appender_cut_short_during_anothers_append_costs_it_nothing),
        cmocka_unit_test(a_record_apply_refuses_is_quarantined_never_deleted),
        cmocka_unit_test(unverified_records_come_back_with_their_query),
        cmocka_unit_test(verified_records_keep_their_binding_key),
        cmocka_unit_test(appenders_racing_the_replayer_lose_nothing),
        cmocka_unit_test(without_a_journal_appends_fail),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
