/* Unit tests for text: UTF-8 validation, GSM-7 / UCS-2, segments, split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Builds a string of n copies of unit (a UTF-8 sequence). Caller frees. */
static char *rep(const char *unit, size_t n)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(buf_puts(&b, unit), 0);
    return buf_steal(&b);
}

static void check(const char *s, enum text_encoding enc, size_t units, size_t segs,
                  size_t remaining)
{
    struct text_info ti;
    assert_int_equal(text_analyze(s, strlen(s), &ti), 0);
    assert_int_equal(ti.encoding, enc);
    assert_int_equal(ti.units, units);
    assert_int_equal(ti.segments, segs);
    assert_int_equal(ti.remaining, remaining);
}

static void check_rep(const char *unit, size_t n, enum text_encoding enc, size_t units, size_t segs,
                      size_t remaining)
{
    char *s = rep(unit, n);
    check(s, enc, units, segs, remaining);
    free(s);
}

static void test_gsm_boundaries(void **state)
{
    (void)state;
    check("", TEXT_GSM7, 0, 0, 160);
    check("hello", TEXT_GSM7, 5, 1, 155);
    check_rep("a", 160, TEXT_GSM7, 160, 1, 0);
    check_rep("a", 161, TEXT_GSM7, 161, 2, 153 - 8);
    check_rep("a", 306, TEXT_GSM7, 306, 2, 0);
    check_rep("a", 307, TEXT_GSM7, 307, 3, 152);
    /* Basic-table non-ASCII characters cost one septet. */
    check("\xC3\xA9\xC2\xA3\xC3\x9C\xCE\x94@$_", TEXT_GSM7, 7, 1, 153);
    struct text_info ti;
    char *s = rep("a", 161);
    assert_int_equal(text_analyze(s, 161, &ti), 0);
    assert_int_equal(ti.per_segment, 153);
    assert_int_equal(ti.single_limit, 160);
    assert_int_equal(ti.chars, 161);
    assert_int_equal(ti.data_coding, 0);
    free(s);
}

static void test_gsm_extension(void **state)
{
    (void)state;
    const char *ext[] = {"^", "{", "}", "[", "]", "~", "|", "\xE2\x82\xAC", "\\", "\f"};
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
        struct text_info ti;
        assert_int_equal(text_analyze(ext[i], strlen(ext[i]), &ti), 0);
        assert_int_equal(ti.encoding, TEXT_GSM7);
        assert_int_equal(ti.units, 2);
        assert_int_equal(ti.chars, 1);
    }
    /* 80 euro signs = 160 septets: one message; 81 need parts of 153
     * holding 76 pairs each (152 septets, the 153rd would split a pair). */
    check_rep("\xE2\x82\xAC", 80, TEXT_GSM7, 160, 1, 0);
    check_rep("\xE2\x82\xAC", 81, TEXT_GSM7, 162, 2, 153 - 10);

    /* 152 'a' + '{' : the pair would straddle septets 153/154 -> moves. */
    char *s = rep("a", 159);
    s[152] = '{';
    struct text_segment seg[4];
    size_t n = 0;
    struct text_info ti;
    assert_int_equal(text_split(s, 159, NULL, seg, 4, &n, &ti, NULL), 0);
    assert_int_equal(ti.units, 160);
    assert_int_equal(n, 1); /* 160 septets still fit one message */
    free(s);

    s = rep("a", 160);
    s[152] = '{'; /* 161 septets: split, '{' starts part 2 */
    assert_int_equal(text_split(s, 160, NULL, seg, 4, &n, &ti, NULL), 0);
    assert_int_equal(n, 2);
    assert_int_equal(seg[0].units, 152);
    assert_int_equal(seg[0].utf8_len, 152);
    assert_int_equal(seg[0].enc_len, 152);
    assert_int_equal(seg[1].utf8_off, 152);
    assert_int_equal(seg[1].enc_off, 152);
    assert_int_equal(seg[1].units, 9);
    assert_int_equal(seg[1].enc_len, 9);
    /* The encoded part starts with the escape. */
    struct buf b = BUF_INIT;
    enum text_encoding enc;
    assert_int_equal(text_encode(s, 160, NULL, &b, &enc, NULL), 0);
    assert_int_equal(enc, TEXT_GSM7);
    assert_int_equal(b.len, 161);
    assert_int_equal((uint8_t)b.data[seg[1].enc_off], 0x1B);
    assert_int_equal((uint8_t)b.data[seg[1].enc_off + 1], 0x28);
    buf_free(&b);
    free(s);
}

