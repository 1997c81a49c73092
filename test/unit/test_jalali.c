/* Unit tests for jalali (calendar, formatting) and tz (zone offsets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/error.h"
#include "smsys/jalali.h"
#include "smsys/tz.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* UTC instant of a civil date and time, via our own day arithmetic
 * (cross-checked against timegm below). */
static time_t at(int y, int mo, int d, int h, int mi, int s)
{
    return (time_t)(tz_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s);
}

static void g2j(int gy, int gm, int gd, int jy, int jm, int jd)
{
    int y, m, d;
    assert_int_equal(jalali_from_gregorian(gy, gm, gd, &y, &m, &d), 0);
    if (y != jy || m != jm || d != jd)
        fail_msg("%04d-%02d-%02d -> %d/%02d/%02d, want %d/%02d/%02d", gy, gm, gd, y, m, d, jy, jm,
                 jd);
    assert_int_equal(jalali_to_gregorian(jy, jm, jd, &y, &m, &d), 0);
    if (y != gy || m != gm || d != gd)
        fail_msg("%d/%02d/%02d -> %04d-%02d-%02d, want %04d-%02d-%02d", jy, jm, jd, y, m, d, gy, gm,
                 gd);
}

static void test_known_dates(void **state)
{
    (void)state;
    g2j(2024, 3, 20, 1403, 1, 1);   /* Nowruz 1403 */
    g2j(2025, 3, 21, 1404, 1, 1);   /* Nowruz 1404 */
    g2j(2025, 3, 20, 1403, 12, 30); /* 1403 is leap */
    g2j(2021, 3, 20, 1399, 12, 30); /* 1399 is leap */
    g2j(2021, 3, 21, 1400, 1, 1);
    g2j(2022, 3, 20, 1400, 12, 29); /* last day of 1400 */
    g2j(2022, 3, 21, 1401, 1, 1);
    g2j(1979, 2, 11, 1357, 11, 22); /* revolution */
    g2j(1970, 1, 1, 1348, 10, 11);
    g2j(2000, 1, 1, 1378, 10, 11);
    g2j(2024, 9, 22, 1403, 7, 1);  /* first 30-day month */
    g2j(2024, 9, 21, 1403, 6, 31); /* last 31-day month day */
    g2j(2029, 3, 20, 1408, 1, 1);  /* after the 5-year gap 1403 -> 1408 */
    g2j(2030, 3, 20, 1408, 12, 30);
    g2j(1925, 3, 21, 1304, 1, 1);
    int y, m, d;
    assert_int_equal(jalali_to_gregorian(1400, 12, 30, &y, &m, &d), -EINVAL);
    assert_int_equal(jalali_to_gregorian(1404, 12, 30, &y, &m, &d), -EINVAL);
    assert_int_equal(jalali_to_gregorian(1403, 7, 31, &y, &m, &d), -EINVAL);
    assert_int_equal(jalali_to_gregorian(1403, 13, 1, &y, &m, &d), -EINVAL);
    assert_int_equal(jalali_to_gregorian(1403, 1, 0, &y, &m, &d), -EINVAL);
    assert_int_equal(jalali_to_gregorian(1100, 1, 1, &y, &m, &d), -ERANGE);
    assert_int_equal(jalali_from_gregorian(2023, 2, 29, &y, &m, &d), -EINVAL);
    assert_int_equal(jalali_from_gregorian(2024, 2, 29, &y, &m, &d), 0);
    assert_int_equal(jalali_from_gregorian(2024, 13, 1, &y, &m, &d), -EINVAL);
    assert_int_equal(jalali_from_gregorian(3000, 1, 1, &y, &m, &d), -ERANGE);
}

