/* Unit tests for provsim's pure helpers: the GSM-7 / UCS-2 segment counter
 * that prices every simulated message, and the form / comma-list decoding
 * every provider's request parsing relies on. The simulator is a program,
 * not part of libsmsys, so its two self-contained files are compiled in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../tools/provsim/checks.c"
#include "../../tools/provsim/form.c"

#include "smsys/text.h"

#include <stdlib.h>
#include <string.h>

static int segs(const char *s, int *ucs2)
{
    return sim_segments(s, ucs2);
}

static char *repeat(const char *unit, int n)
{
    size_t ul = strlen(unit);
    char *s = malloc(ul * (size_t)n + 1);
    assert_non_null(s);
    for (int i = 0; i < n; i++)
        memcpy(s + ul * (size_t)i, unit, ul);
    s[ul * (size_t)n] = '\0';
    return s;
}

static void test_gsm7_boundaries(void **state)
{
    (void)state;
    int u = -1;
    assert_int_equal(segs("", &u), 1);
    assert_int_equal(u, 0);
    static const struct {
        int n, want;
    } cases[] = {{1, 1}, {160, 1}, {161, 2}, {306, 2}, {307, 3}, {459, 3}, {460, 4}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *s = repeat("a", cases[i].n);
        assert_int_equal(segs(s, &u), cases[i].want);
        assert_int_equal(u, 0);
        free(s);
    }
    /* GSM-7 letters beyond ASCII stay GSM-7 */
    assert_int_equal(segs("Δ£éÑü¿§", &u), 1);
    assert_int_equal(u, 0);
}

static void test_gsm7_extension_counts_twice(void **state)
{
    (void)state;
    int u = -1;
    char *s = repeat("€", 80); /* 160 septets */
    assert_int_equal(segs(s, &u), 1);
    assert_int_equal(u, 0);
    free(s);
    s = repeat("{", 81); /* 162 septets */
    assert_int_equal(segs(s, &u), 2);
    free(s);
    char *t = repeat("a", 159);
    char buf[200];
    snprintf(buf, sizeof(buf), "%s^", t); /* 159 + 2 = 161 */
    assert_int_equal(segs(buf, &u), 2);
    free(t);
    /* the backquote is not in GSM-7 at all */
    assert_int_equal(segs("a`b", &u), 1);
    assert_int_equal(u, 1);
}

static void test_ucs2_boundaries(void **state)
{
    (void)state;
    int u = -1;
    static const struct {
        int n, want;
    } cases[] = {{70, 1}, {71, 2}, {134, 2}, {135, 3}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *s = repeat("س", cases[i].n);
        assert_int_equal(segs(s, &u), cases[i].want);
        assert_int_equal(u, 1);
        free(s);
    }
    /* one Persian letter turns a Latin text into UCS-2 */
    char *s = repeat("a", 70);
    char buf[100];
    snprintf(buf, sizeof(buf), "%sس", s);
    assert_int_equal(segs(buf, &u), 2);
    free(s);
    /* beyond the BMP a character takes two UCS-2 units */
    s = repeat("😀", 35);
    assert_int_equal(segs(s, &u), 1);
    free(s);
    s = repeat("😀", 36);
    assert_int_equal(segs(s, &u), 2);
    free(s);
    /* invalid UTF-8 is counted, not crashed on */
    assert_int_equal(segs("\xff\xfe\xc3", &u), 1);
    assert_int_equal(u, 1);
}

/* An escape pair is never split: 152 septets + one extension character
 * do not fit the first 153-septet part. */
static void test_pairs_not_split(void **state)
{
    (void)state;
    int u = -1;
    char *a = repeat("a", 152);
    char buf[400];
    snprintf(buf, sizeof(buf), "%s€%s", a, a); /* 152+2+152 = 306 septets */
    assert_int_equal(segs(buf, &u), 3);        /* 152 | 2+151 | 1 */
    free(a);
    a = repeat("س", 66);
    snprintf(buf, sizeof(buf), "%s😀%s", a, "سس"); /* 66+2+2 = 70 units: single */
    assert_int_equal(segs(buf, &u), 1);
    snprintf(buf, sizeof(buf), "%s😀%s", a, "سسس"); /* 71 units, pair at 67/68 */
    assert_int_equal(segs(buf, &u), 2);
    free(a);
}

