/* phone.h - phone numbers: normalisation to E.164 and provider formats.
 *
 * Internally every recipient and sender is E.164 ("+989121234567"); each
 * connector converts to what its provider wants with phone_format(). Input
 * comes from CRM fields and inbound messages typed by people, so the parser
 * accepts what Iranians write (docs/phone-numbers.md):
 *   - digits in ASCII, Persian (U+06F0-U+06F9) or Arabic-Indic (U+0660-U+0669);
 *   - separators: space (and no-break / thin spaces), tab, '-', '.', '(', ')',
 *     '/', and invisible bidi marks (LRM, RLM, ALM, embeddings, isolates),
 *     which copy-paste from right-to-left text tends to add;
 *   - one leading '+' (or its full-width form), or the "00" international
 *     prefix; for Iran also "98...", "0..." (trunk prefix) and the bare ten
 *     digit form "9xxxxxxxxx" (a mobile without its 0);
 *   - "+98 0912..." (trunk 0 kept after the country code) is a common slip
 *     and is accepted.
 * Everything else - letters, a second '+', empty input, too few or too many
 * digits - is SMSYS_EPHONE with a sentence for the user in err->detail.
 *
 * Functions are pure and thread-safe; outputs go to caller buffers. */
#ifndef SMSYS_PHONE_H
#define SMSYS_PHONE_H

#include <stddef.h>

#include "smsys/error.h"

/* Longest E.164 string: '+' 15 digits NUL. */
#define PHONE_E164_MAX 17

/* Normalises in (NUL-terminated UTF-8) to E.164 in out. default_country is
 * an ISO 3166 alpha-2 code used for numbers written without a country code
 * ("IR" when NULL or empty; see phone.c for the countries known); numbers
 * with '+' or "00" need no default. Returns 0, SMSYS_EPHONE (err->detail
 * says why), -ENOSPC when outlen < PHONE_E164_MAX, or -EINVAL for an
 * unknown default_country. */
int phone_normalize(const char *in, const char *default_country, char *out, size_t outlen,
                    struct smsys_err *err);

/* Normalises a sender line. Iranian SMS lines are often service numbers
 * ("3000xxxx", "1000xxxx", "2000xxxx", "50001xxxxx", ...) that are not
 * E.164 and must be used exactly as the provider issued them. Rule: input
 * written with '+' or "00", or shaped like a full Iranian number (11
 * digits starting with 0, 12 starting with 98, 10 starting with 9) is
 * normalised like phone_normalize with "IR"; anything else is a short code
 * and comes back as ASCII digits only (3-15 digits, separators and
 * Persian/Arabic digits accepted as above). A caller tells the two apart by
 * the leading '+'. Returns as phone_normalize. */
int phone_normalize_line(const char *in, char *out, size_t outlen, struct smsys_err *err);

/* 1 when e164 is an Iranian mobile number ("+989" and nine more digits). */
int phone_is_ir_mobile(const char *e164);

enum phone_fmt {
    PHONE_E164,        /* +989121234567 */
    PHONE_INTL_NOPLUS, /* 989121234567 */
    PHONE_NATIONAL     /* 09121234567 (Iranian numbers only) */
};

/* Converts an E.164 number (as produced above) to a provider's format.
 * PHONE_NATIONAL is only defined for +98 numbers: a foreign number gives
 * SMSYS_EPHONE (an Iranian panel that wants 09... cannot send abroad).
 * A short code (no '+') is copied unchanged for every format, so sender
 * lines can go through the same call. Returns 0, SMSYS_EPHONE for input
 * that is not E.164 or a short code, or -ENOSPC. */
int phone_format(const char *e164, enum phone_fmt fmt, char *out, size_t outlen);

#endif
