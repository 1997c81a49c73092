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
    fx_expect_faults(f, "asanak", to[0], "*4567",
                     (const char *const[]){"429", "503", "1005", "1010"});
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_send_status_balance),
        T(test_error_classes),
    };
    fx_filter();
    return cmocka_run_group_tests(tests, sim_start, sim_stop);
}
