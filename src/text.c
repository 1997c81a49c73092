/* text.c - UTF-8 validation, GSM 03.38 and UCS-2 encoding, SMS segments.
 *
 * Everything is a single pass over the code points; a text is first
 * classified (GSM-7 or UCS-2), then walked again to place part boundaries,
 * because a part boundary may not fall inside an escape or surrogate pair
 * and so the segment count is not simply ceil(units / per_part). */
#include "smsys/text.h"

#include <errno.h>
#include <string.h>

/* ---- UTF-8 -------------------------------------------------------------- */

int text_utf8_next(const char *s, size_t len, size_t *pos, uint32_t *cp, enum text_utf8_error *why)
{
    const unsigned char *p = (const unsigned char *)s + *pos;
    size_t avail = len - *pos;
    unsigned char b = p[0];
    enum text_utf8_error bad = TEXT_UTF8_OK;
    uint32_t c;
    size_t n;

    if (b < 0x80) {
        *cp = b;
        *pos += 1;
        return 0;
    }
    if (b < 0xC2) {
        /* 0x80-0xBF are continuation bytes; 0xC0/0xC1 can only start an
         * overlong form of ASCII. Report the latter as what it is. */
        bad = b >= 0xC0 ? TEXT_UTF8_OVERLONG : TEXT_UTF8_BAD_LEAD;
        goto fail;
    }
    if (b < 0xE0) {
        n = 2;
        c = b & 0x1F;
    } else if (b < 0xF0) {
        n = 3;
        c = b & 0x0F;
    } else if (b < 0xF5) {
        n = 4;
        c = b & 0x07;
    } else {
        bad = TEXT_UTF8_BAD_LEAD;
        goto fail;
    }
    for (size_t i = 1; i < n; i++) {
        if (i >= avail) {
            bad = TEXT_UTF8_TRUNCATED;
            goto fail;
        }
        if ((p[i] & 0xC0) != 0x80) {
            bad = TEXT_UTF8_BAD_CONT;
            goto fail;
        }
        c = (c << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000)) {
        bad = TEXT_UTF8_OVERLONG;
        goto fail;
    }
    if (c >= 0xD800 && c <= 0xDFFF) {
        bad = TEXT_UTF8_SURROGATE;
        goto fail;
    }
    if (c > 0x10FFFF) {
        bad = TEXT_UTF8_TOO_BIG;
        goto fail;
    }
    *cp = c;
    *pos += n;
    return 0;
fail:
    if (why)
        *why = bad;
    return SMSYS_EUTF8;
}

int text_utf8_validate(const char *s, size_t len, struct text_utf8_err *e)
{
    size_t pos = 0;
    uint32_t cp;
    enum text_utf8_error why = TEXT_UTF8_OK;

    while (pos < len) {
        /* ASCII fast path: most SMS text is mostly ASCII or mostly 2-byte. */
        if ((unsigned char)s[pos] < 0x80) {
            pos++;
            continue;
        }
        if (text_utf8_next(s, len, &pos, &cp, &why)) {
            if (e) {
                e->offset = pos;
                e->kind = why;
            }
            return SMSYS_EUTF8;
        }
    }
    if (e) {
        e->offset = 0;
        e->kind = TEXT_UTF8_OK;
    }
    return 0;
}

const char *text_utf8_strerror(enum text_utf8_error kind)
{
    switch (kind) {
    case TEXT_UTF8_OK:
        return "valid";
    case TEXT_UTF8_BAD_LEAD:
        return "byte cannot start a character";
    case TEXT_UTF8_TRUNCATED:
        return "text ends inside a character";
    case TEXT_UTF8_BAD_CONT:
        return "missing continuation byte";
    case TEXT_UTF8_OVERLONG:
        return "overlong encoding";
    case TEXT_UTF8_SURROGATE:
        return "UTF-16 surrogate encoded in UTF-8";
    case TEXT_UTF8_TOO_BIG:
        return "code point above U+10FFFF";
    }
    return "unknown error";
}

int text_utf8_report(const struct text_utf8_err *e, struct smsys_err *err)
{
    return smsys_err_set(err, SMSYS_EUTF8, "invalid UTF-8 at byte %zu: %s", e->offset,
                         text_utf8_strerror(e->kind));
}

