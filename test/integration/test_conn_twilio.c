/* Twilio connector against provsim, with a real webhook receiver
 * (http_server on loopback) that feeds provsim's signed callbacks to the
 * connector's webhook op. */
#include "conn_sim.h"

#include "smsys/http_server.h"

struct hooks {
    struct fx *f;
    int n_ok, n_auth;
    struct conn_event ev[16];
    char sid[16][64], text[16][400];
};

static struct hooks hk;

static void hook_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct conn_event *ev;
    size_t n;
    int rc = hk.f->c ? hk.f->ops->webhook(hk.f->c, req, &ev, &n) : -EINVAL;
    if (rc == 0 && n == 1 && hk.n_ok < 16) {
        hk.ev[hk.n_ok] = ev[0];
        if (ev[0].kind == CONN_EV_STATE)
            snprintf(hk.sid[hk.n_ok], 64, "%s", ev[0].u.state.provider_id);
        else
            snprintf(hk.text[hk.n_ok], 400, "%s", ev[0].u.mo.text);
        hk.n_ok++;
        conn_events_free(ev, n);
    } else if (rc == SMSYS_EAUTH) {
        hk.n_auth++;
    }
    http_resp_send(resp, rc == 0 ? 200 : rc == SMSYS_EAUTH ? 403 : 400, "text/plain", "", 0);
}

struct srv {
    struct http_server *s;
    int port, closed;
};

static void srv_start(struct fx *f, struct srv *sv)
{
    struct http_server_opts o = {.listen = "127.0.0.1:0"};
    assert_int_equal(http_server_new(&f->loop, &o, &sv->s), 0);
    assert_int_equal(http_server_route(sv->s, "POST", "/hook/twilio", hook_cb, NULL), 0);
    sv->port = http_server_port(sv->s);
    memset(&hk, 0, sizeof hk);
    hk.f = f;
}

static void srv_done_cb(void *ud)
{
    ((struct srv *)ud)->closed = 1;
}

static void srv_stop(struct fx *f, struct srv *sv)
{
    http_server_close(sv->s, srv_done_cb, sv);
    assert_int_equal(run_until(&f->loop, &sv->closed, 5000), 0);
}

static void open_tw(struct fx *f, int hook_port, const char *token)
{
    snprintf(f->apikey, sizeof f->apikey, "%s", token);
    if (fx_open(f, "twilio",
                "{\"base_url\":\"http://127.0.0.1:%d/twilio\",\"account_sid\":\"ACdemo\","
                "\"sender\":\"+15005550006\","
                "\"status_callback\":\"http://127.0.0.1:%d/hook/twilio?acct=1\","
                "\"webhook_base_url\":\"http://127.0.0.1:%d\"}",
                sim_port, hook_port, hook_port) != 0)
        fail_msg("open: %s", f->err.detail);
}

static void test_send_status_webhooks(void **state)
{
    struct fx *f = *state;
    struct srv sv = {0};
    srv_start(f, &sv);
    sim_config(f, "{\"receipt_delay_ms\":300,\"outcome\":{\"delivered\":100,\"undelivered\":0}}");
    open_tw(f, sv.port, "demo-twilio-token");
    const char *to[] = {"+989121234567", "+14155550100"};
    const char *txt[] = {PERSIAN, "hello"};
    fx_send(f, 2, to, txt, NULL);
    for (int i = 0; i < 2; i++)
        if (f->r[i].rc != 0 || strncmp(f->r[i].pid, "SM", 2) != 0)
            fail_msg("msg %d: %s", i, f->r[i].detail);
    assert_int_equal(f->r[0].segs, 1);
    cJSON *m = sim_messages(f, "twilio");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "requests")), 2); /* no batching */
    const cJSON *x = sim_find(m, "id", f->r[0].pid);
    assert_non_null(x);
    assert_string_equal(js(x, "text"), PERSIAN);
    assert_string_equal(js(x, "to"), "+989121234567");
    cJSON_Delete(m);
    char pid[64];
    snprintf(pid, sizeof pid, "%s", f->r[0].pid);
    assert_int_equal(fx_wait_final(f, pid, 3000), CONN_ST_DELIVERED);
    /* signed status callbacks: sent + delivered for each of the 2 */
    uint64_t end = util_now_ms() + 3000;
    while (hk.n_ok < 4 && util_now_ms() < end) {
        int never = 0;
        run_until(&f->loop, &never, 50);
    }
    assert_int_equal(hk.n_auth, 0);
    assert_true(hk.n_ok >= 4);
    int delivered = 0;
    for (int i = 0; i < hk.n_ok; i++)
        if (hk.ev[i].kind == CONN_EV_STATE && hk.ev[i].u.state.status == CONN_ST_DELIVERED &&
            strcmp(hk.sid[i], pid) == 0)
            delivered++;
    assert_int_equal(delivered, 1);

    /* inbound pushed to the same receiver */
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"twilio\":{\"inbound_url\":\"http://127.0.0.1:%d/hook/twilio\"}}",
             sv.port);
    cJSON_Delete(sim_call(f, "POST", "/_sim/config", cfg));
    int before = hk.n_ok;
    cJSON_Delete(sim_call(f, "POST", "/_sim/inbox",
                          "{\"provider\":\"twilio\",\"from\":\"+14155550100\",\"text\":\"" PERSIAN
                          "\"}"));
    end = util_now_ms() + 3000;
    while (hk.n_ok == before && util_now_ms() < end) {
        int never = 0;
        run_until(&f->loop, &never, 50);
    }
    assert_int_equal(hk.n_ok, before + 1);
    assert_int_equal(hk.ev[before].kind, CONN_EV_MO);
    assert_string_equal(hk.text[before], PERSIAN);
    fx_close_conn(f);
    srv_stop(f, &sv);
}

/* A connector holding another token rejects provsim's signatures. */
static void test_webhook_bad_signature(void **state)
{
    struct fx *f = *state;
    struct srv sv = {0};
    srv_start(f, &sv);
    sim_config(f, "{\"receipt_delay_ms\":200}");
    open_tw(f, sv.port, "demo-twilio-token");
    const char *to[] = {"+14155550100"};
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, 0);
    fx_close_conn(f);
    open_tw(f, sv.port, "another-token"); /* now verifies with the wrong key */
    uint64_t end = util_now_ms() + 2000;
    while (hk.n_auth < 2 && util_now_ms() < end) {
        int never = 0;
        run_until(&f->loop, &never, 50);
    }
    assert_int_equal(hk.n_ok, 0);
    assert_true(hk.n_auth >= 1);
    fx_close_conn(f);
    srv_stop(f, &sv);
}

static void test_balance_lines_errors(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{}");
    open_tw(f, 9, "demo-twilio-token");
    fx_balance(f);
    assert_int_equal(f->rc, 0);
    assert_true(f->bal.amount == 1000);
    assert_string_equal(f->bal_unit, "USD");
    fx_lines(f);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->n_lines, 2);
    assert_string_equal(f->line[0], "+15005550006");
    const char *to[] = {"+14155550100"};
    fx_expect_faults(f, "twilio", to[0], "*0100",
                     (const char *const[]){"20429", "20503", "10001", "21211"});
    fx_close_conn(f);
    sim_config(f, "{}");
    open_tw(f, 9, "wrong-token");
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_EACCOUNT);
    assert_non_null(strstr(f->r[0].detail, "20003"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_send_status_webhooks),
        T(test_webhook_bad_signature),
        T(test_balance_lines_errors),
    };
    fx_filter();
    return cmocka_run_group_tests(tests, sim_start, sim_stop);
}
