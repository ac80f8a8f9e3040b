/* archive_stream: the Redis half of lib/archive. */
#include "archive_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "stream_group.h"

#include "banned.h"

#define STREAM "events"             /* P events (the key suffix) */

void archive_stream_init(struct archive *a)
{
    snprintf(a->claim_cursor, sizeof(a->claim_cursor), "0-0");
    store_script_init(&a->tidy, lua_archive_tidy);
}

void archive_stream_entries_release(struct archive_stream_entries *rd)
{
    size_t i;

    for (i = 0; rd->e && i < rd->n; i++)
        archive_entry_release(&rd->e[i]);
    free(rd->e);
    free(rd->f);
    store_reply_free(rd->r);
    memset(rd, 0, sizeof(*rd));
}

int archive_stream_key(const struct archive *a, char *out, size_t n)
{
    int len = snprintf(out, n, "%s" STREAM, a->store->prefix);

    return len < 0 || (size_t)len >= n ? KF_ECONFIG : 0;
}

/* One command. An error reply is KF_EBACKEND; NOGROUP makes the next
 * pass create the group again (so does a new connection: see
 * archive_stream_group). On success *out is new (store_reply_free()). */
static int cmd(struct archive *a, int argc, const char *const *argv,
               const size_t *lens, struct store_reply **out)
{
    struct kf_str err;
    int rc = store_cmd(a->store, argc, argv, lens, out);

    if (rc < 0)
        return rc;
    if (store_reply_type(*out) != STORE_ERR)
        return 0;
    err = store_reply_str(*out);
    if (err.len >= 7 && !memcmp(err.p, "NOGROUP", 7))
        a->group_ready = 0;
    store_reply_free(*out);
    *out = NULL;
    return KF_EBACKEND;
}

/* The group is created once per connection: a new one may be to a new
 * master (a fail-over) or a restarted server that lost the stream. */
int archive_stream_group(struct archive *a, const char *key)
{
    const char *argv[] = { "XGROUP", "CREATE", key, ARCHIVE_GROUP, "0",
                           "MKSTREAM" };
    struct store_reply *r;
    struct kf_str err;

    if (a->group_ready && a->group_conn == a->store->reconnects)
        return 0;
    a->group_ready = 0;
    if (store_cmd(a->store, 6, argv, NULL, &r) < 0)
        return KF_EBACKEND;
    err = store_reply_str(r);
    a->group_ready = store_reply_type(r) != STORE_ERR ||
                     (err.len >= 9 && !memcmp(err.p, "BUSYGROUP", 9));
    a->group_conn = a->store->reconnects;
    store_reply_free(r);
    return a->group_ready ? 0 : KF_EBACKEND;
}

