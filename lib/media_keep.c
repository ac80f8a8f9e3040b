/* media_keep: retention and the disk quota of the media store. */
#include "media_keep.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "lua.h"

#include "banned.h"

#define MIB (1024LL * 1024LL)
#define DAY_MS 86400000LL
#define PICK_MAX 100            /* files chosen per round trip */

void media_keep_script_init(struct store_script *sc)
{
    store_script_init(sc, lua_media_keep);
}

/* Every call runs m->keep (lib/lua/media_keep.lua) with args[0] = the
 * op. */

/* Deletes dir/path; a file already gone, or an empty path, is no error. */
static int unlink_rel(const struct media *m, const char *path)
{
    char full[4096];
    int n;

    if (!*path || !media_rel_ok(path))
        return 0;
    n = snprintf(full, sizeof(full), "%s/%s", m->cfg->media.dir, path);
    if (n < 0 || (size_t)n >= sizeof(full))
        return KF_ETOOBIG;
    return unlink(full) < 0 && errno != ENOENT ? KF_EIO : 0;
}

/* Deletes one chosen file and its playable copy, then its record. One
 * that cannot be deleted keeps its record. */
static int delete_one(struct media *m, const struct store_reply *v,
                      struct media_counts *c)
{
    struct kf_str mid, pathv, why, play;
    const char *args[] = { "forget", NULL };
    int rc;

    if (store_reply_len(v) != 5 || store_reply_at_str(v, 0, &mid) < 0 ||
        store_reply_at_str(v, 1, &pathv) < 0 ||
        store_reply_at_str(v, 3, &why) < 0 ||
        store_reply_at_str(v, 4, &play) < 0)
        return KF_EBACKEND;
    /* each NUL-terminated too */
    rc = unlink_rel(m, play.p);
    if (rc == 0)
        rc = unlink_rel(m, pathv.p);
    if (rc < 0)
        return rc;
    if (store_reply_at_is(v, 3, "retention"))
        c->removed_retention++;
    else
        c->removed_quota++;
    args[1] = mid.p;
    return store_run(m->store, &m->keep, 0, NULL, 2, args, NULL, NULL);
}

/* One round: picks up to n files and deletes them. *picked = how many,
 * *used = the bytes indexed before. */
static int round_trip(struct media *m, int64_t cut, int64_t need, long n,
                      long *picked, int64_t *used, struct media_counts *c)
{
    char scut[24], squota[24], sneed[24], sn[24];
    const char *args[] = { "pick", scut, squota, sneed, sn };
    struct store_reply *r = NULL;
    const struct store_reply *list;
    size_t i;
    int rc;

    snprintf(scut, sizeof(scut), "%lld", (long long)cut);
    snprintf(squota, sizeof(squota), "%lld",
             (long long)m->cfg->media.max_disk_mb * MIB);
    snprintf(sneed, sizeof(sneed), "%lld", (long long)need);
    snprintf(sn, sizeof(sn), "%ld", n);
    *picked = 0;
    rc = store_run(m->store, &m->keep, 0, NULL, 5, args, NULL, &r);
    if (rc < 0)
        return rc;
    list = store_reply_at(r, 1);
    if (store_reply_len(r) != 2 ||
        store_reply_type(store_reply_at(r, 0)) != STORE_INT ||
        store_reply_type(list) != STORE_ARRAY) {
        store_reply_free(r);
        return KF_EBACKEND;
    }
    *used = store_reply_int(store_reply_at(r, 0));
    for (i = 0; i < store_reply_len(list) && rc == 0; i++)
        rc = delete_one(m, store_reply_at(list, i), c);
    *picked = (long)i;
    store_reply_free(r);
    return rc;
}

/* Deletes what is due (cut, quota with need), at most limit files.
 * *room = 1 when used + need fits the quota afterwards. */
static int sweep(struct media *m, int64_t cut, int64_t need, long limit,
                 int *room, struct media_counts *c)
{
    int64_t quota = (int64_t)m->cfg->media.max_disk_mb * MIB, used = 0;
    long picked = 0, done = 0;
    int rc;

    do {
        long n = limit - done < PICK_MAX ? limit - done : PICK_MAX;

        rc = n > 0 ? round_trip(m, cut, need, n, &picked, &used, c) : 0;
        done += picked;
    } while (rc == 0 && picked > 0 && done < limit);
    *room = 0;
    if (rc == 0 && picked == 0)         /* nothing was left to delete */
        *room = quota == 0 || used + need <= quota;
    return rc;
}

int media_keep_room(struct media *m, int64_t need, long limit,
                    struct media_counts *c)
{
    int64_t quota = (int64_t)m->cfg->media.max_disk_mb * MIB;
    int room = 0, rc;

    if (quota == 0)
        return 0;
    if (need > quota)
        return KF_ETOOBIG;
    rc = sweep(m, 0, need, limit, &room, c);
    return rc < 0 ? rc : room ? 0 : KF_ELIMIT;
}

int media_keep_tidy(struct media *m, int64_t now_ms, long limit,
                    struct media_counts *c)
{
    const char *args[] = { "index", NULL };
    char n[24];
    int64_t cut = 0;
    int room, rc;

    snprintf(n, sizeof(n), "%ld", limit);
    args[1] = n;
    rc = store_run(m->store, &m->keep, 0, NULL, 2, args, NULL, NULL);
    if (rc < 0)
        return rc;
    if (m->cfg->media.retention_days > 0)
        cut = now_ms - (int64_t)m->cfg->media.retention_days * DAY_MS;
    return sweep(m, cut, 0, limit, &room, c);
}

int media_keep_usage(struct media *m, struct media_usage *u)
{
    const char *args[] = { "usage" };
    struct store_reply *r = NULL;
    int rc = store_run(m->store, &m->keep, 0, NULL, 1, args, NULL, &r);
    size_t i;

    if (rc < 0)
        return rc;
    if (store_reply_len(r) != 3)
        rc = KF_EBACKEND;
    for (i = 0; rc == 0 && i < 3; i++)
        if (store_reply_type(store_reply_at(r, i)) != STORE_INT)
            rc = KF_EBACKEND;
    if (rc == 0) {
        u->bytes = store_reply_int(store_reply_at(r, 0));
        u->files = store_reply_int(store_reply_at(r, 1));
        u->jobs = store_reply_int(store_reply_at(r, 2));
    }
    store_reply_free(r);
    return rc;
}