static void test_leap_years(void **state)
{
    (void)state;
    static const int leap[] = {1358, 1362, 1366, 1370, 1375, 1379, 1383, 1387,
                               1391, 1395, 1399, 1403, 1408, 1412, 1416};
    int count = 0;
    for (int y = 1358; y <= 1416; y++) {
        int is = 0;
        for (size_t i = 0; i < sizeof(leap) / sizeof(leap[0]); i++)
            is |= leap[i] == y;
        assert_int_equal(jalali_is_leap(y), is);
        assert_int_equal(jalali_month_days(y, 12), 29 + is);
        count += is;
    }
    assert_int_equal(count, 15);
    assert_int_equal(jalali_month_days(1403, 1), 31);
    assert_int_equal(jalali_month_days(1403, 7), 30);
    assert_int_equal(jalali_is_leap(JALALI_MAX_YEAR + 1), -ERANGE);
    assert_int_equal(jalali_is_leap(JALALI_MIN_YEAR - 1), -ERANGE);
    /* Every 33-year cycle has exactly 8 leap years. */
    for (int start = 1300; start + 33 <= 1500; start += 33) {
        int n = 0;
        for (int y = start; y < start + 33; y++)
            n += jalali_is_leap(y);
        assert_int_equal(n, 8);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    /* Every day from 1300/01/01 to 1500/12/29, both directions, and each
     * day follows the previous one. */
    int gy, gm, gd;
    assert_int_equal(jalali_to_gregorian(1300, 1, 1, &gy, &gm, &gd), 0);
    assert_int_equal(gy, 1921);
    assert_int_equal(gm, 3);
    assert_int_equal(gd, 21);
    int64_t day = tz_days_from_civil(gy, gm, gd), n = 0;
    for (int jy = 1300; jy <= 1500; jy++) {
        int year_days = 0;
        for (int jm = 1; jm <= 12; jm++) {
            int ml = jalali_month_days(jy, jm);
            for (int jd = 1; jd <= ml; jd++, day++, n++, year_days++) {
                int64_t y;
                int m, d, ry, rm, rd;
                tz_civil_from_days(day, &y, &m, &d);
                assert_int_equal(jalali_to_gregorian(jy, jm, jd, &gy, &gm, &gd), 0);
                assert_int_equal(gy, y);
                assert_int_equal(gm, m);
                assert_int_equal(gd, d);
                assert_int_equal(jalali_from_gregorian(gy, gm, gd, &ry, &rm, &rd), 0);
                assert_int_equal(ry, jy);
                assert_int_equal(rm, jm);
                assert_int_equal(rd, jd);
            }
        }
        assert_int_equal(year_days, 365 + jalali_is_leap(jy));
    }
    assert_true(n > 73000);
}

static void test_civil_days(void **state)
{
    (void)state;
    assert_int_equal(tz_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(tz_days_from_civil(2024, 3, 20), 19802);
    assert_int_equal(tz_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(tz_days_from_civil(2000, 3, 1), 11017);
    for (int64_t dd = -800000; dd < 800000; dd += 97) {
        int64_t y;
        int m, d;
        tz_civil_from_days(dd, &y, &m, &d);
        assert_int_equal(tz_days_from_civil(y, m, d), dd);
    }
    /* Cross-check with the C library for a few instants. */
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = 2024 - 1900;
    tm.tm_mon = 2;
    tm.tm_mday = 19;
    tm.tm_hour = 20;
    tm.tm_min = 30;
    assert_int_equal(timegm(&tm), at(2024, 3, 19, 20, 30, 0));
}

static int off(const char *zone, time_t t)
{
    int o = -1;
    assert_int_equal(tz_offset(zone, t, &o), 0);
    return o;
}

static void test_tz_offsets(void **state)
{
    (void)state;
    /* Tehran: +04:30 in summers until 2022, +03:30 all year since. */
    assert_int_equal(off("Asia/Tehran", at(2021, 1, 1, 12, 0, 0)), 12600);
    assert_int_equal(off("Asia/Tehran", at(2021, 6, 1, 12, 0, 0)), 16200);
    assert_int_equal(off("Asia/Tehran", at(2022, 6, 1, 12, 0, 0)), 16200);
    assert_int_equal(off("Asia/Tehran", at(2022, 9, 21, 19, 29, 59)), 16200);
    assert_int_equal(off("Asia/Tehran", at(2022, 9, 21, 19, 30, 0)), 12600);
    assert_int_equal(off("Asia/Tehran", at(2023, 6, 1, 12, 0, 0)), 12600);
    assert_int_equal(off("Asia/Tehran", at(2026, 7, 1, 12, 0, 0)), 12600);
    assert_int_equal(off("Asia/Tehran", at(2090, 7, 1, 12, 0, 0)), 12600); /* footer rule */
    assert_int_equal(off("UTC", at(2024, 7, 1, 0, 0, 0)), 0);
    assert_int_equal(off("Etc/UTC", at(1990, 7, 1, 0, 0, 0)), 0);
    /* London: BST from the last Sunday of March 01:00 UTC to the last
     * Sunday of October 01:00 UTC. */
    assert_int_equal(off("Europe/London", at(2024, 1, 15, 12, 0, 0)), 0);
    assert_int_equal(off("Europe/London", at(2024, 7, 1, 12, 0, 0)), 3600);
    assert_int_equal(off("Europe/London", at(2024, 3, 31, 0, 59, 59)), 0);
    assert_int_equal(off("Europe/London", at(2024, 3, 31, 1, 0, 0)), 3600);
    assert_int_equal(off("Europe/London", at(2024, 10, 27, 0, 59, 59)), 3600);
    assert_int_equal(off("Europe/London", at(2024, 10, 27, 1, 0, 0)), 0);
    /* Far beyond the file's transitions: the POSIX footer decides. */
    assert_int_equal(off("Europe/London", at(2100, 7, 1, 12, 0, 0)), 3600);
    assert_int_equal(off("Europe/London", at(2100, 12, 1, 12, 0, 0)), 0);
    assert_int_equal(off("America/New_York", at(2024, 7, 1, 12, 0, 0)), -4 * 3600);
    assert_int_equal(off("Asia/Kolkata", at(2024, 7, 1, 12, 0, 0)), 19800);

    int o;
    assert_int_equal(tz_offset("../../etc/passwd", 0, &o), -EINVAL);
    assert_int_equal(tz_offset("Mars/Olympus_Mons", 0, &o), -ENOENT);
    struct smsys_err err;
    struct tz *tz;
    assert_int_equal(tz_load("Mars/Olympus_Mons", &tz, &err), -ENOENT);
    assert_non_null(strstr(err.detail, "tzdata"));
    assert_int_equal(tz_load("", &tz, &err), -EINVAL);
    assert_int_equal(tz_load("Asia", &tz, &err), SMSYS_EPROTO); /* a directory */
    static const uint8_t junk[] = "TZif2 not really a zone file at all, nope........";
    assert_int_equal(tz_load_mem("junk", junk, sizeof(junk), &tz, &err), SMSYS_EPROTO);
    assert_null(tz);

    int dst = -1;
    assert_int_equal(tz_load("Europe/London", &tz, &err), 0);
    assert_int_equal(tz_offset_at(tz, at(2024, 7, 1, 0, 0, 0), &o, &dst), 0);
    assert_int_equal(o, 3600);
    assert_int_equal(dst, 1);
    tz_free(tz);
}

static void test_tz_posix(void **state)
{
    (void)state;
    struct tz *tz;
    int o, dst;
    /* Southern hemisphere: DST spans the year end. */
    assert_int_equal(tz_parse_posix("AEST-10AEDT,M10.1.0,M4.1.0/3", &tz), 0);
    tz_offset_at(tz, at(2030, 1, 15, 0, 0, 0), &o, &dst);
    assert_int_equal(o, 39600);
    assert_int_equal(dst, 1);
    tz_offset_at(tz, at(2030, 7, 15, 0, 0, 0), &o, &dst);
    assert_int_equal(o, 36000);
    assert_int_equal(dst, 0);
    tz_free(tz);
    assert_int_equal(tz_parse_posix("<+0330>-3:30", &tz), 0);
    tz_offset_at(tz, 0, &o, NULL);
    assert_int_equal(o, 12600);
    tz_free(tz);
    /* Julian-day rules and explicit DST offset. */
    assert_int_equal(tz_parse_posix("XXX3YYY2,J60/0,J300/0", &tz), 0);
    tz_offset_at(tz, at(2024, 3, 1, 3, 0, 0), &o, &dst); /* J60 = 1 March even in leap years */
    assert_int_equal(o, -7200);
    tz_offset_at(tz, at(2024, 3, 1, 2, 59, 59), &o, &dst);
    assert_int_equal(o, -10800);
    tz_free(tz);
    assert_int_equal(tz_parse_posix("EST5EDT", &tz), 0); /* default US rule */
    tz_offset_at(tz, at(2024, 7, 1, 0, 0, 0), &o, &dst);
    assert_int_equal(o, -4 * 3600);
    tz_free(tz);
    assert_int_equal(tz_parse_posix("", &tz), -EINVAL);
    assert_int_equal(tz_parse_posix("AB0", &tz), -EINVAL);
    assert_int_equal(tz_parse_posix("ABC", &tz), -EINVAL);
    assert_int_equal(tz_parse_posix("ABC1DEF,M13.1.0,M4.1.0", &tz), -EINVAL);
    assert_int_equal(tz_parse_posix("ABC1DEF,M3.1.0", &tz), -EINVAL);
    assert_int_equal(tz_parse_posix("ABC1DEF,M3.1.0,M4.1.0x", &tz), -EINVAL);
}

static void fmt(time_t t, const char *zone, const char *pattern, int persian, const char *want)
{
    struct buf b = BUF_INIT;
    assert_int_equal(jalali_format(t, zone, pattern, persian, &b), 0);
    assert_non_null(b.data);
    if (strcmp(b.data, want) != 0)
        fail_msg("'%s' gave '%s', want '%s'", pattern ? pattern : "(default)", b.data, want);
    buf_free(&b);
}

static void test_format(void **state)
{
    (void)state;
    /* The instant of the year change in Tehran. */
    time_t ny = at(2024, 3, 19, 20, 30, 0);
    fmt(ny, "Asia/Tehran", "yyyy/MM/dd HH:mm", 0, "1403/01/01 00:00");
    fmt(ny, NULL, NULL, 0, "1403/01/01 00:00");
    fmt(ny - 1, NULL, "yyyy/MM/dd HH:mm:ss", 0, "1402/12/29 23:59:59");
    fmt(ny, "UTC", "yyyy/MM/dd HH:mm", 0, "1402/12/29 20:30");
    /* Persian digits and names: Wednesday 1 Farvardin 1403. */
    fmt(ny, NULL, "EEEE d MMMM yyyy", 1,
        "\xda\x86\xd9\x87\xd8\xa7\xd8\xb1\xd8\xb4\xd9\x86\xd8\xa8\xd9\x87 \xdb\xb1 "
        "\xd9\x81\xd8\xb1\xd9\x88\xd8\xb1\xd8\xaf\xdb\x8c\xd9\x86 "
        "\xdb\xb1\xdb\xb4\xdb\xb0\xdb\xb3");
    fmt(ny, NULL, "yy/M/d h:mm 'at' ''H''", 0, "03/1/1 12:00 at '0'");
    /* Summer 2021 in Tehran was +04:30. */
    fmt(at(2021, 6, 1, 12, 0, 0), NULL, "yyyy/MM/dd HH:mm", 0, "1400/03/11 16:30");
    fmt(at(2023, 6, 1, 12, 0, 0), NULL, "yyyy/MM/dd HH:mm", 0, "1402/03/11 15:30");

    struct buf b = BUF_INIT;
    assert_int_equal(jalali_format_gregorian(ny, "Asia/Tehran", "yyyy-MM-dd HH:mm EEEE", 0, &b), 0);
    assert_string_equal(b.data, "2024-03-20 00:00 Wednesday");
    buf_reset(&b);
    assert_int_equal(jalali_format_gregorian(ny, "Europe/London", "d MMMM yyyy HH:mm:ss", 1, &b),
                     0);
    assert_string_equal(b.data, "\xdb\xb1\xdb\xb9 March \xdb\xb2\xdb\xb0\xdb\xb2\xdb\xb4 "
                                "\xdb\xb2\xdb\xb0:\xdb\xb3\xdb\xb0:\xdb\xb0\xdb\xb0");
    buf_reset(&b);
    assert_int_equal(jalali_format(ny, NULL, "yyyy 'open", 0, &b), -EINVAL);
    assert_int_equal(b.len, 0);
    /* a Latin letter that is no field is refused, quoted it is text */
    assert_int_equal(jalali_format(ny, NULL, "qqq", 0, &b), -EINVAL);
    assert_int_equal(jalali_format_gregorian(ny, NULL, "YYYY-MM-DD", 0, &b), -EINVAL);
    assert_int_equal(b.len, 0);
    assert_int_equal(jalali_format(ny, NULL, "'at' HH:mm, d MMMM", 0, &b), 0);
    assert_string_equal(b.data,
                        "at 00:00, 1 \xd9\x81\xd8\xb1\xd9\x88\xd8\xb1\xd8\xaf\xdb\x8c\xd9\x86");
    buf_reset(&b);
    assert_int_equal(jalali_format(ny, "No/Where", NULL, 0, &b), -ENOENT);
    assert_int_equal(jalali_format(at(2400, 1, 1, 0, 0, 0), NULL, NULL, 0, &b), -ERANGE);
    assert_string_equal(jalali_month_name(12), "\xd8\xa7\xd8\xb3\xd9\x81\xd9\x86\xd8\xaf");
    assert_null(jalali_month_name(0));
    assert_null(jalali_weekday_name(7));
    assert_non_null(jalali_weekday_name(6));
    buf_free(&b);
}

static int teardown(void **state)
{
    (void)state;
    tz_cache_clear();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_dates), cmocka_unit_test(test_leap_years),
        cmocka_unit_test(test_round_trip),  cmocka_unit_test(test_civil_days),
        cmocka_unit_test(test_tz_offsets),  cmocka_unit_test(test_tz_posix),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
