/* Melipayamak (Payamak-panel) connector against provsim over loopback HTTP. */
#include "conn_sim.h"

static void open_mp(struct fx *f, const char *pass)
{
    snprintf(f->apikey, sizeof f->apikey, "%s", pass);
    if (fx_open(f, "melipayamak",
                "{\"base_url\":\"http://127.0.0.1:%d/melipayamak\",\"username\":\"demo\","
                "\"sender\":\"50004001234567\"}",
                sim_port) != 0)
        fail_msg("open: %s", f->err.detail);
}

static void test_send_status_inbox_balance_lines(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{\"receipt_delay_ms\":300,\"outcome\":{\"delivered\":100,\"undelivered\":0}}");
    open_mp(f, "demo");
    const char *to[] = {"+989121111111", "+989122222222"};
    const char *txt[] = {PERSIAN, PERSIAN};
    fx_send(f, 2, to, txt, NULL);
    for (int i = 0; i < 2; i++)
        if (f->r[i].rc != 0 || strlen(f->r[i].pid) < 15)
            fail_msg("msg %d: rc %d %s", i, f->r[i].rc, f->r[i].detail);
    cJSON *m = sim_messages(f, "melipayamak");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "requests")), 1);
    const cJSON *x = sim_find(m, "id", f->r[1].pid);
    assert_non_null(x);
    assert_string_equal(js(x, "text"), PERSIAN);
    assert_string_equal(js(x, "to"), "09122222222");
    assert_string_equal(js(x, "from"), "50004001234567");
    cJSON_Delete(m);
    char pid[64];
    snprintf(pid, sizeof pid, "%s", f->r[0].pid);
    const char *ids[] = {pid};
    fx_status(f, ids, 1);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->r[0].st, CONN_ST_QUEUED);
    assert_int_equal(fx_wait_final(f, pid, 3000), CONN_ST_DELIVERED);

    cJSON_Delete(sim_call(
        f, "POST", "/_sim/inbox",
        "{\"provider\":\"melipayamak\",\"from\":\"09121234567\",\"text\":\"" PERSIAN "\"}"));
    fx_inbox(f);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->n_mo, 1);
    assert_string_equal(f->mo_text[0], PERSIAN);
    fx_inbox(f);
    assert_int_equal(f->n_mo, 0);
    fx_balance(f);
    assert_int_equal(f->rc, 0);
    assert_true(f->bal.amount == 1000000 - 2);
    fx_lines(f);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->n_lines, 2);
    assert_string_equal(f->line[0], "50004001234567");
}

static void test_error_classes(void **state)
{
    struct fx *f = *state;
    open_mp(f, "demo");
    const char *to[] = {"+989121234567"};
    fx_expect_faults(
        f, "melipayamak", to[0], "*4567",
        (const char *const[]){"melipayamak 3", "melipayamak 6", "melipayamak 2", "melipayamak 16"});
    fx_close_conn(f);
    open_mp(f, "wrong");
    sim_config(f, "{}");
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_EACCOUNT);
    assert_non_null(strstr(f->r[0].detail, "melipayamak 0"));
}

static void test_open_needs_username(void **state)
{
    struct fx *f = *state;
    snprintf(f->apikey, sizeof f->apikey, "demo");
    assert_int_equal(fx_open(f, "melipayamak", "{}"), SMSYS_ECONFIG);
    assert_non_null(strstr(f->err.detail, "username"));
    f->c = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_send_status_inbox_balance_lines),
        T(test_error_classes),
        T(test_open_needs_username),
    };
    fx_filter();
    return cmocka_run_group_tests(tests, sim_start, sim_stop);
}
