/* Tests of lib/auth against a private redis-server: bearer parsing,
 * client addresses, admin and agent tokens (hashes only), the brake on
 * failed attempts per address (and that it refuses even a right token),
 * and push-subscription tickets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent.h"
#include "agent_token.h"
#include "auth.h"
#include "config.h"
#include "route.h"
#include "store.h"
#include "testutil.h"

#define APPID "wx62dd79ea990faa89"
#define PFX "wxkf:{" APPID "}:"
#define ADMIN_TOKEN "adm_test_token_0123456789"

static struct tu_redis srv;

struct fixture {
    struct config cfg;
    struct store store;
    struct route route;
    char agent_token[AGENT_TOKEN_SIZE];
};

static void cmd(const char *const *argv)
{
    free(tu_redis_cmd(&srv, argv));
}

#define CMD(...) cmd((const char *const[]){ __VA_ARGS__, NULL })

static long cmdl(const char *const *argv)
{
    char *s = tu_redis_cmd(&srv, argv);
    long v = strtol(s, NULL, 10);

    free(s);
    return v;
}

#define CMDL(...) cmdl((const char *const[]){ __VA_ARGS__, NULL })

static int group_setup(void **st)
{
    (void)st;
    tu_redis_start(&srv);
    return 0;
}

static int group_teardown(void **st)
{
    (void)st;
    tu_redis_stop(&srv);
    return 0;
}

static int setup(void **st)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char url[64], hash[AGENT_HASH_SIZE], tkey[160];

    assert_non_null(f);
    CMD("FLUSHALL");
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", srv.port);
    config_init(&f->cfg);
    tu_set_str(&f->cfg.wechat.app_id, APPID);
    tu_set_str(&f->cfg.redis.url, url);
    assert_int_equal(agent_token_hash(ADMIN_TOKEN, hash), 0);
    tu_set_str(&f->cfg.api.admin_token_sha256, hash);
    f->cfg.api.auth_failures_per_min = 3;
    assert_int_equal(store_init(&f->store, url, APPID, 500, 2000), 0);
    assert_int_equal(route_init(&f->route, &f->store, &f->cfg), 0);
    /* one agent, as the mirror keeps it */
    assert_int_equal(agent_token_new(f->agent_token, hash), 0);
    snprintf(tkey, sizeof(tkey), PFX "token:%s", hash);
    CMD("SET", tkey, "a1");
    CMD("SADD", PFX "agents", "a1");
    CMD("HSET", PFX "agent:a1", "status", "paused");
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    struct fixture *f = *st;

    store_release(&f->store);
    config_release(&f->cfg);
    free(f);
    return 0;
}

static int identify(struct fixture *f, const char *header, const char *addr,
                    struct auth *who)
{
    return auth_identify(&f->route, &f->cfg, kf_str_c(header), addr, who);
}

static char *bearer(const char *token)
{
    static char h[200];

    snprintf(h, sizeof(h), "Bearer %s", token);
    return h;
}

static void bearer_parsing(void **st)
{
    struct kf_str t;
    char big[AUTH_TOKEN_MAX + 16];

    (void)st;
    assert_int_equal(auth_bearer(KF_STR("Bearer abc_-9"), &t), 0);
    assert_true(kf_str_eq_c(t, "abc_-9"));
    assert_int_equal(auth_bearer(KF_STR("bearer   abc"), &t), 0);
    assert_true(kf_str_eq_c(t, "abc"));
    assert_int_equal(auth_bearer(KF_STR("Basic abc"), &t), KF_EBADSIG);
    assert_int_equal(auth_bearer(KF_STR("Bearer "), &t), KF_EBADSIG);
    assert_int_equal(auth_bearer(KF_STR("Bearer a b"), &t), KF_EBADSIG);
    assert_int_equal(auth_bearer(KF_STR("Bearer a\r\nX: y"), &t), KF_EBADSIG);
    assert_int_equal(auth_bearer(KF_STR(""), &t), KF_EBADSIG);
    memset(big, 'a', sizeof(big));
    memcpy(big, "Bearer ", 7);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(auth_bearer(kf_str_c(big), &t), KF_EBADSIG);
}

