/* test_e2e.c - smsysd as a process: real PostgreSQL, the real SMSC
 * simulator over TCP and the production SMPP connector. Messages are
 * queued directly (the Dynamics pickup joins when it is merged); every
 * "sent once" is counted from smscsim's own log.
 *  - kill -9 at random moments during 2 000 messages: none lost, none sent
 *    twice (unknown outcomes are not resent), and only what was handed to
 *    the connector can end Unknown (claimed-ahead messages are resent);
 *  - two smsysd processes on one database: each message sent once;
 *  - smsysctl send --wait through the service: Delivered; an undeliverable
 *    number ends Failed with the SMSC's code in last_error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "smsys/buf.h"
#include "testutil.h"

#include "smpp_fixture.h"
#include "world.h"

#define ACC "6a0d2b6e-1f6c-4a7e-9a55-0d3f2a1b0003"

static char tmpdir[256];
static struct world_pg pg; /* fresh per test */
static struct simproc sim;

#define exec_ok(q) world_sql_exec(pg.c, q)
#define q_int(q)   world_sql_int(pg.c, q)
#define sleep_ms   uv_sleep

static int setup(void **state)
{
    (void)state;
    world_mkdir("e2e", tmpdir, sizeof(tmpdir));
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
    unsetenv("SMSYS_CONFIG");
    return 0;
}

/* A fresh database with one SMPP account at a fresh smscsim. */
static void e2e_up(const char *const *simflags)
{
    static int n;
    char tag[16];
    snprintf(tag, sizeof(tag), "e2e%d", ++n);
    world_pg_open(&pg, tag);
    sim_start(&sim, simflags);
    char q[512];
    snprintf(q, sizeof(q),
             "INSERT INTO smsys_account (id, name, provider, max_retries, is_default, config) "
             "VALUES ('" ACC "', 'smsc', 'smpp', 3, true, '{\"host\":\"127.0.0.1\",\"port\":%d,"
             "\"sender\":\"1000\",\"window\":50,\"response_timeout_s\":5}')",
             sim.port);
    exec_ok(q);
}

static void e2e_down(void)
{
    sim_stop(&sim);
    world_pg_close(&pg);
}

/* Writes the config of instance `name` into *sd (Dynamics is never called:
 * nothing listens at its url). */
static void write_conf(const char *name, struct world_smsysd *sd)
{
    world_smsysd_init(sd, tmpdir, name);
    char more[512];
    snprintf(more, sizeof(more),
             "[service]\ngrace_period_ms = 3000\ninstance_name = %s\n"
             "[queue]\nlease_ms = 8000\naccounts_poll_ms = 300\nidle_claim_ms = 100\n"
             "backoff_base_ms = 200\nbackoff_cap_ms = 400\nbatch_size = 100\n"
             "[log]\nlevel = info\n",
             name);
    world_conf_write(sd->conf, &(struct world_conf){.dv_root = "http://127.0.0.1:9",
                                                    .client_id = "app",
                                                    .client_secret = "x",
                                                    .scope = "http://127.0.0.1:9/.default",
                                                    .conninfo = pg.conninfo,
                                                    .http_port = sd->http_port,
                                                    .more = more});
}

static pid_t start_smsysd(const char *name)
{
    struct world_smsysd sd;
    write_conf(name, &sd);
    world_smsysd_start(&sd, 10000);
    return sd.pid;
}

static void enqueue(int n, const char *suffix)
{
    char q[1024];
    snprintf(q, sizeof(q),
             "INSERT INTO smsys_message (idem_key, account_id, recipient, body, segments, "
             "max_retries, state) SELECT 'e'||g||'%s', '" ACC "', '+98912'||lpad(g::text, 6, "
             "'0')||'%s', 'e2e '||g, 1, 3, 3 FROM generate_series(1, %d) g",
             suffix, suffix, n);
    exec_ok(q);
    exec_ok("NOTIFY smsys_queue");
}

static int wait_count(const char *q, long long want, unsigned timeout_ms)
{
    long long v = -1;
    for (unsigned t = 0; t < timeout_ms; t += 100) {
        if ((v = q_int(q)) == want)
            return 0;
        sleep_ms(100);
    }
    fprintf(stderr, "timed out: %s = %lld, want %lld\n", q, v, want);
    return -1;
}

/* Checks every message against smscsim's log: Delivered ones were
 * submitted exactly once, Unknown ones at most once, nothing else exists
 * (none lost silently). *never = Unknown ones never submitted. */
static void check_each_message(int *never)
{
    struct simlog lg;
    sim_log_read(&sim, &lg);
    cJSON *seen = cJSON_CreateObject();
    for (size_t i = 0; i < lg.n; i++) {
        const char *d = jstr(lg.line[i], "dst");
        if (!is_cmd(lg.line[i], "submit_sm") || !d || jnum(lg.line[i], "seq", -1) < 0)
            continue;
        cJSON *v = cJSON_GetObjectItemCaseSensitive(seen, d);
        if (v)
            cJSON_SetNumberValue(v, v->valueint + 1);
        else
            cJSON_AddNumberToObject(seen, d, 1);
    }
    sim_log_free(&lg);
    PGresult *r = PQexec(pg.c, "SELECT ltrim(recipient, '+'), state, attempts FROM smsys_message");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    *never = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *dst = PQgetvalue(r, i, 0);
        int st = atoi(PQgetvalue(r, i, 1));
        cJSON *v = cJSON_GetObjectItemCaseSensitive(seen, dst);
        int subs = v ? v->valueint : 0;
        if (st == 5 && subs != 1)
            fail_msg("%s Delivered but submitted %d times", dst, subs);
        if (st == 21 && subs > 1)
            fail_msg("%s Unknown and submitted %d times", dst, subs);
        if (st != 5 && st != 21)
            fail_msg("%s ended in state %d", dst, st);
        if (st == 21 && subs == 0)
            (*never)++;
    }
    PQclear(r);
    cJSON_Delete(seen);
}

