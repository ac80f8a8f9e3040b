/* Tests of lib/agent: field validation (tables of good and bad values),
 * token format and hashing, the Redis mirror against a private
 * redis-server, and the verbs over both stores (their error codes, the
 * rebuild) against a private PostgreSQL too. (The CLI over them is
 * covered by the black-box suite, test/it/test_agent_cmd.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <unistd.h>

#include "agent.h"
#include "agent_db.h"
#include "agent_mirror.h"
#include "agent_sync.h"
#include "agent_token.h"
#include "store.h"
#include "testutil.h"
#include "tu_pg.h"

#define APPID "wx62dd79ea990faa89"
#define P "wxkf:{" APPID "}:"

/* ------------------------------------------------------------ validation */

static char *repeat(const char *unit, int n)
{
    size_t len = strlen(unit);
    char *s = malloc(len * (size_t)n + 1);
    int i;

    assert_non_null(s);
    for (i = 0; i < n; i++)
        memcpy(s + len * (size_t)i, unit, len);
    s[len * (size_t)n] = '\0';
    return s;
}

static void expect_field_error(int rc, const struct agent_err *err,
                               const char *field, const char *input)
{
    if (rc != KF_EINVAL)
        fail_msg("accepted %s \"%s\" (rc %d)", field, input, rc);
    if (strncmp(err->msg, field, strlen(field)) != 0)
        fail_msg("error for %s \"%s\" does not name the field: %s", field,
                 input, err->msg);
}

static void test_agent_accepts_wechat_kf_accounts(void **st)
{
    static const char *const good[] = {
        "a", "abcdefghij", "A_1", "kf2001@wx_corp", "x@a-b_C",
        "Z9@abcdefghijabcdefghijabcdefghij",     /* 30-character domain */
    };
    struct agent_err err;
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (agent_check_account(good[i], &err) != 0)
            fail_msg("refused %s: %s", good[i], err.msg);
}

static void test_agent_refuses_malformed_accounts(void **st)
{
    static const char *const bad[] = {
        "", "abcdefghijk", "a b", "a-b", "a@", "@wx", "a@b@c", "a@b c",
        "a@abcdefghijabcdefghijabcdefghijX", "\xc3\xa9", "a;drop", "a'",
        "a\n", "abcdefghijk@wx",
    };
    struct agent_err err;
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_field_error(agent_check_account(bad[i], &err), &err,
                           "account", bad[i]);
    expect_field_error(agent_check_account(NULL, &err), &err, "account",
                       "(null)");
}

static void test_agent_accepts_nicks_up_to_64_characters(void **st)
{
    char *a64 = repeat("a", 64), *e64 = repeat("\xc3\xa9", 64),
         *emoji63 = repeat("\xf0\x9f\x98\x80", 63);
    const char *good[] = { "Alice", "\xe7\x8e\x8b\xe5\xb0\x8f\xe6\x98\x8e",
                           "O'Brien; DROP TABLE agents;--", "a b",
                           a64, e64, emoji63 };
    struct agent_err err;
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (agent_check_nick(good[i], &err) != 0)
            fail_msg("refused nick #%zu: %s", i, err.msg);
    free(a64);
    free(e64);
    free(emoji63);
}

static void test_agent_refuses_bad_nicks(void **st)
{
    char *a65 = repeat("a", 65), *emoji64 = repeat("\xf0\x9f\x98\x80", 64);
    const char *bad[] = {
        "", a65, emoji64 /* 64 characters but 256 bytes */,
        "\xff", "ab\xc3", "\xc0\xaf" /* overlong '/' */,
        "\xe0\x80\xaf", "\xed\xa0\x80" /* surrogate */,
        "\xf4\x90\x80\x80" /* > U+10FFFF */, "\xe4\xb8" /* truncated */,
        "a\nb", "a\tb", "a\x7f", "\xc2\x85" /* C1 NEL */, "\x1b[31m",
    };
    struct agent_err err;
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_field_error(agent_check_nick(bad[i], &err), &err, "nick",
                           "(see table)");
    free(a65);
    free(emoji64);
}

