/* test_bulk_crash.c - issue #9's crash test: the real smsysd sends a bulk
 * SMS to a campaign (a static list and an overlapping dynamic list, 12,000
 * contacts, some without a number, some do-not-SMS, some invalid, some
 * sharing a number) from dvemu (--data, kept running) through provsim's
 * Kavenegar API (idempotent: `localid`), and is killed with SIGKILL
 *   1. during expansion, mid-list in each of the campaign's two lists
 *      (the static list paged by nextLink, the dynamic one by FetchXML
 *      page + paging cookie; the checkpoint holds the cursor),
 *   2. during record creation (some members held, not all released),
 *   3. twice during sending (some, not all, handed over; dvemu is killed
 *      with it once and restarted from its journal),
 * and restarted each time. At the end, from provsim's own JSON-lines log:
 * every reachable member got exactly one message and nobody else got one;
 * in dvemu exactly one SMS record per recipient, linked to the bulk; the
 * bulk's counters are right and it is Completed.
 *
 * The phase is read from PostgreSQL (smsys_bulk, smsys_bulk_member,
 * smsys_message); dvemu runs with --latency-ms so each phase lasts long
 * enough to be hit. Skipped (not passed) while smsysd has no [bulk]
 * engine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "provsim_client.h"

#include "pk_fixture.h"

#include "bulk_run.h"
#include "smsys/phone.h"

#define N_CONTACTS 12000

/* The engine is the only part of smsysd that reads the entity set
 * smsys_bulksmses, so the name is in the binary exactly when the engine
 * is. (The [bulk] config section and the SQL come earlier.) */
static int engine_present(void)
{
    FILE *in = fopen(tu_bin("smsysd"), "rb");
    if (in == NULL)
        return 0;
    struct buf b = BUF_INIT;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), in)) > 0)
        buf_append(&b, tmp, n);
    fclose(in);
    static const char needle[] = "smsys_bulksmses";
    int found = b.data && memmem(b.data, b.len, needle, sizeof(needle) - 1) != NULL;
    buf_free(&b);
    return found;
}

static void dump_log(void)
{
    world_smsysd_print_log(&sd, 6000);
}

static void start_smsysd(void)
{
    world_smsysd_start(&sd, 20000);
}

static void kill9(void)
{
    assert_true(sd.pid > 0);
    world_smsysd_kill9(&sd);
}

/* Mid-list in audience source i (a page done, more to read). */
static int in_source(int i)
{
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM smsys_bulk WHERE NOT expanded AND src_index = %d "
             "AND cursor IS NOT NULL",
             i);
    return has_table() && q("SELECT count(*) FROM smsys_bulk_member") > 0 && q(sql) == 1;
}

static int in_expansion(void)
{
    return in_source(0);
}

static int in_second_list(void)
{
    return in_source(1);
}

static int in_sending(void)
{
    long long h = handed_over();
    return h > 0 && h < fx_num("recipients", NULL) / 2;
}

/* Kills smsysd once fn() holds; returns whether the phase was hit. */
static int kill_when(const char *phase, int (*fn)(void), unsigned ms)
{
    start_smsysd();
    int hit = wait_for(fn, ms);
    print_message("# kill -9 %s: %s (handed over %lld)\n", phase, hit ? "hit" : "MISSED",
                  handed_over());
    if (!hit)
        dump_log();
    kill9();
    return hit;
}

/* Adds the rows of one page (contacts) to the audience object (by id). */
static void add_members(cJSON *audience, const cJSON *page)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, page)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "contactid");
        assert_true(cJSON_IsString(id));
        if (!cJSON_GetObjectItemCaseSensitive(audience, id->valuestring))
            cJSON_AddItemToObject(audience, id->valuestring, cJSON_Duplicate(it, 1));
    }
}

/* The fixture's promised outcome, recomputed independently from what
 * dvemu holds: the campaign's two lists read the way Dynamics serves them
 * (static members paged, the dynamic list's FetchXML run), numbers through
 * smsys's own phone_normalize, deduplicated. The crash test and the
 * benchmark rely on these figures. */
