/* text.h - SMS text: UTF-8 validation, GSM 03.38 / UCS-2 encoding, segments.
 *
 * Every function here is pure (no I/O, no global state) and thread-safe.
 * Output goes either into a struct buf the caller owns (the caller calls
 * buf_free) or into a caller-provided array; nothing is allocated behind the
 * caller's back. Inputs are (pointer, length) pairs: a NUL byte inside the
 * length is the character U+0000, not an end marker.
 *
 * Counting rules (docs/text.md has the worked examples):
 *   - A text is GSM-7 when every character is in the GSM 03.38 default
 *     alphabet or its extension table; otherwise it is UCS-2.
 *   - GSM-7 units are septets; an extension character (form feed ^ { } \ [ ~
 *   ] | and the euro sign) costs two (0x1B escape + code).
 *   - UCS-2 units are 16-bit code units; a character above U+FFFF (emoji)
 *     costs two (a surrogate pair).
 *   - One segment holds 160 septets / 70 units. A longer text is split into
 *     parts of 153 / 67 (140 octets minus a 6-octet concatenation UDH); an
 *     escape pair or a surrogate pair is never split across parts, so a part
 *     may carry one unit less than the limit. */
#ifndef SMSYS_TEXT_H
#define SMSYS_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "smsys/buf.h"
#include "smsys/error.h"

/* ---- UTF-8 -------------------------------------------------------------- */

enum text_utf8_error {
    TEXT_UTF8_OK = 0,
    TEXT_UTF8_BAD_LEAD,  /* a byte that cannot start a character (0x80-0xC1, 0xF5-0xFF) */
    TEXT_UTF8_TRUNCATED, /* the input ends inside a multi-byte character */
    TEXT_UTF8_BAD_CONT,  /* a continuation byte was expected and missing */
    TEXT_UTF8_OVERLONG,  /* a character encoded with more bytes than needed */
    TEXT_UTF8_SURROGATE, /* U+D800-U+DFFF encoded in UTF-8 (CESU-8 style) */
    TEXT_UTF8_TOO_BIG    /* above U+10FFFF */
};

/* Where and why validation failed. */
struct text_utf8_err {
    size_t offset; /* byte offset of the first byte of the bad character */
    enum text_utf8_error kind;
};

/* Checks that s[0..len) is well-formed UTF-8 (RFC 3629). Returns 0, or
 * SMSYS_EUTF8 with *e (may be NULL) saying where the first error is. */
int text_utf8_validate(const char *s, size_t len, struct text_utf8_err *e);

/* A static English phrase for an error kind ("overlong encoding", ...). */
const char *text_utf8_strerror(enum text_utf8_error kind);

/* Fills err (may be NULL) with "invalid UTF-8 at byte N: <why>" and returns
 * SMSYS_EUTF8; for callers that report validation failures to users. */
int text_utf8_report(const struct text_utf8_err *e, struct smsys_err *err);

/* Decodes one code point at s[*pos] (pos < len), advancing *pos past it.
 * Returns 0, or SMSYS_EUTF8 leaving *pos unchanged and *why (may be NULL)
 * set. */
int text_utf8_next(const char *s, size_t len, size_t *pos, uint32_t *cp, enum text_utf8_error *why);

/* Writes the UTF-8 form of cp (<= U+10FFFF, not a surrogate) into out and
 * returns its length 1-4; returns 0 for a value that is not a scalar. */
size_t text_utf8_encode(uint32_t cp, char out[4]);

/* ---- Analysis and segments ---------------------------------------------- */

enum text_encoding {
    TEXT_GSM7 = 0, /* 7-bit default alphabet: units are septets */
    TEXT_UCS2 = 1  /* UCS-2 / UTF-16BE: units are 16-bit code units */
};

