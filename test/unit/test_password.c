/* Tests of lib/password: the policy, argon2id hashing with the documented
 * parameters, verification (right, wrong, unknown login, not a hash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "password.h"

#define PW "correct horse 马 battery"

static void test_policy(void **st)
{
    char big[PASSWORD_MAX_BYTES + 2];

    (void)st;
    assert_int_equal(password_check(PW, strlen(PW)), 0);
    assert_int_equal(password_check("123456789", 9), KF_EINVAL);
    assert_int_equal(password_check("1234567890", 10), 0);
    /* ten characters of Chinese: 30 bytes, ten characters */
    assert_int_equal(password_check("客服客服客服客服客服", 30), 0);
    assert_int_equal(password_check("客服客服客服客服客", 27), KF_EINVAL);
    assert_int_equal(password_check("abcdefghij\n", 11), KF_EINVAL);
    assert_int_equal(password_check("abcde\0fghij", 11), KF_EINVAL);
    assert_int_equal(password_check("abcdefghij\xff", 11), KF_EINVAL);
    memset(big, 'a', sizeof(big));
    assert_int_equal(password_check(big, PASSWORD_MAX_BYTES), 0);
    assert_int_equal(password_check(big, PASSWORD_MAX_BYTES + 1), KF_EINVAL);
}

static void test_hash_then_verify(void **st)
{
    char h1[PASSWORD_HASH_MAX], h2[PASSWORD_HASH_MAX];

    (void)st;
    assert_int_equal(password_hash(PW, strlen(PW), h1), 0);
    assert_non_null(strstr(h1, "$argon2id$v=19$m=19456,t=2,p=1$"));
    assert_null(strstr(h1, "horse"));
    assert_int_equal(password_verify(h1, PW, strlen(PW)), 0);
    assert_int_equal(password_verify(h1, PW, strlen(PW) - 1), KF_EBADSIG);
    assert_int_equal(password_verify(h1, "correct horse 马 batterz",
                                     strlen(PW)), KF_EBADSIG);
    /* a fresh salt each time: the same password, another hash */
    assert_int_equal(password_hash(PW, strlen(PW), h2), 0);
    assert_string_not_equal(h1, h2);
    assert_int_equal(password_verify(h2, PW, strlen(PW)), 0);
}

static void test_what_is_no_hash_and_no_user(void **st)
{
    char h[PASSWORD_HASH_MAX];

    (void)st;
    assert_int_equal(password_verify("$argon2i$v=19$m=19456,t=2,p=1$x$y", PW,
                                     strlen(PW)), KF_EINVAL);
    assert_int_equal(password_verify("plain text", PW, strlen(PW)),
                     KF_EINVAL);
    assert_int_equal(password_verify("$argon2id$garbage", PW, strlen(PW)),
                     KF_EINVAL);
    /* no such user: the dummy hash is verified, and it never matches */
    assert_int_equal(password_verify(NULL, PW, strlen(PW)), KF_EBADSIG);
    assert_int_equal(password_verify(NULL, "no such user here", 17),
                     KF_EBADSIG);
    /* over-long input is refused before any hashing */
    assert_int_equal(password_hash(PW, PASSWORD_MAX_BYTES + 1, h), KF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_hash_then_verify),
        cmocka_unit_test(test_what_is_no_hash_and_no_user),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
