/* test_bulk.c - bulk SMS end to end (issue #9) with every part real and
 * separate: dvemu (an organisation seeded with 10 500 contacts, lists, a
 * campaign, templates), smsysd as a process, smscsim (SMPP, receipts) and
 * a private PostgreSQL database. "Exactly once" is counted from smscsim's
 * own log; counters and states are read back from Dynamics.
 *  - a static list of 10 000 members: opted out (smsys_optout and
 *    smsys_donotsms), without or with invalid numbers and with duplicate
 *    numbers are skipped with their reason; every other member gets one
 *    message; one SMS record per recipient linked by smsys_bulksmsid; the
 *    counters end right and the bulk Completed; Dynamics requests per
 *    1 000 members are printed;
 *  - a campaign of a static and a dynamic (FetchXML) list that overlap,
 *    with a template that follows a lookup;
 *  - the default template of the member table when the bulk has no text,
 *    and Failed when there is none;
 *  - the preflight refuses a bulk the balance cannot pay for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "smsys/bulk.h"
#include "test_bulk_world.h"

#define ACC_B "b1100000-0000-4000-8000-0000000000b2"
#define NCONT 10500
#define NBIG  10000

#define L_BIG   "15000000-0000-4000-8000-000000000001"
#define L_STAT  "15000000-0000-4000-8000-000000000002" /* 10000..10299 */
#define L_DYN   "15000000-0000-4000-8000-000000000003" /* city Shiraz: 10200..10499 */
#define L_SMALL "15000000-0000-4000-8000-000000000005" /* 10300..10319 */
#define L_LEADS "15000000-0000-4000-8000-000000000006"
#define CAMP    "ca000000-0000-4000-8000-000000000001"
#define TPL_DEF "7e000000-0000-4000-8000-000000000001"
#define TPL_LKP "7e000000-0000-4000-8000-000000000002"

static void cid(int i, char *out, size_t len)
{
    snprintf(out, len, "c0000000-0000-4000-8000-%012d", i);
}

/* The national number a contact is typed with ("" = none). */
static void typed(int i, char *out, size_t len)
{
    int k = i % 100;
    if (i < NBIG && k == 1)
        out[0] = '\0'; /* no number */
    else if (i < NBIG && k == 2)
        snprintf(out, len, "12345"); /* not a phone number */
    else if (i < NBIG && k == 6)
        snprintf(out, len, "0912%07d", i + 1); /* the next contact's number */
    else if (i == 10450)
        snprintf(out, len, "0912%07d", 10050); /* across the campaign's lists */
    else
        snprintf(out, len, "0912%07d", i);
}

