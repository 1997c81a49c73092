/* jalali.h - the Jalali (Solar Hijri) calendar and date formatting.
 *
 * Leap years follow the 33-year arithmetic cycle: Jalali year y is leap
 * when (25 * y + 11) mod 33 < 8. Over JALALI_MIN_YEAR..JALALI_MAX_YEAR
 * (Gregorian 1821-2255) this gives the same years as the astronomical
 * (vernal equinox at Tehran noon) calendar Iran uses, e.g. 1399 and 1403
 * are leap and 1404/01/01 is 2025-03-21; outside that range the rule and
 * the sky drift apart, so the functions refuse dates there (-ERANGE).
 * Months 1-6 have 31 days, 7-11 have 30, month 12 has 29 (30 in a leap
 * year). Pure functions except jalali_format*, which read zone files
 * through tz_offset (cached after the first use). */
#ifndef SMSYS_JALALI_H
#define SMSYS_JALALI_H

#include <time.h>

#include "smsys/buf.h"

#define JALALI_MIN_YEAR 1200
#define JALALI_MAX_YEAR 1633

/* 1 if jy is a leap year, 0 if not, -ERANGE outside the supported range. */
int jalali_is_leap(int jy);

/* Days in month jm of year jy (29-31), or -EINVAL / -ERANGE. */
int jalali_month_days(int jy, int jm);

/* Gregorian -> Jalali. Returns 0, -EINVAL for an impossible Gregorian
 * date, or -ERANGE outside the supported range. */
int jalali_from_gregorian(int gy, int gm, int gd, int *jy, int *jm, int *jd);

/* Jalali -> Gregorian. Returns 0, -EINVAL for an impossible Jalali date
 * (1403/12/30 exists, 1404/12/30 does not), or -ERANGE. */
int jalali_to_gregorian(int jy, int jm, int jd, int *gy, int *gm, int *gd);

/* Persian month name for 1-12 ("فروردین" ... "اسفند"), NULL otherwise. */
const char *jalali_month_name(int jm);

/* Persian weekday name, 0 = Sunday ("یکشنبه") ... 6 = Saturday ("شنبه"),
 * NULL otherwise. */
const char *jalali_weekday_name(int wday);

/* Appends the local time of the instant utc in zone tz (NULL = "Asia/Tehran")
 * on the Jalali calendar, laid out by pattern (NULL = "yyyy/MM/dd HH:mm"):
 *   yyyy year (4 digits), yy (2 digits), y (as is);
 *   MMMM month name, MM month (2 digits), M;
 *   dd, d day; EEEE weekday name;
 *   HH, H hour 0-23; hh, h hour 1-12; mm, m minutes; ss, s seconds;
 *   'text' literal text ('' is a quote); other Latin letters are refused
 *   (a typo such as YYYY, or a word that needs quotes); anything else
 *   (digits, punctuation, spaces, Persian text) is copied.
 * With persian_digits the numbers (not the literal text) use Persian
 * digits. Returns 0, -EINVAL (bad pattern: unclosed quote or a Latin
 * letter that is no field), what tz_offset
 * returns for an unknown zone, -ERANGE outside the supported years, or a
 * buffer error; out is left as it was on error. The caller frees out. */
int jalali_format(time_t utc, const char *tz, const char *pattern, int persian_digits,
                  struct buf *out);

/* The same on the Gregorian calendar (month and weekday names in English),
 * for templates that ask for Gregorian dates in a given zone. */
int jalali_format_gregorian(time_t utc, const char *tz, const char *pattern, int persian_digits,
                            struct buf *out);

#endif
