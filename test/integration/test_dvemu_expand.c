/* test_dvemu_expand.c - dvemu's nested $expand over real HTTP: single-valued
 * lookups followed at depth 2 and 3 with $select and annotations at every
 * level, on a single-row GET and on a collection; unknown navigation
 * properties at any depth, a nesting past the limit and a nested expand under
 * a polymorphic lookup without its target answer 400 in Dataverse's error
 * shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../lib/testutil.h"
#include "dvemu_client.h"

#define BETA_ID   "b0000000-0000-4000-8000-000000000001"
#define ACME_ID   "a0000000-0000-4000-8000-000000000001"
#define PARISA_ID "c0000000-0000-4000-8000-000000000001"
#define CYRUS_ID  "c0000000-0000-4000-8000-000000000002"
#define LONELY_ID "c0000000-0000-4000-8000-000000000003"

/* Cyrus -> Acme (account) -> primary contact Parisa -> Beta (account). */
static void seed(struct emuproc *d)
{
    emu_create(d, "accounts", "{\"accountid\":\"" BETA_ID "\",\"name\":\"Beta\"}");
    emu_create(d, "contacts",
               "{\"contactid\":\"" PARISA_ID "\",\"firstname\":\"Parisa\",\"lastname\":\"Karimi\","
               "\"parentcustomerid_account@odata.bind\":\"/accounts(" BETA_ID ")\"}");
    emu_create(d, "accounts",
               "{\"accountid\":\"" ACME_ID "\",\"name\":\"Acme\",\"websiteurl\":\"acme.example\","
               "\"primarycontactid@odata.bind\":\"/contacts(" PARISA_ID ")\"}");
    emu_create(d, "contacts",
               "{\"contactid\":\"" CYRUS_ID "\",\"firstname\":\"Cyrus\",\"lastname\":\"Amini\","
               "\"parentcustomerid_account@odata.bind\":\"/accounts(" ACME_ID ")\"}");
    emu_create(d, "contacts", "{\"contactid\":\"" LONELY_ID "\",\"firstname\":\"Lonely\"}");
}

/* Asserts o holds exactly the given keys that do not start with '@' (the
 * selected columns plus the nested navigation names). */
static void assert_keys(const cJSON *o, const char *const *keys)
{
    assert_true(cJSON_IsObject(o));
    size_t want = 0, got = 0;
    for (; keys[want]; want++)
        if (cJSON_GetObjectItemCaseSensitive(o, keys[want]) == NULL)
            fail_msg("missing key %s", keys[want]);
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        if (it->string[0] == '@' || strchr(it->string, '@'))
            continue;
        got++;
    }
    if (got != want) {
        char *s = cJSON_PrintUnformatted(o);
        fprintf(stderr, "want %zu keys, got %zu: %s\n", want, got, s ? s : "");
        free(s);
        fail();
    }
}

static void test_depth_2_and_3(void **state)
{
    (void)state;
    struct emuproc d;
    emu_start(&d, NULL);
    seed(&d);
    struct emures r;

    /* depth 2: the task's example, on a single-row GET */
    assert_int_equal(emu_req(&d, "GET",
                             "contacts(" CYRUS_ID ")?$select=firstname&$expand="
                             "parentcustomerid_account($select=name;$expand=primarycontactid("
                             "$select=fullname))",
                             NULL, NULL, &r),
                     200);
    assert_keys(r.json,
                (const char *const[]){"contactid", "firstname", "parentcustomerid_account", NULL});
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(r.json, "parentcustomerid_account");
    assert_keys(acc, (const char *const[]){"accountid", "name", "primarycontactid", NULL});
    assert_string_equal(emu_str(acc, "name"), "Acme");
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(acc, "primarycontactid");
    assert_keys(pc, (const char *const[]){"contactid", "fullname", NULL});
    assert_string_equal(emu_str(pc, "fullname"), "Parisa Karimi");
    assert_string_equal(emu_str(pc, "contactid"), PARISA_ID);
    emures_free(&r);

    /* depth 3 on a collection, with annotations at the deepest level */
    const char *ann[] = {"Prefer: odata.include-annotations=\"*\"", NULL};
    assert_int_equal(
        emu_req(&d, "GET",
                "contacts?$select=firstname&$filter=contactid%20eq%20" CYRUS_ID
                "&$expand=parentcustomerid_account($select=name;$expand=primarycontactid("
                "$select=fullname,_parentcustomerid_value;$expand=parentcustomerid_account("
                "$select=name)))",
                ann, NULL, &r),
        200);
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(r.json, "value");
    assert_int_equal(cJSON_GetArraySize(vals), 1);
    const cJSON *row = cJSON_GetArrayItem(vals, 0);
    acc = cJSON_GetObjectItemCaseSensitive(row, "parentcustomerid_account");
    assert_keys(acc, (const char *const[]){"accountid", "name", "primarycontactid", NULL});
    pc = cJSON_GetObjectItemCaseSensitive(acc, "primarycontactid");
    assert_keys(pc, (const char *const[]){"contactid", "fullname", "_parentcustomerid_value",
                                          "parentcustomerid_account", NULL});
    assert_string_equal(emu_str(pc, "_parentcustomerid_value"), BETA_ID);
    assert_string_equal(
        emu_str(pc, "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"), "account");
    assert_string_equal(
        emu_str(pc, "_parentcustomerid_value@OData.Community.Display.V1.FormattedValue"), "Beta");
    const cJSON *beta = cJSON_GetObjectItemCaseSensitive(pc, "parentcustomerid_account");
    assert_keys(beta, (const char *const[]){"accountid", "name", NULL});
    assert_string_equal(emu_str(beta, "name"), "Beta");
    assert_non_null(emu_str(beta, "@odata.etag"));
    emures_free(&r);

    /* the activity-party collection, its rows expanding their party two levels */
    const char *sms = emu_create(&d, "smsys_smses",
                                 "{\"subject\":\"hi\",\"smsys_sms_activity_parties\":["
                                 "{\"partyid_contact@odata.bind\":\"/contacts(" CYRUS_ID ")\","
                                 "\"participationtypemask\":2}]}");
    char url[600];
    snprintf(url, sizeof(url),
             "smsys_smses(%s)?$select=subject&$expand=smsys_sms_activity_parties($select="
             "participationtypemask;$expand=partyid_contact($select=firstname;$expand="
             "parentcustomerid_account($select=name)))",
             sms);
    assert_int_equal(emu_req(&d, "GET", url, NULL, NULL, &r), 200);
    const cJSON *parties = cJSON_GetObjectItemCaseSensitive(r.json, "smsys_sms_activity_parties");
    assert_int_equal(cJSON_GetArraySize(parties), 1);
    const cJSON *party = cJSON_GetArrayItem(parties, 0);
    const cJSON *who = cJSON_GetObjectItemCaseSensitive(party, "partyid_contact");
    assert_keys(who,
                (const char *const[]){"contactid", "firstname", "parentcustomerid_account", NULL});
    assert_string_equal(emu_str(who, "firstname"), "Cyrus");
    assert_string_equal(
        emu_str(cJSON_GetObjectItemCaseSensitive(who, "parentcustomerid_account"), "name"), "Acme");
    emures_free(&r);

    /* a missing lookup at depth 1 is null and stops there */
    assert_int_equal(emu_req(&d, "GET",
                             "contacts(" LONELY_ID ")?$select=firstname&$expand="
                             "parentcustomerid_account($select=name;$expand=primarycontactid)",
                             NULL, NULL, &r),
                     200);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "parentcustomerid_account")));
    emures_free(&r);
    emu_stop(&d);
}

