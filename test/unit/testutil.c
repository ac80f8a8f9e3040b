/* testutil: vector-file helpers for the unit tests, the choice of free
 * ports and a string setter. */
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p;
    long n;

    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return p;
}

json_t *tu_read_json(const char *path)
{
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);

    if (!j)
        fail_msg("%s:%d: %s", path, err.line, err.text);
    return j;
}

const char *tu_jstr(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    if (!s)
        fail_msg("vector has no string field %s", key);
    return s;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

unsigned char *tu_unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex), i;
    unsigned char *out;

    assert_int_equal(n % 2, 0);
    out = malloc(n / 2 + 1);
    assert_non_null(out);
    for (i = 0; i < n / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

        assert_true(hi >= 0 && lo >= 0);
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    *len = n / 2;
    return out;
}

void tu_tsv_load(struct tu_tsv *t, const char *path)
{
    char *line, *next;
    size_t cap = 16;

    t->buf = tu_read_file(path, NULL);
    t->rows = calloc(cap, sizeof(*t->rows));
    assert_non_null(t->rows);
    t->nrows = 0;
    t->ncols = 0;
    for (line = t->buf; line && *line; line = next) {
        size_t c = 0, ncols = 1;
        char *p;

        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        for (p = line; *p; p++)
            ncols += *p == '\t';
        if (t->nrows == 0)
            t->ncols = ncols;
        assert_int_equal(ncols, t->ncols);
        if (t->nrows == cap) {
            cap *= 2;
            t->rows = realloc(t->rows, cap * sizeof(*t->rows));
            assert_non_null(t->rows);
        }
        t->rows[t->nrows] = calloc(ncols, sizeof(char *));
        assert_non_null(t->rows[t->nrows]);
        t->rows[t->nrows][c++] = line;
        for (p = line; *p; p++)
            if (*p == '\t') {
                *p = '\0';
                t->rows[t->nrows][c++] = p + 1;
            }
        t->nrows++;
    }
    assert_true(t->nrows >= 2);
}

size_t tu_tsv_col(const struct tu_tsv *t, const char *name)
{
    size_t i;

    for (i = 0; i < t->ncols; i++)
        if (strcmp(t->rows[0][i], name) == 0)
            return i;
    fail_msg("no column %s", name);
    return 0;
}

void tu_tsv_release(struct tu_tsv *t)
{
    size_t i;

    for (i = 0; i < t->nrows; i++)
        free(t->rows[i]);
    free(t->rows);
    free(t->buf);
    t->rows = NULL;
    t->buf = NULL;
}

/* The rule of test/pylib/wxkf_ports.py and scripts/ports.sh
 * (docs/operations.md, "Ports of the private services"). */
void tu_port_range(const char *path, int *lo, int *hi)
{
    FILE *f = fopen(path, "r");
    long low = -1;

    if (f) {
        if (fscanf(f, "%ld", &low) != 1)
            low = -1;
        fclose(f);
    }
    *lo = 10000;
    *hi = 32767;
    if (low >= 11000) {
        *hi = (int)(low > 65536 ? 65536 : low) - 1;
    } else if (low >= 2024) {
        *lo = 1024;
        *hi = (int)low - 1;
    }
}

int tu_port_bindable(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, ok;

    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
                                sizeof(one)), 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 1) == 0;
    if (!ok && errno != EADDRINUSE && errno != EACCES)
        fail_msg("port %d: %s", port, strerror(errno));
    close(fd);
    return ok;
}

static int port_hint;

void tu_port_hint(int port)
{
    port_hint = port;
}

int tu_free_port(void)
{
    int lo, hi, size, i, p;
    unsigned int start = 0;
    FILE *f;

    if (port_hint) {
        p = port_hint;
        port_hint = 0;
        return p;
    }
    tu_port_range(TU_PORT_RANGE_FILE, &lo, &hi);
    size = hi - lo + 1;
    f = fopen("/dev/urandom", "rb");
    assert_non_null(f);
    assert_int_equal(fread(&start, sizeof(start), 1, f), 1);
    fclose(f);
    for (i = 0; i < 200 && i < size; i++) {
        p = lo + (int)((start + (unsigned int)i) % (unsigned int)size);
        if (tu_port_bindable(p))
            return p;
    }
    fail_msg("no free port in %d-%d (%d tried)", lo, hi, i);
    return 0;
}

int tu_log_says_in_use(const char *path)
{
    char *text;
    int yes;

    if (access(path, R_OK) != 0)
        return 0;
    text = tu_read_file(path, NULL);
    yes = strstr(text, "Address already in use") != NULL;
    free(text);
    return yes;
}

void tu_set_str(char **field, const char *v)
{
    free(*field);
    *field = strdup(v);
    assert_non_null(*field);
}

char *tu_repeat(const char *s, size_t n)
{
    size_t len = strlen(s), i;
    char *out = malloc(len * n + 1);

    assert_non_null(out);
    for (i = 0; i < n; i++)
        memcpy(out + i * len, s, len);
    out[len * n] = '\0';
    return out;
}
