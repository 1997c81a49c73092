/* test_bulk_control.c - controlling a running bulk send (issue #9) with
 * dvemu, smsysd as a process, smscsim and PostgreSQL:
 *  - started with smsysctl's command (smsys_bulk_request 'start' with a
 *    rate of 20/s, so there is something to stop), paused and resumed from
 *    Dynamics (PATCH smsys_status), paused and resumed the smsysctl way,
 *    then canceled from Dynamics: no hand-over after one poll interval,
 *    nothing sent twice, the records of canceled messages Canceled;
 *  - a dynamic list (FetchXML) read in several pages;
 *  - a scheduled start is honoured;
 *  - a held chunk left by a crash, with some of its records made, is
 *    resumed: only the missing records are created, each member sent once;
 *  - quiet hours: outside the window the records are created but nothing
 *    is handed over; with the window lifted the bulk completes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "smsys/bulk.h"
#include "smsys/tz.h"
#include "test_bulk_world.h"

#define NCONT  320
#define L_MAIN "16000000-0000-4000-8000-000000000001" /* 0..299 */
#define L_Q    "16000000-0000-4000-8000-000000000002" /* 300..319 */
#define L_DYN  "16000000-0000-4000-8000-000000000003" /* city Tehran: 0..249 */
#define BULK_F "b2000000-0000-4000-8000-000000000004"
#define BULK_S "b2000000-0000-4000-8000-000000000005"
#define BULK_P "b2000000-0000-4000-8000-000000000001"
#define BULK_Q "b2000000-0000-4000-8000-000000000002"
#define BULK_H "b2000000-0000-4000-8000-000000000003"

/* [bulk] poll_interval_ms of the world's config */
#define POLL_MS 200

static void seed(FILE *o, int port)
{
    fputs("{\"smsys_smssettings\":[", o);
    bw_seed_account(o, BW_ACC, "SMSC", 1, 1, port, NULL, NULL);
    fputs("],\"smsys_smsnumbers\":[{\"smsys_number\":\"" BW_LINE "\",\"smsys_isdefault\":true,"
          "\"smsys_settingid@odata.bind\":\"/smsys_smssettings(" BW_ACC ")\"}],\"contacts\":[",
          o);
    for (int i = 0; i < NCONT; i++)
        fprintf(o,
                "%s{\"contactid\":\"c1000000-0000-4000-8000-%012d\",\"firstname\":\"F%d\","
                "\"lastname\":\"L%d\",\"mobilephone\":\"0935%07d\"%s}",
                i ? "," : "", i, i, i, i, i < 250 ? ",\"address1_city\":\"Tehran\"" : "");
    fputs("],\"lists\":[{\"listid\":\"" L_MAIN "\",\"listname\":\"Main\",\"type\":false,"
          "\"createdfromcode\":2},{\"listid\":\"" L_Q "\",\"listname\":\"Night\",\"type\":false,"
          "\"createdfromcode\":2},{\"listid\":\"" L_DYN "\",\"listname\":\"Tehran\","
          "\"type\":true,\"createdfromcode\":2,\"query\":\"<fetch distinct='true'><entity "
          "name='contact'><filter><condition attribute='address1_city' operator='eq' "
          "value='Tehran'/></filter><order attribute='lastname'/></entity></fetch>\"}],"
          "\"_links\":[",
          o);
    for (int i = 0; i < NCONT; i++)
        fprintf(o,
                "%s{\"nav\":\"listcontact_association\",\"left\":\"%s\",\"right\":\"c1000000-"
                "0000-4000-8000-%012d\"}",
                i ? "," : "", i < 300 ? L_MAIN : L_Q, i);
    fputs("]}\n", o);
}

static int setup(void **state)
{
    (void)state;
    bw_page_size = 100; /* several pages per list, FetchXML included */
    bw_open("bulkctl", seed, "");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bw_close();
    return 0;
}

static int wait_seen_at_least(const char *prefix, int n, int timeout_ms)
{
    int got = 0;
    for (int t = 0; t < timeout_ms; t += 100) {
        got = bw_seen_total(prefix);
        if (got >= n)
            break;
        uv_sleep(100);
    }
    return got;
}

