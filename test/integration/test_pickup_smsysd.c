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

static char dir[128];
static struct world_smsysd sd_a, sd_b;

static void write_conf(const struct world_smsysd *sd, struct pkf *f)
{
    world_conf_write(sd->conf, &(struct world_conf){.dv_root = f->emu.root,
                                                    .client_secret = "env:SMSYS_T_PK_SECRET",
                                                    .dv_extra = "poll_interval_ms = 200\n",
                                                    .conninfo = f->conninfo,
                                                    .http_port = sd->http_port,
                                                    .more = "[pickup]\n"
                                                            "writeback_idle_ms = 100\n"
                                                            "[service]\n"
                                                            "grace_period_ms = 3000\n"});
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

static void test_smsysd_picks_up(void **state)
{
    (void)state;
    struct pkf f = {0};
    world_db_create("pksd", f.dbname, sizeof(f.dbname), f.conninfo, sizeof(f.conninfo));
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

    world_mkdir("pksd", dir, sizeof(dir));
    world_smsysd_init(&sd_a, dir, "a");
    world_smsysd_init(&sd_b, dir, "b");
    setenv("SMSYS_T_PK_SECRET", "smsys-demo-secret", 1);
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
    write_conf(&sd_a, &f);
    write_conf(&sd_b, &f);
    world_smsysd_start(&sd_a, 10000);
    world_smsysd_start(&sd_b, 10000);

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
        world_smsysd_print_log(&sd_a, SIZE_MAX);
        fail_msg("the SMS did not reach Queued in Dynamics");
    }

    f.side = world_db_connect(f.conninfo);
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_message"), 5);
    assert_string_equal(pkf_str(&f, "SELECT DISTINCT recipient FROM smsys_message"),
                        "+989121234567");
    assert_string_equal(pkf_str(&f, "SELECT DISTINCT sender FROM smsys_message"), "3000111");

    /* Exactly one of the two holds the Dynamics jobs. */
    char *la = world_slurp(sd_a.log), *lb = world_slurp(sd_b.log);
    int leaders = (strstr(la, "leader_acquired job=dynamics") != NULL) +
                  (strstr(lb, "leader_acquired job=dynamics") != NULL);
    assert_int_equal(leaders, 1);
    free(la);
    free(lb);

    world_smsysd_stop_clean(&sd_a, (const char *const[]){"smsys-demo-secret", NULL});
    world_smsysd_stop_clean(&sd_b, NULL);

    PQfinish(f.side);
    pkf_dv_stop(&f);
    world_dv_free(&f.emu);
    world_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smsysd_picks_up),
    };
    return cmocka_run_group_tests(tests, NULL, world_teardown);
}
