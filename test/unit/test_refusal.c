/* Unit tests for refusal: the table is whole (every sub-code a script in
 * lib/lua/ returns has its row), unambiguous (a sub-code means one row in
 * a scope), consistent (a row the API answers with has a 4xx/5xx status,
 * an API code and a kf code) and agrees with docs/api.md's examples; the
 * lookups compare bytes, not prefixes, and fall back as asked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <dirent.h>

#include <jansson.h>

#include "refusal.h"
#include "testutil.h"

static const unsigned scopes[] = {
    REFUSAL_SESSION, REFUSAL_PRESENCE, REFUSAL_SEND, REFUSAL_MEDIA,
    REFUSAL_READ, REFUSAL_INTERNAL, REFUSAL_AGENT, REFUSAL_CANNED,
    REFUSAL_UPLOAD, REFUSAL_LABEL, REFUSAL_TRANSFER, REFUSAL_REOPEN,
    REFUSAL_STAFF,
    REFUSAL_REPORT,
    REFUSAL_SUPERVISE,
    REFUSAL_AUDIT,
    REFUSAL_TOKEN,
};

static void test_every_row_is_complete_and_in_order(void **state)
{
    unsigned all = 0;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++)
        all |= scopes[i];
    for (i = 0; i < REFUSAL_COUNT; i++) {
        const struct refusal *r = refusal_get((enum refusal_id)i);

        assert_non_null(r);
        assert_int_equal(r->id, i);
        assert_true(r->scopes != 0 && (r->scopes & ~all) == 0);
        assert_non_null(r->sub);
        assert_true(r->rc < 0);
        assert_true(r->status >= 400 && r->status <= 599);
        assert_true(r->code && *r->code);
        /* only invalid_field and the agent and label verbs' checks (the
         * field or the reason named) take their message from the detail */
        assert_true(r->message != NULL || r->id == REFUSAL_INVALID_FIELD ||
                    r->id == REFUSAL_AGENT_BUSY ||
                    r->id == REFUSAL_AGENT_INVALID ||
                    r->id == REFUSAL_LABEL_INVALID ||
                    r->id == REFUSAL_REPORT_INVALID ||
                    r->id == REFUSAL_TOKEN_INVALID ||
                    r->id == REFUSAL_STAFF_INVALID);
    }
    assert_null(refusal_get(REFUSAL_COUNT));
}

/* The agent verbs are answered by their kf code: each code one row, and
 * a backend failure no row (503 backend_unavailable, not a refusal). */
static void test_agent_codes_mean_one_row_each(void **state)
{
    static const struct { int rc; const char *code; int status; } cases[] = {
        { KF_ENOTFOUND, "unknown_agent", 404 },
        { KF_EEXISTS, "account_exists", 409 },
        { KF_EBUSY, "agent_busy", 409 },
        { KF_EINVAL, "invalid_field", 400 },
    };
    size_t i, j, n;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct refusal *r = refusal_by_rc(REFUSAL_AGENT, cases[i].rc);

        assert_non_null(r);
        assert_string_equal(r->code, cases[i].code);
        assert_int_equal(r->status, cases[i].status);
    }
    for (i = 0; i < REFUSAL_COUNT; i++) {
        const struct refusal *a = refusal_get((enum refusal_id)i);

        if (!(a->scopes & REFUSAL_AGENT))
            continue;
        for (n = 0, j = 0; j < REFUSAL_COUNT; j++)
            n += (refusal_get((enum refusal_id)j)->scopes & REFUSAL_AGENT) &&
                 refusal_get((enum refusal_id)j)->rc == a->rc;
        assert_int_equal(n, 1);
    }
    assert_null(refusal_by_rc(REFUSAL_AGENT, KF_EBACKEND));
    assert_null(refusal_by_rc(REFUSAL_AGENT, KF_ENOMEM));
    assert_null(refusal_by_rc(REFUSAL_AGENT, 0));
}

static void test_a_sub_code_means_one_row_in_a_scope(void **state)
{
    size_t s, i, j;

    (void)state;
    for (s = 0; s < sizeof(scopes) / sizeof(scopes[0]); s++)
        for (i = 0; i < REFUSAL_COUNT; i++)
            for (j = i + 1; j < REFUSAL_COUNT; j++) {
                const struct refusal *a = refusal_get((enum refusal_id)i),
                                     *b = refusal_get((enum refusal_id)j);

                if ((a->scopes & scopes[s]) && (b->scopes & scopes[s]))
                    assert_string_not_equal(a->sub, b->sub);
            }
}

/* Every { 'err', '<code>' } a script in lib/lua/ returns. */
static size_t lua_codes(const char *path, char codes[][40], size_t max,
                        size_t n)
{
    char *text = tu_read_file(path, NULL), *p;
    static const char mark[] = "{ 'err', '";

    assert_non_null(text);
    for (p = strstr(text, mark); p; p = strstr(p, mark)) {
        char *end;

        p += sizeof(mark) - 1;
        end = strchr(p, '\'');
        assert_non_null(end);
        assert_true(end - p > 0 && end - p < 40);
        assert_true(n < max);
        memcpy(codes[n], p, (size_t)(end - p));
        codes[n][end - p] = '\0';
        n++;
    }
    free(text);
    return n;
}

