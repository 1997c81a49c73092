/* test_qa_bulk.c - bulk sends the way a marketing user makes them, with
 * odd but plausible audiences and texts (QA pass), against dvemu, smsysd as
 * a process, smscsim and PostgreSQL:
 *  - a list with no members, and a list whose members are all skipped (do
 *    not SMS, opted out), end Failed with "nothing to send: ..." as the
 *    last error, not Completed with nothing sent; filled and set Ready
 *    again, the bulk is sent and its new preflight has a note of its own;
 *  - a template that renders blank (only spaces) for some members skips
 *    those members with the reason; nobody receives a blank SMS;
 *  - the bulk's own text of spaces only is no text (the default template
 *    would apply; here there is none, so the bulk fails saying so);
 *  - a template written for another table than the list's members fails
 *    the bulk saying so;
 *  - smsysctl bulk watch of a bulk waiting for its scheduled start says so
 *    and stops at --timeout (exit 1) instead of waiting for ever; watch of
 *    a start command for an id that is no bulk send ends with smsysd's
 *    answer;
 *  - smsysctl bulk list marks no total of an ended bulk as still growing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "smsys/bulk.h"
#include "test_bulk_world.h"

#define NCONT   8
#define L_EMPTY "17000000-0000-4000-8000-000000000001"
#define L_SKIP  "17000000-0000-4000-8000-000000000002" /* 6, 7: do not SMS / opted out */
#define L_MAIN  "17000000-0000-4000-8000-000000000003" /* 0..5; 0 and 1 have a job title */
#define T_BLANK "17100000-0000-4000-8000-000000000001"
#define T_ACC   "17100000-0000-4000-8000-000000000002" /* written for accounts */
#define B_EMPTY "b3000000-0000-4000-8000-000000000001"
#define B_SKIP  "b3000000-0000-4000-8000-000000000002"
#define B_BLANK "b3000000-0000-4000-8000-000000000003"
#define B_SPACE "b3000000-0000-4000-8000-000000000004"
#define B_LATER "b3000000-0000-4000-8000-000000000005"
#define B_TABLE "b3000000-0000-4000-8000-000000000006"

static void seed(FILE *o, int port)
{
    fputs("{\"smsys_smssettings\":[", o);
    bw_seed_account(o, BW_ACC, "SMSC", 1, 1, port, NULL, NULL);
    fputs("],\"smsys_smsnumbers\":[{\"smsys_number\":\"" BW_LINE "\",\"smsys_isdefault\":true,"
          "\"smsys_settingid@odata.bind\":\"/smsys_smssettings(" BW_ACC ")\"}],\"contacts\":[",
          o);
    for (int i = 0; i < NCONT; i++)
        fprintf(o,
                "%s{\"contactid\":\"c1700000-0000-4000-8000-%012d\",\"firstname\":\"Q%d\","
                "\"mobilephone\":\"0935%07d\"%s%s}",
                i ? "," : "", i, i, i, i < 2 ? ",\"jobtitle\":\"Boss\"" : "",
                i == 6 ? ",\"smsys_donotsms\":true" : "");
    fputs("],\"smsys_smstemplates\":[{\"smsys_smstemplateid\":\"" T_BLANK "\",\"smsys_name\":"
          "\"blank for some\",\"smsys_entity\":\"contact\",\"smsys_body\":\" {{jobtitle}} \"},"
          "{\"smsys_smstemplateid\":\"" T_ACC "\",\"smsys_name\":\"for accounts\","
          "\"smsys_entity\":\"account\",\"smsys_body\":\"Dear {{name}}\"}],"
          "\"lists\":[{\"listid\":\"" L_EMPTY "\",\"listname\":\"Empty\",\"type\":false,"
          "\"createdfromcode\":2},{\"listid\":\"" L_SKIP "\",\"listname\":\"Skipped\","
          "\"type\":false,\"createdfromcode\":2},{\"listid\":\"" L_MAIN "\",\"listname\":"
          "\"Main\",\"type\":false,\"createdfromcode\":2}],\"_links\":[",
          o);
    for (int i = 0; i < NCONT; i++)
        fprintf(o,
                "%s{\"nav\":\"listcontact_association\",\"left\":\"%s\",\"right\":\"c1700000-"
                "0000-4000-8000-%012d\"}",
                i ? "," : "", i < 6 ? L_MAIN : L_SKIP, i);
    fputs("]}\n", o);
}

