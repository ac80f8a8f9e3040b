/* wx_xml: parses one inbound WeChat callback body (a plaintext message, a
 * compatible-mode body or a safe-mode envelope) with expat into one typed
 * struct wx_msg. It owns the parse limits (WX_XML_MAX and friends), the
 * DTD/entity refusal, the MsgType/Event vocabulary and the de-duplication
 * key. It does not decrypt: a safe-mode envelope parses to type
 * WX_MSG_UNKNOWN with encrypt set, and the caller parses the decrypted
 * plaintext again.
 *
 * Parsing rules (the contract the tests in test/data/xml/ pin down):
 *  - body.len > WX_XML_MAX -> KF_ETOOBIG; an empty body, a NUL byte,
 *    invalid UTF-8, malformed XML or a root element other than "xml"
 *    (case-sensitive, no namespace prefix) -> KF_EPARSE.
 *  - Any <!DOCTYPE ...> (and so any entity declaration, internal or
 *    external, used or not) -> KF_EDTD. Parameter entities are never
 *    parsed and external entities are never loaded.
 *  - Nesting deeper than WX_XML_MAX_DEPTH (root = depth 1) or more than
 *    WX_XML_MAX_ELEMENTS elements in total -> KF_ETOOBIG.
 *  - The document is read as UTF-8 whatever its XML declaration says.
 *  - fields[] holds every first-level child of <xml> in document order,
 *    duplicates included. A value is all character data inside the child,
 *    CDATA sections and text concatenated, entities decoded; for a child
 *    with nested elements (Image, TransInfo, ScanCodeInfo, ...) it is the
 *    text of all its descendants concatenated in document order, tags
 *    dropped. Text directly inside <xml> (between children) is ignored.
 *    Attributes are ignored.
 *  - Duplicate first-level names: the FIRST occurrence wins for the typed
 *    members, for wx_xml_field() and for CreateTime/MsgId parsing; later
 *    copies are only visible in fields[].
 *  - msgid comes from the first element named MsgId or MsgID. CreateTime
 *    and the message id are parsed with kf_parse_u64: present but empty,
 *    non-numeric or > UINT64_MAX -> KF_EPARSE.
 *  - A body with a non-empty Encrypt is an envelope (safe or compatible
 *    mode) and needs nothing else. Any other body must carry non-empty
 *    MsgType, ToUserName, FromUserName and CreateTime, else KF_EPARSE;
 *    a FromUserName longer than WX_XML_MAX_OPENID is KF_EINVAL.
 *  - MsgType and Event are compared case-insensitively (ASCII). An unknown
 *    MsgType is WX_MSG_UNKNOWN, not an error. event is WX_EV_NONE unless
 *    type is WX_MSG_EVENT; then a missing or unrecognised Event is
 *    WX_EV_UNKNOWN. The raw strings stay in msgtype / event_name.
 *  - Absent fields are empty views whose p points to "" (never NULL).
 *    Every value is also NUL-terminated in the arena, but carries its
 *    length: use len. */
#ifndef WX_XML_H
#define WX_XML_H

#include <stddef.h>
#include <stdint.h>

#include "kf.h"

#define WX_XML_MAX 65536          /* bytes of body */
#define WX_XML_MAX_DEPTH 8        /* <xml> is depth 1 */
#define WX_XML_MAX_ELEMENTS 512   /* all elements, <xml> included */
/* bytes of FromUserName (docs/wechat-protocol.md §3.3) */
#define WX_XML_MAX_OPENID 64

enum wx_msgtype {
    WX_MSG_UNKNOWN,
    WX_MSG_TEXT,
    WX_MSG_IMAGE,
    WX_MSG_VOICE,
    WX_MSG_VIDEO,
    WX_MSG_SHORTVIDEO,
    WX_MSG_LOCATION,
    WX_MSG_LINK,
    WX_MSG_EVENT
};

enum wx_event {
    WX_EV_NONE,
    WX_EV_UNKNOWN,
    WX_EV_SUBSCRIBE,
    WX_EV_UNSUBSCRIBE,
    WX_EV_SCAN,
    WX_EV_LOCATION,
    WX_EV_CLICK,
    WX_EV_VIEW,
    WX_EV_KF_CREATE_SESSION,
    WX_EV_KF_CLOSE_SESSION,
    WX_EV_KF_SWITCH_SESSION
};