static void test_kill9_loses_none_sends_none_twice(void **state)
{
    (void)state;
    e2e_up(NULL);
    enqueue(2000, "");
    srand((unsigned)getpid());
    int kills = 0;
    for (int round = 0; round < 4; round++) {
        pid_t pid = start_smsysd("k");
        sleep_ms(20 + (unsigned)(rand() % 200));
        world_kill9(pid);
        kills++;
    }
    pid_t pid = start_smsysd("k");
    /* leases of the killed ones expire (8 s) and are reaped */
    assert_int_equal(
        wait_count("SELECT count(*) FROM smsys_message WHERE state IN (5, 21)", 2000, 60000), 0);
    assert_int_equal(WIFEXITED(world_stop(pid)), 1);
    int total = 0;
    /* nothing reached the SMSC twice */
    assert_int_equal(sim_max_per_dst(&sim, &total, 1), 1);
    long long unknown = q_int("SELECT count(*) FROM smsys_message WHERE state = 21");
    long long delivered = q_int("SELECT count(*) FROM smsys_message WHERE state = 5");
    fprintf(stderr, "kill -9 x%d: %lld delivered, %lld unknown outcome, %d submits\n", kills,
            delivered, unknown, total);
    /* every message was submitted at most once; the unsubmitted unknown
     * ones are the documented price of never sending twice */
    assert_true(total <= 2000 && total >= delivered);
    int never = 0;
    check_each_message(&never);
    fprintf(stderr, "  of the unknown, %d never reached the SMSC\n", never);
    /* Only what was marked as handed over can be Unknown: one batch (100)
     * in the connector and one marked ahead, per kill. The batches claimed
     * ahead and never marked came back and were sent (the old bound was
     * everything claimed: batch x pipeline = 400 per kill). */
    assert_true(unknown <= (long long)kills * 2 * 100);
    assert_int_equal(q_int("SELECT count(*) FROM smsys_message WHERE state = 21 AND "
                           "last_error NOT LIKE 'outcome unknown%'"),
                     0);

    e2e_down();
}

static void test_two_processes_send_once(void **state)
{
    (void)state;
    e2e_up(NULL);
    enqueue(2000, "");
    pid_t a = start_smsysd("a");
    pid_t b = start_smsysd("b");
    assert_int_equal(wait_count("SELECT count(*) FROM smsys_message WHERE state = 5", 2000, 60000),
                     0);
    assert_int_equal(world_stop(a), 0);
    assert_int_equal(world_stop(b), 0);
    int total = 0;
    assert_int_equal(sim_max_per_dst(&sim, &total, 1), 1);
    assert_int_equal(total, 2000);
    /* both took part */
    assert_true(
        q_int("SELECT count(DISTINCT split_part(lease_owner, ':', 1)) FROM smsys_message") >= 0);
    assert_true(sim_stat(&sim, "binds") >= 2);
    e2e_down();
}

static struct world_run ctl_run(const char *const *args)
{
    struct world_smsysd sd;
    write_conf("ctl", &sd);
    return world_ctl(sd.conf, args);
}

static void test_cli_send_through_service(void **state)
{
    (void)state;
    const char *flags[] = {"--dest-error", "*0000=0x0B", NULL};
    e2e_up(flags);
    pid_t pid = start_smsysd("s");
    struct world_run r = ctl_run((const char *[]){"send", "--to", "09121234567", "--text", "salam",
                                                  "--wait", "--timeout", "30", NULL});
    if (r.code != 0 || strstr(r.out, "Delivered") == NULL)
        fail_msg("send --wait: exit %d: %s", r.code, r.out);
    world_run_free(&r);
    r = ctl_run((const char *[]){"send", "--to", "+989120000000", "--text", "bad", "--wait",
                                 "--timeout", "30", NULL});
    if (r.code != 1 || strstr(r.out, "Failed") == NULL || strstr(r.out, "RINVDSTADR") == NULL)
        fail_msg("undeliverable: exit %d: %s", r.code, r.out);
    world_run_free(&r);
    assert_int_equal(q_int("SELECT count(*) FROM smsys_message WHERE state = 6 AND attempts = 1 "
                           "AND last_error LIKE '%RINVDSTADR%'"),
                     1);
    assert_int_equal(world_stop(pid), 0);
    e2e_down();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_send_through_service),
        cmocka_unit_test(test_two_processes_send_once),
        cmocka_unit_test(test_kill9_loses_none_sends_none_twice),
    };
    return cmocka_run_group_tests(tests, setup, world_teardown);
}
