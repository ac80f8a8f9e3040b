/* Tests of lib/api_token: scope names and lists, which routes each scope
 * opens, the token's form, and the verbs on a private PostgreSQL: a new
 * token stored only as its SHA-256, found by it while live, its last use
 * written at most once a minute, revoked at once, per account. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent_token.h"
#include "api_token.h"
#include "pg.h"
#include "tu_pg.h"

#define APP "wxTESTAPP"

static void test_scope_lists(void **st)
{
    unsigned s = 0;
    json_t *a;
    char *dump;

    (void)st;
    assert_int_equal(api_token_scopes_parse("read", &s), 0);
    assert_int_equal(s, API_SCOPE_READ);
    assert_int_equal(api_token_scopes_parse("history,agents,read", &s), 0);
    assert_int_equal(s, API_SCOPE_HISTORY | API_SCOPE_AGENTS |
                        API_SCOPE_READ);
    assert_int_equal(api_token_scopes_parse("", &s), KF_EINVAL);
    assert_int_equal(api_token_scopes_parse("read,", &s), KF_EINVAL);
    assert_int_equal(api_token_scopes_parse(",read", &s), KF_EINVAL);
    assert_int_equal(api_token_scopes_parse("admin", &s), KF_EINVAL);
    assert_int_equal(api_token_scopes_parse("READ", &s), KF_EINVAL);
    assert_int_equal(api_token_scopes_parse("readxxxxxxxxxxxxxxxxx", &s),
                     KF_EINVAL);

    a = json_loads("[\"reports\", \"read\"]", 0, NULL);
    assert_int_equal(api_token_scopes_json_parse(a, &s), 0);
    assert_int_equal(s, API_SCOPE_REPORTS | API_SCOPE_READ);
    json_decref(a);
    a = json_loads("[]", 0, NULL);
    assert_int_equal(api_token_scopes_json_parse(a, &s), KF_EINVAL);
    json_decref(a);
    a = json_loads("[\"read\", 7]", 0, NULL);
    assert_int_equal(api_token_scopes_json_parse(a, &s), KF_EINVAL);
    json_decref(a);
    assert_int_equal(api_token_scopes_json_parse(NULL, &s), KF_EINVAL);

    a = api_token_scopes_json(API_SCOPE_HISTORY | API_SCOPE_READ);
    dump = json_dumps(a, JSON_COMPACT);
    assert_string_equal(dump, "[\"read\",\"history\"]");
    free(dump);
    json_decref(a);
}

static unsigned scopes_of(const char *method, const char *route)
{
    return api_token_route_scopes(kf_str_c(method), route);
}

static void test_route_scopes(void **st)
{
    (void)st;
    assert_int_equal(scopes_of("GET", "/api/v1/queue"), API_SCOPE_READ);
    assert_int_equal(scopes_of("HEAD", "/api/v1/stats"), API_SCOPE_READ);
    assert_int_equal(scopes_of("GET", "/api/v1/agents"),
                     API_SCOPE_READ | API_SCOPE_AGENTS);
    assert_int_equal(scopes_of("POST", "/api/v1/agents"), API_SCOPE_AGENTS);
    assert_int_equal(scopes_of("DELETE", "/api/v1/agents/+"),
                     API_SCOPE_AGENTS);
    assert_int_equal(scopes_of("POST", "/api/v1/agents/+/token"),
                     API_SCOPE_AGENTS);
    assert_int_equal(scopes_of("GET", "/api/v1/reports"), API_SCOPE_REPORTS);
    assert_int_equal(scopes_of("GET", "/api/v1/reports/export"),
                     API_SCOPE_REPORTS);
    assert_int_equal(scopes_of("GET", "/api/v1/history/export"),
                     API_SCOPE_HISTORY);
    assert_int_equal(scopes_of("GET", "/api/v1/search"), API_SCOPE_HISTORY);
    assert_int_equal(scopes_of("GET", "/api/v1/users/*/messages"),
                     API_SCOPE_HISTORY);
    assert_int_equal(scopes_of("GET", "/api/v1/media/*"), API_SCOPE_HISTORY);
    assert_int_equal(scopes_of("GET", "/api/v1/me"), API_SCOPE_ALL);
    /* writes outside the agents, and the management routes: none */
    assert_int_equal(scopes_of("POST", "/api/v1/labels"), 0);
    assert_int_equal(scopes_of("POST", "/api/v1/sessions/*/close"), 0);
    assert_int_equal(scopes_of("GET", "/api/v1/tokens"), 0);
    assert_int_equal(scopes_of("DELETE", "/api/v1/tokens/*"), 0);
    assert_int_equal(scopes_of("GET", "/api/v1/staff"), 0);
    assert_int_equal(scopes_of("GET", "/api/v1/auth/me"), 0);
    assert_int_equal(scopes_of("GET", "/api/v1/me/sessions"), 0);
    assert_int_equal(scopes_of("GET", NULL), 0);
}