static void test_nested_errors(void **state)
{
    (void)state;
    struct emuproc d;
    emu_start(&d, NULL);
    seed(&d);
    struct emures r;

    /* unknown at depth 2 and at depth 3: the top level's message */
    emu_req(&d, "GET",
            "contacts(" CYRUS_ID ")?$expand=parentcustomerid_account($select=name;"
            "$expand=shoesize($select=fullname))",
            NULL, NULL, &r);
    emu_assert_error(&r, 400, "0x0");
    assert_string_equal(emu_str(cJSON_GetObjectItemCaseSensitive(r.json, "error"), "message"),
                        "Could not find a property named 'shoesize' on type "
                        "'Microsoft.Dynamics.CRM.account'.");
    emures_free(&r);
    emu_req(&d, "GET",
            "contacts?$expand=parentcustomerid_account($expand=primarycontactid($expand="
            "nosuch))",
            NULL, NULL, &r);
    emu_assert_error(&r, 400, "0x0");
    assert_string_equal(emu_str(cJSON_GetObjectItemCaseSensitive(r.json, "error"), "message"),
                        "Could not find a property named 'nosuch' on type "
                        "'Microsoft.Dynamics.CRM.contact'.");
    emures_free(&r);

    /* an unknown column in a nested $select */
    emu_req(&d, "GET",
            "contacts?$expand=parentcustomerid_account($expand=primarycontactid($select="
            "shoesize))",
            NULL, NULL, &r);
    emu_assert_error(&r, 400, "0x0");
    assert_non_null(strstr(emu_str(cJSON_GetObjectItemCaseSensitive(r.json, "error"), "message"),
                           "'shoesize'"));
    emures_free(&r);

    /* 10 levels are served, 11 refused */
    char url[1024];
    for (int levels = 10; levels <= 11; levels++) {
        struct buf b = BUF_INIT;
        /* each level opens, nests the next, then all close */
        buf_puts(&b, "contacts(" CYRUS_ID ")?$select=firstname&$expand=");
        for (int i = 0; i < levels; i++) {
            buf_puts(&b, i % 2 ? "primarycontactid($select=firstname"
                               : "parentcustomerid_account($select=name");
            if (i < levels - 1)
                buf_puts(&b, ";$expand=");
        }
        for (int i = 0; i < levels; i++)
            buf_puts(&b, ")");
        snprintf(url, sizeof(url), "%s", b.data);
        buf_free(&b);
        long st = emu_req(&d, "GET", url, NULL, NULL, &r);
        if (levels == 10) {
            assert_int_equal(st, 200);
            /* Cyrus -> Acme -> Parisa -> Beta, which has no primary contact */
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(r.json, "parentcustomerid_account");
            o = cJSON_GetObjectItemCaseSensitive(o, "primarycontactid");
            o = cJSON_GetObjectItemCaseSensitive(o, "parentcustomerid_account");
            assert_string_equal(emu_str(o, "name"), "Beta");
            assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "primarycontactid")));
        } else {
            emu_assert_error(&r, 400, "0x0");
            assert_non_null(
                strstr(emu_str(cJSON_GetObjectItemCaseSensitive(r.json, "error"), "message"),
                       "deeper than 10 levels"));
        }
        emures_free(&r);
    }

    /* a polymorphic lookup without its target cannot be followed further */
    emu_req(&d, "GET", "contacts(" CYRUS_ID ")?$expand=parentcustomerid($expand=primarycontactid)",
            NULL, NULL, &r);
    emu_assert_error(&r, 400, "0x0");
    assert_non_null(strstr(emu_str(cJSON_GetObjectItemCaseSensitive(r.json, "error"), "message"),
                           "not supported by dvemu"));
    emures_free(&r);
    emu_stop(&d);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth_2_and_3),
        cmocka_unit_test(test_nested_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
