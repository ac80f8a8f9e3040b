/* Tests of lib/journal: records come back byte for byte and in order, a
 * replay stopped by Redis going away again keeps exactly the rest, a line
 * cut short by a crash is dropped, and appenders in other processes racing
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal.h"
#include "testutil.h"

#define MANY 4000

struct seen {
    int n, fail_at;             /* fail_at: KF_EBACKEND on that call */
    char body[64][64];
    size_t len[64];
    char *hits;                 /* [MANY]: how often each id came back */
};

static int apply(void *ctx, const struct journal_rec *r)
{
    struct seen *s = ctx;
    int i;

    if (s->fail_at && s->n + 1 == s->fail_at) {
        s->fail_at = 0;
        return KF_EBACKEND;
    }
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
    struct journal_rec r = { KF_STR("signature=ab&timestamp=1"),
                             { body, len }, KF_STR("rid1"), now,
                             now * 1000 };

    return journal_append(j, &r);
}

static void records_come_back_in_order_byte_for_byte(void **st)
{
    static const char bin[] = "<xml>\0\xff\x01]]></xml>";
    struct journal j;
    struct journal_counts c = { 0, 0, 0 };
    struct seen s;
    char dir[64];

    (void)st;
    memset(&s, 0, sizeof(s));
    make_dir(dir, sizeof(dir));
    assert_int_equal(journal_init(&j, dir), 0);
    assert_false(journal_pending(&j));
    assert_int_equal(add(&j, "one", 3, 1700000000), 0);
    assert_int_equal(add(&j, bin, sizeof(bin) - 1, 1700000001), 0);
    assert_int_equal(add(&j, "", 0, 1700000002), 0);
    assert_true(journal_pending(&j));
    assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
    assert_int_equal(c.replayed, 3);
    assert_int_equal(c.dropped, 0);
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
    memset(&s, 0, sizeof(s));
    make_dir(dir, sizeof(dir));
    assert_int_equal(journal_init(&j, dir), 0);
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
        assert_int_equal(c.replayed + c.dropped, 0);
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

static void a_line_cut_short_is_dropped(void **st)
{
    struct journal j;
    struct journal_counts c = { 0, 0, 0 };
    struct seen s;
    char dir[64];
    int fd;

    (void)st;
    memset(&s, 0, sizeof(s));
    make_dir(dir, sizeof(dir));
    assert_int_equal(journal_init(&j, dir), 0);
    assert_int_equal(add(&j, "whole", 5, 1700000000), 0);
    fd = open(j.path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\"q\":\"sig", 9), 9);   /* a crash here */
    close(fd);
    /* the next record, acknowledged, must not be glued onto that line
     * (found by test/fuzz/fuzz_journal.c) */
    assert_int_equal(add(&j, "after", 5, 1700000001), 0);
    assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
    assert_int_equal(c.replayed, 2);
    assert_int_equal(c.dropped, 1);
    assert_false(journal_pending(&j));
    remove_dir(dir);
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
    memset(&s, 0, sizeof(s));
    s.hits = calloc(MANY, 1);
    assert_non_null(s.hits);
    make_dir(dir, sizeof(dir));
    assert_int_equal(journal_init(&j, dir), 0);
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
    /* replay while they write (bounded: at most 10,000 rounds) */
    for (rounds = 0; rounds < 10000 && running > 0; rounds++) {
        assert_int_equal(journal_replay(&j, apply, &s, &c), 0);
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
    assert_int_equal(c.dropped, 0);
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
        cmocka_unit_test(a_line_cut_short_is_dropped),
        cmocka_unit_test(appenders_racing_the_replayer_lose_nothing),
        cmocka_unit_test(without_a_journal_appends_fail),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
