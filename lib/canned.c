/* canned: the checks, the CSV form and the variables of canned replies
 * (canned.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canned.h"

#include "banned.h"

#define BOM "\xEF\xBB\xBF"
#define NCOLS 4

enum col { COL_FOLDER, COL_TITLE, COL_TEXT, COL_SORT };
static const char *const col_names[NCOLS] = { "folder", "title", "text",
                                              "sort" };

void canned_list_init(struct canned_list *l)
{
    memset(l, 0, sizeof(*l));
}

static void item_release(struct canned_item *it)
{
    free(it->folder);
    free(it->title);
    free(it->text);
    memset(it, 0, sizeof(*it));
}

void canned_list_release(struct canned_list *l)
{
    size_t i;

    for (i = 0; i < l->len; i++)
        item_release(&l->v[i]);
    free(l->v);
    canned_list_init(l);
}

/* The number of characters of s, or -1 when s is not valid UTF-8 or holds
 * a control character (C0, DEL, C1) other than, with multiline, \t, \n
 * and \r before \n. */
static long count_chars(struct kf_str s, int multiline)
{
    const unsigned char *p = (const unsigned char *)s.p;
    size_t i = 0, k;
    long n = 0;
    uint32_t cp;

    while (i < s.len) {
        k = kf_utf8_next(p + i, s.len - i, &cp);
        if (k == 0)
            return -1;
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
            int ok = multiline &&
                     (cp == '\t' || cp == '\n' ||
                      (cp == '\r' && i + 1 < s.len && p[i + 1] == '\n'));

            if (!ok)
                return -1;
        }
        i += k;
        n++;
    }
    return n;
}

static int check_len(struct kf_str s, const char *name, long min, long max,
                     int multiline, struct canned_err *err)
{
    long n = count_chars(s, multiline);

    if (n >= min && n <= max)
        return 0;
    if (err) {
        if (n < 0)
            snprintf(err->msg, sizeof(err->msg), "%s must be UTF-8 text "
                     "without control characters%s", name,
                     multiline ? " (line breaks and tabs are fine)" : "");
        else
            snprintf(err->msg, sizeof(err->msg), "%s must be %ld..%ld "
                     "characters", name, min, max);
    }
    return KF_EINVAL;
}

int canned_check_folder(struct kf_str s, struct canned_err *err)
{
    return check_len(s, "folder", 0, CANNED_FOLDER_MAX, 0, err);
}

int canned_check_title(struct kf_str s, struct canned_err *err)
{
    return check_len(s, "title", 1, CANNED_TITLE_MAX, 0, err);
}

int canned_check_text(struct kf_str s, struct canned_err *err)
{
    return check_len(s, "text", 1, CANNED_TEXT_MAX, 1, err);
}

int canned_check_sort(long long sort, struct canned_err *err)
{
    if (sort >= 0 && sort <= CANNED_SORT_MAX)
        return 0;
    if (err)
        snprintf(err->msg, sizeof(err->msg), "sort must be an integer "
                 "0..%d", CANNED_SORT_MAX);
    return KF_EINVAL;
}

/* --- CSV out ------------------------------------------------------------ */

/* A field a spreadsheet would run as a formula (= + - @ or a tab
 * first), or one that starts with the ' that marks the others: written
 * with a leading ', which the import removes again. */
static int marked(const char *p, size_t len)
{
    return len > 0 && (p[0] == '=' || p[0] == '+' || p[0] == '-' ||
                       p[0] == '@' || p[0] == '\t' || p[0] == '\'');
}