int archive_stream_ack(struct archive *a, const char *key,
                       const struct archive_entry *e, size_t n)
{
    const char **argv = calloc(n + 3, sizeof(*argv));
    size_t *lens = calloc(n + 3, sizeof(*lens));
    size_t i, argc = 3;
    struct store_reply *r = NULL;
    int rc = 0;

    if (!argv || !lens) {
        rc = KF_ENOMEM;
        goto out;
    }
    argv[0] = "XACK";
    argv[1] = key;
    argv[2] = ARCHIVE_GROUP;
    for (i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    for (i = 0; i < n; i++)
        if (e[i].done) {
            argv[argc] = e[i].id.p;
            lens[argc++] = e[i].id.len;
        }
    if (argc > 3)
        rc = cmd(a, (int)argc, argv, lens, &r);
out:
    store_reply_free(r);
    free(argv);
    free(lens);
    return rc;
}

/* --- entries out of a reply ---------------------------------------------- */

static int is(const struct store_reply *r, enum store_type t)
{
    return store_reply_type(r) == t;
}

/* One element of the list: [id, fields] (fields nil: deleted). 0 when it
 * has no id at all (nothing to acknowledge). */
static int take_entry(struct archive_entry *e, const struct store_reply *el,
                      struct kf_str *f)
{
    const struct store_reply *x = store_reply_at(el, 1);
    struct kf_str id = store_reply_str(store_reply_at(el, 0));
    size_t i, n = store_reply_len(x);

    if (store_reply_len(el) != 2 || !is(store_reply_at(el, 0), STORE_STR))
        return 0;
    if (!is(x, STORE_ARRAY)) {
        archive_entry_parse(e, id, NULL, 0, is(x, STORE_NIL));
        return 1;
    }
    for (i = 0; i < n; i++) {
        const struct store_reply *y = store_reply_at(x, i);

        f[i] = is(y, STORE_STR) ? store_reply_str(y)
                                : (struct kf_str){ NULL, 0 };
    }
    archive_entry_parse(e, id, f, n, 0);
    return 1;
}

/* Takes ownership of r (list is inside it), even on error. */
static int take(struct store_reply *r, const struct store_reply *list,
                struct archive_stream_entries *rd)
{
    size_t i, nf = 0, at = 0, n = store_reply_len(list);

    memset(rd, 0, sizeof(*rd));
    rd->r = r;
    rd->listed = n;
    for (i = 0; i < n; i++) {
        const struct store_reply *el = store_reply_at(list, i);

        if (store_reply_len(el) == 2)
            nf += store_reply_len(store_reply_at(el, 1));
    }
    rd->e = calloc(n ? n : 1, sizeof(*rd->e));
    rd->f = calloc(nf ? nf : 1, sizeof(*rd->f));
    if (!rd->e || !rd->f) {
        archive_stream_entries_release(rd);
        return KF_ENOMEM;
    }
    for (i = 0; i < n; i++)
        if (take_entry(&rd->e[rd->n], store_reply_at(list, i), rd->f + at)) {
            at += rd->e[rd->n].nf;
            rd->n++;
        }
    return 0;
}

/* --- reading ------------------------------------------------------------- */

/* The entries array of an XREADGROUP reply (NULL when there are none). */
static const struct store_reply *read_entries(const struct store_reply *r)
{
    const struct store_reply *s = store_reply_at(r, 0);

    if (store_reply_len(s) != 2 || !is(store_reply_at(s, 1), STORE_ARRAY))
        return NULL;
    return store_reply_at(s, 1);
}

int archive_stream_read(struct archive *a, const char *key,
                        char cursor[ARCHIVE_STREAM_CURSOR],
                        struct archive_stream_entries *rd)
{
    char count[24];
    const char *argv[] = { "XREADGROUP", "GROUP", ARCHIVE_GROUP,
                           a->consumer, "COUNT", count, "STREAMS", key,
                           cursor };
    const struct store_reply *list;
    struct store_reply *r;
    struct kf_str last;
    size_t n;
    int rc;

    memset(rd, 0, sizeof(*rd));
    snprintf(count, sizeof(count), "%ld", a->batch);
    rc = cmd(a, 9, argv, NULL, &r);
    if (rc < 0)
        return rc;
    list = read_entries(r);
    n = store_reply_len(list);
    if (strcmp(cursor, ">") != 0 && n &&
        is(store_reply_at(store_reply_at(list, n - 1), 0), STORE_STR)) {
        last = store_reply_str(store_reply_at(store_reply_at(list, n - 1),
                                              0));
        snprintf(cursor, ARCHIVE_STREAM_CURSOR, "%.*s", (int)last.len,
                 last.p);
    }
    if (!n) {
        store_reply_free(r);
        return 0;
    }
    return take(r, list, rd);
}

int archive_stream_claim(struct archive *a, const char *key,
                         char next[ARCHIVE_STREAM_CURSOR],
                         struct archive_stream_entries *rd)
{
    char idle[24], count[24];
    const char *argv[] = { "XAUTOCLAIM", key, ARCHIVE_GROUP, a->consumer,
                           idle, a->claim_cursor, "COUNT", count };
    struct store_reply *r;
    struct kf_str cursor;
    int rc;

    memset(rd, 0, sizeof(*rd));
    snprintf(idle, sizeof(idle), "%ld", a->claim_idle_ms);
    snprintf(count, sizeof(count), "%ld", a->batch);
    rc = cmd(a, 8, argv, NULL, &r);
    if (rc < 0)
        return rc;
    if (store_reply_len(r) < 2 || !is(store_reply_at(r, 0), STORE_STR) ||
        !is(store_reply_at(r, 1), STORE_ARRAY)) {
        store_reply_free(r);
        return KF_EBACKEND;
    }
    cursor = store_reply_str(store_reply_at(r, 0));
    snprintf(next, ARCHIVE_STREAM_CURSOR, "%.*s", (int)cursor.len, cursor.p);
    if (!store_reply_len(store_reply_at(r, 1))) {
        store_reply_free(r);
        return 0;
    }
    return take(r, store_reply_at(r, 1), rd);
}

/* --- trimming and lag ---------------------------------------------------- */

/* The milliseconds of a stream id ("<ms>-<seq>"); 0 if it has none. */
static int64_t id_ms(struct kf_str id)
{
    const char *dash = memchr(id.p, '-', id.len);
    uint64_t v;

    if (kf_parse_u64((struct kf_str){ id.p, dash ? (size_t)(dash - id.p)
                                                 : id.len }, &v) < 0 ||
        v > INT64_MAX)
        return 0;
    return (int64_t)v;
}

int archive_stream_tidy(struct archive *a, int trim, struct archive_lag *lag,
                        long *trimmed)
{
    char keep[24], hold[24];
    const char *keys[] = { STREAM };
    const char *args[] = { trim ? "trim" : "lag", ARCHIVE_GROUP, keep,
                           hold };
    struct store_reply *r = NULL;
    int64_t v[4];
    struct kf_str oldest;
    int rc;

    snprintf(keep, sizeof(keep), "%ld", a->keep_ms);
    snprintf(hold, sizeof(hold), "%ld", a->hold_ms);
    rc = store_run(a->store, &a->tidy, 1, keys, 4, args, NULL, &r);
    if (rc == 0 && (store_reply_len(r) != 5 ||
                    store_reply_at_int(r, 0, &v[0]) < 0 ||
                    store_reply_at_int(r, 1, &v[1]) < 0 ||
                    store_reply_at_str(r, 2, &oldest) < 0 ||
                    store_reply_at_int(r, 3, &v[2]) < 0 ||
                    store_reply_at_int(r, 4, &v[3]) < 0))
        rc = KF_EBACKEND;
    if (rc == 0) {
        memset(lag, 0, sizeof(*lag));
        lag->pending = v[0];
        lag->undelivered = v[1];
        if (oldest.len) {
            lag->oldest_ms = id_ms(oldest);
            lag->age_ms = kf_wall_ms() - lag->oldest_ms;
            if (lag->age_ms < 0)
                lag->age_ms = 0;
        }
        *trimmed = (long)v[2];
        lag->groups_behind = (long)v[3];
    }
    store_reply_free(r);
    if (rc == 0 && trim)
        rc = stream_group_forget(a->store, ARCHIVE_GROUP, a->consumer,
                                 STREAM_GROUP_FORGET_MS, NULL);
    return rc;
}
