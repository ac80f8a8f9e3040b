/* canned: canned replies (常用语) without storage — the checks of a
 * reply's fields (bounded lengths in characters, valid UTF-8, no control
 * characters), their CSV form for import and export (UTF-8 with a BOM for
 * Excel, RFC 4180 quoting, bounded size and row count, every bad row
 * named, all-or-nothing) and the substitution of the variables
 * {nickname}, {agent} and {account} into a reply's text. The rows live in
 * PostgreSQL: lib/canned_db. */
#ifndef CANNED_H
#define CANNED_H

#include <stddef.h>

#include "kf.h"

/* Lengths in characters (Unicode scalar values), as sql/0004 checks. */
#define CANNED_FOLDER_MAX 32        /* "" = no folder */
#define CANNED_TITLE_MAX 64         /* at least 1 */
#define CANNED_TEXT_MAX 1000        /* at least 1 */
#define CANNED_SORT_MAX 1000000     /* sort order 0..this, small first */
#define CANNED_ROWS_MAX 500         /* replies per list (the shared ones
                                       of an account, or one agent's) */
#define CANNED_CSV_MAX (512 * 1024) /* bytes of one CSV import */
#define CANNED_CSV_ERRORS_MAX 20    /* bad rows named in one answer */
#define CANNED_NAME_MAX 64          /* characters of a substituted value */
/* Bytes of a rendered text: the text's and every value at most 4 bytes a
 * character; each variable is at least 7 characters long, so at most
 * CANNED_TEXT_MAX / 7 of them. */
#define CANNED_RENDER_MAX (4 * (CANNED_TEXT_MAX + \
                                CANNED_TEXT_MAX / 7 * CANNED_NAME_MAX) + 1)

/* What went wrong with one field or the CSV as a whole: a message for
 * the API (it names the field, never quotes the data). */
struct canned_err {
    char msg[160];
};

/* One reply's fields (each string NUL-terminated). A list owns its
 * items' strings. */
struct canned_item {
    char *folder, *title, *text;
    long sort;
};

struct canned_list {
    struct canned_item *v;
    size_t len, cap;
};

void canned_list_init(struct canned_list *l);      /* never fails */
void canned_list_release(struct canned_list *l);   /* safe twice */

/* The field checks: 0 or KF_EINVAL with err naming the field. A title
 * and a folder are one line (no control characters); a text may hold
 * line breaks (\n, \r\n) and tabs. */
KF_WUR int canned_check_folder(struct kf_str s, struct canned_err *err);
KF_WUR int canned_check_title(struct kf_str s, struct canned_err *err);
KF_WUR int canned_check_text(struct kf_str s, struct canned_err *err);
KF_WUR int canned_check_sort(long long sort, struct canned_err *err);

/* The CSV of items (n of them): a UTF-8 BOM, the header
 * "folder,title,text,sort", one record per item, CRLF line ends; a field
 * is quoted when it holds a comma, a quote, CR or LF ("" inside), and a
 * field that starts with = + - @ or a tab gets a leading ' so that a
 * spreadsheet does not run it as a formula (one that starts with ' gets
 * one too, so that decode gives it back whole). Appended to out (its cap
 * applies: KF_ETOOBIG). */
KF_WUR int canned_csv_encode(const struct canned_item *v, size_t n,
                             struct kf_buf *out);
/* One field s (NUL-terminated) of such a CSV, quoted and marked as
 * above, appended to out (lib/report's exports write theirs with it). */
KF_WUR int canned_csv_field(struct kf_buf *out, const char *s);

/* The bad rows of an import: row numbers as a spreadsheet shows them
 * (the header is row 1); at most CANNED_CSV_ERRORS_MAX, more counts the
 * rest. */
struct canned_csv_errors {
    struct {
        long row;
        char msg[120];
    } v[CANNED_CSV_ERRORS_MAX];
    size_t n, more;
};

/* Parses csv (untrusted: at most CANNED_CSV_MAX bytes, a BOM allowed,
 * CRLF or LF) into l (appended; on failure l is emptied). The header
 * must name the columns folder, title, text and sort, in any order (sort
 * may be left out: 0); blank lines are skipped; a leading ' before = + -
 * @, a tab or ' is removed (what encode adds). Every row is checked like the
 * API's fields; at most CANNED_ROWS_MAX rows. Returns 0, or KF_EPARSE
 * with errs (never a partial list): err says what is wrong as a whole
 * and errs->v the rows. KF_ETOOBIG past the size, KF_ENOMEM. */
KF_WUR int canned_csv_decode(struct kf_str csv, struct canned_list *l,
                             struct canned_err *err,
                             struct canned_csv_errors *errs);

/* The values of the variables; NULL or "" leaves the variable as
 * written (so the agent sees it was not filled). Borrowed. */
struct canned_vars {
    const char *nickname;   /* the user's display name */
    const char *agent;      /* the agent's nickname */
    const char *account;    /* the Official Account's name */
};

/* The user's name for {nickname}: display_name when it is set (the
 * profile's remark or the name an agent gave, when a source is plugged
 * in), else the OpenID's short form as the console shows it (its first
 * and last 6 characters around '…' when longer than 14). out gets at most
 * CANNED_NAME_MAX characters, NUL-terminated (out_len >= 4 *
 * CANNED_NAME_MAX + 1). */
void canned_nickname(const char *display_name, struct kf_str openid,
                     char *out, size_t out_len);

/* text with {nickname}, {agent} and {account} replaced by v's values
 * (each cut to CANNED_NAME_MAX characters); anything else in braces is
 * kept. Appended to out (KF_ETOOBIG at its cap). */
KF_WUR int canned_render(struct kf_str text, const struct canned_vars *v,
                         struct kf_buf *out);

#endif
