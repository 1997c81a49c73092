/* jalali.c - Jalali calendar arithmetic and date formatting.
 *
 * Dates are handled as day numbers (days since 1970-01-01). A Jalali year
 * starts on its Nowruz day, found from a known anchor (1403/01/01 =
 * 2024-03-20) plus 365 days a year plus the leap days in between; the leap
 * days come from the 33-year cycle, counted per whole cycle so a
 * conversion costs the same for any year. */
#include "smsys/jalali.h"

#include "smsys/tz.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define ANCHOR_YEAR 1403
#define ANCHOR_DAY  19802 /* 2024-03-20 as days since 1970-01-01 (tested) */

static int rule_leap(int64_t y)
{
    int64_t r = (25 * y + 11) % 33;
    if (r < 0)
        r += 33;
    return r < 8;
}

/* Leap years in [0, y) for y >= 0: the rule repeats every 33 years with 8
 * leap years in each cycle. */
static int64_t leaps_before(int64_t y)
{
    int64_t n = y / 33 * 8;
    for (int64_t r = 0; r < y % 33; r++)
        n += rule_leap(r);
    return n;
}

static int64_t nowruz(int64_t jy)
{
    return ANCHOR_DAY + 365 * (jy - ANCHOR_YEAR) + leaps_before(jy) - leaps_before(ANCHOR_YEAR);
}

static int in_range(int64_t jy)
{
    return jy >= JALALI_MIN_YEAR && jy <= JALALI_MAX_YEAR;
}

int jalali_is_leap(int jy)
{
    if (!in_range(jy))
        return -ERANGE;
    return rule_leap(jy);
}

int jalali_month_days(int jy, int jm)
{
    if (!in_range(jy))
        return -ERANGE;
    if (jm < 1 || jm > 12)
        return -EINVAL;
    if (jm <= 6)
        return 31;
    if (jm <= 11)
        return 30;
    return 29 + rule_leap(jy);
}

/* Day number -> Jalali date; -ERANGE outside the supported years. */
static int jalali_from_days(int64_t days, int *jy, int *jm, int *jd)
{
    int64_t base = nowruz(ANCHOR_YEAR);
    int64_t diff = days - base;
    /* Estimate with the mean year (365 + 8/33 days) and correct by one. */
    int64_t y = ANCHOR_YEAR + (diff >= 0 ? diff * 33 / 12053 : -((-diff * 33 + 12052) / 12053));
    if (y < JALALI_MIN_YEAR - 2 || y > JALALI_MAX_YEAR + 2)
        return -ERANGE;
    while (nowruz(y) > days)
        y--;
    while (nowruz(y + 1) <= days)
        y++;
    if (!in_range(y))
        return -ERANGE;
    int64_t doy = days - nowruz(y);
    *jy = (int)y;
    if (doy < 186) {
        *jm = (int)(doy / 31) + 1;
        *jd = (int)(doy % 31) + 1;
    } else {
        doy -= 186;
        *jm = (int)(doy / 30) + 7;
        *jd = (int)(doy % 30) + 1;
    }
    return 0;
}

static int greg_month_len(int64_t y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : len[m - 1];
}

int jalali_from_gregorian(int gy, int gm, int gd, int *jy, int *jm, int *jd)
{
    if (gm < 1 || gm > 12 || gd < 1 || gd > greg_month_len(gy, gm))
        return -EINVAL;
    if (gy < 1700 || gy > 2400)
        return -ERANGE;
    return jalali_from_days(tz_days_from_civil(gy, gm, gd), jy, jm, jd);
}

int jalali_to_gregorian(int jy, int jm, int jd, int *gy, int *gm, int *gd)
{
    int ml = jalali_month_days(jy, jm);
    if (ml < 0)
        return ml;
    if (jd < 1 || jd > ml)
        return -EINVAL;
    int64_t days = nowruz(jy) + (jm <= 7 ? (jm - 1) * 31 : 186 + (jm - 7) * 30) + jd - 1;
    int64_t y;
    tz_civil_from_days(days, &y, gm, gd);
    *gy = (int)y;
    return 0;
}