static int setup(void **state)
{
    (void)state;
    bw_open("qabulk", seed, "");
    /* contact 7 opted out (smsysctl optout add does the same) */
    bw_exec("SELECT smsys_optout_set('+989350000007', true, 'test', 'qa', NULL, NULL)");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bw_close();
    return 0;
}

/* A Ready bulk to list with text (own body) or template id. */
static void post_bulk(const char *id, const char *name, const char *list, const char *body,
                      const char *tpl, const char *extra)
{
    char b[1024];
    snprintf(b, sizeof(b),
             "{\"smsys_bulksmsid\":\"%s\",\"smsys_name\":\"%s\",\"smsys_status\":2,"
             "\"smsys_listid@odata.bind\":\"/lists(%s)\"%s%s%s%s%s%s}",
             id, name, list, body ? ",\"description\":\"" : "", body ? body : "", body ? "\"" : "",
             tpl ? ",\"smsys_templateid@odata.bind\":\"/smsys_smstemplates(" : "", tpl ? tpl : "",
             tpl ? ")\"" : "");
    if (extra) {
        size_t n = strlen(b);
        snprintf(b + n - 1, sizeof(b) - n + 1, ",%s}", extra);
    }
    bw_post("smsys_bulksmses", b);
}

static const char *last_error(cJSON *row)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(row, "smsys_lasterror");
    return cJSON_IsString(e) ? e->valuestring : "";
}

static void test_empty_and_all_skipped_fail(void **state)
{
    (void)state;
    post_bulk(B_EMPTY, "QA empty list", L_EMPTY, "Hello {{firstname}}", NULL, NULL);
    post_bulk(B_SKIP, "QA all skipped", L_SKIP, "Hello {{firstname}}", NULL, NULL);
    cJSON *r = bw_wait_row(B_EMPTY, BULK_FAILED, -1, -1, -1, -1, 30000);
    assert_non_null(strstr(last_error(r), "nothing to send: the audience has no members"));
    cJSON_Delete(r);
    r = bw_wait_row(B_SKIP, BULK_FAILED, -1, -1, -1, 2, 30000);
    assert_non_null(strstr(last_error(r), "nothing to send: all 2 members of the audience were "
                                          "skipped"));
    cJSON_Delete(r);
    assert_int_equal(bw_seen_total("Hello"), 0);

    /* the user fills the list and sets the bulk Ready again: it starts
     * over, is sent, and its new preflight gets a note of its own (before:
     * the record kept only the first note, "refused") */
    bw_post("AddListMembersList", "{\"ListId\":\"" L_EMPTY "\",\"MemberIds\":[\"c1700000-"
                                  "0000-4000-8000-000000000005\"]}");
    bw_patch("smsys_bulksmses(" B_EMPTY ")", "{\"smsys_status\":2}");
    r = bw_wait_row(B_EMPTY, BULK_COMPLETED, 1, 1, 1, 0, 30000);
    cJSON_Delete(r);
    assert_int_equal(bw_seen_total("Hello Q5"), 1);
    cJSON *notes = bw_get("annotations?$select=notetext&$filter=_objectid_value eq " B_EMPTY);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(notes, "value"), *n;
    int refused = 0, sending = 0;
    cJSON_ArrayForEach(n, v)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(n, "notetext");
        refused += cJSON_IsString(t) && strstr(t->valuestring, "Result: refused: nothing to send");
        sending += cJSON_IsString(t) && strstr(t->valuestring, "Result: sending");
    }
    cJSON_Delete(notes);
    assert_int_equal(refused, 1);
    assert_int_equal(sending, 1);
}

static void test_blank_for_some_members(void **state)
{
    (void)state;
    post_bulk(B_BLANK, "QA blank", L_MAIN, NULL, T_BLANK, NULL);
    cJSON *r = bw_wait_row(B_BLANK, BULK_COMPLETED, 2, 2, 2, 4, 60000);
    cJSON_Delete(r);
    assert_int_equal(bw_int("SELECT count(*) FROM smsys_bulk_member WHERE bulk_id = '" B_BLANK
                            "' AND status = 6 AND reason LIKE 'the text is empty for this "
                            "member%'"),
                     4);
    /* what the SMSC got: two "Boss" texts and no blank one */
    assert_int_equal(bw_seen_total(" Boss "), 2);
    assert_int_equal(bw_seen_total(" "), 2); /* a blank text would start with a space too */

    post_bulk(B_SPACE, "QA spaces", L_MAIN, "   ", NULL, NULL);
    r = bw_wait_row(B_SPACE, BULK_FAILED, -1, -1, -1, -1, 30000);
    assert_non_null(strstr(last_error(r), "no message text: the bulk send has no text and no "
                                          "template, and there is no default template for "
                                          "contact"));
    cJSON_Delete(r);
}

