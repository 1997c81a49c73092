/* Unit tests for textnorm: keyword normalisation, splitting, digits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/error.h"
#include "smsys/textnorm.h"

#include <errno.h>
#include <string.h>

static void norm(const char *in, const char *want)
{
    struct buf b = BUF_INIT;
    assert_int_equal(textnorm_keywords(in, &b), 0);
    assert_non_null(b.data);
    if (strcmp(b.data, want) != 0)
        fail_msg("normalised '%s' to '%s', want '%s'", in, b.data, want);
    buf_free(&b);
}

static void test_letters(void **state)
{
    (void)state;
    /* Arabic Yeh / Alef Maksura -> Persian Yeh; Arabic Kaf -> Keheh. */
    norm("\xD9\x8A", "\xDB\x8C");
    norm("\xD9\x89", "\xDB\x8C");
    norm("\xD9\x83", "\xDA\xA9");
    /* "كيك" typed on an Arabic keyboard equals "کیک" on a Persian one. */
    norm("\xD9\x83\xD9\x8A\xD9\x83", "\xDA\xA9\xDB\x8C\xDA\xA9");
    norm("\xDA\xA9\xDB\x8C\xDA\xA9", "\xDA\xA9\xDB\x8C\xDA\xA9");
    /* Teh Marbuta kept; Heh Goal and Heh Doachashmee -> Heh. */
    norm("\xD8\xA9", "\xD8\xA9");
    norm("\xDB\x81\xDA\xBE", "\xD9\x87\xD9\x87");
    /* Persian letters that must not change: پ چ ژ گ آ */
    norm("\xD9\xBE\xDA\x86\xDA\x98\xDA\xAF\xD8\xA2", "\xD9\xBE\xDA\x86\xDA\x98\xDA\xAF\xD8\xA2");
}

