/* stream_group: housekeeping shared by the consumer groups on P events. */
#include "stream_group.h"

#include <stdio.h>

#include "lua.h"

#include "banned.h"

int stream_group_forget(struct store *s, const char *group, const char *me,
                        long idle_ms, long *forgot)
{
    struct store_script sc;     /* its SHA-1 (a microsecond) per call */
    char idle[24];
    const char *args[] = { "forget", group, me, idle };
    struct store_reply *r = NULL;
    int64_t n = 0;
    int rc;

    store_script_init(&sc, lua_consumers);
    snprintf(idle, sizeof(idle), "%ld", idle_ms);
    rc = store_run(s, &sc, 0, NULL, 4, args, NULL, &r);
    if (rc == 0 && store_reply_type(r) != STORE_INT)
        rc = KF_EBACKEND;
    if (rc == 0)
        n = store_reply_int(r);
    if (rc == 0 && forgot)
        *forgot = (long)n;
    store_reply_free(r);
    return rc;
}
