/* archive_entry: one stream entry as the archiver writes it — its kind
 * (which table it feeds), its stream fields mapped to the columns of the
 * temporary table wxkf_arch, the checks PostgreSQL text needs (strict
 * UTF-8 without NUL, numeric ids and times), the COPY text of a batch,
 * and the two other forms an entry is kept in: the JSON of its fields
 * (other_events) and netstrings (archive_rejects). Pure: no I/O, no
 * backend; the bytes stay in the reply they were read from. */
#ifndef ARCHIVE_ENTRY_H
#define ARCHIVE_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "kf.h"

#define ARCHIVE_ENTRY_COPY_MAX ((size_t)512 << 20)  /* a batch's COPY text */

/* The kinds with a table of their own, in the order of kind_names[]. */
enum archive_entry_kind {
    ARCHIVE_ENTRY_MSG_IN, ARCHIVE_ENTRY_MSG_OUT, ARCHIVE_ENTRY_DELIVERY,
    ARCHIVE_ENTRY_ASSIGN, ARCHIVE_ENTRY_REASSIGN, ARCHIVE_ENTRY_TRANSFER,
    ARCHIVE_ENTRY_QUEUE, ARCHIVE_ENTRY_CLOSE, ARCHIVE_ENTRY_PRESENCE,
    ARCHIVE_ENTRY_MEDIA_STORED, ARCHIVE_ENTRY_MEDIA_FAILED,
    ARCHIVE_ENTRY_WHISPER,  /* staff's internal note: messages, 'w' */
    ARCHIVE_ENTRY_AUDIT,    /* lib/audit: its fields as JSON, to audit_log */
    ARCHIVE_ENTRY_OTHER,
    ARCHIVE_ENTRY_BAD,  /* not representable: straight to archive_rejects */
    ARCHIVE_ENTRY_GONE  /* pending, but deleted from the stream */
};
#define ARCHIVE_ENTRY_BIT(k) (1u << (k))

/* The columns of wxkf_arch (lib/archive_sql.c creates it), in order. */
enum archive_entry_col {
    ARCHIVE_ENTRY_C_EVENT_ID, ARCHIVE_ENTRY_C_EMS, ARCHIVE_ENTRY_C_ESEQ,
    ARCHIVE_ENTRY_C_KIND, ARCHIVE_ENTRY_C_TS, ARCHIVE_ENTRY_C_TYPE,
    ARCHIVE_ENTRY_C_OPENID, ARCHIVE_ENTRY_C_MSGTYPE, ARCHIVE_ENTRY_C_MSGID,
    ARCHIVE_ENTRY_C_SESSION, ARCHIVE_ENTRY_C_AGENT, ARCHIVE_ENTRY_C_GRP,
    ARCHIVE_ENTRY_C_REASON, ARCHIVE_ENTRY_C_WHY, ARCHIVE_ENTRY_C_PAYLOAD,
    ARCHIVE_ENTRY_C_STATUS, ARCHIVE_ENTRY_C_PREV, ARCHIVE_ENTRY_C_ERRCODE,
    ARCHIVE_ENTRY_C_ERRMSG, ARCHIVE_ENTRY_C_SENDER, ARCHIVE_ENTRY_C_MEDIA_ID,
    ARCHIVE_ENTRY_C_PATH, ARCHIVE_ENTRY_C_CTYPE, ARCHIVE_ENTRY_C_SIZE,
    ARCHIVE_ENTRY_C_MSG, ARCHIVE_ENTRY_C_NOTE, ARCHIVE_ENTRY_C_MARKER,
    ARCHIVE_ENTRY_C_FIELDS,
    ARCHIVE_ENTRY_NCOLS
};

struct archive_entry {
    struct kf_str id;
    enum archive_entry_kind kind;
    const struct kf_str *f;     /* name, value, ... (NULL: none kept) */
    size_t nf;
    struct kf_str col[ARCHIVE_ENTRY_NCOLS];   /* p NULL: SQL NULL */
    struct kf_str msgid, xid, recv_ms, ts_ms;
    int64_t ms, seq, ts;
    char num[3][24];            /* ems, eseq, ts as text */
    char *json;                 /* ARCHIVE_ENTRY_OTHER and _AUDIT: the
                                   fields (malloc'd) */
    const char *why_bad;        /* ARCHIVE_ENTRY_BAD: static text */
    int done;                   /* written (or rejected): acknowledge */
};

/* Fills e from one stream entry: its id and nf field names and values.
 * gone: the stream no longer has it (XAUTOCLAIM's nil). f NULL (not
 * gone) or nf odd: a malformed entry; an element with p NULL: not text.
 * e keeps views into id and f[]: their bytes must outlive e. Never fails
 * (an entry PostgreSQL cannot take is ARCHIVE_ENTRY_BAD, why_bad says why);
 * e->json is new: release e with archive_entry_release(). */
void archive_entry_parse(struct archive_entry *e, struct kf_str id,
                         const struct kf_str *f, size_t nf, int gone);
void archive_entry_release(struct archive_entry *e);   /* safe twice */

/* 1 when s is strict UTF-8 without NUL (what PostgreSQL text holds). */
int archive_entry_text_ok(struct kf_str s);

/* The COPY text (one row per entry, tab-separated, \N for NULL) of
 * v[0..n) into out (reset first); *kinds gets the ARCHIVE_ENTRY_BIT of their
 * kinds. More than out's cap is KF_EPARSE (the caller splits the batch);
 * KF_ENOMEM. */
KF_WUR int archive_entry_copy(struct archive_entry *const *v, size_t n,
                              struct kf_buf *out, unsigned *kinds);

/* Appends e's fields as netstrings, "<len>:<bytes>," per name and value
 * (what archive_rejects keeps). KF_ETOOBIG, KF_ENOMEM. */
KF_WUR int archive_entry_raw(const struct archive_entry *e,
                             struct kf_buf *out);

#endif
