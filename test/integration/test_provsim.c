/* Integration tests for build/bin/provsim, Iranian providers: the real
 * program on a loopback port, driven with libcurl exactly as each
 * connector calls Kavenegar, SMS.ir, Ghasedak, Melipayamak and Asanak
 * (requests, envelopes, codes, progression, inbox, balance, idempotency,
 * injected errors, malformed input). Twilio, signed pushes and the
 * control API: test_provsim_twilio.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "provsim_client.h"

static void test_kavenegar_send_and_progress(void **state)
{
    (void)state;
    struct reply r;
    char *b = form("receptor", "09121234567,09351234567", "message", FA_TEXT, "sender", "10004346",
                   "localid", "L-1,L-2", NULL);
    kv(&r, "sms/send.json", b);
    free(b);
    assert_int_equal(r.status, 200);
    assert_int_equal((int)jnum(r.json, "return.status"), 200);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "entries")), 2);
    assert_int_equal((int)jnum(r.json, "entries.0.status"), 1);
    assert_string_equal(jstr(r.json, "entries.1.receptor"), "09351234567");
    assert_string_equal(jstr(r.json, "entries.0.message"), FA_TEXT);
    char id[32];
    snprintf(id, sizeof(id), "%.0f", jnum(r.json, "entries.0.messageid"));
    reply_free(&r);

    assert_int_equal(poll_until(kv_status_of, id, 10, 3000), 10);

    b = form("localid", "L-2,nope", NULL);
    kv(&r, "sms/statuslocalmessageid.json", b);
    free(b);
    assert_int_equal((int)jnum(r.json, "entries.0.status"), 10);
    assert_int_equal((int)jnum(r.json, "entries.1.status"), 100);
    reply_free(&r);
    assert_int_equal(kv_status_of("424242"), 100);

    /* sendarray: JSON arrays in form fields */
    b = form("receptor", "[\"09121111111\",\"09122222222\"]", "sender",
             "[\"10004346\",\"2000500666\"]", "message", "[\"one\",\"دو\"]", "localmessageids",
             "A-1,A-2", NULL);
    kv(&r, "sms/sendarray.json", b);
    free(b);
    assert_int_equal((int)jnum(r.json, "return.status"), 200);
    assert_string_equal(jstr(r.json, "entries.1.message"), "دو");
    assert_string_equal(jstr(r.json, "entries.1.sender"), "2000500666");
    reply_free(&r);
}

static void test_kavenegar_undelivered(void **state)
{
    (void)state;
    sim_config("{\"kavenegar\":{\"outcome\":{\"delivered\":0,\"undelivered\":100}}}");
    struct reply r;
    char *b = form("receptor", "09121234567", "message", "hi", NULL);
    kv(&r, "sms/send.json", b);
    free(b);
    char id[32];
    snprintf(id, sizeof(id), "%.0f", jnum(r.json, "entries.0.messageid"));
    reply_free(&r);
    assert_int_equal(poll_until(kv_status_of, id, 11, 3000), 11);
}

static void test_kavenegar_idempotency(void **state)
{
    (void)state;
    struct reply r;
    double first = 0;
    for (int i = 0; i < 3; i++) {
        char *b =
            form("receptor", "09121234567", "message", "once", "localid", "idem-once-77", NULL);
        kv(&r, "sms/send.json", b);
        free(b);
        assert_int_equal((int)jnum(r.json, "return.status"), 200);
        if (i == 0)
            first = jnum(r.json, "entries.0.messageid");
        assert_true(jnum(r.json, "entries.0.messageid") == first);
        reply_free(&r);
    }
    http(&r, NULL, "/_sim/messages?provider=kavenegar", NULL, NULL, NULL, NULL, 0);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "messages")), 1);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "requests")), 3);
    assert_string_equal(jstr(r.json, "messages.0.idempotency_key"), "idem-once-77");
    reply_free(&r);
    /* the simulator's own log: sent exactly once */
    assert_int_equal(log_count("\"idempotency_key\":\"idem-once-77\""), 1);
}