/* A template of another table on a contact list: the bulk fails naming
 * both tables (before: the list read was refused, "Could not find a
 * property named 'name' on type contact", blamed on the list). */
static void test_template_of_another_table(void **state)
{
    (void)state;
    post_bulk(B_TABLE, "QA table", L_MAIN, NULL, T_ACC, NULL);
    cJSON *r = bw_wait_row(B_TABLE, BULK_FAILED, -1, -1, -1, -1, 30000);
    assert_non_null(strstr(last_error(r), "template for accounts is written for table 'account' "
                                          "but the members of the audience are 'contact'"));
    cJSON_Delete(r);
}

/* ---- smsysctl ----------------------------------------------------------- */

/* smsysctl with the world's config, killed after ms. */
static struct world_run ctl_run(const char *const *args, unsigned ms)
{
    struct world_run r = world_ctl_start(w.conf, args);
    world_ctl_finish(&r, ms);
    return r;
}

static void test_watch_scheduled_times_out(void **state)
{
    (void)state;
    post_bulk(B_LATER, "QA later", L_MAIN, "Later {{firstname}}", NULL,
              "\"smsys_scheduledstart\":\"2099-01-01T08:00:00Z\"");
    assert_true(bw_wait_state(B_LATER, "2", 20000) == BULK_READY);
    uint64_t t0 = uv_hrtime();
    world_run_expect(
        ctl_run((const char *const[]){"bulk", "watch", B_LATER, "--timeout", "2", NULL}, 15000), 1,
        "state=Ready", "waits for its scheduled start, 2099-01-01 08:00:00 UTC");
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    print_message("watch --timeout 2 of a bulk scheduled for 2099 ended after %llu ms\n",
                  (unsigned long long)ms);
    assert_true(ms >= 1900 && ms < 8000);
    world_run_expect(ctl_run((const char *const[]){"bulk", "preview", B_LATER, NULL}, 5000), 0,
                     "waits for its scheduled start, 2099-01-01 08:00:00 UTC", NULL);
    world_run_expect(
        ctl_run((const char *const[]){"bulk", "watch", B_LATER, "--timeout", "x", NULL}, 5000), 2,
        NULL, "--timeout wants seconds");
    world_run_expect(
        ctl_run((const char *const[]){"bulk", "watch", B_LATER, "--timeout", NULL}, 5000), 2, NULL,
        "--timeout wants seconds");

    /* a bulk smsysd never accepted (a Draft): the way to start it */
    world_run_expect(ctl_run((const char *const[]){"bulk", "pause",
                                                   "b3000000-0000-4000-8000-0000000000ff", NULL},
                             5000),
                     1, NULL,
                     "smsysd has not accepted it: a Draft is started with smsysctl bulk start ID");

    /* start and watch of an id that is no bulk send (a list's id): watch
     * ends with smsysd's answer instead of waiting */
    world_run_expect(ctl_run((const char *const[]){"bulk", "start", L_EMPTY, NULL}, 10000), 0,
                     "start requested", NULL);
    world_run_expect(
        ctl_run((const char *const[]){"bulk", "watch", L_EMPTY, "--timeout", "20", NULL}, 30000), 1,
        NULL, "did not accept the bulk: no such bulk send in Dynamics");

    /* list: the ended bulks' totals are not marked "+" (still growing) */
    struct world_run r = ctl_run((const char *const[]){"bulk", "list", NULL}, 10000);
    assert_int_equal(r.code, 0);
    const char *line = strstr(r.out, "QA all skipped");
    assert_non_null(line);
    const char *eol = strchr(line, '\n');
    char one[256];
    snprintf(one, sizeof(one), "%.*s", (int)(eol ? eol - line : (long)strlen(line)), line);
    if (strstr(one, "Failed") == NULL || strchr(one, '+') != NULL)
        fail_msg("bulk list line: %s", one);
    world_run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_all_skipped_fail),
        cmocka_unit_test(test_blank_for_some_members),
        cmocka_unit_test(test_template_of_another_table),
        cmocka_unit_test(test_watch_scheduled_times_out),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
