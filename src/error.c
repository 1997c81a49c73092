/* error.c - error code names and the detail carrier. */
#include "smsys/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const names[] = {
    [0] = "unknown smsys error",
    [1] = "configuration error",
    [2] = "protocol error",
    [3] = "unexpected HTTP status",
    [4] = "PostgreSQL error",
    [5] = "temporary failure",
    [6] = "permanent failure",
    [7] = "account-wide failure",
    [8] = "unknown outcome",
    [9] = "throttled",
    [10] = "authentication failed",
    [11] = "too big",
    [12] = "invalid UTF-8",
    [13] = "invalid phone number",
    [14] = "closed",
    [15] = "database schema is newer than this build",
    [16] = "not found",
    [17] = "conflict",
    [18] = "template error",
};

const char *smsys_strerror(int code)
{
    if (code == 0)
        return "success";
    if (code > SMSYS_EBASE)
        return strerror(-code);
    int i = SMSYS_EBASE - code;
    if (i <= 0 || (size_t)i >= sizeof(names) / sizeof(names[0]))
        return names[0];
    return names[i];
}

int smsys_err_set(struct smsys_err *e, int code, const char *fmt, ...)
{
    if (e == NULL)
        return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
    va_end(ap);
    return code;
}

void smsys_err_clear(struct smsys_err *e)
{
    if (e == NULL)
        return;
    e->code = 0;
    e->detail[0] = '\0';
}
