/* stream_group: what every consumer group on P events (the archiver's,
 * media's, profile's, kfsession's) does alike to stay bounded in Redis — forgetting
 * the consumers of processes gone for good (lib/lua/consumers.lua). Each
 * `wxkf jobs` start reads under a new consumer name ("host:pid",
 * "jobs-pid"); without this, XINFO CONSUMERS grows by one per restart. */
#ifndef STREAM_GROUP_H
#define STREAM_GROUP_H

#include "kf.h"
#include "store.h"

#define STREAM_GROUP_FORGET_MS 86400000L    /* a day idle: gone */

/* Removes the consumers of group (on P events) other than me idle over
 * idle_ms with nothing pending; *forgot (may be NULL) gets how many. A
 * consumer with pending entries is kept: the caller claims them first.
 * No group yet: 0 forgotten. KF_EBACKEND. */
KF_WUR int stream_group_forget(struct store *s, const char *group,
                               const char *me, long idle_ms, long *forgot);

#endif
