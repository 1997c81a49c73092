/* Integration tests of smsysctl: runs the built binary (fork/exec, no
 * shell) and checks exit codes and output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/buf.h"
#include "smsys/pg.h"
#include "smsys/queue.h"
#include "smsys/util.h"
#include "../lib/testutil.h"
#include "../lib/world.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];
static char good_conf[320], bad_conf[320];
static char db_name[64], db_conninfo[1024];
static struct world_dv emu; /* the Dataverse emulator doctor signs in to */

/* good_fmt with the test database's conninfo; a password is appended to
 * prove dumps mask it (the test server does not ask for one). */
static char good_text[2048];
static const char good_fmt[] = "[dataverse]\n"
                               "url = http://127.0.0.1:%d\n"
                               "token_url = http://127.0.0.1:%d/t/oauth2/v2.0/token\n"
                               "client_id = app\n"
                               "client_secret = env:SMSYS_T_CLI_SECRET\n"
                               "scope = http://127.0.0.1:%d/.default\n"
                               "password = LITERAL-PW-9\n"
                               "username = u\n"
                               "[postgres]\n"
                               "conninfo = \"%s password=PG-PW-7\"\n";

static int setup(void **state)
{
    (void)state;
    world_mkdir("cli", tmpdir, sizeof(tmpdir));
    world_db_create("cli", db_name, sizeof(db_name), db_conninfo, sizeof(db_conninfo));
    const char *dv_args[] = {"--client", "app:ENV-CS-SECRET-3", NULL};
    world_dv_start(&emu, dv_args);
    snprintf(good_text, sizeof(good_text), good_fmt, emu.port, emu.port, emu.port, db_conninfo);
    /* build/san/bin/.. is not the source tree: name the migrations. */
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
    snprintf(good_conf, sizeof(good_conf), "%s/good.conf", tmpdir);
    snprintf(bad_conf, sizeof(bad_conf), "%s/bad.conf", tmpdir);
    world_write_file(good_conf, good_text);
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s[http]\nlisten = 127.0.0.1:http\n[log]\nlevel = chatty\n", good_text);
    world_write_file(bad_conf, b.data);
    buf_free(&b);
    setenv("SMSYS_T_CLI_SECRET", "ENV-CS-SECRET-3", 1);
    unsetenv("SMSYS_CONFIG");
    return 0;
}

static int teardown(void **state)
{
    world_dv_free(&emu);
    return world_teardown(state);
}

/* Runs smsysctl with the NULL-terminated args (no implicit --config). */
#define ctl(...) world_ctl(NULL, (const char *const[]){__VA_ARGS__})
#define expect   world_run_expect
#define run_free world_run_free

static void test_help_everywhere(void **state)
{
    (void)state;
    expect(ctl("--help", NULL), 0, "usage: smsysctl", NULL);
    expect(ctl("help", NULL), 0, "Commands:", NULL);
    expect(ctl("help", "config", NULL), 0, "Subcommands:", NULL);
    expect(ctl("help", "config", "dump", NULL), 0, "Secrets are shown as ***", NULL);
    expect(ctl("config", "--help", NULL), 0, "check", NULL);
    expect(ctl("db", "--help", NULL), 0, "migrate", NULL);
    const char *cmds[][2] = {{"config", "check"}, {"config", "keys"}, {"config", "dump"},
                             {"doctor", NULL},    {"db", "migrate"},  {"queue", "stats"},
                             {"version", NULL},   {"text", "info"}};
    for (size_t i = 0; i < ARRAY_LEN(cmds); i++) {
        struct world_run r = cmds[i][1] ? ctl(cmds[i][0], cmds[i][1], "--help", NULL)
                                        : ctl(cmds[i][0], "--help", NULL);
        if (r.code != 0 || strstr(r.out, "usage: smsysctl") == NULL)
            fail_msg("%s %s --help: exit %d: %s", cmds[i][0], cmds[i][1] ? cmds[i][1] : "", r.code,
                     r.out);
        run_free(&r);
    }
    /* --help wins even over a config that does not exist. */
    expect(ctl("--config", "/nonexistent", "doctor", "-h", NULL), 0, "usage:", NULL);
    expect(ctl("--version", NULL), 0, "smsysctl ", NULL);
    expect(ctl("version", NULL), 0, "smsysctl ", NULL);
    expect(ctl("version", "--json", NULL), 0, "\"version\"", NULL);
}

