/* test_pickup_rules.c - the pure decisions of the pickup: phone-column
 * configuration (F3), child ids (UUIDv5), text checks, account and line
 * choice (F4) and recipient resolution, without Dynamics or PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../lib/testutil.h"
#include "pickup_int.h"

static void test_tables(void **state)
{
    (void)state;
    struct pk_tables t;
    struct smsys_err err = {0};
    assert_int_equal(pk_tables_parse(NULL, NULL, &t, &err), 0);
    const struct pk_table *c = pk_tables_find(&t, "contact");
    assert_non_null(c);
    assert_string_equal(c->set, "contacts");
    assert_string_equal(c->key, "contactid");
    assert_int_equal(c->ncols, 2);
    assert_string_equal(c->cols[0], "mobilephone");
    assert_string_equal(c->cols[1], "telephone1");
    assert_true(c->optout);
    assert_false(pk_tables_find(&t, "systemuser")->optout);
    pk_tables_free(&t);

    assert_int_equal(pk_tables_parse(" new_client@new_clients/new_clientid : new_mobile , "
                                     "new_phone ; company:telephone1; smsys_sms:x",
                                     "company", &t, &err),
                     0);
    c = pk_tables_find(&t, "new_client");
    assert_string_equal(c->set, "new_clients");
    assert_string_equal(c->key, "new_clientid");
    assert_int_equal(c->ncols, 2);
    assert_string_equal(c->cols[1], "new_phone");
    assert_string_equal(pk_tables_find(&t, "company")->set, "companies");
    assert_true(pk_tables_find(&t, "company")->optout);
    assert_string_equal(pk_tables_find(&t, "smsys_sms")->set, "smsys_smses");
    pk_tables_free(&t);

    assert_int_equal(pk_tables_parse("contact", NULL, &t, &err), -EINVAL);
    assert_non_null(strstr(err.detail, "table:column"));
    assert_int_equal(pk_tables_parse("contact:mobile phone", NULL, &t, &err), -EINVAL);
    assert_int_equal(pk_tables_parse("contact:a;contact:b", NULL, &t, &err), -EINVAL);
    assert_non_null(strstr(err.detail, "twice"));
    assert_int_equal(pk_tables_parse("con'tact:a", NULL, &t, &err), -EINVAL);
    assert_int_equal(pk_tables_parse("contact:", NULL, &t, &err), -EINVAL);
}

static void test_child_id(void **state)
{
    (void)state;
    char a[37], b[37];
    /* Python: uuid.uuid5(uuid.NAMESPACE_URL, "smsys:sms:<parent>:<party>") */
    pickup_child_id("5a000000-0000-0000-0000-000000000006", "ac000000-0000-0000-0000-000000000001",
                    a);
    assert_string_equal(a, "f3a4f106-cb20-5e8c-bffc-7c835074f661");
    /* Case does not matter (Dynamics may answer in either). */
    pickup_child_id("5A000000-0000-0000-0000-000000000006", "AC000000-0000-0000-0000-000000000001",
                    b);
    assert_string_equal(a, b);
    pickup_child_id("5a000000-0000-0000-0000-000000000006", "ac000000-0000-0000-0000-000000000002",
                    b);
    assert_string_not_equal(a, b);
}

static void test_row_ids(void **state)
{
    (void)state;
    struct pk_sms s;
    cJSON *row = cJSON_Parse(
        "{\"activityid\":\"5A000000-0000-0000-0000-000000000001\",\"description\":\"x\","
        "\"smsys_sms_activity_parties\":["
        "{\"participationtypemask\":1,\"_partyid_value\":\"51000000-0000-0000-0000-000000000001\"},"
        "{\"participationtypemask\":2,\"_partyid_value\":\"c2000000-0000-0000-0000-000000000002\","
        "\"_partyid_value@Microsoft.Dynamics.CRM.lookuplogicalname\":\"contact\"},"
        "{\"participationtypemask\":2,\"_partyid_value\":\"x') or true or ('\","
        "\"addressused\":\"0912\"},"
        "{\"participationtypemask\":2,\"_partyid_value\":\"c1000000-0000-0000-0000-000000000001\","
        "\"_partyid_value@Microsoft.Dynamics.CRM.lookuplogicalname\":\"contact\"}]}");
    assert_int_equal(pk_sms_from_row(&s, row), 0);
    assert_string_equal(s.id, "5a000000-0000-0000-0000-000000000001");
    assert_int_equal(s.nto, 3); /* the sender party is not a recipient */
    /* Sorted; a party id that is not a GUID is dropped (address only). */
    assert_string_equal(s.to[0].party_id, "");
    assert_string_equal(s.to[0].addr, "0912");
    assert_string_equal(s.to[1].party_id, "c1000000-0000-0000-0000-000000000001");
    assert_string_equal(s.to[1].table, "contact");
    assert_string_equal(s.to[2].party_id, "c2000000-0000-0000-0000-000000000002");
    pk_sms_clear(&s);
    cJSON_Delete(row);
    row = cJSON_Parse("{\"activityid\":\"not-a-guid-0000-0000-0000-000000000000\"}");
    assert_int_equal(pk_sms_from_row(&s, row), -EINVAL);
    pk_sms_clear(&s);
    cJSON_Delete(row);
}

