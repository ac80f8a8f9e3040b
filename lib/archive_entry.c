/* archive_entry: one stream entry as the archiver writes it. */
#include "archive_entry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "banned.h"

#define NAME_MAX_LEN 64             /* longest field name put in JSON */
#define TS_MAX 253402300799999LL    /* 9999-12-31T23:59:59.999Z */
#define K(k) ARCHIVE_ENTRY_##k    /* a kind */
#define C(c) ARCHIVE_ENTRY_C_##c  /* a column */
#define NAMED_KINDS K(OTHER)

static const char *const kind_names[] = {
    "msg_in", "msg_out", "delivery", "assign", "reassign", "transfer",
    "queue", "close", "presence", "media_stored", "media_failed",
    "whisper", "audit", "other",
};

/* Stream field -> column (msgid, id, recv_ms, ts_ms are read apart). */
static const struct {
    const char *name;
    enum archive_entry_col col;
} field_cols[] = {
    { "type", C(TYPE) }, { "openid", C(OPENID) },
    { "msgtype", C(MSGTYPE) }, { "session", C(SESSION) },
    { "agent", C(AGENT) }, { "group", C(GRP) },
    { "reason", C(REASON) }, { "why", C(WHY) },
    { "payload", C(PAYLOAD) }, { "status", C(STATUS) },
    { "prev", C(PREV) }, { "errcode", C(ERRCODE) },
    { "errmsg", C(ERRMSG) }, { "by", C(SENDER) },
    { "media_id", C(MEDIA_ID) }, { "path", C(PATH) },
    { "content_type", C(CTYPE) }, { "size", C(SIZE) },
    { "msg", C(MSG) }, { "note", C(NOTE) }, { "marker", C(MARKER) },
};

/* --- checks -------------------------------------------------------------- */

int archive_entry_text_ok(struct kf_str s)
{
    const unsigned char *p = (const unsigned char *)s.p;
    size_t i = 0;

    while (i < s.len) {
        uint32_t cp;
        size_t len = kf_utf8_next(p + i, s.len - i, &cp);

        if (len == 0 || cp == 0)
            return 0;
        i += len;
    }
    return 1;
}

/* A decimal in 0..max that fills s. */
static int parse_num(struct kf_str s, int64_t max, int64_t *out)
{
    uint64_t v;

    if (!s.p || kf_parse_u64(s, &v) < 0 || v > (uint64_t)max)
        return 0;
    *out = (int64_t)v;
    return 1;
}

static int parse_id(struct archive_entry *e)
{
    const char *dash = memchr(e->id.p, '-', e->id.len);

    if (!dash)
        return 0;
    return parse_num((struct kf_str){ e->id.p, (size_t)(dash - e->id.p) },
                     TS_MAX, &e->ms) &&
           parse_num((struct kf_str){ dash + 1,
                                      e->id.len - (size_t)(dash + 1 -
                                                           e->id.p) },
                     INT64_MAX, &e->seq);
}

static int is_digits(struct kf_str s, size_t max)
{
    size_t i;

    if (!s.p || s.len == 0 || s.len > max)
        return 0;
    for (i = 0; i < s.len; i++)
        if (s.p[i] < '0' || s.p[i] > '9')
            return 0;
    return 1;
}

static int nonempty(struct kf_str s)
{
    return s.p && s.len > 0;
}

/* --- fields -------------------------------------------------------------- */

static void take_field(struct archive_entry *e, struct kf_str name,
                       struct kf_str v)
{
    size_t i;

    for (i = 0; i < sizeof(field_cols) / sizeof(field_cols[0]); i++)
        if (kf_str_eq_c(name, field_cols[i].name)) {
            if (!e->col[field_cols[i].col].p)   /* the first one wins */
                e->col[field_cols[i].col] = v;
            return;
        }
    if (kf_str_eq_c(name, "msgid") && !e->msgid.p)
        e->msgid = v;
    else if (kf_str_eq_c(name, "id") && !e->xid.p)
        e->xid = v;
    else if (kf_str_eq_c(name, "recv_ms") && !e->recv_ms.p)
        e->recv_ms = v;
    else if (kf_str_eq_c(name, "ts_ms") && !e->ts_ms.p)
        e->ts_ms = v;
}

static enum archive_entry_kind kind_of(struct kf_str type)
{
    int k;

    for (k = 0; k < NAMED_KINDS; k++)
        if (kf_str_eq_c(type, kind_names[k]))
            return (enum archive_entry_kind)k;
    return K(OTHER);
}

/* An audit entry (lib/lua/audit.lua) has an action, an actor and an
 * account: audit_log requires them. */
static int audit_ok(const struct archive_entry *e)
{
    int need = 0;
    size_t i;

    for (i = 0; i < e->nf; i += 2)
        if ((kf_str_eq_c(e->f[i], "action") ||
             kf_str_eq_c(e->f[i], "actor") || kf_str_eq_c(e->f[i], "app")) &&
            nonempty(e->f[i + 1]))
            need++;
    return need == 3;
}

/* An entry missing what its table needs goes to other_events instead. */
static enum archive_entry_kind checked_kind(const struct archive_entry *e,
                                            enum archive_entry_kind k)
{
    switch (k) {
    case K(DELIVERY):
        return nonempty(e->col[C(MSGID)]) ? k : K(OTHER);
    case K(ASSIGN): case K(REASSIGN): case K(TRANSFER):
    case K(QUEUE): case K(CLOSE):
        return is_digits(e->col[C(SESSION)], 18) ? k : K(OTHER);
    case K(PRESENCE):
        return nonempty(e->col[C(AGENT)]) &&
                       nonempty(e->col[C(STATUS)])
                   ? k : K(OTHER);
    case K(MEDIA_STORED): case K(MEDIA_FAILED):
        return nonempty(e->col[C(MEDIA_ID)]) ? k : K(OTHER);
    case K(WHISPER):
        return nonempty(e->col[C(OPENID)]) ? k : K(OTHER);
    case K(AUDIT):
        return audit_ok(e) ? k : K(OTHER);
    default:
        return k;
    }
}

