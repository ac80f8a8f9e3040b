/* refusal: the table of refusals and its lookups. */
#include "refusal.h"

#include <stddef.h>

#include "banned.h"

static const struct refusal table[] = {
#define X(id, scopes, sub, rc, status, code, message, errcode) \
    { REFUSAL_##id, scopes, sub, rc, status, code, message, errcode },
    REFUSALS(X)
#undef X
};

const struct refusal *refusal_get(enum refusal_id id)
{
    return (size_t)id < REFUSAL_COUNT ? &table[id] : NULL;
}

const struct refusal *refusal_find(unsigned scope, struct kf_str sub,
                                   enum refusal_id otherwise)
{
    size_t i;

    for (i = 0; sub.len && i < REFUSAL_COUNT; i++)
        if ((table[i].scopes & scope) && kf_str_eq_c(sub, table[i].sub))
            return &table[i];
    return &table[otherwise < REFUSAL_COUNT ? otherwise : REFUSAL_REFUSED];
}

const struct refusal *refusal_by_rc(unsigned scope, int rc)
{
    size_t i;

    for (i = 0; rc < 0 && i < REFUSAL_COUNT; i++)
        if ((table[i].scopes & scope) && table[i].rc == rc)
            return &table[i];
    return NULL;
}

const struct refusal *refusal_by_errcode(unsigned scope, long errcode)
{
    size_t i;

    for (i = 0; errcode && i < REFUSAL_COUNT; i++)
        if ((table[i].scopes & scope) && table[i].wx_errcode == errcode)
            return &table[i];
    return NULL;
}
