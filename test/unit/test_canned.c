/* Unit tests for canned: the field checks count characters (Chinese is
 * one each) and refuse control characters and broken UTF-8; the CSV an
 * export writes reads back the same (BOM, quotes, line breaks, commas,
 * formula-looking cells); hostile CSV (unclosed quotes, stray quotes,
 * lone CR, NUL, too many rows or bytes, a wrong header) is refused as a
 * whole with the bad rows named as a spreadsheet numbers them; the
 * variables are substituted, cut and left alone when unknown or empty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "canned.h"
#include "testutil.h"

static struct kf_str S(const char *s)
{
    return kf_str_c(s);
}

static void test_fields_count_characters_and_refuse_controls(void **state)
{
    struct canned_err e = { "" };
    char buf[4 * CANNED_TEXT_MAX + 8];
    size_t i;

    (void)state;
    assert_int_equal(canned_check_title(S("售后"), &e), 0);
    assert_int_equal(canned_check_title(S(""), &e), KF_EINVAL);
    assert_non_null(strstr(e.msg, "title"));
    assert_int_equal(canned_check_folder(S(""), &e), 0);
    /* 64 Chinese characters (192 bytes) are a good title, 65 are not. */
    buf[0] = '\0';
    for (i = 0; i < CANNED_TITLE_MAX; i++)
        memcpy(buf + 3 * i, "好", 4);
    assert_int_equal(canned_check_title(S(buf), &e), 0);
    memcpy(buf + 3 * CANNED_TITLE_MAX, "好", 4);
    assert_int_equal(canned_check_title(S(buf), &e), KF_EINVAL);
    /* A text may hold line breaks and tabs, a title may not. */
    assert_int_equal(canned_check_text(S("您好\r\n请稍等\t谢谢"), &e), 0);
    assert_int_equal(canned_check_title(S("a\nb"), &e), KF_EINVAL);
    assert_int_equal(canned_check_text(S("a\rb"), &e), KF_EINVAL);
    assert_int_equal(canned_check_text(S("a\x1b[31mb"), &e), KF_EINVAL);
    assert_int_equal(canned_check_text(S("a\xc2\x85z"), &e), KF_EINVAL);
    assert_int_equal(canned_check_text(S("\xe5\xa5"), &e), KF_EINVAL);
    assert_int_equal(canned_check_text(S("\xc0\xaf"), &e), KF_EINVAL);
    assert_int_equal(canned_check_text((struct kf_str){ "a\0b", 3 }, &e),
                     KF_EINVAL);
    memset(buf, 'x', CANNED_TEXT_MAX + 1);
    assert_int_equal(canned_check_text((struct kf_str){ buf,
                                                        CANNED_TEXT_MAX },
                                       &e), 0);
    assert_int_equal(canned_check_text((struct kf_str){ buf,
                                                        CANNED_TEXT_MAX + 1 },
                                       &e), KF_EINVAL);
    assert_int_equal(canned_check_sort(0, &e), 0);
    assert_int_equal(canned_check_sort(CANNED_SORT_MAX, &e), 0);
    assert_int_equal(canned_check_sort(-1, &e), KF_EINVAL);
    assert_int_equal(canned_check_sort(CANNED_SORT_MAX + 1LL, &e), KF_EINVAL);
}

static int decode(const char *csv, size_t len, struct canned_list *l,
                  struct canned_err *e, struct canned_csv_errors *errs)
{
    canned_list_init(l);
    return canned_csv_decode((struct kf_str){ csv, len }, l, e, errs);
}

static void test_export_reads_back_the_same(void **state)
{
    struct canned_item in[] = {
        { "售后", "退货", "您好，{nickname}：\r\n退货请寄回\"仓库\"，谢谢",
          3 },
        { "", "公式", "=HYPERLINK(\"http://x\")", 0 },
        { "-负数", "@提及", "+1, -1", 1000000 },
        { "a,b", "tab", "\tindented", 7 },
        /* a text that starts with the mark itself keeps it */
        { "'", "'=撇号", "'=1+1", 1 },
    };
    struct canned_list l;
    struct canned_err e;
    struct canned_csv_errors errs;
    struct kf_buf b;
    size_t i;

    (void)state;
    kf_buf_init(&b, CANNED_CSV_MAX);
    assert_int_equal(canned_csv_encode(in, 5, &b), 0);
    /* Excel's BOM, the header, CRLF; formula-looking cells get a ' and
     * stay out of the formula parser's reach. */
    assert_memory_equal(b.p, "\xEF\xBB\xBF" "folder,title,text,sort\r\n",
                        3 + 24);
    assert_non_null(strstr(b.p, ",\"'=HYPERLINK(\"\"http://x\"\")\",0\r\n"));
    assert_non_null(strstr(b.p, "'-负数,'@提及,\"'+1, -1\",1000000\r\n"));
    assert_non_null(strstr(b.p, "\r\n'',''=撇号,''=1+1,1\r\n"));
    assert_int_equal(decode(b.p, b.len, &l, &e, &errs), 0);
    assert_int_equal(l.len, 5);
    for (i = 0; i < 5; i++) {
        assert_string_equal(l.v[i].folder, in[i].folder);
        assert_string_equal(l.v[i].title, in[i].title);
        assert_string_equal(l.v[i].text, in[i].text);
        assert_int_equal(l.v[i].sort, in[i].sort);
    }
    canned_list_release(&l);
    canned_list_release(&l);
    kf_buf_release(&b);
}