/* Options; a zeroed struct (or NULL where accepted) means the defaults. */
struct text_opts {
    /* Send everything as UCS-2, even pure GSM text (some panels and some
     * handsets render GSM-7 badly; the admin may force it). */
    int force_ucs2;
    /* The SMSC's data_coding for the 7-bit path (SMPP data_coding):
     *   0 - SMSC default alphabet, taken as GSM 03.38: every GSM character
     *       (basic and extension table) goes the 7-bit way.
     *   1 - IA5 / ASCII: only characters that are in ASCII *and* in GSM
     *       03.38 go the 7-bit way (the SMSC converts ASCII to GSM on the
     *       air interface); a GSM-only character such as é, £ or € makes
     *       the text UCS-2.
     *   3 - Latin-1: only characters in ISO-8859-1 *and* GSM 03.38 go the
     *       7-bit way (€ is not Latin-1, so it forces UCS-2).
     * In every case the air interface carries GSM-7, so counting is in
     * septets (extension characters cost two) with the 160/153 limits.
     * Any other value is treated as 0. */
    int smsc_default;
    /* Octets of user data header per part of a long message: 0 means 6
     * (the usual 8-bit-reference concatenation IE); 7 for a 16-bit
     * reference. Parts then hold floor((140-udh)*8/7) septets or
     * (140-udh)/2 UCS-2 units: 153/67 for 6, 152/66 for 7. At most
     * 134, so that a part still holds an escape or surrogate pair. */
    unsigned udh_octets;
};

struct text_info {
    enum text_encoding encoding;
    unsigned data_coding;          /* SMPP data_coding to send with: 0, 1, 3 or 8 */
    size_t chars;                  /* Unicode code points */
    size_t units;                  /* septets (GSM-7) or UCS-2 code units */
    size_t segments;               /* 0 for the empty text, else parts on the wire */
    size_t single_limit;           /* 160 or 70: what fits one un-split message */
    size_t per_segment;            /* limit of the current segment: single_limit when
                                      segments <= 1, else 153 or 67 */
    size_t remaining;              /* units still free in the last segment */
    size_t bad_offset;             /* on SMSYS_EUTF8: byte offset of the bad input */
    enum text_utf8_error bad_kind; /* on SMSYS_EUTF8: why */
};

/* Analyses utf8[0..len) with default options. Returns 0, or SMSYS_EUTF8
 * with out->bad_offset / out->bad_kind set (other fields zero). */
int text_analyze(const char *utf8, size_t len, struct text_info *out);

/* Same with options (opts may be NULL). -EINVAL for udh_octets > 134. */
int text_analyze_opts(const char *utf8, size_t len, const struct text_opts *opts,
                      struct text_info *out);

/* One part of a split message. Byte ranges refer to the original UTF-8
 * and to the encoded form that text_encode() produces for the same input
 * and options (unpacked septets one per byte, ASCII / Latin-1 bytes for
 * smsc_default 1 / 3, or UCS-2BE bytes). */
struct text_segment {
    size_t utf8_off, utf8_len;
    size_t enc_off, enc_len;
    size_t units; /* septets or UCS-2 units in this part */
};

/* Splits utf8 into the parts it is sent as. When the text fits one
 * message the result is one part covering everything. Writes up to
 * max_segs entries into segs and the real count into *n_segs. Returns 0,
 * SMSYS_EUTF8 (err filled), -E2BIG when more than max_segs parts are needed
 * (*n_segs still says how many), or -EINVAL for bad options. The empty text
 * gives zero parts. info (may be NULL) receives what text_analyze gives. */
int text_split(const char *utf8, size_t len, const struct text_opts *opts,
               struct text_segment *segs, size_t max_segs, size_t *n_segs, struct text_info *info,
               struct smsys_err *err);

/* Appends the encoded form of utf8 to out in the encoding text_analyze_opts
 * chooses for these options (*enc_out, may be NULL, says which): for the
 * 7-bit path unpacked GSM septets (smsc_default 0), ASCII bytes (1) or
 * Latin-1 bytes (3) - what goes into short_message with that data_coding;
 * for UCS-2, UTF-16BE. The caller owns and frees out. Returns 0,
 * SMSYS_EUTF8 (err filled), or -ENOMEM / -E2BIG from the buffer. */
