/* Unit tests for phone: E.164 normalisation, lines, provider formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/phone.h"

#include <errno.h>
#include <string.h>

static void ok(const char *in, const char *country, const char *want)
{
    char out[PHONE_E164_MAX];
    struct smsys_err err;
    smsys_err_clear(&err);
    int rc = phone_normalize(in, country, out, sizeof(out), &err);
    if (rc)
        fail_msg("'%s' rejected: %s", in, err.detail);
    assert_string_equal(out, want);
}

static void bad(const char *in, const char *want_detail)
{
    char out[PHONE_E164_MAX];
    struct smsys_err err;
    smsys_err_clear(&err);
    assert_int_equal(phone_normalize(in, "IR", out, sizeof(out), &err), SMSYS_EPHONE);
    assert_int_equal(err.code, SMSYS_EPHONE);
    assert_string_equal(out, "");
    if (strstr(err.detail, want_detail) == NULL)
        fail_msg("'%s': detail '%s' lacks '%s'", in, err.detail, want_detail);
}

static void test_iranian_forms(void **state)
{
    (void)state;
    const char *want = "+989121234567";
    const char *forms[] = {
        "09121234567",
        "9121234567",
        "989121234567",
        "+989121234567",
        "+98 912 123 4567",
        "0098 912 123 4567",
        "00989121234567",
        "0912-123-4567",
        "(0912) 123.4567",
        "+98 (0) 912 123 4567",
        "+980912 123 4567",
        "\xDB\xB0\xDB\xB9\xDB\xB1\xDB\xB2\xDB\xB1\xDB\xB2\xDB\xB3\xDB\xB4\xDB\xB5\xDB\xB6\xDB\xB7",
        "\xD9\xA0\xD9\xA9\xD9\xA1\xD9\xA2\xD9\xA1\xD9\xA2\xD9\xA3\xD9\xA4\xD9\xA5\xD9\xA6\xD9\xA7",
        "\xE2\x80\x8E+98 912 123 4567\xE2\x80\x8F", /* LRM ... RLM from RTL copy-paste */
        "\xDB\xB0\xDB\xB9\xDB\xB1\xDB\xB2 123 \xDB\xB4\xDB\xB5\xDB\xB6\xDB\xB7", /* mixed digits */
        "\xEF\xBC\x8B\x39\x38\x39\x31\x32\x31\x32\x33\x34\x35\x36\x37", /* full-width plus */
        "\t0912 123 4567 ",
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
        ok(forms[i], "IR", want);
    ok("09121234567", NULL, want);
    ok("09121234567", "", want);
    ok("09121234567", "ir", want);
    /* Landline (Tehran) with trunk 0, and with +98. */
    ok("021-8888 1234", "IR", "+982188881234");
    ok("+98 21 8888 1234", "IR", "+982188881234");
}

static void test_inbound_matches_contact(void **state)
{
    (void)state;
    /* An inbound from ۰۹۱۲۱۲۳۴۵۶۷ matches a contact stored as +98 912 123 4567. */
    char a[PHONE_E164_MAX], b[PHONE_E164_MAX], c[PHONE_E164_MAX], d[PHONE_E164_MAX];
    assert_int_equal(phone_normalize("\xDB\xB0\xDB\xB9\xDB\xB1\xDB\xB2\xDB\xB1\xDB\xB2\xDB\xB3"
                                     "\xDB\xB4\xDB\xB5\xDB\xB6\xDB\xB7",
                                     "IR", a, sizeof(a), NULL),
                     0);
    assert_int_equal(phone_normalize("+98 912 123 4567", "IR", b, sizeof(b), NULL), 0);
    assert_int_equal(phone_normalize("00989121234567", "IR", c, sizeof(c), NULL), 0);
    assert_int_equal(phone_normalize("9121234567", "IR", d, sizeof(d), NULL), 0);
    assert_string_equal(a, b);
    assert_string_equal(b, c);
    assert_string_equal(c, d);
}

static void test_foreign(void **state)
{
    (void)state;
    ok("+1 (212) 555-1234", "IR", "+12125551234");
    ok("+44 20 7946 0958", "IR", "+442079460958");
    ok("0044 20 7946 0958", "IR", "+442079460958");
    ok("+971 50 123 4567", "IR", "+971501234567");
    ok("+49 30 1234567", "IR", "+49301234567");
    ok("+354 555 1234", "IR", "+3545551234"); /* not in our table: generic length rule */
    /* National numbers with another default country. */
    ok("020 7946 0958", "GB", "+442079460958");
    ok("1 212 555 1234", "US", "+12125551234");
    ok("(212) 555-1234", "US", "+12125551234");
    ok("0532 123 45 67", "TR", "+905321234567");
    /* An unknown default country is a configuration error, not a bad number. */
    char out[PHONE_E164_MAX];
    struct smsys_err err;
    assert_int_equal(phone_normalize("09121234567", "XX", out, sizeof(out), &err), -EINVAL);
    assert_int_equal(phone_normalize("09121234567", "IR", out, 10, &err), -ENOSPC);
}