static const char *const month_fa[12] = {
    "\xd9\x81\xd8\xb1\xd9\x88\xd8\xb1\xd8\xaf\xdb\x8c\xd9\x86",         /* فروردین */
    "\xd8\xa7\xd8\xb1\xd8\xaf\xdb\x8c\xd8\xa8\xd9\x87\xd8\xb4\xd8\xaa", /* اردیبهشت */
    "\xd8\xae\xd8\xb1\xd8\xaf\xd8\xa7\xd8\xaf",                         /* خرداد */
    "\xd8\xaa\xdb\x8c\xd8\xb1",                                         /* تیر */
    "\xd9\x85\xd8\xb1\xd8\xaf\xd8\xa7\xd8\xaf",                         /* مرداد */
    "\xd8\xb4\xd9\x87\xd8\xb1\xdb\x8c\xd9\x88\xd8\xb1",                 /* شهریور */
    "\xd9\x85\xd9\x87\xd8\xb1",                                         /* مهر */
    "\xd8\xa2\xd8\xa8\xd8\xa7\xd9\x86",                                 /* آبان */
    "\xd8\xa2\xd8\xb0\xd8\xb1",                                         /* آذر */
    "\xd8\xaf\xdb\x8c",                                                 /* دی */
    "\xd8\xa8\xd9\x87\xd9\x85\xd9\x86",                                 /* بهمن */
    "\xd8\xa7\xd8\xb3\xd9\x81\xd9\x86\xd8\xaf",                         /* اسفند */
};

static const char *const weekday_fa[7] = {
    "\xdb\x8c\xda\xa9\xe2\x80\x8c\xd8\xb4\xd9\x86\xd8\xa8\xd9\x87",         /* یک‌شنبه */
    "\xd8\xaf\xd9\x88\xd8\xb4\xd9\x86\xd8\xa8\xd9\x87",                     /* دوشنبه */
    "\xd8\xb3\xd9\x87\xe2\x80\x8c\xd8\xb4\xd9\x86\xd8\xa8\xd9\x87",         /* سه‌شنبه */
    "\xda\x86\xd9\x87\xd8\xa7\xd8\xb1\xd8\xb4\xd9\x86\xd8\xa8\xd9\x87",     /* چهارشنبه */
    "\xd9\xbe\xd9\x86\xd8\xac\xe2\x80\x8c\xd8\xb4\xd9\x86\xd8\xa8\xd9\x87", /* پنج‌شنبه */
    "\xd8\xac\xd9\x85\xd8\xb9\xd9\x87",                                     /* جمعه */
    "\xd8\xb4\xd9\x86\xd8\xa8\xd9\x87",                                     /* شنبه */
};

static const char *const month_en[12] = {"January",   "February", "March",    "April",
                                         "May",       "June",     "July",     "August",
                                         "September", "October",  "November", "December"};
