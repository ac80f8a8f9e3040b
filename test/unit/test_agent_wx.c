/* Tests of lib/agent_wx: the decisions that keep WeChat's kf accounts in
 * step with our agents — which accounts are mirrored, the nickname WeChat
 * gets (cut by UTF-8 characters, not bytes), what each errcode leads to,
 * the failure lines, getkflist parsing and what wechat-sync does per
 * agent — and that the verbs call nothing when WeChat is not configured
 * or the account is local. No network: the calls themselves are covered
 * by the black-box suite, test/it/test_agent_wechat.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent_wx.h"
#include "testutil.h"

static const char no_secret[] = "WeChat not updated: no [wechat] "
                                "app_secret configured (agents exist in "
                                "wxkf only)";

/* A configuration with only the secret set (the rest is never read). */
static void cfg_with(struct config *c, char *secret)
{
    memset(c, 0, sizeof(*c));
    c->wechat.app_secret = secret;
}

static void agent_with(struct agent *a, const char *account,
                       const char *nick)
{
    struct agent_err err;

    agent_init(a);
    assert_int_equal(agent_set_account(a, account, &err), 0);
    assert_int_equal(agent_set_nick(a, nick, &err), 0);
}

/* ------------------------------------------------------ which are mirrored */

static void test_wx_configured_means_a_non_empty_app_secret(void **st)
{
    struct config c;

    (void)st;
    cfg_with(&c, NULL);
    assert_int_equal(agent_wx_configured(&c), 0);
    cfg_with(&c, "");
    assert_int_equal(agent_wx_configured(&c), 0);
    cfg_with(&c, "simSecret");
    assert_int_equal(agent_wx_configured(&c), 1);
    assert_int_equal(agent_wx_configured(NULL), 0);
}

static void test_wx_only_kf_accounts_are_mirrored(void **st)
{
    struct agent_wx_result r;
    struct config c;

    (void)st;
    cfg_with(&c, "simSecret");
    agent_wx_result_init(&r);
    assert_int_equal(agent_wx_plan(&c, "kf1@shop", &r), AGENT_WX_MIRROR);
    assert_int_equal(r.skipped, 0);
    assert_string_equal(r.msg, "");
    assert_int_equal(agent_wx_plan(&c, "kf1", &r), AGENT_WX_LOCAL_ONLY);
    assert_int_equal(r.skipped, AGENT_WX_LOCAL_ONLY);
    assert_string_equal(r.msg, "WeChat not updated: account kf1 is not a "
                               "WeChat kf_account (prefix@wechat_id)");
    assert_int_equal(agent_wx_plan(&c, NULL, NULL), AGENT_WX_LOCAL_ONLY);
}

static void test_wx_missing_secret_is_said_before_anything_else(void **st)
{
    struct agent_wx_result r;
    struct config c;

    (void)st;
    cfg_with(&c, "");
    agent_wx_result_init(&r);
    assert_int_equal(agent_wx_plan(&c, "kf1@shop", &r),
                     AGENT_WX_NOT_CONFIGURED);
    assert_string_equal(r.msg, no_secret);
    assert_int_equal(agent_wx_plan(&c, "kf1", &r), AGENT_WX_NOT_CONFIGURED);
    assert_int_equal(r.skipped, AGENT_WX_NOT_CONFIGURED);
    assert_string_equal(r.msg, no_secret);
}

/* ----------------------------------------------------------------- nicks */

static void expect_nick(const char *nick, const char *want, int cut)
{
    char out[AGENT_WX_NICK_SIZE];
    int truncated = -1;

    assert_int_equal(agent_wx_nickname(nick, out, &truncated), 0);
    assert_string_equal(out, want);
    assert_int_equal(truncated, cut);
}

