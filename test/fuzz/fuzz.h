/* fuzz: what the libFuzzer harnesses in test/fuzz/ share — the fixed
 * credentials (the S-* vectors of test/vectors/: Token, EncodingAESKey,
 * AppID, gh_ id) and FZ_CHECK, the oracle that turns a broken contract
 * into a crash libFuzzer saves as a reproducer. Built only by
 * scripts/fuzz.sh (clang -fsanitize=fuzzer,address,undefined). */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FZ_APPID "wx62dd79ea990faa89"
#define FZ_TOKEN "kfDemoToken2024"
#define FZ_AESKEY "GnuI7ALyFFPzKoRDeoH4AjRVnTmwiTVawEMOHmFkHBD"
#define FZ_GHID "gh_3f2a9c1d7e5b"
#define FZ_OPENID "oKx3Q6vW2mZ8yT1pR4sN7uJ0bC5d"
#define FZ_NOW 1716200000       /* the vectors' timestamps are from 2024 */

/* A contract of a lib/ header does not hold: say which, then abort so
 * libFuzzer writes the input out as crash-<sha1>. */
#define FZ_CHECK(cond)                                                  \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "%s:%d: contract broken: %s\n", __FILE__,   \
                    __LINE__, #cond);                                   \
            abort();                                                    \
        }                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
