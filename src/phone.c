/* phone.c - phone number normalisation (E.164) and provider formats.
 *
 * Two steps: scan the input into a plain ASCII digit string (mapping
 * Persian and Arabic-Indic digits, dropping separators, rejecting
 * everything else with the character and its position), then decide what
 * the digits mean from the prefix and the length. */
#include "smsys/phone.h"

#include "smsys/text.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* More digits than this cannot be a phone number in any format we accept
 * ("0098" + 15 would be 19); stop collecting early so input size is bounded. */
#define MAX_DIGITS 20

/* Countries a national number (no '+' / "00") may be read for. Iran is the
 * one the product is built for; the others are the foreign numbers CRM users
 * in Iran most often type without a prefix. nsn = national significant
 * number (after the country code, without the trunk prefix). */
static const struct country {
    const char *iso;
    const char *cc;
    char trunk; /* national trunk prefix digit, 0 = none */
    unsigned nsn_min, nsn_max;
} countries[] = {
    {"IR", "98", '0', 10, 10}, {"US", "1", '1', 10, 10},  {"CA", "1", '1', 10, 10},
    {"GB", "44", '0', 9, 10},  {"DE", "49", '0', 6, 13},  {"FR", "33", '0', 9, 9},
    {"AE", "971", '0', 8, 9},  {"TR", "90", '0', 10, 10}, {"IQ", "964", '0', 8, 10},
    {"AF", "93", '0', 9, 9},   {"AM", "374", '0', 8, 8},  {"AZ", "994", '0', 9, 9},
    {"OM", "968", 0, 8, 8},    {"QA", "974", 0, 8, 8},    {"KW", "965", 0, 8, 8},
};

struct scanned {
    char d[MAX_DIGITS + 1];
    size_t n;
    int plus;
};

static int is_ignorable(uint32_t cp)
{
    switch (cp) {
    case ' ':
    case '\t':
    case '-':
    case '.':
    case '(':
    case ')':
    case '/':
    case 0x00A0: /* no-break space */
    case 0x2007: /* figure space */
    case 0x2009: /* thin space */
    case 0x202F: /* narrow no-break space */
    case 0x2010: /* hyphen */
    case 0x2011: /* non-breaking hyphen */
    case 0x2012: /* figure dash */
    case 0x2013: /* en dash */
    case 0x2212: /* minus sign */
    case 0x200E: /* LRM */
    case 0x200F: /* RLM */
    case 0x061C: /* ALM */
    case 0x200C: /* ZWNJ, left behind by Persian keyboards */
    case 0xFEFF: /* BOM / ZWNBSP */
        return 1;
    default:
        return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
    }
}

static int digit_value(uint32_t cp)
{
    if (cp >= '0' && cp <= '9')
        return (int)(cp - '0');
    if (cp >= 0x06F0 && cp <= 0x06F9)
        return (int)(cp - 0x06F0);
    if (cp >= 0x0660 && cp <= 0x0669)
        return (int)(cp - 0x0660);
    return -1;
}

static int scan(const char *in, struct scanned *sc, struct smsys_err *err)
{
    size_t len = strlen(in), pos = 0, chr = 0;
    memset(sc, 0, sizeof(*sc));
    while (pos < len) {
        uint32_t cp;
        size_t at = pos;
        enum text_utf8_error why;
        if (text_utf8_next(in, len, &pos, &cp, &why))
            return smsys_err_set(err, SMSYS_EPHONE,
                                 "phone number is not valid UTF-8 (byte %zu: %s)", at,
                                 text_utf8_strerror(why));
        chr++;
        int v = digit_value(cp);
        if (v >= 0) {
            if (sc->n == MAX_DIGITS)
                return smsys_err_set(err, SMSYS_EPHONE,
                                     "phone number is too long (more than %d digits)", MAX_DIGITS);
            sc->d[sc->n++] = (char)('0' + v);
            continue;
        }
        if (cp == '+' || cp == 0xFF0B) {
            if (sc->n || sc->plus)
                return smsys_err_set(err, SMSYS_EPHONE,
                                     "'+' may only start a phone number (character %zu)", chr);
            sc->plus = 1;
            continue;
        }
        if (is_ignorable(cp))
            continue;
        if (cp >= 0x20 && cp != 0x7F && !(cp >= 0x80 && cp < 0xA0))
            return smsys_err_set(err, SMSYS_EPHONE,
                                 "phone number contains '%.*s' at character %zu; only digits, "
                                 "spaces, '-', '.', '(', ')' and a leading '+' are allowed",
                                 (int)(pos - at), in + at, chr);
        return smsys_err_set(err, SMSYS_EPHONE,
                             "phone number contains control character U+%04X at character %zu",
                             (unsigned)cp, chr);
    }
    sc->d[sc->n] = '\0';
    if (sc->n == 0)
        return smsys_err_set(err, SMSYS_EPHONE, "phone number is empty");
    return 0;
}

