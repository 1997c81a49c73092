/* Unit tests of the keyword rules (keyword.h): match modes, priority,
 * stop, account scoping, Persian/Arabic variants, separators, the spec's
 * two examples and the built-in opt-out/opt-in rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "smsys/keyword.h"

static struct kw_rules *rules(const struct kw_rule_def *defs, size_t n)
{
    struct kw_rules *rs;
    assert_int_equal(keyword_rules_new(&rs), 0);
    for (size_t i = 0; i < n; i++) {
        struct smsys_err err = {0};
        int rc = keyword_rules_add(rs, &defs[i], &err);
        if (rc != 0)
            fail_msg("rule %zu: %d %s", i, rc, err.detail);
    }
    return rs;
}

/* Evaluates and returns the ids of the rules that fired, comma-joined. */
static const char *fired(const struct kw_rules *rs, const char *text, const char *seps,
                         const char *acct, struct kw_result *r)
{
    static char ids[512];
    assert_int_equal(keyword_eval(rs, text, seps, acct, r), 0);
    ids[0] = '\0';
    for (size_t i = 0; i < r->nhits; i++) {
        size_t n = strlen(ids);
        snprintf(ids + n, sizeof(ids) - n, "%s%s", n ? "," : "", r->hits[i].rule->id);
    }
    return ids;
}

static void test_match_modes(void **state)
{
    (void)state;
    const struct kw_rule_def d[] = {
        {.id = "any",
         .keywords = "price\nhelp me",
         .match = KW_ANY,
         .action = KW_CALL,
         .action_name = "a"},
        {.id = "all",
         .keywords = "price\nlist",
         .match = KW_ALL,
         .action = KW_CALL,
         .action_name = "a",
         .priority = 1},
        {.id = "first",
         .keywords = "usage",
         .match = KW_FIRST,
         .action = KW_CALL,
         .action_name = "a",
         .priority = 2},
        {.id = "exact",
         .keywords = "yes please",
         .match = KW_EXACT,
         .action = KW_CALL,
         .action_name = "a",
         .priority = 3},
    };
    struct kw_rules *rs = rules(d, 4);
    struct kw_result r;
    assert_string_equal(fired(rs, "what is the price", NULL, NULL, &r), "any");
    assert_int_equal(r.hits[0].nwords, 1);
    assert_string_equal(r.hits[0].words[0], "price");
    keyword_result_free(&r);
    /* a phrase matches only as consecutive words */
    assert_string_equal(fired(rs, "me help", NULL, NULL, &r), "");
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "please help me", NULL, NULL, &r), "any");
    assert_int_equal(r.hits[0].nwords, 2);
    assert_string_equal(r.rest, "please");
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "LIST, PRICE", NULL, NULL, &r), "any,all");
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "usage March", NULL, NULL, &r), "first");
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "my usage", NULL, NULL, &r), "");
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "  Yes   PLEASE ", NULL, NULL, &r), "exact");
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "yes please now", NULL, NULL, &r), "");
    keyword_result_free(&r);
    keyword_rules_free(rs);
}

static void test_priority_stop_scope(void **state)
{
    (void)state;
    const struct kw_rule_def d[] = {
        {.id = "late",
         .name = "a",
         .keywords = "x",
         .match = KW_ANY,
         .action = KW_CALL,
         .action_name = "n",
         .priority = 50},
        {.id = "early",
         .name = "b",
         .keywords = "x",
         .match = KW_ANY,
         .action = KW_CALL,
         .action_name = "n",
         .priority = 10},
        {.id = "stopper",
         .name = "c",
         .keywords = "halt",
         .match = KW_ANY,
         .action = KW_CALL,
         .action_name = "n",
         .priority = 20,
         .stop = 1},
        {.id = "scoped",
         .name = "d",
         .keywords = "x",
         .match = KW_ANY,
         .action = KW_CALL,
         .action_name = "n",
         .priority = 30,
         .account_id = "11111111-1111-1111-1111-111111111111"},
    };
    struct kw_rules *rs = rules(d, 4);
    struct kw_result r;
    assert_string_equal(fired(rs, "x", NULL, NULL, &r), "early,late");
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "x", NULL, "11111111-1111-1111-1111-111111111111", &r),
                        "early,scoped,late");
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "x", NULL, "22222222-2222-2222-2222-222222222222", &r),
                        "early,late");
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "x halt", NULL, NULL, &r), "early,stopper");
    keyword_result_free(&r);
    keyword_rules_free(rs);
}