static void test_digits(void **state)
{
    (void)state;
    norm("\xDB\xB0\xDB\xB1\xDB\xB2\xDB\xB3\xDB\xB4\xDB\xB5\xDB\xB6\xDB\xB7\xDB\xB8\xDB\xB9",
         "0123456789");
    norm("\xD9\xA0\xD9\xA1\xD9\xA2\xD9\xA3\xD9\xA4\xD9\xA5\xD9\xA6\xD9\xA7\xD9\xA8\xD9\xA9",
         "0123456789");
    struct buf b = BUF_INIT;
    assert_int_equal(textnorm_digits_to_persian("Tel 021-\xD9\xA1\xD9\xA2", 12, &b), 0);
    assert_string_equal(b.data, "Tel \xDB\xB0\xDB\xB2\xDB\xB1-\xDB\xB1\xDB\xB2");
    buf_reset(&b);
    assert_int_equal(textnorm_digits_to_persian("1,403", 5, &b), 0);
    assert_string_equal(b.data, "\xDB\xB1,\xDB\xB4\xDB\xB0\xDB\xB3");
    buf_reset(&b);
    assert_int_equal(textnorm_digits_to_persian("\xC0\xAF", 2, &b), SMSYS_EUTF8);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_invisible(void **state)
{
    (void)state;
    /* ZWNJ: "می‌شود" == "میشود". */
    norm("\xD9\x85\xDB\x8C\xE2\x80\x8C\xD8\xB4\xD9\x88\xD8\xAF",
         "\xD9\x85\xDB\x8C\xD8\xB4\xD9\x88\xD8\xAF");
    /* ZWJ, tatweel, LRM/RLM/ALM, embeddings, isolates, BOM. */
    norm("\xD8\xB3\xD9\x80\xD9\x80\xD9\x84\xE2\x80\x8D\xD8\xA7\xD9\x85",
         "\xD8\xB3\xD9\x84\xD8\xA7\xD9\x85");
    norm("\xE2\x80\x8F"
         "abc\xE2\x80\x8E\xD8\x9C\xE2\x80\xAB\xE2\x80\xAC\xE2\x81\xA6\xE2\x81\xA9\xEF\xBB\xBF",
         "abc");
    /* Diacritics: fatha, kasra, damma, tanwin, shadda, sukun, superscript alef. */
    norm("\xD9\x85\xD9\x8E\xD8\xAD\xD9\x8E\xD9\x85\xD9\x8E\xD9\x91\xD8\xAF",
         "\xD9\x85\xD8\xAD\xD9\x85\xD8\xAF");
    norm("\xD8\xA7\xD9\x8B\xD9\x8C\xD9\x8D\xD9\x90\xD9\x8F\xD9\x92\xD9\x9F\xD9\xB0", "\xD8\xA7");
}

static void test_case_space(void **state)
{
    (void)state;
    norm("CONFIRM Registration", "confirm registration");
    norm("\xC3\x89T\xC3\x89 \xC3\x97", "\xC3\xA9t\xC3\xA9 \xC3\x97"); /* É -> é, × stays */
    norm("  a \t\xC2\xA0 b  ", "a b");
    norm("a\r\n\r\nb", "a\nb");
    norm("a \n  b\rc", "a\nb\nc");
    norm("\n\n a", "a");
    norm("a\x01"
         "b",
         "a b");
    norm("", "");
    struct buf b = BUF_INIT;
    assert_int_equal(textnorm_keywords("ok\xED\xA0\x80", &b), SMSYS_EUTF8);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

struct words {
    char w[16][64];
    size_t n;
};

static int word_cb(const char *word, size_t len, void *ud)
{
    struct words *ws = ud;
    assert_true(len > 0 && len < 64 && ws->n < 16);
    memcpy(ws->w[ws->n], word, len);
    ws->w[ws->n][len] = '\0';
    ws->n++;
    return 0;
}

static void test_spec_example(void **state)
{
    (void)state;
    /* The spec example "critical problem: program forms are not saved" in
     * Persian, typed with an Arabic Kaf and ZWNJs. */
    const char *in = "\xD9\x85\xD8\xB4\xD9\x83\xD9\x84 \xD8\xAD\xD8\xA7\xD8\xAF: "
                     "\xD9\x81\xD8\xB1\xD9\x85\xE2\x80\x8C\xD9\x87\xD8\xA7\xDB\x8C "
                     "\xD8\xA8\xD8\xB1\xD9\x86\xD8\xA7\xD9\x85\xD9\x87 "
                     "\xD8\xB0\xD8\xAE\xDB\x8C\xD8\xB1\xD9\x87 "
                     "\xD9\x86\xD9\x85\xDB\x8C\xE2\x80\x8C\xD8\xB4\xD9\x88\xD9\x86\xD8\xAF";
    struct buf b = BUF_INIT;
    assert_int_equal(textnorm_keywords(in, &b), 0);
    struct words ws = {.n = 0};
    assert_int_equal(textnorm_split(b.data, NULL, word_cb, &ws), 0);
    assert_int_equal(ws.n, 6);
    assert_string_equal(ws.w[0], "\xD9\x85\xD8\xB4\xDA\xA9\xD9\x84"); /* مشکل */
    assert_string_equal(ws.w[1], "\xD8\xAD\xD8\xA7\xD8\xAF");         /* حاد */
    assert_string_equal(ws.w[2], "\xD9\x81\xD8\xB1\xD9\x85\xD9\x87\xD8\xA7\xDB\x8C");
    assert_string_equal(ws.w[3], "\xD8\xA8\xD8\xB1\xD9\x86\xD8\xA7\xD9\x85\xD9\x87");
    assert_string_equal(ws.w[4], "\xD8\xB0\xD8\xAE\xDB\x8C\xD8\xB1\xD9\x87");
    assert_string_equal(ws.w[5], "\xD9\x86\xD9\x85\xDB\x8C\xD8\xB4\xD9\x88\xD9\x86\xD8\xAF");
    buf_free(&b);
}

static void test_separators(void **state)
{
    (void)state;
    const char *w[8];
    size_t l[8], n;
    /* Default set: space , ، ; ؛ : new line. */
    const char *s = "a,b\xD8\x8C"
                    "c;d\xD8\x9B"
                    "e:f\ng h";
    assert_int_equal(textnorm_split_array(s, "", w, l, 8, &n), 0);
    assert_int_equal(n, 8);
    assert_memory_equal(w[2], "c", 1);
    assert_int_equal(l[2], 1);
    assert_memory_equal(w[7], "h", 1);
    /* Only the Persian comma: the rest stays inside words. */
    assert_int_equal(textnorm_split_array(s, "\xD8\x8C", w, l, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(l[0], 3);
    /* Escapes as written in settings: "\n" is a new line, "\s" a space. */
    assert_int_equal(textnorm_split_array("a b\nc", "\\n", w, l, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(l[0], 3);
    assert_int_equal(textnorm_split_array("a b\nc", "\\s", w, l, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(l[0], 1);
    assert_int_equal(textnorm_split_array("a\\b|c", "\\\\|", w, l, 8, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(textnorm_split_array("a\tb", "\\t", w, l, 8, &n), 0);
    assert_int_equal(n, 2);
    /* Empty words between separators are skipped; count beyond max reported. */
    assert_int_equal(textnorm_split_array(",,a,,b,,", ",", w, l, 1, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(w[0], "a", 1);
    assert_int_equal(textnorm_split_array("", ",", w, l, 8, &n), 0);
    assert_int_equal(n, 0);
    /* Bad inputs. */
    assert_int_equal(textnorm_split_array("a\xC0", ",", w, l, 8, &n), SMSYS_EUTF8);
    assert_int_equal(textnorm_split_array("a", "\xC0", w, l, 8, &n), SMSYS_EUTF8);
    char many[200];
    memset(many, '#', 80);
    many[80] = '\0';
    assert_int_equal(textnorm_split_array("a", many, w, l, 8, &n), -EINVAL);
}

static int stop_cb(const char *word, size_t len, void *ud)
{
    (void)word;
    (void)len;
    int *calls = ud;
    return ++*calls == 2 ? 42 : 0;
}

static void test_split_stop(void **state)
{
    (void)state;
    int calls = 0;
    assert_int_equal(textnorm_split("a b c d", " ", stop_cb, &calls), 42);
    assert_int_equal(calls, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_letters),      cmocka_unit_test(test_digits),
        cmocka_unit_test(test_invisible),    cmocka_unit_test(test_case_space),
        cmocka_unit_test(test_spec_example), cmocka_unit_test(test_separators),
        cmocka_unit_test(test_split_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
