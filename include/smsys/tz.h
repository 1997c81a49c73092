/* tz.h - UTC offsets of IANA time zones, read from the system tzdata.
 *
 * Why not setenv("TZ") + localtime_r: that mutates process state, is not
 * thread-safe, and would make every template render depend on the
 * environment. Instead this reads the compiled zone file
 * ($TZDIR or /usr/share/zoneinfo)/<Zone> (RFC 8536 TZif, the 64-bit v2+
 * section; v1 files are read from their 32-bit section) and answers from its
 * transitions, and for instants after the last transition from the POSIX TZ
 * rule in the file's footer (e.g. "GMT0BST,M3.5.0/1,M10.5.0").
 * Debian ships the files in the "tzdata" package; a missing file is an error
 * that says so. Leap-second ("right/") zones are read but their leap
 * records are ignored. */
#ifndef SMSYS_TZ_H
#define SMSYS_TZ_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "smsys/error.h"

struct tz; /* opaque; tz_load / tz_parse_posix create it, tz_free frees it */

/* Reads the zone file for name ("Asia/Tehran", "UTC", "Europe/London").
 * The name must be a relative path of letters, digits, '_', '-', '+' and
 * '/' without "..". Returns 0 and *out (caller frees with tz_free), or
 * -EINVAL (bad name), -ENOENT (no such zone / tzdata missing), SMSYS_EPROTO
 * (not a valid TZif file), -ENOMEM; err (may be NULL) says which.
 * Blocking file I/O: call at start-up or from a worker, or use tz_offset
 * which caches. */
int tz_load(const char *name, struct tz **out, struct smsys_err *err);

/* Parses TZif data already in memory (for tests and fuzzing); as tz_load. */
int tz_load_mem(const char *name, const uint8_t *data, size_t len, struct tz **out,
                struct smsys_err *err);

/* Builds a zone from a POSIX TZ string alone ("<+0330>-3:30",
 * "AEST-10AEDT,M10.1.0,M4.1.0/3"). Returns 0 / -EINVAL / -ENOMEM. */
int tz_parse_posix(const char *spec, struct tz **out);

void tz_free(struct tz *tz);

/* The offset from UTC in seconds (east positive: Tehran +12600) in force
 * at the instant utc, and whether it is daylight saving time (is_dst may
 * be NULL). Returns 0 (a loaded zone always answers). */
int tz_offset_at(const struct tz *tz, int64_t utc, int *offset_s, int *is_dst);

/* tz_offset_at for a zone by name, loading it on first use into a small
 * process-wide cache (mutex-protected, so any thread may call it; zones
 * stay loaded until tz_cache_clear). Returns as tz_load. */
int tz_offset(const char *zone, time_t utc, int *offset_s);

/* Frees the cache (at shutdown; not while other threads use tz_offset). */
void tz_cache_clear(void);

/* Proleptic Gregorian calendar helpers shared with jalali.c: days since
 * 1970-01-01 for a civil date (month 1-12, day 1-31, not validated), and
 * back. */
int64_t tz_days_from_civil(int64_t y, int m, int d);
void tz_civil_from_days(int64_t days, int64_t *y, int *m, int *d);

#endif
