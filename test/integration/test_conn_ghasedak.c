/* Ghasedak connector against provsim over real loopback HTTP. */
#include "conn_sim.h"

static void open_gh(struct fx *f, const char *extra)
{
    snprintf(f->apikey, sizeof f->apikey, "demo-ghasedak-key");
    if (fx_open(f, "ghasedak",
                "{\"base_url\":\"http://127.0.0.1:%d/ghasedak\",\"sender\":\"30005088\"%s}",
                sim_port, extra ? extra : "") != 0)
        fail_msg("open: %s", f->err.detail);
}

static void test_send_single_and_pairs(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{}");
    open_gh(f, NULL);
    const char *to1[] = {"+989121234567"};
    const char *t1[] = {PERSIAN};
    fx_send(f, 1, to1, t1, NULL);
    if (f->r[0].rc != 0)
        fail_msg("%s", f->r[0].detail);
    const char *to[] = {"+989121111111", "+989122222222", "+989123333333"};
    const char *txt[] = {"one", PERSIAN, "three"};
    fx_send(f, 3, to, txt, NULL);
    for (int i = 0; i < 3; i++)
        if (f->r[i].rc != 0 || !f->r[i].pid[0])
            fail_msg("msg %d: %s", i, f->r[i].detail);
    cJSON *m = sim_messages(f, "ghasedak");
    const cJSON *reqs = cJSON_GetObjectItem(m, "requests");
    assert_int_equal(cJSON_GetArraySize(reqs), 2);
    assert_string_equal(js(cJSON_GetArrayItem(reqs, 0), "op"), "SendSingleSMS");
    assert_string_equal(js(cJSON_GetArrayItem(reqs, 1), "op"), "SendPairToPairSMS");
    assert_string_equal(js(sim_msg(m, 0), "text"), PERSIAN);
    assert_string_equal(js(sim_msg(m, 0), "to"), "09121234567");
    assert_string_equal(js(sim_msg(m, 0), "idempotency_key"), "m0");
    const cJSON *x = sim_find(m, "id", f->r[1].pid);
    assert_non_null(x);
    assert_string_equal(js(x, "text"), PERSIAN);
    assert_string_equal(js(x, "idempotency_key"), "m1");
    assert_string_equal(js(x, "to"), "09122222222");
    cJSON_Delete(m);
}

static void test_status_inbox_balance(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{\"receipt_delay_ms\":300,\"outcome\":{\"delivered\":100,\"undelivered\":0}}");
    open_gh(f, NULL);
    const char *to[] = {"+989121234567"};
    fx_send(f, 1, to, NULL, NULL);
    char pid[64];
    snprintf(pid, sizeof pid, "%s", f->r[0].pid);
    const char *ids[] = {pid};
    fx_status(f, ids, 1);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->n, 1);
    assert_int_equal(f->r[0].st, CONN_ST_QUEUED);
    assert_int_equal(fx_wait_final(f, pid, 3000), CONN_ST_DELIVERED);
    cJSON_Delete(sim_call(f, "POST", "/_sim/inbox",
                          "{\"provider\":\"ghasedak\",\"from\":\"09121234567\",\"text\":\"" PERSIAN
                          "\"}"));
    fx_inbox(f);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->n_mo, 1);
    assert_string_equal(f->mo_text[0], PERSIAN);
    assert_string_equal(f->mo_to[0], "30005088");
    fx_balance(f);
    assert_int_equal(f->rc, 0);
    assert_true(f->bal.amount == 1000000 - 1);
}

static void test_error_classes(void **state)
{
    struct fx *f = *state;
    open_gh(f, NULL);
    const char *to[] = {"+989121234567"};
    fx_expect_faults(f, "ghasedak", to[0], "*4567",
                     (const char *const[]){"429", "503", "402", "422"});
    fx_close_conn(f);
    snprintf(f->apikey, sizeof f->apikey, "bad-key");
    assert_int_equal(
        fx_open(f, "ghasedak", "{\"base_url\":\"http://127.0.0.1:%d/ghasedak\"}", sim_port), 0);
    sim_config(f, "{}");
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_EACCOUNT);
}

/* clientReferenceId: a lost reply is retryable, and the retry is deduplicated. */
static void test_idempotent_resend(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{\"ghasedak\":{\"drop_rate\":1,\"drop_hold_ms\":1000}}");
    open_gh(f, ",\"timeout_ms\":300");
    const char *to[] = {"+989121234567"};
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_ETEMP);
    cJSON_Delete(sim_call(f, "POST", "/_sim/config", "{\"ghasedak\":{\"drop_rate\":0}}"));
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, 0);
    cJSON *m = sim_messages(f, "ghasedak");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "messages")), 1);
    cJSON_Delete(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_send_single_and_pairs),
        T(test_status_inbox_balance),
        T(test_error_classes),
        T(test_idempotent_resend),
    };
    fx_filter();
    return cmocka_run_group_tests(tests, sim_start, sim_stop);
}