static void test_header_in_any_order_lf_and_blank_lines(void **state)
{
    static const char csv[] = "title,text\n\n问候,\"您好，\n我是{agent}\"\n"
                              "结束,再见\n\n";
    struct canned_list l;
    struct canned_err e;
    struct canned_csv_errors errs;

    (void)state;
    assert_int_equal(decode(csv, sizeof(csv) - 1, &l, &e, &errs), 0);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.v[0].folder, "");
    assert_string_equal(l.v[0].text, "您好，\n我是{agent}");
    assert_int_equal(l.v[1].sort, 0);
    canned_list_release(&l);
}

/* Each hostile file: refused (never a partial list), the row named. */
static void test_hostile_csv_is_refused_with_rows_named(void **state)
{
    static const struct {
        const char *csv;
        long row;           /* the first bad row, 0: none (whole file) */
        const char *says;
    } cases[] = {
        { "folder,title,text,sort\r\na,b,\"never closed\r\n", 2,
          "not closed" },
        { "folder,title,text,sort\r\na,b\"c,d,1\r\n", 2, "quote inside" },
        { "folder,title,text,sort\r\na,\"b\"x,c,1\r\n", 2, "closing quote" },
        { "folder,title,text,sort\r\na,b,c,1\rx,y,z,2\r\n", 2, "CR" },
        { "folder,title,text,sort\r\na,b,c,1\r\na,b,c\r\n", 3, "fields" },
        { "folder,title,text,sort\r\na,b,c,1,extra\r\n", 2, "fields" },
        { "folder,title,text,sort\r\na,,c,1\r\n", 2, "title" },
        { "folder,title,text,sort\r\na,b,c,-1\r\n", 2, "sort" },
        { "folder,title,text,sort\r\na,b,c,99999999999999999999\r\n", 2,
          "sort" },
        { "folder,title,text,sort\r\na,b,c,1x\r\n", 2, "sort" },
        { "folder,title,text,sort\r\na,b,\xff\xfe,1\r\n", 2, "UTF-8" },
        { "folder,title,text,sort\r\na,b\x1b,c,1\r\n", 2, "control" },
        { "name,text\r\na,b\r\n", 0, "columns" },
        { "title,title,text\r\na,b,c\r\n", 0, "columns" },
        { "folder,title,text,sort,secret\r\na,b,c,1,x\r\n", 0, "columns" },
        { "", 0, "empty" },
        { "\xEF\xBB\xBF\r\n\r\n", 0, "empty" },
    };
    struct canned_list l;
    struct canned_err e;
    struct canned_csv_errors errs;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = decode(cases[i].csv, strlen(cases[i].csv), &l, &e, &errs);

        if (rc != KF_EPARSE)
            fail_msg("case %zu: rc %d", i, rc);
        assert_int_equal(l.len, 0);
        assert_null(l.v);
        if (cases[i].row) {
            assert_true(errs.n >= 1);
            assert_int_equal(errs.v[0].row, cases[i].row);
            if (!strstr(errs.v[0].msg, cases[i].says))
                fail_msg("case %zu: %s", i, errs.v[0].msg);
        } else if (!strstr(e.msg, cases[i].says)) {
            fail_msg("case %zu: %s", i, e.msg);
        }
    }
    /* A NUL inside a field. */
    assert_int_equal(decode("title,text\na,b\0c\n", 17, &l, &e, &errs),
                     KF_EPARSE);
    assert_int_equal(errs.v[0].row, 2);
}

/* One good row among bad ones imports nothing; more bad rows than are
 * named are counted; the row count and the byte size are bounded. */
