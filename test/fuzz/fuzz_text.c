/* fuzz_text - validate, analyse, split and encode arbitrary bytes, and
 * decode them as GSM-7 / UCS-2; check the invariants that tie these
 * together (split ranges tile the input and the encoding exactly). */
#include "smsys/text.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_split(const char *s, size_t n, const struct text_opts *o)
{
    struct text_segment segs[64];
    size_t nseg = 0;
    struct text_info ti;
    struct smsys_err err;
    int rc = text_split(s, n, o, segs, 64, &nseg, &ti, &err);
    if (rc == SMSYS_EUTF8) {
        if (text_utf8_validate(s, n, NULL) == 0)
            abort();
        return;
    }
    if (text_utf8_validate(s, n, NULL) != 0)
        abort();
    if (rc == -E2BIG || rc == -EINVAL)
        return;
    if (rc)
        abort();
    struct buf enc = BUF_INIT;
    enum text_encoding e;
    if (text_encode(s, n, o, &enc, &e, NULL) != 0 || e != ti.encoding)
        abort();
    if (ti.segments != nseg || (n == 0) != (nseg == 0))
        abort();
    size_t u = 0, off = 0, eoff = 0;
    for (size_t i = 0; i < nseg; i++) {
        if (segs[i].utf8_off != off || segs[i].enc_off != eoff)
            abort();
        size_t limit = nseg == 1 ? ti.single_limit : ti.per_segment;
        if (segs[i].units > limit || segs[i].units == 0)
            abort();
        /* The part must begin and end on character boundaries. */
        if (text_utf8_validate(s + segs[i].utf8_off, segs[i].utf8_len, NULL) != 0)
            abort();
        if (e == TEXT_GSM7 && ti.data_coding == 0 && segs[i].enc_len > 0 &&
            (uint8_t)enc.data[segs[i].enc_off + segs[i].enc_len - 1] == 0x1B)
            abort(); /* escape pair split */
        if (e == TEXT_UCS2 && segs[i].enc_len >= 2) {
            uint8_t hi = (uint8_t)enc.data[segs[i].enc_off + segs[i].enc_len - 2];
            if (hi >= 0xD8 && hi <= 0xDB)
                abort(); /* surrogate pair split */
        }
        u += segs[i].units;
        off += segs[i].utf8_len;
        eoff += segs[i].enc_len;
    }
    if (off != n || eoff != enc.len || u != ti.units)
        abort();
    if (ti.remaining > ti.per_segment)
        abort();
    /* Encoded form decodes back to the input. */
    struct buf back = BUF_INIT;
    if (e == TEXT_GSM7 && ti.data_coding != 0) {
        /* ASCII / Latin-1 bytes: each byte is its own code point. */
        for (size_t i = 0; i < enc.len; i++) {
            char u[4];
            size_t k = text_utf8_encode((uint8_t)enc.data[i], u);
            if (buf_append(&back, u, k) != 0)
                abort();
        }
    } else if (e == TEXT_GSM7) {
        if (text_from_gsm7((const uint8_t *)enc.data, enc.len, 1, &back, NULL) != 0)
            abort();
        uint8_t *packed = malloc(enc.len + 1), *un = malloc(enc.len + 1);
        if (packed && un) {
            unsigned fill = (unsigned)(n % 7);
            size_t pl =
                text_gsm7_pack((const uint8_t *)enc.data, enc.len, fill, packed, enc.len + 1);
            if (pl != text_gsm7_packed_len(enc.len, fill))
                abort();
            if (text_gsm7_unpack(packed, pl, fill, enc.len, un, enc.len + 1) != enc.len ||
                memcmp(un, enc.data, enc.len) != 0)
                abort();
        }
        free(packed);
        free(un);
    } else {
        if (text_from_ucs2be((const uint8_t *)enc.data, enc.len, 1, &back, NULL) != 0)
            abort();
    }
    /* GSM decoding of "@" etc. is exact except for U+0000, which has no
     * GSM form and so never reaches this branch. */
    if (back.len != n || (n && memcmp(back.data, s, n) != 0))
        abort();
    buf_free(&back);
    buf_free(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    const char *s = (const char *)data;
    struct text_opts o = {0, 0, 0};
    if (size > 0) {
        /* The first byte picks options; the rest is the text too. */
        o.force_ucs2 = data[0] & 1;
        o.smsc_default = (data[0] >> 1) & 3;
        o.udh_octets = (data[0] >> 3) & 7;
    }
    check_split(s, size, NULL);
    check_split(s, size, &o);

    struct buf b = BUF_INIT;
    (void)text_from_gsm7(data, size, 0, &b, NULL);
    if (text_utf8_validate(b.data ? b.data : "", b.len, NULL) != 0)
        abort();
    buf_reset(&b);
    (void)text_from_ucs2be(data, size, 0, &b, NULL);
    if (text_utf8_validate(b.data ? b.data : "", b.len, NULL) != 0)
        abort();
    buf_reset(&b);
    (void)text_from_gsm7(data, size, 1, &b, NULL);
    buf_reset(&b);
    (void)text_from_ucs2be(data, size, 1, &b, NULL);
    buf_free(&b);

    uint8_t out[4096];
    (void)text_gsm7_unpack(data, size, size ? data[0] % 7 : 0, (size_t)-1, out, sizeof(out));

    char *z = malloc(size + 1);
    if (z) {
        memcpy(z, data, size);
        z[size] = '\0';
        struct buf j = BUF_INIT;
        if (text_info_json(z, &j) != 0)
            abort();
        buf_free(&j);
        free(z);
    }
    return 0;
}
