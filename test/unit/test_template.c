/* Unit tests for templates: the parser (every syntax element and every
 * error kind with its exact position text), the query plan, and rendering
 * over hand-made Web API rows (every filter, Persian text, Jalali dates,
 * missing values, defaults, conditionals). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/buf.h"
#include "smsys/error.h"
#include "smsys/template.h"

/* A contact as the Web API returns it with annotations. */
static const char *CONTACT =
    "{\"contactid\":\"11111111-1111-1111-1111-111111111111\","
    "\"firstname\":\"علی\",\"lastname\":\"رضایی\",\"jobtitle\":null,"
    "\"emailaddress1\":\"ali@example.com\",\"nickname\":\"\","
    "\"gendercode\":1,\"gendercode@OData.Community.Display.V1.FormattedValue\":\"آقا\","
    "\"donotphone\":false,\"donotphone@OData.Community.Display.V1.FormattedValue\":\"No\","
    "\"numberofchildren\":0,"
    "\"annualincome\":1234567.891,"
    "\"annualincome@OData.Community.Display.V1.FormattedValue\":\"﷼1,234,567.89\","
    "\"birthdate\":\"1990-03-21\","
    "\"lastusedincampaign\":\"2025-03-20T20:29:59Z\","
    "\"createdon\":\"2025-03-20T20:30:00Z\","
    "\"modifiedon\":\"2026-01-01T22:00:00.123Z\","
    "\"description\":\"Hello World\","
    "\"_parentcustomerid_value\":\"22222222-2222-2222-2222-222222222222\","
    "\"_parentcustomerid_value@OData.Community.Display.V1.FormattedValue\":\"شرکت نمونه\","
    "\"parentcustomerid_account\":{\"accountid\":\"22222222-2222-2222-2222-222222222222\","
    "\"name\":\"شرکت نمونه\",\"creditlimit\":25000000,"
    "\"_primarycontactid_value\":\"33333333-3333-3333-3333-333333333333\","
    "\"primarycontactid\":{\"fullname\":\"مریم احمدی\",\"mobilephone\":\"09121234567\"}}}";

static cJSON *row(void)
{
    cJSON *j = cJSON_Parse(CONTACT);
    assert_non_null(j);
    return j;
}

/* Renders src over the contact (plus rel rows) and returns the text, or
 * fails the test on an error. Caller frees. */
static char *render_rel(const char *src, const cJSON *const *rel)
{
    struct template *t;
    struct template_error te;
    struct smsys_err err;
    int rc = template_parse(src, strlen(src), &t, &te, &err);
    if (rc < 0)
        fail_msg("parse %s: %s", src, err.detail);
    cJSON *r = row();
    struct buf out = BUF_INIT;
    rc = template_render(t, r, rel, &out, &te, &err);
    if (rc < 0)
        fail_msg("render %s: %s", src, err.detail);
    cJSON_Delete(r);
    template_free(t);
    return buf_steal(&out);
}

static char *render(const char *src)
{
    return render_rel(src, NULL);
}