static void test_wx_nickname_is_cut_at_16_characters_not_bytes(void **st)
{
    (void)st;
    expect_nick("Alice", "Alice", 0);
    expect_nick("abcdefghijklmnop", "abcdefghijklmnop", 0);      /* 16 */
    expect_nick("abcdefghijklmnopq", "abcdefghijklmnop", 1);     /* 17 */
    /* 16 Chinese characters are 48 bytes: not cut */
    expect_nick("客服客服客服客服客服客服客服客服",
                "客服客服客服客服客服客服客服客服", 0);
    /* 20 of them: 16 kept, never half a character */
    expect_nick("客服客服客服客服客服客服客服客服客服客服",
                "客服客服客服客服客服客服客服客服", 1);
    /* 4-byte characters (emoji) count one each */
    expect_nick("\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                "\xf0\x9f\x98\x80\xf0\x9f\x98\x80",
                "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                "\xf0\x9f\x98\x80", 1);
    /* mixed widths: 15 ASCII + one Chinese = 16, then more */
    expect_nick("Support Team 01王小明", "Support Team 01王", 1);
    expect_nick("", "", 0);
}

static void test_wx_nickname_refuses_invalid_utf8(void **st)
{
    static const char *const bad[] = {
        "bad\xff", "\xc0\xaf", "\xe4\xb8", "\xed\xa0\x80",
        "abcdefghijklmnopq\xff",        /* past the cut: still refused */
    };
    char out[AGENT_WX_NICK_SIZE];
    size_t i;
    int cut;

    (void)st;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(out, "x", 2);
        assert_int_equal(agent_wx_nickname(bad[i], out, &cut), KF_EINVAL);
        assert_string_equal(out, "");
    }
}

/* --------------------------------------------------------------- errcodes */

static void test_wx_errcodes_lead_to_the_next_step(void **st)
{
    static const struct {
        enum agent_wx_op op;
        int rc;
        long errcode;
        int next;
    } cases[] = {
        { AGENT_WX_ADD, 0, 0, AGENT_WX_DONE },
        { AGENT_WX_ADD, KF_EWECHAT, 65406, AGENT_WX_THEN_UPDATE },
        { AGENT_WX_ADD, KF_EWECHAT, 65403, AGENT_WX_FAILED },
        { AGENT_WX_ADD, KF_EWECHAT, 65405, AGENT_WX_FAILED },
        { AGENT_WX_ADD, KF_EWECHAT, 65401, AGENT_WX_FAILED },
        { AGENT_WX_UPDATE, 0, 0, AGENT_WX_DONE },
        { AGENT_WX_UPDATE, KF_EWECHAT, 65401, AGENT_WX_THEN_ADD },
        { AGENT_WX_UPDATE, KF_EWECHAT, 65406, AGENT_WX_FAILED },
        { AGENT_WX_UPDATE, KF_EWECHAT, 65403, AGENT_WX_FAILED },
        { AGENT_WX_DEL, 0, 0, AGENT_WX_DONE },
        { AGENT_WX_DEL, KF_EWECHAT, 65401, AGENT_WX_DONE },
        { AGENT_WX_DEL, KF_EWECHAT, 65400, AGENT_WX_FAILED },
        { AGENT_WX_INVITE, KF_EWECHAT, 65401, AGENT_WX_FAILED },
        { AGENT_WX_INVITE, KF_EWECHAT, 65408, AGENT_WX_FAILED },
        /* a stale errcode with a transport failure is not WeChat's word */
        { AGENT_WX_ADD, KF_EBACKEND, 65406, AGENT_WX_FAILED },
        { AGENT_WX_DEL, KF_EBACKEND, 65401, AGENT_WX_FAILED },
        { AGENT_WX_DEL, KF_ELIMIT, 0, AGENT_WX_FAILED },
    };
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (agent_wx_next(cases[i].op, cases[i].rc, cases[i].errcode) !=
            cases[i].next)
            fail_msg("case %zu: op %d rc %d errcode %ld", i,
                     (int)cases[i].op, cases[i].rc, cases[i].errcode);
}