static void test_agent_refuses_bad_groups(void **st)
{
    char *g33 = repeat("g", 33), *cn33 = repeat("\xe5\x94\xae", 33);
    const char *bad[] = { "", "Sales", "a b", "a.b", "a,b", "a:b", "a;b",
                          "a\"b", "_all", g33, cn33,
                          "\xe5\x94\xae \xe5\x90\x8e",         /* space */
                          "\xe5\x94\xae\xe3\x80\x80\xe5\x90\x8e", /* U+3000 */
                          "a\xc2\xa0", "a\xe2\x80\x8b",           /* NBSP, ZWSP */
                          "a\xef\xbb\xbf", "\xc2\x85",           /* BOM, NEL */
                          "\xff", "\xe5\x94", "\xc0\xaf" };  /* not UTF-8 */
    struct agent_err err;
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_field_error(agent_check_group(bad[i], &err), &err, "group",
                           bad[i]);
    free(g33);
    free(cn33);
}

/* Support teams name their groups in their language: 售后 (after-sales)
 * is a group, up to 32 characters of it (96 bytes), beside the ASCII
 * names of before. */
static void test_agent_accepts_unicode_group_names(void **st)
{
    char *cn32 = repeat("\xe5\x94\xae", 32);
    const char *good[] = { "pre-sales_2", "\xe5\x94\xae\xe5\x90\x8e",
                           "vip-\xe5\xae\xa2\xe6\x88\xb7", "\xc3\xa9quipe",
                           cn32 };
    struct agent_err err;
    struct agent a;
    size_t i;

    (void)st;
    agent_init(&a);
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(agent_check_group(good[i], &err), 0);
        assert_int_equal(agent_add_group(&a, good[i], &err), 0);
        assert_string_equal(a.groups[i], good[i]);
    }
    free(cn32);
}

static void test_agent_group_list_refuses_duplicates_and_a_17th(void **st)
{
    struct agent_err err;
    struct agent a;
    char g[8];
    int i;

    (void)st;
    agent_init(&a);
    assert_int_equal(agent_add_group(&a, "sales", &err), 0);
    expect_field_error(agent_add_group(&a, "sales", &err), &err, "group",
                       "sales twice");
    assert_int_equal(a.ngroups, 1);
    for (i = 1; i < AGENT_MAX_GROUPS; i++) {
        snprintf(g, sizeof(g), "g%d", i);
        assert_int_equal(agent_add_group(&a, g, &err), 0);
    }
    expect_field_error(agent_add_group(&a, "g17", &err), &err, "group",
                       "17th");
    assert_int_equal(a.ngroups, AGENT_MAX_GROUPS);
    /* A record built by hand is checked the same way. */
    memcpy(a.groups[3], "sales", 6);
    assert_int_equal(agent_set_account(&a, "kf1", &err), 0);
    assert_int_equal(agent_set_nick(&a, "N", &err), 0);
    expect_field_error(agent_validate(&a, &err), &err, "group", "dup");
}

static void test_agent_validates_weight_and_capacity_ranges(void **st)
{
    static const struct { int weight, capacity, ok; const char *field; }
    cases[] = {
        { 1, 0, 1, NULL },   { 100, 10000, 1, NULL }, { 50, 1, 1, NULL },
        { 0, 0, 0, "weight" }, { 101, 0, 0, "weight" },
        { -1, 0, 0, "weight" }, { 1, -1, 0, "capacity" },
        { 1, 10001, 0, "capacity" },
    };
    struct agent_err err;
    struct agent a;
    size_t i;

    (void)st;
    agent_init(&a);
    assert_int_equal(a.weight, 1);
    assert_int_equal(a.capacity, 0);
    assert_int_equal(agent_set_account(&a, "kf1", &err), 0);
    assert_int_equal(agent_set_nick(&a, "Nick", &err), 0);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc;

        a.weight = cases[i].weight;
        a.capacity = cases[i].capacity;
        rc = agent_validate(&a, &err);
        if (cases[i].ok && rc != 0)
            fail_msg("case %zu refused: %s", i, err.msg);
        if (!cases[i].ok)
            expect_field_error(rc, &err, cases[i].field, "range");
    }
}