static void test_all_or_nothing_and_bounds(void **state)
{
    struct canned_list l;
    struct canned_err e;
    struct canned_csv_errors errs;
    struct kf_buf b;
    int i;

    (void)state;
    kf_buf_init(&b, CANNED_CSV_MAX + 16);
    assert_int_equal(kf_buf_append_c(&b, "title,text\n"), 0);
    for (i = 0; i < CANNED_CSV_ERRORS_MAX + 5; i++)
        assert_int_equal(kf_buf_append_c(&b, "ok,fine\n,missing title\n"),
                         0);
    assert_int_equal(decode(b.p, b.len, &l, &e, &errs), KF_EPARSE);
    assert_int_equal(l.len, 0);
    assert_int_equal(errs.n, CANNED_CSV_ERRORS_MAX);
    assert_int_equal(errs.more, 5);
    assert_int_equal(errs.v[0].row, 3);
    assert_int_equal(errs.v[1].row, 5);
    assert_non_null(strstr(e.msg, "25 row(s)"));

    kf_buf_reset(&b);
    assert_int_equal(kf_buf_append_c(&b, "title,text\n"), 0);
    for (i = 0; i < CANNED_ROWS_MAX; i++)
        assert_int_equal(kf_buf_printf(&b, "t%d,x\n", i), 0);
    assert_int_equal(decode(b.p, b.len, &l, &e, &errs), 0);
    assert_int_equal(l.len, CANNED_ROWS_MAX);
    canned_list_release(&l);
    assert_int_equal(kf_buf_append_c(&b, "one,more\n"), 0);
    assert_int_equal(decode(b.p, b.len, &l, &e, &errs), KF_EPARSE);
    assert_non_null(strstr(e.msg, "more than"));
    assert_int_equal(l.len, 0);

    kf_buf_release(&b);
    {
        char *big = malloc(CANNED_CSV_MAX + 1);

        assert_non_null(big);
        memset(big, 'x', CANNED_CSV_MAX + 1);
        assert_int_equal(decode(big, CANNED_CSV_MAX + 1, &l, &e, &errs),
                         KF_ETOOBIG);
        free(big);
    }
}

static void render(const char *text, const struct canned_vars *v,
                   const char *want)
{
    struct kf_buf b;

    kf_buf_init(&b, CANNED_RENDER_MAX);
    assert_int_equal(canned_render(S(text), v, &b), 0);
    assert_string_equal(kf_buf_str(&b).p, want);
    kf_buf_release(&b);
}

static void test_variables(void **state)
{
    struct canned_vars v = { "小王", "客服小李", "好物商城" };
    struct canned_vars none = { NULL, "", NULL };
    char name[4 * CANNED_NAME_MAX + 1], long_name[4 * CANNED_NAME_MAX + 8];
    struct kf_buf b;
    int i;

    (void)state;
    render("{nickname}您好，我是{agent}，欢迎来到{account}！{nickname}",
           &v, "小王您好，我是客服小李，欢迎来到好物商城！小王");
    /* Unknown, unclosed, nested and empty braces are text. */
    render("{unknown} {nickname {{agent}} {} {", &v,
           "{unknown} {nickname {客服小李} {} {");
    /* No value: the variable stays, so the agent sees it. */
    render("您好{nickname}，我是{agent}，{account}", &none,
           "您好{nickname}，我是{agent}，{account}");
    /* The nickname: a display name, else the OpenID's short form. */
    canned_nickname("张三", S("oABCDEFGHIJKLMNOPQRSTUVWXYZ"), name,
                    sizeof(name));
    assert_string_equal(name, "张三");
    canned_nickname(NULL, S("oABCDEFGHIJKLMNOPQRSTUVWXYZ"), name,
                    sizeof(name));
    assert_string_equal(name, "oABCDE…UVWXYZ");
    canned_nickname("", S("oShort_id"), name, sizeof(name));
    assert_string_equal(name, "oShort_id");
    /* Values are cut to CANNED_NAME_MAX characters. */
    long_name[0] = '\0';
    for (i = 0; i < CANNED_NAME_MAX + 2; i++)
        memcpy(long_name + 3 * i, "长", 4);
    canned_nickname(long_name, S("o1"), name, sizeof(name));
    assert_int_equal(strlen(name), 3 * CANNED_NAME_MAX);
    v.agent = long_name;
    kf_buf_init(&b, CANNED_RENDER_MAX);
    assert_int_equal(canned_render(S("{agent}"), &v, &b), 0);
    assert_int_equal(b.len, 3 * CANNED_NAME_MAX);
    kf_buf_release(&b);
    /* The worst text fits CANNED_RENDER_MAX. */
    kf_buf_init(&b, CANNED_TEXT_MAX + 1);
    for (i = 0; i < CANNED_TEXT_MAX / 7; i++)
        assert_int_equal(kf_buf_append_c(&b, "{agent}"), 0);
    {
        struct kf_buf out;

        kf_buf_init(&out, CANNED_RENDER_MAX);
        assert_int_equal(canned_render(kf_buf_str(&b), &v, &out), 0);
        assert_int_equal(out.len, (size_t)(CANNED_TEXT_MAX / 7) * 3 *
                                      CANNED_NAME_MAX);
        kf_buf_release(&out);
    }
    kf_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_count_characters_and_refuse_controls),
        cmocka_unit_test(test_export_reads_back_the_same),
        cmocka_unit_test(test_header_in_any_order_lf_and_blank_lines),
        cmocka_unit_test(test_hostile_csv_is_refused_with_rows_named),
        cmocka_unit_test(test_all_or_nothing_and_bounds),
        cmocka_unit_test(test_variables),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