static void addresses(void **st)
{
    char out[46];

    (void)st;
    auth_address(KF_STR("127.0.0.1"), out);
    assert_string_equal(out, "127.0.0.1");
    auth_address(KF_STR("::1"), out);
    assert_string_equal(out, "0:0:0:0::/64");
    /* IPv6 by its /64: one site cannot rotate through its addresses */
    auth_address(KF_STR("2001:db8:1:2:ff00:42:8329:1"), out);
    assert_string_equal(out, "2001:db8:1:2::/64");
    auth_address(KF_STR("2001:db8:1:2::9"), out);
    assert_string_equal(out, "2001:db8:1:2::/64");
    auth_address(KF_STR(""), out);
    assert_string_equal(out, "unknown");
    auth_address(KF_STR("1.2.3.4\r\nSET x"), out);
    assert_string_equal(out, "unknown");
    auth_address(KF_STR("host.example"), out);
    assert_string_equal(out, "unknown");
    auth_address(KF_STR("1111:2222:3333:4444:5555:6666:7777:8888:9999:aa"),
                 out);
    assert_string_equal(out, "unknown");
    auth_address(KF_STR("127.000.0.1"), out);
    assert_string_equal(out, "unknown");
}

static void admin_and_agent_tokens(void **st)
{
    struct fixture *f = *st;
    struct auth who;

    assert_int_equal(identify(f, bearer(ADMIN_TOKEN), "10.0.0.1", &who), 0);
    assert_int_equal(who.role, AUTH_ADMIN);
    assert_int_equal(identify(f, bearer(f->agent_token), "10.0.0.1", &who),
                     0);
    assert_int_equal(who.role, AUTH_AGENT);
    assert_string_equal(who.account, "a1");
    assert_string_equal(who.status, "paused");
    /* a removed agent's token no longer works */
    CMD("SREM", PFX "agents", "a1");
    assert_int_equal(identify(f, bearer(f->agent_token), "10.0.0.1", &who),
                     KF_EBADSIG);
    assert_int_equal(who.role, AUTH_NONE);
    /* no header: refused, and not counted as a guess */
    assert_int_equal(identify(f, "", "10.0.0.2", &who), KF_EBADSIG);
    assert_int_equal(CMDL("EXISTS", PFX "authfail:10.0.0.2"), 0);
}

static void failures_brake_the_address(void **st)
{
    struct fixture *f = *st;
    struct auth who;
    int i;

    for (i = 0; i < 3; i++)
        assert_int_equal(identify(f, bearer("wxa_wrong"), "10.0.0.9", &who),
                         KF_EBADSIG);
    assert_int_equal(CMDL("GET", PFX "authfail:10.0.0.9"), 3);
    assert_true(CMDL("PTTL", PFX "authfail:10.0.0.9") > 0);
    assert_true(CMDL("PTTL", PFX "authfail:10.0.0.9") <= AUTH_WINDOW_MS);
    /* at the limit: every wrong attempt is refused ... */
    assert_int_equal(identify(f, bearer("wxa_wrong2"), "10.0.0.9", &who),
                     KF_ELIMIT);
    assert_true(who.retry_after_s >= 1 && who.retry_after_s <= 60);
    assert_int_equal(identify(f, "Basic Zm9v", "10.0.0.9", &who), KF_ELIMIT);
    /* ... but a right token never is: the others behind that address
     * (one office NAT) keep working */
    assert_int_equal(identify(f, bearer(f->agent_token), "10.0.0.9", &who),
                     0);
    assert_string_equal(who.account, "a1");
    assert_int_equal(identify(f, bearer(ADMIN_TOKEN), "10.0.0.9", &who), 0);
    assert_int_equal(who.role, AUTH_ADMIN);
    /* refusals while braked do not extend the window */
    assert_int_equal(CMDL("GET", PFX "authfail:10.0.0.9"), 3);
    /* other addresses are not affected */
    assert_int_equal(identify(f, bearer("wxa_wrong"), "10.0.0.10", &who),
                     KF_EBADSIG);
    /* the window ends */
    CMD("PEXPIRE", PFX "authfail:10.0.0.9", "1");
    tu_sleep_ms(20);
    assert_int_equal(identify(f, bearer("wxa_wrong"), "10.0.0.9", &who),
                     KF_EBADSIG);
    /* a malformed header counts as a failure too */
    assert_int_equal(identify(f, "Bearer a b", "10.0.0.11", &who),
                     KF_EBADSIG);
    assert_int_equal(CMDL("GET", PFX "authfail:10.0.0.11"), 1);
}