static void test_agent_setters_copy_only_valid_values(void **st)
{
    char *long_nick = repeat("n", 300);
    struct agent_err err;
    struct agent a;

    (void)st;
    agent_init(&a);
    assert_int_equal(agent_set_account(&a, "kf1@corp", &err), 0);
    assert_string_equal(a.account, "kf1@corp");
    expect_field_error(agent_set_account(&a, "no way", &err), &err,
                       "account", "no way");
    assert_string_equal(a.account, "kf1@corp");
    expect_field_error(agent_set_nick(&a, long_nick, &err), &err, "nick",
                       "300 n");
    assert_string_equal(a.nick, "");
    free(long_nick);
}

/* ---------------------------------------------------------------- tokens */

static void test_agent_token_hash_is_sha256_hex(void **st)
{
    char hex[AGENT_HASH_SIZE];

    (void)st;
    /* printf %s TOKEN | sha256sum */
    assert_int_equal(agent_token_hash("wxa_00112233445566778899aabbccddeeff"
                                      "00112233445566778899aabbccddeeff",
                                      hex), 0);
    assert_string_equal(hex, "b9ecc8cf8570c7d8fb37f9ebec199230"
                             "da15c79be891f747120e5952d4f940d3");
    assert_int_equal(agent_token_hash("", hex), 0);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb924"
                             "27ae41e4649b934ca495991b7852b855");
}

static void test_agent_token_is_wxa_and_64_hex_and_fresh(void **st)
{
    char t1[AGENT_TOKEN_SIZE], t2[AGENT_TOKEN_SIZE];
    char h1[AGENT_HASH_SIZE], h2[AGENT_HASH_SIZE], again[AGENT_HASH_SIZE];
    size_t i;

    (void)st;
    assert_int_equal(agent_token_new(t1, h1), 0);
    assert_int_equal(agent_token_new(t2, h2), 0);
    assert_int_equal(strlen(t1), 68);
    assert_memory_equal(t1, "wxa_", 4);
    for (i = 4; i < 68; i++)
        assert_non_null(strchr("0123456789abcdef", t1[i]));
    assert_string_not_equal(t1, t2);
    assert_string_not_equal(h1, h2);
    assert_int_equal(agent_token_hash(t1, again), 0);
    assert_string_equal(h1, again);
    assert_int_equal(strlen(h1), 64);
}

/* ---------------------------------------------------------- Redis mirror */

struct fixture {
    struct tu_redis redis;
    struct store s;
};

static int setup(void **st)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char url[64];

    assert_non_null(f);
    tu_redis_start(&f->redis);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", f->redis.port);
    assert_int_equal(store_init(&f->s, url, APPID, 500, 1000), 0);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    struct fixture *f = *st;

    store_release(&f->s);
    tu_redis_stop(&f->redis);
    free(f);
    return 0;
}

static void expect(struct fixture *f, const char *want, const char *a,
                   const char *b, const char *c, const char *d)
{
    const char *argv[] = { a, b, c, d, NULL };
    char *got = tu_redis_cmd(&f->redis, argv);

    if (strcmp(got, want) != 0)
        fail_msg("%s %s %s %s: got \"%s\", want \"%s\"", a, b,
                 c ? c : "", d ? d : "", got, want);
    free(got);
}

static void rcmd(struct fixture *f, const char *a, const char *b,
                 const char *c, const char *d)
{
    const char *argv[] = { a, b, c, d, NULL };

    free(tu_redis_cmd(&f->redis, argv));
}

static void make_agent(struct agent *a, const char *account,
                       const char *nick, const char *const *groups)
{
    struct agent_err err;

    agent_init(a);
    assert_int_equal(agent_set_account(a, account, &err), 0);
    assert_int_equal(agent_set_nick(a, nick, &err), 0);
    for (; groups && *groups; groups++)
        assert_int_equal(agent_add_group(a, *groups, &err), 0);
}

