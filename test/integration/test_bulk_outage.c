/* test_bulk_outage.c - F9's "if anything breaks midway, sending resumes by
 * itself": the real smsysd sends a bulk SMS to a campaign (a static and an
 * overlapping dynamic list, 3,000 contacts, some without a number, some
 * do-not-SMS, some invalid, some sharing a number; tools/bulk-fixture)
 * from dvemu (--data) through provsim's Kavenegar API, and while it runs,
 * with smsysd itself left alone:
 *   1. Dynamics goes away during expansion: dvemu stopped, the port closed
 *      for a few seconds, restarted on the same port from its journal;
 *   2. the same during record creation;
 *   3. the provider refuses everything (HTTP 500, nothing processed)
 *      mid-sending, for longer than the messages' whole retry budget: the
 *      connector's outage breaker pauses the account instead of letting
 *      every message use up its retries;
 *   4. PostgreSQL drops every connection of smsysd
 *      (pg_terminate_backend), three times, mid-sending.
 * At the end: smsysd never exited and is healthy; from provsim's own
 * JSON-lines log every reachable member got exactly one message and nobody
 * else got one; dvemu holds exactly one SMS record per recipient; the
 * bulk's counters are right and it is Completed. The phase is read from
 * PostgreSQL; each outage's length and what smsysd logged are printed. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "provsim_client.h"

#include "pk_fixture.h"

#define N_CONTACTS 3000
/* longer than the retry budget below (1 + 2 + 4 s less 20 % jitter:
 * 5.6 s at least): without the outage breaker (conn_http_send.c) messages
 * would fail "retries used up" */
#define OUTAGE_MS 9000
/* longer than our Dataverse client's own retries of one request (4, from
 * 0.5 s doubling: 7.5 s), so the engine's step itself fails and resumes */
#define DV_OUTAGE_MS 9000

static struct pkf f;
static char dir[64], expect_path[256];
static struct world_smsysd sd;
static cJSON *fix; /* bulk-fixture's answer */
static const char *const dv_args[] = {"--latency-ms", "40", NULL};

static const char *fx_str(const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(fix, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static long fx_num(const char *key, const char *sub)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(fix, key);
    if (sub)
        v = cJSON_GetObjectItemCaseSensitive(v, sub);
    return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

static long long q(const char *sql)
{
    return pkf_int(&f, sql);
}

static void dump_state(void)
{
    print_message("# bulk: %s\n",
                  pkf_str(&f, "SELECT state || ' expanded=' || expanded || ' sending=' || sending "
                              "|| ' last_error=' || coalesce(last_error, '-') FROM smsys_bulk"));
    print_message("# members by status/step: %s\n",
                  pkf_str(&f, "SELECT string_agg(k || ':' || n, ' ') FROM (SELECT status || '/' "
                              "|| step k, count(*) n FROM smsys_bulk_member GROUP BY 1 "
                              "ORDER BY 1) s"));
    print_message("# messages by state: %s\n",
                  pkf_str(&f, "SELECT string_agg(k || ':' || n, ' ') FROM (SELECT state::text k, "
                              "count(*) n FROM smsys_message GROUP BY 1 ORDER BY 1) s"));
    print_message("# message errors: %s\n",
                  pkf_str(&f, "SELECT string_agg(DISTINCT left(last_error, 120), ' | ') FROM "
                              "smsys_message WHERE last_error IS NOT NULL"));
}

/* Runs tools/bulk-fixture against dvemu; keeps its JSON answer in fix. */
static void run_fixture(void)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd),
             "'%s' --url %s --contacts %d --mode campaign --provider-url %s --expect '%s' "
             "--name 'outage test' --text 'Salam {{firstname}} {{lastname}}'",
             tu_bin("bulk-fixture"), f.emu.root, N_CONTACTS, base, expect_path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    struct buf out = BUF_INIT;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), p)) > 0)
        buf_append(&out, tmp, n);
    assert_int_equal(pclose(p), 0);
    buf_putc(&out, '\0');
    fix = cJSON_Parse(out.data);
    buf_free(&out);
    assert_non_null(fix);
    assert_true(fx_num("recipients", NULL) > N_CONTACTS * 7 / 10);
}

static char *rel_link(const char *link)
{
    size_t rl = strlen(f.emu.root);
    return strdup(strncmp(link, f.emu.root, rl) == 0 ? link + rl : link);
}

/* smsysd is still our running child (it never exited). */
static int smsysd_alive(void)
{
    int st;
    return sd.pid > 0 && waitpid(sd.pid, &st, WNOHANG) == 0;
}

static int wait_for(int (*fn)(void), unsigned ms)
{
    for (unsigned t = 0; t <= ms; t += 10) {
        if (fn())
            return 1;
        uv_sleep(10);
    }
    return 0;
}

