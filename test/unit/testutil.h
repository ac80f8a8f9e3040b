/* testutil: helpers shared by the cmocka unit tests — reading the vector
 * files under test/vectors (run from test/unit, so paths are
 * "../vectors/..."), hex decoding and TSV rows. */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <stddef.h>
#include <jansson.h>

#define VEC(path) "../vectors/" path

/* Whole file, NUL-terminated; *len excludes the NUL. Fails the test on error.
 * Caller frees. */
char *tu_read_file(const char *path, size_t *len);
/* Parsed JSON file; fails the test on error. Caller json_decref()s. */
json_t *tu_read_json(const char *path);
/* Hex to bytes; returns malloc'd buffer, *len bytes. Fails on bad hex. */
unsigned char *tu_unhex(const char *hex, size_t *len);
/* Convenience: string member of a JSON object (fails the test if absent). */
const char *tu_jstr(const json_t *obj, const char *key);

/* TSV: tu_tsv_load reads the file; rows[0] is the header. Each row is an
 * array of ncols strings pointing into one buffer. */
struct tu_tsv {
    char *buf;
    char ***rows;
    size_t nrows, ncols;
};
void tu_tsv_load(struct tu_tsv *t, const char *path);
/* Column index by header name; fails the test if absent. */
size_t tu_tsv_col(const struct tu_tsv *t, const char *name);
void tu_tsv_release(struct tu_tsv *t);

#endif
