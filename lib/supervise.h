/* supervise: staff inside a user's live session — the whisper (an
 * internal note of at most SUPERVISE_WHISPER_CHARS characters, checked
 * here as untrusted input, never sent to WeChat: it goes to the event
 * stream, which the archiver keeps with the messages as direction 'w',
 * and to the serving agent's feed) and a supervisor's take-over (the
 * session moves to the supervisor's agent account as a transfer). The
 * Redis side is lib/lua/supervise.lua; its refusals are the rows of
 * scope REFUSAL_SUPERVISE in lib/refusal.h. Who may do what is the
 * caller's (fcgi/supervise.c): by says which agent acts ('' staff above
 * agents). */
#ifndef SUPERVISE_H
#define SUPERVISE_H

#include <stdint.h>

#include "kf.h"
#include "refusal.h"
#include "route.h"

#define SUPERVISE_WHISPER_CHARS 500     /* characters (code points) */
#define SUPERVISE_MSGID_SIZE 19         /* "w_" + 16 hex + NUL */

/* Who writes a whisper, as its payload names them: author (a login, an
 * agent account, "admin" for the admin token), author_name ("" none),
 * role (agent, supervisor, admin). Borrowed. */
struct supervise_author {
    const char *author, *name, *role;
};

/* 0 when text (NUL-terminated, untrusted) is a whisper we keep: UTF-8 of
 * 1..SUPERVISE_WHISPER_CHARS characters without control characters (line
 * breaks and tabs allowed) and not only white space. Else the kf code of
 * its row (KF_ETOOBIG too long, KF_EINVAL a control character or empty,
 * KF_EPARSE not UTF-8); *why (NULL ok) gets the row. */
KF_WUR int supervise_check_whisper(const char *text,
                                   const struct refusal **why);

/* Writes a whisper into openid's live session (active or waiting): by is
 * the agent writing it ('' a supervisor or an admin), which must then be
 * the session's. text is checked here. The event's payload is
 * {"id", "content", "author", "author_name", "author_role"}. *session (the session id) and
 * agent (the serving agent, "" when the user waits; 48 bytes) and msgid
 * (SUPERVISE_MSGID_SIZE) are filled. Refusals: their kf code and *why;
 * KF_EBACKEND Redis down, KF_ENOMEM, KF_ECRYPTO. */
KF_WUR int supervise_whisper(struct route *r, struct kf_str openid,
                             const char *by,
                             const struct supervise_author *who,
                             const char *text, int64_t now_ms,
                             char session[24], char agent[48],
                             char msgid[SUPERVISE_MSGID_SIZE],
                             const struct refusal **why);

/* Moves openid's active session to agent (the supervisor's agent
 * account; login and name the supervisor's, told to the agent it
 * leaves), written as a transfer with reason takeover. prev (48 bytes)
 * gets the agent it left. Refusals: their kf code and *why;
 * KF_EBACKEND. */
KF_WUR int supervise_takeover(struct route *r, struct kf_str openid,
                              const char *agent, const char *login,
                              const char *name, int64_t now_ms,
                              char prev[48], const struct refusal **why);

#endif
