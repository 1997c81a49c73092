/* test_sender_poll.c - delivery tracking by polling: an HTTP provider
 * without push (the Kavenegar connector against provsim) reaches
 * Delivered only through the tracker's status queries, at the account's
 * inbound interval. Also: the API key comes from `env:NAME`. */
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
#include <unistd.h>
#include <uv.h>

#include "smsys/connmgr.h"
#include "smsys/http_client.h"
#include "smsys/migrate.h"
#include "smsys/pg.h"
#include "smsys/queue.h"
#include "smsys/tracker.h"
#include "testutil.h"

#include "world.h"

#define ACC "6a0d2b6e-1f6c-4a7e-9a55-0d3f2a1b0004"

static struct world_pg pg;
static struct world_sim provsim;

#define exec_ok(q) world_sql_exec(pg.c, q)
#define q_int(q)   world_sql_val(pg.c, q)
/* Runs the loop until the count query returns want. */
#define wait_sql(loop, q, want, ms) world_loop_wait_sql(loop, pg.c, q, want, ms)

static void flag_cb(void *ud)
{
    (*(int *)ud)++;
}

static void http_closed_cb(void *ud)
{
    (*(int *)ud)++;
}

static void test_polling_reaches_delivered(void **state)
{
    (void)state;
    world_pg_open(&pg, "spoll");

    char cfgpath[128];
    snprintf(cfgpath, sizeof(cfgpath), "/tmp/smsys-spoll-%d.json", (int)getpid());
    FILE *f = fopen(cfgpath, "w");
    assert_non_null(f);
    fputs("{\"receipt_delay_ms\":200,\"outcome\":{\"delivered\":100,\"undelivered\":0}}", f);
    fclose(f);
    world_provsim_start(&provsim, NULL, (const char *const[]){"--config", cfgpath, NULL});
    int port = provsim.port;

    setenv("SMSYS_T_KN_KEY", "demo-kavenegar-key", 1);
    char q[768];
    snprintf(q, sizeof(q),
             "INSERT INTO smsys_account (id, name, provider, inbound_interval_s, config) VALUES "
             "('" ACC "', 'kn', 'kavenegar', 1, '{\"base_url\":\"http://127.0.0.1:%d/kavenegar\","
             "\"sender\":\"10004346\",\"apikey\":\"env:SMSYS_T_KN_KEY\"}')",
             port);
    exec_ok(q);
    exec_ok("INSERT INTO smsys_message (idem_key, account_id, recipient, body, segments, "
            "max_retries, state) SELECT 'p'||g, '" ACC "', '+98912'||lpad(g::text, 7, '0'), "
            "'poll '||g, 1, 3, 3 FROM generate_series(1, 30) g");

    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct pg_pool *pool;
    struct queue *qu;
    struct http_client *http;
    assert_int_equal(pg_pool_new(&loop, pg.conninfo, 3, &pool), 0);
    assert_int_equal(queue_new(&loop, pool, NULL, &qu), 0);
    assert_int_equal(http_client_new(&loop, NULL, &http), 0);
    struct connmgr_opts o = {.lease_ms = 10000, .poll_ms = 200, .idle_ms = 100};
    struct connmgr *m;
    assert_int_equal(connmgr_new(&loop, pool, qu, http, &o, &m), 0);
    assert_int_equal(
        wait_sql(&loop, "SELECT count(*) FROM smsys_message WHERE state = 4", 30, 20000), 0);
    /* the connector deduplicates on our id: the account says so now */
    assert_int_equal(q_int("SELECT count(*) FROM smsys_account WHERE idempotent"), 1);
    struct tracker_opts to = {.tick_ms = 100};
    struct tracker *tr;
    assert_int_equal(tracker_new(&loop, qu, pool, m, &to, &tr), 0);
    assert_int_equal(
        wait_sql(&loop, "SELECT count(*) FROM smsys_message WHERE state = 5", 30, 20000), 0);
    /* every answer is stored (a "sent" stage first, then "delivered"),
     * every one matched */
    assert_int_equal(q_int("SELECT count(DISTINCT message_id) FROM smsys_receipt"), 30);
    assert_int_equal(q_int("SELECT count(*) FROM smsys_receipt WHERE message_id IS NULL"), 0);
    assert_true(tracker_is_leader(tr));

    int done = 0;
    tracker_close(tr, flag_cb, &done);
    assert_int_equal(tu_run_until(&loop, &done, 10000), 0);
    done = 0;
    connmgr_close(m, flag_cb, &done);
    assert_int_equal(tu_run_until(&loop, &done, 10000), 0);
    done = 0;
    http_client_close(http, http_closed_cb, &done);
    assert_int_equal(tu_run_until(&loop, &done, 10000), 0);
    done = 0;
    pg_pool_close(pool, flag_cb, &done);
    assert_int_equal(tu_run_until(&loop, &done, 10000), 0);
    queue_free(qu);
    assert_int_equal(tu_loop_handles(&loop), 0);
    assert_int_equal(tu_loop_close(&loop), 0);
    world_sim_stop(&provsim);
    unlink(cfgpath);
    world_pg_close(&pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_polling_reaches_delivered),
    };
    return cmocka_run_group_tests(tests, NULL, world_teardown);
}
