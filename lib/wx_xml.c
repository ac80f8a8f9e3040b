/* wx_xml: inbound callback XML -> struct wx_msg, via expat. The rules are
 * listed in wx_xml.h. Parsing collects first-level children as offsets
 * into one growing arena (kf_buf); only when expat is done are the offsets
 * turned into views, so the arena may move while it grows. */
#include "wx_xml.h"

#include <expat.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

/* Names + NULs + values + NULs never exceed the body (entities and CDATA
 * markup only shrink) plus two NULs per element; this is slack on top. */
#define ARENA_MAX (2 * WX_XML_MAX + 2 * WX_XML_MAX_ELEMENTS)

static const char empty[] = "";

static const char *const msgtype_names[] = {
    [WX_MSG_UNKNOWN] = "unknown",   [WX_MSG_TEXT] = "text",
    [WX_MSG_IMAGE] = "image",       [WX_MSG_VOICE] = "voice",
    [WX_MSG_VIDEO] = "video",       [WX_MSG_SHORTVIDEO] = "shortvideo",
    [WX_MSG_LOCATION] = "location", [WX_MSG_LINK] = "link",
    [WX_MSG_EVENT] = "event",
};

static const char *const event_names[] = {
    [WX_EV_NONE] = "none",
    [WX_EV_UNKNOWN] = "unknown",
    [WX_EV_SUBSCRIBE] = "subscribe",
    [WX_EV_UNSUBSCRIBE] = "unsubscribe",
    [WX_EV_SCAN] = "SCAN",
    [WX_EV_LOCATION] = "LOCATION",
    [WX_EV_CLICK] = "CLICK",
    [WX_EV_VIEW] = "VIEW",
    [WX_EV_KF_CREATE_SESSION] = "kf_create_session",
    [WX_EV_KF_CLOSE_SESSION] = "kf_close_session",
    [WX_EV_KF_SWITCH_SESSION] = "kf_switch_session",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Element name -> typed member of struct wx_msg. */
static const struct member {
    const char *name;
    size_t off;
} members[] = {
#define M(name, field) { name, offsetof(struct wx_msg, field) }
    M("ToUserName", to_user),        M("FromUserName", from_user),
    M("MsgType", msgtype),           M("Event", event_name),
    M("Content", content),           M("PicUrl", pic_url),
    M("MediaId", media_id),          M("Format", format),
    M("Recognition", recognition),   M("ThumbMediaId", thumb_media_id),
    M("Location_X", location_x),     M("Location_Y", location_y),
    M("Scale", scale),               M("Label", label),
    M("Title", title),               M("Description", description),
    M("Url", url),                   M("EventKey", event_key),
    M("Ticket", ticket),             M("Latitude", latitude),
    M("Longitude", longitude),       M("Precision", precision),
    M("KfAccount", kf_account),      M("FromKfAccount", from_kf_account),
    M("ToKfAccount", to_kf_account), M("MenuId", menu_id),
    M("bizmsgmenuid", bizmsgmenuid), M("Encrypt", encrypt),
#undef M
};

/* A first-level child while parsing: offsets into the arena. */
struct ent {
    size_t name_off, name_len, val_off, val_len;
};

struct pstate {
    XML_Parser xp;
    struct kf_buf arena;
    struct ent *ents;
    size_t nents, cap;
    unsigned depth, nelems;
    int rc;              /* first failure seen by a handler */
    const char *why;     /* static text for rc */
};

const char *wx_xml_msgtype_name(enum wx_msgtype t)
{
    if ((unsigned)t >= NELEM(msgtype_names))
        return "unknown";
    return msgtype_names[t];
}

const char *wx_xml_event_name(enum wx_event e)
{
    if ((unsigned)e >= NELEM(event_names))
        return "unknown";
    return event_names[e];
}

static void set_err(struct wx_xml_err *err, unsigned long line,
                    unsigned long col, const char *text)
{
    if (!err)
        return;
    err->line = line > INT_MAX ? INT_MAX : (int)line;
    err->column = col > INT_MAX ? INT_MAX : (int)col;
    snprintf(err->text, sizeof(err->text), "%s", text ? text : "");
}

/* ---- expat handlers ---------------------------------------------------- */

static void fail(struct pstate *ps, int rc, const char *why)
{
    if (ps->rc)
        return;
    ps->rc = rc;
    ps->why = why;
    XML_StopParser(ps->xp, XML_FALSE);
}

static void open_field(struct pstate *ps, const char *name)
{
    struct ent *e;
    size_t len = strlen(name);
    int rc;

    if (ps->nents == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 16;
        struct ent *v = realloc(ps->ents, cap * sizeof(*v));

        if (!v) {
            fail(ps, KF_ENOMEM, "out of memory");
            return;
        }
        ps->ents = v;
        ps->cap = cap;
    }
    e = &ps->ents[ps->nents];
    e->name_off = ps->arena.len;
    e->name_len = len;
    rc = kf_buf_append(&ps->arena, name, len + 1);   /* with its NUL */
    if (rc < 0) {
        fail(ps, rc, "field storage exhausted");
        return;
    }
    e->val_off = ps->arena.len;
    e->val_len = 0;
    ps->nents++;
}

static void close_field(struct pstate *ps)
{
    struct ent *e = &ps->ents[ps->nents - 1];
    int rc;

    e->val_len = ps->arena.len - e->val_off;
    rc = kf_buf_append(&ps->arena, "", 1);
    if (rc < 0)
        fail(ps, rc, "field storage exhausted");
}

static void XMLCALL on_start(void *ud, const XML_Char *name,
                             const XML_Char **atts)
{
    struct pstate *ps = ud;

    (void)atts;
    if (ps->rc)
        return;
    ps->depth++;
    if (++ps->nelems > WX_XML_MAX_ELEMENTS)
        fail(ps, KF_ETOOBIG, "too many elements");
    else if (ps->depth > WX_XML_MAX_DEPTH)
        fail(ps, KF_ETOOBIG, "elements nested too deep");
    else if (ps->depth == 1 && strcmp(name, "xml") != 0)
        fail(ps, KF_EPARSE, "root element is not <xml>");
    else if (ps->depth == 2)
        open_field(ps, name);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    struct pstate *ps = ud;

    (void)name;
    if (ps->rc)
        return;
    if (ps->depth == 2)
        close_field(ps);
    ps->depth--;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    struct pstate *ps = ud;
    int rc;

    if (ps->rc || ps->depth < 2 || len <= 0)
        return;
    rc = kf_buf_append(&ps->arena, s, (size_t)len);
    if (rc < 0)
        fail(ps, rc, "field storage exhausted");
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name,
                               const XML_Char *sysid, const XML_Char *pubid,
                               int has_internal_subset)
{
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal_subset;
    fail(ud, KF_EDTD, "DOCTYPE refused");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name,
                                   int is_param, const XML_Char *value,
                                   int value_len, const XML_Char *base,
                                   const XML_Char *sysid,
                                   const XML_Char *pubid,
                                   const XML_Char *notation)
{
    (void)name;
    (void)is_param;
    (void)value;
    (void)value_len;
    (void)base;
    (void)sysid;
    (void)pubid;
    (void)notation;
    fail(ud, KF_EDTD, "entity declaration refused");
}

static int XMLCALL on_ext_ref(XML_Parser xp, const XML_Char *context,
                              const XML_Char *base, const XML_Char *sysid,
                              const XML_Char *pubid)
{
    struct pstate *ps = XML_GetUserData(xp);

    (void)context;
    (void)base;
    (void)sysid;
    (void)pubid;
    if (!ps->rc) {
        ps->rc = KF_EDTD;
        ps->why = "external entity refused";
    }
    return XML_STATUS_ERROR;
}

/* ---- driving expat ----------------------------------------------------- */

static int run_expat(struct kf_str body, struct pstate *ps,
                     struct wx_xml_err *err)
{
    enum XML_Status st;

    /* Forcing UTF-8 overrides any encoding="..." in the declaration. */
    ps->xp = XML_ParserCreate("UTF-8");
    if (!ps->xp)
        return KF_ENOMEM;
    XML_SetUserData(ps->xp, ps);
    XML_SetElementHandler(ps->xp, on_start, on_end);
    XML_SetCharacterDataHandler(ps->xp, on_text);
    XML_SetStartDoctypeDeclHandler(ps->xp, on_doctype);
    XML_SetEntityDeclHandler(ps->xp, on_entity_decl);
    XML_SetExternalEntityRefHandler(ps->xp, on_ext_ref);
    XML_SetParamEntityParsing(ps->xp, XML_PARAM_ENTITY_PARSING_NEVER);

    st = XML_Parse(ps->xp, body.p, (int)body.len, XML_TRUE);
    if (st != XML_STATUS_OK && !ps->rc) {
        ps->rc = KF_EPARSE;
        ps->why = XML_ErrorString(XML_GetErrorCode(ps->xp));
    }
    if (ps->rc)
        set_err(err, XML_GetCurrentLineNumber(ps->xp),
                XML_GetCurrentColumnNumber(ps->xp) + 1, ps->why);
    XML_ParserFree(ps->xp);
    ps->xp = NULL;
    return ps->rc;
}

/* ---- building the message ---------------------------------------------- */

static const struct wx_field *find_field(const struct wx_msg *m,
                                         const char *name)
{
    size_t i;

    for (i = 0; i < m->nfields; i++)
        if (kf_str_eq_c(m->fields[i].name, name))
            return &m->fields[i];
    return NULL;
}

/* ASCII case-insensitive s == c. */
static int eq_ci(struct kf_str s, const char *c)
{
    size_t i;

    for (i = 0; i < s.len; i++) {
        unsigned char a = (unsigned char)s.p[i], b = (unsigned char)c[i];

        if (b == '\0')
            return 0;
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b - 'A' + 'a');
        if (a != b)
            return 0;
    }
    return c[s.len] == '\0';
}

