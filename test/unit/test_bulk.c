/* Unit tests for the pure parts of bulk.h: the quiet-hours window in a
 * time zone (bulk_window_open), deterministic activity ids, names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/bulk.h"

#include <errno.h>
#include <string.h>

/* 2026-11-28 00:00:00 UTC */
#define DAY0 1795824000LL

static int64_t at_utc(int h, int m)
{
    return DAY0 + h * 3600 + m * 60;
}

static void test_window_tehran(void **state)
{
    (void)state;
    struct bulk_opts o = {
        .quiet_set = 1, .quiet_start = 8 * 60, .quiet_end = 21 * 60, .timezone = "Asia/Tehran"};
    /* Tehran is UTC+03:30 (no DST since 2022) */
    assert_int_equal(bulk_window_open(&o, at_utc(4, 29)), 0);  /* 07:59 */
    assert_int_equal(bulk_window_open(&o, at_utc(4, 30)), 1);  /* 08:00 */
    assert_int_equal(bulk_window_open(&o, at_utc(17, 29)), 1); /* 20:59 */
    assert_int_equal(bulk_window_open(&o, at_utc(17, 30)), 0); /* 21:00: end is open */
    assert_int_equal(bulk_window_open(&o, at_utc(22, 0)), 0);  /* 01:30 next day */
}

static void test_window_midnight_and_none(void **state)
{
    (void)state;
    struct bulk_opts o = {
        .quiet_set = 1, .quiet_start = 22 * 60, .quiet_end = 6 * 60, .timezone = "UTC"};
    assert_int_equal(bulk_window_open(&o, at_utc(23, 0)), 1);
    assert_int_equal(bulk_window_open(&o, at_utc(5, 59)), 1);
    assert_int_equal(bulk_window_open(&o, at_utc(6, 0)), 0);
    assert_int_equal(bulk_window_open(&o, at_utc(12, 0)), 0);
    o.quiet_set = 0;
    assert_int_equal(bulk_window_open(&o, at_utc(12, 0)), 1);
}

static void test_activity_ids(void **state)
{
    (void)state;
    char a[37], b[37], c[37];
    const char *bulk = "b0000000-0000-4000-8000-00000000000a";
    assert_int_equal(bulk_activity_id(bulk, "contact:c0000000-0000-4000-8000-000000000001", a), 0);
    assert_int_equal(bulk_activity_id(bulk, "contact:c0000000-0000-4000-8000-000000000001", b), 0);
    assert_int_equal(bulk_activity_id(bulk, "lead:c0000000-0000-4000-8000-000000000001", c), 0);
    assert_string_equal(a, b);                  /* deterministic */
    assert_string_not_equal(a, c);              /* per member */
    assert_int_equal(a[14], '5');               /* version 5 */
    assert_true(strchr("89ab", a[19]) != NULL); /* RFC 4122 variant */
    assert_int_equal(bulk_activity_id("{b0000000}", "x", a), -EINVAL);
    assert_int_equal(bulk_activity_id(bulk, NULL, a), -EINVAL);
    assert_string_equal(bulk_state_name(BULK_READY), "Ready");
    assert_string_equal(bulk_member_status_name(BULK_M_DUPLICATE), "duplicate");
    assert_string_equal(bulk_member_status_name(42), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_tehran),
        cmocka_unit_test(test_window_midnight_and_none),
        cmocka_unit_test(test_activity_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