static void test_ucs2_persian(void **state)
{
    (void)state;
    const char *sin = "\xD8\xB3"; /* س */
    check_rep(sin, 70, TEXT_UCS2, 70, 1, 0);
    check_rep(sin, 71, TEXT_UCS2, 71, 2, 67 - 4);
    check_rep(sin, 134, TEXT_UCS2, 134, 2, 0);
    check_rep(sin, 135, TEXT_UCS2, 135, 3, 66);
    /* Arabic: "مرحبا" */
    check("\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7", TEXT_UCS2, 5, 1, 65);
    /* Mixed Latin/Persian is UCS-2: "Hi سلام" = 7 units. */
    struct text_info ti;
    const char *mix = "Hi \xD8\xB3\xD9\x84\xD8\xA7\xD9\x85";
    assert_int_equal(text_analyze(mix, strlen(mix), &ti), 0);
    assert_int_equal(ti.encoding, TEXT_UCS2);
    assert_int_equal(ti.data_coding, 8);
    assert_int_equal(ti.chars, 7);
    assert_int_equal(ti.units, 7);
    assert_int_equal(ti.per_segment, 70);
    /* force_ucs2 turns plain ASCII into UCS-2. */
    struct text_opts o = {.force_ucs2 = 1};
    assert_int_equal(text_analyze_opts("hello", 5, &o, &ti), 0);
    assert_int_equal(ti.encoding, TEXT_UCS2);
    assert_int_equal(ti.remaining, 65);
}

static void test_emoji(void **state)
{
    (void)state;
    const char *smile = "\xF0\x9F\x98\x80"; /* U+1F600 */
    check(smile, TEXT_UCS2, 2, 1, 68);
    check_rep(smile, 35, TEXT_UCS2, 70, 1, 0);
    check_rep(smile, 36, TEXT_UCS2, 72, 2, 67 - 6); /* 33 pairs = 66 units per part */
    /* 66 'س' then an emoji: the pair does not fit unit 67 -> starts part 2. */
    char *s = rep("\xD8\xB3", 66);
    struct buf t = BUF_INIT;
    assert_int_equal(buf_puts(&t, s), 0);
    assert_int_equal(buf_puts(&t, smile), 0);
    assert_int_equal(buf_puts(&t, "\xD8\xB3\xD8\xB3\xD8\xB3"), 0);
    struct text_segment seg[4];
    size_t n;
    struct text_info ti;
    assert_int_equal(text_split(t.data, t.len, NULL, seg, 4, &n, &ti, NULL), 0);
    assert_int_equal(ti.units, 71);
    assert_int_equal(n, 2);
    assert_int_equal(seg[0].units, 66);
    assert_int_equal(seg[0].enc_len, 132);
    assert_int_equal(seg[1].units, 5);
    assert_int_equal(seg[1].utf8_off, 132);
    assert_int_equal(seg[1].enc_off, 132);
    struct buf b = BUF_INIT;
    assert_int_equal(text_encode(t.data, t.len, NULL, &b, NULL, NULL), 0);
    assert_int_equal(b.len, 142);
    static const uint8_t pair[4] = {0xD8, 0x3D, 0xDE, 0x00};
    assert_memory_equal(b.data + seg[1].enc_off, pair, 4);
    buf_free(&b);
    buf_free(&t);
    free(s);
}

static void test_split_limits(void **state)
{
    (void)state;
    char *s = rep("a", 307);
    struct text_segment seg[3];
    size_t n = 0;
    struct smsys_err err;
    assert_int_equal(text_split(s, 307, NULL, seg, 2, &n, NULL, &err), -E2BIG);
    assert_int_equal(n, 3);
    assert_int_equal(text_split(s, 307, NULL, seg, 3, &n, NULL, &err), 0);
    assert_int_equal(seg[0].units, 153);
    assert_int_equal(seg[1].units, 153);
    assert_int_equal(seg[2].units, 1);
    assert_int_equal(seg[2].utf8_off, 306);
    /* A 16-bit reference UDH (7 octets) leaves 152 septets per part. */
    struct text_opts o = {.udh_octets = 7};
    assert_int_equal(text_split(s, 307, &o, seg, 3, &n, NULL, &err), 0);
    assert_int_equal(seg[0].units, 152);
    assert_int_equal(seg[2].units, 3);
    o.udh_octets = 135;
    assert_int_equal(text_split(s, 307, &o, seg, 3, &n, NULL, &err), -EINVAL);
    assert_int_equal(text_split("", 0, NULL, seg, 3, &n, NULL, &err), 0);
    assert_int_equal(n, 0);
    free(s);
}

