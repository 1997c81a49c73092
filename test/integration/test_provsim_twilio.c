/* Integration tests for build/bin/provsim, part two: Twilio (Basic auth,
 * resources, error codes), StatusCallback and inbound pushes checked by a
 * loopback receiver that recomputes X-Twilio-Signature with OpenSSL, the
 * /_sim/ control API and wire faults (5xx, latency, dropped replies, rate
 * limits), seeded outcomes and --config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "provsim_client.h"

static long tw_status_word(const char *sid)
{
    struct reply r;
    char path[160];
    snprintf(path, sizeof(path), TW_BASE "/Messages/%s.json", sid);
    http(&r, NULL, path, NULL, NULL, NULL, TW_SID ":" TW_TOKEN, 0);
    long s = -1;
    const char *st = r.json ? jstr(r.json, "status") : "";
    if (strcmp(st, "queued") == 0)
        s = 0;
    else if (strcmp(st, "sent") == 0)
        s = 1;
    else if (strcmp(st, "delivered") == 0)
        s = 2;
    else if (strcmp(st, "undelivered") == 0)
        s = 3;
    reply_free(&r);
    return s;
}

static void test_twilio(void **state)
{
    (void)state;
    struct reply r;
    char *b = form("To", "+989121234567", "From", "+15005550006", "Body", FA_71, NULL);
    http(&r, NULL, TW_BASE "/Messages.json", "application/x-www-form-urlencoded", b, NULL,
         TW_SID ":" TW_TOKEN, 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(jstr(r.json, "status"), "queued");
    assert_string_equal(jstr(r.json, "num_segments"), "2");
    assert_true(cJSON_IsNull(jp(r.json, "error_code")));
    assert_string_equal(jstr(r.json, "body"), FA_71);
    char sid[64];
    snprintf(sid, sizeof(sid), "%s", jstr(r.json, "sid"));
    assert_int_equal(strncmp(sid, "SM", 2), 0);
    assert_int_equal(strlen(sid), 34);
    reply_free(&r);
    assert_int_equal(poll_until(tw_status_word, sid, 2, 3000), 2);
    http(&r, NULL, TW_BASE "/Balance.json", NULL, NULL, NULL, TW_SID ":" TW_TOKEN, 0);
    assert_string_equal(jstr(r.json, "balance"), "998.00");
    assert_string_equal(jstr(r.json, "currency"), "USD");
    reply_free(&r);
    http(&r, NULL, TW_BASE "/IncomingPhoneNumbers.json", NULL, NULL, NULL, TW_SID ":" TW_TOKEN, 0);
    assert_string_equal(jstr(r.json, "incoming_phone_numbers.0.phone_number"), "+15005550006");
    reply_free(&r);

    /* errors: auth, each injected class, bad number, bad From */
    http(&r, NULL, TW_BASE "/Messages.json", "application/x-www-form-urlencoded", b, NULL,
         TW_SID ":wrong", 0);
    assert_int_equal(r.status, 401);
    assert_int_equal((int)jnum(r.json, "code"), 20003);
    reply_free(&r);
    free(b);
    static const struct {
        const char *cfg;
        long http;
        int code;
    } cases[] = {
        {"{\"twilio\":{\"rate_limit_every\":1}}", 429, 20429},
        {"{\"twilio\":{\"busy\":true}}", 503, 20503},
        {"{\"twilio\":{\"no_credit\":true}}", 403, 10001},
        {"{\"twilio\":{\"bad_numbers\":\"*0000\"}}", 400, 21211},
        {"{\"twilio\":{\"blacklist\":\"*0000\"}}", 400, 21610},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sim_post("/_sim/reset", "{}");
        sim_config(cases[i].cfg);
        b = form("To", "+989120000000", "From", "+15005550006", "Body", "x", NULL);
        http(&r, NULL, TW_BASE "/Messages.json", "application/x-www-form-urlencoded", b, NULL,
             TW_SID ":" TW_TOKEN, 0);
        free(b);
        assert_int_equal(r.status, cases[i].http);
        assert_int_equal((int)jnum(r.json, "code"), cases[i].code);
        reply_free(&r);
    }
    b = form("To", "+989121234567", "From", "+1999", "Body", "x", NULL);
    http(&r, NULL, TW_BASE "/Messages.json", "application/x-www-form-urlencoded", b, NULL,
         TW_SID ":" TW_TOKEN, 0);
    free(b);
    assert_int_equal((int)jnum(r.json, "code"), 21606);
    reply_free(&r);
}