static void test_kavenegar_errors(void **state)
{
    (void)state;
    struct reply r;
    char *b = form("receptor", "09121234567", "message", "x", NULL);
    http(&r, NULL, "/kavenegar/v1/wrong-key/sms/send.json", "application/x-www-form-urlencoded", b,
         NULL, NULL, 0);
    assert_int_equal(r.status, 403);
    assert_int_equal((int)jnum(r.json, "return.status"), 403);
    reply_free(&r);

    static const struct {
        const char *cfg;
        int code;
    } cases[] = {
        {"{\"rate_limit_every\":1}", 429},    {"{\"busy\":true}", 409},
        {"{\"no_credit\":true}", 418},        {"{\"balance\":0}", 418},
        {"{\"bad_numbers\":\"*0000\"}", 411},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sim_post("/_sim/reset", "{}");
        char cfg[128];
        snprintf(cfg, sizeof(cfg), "{\"kavenegar\":%s}", cases[i].cfg);
        sim_config(cfg);
        char *bb = form("receptor", "09120000000", "message", "x", NULL);
        kv(&r, "sms/send.json", bb);
        free(bb);
        assert_int_equal((int)jnum(r.json, "return.status"), cases[i].code);
        assert_int_equal(r.status, cases[i].code);
        reply_free(&r);
    }
    /* bad sender, empty text */
    sim_post("/_sim/reset", "{}");
    free(b);
    b = form("receptor", "09121234567", "message", "x", "sender", "999", NULL);
    kv(&r, "sms/send.json", b);
    assert_int_equal((int)jnum(r.json, "return.status"), 412);
    reply_free(&r);
    free(b);
    b = form("receptor", "09121234567", "message", "", NULL);
    kv(&r, "sms/send.json", b);
    assert_int_equal((int)jnum(r.json, "return.status"), 413);
    reply_free(&r);
    free(b);
    http(&r, NULL, "/_sim/messages?provider=kavenegar", NULL, NULL, NULL, NULL, 0);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "messages")), 0);
    reply_free(&r);
}

static void test_kavenegar_inbox_read_once(void **state)
{
    (void)state;
    sim_post("/_sim/inbox", "{\"provider\":\"kavenegar\",\"line\":\"10004346\",\"from\":"
                            "\"09121112222\",\"text\":\"" FA_TEXT "\"}");
    sim_post("/_sim/inbox", "{\"provider\":\"kavenegar\",\"line\":\"2000500666\",\"from\":"
                            "\"09121113333\",\"text\":\"other line\"}");
    struct reply r;
    char *b = form("linenumber", "10004346", "isread", "0", NULL);
    kv(&r, "sms/receive.json", b);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "entries")), 1);
    assert_string_equal(jstr(r.json, "entries.0.message"), FA_TEXT);
    assert_string_equal(jstr(r.json, "entries.0.sender"), "09121112222");
    assert_string_equal(jstr(r.json, "entries.0.receptor"), "10004346");
    reply_free(&r);
    kv(&r, "sms/receive.json", b);
    assert_int_equal((int)jnum(r.json, "return.status"), 200);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "entries")), 0);
    reply_free(&r);
    free(b);
}

static double kv_credit(void)
{
    struct reply r;
    kv(&r, "account/info.json", "");
    double c = jnum(r.json, "entries.remaincredit");
    reply_free(&r);
    return c;
}

static void test_balance_by_segments(void **state)
{
    (void)state;
    sim_post("/_sim/balance", "{\"provider\":\"kavenegar\",\"balance\":1000}");
    assert_true(kv_credit() == 1000);
    struct reply r;
    char *b = form("receptor", "09121234567", "message", FA_71, NULL);
    kv(&r, "sms/send.json", b);
    free(b);
    assert_int_equal((int)jnum(r.json, "entries.0.cost"), 2);
    reply_free(&r);
    assert_true(kv_credit() == 998);
    /* 70 UCS-2 characters still fit one part; 160 GSM-7 too; 161 need 2 */
    char gsm[200];
    memset(gsm, 'a', 161);
    gsm[161] = '\0';
    b = form("receptor", "09121234567", "message", gsm, NULL);
    kv(&r, "sms/send.json", b);
    free(b);
    reply_free(&r);
    assert_true(kv_credit() == 996);
    gsm[160] = '\0';
    b = form("receptor", "09121234567", "message", gsm, NULL);
    kv(&r, "sms/send.json", b);
    free(b);
    reply_free(&r);
    assert_true(kv_credit() == 995);
    /* price per segment is configurable */
    sim_config("{\"kavenegar\":{\"price\":120}}");
    b = form("receptor", "09121234567", "message", FA_71, NULL);
    kv(&r, "sms/send.json", b);
    free(b);
    reply_free(&r);
    assert_true(kv_credit() == 995 - 240);
    http(&r, NULL, "/_sim/messages?provider=kavenegar", NULL, NULL, NULL, NULL, 0);
    assert_string_equal(jstr(r.json, "messages.0.text"), FA_71);
    assert_string_equal(jstr(r.json, "messages.0.encoding"), "ucs2");
    assert_int_equal((int)jnum(r.json, "messages.0.segments"), 2);
    assert_string_equal(jstr(r.json, "messages.1.encoding"), "gsm7");
    reply_free(&r);
}