static void test_agent_mirror_put_creates_hash_sets_and_token(void **st)
{
    struct fixture *f = *st;
    static const char *const groups[] = { "sales", "vip", NULL };
    char token[AGENT_TOKEN_SIZE], hash[AGENT_HASH_SIZE], key[160];
    struct agent_err err;
    struct agent a;

    make_agent(&a, "kf1@corp", "O'Brien \xe7\x8e\x8b", groups);
    a.weight = 7;
    assert_int_equal(agent_token_new(token, hash), 0);
    assert_int_equal(agent_mirror_put(&f->s, &a, hash, &err), 0);
    expect(f, "O'Brien \xe7\x8e\x8b", "HGET", P "agent:kf1@corp", "nick",
           NULL);
    expect(f, "7", "HGET", P "agent:kf1@corp", "weight", NULL);
    expect(f, "", "HGET", P "agent:kf1@corp", "capacity", NULL);
    expect(f, "sales,vip", "HGET", P "agent:kf1@corp", "groups", NULL);
    expect(f, "offline", "HGET", P "agent:kf1@corp", "status", NULL);
    expect(f, hash, "HGET", P "agent:kf1@corp", "token_sha256", NULL);
    expect(f, "1", "SISMEMBER", P "agents", "kf1@corp", NULL);
    expect(f, "1", "SISMEMBER", P "group:sales", "kf1@corp", NULL);
    expect(f, "1", "SISMEMBER", P "group:vip", "kf1@corp", NULL);
    snprintf(key, sizeof(key), P "token:%s", hash);
    expect(f, "kf1@corp", "GET", key, NULL, NULL);
    /* The plaintext token is in no key and no value. */
    expect(f, "0", "EVAL", "local n = 0 for _, k in ipairs(redis.call("
           "'KEYS', '*')) do if string.find(k, ARGV[1], 1, true) then "
           "n = n + 1 end local t = redis.call('TYPE', k).ok "
           "if t == 'string' then t = {redis.call('GET', k)} "
           "elseif t == 'hash' then t = redis.call('HVALS', k) "
           "else t = redis.call('SMEMBERS', k) end "
           "for _, v in ipairs(t) do if string.find(v, ARGV[1], 1, true) "
           "then n = n + 1 end end end return n", "0", token + 4);
}

static void test_agent_mirror_put_again_moves_group_sets(void **st)
{
    struct fixture *f = *st;
    static const char *const before[] = { "sales", "vip", NULL };
    static const char *const after[] = { "vip", "support", NULL };
    struct agent_err err;
    struct agent a;

    make_agent(&a, "kf2", "Two", before);
    assert_int_equal(agent_mirror_put(&f->s, &a, NULL, &err), 0);
    rcmd(f, "SADD", P "group:sales", "someone", NULL);
    make_agent(&a, "kf2", "Two renamed", after);
    a.capacity = 3;
    assert_int_equal(agent_mirror_put(&f->s, &a, NULL, &err), 0);
    expect(f, "0", "SISMEMBER", P "group:sales", "kf2", NULL);
    expect(f, "1", "SISMEMBER", P "group:sales", "someone", NULL);
    expect(f, "1", "SISMEMBER", P "group:vip", "kf2", NULL);
    expect(f, "1", "SISMEMBER", P "group:support", "kf2", NULL);
    expect(f, "vip,support", "HGET", P "agent:kf2", "groups", NULL);
    expect(f, "Two renamed", "HGET", P "agent:kf2", "nick", NULL);
    expect(f, "3", "HGET", P "agent:kf2", "capacity", NULL);
    /* No groups at all: out of every set. */
    make_agent(&a, "kf2", "Two", NULL);
    assert_int_equal(agent_mirror_put(&f->s, &a, NULL, &err), 0);
    expect(f, "0", "SISMEMBER", P "group:vip", "kf2", NULL);
    expect(f, "0", "SISMEMBER", P "group:support", "kf2", NULL);
    expect(f, "", "HGET", P "agent:kf2", "groups", NULL);
    expect(f, "1", "SISMEMBER", P "agents", "kf2", NULL);
}

