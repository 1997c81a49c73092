/* SMS.ir connector against provsim over real loopback HTTP. */
#include "conn_sim.h"

static void open_ir(struct fx *f)
{
    snprintf(f->apikey, sizeof f->apikey, "demo-smsir-key");
    if (fx_open(f, "smsir",
                "{\"base_url\":\"http://127.0.0.1:%d/smsir\",\"sender\":\"30007732000000\"}",
                sim_port) != 0)
        fail_msg("open: %s", f->err.detail);
}

static void test_send_split_and_format(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{}");
    open_ir(f);
    enum { N = 150 };
    static char nums[N][20];
    const char *to[N], *txt[N];
    for (int i = 0; i < N; i++) {
        snprintf(nums[i], sizeof nums[i], "+98912%07d", 2000 + i);
        to[i] = nums[i];
        txt[i] = PERSIAN;
    }
    fx_send(f, N, to, txt, NULL);
    for (int i = 0; i < N; i++)
        if (f->r[i].rc != 0)
            fail_msg("msg %d: %s", i, f->r[i].detail);
    cJSON *m = sim_messages(f, "smsir");
    const cJSON *reqs = cJSON_GetObjectItem(m, "requests");
    assert_int_equal(cJSON_GetArraySize(reqs), 2); /* 100 + 50 */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 0), "to")) +
                         cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 1), "to")),
                     N);
    assert_string_equal(js(sim_msg(m, 0), "text"), PERSIAN);
    assert_string_equal(js(sim_msg(m, 0), "to"), "09120002000");
    cJSON_Delete(m);
}

static void test_status_inbox_balance_lines(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{\"receipt_delay_ms\":300,\"outcome\":{\"delivered\":0,\"undelivered\":100}}");
    open_ir(f);
    const char *to[] = {"+989121234567"};
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, 0);
    char pid[64];
    snprintf(pid, sizeof pid, "%s", f->r[0].pid);
    const char *ids[] = {pid, "424242"};
    fx_status(f, ids, 2);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->n, 2);
    int mine = strcmp(f->r[0].pid, pid) == 0 ? 0 : 1;
    assert_int_equal(f->r[mine].st, CONN_ST_QUEUED);
    assert_int_equal(f->r[1 - mine].st, CONN_ST_UNKNOWN);
    assert_int_equal(fx_wait_final(f, pid, 3000), CONN_ST_UNDELIVERED);

    cJSON_Delete(sim_call(f, "POST", "/_sim/inbox",
                          "{\"provider\":\"smsir\",\"from\":\"09121234567\",\"text\":\"" PERSIAN
                          "\"}"));
    fx_inbox(f);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->n_mo, 1);
    assert_string_equal(f->mo_text[0], PERSIAN);
    fx_inbox(f);
    assert_int_equal(f->n_mo, 0);

    fx_balance(f);
    assert_int_equal(f->rc, 0);
    assert_true(f->bal.amount == 1000000 - 1);
    fx_lines(f);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->n_lines, 2);
    assert_string_equal(f->line[0], "30007732000000");
}

static void test_error_classes(void **state)
{
    struct fx *f = *state;
    open_ir(f);
    const char *to[] = {"+989121234567"};
    fx_expect_faults(f, "smsir", to[0], "*4567", (const char *const[]){"20", "503", "102", "104"});
    /* a bad number inside a batch: the batch is split, the others go */
    const char *two[] = {"+989121234567", "+989127654321"};
    fx_send(f, 2, two, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_EPERM);
    assert_int_equal(f->r[1].rc, 0);
    fx_close_conn(f);
    snprintf(f->apikey, sizeof f->apikey, "bad-key");
    assert_int_equal(fx_open(f, "smsir", "{\"base_url\":\"http://127.0.0.1:%d/smsir\"}", sim_port),
                     0);
    sim_config(f, "{}");
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_EACCOUNT);
}

/* No idempotency key at SMS.ir: a lost reply is an unknown outcome. */
static void test_unknown_outcome(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{\"smsir\":{\"drop_rate\":1,\"drop_hold_ms\":1000}}");
    snprintf(f->apikey, sizeof f->apikey, "demo-smsir-key");
    assert_int_equal(fx_open(f, "smsir",
                             "{\"base_url\":\"http://127.0.0.1:%d/smsir\",\"timeout_ms\":300,"
                             "\"sender\":\"30007732000000\"}",
                             sim_port),
                     0);
    assert_int_equal(f->ops->supports_idempotency, 0);
    const char *to[] = {"+989121234567"};
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_EUNKNOWN);
    cJSON *m = sim_messages(f, "smsir"); /* it did take effect */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "messages")), 1);
    cJSON_Delete(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_send_split_and_format),
        T(test_status_inbox_balance_lines),
        T(test_error_classes),
        T(test_unknown_outcome),
    };
    fx_filter();
    return cmocka_run_group_tests(tests, sim_start, sim_stop);
}