static const struct country *find_country(const char *iso)
{
    for (size_t i = 0; i < sizeof(countries) / sizeof(countries[0]); i++) {
        if (strcasecmp(countries[i].iso, iso) == 0)
            return &countries[i];
    }
    return NULL;
}

static int emit(const char *cc, const char *nsn, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "+%s%s", cc, nsn);
    return n < 0 || (size_t)n >= outlen ? -ENOSPC : 0;
}

/* digits = country code + national number, as written after '+' or "00". */
static int international(const char *d, char *out, size_t outlen, struct smsys_err *err)
{
    size_t n = strlen(d);
    if (n == 0)
        return smsys_err_set(err, SMSYS_EPHONE, "phone number has no digits after '+' or '00'");
    if (d[0] == '0')
        return smsys_err_set(err, SMSYS_EPHONE,
                             "no country code starts with 0 (number written as +0... or 000...)");
    if (strncmp(d, "98", 2) == 0) {
        const char *nsn = d + 2;
        size_t m = n - 2;
        /* "+98 0912 ..." keeps the trunk 0 by mistake; it is unambiguous. */
        if (m == 11 && nsn[0] == '0') {
            nsn++;
            m--;
        }
        if (m != 10 || nsn[0] == '0')
            return smsys_err_set(err, SMSYS_EPHONE,
                                 "an Iranian number has 10 digits after +98 (found %zu)", m);
        return emit("98", nsn, out, outlen);
    }
    for (size_t i = 0; i < sizeof(countries) / sizeof(countries[0]); i++) {
        const struct country *c = &countries[i];
        size_t k = strlen(c->cc);
        if (strncmp(d, c->cc, k) != 0)
            continue;
        size_t m = n - k;
        if ((m < c->nsn_min || m > c->nsn_max) && c->nsn_min == c->nsn_max)
            return smsys_err_set(err, SMSYS_EPHONE,
                                 "a +%s number has %u digits after the country code (found %zu)",
                                 c->cc, c->nsn_min, m);
        if (m < c->nsn_min || m > c->nsn_max)
            return smsys_err_set(err, SMSYS_EPHONE,
                                 "a +%s number has %u to %u digits after the country code "
                                 "(found %zu)",
                                 c->cc, c->nsn_min, c->nsn_max, m);
        return emit("", d, out, outlen);
    }
    if (n < 7)
        return smsys_err_set(err, SMSYS_EPHONE,
                             "phone number is too short (%zu digits with the country code)", n);
    if (n > 15)
        return smsys_err_set(err, SMSYS_EPHONE,
                             "phone number is too long (%zu digits; E.164 allows 15)", n);
    return emit("", d, out, outlen);
}

static int national_ir(const char *d, char *out, size_t outlen, struct smsys_err *err)
{
    size_t n = strlen(d);
    if (d[0] == '0') {
        if (n != 11)
            return smsys_err_set(err, SMSYS_EPHONE,
                                 "phone number is too %s: a number starting with 0 has 11 digits "
                                 "(found %zu)",
                                 n < 11 ? "short" : "long", n);
        return emit("98", d + 1, out, outlen);
    }
    if (n == 10 && d[0] == '9')
        return emit("98", d, out, outlen); /* mobile without its 0 */
    if (strncmp(d, "98", 2) == 0 && (n == 12 || n == 13))
        return international(d, out, outlen, err);
    if (n < 10)
        return smsys_err_set(err, SMSYS_EPHONE,
                             "phone number is too short (%zu digits); write 09xxxxxxxxx or "
                             "+<country code>...",
                             n);
    if (n > 13)
        return smsys_err_set(err, SMSYS_EPHONE,
                             "phone number is too long (%zu digits); write 09xxxxxxxxx or "
                             "+<country code>...",
                             n);
    return smsys_err_set(err, SMSYS_EPHONE,
                         "'%s' is not an Iranian number; write 09xxxxxxxxx or +<country code>...",
                         d);
}