size_t text_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF)
        return 0;
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp > 0x10FFFF)
        return 0;
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- GSM 03.38 tables ----------------------------------------------------- */

/* The default alphabet, indexed by septet (3GPP TS 23.038 6.2.1). 0x1B is
 * the escape to the extension table; it maps to nothing here. */
static const uint16_t gsm_basic[128] = {
    0x0040, 0x00A3, 0x0024, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC, /* 00 */
    0x00F2, 0x00C7, 0x000A, 0x00D8, 0x00F8, 0x000D, 0x00C5, 0x00E5, /* 08 */
    0x0394, 0x005F, 0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8, /* 10 */
    0x03A3, 0x0398, 0x039E, 0xFFFF, 0x00C6, 0x00E6, 0x00DF, 0x00C9, /* 18 */
    0x0020, 0x0021, 0x0022, 0x0023, 0x00A4, 0x0025, 0x0026, 0x0027, /* 20 */
    0x0028, 0x0029, 0x002A, 0x002B, 0x002C, 0x002D, 0x002E, 0x002F, /* 28 */
    0x0030, 0x0031, 0x0032, 0x0033, 0x0034, 0x0035, 0x0036, 0x0037, /* 30 */
    0x0038, 0x0039, 0x003A, 0x003B, 0x003C, 0x003D, 0x003E, 0x003F, /* 38 */
    0x00A1, 0x0041, 0x0042, 0x0043, 0x0044, 0x0045, 0x0046, 0x0047, /* 40 */
    0x0048, 0x0049, 0x004A, 0x004B, 0x004C, 0x004D, 0x004E, 0x004F, /* 48 */
    0x0050, 0x0051, 0x0052, 0x0053, 0x0054, 0x0055, 0x0056, 0x0057, /* 50 */
    0x0058, 0x0059, 0x005A, 0x00C4, 0x00D6, 0x00D1, 0x00DC, 0x00A7, /* 58 */
    0x00BF, 0x0061, 0x0062, 0x0063, 0x0064, 0x0065, 0x0066, 0x0067, /* 60 */
    0x0068, 0x0069, 0x006A, 0x006B, 0x006C, 0x006D, 0x006E, 0x006F, /* 68 */
    0x0070, 0x0071, 0x0072, 0x0073, 0x0074, 0x0075, 0x0076, 0x0077, /* 70 */
    0x0078, 0x0079, 0x007A, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0, /* 78 */
};

/* The extension table entries we send and decode (TS 23.038 6.2.1.1). */
static const struct {
    uint8_t code;
    uint16_t cp;
} gsm_ext[] = {
    {0x0A, 0x000C}, {0x14, 0x005E}, {0x28, 0x007B}, {0x29, 0x007D}, {0x2F, 0x005C},
    {0x3C, 0x005B}, {0x3D, 0x007E}, {0x3E, 0x005D}, {0x40, 0x007C}, {0x65, 0x20AC},
};

#define GSM_ESC 0x1B

/* Finds the GSM form of cp: returns 1 (basic, *code set), 2 (extension,
 * *code is the byte after the escape) or 0. */