/* Arabic Yeh/Kaf, Persian/Arabic digits, ZWNJ and diacritics do not matter. */
static void test_persian_variants(void **state)
{
    (void)state;
    const struct kw_rule_def d[] = {
        {.id = "p",
         .keywords = "پیگیری\nکد ۱۲",
         .match = KW_ANY,
         .action = KW_CALL,
         .action_name = "n"},
        {.id = "z",
         .keywords = "می‌خواهم",
         .match = KW_ANY,
         .action = KW_CALL,
         .action_name = "n",
         .priority = 1},
    };
    struct kw_rules *rs = rules(d, 2);
    struct kw_result r;
    assert_string_equal(fired(rs, "لطفا پيگيري شود", NULL, NULL, &r), "p"); /* Arabic Yeh */
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "كد ١٢", NULL, NULL, &r), "p"); /* Arabic Kaf, digits */
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "کد 12", NULL, NULL, &r), "p");
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "میخواهم", NULL, NULL, &r), "z"); /* without ZWNJ */
    keyword_result_free(&r);
    keyword_rules_free(rs);
}

static void test_separators(void **state)
{
    (void)state;
    const struct kw_rule_def d[] = {
        {.id = "s", .keywords = "سلام", .match = KW_FIRST, .action = KW_CALL, .action_name = "n"},
    };
    struct kw_rules *rs = rules(d, 1);
    struct kw_result r;
    /* Persian comma separates by default */
    assert_string_equal(fired(rs, "سلام،خوبی", NULL, NULL, &r), "s");
    assert_int_equal(r.nwords, 2);
    assert_string_equal(r.rest, "خوبی");
    keyword_result_free(&r);
    /* an account whose separators are only "-": the comma no longer splits */
    assert_string_equal(fired(rs, "سلام،خوبی", "-", NULL, &r), "");
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "سلام-خوبی", "-", NULL, &r), "s");
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "سلام:خوبی\nممنون", NULL, NULL, &r), "s");
    assert_int_equal(r.nwords, 3);
    keyword_result_free(&r);
    keyword_rules_free(rs);
}

/* F15's examples, as an admin would configure them, in English and Persian. */
static void test_spec_examples(void **state)
{
    (void)state;
    const struct kw_rule_def d[] = {
        {.id = "confirm",
         .keywords = "confirm registration\nتایید ثبت نام",
         .match = KW_ANY,
         .action = KW_REPLY,
         .template_id = "t1",
         .priority = 10},
        {.id = "case",
         .keywords = "problem\nمشکل",
         .match = KW_ANY,
         .action = KW_CASE,
         .priority = 20},
        {.id = "critical",
         .keywords = "critical\nحاد",
         .match = KW_ANY,
         .action = KW_ROUTE,
         .queue_id = "q247",
         .priority = 30},
    };
    struct kw_rules *rs = rules(d, 3);
    struct kw_result r;
    assert_string_equal(fired(rs, "Confirm registration", NULL, NULL, &r), "confirm");
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "critical problem: program forms are not saved", NULL, NULL, &r),
                        "case,critical");
    assert_string_equal(r.rest, "program forms are not saved");
    keyword_result_free(&r);
    assert_string_equal(
        fired(rs, "مشکل حاد: فرم‌های برنامه ذخیره نمی‌شوند",
              NULL, NULL, &r),
        "case,critical");
    assert_string_equal(r.hits[0].words[0], "مشکل");
    assert_string_equal(r.hits[1].words[0], "حاد");
    /* the rest keeps the original spelling (ZWNJ included) */
    assert_string_equal(r.rest, "فرم‌های برنامه ذخیره نمی‌شوند");
    keyword_result_free(&r);
    keyword_rules_free(rs);
}