static void test_agent_mirror_put_keeps_an_existing_status(void **st)
{
    struct fixture *f = *st;
    struct agent_err err;
    struct agent a;
    char status[16];
    long long load = -1;

    make_agent(&a, "kf3", "Three", NULL);
    assert_int_equal(agent_mirror_put(&f->s, &a, NULL, &err), 0);
    assert_int_equal(agent_mirror_status(&f->s, "kf3", status, &load, &err),
                     0);
    assert_string_equal(status, "offline");
    assert_int_equal(load, 0);
    rcmd(f, "SADD", P "load:kf3", "oUserA", NULL);
    rcmd(f, "SADD", P "load:kf3", "oUserB", NULL);
    rcmd(f, "HSET", P "agent:kf3", "status", "online");
    a.weight = 9;
    assert_int_equal(agent_mirror_put(&f->s, &a, NULL, &err), 0);
    expect(f, "online", "HGET", P "agent:kf3", "status", NULL);
    expect(f, "9", "HGET", P "agent:kf3", "weight", NULL);
    assert_int_equal(agent_mirror_status(&f->s, "kf3", status, &load, &err),
                     0);
    assert_string_equal(status, "online");
    assert_int_equal(load, 2);
    assert_int_equal(agent_mirror_status(&f->s, "kf3", status, NULL, &err),
                     0);
    assert_int_equal(agent_mirror_status(&f->s, "nobody", status, NULL, &err),
                     KF_ENOTFOUND);
}

static void test_agent_mirror_token_rotation_deletes_old_key(void **st)
{
    struct fixture *f = *st;
    char t1[AGENT_TOKEN_SIZE], h1[AGENT_HASH_SIZE];
    char t2[AGENT_TOKEN_SIZE], h2[AGENT_HASH_SIZE];
    char k1[160], k2[160];
    struct agent_err err;
    struct agent a;

    make_agent(&a, "kf4", "Four", NULL);
    assert_int_equal(agent_token_new(t1, h1), 0);
    assert_int_equal(agent_token_new(t2, h2), 0);
    snprintf(k1, sizeof(k1), P "token:%s", h1);
    snprintf(k2, sizeof(k2), P "token:%s", h2);
    assert_int_equal(agent_mirror_put(&f->s, &a, h1, &err), 0);
    expect(f, "kf4", "GET", k1, NULL, NULL);
    /* A put without a token keeps it. */
    assert_int_equal(agent_mirror_put(&f->s, &a, NULL, &err), 0);
    expect(f, "kf4", "GET", k1, NULL, NULL);
    assert_int_equal(agent_mirror_put(&f->s, &a, h2, &err), 0);
    expect(f, "(nil)", "GET", k1, NULL, NULL);
    expect(f, "kf4", "GET", k2, NULL, NULL);
    expect(f, h2, "HGET", P "agent:kf4", "token_sha256", NULL);
    /* The same token again (sync) changes nothing. */
    assert_int_equal(agent_mirror_put(&f->s, &a, h2, &err), 0);
    expect(f, "kf4", "GET", k2, NULL, NULL);
    expect(f, "0", "EXISTS", k1, NULL, NULL);
}

static void test_agent_mirror_remove_refused_while_sessions(void **st)
{
    struct fixture *f = *st;
    static const char *const groups[] = { "sales", NULL };
    char t[AGENT_TOKEN_SIZE], h[AGENT_HASH_SIZE], k[160];
    struct agent_err err;
    struct agent a;

    make_agent(&a, "kf5", "Five", groups);
    assert_int_equal(agent_token_new(t, h), 0);
    assert_int_equal(agent_mirror_put(&f->s, &a, h, &err), 0);
    rcmd(f, "SADD", P "load:kf5", "oUser1", NULL);
    assert_int_equal(agent_mirror_remove(&f->s, "kf5", &err), KF_EBUSY);
    assert_string_equal(err.msg,
                        "agent has active sessions; set it offline first");
    snprintf(k, sizeof(k), P "token:%s", h);
    expect(f, "kf5", "GET", k, NULL, NULL);
    expect(f, "1", "SISMEMBER", P "agents", "kf5", NULL);
    expect(f, "1", "SISMEMBER", P "group:sales", "kf5", NULL);
    expect(f, "1", "EXISTS", P "agent:kf5", NULL, NULL);
    /* No sessions but online: refused too. */
    rcmd(f, "DEL", P "load:kf5", NULL, NULL);
    rcmd(f, "HSET", P "agent:kf5", "status", "online");
    assert_int_equal(agent_mirror_remove(&f->s, "kf5", &err), KF_EBUSY);
    assert_non_null(strstr(err.msg, "set it offline first"));
    expect(f, "1", "EXISTS", P "agent:kf5", NULL, NULL);
}