static void test_kavenegar_callback(void **state)
{
    (void)state;
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "{\"kavenegar\":{\"callback_url\":\"http://127.0.0.1:%d/kv\"}}",
             rx.port);
    sim_config(cfg);
    struct reply r;
    char *b = form("receptor", "09121234567", "message", "cb", NULL);
    kv(&r, "sms/send.json", b);
    free(b);
    char id[32];
    snprintf(id, sizeof(id), "%.0f", jnum(r.json, "entries.0.messageid"));
    reply_free(&r);
    /* sent (4) then delivered (10) */
    assert_int_equal(rx_wait(2, 3000), 0);
    char kvp[32][2][512];
    pthread_mutex_lock(&rx.mu);
    int n = form_split(rx.hits[1].body, kvp, 32);
    assert_string_equal(rx.hits[1].path, "/kv");
    pthread_mutex_unlock(&rx.mu);
    assert_string_equal(form_val(kvp, n, "messageid"), id);
    assert_string_equal(form_val(kvp, n, "status"), "10");
    /* a non-loopback callback is refused */
    http(&r, NULL, "/_sim/config", "application/json",
         "{\"kavenegar\":{\"callback_url\":\"http://example.com/x\"}}", NULL, NULL, 0);
    assert_int_equal(r.status, 400);
    reply_free(&r);
}

static long si_state_of(const char *id)
{
    struct reply r;
    char path[128];
    snprintf(path, sizeof(path), "/smsir/v1/send/%s", id);
    http(&r, NULL, path, NULL, NULL, si_hdr, NULL, 0);
    long s = r.json && cJSON_IsNumber(jp(r.json, "data.deliveryState"))
                 ? (long)jnum(r.json, "data.deliveryState")
                 : -1;
    reply_free(&r);
    return s;
}

static void test_smsir(void **state)
{
    (void)state;
    struct reply r;
    http(&r, NULL, "/smsir/v1/send/bulk", "application/json",
         "{\"lineNumber\":30007732000000,\"messageText\":\"" FA_TEXT
         "\",\"mobiles\":[\"09121234567\",\"09121234568\"],\"sendDateTime\":null}",
         si_hdr, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal((int)jnum(r.json, "status"), 1);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "data.messageIds")), 2);
    assert_int_equal((int)jnum(r.json, "data.cost"), 2);
    assert_int_equal(strlen(jstr(r.json, "data.packId")), 36);
    char id[32];
    snprintf(id, sizeof(id), "%.0f", jnum(r.json, "data.messageIds.0"));
    reply_free(&r);
    assert_int_equal(si_state_of(id), 3);
    assert_int_equal(poll_until(si_state_of, id, 1, 3000), 1);

    http(&r, NULL, "/smsir/v1/send/likeTolike", "application/json",
         "{\"lineNumber\":\"30007732000000\",\"messageTexts\":[\"a\",\"ب\"],"
         "\"mobiles\":[\"09121234567\",\"09121234568\"]}",
         si_hdr, NULL, 0);
    assert_int_equal((int)jnum(r.json, "status"), 1);
    reply_free(&r);
    http(&r, NULL, "/_sim/messages?provider=smsir", NULL, NULL, NULL, NULL, 0);
    assert_string_equal(jstr(r.json, "messages.0.text"), FA_TEXT);
    assert_string_equal(jstr(r.json, "messages.3.text"), "ب");
    reply_free(&r);

    sim_post("/_sim/inbox", "{\"provider\":\"smsir\",\"from\":\"09129998888\",\"text\":\"hi\"}");
    http(&r, NULL, "/smsir/v1/receive/latest?count=10", NULL, NULL, si_hdr, NULL, 0);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "data")), 1);
    assert_string_equal(jstr(r.json, "data.0.mobile"), "09129998888");
    assert_string_equal(jstr(r.json, "data.0.number"), "30007732000000");
    reply_free(&r);
    http(&r, NULL, "/smsir/v1/receive/latest?count=10", NULL, NULL, si_hdr, NULL, 0);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "data")), 0);
    reply_free(&r);

    http(&r, NULL, "/smsir/v1/credit", NULL, NULL, si_hdr, NULL, 0);
    assert_true(jnum(r.json, "data") == 1000000 - 4);
    reply_free(&r);
    http(&r, NULL, "/smsir/v1/line", NULL, NULL, si_hdr, NULL, 0);
    assert_true(jnum(r.json, "data.0") == 30007732000000.0);
    reply_free(&r);

    /* errors */
    http(&r, NULL, "/smsir/v1/credit", NULL, NULL, si_bad, NULL, 0);
    assert_int_equal(r.status, 401);
    assert_int_equal((int)jnum(r.json, "status"), 10);
    reply_free(&r);
    static const struct {
        const char *cfg;
        long http;
        int code;
    } cases[] = {
        {"{\"smsir\":{\"rate_limit_every\":1}}", 429, 20},
        {"{\"smsir\":{\"no_credit\":true}}", 400, 102},
        {"{\"smsir\":{\"bad_numbers\":\"*0000\"}}", 400, 104},
        {"{\"smsir\":{\"busy\":true}}", 503, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sim_post("/_sim/reset", "{}");
        sim_config(cases[i].cfg);
        http(&r, NULL, "/smsir/v1/send/bulk", "application/json",
             "{\"lineNumber\":30007732000000,\"messageText\":\"x\",\"mobiles\":[\"09120000000\"]}",
             si_hdr, NULL, 0);
        assert_int_equal(r.status, cases[i].http);
        assert_int_equal((int)jnum(r.json, "status"), cases[i].code);
        reply_free(&r);
    }
    http(&r, NULL, "/smsir/v1/send/bulk", "application/json",
         "{\"lineNumber\":1234,\"messageText\":\"x\",\"mobiles\":[\"09121234567\"]}", si_hdr, NULL,
         0);
    assert_int_equal((int)jnum(r.json, "status"), 101);
    reply_free(&r);
}