/* One first-level child of <xml>; both views point into the msg's arena. */
struct wx_field {
    struct kf_str name, value;
};

/* Every kf_str below borrows from the msg: valid until wx_xml_msg_free(). */
struct wx_msg {
    enum wx_msgtype type;
    enum wx_event event;
    struct kf_str to_user;          /* ToUserName */
    struct kf_str from_user;        /* FromUserName */
    struct kf_str msgtype;          /* MsgType as received */
    struct kf_str event_name;       /* Event as received */
    struct kf_str content;          /* Content (text) */
    struct kf_str pic_url;          /* PicUrl (image) */
    struct kf_str media_id;         /* MediaId (image/voice/video) */
    struct kf_str format;           /* Format (voice) */
    struct kf_str recognition;      /* Recognition (voice) */
    struct kf_str thumb_media_id;   /* ThumbMediaId (video/shortvideo) */
    struct kf_str location_x;       /* Location_X = latitude */
    struct kf_str location_y;       /* Location_Y = longitude */
    struct kf_str scale;            /* Scale */
    struct kf_str label;            /* Label */
    struct kf_str title;            /* Title (link) */
    struct kf_str description;      /* Description (link) */
    struct kf_str url;              /* Url (link) */
    struct kf_str event_key;        /* EventKey */
    struct kf_str ticket;           /* Ticket */
    struct kf_str latitude;         /* Latitude (LOCATION event) */
    struct kf_str longitude;        /* Longitude */
    struct kf_str precision;        /* Precision */
    struct kf_str kf_account;       /* KfAccount (kf_create/close_session) */
    struct kf_str from_kf_account;  /* FromKfAccount (kf_switch_session) */
    struct kf_str to_kf_account;    /* ToKfAccount */
    struct kf_str menu_id;          /* MenuId (VIEW) */
    struct kf_str bizmsgmenuid;     /* bizmsgmenuid (text from msgmenu) */
    struct kf_str encrypt;          /* Encrypt (safe/compatible mode) */
    uint64_t create_time;           /* 0 when absent (envelopes only) */
    int has_msgid;
    uint64_t msgid;                 /* MsgId or MsgID */
    struct wx_field *fields;        /* first-level children, in order */
    size_t nfields;
    char *arena;                    /* private: owns every byte above */
};

/* Optional parse error detail: 1-based line/column of the failure (0 when
 * not position-related) and a short static description. */
struct wx_xml_err {
    int line, column;
    char text[96];
};

/* Parses body (borrowed, read only during the call; need not be
 * NUL-terminated). On success *out is new; caller frees with
 * wx_xml_msg_free(). On error *out is NULL and err (may be NULL) says
 * why. */
KF_WUR int wx_xml_parse(struct kf_str body, struct wx_msg **out,
                        struct wx_xml_err *err);
/* Frees m and everything it owns. NULL ok. */
void wx_xml_msg_free(struct wx_msg *m);

/* The value of the first first-level child called name (case-sensitive).
 * 0 and *out borrowed from m, or KF_ENOTFOUND (and *out = ""). */
KF_WUR int wx_xml_field(const struct wx_msg *m, const char *name,
                        struct kf_str *out);

/* Appends the de-duplication key to out (borrowed; caller owns it):
 *  - events (type WX_MSG_EVENT), even ones carrying a MsgID, and anything
 *    else without a message id:
 *      "event:<FromUserName>:<CreateTime>:<Event as received>"
 *    (the official key is From+CreateTime; Event is appended because one
 *    user can cause two different events in the same second);
 *  - other messages with a message id: "msgid:<FromUserName>:<MsgId>"
 *    (decimal; scoped by the sender, so a message from one user can
 *    never take the key of another user's message in advance).
 * CreateTime and MsgId are written from the parsed integers.
 * KF_EINVAL when m has no FromUserName (an envelope: decrypt it first).
 * On error out keeps its previous contents. */
KF_WUR int wx_xml_dedupe_key(const struct wx_msg *m, struct kf_buf *out);

/* Canonical wire names ("text", "event", "subscribe", "SCAN",
 * "kf_create_session", ...); static strings, never NULL. WX_MSG_UNKNOWN,
 * WX_EV_NONE and WX_EV_UNKNOWN give "unknown", "none" and "unknown",
 * which are not wire names. */
const char *wx_xml_msgtype_name(enum wx_msgtype t);
const char *wx_xml_event_name(enum wx_event e);

#endif