static void seed(FILE *o, int port)
{
    fputs("{\"smsys_smssettings\":[", o);
    bw_seed_account(o, BW_ACC, "SMSC", 1, 1, port, NULL, NULL);
    fputc(',', o);
    /* disabled: never opened, so smscsim's receipts all go to BW_ACC's bind
     * (the preflight needs only its balance and price) */
    bw_seed_account(o, ACC_B, "Prepaid", 0, 0, port, ",\\\"price_per_segment\\\":50",
                    ",\"smsys_balance\":100,\"smsys_balanceunit\":\"IRR\"");
    fputs("],\"smsys_smsnumbers\":["
          "{\"smsys_number\":\"" BW_LINE "\",\"smsys_isdefault\":true,"
          "\"smsys_settingid@odata.bind\":\"/smsys_smssettings(" BW_ACC ")\"},"
          "{\"smsys_number\":\"3000333\",\"smsys_isdefault\":true,"
          "\"smsys_settingid@odata.bind\":\"/smsys_smssettings(" ACC_B ")\"}],",
          o);
    fputs("\"accounts\":[", o);
    for (int k = 0; k < 5; k++)
        fprintf(o, "%s{\"accountid\":\"ac000000-0000-4000-8000-%012d\",\"name\":\"Acme %d\"}",
                k ? "," : "", k, k);
    fputs("],\"contacts\":[", o);
    for (int i = 0; i < NCONT; i++) {
        char id[40], num[32];
        cid(i, id, sizeof(id));
        typed(i, num, sizeof(num));
        fprintf(o, "%s{\"contactid\":\"%s\",\"firstname\":\"F%d\",\"lastname\":\"L%d\"",
                i ? "," : "", id, i, i);
        if (num[0])
            fprintf(o, ",\"mobilephone\":\"%s\"", num);
        if (i < NBIG && i % 100 == 3)
            fputs(",\"smsys_donotsms\":true", o);
        if (i >= 10200)
            fputs(",\"address1_city\":\"Shiraz\"", o);
        if (i >= NBIG)
            fprintf(o,
                    ",\"parentcustomerid_account@odata.bind\":\"/accounts(ac000000-0000-4000-"
                    "8000-%012d)\"",
                    (i / 100) % 5);
        fputc('}', o);
    }
    fputs("],\"leads\":[", o);
    for (int i = 0; i < 5; i++)
        fprintf(o,
                "%s{\"leadid\":\"1ead0000-0000-4000-8000-%012d\",\"lastname\":\"Lead%d\","
                "\"mobilephone\":\"0935%07d\"}",
                i ? "," : "", i, i, i);
    fputs("],\"lists\":["
          "{\"listid\":\"" L_BIG "\",\"listname\":\"Big\",\"type\":false,\"createdfromcode\":2},"
          "{\"listid\":\"" L_STAT "\",\"listname\":\"Static\",\"type\":false,"
          "\"createdfromcode\":2},"
          "{\"listid\":\"" L_DYN "\",\"listname\":\"Shiraz\",\"type\":true,\"createdfromcode\":2,"
          "\"query\":\"<fetch version=\\\"1.0\\\" mapping=\\\"logical\\\" top=\\\"50\\\">"
          "<entity name=\\\"contact\\\"><attribute name=\\\"fullname\\\"/><filter "
          "type=\\\"and\\\"><condition attribute=\\\"address1_city\\\" operator=\\\"eq\\\" "
          "value=\\\"Shiraz\\\"/></filter></entity></fetch>\"},"
          "{\"listid\":\"" L_SMALL "\",\"listname\":\"Small\",\"type\":false,"
          "\"createdfromcode\":2},"
          "{\"listid\":\"" L_LEADS "\",\"listname\":\"Leads\",\"type\":false,"
          "\"createdfromcode\":4}],"
          "\"campaigns\":[{\"campaignid\":\"" CAMP "\",\"name\":\"Spring\"}],"
          "\"smsys_smstemplates\":["
          "{\"smsys_smstemplateid\":\"" TPL_DEF "\",\"smsys_name\":\"Contact default\","
          "\"smsys_body\":\"D {{lastname}}\",\"smsys_entity\":\"contact\","
          "\"smsys_isdefault\":true},"
          "{\"smsys_smstemplateid\":\"" TPL_LKP "\",\"smsys_name\":\"With company\","
          "\"smsys_body\":\"C {{firstname}} @ {{parentcustomerid_account.name}}\","
          "\"smsys_entity\":\"contact\",\"smsys_isdefault\":false}],",
          o);
    fputs("\"_links\":[", o);
    int first = 1;
#define LINK(nav, l, r)                                                                            \
    do {                                                                                           \
        fprintf(o, "%s{\"nav\":\"%s\",\"left\":\"%s\",\"right\":\"%s\"}", first ? "" : ",", nav,   \
                l, r);                                                                             \
        first = 0;                                                                                 \
    } while (0)
    for (int i = 0; i < NCONT; i++) {
        char id[40];
        cid(i, id, sizeof(id));
        if (i < NBIG)
            LINK("listcontact_association", L_BIG, id);
        if (i >= 10000 && i < 10300)
            LINK("listcontact_association", L_STAT, id);
        if (i >= 10300 && i < 10320)
            LINK("listcontact_association", L_SMALL, id);
    }
    for (int i = 0; i < 5; i++) {
        char id[40];
        snprintf(id, sizeof(id), "1ead0000-0000-4000-8000-%012d", i);
        LINK("listlead_association", L_LEADS, id);
    }
    LINK("campaignlist_association", CAMP, L_STAT);
    LINK("campaignlist_association", CAMP, L_DYN);
#undef LINK
    fputs("]}\n", o);
}

static int setup(void **state)
{
    (void)state;
    bw_open("bulk", seed, "");
    /* 100 members opted out by SMS (smsys_optout), not in Dynamics */
    bw_exec("SELECT smsys_optout_set('+98912' || lpad(i::text, 7, '0'), true, 'sms', 't', "
            "'STOP', NULL) FROM generate_series(4, 9999, 100) AS i");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bw_close();
    return 0;
}