static void test_fixture_outcome(void **state)
{
    (void)state;
    struct pkf g = {0};
    pkf_dv_start(&g, NULL);
    run_fixture_at(&g, 3000, "crash test");
    char path[1024];
    snprintf(path, sizeof(path), "campaigns(%s)/campaignlist_association?$select=listid,type,query",
             fx_str("campaign"));
    cJSON *lists = pkf_get(&g, path);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(lists, "value")), 2);
    cJSON *aud = cJSON_CreateObject();
    const cJSON *l;
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(lists, "value"))
    {
        const char *lid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "listid"));
        assert_non_null(lid);
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "type"))) {
            snprintf(path, sizeof(path),
                     "lists(%s)/listcontact_association?$select=contactid,mobilephone,"
                     "smsys_donotsms",
                     lid);
            char *next = strdup(path);
            while (next) {
                cJSON *j = pkf_get(&g, next);
                free(next);
                next = NULL;
                add_members(aud, cJSON_GetObjectItemCaseSensitive(j, "value"));
                const cJSON *nl = cJSON_GetObjectItemCaseSensitive(j, "@odata.nextLink");
                if (cJSON_IsString(nl))
                    next = rel_link(&g, nl->valuestring);
                cJSON_Delete(j);
            }
            continue;
        }
        const char *fx = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "query"));
        assert_non_null(fx);
        /* the list's query plus the columns needed */
        const char *ent = strstr(fx, "<attribute");
        assert_non_null(ent);
        struct buf x = BUF_INIT, u = BUF_INIT;
        buf_printf(&x, "%.*s<attribute name='mobilephone'/><attribute name='smsys_donotsms'/>%s",
                   (int)(ent - fx), fx, ent);
        buf_puts(&u, "contacts?fetchXml=");
        buf_put_urlenc(&u, x.data);
        cJSON *j = pkf_get(&g, u.data);
        assert_false(cJSON_IsTrue(
            cJSON_GetObjectItemCaseSensitive(j, "@Microsoft.Dynamics.CRM.morerecords")));
        add_members(aud, cJSON_GetObjectItemCaseSensitive(j, "value"));
        cJSON_Delete(j);
        buf_free(&x);
        buf_free(&u);
    }
    cJSON_Delete(lists);
    long members = 0, nonum = 0, donot = 0, invalid = 0, dup = 0;
    cJSON *numbers = cJSON_CreateObject();
    const cJSON *m;
    cJSON_ArrayForEach(m, aud)
    {
        members++;
        const char *mob = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "mobilephone"));
        char e164[PHONE_E164_MAX];
        struct smsys_err err = {0};
        if (mob == NULL)
            nonum++;
        else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "smsys_donotsms")))
            donot++;
        else if (phone_normalize(mob, "IR", e164, sizeof(e164), &err) != 0)
            invalid++;
        else if (cJSON_GetObjectItemCaseSensitive(numbers, e164))
            dup++;
        else
            cJSON_AddTrueToObject(numbers, e164);
    }
    cJSON_Delete(aud);
    assert_int_equal(members, fx_num("members", NULL));
    assert_int_equal(nonum, fx_num("skipped", "no_number"));
    assert_int_equal(donot, fx_num("skipped", "do_not_sms"));
    assert_int_equal(invalid, fx_num("skipped", "invalid_number"));
    assert_int_equal(dup, fx_num("skipped", "duplicate"));
    assert_int_equal(cJSON_GetArraySize(numbers), fx_num("recipients", NULL));
    /* --expect names exactly these numbers */
    char *want = world_slurp(expect_path);
    long n = 0;
    for (char *save = NULL, *ln = strtok_r(want, "\n", &save); ln;
         ln = strtok_r(NULL, "\n", &save), n++)
        assert_non_null(cJSON_GetObjectItemCaseSensitive(numbers, ln));
    free(want);
    assert_int_equal(n, fx_num("recipients", NULL));
    cJSON_Delete(numbers);
    /* the bulk record is Ready, on the campaign, with the account */
    snprintf(path, sizeof(path),
             "smsys_bulksmses(%s)?$select=smsys_status,_smsys_campaignid_value,"
             "_smsys_settingid_value",
             fx_str("bulk"));
    cJSON *b = pkf_get(&g, path);
    assert_int_equal(rec_num(b, "smsys_status"), 2);
    assert_string_equal(
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "_smsys_campaignid_value")),
        fx_str("campaign"));
    assert_string_equal(
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "_smsys_settingid_value")),
        fx_str("account"));
    cJSON_Delete(b);
    cJSON_Delete(fix);
    fix = NULL;
    pkf_dv_stop(&g);
    world_dv_free(&g.emu);
}

static void test_kill9_during_expansion_records_and_sending(void **state)
{
    (void)state;
    if (!engine_present()) {
        print_message("smsysd has no bulk engine yet (it never names smsys_bulksmses): "
                      "skipped\n");
        skip();
    }
    world_db_create("bulkcrash", f.dbname, sizeof(f.dbname), f.conninfo, sizeof(f.conninfo));
    f.side = world_db_connect(f.conninfo);
    const char *dv_args[] = {"--latency-ms", "50", NULL};
    pkf_dv_start(&f, dv_args);
    run_fixture_at(&f, N_CONTACTS, "crash test");
    /* receipts by status polling every second: a push (callback) sent
     * while smsysd is down would be lost, and this test kills it often */
    char path[200], cfg[600];
    snprintf(path, sizeof(path), "smsys_smssettings(%s)", fx_str("account"));
    assert_int_equal(pkf_req(&f, "PATCH", path, "{\"smsys_inboundinterval\":1}", NULL), 204);
    snprintf(cfg, sizeof(cfg),
             "{\"receipt_delay_ms\":100,\"outcome\":{\"delivered\":100,\"undelivered\":0},"
             "\"kavenegar\":{\"latency_ms\":20}}");
    sim_config(cfg);
    br_write_conf("backoff_base_ms = 200\nbackoff_cap_ms = 500\n",
                  "page_size = 500\nrate_per_s = 1500\n");

    int hits = 0;
    hits += kill_when("during expansion (first list)", in_expansion, 60000);
    hits += kill_when("during expansion (second list)", in_second_list, 60000);
    hits += kill_when("during record creation", in_record_creation, 60000);
    hits += kill_when("early in sending", in_sending, 60000);
    /* Dynamics goes down hard too: dvemu's acknowledged writes are in its
     * journal (--data), so the records and counters survive */
    world_dv_kill9(&f.emu);
    pkf_dv_start(&f, dv_args);
    hits += kill_when("late in sending", in_late_sending, 60000);
    start_smsysd();
    int done = wait_for(completed, 180000) && wait_for(record_final, 30000);
    if (!done) {
        dump_log();
        dump_state();
    }
    assert_true(done);
    assert_int_equal(hits, 5);

    check_outcome();

    /* the preflight summary is a note on the bulk */
    snprintf(path, sizeof(path), "annotations?$select=notetext&$filter=_objectid_value%%20eq%%20%s",
             fx_str("bulk"));
    cJSON *notes = pkf_get(&f, path);
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(notes, "value")) >= 1);
    cJSON_Delete(notes);

    world_smsysd_stop_clean(&sd, NULL);
}

static int setup(void **state)
{
    return br_setup(state, "bulkcrash");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_outcome),
        cmocka_unit_test(test_kill9_during_expansion_records_and_sending),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