static void test_smsc_default(void **state)
{
    (void)state;
    struct text_info ti;
    struct text_opts ia5 = {.smsc_default = 1}, latin1 = {.smsc_default = 3};
    /* é is GSM and Latin-1 but not ASCII. */
    const char *e = "caf\xC3\xA9";
    assert_int_equal(text_analyze_opts(e, strlen(e), NULL, &ti), 0);
    assert_int_equal(ti.encoding, TEXT_GSM7);
    assert_int_equal(text_analyze_opts(e, strlen(e), &ia5, &ti), 0);
    assert_int_equal(ti.encoding, TEXT_UCS2);
    assert_int_equal(text_analyze_opts(e, strlen(e), &latin1, &ti), 0);
    assert_int_equal(ti.encoding, TEXT_GSM7);
    assert_int_equal(ti.data_coding, 3);
    /* € is GSM (extension) but not Latin-1. */
    assert_int_equal(text_analyze_opts("\xE2\x82\xAC", 3, &latin1, &ti), 0);
    assert_int_equal(ti.encoding, TEXT_UCS2);
    /* ASCII '{' on IA5 still costs two septets on the air. */
    assert_int_equal(text_analyze_opts("{a", 2, &ia5, &ti), 0);
    assert_int_equal(ti.encoding, TEXT_GSM7);
    assert_int_equal(ti.data_coding, 1);
    assert_int_equal(ti.units, 3);
    /* The encoded form is what the SMSC wants with that data_coding:
     * ASCII / Latin-1 bytes, one per character, while units stay septets. */
    struct buf b = BUF_INIT;
    struct text_segment seg[2];
    size_t n;
    assert_int_equal(text_encode("{a@", 3, &ia5, &b, NULL, NULL), 0);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "{a@", 3);
    assert_int_equal(text_split("{a@", 3, &ia5, seg, 2, &n, &ti, NULL), 0);
    assert_int_equal(ti.units, 4);
    assert_int_equal(seg[0].enc_len, 3);
    buf_reset(&b);
    assert_int_equal(text_encode(e, strlen(e), &latin1, &b, NULL, NULL), 0);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "caf\xE9", 4);
    buf_reset(&b);
    assert_int_equal(text_encode("{a@", 3, NULL, &b, NULL, NULL), 0);
    assert_memory_equal(b.data, "\x1B\x28\x61\x00", 4);
    buf_free(&b);
    /* Backtick is ASCII but not GSM. */
    assert_int_equal(text_analyze_opts("`", 1, &ia5, &ti), 0);
    assert_int_equal(ti.encoding, TEXT_UCS2);
}

static void expect_bad(const char *s, size_t len, size_t off, enum text_utf8_error kind)
{
    struct text_utf8_err e;
    struct text_info ti;
    assert_int_equal(text_utf8_validate(s, len, &e), SMSYS_EUTF8);
    assert_int_equal(e.offset, off);
    assert_int_equal(e.kind, kind);
    assert_int_equal(text_analyze(s, len, &ti), SMSYS_EUTF8);
    assert_int_equal(ti.bad_offset, off);
    assert_int_equal(ti.bad_kind, kind);
    struct buf b = BUF_INIT;
    struct smsys_err err;
    assert_int_equal(text_to_ucs2be(s, len, &b, &err), SMSYS_EUTF8);
    assert_int_equal(b.len, 0);
    char want[64];
    snprintf(want, sizeof(want), "invalid UTF-8 at byte %zu", off);
    assert_non_null(strstr(err.detail, want));
    buf_free(&b);
}

