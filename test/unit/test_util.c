/* Unit tests for error, util, buf and log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/buf.h"
#include "smsys/error.h"
#include "smsys/log.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(smsys_strerror(0), "success");
    assert_string_equal(smsys_strerror(SMSYS_EUTF8), "invalid UTF-8");
    assert_string_equal(smsys_strerror(-ENOMEM), strerror(ENOMEM));
    assert_string_equal(smsys_strerror(SMSYS_ELAST - 5), "unknown smsys error");
    struct smsys_err e;
    assert_int_equal(smsys_err_set(&e, SMSYS_EPERM, "bad %s", "number"), SMSYS_EPERM);
    assert_string_equal(e.detail, "bad number");
    smsys_err_clear(&e);
    assert_int_equal(e.code, 0);
}

static void test_parse_int(void **state)
{
    (void)state;
    long long v = 0;
    assert_int_equal(util_parse_int("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(util_parse_int("42x", 0, 100, &v), -EINVAL);
    assert_int_equal(util_parse_int("", 0, 100, &v), -EINVAL);
    assert_int_equal(util_parse_int("101", 0, 100, &v), -ERANGE);
    assert_int_equal(util_parse_int("-1", 0, 100, &v), -ERANGE);
    assert_int_equal(util_parse_int("99999999999999999999", 0, 100, &v), -ERANGE);
}

static void test_buf(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(buf_printf(&b, "%d,", i), 0);
    assert_int_equal(strncmp(b.data, "0,1,2,", 6), 0);
    assert_int_equal(b.data[b.len], '\0');
    buf_reset(&b);
    assert_int_equal(buf_put_urlenc(&b, "a b/c~ي"), 0);
    assert_string_equal(b.data, "a%20b%2Fc~%D9%8A");
    buf_reset(&b);
    assert_int_equal(buf_put_jsonstr(&b, "q\"\\\n\x01"), 0);
    assert_string_equal(b.data, "q\\\"\\\\\\n\\u0001");
    buf_free(&b);

    struct buf c = BUF_INIT;
    c.max = 4;
    assert_int_equal(buf_puts(&c, "abcd"), 0);
    assert_int_equal(buf_puts(&c, "e"), -E2BIG);
    assert_string_equal(c.data, "abcd");
    char *s = buf_steal(&c);
    assert_string_equal(s, "abcd");
    free(s);
    struct buf d = BUF_INIT;
    s = buf_steal(&d);
    assert_string_equal(s, "");
    free(s);
}

static void test_uuid(void **state)
{
    (void)state;
    char a[37], b[37];
    util_uuid4(a);
    util_uuid4(b);
    assert_int_equal(strlen(a), 36);
    assert_int_equal(a[14], '4');
    assert_string_not_equal(a, b);
    assert_true(util_memeq_ct("abc", "abc", 3));
    assert_false(util_memeq_ct("abc", "abd", 3));
}

static void test_log_json(void **state)
{
    (void)state;
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    log_setup(LOG_DEBUG, LOG_JSON, f);
    log_info("pg connected", "host=%s note=\"%s\"", "/run/pg", log_q("a \"b\"\nc"));
    log_debug("dbg", "n=%d", 5);
    log_setup(LOG_WARN, LOG_TEXT, f);
    log_info("hidden", "x=1");
    log_warn("shown", "x=2");
    fclose(f);
    assert_non_null(strstr(mem, "\"event\":\"pg connected\",\"host\":\"/run/pg\""));
    assert_non_null(strstr(mem, "\"note\":\"a \\\"b\\\"\\nc\""));
    assert_non_null(strstr(mem, "\"n\":\"5\""));
    assert_null(strstr(mem, "hidden"));
    assert_non_null(strstr(mem, "warn  shown x=2"));
    free(mem);
    enum log_level l;
    assert_int_equal(log_level_parse("DEBUG", &l), 0);
    assert_int_equal(l, LOG_DEBUG);
    assert_int_equal(log_level_parse("loud", &l), -EINVAL);
    log_setup(LOG_INFO, LOG_TEXT, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror), cmocka_unit_test(test_parse_int),
        cmocka_unit_test(test_buf),      cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_log_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
