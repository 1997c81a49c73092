/* test_sender_cli.c - smsysctl send / queue stats / queue retry as
 * processes against a real PostgreSQL; `send --wait` is answered by the
 * connector manager and sender running in this test's loop against the
 * real smscsim, so the whole operator path is exercised. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "smsys/buf.h"
#include "smsys/connmgr.h"
#include "smsys/migrate.h"
#include "smsys/pg.h"
#include "smsys/queue.h"
#include "testutil.h"

#include "smpp_fixture.h"
#include "../lib/world.h"

#define ACC "6a0d2b6e-1f6c-4a7e-9a55-0d3f2a1b0002"

static char tmpdir[256], conf[320], dbname[128], conninfo[1024];
static PGconn *side;

static void exec_ok(const char *q)
{
    world_sql_exec(side, q);
}

static long long q_int(const char *q)
{
    return world_sql_int(side, q);
}

static int setup(void **state)
{
    (void)state;
    world_mkdir("scli", tmpdir, sizeof(tmpdir));
    world_db_create("scli", dbname, sizeof(dbname), conninfo, sizeof(conninfo));
    world_db_migrate(conninfo);
    side = world_db_connect(conninfo);
    snprintf(conf, sizeof(conf), "%s/t.conf", tmpdir);
    /* Dynamics is never called by these commands. */
    world_conf_write(conf,
                     &(struct world_conf){.dv_root = "https://contoso.crm4.dynamics.com",
                                          .client_id = "app",
                                          .client_secret = "x",
                                          .scope = "https://contoso.crm4.dynamics.com/.default",
                                          .conninfo = conninfo});
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
    unsetenv("SMSYS_CONFIG");
    return 0;
}

static int teardown(void **state)
{
    PQfinish(side);
    return world_teardown(state);
}

/* smsysctl --config conf ARGS...: started, or run to its end. */
#define start(...) world_ctl_start(conf, __VA_ARGS__)
#define ctl(...)   world_ctl(conf, __VA_ARGS__)
#define expect     world_run_expect

static void test_usage(void **state)
{
    (void)state;
    expect(ctl((const char *[]){"send", "--help", NULL}), 0, "--to NUMBER", NULL);
    expect(ctl((const char *[]){"send", "--to", "09121234567", NULL}), 2, NULL, "required");
    expect(ctl((const char *[]){"send", "--to", "abc", "--text", "x", NULL}), 2, NULL, "--to");
    expect(ctl((const char *[]){"queue", "retry", NULL}), 2, NULL, "--failed");
    expect(ctl((const char *[]){"queue", "retry", "--failed", "--since", "yesterday", NULL}), 2,
           NULL, "--since");
    expect(ctl((const char *[]){"queue", "retry", "--help", NULL}), 0, "--failed", NULL);
}

static void test_send_stats_retry(void **state)
{
    (void)state;
    exec_ok("DELETE FROM smsys_writeback");
    exec_ok("DELETE FROM smsys_message");
    exec_ok("DELETE FROM smsys_account");
    expect(ctl((const char *[]){"send", "--to", "09121234567", "--text", "hi", NULL}), 1, NULL,
           "no enabled account");
    exec_ok("INSERT INTO smsys_account (id, name, provider, config) VALUES ('" ACC
            "', 'main', 'none', '{}')");
    struct world_run r = ctl((const char *[]){"send", "--to", "09121234567", "--text", "hi there",
                                              "--account", "main", NULL});
    assert_int_equal(r.code, 0);
    long long id = atoll(r.out);
    assert_true(id > 0);
    world_run_free(&r);
    char q[256];
    snprintf(q, sizeof(q),
             "SELECT count(*) FROM smsys_message WHERE id = %lld AND state = 3 AND recipient = "
             "'+989121234567' AND body = 'hi there' AND account_id = '" ACC "'",
             id);
    assert_int_equal(q_int(q), 1);
    expect(ctl((const char *[]){"queue", "stats", "--json", NULL}), 0, ACC, NULL);
    expect(ctl((const char *[]){"queue", "stats", NULL}), 0, "queued", NULL);
    expect(ctl((const char *[]){"send", "--to", "09121234567", "--text", "x", "--account", "nosuch",
                                NULL}),
           1, NULL, "no account named");

    /* Failed a day ago and just now: --since 1h takes only the recent one */
    exec_ok("UPDATE smsys_message SET state = 6, attempts = 4, final_at = now(), "
            "last_error = 'x'");
    r = ctl((const char *[]){"send", "--to", "09121234568", "--text", "old", NULL});
    assert_int_equal(r.code, 0);
    world_run_free(&r);
    exec_ok("UPDATE smsys_message SET state = 6, final_at = now() - interval '1 day' "
            "WHERE body = 'old'");
    expect(ctl((const char *[]){"queue", "retry", "--failed", "--since", "1h", NULL}), 0,
           "1 message back in the queue", NULL);
    snprintf(q, sizeof(q),
             "SELECT count(*) FROM smsys_message WHERE id = %lld AND state = 3 AND "
             "attempts = 0",
             id);
    assert_int_equal(q_int(q), 1);
    expect(ctl((const char *[]){"queue", "retry", "--failed", "--json", NULL}), 0,
           "{\"requeued\":1}", NULL);
    exec_ok("DELETE FROM smsys_message");
    exec_ok("DELETE FROM smsys_writeback");
}

