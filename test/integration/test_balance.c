/* test_balance.c - F13: the connector manager reads each enabled
 * account's credit from its provider (provsim, a separate process) on its
 * timer and on demand, exports the gauges, warns below the account's
 * low_balance, and smsysd's hook writes it to the account record in
 * Dynamics (dvemu) with accounts_write_balance. Accounts come from
 * Dynamics through the real accounts sync. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "provsim_client.h"

#include "pk_fixture.h"

#include "smsys/accounts.h"
#include "smsys/connmgr.h"
#include "smsys/log.h"
#include "smsys/metrics.h"

#define A1 "b1000000-0000-4000-8000-000000000001"
#define A2 "b1000000-0000-4000-8000-000000000002"

static struct pkf f;
static char logfile[256];
static FILE *logf_;
static int writes, write_fail;

static void written_cb(int rc, const struct smsys_err *err, void *ud)
{
    (void)err;
    (void)ud;
    writes++;
    write_fail += rc < 0;
}

/* What comp_connectors.c does with each read. */
static void on_balance_cb(void *ud, const char *id, const char *name, const struct conn_balance *b,
                          int low)
{
    (void)ud;
    (void)name;
    (void)low;
    assert_int_equal(accounts_write_balance(f.dv, id, b->amount, b->unit, 0, written_cb, NULL), 0);
}

static int log_has(const char *a, const char *b)
{
    fflush(logf_);
    FILE *fp = fopen(logfile, "r");
    char line[4096];
    int n = 0;
    while (fp && fgets(line, sizeof line, fp))
        n += strstr(line, a) && (!b || strstr(line, b));
    if (fp)
        fclose(fp);
    return n;
}

static void sync_cb(int rc, const struct accounts_result *res, const struct smsys_err *err,
                    void *ud)
{
    (void)res;
    (void)err;
    *(int *)ud = rc < 0 ? -1 : 1;
}

static void run_ms(unsigned ms)
{
    int never = 0;
    tu_run_until(&f.loop, &never, ms);
}

/* The value of name{account="acc"} as /metrics shows it; -1 when absent. */
static double gauge(const char *name, const char *acc)
{
    struct buf out = BUF_INIT;
    assert_int_equal(metrics_render(NULL, &out), 0);
    char key[160];
    snprintf(key, sizeof key, "\n%s{account=\"%s\"} ", name, acc);
    const char *p = out.data ? strstr(out.data, key) : NULL;
    double v = p ? strtod(p + strlen(key), NULL) : -1;
    buf_free(&out);
    return v;
}