static void test_usage_errors(void **state)
{
    (void)state;
    expect(ctl(NULL), 2, NULL, "usage: smsysctl");
    expect(ctl("frobnicate", NULL), 2, NULL, "unknown command 'frobnicate'");
    expect(ctl("config", NULL), 2, NULL, "Subcommands:");
    expect(ctl("config", "nope", NULL), 2, NULL, "unknown subcommand 'config nope'");
    expect(ctl("config", "check", "a", "b", NULL), 2, NULL, "too many arguments");
    expect(ctl("config", "check", "--strict", NULL), 2, NULL, "unknown option '--strict'");
    expect(ctl("config", "keys", "--markdown", "--json", NULL), 2, NULL, "exclude each other");
    expect(ctl("db", "migrate", "--bogus", NULL), 2, NULL, "unexpected argument '--bogus'");
    expect(ctl("--json", "db", "migrate", NULL), 2, NULL, "--json is not supported");
    expect(ctl("--config", NULL), 2, NULL, "--config needs a FILE");
    expect(ctl("--bogus", "doctor", NULL), 2, NULL, "unknown option '--bogus'");
    expect(ctl("version", "extra", NULL), 2, NULL, "unexpected argument 'extra'");
    expect(ctl("help", "nothing", NULL), 2, NULL, "unknown command 'nothing'");
}

static void test_config_check(void **state)
{
    (void)state;
    expect(ctl("config", "check", good_conf, NULL), 0, ": ok", NULL);
    expect(ctl("--config", good_conf, "config", "check", NULL), 0, ": ok", NULL);
    /* Both errors, each with its line, then the verdict. */
    struct world_run r = ctl("config", "check", bad_conf, NULL);
    char l12[400], l14[400];
    snprintf(l12, sizeof(l12), "%s:12: http.listen", bad_conf);
    snprintf(l14, sizeof(l14), "%s:14: log.level", bad_conf);
    if (r.code != 1 || !strstr(r.err, l12) || !strstr(r.err, l14) || !strstr(r.out, "2 errors"))
        fail_msg("exit %d\nout: %s\nerr: %s", r.code, r.out, r.err);
    run_free(&r);
    /* --json carries the same, machine-readable. */
    r = ctl("--json", "config", "check", bad_conf, NULL);
    assert_int_equal(r.code, 1);
    cJSON *j = cJSON_Parse(r.out);
    assert_non_null(j);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "valid")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "errors")), 2);
    cJSON_Delete(j);
    run_free(&r);
    expect(ctl("config", "check", "/nonexistent/smsys.conf", NULL), 1, NULL, "cannot open");
    /* An unset env: reference is a failure naming the variable. */
    unsetenv("SMSYS_T_CLI_SECRET");
    expect(ctl("config", "check", good_conf, NULL), 1, NULL, "'SMSYS_T_CLI_SECRET' is not set");
    setenv("SMSYS_T_CLI_SECRET", "ENV-CS-SECRET-3", 1);
    /* $SMSYS_CONFIG is the default file. */
    setenv("SMSYS_CONFIG", bad_conf, 1);
    expect(ctl("config", "check", NULL), 1, NULL, "log.level");
    unsetenv("SMSYS_CONFIG");
}

