/* fuzz_tz - parse arbitrary bytes as a TZif file, as a POSIX TZ string and
 * as a date pattern; offsets must stay within a day either way. */
#include "smsys/jalali.h"
#include "smsys/tz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void probe(const struct tz *tz, int64_t base)
{
    static const int64_t at[] = {INT64_MIN,    -4000000000LL, 0,
                                 1700000000LL, 4102444800LL,  INT64_MAX};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        int off = 0, dst = 0;
        tz_offset_at(tz, at[i], &off, &dst);
        if (off < -200 * 3600 || off > 200 * 3600 || (dst != 0 && dst != 1))
            abort();
    }
    int off;
    tz_offset_at(tz, base, &off, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9 || size > 8192)
        return 0;
    int64_t t = 0;
    for (int i = 1; i < 9; i++)
        t = (int64_t)((uint64_t)t << 8 | data[i]);
    const uint8_t *rest = data + 9;
    size_t n = size - 9;
    struct tz *tz = NULL;
    switch (data[0] % 3) {
    case 0:
        if (tz_load_mem("fuzz", rest, n, &tz, NULL) == 0) {
            probe(tz, t);
            tz_free(tz);
        }
        break;
    case 1: {
        char *s = malloc(n + 1);
        if (s == NULL)
            return 0;
        memcpy(s, rest, n);
        s[n] = '\0';
        if (tz_parse_posix(s, &tz) == 0) {
            probe(tz, t);
            tz_free(tz);
        }
        free(s);
        break;
    }
    default: {
        char *s = malloc(n + 1);
        if (s == NULL)
            return 0;
        memcpy(s, rest, n);
        s[n] = '\0';
        struct buf b = BUF_INIT;
        (void)jalali_format((time_t)t, "Asia/Tehran", s, data[0] & 4, &b);
        buf_reset(&b);
        (void)jalali_format_gregorian((time_t)(t % 100000000000LL), "UTC", s, 0, &b);
        buf_free(&b);
        free(s);
        break;
    }
    }
    return 0;
}
