/* Tests of lib/user_profile: the checks of text and of WeChat's user/info
 * answer, the look-ups `wxkf jobs` makes (against a private redis-server,
 * the WeChat simulator, test/sim/wechat_api_sim.py, and a private
 * PostgreSQL, all started once for the suite: a first message is looked
 * up, a second one the same day is not, WeChat's 40003 is kept, 45009 is
 * retried after the back-off), the remark pushed to WeChat, notes with
 * their authors and audit rows, and the profile page with past
 * sessions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "config.h"
#include "user_profile.h"
#include "user_tags.h"
#include "store.h"
#include "stream_group.h"
#include "testutil.h"
#include "tu_pg.h"
#include "wx_api.h"

#define APPID "wx5e1a6c0d2b3f4a60"
#define SECRET "0f1e2d3c4b5a69788796a5b4c3d2e1f1"
#define P "wxkf:{" APPID "}:"
#define USER "oUserProfile000000000000001"
#define NOW 1767225600000LL          /* 2026-01-01T00:00:00Z */

static const struct kf_str user = { USER, sizeof(USER) - 1 };

static struct tu_wx S;

struct fixture {
    struct config cfg;
    struct store st;
    struct wx_api *api;
    struct user_profile p;
    struct user_profile_jobs j;
    struct user_profile_counts c;
    redisContext *rc;
};

static int suite_setup(void **st)
{
    tu_wx_start(&S, APPID, SECRET);
    return tu_pg_group_setup(st);
}

static int suite_teardown(void **st)
{
    tu_wx_stop(&S);
    return tu_pg_group_teardown(st);
}

#define cmd_do(f, ...) tu_redis_do((f)->rc, __VA_ARGS__)

#define cmd_num(f, ...) tu_redis_num((f)->rc, __VA_ARGS__)

/* The first value of sql's first row as a number. */
static long long sql_num(const char *sql)
{
    PGresult *r = PQexec(tu_pg.db, sql);
    long long v;

    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static int setup(void **st)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->rc = tu_wx_fresh(&S);
    tu_pg_exec_ok(tu_pg.db, "TRUNCATE user_profiles, user_notes, audit_log, "
                  "sessions, messages, transfers, agents CASCADE");
    config_init(&f->cfg);
    tu_wx_config(&f->cfg, &S, APPID, SECRET);
    assert_int_equal(store_init(&f->st, S.redis_url, APPID, 500, 2000), 0);
    assert_int_equal(wx_api_new(&f->cfg, &f->st, &f->api), 0);
    user_profile_init(&f->p, tu_pg.dsn, APPID, PG_USE_REQUEST);
    user_profile_jobs_init(&f->j, &f->p, &f->st, f->api);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    struct fixture *f = *st;

    user_profile_release(&f->p);
    wx_api_free(f->api);
    store_release(&f->st);
    config_release(&f->cfg);
    redisFree(f->rc);
    free(f);
    return 0;
}

/* A msg_in entry as the ingest script writes it. */
static void msg_in(struct fixture *f, const char *openid)
{
    cmd_do(f, "XADD " P "events * type msg_in key k openid %s msgtype text "
           "event %s msgid 1 create_time 1 recv_ms 1 rid r payload {} "
           "decision d agent alice session 1", openid, "");
}

static void pass(struct fixture *f, int64_t now)
{
    memset(&f->c, 0, sizeof(f->c));
    assert_int_equal(user_profile_jobs_pass(&f->j, now, 10, &f->c), 0);
}

static json_t *page(struct fixture *f, const char *openid)
{
    json_t *pg = NULL;

    assert_int_equal(user_profile_page(&f->p, (struct kf_str){ openid,
                                  strlen(openid) }, &pg), 0);
    assert_non_null(pg);
    return pg;
}

/* --- checks -------------------------------------------------------------- */