static int adopt(struct pstate *ps, struct wx_msg *m)
{
    size_t i;

    m->fields = calloc(ps->nents ? ps->nents : 1, sizeof(*m->fields));
    if (!m->fields)
        return KF_ENOMEM;
    m->arena = kf_buf_detach(&ps->arena, NULL);
    m->nfields = ps->nents;
    for (i = 0; i < ps->nents; i++) {
        const struct ent *e = &ps->ents[i];

        m->fields[i].name = (struct kf_str){ m->arena + e->name_off,
                                             e->name_len };
        m->fields[i].value = (struct kf_str){ m->arena + e->val_off,
                                              e->val_len };
    }
    for (i = 0; i < NELEM(members); i++) {
        const struct wx_field *f = find_field(m, members[i].name);
        struct kf_str *dst = (struct kf_str *)((char *)m + members[i].off);

        *dst = f ? f->value : (struct kf_str){ empty, 0 };
    }
    return 0;
}

static int parse_numbers(struct wx_msg *m, struct wx_xml_err *err)
{
    const struct wx_field *f = find_field(m, "CreateTime");
    size_t i;

    if (f && kf_parse_u64(f->value, &m->create_time) < 0) {
        set_err(err, 0, 0, "CreateTime is not a decimal uint64");
        return KF_EPARSE;
    }
    for (i = 0; i < m->nfields; i++) {
        struct kf_str n = m->fields[i].name;

        if (!kf_str_eq_c(n, "MsgId") && !kf_str_eq_c(n, "MsgID"))
            continue;
        if (kf_parse_u64(m->fields[i].value, &m->msgid) < 0) {
            set_err(err, 0, 0, "MsgId is not a decimal uint64");
            return KF_EPARSE;
        }
        m->has_msgid = 1;
        break;
    }
    return 0;
}