static int national(const struct country *c, const char *d, char *out, size_t outlen,
                    struct smsys_err *err)
{
    size_t n = strlen(d);
    if (c->trunk && d[0] == c->trunk) {
        d++;
        n--;
    } else if (strncmp(d, c->cc, strlen(c->cc)) == 0 && n - strlen(c->cc) >= c->nsn_min &&
               n - strlen(c->cc) <= c->nsn_max) {
        return international(d, out, outlen, err); /* country code without '+' */
    }
    if (n < c->nsn_min || n > c->nsn_max)
        return smsys_err_set(err, SMSYS_EPHONE,
                             "phone number is not a %s number: expected %u to %u digits after "
                             "the trunk prefix (found %zu)",
                             c->iso, c->nsn_min, c->nsn_max, n);
    return emit(c->cc, d, out, outlen);
}

int phone_normalize(const char *in, const char *default_country, char *out, size_t outlen,
                    struct smsys_err *err)
{
    if (outlen < PHONE_E164_MAX)
        return smsys_err_set(err, -ENOSPC, "output buffer too small for a phone number");
    out[0] = '\0';
    const struct country *c =
        find_country(default_country && default_country[0] ? default_country : "IR");
    if (c == NULL)
        return smsys_err_set(err, -EINVAL, "unknown default country '%s'", default_country);
    if (in == NULL)
        return smsys_err_set(err, SMSYS_EPHONE, "phone number is empty");
    struct scanned sc;
    int rc = scan(in, &sc, err);
    if (rc == 0) {
        if (sc.plus)
            rc = international(sc.d, out, outlen, err);
        else if (sc.n >= 2 && sc.d[0] == '0' && sc.d[1] == '0')
            rc = international(sc.d + 2, out, outlen, err);
        else if (strcmp(c->iso, "IR") == 0)
            rc = national_ir(sc.d, out, outlen, err);
        else
            rc = national(c, sc.d, out, outlen, err);
    }
    if (rc)
        out[0] = '\0';
    return rc;
}

int phone_normalize_line(const char *in, char *out, size_t outlen, struct smsys_err *err)
{
    if (outlen < PHONE_E164_MAX)
        return smsys_err_set(err, -ENOSPC, "output buffer too small for a phone number");
    out[0] = '\0';
    if (in == NULL)
        return smsys_err_set(err, SMSYS_EPHONE, "line number is empty");
    struct scanned sc;
    int rc = scan(in, &sc, err);
    if (rc)
        return rc;
    int full = sc.plus || (sc.n >= 2 && sc.d[0] == '0' && sc.d[1] == '0') ||
               (sc.n == 11 && sc.d[0] == '0') || (sc.n == 12 && strncmp(sc.d, "98", 2) == 0) ||
               (sc.n == 10 && sc.d[0] == '9');
    if (full)
        return phone_normalize(in, "IR", out, outlen, err);
    if (sc.n < 3 || sc.n > 15)
        return smsys_err_set(err, SMSYS_EPHONE,
                             "line number '%s' is not a phone number or a 3-15 digit short code",
                             sc.d);
    memcpy(out, sc.d, sc.n + 1);
    return 0;
}

int phone_is_ir_mobile(const char *e164)
{
    if (e164 == NULL || strncmp(e164, "+989", 4) != 0 || strlen(e164) != 13)
        return 0;
    for (const char *p = e164 + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
    }
    return 1;
}

int phone_format(const char *e164, enum phone_fmt fmt, char *out, size_t outlen)
{
    if (e164 == NULL || outlen == 0)
        return -EINVAL;
    out[0] = '\0';
    int plus = e164[0] == '+';
    const char *d = e164 + plus;
    size_t n = strlen(d);
    if (n == 0 || n > 15)
        return SMSYS_EPHONE;
    for (size_t i = 0; i < n; i++) {
        if (d[i] < '0' || d[i] > '9')
            return SMSYS_EPHONE;
    }
    const char *pre = "";
    if (!plus) {
        /* Short code: the same string in every format. */
    } else if (fmt == PHONE_E164) {
        pre = "+";
    } else if (fmt == PHONE_INTL_NOPLUS) {
    } else if (fmt == PHONE_NATIONAL) {
        if (strncmp(d, "98", 2) != 0 || n != 12)
            return SMSYS_EPHONE;
        pre = "0";
        d += 2;
    } else {
        return -EINVAL;
    }
    int w = snprintf(out, outlen, "%s%s", pre, d);
    if (w < 0 || (size_t)w >= outlen) {
        out[0] = '\0';
        return -ENOSPC;
    }
    return 0;
}
