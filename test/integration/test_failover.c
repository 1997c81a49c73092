/* test_failover.c - F12 in the real smsysd process: two accounts in
 * dvemu (Kavenegar and Twilio, both served by provsim), SMS records
 * picked up from Dynamics and sent through the default account.
 *  - Switching smsys_isdefault in Dynamics moves new messages to the new
 *    default within a poll interval, without a restart.
 *  - No credit on the default account (provsim) with failover_order set
 *    in the accounts' smsys_config: the account pauses and its messages
 *    move to the other account and are delivered - none failed or lost.
 * Receipts come back through smsysd's webhooks (Twilio signed
 * StatusCallback, Kavenegar token callback set via /_sim/config). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "provsim_client.h"

#include "pk_fixture.h"

#define A1     "d1000000-0000-4000-8000-000000000001"
#define A2     "d1000000-0000-4000-8000-000000000002"
#define C1     "c1000000-0000-4000-8000-0000000000c1"
#define KV_TOK "kv-failover-hook-secret-0001"

static struct pkf f;
static char dir[128];
static struct world_smsysd sd;
static int nsms;

/* An smsys_smssetting with its settings JSON as Dynamics stores it (a
 * string). */
static void post_account(const char *id, const char *name, const char *provider, int dflt,
                         cJSON *config, const char *key)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "smsys_smssettingid", id);
    cJSON_AddStringToObject(o, "smsys_name", name);
    cJSON_AddStringToObject(o, "smsys_provider", provider);
    cJSON_AddBoolToObject(o, "smsys_isdefault", dflt);
    cJSON_AddBoolToObject(o, "smsys_enabled", 1);
    char *c = cJSON_PrintUnformatted(config);
    cJSON_AddStringToObject(o, "smsys_config", c);
    cJSON_AddStringToObject(o, "smsys_apikey", key);
    char *s = cJSON_PrintUnformatted(o);
    pkf_post(&f, "smsys_smssettings", s);
    free(s);
    free(c);
    cJSON_Delete(o);
    cJSON_Delete(config);
}

static void new_sms(char *id, size_t len)
{
    snprintf(id, len, "5e000000-0000-4000-8000-%012d", ++nsms);
    char body[600];
    snprintf(body, sizeof(body),
             "{\"activityid\":\"%s\",\"description\":\"failover %d\",\"smsys_direction\":1,"
             "\"smsys_status\":2,\"smsys_sms_activity_parties\":[{\"partyid_contact@odata.bind\":"
             "\"/contacts(" C1 ")\",\"participationtypemask\":2}]}",
             id, nsms);
    pkf_post(&f, "smsys_smses", body);
}

static void set_default(const char *on, const char *off)
{
    char path[128];
    snprintf(path, sizeof path, "smsys_smssettings(%s)", on);
    assert_int_equal(pkf_req(&f, "PATCH", path, "{\"smsys_isdefault\":true}", NULL), 204);
    snprintf(path, sizeof path, "smsys_smssettings(%s)", off);
    assert_int_equal(pkf_req(&f, "PATCH", path, "{\"smsys_isdefault\":false}", NULL), 204);
}

/* Polls a SQL value until it equals want; returns the last value seen. */
static const char *wait_str(const char *sql, const char *want, unsigned ms)
{
    const char *v = "";
    for (unsigned t = 0; t <= ms; t += 50) {
        v = pkf_str(&f, sql);
        if (strcmp(v, want) == 0)
            break;
        uv_sleep(50);
    }
    return v;
}

static void dump_log_on(int bad)
{
    if (!bad)
        return;
    world_smsysd_print_log(&sd, SIZE_MAX);
}

static int setup(void **state)
{
    if (group_setup(state) != 0)
        return -1;
    world_db_create("fo", f.dbname, sizeof(f.dbname), f.conninfo, sizeof(f.conninfo));
    pkf_dv_start(&f, NULL);
    world_mkdir("fo", dir, sizeof(dir));
    world_smsysd_init(&sd, dir, "a");
    int hport = sd.http_port;
    char url[256];
    cJSON *c = cJSON_CreateObject();
    snprintf(url, sizeof url, "%s/kavenegar", base);
    cJSON_AddStringToObject(c, "base_url", url);
    cJSON_AddStringToObject(c, "webhook_token", KV_TOK);
    cJSON_AddNumberToObject(c, "failover_order", 1);
    post_account(A1, "KV", "kavenegar", 1, c, KV_KEY);
    c = cJSON_CreateObject();
    snprintf(url, sizeof url, "%s/twilio", base);
    cJSON_AddStringToObject(c, "base_url", url);
    cJSON_AddStringToObject(c, "account_sid", TW_SID);
    cJSON_AddStringToObject(c, "sender", "+15005550006");
    snprintf(url, sizeof url, "http://127.0.0.1:%d", hport);
    cJSON_AddStringToObject(c, "webhook_base_url", url);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/webhooks/" A2 "/status", hport);
    cJSON_AddStringToObject(c, "status_callback", url);
    cJSON_AddNumberToObject(c, "failover_order", 2);
    post_account(A2, "TW", "twilio", 0, c, TW_TOKEN);
    pkf_post(&f, "smsys_smsnumbers",
             "{\"smsys_number\":\"10004346\",\"smsys_isdefault\":true,"
             "\"smsys_settingid@odata.bind\":\"/smsys_smssettings(" A1 ")\"}");
    pkf_post(&f, "smsys_smsnumbers",
             "{\"smsys_number\":\"+15005550006\",\"smsys_isdefault\":true,"
             "\"smsys_settingid@odata.bind\":\"/smsys_smssettings(" A2 ")\"}");
    pkf_post(&f, "contacts",
             "{\"contactid\":\"" C1 "\",\"lastname\":\"R\",\"mobilephone\":\"0912 123 4567\"}");

    world_conf_write(sd.conf, &(struct world_conf){
                                  .dv_root = f.emu.root,
                                  .dv_extra = "poll_interval_ms = 200\n",
                                  .conninfo = f.conninfo,
                                  .http_port = hport,
                                  .more = "[pickup]\nwriteback_idle_ms = 100\n"
                                          "[queue]\naccounts_poll_ms = 200\nidle_claim_ms = 100\n"
                                          "backoff_base_ms = 200\nbackoff_cap_ms = 500\n"
                                          "account_pause_ms = 600000\n"
                                          "[service]\ngrace_period_ms = 3000\n"});
    setenv("SMSYS_SQL_DIR", tu_src("sql"), 1);
    return 0;
}