static void test_defaults(void **state)
{
    (void)state;
    struct kw_rules *rs;
    assert_int_equal(keyword_rules_new(&rs), 0);
    assert_int_equal(keyword_rules_add_defaults(rs), 2);
    struct kw_result r;
    const char *outs[] = {"STOP", "stop", "Unsubscribe", "لغو", "لغو۱۱", "لغو11", "انصراف"};
    for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]); i++) {
        assert_string_equal(fired(rs, outs[i], NULL, NULL, &r), "builtin:optout");
        assert_int_equal(r.hits[0].rule->action, KW_OPT_OUT);
        keyword_result_free(&r);
    }
    assert_string_equal(fired(rs, "start", NULL, NULL, &r), "builtin:optin");
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "شروع", NULL, NULL, &r), "builtin:optin");
    keyword_result_free(&r);
    /* exact text: a sentence that merely contains the word does not opt out */
    assert_string_equal(fired(rs, "please don't stop", NULL, NULL, &r), "");
    keyword_result_free(&r);
    keyword_rules_free(rs);

    /* a configured opt-out rule replaces the built-in one; opt-in stays */
    const struct kw_rule_def d[] = {
        {.id = "mine", .keywords = "cancel", .match = KW_ANY, .action = KW_OPT_OUT},
    };
    rs = rules(d, 1);
    assert_int_equal(keyword_rules_add_defaults(rs), 1);
    assert_string_equal(fired(rs, "STOP", NULL, NULL, &r), "");
    keyword_result_free(&r);
    assert_string_equal(fired(rs, "cancel", NULL, NULL, &r), "mine");
    keyword_result_free(&r);
    keyword_rules_free(rs);
}

static void test_invalid_rules(void **state)
{
    (void)state;
    struct kw_rules *rs;
    assert_int_equal(keyword_rules_new(&rs), 0);
    struct smsys_err err = {0};
    struct kw_rule_def d = {.name = "r", .keywords = "x", .match = 9, .action = KW_OPT_OUT};
    assert_int_equal(keyword_rules_add(rs, &d, &err), -EINVAL);
    assert_non_null(strstr(err.detail, "match"));
    d.match = KW_ANY;
    d.action = KW_REPLY;
    assert_int_equal(keyword_rules_add(rs, &d, &err), -EINVAL);
    assert_non_null(strstr(err.detail, "template"));
    d.action = KW_OPT_OUT;
    d.keywords = " \n \n";
    assert_int_equal(keyword_rules_add(rs, &d, &err), -EINVAL);
    d.keywords = "\xff";
    assert_true(keyword_rules_add(rs, &d, &err) < 0);
    assert_int_equal(keyword_rules_count(rs), 0);
    struct kw_result r;
    assert_true(keyword_eval(rs, "\xc3", NULL, NULL, &r) < 0);

    /* rows as Dynamics returns them: the invalid one is skipped, not fatal */
    cJSON *rows = cJSON_Parse(
        "[{\"smsys_keywordruleid\":\"a\",\"smsys_name\":\"ok\",\"smsys_keywords\":\"hi\","
        "\"smsys_match\":1,\"smsys_action\":6,\"smsys_actionname\":\"new_X\","
        "\"smsys_priority\":5,\"smsys_stop\":true,\"statecode\":0},"
        "{\"smsys_keywordruleid\":\"b\",\"smsys_name\":\"bad\",\"smsys_keywords\":\"hi\","
        "\"smsys_match\":1,\"smsys_action\":5},"
        "{\"smsys_keywordruleid\":\"c\",\"smsys_name\":\"off\",\"smsys_keywords\":\"hi\","
        "\"smsys_match\":1,\"smsys_action\":1,\"statecode\":1}]");
    unsigned skipped = 0;
    assert_int_equal(keyword_rules_from_json(rs, rows, &skipped), 0);
    assert_int_equal(skipped, 1);
    assert_int_equal(keyword_rules_count(rs), 1);
    assert_string_equal(fired(rs, "hi", NULL, NULL, &r), "a");
    assert_true(r.hits[0].rule->stop);
    assert_string_equal(r.hits[0].rule->action_name, "new_X");
    keyword_result_free(&r);
    cJSON_Delete(rows);
    keyword_rules_free(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_modes),      cmocka_unit_test(test_priority_stop_scope),
        cmocka_unit_test(test_persian_variants), cmocka_unit_test(test_separators),
        cmocka_unit_test(test_spec_examples),    cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_invalid_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