static void test_agent_mirror_remove_clears_everything(void **st)
{
    struct fixture *f = *st;
    static const char *const groups[] = { "sales", "vip", NULL };
    char t[AGENT_TOKEN_SIZE], h[AGENT_HASH_SIZE], k[160];
    struct agent_err err;
    struct agent a, other;

    make_agent(&a, "kf6", "Six", groups);
    make_agent(&other, "kf7", "Seven", groups);
    assert_int_equal(agent_token_new(t, h), 0);
    assert_int_equal(agent_mirror_put(&f->s, &a, h, &err), 0);
    assert_int_equal(agent_mirror_put(&f->s, &other, NULL, &err), 0);
    rcmd(f, "SADD", P "load:kf6", "oUser1", NULL);
    rcmd(f, "SREM", P "load:kf6", "oUser1", NULL);     /* session ended */
    assert_int_equal(agent_mirror_remove(&f->s, "kf6", &err), 0);
    snprintf(k, sizeof(k), P "token:%s", h);
    expect(f, "0", "EXISTS", k, NULL, NULL);
    expect(f, "0", "EXISTS", P "agent:kf6", NULL, NULL);
    expect(f, "0", "SISMEMBER", P "agents", "kf6", NULL);
    expect(f, "0", "SISMEMBER", P "group:sales", "kf6", NULL);
    expect(f, "0", "SISMEMBER", P "group:vip", "kf6", NULL);
    /* Others are untouched; removing again is not an error. */
    expect(f, "1", "SISMEMBER", P "group:vip", "kf7", NULL);
    expect(f, "1", "SISMEMBER", P "agents", "kf7", NULL);
    assert_int_equal(agent_mirror_remove(&f->s, "kf6", &err), 0);
}

static void test_agent_mirror_reports_redis_down(void **st)
{
    struct fixture *f = *st;
    struct agent_err err;
    struct agent a;

    make_agent(&a, "kf8", "Eight", NULL);
    tu_redis_stop(&f->redis);
    assert_int_equal(agent_mirror_put(&f->s, &a, NULL, &err), KF_EBACKEND);
    assert_non_null(strstr(err.msg, "Redis"));
    assert_int_equal(agent_mirror_remove(&f->s, "kf8", &err), KF_EBACKEND);
}

static void test_agent_mirror_refuses_invalid_input(void **st)
{
    struct fixture *f = *st;
    struct agent_err err;
    struct agent a;

    make_agent(&a, "kf9", "Nine", NULL);
    a.weight = 0;
    expect_field_error(agent_mirror_put(&f->s, &a, NULL, &err), &err,
                       "weight", "0");
    a.weight = 1;
    assert_int_equal(agent_mirror_put(&f->s, &a, "not-a-hash", &err),
                     KF_EINVAL);
    expect_field_error(agent_mirror_remove(&f->s, "bad acct", &err), &err,
                       "account", "bad acct");
    expect(f, "0", "EXISTS", P "agent:kf9", NULL, NULL);
}

/* An admin request must not hang its worker on a server that never
 * answers: PG_USE_REQUEST gives up after about 2 s (not the 10 s a
 * command may wait), whatever connect_timeout the dsn asks for. */
static void test_agent_db_open_in_a_request_gives_up_within_about_2s(
    void **st)
{
    struct pg_conn *db = (struct pg_conn *)1;
    struct agent_err err = { "", 0 };
    char dsn[128];
    int64_t t0, took;
    int fd = tu_pg_silent_dsn(dsn, sizeof(dsn));

    (void)st;
    t0 = kf_mono_ms();
    assert_int_equal(agent_db_open(dsn, PG_USE_REQUEST, &db, &err),
                     KF_EBACKEND);
    took = kf_mono_ms() - t0;
    assert_null(db);
    assert_non_null(strstr(err.msg, "PostgreSQL: "));
    assert_true(took >= 1500 && took < 3500);
    close(fd);
}

/* ------------------------------------------- both stores (PostgreSQL too) */

/* The Redis fixture plus a connection to the file's PostgreSQL, whose
 * agents table starts empty. */
struct both {
    struct fixture *f;
    struct pg_conn *db;
};

