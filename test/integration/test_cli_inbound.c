/* Integration tests of smsysctl inbound / optout / rules: the built binary
 * against a private PostgreSQL database and a real dvemu. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/buf.h"
#include "../lib/testutil.h"
#include "tdb.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];
static char conf[320];
static char db_name[64], db_conninfo[1024];
static pid_t dvemu_pid;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
}

struct run {
    int code;
    char *out, *err;
};

static char *slurp_fd(int fd)
{
    struct buf b = BUF_INIT;
    char tmp[4096];
    ssize_t n;
    lseek(fd, 0, SEEK_SET);
    while ((n = read(fd, tmp, sizeof(tmp))) > 0)
        buf_append(&b, tmp, (size_t)n);
    buf_putc(&b, '\0');
    close(fd);
    return buf_steal(&b);
}

static struct run ctl(const char *arg0, ...)
{
    const char *argv[32];
    int argc = 0;
    argv[argc++] = tu_bin("smsysctl");
    argv[argc++] = "--config";
    argv[argc++] = conf;
    va_list ap;
    va_start(ap, arg0);
    for (const char *a = arg0; a && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    char p1[300], p2[300];
    snprintf(p1, sizeof(p1), "%s/out.XXXXXX", tmpdir);
    snprintf(p2, sizeof(p2), "%s/err.XXXXXX", tmpdir);
    int fo = mkstemp(p1), fe = mkstemp(p2);
    assert_true(fo >= 0 && fe >= 0);
    unlink(p1);
    unlink(p2);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fo, 1);
        dup2(fe, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    struct run r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp_fd(fo), slurp_fd(fe)};
    return r;
}

static void expect(struct run r, int code, const char *in_out, const char *in_err)
{
    if (r.code != code || (in_out && strstr(r.out, in_out) == NULL) ||
        (in_err && strstr(r.err, in_err) == NULL))
        fail_msg("exit %d (want %d)\nstdout: %s\nstderr: %s\nwanted out '%s' err '%s'", r.code,
                 code, r.out, r.err, in_out ? in_out : "", in_err ? in_err : "");
    free(r.out);
    free(r.err);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/smsys-test-cli-inbound-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    tdb_create("cliin", db_name, sizeof(db_name), db_conninfo, sizeof(db_conninfo));
    int port = tu_free_port();
    char listen[64], logf[300];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(logf, sizeof(logf), "%s/dvemu.log", tmpdir);
    char *dv_argv[] = {(char *)tu_bin("dvemu"), "--listen", listen, NULL};
    dvemu_pid = tu_spawn(dv_argv, logf, port, 5000);
    if (dvemu_pid <= 0)
        return -1;
    char text[2048];
    snprintf(text, sizeof(text),
             "[dataverse]\nurl = http://127.0.0.1:%d\n"
             "token_url = http://127.0.0.1:%d/t/oauth2/v2.0/token\n"
             "client_id = smsys-demo\nclient_secret = smsys-demo-secret\n"
             "scope = http://127.0.0.1:%d/.default\n[postgres]\nconninfo = \"%s\"\n",
             port, port, port, db_conninfo);
    snprintf(conf, sizeof(conf), "%s/smsys.conf", tmpdir);
    write_file(conf, text);
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
    unsetenv("SMSYS_CONFIG");
    struct run r = ctl("db", "migrate", NULL);
    int ok = r.code == 0;
    free(r.out);
    free(r.err);
    return ok ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    tdb_drop(db_name);
    tu_stop(dvemu_pid);
    return system(cmd) == 0 ? 0 : -1;
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
    struct run r = ctl("optout", "list", NULL);
    assert_int_equal(r.code, 0);
    assert_null(strstr(r.out, "+989121234567"));
    free(r.out);
    free(r.err);
    expect(ctl("optout", "list", "--all", NULL), 0, "+989121234567", NULL);

    /* a bad line rejects the whole file */
    char path[320];
    snprintf(path, sizeof(path), "%s/in.csv", tmpdir);
    write_file(path, "number,opted_out\n09120000011\nnot-a-number\n");
    expect(ctl("optout", "import", path, NULL), 1, NULL, "line 3");
    r = ctl("optout", "export", NULL);
    assert_null(strstr(r.out, "+989120000011"));
    free(r.out);
    free(r.err);
    write_file(path, "number,opted_out\n09120000011\n+989120000012,true\n09120000013,false\n");
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