static void test_wx_failures_read_as_one_line(void **st)
{
    char out[320];

    (void)st;
    agent_wx_explain(KF_EWECHAT, 65403, "illegal nickname rid: 1-2-3", out,
                     sizeof(out));
    assert_string_equal(out, "WeChat refused: 65403 illegal nickname");
    agent_wx_explain(KF_EWECHAT, 99999, "odd\nthing\t", out, sizeof(out));
    assert_string_equal(out, "WeChat refused: 99999 odd thing ");
    agent_wx_explain(KF_EWECHAT, 99998, "", out, sizeof(out));
    assert_string_equal(out, "WeChat refused: 99998 WeChat refused the "
                             "request");
    agent_wx_explain(KF_EBACKEND, 0, "HTTP 502", out, sizeof(out));
    assert_string_equal(out, "WeChat not reached: HTTP 502");
    agent_wx_explain(KF_ELIMIT, 0, NULL, out, sizeof(out));
    assert_string_equal(out, "WeChat not reached: rate limit or budget "
                             "reached");
    agent_wx_explain(KF_EWECHAT, 65401, NULL, out, 16);
    assert_string_equal(out, "WeChat refused:");          /* capped */
}

static void test_wx_wechat_ids_to_invite(void **st)
{
    static const char *const good[] = { "wxid_abc123", "a", "Zhang.San-1" };
    static const char *const bad[] = {
        "", "a b", "a;b", "\xe7\x8e\x8b", "a\n",
        "x123456789x123456789x123456789x123456789x123456789x12345678901234",
    };
    size_t i;

    (void)st;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(agent_wx_check_wechat_id(good[i]), 0);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (agent_wx_check_wechat_id(bad[i]) != KF_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(agent_wx_check_wechat_id(NULL), KF_EINVAL);
}

/* ---------------------------------------------------------------- getkflist */

static json_t *parse_json(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);

    assert_non_null(j);
    return j;
}

static void test_wx_kflist_parse_reads_accounts_and_nicks(void **st)
{
    json_t *j = parse_json(
        "{\"kf_list\":[{\"kf_account\":\"a@shop\",\"kf_nick\":\"小王\","
        "\"kf_id\":\"1001\"},{\"kf_nick\":\"no account\"},"
        "{\"kf_account\":\"b@shop\",\"kf_id\":1002},"
        "{\"kf_account\":\"c\\u0001@sh\\u00e9p\",\"kf_nick\":\"x\\ny\"},"
        "{\"kf_account\":\"\"}, 7]}");
    struct agent_wx_kflist l;

    (void)st;
    agent_wx_kflist_init(&l);
    assert_int_equal(agent_wx_kflist_parse(j, &l), 0);
    assert_int_equal(l.len, 3);
    assert_string_equal(l.v[0].account, "a@shop");
    assert_string_equal(l.v[0].nick, "小王");
    assert_string_equal(l.v[1].account, "b@shop");
    assert_string_equal(l.v[1].nick, "");
    assert_string_equal(l.v[2].account, "c?@sh??p");   /* shown safely */
    assert_string_equal(l.v[2].nick, "x?y");
    assert_non_null(agent_wx_kflist_find(&l, "b@shop"));
    assert_null(agent_wx_kflist_find(&l, "b@sho"));
    agent_wx_kflist_release(&l);
    agent_wx_kflist_release(&l);                     /* safe twice */
    json_decref(j);
}

static void test_wx_kflist_parse_refuses_other_shapes(void **st)
{
    static const char *const bad[] = {
        "{}", "{\"kf_list\":{}}", "{\"errcode\":0}", "[]",
    };
    struct agent_wx_kflist l;
    json_t *j, *arr;
    size_t i;

    (void)st;
    agent_wx_kflist_init(&l);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = parse_json(bad[i]);
        assert_int_equal(agent_wx_kflist_parse(j, &l), KF_EPARSE);
        assert_int_equal(l.len, 0);
        json_decref(j);
    }
    assert_int_equal(agent_wx_kflist_parse(NULL, &l), KF_EPARSE);
    arr = json_array();
    for (i = 0; i <= AGENT_WX_LIST_MAX; i++)
        json_array_append_new(arr, json_pack("{s:s}", "kf_account", "a@b"));
    j = json_pack("{s:o}", "kf_list", arr);
    assert_int_equal(agent_wx_kflist_parse(j, &l), KF_ETOOBIG);
    json_decref(j);
    agent_wx_kflist_release(&l);
}