static void test_twilio_signed_callbacks(void **state)
{
    (void)state;
    char cb[128], in[128], cfg[256];
    snprintf(cb, sizeof(cb), "http://127.0.0.1:%d/status?x=1", rx.port);
    snprintf(in, sizeof(in), "http://127.0.0.1:%d/inbound", rx.port);
    snprintf(cfg, sizeof(cfg), "{\"twilio\":{\"inbound_url\":\"%s\"}}", in);
    sim_config(cfg);
    struct reply r;
    char *b = form("To", "+989121234567", "From", "+15005550006", "Body", "cb test",
                   "StatusCallback", cb, NULL);
    http(&r, NULL, TW_BASE "/Messages.json", "application/x-www-form-urlencoded", b, NULL,
         TW_SID ":" TW_TOKEN, 0);
    free(b);
    assert_int_equal(r.status, 201);
    char sid[64];
    snprintf(sid, sizeof(sid), "%s", jstr(r.json, "sid"));
    reply_free(&r);
    assert_int_equal(rx_wait(2, 3000), 0); /* sent, delivered */
    pthread_mutex_lock(&rx.mu);
    struct hit h0 = rx.hits[0], h1 = rx.hits[1];
    pthread_mutex_unlock(&rx.mu);
    assert_string_equal(h0.path, "/status?x=1");
    expect_signature(cb, h0.body, h0.sig);
    expect_signature(cb, h1.body, h1.sig);
    char kvp[32][2][512];
    int n = form_split(h1.body, kvp, 32);
    assert_string_equal(form_val(kvp, n, "MessageSid"), sid);
    assert_string_equal(form_val(kvp, n, "MessageStatus"), "delivered");
    assert_string_equal(form_val(kvp, n, "AccountSid"), TW_SID);
    n = form_split(h0.body, kvp, 32);
    assert_string_equal(form_val(kvp, n, "MessageStatus"), "sent");

    /* inbound push, Persian body, signed */
    rx_clear();
    sim_post("/_sim/inbox",
             "{\"provider\":\"twilio\",\"from\":\"+989121112233\",\"text\":\"" FA_TEXT "\"}");
    assert_int_equal(rx_wait(1, 3000), 0);
    pthread_mutex_lock(&rx.mu);
    h0 = rx.hits[0];
    pthread_mutex_unlock(&rx.mu);
    assert_string_equal(h0.path, "/inbound");
    expect_signature(in, h0.body, h0.sig);
    n = form_split(h0.body, kvp, 32);
    assert_string_equal(form_val(kvp, n, "Body"), FA_TEXT);
    assert_string_equal(form_val(kvp, n, "To"), "+15005550006");
    assert_string_equal(form_val(kvp, n, "SmsStatus"), "received");

    /* the check can fail: another URL or a changed body gives another value */
    char other[64];
    signature_of(cb, h0.body, other);
    assert_string_not_equal(other, h0.sig);

    /* a callback URL off loopback is refused */
    b = form("To", "+989121234567", "From", "+15005550006", "Body", "x", "StatusCallback",
             "http://example.com/cb", NULL);
    http(&r, NULL, TW_BASE "/Messages.json", "application/x-www-form-urlencoded", b, NULL,
         TW_SID ":" TW_TOKEN, 0);
    free(b);
    assert_int_equal(r.status, 400);
    reply_free(&r);
    http(&r, NULL, "/_sim/stats", NULL, NULL, NULL, NULL, 0);
    assert_int_equal((int)jnum(r.json, "providers.twilio.callbacks_ok"), 3);
    reply_free(&r);
}

/* ---- control API, faults on the wire ---- */

static void test_control_and_faults(void **state)
{
    (void)state;
    struct reply r;
    http(&r, NULL, "/_sim/config", "application/json", "{\"nope\":1}", NULL, NULL, 0);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body.data, "nope"));
    reply_free(&r);

    /* fail_rate 1: every request is a 5xx */
    sim_config("{\"asanak\":{\"fail_rate\":1}}");
    as(&r, "getcredit", "{\"username\":\"demo\",\"password\":\"demo\"}");
    assert_int_equal(r.status, 500);
    reply_free(&r);

    /* latency */
    sim_config("{\"asanak\":{\"fail_rate\":0,\"latency_ms\":300}}");
    as(&r, "getcredit", "{\"username\":\"demo\",\"password\":\"demo\"}");
    assert_int_equal(r.status, 200);
    assert_true(r.secs >= 0.29);
    reply_free(&r);

    /* dropped reply: the client times out, yet the message was taken
     * (an unknown outcome as a connector sees it) */
    sim_config("{\"asanak\":{\"latency_ms\":0,\"drop_rate\":1,\"drop_hold_ms\":1500}}");
    http(&r, NULL, "/asanak/webservice/v2rest/sendsms", "application/json",
         "{\"username\":\"demo\",\"password\":\"demo\",\"source\":\"9821000000\","
         "\"destination\":\"09121234567\",\"message\":\"maybe\"}",
         NULL, NULL, 400);
    assert_int_equal(r.rc, CURLE_OPERATION_TIMEDOUT);
    reply_free(&r);
    http(&r, NULL, "/_sim/messages?provider=asanak", NULL, NULL, NULL, NULL, 0);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "messages")), 1);
    assert_string_equal(jstr(r.json, "messages.0.text"), "maybe");
    reply_free(&r);

    /* above R requests per second: rate limited */
    sim_config("{\"asanak\":{\"drop_rate\":0,\"rate_limit_rps\":3}}");
    int limited = 0;
    for (int i = 0; i < 8; i++) {
        as(&r, "getcredit", "{\"username\":\"demo\",\"password\":\"demo\"}");
        limited += r.status == 429;
        reply_free(&r);
    }
    assert_true(limited >= 3);

    /* busy every Nth */
    sim_post("/_sim/reset", "{}");
    sim_config("{\"kavenegar\":{\"busy_every\":2}}");
    int busy = 0;
    for (int i = 0; i < 4; i++) {
        kv(&r, "account/info.json", "");
        busy += (int)jnum(r.json, "return.status") == 409;
        reply_free(&r);
    }
    assert_int_equal(busy, 2);

    http(&r, NULL, "/_sim/stats", NULL, NULL, NULL, NULL, 0);
    assert_int_equal((int)jnum(r.json, "providers.kavenegar.busy"), 2);
    assert_int_equal((int)jnum(r.json, "providers.kavenegar.requests"), 4);
    reply_free(&r);
    http(&r, NULL, "/_sim/balance", NULL, NULL, NULL, NULL, 0);
    assert_true(jnum(r.json, "twilio") == 1000);
    reply_free(&r);
    http(&r, NULL, "/_sim/nothing", NULL, NULL, NULL, NULL, 0);
    assert_int_equal(r.status, 404);
    reply_free(&r);
}