static void test_utf8_invalid(void **state)
{
    (void)state;
    expect_bad("ab\xC0\xAF", 4, 2, TEXT_UTF8_OVERLONG);         /* overlong '/' */
    expect_bad("a\xE0\x80\xAF", 4, 1, TEXT_UTF8_OVERLONG);      /* 3-byte overlong */
    expect_bad("\xF0\x82\x82\xAC", 4, 0, TEXT_UTF8_OVERLONG);   /* 4-byte overlong */
    expect_bad("x\xED\xA0\x80y", 5, 1, TEXT_UTF8_SURROGATE);    /* U+D800 */
    expect_bad("\xED\xBF\xBF", 3, 0, TEXT_UTF8_SURROGATE);      /* U+DFFF */
    expect_bad("ok\xF4\x90\x80\x80", 6, 2, TEXT_UTF8_TOO_BIG);  /* U+110000 */
    expect_bad("ok\xF5\x80\x80\x80", 6, 2, TEXT_UTF8_BAD_LEAD); /* 0xF5 lead */
    expect_bad("\xD8", 1, 0, TEXT_UTF8_TRUNCATED);              /* half of س */
    expect_bad("\xD8\xB3\xF0\x9F\x98", 5, 2, TEXT_UTF8_TRUNCATED);
    expect_bad("a\x80", 2, 1, TEXT_UTF8_BAD_LEAD); /* stray continuation */
    expect_bad("\xD8\x41", 2, 0, TEXT_UTF8_BAD_CONT);
    expect_bad("\xFF", 1, 0, TEXT_UTF8_BAD_LEAD);
    /* Edges that are valid. */
    assert_int_equal(text_utf8_validate("\xF4\x8F\xBF\xBF", 4, NULL), 0); /* U+10FFFF */
    assert_int_equal(text_utf8_validate("\xEF\xBF\xBF\xE0\xA0\x80", 6, NULL), 0);
    assert_int_equal(text_utf8_validate("a\0b", 3, NULL), 0);
    struct buf b = BUF_INIT;
    assert_int_equal(text_info_json("a\xC0\xAF", &b), 0);
    assert_string_equal(
        b.data, "{\"valid\":false,\"error\":\"invalid UTF-8: overlong encoding\",\"offset\":1}");
    buf_free(&b);
}

static void test_pack(void **state)
{
    (void)state;
    uint8_t sept[32], packed[32], back[32];
    struct buf b = BUF_INIT;
    assert_int_equal(text_to_gsm7("hellohello", 10, &b, NULL), 0);
    assert_int_equal(b.len, 10);
    size_t n = text_gsm7_pack((const uint8_t *)b.data, b.len, 0, packed, sizeof(packed));
    static const uint8_t want[] = {0xe8, 0x32, 0x9b, 0xfd, 0x46, 0x97, 0xd9, 0xec, 0x37};
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(packed, want, sizeof(want));
    assert_int_equal(text_gsm7_unpack(packed, n, 0, 10, back, sizeof(back)), 10);
    assert_memory_equal(back, b.data, 10);
    /* Too small an output: nothing written, 0 returned. */
    assert_int_equal(text_gsm7_pack((const uint8_t *)b.data, b.len, 0, packed, 8), 0);

    /* After a 6-octet UDH one fill bit is needed: 6*8 + 1 = 49 = 7*7. */
    assert_int_equal(text_gsm7_fill_bits(6), 1);
    assert_int_equal(text_gsm7_fill_bits(7), 0);
    assert_int_equal(text_gsm7_fill_bits(5), 2);
    assert_int_equal(text_gsm7_fill_bits(0), 0);
    /* "hello" after one fill bit: each septet shifted left by one. */
    n = text_gsm7_pack((const uint8_t *)b.data, 5, 1, packed, sizeof(packed));
    static const uint8_t want1[] = {0xd0, 0x65, 0x36, 0xfb, 0x0d};
    assert_int_equal(n, 5);
    assert_memory_equal(packed, want1, 5);
    assert_int_equal(text_gsm7_unpack(packed, n, 1, 5, back, sizeof(back)), 5);
    assert_memory_equal(back, "hello", 5);
    /* Round trip of all 128 septets with every fill. */
    for (unsigned fill = 0; fill < 7; fill++) {
        uint8_t all[128], pk[128], un[128];
        for (unsigned i = 0; i < 128; i++)
            all[i] = (uint8_t)i;
        size_t m = text_gsm7_pack(all, 128, fill, pk, sizeof(pk));
        assert_int_equal(m, text_gsm7_packed_len(128, fill));
        assert_int_equal(text_gsm7_unpack(pk, m, fill, 128, un, sizeof(un)), 128);
        assert_memory_equal(all, un, 128);
    }
    /* 8 septets fill 7 octets exactly. */
    memset(sept, 0x41, 8);
    assert_int_equal(text_gsm7_pack(sept, 8, 0, packed, sizeof(packed)), 7);
    buf_free(&b);
}