/* After a pause or cancel took effect in PostgreSQL: hand-overs already
 * claimed finish (waited for: on a loaded machine that takes longer than
 * the poll interval the test used to allow), then a poll interval passes;
 * after that nothing more goes out for 1.5 s. Returns the count that
 * stayed. */
static int assert_stopped(const char *what)
{
    long long inflight = -1;
    for (int t = 0; t < 20000 && inflight != 0; t += 50) {
        inflight = bw_int("SELECT count(*) FROM smsys_message WHERE bulk_id = '" BULK_P
                          "' AND state = 20");
        if (inflight != 0)
            uv_sleep(50);
    }
    assert_int_equal(inflight, 0);
    uv_sleep(POLL_MS + 300);
    int c1 = bw_seen_total("P ");
    uv_sleep(1500);
    int c2 = bw_seen_total("P ");
    print_message("%s: %d handed over when it took effect, %d 1.5 s later\n", what, c1, c2);
    assert_int_equal(c2, c1);
    assert_int_equal(
        bw_int("SELECT count(*) FROM smsys_message WHERE bulk_id = '" BULK_P "' AND state = 20"),
        0);
    return c2;
}

static int64_t now_ms(void)
{
    return (int64_t)(uv_hrtime() / 1000000);
}

/* Waits for the state and returns how long it took from t0 (ms). */
static int64_t took(const char *want, int64_t t0)
{
    assert_true(bw_wait_state(BULK_P, want, 10000) > 0);
    return now_ms() - t0;
}

static void test_pause_resume_cancel(void **state)
{
    (void)state;
    /* a Draft started the smsysctl way, at 20 messages/s */
    bw_post("smsys_bulksmses",
            "{\"smsys_bulksmsid\":\"" BULK_P "\",\"smsys_name\":\"P\",\"smsys_status\":1,"
            "\"description\":\"P {{firstname}}\","
            "\"smsys_listid@odata.bind\":\"/lists(" L_MAIN ")\"}");
    assert_true(bw_int("SELECT smsys_bulk_request('" BULK_P "', 'start', 20, 'test')") > 0);
    assert_true(wait_seen_at_least("P ", 20, 20000) >= 20);
    assert_true(bw_int("SELECT rate_per_s FROM smsys_bulk WHERE id = '" BULK_P "'") == 20);
    cJSON *row = bw_wait_row(BULK_P, BULK_SENDING, 300, -1, -1, 0, 10000);
    cJSON_Delete(row);

    /* pause from Dynamics */
    int64_t t0 = now_ms();
    bw_patch("smsys_bulksmses(" BULK_P ")", "{\"smsys_status\":5}");
    int64_t ms = took("5", t0);
    print_message("pause from Dynamics took effect in PostgreSQL after %lld ms\n", (long long)ms);
    assert_true(ms <= 3 * POLL_MS + 500);
    int paused_at = assert_stopped("paused from Dynamics");
    assert_true(paused_at < 300);
    assert_true(bw_int("SELECT count(*) FROM smsys_message WHERE bulk_id = '" BULK_P
                       "' AND state = 3") > 0);

    /* resume from Dynamics (back to Ready) */
    bw_patch("smsys_bulksmses(" BULK_P ")", "{\"smsys_status\":2}");
    assert_true(bw_wait_state(BULK_P, "4", 10000) == 4);
    assert_true(wait_seen_at_least("P ", paused_at + 10, 20000) >= paused_at + 10);
    row = bw_wait_row(BULK_P, BULK_SENDING, 300, -1, -1, 0, 10000);
    cJSON_Delete(row);

    /* pause the smsysctl way: PostgreSQL at once, Dynamics by the sync */
    assert_true(bw_int("SELECT smsys_bulk_request('" BULK_P "', 'pause', NULL, 'test')") > 0);
    assert_int_equal(bw_int("SELECT state FROM smsys_bulk WHERE id = '" BULK_P "'"), BULK_PAUSED);
    int cli_paused = assert_stopped("paused by smsysctl");
    row = bw_wait_row(BULK_P, BULK_PAUSED, 300, -1, -1, 0, 10000);
    cJSON_Delete(row);
    assert_true(bw_int("SELECT smsys_bulk_request('" BULK_P "', 'resume', NULL, 'test')") > 0);
    row = bw_wait_row(BULK_P, BULK_SENDING, 300, -1, -1, 0, 10000);
    cJSON_Delete(row);
    assert_true(wait_seen_at_least("P ", cli_paused + 10, 20000) >= cli_paused + 10);

    /* cancel from Dynamics */
    t0 = now_ms();
    bw_patch("smsys_bulksmses(" BULK_P ")", "{\"smsys_status\":7}");
    ms = took("7", t0);
    print_message("cancel from Dynamics took effect in PostgreSQL after %lld ms\n", (long long)ms);
    assert_true(ms <= 3 * POLL_MS + 500);
    int sent = assert_stopped("canceled from Dynamics");
    assert_true(sent < 300);

    /* nothing twice; counters; the records of canceled messages Canceled */
    cJSON *seen = bw_seen("P ");
    assert_int_equal(cJSON_GetArraySize(seen), sent);
    const cJSON *it;
    cJSON_ArrayForEach(it, seen)
    {
        assert_int_equal(it->valueint, 1);
    }
    cJSON_Delete(seen);
    long long canceled = bw_int("SELECT canceled FROM smsys_bulk_progress('" BULK_P "')");
    print_message("canceled: %d sent, %lld canceled\n", sent, canceled);
    assert_int_equal(sent + canceled, 300);
    row = bw_wait_row(BULK_P, BULK_CANCELED, 300, sent, -1, 0, 15000);
    cJSON_Delete(row);
    char path[300];
    snprintf(path, sizeof(path),
             "smsys_smses?$select=activityid&$filter=_smsys_bulksmsid_value eq %s and "
             "(smsys_status eq 2 or smsys_status eq 3 or smsys_status eq 7)",
             BULK_P);
    int open = -1;
    for (int t = 0; t < 15000 && open != 0; t += 200) {
        cJSON *j = bw_get(path);
        open = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "value"));
        cJSON_Delete(j);
        if (open)
            uv_sleep(200);
    }
    assert_int_equal(open, 0); /* no record is left Queued */
    /* stays stopped */
    uv_sleep(1000);
    assert_int_equal(bw_seen_total("P "), sent);
}