static int teardown(void **state)
{
    world_smsysd_stop(&sd);
    if (f.side)
        PQfinish(f.side);
    pkf_dv_stop(&f);
    world_dv_free(&f.emu);
    world_cleanup();
    return group_teardown(state);
}

static void test_default_switch_and_failover(void **state)
{
    (void)state;
    char cfg[400];
    snprintf(cfg, sizeof cfg,
             "{\"receipt_delay_ms\":100,\"outcome\":{\"delivered\":100,\"undelivered\":0},"
             "\"kavenegar\":{\"callback_url\":\"http://127.0.0.1:%d/webhooks/" A1
             "/callback?token=" KV_TOK "\"}}",
             sd.http_port);
    sim_config(cfg);
    world_smsysd_start(&sd, 10000);
    f.side = world_db_connect(f.conninfo);

    /* 1. the default (Kavenegar) sends and the callback delivers */
    char s1[40], q[300];
    new_sms(s1, sizeof s1);
    snprintf(q, sizeof q,
             "SELECT state || ' ' || account_id FROM smsys_message WHERE activity_id = '%s'", s1);
    const char *v = wait_str(q, "5 " A1, 10000);
    dump_log_on(strcmp(v, "5 " A1) != 0);
    assert_string_equal(v, "5 " A1);
    /* failover_order came from the settings JSON in Dynamics */
    assert_string_equal(pkf_str(&f, "SELECT string_agg(name || '=' || failover_order, ',' ORDER "
                                    "BY name) FROM smsys_account"),
                        "KV=1,TW=2");

    /* 2. switch the default in Dynamics: no restart, the next poll takes
     *    it (poll_interval_ms 200: well within 2 s) */
    set_default(A2, A1);
    v = wait_str("SELECT id::text FROM smsys_account WHERE is_default", A2, 2000);
    assert_string_equal(v, A2);
    char s2[40];
    new_sms(s2, sizeof s2);
    snprintf(q, sizeof q,
             "SELECT state || ' ' || account_id FROM smsys_message WHERE activity_id = '%s'", s2);
    v = wait_str(q, "5 " A2, 10000);
    dump_log_on(strcmp(v, "5 " A2) != 0);
    assert_string_equal(v, "5 " A2); /* delivered by Twilio's signed StatusCallback */

    /* 3. back to Kavenegar, which has no credit now: failover to Twilio */
    set_default(A1, A2);
    v = wait_str("SELECT id::text FROM smsys_account WHERE is_default", A1, 2000);
    assert_string_equal(v, A1);
    sim_config("{\"kavenegar\":{\"no_credit\":true}}");
    char ids[3][40];
    for (int i = 0; i < 3; i++)
        new_sms(ids[i], sizeof ids[i]);
    snprintf(q, sizeof q,
             "SELECT count(*) FILTER (WHERE state = 5 AND account_id = '" A2 "') FROM "
             "smsys_message WHERE activity_id IN ('%s','%s','%s')",
             ids[0], ids[1], ids[2]);
    v = wait_str(q, "3", 15000);
    dump_log_on(strcmp(v, "3") != 0);
    assert_string_equal(v, "3");
    /* the no-credit account is paused with the reason, nothing failed */
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_account WHERE id = '" A1
                                 "' AND paused_until > now() AND pause_reason IS NOT NULL"),
                     1);
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_message WHERE state IN (6, 21)"), 0);
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_message"), 5);
    /* every SMS record reached Delivered in Dynamics (write-back) */
    const char *all[5] = {s1, s2, ids[0], ids[1], ids[2]};
    for (int i = 0; i < 5; i++) {
        char path[200];
        int st = -1;
        for (int t = 0; t < 100 && st != 5; t++) {
            snprintf(path, sizeof(path), "smsys_smses(%s)?$select=smsys_status", all[i]);
            cJSON *j = pkf_get(&f, path);
            st = cJSON_GetObjectItem(j, "smsys_status")->valueint;
            cJSON_Delete(j);
            if (st != 5)
                uv_sleep(100);
        }
        assert_int_equal(st, 5);
    }
    char *l = world_slurp(sd.log);
    assert_null(strstr(l, KV_TOK));
    assert_null(strstr(l, TW_TOKEN));
    free(l);
    world_smsysd_stop_clean(&sd, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_switch_and_failover),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