static void classify(struct wx_msg *m)
{
    size_t i;

    m->type = WX_MSG_UNKNOWN;
    for (i = 1; i < NELEM(msgtype_names); i++)
        if (eq_ci(m->msgtype, msgtype_names[i]))
            m->type = (enum wx_msgtype)i;
    m->event = WX_EV_NONE;
    if (m->type != WX_MSG_EVENT)
        return;
    m->event = WX_EV_UNKNOWN;
    for (i = WX_EV_SUBSCRIBE; i < NELEM(event_names); i++)
        if (eq_ci(m->event_name, event_names[i]))
            m->event = (enum wx_event)i;
}

static int check_required(const struct wx_msg *m, struct wx_xml_err *err)
{
    const char *missing = NULL;

    if (m->encrypt.len)
        return 0;               /* envelope: the plaintext is checked later */
    if (!m->msgtype.len)
        missing = "no MsgType and no Encrypt";
    else if (!m->to_user.len)
        missing = "ToUserName missing or empty";
    else if (!m->from_user.len)
        missing = "FromUserName missing or empty";
    else if (!find_field(m, "CreateTime"))
        missing = "CreateTime missing";
    if (missing) {
        set_err(err, 0, 0, missing);
        return KF_EPARSE;
    }
    if (m->from_user.len > WX_XML_MAX_OPENID) {
        set_err(err, 0, 0, "FromUserName longer than WX_XML_MAX_OPENID");
        return KF_EINVAL;
    }
    return 0;
}

