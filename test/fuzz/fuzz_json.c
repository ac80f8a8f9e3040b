/* fuzz_json: the REST API's JSON bodies, read as fcgi/api.c reads them
 * (json_loadb with JSON_REJECT_DUPLICATES, an object, empty = {}), then
 *  - the agent fields the way fcgi/admin.c takes them (POST and PATCH
 *    /api/v1/agents: account, nick, weight, capacity, groups) through
 *    lib/agent's setters and agent_validate(), and to_agent / to_group
 *    of a transfer through agent_check_account/agent_check_group, and
 *    its note through handover_check_note;
 *  - the body of POST /api/v1/sessions/{openid}/messages through
 *    outbound_send(), whose validation runs before anything else: the
 *    Redis store is held in its backoff state (no connection is ever
 *    tried) and there is no WeChat client, so a message that passes
 *    validation stops at the reservation with KF_EBACKEND.
 * Checks: a record every setter accepted (and weight/capacity in range)
 * passes agent_validate; the checks and the setters agree; every refusal
 * names its field; outbound refuses only with code invalid_field. */
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "agent.h"
#include "config.h"
#include "fuzz.h"
#include "handover.h"
#include "outbound.h"
#include "refusal.h"
#include "route.h"
#include "store.h"

static struct config cfg;
static struct store st;
static struct route rt;
static struct outbound ob;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1);        /* the same hash order every run */
    config_init(&cfg);
    /* A socket that does not exist, and a backoff that never ends: the
     * store answers KF_EBACKEND at once, without a connect attempt. */
    if (store_init(&st, "unix:/nonexistent/wxkf-fuzz.sock", FZ_APPID, 10,
                   10) != 0 ||
        route_init(&rt, &st, &cfg) != 0)
        abort();
    st.next_try_ms = INT64_MAX;
    outbound_init(&ob, &rt, NULL, &cfg);
    return 0;
}

static const char *str(json_t *o, const char *name, int *bad)
{
    json_t *v = json_object_get(o, name);

    if (v && !json_is_string(v))
        *bad = 1;
    return json_string_value(v);
}

static void check_err(int rc, const struct agent_err *err, const char *field)
{
    if (rc == 0)
        return;
    FZ_CHECK(rc == KF_EINVAL);
    FZ_CHECK(strncmp(err->msg, field, strlen(field)) == 0);
    FZ_CHECK(memchr(err->msg, '\0', sizeof(err->msg)) != NULL);
}

/* POST/PATCH /api/v1/agents: what admin.c's read_fields() does. */
static void agent_fields(json_t *body)
{
    struct agent_err err = { "", 0 };
    struct agent a;
    const char *account, *nick;
    json_t *v;
    int bad = 0, ok = 1, rc;
    size_t i;

    agent_init(&a);
    FZ_CHECK(agent_validate(&a, &err) == KF_EINVAL);   /* no account */
    account = str(body, "account", &bad);
    nick = str(body, "nick", &bad);
    if (account) {
        rc = agent_set_account(&a, account, &err);
        check_err(rc, &err, "account");
        FZ_CHECK((agent_check_account(account, NULL) == 0) == (rc == 0));
        if (rc == 0)
            FZ_CHECK(strcmp(a.account, account) == 0);
        ok &= rc == 0;
    } else {
        ok = 0;
    }
    if (nick) {
        rc = agent_set_nick(&a, nick, &err);
        check_err(rc, &err, "nick");
        FZ_CHECK((agent_check_nick(nick, NULL) == 0) == (rc == 0));
        if (rc == 0)
            FZ_CHECK(strcmp(a.nick, nick) == 0);
        ok &= rc == 0;
    } else {
        ok = 0;
    }
    v = json_object_get(body, "weight");
    if (v) {
        json_int_t w = json_integer_value(v);

        if (json_is_integer(v) && w >= 1 && w <= 100)
            a.weight = (int)w;
        else
            ok = 0;
    }
    v = json_object_get(body, "capacity");
    if (v) {
        json_int_t c = json_integer_value(v);

        if (json_is_integer(v) && c >= 0 && c <= 10000)
            a.capacity = (int)c;
        else
            ok = 0;
    }
    v = json_object_get(body, "groups");
    if (v && !json_is_array(v))
        ok = 0;
    for (i = 0; v && i < json_array_size(v); i++) {
        const char *g = json_string_value(json_array_get(v, i));
        int before = a.ngroups;

        if (!g) {
            ok = 0;
            break;
        }
        rc = agent_add_group(&a, g, &err);
        check_err(rc, &err, "group");
        FZ_CHECK(a.ngroups == before + (rc == 0));
        if (agent_check_group(g, NULL) < 0)
            FZ_CHECK(rc == KF_EINVAL);
        ok &= rc == 0;
        if (rc < 0)
            break;
    }
    FZ_CHECK(a.ngroups <= AGENT_MAX_GROUPS);
    rc = agent_validate(&a, &err);
    if (ok && !bad)
        FZ_CHECK(rc == 0);
    if (rc < 0)
        FZ_CHECK(err.msg[0] != '\0');
}