static void test_every_script_code_has_its_row(void **state)
{
    char codes[64][40], path[512];
    DIR *d = opendir("../../lib/lua");
    struct dirent *e;
    size_t n = 0, i, j;

    (void)state;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);

        if (len < 5 || strcmp(e->d_name + len - 4, ".lua") != 0)
            continue;
        snprintf(path, sizeof(path), "../../lib/lua/%s", e->d_name);
        n = lua_codes(path, codes, 64, n);
    }
    closedir(d);
    /* session, presence and outbound return their codes this way */
    assert_true(n >= 12);
    for (i = 0; i < n; i++) {
        int found = 0;

        for (j = 0; j < REFUSAL_COUNT; j++)
            found |= strcmp(refusal_get((enum refusal_id)j)->sub,
                            codes[i]) == 0;
        if (!found)
            fail_msg("lib/lua returns {'err', '%s'}: no row in "
                     "lib/refusal.h", codes[i]);   /* nothing to free */
    }
}

static void test_find_compares_bytes_and_falls_back(void **state)
{
    static const struct {
        unsigned scope;
        struct kf_str sub;
        enum refusal_id otherwise, want;
    } cases[] = {
        { REFUSAL_SESSION, KF_STR("not_yours"), REFUSAL_REFUSED,
          REFUSAL_NOT_YOURS },
        { REFUSAL_MEDIA, KF_STR("not_yours"), REFUSAL_NO_MEDIA,
          REFUSAL_MEDIA_NOT_YOURS },
        { REFUSAL_SEND, KF_STR("no_session"), REFUSAL_REFUSED,
          REFUSAL_SEND_NO_SESSION },
        { REFUSAL_PRESENCE, KF_STR("unknown_agent"), REFUSAL_BAD_STATUS,
          REFUSAL_AGENT_GONE },
        /* a view of untrusted bytes: no prefix, no NUL needed, no empty */
        { REFUSAL_SESSION, KF_STR("not_your"), REFUSAL_REFUSED,
          REFUSAL_REFUSED },
        { REFUSAL_SESSION, KF_STR("not_yours!"), REFUSAL_REFUSED,
          REFUSAL_REFUSED },
        { REFUSAL_SESSION, { "agent_fullXYZ", 10 }, REFUSAL_REFUSED,
          REFUSAL_AGENT_FULL },
        { REFUSAL_SESSION, KF_STR(""), REFUSAL_NO_SESSION,
          REFUSAL_NO_SESSION },
        /* a reopen: who has the user, WeChat's window, the agent */
        { REFUSAL_REOPEN, KF_STR("held"), REFUSAL_REFUSED, REFUSAL_HELD },
        { REFUSAL_REOPEN, KF_STR("outside_48h_window"), REFUSAL_REFUSED,
          REFUSAL_OUTSIDE_WINDOW },
        { REFUSAL_REOPEN, KF_STR("agent_full"), REFUSAL_REFUSED,
          REFUSAL_AGENT_FULL },
        { REFUSAL_SESSION, KF_STR("held"), REFUSAL_REFUSED,
          REFUSAL_REFUSED },
        /* a sub-code of another scope is not this one's */
        { REFUSAL_SESSION, KF_STR("media_failed"), REFUSAL_REFUSED,
          REFUSAL_REFUSED },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_ptr_equal(refusal_find(cases[i].scope, cases[i].sub,
                                      cases[i].otherwise),
                         refusal_get(cases[i].want));
}

static void test_wechat_errcodes_mean_our_send_refusals(void **state)
{
    (void)state;
    assert_ptr_equal(refusal_by_errcode(REFUSAL_SEND, 45015),
                     refusal_get(REFUSAL_OUTSIDE_WINDOW));
    assert_ptr_equal(refusal_by_errcode(REFUSAL_SEND, 45047),
                     refusal_get(REFUSAL_QUOTA_EXHAUSTED));
    assert_null(refusal_by_errcode(REFUSAL_SEND, 40001));
    assert_null(refusal_by_errcode(REFUSAL_SEND, 0));
    assert_null(refusal_by_errcode(REFUSAL_SESSION, 45015));
}

/* docs/api.md quotes answers: {"error":{"code":"X","message":"Y"}}. Where
 * X is a code the table answers with, Y is one of its rows' messages (an
 * answer with WeChat's errcode carries WeChat's text instead). */
static void test_api_docs_quote_the_table(void **state)
{
    static const char mark[] = "{\"error\":{\"code\":\"";
    char *doc = tu_read_file("../../docs/api.md", NULL), *p;
    char bad[400] = "";
    size_t checked = 0;

    (void)state;
    assert_non_null(doc);
    for (p = strstr(doc, mark); p && !*bad; p = strstr(p + 1, mark)) {
        char code[64] = "", msg[256] = "";
        const char *end = strstr(p, "}}"), *ec = strstr(p, "errcode");
        int ours = 0, same = 0;
        size_t i;

        if (sscanf(p + sizeof(mark) - 1, "%63[^\"]\",\"message\":\"%255[^\"]",
                   code, msg) != 2 ||
            (ec && (!end || ec < end)))
            continue;
        for (i = 0; i < REFUSAL_COUNT; i++) {
            const struct refusal *r = refusal_get((enum refusal_id)i);

            if (strcmp(r->code, code) != 0)
                continue;
            ours = r->message != NULL;
            same |= r->message && strcmp(r->message, msg) == 0;
        }
        if (!ours)
            continue;
        checked++;
        if (!same)
            snprintf(bad, sizeof(bad), "%s \"%s\"", code, msg);
    }
    free(doc);
    if (*bad)
        fail_msg("docs/api.md: %s is no row's message", bad);
    assert_true(checked >= 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row_is_complete_and_in_order),
        cmocka_unit_test(test_a_sub_code_means_one_row_in_a_scope),
        cmocka_unit_test(test_agent_codes_mean_one_row_each),
        cmocka_unit_test(test_every_script_code_has_its_row),
        cmocka_unit_test(test_find_compares_bytes_and_falls_back),
        cmocka_unit_test(test_wechat_errcodes_mean_our_send_refusals),
        cmocka_unit_test(test_api_docs_quote_the_table),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
