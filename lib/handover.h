/* handover: what travels with a session passed from one agent to another
 * — the note the giver writes on a transfer (HANDOVER_NOTE_CHARS
 * characters at most, validated here as untrusted input) — and how a
 * session shows where it came from: the session hash's handover fields
 * (set by lib/lua/prelude.lua: handed_by, handed_nick, handed_note,
 * handed_ms, waited_ms) as the API's `handed` {from, from_nick, note,
 * at_ms} and `from_queue` {waited_s} (docs/api.md). The archiver keeps
 * the giver and the note with the transfer (transfers.by_agent and
 * transfers.note, sql/0007_handover.sql). */
#ifndef HANDOVER_H
#define HANDOVER_H

#include <jansson.h>

#include "kf.h"
#include "refusal.h"

#define HANDOVER_NOTE_CHARS 200     /* characters (code points) */

/* 0 when note (NUL-terminated, untrusted) is a note we keep: UTF-8 of
 * 0..HANDOVER_NOTE_CHARS characters without control characters or line
 * breaks. Else the kf code of its row of lib/refusal.h (scope
 * REFUSAL_TRANSFER): KF_ETOOBIG too long, KF_EINVAL a control character,
 * KF_EPARSE not UTF-8; *why (NULL ok) gets the row. */
KF_WUR int handover_check_note(const char *note, const struct refusal **why);

/* Replaces the handover fields of session (a session object as
 * lib/route makes it from the hash, fields as strings or numbers) by
 * `handed` and `from_queue`; the internal `handing` mark is dropped.
 * A session with neither keeps no such member. KF_ENOMEM. */
KF_WUR int handover_view(json_t *session);

#endif