/* Every field as a JSON object of strings (the first of a name wins). */
static char *fields_json(const struct kf_str *f, size_t nf)
{
    json_t *o = json_object();
    char *s = NULL;
    size_t i;
    int ok = o != NULL;

    for (i = 0; ok && i + 1 < nf; i += 2) {
        json_t *js;

        if (f[i].len > NAME_MAX_LEN)
            continue;
        if (json_object_getn(o, f[i].p, f[i].len))
            continue;
        js = json_stringn(f[i + 1].p, f[i + 1].len);
        ok = js && json_object_setn_new(o, f[i].p, f[i].len, js) == 0;
    }
    if (ok)
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

static void set_num(struct archive_entry *e, int i, enum archive_entry_col c,
                    int64_t v)
{
    snprintf(e->num[i], sizeof(e->num[i]), "%lld", (long long)v);
    e->col[c] = kf_str_c(e->num[i]);
}

static void bad(struct archive_entry *e, const char *why)
{
    e->kind = K(BAD);
    e->why_bad = why;
}

/* The columns, once the fields are known to be text. */
static void fill(struct archive_entry *e)
{
    size_t i;

    for (i = 0; i < e->nf; i += 2)
        take_field(e, e->f[i], e->f[i + 1]);
    e->kind = kind_of(e->col[C(TYPE)]);
    e->col[C(MSGID)] = e->kind == K(MSG_IN) ? e->msgid : e->xid;
    e->kind = checked_kind(e, e->kind);
    if (!parse_num(e->kind == K(MSG_IN) ? e->recv_ms : e->ts_ms,
                   TS_MAX, &e->ts))
        e->ts = e->ms;
    if (e->kind == K(OTHER) || e->kind == K(AUDIT)) {
        e->json = fields_json(e->f, e->nf);
        if (!e->json) {
            bad(e, "fields cannot be written as JSON");
            return;
        }
        e->col[C(FIELDS)] = kf_str_c(e->json);
    }
    e->col[C(EVENT_ID)] = e->id;
    e->col[C(KIND)] = kf_str_c(kind_names[e->kind]);
    set_num(e, 0, C(EMS), e->ms);
    set_num(e, 1, C(ESEQ), e->seq);
    set_num(e, 2, C(TS), e->ts);
}

void archive_entry_parse(struct archive_entry *e, struct kf_str id,
                         const struct kf_str *f, size_t nf, int gone)
{
    size_t i;

    memset(e, 0, sizeof(*e));
    e->id = id;
    if (!parse_id(e)) {
        bad(e, "malformed entry id");
        return;
    }
    if (gone) {
        e->kind = K(GONE);
        return;
    }
    if (!f || nf % 2) {
        bad(e, "malformed entry");
        return;
    }
    e->f = f;
    e->nf = nf;
    for (i = 0; i < nf; i++)
        if (!f[i].p || !archive_entry_text_ok(f[i])) {
            bad(e, "a field is not UTF-8 text without NUL");
            return;
        }
    fill(e);
}

void archive_entry_release(struct archive_entry *e)
{
    free(e->json);
    e->json = NULL;
}

/* --- COPY text ----------------------------------------------------------- */

static int copy_value(struct kf_buf *b, struct kf_str v)
{
    size_t i, run = 0;
    int rc = 0;

    if (!v.p)
        return kf_buf_append(b, "\\N", 2);
    for (i = 0; i < v.len && rc == 0; i++) {
        const char *esc = NULL;

        switch (v.p[i]) {
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: continue;
        }
        rc = kf_buf_append(b, v.p + run, i - run);
        if (rc == 0)
            rc = kf_buf_append(b, esc, 2);
        run = i + 1;
    }
    return rc < 0 ? rc : kf_buf_append(b, v.p + run, v.len - run);
}

static int copy_row(struct kf_buf *b, const struct archive_entry *e)
{
    int c, rc = 0;

    for (c = 0; c < ARCHIVE_ENTRY_NCOLS && rc == 0; c++) {
        rc = copy_value(b, e->col[c]);
        if (rc == 0)
            rc = kf_buf_append(b, c + 1 < ARCHIVE_ENTRY_NCOLS ? "\t" : "\n", 1);
    }
    return rc;
}

int archive_entry_copy(struct archive_entry *const *v, size_t n,
                       struct kf_buf *out, unsigned *kinds)
{
    size_t i;
    int rc = 0;

    kf_buf_reset(out);
    *kinds = 0;
    for (i = 0; i < n && rc == 0; i++) {
        *kinds |= ARCHIVE_ENTRY_BIT(v[i]->kind);
        rc = copy_row(out, v[i]);
    }
    return rc == KF_ETOOBIG ? KF_EPARSE : rc;
}

int archive_entry_raw(const struct archive_entry *e, struct kf_buf *out)
{
    size_t i;
    int rc = 0;

    for (i = 0; e->f && i < e->nf && rc == 0; i++) {
        if (!e->f[i].p)
            continue;
        rc = kf_buf_printf(out, "%zu:", e->f[i].len);
        if (rc == 0)
            rc = kf_buf_append(out, e->f[i].p, e->f[i].len);
        if (rc == 0)
            rc = kf_buf_append(out, ",", 1);
    }
    return rc;
}