static long gh_status_of(const char *id)
{
    struct reply r;
    char path[160];
    snprintf(path, sizeof(path), "/ghasedak/rest/api/v1/WebService/CheckSmsStatus?Ids=%s&Type=1",
             id);
    http(&r, NULL, path, NULL, NULL, gh_hdr, NULL, 0);
    long s = r.json && jp(r.json, "data.0.status") ? (long)jnum(r.json, "data.0.status") : -1;
    reply_free(&r);
    return s;
}

static void test_ghasedak(void **state)
{
    (void)state;
    struct reply r;
    gh_post(&r, "SendSingleSMS",
            "{\"lineNumber\":\"30005088\",\"receptor\":\"09121234567\",\"message\":\"" FA_TEXT
            "\",\"clientReferenceId\":\"g-1\"}");
    assert_int_equal(r.status, 200);
    assert_true(cJSON_IsTrue(jp(r.json, "isSuccess")));
    assert_int_equal((int)jnum(r.json, "statusCode"), 200);
    char id[32];
    snprintf(id, sizeof(id), "%s", jstr(r.json, "data.messageId"));
    reply_free(&r);
    /* the same reference again: the original message, not a second one */
    gh_post(&r, "SendSingleSMS",
            "{\"lineNumber\":\"30005088\",\"receptor\":\"09121234567\",\"message\":\"" FA_TEXT
            "\",\"clientReferenceId\":\"g-1\"}");
    assert_string_equal(jstr(r.json, "data.messageId"), id);
    reply_free(&r);
    gh_post(&r, "SendBulkSMS",
            "{\"lineNumber\":\"30005088\",\"receptors\":[\"09121234567\",\"09121234568\"],"
            "\"message\":\"bulk\",\"clientReferenceId\":\"g-bulk\"}");
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "data.receptors")), 2);
    char bid[32];
    snprintf(bid, sizeof(bid), "%s", jstr(r.json, "data.receptors.1.messageId"));
    reply_free(&r);
    gh_post(&r, "SendBulkSMS",
            "{\"lineNumber\":\"30005088\",\"receptors\":[\"09121234567\",\"09121234568\"],"
            "\"message\":\"bulk\",\"clientReferenceId\":\"g-bulk\"}");
    assert_string_equal(jstr(r.json, "data.receptors.1.messageId"), bid);
    reply_free(&r);
    gh_post(&r, "SendPairToPairSMS",
            "{\"items\":[{\"lineNumber\":\"30005088\",\"receptor\":\"09121234567\",\"message\":"
            "\"p1\",\"clientReferenceId\":\"g-p1\"},{\"lineNumber\":\"30005088\",\"receptor\":"
            "\"09121234569\",\"message\":\"p2\",\"clientReferenceId\":\"g-p2\"}]}");
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "data.items")), 2);
    reply_free(&r);
    http(&r, NULL, "/_sim/messages?provider=ghasedak", NULL, NULL, NULL, NULL, 0);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "messages")), 5);
    assert_string_equal(jstr(r.json, "messages.0.text"), FA_TEXT);
    reply_free(&r);

    assert_int_equal(gh_status_of(id), 0);
    assert_int_equal(poll_until(gh_status_of, id, 14, 3000), 14);
    http(&r, NULL, "/ghasedak/rest/api/v1/WebService/CheckSmsStatus?Ids=g-bulk&Ids=g-p2&Type=2",
         NULL, NULL, gh_hdr, NULL, 0);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "data")), 3);
    assert_string_equal(jstr(r.json, "data.2.clientReferenceId"), "g-p2");
    reply_free(&r);

    sim_post("/_sim/inbox", "{\"provider\":\"ghasedak\",\"line\":\"30005088\",\"from\":"
                            "\"09120001111\",\"text\":\"" FA_TEXT "\"}");
    const char *inbox = "/ghasedak/rest/api/v1/WebService/"
                        "GetReceivedSmses?LineNumber=30005088&IsRead=false";
    http(&r, NULL, inbox, NULL, NULL, gh_hdr, NULL, 0);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "data.items")), 1);
    assert_string_equal(jstr(r.json, "data.items.0.message"), FA_TEXT);
    reply_free(&r);
    http(&r, NULL, inbox, NULL, NULL, gh_hdr, NULL, 0);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "data.items")), 0);
    reply_free(&r);
    http(&r, NULL, "/ghasedak/rest/api/v1/WebService/GetAccountInformation", NULL, NULL, gh_hdr,
         NULL, 0);
    assert_true(jnum(r.json, "data.credit") == 1000000 - 5);
    reply_free(&r);

    static const char *const bad[] = {"ApiKey: nope", NULL};
    http(&r, NULL, "/ghasedak/rest/api/v1/WebService/GetAccountInformation", NULL, NULL, bad, NULL,
         0);
    assert_int_equal(r.status, 401);
    assert_false(cJSON_IsTrue(jp(r.json, "isSuccess")));
    reply_free(&r);
    static const struct {
        const char *cfg;
        int code;
    } cases[] = {
        {"{\"ghasedak\":{\"rate_limit_every\":1}}", 429},
        {"{\"ghasedak\":{\"busy\":true}}", 503},
        {"{\"ghasedak\":{\"no_credit\":true}}", 402},
        {"{\"ghasedak\":{\"bad_numbers\":\"*0000\"}}", 422},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sim_post("/_sim/reset", "{}");
        sim_config(cases[i].cfg);
        gh_post(&r, "SendSingleSMS",
                "{\"lineNumber\":\"30005088\",\"receptor\":\"09120000000\",\"message\":\"x\"}");
        assert_int_equal((int)jnum(r.json, "statusCode"), cases[i].code);
        assert_int_equal(r.status, cases[i].code);
        reply_free(&r);
    }
}

