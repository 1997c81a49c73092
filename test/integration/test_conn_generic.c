/* The generic connector, configured only by settings, against provsim:
 * once as a JSON panel (provsim's SMS.ir API, JSON pointers) and once as a
 * form panel (provsim's Kavenegar API, regular expressions). */
#include "conn_sim.h"

#define H  "\"headers\":[\"X-API-KEY: {apikey}\"],"
#define OK "\"ok_pointer\":\"/status\",\"ok_value\":\"1\",\"message_pointer\":\"/message\","

/* A JSON panel: what a customer would write for an SMS.ir-like API. */
#define JSON_PANEL                                                                                 \
    "{\"base_url\":\"http://127.0.0.1:%d/smsir/v1\",\"sender\":\"30007732000000\","                \
    "\"phone_format\":\"national\",\"max_batch\":2,"                                               \
    "\"send\":{\"method\":\"POST\",\"url\":\"{base_url}/send/bulk\","                              \
    "\"content_type\":\"application/json\"," H OK                                                  \
    "\"body\":\"{\\\"lineNumber\\\":\\\"{from}\\\",\\\"messageText\\\":{text_json},"               \
    "\\\"mobiles\\\":{to_array_json}}\","                                                          \
    "\"id_pointer\":\"/data/messageIds\"},"                                                        \
    "\"status\":{\"url\":\"{base_url}/send/{provider_id}\"," H OK                                  \
    "\"status_pointer\":\"/data/deliveryState\",\"status_map\":{\"1\":\"delivered\","              \
    "\"2\":\"undelivered\",\"3\":\"queued\",\"4\":\"queued\",\"5\":\"sent\",\"6\":\"failed\","     \
    "\"7\":\"blacklisted\"}},"                                                                     \
    "\"balance\":{\"url\":\"{base_url}/credit\"," H OK "\"balance_pointer\":\"/data\"},"           \
    "\"inbox\":{\"url\":\"{base_url}/receive/latest?count=100\"," H OK                             \
    "\"items_pointer\":\"/data\",\"text_pointer\":\"/messageText\",\"from_pointer\":\"/mobile\","  \
    "\"to_pointer\":\"/number\"},"                                                                 \
    "\"error_map\":{\"10\":\"account\",\"102\":\"account\",\"104\":\"permanent\","                 \
    "\"20\":\"throttled\",\"101\":\"permanent\"}}"

/* A form panel read with regular expressions (Kavenegar's API shape). */
#define FORM_PANEL                                                                                 \
    "{\"base_url\":\"http://127.0.0.1:%d/kavenegar/v1\",\"sender\":\"10004346\","                  \
    "\"send\":{\"url\":\"{base_url}/{apikey}/sms/send.json\","                                     \
    "\"content_type\":\"application/x-www-form-urlencoded\","                                      \
    "\"body\":\"receptor={to}&message={text}&sender={from}\","                                     \
    "\"ok_regex\":\"\\\"status\\\":([0-9]+)\",\"ok_value\":\"200\","                               \
    "\"id_regex\":\"\\\"messageid\\\":([0-9]+)\"},"                                                \
    "\"balance\":{\"url\":\"{base_url}/{apikey}/account/info.json\","                              \
    "\"ok_regex\":\"\\\"status\\\":([0-9]+)\",\"ok_value\":\"200\","                               \
    "\"balance_regex\":\"\\\"remaincredit\\\":([0-9.]+)\",\"unit\":\"IRR\"},"                      \
    "\"error_map\":{\"418\":\"account\",\"411\":\"permanent\",\"429\":\"throttled\"}}"

static void open_json(struct fx *f)
{
    snprintf(f->apikey, sizeof f->apikey, "demo-smsir-key");
    if (fx_open(f, "generic", JSON_PANEL, sim_port) != 0)
        fail_msg("open: %s", f->err.detail);
}

