/* test_sender.c - the provider side of the outbound pipeline against a real
 * PostgreSQL and the real SMSC simulator over TCP: connmgr opens the
 * account's connector (the production SMPP connector, connectors/smpp.c),
 * the sender claims, sends and records, receipts
 * come back through queue_apply_states, the tracker expires deadlines.
 * Every count of "sent once" is taken from smscsim's own log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "smsys/connmgr.h"
#include "smsys/pg.h"
#include "smsys/queue.h"
#include "smsys/sender.h"
#include "smsys/tracker.h"
#include "testutil.h"

#include "smpp_fixture.h"
#include "world.h"

#define ACC "6a0d2b6e-1f6c-4a7e-9a55-0d3f2a1b0001"

struct env {
    struct world_pg pg; /* fresh per test: name, conninfo, c */
    struct simproc sim;
    uv_loop_t loop;
    struct pg_pool *pool, *pool2;
    struct queue *q, *q2;
    struct connmgr *m, *m2;
};

static int g_seq;

static PGresult *sql(struct env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static PGresult *sql(struct env *e, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(e->pg.c, buf);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", buf, PQerrorMessage(e->pg.c));
    return r;
}

/* One number (-1 for no row or NULL), and waiting for one while the
 * loop runs. */
#define sql_int(e, q)            world_sql_val((e)->pg.c, q)
#define wait_sql(e, q, want, ms) world_loop_wait_sql(&(e)->loop, (e)->pg.c, q, want, ms)

static struct queue_opts g_qopts = {
    .backoff_base_ms = 100,
    .backoff_cap_ms = 200,
    .jitter_pct = 1,
    .pause_ms = 60000,
    .receipt_deadline_s = 3600,
    .leader_heartbeat_ms = 200,
};

static void env_up(struct env *e, const char *const *simflags, int max_retries)
{
    char name[16];
    snprintf(name, sizeof(name), "snd%d", ++g_seq);
    world_pg_open(&e->pg, name);
    sim_start(&e->sim, simflags);
    PQclear(sql(e,
                "INSERT INTO smsys_account (id, name, provider, max_retries, config) VALUES "
                "('" ACC "', 'acc', 'smpp', %d, '{\"host\":\"127.0.0.1\",\"port\":%d,"
                "\"sender\":\"1000\",\"window\":50,\"response_timeout_s\":2,"
                "\"reconnect_min_ms\":50,\"reconnect_max_ms\":200,\"throttle_pause_ms\":20}')",
                max_retries, e->sim.port));
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(pg_pool_new(&e->loop, e->pg.conninfo, 3, &e->pool), 0);
    assert_int_equal(queue_new(&e->loop, e->pool, &g_qopts, &e->q), 0);
}

static struct connmgr *mgr_start(struct env *e, struct pg_pool *pool, struct queue *q,
                                 const char *owner)
{
    struct connmgr_opts o = {
        .owner = owner,
        .batch = 50,
        .pipeline = 4,
        .lease_ms = 3000,
        .idle_ms = 100,
        .poll_ms = 200,
    };
    struct connmgr *m = NULL;
    assert_int_equal(connmgr_new(&e->loop, pool, q, NULL, &o, &m), 0);
    return m;
}

static void flag_cb(void *ud)
{
    (*(int *)ud)++;
}

static void close_all(struct env *e)
{
    int done = 0;
    if (e->m) {
        connmgr_close(e->m, flag_cb, &done);
        assert_int_equal(tu_run_until(&e->loop, &done, 10000), 0);
        e->m = NULL;
    }
    done = 0;
    if (e->m2) {
        connmgr_close(e->m2, flag_cb, &done);
        assert_int_equal(tu_run_until(&e->loop, &done, 10000), 0);
        e->m2 = NULL;
    }
    struct pg_pool *pools[2] = {e->pool, e->pool2};
    struct queue *qs[2] = {e->q, e->q2};
    for (int i = 0; i < 2; i++) {
        if (!pools[i])
            continue;
        done = 0;
        pg_pool_close(pools[i], flag_cb, &done);
        assert_int_equal(tu_run_until(&e->loop, &done, 10000), 0);
        queue_free(qs[i]);
    }
    assert_int_equal(tu_loop_handles(&e->loop), 0);
    assert_int_equal(tu_loop_close(&e->loop), 0);
    sim_stop(&e->sim);
    world_pg_close(&e->pg);
}

/* Inserts n messages to numbers 98912000xxxx (+ suffix), blocking. */
static void enqueue(struct env *e, int n, const char *suffix)
{
    PQclear(sql(e,
                "WITH s AS (SELECT g FROM generate_series(1,%d) g) "
                "INSERT INTO smsys_message (idem_key, account_id, recipient, body, segments, "
                "max_retries, state) "
                "SELECT 'k'||g||'%s', '" ACC "', '+98912' || lpad(g::text, 6, '0') || '%s', "
                "'hello '||g, 1, (SELECT max_retries FROM smsys_account), 3 FROM s",
                n, suffix, suffix));
    PQclear(sql(e, "NOTIFY smsys_queue, '" ACC "'"));
}

/* submit_sm lines in the simulator's log per destination. */
static int sim_submits(struct env *e, const char *dst, int accepted_only)
{
    struct simlog lg;
    sim_log_read(&e->sim, &lg);
    int n = 0;
    for (size_t i = 0; i < lg.n; i++) {
        if (!is_cmd(lg.line[i], "submit_sm"))
            continue;
        const char *d = jstr(lg.line[i], "dst");
        if (dst && (!d || strcmp(d, dst) != 0))
            continue;
        if (accepted_only && jnum(lg.line[i], "status", -1) != 0)
            continue;
        n++;
    }
    sim_log_free(&lg);
    return n;
}

static void test_sent_then_delivered(void **state)
{
    (void)state;
    struct env e = {0};
    env_up(&e, NULL, 3);
    enqueue(&e, 200, "");
    e.m = mgr_start(&e, e.pool, e.q, "t1");
    assert_int_equal(wait_sql(&e, "SELECT count(*) FROM smsys_message WHERE state = 5", 200, 20000),
                     0);
    assert_int_equal(sql_int(&e, "SELECT count(*) FROM smsys_message WHERE provider_id IS NULL "
                                 "OR sent_at IS NULL OR delivered_at IS NULL OR attempts <> 1"),
                     0);
    assert_int_equal(sql_int(&e, "SELECT count(*) FROM smsys_receipt WHERE message_id IS NULL"), 0);
    assert_int_equal(connmgr_count(e.m), 1);
    int total = 0;
    assert_int_equal(sim_max_per_dst(&e.sim, &total, 0), 1);
    assert_int_equal(total, 200);
    /* the connector's idempotency flag reached the account row */
    assert_int_equal(sql_int(&e, "SELECT count(*) FROM smsys_account WHERE NOT idempotent"), 1);
    close_all(&e);
}

static void test_temporary_retried_max_times(void **state)
{
    (void)state;
    struct env e = {0};
    /* ESME_RSYSERR: temporary */
    const char *flags[] = {"--dest-error", "*7777=0x08", NULL};
    env_up(&e, flags, 2);
    enqueue(&e, 3, "7777");
    enqueue(&e, 3, "");
    e.m = mgr_start(&e, e.pool, e.q, "t2");
    assert_int_equal(wait_sql(&e,
                              "SELECT count(*) FROM smsys_message WHERE state = 6 AND attempts = 3",
                              3, 20000),
                     0);
    assert_int_equal(wait_sql(&e, "SELECT count(*) FROM smsys_message WHERE state = 5", 3, 20000),
                     0);
    /* max_retries 2: the first try and two re-sends, no more */
    assert_int_equal(sim_submits(&e, "989120000017777", 0), 3);
    assert_int_equal(sql_int(&e, "SELECT count(*) FROM smsys_message WHERE state = 6 AND "
                                 "last_error LIKE 'retries used up%0x08%'"),
                     3);
    close_all(&e);
}

static void test_permanent_fails_at_once(void **state)
{
    (void)state;
    struct env e = {0};
    const char *flags[] = {"--dest-error", "*0000=0x0B", NULL};
    env_up(&e, flags, 3);
    enqueue(&e, 2, "0000");
    e.m = mgr_start(&e, e.pool, e.q, "t3");
    assert_int_equal(wait_sql(&e,
                              "SELECT count(*) FROM smsys_message WHERE state = 6 AND attempts = 1",
                              2, 20000),
                     0);
    assert_int_equal(sql_int(&e, "SELECT count(*) FROM smsys_message WHERE last_error LIKE "
                                 "'%RINVDSTADR (0x0B)%'"),
                     2);
    int total = 0;
    sim_max_per_dst(&e.sim, &total, 0);
    assert_int_equal(total, 2);
    close_all(&e);
}

static void test_throttling_loses_nothing(void **state)
{
    (void)state;
    struct env e = {0};
    const char *flags[] = {"--throttle-every", "4", NULL};
    env_up(&e, flags, 10);
    enqueue(&e, 100, "");
    e.m = mgr_start(&e, e.pool, e.q, "t4");
    assert_int_equal(wait_sql(&e, "SELECT count(*) FROM smsys_message WHERE state = 5", 100, 30000),
                     0);
    /* every number accepted exactly once; throttled submits were resent */
    assert_int_equal(sim_submits(&e, NULL, 1), 100);
    assert_true(sim_stat(&e.sim, "throttled") > 0);
    close_all(&e);
}

static void test_account_error_pauses(void **state)
{
    (void)state;
    struct env e = {0};
    /* ESME_RBINDFAIL on a submit: an account-wide refusal */
    const char *flags[] = {"--dest-error", "*5555=0x0D", NULL};
    env_up(&e, flags, 3);
    enqueue(&e, 1, "5555");
    e.m = mgr_start(&e, e.pool, e.q, "t5");
    assert_int_equal(
        wait_sql(&e, "SELECT count(*) FROM smsys_account WHERE paused_until > now()", 1, 20000), 0);
    enqueue(&e, 5, "");
    /* paused: nothing more is claimed; all messages wait in Queued */
    assert_int_equal(wait_sql(&e, "SELECT count(*) FROM smsys_message WHERE state = 3", 6, 5000),
                     0);
    int never = 0;
    tu_run_until(&e.loop, &never, 600); /* let the sender try its timer claims */
    assert_int_equal(sql_int(&e, "SELECT count(*) FROM smsys_message WHERE state = 3 AND "
                                 "attempts = 0"),
                     6);
    assert_int_equal(sim_submits(&e, NULL, 0), 1);
    close_all(&e);
}

static void test_cut_mid_window(void **state)
{
    (void)state;
    struct env e = {0};
    const char *flags[] = {"--drop-after", "30", NULL};
    env_up(&e, flags, 3);
    enqueue(&e, 100, "");
    e.m = mgr_start(&e, e.pool, e.q, "t6");
    assert_int_equal(
        wait_sql(&e, "SELECT count(*) FROM smsys_message WHERE state IN (5, 21)", 100, 30000), 0);
    long long unknown = sql_int(&e, "SELECT count(*) FROM smsys_message WHERE state = 21");
    assert_true(unknown >= 1);
    assert_true(unknown <= 50); /* at most one window */
    assert_int_equal(sql_int(&e, "SELECT count(*) FROM smsys_message WHERE state = 21 AND "
                                 "last_error LIKE 'outcome unknown%'"),
                     unknown);
    /* the unknown ones were not resent: no number reached the SMSC twice */
    int total = 0;
    assert_int_equal(sim_max_per_dst(&e.sim, &total, 0), 1);
    /* every Delivered one reached it once; an unknown one may have died in
     * the socket buffers (that is exactly why it is not resent) */
    assert_true(total >= 100 - unknown && total <= 100);
    close_all(&e);
}

/* Marked rows in flight: what a kill -9 now would leave Unknown. */
static const char MARKED_INFLIGHT[] =
    "SELECT count(*) FROM smsys_message m WHERE m.state = 20 AND EXISTS (SELECT 1 FROM "
    "smsys_handover h WHERE h.owner = m.lease_owner AND h.lease_until = m.lease_until "
    "AND m.id = ANY (h.ids))";

/* A throttled SMSC keeps batches waiting: the sender claims 4 batches of
 * 50 ahead but marks (exposes to a crash) at most the one in the connector
 * and the next; a drain gives the unmarked ones back to Queued with their
 * attempt, none becomes Unknown, none is sent twice. */
static void test_claim_ahead_unmarked_given_back(void **state)
{
    (void)state;
    struct env e = {0};
    const char *flags[] = {"--throttle-rate", "250", NULL};
    env_up(&e, flags, 10);
    enqueue(&e, 600, "");
    e.m = mgr_start(&e, e.pool, e.q, "t9");
    assert_int_equal(
        wait_sql(&e, "SELECT (count(*) >= 60)::int FROM smsys_message WHERE state IN (4, 5)", 1,
                 20000),
        0);
    long long most_marked = 0, most_inflight = 0;
    for (int i = 0; i < 10; i++) {
        int never = 0;
        tu_run_until(&e.loop, &never, 50);
        long long mk = sql_int(&e, MARKED_INFLIGHT);
        long long fl = sql_int(&e, "SELECT count(*) FROM smsys_message WHERE state = 20");
        most_marked = mk > most_marked ? mk : most_marked;
        most_inflight = fl > most_inflight ? fl : most_inflight;
    }
    fprintf(stderr, "in flight: at most %lld claimed, %lld of them marked\n", most_inflight,
            most_marked);
    assert_true(most_marked <= 2 * 50);       /* handover (1) + one marked ahead */
    assert_true(most_inflight > most_marked); /* and it did claim ahead */
    int drained = 0;
    connmgr_drain(e.m, flag_cb, &drained);
    assert_int_equal(tu_run_until(&e.loop, &drained, 20000), 0);
    assert_int_equal(sql_int(&e, "SELECT count(*) FROM smsys_message WHERE state IN (20, 21)"), 0);
    long long back = sql_int(&e, "SELECT count(*) FROM smsys_message WHERE state = 3 AND "
                                 "attempts = 0 AND last_error LIKE '%smsysd stopping%'");
    fprintf(stderr, "given back at drain: %lld\n", back);
    assert_true(back >= 1);
    long long sent = sql_int(&e, "SELECT count(*) FROM smsys_message WHERE state IN (4, 5)");
    assert_int_equal(sim_submits(&e, NULL, 1), sent); /* each accepted once */
    close_all(&e);
}

/* The hand-over mark fails (its function is missing): nothing is sent,
 * the batches go back to Queued without spending attempts, nothing is
 * Unknown; once the mark works again every message goes out once. */
static void test_mark_failure_sends_nothing(void **state)
{
    (void)state;
    struct env e = {0};
    env_up(&e, NULL, 3);
    PQclear(
        sql(&e, "ALTER FUNCTION smsys_q_handing(bigint[], text) RENAME TO smsys_q_handing_off"));
    enqueue(&e, 100, "");
    e.m = mgr_start(&e, e.pool, e.q, "t10");
    assert_int_equal(wait_sql(&e,
                              "SELECT (count(*) >= 50)::int FROM smsys_message WHERE state = 3 "
                              "AND last_error LIKE 'not handed over: the hand-over mark failed%'",
                              1, 20000),
                     0);
    assert_int_equal(sim_submits(&e, NULL, 0), 0);
    assert_int_equal(sql_int(&e, "SELECT count(*) FROM smsys_message WHERE state NOT IN (3, 20)"),
                     0);
    assert_true(sql_int(&e, "SELECT max(attempts) FROM smsys_message") <= 1);
    PQclear(
        sql(&e, "ALTER FUNCTION smsys_q_handing_off(bigint[], text) RENAME TO smsys_q_handing"));
    assert_int_equal(wait_sql(&e, "SELECT count(*) FROM smsys_message WHERE state = 5", 100, 30000),
                     0);
    int total = 0;
    assert_int_equal(sim_max_per_dst(&e.sim, &total, 0), 1);
    assert_int_equal(total, 100);
    /* attempts count real hand-overs only */
    assert_int_equal(sql_int(&e, "SELECT max(attempts) FROM smsys_message"), 1);
    close_all(&e);
}

static void test_two_instances_send_once(void **state)
{
    (void)state;
    struct env e = {0};
    env_up(&e, NULL, 3);
    assert_int_equal(pg_pool_new(&e.loop, e.pg.conninfo, 3, &e.pool2), 0);
    assert_int_equal(queue_new(&e.loop, e.pool2, &g_qopts, &e.q2), 0);
    enqueue(&e, 1000, "");
    e.m = mgr_start(&e, e.pool, e.q, "a");
    e.m2 = mgr_start(&e, e.pool2, e.q2, "b");
    assert_int_equal(
        wait_sql(&e, "SELECT count(*) FROM smsys_message WHERE state = 5", 1000, 30000), 0);
    int total = 0;
    assert_int_equal(sim_max_per_dst(&e.sim, &total, 0), 1);
    assert_int_equal(total, 1000);
    /* both took part: two binds */
    assert_true(sim_stat(&e.sim, "binds") >= 2);
    close_all(&e);
}

static void test_receipt_deadline(void **state)
{
    (void)state;
    struct env e = {0};
    const char *flags[] = {"--receipts", "none", NULL};
    env_up(&e, flags, 3);
    enqueue(&e, 5, "");
    e.m = mgr_start(&e, e.pool, e.q, "t8");
    assert_int_equal(wait_sql(&e, "SELECT count(*) FROM smsys_message WHERE state = 4", 5, 20000),
                     0);
    PQclear(sql(&e, "UPDATE smsys_message SET receipt_deadline = now() - interval '1 s'"));
    struct tracker_opts to = {.expire_ms = 100, .tick_ms = 50};
    struct tracker *tr = NULL;
    assert_int_equal(tracker_new(&e.loop, e.q, e.pool, e.m, &to, &tr), 0);
    assert_int_equal(wait_sql(&e,
                              "SELECT count(*) FROM smsys_message WHERE state = 4 AND no_receipt "
                              "AND last_error LIKE 'no delivery report%'",
                              5, 10000),
                     0);
    int done = 0;
    tracker_close(tr, flag_cb, &done);
    assert_int_equal(tu_run_until(&e.loop, &done, 10000), 0);
    close_all(&e);
}

static void rec_cb(int rc, int matched, int changed, const struct smsys_err *err, void *ud)
{
    (void)err;
    (void)changed;
    assert_int_equal(rc, 0);
    assert_int_equal(matched, 0);
    (*(int *)ud)++;
}

/* A receipt stored while its message's results transaction was open in
 * another process stays unmatched; the tracker's sweep applies it. */
static void test_receipt_race_swept(void **state)
{
    (void)state;
    struct env e = {0};
    env_up(&e, NULL, 3);
    e.m = mgr_start(&e, e.pool, e.q, "t10");
    struct conn_state st = {.provider_id = "777", .status = CONN_ST_DELIVERED};
    int done = 0;
    assert_int_equal(queue_apply_states(e.q, ACC, &st, 1, rec_cb, &done), 0);
    assert_int_equal(tu_run_until(&e.loop, &done, 10000), 0);
    /* the result that "raced" it: Sent with that id, committed afterwards */
    enqueue(&e, 1, "");
    PQclear(sql(&e, "UPDATE smsys_account SET enabled = false"));
    PQclear(sql(&e, "UPDATE smsys_message SET state = 4, provider_id = '777', "
                    "provider_id_canon = '777', sent_at = now()"));
    PQclear(sql(&e, "UPDATE smsys_receipt SET received_at = now() - interval '5 s'"));
    PQclear(sql(&e, "UPDATE smsys_account SET enabled = true"));
    struct tracker_opts to = {.tick_ms = 50, .sweep_ms = 100};
    struct tracker *tr = NULL;
    assert_int_equal(tracker_new(&e.loop, e.q, e.pool, e.m, &to, &tr), 0);
    assert_int_equal(wait_sql(&e, "SELECT count(*) FROM smsys_message WHERE state = 5", 1, 10000),
                     0);
    /* swept once: the old row is marked (just after the apply) and not
     * taken again */
    assert_int_equal(wait_sql(&e,
                              "SELECT count(*) FROM smsys_receipt WHERE message_id IS NULL "
                              "AND applied_at IS NULL",
                              0, 10000),
                     0);
    done = 0;
    tracker_close(tr, flag_cb, &done);
    assert_int_equal(tu_run_until(&e.loop, &done, 10000), 0);
    close_all(&e);
}

/* Inbound parts are stored before they are acknowledged; the completed
 * message goes to the inbound store (test_inbound_smpp covers the rest). */
static void test_mo_parts_durable_before_ack(void **state)
{
    (void)state;
    struct env e = {0};
    env_up(&e, NULL, 3);
    e.m = mgr_start(&e, e.pool, e.q, "t11");
    for (int i = 0; i < 200 && sim_stat(&e.sim, "bound") < 1; i++)
        wait_sql(&e, "SELECT 1", 1, 50);
    sim_http(&e.sim, "POST", "/mo",
             "{\"from\":\"989121234567\",\"to\":\"1000\",\"text\":\"part one, part two, "
             "part three of a long inbound text\",\"parts\":3,\"order\":[3,1,2]}");
    assert_int_equal(wait_sql(&e, "SELECT count(*) FROM smsys_mo_parts", 3, 10000), 0);
    /* the completed group becomes one inbound message, and is marked done */
    assert_int_equal(wait_sql(&e,
                              "SELECT count(*) FROM smsys_inbound WHERE account_id = '" ACC
                              "' AND provider_id LIKE 'mo-part-group:%'",
                              1, 10000),
                     0);
    assert_int_equal(wait_sql(&e,
                              "SELECT count(*) FROM smsys_mo_groups WHERE account_id = '" ACC
                              "' AND total = 3 AND done_at IS NOT NULL",
                              1, 10000),
                     0);
    for (int i = 0; i < 100 && sim_stat(&e.sim, "deliver_acked") < 3; i++)
        wait_sql(&e, "SELECT 1", 1, 50);
    assert_int_equal(sim_stat(&e.sim, "deliver_acked"), 3);
    close_all(&e);
}

static void test_config_change_reopens(void **state)
{
    (void)state;
    struct env e = {0};
    env_up(&e, NULL, 3);
    e.m = mgr_start(&e, e.pool, e.q, "t9");
    assert_int_equal(wait_sql(&e, "SELECT CASE WHEN 1=1 THEN 1 END", 1, 1000), 0);
    int binds = 0;
    for (int i = 0; i < 100 && (binds = (int)sim_stat(&e.sim, "binds")) < 1; i++)
        wait_sql(&e, "SELECT 1", 1, 50);
    assert_int_equal(binds, 1);
    PQclear(sql(&e, "UPDATE smsys_account SET config = config || '{\"window\": 5}'"));
    for (int i = 0; i < 200 && (binds = (int)sim_stat(&e.sim, "binds")) < 2; i++)
        wait_sql(&e, "SELECT 1", 1, 50);
    assert_int_equal(binds, 2);
    enqueue(&e, 10, "");
    assert_int_equal(wait_sql(&e, "SELECT count(*) FROM smsys_message WHERE state = 5", 10, 20000),
                     0);
    /* disabled: the connector closes */
    PQclear(sql(&e, "UPDATE smsys_account SET enabled = false"));
    for (int i = 0; i < 200 && connmgr_count(e.m) != 0; i++)
        wait_sql(&e, "SELECT 1", 1, 50);
    assert_int_equal(connmgr_count(e.m), 0);
    close_all(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sent_then_delivered),
        cmocka_unit_test(test_temporary_retried_max_times),
        cmocka_unit_test(test_permanent_fails_at_once),
        cmocka_unit_test(test_throttling_loses_nothing),
        cmocka_unit_test(test_account_error_pauses),
        cmocka_unit_test(test_cut_mid_window),
        cmocka_unit_test(test_two_instances_send_once),
        cmocka_unit_test(test_claim_ahead_unmarked_given_back),
        cmocka_unit_test(test_mark_failure_sends_nothing),
        cmocka_unit_test(test_receipt_deadline),
        cmocka_unit_test(test_config_change_reopens),
        cmocka_unit_test(test_receipt_race_swept),
        cmocka_unit_test(test_mo_parts_durable_before_ack),
    };
    return cmocka_run_group_tests(tests, NULL, world_teardown);
}
