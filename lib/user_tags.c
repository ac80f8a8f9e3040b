/* user_tags: the account's user tags (tags/get) for the profile page. */
#include "user_tags.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lua.h"

#include "banned.h"

#define ID_LEN 24                   /* a decimal int64 and its NUL */

static int seen(const struct user_tags *t, int64_t id)
{
    size_t i;

    for (i = 0; i < t->n; i++)
        if (t->v[i].id == id)
            return 1;
    return 0;
}

int user_tags_parse(json_t *j, struct user_tags *out)
{
    json_t *tags = json_object_get(j, "tags"), *t;
    size_t i;

    out->n = 0;
    if (!json_is_object(j) || !json_is_array(tags))
        return KF_EPARSE;
    json_array_foreach(tags, i, t) {
        json_t *id = json_object_get(t, "id");
        const char *name = json_string_value(json_object_get(t, "name"));
        struct user_tag *u = &out->v[out->n];

        if (out->n == USER_TAGS_MAX)
            break;
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) > USER_TAGS_ID_MAX || !name || !*name ||
            strlen(name) >= sizeof(u->name) ||
            kf_text_check(name, USER_TAGS_NAME_MAX, 0) < 0 ||
            seen(out, json_integer_value(id)))
            continue;
        u->id = json_integer_value(id);
        memcpy(u->name, name, strlen(name) + 1);
        out->n++;
    }
    return 0;
}

void user_tags_script_init(struct store_script *sc)
{
    store_script_init(sc, lua_user_tags);
}

int user_tags_due(struct store *s, const struct store_script *sc,
                  int64_t now_ms, int unknown, int *due)
{
    char now[ID_LEN], fresh[ID_LEN], retry[ID_LEN];
    const char *args[] = { "due", now, fresh, retry, unknown ? "1" : "0" };
    struct store_reply *r = NULL;
    int rc;

    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    snprintf(fresh, sizeof(fresh), "%lld", (long long)USER_TAGS_FRESH_MS);
    snprintf(retry, sizeof(retry), "%lld", (long long)USER_TAGS_RETRY_MS);
    rc = store_run(s, sc, 0, NULL, 5, args, NULL, &r);
    if (rc == 0 && store_reply_type(r) != STORE_INT)
        rc = KF_EBACKEND;
    *due = rc == 0 && store_reply_int(r) == 1;
    store_reply_free(r);
    return rc;
}

int user_tags_put(struct store *s, const struct store_script *sc,
                  const struct user_tags *t, int64_t now_ms)
{
    const char *args[2 + 2 * USER_TAGS_MAX];
    char ids[USER_TAGS_MAX][ID_LEN], now[ID_LEN];
    size_t i;

    args[0] = "put";
    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    args[1] = now;
    for (i = 0; i < t->n; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%" PRId64, t->v[i].id);
        args[2 + 2 * i] = ids[i];
        args[3 + 2 * i] = t->v[i].name;
    }
    return store_run(s, sc, 0, NULL, (int)(2 + 2 * t->n), args, NULL, NULL);
}

/* out gets {"id": id, "name": name or null (also for a name that is not
 * UTF-8, which user_tags_put never keeps)}. */
static int append(json_t *out, json_int_t id, const char *name)
{
    json_t *nm = name ? json_string(name) : NULL;
    json_t *o = json_pack("{s:I,s:o}", "id", id,
                          "name", nm ? nm : json_null());

    return o && json_array_append_new(out, o) == 0 ? 0 : KF_ENOMEM;
}

int user_tags_name(struct store *s, const struct store_script *sc,
                   json_t *ids, json_t **out, int *unknown)
{
    const char *args[1 + USER_TAGS_MAX];
    char text[USER_TAGS_MAX][ID_LEN];
    json_int_t id[USER_TAGS_MAX];
    struct store_reply *r = NULL;
    size_t i, n = 0;
    json_t *v;
    int rc = 0, missing = 0;

    *out = NULL;
    args[0] = "names";
    json_array_foreach(ids, i, v) {
        if (n == USER_TAGS_MAX)
            break;
        if (!json_is_integer(v))
            continue;
        id[n] = json_integer_value(v);
        snprintf(text[n], sizeof(text[n]), "%" JSON_INTEGER_FORMAT, id[n]);
        args[1 + n] = text[n];
        n++;
    }
    if (n > 0)
        rc = store_run(s, sc, 0, NULL, (int)(1 + n), args, NULL, &r);
    if (rc == 0 && n > 0 && (store_reply_type(r) != STORE_ARRAY ||
                             store_reply_len(r) != n))
        rc = KF_EBACKEND;
    if (rc == 0)
        *out = json_array();
    if (rc == 0 && !*out)
        rc = KF_ENOMEM;
    for (i = 0; i < n && rc == 0; i++) {
        const struct store_reply *e = store_reply_at(r, i);
        int named = store_reply_type(e) == STORE_STR;

        missing += !named;
        rc = append(*out, id[i], named ? store_reply_at_text(r, i) : NULL);
    }
    store_reply_free(r);
    if (rc < 0) {
        json_decref(*out);
        *out = NULL;
    } else if (unknown) {
        *unknown = missing;
    }
    return rc;
}