static void tickets(void **st)
{
    struct fixture *f = *st;
    char ticket[AUTH_TICKET_SIZE], t2[AUTH_TICKET_SIZE],
        hash[AGENT_HASH_SIZE], tkey[160], newtok[AGENT_TOKEN_SIZE],
        newhash[AGENT_HASH_SIZE], nkey[160];
    struct auth who, me;

    /* only an agent identified by its token gets one */
    memset(&me, 0, sizeof(me));
    assert_int_equal(auth_ticket_issue(&f->route, &me, ticket), KF_EINVAL);
    assert_int_equal(identify(f, bearer(f->agent_token), "10.1.0.1", &me), 0);
    assert_int_equal(strlen(me.token_sha256), 64);
    assert_int_equal(auth_ticket_issue(&f->route, &me, ticket), 0);
    assert_int_equal(strlen(ticket), 64);
    /* stored only as its hash, for the ticket's lifetime */
    assert_int_equal(agent_token_hash(ticket, hash), 0);
    snprintf(tkey, sizeof(tkey), PFX "ticket:%s", hash);
    assert_int_equal(CMDL("EXISTS", tkey), 1);
    assert_true(CMDL("PTTL", tkey) <= AUTH_TICKET_TTL_S * 1000);
    assert_int_equal(auth_ticket_identify(&f->route, &f->cfg,
                                          kf_str_c(ticket), "10.1.0.1", &who),
                     0);
    assert_string_equal(who.account, "a1");
    assert_int_equal(who.role, AUTH_AGENT);
    /* once */
    assert_int_equal(CMDL("EXISTS", tkey), 0);
    assert_int_equal(auth_ticket_identify(&f->route, &f->cfg,
                                          kf_str_c(ticket), "10.1.0.1", &who),
                     KF_EBADSIG);
    /* a new token makes the tickets of the old one worthless */
    assert_int_equal(auth_ticket_issue(&f->route, &me, t2), 0);
    assert_int_equal(agent_token_new(newtok, newhash), 0);
    snprintf(nkey, sizeof(nkey), PFX "token:%s", newhash);
    snprintf(tkey, sizeof(tkey), PFX "token:%s", me.token_sha256);
    CMD("DEL", tkey);
    CMD("SET", nkey, "a1");
    assert_int_equal(auth_ticket_identify(&f->route, &f->cfg, kf_str_c(t2),
                                          "10.1.0.1", &who), KF_EBADSIG);
    /* an agent token is not a ticket, and bad tickets are counted */
    assert_int_equal(auth_ticket_identify(&f->route, &f->cfg,
                                          kf_str_c(f->agent_token),
                                          "10.1.0.2", &who), KF_EBADSIG);
    assert_int_equal(auth_ticket_identify(&f->route, &f->cfg,
                                          KF_STR("../../etc"), "10.1.0.2",
                                          &who), KF_EBADSIG);
    assert_int_equal(CMDL("GET", PFX "ticketfail:10.1.0.2"), 2);
    /* apart from tokens: bad tickets (a web page can make a browser send
     * them) never brake a token from that address */
    assert_int_equal(CMDL("EXISTS", PFX "authfail:10.1.0.2"), 0);
    assert_int_equal(auth_ticket_identify(&f->route, &f->cfg, KF_STR("x"),
                                          "10.1.0.2", &who), KF_EBADSIG);
    assert_int_equal(auth_ticket_identify(&f->route, &f->cfg, KF_STR("x"),
                                          "10.1.0.2", &who), KF_ELIMIT);
    assert_true(who.retry_after_s >= 1 && who.retry_after_s <= 60);
    assert_int_equal(CMDL("GET", PFX "ticketfail:10.1.0.2"), 3);
    assert_int_equal(identify(f, bearer(newtok), "10.1.0.2", &who), 0);
    assert_int_equal(identify(f, bearer("wxa_wrong"), "10.1.0.2", &who),
                     KF_EBADSIG);
    /* and a right ticket still opens the stream past the limit */
    assert_int_equal(identify(f, bearer(newtok), "10.1.0.2", &me), 0);
    assert_int_equal(auth_ticket_issue(&f->route, &me, t2), 0);
    assert_int_equal(auth_ticket_identify(&f->route, &f->cfg, kf_str_c(t2),
                                          "10.1.0.2", &who), 0);
    assert_string_equal(who.account, "a1");
    /* Redis down */
    tu_redis_stop(&srv);
    assert_int_equal(auth_ticket_issue(&f->route, &me, ticket), KF_EBACKEND);
    assert_int_equal(identify(f, bearer(f->agent_token), "10.0.0.1", &who),
                     KF_EBACKEND);
    tu_redis_start_on(&srv, srv.port);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bearer_parsing),
        cmocka_unit_test(addresses),
        cmocka_unit_test_setup_teardown(admin_and_agent_tokens, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(failures_brake_the_address, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(tickets, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