static int check_body(struct kf_str body, struct wx_xml_err *err)
{
    if (body.len > WX_XML_MAX) {
        set_err(err, 0, 0, "body larger than WX_XML_MAX");
        return KF_ETOOBIG;
    }
    if (body.len == 0 || !body.p) {
        set_err(err, 0, 0, "empty body");
        return KF_EPARSE;
    }
    /* expat rejects a NUL in UTF-8 too, but it honours a UTF-16 BOM despite
     * the forced encoding; UTF-16 markup always holds NULs, so this check
     * is also what keeps the body UTF-8. */
    if (memchr(body.p, '\0', body.len)) {
        set_err(err, 0, 0, "NUL byte in body");
        return KF_EPARSE;
    }
    return 0;
}

int wx_xml_parse(struct kf_str body, struct wx_msg **out,
                 struct wx_xml_err *err)
{
    struct pstate ps = { 0 };
    struct wx_msg *m = NULL;
    int rc;

    set_err(err, 0, 0, "");
    if (!out)
        return KF_EINVAL;
    *out = NULL;
    kf_buf_init(&ps.arena, ARENA_MAX);
    rc = check_body(body, err);
    if (rc < 0)
        goto out;
    rc = run_expat(body, &ps, err);
    if (rc < 0)
        goto out;
    m = calloc(1, sizeof(*m));
    rc = m ? adopt(&ps, m) : KF_ENOMEM;
    if (rc < 0)
        goto out;
    rc = parse_numbers(m, err);
    if (rc < 0)
        goto out;
    classify(m);
    rc = check_required(m, err);
    if (rc < 0)
        goto out;
    *out = m;
    m = NULL;
out:
    if (rc == KF_ENOMEM)
        set_err(err, 0, 0, "out of memory");
    wx_xml_msg_free(m);
    kf_buf_release(&ps.arena);
    free(ps.ents);
    return rc;
}

void wx_xml_msg_free(struct wx_msg *m)
{
    if (!m)
        return;
    free(m->fields);
    free(m->arena);
    free(m);
}

int wx_xml_field(const struct wx_msg *m, const char *name,
                 struct kf_str *out)
{
    const struct wx_field *f = m && name ? find_field(m, name) : NULL;

    if (out)
        *out = f ? f->value : (struct kf_str){ empty, 0 };
    return f ? 0 : KF_ENOTFOUND;
}

int wx_xml_dedupe_key(const struct wx_msg *m, struct kf_buf *out)
{
    size_t start;
    int rc;

    if (!m || !out || !m->from_user.len)
        return KF_EINVAL;
    start = out->len;
    if (m->type != WX_MSG_EVENT && m->has_msgid) {
        rc = kf_buf_append_c(out, "msgid:");
        if (rc == 0)
            rc = kf_buf_append_str(out, m->from_user);
        if (rc == 0)
            rc = kf_buf_printf(out, ":%" PRIu64, m->msgid);
    } else {
        rc = kf_buf_append_c(out, "event:");
        if (rc == 0)
            rc = kf_buf_append_str(out, m->from_user);
        if (rc == 0)
            rc = kf_buf_printf(out, ":%" PRIu64 ":", m->create_time);
        if (rc == 0)
            rc = kf_buf_append_str(out, m->event_name);
    }
    if (rc < 0 && out->p) {
        out->len = start;
        out->p[start] = '\0';
    }
    return rc;
}
