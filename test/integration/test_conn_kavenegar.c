/* Kavenegar connector against provsim over real loopback HTTP. */
#include "conn_sim.h"

#include "smsys/http_server.h"

#define KN_KEY "demo-kavenegar-key"

static void open_kn(struct fx *f, const char *extra)
{
    snprintf(f->apikey, sizeof f->apikey, "%s", KN_KEY);
    int rc = fx_open(f, "kavenegar",
                     "{\"base_url\":\"http://127.0.0.1:%d/kavenegar\",\"sender\":\"10004346\"%s}",
                     sim_port, extra ? extra : "");
    if (rc)
        fail_msg("open: %s", f->err.detail);
}

static void test_send_single_persian(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{}");
    open_kn(f, NULL);
    const char *to[] = {"+989121234567"};
    const char *txt[] = {PERSIAN};
    fx_send(f, 1, to, txt, NULL);
    assert_int_equal(f->r[0].rc, 0);
    assert_string_equal(f->r[0].id, "m0");
    assert_true(strlen(f->r[0].pid) > 0);
    assert_int_equal(f->r[0].st, CONN_ST_QUEUED);
    cJSON *m = sim_messages(f, "kavenegar");
    const cJSON *x = sim_msg(m, 0);
    assert_non_null(x);
    assert_string_equal(js(x, "text"), PERSIAN); /* exact round trip */
    assert_string_equal(js(x, "to"), "09121234567");
    assert_string_equal(js(x, "from"), "10004346");
    assert_string_equal(js(x, "idempotency_key"), "m0"); /* localid = our id */
    assert_string_equal(js(x, "id"), f->r[0].pid);
    cJSON_Delete(m);
}

static void test_send_batch_split(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{}");
    open_kn(f, NULL);
    enum { N = 450 };
    static char nums[N][20];
    const char *to[N];
    for (int i = 0; i < N; i++) {
        snprintf(nums[i], sizeof nums[i], "+98912%07d", 1000 + i);
        to[i] = nums[i];
    }
    fx_send(f, N, to, NULL, NULL);
    for (int i = 0; i < N; i++) {
        assert_int_equal(f->r[i].rc, 0);
        assert_true(f->r[i].pid[0]);
    }
    cJSON *m = sim_messages(f, "kavenegar");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "messages")), N);
    const cJSON *reqs = cJSON_GetObjectItem(m, "requests");
    assert_int_equal(cJSON_GetArraySize(reqs), 3); /* 200 + 200 + 50 */
    int sizes[3];
    for (int i = 0; i < 3; i++) {
        const cJSON *r = cJSON_GetArrayItem(reqs, i);
        assert_string_equal(js(r, "op"), "sms/send");
        sizes[i] = cJSON_GetArraySize(cJSON_GetObjectItem(r, "to"));
    }
    assert_int_equal(sizes[0] + sizes[1] + sizes[2], N);
    assert_true(sizes[0] == 200 || sizes[0] == 50);
    cJSON_Delete(m);
}

/* Measured, not a benchmark: 5000 recipients in one send() (25 requests
 * of 200, all queued at once) over loopback to provsim. */
static void test_throughput(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{}");
    open_kn(f, NULL);
    enum { N = 5000 };
    static char nums[N][20];
    static const char *to[N];
    for (int i = 0; i < N; i++) {
        snprintf(nums[i], sizeof nums[i], "+98912%07d", 100000 + i);
        to[i] = nums[i];
    }
    uint64_t t0 = util_now_ms();
    fx_send(f, N, to, NULL, NULL);
    uint64_t ms = util_now_ms() - t0;
    assert_int_equal(f->n_ok, N);
    print_message("5000 messages in %llu ms (%.0f msg/s)\n", (unsigned long long)ms,
                  ms ? N * 1000.0 / (double)ms : 0.0);
    cJSON *m = sim_messages(f, "kavenegar");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "requests")), N / 200);
    cJSON_Delete(m);
}

static void test_sendarray_mixed_texts(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{}");
    open_kn(f, NULL);
    const char *to[] = {"+989121111111", "+989122222222"};
    const char *txt[] = {"first", PERSIAN};
    fx_send(f, 2, to, txt, NULL);
    assert_int_equal(f->r[0].rc, 0);
    assert_int_equal(f->r[1].rc, 0);
    cJSON *m = sim_messages(f, "kavenegar");
    const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "requests"), 0);
    assert_string_equal(js(r, "op"), "sms/sendarray");
    assert_string_equal(js(sim_msg(m, 1), "text"), PERSIAN);
    assert_string_equal(js(sim_msg(m, 1), "idempotency_key"), "m1");
    cJSON_Delete(m);
}