static int has_table(void)
{
    return q("SELECT count(*) FROM pg_tables WHERE tablename = 'smsys_bulk'") == 1;
}

static int in_expansion(void)
{
    return has_table() && q("SELECT count(*) FROM smsys_bulk_member") > 0 &&
           q("SELECT count(*) FROM smsys_bulk WHERE NOT expanded AND cursor IS NOT NULL") == 1;
}

static int in_record_creation(void)
{
    return has_table() && q("SELECT count(*) FROM smsys_bulk_member WHERE step = 2") > 0 &&
           q("SELECT count(*) FROM smsys_bulk_member WHERE status = 0 AND step < 3") > 0;
}

static long long handed_over(void)
{
    return q("SELECT count(*) FROM smsys_message WHERE bulk_id IS NOT NULL "
             "AND state IN (4, 5, 6, 10, 21)");
}

static int in_sending(void)
{
    long long h = handed_over();
    return h > 0 && h < fx_num("recipients", NULL) / 3;
}

static int in_late_sending(void)
{
    long long h = handed_over();
    return h >= fx_num("recipients", NULL) / 2 && h < fx_num("recipients", NULL);
}

static int completed(void)
{
    return q("SELECT count(*) FROM smsys_bulk WHERE state = 6") == 1;
}

static cJSON *bulk_record(void)
{
    char path[300];
    snprintf(path, sizeof(path),
             "smsys_bulksmses(%s)?$select=smsys_status,smsys_total,smsys_sent,"
             "smsys_delivered,smsys_failed,smsys_skipped,smsys_lasterror",
             fx_str("bulk"));
    return pkf_get(&f, path);
}

static long rec_num(const cJSON *r, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, k);
    return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

static int record_final(void)
{
    cJSON *r = bulk_record();
    int ok = rec_num(r, "smsys_status") == 6 &&
             rec_num(r, "smsys_delivered") == fx_num("recipients", NULL);
    cJSON_Delete(r);
    return ok;
}

static int setup(void **state)
{
    if (group_setup(state) != 0)
        return -1;
    world_mkdir("bulkoutage", dir, sizeof(dir));
    snprintf(f.emu.data_dir, sizeof(f.emu.data_dir), "%s/dv", dir);
    mkdir(f.emu.data_dir, 0700);
    world_smsysd_init(&sd, dir, "a");
    snprintf(expect_path, sizeof(expect_path), "%s/expect.txt", dir);
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
    unsetenv("SMSYS_CONFIG");
    return 0;
}

static int teardown(void **state)
{
    world_smsysd_stop(&sd);
    if (f.side)
        PQfinish(f.side);
    if (f.emu.pid > 0)
        pkf_dv_stop(&f);
    world_dv_free(&f.emu);
    cJSON_Delete(fix);
    world_cleanup();
    return group_teardown(state);
}

/* A short retry backoff (1, 2, 4 s) that the provider's outage outlasts,
 * and a short account pause (the outage breaker's probe interval). */
static void write_conf(void)
{
    world_conf_write(sd.conf,
                     &(struct world_conf){
                         .dv_root = f.emu.root,
                         .dv_extra = "poll_interval_ms = 300\n",
                         .conninfo = f.conninfo,
                         .http_port = sd.http_port,
                         .more = "[pickup]\nwriteback_idle_ms = 100\n"
                                 "[queue]\naccounts_poll_ms = 300\nidle_claim_ms = 100\n"
                                 "backoff_base_ms = 1000\nbackoff_cap_ms = 4000\nlease_ms = 3000\n"
                                 "account_pause_ms = 1000\n"
                                 "[sending]\nquiet_hours =\n"
                                 "[bulk]\npoll_interval_ms = 300\npage_size = 250\n"
                                 "counters_interval_ms = 500\nrate_per_s = 300\n"
                                 "[service]\ngrace_period_ms = 3000\n"});
}

/* Waits for a phase; returns whether it was hit (printed). */
static int reach(const char *phase, int (*fn)(void))
{
    int hit = wait_for(fn, 60000);
    print_message("# %s: %s (handed over %lld)\n", phase, hit ? "hit" : "MISSED", handed_over());
    if (!hit)
        world_smsysd_print_log(&sd, 4000);
    return hit;
}

/* Dynamics is gone (port closed) for DV_OUTAGE_MS, then back from its
 * journal on the same port. */
static void dynamics_outage(const char *phase)
{
    uint64_t t0 = util_now_ms();
    world_dv_stop(&f.emu);
    uv_sleep(DV_OUTAGE_MS);
    pkf_dv_start(&f, dv_args);
    print_message("# Dynamics down %s: %llu ms\n", phase, (unsigned long long)(util_now_ms() - t0));
    assert_true(smsysd_alive());
}

