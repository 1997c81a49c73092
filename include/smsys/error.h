/* error.h - smsys error codes.
 *
 * Every fallible function returns 0 on success or a negative code: either a
 * negative errno value (-ENOMEM, -EINVAL, -ETIMEDOUT, ...) or one of the
 * SMSYS_E* codes below. Foreign codes (CURLcode, HTTP status, SQLSTATE, OData
 * error codes, provider codes) are translated at the module boundary; the
 * human-readable detail travels in a struct smsys_err where the caller needs
 * it for smsys_lasterror. */
#ifndef SMSYS_ERROR_H
#define SMSYS_ERROR_H

#include <stddef.h>

enum {
    SMSYS_EBASE = -10000,
    SMSYS_ECONFIG = SMSYS_EBASE - 1,    /* bad configuration */
    SMSYS_EPROTO = SMSYS_EBASE - 2,     /* peer broke its protocol / unparsable reply */
    SMSYS_EHTTP = SMSYS_EBASE - 3,      /* HTTP status outside what the caller accepts */
    SMSYS_EPG = SMSYS_EBASE - 4,        /* PostgreSQL error (detail has SQLSTATE) */
    SMSYS_ETEMP = SMSYS_EBASE - 5,      /* temporary: retry with backoff */
    SMSYS_EPERM = SMSYS_EBASE - 6,      /* permanent for this message */
    SMSYS_EACCOUNT = SMSYS_EBASE - 7,   /* account-wide: pause the account */
    SMSYS_EUNKNOWN = SMSYS_EBASE - 8,   /* unknown outcome: may or may not have happened */
    SMSYS_ETHROTTLED = SMSYS_EBASE - 9, /* peer asked us to slow down */
    SMSYS_EAUTH = SMSYS_EBASE - 10,     /* credentials refused */
    SMSYS_ETOOBIG = SMSYS_EBASE - 11,   /* input or reply over a size limit */
    SMSYS_EUTF8 = SMSYS_EBASE - 12,     /* invalid UTF-8 */
    SMSYS_EPHONE = SMSYS_EBASE - 13,    /* not a usable phone number */
    SMSYS_ECLOSED = SMSYS_EBASE - 14,   /* object closed / shutting down */
    SMSYS_ESCHEMA = SMSYS_EBASE - 15,   /* database schema newer than this build */
    SMSYS_ENOTFOUND = SMSYS_EBASE - 16, /* remote row / object not found */
    SMSYS_ECONFLICT = SMSYS_EBASE - 17, /* precondition failed (etag, state) */
    SMSYS_ETEMPLATE = SMSYS_EBASE - 18, /* template error */
    SMSYS_ELAST = SMSYS_EBASE - 19
};

/* A code plus the text a user should see. Embedded by value; no ownership. */
struct smsys_err {
    int code;
    char detail[512];
};

/* Returns a static string for any code: ours, or strerror() for -errno. */
const char *smsys_strerror(int code);

/* Sets e->code and formats e->detail (truncated to fit). Returns code, so
 * `return smsys_err_set(e, -EINVAL, "bad %s", x);` reads naturally.
 * e may be NULL. */
int smsys_err_set(struct smsys_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears e to code 0 and an empty detail. e may be NULL. */
void smsys_err_clear(struct smsys_err *e);

#endif