/* The same seed and the same requests give the same outcomes. */
static void test_seeded_outcomes(void **state)
{
    (void)state;
    char run[2][16];
    for (int k = 0; k < 2; k++) {
        sim_post("/_sim/reset", "{}");
        sim_config("{\"receipt_delay_ms\":0,\"outcome\":{\"delivered\":50,\"undelivered\":50}}");
        for (int i = 0; i < 12; i++) {
            struct reply r;
            char *b = form("receptor", "09121234567", "message", "s", NULL);
            kv(&r, "sms/send.json", b);
            free(b);
            reply_free(&r);
        }
        sleep_ms(50);
        struct reply r;
        http(&r, NULL, "/_sim/messages?provider=kavenegar", NULL, NULL, NULL, NULL, 0);
        for (int i = 0; i < 12; i++) {
            char p[48];
            snprintf(p, sizeof(p), "messages.%d.status", i);
            run[k][i] = (int)jnum(r.json, p) == 10 ? 'D' : 'U';
        }
        run[k][12] = '\0';
        reply_free(&r);
    }
    assert_string_equal(run[0], run[1]);
    assert_non_null(strchr(run[0], 'D'));
    assert_non_null(strchr(run[0], 'U'));
}

/* Malformed input gets the provider's error, never a crash. */

static void test_config_file(void **state)
{
    (void)state;
    char path[256], listen[64];
    snprintf(path, sizeof(path), "/tmp/provsim-test-cfg-%d.json", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(
        "{\"receipt_delay_ms\":50,\"kavenegar\":{\"bad_numbers\":\"*9999\",\"lines\":[\"3000\"]}}",
        f);
    fclose(f);
    int port = tu_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    char *argv[] = {(char *)tu_bin("provsim"), "--listen", listen, "--config", path,
                    "--kavenegar-key",         "k2",       NULL};
    pid_t pid = tu_spawn(argv, NULL, port, 5000);
    assert_true(pid > 0);
    char saved[64];
    snprintf(saved, sizeof(saved), "%s", base);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    struct reply r;
    sim_post("/_sim/reset", "{}");
    http(&r, NULL, "/_sim/config", NULL, NULL, NULL, NULL, 0);
    assert_int_equal((int)jnum(r.json, "smsir.receipt_delay_ms"), 50);
    assert_string_equal(jstr(r.json, "kavenegar.bad_numbers"), "*9999");
    assert_string_equal(jstr(r.json, "kavenegar.lines.0"), "3000");
    reply_free(&r);
    http(&r, NULL, "/kavenegar/v1/k2/sms/send.json", "application/x-www-form-urlencoded",
         "receptor=09121239999&message=x&sender=3000", NULL, NULL, 0);
    assert_int_equal((int)jnum(r.json, "return.status"), 411);
    reply_free(&r);
    snprintf(base, sizeof(base), "%s", saved);
    int st = tu_stop(pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"no_such_key\":1}", f);
    fclose(f);
    pid = tu_spawn(argv, "/dev/null", 0, 0);
    assert_true(pid > 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    unlink(path);

    char *bad[] = {(char *)tu_bin("provsim"), "--bogus", "1", NULL};
    pid = tu_spawn(bad, "/dev/null", 0, 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    /* loopback only */
    char *open_net[] = {(char *)tu_bin("provsim"), "--listen", "0.0.0.0:0", NULL};
    pid = tu_spawn(open_net, "/dev/null", 0, 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_twilio, test_setup),
        cmocka_unit_test_setup(test_twilio_signed_callbacks, test_setup),
        cmocka_unit_test_setup(test_control_and_faults, test_setup),
        cmocka_unit_test_setup(test_seeded_outcomes, test_setup),
        cmocka_unit_test_setup(test_config_file, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