/* The simulator's counter agrees with the service's text module (written
 * separately) over many random mixes of the characters that matter. */
static void test_agrees_with_text_module(void **state)
{
    (void)state;
    static const char *const alphabet[] = {"a", " ", "€", "{", "é", "Δ", "س", "۱", "😀", "`"};
    unsigned seed = 12345;
    for (int round = 0; round < 3000; round++) {
        char buf[2048];
        size_t len = 0;
        seed = seed * 1103515245u + 12345u;
        int n = (int)((seed >> 8) % 400);
        /* mostly one family, so both encodings get long texts */
        int family = (int)((seed >> 4) % 3);
        for (int i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = (seed >> 16) % 100;
            const char *c = family == 0   ? alphabet[r < 95 ? 0 : 1 + r % 5]
                            : family == 1 ? alphabet[r < 90 ? 6 : r % 10]
                                          : alphabet[r % 10];
            size_t cl = strlen(c);
            if (len + cl >= sizeof(buf))
                break;
            memcpy(buf + len, c, cl);
            len += cl;
        }
        buf[len] = '\0';
        struct text_info ti;
        assert_int_equal(text_analyze(buf, len, &ti), 0);
        int u = -1;
        int got = segs(buf, &u);
        size_t want = ti.segments ? ti.segments : 1; /* empty text: billed as one */
        if ((size_t)got != want || u != (ti.encoding == TEXT_UCS2))
            fail_msg("round %d: %d segments (ucs2 %d), text module %zu (ucs2 %d) for %zu bytes",
                     round, got, u, want, ti.encoding == TEXT_UCS2, len);
    }
}

static void test_form_decoding(void **state)
{
    (void)state;
    struct sim_form f = {0};
    const char *q = "a=1&b=x+y%20z&&empty=&noval&a=2&fa=%D8%B3%D9%84%D8%A7%D9%85";
    assert_int_equal(form_parse(&f, q, strlen(q)), 0);
    assert_string_equal(form_get(&f, "a"), "1");
    assert_string_equal(form_nth(&f, "a", 1), "2");
    assert_null(form_nth(&f, "a", 2));
    assert_string_equal(form_get(&f, "B"), "x y z"); /* keys case-insensitive */
    assert_string_equal(form_get(&f, "empty"), "");
    assert_string_equal(form_get(&f, "noval"), "");
    assert_string_equal(form_get(&f, "fa"), "سلام");
    assert_null(form_get(&f, "missing"));
    form_free(&f);
    assert_int_equal(form_parse(&f, "x=%zz", 5), -EINVAL);
    form_free(&f);
    /* only len bytes are read */
    assert_int_equal(form_parse(&f, "k=v&k2=v2", 3), 0);
    assert_int_equal((int)f.n, 1);
    form_free(&f);
}

static void test_split_list(void **state)
{
    (void)state;
    size_t n = 99;
    char **l = split_list(" 0912 , ,0935,  ", &n);
    assert_non_null(l);
    assert_int_equal((int)n, 2);
    assert_string_equal(l[0], "0912");
    assert_string_equal(l[1], "0935");
    assert_null(l[2]);
    free(l);
    l = split_list(NULL, &n);
    assert_non_null(l);
    assert_int_equal((int)n, 0);
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gsm7_boundaries),
        cmocka_unit_test(test_gsm7_extension_counts_twice),
        cmocka_unit_test(test_ucs2_boundaries),
        cmocka_unit_test(test_pairs_not_split),
        cmocka_unit_test(test_agrees_with_text_module),
        cmocka_unit_test(test_form_decoding),
        cmocka_unit_test(test_split_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
