/* Asanak connector against provsim over real loopback HTTP. */
#include "conn_sim.h"

static void open_as(struct fx *f, const char *pass)
{
    snprintf(f->apikey, sizeof f->apikey, "%s", pass);
    if (fx_open(f, "asanak",
                "{\"base_url\":\"http://127.0.0.1:%d/asanak\",\"username\":\"demo\","
                "\"sender\":\"9821000000\"}",
                sim_port) != 0)
        fail_msg("open: %s", f->err.detail);
}

static void test_send_status_balance(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{\"receipt_delay_ms\":300,\"outcome\":{\"delivered\":100,\"undelivered\":0}}");
    open_as(f, "demo");
    const char *to[] = {"+989121111111", "+989352222222"};
    const char *txt[] = {PERSIAN, PERSIAN};
    fx_send(f, 2, to, txt, NULL);
    for (int i = 0; i < 2; i++)
        if (f->r[i].rc != 0 || !f->r[i].pid[0])
            fail_msg("msg %d: %s", i, f->r[i].detail);
    cJSON *m = sim_messages(f, "asanak");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "requests")), 1);
    const cJSON *x = sim_find(m, "id", f->r[1].pid);
    assert_non_null(x);
    assert_string_equal(js(x, "text"), PERSIAN);
    assert_string_equal(js(x, "to"), "09352222222");
    assert_string_equal(js(x, "from"), "9821000000");
    cJSON_Delete(m);
    char p0[64], p1[64];
    snprintf(p0, sizeof p0, "%s", f->r[0].pid);
    snprintf(p1, sizeof p1, "%s", f->r[1].pid);
    const char *ids[] = {p0, p1};
    fx_status(f, ids, 2);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->n, 2);
    assert_int_equal(f->r[0].st, CONN_ST_QUEUED);
    assert_int_equal(fx_wait_final(f, p1, 3000), CONN_ST_DELIVERED);
    fx_balance(f);
    assert_int_equal(f->rc, 0);
    assert_true(f->bal.amount == 1000000 - 2);
    assert_null(f->ops->inbox); /* no inbox API */
}

static void test_error_classes(void **state)
{
    struct fx *f = *state;
    open_as(f, "demo");
    const char *to[] = {"+989121234567"};
    static const struct {
        const char *cfg;
        int rc;
        const char *code;
    } cases[] = {
        {"{\"asanak\":{\"rate_limit_every\":1}}", SMSYS_ETHROTTLED, "429"},
        {"{\"asanak\":{\"busy\":true}}", SMSYS_ETEMP, "503"},
        {"{\"asanak\":{\"no_credit\":true}}", SMSYS_EACCOUNT, "1005"},
        {"{\"asanak\":{\"bad_numbers\":\"*4567\"}}", SMSYS_EPERM, "1010"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sim_config(f, cases[i].cfg);
        fx_send(f, 1, to, NULL, NULL);
        if (f->r[0].rc != cases[i].rc || !strstr(f->r[0].detail, cases[i].code))
            fail_msg("%s: rc %d detail %s", cases[i].cfg, f->r[0].rc, f->r[0].detail);
    }
    const char *two[] = {"+989121234567", "+989127654321"};
    fx_send(f, 2, two, NULL, NULL); /* split: the good one still goes */
    assert_int_equal(f->r[0].rc, SMSYS_EPERM);
    assert_int_equal(f->r[1].rc, 0);
    fx_close_conn(f);
    open_as(f, "wrong");
    sim_config(f, "{}");
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_EACCOUNT);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_send_status_balance),
        T(test_error_classes),
    };
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, sim_start, sim_stop);
}