static void test_config_dump_masks(void **state)
{
    (void)state;
    const char *secrets[] = {"ENV-CS-SECRET-3", "LITERAL-PW-9", "PG-PW-7"};
    for (int json = 0; json < 2; json++) {
        struct world_run r = json ? ctl("--config", good_conf, "config", "dump", "--json", NULL)
                                  : ctl("--config", good_conf, "config", "dump", NULL);
        assert_int_equal(r.code, 0);
        for (size_t i = 0; i < ARRAY_LEN(secrets); i++)
            if (strstr(r.out, secrets[i]) || strstr(r.err, secrets[i]))
                fail_msg("secret %s in dump:\n%s", secrets[i], r.out);
        assert_non_null(strstr(r.out, "***"));
        assert_non_null(strstr(r.out, "http://127.0.0.1:"));
        if (json) {
            cJSON *j = cJSON_Parse(r.out);
            assert_non_null(j);
            cJSON *dv = cJSON_GetObjectItem(j, "dataverse");
            assert_string_equal(cJSON_GetObjectItem(dv, "client_secret")->valuestring, "***");
            cJSON_Delete(j);
        }
        run_free(&r);
    }
    expect(ctl("--config", bad_conf, "config", "dump", NULL), 1, NULL, "bad.conf:12:");
}

static void test_config_keys(void **state)
{
    (void)state;
    struct world_run r = ctl("config", "keys", NULL);
    assert_int_equal(r.code, 0);
    const char *keys[] = {"dataverse.url",
                          "dataverse.client_secret",
                          "dataverse.resource",
                          "dataverse.insecure_skip_verify",
                          "service.grace_period_ms",
                          "postgres.pool_size",
                          "http.max_body_bytes",
                          "sending.quiet_hours",
                          "log.format"};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (strstr(r.out, keys[i]) == NULL)
            fail_msg("config keys lacks %s", keys[i]);
    run_free(&r);
    r = ctl("config", "keys", "--json", NULL);
    assert_int_equal(r.code, 0);
    cJSON *j = cJSON_Parse(r.out);
    assert_true(cJSON_IsArray(j));
    assert_true(cJSON_GetArraySize(j) >= 25);
    cJSON_Delete(j);
    run_free(&r);
    expect(ctl("config", "keys", "--markdown", NULL), 0, "### [dataverse]", NULL);
}

static void test_doctor(void **state)
{
    (void)state;
    struct world_run r = ctl("--config", good_conf, "doctor", NULL);
    assert_int_equal(r.code, 0);
    assert_true(strncmp(r.out, "ok    config ", 13) == 0);
    assert_non_null(strstr(r.out, "skip  providers: credentials and balance"));
    assert_non_null(strstr(r.out, "\nok    postgresql: connected to database smsys_t_cli_"));
    assert_non_null(strstr(r.out, "\nok    postgresql: schema version "));
    assert_non_null(strstr(r.out, "\nok    dynamics: signed in to http://127.0.0.1:"));
    run_free(&r);

    /* A refused secret: FAIL with the token endpoint's answer and what to check. */
    setenv("SMSYS_T_CLI_SECRET", "not-the-secret", 1);
    r = ctl("--config", good_conf, "doctor", NULL);
    setenv("SMSYS_T_CLI_SECRET", "ENV-CS-SECRET-3", 1);
    if (r.code != 1 || !strstr(r.out, "FAIL  dynamics: sign in to http://127.0.0.1:") ||
        !strstr(r.out, "client_secret") || strstr(r.out, "not-the-secret"))
        fail_msg("exit %d: %s", r.code, r.out);
    run_free(&r);

    /* PostgreSQL down: a FAIL with the libpq reason, and the checks that
     * need it are skipped. */
    char down[400], text[2600];
    snprintf(down, sizeof(down), "%s/down.conf", tmpdir);
    snprintf(text, sizeof(text), "%s[postgres]\nconninfo = host=127.0.0.1 port=%d dbname=x\n",
             good_text, tu_free_port());
    /* Replace, not add: the key may appear once. */
    char *dup = strstr(text, "[postgres]\nconninfo = ");
    assert_non_null(dup);
    memmove(dup, strchr(dup + 11, '\n') + 1, strlen(strchr(dup + 11, '\n') + 1) + 1);
    world_write_file(down, text);
    r = ctl("--config", down, "doctor", NULL);
    if (r.code != 1 || !strstr(r.out, "FAIL  postgresql: connect") ||
        !strstr(r.out, "Connection refused") ||
        !strstr(r.out, "skip  postgresql: schema version matches this build  — needs PostgreSQL"))
        fail_msg("exit %d: %s", r.code, r.out);
    run_free(&r);

    r = ctl("--config", bad_conf, "doctor", NULL);
    assert_int_equal(r.code, 1);
    assert_true(strncmp(r.out, "FAIL  config ", 13) == 0);
    assert_non_null(strstr(r.out, "— "));
    assert_non_null(strstr(r.out, "smsysctl config check"));
    run_free(&r);
    r = ctl("--config", bad_conf, "doctor", "--json", NULL);
    assert_int_equal(r.code, 1);
    cJSON *j = cJSON_Parse(r.out);
    assert_non_null(j);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "ok")));
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "checks"), 0);
    assert_string_equal(cJSON_GetObjectItem(first, "status")->valuestring, "FAIL");
    cJSON_Delete(j);
    run_free(&r);
}