static void test_status_progression(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{\"receipt_delay_ms\":300,\"outcome\":{\"delivered\":100,\"undelivered\":0}}");
    open_kn(f, NULL);
    const char *to[] = {"+989121234567"};
    fx_send(f, 1, to, NULL, NULL);
    char pid[64];
    snprintf(pid, sizeof pid, "%s", f->r[0].pid);
    const char *ids[] = {pid, "999999999"};
    fx_status(f, ids, 2);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->n, 2);
    assert_string_equal(f->r[0].pid, pid);
    assert_int_equal(f->r[0].st, CONN_ST_QUEUED);
    assert_int_equal(f->r[1].st, CONN_ST_UNKNOWN); /* 100: no such id */
    assert_int_equal(fx_wait_final(f, pid, 3000), CONN_ST_DELIVERED);
}

static void test_inbox(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{}");
    open_kn(f, NULL);
    cJSON_Delete(sim_call(f, "POST", "/_sim/inbox",
                          "{\"provider\":\"kavenegar\",\"from\":\"09121234567\",\"text\":\"" PERSIAN
                          "\"}"));
    fx_inbox(f);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->n_mo, 1);
    assert_string_equal(f->mo_text[0], PERSIAN);
    assert_string_equal(f->mo_from[0], "09121234567");
    assert_string_equal(f->mo_to[0], "10004346");
    fx_inbox(f); /* read once */
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->n_mo, 0);
}

static void test_balance(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{}");
    open_kn(f, NULL);
    cJSON_Delete(sim_call(f, "POST", "/_sim/balance", "{\"kavenegar\":12345}"));
    fx_balance(f);
    assert_int_equal(f->rc, 0);
    assert_true(f->bal.amount == 12345);
    assert_string_equal(f->bal_unit, "IRR");
}

static void send_one_expect(struct fx *f, int want, const char *code)
{
    const char *to[] = {"+989121234567"};
    fx_send(f, 1, to, NULL, NULL);
    if (f->r[0].rc != want)
        fail_msg("rc %d (%s), want %d", f->r[0].rc, f->r[0].detail, want);
    assert_non_null(strstr(f->r[0].detail, code)); /* provider code in detail */
}

static void test_error_classes(void **state)
{
    struct fx *f = *state;
    open_kn(f, NULL);
    sim_config(f, "{\"kavenegar\":{\"rate_limit_every\":1}}");
    send_one_expect(f, SMSYS_ETHROTTLED, "429");
    sim_config(f, "{\"kavenegar\":{\"busy\":true}}");
    send_one_expect(f, SMSYS_ETEMP, "409");
    assert_int_equal(f->health_rc, SMSYS_ETHROTTLED); /* reported to the core */
    sim_config(f, "{\"kavenegar\":{\"no_credit\":true}}");
    f->health_calls = 0;
    send_one_expect(f, SMSYS_EACCOUNT, "418");
    assert_int_equal(f->health_calls, 1); /* account-wide: the core stops the account */
    assert_int_equal(f->health_rc, SMSYS_EACCOUNT);
    sim_config(f, "{\"kavenegar\":{\"bad_numbers\":\"*0000\"}}");
    /* one bad number in a batch: the others still go, once each */
    const char *to[] = {"+989121110000", "+989121234567", "+989127654321"};
    fx_send(f, 3, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_EPERM);
    assert_non_null(strstr(f->r[0].detail, "411"));
    assert_int_equal(f->r[1].rc, 0);
    assert_int_equal(f->r[2].rc, 0);
    cJSON *m = sim_messages(f, "kavenegar");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "messages")), 2);
    cJSON_Delete(m);
    fx_close_conn(f);
    snprintf(f->apikey, sizeof f->apikey, "wrong-key");
    assert_int_equal(
        fx_open(f, "kavenegar", "{\"base_url\":\"http://127.0.0.1:%d/kavenegar\"}", sim_port), 0);
    send_one_expect(f, SMSYS_EACCOUNT, "403");
    fx_balance(f);
    assert_int_equal(f->rc, SMSYS_EACCOUNT);
}

