/* Integration tests of smsysd: the real binary with a temporary config,
 * driven by signals; its log file is the observable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/buf.h"
#include "smsys/util.h"
#include "../lib/testutil.h"
#include "tdb.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];
static char conf[320], logfile[512];
static int port;                /* [http] listen of the last write_conf */
static const char *pg_conninfo; /* the test database, or one that is down */
static char db_name[64], db_conninfo[1024];

static void write_conf(const char *level, const char *format, const char *extra)
{
    port = tu_free_port();
    char tmp[400];
    snprintf(tmp, sizeof(tmp), "%s.new", conf);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fprintf(f,
            "[dataverse]\n"
            /* Loopback only: nothing here may reach the internet. */
            "url = http://127.0.0.1:9\n"
            "token_url = http://127.0.0.1:9/t/oauth2/v2.0/token\n"
            "client_id = app\n"
            "client_secret = env:SMSYS_T_D_SECRET\n"
            "scope = http://127.0.0.1:9/.default\n"
            "[postgres]\n"
            "conninfo = %s\n"
            "[service]\n"
            "grace_period_ms = 3000\n"
            "instance_name = test-node\n"
            "[http]\n"
            "listen = 127.0.0.1:%d\n"
            "[log]\n"
            "level = %s\n"
            "format = %s\n"
            "%s",
            pg_conninfo, port, level, format, extra ? extra : "");
    fclose(f);
    chmod(tmp, 0600);
    /* Atomic replace, as an operator's editor or config management would. */
    assert_int_equal(rename(tmp, conf), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/smsys-test-smsysd-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(conf, sizeof(conf), "%s/t.conf", tmpdir);
    snprintf(logfile, sizeof(logfile), "%s/smsysd.log", tmpdir);
    setenv("SMSYS_T_D_SECRET", "DAEMON-SECRET-5", 1);
    tdb_create("smsysd", db_name, sizeof(db_name), db_conninfo, sizeof(db_conninfo));
    pg_conninfo = db_conninfo;
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    tdb_drop(db_name);
    return system(cmd) == 0 ? 0 : -1;
}

static char *read_log_at(const char *path)
{
    struct buf b = BUF_INIT;
    FILE *f = fopen(path, "r");
    if (f) {
        char tmp[4096];
        size_t n;
        while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
            buf_append(&b, tmp, n);
        fclose(f);
    }
    return buf_steal(&b);
}

static char *read_log(void)
{
    return read_log_at(logfile);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits up to timeout_ms for text in the log; returns 1 when it appeared. */
static int wait_log(const char *text, unsigned timeout_ms)
{
    for (unsigned waited = 0;; waited += 20) {
        char *log = read_log();
        int found = strstr(log, text) != NULL;
        free(log);
        if (found)
            return 1;
        if (waited >= timeout_ms)
            return 0;
        sleep_ms(20);
    }
}

static void fail_with_log(const char *what)
{
    char *log = read_log();
    fail_msg("%s; log:\n%s", what, log);
    free(log);
}

static pid_t start_daemon(void)
{
    char *argv[] = {(char *)tu_bin("smsysd"), "--config", conf, NULL};
    /* The previous run's log must not satisfy the wait below. */
    unlink(logfile);
    pid_t pid = tu_spawn(argv, logfile, port, 5000);
    assert_true(pid > 0);
    if (!wait_log("service started", 5000)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_with_log("smsysd did not start");
    }
    return pid;
}

/* Waits for pid to exit within timeout_ms; returns the wait status or -1. */
static int wait_exit(pid_t pid, unsigned timeout_ms)
{
    for (unsigned waited = 0; waited <= timeout_ms; waited += 10) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void test_reload_and_stop(void **state)
{
    (void)state;
    write_conf("info", "text", NULL);
    pid_t pid = start_daemon();

    /* Debug lines are off at info. */
    char *log = read_log();
    assert_null(strstr(log, " debug "));
    assert_non_null(strstr(log, "instance=test-node"));
    free(log);

    /* Live change: level and format take effect on SIGHUP. */
    write_conf("debug", "json", NULL);
    assert_int_equal(kill(pid, SIGHUP), 0);
    if (!wait_log("\"level\":\"debug\",\"event\":\"reload hooks ran\"", 5000))
        fail_with_log("reload to debug/json not applied");
    log = read_log();
    assert_non_null(strstr(log, "config changed key=log.level old=\"info\" new=\"debug\""));
    /* The listen port changed too: not live, so it is called out. */
    assert_non_null(strstr(log, "config change needs a restart key=http.listen"));
    assert_null(strstr(log, "DAEMON-SECRET-5"));
    free(log);

    /* A broken file on reload keeps the running config. */
    write_conf("debug", "json", "[log]\nlevel = loud\n");
    assert_int_equal(kill(pid, SIGHUP), 0);
    if (!wait_log("config reload failed, keeping the running config", 5000))
        fail_with_log("broken reload not reported");
    if (!wait_log("t.conf:18: duplicate key 'level'", 100))
        fail_with_log("reload error lacks the line");
    /* Still alive and still reloading. */
    assert_int_equal(kill(pid, 0), 0);
    write_conf("warn", "text", NULL);
    assert_int_equal(kill(pid, SIGHUP), 0);
    if (!wait_log("\"new\":\"warn\"", 5000))
        fail_with_log("second reload not applied");

    /* SIGTERM: clean exit well within the grace period. */
    uint64_t t0 = util_now_ms();
    assert_int_equal(kill(pid, SIGTERM), 0);
    int st = wait_exit(pid, 3000);
    uint64_t took = util_now_ms() - t0;
    if (st == -1)
        fail_with_log("smsysd did not exit on SIGTERM");
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(took < 3000);
    /* At level warn, the info lines of the stop are not written. */
    log = read_log();
    assert_null(strstr(log, "service stopped"));
    free(log);
}

/* GET path on 127.0.0.1:port; returns the status and the body in *body
 * (caller frees), or -1 when the connection failed. */
static int http_get(const char *path, char **body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char req[256];
    int n =
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    struct buf b = BUF_INIT;
    char tmp[4096];
    ssize_t r;
    while ((r = read(fd, tmp, sizeof(tmp))) > 0)
        buf_append(&b, tmp, (size_t)r);
    close(fd);
    int status = -1;
    if (b.data && sscanf(b.data, "HTTP/1.1 %d", &status) != 1)
        status = -1;
    const char *sep = b.data ? strstr(b.data, "\r\n\r\n") : NULL;
    *body = strdup(sep ? sep + 4 : "");
    buf_free(&b);
    return status;
}

static void test_healthz(void **state)
{
    (void)state;
    write_conf("info", "text", NULL);
    pid_t pid = start_daemon();
    /* The pool connects in the background: allow it a moment. */
    char *body = NULL;
    int status = -1;
    for (int i = 0; i < 100 && status != 200; i++) {
        free(body);
        status = http_get("/healthz", &body);
        if (status != 200)
            sleep_ms(50);
    }
    if (status != 200)
        fail_msg("/healthz: %d %s", status, body);
    /* Prefix: later components (dataverse, pickup, ...) follow. */
    if (strstr(body, "{\"status\":\"ok\",\"checks\":{\"service\":\"ok\",\"pg\":\"ok\","
                     "\"http\":\"ok\"") == NULL)
        fail_msg("/healthz body: %s", body);
    free(body);
    assert_int_equal(http_get("/metrics", &body), 200);
    if (strstr(body, "# TYPE smsys_build_info gauge") == NULL ||
        strstr(body, "smsys_build_info{version=\"") == NULL ||
        strstr(body, "smsys_pg_connections{state=\"configured\"} 4\n") == NULL ||
        strstr(body, "smsys_pg_connections{state=\"connected\"} ") == NULL ||
        strstr(body, "smsys_pg_queries_total ") == NULL)
        fail_msg("/metrics body: %s", body);
    free(body);
    assert_int_equal(http_get("/nothing", &body), 404);
    free(body);
    int st = tu_stop(pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* Runs smsysd on the current config until it exits; returns its status. */
static int run_to_exit(void)
{
    char *argv[] = {(char *)tu_bin("smsysd"), "--config", conf, NULL};
    unlink(logfile);
    pid_t pid = tu_spawn(argv, logfile, 0, 0);
    assert_true(pid > 0);
    int st = wait_exit(pid, 15000);
    assert_true(st != -1 && WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void test_database_at_start(void **state)
{
    (void)state;
    /* Unreachable: the schema cannot be brought up, so it does not start. */
    char down[128];
    snprintf(down, sizeof(down), "host=127.0.0.1 port=%d dbname=x connect_timeout=2",
             tu_free_port());
    pg_conninfo = down;
    write_conf("info", "text", NULL);
    pg_conninfo = db_conninfo;
    assert_int_equal(run_to_exit(), 1);
    if (!wait_log("database migration failed, not starting", 100) ||
        !wait_log("Connection refused", 100))
        fail_with_log("no clear error for an unreachable database");

    /* migrate_on_start = false on a fresh database: refuses, says what to do. */
    char fresh[64], fresh_ci[1024];
    tdb_create("smsysd_fresh", fresh, sizeof(fresh), fresh_ci, sizeof(fresh_ci));
    pg_conninfo = fresh_ci;
    write_conf("info", "text", "[postgres]\nmigrate_on_start = false\n");
    pg_conninfo = db_conninfo;
    assert_int_equal(run_to_exit(), 1);
    if (!wait_log("database schema is not current, not starting db_version=0", 100) ||
        !wait_log("run smsysctl db migrate", 100))
        fail_with_log("no clear error for an old schema");
    tdb_drop(fresh);

    /* migrate_on_start = false on the migrated database: starts. */
    write_conf("info", "text", "[postgres]\nmigrate_on_start = false\n");
    pid_t pid = start_daemon();
    assert_true(wait_log("database schema ready version=", 100));
    int st = tu_stop(pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_port_in_use(void **state)
{
    (void)state;
    write_conf("info", "text", NULL);
    pid_t first = start_daemon();
    /* Same config, same port: the second cannot start and says why. */
    char *argv[] = {(char *)tu_bin("smsysd"), "--config", conf, NULL};
    char log2[600];
    snprintf(log2, sizeof(log2), "%s.2", logfile);
    pid_t second = tu_spawn(argv, log2, 0, 0);
    int st = wait_exit(second, 5000);
    assert_true(st != -1 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    st = tu_stop(first);
    assert_int_equal(WEXITSTATUS(st), 0);
    char *log = read_log_at(log2);
    if (strstr(log, "component failed to start name=http") == NULL ||
        strstr(log, "address already in use") == NULL)
        fail_msg("second instance did not say why:\n%s", log);
    free(log);
}

static void test_sigint_stops(void **state)
{
    (void)state;
    write_conf("info", "text", NULL);
    pid_t pid = start_daemon();
    assert_int_equal(kill(pid, SIGINT), 0);
    int st = wait_exit(pid, 3000);
    assert_true(st != -1 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    if (!wait_log("service stopped exit_code=0", 100))
        fail_with_log("no stop line");
}

static void test_broken_config_exits_1(void **state)
{
    (void)state;
    write_conf("info", "text", "[sending]\nquiet_hours = 8am-9pm\n");
    char *argv[] = {(char *)tu_bin("smsysd"), "--config", conf, NULL};
    pid_t pid = tu_spawn(argv, logfile, 0, 0);
    assert_true(pid > 0);
    int st = wait_exit(pid, 5000);
    assert_true(st != -1 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    if (!wait_log("config invalid, not starting", 100) ||
        !wait_log("t.conf:18: sending.quiet_hours: expected a window", 100))
        fail_with_log("unclear startup error");

    /* A missing file too. */
    char *argv2[] = {(char *)tu_bin("smsysd"), "--config", "/nonexistent/x.conf", NULL};
    pid = tu_spawn(argv2, logfile, 0, 0);
    st = wait_exit(pid, 5000);
    assert_true(st != -1 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    if (!wait_log("/nonexistent/x.conf: cannot open", 100))
        fail_with_log("missing file not named");
}

static int run_status(char *const argv[])
{
    unlink(logfile);
    pid_t pid = tu_spawn(argv, logfile, 0, 0);
    assert_true(pid > 0);
    int st = wait_exit(pid, 5000);
    assert_true(st != -1 && WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void test_options(void **state)
{
    (void)state;
    char *bin = (char *)tu_bin("smsysd");
    char *v[] = {bin, "--version", NULL};
    assert_int_equal(run_status(v), 0);
    assert_true(wait_log("smsysd ", 100));
    char *h[] = {bin, "--help", NULL};
    assert_int_equal(run_status(h), 0);
    assert_true(wait_log("--check-config", 100));
    char *bad[] = {bin, "--frob", NULL};
    assert_int_equal(run_status(bad), 2);
    assert_true(wait_log("unknown or incomplete option '--frob'", 100));
    write_conf("info", "text", NULL);
    char *ok[] = {bin, "--config", conf, "--check-config", NULL};
    assert_int_equal(run_status(ok), 0);
    assert_true(wait_log("t.conf: ok", 100));
    write_conf("info", "text", "[log]\nformat = xml\n");
    assert_int_equal(run_status(ok), 1);
    assert_true(wait_log("t.conf:18: duplicate key 'format'", 100));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reload_and_stop), cmocka_unit_test(test_sigint_stops),
        cmocka_unit_test(test_healthz),         cmocka_unit_test(test_database_at_start),
        cmocka_unit_test(test_port_in_use),     cmocka_unit_test(test_broken_config_exits_1),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
