/* handover: a transfer's note and where a session came from. */
#include "handover.h"

#include <stdlib.h>
#include <string.h>

#include "banned.h"

int handover_check_note(const char *note, const struct refusal **why)
{
    const struct refusal *row;
    int rc = kf_text_check(note, HANDOVER_NOTE_CHARS, 0);

    if (rc == 0)
        return 0;
    row = refusal_by_rc(REFUSAL_TRANSFER, rc);
    if (!row)                   /* kf_text_check has no other code */
        row = refusal_get(REFUSAL_NOTE_INVALID);
    if (why)
        *why = row;
    return row->rc;
}

/* A field's value as a number: a number as is, a string of digits read. */
static json_int_t number_of(json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_string(v))
        return (json_int_t)strtoll(json_string_value(v), NULL, 10);
    return 0;
}

static const char *text_of(json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : "";
}

int handover_view(json_t *s)
{
    json_t *by = json_object_get(s, "handed_by"),
           *waited = json_object_get(s, "waited_ms");
    static const char *const fields[] = {
        "handing", "handed_by", "handed_nick", "handed_note", "handed_ms",
        "waited_ms",
    };
    json_t *h = NULL, *q = NULL;
    size_t i;
    int rc = 0;

    if (by) {
        h = json_pack("{s:s,s:s,s:s,s:I}", "from", text_of(by), "from_nick",
                      text_of(json_object_get(s, "handed_nick")), "note",
                      text_of(json_object_get(s, "handed_note")), "at_ms",
                      number_of(json_object_get(s, "handed_ms")));
        if (!h || json_object_set_new(s, "handed", h) < 0)
            rc = KF_ENOMEM;
    }
    if (rc == 0 && waited) {
        q = json_pack("{s:I}", "waited_s", number_of(waited) / 1000);
        if (!q || json_object_set_new(s, "from_queue", q) < 0)
            rc = KF_ENOMEM;
    }
    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        json_object_del(s, fields[i]);
    return rc;
}