static void test_text_limits_count_characters_not_bytes(void **st)
{
    (void)st;
    /* 30 Chinese characters are 90 bytes: still a valid remark */
    assert_int_equal(user_profile_text_ok("老客户老客户老客户老客户老客户老客户老客户"
                                     "老客户老客户老客户", 0, 30), 0);
    assert_int_equal(user_profile_text_ok("老客户老客户老客户老客户老客户老客户老客户"
                                     "老客户老客户老客户老", 0, 30), KF_EINVAL);
    assert_int_equal(user_profile_text_ok("", 0, 30), 0);
    assert_int_equal(user_profile_text_ok("", 1, 30), KF_EINVAL);
    assert_int_equal(user_profile_text_ok("a\nb", 0, 30), KF_EINVAL);
    assert_int_equal(user_profile_text_ok("\xc3\x28", 0, 30), KF_EINVAL);
    assert_int_equal(user_profile_text_ok("\xed\xa0\x80", 0, 30), KF_EINVAL);
    assert_true(kf_openid_ok(user));
    assert_false(kf_openid_ok(KF_STR("o'; DROP TABLE x")));
    assert_false(kf_openid_ok(KF_STR("")));
}

static void test_parse_info_keeps_known_fields_of_the_right_type(void **st)
{
    json_t *in = json_loads("{\"subscribe\":1,\"openid\":\"o1\","
        "\"nickname\":\"x\",\"headimgurl\":\"http://x\",\"language\":"
        "\"zh_CN\",\"subscribe_time\":1700000000,\"unionid\":\"u1\","
        "\"remark\":\"vip\",\"groupid\":0,\"tagid_list\":[2,\"x\",105],"
        "\"subscribe_scene\":\"ADD_SCENE_QR_CODE\",\"qr_scene\":98765,"
        "\"qr_scene_str\":7}", 0, NULL), *out = NULL;

    (void)st;
    assert_non_null(in);
    assert_int_equal(user_profile_parse_info(in, &out), 0);
    assert_true(json_is_true(json_object_get(out, "subscribe")));
    assert_null(json_object_get(out, "nickname"));
    assert_null(json_object_get(out, "headimgurl"));
    assert_null(json_object_get(out, "qr_scene_str"));    /* not a string */
    assert_int_equal(json_array_size(json_object_get(out, "tagid_list")), 2);
    assert_string_equal(json_string_value(json_object_get(out, "unionid")),
                        "u1");
    assert_int_equal(json_integer_value(json_object_get(out, "qr_scene")),
                     98765);
    json_decref(out);
    json_decref(in);
    in = json_string("x");
    assert_int_equal(user_profile_parse_info(in, &out), KF_EPARSE);
    assert_null(out);
    json_decref(in);
}

/* --- look-ups ------------------------------------------------------------ */

static void test_a_first_message_is_looked_up_once_a_day(void **st)
{
    struct fixture *f = *st;
    json_t *pg, *info;

    tu_sim_post(&S.sim, "/_sim/inbound", "{\"openid\":\"" USER "\"}");
    pass(f, NOW);                           /* creates the group at '$' */
    msg_in(f, USER);
    pass(f, NOW);
    assert_int_equal(f->c.queued, 1);
    assert_int_equal(f->c.fetched, 1);
    pg = page(f, USER);
    info = json_object_get(pg, "info");
    assert_true(json_is_true(json_object_get(info, "subscribe")));
    assert_string_equal(json_string_value(json_object_get(info, "language")),
                        "zh_CN");
    assert_int_equal(json_array_size(json_object_get(info, "tagid_list")), 1);
    assert_true(json_is_string(json_object_get(pg, "fetched_at")));
    assert_true(json_is_null(json_object_get(pg, "fetch_error")));
    json_decref(pg);
    assert_int_equal(cmd_num(f, "ZCARD " P "profile_due"), 0);
    /* a second message the same day: no second look-up */
    msg_in(f, USER);
    pass(f, NOW + 1000);
    assert_int_equal(f->c.queued, 1);
    assert_int_equal(f->c.fresh, 1);
    assert_int_equal(f->c.fetched, 0);
    /* a day later it is asked again */
    tu_pg_exec_ok(tu_pg.db, "UPDATE user_profiles SET fetched_at = "
                  "now() - interval '25 hours'");
    msg_in(f, USER);
    pass(f, NOW + 2000);
    assert_int_equal(f->c.fetched, 1);
}