static void test_json_send_batches(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{}");
    open_json(f);
    const char *to[] = {"+989121111111", "+989122222222", "+989123333333"};
    const char *txt[] = {PERSIAN, PERSIAN, PERSIAN};
    fx_send(f, 3, to, txt, NULL);
    for (int i = 0; i < 3; i++) {
        if (f->r[i].rc != 0)
            fail_msg("msg %d: %s", i, f->r[i].detail);
        assert_true(f->r[i].pid[0]);
    }
    cJSON *m = sim_messages(f, "smsir");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "requests")), 2); /* 2 + 1 */
    assert_string_equal(js(sim_msg(m, 0), "text"), PERSIAN);
    assert_string_equal(js(sim_msg(m, 0), "to"), "09121111111");
    assert_string_equal(js(sim_msg(m, 0), "from"), "30007732000000");
    assert_string_equal(js(sim_msg(m, 2), "id"), f->r[2].pid);
    cJSON_Delete(m);
}

static void test_json_status_balance_inbox(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{\"receipt_delay_ms\":300,\"outcome\":{\"delivered\":100,\"undelivered\":0}}");
    open_json(f);
    const char *to[] = {"+989121111111"};
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, 0);
    char pid[64];
    snprintf(pid, sizeof pid, "%s", f->r[0].pid);
    const char *ids[] = {pid};
    fx_status(f, ids, 1);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->n, 1);
    assert_int_equal(f->r[0].st, CONN_ST_QUEUED);
    assert_int_equal(fx_wait_final(f, pid, 3000), CONN_ST_DELIVERED);

    cJSON_Delete(sim_call(f, "POST", "/_sim/balance", "{\"smsir\":777}"));
    fx_balance(f);
    assert_int_equal(f->rc, 0);
    assert_true(f->bal.amount == 777);

    cJSON_Delete(sim_call(f, "POST", "/_sim/inbox",
                          "{\"provider\":\"smsir\",\"from\":\"09121234567\",\"text\":\"" PERSIAN
                          "\"}"));
    fx_inbox(f);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->n_mo, 1);
    assert_string_equal(f->mo_text[0], PERSIAN);
    assert_non_null(strstr(f->mo_from[0], "9121234567"));
}

static void test_json_error_map(void **state)
{
    struct fx *f = *state;
    open_json(f);
    const char *to[] = {"+989121234567"};
    sim_config(f, "{\"smsir\":{\"no_credit\":true}}");
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_EACCOUNT);
    assert_non_null(strstr(f->r[0].detail, "102"));
    sim_config(f, "{\"smsir\":{\"rate_limit_every\":1}}");
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_ETHROTTLED);
    sim_config(f, "{\"smsir\":{\"bad_numbers\":\"*4567\"}}");
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_EPERM);
    assert_non_null(strstr(f->r[0].detail, "104"));
    fx_close_conn(f);
    snprintf(f->apikey, sizeof f->apikey, "bad");
    assert_int_equal(fx_open(f, "generic", JSON_PANEL, sim_port), 0);
    sim_config(f, "{}");
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_EACCOUNT); /* 10 or HTTP 401 */
}

/* A configured panel answering only HTTP 500 is down as a whole: from the
 * CH_OUTAGE_STREAK-th request in a row a failing send is account-wide
 * (the account pauses, the attempt is given back), as for the built-in
 * connectors. */
static void test_json_outage(void **state)
{
    struct fx *f = *state;
    open_json(f);
    const char *to[] = {"+989121234567"};
    sim_config(f, "{\"smsir\":{\"fail_rate\":1}}");
    for (int i = 1; i < CH_OUTAGE_STREAK; i++) {
        fx_send(f, 1, to, NULL, NULL);
        assert_int_equal(f->r[0].rc, SMSYS_ETEMP);
    }
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_EACCOUNT);
    assert_non_null(strstr(f->r[0].detail, "provider unreachable (3 requests in a row)"));
    sim_config(f, "{\"smsir\":{\"fail_rate\":0}}");
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, 0);
}