struct child {
    struct world_run *r;
    int done, st;
};

static void reap_cb(uv_timer_t *t)
{
    struct child *c = t->data;
    if (waitpid(c->r->pid, &c->st, WNOHANG) == c->r->pid) {
        c->done = 1;
        uv_timer_stop(t);
    }
}

/* submit_sm lines in smscsim's log for one destination. */
static int sim_submits_to(struct simproc *sp, const char *dst)
{
    struct simlog lg;
    sim_log_read(sp, &lg);
    int n = 0;
    for (size_t i = 0; i < lg.n; i++) {
        const char *d = jstr(lg.line[i], "dst");
        if (is_cmd(lg.line[i], "submit_sm") && d && strcmp(d, dst) == 0)
            n++;
    }
    sim_log_free(&lg);
    return n;
}

static void flag_cb(void *ud)
{
    (*(int *)ud)++;
}

static void test_send_wait_delivered(void **state)
{
    (void)state;
    struct simproc sim;
    sim_start(&sim, NULL);
    exec_ok("DELETE FROM smsys_writeback");
    exec_ok("DELETE FROM smsys_message");
    exec_ok("DELETE FROM smsys_account");
    char sqlbuf[512];
    snprintf(sqlbuf, sizeof(sqlbuf),
             "INSERT INTO smsys_account (id, name, provider, config) VALUES ('" ACC
             "', 'main', 'smpp', '{\"host\":\"127.0.0.1\",\"port\":%d,"
             "\"sender\":\"1000\"}')",
             sim.port);
    exec_ok(sqlbuf);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct pg_pool *pool;
    struct queue *q;
    assert_int_equal(pg_pool_new(&loop, conninfo, 2, &pool), 0);
    assert_int_equal(queue_new(&loop, pool, NULL, &q), 0);
    struct connmgr_opts o = {.lease_ms = 5000, .poll_ms = 200};
    struct connmgr *m;
    assert_int_equal(connmgr_new(&loop, pool, q, NULL, &o, &m), 0);

    struct world_run r = start((const char *[]){"send", "--to", "+989121112233", "--text",
                                                "wait for me", "--wait", "--timeout", "30", NULL});
    struct child c = {&r, 0, 0};
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &c;
    uv_timer_start(&t, reap_cb, 20, 20);
    assert_int_equal(tu_run_until(&loop, &c.done, 40000), 0);
    uv_close((uv_handle_t *)&t, NULL);
    world_ctl_reaped(&r, c.st);
    expect(r, 0, "Delivered", NULL);
    assert_int_equal(sim_submits_to(&sim, "989121112233"), 1);
    assert_int_equal(sim_stat(&sim, "accepted"), 1);
    struct simlog lg;
    sim_log_read(&sim, &lg);
    assert_true(lg.n > 0 && jnum(lg.line[0], "conn", 0) >= 0);
    sim_log_free(&lg);

    int done = 0;
    connmgr_close(m, flag_cb, &done);
    assert_int_equal(tu_run_until(&loop, &done, 10000), 0);
    done = 0;
    pg_pool_close(pool, flag_cb, &done);
    assert_int_equal(tu_run_until(&loop, &done, 10000), 0);
    queue_free(q);
    assert_int_equal(tu_loop_handles(&loop), 0);
    assert_int_equal(tu_loop_close(&loop), 0);
    sim_stop(&sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_send_stats_retry),
        cmocka_unit_test(test_send_wait_delivered),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