static void test_gsm_codec(void **state)
{
    (void)state;
    struct buf b = BUF_INIT, d = BUF_INIT;
    struct smsys_err err;
    const char *s = "@\xC2\xA3$ {x}\xE2\x82\xAC \xCE\xA9";
    assert_int_equal(text_to_gsm7(s, strlen(s), &b, NULL), 0);
    static const uint8_t want[] = {0x00, 0x01, 0x02, 0x20, 0x1B, 0x28, 0x78,
                                   0x1B, 0x29, 0x1B, 0x65, 0x20, 0x15};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    assert_int_equal(text_from_gsm7((const uint8_t *)b.data, b.len, 1, &d, NULL), 0);
    assert_string_equal(d.data, s);
    /* Persian has no GSM form. */
    buf_reset(&b);
    assert_int_equal(text_to_gsm7("a\xD8\xB3", 3, &b, &err), -EILSEQ);
    assert_non_null(strstr(err.detail, "U+0633"));
    assert_int_equal(b.len, 0);
    /* Decoding quirks: unknown escape -> basic char, trailing ESC dropped,
     * non-septet -> error (strict) or U+FFFD. */
    buf_reset(&d);
    static const uint8_t q[] = {0x1B, 0x41, 0x61, 0x1B};
    assert_int_equal(text_from_gsm7(q, sizeof(q), 1, &d, NULL), 0);
    assert_string_equal(d.data, "Aa");
    static const uint8_t hi[] = {0x61, 0x80};
    buf_reset(&d);
    assert_int_equal(text_from_gsm7(hi, 2, 1, &d, &err), -EILSEQ);
    assert_int_equal(d.len, 0);
    assert_int_equal(text_from_gsm7(hi, 2, 0, &d, NULL), 0);
    assert_string_equal(d.data, "a\xEF\xBF\xBD");
    buf_free(&b);
    buf_free(&d);
}

static void test_gsm_tables(void **state)
{
    (void)state;
    /* Every septet decodes to a character that encodes back to it. */
    for (unsigned sp = 0; sp < 128; sp++) {
        if (sp == 0x1B)
            continue;
        uint8_t in = (uint8_t)sp;
        struct buf u = BUF_INIT, g = BUF_INIT;
        assert_int_equal(text_from_gsm7(&in, 1, 1, &u, NULL), 0);
        assert_int_equal(text_to_gsm7(u.data, u.len, &g, NULL), 0);
        assert_int_equal(g.len, 1);
        assert_int_equal((uint8_t)g.data[0], sp);
        buf_free(&u);
        buf_free(&g);
    }
    /* And every code point the encoder accepts round-trips, with the cost
     * matching the encoded length; exactly 127 + 10 of them exist. */
    unsigned basic = 0, ext = 0;
    for (uint32_t cp = 0; cp < 0x10000; cp++) {
        int cost = text_gsm7_cost(cp);
        if (cost == 0)
            continue;
        char u8[4];
        size_t n = text_utf8_encode(cp, u8);
        struct buf g = BUF_INIT, back = BUF_INIT;
        assert_int_equal(text_to_gsm7(u8, n, &g, NULL), 0);
        assert_int_equal(g.len, (size_t)cost);
        assert_int_equal(text_from_gsm7((const uint8_t *)g.data, g.len, 1, &back, NULL), 0);
        assert_int_equal(back.len, n);
        assert_memory_equal(back.data, u8, n);
        basic += cost == 1;
        ext += cost == 2;
        buf_free(&g);
        buf_free(&back);
    }
    assert_int_equal(basic, 127);
    assert_int_equal(ext, 10);
    assert_int_equal(text_gsm7_cost('`'), 0);
    assert_int_equal(text_gsm7_cost(0x0633), 0);
}