/* A dynamic list of 250 read in pages of 100 (FetchXML page + cookie),
 * each page checkpointed. */
static void test_dynamic_list_paged(void **state)
{
    (void)state;
    bw_post("smsys_bulksmses",
            "{\"smsys_bulksmsid\":\"" BULK_F "\",\"smsys_name\":\"F\",\"smsys_status\":2,"
            "\"description\":\"T {{firstname}}\","
            "\"smsys_listid@odata.bind\":\"/lists(" L_DYN ")\"}");
    cJSON *row = bw_wait_row(BULK_F, BULK_COMPLETED, 250, 250, 250, 0, 60000);
    cJSON_Delete(row);
    cJSON *seen = bw_seen("T ");
    assert_int_equal(cJSON_GetArraySize(seen), 250);
    for (int i = 0; i < 250; i++) {
        char key[64];
        snprintf(key, sizeof(key), "98935%07d|T F%d", i, i);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(seen, key);
        if (c == NULL)
            fail_msg("member %d of the dynamic list never received %s", i, key);
        assert_int_equal(c->valueint, 1);
    }
    cJSON_Delete(seen);
    char *l = bw_slurp(w.log);
    int pages = 0;
    for (const char *p = l; (p = strstr(p, "bulk page bulk=" BULK_F)) != NULL; p++)
        pages++;
    free(l);
    print_message("dynamic list of 250 read in %d pages\n", pages);
    assert_int_equal(pages, 3);
}

/* Ready with smsys_scheduledstart 3 s ahead: accepted at once (state 2 in
 * PostgreSQL), nothing read or sent before that time, then it runs. */