static void test_wx_kflist_cuts_long_values_on_character_bounds(void **st)
{
    char nick[400], acct[100];
    struct agent_wx_kflist l;
    json_t *j;
    size_t i;

    (void)st;
    for (i = 0; i < 100; i++)             /* 100 x 3 bytes */
        memcpy(nick + 3 * i, "王", 3);
    nick[300] = '\0';
    memset(acct, 'a', 99);
    acct[99] = '\0';
    j = json_pack("{s:[{s:s, s:s}]}", "kf_list", "kf_account", acct,
                  "kf_nick", nick);
    agent_wx_kflist_init(&l);
    assert_int_equal(agent_wx_kflist_parse(j, &l), 0);
    assert_int_equal(strlen(l.v[0].account), 63);
    assert_int_equal(strlen(l.v[0].nick), 255);      /* 85 characters */
    assert_memory_equal(l.v[0].nick, nick, 255);
    agent_wx_kflist_release(&l);
    json_decref(j);
}

/* ------------------------------------------------------------- wechat-sync */

static void test_wx_sync_adds_missing_updates_nicks_skips_local(void **st)
{
    json_t *j = parse_json(
        "{\"kf_list\":[{\"kf_account\":\"same@shop\",\"kf_nick\":\"Same\"},"
        "{\"kf_account\":\"other@shop\",\"kf_nick\":\"Old\"},"
        "{\"kf_account\":\"long@shop\","
        "\"kf_nick\":\"客服客服客服客服客服客服客服客服\"}]}");
    struct agent_wx_kflist l;
    struct agent a;

    (void)st;
    agent_wx_kflist_init(&l);
    assert_int_equal(agent_wx_kflist_parse(j, &l), 0);
    agent_with(&a, "same@shop", "Same");
    assert_int_equal(agent_wx_sync_action(&a, &l), AGENT_WX_SYNC_KEEP);
    agent_with(&a, "other@shop", "New");
    assert_int_equal(agent_wx_sync_action(&a, &l), AGENT_WX_SYNC_UPDATE);
    agent_with(&a, "gone@shop", "Gone");
    assert_int_equal(agent_wx_sync_action(&a, &l), AGENT_WX_SYNC_ADD);
    agent_with(&a, "same", "Same");
    assert_int_equal(agent_wx_sync_action(&a, &l), AGENT_WX_SYNC_LOCAL);
    /* WeChat has the cut nickname: that is in step */
    agent_with(&a, "long@shop", "客服客服客服客服客服客服客服客服客服客服");
    assert_int_equal(agent_wx_sync_action(&a, &l), AGENT_WX_SYNC_KEEP);
    agent_wx_kflist_release(&l);
    json_decref(j);
}

/* ------------------------------------------ verbs that must not call out */

static void test_wx_verbs_call_nothing_without_a_secret(void **st)
{
    struct agent_wx_sync_stats stats;
    struct agent_wx_kflist foreign;
    struct agent_wx_result r;
    struct agent_list l;
    struct agent_wx w;
    struct config c;
    struct agent a;

    (void)st;
    cfg_with(&c, "");
    agent_wx_init(&w, &c, NULL);          /* a call would crash on NULL */
    agent_with(&a, "kf1@shop", "Alice");
    assert_int_equal(agent_wx_add(&w, &a, &r), 0);
    assert_int_equal(r.skipped, AGENT_WX_NOT_CONFIGURED);
    assert_string_equal(r.msg, no_secret);
    assert_int_equal(agent_wx_update(&w, &a, &r), 0);
    assert_int_equal(r.skipped, AGENT_WX_NOT_CONFIGURED);
    assert_int_equal(agent_wx_remove(&w, "kf1@shop", &r), 0);
    assert_int_equal(r.skipped, AGENT_WX_NOT_CONFIGURED);
    assert_int_equal(agent_wx_invite(&w, "kf1@shop", "wxid_a", &r), 0);
    assert_int_equal(r.skipped, AGENT_WX_NOT_CONFIGURED);
    agent_list_init(&l);
    agent_wx_kflist_init(&foreign);
    assert_int_equal(agent_wx_sync(&w, &l, &stats, &foreign, &r), 0);
    assert_int_equal(r.skipped, AGENT_WX_NOT_CONFIGURED);
    assert_string_equal(r.msg, no_secret);
    assert_int_equal(foreign.len, 0);
    agent_wx_kflist_release(&foreign);
    agent_list_release(&l);
}