static void test_balance_read_and_written(void **state)
{
    (void)state;
    pkf_open(&f, "bal", NULL, 0);
    snprintf(logfile, sizeof logfile, "/tmp/test-balance-%d.log", (int)getpid());
    logf_ = fopen(logfile, "w");
    log_setup(LOG_INFO, LOG_TEXT, logf_);
    char body[2048];
    /* Kavenegar: 1,000,000 IRR at provsim, threshold above it -> low. */
    snprintf(body, sizeof body,
             "{\"smsys_smssettingid\":\"" A1 "\",\"smsys_name\":\"KV\",\"smsys_provider\":"
             "\"kavenegar\",\"smsys_isdefault\":true,\"smsys_enabled\":true,\"smsys_config\":"
             "\"{\\\"base_url\\\":\\\"%s/kavenegar\\\",\\\"sender\\\":\\\"10004346\\\","
             "\\\"low_balance\\\":2000000}\",\"smsys_apikey\":\"" KV_KEY "\"}",
             base);
    pkf_post(&f, "smsys_smssettings", body);
    /* Twilio: 1000 USD, threshold below it -> not low. */
    snprintf(body, sizeof body,
             "{\"smsys_smssettingid\":\"" A2 "\",\"smsys_name\":\"TW\",\"smsys_provider\":"
             "\"twilio\",\"smsys_isdefault\":false,\"smsys_enabled\":true,\"smsys_config\":"
             "\"{\\\"base_url\\\":\\\"%s/twilio\\\",\\\"account_sid\\\":\\\"" TW_SID "\\\","
             "\\\"sender\\\":\\\"+15005550006\\\",\\\"low_balance\\\":10}\","
             "\"smsys_apikey\":\"" TW_TOKEN "\"}",
             base);
    pkf_post(&f, "smsys_smssettings", body);
    struct accounts *acc;
    assert_int_equal(accounts_new(&f.loop, f.pool, f.dv, &acc), 0);
    int done = 0;
    assert_int_equal(accounts_sync(acc, sync_cb, &done), 0);
    assert_int_equal(tu_run_until(&f.loop, &done, 10000), 0);
    assert_int_equal(done, 1);

    struct connmgr_opts o = {.poll_ms = 200,
                             .lease_ms = 5000,
                             .balance_ms = 3600000, /* on demand only in this test */
                             .on_balance = on_balance_cb};
    struct connmgr *m;
    assert_int_equal(connmgr_new(&f.loop, f.pool, f.q, f.http, &o, &m), 0);
    for (int i = 0; i < 50 && connmgr_count(m) < 2; i++)
        run_ms(100);
    assert_int_equal(connmgr_count(m), 2);
    /* the first timed read comes 2 s after start; ask now instead */
    assert_int_equal(connmgr_balance_refresh(m, NULL), 2);
    assert_int_equal(connmgr_balance_refresh(m, NULL), 0); /* not doubled while running */
    for (int i = 0; i < 100 && writes < 2; i++)
        run_ms(50);
    assert_int_equal(writes, 2);
    assert_int_equal(write_fail, 0);

    cJSON *j = pkf_get(&f, "smsys_smssettings(" A1 ")?$select=smsys_balance,smsys_balanceunit,"
                           "smsys_balanceupdatedon");
    assert_true(cJSON_GetObjectItem(j, "smsys_balance")->valuedouble > 999999.0);
    assert_string_equal(cJSON_GetObjectItem(j, "smsys_balanceunit")->valuestring, "IRR");
    assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "smsys_balanceupdatedon")));
    cJSON_Delete(j);
    j = pkf_get(&f, "smsys_smssettings(" A2 ")?$select=smsys_balance,smsys_balanceunit");
    assert_true(cJSON_GetObjectItem(j, "smsys_balance")->valuedouble > 999.0);
    assert_string_equal(cJSON_GetObjectItem(j, "smsys_balanceunit")->valuestring, "USD");
    cJSON_Delete(j);

    assert_true(gauge("smsys_provider_balance", "KV") > 999999.0);
    assert_true(gauge("smsys_provider_balance_low", "KV") == 1.0);
    assert_true(gauge("smsys_provider_balance_low", "TW") == 0.0);
    assert_int_equal(log_has("provider balance low", "account=KV"), 1);
    assert_int_equal(log_has("provider balance low", "account=TW"), 0);

    /* The credit drops at the provider: one account on demand sees it. */
    sim_post("/_sim/balance", "{\"provider\":\"twilio\",\"balance\":5}");
    assert_int_equal(connmgr_balance_refresh(m, A2), 1);
    for (int i = 0; i < 100 && writes < 3; i++)
        run_ms(50);
    assert_int_equal(writes, 3);
    assert_true(gauge("smsys_provider_balance_low", "TW") == 1.0);
    assert_int_equal(log_has("provider balance low", "account=TW"), 1);
    j = pkf_get(&f, "smsys_smssettings(" A2 ")?$select=smsys_balance");
    assert_true(cJSON_GetObjectItem(j, "smsys_balance")->valuedouble < 5.01);
    cJSON_Delete(j);

    done = 0;
    connmgr_close(m, pkf_flag_cb, &done);
    assert_int_equal(tu_run_until(&f.loop, &done, 10000), 0);
    accounts_free(acc);
    pkf_close(&f);
    log_setup(LOG_INFO, LOG_TEXT, stderr);
    fclose(logf_);
    unlink(logfile);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_balance_read_and_written, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