static void bulk_create(const char *id, const char *name, const char *extra)
{
    char body[2048];
    snprintf(body, sizeof(body),
             "{\"smsys_bulksmsid\":\"%s\",\"smsys_name\":\"%s\",\"smsys_status\":2%s}", id, name,
             extra);
    bw_post("smsys_bulksmses", body);
}

/* SMS records of a bulk in Dynamics (paged), and how many have status st. */
static int records_of(const char *bulk, int st, int *with_status)
{
    char path[600];
    snprintf(path, sizeof(path),
             "smsys_smses?$select=activityid,smsys_status&$filter=_smsys_bulksmsid_value eq %s",
             bulk);
    int n = 0, k = 0;
    cJSON *j = bw_get(path);
    for (;;) {
        const cJSON *r;
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(j, "value"))
        {
            n++;
            k += bw_iget(r, "smsys_status") == st;
        }
        const cJSON *next = cJSON_GetObjectItemCaseSensitive(j, "@odata.nextLink");
        if (!cJSON_IsString(next))
            break;
        const char *rel = strstr(next->valuestring, "/api/data/v9.2/");
        char *p = strdup(rel ? rel + 15 : next->valuestring);
        cJSON_Delete(j);
        j = bw_get(p);
        free(p);
    }
    cJSON_Delete(j);
    if (with_status)
        *with_status = k;
    return n;
}

static void wait_records(const char *bulk, int want, int st)
{
    int n = 0, k = 0;
    for (int t = 0; t < 120000 && !(n == want && k == want); t += 500) {
        n = records_of(bulk, st, &k);
        if (!(n == want && k == want))
            uv_sleep(500);
    }
    print_message("bulk %s: %d SMS records, %d with status %d\n", bulk, n, k, st);
    assert_int_equal(n, want);
    assert_int_equal(k, want);
}

#define BULK_A "b0000000-0000-4000-8000-00000000000a"