static const char *const weekday_en[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday"};

const char *jalali_month_name(int jm)
{
    return jm >= 1 && jm <= 12 ? month_fa[jm - 1] : NULL;
}

const char *jalali_weekday_name(int wday)
{
    return wday >= 0 && wday <= 6 ? weekday_fa[wday] : NULL;
}

/* ---- Formatting ---------------------------------------------------------- */

struct fields {
    int64_t year;
    int month, day, wday, hour, min, sec;
    int jalali;
};

static int put_num(struct buf *out, int64_t v, int width, int persian)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%0*lld", width, (long long)v);
    if (n < 0)
        return -EINVAL;
    if (!persian)
        return buf_append(out, tmp, (size_t)n);
    for (int i = 0; i < n; i++) {
        int rc;
        if (tmp[i] >= '0' && tmp[i] <= '9') {
            char u[2] = {(char)0xDB, (char)(0xB0 + (tmp[i] - '0'))}; /* U+06F0 + d */
            rc = buf_append(out, u, 2);
        } else {
            rc = buf_putc(out, tmp[i]);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int field(struct buf *out, const struct fields *f, char c, size_t run, int persian)
{
    int w = run >= 2 ? 2 : 1;
    switch (c) {
    case 'y':
        if (run == 2)
            return put_num(out, ((f->year % 100) + 100) % 100, 2, persian);
        return put_num(out, f->year, run >= 4 ? 4 : 1, persian);
    case 'M':
        if (run >= 3)
            return buf_puts(out, f->jalali ? month_fa[f->month - 1] : month_en[f->month - 1]);
        return put_num(out, f->month, w, persian);
    case 'd':
        return put_num(out, f->day, w, persian);
    case 'E':
        return buf_puts(out, f->jalali ? weekday_fa[f->wday] : weekday_en[f->wday]);
    case 'H':
        return put_num(out, f->hour, w, persian);
    case 'h':
        return put_num(out, f->hour % 12 ? f->hour % 12 : 12, w, persian);
    case 'm':
        return put_num(out, f->min, w, persian);
    case 's':
        return put_num(out, f->sec, w, persian);
    default:
        return -EINVAL;
    }
}

static int render(const struct fields *f, const char *pattern, int persian, struct buf *out)
{
    const char *p = pattern;
    int rc = 0;
    while (*p && rc == 0) {
        char c = *p;
        if (c == '\'') {
            if (p[1] == '\'') {
                rc = buf_putc(out, '\'');
                p += 2;
                continue;
            }
            const char *end = strchr(p + 1, '\'');
            if (end == NULL)
                return -EINVAL;
            rc = buf_append(out, p + 1, (size_t)(end - p - 1));
            p = end + 1;
            continue;
        }
        if (strchr("yMdEHhms", c) != NULL) {
            size_t run = 0;
            while (p[run] == c)
                run++;
            rc = field(out, f, c, run, persian);
            p += run;
            continue;
        }
        /* A Latin letter that is no field is most likely a typo ("qqq",
         * "YYYY") or a word meant as text: refused, so the template fails
         * at save time instead of sending the letters. */
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            return -EINVAL;
        rc = buf_putc(out, c);
        p++;
    }
    return rc;
}

static int format(time_t utc, const char *tz, const char *pattern, int persian, int jalali,
                  struct buf *out)
{
    int off = 0;
    int rc = tz_offset(tz ? tz : "Asia/Tehran", utc, &off);
    if (rc)
        return rc;
    /* Beyond +-10^13 s (300 000 years) no calendar here is meaningful. */
    if ((int64_t)utc > 10000000000000LL || (int64_t)utc < -10000000000000LL)
        return -ERANGE;
    int64_t local = (int64_t)utc + off;
    int64_t days = local / 86400, sod = local % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    struct fields f;
    f.jalali = jalali;
    f.wday = (int)(((days + 4) % 7 + 7) % 7);
    f.hour = (int)(sod / 3600);
    f.min = (int)(sod / 60 % 60);
    f.sec = (int)(sod % 60);
    if (jalali) {
        int jy, jm, jd;
        rc = jalali_from_days(days, &jy, &jm, &jd);
        if (rc)
            return rc;
        f.year = jy;
        f.month = jm;
        f.day = jd;
    } else {
        tz_civil_from_days(days, &f.year, &f.month, &f.day);
    }
    size_t start = out->len;
    rc = render(&f, pattern ? pattern : "yyyy/MM/dd HH:mm", persian, out);
    if (rc) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}

int jalali_format(time_t utc, const char *tz, const char *pattern, int persian_digits,
                  struct buf *out)
{
    return format(utc, tz, pattern, persian_digits, 1, out);
}

int jalali_format_gregorian(time_t utc, const char *tz, const char *pattern, int persian_digits,
                            struct buf *out)
{
    return format(utc, tz, pattern, persian_digits, 0, out);
}