static void test_db_migrate(void **state)
{
    (void)state;
    /* A bad config fails before any database work. */
    expect(ctl("--config", bad_conf, "db", "migrate", "--dry-run", NULL), 1, NULL, "bad.conf:12:");
    /* A fresh database: dry run lists, changes nothing; then apply; then
     * nothing is left. */
    expect(ctl("--config", good_conf, "db", "migrate", "--dry-run", NULL), 0,
           "pending (nothing changed: --dry-run)", "migration pending version=1");
    expect(ctl("--config", good_conf, "doctor", NULL), 1,
           "FAIL  postgresql: schema version 0, this build needs", NULL);
    expect(ctl("--config", good_conf, "db", "migrate", NULL), 0, "applied",
           "migration applied version=1");
    expect(ctl("--config", good_conf, "db", "migrate", NULL), 0, "database schema is up to date",
           NULL);
    expect(ctl("--config", good_conf, "db", "migrate", "--dry-run", NULL), 0,
           "database schema is up to date", NULL);
    /* Migrations that cannot be found are a failure naming where it looked. */
    setenv("SMSYS_SQL_DIR", "/nonexistent/sql", 1);
    expect(ctl("--config", good_conf, "db", "migrate", NULL), 1, NULL, "/nonexistent/sql");
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
}

/* The CLI counts exactly as sending does: boundary lengths from the text
 * module's rules, Persian as UCS-2, invalid UTF-8 refused. */
static void test_text_info(void **state)
{
    (void)state;
    char gsm161[162];
    memset(gsm161, 'a', 161);
    gsm161[161] = '\0';
    expect(ctl("text", "info", "--json", gsm161, NULL), 0, "\"segments\":2", NULL);
    expect(ctl("text", "info", "--json", gsm161 + 1, NULL), 0, "\"segments\":1", NULL);
    /* 71 Persian letters: one over the single UCS-2 limit. */
    char fa[71 * 2 + 1];
    for (int i = 0; i < 71; i++)
        memcpy(fa + 2 * i, "\xd8\xb3", 2); /* U+0633 */
    fa[142] = '\0';
    expect(ctl("text", "info", "--json", fa, NULL), 0,
           "\"encoding\":\"UCS-2\",\"data_coding\":8,\"chars\":71", NULL);
    expect(ctl("text", "info", fa, NULL), 0, "segments    2", NULL);
    /* An extension character costs two septets. */
    expect(ctl("text", "info", "--json", "{}", NULL), 0, "\"units\":4", NULL);
    expect(ctl("text", "info", "--ucs2", "--json", "hi", NULL), 0, "\"encoding\":\"UCS-2\"", NULL);
    expect(ctl("text", "info", "a\xff", NULL), 1, NULL, "invalid UTF-8 at byte 1");
    expect(ctl("text", "info", NULL), 2, NULL, "missing TEXT");
    expect(ctl("text", "info", "--smsc-default", "2", "x", NULL), 2, NULL, "--smsc-default");
}

static void enqueued_cb(int rc, const struct queue_enq_res *res, size_t n,
                        const struct smsys_err *err, void *ud)
{
    if (rc != 0)
        fail_msg("enqueue: %s", err ? err->detail : "?");
    assert_int_equal(n, 3);
    *(int *)ud = 1;
}

static void pool_closed_cb(void *ud)
{
    *(int *)ud = 1;
}

/* Puts three messages in the test database's queue with the queue module
 * itself, so the CLI reads rows the service would have written. */