static void test_token_form(void **st)
{
    char tok[API_TOKEN_SIZE], hash[AGENT_HASH_SIZE];

    (void)st;
    assert_int_equal(agent_token_new_prefixed(API_TOKEN_PREFIX, tok, hash),
                     0);
    assert_int_equal(strlen(tok), 68);
    assert_true(api_token_is_token(kf_str_c(tok)));
    assert_true(agent_token_is_hash(hash));
    tok[10] = 'G';
    assert_false(api_token_is_token(kf_str_c(tok)));
    assert_false(api_token_is_token(kf_str_c("wxa_0123")));
    memcpy(tok, "wxa_", 4);
    tok[10] = '0';
    assert_false(api_token_is_token(kf_str_c(tok)));
    assert_int_equal(api_token_check_name("crm 同步"), 0);
    assert_int_equal(api_token_check_name(""), KF_EINVAL);
    assert_int_equal(api_token_check_name("a\nb"), KF_EINVAL);
}

/* The secret of a new token (checked) and its id. */
static long long add(struct pg_conn *db, const char *app, const char *name,
                     unsigned scopes, char secret[API_TOKEN_SIZE])
{
    json_t *t = NULL;
    long long id;

    assert_int_equal(api_token_add(db, app, name, scopes, "cli", &t), 0);
    snprintf(secret, API_TOKEN_SIZE, "%s",
             json_string_value(json_object_get(t, "token")));
    id = json_integer_value(json_object_get(t, "id"));
    json_decref(t);
    return id;
}

static int identify(struct pg_conn *db, const char *app, const char *secret,
                    struct api_token_who *who)
{
    char hash[AGENT_HASH_SIZE];

    assert_int_equal(agent_token_hash(secret, hash), 0);
    return api_token_identify(db, app, hash, who);
}

/* last_used_at of id as text ("" when NULL). */
static void last_used(long long id, char *out, size_t n)
{
    char sql[160];
    PGresult *res;

    snprintf(sql, sizeof(sql), "SELECT coalesce(last_used_at::text, '') "
             "FROM api_tokens WHERE id = %lld", id);
    res = PQexec(tu_pg.db, sql);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    snprintf(out, n, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

static void test_verbs(void **st)
{
    char secret[API_TOKEN_SIZE], other[API_TOKEN_SIZE], t1[64], t2[64];
    char sql[200];
    struct api_token_who who;
    struct pg_conn *db = NULL;
    json_t *out = NULL;
    long long id, oid;

    (void)st;
    assert_int_equal(pg_open(tu_pg.dsn, "test", PG_USE_CLI, &db, NULL), 0);
    id = add(db, APP, "nightly", API_SCOPE_REPORTS | API_SCOPE_HISTORY,
             secret);
    oid = add(db, "wxOTHER", "nightly", API_SCOPE_READ, other);
    assert_int_equal(api_token_add(db, APP, "nightly", API_SCOPE_READ, "cli",
                                   &out), KF_EEXISTS);
    assert_int_equal(api_token_add(db, APP, "x", 0, "cli", &out), KF_EINVAL);
    assert_int_equal(api_token_add(db, APP, "x", 16, "cli", &out), KF_EINVAL);
    assert_null(out);

    assert_int_equal(identify(db, APP, secret, &who), 0);
    assert_int_equal(who.id, id);
    assert_int_equal(who.scopes, API_SCOPE_REPORTS | API_SCOPE_HISTORY);
    assert_string_equal(who.name, "nightly");
    /* per account */
    assert_int_equal(identify(db, APP, other, &who), KF_ENOTFOUND);
    assert_int_equal(identify(db, "wxOTHER", other, &who), 0);
    assert_int_equal(who.id, oid);

    /* the last use: written once, not again within the minute */
    last_used(id, t1, sizeof(t1));
    assert_true(t1[0]);
    assert_int_equal(identify(db, APP, secret, &who), 0);
    last_used(id, t2, sizeof(t2));
    assert_string_equal(t1, t2);
    snprintf(sql, sizeof(sql), "UPDATE api_tokens SET last_used_at = "
             "now() - interval '61 s' WHERE id = %lld", id);
    tu_pg_exec_ok(tu_pg.db, sql);
    last_used(id, t1, sizeof(t1));
    assert_int_equal(identify(db, APP, secret, &who), 0);
    last_used(id, t2, sizeof(t2));
    assert_string_not_equal(t1, t2);

    /* the list: no secret, no hash, this account only */
    assert_int_equal(api_token_list(db, APP, &out), 0);
    assert_int_equal(json_array_size(json_object_get(out, "tokens")), 1);
    {
        char *dump = json_dumps(out, JSON_COMPACT);

        assert_null(strstr(dump, secret + 4));
        assert_null(strstr(dump, "sha256"));
        assert_non_null(strstr(dump, "\"scopes\":[\"reports\",\"history\"]"));
        free(dump);
    }
    json_decref(out);

    /* revoked: refused from the next lookup; another account's: 404 */
    assert_int_equal(api_token_revoke(db, APP, oid, &out), KF_ENOTFOUND);
    assert_int_equal(api_token_revoke(db, APP, id, &out), 0);
    assert_true(json_is_string(json_object_get(out, "revoked_at")));
    json_decref(out);
    assert_int_equal(identify(db, APP, secret, &who), KF_ENOTFOUND);
    assert_int_equal(identify(db, "wxOTHER", other, &who), 0);
    /* the name is free again */
    add(db, APP, "nightly", API_SCOPE_READ, secret);
    pg_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scope_lists),
        cmocka_unit_test(test_route_scopes),
        cmocka_unit_test(test_token_form),
        cmocka_unit_test(test_verbs),
    };

    return cmocka_run_group_tests(tests, tu_pg_group_setup,
                                  tu_pg_group_teardown);
}