/* A burst of messages from many users: one pass reads and acknowledges
 * them all (the group is not left behind, holding back the archiver's
 * trimming of the stream) and queues every user, though it looks up only
 * its limit of 10. */
static void test_a_burst_is_read_at_once_and_looked_up_in_turn(void **st)
{
    struct fixture *f = *st;
    char openid[40], body[80];
    redisReply *r;
    int i;

    pass(f, NOW);                           /* creates the group at '$' */
    for (i = 0; i < 60; i++) {
        snprintf(openid, sizeof(openid), "oBurst%026d", i);
        snprintf(body, sizeof(body), "{\"openid\":\"%s\"}", openid);
        tu_sim_post(&S.sim, "/_sim/inbound", body);
        msg_in(f, openid);
    }
    pass(f, NOW);
    assert_int_equal(f->c.queued, 60);
    assert_int_equal(f->c.fetched + f->c.failed + f->c.retried, 10);
    assert_int_equal(cmd_num(f, "XLEN " P "events"), 60);
    assert_int_equal(cmd_num(f, "ZCARD " P "profile_due"), 50);
    /* nothing of the stream is left for the group: all read, none pending */
    r = redisCommand(f->rc, "XPENDING " P "events " PROFILE_GROUP);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);
    r = redisCommand(f->rc, "XREADGROUP GROUP " PROFILE_GROUP " probe "
                     "COUNT 1 STREAMS " P "events >");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_NIL);     /* nothing undelivered */
    freeReplyObject(r);
}

static void test_an_invalid_openid_is_kept_and_not_retried(void **st)
{
    struct fixture *f = *st;
    json_t *pg;

    pass(f, NOW);
    msg_in(f, "oNotAFollower");             /* the simulator never saw it */
    pass(f, NOW);
    assert_int_equal(f->c.failed, 1);
    assert_int_equal(f->c.retried, 0);
    pg = page(f, "oNotAFollower");
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(pg, "fetch_error"), "errcode")), 40003);
    assert_true(json_is_null(json_object_get(pg, "info")));
    json_decref(pg);
    assert_int_equal(cmd_num(f, "ZCARD " P "profile_due"), 0);
}

static void test_a_transient_error_is_retried_with_backoff(void **st)
{
    struct fixture *f = *st;
    long long due;

    tu_sim_post(&S.sim, "/_sim/inbound", "{\"openid\":\"" USER "\"}");
    pass(f, NOW);
    tu_sim_post(&S.sim, "/_sim/fault", "{\"path\":\"/cgi-bin/user/info\","
                "\"errcode\":45009,\"count\":2}");
    msg_in(f, USER);
    pass(f, NOW);
    assert_int_equal(f->c.retried, 1);
    due = cmd_num(f, "ZSCORE " P "profile_due %s", USER);
    assert_int_equal(due, NOW + PROFILE_RETRY_MS);
    pass(f, NOW + PROFILE_RETRY_MS - 1);    /* not due yet */
    assert_int_equal(f->c.retried + f->c.fetched, 0);
    pass(f, NOW + PROFILE_RETRY_MS);        /* fails again: twice as long */
    assert_int_equal(f->c.retried, 1);
    assert_int_equal(cmd_num(f, "ZSCORE " P "profile_due %s", USER),
                     NOW + 3 * PROFILE_RETRY_MS);
    pass(f, NOW + 3 * PROFILE_RETRY_MS);
    assert_int_equal(f->c.fetched, 1);
    assert_int_equal(cmd_num(f, "HLEN " P "profile_tries"), 0);
}

/* --- remark, name, notes ------------------------------------------------- */