#define R(src, want)                                                                               \
    do {                                                                                           \
        char *got_ = render(src);                                                                  \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

/* Expects a parse error with exactly this detail text. */
static void perr(const char *src, enum template_errkind kind, const char *detail)
{
    struct template *t = (struct template *)1;
    struct template_error te;
    struct smsys_err err;
    int rc = template_parse(src, strlen(src), &t, &te, &err);
    assert_int_equal(rc, SMSYS_ETEMPLATE);
    assert_null(t);
    assert_int_equal(err.code, SMSYS_ETEMPLATE);
    if (strcmp(err.detail, detail) != 0)
        fail_msg("src %s\n got  %s\n want %s", src, err.detail, detail);
    assert_int_equal(te.kind, kind);
}

/* Expects a render error with this detail; the output keeps its prefix. */
static void rerr(const char *src, enum template_errkind kind, const char *detail)
{
    struct template *t;
    struct template_error te;
    struct smsys_err err;
    assert_int_equal(template_parse(src, strlen(src), &t, &te, &err), 0);
    cJSON *r = row();
    struct buf out = BUF_INIT;
    assert_int_equal(buf_puts(&out, "keep"), 0);
    assert_int_equal(template_render(t, r, NULL, &out, &te, &err), SMSYS_ETEMPLATE);
    assert_string_equal(out.data, "keep"); /* never half a message */
    if (strcmp(err.detail, detail) != 0)
        fail_msg("src %s\n got  %s\n want %s", src, err.detail, detail);
    assert_int_equal(te.kind, kind);
    buf_free(&out);
    cJSON_Delete(r);
    template_free(t);
}

static void test_plain_columns(void **state)
{
    (void)state;
    R("", "");
    R("no placeholders", "no placeholders");
    R("سلام {{firstname}} {{lastname}} عزیز", "سلام علی رضایی عزیز");
    R("{{ firstname }}|{{\tlastname\n}}", "علی|رضایی");
    R("{{\"{{\"}}literal{{\"}}\"}}", "{{literal}}");
    R("{{\"a \\\"q\\\" \\\\\"}}", "a \"q\" \\");
    R("a } b }} c", "a } b }} c");
}

static void test_lookups(void **state)
{
    (void)state;
    R("{{parentcustomerid_account.name}}", "شرکت نمونه");
    R("{{parentcustomerid_account.primarycontactid.fullname}}", "مریم احمدی");
    R("{{_parentcustomerid_value}}", "شرکت نمونه"); /* the lookup's display name */
    R("{{_parentcustomerid_value | raw}}", "22222222-2222-2222-2222-222222222222");
    R("[{{nosuch.name}}][{{parentcustomerid_account.nosuch.x}}]", "[][]");
}

static void test_labels_and_raw(void **state)
{
    (void)state;
    R("{{gendercode}}", "آقا");
    R("{{gendercode | label}}", "آقا");
    R("{{gendercode | raw}}", "1");
    R("{{donotphone}}/{{donotphone | raw}}", "No/false");
    R("{{annualincome}}", "﷼1,234,567.89");
    R("{{annualincome | raw}}", "1234567.891");
    R("{{numberofchildren}}", "0");
}

static void test_missing_and_default(void **state)
{
    (void)state;
    R("[{{jobtitle}}][{{nosuch}}][{{nickname}}]", "[][][]");
    R("{{jobtitle | default \"مشتری\"}}", "مشتری");
    R("{{nickname | default \"x\"}}", "x");
    R("{{firstname | default \"x\"}}", "علی");
    R("{{jobtitle | upper | default \"N/A\"}}", "N/A");
    R("{{jobtitle | default \"1500\" | number}}", "1,500");
}

static void test_text_filters(void **state)
{
    (void)state;
    R("{{description | upper}}", "HELLO WORLD");
    R("{{description | lower}}", "hello world");
    R("{{firstname | upper}}", "علی"); /* Persian has no case */
    R("{{description | truncate 5}}", "Hello…");
    R("{{description | truncate 11}}", "Hello World");
    R("{{lastname | truncate 3}}", "رضا…");
}

static void test_numbers(void **state)
{
    (void)state;
    R("{{annualincome | number}}", "1,234,568");
    R("{{annualincome | number 2}}", "1,234,567.89");
    R("{{parentcustomerid_account.creditlimit | number}}", "25,000,000");
    R("{{parentcustomerid_account.creditlimit | number | persian}}", "۲۵,۰۰۰,۰۰۰");
    R("{{numberofchildren | number 1}}", "0.0");
    R("{{\"x\"}}{{numberofchildren | persian}}", "x۰");
    R("{{parentcustomerid_account.creditlimit | currency}}", "25,000,000 ریال");
    R("{{parentcustomerid_account.creditlimit | currency \"IRR\"}}", "25,000,000 ریال");
    R("{{parentcustomerid_account.creditlimit | currency \"IRT\" | persian}}", "۲,۵۰۰,۰۰۰ تومان");
    R("{{jobtitle | default \"-1234.5\" | number 1}}", "-1,234.5");
    R("{{jobtitle | default \"999\" | number}}", "999");
    R("{{jobtitle | default \"1000\" | number}}", "1,000");
}

static void test_dates(void **state)
{
    (void)state;
    /* Nowruz 1404 in Tehran: 2025-03-21 00:00 +03:30 = 2025-03-20T20:30Z;
     * one second before, it is still 1403/12/30 (1403 is a leap year). */
    R("{{lastusedincampaign | jalali}}", "1403/12/30");
    R("{{createdon | jalali}}", "1404/01/01");
    R("{{lastusedincampaign | jalali \"yyyy/MM/dd HH:mm:ss\"}}", "1403/12/30 23:59:59");
    R("{{createdon | jalali \"d MMMM yyyy\" | persian}}", "۱ فروردین ۱۴۰۴");
    R("{{createdon | jalali \"EEEE\"}}", "جمعه");
    /* the same instant elsewhere */
    R("{{createdon | tz \"UTC\" | jalali}}", "1403/12/30");
    R("{{createdon | tz \"UTC\" | date \"yyyy-MM-dd HH:mm\"}}", "2025-03-20 20:30");
    R("{{createdon | date}}", "2025-03-21");
    R("{{modifiedon | date \"yyyy-MM-dd HH:mm\"}}", "2026-01-02 01:30");
    R("{{modifiedon | date \"d MMMM yyyy\"}}", "2 January 2026");
    /* a date-only column is not shifted by the time zone */
    R("{{birthdate | jalali}}", "1369/01/01");
    R("{{birthdate | tz \"Pacific/Kiritimati\" | date}}", "1990-03-21");
    R("{{nosuch | jalali}}", "");
    R("{{jobtitle | default \"2024-03-19T20:30:00+00:00\" | jalali}}", "1403/01/01");
}

static void test_conditionals(void **state)
{
    (void)state;
    R("{{#if firstname}}Dear {{firstname}}{{else}}Customer{{/if}}!", "Dear علی!");
    R("{{#if jobtitle}}T{{else}}none{{/if}}", "none");
    R("{{#if not jobtitle}}no title{{/if}}", "no title");
    R("{{#if numberofchildren}}kids{{else}}0{{/if}}", "0");
    R("{{#if donotphone}}dnc{{else}}ok{{/if}}", "ok");
    R("{{#if nickname}}n{{/if}}.", ".");
    R("{{#if parentcustomerid_account.creditlimit}}{{#if jobtitle}}a{{else}}b{{/if}}{{/if}}", "b");
    R("{{#if parentcustomerid_account.nosuch.x}}x{{else}}y{{/if}}", "y");
}

static void test_relations(void **state)
{
    (void)state;
    const char *src = "{{let c = new_contracts(new_accountid) of parentcustomerid "
                      "where statecode eq 0 and new_kind eq 'support' latest by new_enddate}}"
                      "{{let i = incidents(customerid) first by createdon}}"
                      "{{c.new_enddate | jalali}} {{c.new_owner.fullname}} {{i.title | default "
                      "\"-\"}}";
    struct template *t;
    struct smsys_err err;
    assert_int_equal(template_parse(src, strlen(src), &t, NULL, &err), 0);
    assert_int_equal(template_relations(t), 2);
    struct template_relation_info ri;
    assert_int_equal(template_relation(t, 0, &ri), 0);
    assert_string_equal(ri.alias, "c");
    assert_string_equal(ri.entity_set, "new_contracts");
    assert_string_equal(ri.lookup, "new_accountid");
    assert_string_equal(ri.where, "statecode eq 0 and new_kind eq 'support'");
    assert_string_equal(ri.orderby, "new_enddate desc");
    assert_string_equal(ri.select, "_new_accountid_value,new_enddate");
    assert_string_equal(ri.expand, "new_owner($select=fullname)");
    assert_int_equal(template_relation(t, 1, &ri), 0);
    assert_null(ri.where);
    assert_string_equal(ri.orderby, "createdon asc");
    assert_string_equal(ri.select, "_customerid_value,title");
    assert_int_equal(template_relation(t, 2, &ri), -EINVAL);

    struct buf sel = BUF_INIT, exp = BUF_INIT;
    assert_int_equal(template_plan_select(t, "contactid", &sel, &exp), 0);
    assert_string_equal(sel.data, "contactid,_parentcustomerid_value");
    assert_string_equal(exp.data, "");
    cJSON *r = row();
    assert_string_equal(template_relation_key(t, 0, r, "contactid"),
                        "22222222-2222-2222-2222-222222222222");
    assert_string_equal(template_relation_key(t, 1, r, "contactid"),
                        "11111111-1111-1111-1111-111111111111");
    cJSON *c = cJSON_Parse("{\"new_enddate\":\"2026-03-20T20:30:00Z\","
                           "\"new_owner\":{\"fullname\":\"سارا\"}}");
    const cJSON *rel[2] = {c, NULL};
    struct buf out = BUF_INIT;
    assert_int_equal(template_render(t, r, rel, &out, NULL, &err), 0);
    assert_string_equal(out.data, "1405/01/01 سارا -");
    buf_free(&out);
    assert_int_equal(template_render(t, r, NULL, &out, NULL, &err), 0);
    assert_string_equal(out.data, "  -");
    buf_free(&out);
    buf_free(&sel);
    buf_free(&exp);
    cJSON_Delete(c);
    cJSON_Delete(r);
    template_free(t);
}

static void test_plan(void **state)
{
    (void)state;
    const char *src = "{{firstname}} {{parentcustomerid_account.creditlimit | number}} "
                      "{{parentcustomerid_account.primarycontactid.fullname}} {{firstname}} "
                      "{{#if jobtitle}}{{parentcustomerid_account.name}}{{/if}} "
                      "{{ownerid.businessunitid.name}}";
    struct template *t;
    assert_int_equal(template_parse(src, strlen(src), &t, NULL, NULL), 0);
    struct buf sel = BUF_INIT, exp = BUF_INIT;
    assert_int_equal(template_plan_select(t, "contactid", &sel, &exp), 0);
    assert_string_equal(sel.data, "contactid,firstname,jobtitle");
    assert_string_equal(exp.data,
                        "parentcustomerid_account($select=creditlimit,name;$expand="
                        "primarycontactid($select=fullname)),ownerid($select=createdon;$expand="
                        "businessunitid($select=name))");
    assert_int_equal(template_relations(t), 0);
    buf_free(&sel);
    buf_free(&exp);
    template_free(t);
}

static void test_parse_errors(void **state)
{
    (void)state;
    perr("Hi {{firstname", TE_SYNTAX,
         "line 1, column 4 (byte 3), {{firstname: placeholder not closed with }}");
    perr("Hi {{}}", TE_SYNTAX, "line 1, column 6 (byte 5), {{}}: empty placeholder");
    perr("a\nسلام {{jobtitle | shout}}", TE_UNKNOWN_FILTER,
         "line 2, column 19 (byte 24), {{jobtitle | shout}}: unknown filter \"shout\"");
    perr("{{first name}}", TE_SYNTAX,
         "line 1, column 9 (byte 8), {{first name}}: expected '|' or the end of the placeholder");
    perr("{{a.}}", TE_SYNTAX,
         "line 1, column 5 (byte 4), {{a.}}: expected a column name after '.'");
    perr("{{1x}}", TE_SYNTAX, "line 1, column 3 (byte 2), {{1x}}: expected a column name");
    perr("{{a |}}", TE_SYNTAX,
         "line 1, column 6 (byte 5), {{a |}}: expected a filter name after '|'");
    perr("{{a | truncate}}", TE_FILTER_ARG,
         "line 1, column 15 (byte 14), {{a | truncate}}: truncate needs a whole number from 1 to "
         "10000");
    perr(
        "{{a | truncate \"5\"}}", TE_FILTER_ARG,
        "line 1, column 16 (byte 15), {{a | truncate \"5\"}}: truncate needs a whole number from 1 "
        "to 10000");
    perr("{{a | number 9}}", TE_FILTER_ARG,
         "line 1, column 14 (byte 13), {{a | number 9}}: number needs a whole number from 0 to 6");
    perr(
        "{{a | currency \"EUR\"}}", TE_FILTER_ARG,
        "line 1, column 16 (byte 15), {{a | currency \"EUR\"}}: currency must be \"IRR\" (rial) or "
        "\"IRT\" (toman)");
    perr("{{a | default}}", TE_FILTER_ARG,
         "line 1, column 14 (byte 13), {{a | default}}: default needs a \"quoted\" argument");
    perr("{{a | default \"x}}", TE_SYNTAX,
         "line 1, column 1 (byte 0), {{a | default \"x}}: placeholder not closed with }}");
    perr("{{a | tz \"Mars/Olympus\"}}", TE_FILTER_ARG,
         "line 1, column 10 (byte 9), {{a | tz \"Mars/Olympus\"}}: unknown time zone "
         "\"Mars/Olympus\"");
    perr("{{a | jalali \"yyyy 'x\"}}", TE_FILTER_ARG,
         "line 1, column 14 (byte 13), {{a | jalali \"yyyy 'x\"}}: bad jalali pattern (a letter "
         "that "
         "is no field, or an unclosed ' quote; put text in '...')");
    perr("{{a | jalali \"qqq\"}}", TE_FILTER_ARG,
         "line 1, column 14 (byte 13), {{a | jalali \"qqq\"}}: bad jalali pattern (a letter that "
         "is no field, or an unclosed ' quote; put text in '...')");
    perr(
        "{{a | upper x}}", TE_SYNTAX,
        "line 1, column 13 (byte 12), {{a | upper x}}: expected '|' or the end of the placeholder");
    perr("x{{else}}", TE_BLOCK, "line 1, column 4 (byte 3), {{else}}: {{else}} without {{#if}}");
    perr("{{/if}}", TE_BLOCK, "line 1, column 4 (byte 3), {{/if}}: {{/if}} without {{#if}}");
    perr("ab\n{{#if x}}y", TE_BLOCK,
         "line 2, column 1 (byte 3), {{#if x}}: {{#if}} is not closed with {{/if}}");
    perr("{{#if x}}{{else}}{{else}}{{/if}}", TE_BLOCK,
         "line 1, column 20 (byte 19), {{else}}: second {{else}} in one {{#if}}");
    perr("{{#each x}}", TE_SYNTAX,
         "line 1, column 4 (byte 3), {{#each x}}: unknown block; only {{#if name}} exists");
    perr("{{a.b.c.d.e.f.g.h}}", TE_TOO_DEEP,
         "line 1, column 3 (byte 2), {{a.b.c.d.e.f.g.h}}: more than 6 lookups in one name");
    perr("{{let c = x(y)}}{{c}}", TE_RELATION,
         "line 1, column 17 (byte 16), {{c}}: \"c\" is a related row; name one of its columns, "
         "e.g. c.name");
    perr("{{let c = x(y)}}{{let c = z(w)}}", TE_RELATION,
         "line 1, column 23 (byte 22), {{let c = z(w)}}: \"c\" is already defined");
    perr("{{let c = x}}", TE_RELATION,
         "line 1, column 12 (byte 11), {{let c = x}}: expected '(' and the lookup column, e.g. "
         "incidents(customerid)");
    perr("{{let c = x(y) where (a eq 1}}", TE_RELATION,
         "line 1, column 22 (byte 21), {{let c = x(y) where (a eq 1}}: unclosed '(' in where");
    perr("{{let c = x(y) where a eq 'b}}", TE_RELATION,
         "line 1, column 22 (byte 21), {{let c = x(y) where a eq 'b}}: unclosed ' quote in where");
    perr("{{let c = x(y) latest new_enddate}}", TE_RELATION,
         "line 1, column 23 (byte 22), {{let c = x(y) latest new_enddate}}: expected \"by\" and a "
         "column");
    perr("{{let c = x(y) sorted}}", TE_RELATION,
         "line 1, column 16 (byte 15), {{let c = x(y) sorted}}: expected of, where, latest by or "
         "first by");
    perr("{{let c = x(y)}}{{let d = z(w) of c.q}}", TE_RELATION,
         "line 1, column 17 (byte 16), {{let d = z(w) of c.q}}: of must name a lookup of the "
         "recipient, not \"c\"");
}

static void test_other_errors(void **state)
{
    (void)state;
    struct template *t;
    struct smsys_err err;
    assert_int_equal(template_parse("\xff{{a}}", 6, &t, NULL, &err), SMSYS_EUTF8);
    assert_null(t);
    assert_int_equal(template_parse("a\0b", 3, &t, NULL, &err), SMSYS_EUTF8);
    size_t big = TEMPLATE_MAX_SOURCE + 1;
    char *s = malloc(big);
    memset(s, 'a', big);
    assert_int_equal(template_parse(s, big, &t, NULL, &err), SMSYS_ETEMPLATE);
    free(s);
    /* long placeholders are cut in the message, on a character boundary */
    struct buf b = BUF_INIT;
    assert_int_equal(buf_puts(&b, "{{a | shout "), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(buf_puts(&b, "س"), 0);
    assert_int_equal(buf_puts(&b, "}}"), 0);
    struct template_error te;
    assert_int_equal(template_parse(b.data, b.len, &t, &te, &err), SMSYS_ETEMPLATE);
    assert_non_null(strstr(te.placeholder, "..."));
    assert_true(strlen(te.placeholder) < sizeof(te.placeholder));
    buf_free(&b);
}

static void test_render_errors(void **state)
{
    (void)state;
    rerr("Dear {{jobtitle | required}}", TE_REQUIRED,
         "line 1, column 6 (byte 5), {{jobtitle | required}}: required value is missing");
    rerr("{{nickname | required}}", TE_REQUIRED,
         "line 1, column 1 (byte 0), {{nickname | required}}: required value is missing");
    rerr("ok {{firstname}} {{description | number}}", TE_VALUE,
         "line 1, column 18 (byte 17), {{description | number}}: not a number (the value is "
         "\"Hello World\")");
    rerr("{{firstname | jalali}}", TE_VALUE,
         "line 1, column 1 (byte 0), {{firstname | jalali}}: not a date (the value is \"علی\")");
    rerr("{{jobtitle | default \"1e30\" | currency}}", TE_VALUE,
         "line 1, column 1 (byte 0), {{jobtitle | default \"1e30\" | currency}}: number too "
         "large (the value is \"1e30\")");
    rerr("{{jobtitle | default \"0100-01-01\" | jalali}}", TE_VALUE,
         "line 1, column 1 (byte 0), {{jobtitle | default \"0100-01-01\" | jalali}}: date "
         "outside the calendar's range (the value is \"0100-01-01\")");
    R("{{firstname | required}}", "علی");
}

static void test_output_limit(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    for (int i = 0; i < 2000; i++)
        assert_int_equal(buf_puts(&b, "{{description}}"), 0);
    struct template *t;
    struct smsys_err err;
    assert_int_equal(template_parse(b.data, b.len, &t, NULL, &err), 0);
    cJSON *r = row();
    struct buf out = BUF_INIT;
    assert_int_equal(template_render(t, r, NULL, &out, NULL, &err), SMSYS_ETEMPLATE);
    assert_int_equal(out.len, 0);
    assert_non_null(strstr(err.detail, "rendered text longer than"));
    buf_free(&out);
    buf_free(&b);
    cJSON_Delete(r);
    template_free(t);
}

/* docs/templates.md: conditions nest 16 deep; the 17th is refused at its
 * {{#if}}. A template over the size limit is refused as a whole, without a
 * place in it. */
static void test_limits(void **state)
{
    (void)state;
    struct buf src = BUF_INIT;
    for (int i = 0; i < 16; i++)
        buf_puts(&src, "{{#if firstname}}");
    buf_puts(&src, "deep");
    for (int i = 0; i < 16; i++)
        buf_puts(&src, "{{/if}}");
    buf_putc(&src, '\0');
    R(src.data, "deep");
    src.len = 0;
    for (int i = 0; i < 17; i++)
        buf_puts(&src, "{{#if a}}");
    buf_putc(&src, '\0');
    perr(src.data, TE_LIMIT, "line 1, column 150 (byte 149), {{#if a}}: {{#if}} nested too deep");
    src.len = 0;
    for (int i = 0; i <= TEMPLATE_MAX_SOURCE; i++)
        buf_putc(&src, 'x');
    buf_putc(&src, '\0');
    perr(src.data, TE_LIMIT, "template longer than 65536 bytes");
    buf_free(&src);
}

static void test_table_for(void **state)
{
    (void)state;
    char set[64], key[64];
    struct template_table tt;
    assert_int_equal(template_table_for("contact", set, sizeof(set), key, sizeof(key), &tt), 0);
    assert_string_equal(tt.entity_set, "contacts");
    assert_string_equal(tt.key, "contactid");
    assert_int_equal(template_table_for("new_project", set, sizeof(set), key, sizeof(key), &tt), 0);
    assert_string_equal(tt.entity_set, "new_projects");
    assert_string_equal(tt.key, "new_projectid");
    assert_int_equal(template_table_for("x y", set, sizeof(set), key, sizeof(key), &tt), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_columns),  cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_labels_and_raw), cmocka_unit_test(test_missing_and_default),
        cmocka_unit_test(test_text_filters),   cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_dates),          cmocka_unit_test(test_conditionals),
        cmocka_unit_test(test_relations),      cmocka_unit_test(test_plan),
        cmocka_unit_test(test_parse_errors),   cmocka_unit_test(test_other_errors),
        cmocka_unit_test(test_render_errors),  cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_table_for),      cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
