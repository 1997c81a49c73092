/* connmgr_resolve_key: the one place API keys written as env:/file:/literal
 * are turned into secrets, for smsysd and smsysctl alike. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/connmgr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_literal_and_env(void **state)
{
    (void)state;
    char why[256] = "";
    char *k = connmgr_resolve_key("abc123", why, sizeof why);
    assert_string_equal(k, "abc123");
    free(k);
    setenv("SMSYS_T_KEY", "from-env", 1);
    k = connmgr_resolve_key("env:SMSYS_T_KEY", why, sizeof why);
    assert_string_equal(k, "from-env");
    free(k);
    unsetenv("SMSYS_T_KEY");
    assert_null(connmgr_resolve_key("env:SMSYS_T_KEY", why, sizeof why));
    assert_string_equal(why, "apikey: environment variable SMSYS_T_KEY is not set");
}

static void test_file(void **state)
{
    (void)state;
    char path[] = "/tmp/smsys-key-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "s3cret\r\nignored\n", 16), 16);
    close(fd);
    char src[64], why[256] = "";
    snprintf(src, sizeof src, "file:%s", path);
    char *k = connmgr_resolve_key(src, why, sizeof why);
    assert_string_equal(k, "s3cret"); /* first line, line end dropped */
    free(k);
    unlink(path);
    assert_null(connmgr_resolve_key(src, why, sizeof why));
    assert_non_null(strstr(why, "apikey: cannot read /tmp/smsys-key-"));
    assert_null(strstr(why, "s3cret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_and_env),
        cmocka_unit_test(test_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