static void test_remark_is_checked_then_pushed_to_wechat(void **st)
{
    struct fixture *f = *st;
    struct wx_api_result res;
    json_t *pg;

    wx_api_result_init(&res);
    tu_sim_post(&S.sim, "/_sim/inbound", "{\"openid\":\"" USER "\"}");
    assert_int_equal(user_profile_set_remark(&f->p, f->api, user,
                     "老客户老客户老客户老客户老客户老客户老客户老客户老客户老客户"
                     "老", "alice", &res), KF_EINVAL);
    assert_int_equal(res.attempts, 0);
    assert_int_equal(user_profile_set_remark(&f->p, f->api, user, "老客户",
                                        "alice", &res), 0);
    assert_int_equal(user_profile_set_remark(&f->p, f->api,
                                        KF_STR("oNotAFollower"), "x",
                                        "alice", &res), KF_EWECHAT);
    assert_int_equal(res.errcode, 40003);
    assert_int_equal(user_profile_set_name(&f->p, user, "王女士", "alice"), 0);
    assert_int_equal(user_profile_set_name(&f->p, user, "a\tb", "alice"),
                     KF_EINVAL);
    pg = page(f, USER);
    assert_string_equal(json_string_value(json_object_get(pg, "remark")),
                        "老客户");
    assert_string_equal(json_string_value(json_object_get(pg,
                        "display_name")), "王女士");
    json_decref(pg);
    /* WeChat has it too: the next look-up reads it back */
    pass(f, NOW);
    msg_in(f, USER);
    pass(f, NOW);
    pg = page(f, USER);
    assert_string_equal(json_string_value(json_object_get(json_object_get(
        pg, "info"), "remark")), "老客户");
    json_decref(pg);
    assert_int_equal(sql_num("SELECT count(*) FROM audit_log WHERE action "
                             "IN ('user.remark', 'user.display_name') AND "
                             "actor = 'alice' AND target = '" USER "'"), 2);
    wx_api_result_release(&res);
}

static void test_notes_belong_to_their_author(void **st)
{
    struct fixture *f = *st;
    const struct refusal *why = NULL;
    json_t *n = NULL, *pg;
    int64_t id;

    assert_int_equal(user_profile_note_add(&f->p, user, "alice", "喜欢电话联系",
                                      &n), 0);
    id = json_integer_value(json_object_get(n, "id"));
    assert_true(id > 0);
    json_decref(n);
    assert_int_equal(user_profile_note_add(&f->p, user, "alice", "", NULL),
                     KF_EINVAL);
    assert_int_equal(user_profile_note_edit(&f->p, user, id, "bob", 0, "x", &n,
                                       &why), KF_EINVAL);
    assert_non_null(why);
    assert_string_equal(why->code, "not_author");
    assert_int_equal(user_profile_note_edit(&f->p, KF_STR("oOther"), id,
                                            "alice", 0, "x", &n, &why),
                     KF_ENOTFOUND);
    assert_int_equal(user_profile_note_edit(&f->p, user, id, "admin", 1,
                                            "喜欢微信联系", &n, &why),
                     0);
    assert_string_equal(json_string_value(json_object_get(n, "body")),
                        "喜欢微信联系");
    json_decref(n);
    pg = page(f, USER);
    assert_int_equal(json_array_size(json_object_get(pg, "notes")), 1);
    json_decref(pg);
    why = NULL;
    assert_int_equal(user_profile_note_delete(&f->p, user, id, "bob", 0, &why),
                     KF_EINVAL);
    assert_non_null(why);
    assert_int_equal(
        user_profile_note_delete(&f->p, user, id, "alice", 0, &why), 0);
    assert_int_equal(
        user_profile_note_delete(&f->p, user, id, "alice", 0, &why),
        KF_ENOTFOUND);
    assert_int_equal(sql_num("SELECT count(*) FROM audit_log WHERE action "
                             "LIKE 'user_note.%'"),
                     3);
    assert_int_equal(sql_num("SELECT count(*) FROM user_notes"), 0);
}

