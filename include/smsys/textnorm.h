/* textnorm.h - normalising Persian/Arabic/Latin text for keyword matching.
 *
 * Inbound SMS and the keywords admins configure are both passed through
 * textnorm_keywords(), so the same word typed on an Arabic keyboard, a
 * Persian keyboard, with or without ZWNJ or diacritics, in any case and with
 * any digits compares equal. docs/persian.md lists every rule with examples.
 * Functions are pure and thread-safe; output is appended to a struct buf the
 * caller owns and frees. */
#ifndef SMSYS_TEXTNORM_H
#define SMSYS_TEXTNORM_H

#include <stddef.h>

#include "smsys/buf.h"

/* The separators used when the setting is empty: space, comma, Persian
 * comma, semicolon, Persian semicolon, colon, new line. */
#define TEXTNORM_DEFAULT_SEPARATORS " ,\xD8\x8C;\xD8\x9B:\\n"

/* Appends the normalised form of the NUL-terminated utf8 to out:
 *   - Arabic Yeh U+064A and Alef Maksura U+0649 -> Persian Yeh U+06CC;
 *     Arabic Kaf U+0643 -> Keheh U+06A9; Heh Doachashmee and Heh Goal
 *     (U+06BE, U+06C1) -> Heh U+0647. Teh Marbuta U+0629 is kept: it is a
 *     letter of its own in Arabic loan words and folding it would merge
 *     distinct words; both sides are normalised alike so it still matches.
 *   - Persian and Arabic-Indic digits -> ASCII digits.
 *   - Removed: ZWNJ, ZWJ, tatweel U+0640, Arabic diacritics
 *     U+064B-U+065F and U+0670, bidi marks and controls (LRM, RLM, ALM,
 *     U+202A-U+202E, U+2066-U+2069), BOM, soft hyphen. Other control
 *     characters count as a space (dropping them would glue words).
 *   - Case: ASCII and Latin-1 letters to lower case.
 *   - Whitespace: runs of spaces/tabs/no-break and other Unicode spaces
 *     become one space; CR, CR LF, LF and runs of them become one "\n";
 *     spaces around a new line and at both ends are dropped.
 * Returns 0, SMSYS_EUTF8 for invalid input (out unchanged), or a buffer
 * error. */
int textnorm_keywords(const char *utf8, struct buf *out);

/* Called once per word, in order; word is not NUL-terminated. Return 0 to
 * continue, anything else to stop (textnorm_split then returns it). */
typedef int (*textnorm_word_cb)(const char *word, size_t len, void *ud);

/* Splits normalized (NUL-terminated) into words on any separator
 * character and calls cb for each non-empty word. separators is the
 * setting as an admin writes it (NULL or "" = TEXTNORM_DEFAULT_SEPARATORS):
 * every UTF-8 character in it is a separator, except that a backslash
 * starts an escape: "\n" new line, "\r" carriage return, "\t" tab, "\s"
 * space (trailing spaces get lost in forms), "\\" a backslash; a backslash
 * before anything else is taken literally together with that character.
 * Returns 0, what cb returned, -EINVAL for separators with more than 64
 * characters, or SMSYS_EUTF8 for invalid UTF-8 in either string. */
int textnorm_split(const char *normalized, const char *separators, textnorm_word_cb cb, void *ud);

/* Fills words[0..max) with up to max words (pointers into normalized,
 * with lengths in lens) and sets *n to the count found (which may exceed
 * max). Returns as textnorm_split. A convenience over the callback form. */
int textnorm_split_array(const char *normalized, const char *separators, const char **words,
                         size_t *lens, size_t max, size_t *n);

/* Appends utf8 with ASCII and Arabic-Indic digits replaced by Persian
 * digits (U+06F0-U+06F9), for template output. Returns 0, SMSYS_EUTF8, or
 * a buffer error. */
int textnorm_digits_to_persian(const char *utf8, size_t len, struct buf *out);

#endif
