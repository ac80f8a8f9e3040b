/* fuzz_xml: lib/wx_xml on any body — a WeChat push (plaintext, compatible
 * or safe-mode envelope) or anything else. Checks the contract in
 * wx_xml.h: a document with a DOCTYPE is never accepted, failures leave
 * *out NULL with err.text set, and an accepted message has the required
 * fields, NUL-terminated NUL-free UTF-8 values that wx_xml_field() finds,
 * a consistent type/event and a de-duplication key. */
#include <string.h>

#include "fuzz.h"
#include "kf.h"
#include "wx_xml.h"

static const char *const names[] = {
    "ToUserName", "FromUserName", "CreateTime", "MsgType", "Event",
    "Content", "MsgId", "MsgID", "EventKey", "KfAccount", "Encrypt",
    "Ticket", "NoSuchField",
};

static size_t find(const char *p, size_t n, size_t from, const char *pat)
{
    size_t k = strlen(pat), i;

    for (i = from; i + k <= n; i++)
        if (memcmp(p + i, pat, k) == 0)
            return i;
    return n;
}

/* 1 if the prolog (BOM, XML declaration, PIs, comments, spaces) is
 * followed by <!DOCTYPE: such a document must never parse. */
static int prolog_has_doctype(const char *p, size_t n)
{
    size_t i = 0, e;

    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    for (;;) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' ||
                         p[i] == '\n'))
            i++;
        if (n - i >= 2 && memcmp(p + i, "<?", 2) == 0) {
            e = find(p, n, i + 2, "?>");
            if (e == n)
                return 0;
            i = e + 2;
        } else if (n - i >= 4 && memcmp(p + i, "<!--", 4) == 0) {
            e = find(p, n, i + 4, "-->");
            if (e == n)
                return 0;
            i = e + 3;
        } else {
            return n - i >= 9 && memcmp(p + i, "<!DOCTYPE", 9) == 0;
        }
    }
}

static int utf8_ok(struct kf_str s)
{
    const unsigned char *p = (const unsigned char *)s.p;
    size_t i = 0, k;
    uint32_t cp;

    while (i < s.len) {
        k = kf_utf8_next(p + i, s.len - i, &cp);
        if (k == 0 || cp == 0)
            return 0;
        i += k;
    }
    return 1;
}

static void check_view(struct kf_str s)
{
    FZ_CHECK(s.p != NULL);
    FZ_CHECK(s.p[s.len] == '\0');
    FZ_CHECK(utf8_ok(s));
}

static void check_msg(const struct wx_msg *m)
{
    struct kf_buf key;
    struct kf_str v;
    size_t i, j;
    int rc;

    FZ_CHECK(m->nfields < WX_XML_MAX_ELEMENTS);
    for (i = 0; i < m->nfields; i++) {
        check_view(m->fields[i].name);
        check_view(m->fields[i].value);
        FZ_CHECK(m->fields[i].name.len > 0);
    }
    /* wx_xml_field() returns the first child of that name */
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        rc = wx_xml_field(m, names[i], &v);
        for (j = 0; j < m->nfields; j++)
            if (kf_str_eq_c(m->fields[j].name, names[i]))
                break;
        FZ_CHECK((rc == 0) == (j < m->nfields));
        FZ_CHECK(v.p != NULL);
        if (rc == 0)
            FZ_CHECK(v.p == m->fields[j].value.p &&
                     v.len == m->fields[j].value.len);
        else
            FZ_CHECK(v.len == 0 && rc == KF_ENOTFOUND);
    }
    check_view(m->to_user);
    check_view(m->from_user);
    check_view(m->msgtype);
    check_view(m->event_name);
    check_view(m->content);
    check_view(m->encrypt);
    if (m->encrypt.len == 0) {
        FZ_CHECK(m->msgtype.len && m->to_user.len && m->from_user.len);
        FZ_CHECK(m->from_user.len <= WX_XML_MAX_OPENID);
        FZ_CHECK(wx_xml_field(m, "CreateTime", &v) == 0);
    }
    FZ_CHECK((m->type == WX_MSG_EVENT) == (m->event != WX_EV_NONE));
    FZ_CHECK(wx_xml_msgtype_name(m->type) && wx_xml_event_name(m->event));

    /* Event is bounded only by the body: room for all of it */
    kf_buf_init(&key, WX_XML_MAX + 128);
    rc = wx_xml_dedupe_key(m, &key);
    if (m->from_user.len == 0) {
        FZ_CHECK(rc == KF_EINVAL && key.len == 0);
    } else {
        FZ_CHECK(rc == 0);
        FZ_CHECK(key.len > 6 && (memcmp(key.p, "msgid:", 6) == 0 ||
                                 memcmp(key.p, "event:", 6) == 0));
        FZ_CHECK((memcmp(key.p, "msgid:", 6) == 0) ==
                 (m->type != WX_MSG_EVENT && m->has_msgid));
    }
    kf_buf_release(&key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kf_str body = { (const char *)data, size };
    struct wx_xml_err err;
    struct wx_msg *m = (struct wx_msg *)&err;   /* must become NULL */
    int rc;

    if (size == 0)
        body.p = "";    /* a view never has a NULL p */
    rc = wx_xml_parse(body, &m, &err);
    if (rc < 0) {
        FZ_CHECK(m == NULL);
        FZ_CHECK(err.text[0] != '\0');
        FZ_CHECK(rc == KF_EPARSE || rc == KF_ETOOBIG || rc == KF_EDTD ||
                 rc == KF_EINVAL || rc == KF_ENOMEM);
        return 0;
    }
    FZ_CHECK(rc == 0 && m != NULL);
    FZ_CHECK(size <= WX_XML_MAX && size > 0);
    FZ_CHECK(memchr(data, '\0', size) == NULL);
    FZ_CHECK(!prolog_has_doctype(body.p, size));
    check_msg(m);
    wx_xml_msg_free(m);
    return 0;
}
