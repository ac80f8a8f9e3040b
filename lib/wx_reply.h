/* wx_reply: writes passive replies (docs/wechat-protocol.md §4) and the
 * encrypted-reply envelope (§5.8) in one canonical form: one line, no XML
 * declaration, no whitespace between elements, every string value in
 * CDATA (each "]]>" split as "]]]]><![CDATA[>"), integers bare. It owns
 * that layout and the check that every string it writes is valid UTF-8
 * made of XML 1.0 characters, so the output always reparses. It does not
 * encrypt or sign (see wx_crypto / wx_sign). */
#ifndef WX_REPLY_H
#define WX_REPLY_H

#include <stdint.h>

#include "kf.h"

enum wx_reply_type {
    WX_REPLY_SUCCESS,   /* the literal body "success": no reply, no retry */
    WX_REPLY_TEXT,
    WX_REPLY_IMAGE,
    WX_REPLY_TRANSFER   /* transfer_customer_service */
};

/* All views are borrowed for the duration of the call. to_user is the
 * user's OpenID (the inbound FromUserName), from_user our gh_ id (the
 * inbound ToUserName). */
struct wx_reply {
    enum wx_reply_type type;
    struct kf_str to_user, from_user;
    struct kf_str content;      /* TEXT: required, non-empty */
    struct kf_str media_id;     /* IMAGE: required, non-empty */
    struct kf_str kf_account;   /* TRANSFER: optional, adds TransInfo */
    uint64_t create_time;
};

/* Appends the reply body to out (caller owns out):
 *  SUCCESS  -> exactly "success" (addresses are not needed);
 *  TEXT     -> <xml><ToUserName>..<CreateTime>N</CreateTime>
 *              <MsgType><![CDATA[text]]></MsgType><Content>..</Content></xml>
 *  IMAGE    -> .. <Image><MediaId>..</MediaId></Image></xml>
 *  TRANSFER -> .. <MsgType><![CDATA[transfer_customer_service]]></MsgType>
 *              [<TransInfo><KfAccount>..</KfAccount></TransInfo>]</xml>
 * KF_EINVAL for a NULL argument, an unknown type, an empty to_user /
 * from_user (non-SUCCESS), an empty required value, or a string that is
 * not valid UTF-8 XML text; KF_ETOOBIG past out's cap. On error out keeps
 * its previous length and contents. */
KF_WUR int wx_reply_build(const struct wx_reply *r, struct kf_buf *out);

/* Appends <![CDATA[s]]> to out, splitting every "]]>" in s as
 * "]]]]><![CDATA[>". s is borrowed. KF_EINVAL when s is not valid UTF-8 or
 * holds a character XML 1.0 forbids (C0 controls other than TAB/LF/CR,
 * surrogates, U+FFFE, U+FFFF); KF_ETOOBIG past the cap. On error out keeps
 * its previous length and contents. */
KF_WUR int wx_reply_cdata(struct kf_buf *out, struct kf_str s);

/* Appends the encrypted-reply envelope to out:
 * <xml><Encrypt><![CDATA[E]]></Encrypt><MsgSignature><![CDATA[S]]>
 * </MsgSignature><TimeStamp>T</TimeStamp><Nonce><![CDATA[N]]></Nonce></xml>
 * (one line). The views are borrowed. KF_EINVAL when encrypt,
 * msg_signature or nonce is empty or not XML text; KF_ETOOBIG past the
 * cap. On error out keeps its previous length and contents. */
KF_WUR int wx_reply_envelope(struct kf_str encrypt, struct kf_str msg_signature,
                             uint64_t timestamp, struct kf_str nonce,
                             struct kf_buf *out);

/* 0 if s is valid UTF-8 made only of XML 1.0 characters (what every
 * string written into a reply must be), else KF_EINVAL. */
KF_WUR int wx_reply_text_ok(struct kf_str s);

#endif
