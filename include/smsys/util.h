/* util.h - small helpers every module uses. */
#ifndef SMSYS_UTIL_H
#define SMSYS_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The struct that embeds `ptr` as `member` (libuv handles, list nodes). */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Milliseconds on a monotonic clock (for timeouts and rates). */
uint64_t util_now_ms(void);

/* Microseconds since the Unix epoch, wall clock (for records and logs). */
int64_t util_wall_us(void);

/* Formats a wall-clock time (µs since epoch) as ISO-8601 UTC with
 * milliseconds, "2026-11-28T07:50:44.123Z", into buf (>= 25 bytes). */
void util_iso8601(int64_t wall_us, char *buf, size_t len);

/* Parses a decimal integer in [min,max], the whole string. Returns 0 or
 * -EINVAL / -ERANGE. Replaces atoi, which reports nothing. */
int util_parse_int(const char *s, long long min, long long max, long long *out);

/* strdup that returns NULL for NULL. The caller frees the copy. */
char *util_strdup0(const char *s);

/* Constant-time comparison of two byte strings (secrets, signatures). */
int util_memeq_ct(const void *a, const void *b, size_t n);

/* Fills buf with a random v4 UUID in lower-case 8-4-4-4-12 form (37 bytes). */
void util_uuid4(char buf[37]);

#endif
