/* msgid.c - canonical forms of provider message ids (docs/smpp.md,
 * "Message-id matching"): the single implementation behind
 * smpp_msgid_canon() and queue_msgid_canon(). */
#include "msgid_int.h"

#include <errno.h>
#include <string.h>

static int is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Writes the value of digits s[0..n) in base (10 or 16) as a decimal
 * string without leading zeros, after `tag` (may be ""). The conversion is
 * exact at any length: 100 hex digits are 121 decimal digits, which the
 * digit array holds; the output is cut at cap (callers size it). */
static void to_decimal(const char *s, size_t n, int base, const char *tag, char *out, size_t cap)
{
    unsigned char dec[128]; /* little-endian decimal digits */
    size_t nd = 1;
    dec[0] = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned carry = (unsigned)hexval((unsigned char)s[i]);
        for (size_t k = 0; k < nd; k++) {
            unsigned v = dec[k] * (unsigned)base + carry;
            dec[k] = (unsigned char)(v % 10);
            carry = v / 10;
        }
        while (carry && nd < sizeof(dec)) {
            dec[nd++] = (unsigned char)(carry % 10);
            carry /= 10;
        }
    }
    while (nd > 1 && dec[nd - 1] == 0)
        nd--;
    size_t o = 0;
    for (; *tag && o + 1 < cap; tag++)
        out[o++] = *tag;
    while (nd > 0 && o + 1 < cap)
        out[o++] = (char)('0' + dec[--nd]);
    out[o] = '\0';
}

int msgid_canon_forms(const char *id, size_t max_len, int tagged, char *primary, char *alt,
                      size_t cap)
{
    if (cap == 0)
        return -EINVAL;
    primary[0] = alt[0] = '\0';
    if (id == NULL)
        return -EINVAL;
    while (is_blank((unsigned char)*id))
        id++;
    size_t n = strlen(id);
    while (n > 0 && is_blank((unsigned char)id[n - 1]))
        n--;
    if (n == 0 || n > max_len || n + 3 > cap)
        return -EINVAL;
    const char *num_tag = tagged ? "n:" : "";
    const char *str_tag = tagged ? "s:" : "";
    /* "0x" alone is a string; "0x" + digits is hex whatever the digits. */
    const char *d = id;
    size_t dn = n;
    int forced_hex = 0;
    if (n > 2 && id[0] == '0' && (id[1] == 'x' || id[1] == 'X')) {
        forced_hex = 1;
        d += 2;
        dn -= 2;
    }
    int all_dec = 1, all_hex = 1;
    for (size_t i = 0; i < dn; i++) {
        int c = (unsigned char)d[i];
        if (c < '0' || c > '9')
            all_dec = 0;
        if (hexval(c) < 0)
            all_hex = 0;
    }
    if (all_dec && !forced_hex) {
        to_decimal(d, dn, 10, num_tag, primary, cap);
        to_decimal(d, dn, 16, num_tag, alt, cap);
        if (strcmp(primary, alt) == 0)
            alt[0] = '\0'; /* single digits read the same either way */
        return 0;
    }
    if (all_hex) {
        to_decimal(d, dn, 16, num_tag, primary, cap);
        return 0;
    }
    /* Not a number (UUIDs, alphanumeric ids): the id itself, any case. */
    size_t o = 0;
    for (; *str_tag; str_tag++)
        primary[o++] = *str_tag;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)id[i];
        primary[o++] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    primary[o] = '\0';
    return 0;
}
