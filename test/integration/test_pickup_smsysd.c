/* test_pickup_smsysd.c - the Dynamics components inside the real smsysd
 * process: dvemu with an account, a line, a contact and Pending SMS;
 * smsysd (config pointing at dvemu and a private database) syncs the
 * account, picks the SMS up, queues it and writes Queued back; /healthz
 * shows the leader; SIGTERM stops it cleanly. A second smsysd on the same
 * database stays standby and nothing is queued twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../lib/testutil.h"
#include "pk_fixture.h"

#define A1 "a1000000-0000-0000-0000-0000000000a1"
#define C1 "c1000000-0000-0000-0000-000000000001"

static char dir[128], conf[256], conf2[256], log_a[256], log_b[256];
static int http_port, http_port2;

static void write_conf(const char *path, struct pkf *f, const char *db_conninfo, int port)
{
    FILE *o = fopen(path, "w");
    assert_non_null(o);
    fprintf(o,
            "[dataverse]\n"
            "url = %s\n"
            "token_url = %s/t/oauth2/v2.0/token\n"
            "client_id = smsys-demo\n"
            "client_secret = env:SMSYS_T_PK_SECRET\n"
            "scope = http://127.0.0.1/.default\n"
            "poll_interval_ms = 200\n"
            "[postgres]\n"
            "conninfo = \"%s\"\n"
            "[pickup]\n"
            "writeback_idle_ms = 100\n"
            "[service]\n"
            "grace_period_ms = 3000\n"
            "[http]\n"
            "listen = 127.0.0.1:%d\n",
            f->emu.root, f->emu.root, db_conninfo, port);
    fclose(o);
}

static int sms_status(struct pkf *f, const char *id)
{
    char path[200];
    snprintf(path, sizeof(path), "smsys_smses(%s)?$select=smsys_status", id);
    cJSON *j = pkf_get(f, path);
    int st = cJSON_GetObjectItem(j, "smsys_status")->valueint;
    cJSON_Delete(j);
    return st;
}

static char *read_file(const char *path)
{
    FILE *in = fopen(path, "rb");
    if (in == NULL)
        return strdup("");
    struct buf b = BUF_INIT;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), in)) > 0)
        buf_append(&b, tmp, n);
    fclose(in);
    return b.data ? b.data : strdup("");
}

static void test_smsysd_picks_up(void **state)
{
    (void)state;
    struct pkf f = {0};
    tdb_create("pksd", f.dbname, sizeof(f.dbname), f.conninfo, sizeof(f.conninfo));
    f.side = NULL;
    pkf_dv_start(&f, NULL);
    pkf_post(&f, "smsys_smssettings",
             "{\"smsys_smssettingid\":\"" A1 "\",\"smsys_name\":\"SMPP\",\"smsys_provider\":"
             "\"smpp\",\"smsys_isdefault\":true,\"smsys_enabled\":true}");
    pkf_post(&f, "smsys_smsnumbers",
             "{\"smsys_number\":\"3000111\",\"smsys_isdefault\":true,"
             "\"smsys_settingid@odata.bind\":\"/smsys_smssettings(" A1 ")\"}");
    pkf_post(&f, "contacts",
             "{\"contactid\":\"" C1 "\",\"lastname\":\"R\",\"mobilephone\":\"0912 123 4567\"}");
    for (int i = 0; i < 5; i++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"activityid\":\"5d000000-0000-0000-0000-00000000000%d\",\"description\":"
                 "\"hi %d\",\"smsys_direction\":1,\"smsys_status\":2,"
                 "\"smsys_sms_activity_parties\":[{\"partyid_contact@odata.bind\":\"/contacts(" C1
                 ")\",\"participationtypemask\":2}]}",
                 i, i);
        pkf_post(&f, "smsys_smses", body);
    }

    snprintf(dir, sizeof(dir), "/tmp/smsys-t-pksd-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(conf, sizeof(conf), "%s/a.conf", dir);
    snprintf(conf2, sizeof(conf2), "%s/b.conf", dir);
    snprintf(log_a, sizeof(log_a), "%s/a.log", dir);
    snprintf(log_b, sizeof(log_b), "%s/b.log", dir);
    http_port = tu_free_port();
    http_port2 = tu_free_port();
    setenv("SMSYS_T_PK_SECRET", "smsys-demo-secret", 1);
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
    write_conf(conf, &f, f.conninfo, http_port);
    write_conf(conf2, &f, f.conninfo, http_port2);
    static char bin[4096];
    snprintf(bin, sizeof(bin), "%s", tu_bin("smsysd"));
    char *argv[] = {bin, "--config", conf, NULL};
    pid_t pid = tu_spawn(argv, log_a, http_port, 10000);
    assert_true(pid > 0);
    char *argv2[] = {bin, "--config", conf2, NULL};
    pid_t pid2 = tu_spawn(argv2, log_b, http_port2, 10000);
    assert_true(pid2 > 0);

    /* Queued reaches Dynamics. */
    int ok = 0;
    for (int i = 0; i < 100 && !ok; i++) {
        ok = 1;
        for (int k = 0; k < 5; k++) {
            char id[40];
            snprintf(id, sizeof(id), "5d000000-0000-0000-0000-00000000000%d", k);
            if (sms_status(&f, id) != 3)
                ok = 0;
        }
        if (!ok)
            uv_sleep(100);
    }
    if (!ok) {
        char *l = read_file(log_a);
        print_message("%s\n", l);
        free(l);
        fail_msg("the SMS did not reach Queued in Dynamics");
    }

    f.side = PQconnectdb(f.conninfo);
    assert_int_equal(PQstatus(f.side), CONNECTION_OK);
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_message"), 5);
    assert_string_equal(pkf_str(&f, "SELECT DISTINCT recipient FROM smsys_message"),
                        "+989121234567");
    assert_string_equal(pkf_str(&f, "SELECT DISTINCT sender FROM smsys_message"), "3000111");

    /* Exactly one of the two holds the Dynamics jobs. */
    char *la = read_file(log_a), *lb = read_file(log_b);
    int leaders = (strstr(la, "leader_acquired job=dynamics") != NULL) +
                  (strstr(lb, "leader_acquired job=dynamics") != NULL);
    assert_int_equal(leaders, 1);
    free(la);
    free(lb);

    int st = tu_stop(pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    st = tu_stop(pid2);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    char *l = read_file(log_a);
    assert_null(strstr(l, "smsys-demo-secret"));
    free(l);

    PQfinish(f.side);
    pkf_dv_stop(&f);
    curl_easy_cleanup(f.emu.curl);
    tdb_drop(f.dbname);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smsysd_picks_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