static int gsm_lookup(uint32_t cp, uint8_t *code)
{
    /* ASCII first, without a table scan: this runs for every character of
     * every message (preflight of a large bulk send). In the default
     * alphabet letters, digits and 0x20-0x3F except '$' keep their ASCII
     * values. */
    if (cp < 0x80) {
        if ((cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z') ||
            (cp >= 0x20 && cp <= 0x3F && cp != '$')) {
            *code = (uint8_t)cp;
            return 1;
        }
        switch (cp) {
        case '\n':
            *code = 0x0A;
            return 1;
        case '\r':
            *code = 0x0D;
            return 1;
        case '$':
            *code = 0x02;
            return 1;
        case '@':
            *code = 0x00;
            return 1;
        case '_':
            *code = 0x11;
            return 1;
        default:
            break; /* the extension characters are found below */
        }
    }
    for (size_t i = 0; i < sizeof(gsm_ext) / sizeof(gsm_ext[0]); i++) {
        if (gsm_ext[i].cp == cp) {
            *code = gsm_ext[i].code;
            return 2;
        }
    }
    /* Only Latin-1 and a few Greek capitals are in the basic table, so a
     * linear scan is cheap and avoids a second, easily inconsistent table. */
    if (cp < 0x80 || cp > 0x03A9)
        return 0;
    for (unsigned i = 0; i < 128; i++) {
        if (gsm_basic[i] == cp && i != GSM_ESC) {
            *code = (uint8_t)i;
            return 1;
        }
    }
    return 0;
}

int text_gsm7_cost(uint32_t cp)
{
    uint8_t code;
    return gsm_lookup(cp, &code);
}

/* The septet cost of cp on the 7-bit path for this SMSC default, or 0 when
 * the character forces UCS-2. */
static int seven_bit_cost(uint32_t cp, int smsc_default)
{
    if (smsc_default == 1 && cp >= 0x80)
        return 0;
    if (smsc_default == 3 && cp >= 0x100)
        return 0;
    return text_gsm7_cost(cp);
}

/* ---- Analysis and splitting ---------------------------------------------- */

struct plan {
    enum text_encoding enc;
    int smsc_default;
    size_t single, multi;
};

static int plan_opts(const struct text_opts *opts, struct plan *pl)
{
    unsigned udh = 6;
    pl->smsc_default = 0;
    if (opts) {
        if (opts->udh_octets > 134)
            return -EINVAL;
        if (opts->udh_octets)
            udh = opts->udh_octets;
        if (opts->smsc_default == 1 || opts->smsc_default == 3)
            pl->smsc_default = opts->smsc_default;
    }
    pl->enc = TEXT_GSM7;
    pl->single = 160;
    pl->multi = (140 - udh) * 8 / 7;
    return (int)udh;
}

/* Classifies the text (validating it). Fills pl and info->chars; on bad
 * UTF-8 fills info->bad_*. */
static int classify(const char *s, size_t len, const struct text_opts *opts, struct plan *pl,
                    struct text_info *info)
{
    int udh = plan_opts(opts, pl);
    if (udh < 0)
        return udh;
    size_t pos = 0, chars = 0;
    int gsm = !(opts && opts->force_ucs2);
    while (pos < len) {
        uint32_t cp;
        size_t at = pos;
        enum text_utf8_error why;
        if (text_utf8_next(s, len, &pos, &cp, &why)) {
            info->bad_offset = at;
            info->bad_kind = why;
            return SMSYS_EUTF8;
        }
        chars++;
        if (gsm && seven_bit_cost(cp, pl->smsc_default) == 0)
            gsm = 0;
    }
    info->chars = chars;
    if (!gsm) {
        pl->enc = TEXT_UCS2;
        pl->single = 70;
        pl->multi = (140 - (size_t)udh) / 2;
    }
    return 0;
}

/* Units one code point costs in the chosen encoding (already validated). */
static size_t unit_cost(const struct plan *pl, uint32_t cp)
{
    if (pl->enc == TEXT_UCS2)
        return cp > 0xFFFF ? 2 : 1;
    return (size_t)seven_bit_cost(cp, pl->smsc_default);
}

/* Bytes a character of c units takes in the encoded form: UCS-2 2 per
 * unit; unpacked GSM one per septet; IA5 / Latin-1 one per character
 * (the SMSC turns '{' into its escape pair, which is why it still counts
 * two septets). */
static size_t enc_bytes(const struct plan *pl, size_t c)
{
    if (pl->enc == TEXT_UCS2)
        return 2 * c;
    return pl->smsc_default == 0 ? c : 1;
}

/* Walks the text placing part boundaries; writes up to max parts into
 * segs (may be NULL) and returns the number of parts. Input is valid. */
static size_t place(const char *s, size_t len, const struct plan *pl, size_t total_units,
                    struct text_segment *segs, size_t max, size_t *last_units)
{
    size_t limit = total_units <= pl->single ? pl->single : pl->multi;
    size_t n = 0, pos = 0, enc = 0;
    struct text_segment cur = {0, 0, 0, 0, 0};

    *last_units = 0;
    if (len == 0)
        return 0;
    while (pos < len) {
        uint32_t cp;
        size_t at = pos;
        (void)text_utf8_next(s, len, &pos, &cp, NULL);
        size_t c = unit_cost(pl, cp);
        if (cur.units + c > limit) {
            if (segs && n < max)
                segs[n] = cur;
            n++;
            cur.utf8_off = at;
            cur.utf8_len = 0;
            cur.enc_off = enc;
            cur.enc_len = 0;
            cur.units = 0;
        }
        cur.utf8_len += pos - at;
        size_t eb = enc_bytes(pl, c);
        cur.enc_len += eb;
        cur.units += c;
        enc += eb;
    }
    if (segs && n < max)
        segs[n] = cur;
    *last_units = cur.units;
    return n + 1;
}

static int analyze(const char *s, size_t len, const struct text_opts *opts, struct plan *pl,
                   struct text_info *out, struct text_segment *segs, size_t max, size_t *nsegs)
{
    memset(out, 0, sizeof(*out));
    int rc = classify(s, len, opts, pl, out);
    if (rc)
        return rc;
    size_t units = 0, pos = 0;
    while (pos < len) {
        uint32_t cp;
        (void)text_utf8_next(s, len, &pos, &cp, NULL);
        units += unit_cost(pl, cp);
    }
    size_t last = 0;
    size_t n = place(s, len, pl, units, segs, max, &last);
    out->encoding = pl->enc;
    out->data_coding = pl->enc == TEXT_UCS2 ? 8u : (unsigned)pl->smsc_default;
    out->units = units;
    out->segments = n;
    out->single_limit = pl->single;
    out->per_segment = n <= 1 ? pl->single : pl->multi;
    out->remaining = out->per_segment - last;
    if (nsegs)
        *nsegs = n;
    return 0;
}

int text_analyze_opts(const char *utf8, size_t len, const struct text_opts *opts,
                      struct text_info *out)
{
    struct plan pl;
    return analyze(utf8, len, opts, &pl, out, NULL, 0, NULL);
}

int text_analyze(const char *utf8, size_t len, struct text_info *out)
{
    return text_analyze_opts(utf8, len, NULL, out);
}

int text_split(const char *utf8, size_t len, const struct text_opts *opts,
               struct text_segment *segs, size_t max_segs, size_t *n_segs, struct text_info *info,
               struct smsys_err *err)
{
    struct text_info tmp;
    struct text_info *ti = info ? info : &tmp;
    struct plan pl;
    size_t n = 0;
    int rc = analyze(utf8, len, opts, &pl, ti, segs, max_segs, &n);
    *n_segs = n;
    if (rc == SMSYS_EUTF8) {
        struct text_utf8_err e = {ti->bad_offset, ti->bad_kind};
        return text_utf8_report(&e, err);
    }
    if (rc)
        return smsys_err_set(err, rc, "invalid text options");
    if (n > max_segs)
        return smsys_err_set(err, -E2BIG, "text needs %zu parts, at most %zu allowed", n, max_segs);
    return 0;
}

/* ---- Encoders ------------------------------------------------------------ */

static int put_gsm(struct buf *out, uint32_t cp)
{
    uint8_t code, b[2];
    int k = gsm_lookup(cp, &code);
    if (k == 1)
        return buf_append(out, &code, 1);
    b[0] = GSM_ESC;
    b[1] = code;
    return buf_append(out, b, 2);
}

static int put_ucs2(struct buf *out, uint32_t cp)
{
    uint8_t b[4];
    if (cp > 0xFFFF) {
        uint32_t v = cp - 0x10000;
        uint32_t hi = 0xD800 | (v >> 10), lo = 0xDC00 | (v & 0x3FF);
        b[0] = (uint8_t)(hi >> 8);
        b[1] = (uint8_t)hi;
        b[2] = (uint8_t)(lo >> 8);
        b[3] = (uint8_t)lo;
        return buf_append(out, b, 4);
    }
    b[0] = (uint8_t)(cp >> 8);
    b[1] = (uint8_t)cp;
    return buf_append(out, b, 2);
}

static int bad_utf8(const char *s, size_t len, struct smsys_err *err)
{
    struct text_utf8_err e;
    (void)text_utf8_validate(s, len, &e);
    return text_utf8_report(&e, err);
}

int text_to_gsm7(const char *utf8, size_t len, struct buf *out, struct smsys_err *err)
{
    size_t pos = 0, start = out->len;
    while (pos < len) {
        uint32_t cp;
        size_t at = pos;
        if (text_utf8_next(utf8, len, &pos, &cp, NULL)) {
            out->len = start;
            return bad_utf8(utf8, len, err);
        }
        if (text_gsm7_cost(cp) == 0) {
            out->len = start;
            return smsys_err_set(err, -EILSEQ, "character U+%04X at byte %zu has no GSM 03.38 form",
                                 (unsigned)cp, at);
        }
        int rc = put_gsm(out, cp);
        if (rc) {
            out->len = start;
            return smsys_err_set(err, rc, "out of memory encoding GSM-7");
        }
    }
    return 0;
}

int text_to_ucs2be(const char *utf8, size_t len, struct buf *out, struct smsys_err *err)
{
    size_t pos = 0, start = out->len;
    while (pos < len) {
        uint32_t cp;
        if (text_utf8_next(utf8, len, &pos, &cp, NULL)) {
            out->len = start;
            return bad_utf8(utf8, len, err);
        }
        int rc = put_ucs2(out, cp);
        if (rc) {
            out->len = start;
            return smsys_err_set(err, rc, "out of memory encoding UCS-2");
        }
    }
    return 0;
}

int text_encode(const char *utf8, size_t len, const struct text_opts *opts, struct buf *out,
                enum text_encoding *enc_out, struct smsys_err *err)
{
    struct text_info ti;
    struct plan pl;
    memset(&ti, 0, sizeof(ti));
    int rc = classify(utf8, len, opts, &pl, &ti);
    if (rc == SMSYS_EUTF8) {
        struct text_utf8_err e = {ti.bad_offset, ti.bad_kind};
        return text_utf8_report(&e, err);
    }
    if (rc)
        return smsys_err_set(err, rc, "invalid text options");
    if (enc_out)
        *enc_out = pl.enc;
    if (pl.enc == TEXT_UCS2)
        return text_to_ucs2be(utf8, len, out, err);
    if (pl.smsc_default == 0)
        return text_to_gsm7(utf8, len, out, err);
    /* IA5 / Latin-1: classify() admitted only code points below 0x80 /
     * 0x100, so each is its own byte value. */
    size_t pos = 0, start = out->len;
    while (pos < len) {
        uint32_t cp;
        (void)text_utf8_next(utf8, len, &pos, &cp, NULL);
        uint8_t b = (uint8_t)cp;
        rc = buf_append(out, &b, 1);
        if (rc) {
            out->len = start;
            return smsys_err_set(err, rc, "out of memory encoding text");
        }
    }
    return 0;
}

/* ---- Decoders ------------------------------------------------------------ */

static int put_cp(struct buf *out, uint32_t cp)
{
    char u[4];
    size_t n = text_utf8_encode(cp, u);
    return buf_append(out, u, n);
}

int text_from_gsm7(const uint8_t *septets, size_t n, int strict, struct buf *out,
                   struct smsys_err *err)
{
    size_t start = out->len;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint8_t b = septets[i];
        uint32_t cp;
        if (b > 0x7F) {
            if (strict) {
                out->len = start;
                return smsys_err_set(err, -EILSEQ, "byte 0x%02X at %zu is not a GSM septet", b, i);
            }
            cp = 0xFFFD;
        } else if (b == GSM_ESC) {
            if (i + 1 == n)
                break; /* lone escape at the end: nothing to show */
            uint8_t c = septets[++i];
            cp = 0;
            for (size_t k = 0; k < sizeof(gsm_ext) / sizeof(gsm_ext[0]); k++) {
                if (gsm_ext[k].code == c)
                    cp = gsm_ext[k].cp;
            }
            if (cp == 0) {
                if (c > 0x7F) {
                    if (strict) {
                        out->len = start;
                        return smsys_err_set(err, -EILSEQ, "byte 0x%02X at %zu is not a GSM septet",
                                             c, i);
                    }
                    cp = 0xFFFD;
                } else if (c == GSM_ESC) {
                    cp = 0x20; /* double escape: TS 23.038 reserves it; show a space */
                } else {
                    cp = gsm_basic[c];
                }
            }
        } else {
            cp = gsm_basic[b];
        }
        rc = put_cp(out, cp);
    }
    if (rc) {
        out->len = start;
        return smsys_err_set(err, rc, "out of memory decoding GSM-7");
    }
    return 0;
}