static void test_text(void **state)
{
    (void)state;
    struct pk_sms s = {0};
    s.body = pk_strdup("salam");
    pk_check_text(&s, 20);
    assert_null(s.fail);
    assert_int_equal(s.segments, 1);
    pk_sms_clear(&s);

    s.body = pk_strdup("ok \xff bad");
    pk_check_text(&s, 20);
    assert_non_null(strstr(s.fail, "not valid UTF-8 at byte 3"));
    pk_sms_clear(&s);

    s.has_template = 1;
    pk_check_text(&s, 20);
    assert_non_null(strstr(s.fail, "the template could not be rendered"));
    pk_sms_clear(&s);

    char big[800];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    s.body = pk_strdup(big);
    pk_check_text(&s, 3);
    assert_non_null(strstr(s.fail, "needs 6 SMS parts"));
    pk_sms_clear(&s);
}

#define ACC_A "a1000000-0000-0000-0000-0000000000a1"
#define ACC_B "a2000000-0000-0000-0000-0000000000a2"
#define ACC_C "a3000000-0000-0000-0000-0000000000a3"
#define USER1 "51000000-0000-0000-0000-000000000001"
#define USER2 "52000000-0000-0000-0000-000000000002"

static struct pk_account accts[] = {
    {ACC_A, 1, 1},
    {ACC_B, 1, 0},
    {ACC_C, 0, 0},
};
static struct pk_line lines[] = {
    {ACC_A, "3000111", "3000111", "", 1},
    {ACC_A, "3000222", "3000222", "", 0},
    {ACC_B, "+989120000001", "+989120000001", USER1, 0},
    {ACC_B, "5000999", "5000999", "", 0},
};
static const struct pk_accts AC = {accts, 3, lines, 4};

static void choose(struct pk_sms *s, const char *owner, const char *setting, const char *sender)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->owner_id, sizeof(s->owner_id), "%s", owner ? owner : "");
    snprintf(s->setting_id, sizeof(s->setting_id), "%s", setting ? setting : "");
    s->sender_in = pk_strdup(sender);
    pk_choose_account(s, &AC);
}