static void test_wx_verbs_skip_local_accounts(void **st)
{
    struct agent_wx_result r;
    struct agent_wx w;
    struct config c;
    struct agent a;

    (void)st;
    cfg_with(&c, "simSecret");
    agent_wx_init(&w, &c, NULL);
    agent_with(&a, "kf1", "A nick far longer than sixteen");
    assert_int_equal(agent_wx_add(&w, &a, &r), 0);
    assert_int_equal(r.skipped, AGENT_WX_LOCAL_ONLY);
    assert_int_equal(r.nick_truncated, 0);      /* nothing was sent */
    assert_int_equal(agent_wx_update(&w, &a, &r), 0);
    assert_int_equal(r.skipped, AGENT_WX_LOCAL_ONLY);
    assert_int_equal(agent_wx_remove(&w, "kf1", &r), 0);
    assert_int_equal(r.skipped, AGENT_WX_LOCAL_ONLY);
    assert_int_equal(agent_wx_invite(&w, "kf1", "wxid_a", &r), 0);
    assert_int_equal(r.skipped, AGENT_WX_LOCAL_ONLY);
}

static void test_wx_verbs_without_a_client_fail_and_say_so(void **st)
{
    struct agent_wx_result r;
    struct agent_wx w;
    struct config c;
    struct agent a;

    (void)st;
    cfg_with(&c, "simSecret");
    agent_wx_init(&w, &c, NULL);
    agent_with(&a, "kf1@shop", "Alice");
    assert_int_equal(agent_wx_add(&w, &a, &r), KF_EINVAL);
    assert_int_equal(r.skipped, 0);
    assert_string_equal(r.msg, "WeChat not reached: no API client");
    assert_int_equal(agent_wx_invite(&w, "kf1@shop", "a b", &r), KF_EINVAL);
    assert_string_equal(r.msg, "wechat: must be 1-64 of [A-Za-z0-9_.-] "
                               "(a WeChat ID)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wx_configured_means_a_non_empty_app_secret),
        cmocka_unit_test(test_wx_only_kf_accounts_are_mirrored),
        cmocka_unit_test(test_wx_missing_secret_is_said_before_anything_else),
        cmocka_unit_test(test_wx_nickname_is_cut_at_16_characters_not_bytes),
        cmocka_unit_test(test_wx_nickname_refuses_invalid_utf8),
        cmocka_unit_test(test_wx_errcodes_lead_to_the_next_step),
        cmocka_unit_test(test_wx_failures_read_as_one_line),
        cmocka_unit_test(test_wx_wechat_ids_to_invite),
        cmocka_unit_test(test_wx_kflist_parse_reads_accounts_and_nicks),
        cmocka_unit_test(test_wx_kflist_parse_refuses_other_shapes),
        cmocka_unit_test(test_wx_kflist_cuts_long_values_on_character_bounds),
        cmocka_unit_test(test_wx_sync_adds_missing_updates_nicks_skips_local),
        cmocka_unit_test(test_wx_verbs_call_nothing_without_a_secret),
        cmocka_unit_test(test_wx_verbs_skip_local_accounts),
        cmocka_unit_test(test_wx_verbs_without_a_client_fail_and_say_so),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