/* A reply that never comes after the request took effect: Kavenegar has
 * localid, so the outcome is retryable (ETEMP), and the retry with the same
 * id does not create a second message. */
static void test_unknown_outcome_idempotent(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{\"kavenegar\":{\"drop_rate\":1,\"drop_hold_ms\":1500}}");
    open_kn(f, ",\"timeout_ms\":300");
    assert_int_equal(f->ops->supports_idempotency, 1);
    const char *to[] = {"+989121234567"};
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_ETEMP);
    assert_non_null(strstr(f->r[0].detail, "no reply"));
    cJSON_Delete(sim_call(f, "POST", "/_sim/config", "{\"kavenegar\":{\"drop_rate\":0}}"));
    fx_send(f, 1, to, NULL, NULL); /* the core's resend, same id m0 */
    assert_int_equal(f->r[0].rc, 0);
    cJSON *m = sim_messages(f, "kavenegar");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "messages")), 1);
    cJSON_Delete(m);
}

static void test_server_error_and_refused(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{\"kavenegar\":{\"fail_rate\":1}}");
    open_kn(f, NULL);
    const char *to[] = {"+989121234567"};
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_ETEMP); /* HTTP 500 */
    fx_close_conn(f);
    /* nobody listening: never sent, plainly temporary */
    int port = tu_free_port();
    snprintf(f->apikey, sizeof f->apikey, KN_KEY);
    assert_int_equal(
        fx_open(f, "kavenegar", "{\"base_url\":\"http://127.0.0.1:%d/kavenegar\"}", port), 0);
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_ETEMP);
}

/* A provider that answers nothing but 5xx is down as a whole: from the
 * CH_OUTAGE_STREAK-th request in a row a failing send is account-wide
 * (the core pauses the account and gives the attempt back) instead of
 * using up each message's retries; one real answer ends the streak. */
static void test_outage_is_account_wide(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{\"kavenegar\":{\"fail_rate\":1}}");
    open_kn(f, NULL);
    const char *to[] = {"+989121234567"};
    for (int i = 1; i < CH_OUTAGE_STREAK; i++) {
        fx_send(f, 1, to, NULL, NULL);
        assert_int_equal(f->r[0].rc, SMSYS_ETEMP);
    }
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_EACCOUNT);
    assert_non_null(strstr(f->r[0].detail, "provider unreachable (3 requests in a row)"));
    assert_non_null(strstr(f->r[0].detail, "HTTP 500"));
    fx_send(f, 1, to, NULL, NULL); /* still down: still account-wide */
    assert_int_equal(f->r[0].rc, SMSYS_EACCOUNT);
    cJSON_Delete(sim_call(f, "POST", "/_sim/config", "{\"kavenegar\":{\"fail_rate\":0}}"));
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, 0);
    /* back up: the next failure is an ordinary retry again */
    cJSON_Delete(sim_call(f, "POST", "/_sim/config", "{\"kavenegar\":{\"fail_rate\":1}}"));
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_ETEMP);
}

static void test_bad_recipient_local(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{}");
    open_kn(f, NULL);
    const char *to[] = {"+14155550100", "+989121234567"}; /* national format: Iran only */
    fx_send(f, 2, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, SMSYS_EPERM);
    assert_int_equal(f->r[1].rc, 0);
}

/* close() with a request in flight: its callback fires (once) before the
 * close callback, and nothing is left on the loop. */
static void test_close_in_flight(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{\"latency_ms\":2000}");
    open_kn(f, NULL);
    struct sms_out m = {.id = "x1", .to = "+989121234567", .text = "hi"};
    f->fired = 0;
    f->calls = 0;
    assert_int_equal(f->ops->send(f->c, &m, 1, sent_cb, f), 0);
    int never = 0;
    run_until(&f->loop, &never, 200); /* let it reach the simulator */
    f->closed = 0;
    f->ops->close(f->c, closed_cb, &f->closed);
    f->c = NULL;
    assert_int_equal(run_until(&f->loop, &f->closed, 5000), 0);
    assert_int_equal(f->calls, 1);
    /* sent and cancelled: may have been accepted; localid makes it retryable */
    assert_true(f->r[0].rc == SMSYS_ETEMP || f->r[0].rc == SMSYS_ECLOSED);
}

