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

#include "bulk_run.h"

#define N_CONTACTS 3000
/* longer than the retry budget below (1 + 2 + 4 s less 20 % jitter:
 * 5.6 s at least): without the outage breaker (conn_http_send.c) messages
 * would fail "retries used up" */
#define OUTAGE_MS 9000
/* longer than our Dataverse client's own retries of one request (4, from
 * 0.5 s doubling: 7.5 s), so the engine's step itself fails and resumes */
#define DV_OUTAGE_MS 9000

static const char *const dv_args[] = {"--latency-ms", "40", NULL};

/* smsysd is still our running child (it never exited). */
static int smsysd_alive(void)
{
    int st;
    return sd.pid > 0 && waitpid(sd.pid, &st, WNOHANG) == 0;
}

static int in_expansion(void)
{
    return has_table() && q("SELECT count(*) FROM smsys_bulk_member") > 0 &&
           q("SELECT count(*) FROM smsys_bulk WHERE NOT expanded AND cursor IS NOT NULL") == 1;
}

static int in_sending(void)
{
    long long h = handed_over();
    return h > 0 && h < fx_num("recipients", NULL) / 3;
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
    run_fixture_at(&f, N_CONTACTS, "outage test");
    /* receipts by status polling every second (the callback push is not
     * what is tested here) */
    char path[200];
    snprintf(path, sizeof(path), "smsys_smssettings(%s)", fx_str("account"));
    assert_int_equal(pkf_req(&f, "PATCH", path, "{\"smsys_inboundinterval\":1}", NULL), 204);
    sim_config("{\"receipt_delay_ms\":100,\"outcome\":{\"delivered\":100,\"undelivered\":0},"
               "\"kavenegar\":{\"latency_ms\":10}}");
    /* a short retry backoff (1, 2, 4 s) that the provider's outage
     * outlasts, and a short account pause (the outage breaker's probe
     * interval) */
    br_write_conf("backoff_base_ms = 1000\nbackoff_cap_ms = 4000\naccount_pause_ms = 1000\n",
                  "page_size = 250\nrate_per_s = 300\n");
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

    check_outcome();

    world_smsysd_stop_clean(&sd, NULL);
}

static int setup(void **state)
{
    return br_setup(state, "bulkoutage");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bulk_survives_outages),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