static void test_the_page_lists_past_sessions_and_who_served(void **st)
{
    struct fixture *f = *st;
    json_t *pg, *s;
    int yes = 0;

    tu_pg_exec_ok(tu_pg.db,
        "INSERT INTO agents (account, nick) VALUES ('alice', '小爱');"
        "INSERT INTO sessions (id, openid, agent, opened_at, closed_at, "
        "close_reason) VALUES (11, '" USER "', 'alice', "
        "'2026-01-01T10:00:00Z', '2026-01-01T10:30:00Z', 'agent'), "
        "(12, '" USER "', 'bob', '2026-01-02T10:00:00Z', NULL, NULL);"
        "INSERT INTO messages (event_id, openid, direction, msgtype, "
        "session_id, created_at) VALUES "
        "('1-1', '" USER "', 'i', 'text', 11, '2026-01-01T10:01:00Z'), "
        "('1-2', '" USER "', 'o', 'text', 11, '2026-01-01T10:02:00Z'), "
        "('1-3', '" USER "', 'i', 'text', 12, '2026-01-02T10:01:00Z');"
        "INSERT INTO messages (event_id, openid, direction, msgtype, "
        "session_id, agent, created_at) VALUES ('1-4', '" USER "', 'i', "
        "'text', 12, 'erin', '2026-01-02T10:00:30Z');"
        "INSERT INTO transfers (event_id, session_id, openid, to_agent, "
        "kind, at) VALUES ('2-1', 12, '" USER "', 'carol', 'transfer', "
        "'2026-01-02T10:05:00Z')");
    pg = page(f, USER);
    s = json_object_get(pg, "sessions");
    assert_int_equal(json_array_size(s), 2);
    assert_int_equal(json_integer_value(json_object_get(
        json_array_get(s, 0), "id")), 12);
    assert_int_equal(json_integer_value(json_object_get(
        json_array_get(s, 1), "messages")), 2);
    assert_int_equal(json_integer_value(json_object_get(
        json_array_get(s, 0), "messages")), 2);
    assert_string_equal(json_string_value(json_object_get(
        json_array_get(s, 1), "agent_nick")), "小爱");
    assert_string_equal(json_string_value(json_object_get(
        json_array_get(s, 1), "opened_at")), "2026-01-01T10:00:00.000Z");
    assert_true(json_is_null(json_object_get(pg, "info")));
    json_decref(pg);
    assert_int_equal(user_profile_served(&f->p, user, "alice", &yes), 0);
    assert_int_equal(yes, 1);
    assert_int_equal(user_profile_served(&f->p, user, "carol", &yes), 0);
    assert_int_equal(yes, 1);
    /* erin had the session before it was transferred: a message of it
     * was routed to her */
    assert_int_equal(user_profile_served(&f->p, user, "erin", &yes), 0);
    assert_int_equal(yes, 1);
    assert_int_equal(user_profile_served(&f->p, user, "dave", &yes), 0);
    assert_int_equal(yes, 0);
}

/* The names behind tagid_list: the account's tag list is fetched on the
 * first pass; a profile naming an id the list lacks has it fetched again
 * once a minute has passed since the last try, not before, and not again
 * while it is fresh. */
static void test_tag_list_is_fetched_again_for_an_unknown_id(void **st)
{
    struct fixture *f = *st;
    struct store_script sc;
    json_t *ids = json_pack("[i]", 555), *named = NULL;
    int unknown = -1;

    assert_non_null(ids);
    user_tags_script_init(&sc);
    pass(f, NOW);                           /* the group, and the list */
    assert_int_equal(f->c.tags, 1);
    assert_int_equal(user_tags_name(&f->st, &sc, ids, &named, &unknown), 0);
    assert_int_equal(unknown, 1);
    json_decref(named);
    /* the account makes tag 555 and gives it to the user */
    tu_sim_post(&S.sim, "/_sim/tags", "{\"tags\":[{\"id\":2,\"name\":"
                "\"星标组\"},{\"id\":555,\"name\":\"新品试用\"}]}");
    tu_sim_post(&S.sim, "/_sim/inbound", "{\"openid\":\"" USER "\"}");
    tu_sim_post(&S.sim, "/_sim/users/" USER "/tags",
                "{\"tagid_list\":[555]}");
    msg_in(f, USER);
    pass(f, NOW + 1000);
    assert_int_equal(f->c.fetched, 1);
    assert_int_equal(f->c.tags, 0);         /* tried a second ago */
    pass(f, NOW + 1000 + USER_TAGS_RETRY_MS);
    assert_int_equal(f->c.tags, 1);
    assert_int_equal(user_tags_name(&f->st, &sc, ids, &named, &unknown), 0);
    assert_int_equal(unknown, 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(named, 0), "name")), "新品试用");
    json_decref(named);
    pass(f, NOW + 2000 + 2 * USER_TAGS_RETRY_MS);
    assert_int_equal(f->c.tags, 0);         /* fresh, nothing unknown */
    json_decref(ids);
}