/* close() while sends wait behind the rate limiter: each send's callback
 * fires once, the waiting ones with SMSYS_ECLOSED, all before the close
 * callback; nothing of them reached the provider. */
static int close_order_ok;

static void count_sent_cb(void *ud, const struct conn_sent *res, size_t n)
{
    struct fx *f = ud;
    f->calls++;
    if (f->closed)
        close_order_ok = 0; /* after the close callback: rule 8 broken */
    if (res[0].rc == SMSYS_ECLOSED)
        f->n++;
}

static void test_close_with_queued(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{}");
    open_kn(f, ",\"rate_per_sec\":1");
    struct sms_out m = {.id = "q", .to = "+989121234567", .text = "hi"};
    f->calls = 0;
    f->n = 0;
    close_order_ok = 1;
    static const char *const ids[] = {"q0", "q1", "q2", "q3"}; /* localid dedups equal ids */
    for (int i = 0; i < 4; i++) { /* 2 go at once (1 + a second's worth), 2 wait */
        m.id = ids[i];
        assert_int_equal(f->ops->send(f->c, &m, 1, count_sent_cb, f), 0);
    }
    /* until the two that go at once are answered (a fixed 100 ms could end
     * with them still in flight on a loaded machine, and the close would
     * then answer them too) */
    for (int i = 0; i < 500 && f->calls < 2; i++) {
        int never = 0;
        run_until(&f->loop, &never, 10);
    }
    assert_int_equal(f->calls, 2);
    assert_int_equal(f->n, 0);
    f->closed = 0;
    f->ops->close(f->c, closed_cb, &f->closed);
    f->c = NULL;
    assert_int_equal(run_until(&f->loop, &f->closed, 5000), 0);
    assert_int_equal(f->calls, 4);
    assert_int_equal(f->n, 2);
    assert_int_equal(close_order_ok, 1);
    cJSON *msgs = sim_messages(f, "kavenegar");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(msgs, "messages")), 2);
    cJSON_Delete(msgs);
}

/* rate_per_sec: 10 segments/s with a one-second burst: 25 single-segment
 * sends take at least 1.4 s. */
static void test_rate_limit(void **state)
{
    struct fx *f = *state;
    sim_config(f, "{}");
    open_kn(f, ",\"rate_per_sec\":10");
    uint64_t t0 = util_now_ms();
    static int done;
    done = 0;
    struct sms_out m = {.id = "r", .to = "+989121234567", .text = "hi"};
    for (int i = 0; i < 25; i++)
        assert_int_equal(f->ops->send(f->c, &m, 1, sent_cb, f), 0);
    f->calls = 0;
    while (f->calls < 25) {
        f->fired = 0;
        assert_int_equal(run_until(&f->loop, &f->fired, 5000), 0);
    }
    uint64_t took = util_now_ms() - t0;
    print_message("25 sends at 10/s took %llu ms\n", (unsigned long long)took);
    assert_true(took >= 1400);
    assert_true(took < 4000);
    (void)done;
}

static void test_open_validation(void **state)
{
    struct fx *f = *state;
    snprintf(f->apikey, sizeof f->apikey, KN_KEY);
    assert_int_equal(fx_open(f, "kavenegar", "{\"base_url\":\"ftp://x\"}"), SMSYS_ECONFIG);
    assert_non_null(strstr(f->err.detail, "base_url"));
    assert_int_equal(fx_open(f, "kavenegar", "{\"timeout_ms\":\"soon\"}"), SMSYS_ECONFIG);
    assert_non_null(strstr(f->err.detail, "timeout_ms"));
    assert_int_equal(fx_open(f, "kavenegar", "{\"colour\":\"red\"}"), SMSYS_ECONFIG);
    assert_non_null(strstr(f->err.detail, "colour"));
    assert_int_equal(fx_open(f, "kavenegar", "{\"rate_per_sec\":-1}"), SMSYS_ECONFIG);
    assert_non_null(strstr(f->err.detail, "rate_per_sec"));
    f->apikey[0] = '\0';
    assert_int_equal(fx_open(f, "kavenegar", "{}"), SMSYS_ECONFIG);
    assert_non_null(strstr(f->err.detail, "apikey"));
    f->c = NULL;
}