int text_from_ucs2be(const uint8_t *in, size_t n, int strict, struct buf *out,
                     struct smsys_err *err)
{
    size_t start = out->len;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        uint32_t cp;
        if (i + 1 >= n) {
            if (strict)
                goto bad;
            cp = 0xFFFD;
            i++;
        } else {
            uint32_t u = (uint32_t)in[i] << 8 | in[i + 1];
            i += 2;
            if (u >= 0xD800 && u <= 0xDBFF && i + 1 < n) {
                uint32_t l = (uint32_t)in[i] << 8 | in[i + 1];
                if (l >= 0xDC00 && l <= 0xDFFF) {
                    i += 2;
                    cp = 0x10000 + ((u - 0xD800) << 10) + (l - 0xDC00);
                } else if (strict) {
                    goto bad;
                } else {
                    cp = 0xFFFD;
                }
            } else if (u >= 0xD800 && u <= 0xDFFF) {
                if (strict)
                    goto bad;
                cp = 0xFFFD;
            } else {
                cp = u;
            }
        }
        rc = put_cp(out, cp);
    }
    if (rc) {
        out->len = start;
        return smsys_err_set(err, rc, "out of memory decoding UCS-2");
    }
    return 0;
bad:
    out->len = start;
    return smsys_err_set(err, -EILSEQ, "UCS-2 input has an odd length or an unpaired surrogate");
}