/* The provider answers every request HTTP 500 without processing it. */
static void provider_outage(void)
{
    uint64_t t0 = util_now_ms();
    long long before = handed_over();
    sim_config("{\"fail_rate\":1}");
    uv_sleep(OUTAGE_MS);
    sim_config("{\"fail_rate\":0}");
    print_message("# provider refusing: %llu ms (handed over %lld -> %lld)\n",
                  (unsigned long long)(util_now_ms() - t0), before, handed_over());
    assert_true(smsysd_alive());
}

/* Every connection of the test's database but the test's own is
 * terminated, three times 700 ms apart. */
static void postgres_outage(void)
{
    char sql[400];
    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "
             "'%s' AND pid <> pg_backend_pid()",
             f.dbname);
    uint64_t t0 = util_now_ms();
    long long killed = 0;
    for (int i = 0; i < 3; i++) {
        if (i)
            uv_sleep(700);
        killed += q(sql);
    }
    print_message("# PostgreSQL: %lld backends terminated over %llu ms\n", killed,
                  (unsigned long long)(util_now_ms() - t0));
    assert_true(killed >= 1);
    assert_true(smsysd_alive());
}

/* provsim's log: one line per accepted message; per number (last 10
 * digits) exactly one, nobody else. */
static void check_provider_log(void)
{
    char *want = world_slurp(expect_path);
    cJSON *count = cJSON_CreateObject();
    long expected = 0;
    for (char *save = NULL, *l = strtok_r(want, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(l);
        assert_true(n >= 10);
        cJSON_AddNumberToObject(count, l + n - 10, 0);
        expected++;
    }
    free(want);
    assert_int_equal(expected, fx_num("recipients", NULL));
    char *lg = world_slurp(logpath);
    long lines = 0, twice = 0, stranger = 0;
    for (char *save = NULL, *l = strtok_r(lg, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(l);
        assert_non_null(j);
        const cJSON *to = cJSON_GetObjectItemCaseSensitive(j, "to");
        assert_true(cJSON_IsString(to));
        size_t n = strlen(to->valuestring);
        assert_true(n >= 10);
        cJSON *c = cJSON_GetObjectItemCaseSensitive(count, to->valuestring + n - 10);
        if (c == NULL) {
            if (stranger++ < 5)
                print_message("not a recipient: %s\n", l);
        } else {
            cJSON_SetNumberValue(c, c->valuedouble + 1);
            if (c->valuedouble == 2 && twice++ < 5)
                print_message("sent twice: %s\n", l);
        }
        lines++;
        cJSON_Delete(j);
    }
    free(lg);
    long missed = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, count) if (c->valuedouble == 0) missed++;
    cJSON_Delete(count);
    print_message("# provider log: %ld messages, %ld recipients, %ld missed, %ld twice, "
                  "%ld strangers\n",
                  lines, expected, missed, twice, stranger);
    struct reply st;
    http(&st, "GET", "/_sim/stats", NULL, NULL, NULL, NULL, 0);
    if (st.status == 200)
        print_message("# provsim kavenegar: %.0f send requests, %.0f HTTP 5xx, %.0f repeated "
                      "localids\n",
                      jnum(st.json, "providers.kavenegar.send_requests"),
                      jnum(st.json, "providers.kavenegar.http_5xx"),
                      jnum(st.json, "providers.kavenegar.duplicates"));
    reply_free(&st);
    assert_int_equal(stranger, 0);
    assert_int_equal(twice, 0);
    assert_int_equal(missed, 0);
    assert_int_equal(lines, expected);
}

/* Exactly one SMS record per recipient in dvemu, linked to the bulk,
 * Delivered. */
static void check_records(void)
{
    char path[512];
    snprintf(path, sizeof(path),
             "smsys_smses?$select=activityid,_regardingobjectid_value,smsys_status"
             "&$filter=_smsys_bulksmsid_value%%20eq%%20%s",
             fx_str("bulk"));
    cJSON *seen = cJSON_CreateObject();
    long n = 0, dup = 0, not_delivered = 0;
    char *next = strdup(path);
    while (next) {
        cJSON *j = pkf_get(&f, next);
        free(next);
        next = NULL;
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "value"))
        {
            const cJSON *reg = cJSON_GetObjectItemCaseSensitive(it, "_regardingobjectid_value");
            assert_true(cJSON_IsString(reg));
            if (cJSON_GetObjectItemCaseSensitive(seen, reg->valuestring))
                dup++;
            else
                cJSON_AddTrueToObject(seen, reg->valuestring);
            if (rec_num(it, "smsys_status") != 5)
                not_delivered++;
            n++;
        }
        const cJSON *nl = cJSON_GetObjectItemCaseSensitive(j, "@odata.nextLink");
        if (cJSON_IsString(nl))
            next = rel_link(nl->valuestring);
        cJSON_Delete(j);
    }
    cJSON_Delete(seen);
    print_message("# dvemu: %ld SMS records, %ld for an already seen member, %ld not Delivered\n",
                  n, dup, not_delivered);
    assert_int_equal(dup, 0);
    assert_int_equal(n, fx_num("recipients", NULL));
    assert_int_equal(not_delivered, 0);
}