/* POST /api/v1/sessions/{openid}/transfer */
static void transfer(json_t *body)
{
    int bad = 0;
    const char *agent = str(body, "to_agent", &bad);
    const char *group = str(body, "to_group", &bad);
    const char *note = str(body, "note", &bad);
    struct agent_err err = { "", 0 };

    if (agent) {
        int rc = agent_check_account(agent, NULL);

        FZ_CHECK(rc == agent_check_account(agent, &err));
        check_err(rc, &err, "account");
        FZ_CHECK(rc < 0 || strlen(agent) <= 41);
    }
    if (group) {
        int rc = agent_check_group(group, NULL);

        FZ_CHECK(rc == agent_check_group(group, &err));
        check_err(rc, &err, "group");
        FZ_CHECK(rc < 0 || (strlen(group) < AGENT_GROUP_SIZE &&
                            strcmp(group, "_all")));
    }
    if (note) {
        const struct refusal *why = NULL;
        int rc = handover_check_note(note, &why);

        /* a note kept is at most 200 characters (600 bytes of UTF-8 from
         * the BMP, 800 beyond) on one line; a refused one names its row */
        FZ_CHECK(rc < 0 || (strlen(note) <= 4 * HANDOVER_NOTE_CHARS &&
                            !strpbrk(note, "\n\r\t")));
        FZ_CHECK((rc < 0) == (why != NULL));
        FZ_CHECK(!why || (why->rc == rc && why->status == 400 &&
                          (strcmp(why->code, "note_too_long") == 0 ||
                           strcmp(why->code, "invalid_note") == 0)));
    }
}

/* POST /api/v1/sessions/{openid}/messages */
static void message(json_t *body)
{
    struct outbound_result res;
    int rc;

    rc = outbound_send(&ob, "alice@shop", KF_STR(FZ_OPENID), body,
                       (int64_t)FZ_NOW * 1000, &res);
    if (rc == KF_EINVAL) {
        FZ_CHECK(res.why == refusal_get(REFUSAL_INVALID_FIELD));
        FZ_CHECK(res.message[0] != '\0');
    } else {
        FZ_CHECK(rc == KF_EBACKEND);     /* validated; Redis is "down" */
        FZ_CHECK(res.why == NULL);
        FZ_CHECK(strncmp(res.id, "m_", 2) == 0 && strlen(res.id) == 34);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t e;
    json_t *body;

    if (size == 0) {
        body = json_object();
    } else {
        body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES,
                          &e);
        if (!body || !json_is_object(body)) {
            json_decref(body);
            return 0;
        }
    }
    agent_fields(body);
    transfer(body);
    message(body);
    json_decref(body);
    return 0;
}