int text_encode(const char *utf8, size_t len, const struct text_opts *opts, struct buf *out,
                enum text_encoding *enc_out, struct smsys_err *err);

/* ---- GSM 03.38 ---------------------------------------------------------- */

/* Septet cost of one code point in GSM 03.38: 1 (basic table), 2
 * (extension table) or 0 (not representable). */
int text_gsm7_cost(uint32_t cp);

/* Appends unpacked septets (one per byte, values 0-0x7F, extension
 * characters as 0x1B + code) for utf8 to out. Returns 0, SMSYS_EUTF8, or
 * -EILSEQ when a character has no GSM 03.38 form (err says which and
 * where). The caller frees out. */
int text_to_gsm7(const char *utf8, size_t len, struct buf *out, struct smsys_err *err);

/* Decodes unpacked septets into UTF-8, appended to out (caller frees).
 * Unknown escape codes decode as the basic-table character after the
 * escape (what 3GPP TS 23.038 tells handsets to display), and a lone 0x1B
 * at the end is dropped. A byte > 0x7F is not a septet: with strict it is
 * -EILSEQ, otherwise it becomes U+FFFD. */
int text_from_gsm7(const uint8_t *septets, size_t n, int strict, struct buf *out,
                   struct smsys_err *err);

/* Fill bits that follow a user data header of udh_octets octets so that
 * the first septet starts on a septet boundary: (7 - udh*8 % 7) % 7. */
unsigned text_gsm7_fill_bits(size_t udh_octets);

/* Octets needed to pack n septets after fill_bits fill bits. */
size_t text_gsm7_packed_len(size_t n, unsigned fill_bits);

/* Packs n septets (low 7 bits used) into out, least significant bit first
 * (GSM 03.38 section 6.1.2.1), after fill_bits zero bits (0-6). Returns the
 * octet count, or 0 when outlen is smaller than text_gsm7_packed_len()
 * (or fill_bits > 6). out is not allocated here. */
size_t text_gsm7_pack(const uint8_t *septets, size_t n, unsigned fill_bits, uint8_t *out,
                      size_t outlen);

/* Unpacks up to max_septets septets from packed[0..len) skipping fill_bits
 * leading bits, into out (one septet per byte). Pass the UDL-derived septet
 * count as max_septets: a trailing zero septet cannot be told from padding
 * otherwise. Returns the number written (limited by outlen and by the bits
 * available). */
size_t text_gsm7_unpack(const uint8_t *packed, size_t len, unsigned fill_bits, size_t max_septets,
                        uint8_t *out, size_t outlen);

/* ---- UCS-2 -------------------------------------------------------------- */

/* Appends UTF-16BE for utf8 (surrogate pairs above U+FFFF) to out (caller
 * frees). Returns 0, SMSYS_EUTF8 (err filled), or a buffer error. */
int text_to_ucs2be(const char *utf8, size_t len, struct buf *out, struct smsys_err *err);

/* Decodes UCS-2/UTF-16BE (surrogate pairs joined) into UTF-8 appended to
 * out (caller frees). An odd trailing byte or an unpaired surrogate is
 * -EILSEQ with strict, otherwise U+FFFD. */
int text_from_ucs2be(const uint8_t *in, size_t n, int strict, struct buf *out,
                     struct smsys_err *err);

/* ---- For the CLI, templates and preflight ------------------------------ */

/* Appends a JSON object describing the NUL-terminated text s to out:
 * {"valid":true,"encoding":"GSM-7"|"UCS-2","data_coding":0|8,"chars":N,
 *  "units":N,"unit":"septets"|"ucs2","segments":N,"single_limit":160|70,
 *  "multi_limit":153|67,"per_segment":N,"remaining":N} or, for invalid
 * UTF-8, {"valid":false,"error":"...","offset":N}. Returns 0 or a buffer
 * error; the caller frees out. */
int text_info_json(const char *s, struct buf *out);

#endif