/* The warnings and errors smsysd logged, counted by event (first word
 * after the level), and the first few lines of each kind. */
static void print_outage_log(void)
{
    char *lg = world_slurp(sd.log);
    long warn = 0, err = 0, shown = 0;
    for (char *save = NULL, *l = strtok_r(lg, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        int w = strstr(l, "Z warn ") != NULL;
        int e = strstr(l, "Z error ") != NULL;
        warn += w;
        err += e;
        if ((w || e) && shown++ < 40)
            print_message("#   smsysd: %.240s\n", l);
    }
    print_message("# smsysd logged %ld warnings, %ld errors\n", warn, err);
    free(lg);
}

static void test_bulk_survives_outages(void **state)
{
    (void)state;
    world_db_create("bulkoutage", f.dbname, sizeof(f.dbname), f.conninfo, sizeof(f.conninfo));
    f.side = world_db_connect(f.conninfo);
    pkf_dv_start(&f, dv_args);
    run_fixture();
    /* receipts by status polling every second (the callback push is not
     * what is tested here) */
    char path[200];
    snprintf(path, sizeof(path), "smsys_smssettings(%s)", fx_str("account"));
    assert_int_equal(pkf_req(&f, "PATCH", path, "{\"smsys_inboundinterval\":1}", NULL), 204);
    sim_config("{\"receipt_delay_ms\":100,\"outcome\":{\"delivered\":100,\"undelivered\":0},"
               "\"kavenegar\":{\"latency_ms\":10}}");
    write_conf();
    uint64_t t0 = util_now_ms();
    world_smsysd_start(&sd, 20000);

    /* a missed phase skips its outage and fails the test below */
    int hits = 0;
    if (reach("during expansion", in_expansion)) {
        hits++;
        dynamics_outage("during expansion");
    }
    if (reach("during record creation", in_record_creation)) {
        hits++;
        dynamics_outage("during record creation");
    }
    if (reach("early in sending", in_sending)) {
        hits++;
        provider_outage();
    }
    if (reach("late in sending", in_late_sending)) {
        hits++;
        postgres_outage();
    }

    int done = wait_for(completed, 120000) && wait_for(record_final, 30000);
    print_message("# bulk done after %llu ms: %s\n", (unsigned long long)(util_now_ms() - t0),
                  done ? "Completed" : "NOT completed");
    print_outage_log();
    if (!done) {
        world_smsysd_print_log(&sd, 6000);
        dump_state();
    }
    assert_true(smsysd_alive());
    assert_int_equal(world_smsysd_healthy(&sd, 5000), 0);
    assert_true(done);
    assert_int_equal(hits, 4);

    check_provider_log();
    check_records();

    char sql[300];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM smsys_message WHERE bulk_id = '%s'",
             fx_str("bulk"));
    assert_int_equal(q(sql), fx_num("recipients", NULL));
    snprintf(sql, sizeof(sql),
             "SELECT count(DISTINCT recipient) FROM smsys_message WHERE bulk_id = '%s' "
             "AND state = 5",
             fx_str("bulk"));
    assert_int_equal(q(sql), fx_num("recipients", NULL));

    cJSON *r = bulk_record();
    print_message("# bulk record: status %ld total %ld sent %ld delivered %ld failed %ld "
                  "skipped %ld\n",
                  rec_num(r, "smsys_status"), rec_num(r, "smsys_total"), rec_num(r, "smsys_sent"),
                  rec_num(r, "smsys_delivered"), rec_num(r, "smsys_failed"),
                  rec_num(r, "smsys_skipped"));
    assert_int_equal(rec_num(r, "smsys_status"), 6);
    assert_int_equal(rec_num(r, "smsys_total"), fx_num("recipients", NULL));
    assert_int_equal(rec_num(r, "smsys_sent"), fx_num("recipients", NULL));
    assert_int_equal(rec_num(r, "smsys_delivered"), fx_num("recipients", NULL));
    assert_int_equal(rec_num(r, "smsys_failed"), 0);
    assert_int_equal(rec_num(r, "smsys_skipped"), fx_num("skipped", "total"));
    cJSON_Delete(r);

    world_smsysd_stop_clean(&sd, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bulk_survives_outages),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
