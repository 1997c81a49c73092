/* test_providers_cli.c - smsysctl providers list | balance | lines |
 * default | test as a process, against the real PostgreSQL (accounts
 * synced from dvemu by the real accounts sync), provsim (live balance and
 * lines through the production connectors) and dvemu (the default switch
 * written to Dynamics and taken by the next sync). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "provsim_client.h"

#include "pk_fixture.h"

#include "smsys/accounts.h"
#include "smsys/log.h"

#define A1 "c1000000-0000-4000-8000-000000000001"
#define A2 "c1000000-0000-4000-8000-000000000002"

static struct pkf f;
static struct accounts *acc;
static char dir[256], conf[300];

/* smsysctl --config conf ARGS..., waited for. */
static struct world_run ctl(const char *const *args)
{
    struct world_run r = world_ctl(conf, args);
    /* The loop's clock stood still while we waited: timers started next
     * (connect and request timeouts) would otherwise fire at once. */
    uv_update_time(&f.loop);
    return r;
}

#define run_free world_run_free

static void sync_cb(int rc, const struct accounts_result *res, const struct smsys_err *err,
                    void *ud)
{
    (void)res;
    (void)err;
    *(int *)ud = rc < 0 ? -1 : 1;
}

/* One accounts sync (on its own pool: the shared one stays for pkf). */
static void sync_now(void)
{
    struct pg_pool *pool;
    assert_int_equal(pg_pool_new(&f.loop, f.conninfo, 1, &pool), 0);
    assert_int_equal(accounts_new(&f.loop, pool, f.dv, &acc), 0);
    int done = 0;
    assert_int_equal(accounts_sync(acc, sync_cb, &done), 0);
    if (tu_run_until(&f.loop, &done, 10000) != 0)
        fail_msg("sync hangs: %s",
                 pkf_str(&f, "SELECT string_agg(state || ' ' || coalesce(wait_event_type,'') || ' "
                             "' || left(query, 80), ' | ') FROM pg_stat_activity WHERE datname "
                             "= current_database()"));
    assert_int_equal(done, 1);
    accounts_free(acc);
    acc = NULL;
    int closed = 0;
    pg_pool_close(pool, pkf_flag_cb, &closed);
    assert_int_equal(tu_run_until(&f.loop, &closed, 10000), 0);
}

static int setup(void **state)
{
    if (group_setup(state) != 0)
        return -1;
    pkf_open(&f, "pcli", NULL, 0);
    char body[2048];
    snprintf(body, sizeof body,
             "{\"smsys_smssettingid\":\"" A1 "\",\"smsys_name\":\"KV\",\"smsys_provider\":"
             "\"kavenegar\",\"smsys_isdefault\":true,\"smsys_enabled\":true,\"smsys_config\":"
             "\"{\\\"base_url\\\":\\\"%s/kavenegar\\\",\\\"sender\\\":\\\"10004346\\\","
             "\\\"low_balance\\\":10}\",\"smsys_apikey\":\"" KV_KEY "\"}",
             base);
    pkf_post(&f, "smsys_smssettings", body);
    snprintf(body, sizeof body,
             "{\"smsys_smssettingid\":\"" A2 "\",\"smsys_name\":\"TW\",\"smsys_provider\":"
             "\"twilio\",\"smsys_isdefault\":false,\"smsys_enabled\":true,\"smsys_config\":"
             "\"{\\\"base_url\\\":\\\"%s/twilio\\\",\\\"account_sid\\\":\\\"" TW_SID "\\\","
             "\\\"sender\\\":\\\"+15005550006\\\"}\",\"smsys_apikey\":\"env:PCLI_TW_TOKEN\"}",
             base);
    pkf_post(&f, "smsys_smssettings", body);
    setenv("PCLI_TW_TOKEN", TW_TOKEN, 1);
    sync_now();
    world_mkdir("pcli", dir, sizeof(dir));
    snprintf(conf, sizeof conf, "%s/pcli.conf", dir);
    world_conf_write(conf, &(struct world_conf){.dv_root = f.emu.root, .conninfo = f.conninfo});
    unsetenv("SMSYS_CONFIG");
    return 0;
}

static int teardown(void **state)
{
    pkf_close(&f);
    int rc = group_teardown(state);
    world_cleanup();
    return rc;
}

static void test_list(void **state)
{
    (void)state;
    struct world_run r = ctl((const char *[]){"providers", "list", "--json", NULL});
    assert_int_equal(r.code, 0);
    cJSON *j = cJSON_Parse(r.out);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(j), 2);
    /* the default first */
    assert_string_equal(jstr(j, "0.name"), "KV");
    assert_string_equal(jstr(j, "0.provider"), "kavenegar");
    assert_true(cJSON_IsTrue(jp(j, "0.default")));
    assert_true(cJSON_IsTrue(jp(j, "0.enabled")));
    assert_true(cJSON_IsFalse(jp(j, "0.paused")));
    assert_string_equal(jstr(j, "1.name"), "TW");
    assert_true(cJSON_IsFalse(jp(j, "1.default")));
    cJSON_Delete(j);
    run_free(&r);
    r = ctl((const char *[]){"providers", "list", NULL});
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "NAME"));
    assert_non_null(strstr(r.out, "twilio"));
    /* the API key never shows */
    assert_null(strstr(r.out, KV_KEY));
    run_free(&r);
    r = ctl((const char *[]){"providers", "list", "extra", NULL});
    assert_int_equal(r.code, 2);
    run_free(&r);
    r = ctl((const char *[]){"providers", "list", "--help", NULL});
    assert_int_equal(r.code, 0);
    run_free(&r);
}