static void test_form_regex_panel(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{}");
    snprintf(f->apikey, sizeof f->apikey, "demo-kavenegar-key");
    if (fx_open(f, "generic", FORM_PANEL, sim_port) != 0)
        fail_msg("open: %s", f->err.detail);
    const char *to[] = {"+989121234567"};
    const char *txt[] = {"a&b=c + " PERSIAN}; /* form escaping */
    fx_send(f, 1, to, txt, NULL);
    if (f->r[0].rc != 0)
        fail_msg("%s", f->r[0].detail);
    cJSON *m = sim_messages(f, "kavenegar");
    assert_string_equal(js(sim_msg(m, 0), "text"), txt[0]);
    assert_string_equal(js(sim_msg(m, 0), "id"), f->r[0].pid);
    cJSON_Delete(m);
    fx_balance(f);
    assert_int_equal(f->rc, 0);
    assert_true(f->bal.amount == 1000000 - 1); /* one UCS-2 segment billed */
    sim_config(f, "{\"kavenegar\":{\"no_credit\":true}}");
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_EACCOUNT);
    assert_non_null(strstr(f->r[0].detail, "418"));
    /* no status op configured */
    const char *ids[] = {"1"};
    assert_int_equal(f->ops->status(f->c, ids, 1, status_cb, f), -ENOTSUP);
}

static void expect_bad(struct fx *f, const char *settings, const char *needle)
{
    snprintf(f->apikey, sizeof f->apikey, "k");
    f->c = NULL;
    int rc = fx_open(f, "generic", "%s", settings);
    if (rc != SMSYS_ECONFIG || strstr(f->err.detail, needle) == NULL)
        fail_msg("settings %s: rc %d detail '%s', want '%s'", settings, rc, f->err.detail, needle);
    assert_null(f->c);
}

static void test_open_validation(void **state)
{
    struct fx *f = *state;
    expect_bad(f, "{\"send\":{\"url\":\"{base_url}/x\"}}", "base_url");
    expect_bad(f, "{\"base_url\":\"http://x\"}", "send");
    expect_bad(f, "{\"base_url\":\"http://x\",\"send\":{\"url\":\"{base_url}/{recipient}\"}}",
               "{recipient}");
    expect_bad(f, "{\"base_url\":\"http://x\",\"send\":{\"url\":\"{base_url}/{provider_id}\"}}",
               "provider_id");
    expect_bad(f, "{\"base_url\":\"http://x\",\"send\":{\"url\":\"u\",\"id_regex\":\"(\"}}",
               "send.id_regex");
    expect_bad(f, "{\"base_url\":\"http://x\",\"send\":{\"url\":\"u\",\"id_pointer\":\"data\"}}",
               "send.id_pointer");
    expect_bad(f,
               "{\"base_url\":\"http://x\",\"send\":{\"url\":\"u\"},\"status\":{\"url\":\"u\","
               "\"status_pointer\":\"/s\",\"status_map\":{\"1\":\"arrived\"}}}",
               "status.status_map.1");
    expect_bad(f, "{\"base_url\":\"http://x\",\"send\":{\"url\":\"u\",\"colour\":1}}",
               "send.colour");
    expect_bad(f,
               "{\"base_url\":\"http://x\",\"send\":{\"url\":\"u\"},\"error_map\":{\"1\":\"x\"}}",
               "error_map.1");
    expect_bad(f, "{\"base_url\":\"http://x\",\"send\":{\"url\":\"u\"},\"phone_format\":\"local\"}",
               "phone_format");
    expect_bad(f, "{\"base_url\":\"http://x\",\"send\":{\"url\":\"u\"},\"status\":{\"url\":\"u\"}}",
               "status_pointer");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_json_send_batches), T(test_json_status_balance_inbox), T(test_json_error_map),
        T(test_form_regex_panel),  T(test_open_validation),           T(test_json_outage),
    };
    fx_filter();
    return cmocka_run_group_tests(tests, sim_start, sim_stop);
}