/* --- the group's consumers ------------------------------------------------ */

/* How many consumers the profile group has; *pending gets the pending
 * count of the one named name (-1: none of that name). */
static long consumers(struct fixture *f, const char *name, long *pending)
{
    redisReply *r = redisCommand(f->rc, "XINFO CONSUMERS " P "events "
                                 PROFILE_GROUP);
    long n;
    size_t i, k;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    n = (long)r->elements;
    *pending = -1;
    for (i = 0; i < r->elements; i++) {
        const redisReply *c = r->element[i];
        int mine = 0;

        for (k = 0; k + 1 < c->elements; k += 2) {
            const char *key = c->element[k]->str;

            if (strcmp(key, "name") == 0)
                mine = strcmp(c->element[k + 1]->str, name) == 0;
            else if (strcmp(key, "pending") == 0 && mine)
                *pending = (long)c->element[k + 1]->integer;
        }
    }
    freeReplyObject(r);
    return n;
}

/* Each `wxkf jobs` start reads under a name of its own ("jobs-<pid>"):
 * the names of the processes gone (idle over forget_ms, nothing
 * pending) are forgotten, so restarts leave at most the live consumer;
 * one holding entries is kept until they are claimed, then forgotten,
 * and its user is looked up. */
static void test_restarts_leave_no_idle_consumers_behind(void **st)
{
    struct fixture *f = *st;
    long pending, forgot = -1;
    int i;

    f->j.forget_ms = 50;
    pass(f, NOW);                           /* creates the group */
    for (i = 0; i < 6; i++) {               /* six restarts */
        snprintf(f->j.consumer, sizeof(f->j.consumer), "jobs-%d", 900 + i);
        tu_sleep_ms(80);
        msg_in(f, "oRestart000000000000000000000");
        pass(f, NOW + i);
    }
    assert_int_equal(consumers(f, "jobs-905", &pending), 1);
    assert_int_equal(pending, 0);

    /* a process that died holding an entry, its user not queued yet */
    msg_in(f, USER);
    cmd_do(f, "XREADGROUP GROUP " PROFILE_GROUP " jobs-dead COUNT 1 "
           "STREAMS " P "events >");
    assert_int_equal(consumers(f, "jobs-dead", &pending), 2);
    assert_int_equal(pending, 1);
    tu_sleep_ms(80);
    /* idle, but with an entry pending: never forgotten */
    assert_int_equal(stream_group_forget(&f->st, PROFILE_GROUP, "jobs-905",
                                         0, &forgot), 0);
    assert_int_equal(forgot, 0);
    assert_int_equal(consumers(f, "jobs-dead", &pending), 2);
    assert_int_equal(pending, 1);
    /* the next pass claims its entry (the user is looked up), then
     * forgets it */
    tu_sim_post(&S.sim, "/_sim/inbound", "{\"openid\":\"" USER "\"}");
    pass(f, NOW + 10);
    assert_int_equal(f->c.queued, 1);
    assert_int_equal(f->c.fetched, 1);
    assert_int_equal(consumers(f, "jobs-dead", &pending), 1);
    assert_int_equal(pending, -1);
    assert_int_equal(consumers(f, "jobs-905", &pending), 1);
    assert_int_equal(pending, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_limits_count_characters_not_bytes),
        cmocka_unit_test(test_parse_info_keeps_known_fields_of_the_right_type),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_a_first_message_is_looked_up_once_a_day),
        T(test_a_burst_is_read_at_once_and_looked_up_in_turn),
        T(test_an_invalid_openid_is_kept_and_not_retried),
        T(test_a_transient_error_is_retried_with_backoff),
        T(test_remark_is_checked_then_pushed_to_wechat),
        T(test_notes_belong_to_their_author),
        T(test_the_page_lists_past_sessions_and_who_served),
        T(test_restarts_leave_no_idle_consumers_behind),
        T(test_tag_list_is_fetched_again_for_an_unknown_id),
#undef T
    };

    return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