static long mp_delivery_of(const char *id)
{
    struct reply r;
    char *b = form("username", "demo", "password", "demo", "recId", id, NULL);
    mp(&r, "GetDeliveries2", b);
    free(b);
    long v = r.json ? strtol(jstr(r.json, "Value"), NULL, 10) : -1;
    reply_free(&r);
    return v;
}

static void test_melipayamak(void **state)
{
    (void)state;
    struct reply r;
    char *b = form("username", "demo", "password", "demo", "to", "09121234567,09121234568", "from",
                   "50004001234567", "text", FA_TEXT, NULL);
    mp(&r, "SendSMS", b);
    free(b);
    assert_int_equal(r.status, 200);
    assert_int_equal((int)jnum(r.json, "RetStatus"), 1);
    assert_string_equal(jstr(r.json, "StrRetStatus"), "Ok");
    const char *v = jstr(r.json, "Value");
    char id[32];
    snprintf(id, sizeof(id), "%.*s", (int)strcspn(v, ","), v);
    assert_true(strlen(id) >= 15);
    assert_non_null(strchr(v, ','));
    reply_free(&r);
    assert_int_equal(mp_delivery_of(id), 0);
    assert_int_equal(poll_until(mp_delivery_of, id, 1, 3000), 1);
    http(&r, NULL, "/_sim/messages?provider=melipayamak", NULL, NULL, NULL, NULL, 0);
    assert_string_equal(jstr(r.json, "messages.1.text"), FA_TEXT);
    reply_free(&r);

    sim_post("/_sim/inbox", "{\"provider\":\"melipayamak\",\"line\":\"50004001234567\","
                            "\"from\":\"09127776666\",\"text\":\"پاسخ\"}");
    b = form("username", "demo", "password", "demo", "location", "1", "index", "0", "count", "10",
             "from", "50004001234567", NULL);
    mp(&r, "GetMessages", b);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "Data")), 1);
    assert_string_equal(jstr(r.json, "Data.0.Body"), "پاسخ");
    reply_free(&r);
    mp(&r, "GetMessages", b);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "Data")), 0);
    reply_free(&r);
    free(b);
    b = form("username", "demo", "password", "demo", NULL);
    mp(&r, "GetCredit", b);
    assert_true(strtod(jstr(r.json, "Value"), NULL) == 1000000 - 2);
    reply_free(&r);
    mp(&r, "GetUserNumbers", b);
    assert_string_equal(jstr(r.json, "Data.0.Number"), "50004001234567");
    reply_free(&r);
    free(b);

    b = form("username", "demo", "password", "bad", NULL);
    mp(&r, "GetCredit", b);
    free(b);
    assert_string_equal(jstr(r.json, "Value"), "0");
    assert_int_equal((int)jnum(r.json, "RetStatus"), 0);
    reply_free(&r);
    static const struct {
        const char *cfg;
        const char *value;
    } cases[] = {
        {"{\"melipayamak\":{\"rate_limit_every\":1}}", "3"},
        {"{\"melipayamak\":{\"busy\":true}}", "6"},
        {"{\"melipayamak\":{\"no_credit\":true}}", "2"},
        {"{\"melipayamak\":{\"bad_numbers\":\"*0000\"}}", "16"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sim_post("/_sim/reset", "{}");
        sim_config(cases[i].cfg);
        b = form("username", "demo", "password", "demo", "to", "09120000000", "from",
                 "50004001234567", "text", "x", NULL);
        mp(&r, "SendSMS", b);
        free(b);
        assert_string_equal(jstr(r.json, "Value"), cases[i].value);
        reply_free(&r);
    }
    b = form("username", "demo", "password", "demo", "to", "09121234567", "from", "123", "text",
             "x", NULL);
    mp(&r, "SendSMS", b);
    free(b);
    assert_string_equal(jstr(r.json, "Value"), "5");
    reply_free(&r);
}