static int setup_both(void **st)
{
    struct both *b = calloc(1, sizeof(*b));
    struct agent_err err = { "", 0 };
    void *f;

    assert_non_null(b);
    setup(&f);
    b->f = f;
    tu_pg_exec_ok(tu_pg.db, "DELETE FROM agents");
    assert_int_equal(agent_db_open(tu_pg.dsn, PG_USE_CLI, &b->db, &err), 0);
    *st = b;
    return 0;
}

static int teardown_both(void **st)
{
    struct both *b = *st;
    void *f = b->f;

    agent_db_close(b->db);
    teardown(&f);
    free(b);
    return 0;
}

/* A taken account is its own code (the admin API's 409 account_exists
 * is decided by it), the token of the refused add is wiped and nothing
 * is marked stale. */
static void test_agent_add_of_a_taken_account_is_eexists(void **st)
{
    struct both *b = *st;
    char token[AGENT_TOKEN_SIZE];
    struct agent_err err = { "", 0 };
    struct agent a;

    make_agent(&a, "kf20", "Twenty", NULL);
    assert_int_equal(agent_add(b->db, &b->f->s, &a, token, NULL, &err), 0);
    assert_int_equal(agent_add(b->db, &b->f->s, &a, token, NULL, &err),
                     KF_EEXISTS);
    assert_string_equal(err.msg, "account exists");
    assert_int_equal(err.mirror_stale, 0);
    assert_string_equal(token, "");
    /* a bad field is still KF_EINVAL, not a 409 */
    a.weight = 0;
    assert_int_equal(agent_add(b->db, &b->f->s, &a, token, NULL, &err),
                     KF_EINVAL);
}

/* An agent with sessions, or online, is KF_EBUSY (409 agent_busy) and
 * stays in both stores; once offline and idle it goes. */
static void test_agent_remove_of_a_busy_agent_is_ebusy_and_keeps_it(
    void **st)
{
    struct both *b = *st;
    char token[AGENT_TOKEN_SIZE], hash[AGENT_HASH_SIZE];
    struct agent_err err = { "", 0 };
    struct agent a, row;

    make_agent(&a, "kf21", "TwentyOne", NULL);
    assert_int_equal(agent_add(b->db, &b->f->s, &a, token, NULL, &err), 0);
    rcmd(b->f, "SADD", P "load:kf21", "oUser1", NULL);
    assert_int_equal(agent_remove(b->db, &b->f->s, "kf21", NULL, &err), KF_EBUSY);
    assert_string_equal(err.msg,
                        "agent has active sessions; set it offline first");
    assert_int_equal(agent_db_get(b->db, "kf21", &row, hash, &err), 0);
    expect(b->f, "1", "SISMEMBER", P "agents", "kf21", NULL);
    rcmd(b->f, "DEL", P "load:kf21", NULL, NULL);
    rcmd(b->f, "HSET", P "agent:kf21", "status", "online");
    assert_int_equal(agent_remove(b->db, &b->f->s, "kf21", NULL, &err), KF_EBUSY);
    assert_string_equal(err.msg, "agent is online; set it offline first");
    assert_int_equal(agent_db_get(b->db, "kf21", &row, hash, &err), 0);
    rcmd(b->f, "HSET", P "agent:kf21", "status", "offline");
    assert_int_equal(agent_remove(b->db, &b->f->s, "kf21", NULL, &err), 0);
    assert_int_equal(agent_db_get(b->db, "kf21", &row, hash, &err),
                     KF_ENOTFOUND);
    expect(b->f, "0", "SISMEMBER", P "agents", "kf21", NULL);
}

/* The rebuild keeps a Redis-only agent that still has sessions (and
 * counts it), removes an idle offline one, and mirrors every row. */