static void test_static_list_10k(void **state)
{
    (void)state;
    cJSON *s0 = bw_stats();
    long my0 = w.my_reqs;
    uint64_t t0 = uv_hrtime();
    bulk_create(BULK_A, "A",
                ",\"description\":\"A {{firstname}}\","
                "\"smsys_listid@odata.bind\":\"/lists(" L_BIG ")\"");
    cJSON *row = bw_wait_row(BULK_A, BULK_COMPLETED, 9500, 9500, 9500, 500, 300000);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    cJSON *s1 = bw_stats();
    long mine = w.my_reqs - my0;
    assert_int_equal(bw_iget(row, "smsys_failed"), 0);
    cJSON_Delete(row);

    /* skipped, by reason */
    const char *q =
        "SELECT count(*) FROM smsys_bulk_member WHERE bulk_id = '" BULK_A "' AND status = ";
    char sql[300];
    for (int st = 1; st <= 5; st++) {
        snprintf(sql, sizeof(sql), "%s%d", q, st);
        long long n = bw_int(sql);
        print_message("skipped with status %d (%s): %lld\n", st, bulk_member_status_name(st), n);
        assert_int_equal(n, 100);
    }
    assert_int_equal(bw_int("SELECT count(*) FROM smsys_message WHERE bulk_id = '" BULK_A "'"),
                     9500);
    /* each skip says why */
    static const char *const why[] = {"",
                                      "no phone number (mobilephone, telephone1 empty)",
                                      "mobilephone ''12345''",
                                      "recipient opted out by SMS on",
                                      "smsys_donotsms is set",
                                      "duplicate number +98912"};
    for (int st = 1; st <= 5; st++) {
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM smsys_bulk_member WHERE bulk_id = '" BULK_A
                 "' AND status = %d AND strpos(reason, '%s') = 1",
                 st, why[st]);
        if (bw_int(sql) != 100)
            fail_msg("status %d: reasons not all \"%s...\": e.g. %s", st, why[st],
                     bw_str("SELECT reason FROM smsys_bulk_member WHERE bulk_id = '" BULK_A
                            "' AND status > 0 ORDER BY status, seq LIMIT 1"));
    }

    /* exactly one message per reachable member, counted at the SMSC */
    cJSON *seen = bw_seen("A ");
    assert_int_equal(cJSON_GetArraySize(seen), 9500);
    int dup_pairs = 0;
    for (int i = 0; i < NBIG; i++) {
        int k = i % 100;
        if (k >= 1 && k <= 4)
            continue;
        char key[64], key2[64];
        snprintf(key, sizeof(key), "98912%07d|A F%d", k == 6 ? i + 1 : i, i);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(seen, key);
        if (k == 6 || k == 7) {
            /* the pair shares a number: exactly one of them got it */
            if (k == 7)
                continue;
            snprintf(key2, sizeof(key2), "98912%07d|A F%d", i + 1, i + 1);
            const cJSON *c2 = cJSON_GetObjectItemCaseSensitive(seen, key2);
            assert_true((c != NULL) != (c2 != NULL));
            assert_int_equal((c ? c : c2)->valueint, 1);
            dup_pairs++;
            continue;
        }
        if (c == NULL)
            fail_msg("member %d never received its message (%s)", i, key);
        assert_int_equal(c->valueint, 1);
    }
    assert_int_equal(dup_pairs, 100);
    cJSON_Delete(seen);

    /* one SMS record per recipient, linked, delivered */
    wait_records(BULK_A, 9500, 5);

    double total = bw_stat(s1, "requests", NULL) - bw_stat(s0, "requests", NULL) - (double)mine;
    long eng = bw_engine_requests(BULK_A);
    print_message("10 000-member static list: %.1f s from Ready to Completed; Dynamics requests "
                  "by smsysd: %.0f in all (%.1f per 1 000 members, write-back and idle polling "
                  "included), %ld by the bulk engine since smsysd started (%.1f per 1 000 "
                  "members; its polls every 200 ms and counter writes every 500 ms included)\n",
                  secs, total, total / 10.0, eng, (double)eng / 10.0);
    char *d = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(s1, "by_entity_set"));
    print_message("dvemu requests by entity set (cumulative): %s\n", d ? d : "?");
    free(d);
    cJSON_Delete(s0);
    cJSON_Delete(s1);
    assert_true(eng > 0);
    assert_true(eng < 200); /* pages + CreateMultiple + polls, never per member */
}

#define BULK_C "b0000000-0000-4000-8000-00000000000c"

/* Campaign: static 10000..10299 + dynamic (Shiraz) 10200..10499 = 500
 * contacts, 10450 shares 10050's number: 499 messages, rendered through
 * the parent account lookup. */
static void test_campaign_overlap_dynamic_lookup(void **state)
{
    (void)state;
    bulk_create(BULK_C, "C",
                ",\"smsys_campaignid@odata.bind\":\"/campaigns(" CAMP ")\","
                "\"smsys_templateid@odata.bind\":\"/smsys_smstemplates(" TPL_LKP ")\"");
    cJSON *row = bw_wait_row(BULK_C, BULK_COMPLETED, 499, 499, 499, 1, 120000);
    cJSON_Delete(row);
    assert_int_equal(bw_int("SELECT count(*) FROM smsys_bulk_member WHERE bulk_id = '" BULK_C "'"),
                     500);
    assert_int_equal(bw_int("SELECT count(*) FROM smsys_bulk_member WHERE bulk_id = '" BULK_C
                            "' AND status = 5"),
                     1);
    cJSON *seen = bw_seen("C ");
    assert_int_equal(cJSON_GetArraySize(seen), 499);
    for (int i = 10000; i < 10500; i++) {
        char key[96];
        snprintf(key, sizeof(key), "98912%07d|C F%d @ Acme %d", i, i, (i / 100) % 5);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(seen, key);
        if (i == 10450) {
            assert_null(c);
            continue;
        }
        if (c == NULL)
            fail_msg("campaign member %d never received %s", i, key);
        assert_int_equal(c->valueint, 1);
    }
    cJSON_Delete(seen);
    wait_records(BULK_C, 499, 5);
}

#define BULK_D "b0000000-0000-4000-8000-00000000000d"
#define BULK_L "b0000000-0000-4000-8000-00000000001d"