static long as_status_of(const char *id)
{
    struct reply r;
    char body[160];
    snprintf(body, sizeof(body), "{\"username\":\"demo\",\"password\":\"demo\",\"msgid\":\"%s\"}",
             id);
    as(&r, "msgstatus", body);
    long s = r.json && jp(r.json, "data.0.status") ? (long)jnum(r.json, "data.0.status") : -99;
    reply_free(&r);
    return s;
}

static void test_asanak(void **state)
{
    (void)state;
    struct reply r;
    as(&r, "sendsms",
       "{\"username\":\"demo\",\"password\":\"demo\",\"source\":\"9821000000\",\"destination\":"
       "\"09121234567,09351234567\",\"message\":\"" FA_TEXT "\"}");
    assert_int_equal(r.status, 200);
    assert_int_equal((int)jnum(r.json, "meta.status"), 200);
    assert_int_equal(cJSON_GetArraySize(jp(r.json, "data")), 2);
    char id[32];
    snprintf(id, sizeof(id), "%.0f", jnum(r.json, "data.0"));
    reply_free(&r);
    assert_int_equal(as_status_of(id), 1);
    assert_int_equal(poll_until(as_status_of, id, 6, 3000), 6);
    assert_int_equal(as_status_of("1"), -1);
    http(&r, NULL, "/_sim/messages?provider=asanak", NULL, NULL, NULL, NULL, 0);
    assert_string_equal(jstr(r.json, "messages.0.text"), FA_TEXT);
    reply_free(&r);
    as(&r, "getrialcredit", "{\"username\":\"demo\",\"password\":\"demo\"}");
    assert_true(jnum(r.json, "data.credit") == 1000000 - 2);
    reply_free(&r);
    as(&r, "getcredit", "{\"username\":\"demo\",\"password\":\"x\"}");
    assert_int_equal(r.status, 401);
    assert_int_equal((int)jnum(r.json, "meta.status"), 401);
    reply_free(&r);
    static const struct {
        const char *cfg;
        int code;
    } cases[] = {
        {"{\"asanak\":{\"rate_limit_every\":1}}", 429},
        {"{\"asanak\":{\"busy\":true}}", 503},
        {"{\"asanak\":{\"no_credit\":true}}", 1005},
        {"{\"asanak\":{\"bad_numbers\":\"*0000\"}}", 1010},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sim_post("/_sim/reset", "{}");
        sim_config(cases[i].cfg);
        as(&r, "sendsms",
           "{\"username\":\"demo\",\"password\":\"demo\",\"source\":\"9821000000\","
           "\"destination\":\"09120000000\",\"message\":\"x\"}");
        assert_int_equal((int)jnum(r.json, "meta.status"), cases[i].code);
        reply_free(&r);
    }
    as(&r, "sendsms",
       "{\"username\":\"demo\",\"password\":\"demo\",\"source\":\"1\",\"destination\":"
       "\"09121234567\",\"message\":\"x\"}");
    assert_int_equal((int)jnum(r.json, "meta.status"), 1002);
    reply_free(&r);
}