static void test_agent_sync_keeps_busy_redis_only_agents(void **st)
{
    struct both *b = *st;
    char token[AGENT_TOKEN_SIZE], h[AGENT_HASH_SIZE];
    struct agent_err err = { "", 0 };
    struct agent_sync_stats ss;
    struct agent a;

    make_agent(&a, "kf22", "Kept", NULL);
    assert_int_equal(agent_mirror_put(&b->f->s, &a, NULL, &err), 0);
    rcmd(b->f, "SADD", P "load:kf22", "oUser2", NULL);
    make_agent(&a, "kf23", "Gone", NULL);
    assert_int_equal(agent_token_new(token, h), 0);
    assert_int_equal(agent_mirror_put(&b->f->s, &a, h, &err), 0);
    make_agent(&a, "kf24", "Row", NULL);
    assert_int_equal(agent_add(b->db, &b->f->s, &a, token, NULL, &err), 0);
    rcmd(b->f, "DEL", P "agent:kf24", NULL, NULL);
    assert_int_equal(agent_mirror_sync_all(&b->f->s, b->db, &ss, &err), 0);
    assert_true(ss.kept >= 1);     /* once per place found: set, hash */
    assert_int_equal(ss.removed, 1);
    assert_int_equal(ss.mirrored, 1);
    expect(b->f, "1", "SISMEMBER", P "agents", "kf22", NULL);
    expect(b->f, "0", "SISMEMBER", P "agents", "kf23", NULL);
    expect(b->f, "Row", "HGET", P "agent:kf24", "nick", NULL);
}

/* Keys under the mirror's names that hold another type are not ours:
 * the rebuild's sweeps leave them and still remove what is stale. */
static void test_agent_sync_skips_keys_of_another_type(void **st)
{
    struct both *b = *st;
    struct agent_err err = { "", 0 };
    struct agent_sync_stats ss;
    const char *argv[] = { "HSET", P "token:odd", "f", "v", NULL };

    free(tu_redis_cmd(&b->f->redis, argv));
    rcmd(b->f, "SET", P "group:odd", "text", NULL);
    rcmd(b->f, "SET", P "token:" "0123456789abcdef0123456789abcdef"
         "0123456789abcdef0123456789abcdef", "kf25", NULL);
    rcmd(b->f, "SADD", P "group:ghost", "kf25", NULL);
    assert_int_equal(agent_mirror_sync_all(&b->f->s, b->db, &ss, &err), 0);
    assert_int_equal(ss.swept, 2);
    expect(b->f, "hash", "TYPE", P "token:odd", NULL, NULL);
    expect(b->f, "text", "GET", P "group:odd", NULL, NULL);
    expect(b->f, "0", "EXISTS", P "group:ghost", NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_accepts_wechat_kf_accounts),
        cmocka_unit_test(test_agent_refuses_malformed_accounts),
        cmocka_unit_test(test_agent_accepts_nicks_up_to_64_characters),
        cmocka_unit_test(test_agent_refuses_bad_nicks),
        cmocka_unit_test(test_agent_refuses_bad_groups),
        cmocka_unit_test(test_agent_accepts_unicode_group_names),
        cmocka_unit_test(test_agent_group_list_refuses_duplicates_and_a_17th),
        cmocka_unit_test(test_agent_validates_weight_and_capacity_ranges),
        cmocka_unit_test(test_agent_setters_copy_only_valid_values),
        cmocka_unit_test(test_agent_token_hash_is_sha256_hex),
        cmocka_unit_test(test_agent_token_is_wxa_and_64_hex_and_fresh),
        cmocka_unit_test_setup_teardown(
            test_agent_mirror_put_creates_hash_sets_and_token, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_agent_mirror_put_again_moves_group_sets, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_agent_mirror_put_keeps_an_existing_status, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_agent_mirror_token_rotation_deletes_old_key, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_agent_mirror_remove_refused_while_sessions, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_agent_mirror_remove_clears_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_agent_mirror_reports_redis_down, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_agent_mirror_refuses_invalid_input, setup, teardown),
        cmocka_unit_test(
            test_agent_db_open_in_a_request_gives_up_within_about_2s),
    };

    const struct CMUnitTest both_stores[] = {
        cmocka_unit_test_setup_teardown(
            test_agent_add_of_a_taken_account_is_eexists, setup_both,
            teardown_both),
        cmocka_unit_test_setup_teardown(
            test_agent_remove_of_a_busy_agent_is_ebusy_and_keeps_it,
            setup_both, teardown_both),
        cmocka_unit_test_setup_teardown(
            test_agent_sync_keeps_busy_redis_only_agents, setup_both,
            teardown_both),
        cmocka_unit_test_setup_teardown(
            test_agent_sync_skips_keys_of_another_type, setup_both,
            teardown_both),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);

    return failed | cmocka_run_group_tests(both_stores, tu_pg_group_setup,
                                           tu_pg_group_teardown);
}
