/* user_tags: the account's user tags (WeChat's cgi-bin/tags/get), the
 * names behind user/info's tagid_list. `wxkf jobs` fetches the list at
 * most hourly, sooner when a profile names an id the list lacks, never
 * twice within a minute (whatever the number of jobs processes), and
 * keeps it in Redis (P user_tags: id -> name, lib/lua/user_tags.lua);
 * the profile page gets {"id", "name"} for each of the user's tags,
 * name null for an id the list does not have. */
#ifndef USER_TAGS_H
#define USER_TAGS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kf.h"
#include "store.h"

#define USER_TAGS_MAX 200           /* tags kept (WeChat allows 100) */
#define USER_TAGS_NAME_MAX 30       /* characters of a name (WeChat's) */
#define USER_TAGS_ID_MAX 2147483647LL
#define USER_TAGS_FRESH_MS (3600LL * 1000)  /* the list, refreshed hourly */
#define USER_TAGS_RETRY_MS 60000    /* at most one fetch a minute */

struct user_tag {
    int64_t id;
    char name[USER_TAGS_NAME_MAX * 4 + 1];  /* UTF-8 */
};

struct user_tags {
    struct user_tag v[USER_TAGS_MAX];
    size_t n;
};

/* What tags/get's answer j (borrowed) says: {"tags": [{"id", "name",
 * "count"}...]}. A tag whose id is not an integer in 0..USER_TAGS_ID_MAX,
 * whose name is not 1..USER_TAGS_NAME_MAX characters of text, or whose id
 * came before, is left out; past USER_TAGS_MAX the rest too. KF_EPARSE
 * when j is not an object with a "tags" array. */
KF_WUR int user_tags_parse(json_t *j, struct user_tags *out);

/* The script lib/lua/user_tags.lua; init once, then borrowed. */
void user_tags_script_init(struct store_script *sc);

/* 1 in *due when the list should be fetched now (the attempt is then
 * noted in Redis); unknown: a profile names an id the list lacks.
 * KF_EBACKEND. */
KF_WUR int user_tags_due(struct store *s, const struct store_script *sc,
                         int64_t now_ms, int unknown, int *due);

/* Replaces the kept list with t, fetched at now_ms. KF_EBACKEND. */
KF_WUR int user_tags_put(struct store *s, const struct store_script *sc,
                         const struct user_tags *t, int64_t now_ms);

/* The tags of ids (a JSON array of integers, borrowed; other elements are
 * skipped, at most USER_TAGS_MAX read) with their names: *out is a new
 * array [{"id": n, "name": "…" | null}] (json_decref it), *unknown (may
 * be NULL) the number without a name. KF_EBACKEND, KF_ENOMEM. */
KF_WUR int user_tags_name(struct store *s, const struct store_script *sc,
                          json_t *ids, json_t **out, int *unknown);

#endif