static void test_bad_input(void **state)
{
    (void)state;
    struct reply r;
    kv(&r, "sms/send.json", "receptor=%zz&message=x");
    assert_int_equal((int)jnum(r.json, "return.status"), 400);
    reply_free(&r);
    struct buf many = BUF_INIT;
    buf_puts(&many, "message=x&receptor=");
    for (int i = 0; i < 201; i++)
        buf_printf(&many, "%s0912%07d", i ? "," : "", i);
    kv(&r, "sms/send.json", many.data);
    buf_free(&many);
    assert_int_equal((int)jnum(r.json, "return.status"), 414);
    reply_free(&r);
    /* GET with the query string works too; a future date is "scheduled" */
    char path[256];
    snprintf(path, sizeof(path),
             "/kavenegar/v1/" KV_KEY "/sms/send.json?receptor=09121234567&message=later&date=%lld",
             (long long)time(NULL) + 3600);
    http(&r, NULL, path, NULL, NULL, NULL, NULL, 0);
    assert_int_equal((int)jnum(r.json, "entries.0.status"), 2);
    reply_free(&r);
    kv(&r, "sms/nosuch.json", "");
    assert_int_equal(r.status, 404);
    reply_free(&r);

    http(&r, NULL, "/smsir/v1/send/bulk", "application/json", "{not json", si_hdr, NULL, 0);
    assert_int_equal(r.status, 400);
    assert_int_equal((int)jnum(r.json, "status"), 0);
    reply_free(&r);
    gh_post(&r, "SendBulkSMS",
            "{\"lineNumber\":\"30005088\",\"receptors\":\"x\",\"message\":\"m\"}");
    assert_int_equal(r.status, 400);
    reply_free(&r);
    as(&r, "sendsms", "[1,2,3]");
    assert_int_equal(r.status, 400);
    reply_free(&r);
    static const char *const garbage[] = {"Authorization: Basic !!!!", NULL};
    http(&r, NULL, TW_BASE "/Balance.json", NULL, NULL, garbage, NULL, 0);
    assert_int_equal(r.status, 401);
    reply_free(&r);
    http(&r, NULL, TW_BASE "/Messages/SMnope.json", NULL, NULL, NULL, TW_SID ":" TW_TOKEN, 0);
    assert_int_equal(r.status, 404);
    assert_int_equal((int)jnum(r.json, "code"), 20404);
    reply_free(&r);
    mp(&r, "NoSuchOp", "username=demo&password=demo");
    assert_int_equal(r.status, 404);
    reply_free(&r);

    static const char *const bad_cfg[] = {
        "{\"receipt_delay_ms\":\"x\"}",
        "{\"outcome\":{\"delivered\":-1}}",
        "{\"twilio\":[]}",
        "{\"lines\":[1]}",
        "[]",
        "{\"fail_rate\":2}",
    };
    for (size_t i = 0; i < sizeof(bad_cfg) / sizeof(bad_cfg[0]); i++) {
        http(&r, NULL, "/_sim/config", "application/json", bad_cfg[i], NULL, NULL, 0);
        assert_int_equal(r.status, 400);
        reply_free(&r);
    }
    http(&r, NULL, "/_sim/inbox", "application/json", "{\"provider\":\"nope\"}", NULL, NULL, 0);
    assert_int_equal(r.status, 400);
    reply_free(&r);
    http(&r, NULL, "/_sim/health", NULL, NULL, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    /* a rejected config changed nothing */
    http(&r, NULL, "/_sim/config", NULL, NULL, NULL, NULL, 0);
    assert_int_equal((int)jnum(r.json, "kavenegar.receipt_delay_ms"), 200);
    reply_free(&r);
}

/* --config is applied at start and survives /_sim/reset; a bad file or
 * option stops the program with a non-zero status. */
/* Blacklisted recipients: accepted, then final at once with each
 * provider's block status (Twilio refuses them: test_provsim_twilio.c). */
static void test_blacklist(void **state)
{
    (void)state;
    sim_config("{\"blacklist\":\"*7777\"}");
    struct reply r;
    char *b = form("receptor", "09121237777", "message", "x", NULL);
    kv(&r, "sms/send.json", b);
    free(b);
    assert_int_equal((int)jnum(r.json, "return.status"), 200);
    assert_int_equal((int)jnum(r.json, "entries.0.status"), 14);
    reply_free(&r);

    http(&r, NULL, "/smsir/v1/send/bulk", "application/json",
         "{\"lineNumber\":30007732000000,\"messageText\":\"x\",\"mobiles\":[\"09121237777\"]}",
         si_hdr, NULL, 0);
    char id[32];
    snprintf(id, sizeof(id), "%.0f", jnum(r.json, "data.messageIds.0"));
    reply_free(&r);
    assert_int_equal(si_state_of(id), 7);

    gh_post(&r, "SendSingleSMS",
            "{\"lineNumber\":\"30005088\",\"receptor\":\"09121237777\",\"message\":\"x\"}");
    snprintf(id, sizeof(id), "%s", jstr(r.json, "data.messageId"));
    assert_int_equal((int)jnum(r.json, "data.status"), 8);
    reply_free(&r);
    assert_int_equal(gh_status_of(id), 8);

    b = form("username", "demo", "password", "demo", "to", "09121237777", "from", "50004001234567",
             "text", "x", NULL);
    mp(&r, "SendSMS", b);
    free(b);
    snprintf(id, sizeof(id), "%s", jstr(r.json, "Value"));
    reply_free(&r);
    assert_int_equal(mp_delivery_of(id), 35);

    as(&r, "sendsms",
       "{\"username\":\"demo\",\"password\":\"demo\",\"source\":\"9821000000\","
       "\"destination\":\"09121237777\",\"message\":\"x\"}");
    snprintf(id, sizeof(id), "%.0f", jnum(r.json, "data.0"));
    reply_free(&r);
    assert_int_equal(as_status_of(id), 8);

    http(&r, NULL, "/_sim/stats", NULL, NULL, NULL, NULL, 0);
    assert_int_equal((int)jnum(r.json, "providers.kavenegar.blocked"), 1);
    reply_free(&r);
    http(&r, NULL, "/_sim/messages?provider=asanak", NULL, NULL, NULL, NULL, 0);
    assert_string_equal(jstr(r.json, "messages.0.stage"), "blocked");
    reply_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_kavenegar_send_and_progress, test_setup),
        cmocka_unit_test_setup(test_kavenegar_undelivered, test_setup),
        cmocka_unit_test_setup(test_kavenegar_idempotency, test_setup),
        cmocka_unit_test_setup(test_kavenegar_errors, test_setup),
        cmocka_unit_test_setup(test_kavenegar_inbox_read_once, test_setup),
        cmocka_unit_test_setup(test_balance_by_segments, test_setup),
        cmocka_unit_test_setup(test_kavenegar_callback, test_setup),
        cmocka_unit_test_setup(test_smsir, test_setup),
        cmocka_unit_test_setup(test_ghasedak, test_setup),
        cmocka_unit_test_setup(test_melipayamak, test_setup),
        cmocka_unit_test_setup(test_asanak, test_setup),
        cmocka_unit_test_setup(test_blacklist, test_setup),
        cmocka_unit_test_setup(test_bad_input, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
