/* wx_reply: canonical passive-reply and envelope writer (see wx_reply.h).
 * Every writer appends to the caller's buffer and, on failure, cuts the
 * buffer back to where it started, so a half-written reply never
 * escapes. */
#include "wx_reply.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "banned.h"

static const char cdata_open[] = "<![CDATA[";
static const char cdata_close[] = "]]>";
/* "]]>" inside a value: end the section after "]]", reopen for ">". */
static const char cdata_split[] = "]]]]><![CDATA[>";

static void truncate_to(struct kf_buf *b, size_t len)
{
    if (!b->p)
        return;
    b->len = len;
    b->p[len] = '\0';
}

/* Length of the valid UTF-8 sequence at s[0..n) encoding an XML 1.0 Char,
 * or 0. */
static size_t xml_char_len(const unsigned char *s, size_t n)
{
    uint32_t cp;
    size_t len;

    if (s[0] < 0x80)
        return s[0] >= 0x20 || s[0] == '\t' || s[0] == '\n' ||
               s[0] == '\r';
    len = kf_utf8_next(s, n, &cp);
    if (len == 0 || cp == 0xFFFE || cp == 0xFFFF)
        return 0;
    return len;
}

static int check_text(struct kf_str s);

int wx_reply_text_ok(struct kf_str s)
{
    return check_text(s);
}

static int check_text(struct kf_str s)
{
    const unsigned char *p = (const unsigned char *)s.p;
    size_t i = 0;

    while (i < s.len) {
        size_t n = xml_char_len(p + i, s.len - i);

        if (n == 0)
            return KF_EINVAL;
        i += n;
    }
    return 0;
}

static int put_cdata(struct kf_buf *out, struct kf_str s)
{
    size_t i = 0, run = 0;
    int rc = kf_buf_append_c(out, cdata_open);

    while (rc == 0 && i < s.len) {
        if (s.len - i >= 3 && memcmp(s.p + i, "]]>", 3) == 0) {
            rc = kf_buf_append(out, s.p + run, i - run);
            if (rc == 0)
                rc = kf_buf_append_c(out, cdata_split);
            i += 3;
            run = i;
        } else {
            i++;
        }
    }
    if (rc == 0)
        rc = kf_buf_append(out, s.p + run, s.len - run);
    if (rc == 0)
        rc = kf_buf_append_c(out, cdata_close);
    return rc;
}

int wx_reply_cdata(struct kf_buf *out, struct kf_str s)
{
    size_t start;
    int rc;

    if (!out || (!s.p && s.len))
        return KF_EINVAL;
    if (!s.p)
        s = KF_STR("");
    rc = check_text(s);
    if (rc < 0)
        return rc;
    start = out->len;
    rc = put_cdata(out, s);
    if (rc < 0)
        truncate_to(out, start);
    return rc;
}

/* <name><![CDATA[s]]></name> */
static int put_el(struct kf_buf *out, const char *name, struct kf_str s)
{
    int rc = kf_buf_printf(out, "<%s>", name);

    if (rc == 0)
        rc = wx_reply_cdata(out, s);
    if (rc == 0)
        rc = kf_buf_printf(out, "</%s>", name);
    return rc;
}

static int put_head(struct kf_buf *out, const struct wx_reply *r,
                    const char *msgtype)
{
    int rc = kf_buf_append_c(out, "<xml>");

    if (rc == 0)
        rc = put_el(out, "ToUserName", r->to_user);
    if (rc == 0)
        rc = put_el(out, "FromUserName", r->from_user);
    if (rc == 0)
        rc = kf_buf_printf(out, "<CreateTime>%" PRIu64 "</CreateTime>",
                           r->create_time);
    if (rc == 0)
        rc = put_el(out, "MsgType", kf_str_c(msgtype));
    return rc;
}

static int put_body(struct kf_buf *out, const struct wx_reply *r)
{
    int rc;

    switch (r->type) {
    case WX_REPLY_TEXT:
        rc = put_head(out, r, "text");
        if (rc == 0)
            rc = put_el(out, "Content", r->content);
        break;
    case WX_REPLY_IMAGE:
        rc = put_head(out, r, "image");
        if (rc == 0)
            rc = kf_buf_append_c(out, "<Image>");
        if (rc == 0)
            rc = put_el(out, "MediaId", r->media_id);
        if (rc == 0)
            rc = kf_buf_append_c(out, "</Image>");
        break;
    case WX_REPLY_TRANSFER:
        rc = put_head(out, r, "transfer_customer_service");
        if (rc == 0 && r->kf_account.len) {
            rc = kf_buf_append_c(out, "<TransInfo>");
            if (rc == 0)
                rc = put_el(out, "KfAccount", r->kf_account);
            if (rc == 0)
                rc = kf_buf_append_c(out, "</TransInfo>");
        }
        break;
    default:
        return KF_EINVAL;
    }
    if (rc == 0)
        rc = kf_buf_append_c(out, "</xml>");
    return rc;
}

static int check_reply(const struct wx_reply *r)
{
    if (!r->to_user.len || !r->from_user.len)
        return KF_EINVAL;
    if (r->type == WX_REPLY_TEXT && !r->content.len)
        return KF_EINVAL;       /* an empty text is not "no reply" */
    if (r->type == WX_REPLY_IMAGE && !r->media_id.len)
        return KF_EINVAL;
    return 0;
}

int wx_reply_build(const struct wx_reply *r, struct kf_buf *out)
{
    size_t start;
    int rc;

    if (!r || !out)
        return KF_EINVAL;
    if (r->type == WX_REPLY_SUCCESS)
        return kf_buf_append_c(out, "success");
    rc = check_reply(r);
    if (rc < 0)
        return rc;
    start = out->len;
    rc = put_body(out, r);
    if (rc < 0)
        truncate_to(out, start);
    return rc;
}

int wx_reply_envelope(struct kf_str encrypt, struct kf_str msg_signature,
                      uint64_t timestamp, struct kf_str nonce,
                      struct kf_buf *out)
{
    size_t start;
    int rc;

    if (!out || !encrypt.len || !msg_signature.len || !nonce.len)
        return KF_EINVAL;
    start = out->len;
    rc = kf_buf_append_c(out, "<xml>");
    if (rc == 0)
        rc = put_el(out, "Encrypt", encrypt);
    if (rc == 0)
        rc = put_el(out, "MsgSignature", msg_signature);
    if (rc == 0)
        rc = kf_buf_printf(out, "<TimeStamp>%" PRIu64 "</TimeStamp>",
                           timestamp);
    if (rc == 0)
        rc = put_el(out, "Nonce", nonce);
    if (rc == 0)
        rc = kf_buf_append_c(out, "</xml>");
    if (rc < 0)
        truncate_to(out, start);
    return rc;
}
