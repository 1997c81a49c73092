/* Integration tests of smsysctl inbound / optout / rules: the built binary
 * against a private PostgreSQL database and a real dvemu. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/buf.h"
#include "../lib/world.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmpdir[256];
static char conf[320];
static char db_name[64], db_conninfo[1024];
static struct world_dv dv;

/* smsysctl --config conf ARGS... (NULL-terminated), waited for. */
#define ctl(...) world_ctl(conf, (const char *const[]){__VA_ARGS__})
#define expect   world_run_expect

static int setup(void **state)
{
    (void)state;
    world_mkdir("cli-inbound", tmpdir, sizeof(tmpdir));
    world_db_create("cliin", db_name, sizeof(db_name), db_conninfo, sizeof(db_conninfo));
    world_dv_start(&dv, NULL);
    char scope[128];
    snprintf(scope, sizeof(scope), "%s/.default", dv.root);
    snprintf(conf, sizeof(conf), "%s/smsys.conf", tmpdir);
    world_conf_write(
        conf, &(struct world_conf){.dv_root = dv.root, .scope = scope, .conninfo = db_conninfo});
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
    unsetenv("SMSYS_CONFIG");
    struct world_run r = ctl("db", "migrate", NULL);
    int ok = r.code == 0;
    world_run_free(&r);
    return ok ? 0 : -1;
}

static int teardown(void **state)
{
    world_dv_free(&dv);
    return world_teardown(state);
}

static void test_optout_commands(void **state)
{
    (void)state;
    expect(ctl("optout", "add", "۰۹۱۲۱۲۳۴۵۶۷", "--who", "admin", NULL), 0,
           "+989121234567 opted out", NULL);
    expect(ctl("optout", "list", "--json", NULL), 0, "\"number\":\t\"+989121234567\"", NULL);
    expect(ctl("optout", "export", NULL), 0, "+989121234567,true,cli,\"admin\",", NULL);
    expect(ctl("optout", "add", "12", NULL), 1, NULL, "12");
    expect(ctl("optout", "remove", "+989121234567", NULL), 0, "opted in", NULL);
    struct world_run r = ctl("optout", "list", NULL);
    assert_int_equal(r.code, 0);
    assert_null(strstr(r.out, "+989121234567"));
    world_run_free(&r);
    expect(ctl("optout", "list", "--all", NULL), 0, "+989121234567", NULL);

    /* a bad line rejects the whole file */
    char path[320];
    snprintf(path, sizeof(path), "%s/in.csv", tmpdir);
    world_write_file(path, "number,opted_out\n09120000011\nnot-a-number\n");
    expect(ctl("optout", "import", path, NULL), 1, NULL, "line 3");
    r = ctl("optout", "export", NULL);
    assert_null(strstr(r.out, "+989120000011"));
    world_run_free(&r);
    world_write_file(path,
                     "number,opted_out\n09120000011\n+989120000012,true\n09120000013,false\n");
    expect(ctl("optout", "import", path, NULL), 0, "imported 3 numbers", NULL);
    expect(ctl("optout", "export", NULL), 0, "+989120000013,false,import", NULL);
    expect(ctl("optout", "list", NULL), 0, "+989120000012", NULL);
}

static void test_inbound_and_rules(void **state)
{
    (void)state;
    expect(ctl("inbound", "list", NULL), 0, "id\treceived_at", NULL);
    expect(ctl("inbound", "show", "x", NULL), 2, NULL, "expected one inbound id");
    expect(ctl("inbound", "list", "--since", "yesterday-ish", NULL), 1, NULL, NULL);
    /* the built-in rules apply when Dynamics has none */
    expect(ctl("rules", "test", "لغو۱۱", NULL), 0, "built-in opt-out", NULL);
    expect(ctl("rules", "test", "شروع", "--json", NULL), 0, "\"action\":\t2", NULL);
    expect(ctl("rules", "test", "hello there", "--from", "09121234567", NULL), 0, "no rule fires",
           NULL);
    expect(ctl("rules", "test", NULL), 2, NULL, "expected the message text");
    expect(ctl("rules", "test", "stop", "--account", "nosuch", NULL), 1, NULL,
           "no provider account named 'nosuch'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_optout_commands),
        cmocka_unit_test(test_inbound_and_rules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
