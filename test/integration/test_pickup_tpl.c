/* test_pickup_tpl.c - every template error ends on the SMS: for each kind
 * (syntax, filter arguments, blocks, relations, depth; unknown column,
 * lookup and table refused by the server; required, number and date
 * errors at render time) a template is stored in dvemu, a Pending SMS
 * uses it, one pickup poll runs against dvemu and PostgreSQL, and the
 * queued message is born Failed with smsys_lasterror = "template <name>: "
 * + the line/column/byte and placeholder. Nothing half rendered is queued;
 * a good template in the same poll is still sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>

#include <cmocka.h>

#include "../lib/testutil.h"
#include "pk_fixture.h"
#include "tpl_sms.h"
#include "smsys/accounts.h"
#include "smsys/pickup.h"

#define A1 "a1000000-0000-0000-0000-0000000000a1"
#define L1 "11000000-0000-0000-0000-000000000001"
#define C1 "c1000000-0000-0000-0000-000000000001"
#define AC "ac000000-0000-0000-0000-000000000001"

/* The expected error of each template, as in test/unit/test_template.c
 * (there: the parser alone; here: the whole way to the SMS). */
struct case_ {
    const char *body;
    const char *detail;
};

static const struct case_ cases[] = {
    {"Hi {{firstname", "line 1, column 4 (byte 3), {{firstname: placeholder not closed with }}"},
    {"Hi {{}}", "line 1, column 6 (byte 5), {{}}: empty placeholder"},
    {"a\nسلام {{jobtitle | shout}}",
     "line 2, column 19 (byte 24), {{jobtitle | shout}}: unknown filter \"shout\""},
    {"{{first name}}",
     "line 1, column 9 (byte 8), {{first name}}: expected '|' or the end of the placeholder"},
    {"{{1x}}", "line 1, column 3 (byte 2), {{1x}}: expected a column name"},
    {"{{a | truncate}}", "line 1, column 15 (byte 14), {{a | truncate}}: truncate needs a whole "
                         "number from 1 to 10000"},
    {"{{a | number 9}}",
     "line 1, column 14 (byte 13), {{a | number 9}}: number needs a whole number from 0 to 6"},
    {"{{a | currency \"EUR\"}}", "line 1, column 16 (byte 15), {{a | currency \"EUR\"}}: currency "
                                 "must be \"IRR\" (rial) or \"IRT\" (toman)"},
    {"{{a | default}}",
     "line 1, column 14 (byte 13), {{a | default}}: default needs a \"quoted\" argument"},
    {"{{a | tz \"Mars/Olympus\"}}", "line 1, column 10 (byte 9), {{a | tz \"Mars/Olympus\"}}: "
                                    "unknown time zone \"Mars/Olympus\""},
    {"{{a | jalali \"yyyy 'x\"}}",
     "line 1, column 14 (byte 13), {{a | jalali \"yyyy 'x\"}}: bad "
     "jalali pattern (a letter that is no field, or an unclosed ' quote; put text in '...')"},
    {"{{a | date \"YYYY-MM-DD\"}}",
     "line 1, column 12 (byte 11), {{a | date \"YYYY-MM-DD\"}}: bad "
     "date pattern (a letter that is no field, or an unclosed ' quote; put text in '...')"},
    {"x{{else}}", "line 1, column 4 (byte 3), {{else}}: {{else}} without {{#if}}"},
    {"{{/if}}", "line 1, column 4 (byte 3), {{/if}}: {{/if}} without {{#if}}"},
    {"ab\n{{#if x}}y", "line 2, column 1 (byte 3), {{#if x}}: {{#if}} is not closed with {{/if}}"},
    {"{{#if x}}{{else}}{{else}}{{/if}}",
     "line 1, column 20 (byte 19), {{else}}: second {{else}} in one {{#if}}"},
    {"{{a.b.c.d.e.f.g.h}}",
     "line 1, column 3 (byte 2), {{a.b.c.d.e.f.g.h}}: more than 6 lookups in one name"},
    {"{{let c = x(y)}}{{c}}", "line 1, column 17 (byte 16), {{c}}: \"c\" is a related row; name "
                              "one of its columns, e.g. c.name"},
    {"{{let c = x(y)}}{{let c = z(w)}}",
     "line 1, column 23 (byte 22), {{let c = z(w)}}: \"c\" is already defined"},
    {"{{let c = x}}", "line 1, column 12 (byte 11), {{let c = x}}: expected '(' and the lookup "
                      "column, e.g. incidents(customerid)"},
    {"{{let c = x(y) where a eq 'b}}", "line 1, column 22 (byte 21), {{let c = x(y) where a eq "
                                       "'b}}: unclosed ' quote in where"},
    {"{{let c = x(y) latest new_enddate}}", "line 1, column 23 (byte 22), {{let c = x(y) latest "
                                            "new_enddate}}: expected \"by\" and a column"},
    /* refused by the server (dvemu answers 400 like Dataverse) */
    {"Hi {{firstname}} {{shoesize | default \"?\"}}",
     "line 1, column 18 (byte 17), {{shoesize | default \"?\"}}: column \"shoesize\" does not "
     "exist on contact"},
    {"{{firstname}}\n{{employer.name}}",
     "line 2, column 1 (byte 14), {{employer.name}}: lookup \"employer\" does not exist on "
     "contact"},
    {"{{parentcustomerid_account.shoesize}}",
     "line 1, column 1 (byte 0), {{parentcustomerid_account.shoesize}}: column \"shoesize\" does "
     "not exist on account"},
    {"{{let x = new_widgets(parentcustomerid)}}{{x.name}}",
     "line 1, column 1 (byte 0), {{let x = new_widgets(parentcustomerid)}}: no table with the "
     "entity set name \"new_widgets\""},
    /* at render time, for this recipient */
    {"Dear {{jobtitle | required}}",
     "line 1, column 6 (byte 5), {{jobtitle | required}}: required value is missing"},
    {"{{firstname | number}}",
     "line 1, column 1 (byte 0), {{firstname | number}}: not a number (the value is \"علی\")"},
    {"{{firstname | jalali}}",
     "line 1, column 1 (byte 0), {{firstname | jalali}}: not a date (the value is \"علی\")"},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void add_template(struct pkf *f, size_t i, const char *name, const char *body)
{
    tpl_post(f, i, name, body, "contact");
}

static void test_every_error_on_the_sms(void **state)
{
    (void)state;
    struct pkf f = {0};
    pkf_open(&f, "pktplerr", NULL, 0);
    pkf_post(&f, "smsys_smssettings",
             "{\"smsys_smssettingid\":\"" A1 "\",\"smsys_name\":\"main\",\"smsys_provider\":"
             "\"smpp\",\"smsys_isdefault\":true,\"smsys_enabled\":true}");
    pkf_post(&f, "smsys_smsnumbers",
             "{\"smsys_smsnumberid\":\"" L1 "\",\"smsys_number\":\"3000111\",\"smsys_isdefault\":"
             "true,\"smsys_settingid@odata.bind\":\"/smsys_smssettings(" A1 ")\"}");
    pkf_post(&f, "accounts", "{\"accountid\":\"" AC "\",\"name\":\"Pars\"}");
    pkf_post(&f, "contacts",
             "{\"contactid\":\"" C1 "\",\"firstname\":\"علی\",\"mobilephone\":\"09121234567\","
             "\"parentcustomerid_account@odata.bind\":\"/accounts(" AC ")\"}");
    struct accounts *a;
    assert_int_equal(accounts_new(&f.loop, f.pool, f.dv, &a), 0);
    pkf_sync_accounts(&f, a);

    for (size_t i = 0; i < NCASES; i++) {
        char name[16];
        snprintf(name, sizeof(name), "e%zu", i);
        add_template(&f, i, name, cases[i].body);
        tpl_sms_post(&f, i, C1, NULL);
    }
    /* and one good template in the same poll */
    add_template(&f, NCASES, "good", "سلام {{firstname}}");
    tpl_sms_post(&f, NCASES, C1, NULL);

    struct pickup_opts po = {0};
    struct pickup *p;
    struct smsys_err err = {0};
    assert_int_equal(pickup_new(&f.loop, f.q, f.pool, f.dv, &po, &p, &err), 0);
    struct pickup_result pr = pkf_poll(&f, p, 60000);
    assert_int_equal(pr.records, NCASES + 1);
    assert_int_equal(pr.inserted, NCASES + 1);
    assert_int_equal(pr.failed, NCASES);

    for (size_t i = 0; i < NCASES; i++) {
        char id[37], want[512];
        sms_id(i, id);
        snprintf(want, sizeof(want), "template e%zu: %s", i, cases[i].detail);
        const char *got = msg_col(&f, id, "last_error");
        if (strcmp(got, want) != 0)
            fail_msg("case %zu (%s):\n got  %s\n want %s", i, cases[i].body, got, want);
        assert_string_equal(msg_col(&f, id, "state"), "6");
        assert_string_equal(msg_col(&f, id, "body"), "");
    }
    char id[37];
    sms_id(NCASES, id);
    assert_string_equal(msg_col(&f, id, "state"), "3");
    assert_string_equal(msg_col(&f, id, "body"), "سلام علی");

    pickup_free(p);
    accounts_free(a);
    pkf_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_error_on_the_sms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