/* Kavenegar pushes receipts and inbound to the panel's callback URL; ours
 * carries ?token=<webhook_token>. A real http_server receives provsim's
 * pushes and hands them to the connector's webhook op. */
struct kn_hooks {
    struct fx *f;
    int states, mos, refused, delivered;
    char text[400];
};

static struct kn_hooks kh;

static void kn_hook_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct conn_event *ev;
    size_t n;
    int rc = kh.f->c ? kh.f->ops->webhook(kh.f->c, req, &ev, &n) : -EINVAL;
    if (rc == 0) {
        if (ev[0].kind == CONN_EV_STATE) {
            kh.states++;
            kh.delivered += ev[0].u.state.status == CONN_ST_DELIVERED;
        } else {
            kh.mos++;
            snprintf(kh.text, sizeof kh.text, "%s", ev[0].u.mo.text);
        }
        conn_events_free(ev, n);
    } else if (rc == SMSYS_EAUTH) {
        kh.refused++;
    }
    http_resp_send(resp, rc == 0 ? 200 : 403, "text/plain", "", 0);
}

static void kn_srv_closed(void *ud)
{
    *(int *)ud = 1;
}

static void wait_for(struct fx *f, const int *v, int want)
{
    uint64_t end = util_now_ms() + 3000;
    while (*v < want && util_now_ms() < end) {
        int never = 0;
        run_until(&f->loop, &never, 50);
    }
}

static void test_webhook_token(void **state)
{
    struct fx *f = *state;
    struct http_server *srv;
    struct http_server_opts o = {.listen = "127.0.0.1:0"};
    assert_int_equal(http_server_new(&f->loop, &o, &srv), 0);
    assert_int_equal(http_server_route(srv, "POST", "/hook/kn", kn_hook_cb, NULL), 0);
    memset(&kh, 0, sizeof kh);
    kh.f = f;
    char cfg[300];
    snprintf(cfg, sizeof cfg,
             "{\"receipt_delay_ms\":300,\"outcome\":{\"delivered\":100,\"undelivered\":0},"
             "\"kavenegar\":{\"callback_url\":\"http://127.0.0.1:%d/hook/kn?token="
             "s3cret-token-0123456789\"}}",
             http_server_port(srv));
    sim_config(f, cfg);
    open_kn(f, ",\"webhook_token\":\"s3cret-token-0123456789\"");
    const char *to[] = {"+989121234567"};
    fx_send(f, 1, to, NULL, NULL);
    assert_int_equal(f->r[0].rc, 0);
    wait_for(f, &kh.delivered, 1);
    assert_int_equal(kh.delivered, 1);
    assert_int_equal(kh.refused, 0);
    cJSON_Delete(sim_call(f, "POST", "/_sim/inbox",
                          "{\"provider\":\"kavenegar\",\"from\":\"09121234567\",\"text\":\"" PERSIAN
                          "\"}"));
    wait_for(f, &kh.mos, 1);
    assert_int_equal(kh.mos, 1);
    assert_string_equal(kh.text, PERSIAN);
    /* another account's token: every push refused */
    fx_close_conn(f);
    open_kn(f, ",\"webhook_token\":\"another-token-0123456789\"");
    cJSON_Delete(sim_call(f, "POST", "/_sim/inbox",
                          "{\"provider\":\"kavenegar\",\"from\":\"09121234567\",\"text\":\"x\"}"));
    wait_for(f, &kh.refused, 1);
    assert_int_equal(kh.refused, 1);
    assert_int_equal(kh.mos, 1);
    fx_close_conn(f);
    int closed = 0;
    http_server_close(srv, kn_srv_closed, &closed);
    assert_int_equal(run_until(&f->loop, &closed, 5000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_send_single_persian),
        T(test_send_batch_split),
        T(test_throughput),
        T(test_sendarray_mixed_texts),
        T(test_status_progression),
        T(test_inbox),
        T(test_balance),
        T(test_error_classes),
        T(test_unknown_outcome_idempotent),
        T(test_server_error_and_refused),
        T(test_outage_is_account_wide),
        T(test_bad_recipient_local),
        T(test_close_in_flight),
        T(test_rate_limit),
        T(test_close_with_queued),
        T(test_open_validation),
        T(test_webhook_token),
    };
    fx_filter();
    return cmocka_run_group_tests(tests, sim_start, sim_stop);
}