/* ---- 7-bit packing ------------------------------------------------------- */

unsigned text_gsm7_fill_bits(size_t udh_octets)
{
    return (unsigned)((7 - (udh_octets * 8) % 7) % 7);
}

size_t text_gsm7_packed_len(size_t n, unsigned fill_bits)
{
    return (n * 7 + fill_bits + 7) / 8;
}

size_t text_gsm7_pack(const uint8_t *septets, size_t n, unsigned fill_bits, uint8_t *out,
                      size_t outlen)
{
    size_t need = text_gsm7_packed_len(n, fill_bits);
    if (fill_bits > 6 || outlen < need)
        return 0;
    memset(out, 0, need);
    size_t bit = fill_bits;
    for (size_t i = 0; i < n; i++) {
        unsigned v = septets[i] & 0x7F;
        size_t byte = bit / 8, shift = bit % 8;
        out[byte] |= (uint8_t)(v << shift);
        if (shift > 1)
            out[byte + 1] |= (uint8_t)(v >> (8 - shift));
        bit += 7;
    }
    return need;
}

size_t text_gsm7_unpack(const uint8_t *packed, size_t len, unsigned fill_bits, size_t max_septets,
                        uint8_t *out, size_t outlen)
{
    if (fill_bits > 6 || len * 8 < fill_bits)
        return 0;
    size_t avail = (len * 8 - fill_bits) / 7;
    size_t n = avail < max_septets ? avail : max_septets;
    if (n > outlen)
        n = outlen;
    size_t bit = fill_bits;
    for (size_t i = 0; i < n; i++) {
        size_t byte = bit / 8, shift = bit % 8;
        unsigned v = packed[byte] >> shift;
        if (shift > 1)
            v |= (unsigned)packed[byte + 1] << (8 - shift);
        out[i] = (uint8_t)(v & 0x7F);
        bit += 7;
    }
    return n;
}

/* ---- JSON summary -------------------------------------------------------- */

int text_info_json(const char *s, struct buf *out)
{
    struct text_info ti;
    size_t len = strlen(s);
    int rc = text_analyze(s, len, &ti);
    if (rc == SMSYS_EUTF8)
        return buf_printf(out, "{\"valid\":false,\"error\":\"invalid UTF-8: %s\",\"offset\":%zu}",
                          text_utf8_strerror(ti.bad_kind), ti.bad_offset);
    if (rc)
        return rc;
    int gsm = ti.encoding == TEXT_GSM7;
    return buf_printf(out,
                      "{\"valid\":true,\"encoding\":\"%s\",\"data_coding\":%u,\"chars\":%zu,"
                      "\"units\":%zu,\"unit\":\"%s\",\"segments\":%zu,\"single_limit\":%zu,"
                      "\"multi_limit\":%d,\"per_segment\":%zu,\"remaining\":%zu}",
                      gsm ? "GSM-7" : "UCS-2", ti.data_coding, ti.chars, ti.units,
                      gsm ? "septets" : "ucs2", ti.segments, ti.single_limit, gsm ? 153 : 67,
                      ti.per_segment, ti.remaining);
}