static void test_scheduled_start(void **state)
{
    (void)state;
    char at[40], body[600];
    time_t t = time(NULL) + 4; /* whole seconds: 3 to 4 s ahead */
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(body, sizeof(body),
             "{\"smsys_bulksmsid\":\"" BULK_S "\",\"smsys_name\":\"S\",\"smsys_status\":2,"
             "\"description\":\"S {{firstname}}\",\"smsys_scheduledstart\":\"%s\","
             "\"smsys_listid@odata.bind\":\"/lists(" L_Q ")\"}",
             at);
    bw_post("smsys_bulksmses", body);
    /* Checked until the start time by PostgreSQL's clock, which is the one
     * smsysd starts the bulk by: a check whose now() is before the start
     * cannot see it started, however slow the machine. (A fixed second of
     * sleep after seeing Ready could end past the start when Ready came
     * late.) Each check is one statement: one snapshot, one now().
     * 1: accepted (Ready, nothing read), -1: not accepted yet, 2: started
     * or read before the start time, 3: the start time has come. */
    const char *sql = "SELECT CASE WHEN now() >= b.scheduled_start THEN 3 "
                      "WHEN b.state <> 2 OR EXISTS (SELECT 1 FROM smsys_bulk_member m "
                      "WHERE m.bulk_id = b.id) THEN 2 ELSE 1 END "
                      "FROM smsys_bulk b WHERE b.id = '" BULK_S "'";
    int ready_before = 0, v = -1;
    for (int i = 0; i < 600 && v != 3; i++) {
        v = (int)bw_int(sql);
        if (v == 2)
            fail_msg("bulk started or read before its scheduled start");
        if (v == 1)
            ready_before++;
        if (v != 3)
            uv_sleep(50);
    }
    print_message("Ready seen %d times before the start time\n", ready_before);
    assert_int_equal(v, 3);
    assert_true(ready_before > 0); /* accepted at once, as Ready, not at the start */
    cJSON *row = bw_wait_row(BULK_S, BULK_COMPLETED, 20, 20, 20, 0, 30000);
    cJSON_Delete(row);
    assert_true(time(NULL) >= t);
    assert_int_equal(bw_seen_total("S "), 20);
}

/* What a kill -9 between "records created" and "released" leaves: a held
 * chunk whose records partly exist (here 7 of 20, made by hand). The
 * restarted service must ask Dynamics, create only the 13 missing records
 * (creating an existing id would be refused) and send each member once. */
static void test_held_chunk_resumes(void **state)
{
    (void)state;
    bw_smsysd_stop();
    bw_post("smsys_bulksmses",
            "{\"smsys_bulksmsid\":\"" BULK_H "\",\"smsys_name\":\"H\","
            "\"smsys_status\":4,\"smsys_listid@odata.bind\":\"/lists(" L_Q ")\"}");
    bw_exec("SELECT * FROM smsys_bulk_accept('{\"id\":\"" BULK_H "\",\"name\":\"H\","
            "\"list_id\":\"" L_Q "\"}')");
    bw_exec("UPDATE smsys_bulk SET sources = '[{\"id\":\"" L_Q "\",\"dynamic\":false,"
            "\"member_entity\":\"contact\"}]', templates = '{\"*\":\"H {{firstname}}\"}', "
            "sender = '" BW_LINE "' WHERE id = '" BULK_H "'");
    struct buf js = BUF_INIT;
    buf_putc(&js, '[');
    char act[20][37];
    for (int i = 0; i < 20; i++) {
        char key[80];
        snprintf(key, sizeof(key), "contact:c1000000-0000-4000-8000-%012d", 300 + i);
        assert_int_equal(bulk_activity_id(BULK_H, key, act[i]), 0);
        buf_printf(&js,
                   "%s{\"k\":\"%s\",\"e\":\"contact\",\"id\":\"%s\",\"act\":\"%s\","
                   "\"n\":\"+98935%07d\",\"st\":0,\"body\":\"H F%d\",\"seg\":1,\"enc\":0}",
                   i ? "," : "", key, key + 8, act[i], 300 + i, 300 + i);
    }
    buf_putc(&js, ']');
    struct buf sql = BUF_INIT;
    buf_printf(&sql,
               "SELECT applied FROM smsys_bulk_page('" BULK_H "', 0, NULL, 1, NULL, true, "
               "'%s')",
               js.data);
    bw_exec(sql.data);
    buf_free(&js);
    buf_free(&sql);
    bw_exec("SELECT smsys_bulk_set_state('" BULK_H "', 4::int2, NULL)");
    assert_int_equal(bw_int("SELECT count(*) FROM smsys_bulk_next_chunk('" BULK_H
                            "', 1000, 200::int2) WHERE fresh"),
                     20);
    for (int i = 0; i < 7; i++) {
        char body[1200];
        snprintf(body, sizeof(body),
                 "{\"activityid\":\"%s\",\"subject\":\"H\",\"description\":\"H F%d\","
                 "\"smsys_direction\":1,\"smsys_status\":3,"
                 "\"smsys_bulksmsid@odata.bind\":\"/smsys_bulksmses(" BULK_H ")\"}",
                 act[i], 300 + i);
        bw_post("smsys_smses", body);
    }
    bw_smsysd_start("");
    cJSON *row = bw_wait_row(BULK_H, BULK_COMPLETED, 20, 20, 20, 0, 30000);
    cJSON_Delete(row);
    char path[200];
    snprintf(path, sizeof(path),
             "smsys_smses?$select=activityid&$filter=_smsys_bulksmsid_value eq %s", BULK_H);
    cJSON *j = bw_get(path);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "value")), 20);
    cJSON_Delete(j);
    cJSON *seen = bw_seen("H ");
    assert_int_equal(cJSON_GetArraySize(seen), 20);
    const cJSON *it;
    cJSON_ArrayForEach(it, seen)
    {
        assert_int_equal(it->valueint, 1);
    }
    cJSON_Delete(seen);
    char *l = bw_slurp(w.log);
    assert_non_null(strstr(l, "records_found=7"));
    free(l);
}