static void enqueue_three(void)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct pg_pool *pool;
    struct queue *q;
    assert_int_equal(pg_pool_new(&loop, db_conninfo, 1, &pool), 0);
    assert_int_equal(queue_new(&loop, pool, NULL, &q), 0);
    static const char acc_a[] = "11111111-1111-4111-8111-111111111111";
    static const char acc_b[] = "22222222-2222-4222-8222-222222222222";
    /* Accounts are mirrored from Dynamics by the service; insert two. */
    PGconn *c = PQconnectdb(db_conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *res = PQexec(c, "INSERT INTO smsys_account (id, name, provider) VALUES "
                              "('11111111-1111-4111-8111-111111111111', 'a', 'kavenegar'), "
                              "('22222222-2222-4222-8222-222222222222', 'b', 'smpp')");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("insert accounts: %s", PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
    struct queue_new m[3] = {
        {.idem_key = "cli-1", .account_id = acc_a, .recipient = "+989121234567", .body = "a"},
        {.idem_key = "cli-2", .account_id = acc_a, .recipient = "+989121234568", .body = "b"},
        {.idem_key = "cli-3", .account_id = acc_b, .recipient = "+989121234569", .body = "c"},
    };
    for (int i = 0; i < 3; i++) {
        m[i].segments = 1;
        m[i].state = QUEUE_QUEUED;
    }
    int done = 0;
    assert_int_equal(queue_enqueue(q, m, 3, enqueued_cb, &done), 0);
    assert_int_equal(tu_run_until(&loop, &done, 10000), 0);
    int closed = 0;
    pg_pool_close(pool, pool_closed_cb, &closed);
    assert_int_equal(tu_run_until(&loop, &closed, 10000), 0);
    queue_free(q);
    assert_int_equal(tu_loop_handles(&loop), 0);
    assert_int_equal(tu_loop_close(&loop), 0);
}

static void test_queue_stats(void **state)
{
    (void)state;
    expect(ctl("--config", good_conf, "queue", "stats", NULL), 0, "the queue is empty", NULL);
    enqueue_three();
    struct world_run r = ctl("--config", good_conf, "queue", "stats", NULL);
    assert_int_equal(r.code, 0);
    /* One line per account and state: ACCOUNT STATE MESSAGES OLDEST. */
    const char *want[][3] = {{"11111111-1111-4111-8111-111111111111", "queued", "2"},
                             {"22222222-2222-4222-8222-222222222222", "queued", "1"}};
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        const char *line = strstr(r.out, want[i][0]);
        char acc[64], st[32], count[32];
        if (line == NULL || sscanf(line, "%63s %31s %31s", acc, st, count) != 3 ||
            strcmp(st, want[i][1]) != 0 || strcmp(count, want[i][2]) != 0)
            fail_msg("no line '%s %s %s' in:\n%s", want[i][0], want[i][1], want[i][2], r.out);
    }
    /* Quiet by default: no module log lines. */
    assert_null(strstr(r.err, "pg connected"));
    run_free(&r);
    r = ctl("--config", good_conf, "queue", "stats", "--json", NULL);
    assert_int_equal(r.code, 0);
    cJSON *j = cJSON_Parse(r.out);
    assert_int_equal(cJSON_GetArraySize(j), 2);
    cJSON *first = cJSON_GetArrayItem(j, 0);
    assert_string_equal(cJSON_GetObjectItem(first, "state")->valuestring, "queued");
    assert_int_equal((int)cJSON_GetObjectItem(first, "count")->valuedouble, 2);
    cJSON_Delete(j);
    run_free(&r);
    expect(ctl("--config", bad_conf, "queue", "stats", NULL), 1, NULL, "bad.conf:12:");
    expect(ctl("queue", "stats", "extra", NULL), 2, NULL, "unexpected argument");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_everywhere), cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_config_check),    cmocka_unit_test(test_config_dump_masks),
        cmocka_unit_test(test_config_keys),     cmocka_unit_test(test_db_migrate),
        cmocka_unit_test(test_doctor),          cmocka_unit_test(test_text_info),
        cmocka_unit_test(test_queue_stats),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