static void test_balance_and_lines(void **state)
{
    (void)state;
    struct world_run r = ctl((const char *[]){"providers", "balance", "--json", NULL});
    assert_int_equal(r.code, 0);
    cJSON *j = cJSON_Parse(r.out);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(j), 2);
    assert_true(jnum(j, "0.balance") > 999999.0);
    assert_string_equal(jstr(j, "0.unit"), "IRR");
    assert_true(jnum(j, "1.balance") > 999.0);
    assert_string_equal(jstr(j, "1.unit"), "USD");
    cJSON_Delete(j);
    run_free(&r);

    sim_post("/_sim/balance", "{\"provider\":\"twilio\",\"balance\":42}");
    r = ctl((const char *[]){"providers", "balance", "TW", NULL});
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "TW"));
    assert_non_null(strstr(r.out, "42.00 USD"));
    run_free(&r);

    r = ctl((const char *[]){"providers", "balance", "nosuch", NULL});
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "no account named"));
    run_free(&r);

    /* provider down (no credit is still an answer; a wrong key is not) */
    setenv("PCLI_TW_TOKEN", "wrong", 1);
    r = ctl((const char *[]){"providers", "balance", "TW", "--json", NULL});
    setenv("PCLI_TW_TOKEN", TW_TOKEN, 1);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.out, "\"error\""));
    run_free(&r);

    /* Kavenegar's API has no line list: said, and exit 1 */
    r = ctl((const char *[]){"providers", "lines", "KV", "--json", NULL});
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.out, "cannot tell"));
    run_free(&r);
    r = ctl((const char *[]){"providers", "lines", "TW", "--json", NULL});
    assert_int_equal(r.code, 0);
    j = cJSON_Parse(r.out);
    assert_non_null(j);
    assert_string_equal(jstr(j, "0.lines.0.number"), "+15005550006");
    cJSON_Delete(j);
    run_free(&r);
    r = ctl((const char *[]){"providers", "lines", "TW", NULL});
    if (r.code != 0)
        fail_msg("lines TW: %s %s", r.out, r.err);
    assert_non_null(strstr(r.out, "+15005550006"));
    run_free(&r);
    r = ctl((const char *[]){"providers", "lines", NULL});
    assert_int_equal(r.code, 2);
    run_free(&r);
}

static void test_default_switch(void **state)
{
    (void)state;
    struct world_run r = ctl((const char *[]){"providers", "default", "TW", "--json", NULL});
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, A2));
    run_free(&r);
    cJSON *j = pkf_get(&f, "smsys_smssettings(" A2 ")?$select=smsys_isdefault");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "smsys_isdefault")));
    cJSON_Delete(j);
    j = pkf_get(&f, "smsys_smssettings(" A1 ")?$select=smsys_isdefault");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "smsys_isdefault")));
    cJSON_Delete(j);
    /* PostgreSQL follows at the next sync, not before */
    assert_string_equal(pkf_str(&f, "SELECT name FROM smsys_account WHERE is_default"), "KV");
    sync_now();
    assert_string_equal(pkf_str(&f, "SELECT name FROM smsys_account WHERE is_default"), "TW");

    r = ctl((const char *[]){"providers", "default", "nosuch", NULL});
    assert_int_equal(r.code, 1);
    run_free(&r);
    r = ctl((const char *[]){"providers", "default", NULL});
    assert_int_equal(r.code, 2);
    run_free(&r);
    /* back, for the other tests */
    r = ctl((const char *[]){"providers", "default", "KV", NULL});
    assert_int_equal(r.code, 0);
    run_free(&r);
    sync_now();
    assert_string_equal(pkf_str(&f, "SELECT name FROM smsys_account WHERE is_default"), "KV");
}

static void test_send_test_message(void **state)
{
    (void)state;
    struct world_run r =
        ctl((const char *[]){"providers", "test", "TW", "--to", "+989121234567", "--json", NULL});
    assert_int_equal(r.code, 0);
    run_free(&r);
    assert_int_equal(pkf_int(&f, "SELECT count(*) FROM smsys_message WHERE account_id = '" A2
                                 "' AND recipient = '+989121234567' AND state = 3"),
                     1);
    r = ctl((const char *[]){"providers", "test", "TW", NULL});
    assert_int_equal(r.code, 2);
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_balance_and_lines),
        cmocka_unit_test(test_default_switch),
        cmocka_unit_test(test_send_test_message),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