static void test_account_choice(void **state)
{
    (void)state;
    struct pk_sms s;
    /* Default account, its default line. */
    choose(&s, USER2, NULL, NULL);
    assert_null(s.fail);
    assert_string_equal(s.account_id, ACC_A);
    assert_string_equal(s.sender, "3000111");
    pk_sms_clear(&s);
    /* The owner's dedicated line and its account. */
    choose(&s, USER1, NULL, NULL);
    assert_string_equal(s.account_id, ACC_B);
    assert_string_equal(s.sender, "+989120000001");
    pk_sms_clear(&s);
    /* The SMS's account wins over the owner's line elsewhere; within it,
     * the shared line (not the dedicated one of someone else). */
    choose(&s, USER2, ACC_B, NULL);
    assert_string_equal(s.account_id, ACC_B);
    assert_string_equal(s.sender, "5000999");
    pk_sms_clear(&s);
    /* ... and the owner's own dedicated line inside that account. */
    choose(&s, USER1, ACC_B, NULL);
    assert_string_equal(s.sender, "+989120000001");
    pk_sms_clear(&s);
    /* A chosen line, typed nationally. */
    choose(&s, USER1, NULL, "0912 000 0001");
    assert_null(s.fail);
    assert_string_equal(s.account_id, ACC_B);
    pk_sms_clear(&s);
    /* Someone else's dedicated line. */
    choose(&s, USER2, NULL, "+989120000001");
    assert_non_null(strstr(s.fail, "dedicated to another user"));
    pk_sms_clear(&s);
    /* A team-owned SMS has no owner user: also refused. */
    choose(&s, NULL, NULL, "+989120000001");
    assert_non_null(s.fail);
    pk_sms_clear(&s);
    /* A line of another account than the SMS's. */
    choose(&s, USER2, ACC_B, "3000222");
    assert_non_null(strstr(s.fail, "does not belong"));
    pk_sms_clear(&s);
    /* An unknown number is used as typed, on the default account. */
    choose(&s, USER2, NULL, "30007777");
    assert_null(s.fail);
    assert_string_equal(s.account_id, ACC_A);
    assert_string_equal(s.sender, "30007777");
    pk_sms_clear(&s);
    /* Disabled and unknown accounts. */
    choose(&s, USER2, ACC_C, NULL);
    assert_non_null(strstr(s.fail, "disabled"));
    pk_sms_clear(&s);
    choose(&s, USER2, "a9000000-0000-0000-0000-000000000000", NULL);
    assert_non_null(strstr(s.fail, "unknown to smsys"));
    pk_sms_clear(&s);
    /* No default at all. */
    struct pk_account none[] = {{ACC_A, 0, 1}};
    struct pk_accts ac2 = {none, 1, NULL, 0};
    memset(&s, 0, sizeof(s));
    pk_choose_account(&s, &ac2);
    assert_non_null(strstr(s.fail, "no enabled provider account"));
    pk_sms_clear(&s);
}

static void test_party(void **state)
{
    (void)state;
    struct pk_tables t;
    struct smsys_err err = {0};
    assert_int_equal(pk_tables_parse(NULL, NULL, &t, &err), 0);
    const struct pk_table *c = pk_tables_find(&t, "contact");
    struct pk_party p = {0};
    cJSON *row = cJSON_Parse("{\"mobilephone\":\"abc\",\"telephone1\":"
                             "\"\xdb\xb0\xdb\xb9\xdb\xb1\xdb\xb2\xdb\xb1\xdb\xb2\xdb\xb3\xdb\xb4"
                             "\xdb\xb5\xdb\xb6\xdb\xb7\"}");
    pk_party_resolve(&p, c, row, "smsys_donotsms", "IR");
    assert_null(p.why);
    assert_string_equal(p.number, "+989121234567");
    cJSON_Delete(row);

    struct pk_party q = {0};
    q.addr = pk_strdup("+98 935 000 1111");
    row = cJSON_Parse("{\"mobilephone\":\"09121234567\",\"smsys_donotsms\":false}");
    pk_party_resolve(&q, c, row, "smsys_donotsms", "IR");
    assert_string_equal(q.number, "+989350001111"); /* addressused wins */
    cJSON_Delete(row);
    free(q.addr);

    struct pk_party r = {0};
    r.addr = pk_strdup("+98 935 000 1111");
    row = cJSON_Parse("{\"mobilephone\":\"09121234567\",\"smsys_donotsms\":true}");
    pk_party_resolve(&r, c, row, "smsys_donotsms", "IR");
    assert_string_equal(r.why, "recipient opted out"); /* even with an address */
    cJSON_Delete(row);
    free(r.addr);
    free(r.why);

    struct pk_party u = {0};
    snprintf(u.party_id, sizeof(u.party_id), "c9000000-0000-0000-0000-000000000000");
    snprintf(u.table, sizeof(u.table), "contact");
    pk_party_finish(&u, c, "IR");
    assert_non_null(strstr(u.why, "does not exist in Dynamics"));
    free(u.why);

    struct pk_party v = {0};
    snprintf(v.table, sizeof(v.table), "new_thing");
    snprintf(v.party_id, sizeof(v.party_id), "c9000000-0000-0000-0000-000000000000");
    pk_party_finish(&v, NULL, "IR");
    assert_non_null(strstr(v.why, "table new_thing has no phone column configured"));
    free(v.why);
    pk_tables_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),         cmocka_unit_test(test_row_ids),
        cmocka_unit_test(test_child_id),       cmocka_unit_test(test_text),
        cmocka_unit_test(test_account_choice), cmocka_unit_test(test_party),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