static void test_default_template(void **state)
{
    (void)state;
    bulk_create(BULK_D, "D", ",\"smsys_listid@odata.bind\":\"/lists(" L_SMALL ")\"");
    cJSON *row = bw_wait_row(BULK_D, BULK_COMPLETED, 20, 20, 20, 0, 60000);
    cJSON_Delete(row);
    cJSON *seen = bw_seen("D ");
    assert_int_equal(cJSON_GetArraySize(seen), 20);
    for (int i = 10300; i < 10320; i++) {
        char key[64];
        snprintf(key, sizeof(key), "98912%07d|D L%d", i, i);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(seen, key);
        assert_non_null(c);
        assert_int_equal(c->valueint, 1);
    }
    cJSON_Delete(seen);

    /* leads: no text, no template, no default template for lead */
    bulk_create(BULK_L, "L", ",\"smsys_listid@odata.bind\":\"/lists(" L_LEADS ")\"");
    row = bw_wait_row(BULK_L, BULK_FAILED, -1, -1, -1, -1, 30000);
    const char *e = jstr(row, "smsys_lasterror");
    print_message("no text: smsys_lasterror = %s\n", e ? e : "(null)");
    assert_non_null(e);
    assert_non_null(strstr(e, "no default template for lead"));
    cJSON_Delete(row);
    assert_int_equal(bw_int("SELECT count(*) FROM smsys_message WHERE bulk_id = '" BULK_L "'"), 0);

    /* the template is added, the user sets Ready again: it starts over */
    bw_post("smsys_smstemplates", "{\"smsys_name\":\"Lead default\",\"smsys_body\":"
                                  "\"LD {{lastname}}\",\"smsys_entity\":\"lead\","
                                  "\"smsys_isdefault\":true}");
    bw_patch("smsys_bulksmses(" BULK_L ")", "{\"smsys_status\":2}");
    row = bw_wait_row(BULK_L, BULK_COMPLETED, 5, 5, 5, 0, 30000);
    assert_null(jstr(row, "smsys_lasterror"));
    cJSON_Delete(row);
    seen = bw_seen("LD ");
    assert_int_equal(cJSON_GetArraySize(seen), 5);
    for (int i = 0; i < 5; i++) {
        char key[64];
        snprintf(key, sizeof(key), "98935%07d|LD Lead%d", i, i);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(seen, key);
        assert_non_null(c);
        assert_int_equal(c->valueint, 1);
    }
    cJSON_Delete(seen);
}

#define BULK_R "b0000000-0000-4000-8000-0000000000e1"

static void test_preflight_refusal(void **state)
{
    (void)state;
    bulk_create(BULK_R, "R",
                ",\"description\":\"R {{firstname}}\","
                "\"smsys_listid@odata.bind\":\"/lists(" L_SMALL ")\","
                "\"smsys_settingid@odata.bind\":\"/smsys_smssettings(" ACC_B ")\"");
    cJSON *row = bw_wait_row(BULK_R, BULK_FAILED, 20, 0, 0, 0, 30000);
    const char *e = jstr(row, "smsys_lasterror");
    print_message("refused: smsys_lasterror = %s\n", e ? e : "(null)");
    assert_non_null(e);
    assert_non_null(strstr(e, "insufficient balance"));
    assert_non_null(strstr(e, "1000 IRR")); /* 20 segments x 50 */
    assert_non_null(strstr(e, "100 IRR"));
    cJSON_Delete(row);
    assert_int_equal(bw_int("SELECT count(*) FROM smsys_message WHERE bulk_id = '" BULK_R "'"), 0);
    assert_int_equal(records_of(BULK_R, 3, NULL), 0);
    const char *pf = bw_str("SELECT preflight::text FROM smsys_bulk WHERE id = '" BULK_R "'");
    print_message("preflight: %s\n", pf);
    assert_non_null(strstr(pf, "\"refused\": true"));
    assert_non_null(strstr(pf, "\"cost\": 1000"));
    assert_int_equal(bw_seen_total("R "), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_list_10k),
        cmocka_unit_test(test_campaign_overlap_dynamic_lookup),
        cmocka_unit_test(test_default_template),
        cmocka_unit_test(test_preflight_refusal),
    };
    if (getenv("SMSYS_TEST_FILTER")) /* e.g. "test_default*" while debugging */
        cmocka_set_test_filter(getenv("SMSYS_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