/* A window of one hour starting two hours from now, Tehran time. */
static void closed_window(char *out, size_t len)
{
    int off = 0;
    time_t now = time(NULL);
    assert_int_equal(tz_offset("Asia/Tehran", now, &off), 0);
    int m = (int)((((int64_t)now + off) % 86400) / 60);
    int a = (m + 120) % 1440, b = (m + 180) % 1440;
    snprintf(out, len, "%02d:%02d-%02d:%02d", a / 60, a % 60, b / 60, b % 60);
}

static void test_quiet_hours(void **state)
{
    (void)state;
    char win[32];
    closed_window(win, sizeof(win));
    print_message("quiet_hours = %s (Asia/Tehran): now is outside\n", win);
    bw_smsysd_stop();
    bw_smsysd_start(win);
    bw_post("smsys_bulksmses",
            "{\"smsys_bulksmsid\":\"" BULK_Q "\",\"smsys_name\":\"Q\",\"smsys_status\":2,"
            "\"description\":\"Q {{firstname}}\","
            "\"smsys_listid@odata.bind\":\"/lists(" L_Q ")\"}");
    assert_int_equal(bw_wait_state(BULK_Q, "4", 20000), BULK_SENDING);
    /* records are created and messages released; hand-over waits */
    int released = 0;
    for (int t = 0; t < 20000 && released != 20; t += 100) {
        released = (int)bw_int("SELECT count(*) FROM smsys_bulk_member WHERE bulk_id = '" BULK_Q
                               "' AND step = 3");
        if (released != 20)
            uv_sleep(100);
    }
    assert_int_equal(released, 20);
    uv_sleep(1500);
    assert_int_equal(bw_seen_total("Q "), 0);
    assert_int_equal(bw_int("SELECT sending::int FROM smsys_bulk WHERE id = '" BULK_Q "'"), 0);
    assert_int_equal(
        bw_int("SELECT count(*) FROM smsys_message WHERE bulk_id = '" BULK_Q "' AND state = 3"),
        20);
    cJSON *row = bw_wait_row(BULK_Q, BULK_SENDING, 20, 0, 0, 0, 10000);
    cJSON_Delete(row);

    /* the window opens (here: the restriction is lifted) */
    bw_smsysd_stop();
    bw_smsysd_start("");
    row = bw_wait_row(BULK_Q, BULK_COMPLETED, 20, 20, 20, 0, 30000);
    cJSON_Delete(row);
    cJSON *seen = bw_seen("Q ");
    assert_int_equal(cJSON_GetArraySize(seen), 20);
    const cJSON *it;
    cJSON_ArrayForEach(it, seen)
    {
        assert_int_equal(it->valueint, 1);
    }
    cJSON_Delete(seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pause_resume_cancel), cmocka_unit_test(test_dynamic_list_paged),
        cmocka_unit_test(test_scheduled_start),     cmocka_unit_test(test_held_chunk_resumes),
        cmocka_unit_test(test_quiet_hours),
    };
    if (getenv("SMSYS_TEST_FILTER"))
        cmocka_set_test_filter(getenv("SMSYS_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