static void test_ucs2_codec(void **state)
{
    (void)state;
    /* "سلام ۱۲" byte-exact. */
    const char *s = "\xD8\xB3\xD9\x84\xD8\xA7\xD9\x85 \xDB\xB1\xDB\xB2";
    static const uint8_t want[] = {0x06, 0x33, 0x06, 0x44, 0x06, 0x27, 0x06,
                                   0x45, 0x00, 0x20, 0x06, 0xF1, 0x06, 0xF2};
    struct buf b = BUF_INIT, d = BUF_INIT;
    struct smsys_err err;
    assert_int_equal(text_to_ucs2be(s, strlen(s), &b, NULL), 0);
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    assert_int_equal(text_from_ucs2be((const uint8_t *)b.data, b.len, 1, &d, NULL), 0);
    assert_string_equal(d.data, s);
    /* Emoji as a surrogate pair and back. */
    buf_reset(&b);
    buf_reset(&d);
    assert_int_equal(text_to_ucs2be("\xF0\x9F\x98\x80", 4, &b, NULL), 0);
    static const uint8_t pair[] = {0xD8, 0x3D, 0xDE, 0x00};
    assert_memory_equal(b.data, pair, 4);
    assert_int_equal(text_from_ucs2be(pair, 4, 1, &d, NULL), 0);
    assert_string_equal(d.data, "\xF0\x9F\x98\x80");
    /* Broken input: lone high surrogate, lone low, odd length. */
    static const uint8_t lone[] = {0xD8, 0x3D, 0x00, 0x41};
    buf_reset(&d);
    assert_int_equal(text_from_ucs2be(lone, 4, 1, &d, &err), -EILSEQ);
    assert_int_equal(text_from_ucs2be(lone, 4, 0, &d, NULL), 0);
    assert_string_equal(d.data, "\xEF\xBF\xBD"
                                "A");
    static const uint8_t low[] = {0xDE, 0x00};
    buf_reset(&d);
    assert_int_equal(text_from_ucs2be(low, 2, 0, &d, NULL), 0);
    assert_string_equal(d.data, "\xEF\xBF\xBD");
    static const uint8_t odd[] = {0x00, 0x41, 0x00};
    buf_reset(&d);
    assert_int_equal(text_from_ucs2be(odd, 3, 1, &d, &err), -EILSEQ);
    assert_int_equal(text_from_ucs2be(odd, 3, 0, &d, NULL), 0);
    assert_string_equal(d.data, "A\xEF\xBF\xBD");
    buf_free(&b);
    buf_free(&d);
}

static void test_json(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    char *s = rep("a", 161);
    assert_int_equal(text_info_json(s, &b), 0);
    assert_string_equal(b.data, "{\"valid\":true,\"encoding\":\"GSM-7\",\"data_coding\":0,"
                                "\"chars\":161,\"units\":161,\"unit\":\"septets\",\"segments\":2,"
                                "\"single_limit\":160,\"multi_limit\":153,\"per_segment\":153,"
                                "\"remaining\":145}");
    buf_reset(&b);
    assert_int_equal(text_info_json("\xD8\xB3\xF0\x9F\x98\x80", &b), 0);
    assert_string_equal(b.data, "{\"valid\":true,\"encoding\":\"UCS-2\",\"data_coding\":8,"
                                "\"chars\":2,\"units\":3,\"unit\":\"ucs2\",\"segments\":1,"
                                "\"single_limit\":70,\"multi_limit\":67,\"per_segment\":70,"
                                "\"remaining\":67}");
    buf_free(&b);
    free(s);
}

static void test_utf8_codec(void **state)
{
    (void)state;
    char out[4];
    assert_int_equal(text_utf8_encode(0x41, out), 1);
    assert_int_equal(text_utf8_encode(0x633, out), 2);
    assert_memory_equal(out, "\xD8\xB3", 2);
    assert_int_equal(text_utf8_encode(0x20AC, out), 3);
    assert_int_equal(text_utf8_encode(0x1F600, out), 4);
    assert_memory_equal(out, "\xF0\x9F\x98\x80", 4);
    assert_int_equal(text_utf8_encode(0xD800, out), 0);
    assert_int_equal(text_utf8_encode(0x110000, out), 0);
    size_t pos = 0;
    uint32_t cp;
    assert_int_equal(text_utf8_next("\xD8\xB3x", 3, &pos, &cp, NULL), 0);
    assert_int_equal(cp, 0x633);
    assert_int_equal(pos, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gsm_boundaries), cmocka_unit_test(test_gsm_extension),
        cmocka_unit_test(test_ucs2_persian),   cmocka_unit_test(test_emoji),
        cmocka_unit_test(test_split_limits),   cmocka_unit_test(test_smsc_default),
        cmocka_unit_test(test_utf8_invalid),   cmocka_unit_test(test_pack),
        cmocka_unit_test(test_gsm_codec),      cmocka_unit_test(test_ucs2_codec),
        cmocka_unit_test(test_json),           cmocka_unit_test(test_utf8_codec),
        cmocka_unit_test(test_gsm_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
