/* fuzz_canned: a canned-reply CSV import as POST /api/v1/canned/import
 * hands it to lib/canned (canned_csv_decode), then what an accepted file
 * becomes: its export (canned_csv_encode), the variables filled in
 * (canned_render) and a reply's title as a display name
 * (canned_nickname). Checks: a refusal leaves no row and says why (the
 * rows it names are in order, numbered from 1 (the header), at most
 * CANNED_CSV_ERRORS_MAX); an accepted file holds at most CANNED_ROWS_MAX
 * rows, each passing the API's own field checks; exporting those rows
 * and importing the export gives them back unchanged; rendering stays
 * within CANNED_RENDER_MAX and changes nothing in a text without '{';
 * a nickname is valid UTF-8 of at most CANNED_NAME_MAX characters. */
#include <string.h>

#include "canned.h"
#include "fuzz.h"
#include "kf.h"

static void check_item(const struct canned_item *it)
{
    FZ_CHECK(canned_check_folder(kf_str_c(it->folder), NULL) == 0);
    FZ_CHECK(canned_check_title(kf_str_c(it->title), NULL) == 0);
    FZ_CHECK(canned_check_text(kf_str_c(it->text), NULL) == 0);
    FZ_CHECK(canned_check_sort(it->sort, NULL) == 0);
}

/* The export of l imports back as l. */
static void check_roundtrip(const struct canned_list *l)
{
    struct canned_csv_errors errs;
    struct canned_err err;
    struct canned_list back;
    struct kf_buf csv;
    size_t i;
    int rc;

    kf_buf_init(&csv, (size_t)CANNED_CSV_MAX * 4);
    rc = canned_csv_encode(l->v, l->len, &csv);
    FZ_CHECK(rc == 0 || rc == KF_ENOMEM);
    if (rc == 0 && csv.len <= CANNED_CSV_MAX) {
        canned_list_init(&back);
        rc = canned_csv_decode(kf_buf_str(&csv), &back, &err, &errs);
        FZ_CHECK(rc == 0 || rc == KF_ENOMEM);
        if (rc == 0) {
            FZ_CHECK(back.len == l->len);
            for (i = 0; i < l->len; i++) {
                FZ_CHECK(strcmp(back.v[i].folder, l->v[i].folder) == 0);
                FZ_CHECK(strcmp(back.v[i].title, l->v[i].title) == 0);
                FZ_CHECK(strcmp(back.v[i].text, l->v[i].text) == 0);
                FZ_CHECK(back.v[i].sort == l->v[i].sort);
            }
        }
        canned_list_release(&back);
    }
    kf_buf_release(&csv);
}

/* The variables filled from the item's own fields (the longest values a
 * name can have are cut to CANNED_NAME_MAX characters). */
static void check_render(const struct canned_item *it)
{
    char nick[4 * CANNED_NAME_MAX + 1];
    struct canned_vars v = { nick, it->title, it->folder };
    struct kf_str text = kf_str_c(it->text);
    struct kf_buf out;
    size_t i = 0, n = 0, k;
    uint32_t cp;
    int rc;

    canned_nickname(it->title, KF_STR(FZ_OPENID), nick, sizeof(nick));
    while (nick[i]) {
        k = kf_utf8_next((const unsigned char *)nick + i, strlen(nick + i),
                         &cp);
        FZ_CHECK(k > 0);
        i += k;
        n++;
    }
    FZ_CHECK(n >= 1 && n <= CANNED_NAME_MAX);
    kf_buf_init(&out, CANNED_RENDER_MAX);
    rc = canned_render(text, &v, &out);
    FZ_CHECK(rc == 0 || rc == KF_ENOMEM);
    if (rc == 0 && !memchr(text.p, '{', text.len))
        FZ_CHECK(kf_str_eq(kf_buf_str(&out), text));
    kf_buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct canned_csv_errors errs;
    struct canned_err err;
    struct canned_list l;
    size_t i;
    int rc;

    canned_list_init(&l);
    rc = canned_csv_decode((struct kf_str){ (const char *)data, size }, &l,
                           &err, &errs);
    if (rc < 0) {
        FZ_CHECK(rc == KF_EPARSE || rc == KF_ETOOBIG || rc == KF_ENOMEM);
        FZ_CHECK(l.len == 0);
        FZ_CHECK(rc != KF_ETOOBIG || size > CANNED_CSV_MAX);
        if (rc != KF_ENOMEM)
            FZ_CHECK(err.msg[0] != '\0');
        FZ_CHECK(errs.n <= CANNED_CSV_ERRORS_MAX);
        FZ_CHECK(errs.more == 0 || errs.n == CANNED_CSV_ERRORS_MAX);
        for (i = 0; i < errs.n; i++) {
            FZ_CHECK(errs.v[i].row >= 1);
            FZ_CHECK(i == 0 || errs.v[i].row > errs.v[i - 1].row);
            FZ_CHECK(errs.v[i].msg[0] != '\0');
        }
    } else {
        FZ_CHECK(rc == 0 && errs.n == 0 && errs.more == 0);
        FZ_CHECK(l.len <= CANNED_ROWS_MAX);
        for (i = 0; i < l.len; i++) {
            check_item(&l.v[i]);
            check_render(&l.v[i]);
        }
        check_roundtrip(&l);
    }
    canned_list_release(&l);
    canned_list_release(&l);    /* safe twice */
    return 0;
}
