/* test_world.c - the integration-test harness itself (test/lib/world.h):
 * what the other tests rely on without checking it. world_cleanup ends
 * every process and drops every database a failed test left; smsysctl's
 * output and exit code are captured; a config is written from its parts;
 * smsysd starts, answers /healthz, survives kill -9 and restarts on the
 * same port and database, and stops cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "world.h"

/* Whether a database of that name exists on the test server. */
static int db_exists(const char *name)
{
    PGconn *c = world_db_connect(tu_pg_conninfo());
    char sql[200];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_database WHERE datname = '%s'", name);
    long long n = world_sql_one(c, sql);
    PQfinish(c);
    return n == 1;
}

static void test_cleanup_ends_what_is_left(void **state)
{
    (void)state;
    struct world_sim sim;
    world_provsim_start(&sim, NULL, NULL);
    assert_int_equal(kill(sim.pid, 0), 0);
    struct world_pg *pg = world_pg_new("world", 1);
    assert_true(pg->migrations > 0);
    assert_int_equal(world_sql_one(pg->c, "SELECT count(*) FROM smsys_account"), 0);
    char dir[256];
    world_mkdir("world", dir, sizeof(dir));
    assert_int_equal(access(dir, F_OK), 0);
    char name[64];
    snprintf(name, sizeof(name), "%s", pg->name);
    assert_true(db_exists(name));

    /* as a failed test's teardown would: nothing stopped or dropped yet */
    world_cleanup();
    assert_int_equal(kill(sim.pid, 0), -1);
    assert_int_equal(errno, ESRCH); /* stopped and reaped */
    assert_false(db_exists(name));
    assert_int_equal(access(dir, F_OK), -1);
    PQfinish(pg->c);
    free(pg);
    world_cleanup(); /* a second time: nothing left to do */
}

static void test_ctl_captures_output_and_code(void **state)
{
    (void)state;
    struct world_run r = world_ctl(NULL, (const char *const[]){"--version", NULL});
    assert_int_equal(r.code, 0);
    assert_int_equal(r.sig, 0);
    assert_non_null(strstr(r.out, "smsysctl "));
    world_run_free(&r);
    r = world_ctl(NULL, (const char *const[]){"frobnicate", NULL});
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "unknown command 'frobnicate'"));
    assert_null(strstr(r.out, "frobnicate"));
    world_run_free(&r);
    world_run_expect(world_ctl(NULL, (const char *const[]){"help", NULL}), 0, "Commands:", NULL);
}

static void test_conf_from_parts(void **state)
{
    (void)state;
    char *t = world_conf_text(&(struct world_conf){.dv_root = "http://127.0.0.1:9",
                                                   .client_secret = "env:X",
                                                   .dv_extra = "poll_interval_ms = 5\n",
                                                   .conninfo = "dbname=x",
                                                   .http_port = 1234,
                                                   .more = "[log]\nlevel = info\n"});
    assert_string_equal(t, "[dataverse]\n"
                           "url = http://127.0.0.1:9\n"
                           "token_url = http://127.0.0.1:9/t/oauth2/v2.0/token\n"
                           "client_id = smsys-demo\n"
                           "client_secret = env:X\n"
                           "scope = http://127.0.0.1/.default\n"
                           "poll_interval_ms = 5\n"
                           "[postgres]\n"
                           "conninfo = \"dbname=x\"\n"
                           "[log]\n"
                           "level = info\n"
                           "[http]\n"
                           "listen = 127.0.0.1:1234\n");
    free(t);
}

static void test_smsysd_kill9_and_restart(void **state)
{
    (void)state;
    char dir[256];
    world_mkdir("world-sd", dir, sizeof(dir));
    struct world_pg *pg = world_pg_new("worldsd", 0);
    struct world_dv dv = {0};
    world_dv_start(&dv, NULL);
    struct world_smsysd sd;
    world_smsysd_init(&sd, dir, "a");
    world_conf_write(sd.conf, &(struct world_conf){.dv_root = dv.root,
                                                   .conninfo = pg->conninfo,
                                                   .http_port = sd.http_port});
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
    unsetenv("SMSYS_CONFIG");
    world_smsysd_start(&sd, 20000);
    if (world_smsysd_healthy(&sd, 20000) != 0) {
        world_smsysd_print_log(&sd, 3000);
        fail_msg("smsysd not healthy");
    }
    /* it migrated the empty database */
    assert_true(world_sql_one(pg->c, "SELECT count(*) FROM smsys_schema_migrations") > 0);
    pid_t first = sd.pid;
    world_smsysd_kill9(&sd);
    assert_int_equal(sd.pid, 0);
    assert_int_equal(kill(first, 0), -1);
    world_smsysd_start(&sd, 20000); /* same port, same database */
    assert_int_equal(world_smsysd_healthy(&sd, 20000), 0);
    world_smsysd_stop_clean(&sd, (const char *const[]){"smsys-demo-secret", NULL});
    assert_int_equal(world_smsysd_stop(&sd), -1); /* not running any more */
    world_dv_stop(&dv);
    world_dv_free(&dv);
    world_pg_close(pg);
    free(pg);
    world_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cleanup_ends_what_is_left),
        cmocka_unit_test(test_ctl_captures_output_and_code),
        cmocka_unit_test(test_conf_from_parts),
        cmocka_unit_test(test_smsysd_kill9_and_restart),
    };
    return cmocka_run_group_tests(tests, NULL, world_teardown);
}