static void test_invalid(void **state)
{
    (void)state;
    bad("", "empty");
    bad("   ", "empty");
    bad("+", "empty");
    bad("- ( )", "empty");
    bad("0912123456", "too short");
    bad("091212345678", "too long");
    bad("0912abc4567", "contains 'a' at character 5");
    bad("0912\xD8\xB3"
        "1234567",
        "contains '\xD8\xB3' at character 5");
    bad("09121234567 ext 12", "contains 'e'");
    bad("0912+1234567", "'+' may only start");
    bad("++989121234567", "'+' may only start");
    bad("+98 912 123 456", "10 digits after +98 (found 9)");
    bad("+98 912 123 45678", "10 digits after +98 (found 11)");
    bad("+0912 123 4567", "no country code starts with 0");
    bad("00", "no digits after");
    bad("+1 212 555 123", "+1 number has 10 digits after the country code (found 9)");
    bad("+44 20 79", "+44 number has 9 to 10 digits");
    bad("+353 12", "too short");
    bad("+3534567890123456", "too long");
    bad("12345", "too short");
    bad("2188881234", "not an Iranian number");
    bad("0912123\x01"
        "4567",
        "control character U+0001");
    bad("\xC0\xAF", "not valid UTF-8");
    bad("123456789012345678901234", "too long");
    char out[PHONE_E164_MAX];
    assert_int_equal(phone_normalize(NULL, "IR", out, sizeof(out), NULL), SMSYS_EPHONE);
}

static void test_lines(void **state)
{
    (void)state;
    char out[PHONE_E164_MAX];
    struct smsys_err err;
    assert_int_equal(phone_normalize_line("30001234", out, sizeof(out), &err), 0);
    assert_string_equal(out, "30001234");
    assert_int_equal(phone_normalize_line("1000 5678", out, sizeof(out), &err), 0);
    assert_string_equal(out, "10005678");
    assert_int_equal(phone_normalize_line("50001234567", out, sizeof(out), &err), 0);
    assert_string_equal(out, "50001234567");
    assert_int_equal(phone_normalize_line("\xDB\xB3\xDB\xB0\xDB\xB0\xDB\xB0\xDB\xB1\xDB\xB2", out,
                                          sizeof(out), &err),
                     0);
    assert_string_equal(out, "300012");
    assert_int_equal(phone_normalize_line("0912 123 4567", out, sizeof(out), &err), 0);
    assert_string_equal(out, "+989121234567");
    assert_int_equal(phone_normalize_line("+98 21 8888 1234", out, sizeof(out), &err), 0);
    assert_string_equal(out, "+982188881234");
    assert_int_equal(phone_normalize_line("989121234567", out, sizeof(out), &err), 0);
    assert_string_equal(out, "+989121234567");
    assert_int_equal(phone_normalize_line("12", out, sizeof(out), &err), SMSYS_EPHONE);
    assert_non_null(strstr(err.detail, "short code"));
    assert_int_equal(phone_normalize_line("3000x", out, sizeof(out), &err), SMSYS_EPHONE);
    assert_int_equal(phone_normalize_line("1234567890123456", out, sizeof(out), &err),
                     SMSYS_EPHONE);
}

static void test_formats(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(phone_format("+989121234567", PHONE_E164, out, sizeof(out)), 0);
    assert_string_equal(out, "+989121234567");
    assert_int_equal(phone_format("+989121234567", PHONE_INTL_NOPLUS, out, sizeof(out)), 0);
    assert_string_equal(out, "989121234567");
    assert_int_equal(phone_format("+989121234567", PHONE_NATIONAL, out, sizeof(out)), 0);
    assert_string_equal(out, "09121234567");
    assert_int_equal(phone_format("+982188881234", PHONE_NATIONAL, out, sizeof(out)), 0);
    assert_string_equal(out, "02188881234");
    assert_int_equal(phone_format("+442079460958", PHONE_NATIONAL, out, sizeof(out)), SMSYS_EPHONE);
    assert_int_equal(phone_format("+442079460958", PHONE_INTL_NOPLUS, out, sizeof(out)), 0);
    assert_string_equal(out, "442079460958");
    /* Short codes pass through unchanged. */
    assert_int_equal(phone_format("30001234", PHONE_NATIONAL, out, sizeof(out)), 0);
    assert_string_equal(out, "30001234");
    assert_int_equal(phone_format("30001234", PHONE_E164, out, sizeof(out)), 0);
    assert_string_equal(out, "30001234");
    assert_int_equal(phone_format("+98912x", PHONE_E164, out, sizeof(out)), SMSYS_EPHONE);
    assert_int_equal(phone_format("+", PHONE_E164, out, sizeof(out)), SMSYS_EPHONE);
    assert_int_equal(phone_format("+989121234567", PHONE_E164, out, 13), -ENOSPC);
    assert_int_equal(phone_format("+989121234567", (enum phone_fmt)9, out, sizeof(out)), -EINVAL);

    assert_true(phone_is_ir_mobile("+989121234567"));
    assert_false(phone_is_ir_mobile("+982188881234"));
    assert_false(phone_is_ir_mobile("+98912123456"));
    assert_false(phone_is_ir_mobile("09121234567"));
    assert_false(phone_is_ir_mobile(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iranian_forms), cmocka_unit_test(test_inbound_matches_contact),
        cmocka_unit_test(test_foreign),       cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_lines),         cmocka_unit_test(test_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