int canned_csv_field(struct kf_buf *out, const char *s)
{
    size_t i, len = strlen(s);
    int quote = 0, rc = 0;

    for (i = 0; i < len && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (quote)
        rc = kf_buf_append(out, "\"", 1);
    if (rc == 0 && marked(s, len))
        rc = kf_buf_append(out, "'", 1);
    for (i = 0; rc == 0 && i < len; i++)
        rc = s[i] == '"' ? kf_buf_append(out, "\"\"", 2)
                         : kf_buf_append(out, s + i, 1);
    if (rc == 0 && quote)
        rc = kf_buf_append(out, "\"", 1);
    return rc;
}

int canned_csv_encode(const struct canned_item *v, size_t n,
                      struct kf_buf *out)
{
    size_t i;
    int rc = kf_buf_append_c(out, BOM "folder,title,text,sort\r\n");

    for (i = 0; rc == 0 && i < n; i++) {
        rc = canned_csv_field(out, v[i].folder ? v[i].folder : "");
        if (rc == 0)
            rc = kf_buf_append(out, ",", 1);
        if (rc == 0)
            rc = canned_csv_field(out, v[i].title ? v[i].title : "");
        if (rc == 0)
            rc = kf_buf_append(out, ",", 1);
        if (rc == 0)
            rc = canned_csv_field(out, v[i].text ? v[i].text : "");
        if (rc == 0)
            rc = kf_buf_printf(out, ",%ld\r\n", v[i].sort);
    }
    return rc;
}

/* --- CSV in ------------------------------------------------------------- */

struct record {
    struct kf_buf f[NCOLS];     /* the first NCOLS fields */
    size_t nf;                  /* fields seen (may exceed NCOLS) */
};

static void row_error(struct canned_csv_errors *errs, long row,
                      const char *msg)
{
    if (errs->n < CANNED_CSV_ERRORS_MAX) {
        errs->v[errs->n].row = row;
        snprintf(errs->v[errs->n].msg, sizeof(errs->v[0].msg), "%s", msg);
        errs->n++;
    } else {
        errs->more++;
    }
}

/* Reads one record at csv[*pos..): 0, KF_EPARSE (*why says what: the
 * rest of the input cannot be read) or KF_ENOMEM. */
static int read_record(struct kf_str csv, size_t *pos, struct record *rec,
                       const char **why)
{
    size_t i = *pos, k;
    int rc = 0;

    for (k = 0; k < NCOLS; k++)
        kf_buf_reset(&rec->f[k]);
    rec->nf = 0;
    for (;;) {
        struct kf_buf *b = rec->nf < NCOLS ? &rec->f[rec->nf] : NULL;
        char c;

        if (i < csv.len && csv.p[i] == '"') {
            for (i++;; i++) {
                if (i >= csv.len) {
                    *why = "a quoted field is not closed";
                    return KF_EPARSE;
                }
                if (csv.p[i] == '"') {
                    if (i + 1 < csv.len && csv.p[i + 1] == '"')
                        i++;
                    else
                        break;
                }
                if (b && (rc = kf_buf_append(b, csv.p + i, 1)) < 0)
                    return rc;
            }
            i++;
        } else {
            for (; i < csv.len; i++) {
                c = csv.p[i];
                if (c == ',' || c == '\r' || c == '\n')
                    break;
                if (c == '"') {
                    *why = "a quote inside an unquoted field (quote the "
                           "field and double the quote)";
                    return KF_EPARSE;
                }
                if (b && (rc = kf_buf_append(b, csv.p + i, 1)) < 0)
                    return rc;
            }
        }
        rec->nf++;
        if (i >= csv.len)
            break;
        c = csv.p[i];
        if (c == ',') {
            i++;
            continue;
        }
        if (c == '\n') {
            i++;
            break;
        }
        if (c == '\r' && i + 1 < csv.len && csv.p[i + 1] == '\n') {
            i += 2;
            break;
        }
        *why = c == '\r' ? "a CR without LF" : "text after a closing quote";
        return KF_EPARSE;
    }
    *pos = i;
    return 0;
}

static struct kf_str field(const struct record *rec, const int *map,
                           enum col c)
{
    struct kf_str s = map[c] < 0 ? KF_STR("") : kf_buf_str(&rec->f[map[c]]);

    if (s.len >= 2 && s.p[0] == '\'' && marked(s.p + 1, s.len - 1))
        s = (struct kf_str){ s.p + 1, s.len - 1 };
    return s;
}

static int header(const struct record *rec, int *map, struct canned_err *err)
{
    size_t i, c;

    for (c = 0; c < NCOLS; c++)
        map[c] = -1;
    if (rec->nf > NCOLS)
        goto bad;
    for (i = 0; i < rec->nf; i++) {
        struct kf_str s = kf_buf_str(&rec->f[i]);

        for (c = 0; c < NCOLS; c++)
            if (kf_str_eq_c(s, col_names[c]))
                break;
        if (c == NCOLS || map[c] >= 0)
            goto bad;
        map[c] = (int)i;
    }
    if (map[COL_TITLE] >= 0 && map[COL_TEXT] >= 0)
        return 0;
bad:
    snprintf(err->msg, sizeof(err->msg), "the first row must name the "
             "columns folder, title, text and sort (each once; sort may be "
             "left out)");
    return KF_EPARSE;
}

static char *dup_str(struct kf_str s)
{
    char *p = malloc(s.len + 1);

    if (p) {
        memcpy(p, s.p, s.len);
        p[s.len] = '\0';
    }
    return p;
}

/* Checks the record's fields and appends them to l: 0, KF_EINVAL (a
 * row error was noted) or KF_ENOMEM. */
static int take_row(const struct record *rec, const int *map, long row,
                    struct canned_list *l, struct canned_csv_errors *errs)
{
    struct kf_str folder = field(rec, map, COL_FOLDER),
                  title = field(rec, map, COL_TITLE),
                  text = field(rec, map, COL_TEXT),
                  sort = field(rec, map, COL_SORT);
    struct canned_err e = { "" };
    struct canned_item *it;
    uint64_t n = 0;

    if (rec->nf != (size_t)(map[COL_SORT] >= 0) + 2 +
                      (size_t)(map[COL_FOLDER] >= 0)) {
        snprintf(e.msg, sizeof(e.msg), "%zu fields where the header has "
                 "%zu", rec->nf,
                 (size_t)(map[COL_SORT] >= 0) + 2 +
                     (size_t)(map[COL_FOLDER] >= 0));
    } else if (canned_check_folder(folder, &e) == 0 &&
               canned_check_title(title, &e) == 0 &&
               canned_check_text(text, &e) == 0 &&
               sort.len > 0 &&
               (sort.len > 7 || kf_parse_u64(sort, &n) < 0 ||
                canned_check_sort((long long)n, &e) < 0)) {
        snprintf(e.msg, sizeof(e.msg), "sort must be an integer 0..%d",
                 CANNED_SORT_MAX);
    }
    if (e.msg[0]) {
        row_error(errs, row, e.msg);
        return KF_EINVAL;
    }
    if (errs->n > 0 || errs->more > 0)
        return 0;                   /* nothing will be kept: don't copy */
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct canned_item *v = realloc(l->v, cap * sizeof(*v));

        if (!v)
            return KF_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    it = &l->v[l->len];
    it->folder = dup_str(folder);
    it->title = dup_str(title);
    it->text = dup_str(text);
    it->sort = (long)n;
    if (!it->folder || !it->title || !it->text) {
        item_release(it);
        return KF_ENOMEM;
    }
    l->len++;
    return 0;
}

static int blank(const struct record *rec)
{
    return rec->nf == 1 && rec->f[0].len == 0;
}

int canned_csv_decode(struct kf_str csv, struct canned_list *l,
                      struct canned_err *err,
                      struct canned_csv_errors *errs)
{
    struct record rec;
    const char *why = NULL;
    size_t pos = 0, k, rows = 0;
    long row = 0;
    int map[NCOLS], rc = 0, have_header = 0;

    err->msg[0] = '\0';
    memset(errs, 0, sizeof(*errs));
    if (csv.len > CANNED_CSV_MAX) {
        snprintf(err->msg, sizeof(err->msg), "the file is over %d KiB",
                 CANNED_CSV_MAX / 1024);
        return KF_ETOOBIG;
    }
    if (csv.len >= 3 && memcmp(csv.p, BOM, 3) == 0)
        pos = 3;
    for (k = 0; k < NCOLS; k++)
        kf_buf_init(&rec.f[k], CANNED_CSV_MAX);
    while (pos < csv.len) {
        row++;
        rc = read_record(csv, &pos, &rec, &why);
        if (rc == KF_EPARSE)
            row_error(errs, row, why);
        if (rc < 0)
            break;
        if (blank(&rec))
            continue;
        if (!have_header) {
            rc = header(&rec, map, err);
            if (rc < 0)
                break;
            have_header = 1;
            continue;
        }
        if (++rows > CANNED_ROWS_MAX) {
            snprintf(err->msg, sizeof(err->msg), "more than %d rows",
                     CANNED_ROWS_MAX);
            rc = KF_EPARSE;
            break;
        }
        rc = take_row(&rec, map, row, l, errs);
        if (rc == KF_ENOMEM)
            break;
        rc = 0;
    }
    for (k = 0; k < NCOLS; k++)
        kf_buf_release(&rec.f[k]);
    if (rc == 0 && !have_header) {
        snprintf(err->msg, sizeof(err->msg), "the file is empty");
        rc = KF_EPARSE;
    }
    if (rc == 0 && (errs->n > 0 || errs->more > 0))
        rc = KF_EPARSE;
    if (rc == KF_EPARSE && !err->msg[0])
        snprintf(err->msg, sizeof(err->msg), "%zu row(s) are wrong; nothing "
                 "was imported", errs->n + errs->more);
    if (rc < 0)
        canned_list_release(l);
    return rc;
}

/* --- variables ---------------------------------------------------------- */

/* The bytes of s's first max characters (stops at anything that is not
 * valid UTF-8 or is a control character). */
static size_t prefix_chars(struct kf_str s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s.p;
    size_t i = 0, n = 0, k;
    uint32_t cp;

    while (i < s.len && n < max) {
        k = kf_utf8_next(p + i, s.len - i, &cp);
        if (k == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            break;
        i += k;
        n++;
    }
    return i;
}

void canned_nickname(const char *display_name, struct kf_str openid,
                     char *out, size_t out_len)
{
    struct kf_str d = kf_str_c(display_name);
    size_t n;

    if (out_len == 0)
        return;
    n = prefix_chars(d, CANNED_NAME_MAX);
    if (n > 0) {
        if (n >= out_len)
            n = 0;
        memcpy(out, d.p, n);
        out[n] = '\0';
        return;
    }
    n = prefix_chars(openid, CANNED_NAME_MAX);
    if (n > 14 && n == openid.len)
        snprintf(out, out_len, "%.6s…%.6s", openid.p, openid.p + n - 6);
    else
        snprintf(out, out_len, "%.*s", (int)n, openid.p);
}

int canned_render(struct kf_str text, const struct canned_vars *v,
                  struct kf_buf *out)
{
    static const char *const names[] = { "{nickname}", "{agent}",
                                         "{account}" };
    const char *values[] = { v->nickname, v->agent, v->account };
    size_t i = 0, start = 0, k;
    int rc = 0;

    while (rc == 0 && i < text.len) {
        if (text.p[i] != '{') {
            i++;
            continue;
        }
        for (k = 0; k < 3; k++) {
            size_t len = strlen(names[k]);

            if (values[k] && values[k][0] && text.len - i >= len &&
                memcmp(text.p + i, names[k], len) == 0)
                break;
        }
        if (k == 3) {
            i++;
            continue;
        }
        rc = kf_buf_append(out, text.p + start, i - start);
        if (rc == 0) {
            struct kf_str val = kf_str_c(values[k]);

            rc = kf_buf_append(out, val.p, prefix_chars(val, CANNED_NAME_MAX));
        }
        i += strlen(names[k]);
        start = i;
    }
    if (rc == 0)
        rc = kf_buf_append(out, text.p + start, text.len - start);
    return rc;
}
