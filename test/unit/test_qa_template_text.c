/* test_qa_template_text.c - the two small rules the QA pass added to
 * template.h: what counts as a blank text (template_text_blank: an SMS
 * of it is never sent) and how smsys_entity as typed becomes a logical
 * name (template_entity_norm). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smsys/template.h"

static int blank(const char *s)
{
    return template_text_blank(s, strlen(s));
}

static void test_blank(void **state)
{
    (void)state;
    assert_true(blank(""));
    assert_true(blank(" "));
    assert_true(blank(" \t\r\n\v\f "));
    assert_true(blank("\u00a0"));              /* no-break space */
    assert_true(blank("\u200c\u200d\u200b"));  /* ZWNJ, ZWJ, zero width space */
    assert_true(blank("\u2003\u202f\u3000 ")); /* em space, narrow nbsp, ideographic */
    assert_true(blank("\ufeff"));              /* byte order mark */
    assert_true(template_text_blank(NULL, 0));
    assert_false(blank("a"));
    assert_false(blank(" . "));
    assert_false(blank("\u200cب"));  /* a Persian letter after a ZWNJ */
    assert_false(blank("😀"));        /* an emoji is something to read */
    assert_false(blank("\u2010"));   /* a hyphen, just after the spaces */
    assert_false(blank("\xe2\x80")); /* cut UTF-8: visible (not ours to hide) */
    assert_false(blank("\xc2"));
    /* only len bytes are looked at */
    assert_true(template_text_blank("  x", 2));
    assert_false(template_text_blank("  x", 3));
}

static void norm(const char *in, const char *want)
{
    char b[64];
    snprintf(b, sizeof(b), "%s", in);
    template_entity_norm(b);
    assert_string_equal(b, want);
}

static void test_entity_norm(void **state)
{
    (void)state;
    norm("contact", "contact");
    norm("Contact", "contact");
    norm(" Contact\t\n", "contact");
    norm("new_Widget", "new_widget");
    norm("   ", "");
    norm("", "");
    norm("a b", "a b"); /* inner spaces stay: template_table_for refuses them */
    template_entity_norm(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blank),
        cmocka_unit_test(test_entity_norm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
