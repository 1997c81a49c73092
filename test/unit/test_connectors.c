/* Unit tests for the pure parts of the HTTP connectors: status and error
 * maps, reply parsers on canned replies (including hostile ones), JSON
 * pointers, the generic connector's templates, form decoding, the Twilio
 * signature (vector computed independently with Python's hmac module) and
 * webhook verification. No I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/conn_http.h"
#include "smsys/connector.h"
#include "smsys/http_server.h"
#include "conn_parsers.h"

/* ---- maps ---------------------------------------------------------------- */

static void test_status_maps(void **state)
{
    assert_int_equal(conn_kavenegar_status(1), CONN_ST_QUEUED);
    assert_int_equal(conn_kavenegar_status(2), CONN_ST_QUEUED);
    assert_int_equal(conn_kavenegar_status(4), CONN_ST_SENT);
    assert_int_equal(conn_kavenegar_status(5), CONN_ST_SENT);
    assert_int_equal(conn_kavenegar_status(6), CONN_ST_FAILED);
    assert_int_equal(conn_kavenegar_status(10), CONN_ST_DELIVERED);
    assert_int_equal(conn_kavenegar_status(11), CONN_ST_UNDELIVERED);
    assert_int_equal(conn_kavenegar_status(13), CONN_ST_CANCELED);
    assert_int_equal(conn_kavenegar_status(14), CONN_ST_BLACKLISTED);
    assert_int_equal(conn_kavenegar_status(100), CONN_ST_UNKNOWN);
    assert_int_equal(conn_kavenegar_status(12345), CONN_ST_UNKNOWN);

    assert_int_equal(conn_smsir_status(1), CONN_ST_DELIVERED);
    assert_int_equal(conn_smsir_status(2), CONN_ST_UNDELIVERED);
    assert_int_equal(conn_smsir_status(5), CONN_ST_SENT);
    assert_int_equal(conn_smsir_status(7), CONN_ST_BLACKLISTED);

    for (long c = 0; c <= 17; c++) {
        enum conn_status s = conn_ghasedak_status(c);
        if (c == 5)
            assert_int_equal(s, CONN_ST_UNKNOWN); /* undocumented */
        else
            assert_int_not_equal(s, CONN_ST_UNKNOWN);
    }
    assert_int_equal(conn_ghasedak_status(14), CONN_ST_DELIVERED);
    assert_int_equal(conn_ghasedak_status(13), CONN_ST_UNDELIVERED);
    assert_int_equal(conn_ghasedak_status(12), CONN_ST_BLACKLISTED);

    assert_int_equal(conn_melipayamak_status(1), CONN_ST_DELIVERED);
    assert_int_equal(conn_melipayamak_status(35), CONN_ST_BLACKLISTED);
    assert_int_equal(conn_melipayamak_status(500), CONN_ST_FAILED);
    assert_int_equal(conn_asanak_status(6), CONN_ST_DELIVERED);

    assert_int_equal(conn_twilio_status("delivered"), CONN_ST_DELIVERED);
    assert_int_equal(conn_twilio_status("sending"), CONN_ST_QUEUED);
    assert_int_equal(conn_twilio_status("undelivered"), CONN_ST_UNDELIVERED);
    assert_int_equal(conn_twilio_status("canceled"), CONN_ST_CANCELED);
    assert_int_equal(conn_twilio_status("Delivered"), CONN_ST_UNKNOWN);
    assert_int_equal(conn_twilio_status(NULL), CONN_ST_UNKNOWN);
}

static void test_error_classes(void **state)
{
    const char *t;
    /* Kavenegar: every documented code has its class */
    static const long perm[] = {400, 406, 411, 412, 413, 414, 417, 419, 420, 422};
    static const long acct[] = {401, 403, 407, 416, 418, 426, 427, 501};
    for (size_t i = 0; i < sizeof perm / sizeof perm[0]; i++) {
        assert_int_equal(conn_kavenegar_class(perm[i], &t), SMSYS_EPERM);
        assert_non_null(t);
    }
    for (size_t i = 0; i < sizeof acct / sizeof acct[0]; i++)
        assert_int_equal(conn_kavenegar_class(acct[i], &t), SMSYS_EACCOUNT);
    assert_int_equal(conn_kavenegar_class(409, &t), SMSYS_ETEMP);
    assert_int_equal(conn_kavenegar_class(429, &t), SMSYS_ETHROTTLED);
    assert_int_equal(conn_kavenegar_class(451, &t), SMSYS_ETHROTTLED);

    for (long c = 10; c <= 14; c++)
        assert_int_equal(conn_smsir_class(c, 400, &t), SMSYS_EACCOUNT);
    assert_int_equal(conn_smsir_class(20, 429, &t), SMSYS_ETHROTTLED);
    assert_int_equal(conn_smsir_class(102, 400, &t), SMSYS_EACCOUNT);
    assert_int_equal(conn_smsir_class(104, 400, &t), SMSYS_EPERM);
    assert_int_equal(conn_smsir_class(115, 400, &t), SMSYS_EPERM);
    assert_int_equal(conn_smsir_class(0, 503, &t), SMSYS_ETEMP); /* by HTTP status */

    assert_int_equal(conn_ghasedak_class(402, &t), SMSYS_EACCOUNT);
    assert_int_equal(conn_ghasedak_class(422, &t), SMSYS_EPERM);
    assert_int_equal(conn_ghasedak_class(503, &t), SMSYS_ETEMP);

    assert_int_equal(conn_melipayamak_class(0, &t), SMSYS_EACCOUNT);
    assert_int_equal(conn_melipayamak_class(2, &t), SMSYS_EACCOUNT);
    assert_int_equal(conn_melipayamak_class(3, &t), SMSYS_ETHROTTLED);
    assert_int_equal(conn_melipayamak_class(15, &t), SMSYS_EPERM);

    assert_int_equal(conn_asanak_class(1005, &t), SMSYS_EACCOUNT);
    assert_int_equal(conn_asanak_class(1009, &t), SMSYS_ETHROTTLED);
    assert_int_equal(conn_asanak_class(1013, &t), SMSYS_EPERM);
    assert_int_equal(conn_asanak_class(503, &t), SMSYS_ETEMP);

    assert_int_equal(conn_twilio_class(21610, 400, &t), SMSYS_EPERM);
    assert_int_equal(conn_twilio_class(20003, 401, &t), SMSYS_EACCOUNT);
    assert_int_equal(conn_twilio_class(20429, 429, &t), SMSYS_ETHROTTLED);
    assert_int_equal(conn_twilio_class(99999, 503, &t), SMSYS_ETEMP);

    assert_int_equal(ch_http_class(200), 0);
    assert_int_equal(ch_http_class(429), SMSYS_ETHROTTLED);
    assert_int_equal(ch_http_class(502), SMSYS_ETEMP);
    assert_int_equal(ch_http_class(401), SMSYS_EACCOUNT);
    assert_int_equal(ch_http_class(404), SMSYS_EPERM);
    assert_int_equal(ch_class_parse("account"), SMSYS_EACCOUNT);
    assert_int_equal(ch_class_parse("bogus"), 0);
    assert_string_equal(ch_class_name(SMSYS_ETHROTTLED), "throttled");
}

/* ---- reply parsers on canned replies -------------------------------------- */

struct got {
    int fired;
    size_t n;
    struct conn_sent r[4];
    char pid[4][64], detail[4][300];
};

static void got_cb(void *ud, const struct conn_sent *res, size_t n)
{
    struct got *g = ud;
    g->fired++;
    g->n = n;
    for (size_t i = 0; i < n && i < 4; i++) {
        g->r[i] = res[i];
        snprintf(g->pid[i], 64, "%s", res[i].provider_id ? res[i].provider_id : "");
        snprintf(g->detail[i], 300, "%s", res[i].detail ? res[i].detail : "");
    }
}

static int no_start(struct ch_batch *b, void *ud)
{
    return -ENOMEM; /* split retries are not exercised here */
}

/* Runs parse on a 2-message batch of a connector-less send (no loop). */
static void run_parse(const struct conn_ops *ops, int idempotent,
                      int (*parse)(struct ch_batch *, int, const char *, size_t), int http,
                      const char *body, struct got *g)
{
    struct conn c;
    memset(&c, 0, sizeof c);
    c.ops = ops;
    struct sms_out m[2] = {{.id = "a", .to = "+989121111111", .text = "hi"},
                           {.id = "b", .to = "+989122222222", .text = "hi"}};
    struct ch_send *s;
    assert_int_equal(ch_send_new(&c, m, 2, PHONE_NATIONAL, got_cb, g, &s), 0);
    s->idempotent = idempotent;
    s->pending = 1;
    s->start = no_start;
    struct ch_batch *b = calloc(1, sizeof *b + 2 * sizeof b->idx[0]);
    b->s = s;
    b->n = 2;
    b->idx[0] = 0;
    b->idx[1] = 1;
    memset(g, 0, sizeof *g);
    if (parse(b, http, body, body ? strlen(body) : 0) == 0)
        ch_batch_done(b);
    assert_int_equal(g->fired, 1);
    assert_int_equal(g->n, 2);
}

static void test_parse_kavenegar_send(void **state)
{
    struct got g;
    run_parse(&conn_kavenegar_ops, 1, conn_kavenegar_parse_send, 200,
              "{\"return\":{\"status\":200,\"message\":\"ok\"},\"entries\":["
              "{\"messageid\":8792343,\"status\":1,\"receptor\":\"09121111111\"},"
              "{\"messageid\":\"8792344\",\"status\":5,\"receptor\":\"09122222222\"}]}",
              &g);
    assert_int_equal(g.r[0].rc, 0);
    assert_string_equal(g.pid[0], "8792343");
    assert_int_equal(g.r[0].status, CONN_ST_QUEUED);
    assert_string_equal(g.pid[1], "8792344");
    assert_int_equal(g.r[1].status, CONN_ST_SENT);
    /* entries in another order are matched by receptor */
    run_parse(&conn_kavenegar_ops, 1, conn_kavenegar_parse_send, 200,
              "{\"return\":{\"status\":200},\"entries\":["
              "{\"messageid\":2,\"status\":1,\"receptor\":\"09122222222\"},"
              "{\"messageid\":1,\"status\":1,\"receptor\":\"09121111111\"}]}",
              &g);
    assert_string_equal(g.pid[0], "1");
    assert_string_equal(g.pid[1], "2");
    /* no credit: account-wide, code and text in detail */
    run_parse(&conn_kavenegar_ops, 1, conn_kavenegar_parse_send, 418,
              "{\"return\":{\"status\":418,\"message\":\"credit\"},\"entries\":null}", &g);
    assert_int_equal(g.r[0].rc, SMSYS_EACCOUNT);
    assert_int_equal(g.r[1].rc, SMSYS_EACCOUNT);
    assert_non_null(strstr(g.detail[0], "418"));
    /* garbage with 200 after sending: idempotent send -> retryable */
    run_parse(&conn_kavenegar_ops, 1, conn_kavenegar_parse_send, 200, "<html>", &g);
    assert_int_equal(g.r[0].rc, SMSYS_ETEMP);
    /* one entry missing: that message's outcome is unknown */
    run_parse(&conn_kavenegar_ops, 0, conn_kavenegar_parse_send, 200,
              "{\"return\":{\"status\":200},\"entries\":["
              "{\"messageid\":1,\"status\":1,\"receptor\":\"09121111111\"}]}",
              &g);
    assert_int_equal(g.r[0].rc, 0);
    assert_int_equal(g.r[1].rc, SMSYS_EUNKNOWN);
}

static void test_parse_other_sends(void **state)
{
    struct got g;
    run_parse(&conn_smsir_ops, 0, conn_smsir_parse_send, 200,
              "{\"status\":1,\"message\":\"ok\",\"data\":{\"packId\":\"p\","
              "\"messageIds\":[11,12],\"cost\":2}}",
              &g);
    assert_string_equal(g.pid[0], "11");
    assert_string_equal(g.pid[1], "12");
    run_parse(&conn_smsir_ops, 0, conn_smsir_parse_send, 200, "", &g);
    assert_int_equal(g.r[0].rc, SMSYS_EUNKNOWN); /* no idempotency key */
    run_parse(&conn_smsir_ops, 0, conn_smsir_parse_send, 503, "Service Unavailable", &g);
    assert_int_equal(g.r[0].rc, SMSYS_ETEMP);

    /* Ghasedak matches items on clientReferenceId, keys in any case */
    run_parse(&conn_ghasedak_ops, 1, conn_ghasedak_parse_send, 200,
              "{\"isSuccess\":true,\"statusCode\":200,\"data\":{\"Items\":["
              "{\"MessageId\":\"x2\",\"ClientReferenceId\":\"b\"},"
              "{\"messageId\":\"x1\",\"clientReferenceId\":\"a\"}]}}",
              &g);
    assert_string_equal(g.pid[0], "x1");
    assert_string_equal(g.pid[1], "x2");

    run_parse(&conn_melipayamak_ops, 0, conn_melipayamak_parse_send, 200,
              "{\"Value\":\"1234567890123456,35\",\"RetStatus\":1,\"StrRetStatus\":\"Ok\"}", &g);
    assert_int_equal(g.r[0].rc, 0);
    assert_string_equal(g.pid[0], "1234567890123456");
    assert_int_equal(g.r[1].rc, SMSYS_EPERM); /* 35: blacklisted recipient */
    run_parse(&conn_melipayamak_ops, 0, conn_melipayamak_parse_send, 200,
              "{\"Value\":\"2\",\"RetStatus\":2,\"StrRetStatus\":\"NoCredit\"}", &g);
    assert_int_equal(g.r[0].rc, SMSYS_EACCOUNT);

    run_parse(&conn_asanak_ops, 0, conn_asanak_parse_send, 200,
              "{\"meta\":{\"status\":200,\"message\":\"success\"},\"data\":[501,502]}", &g);
    assert_string_equal(g.pid[1], "502");
    run_parse(&conn_asanak_ops, 0, conn_asanak_parse_send, 200,
              "{\"meta\":{\"status\":1013,\"message\":\"window\"}}", &g);
    assert_int_equal(g.r[0].rc, SMSYS_EPERM);
}

static void st_cb(void *ud, int rc, const struct conn_state *st, size_t n,
                  const struct smsys_err *err)
{
    int *out = ud;
    out[0] = rc;
    out[1] = (int)n;
    out[2] = n ? (int)st[0].status : -1;
}

static void test_parse_status(void **state)
{
    struct conn c;
    memset(&c, 0, sizeof c);
    c.ops = &conn_kavenegar_ops;
    int got[3];
    struct ch_stq *q = calloc(1, sizeof *q);
    q->c = &c;
    q->cb = st_cb;
    q->ud = got;
    q->pending = 1;
    const char *body = "{\"return\":{\"status\":200},\"entries\":["
                       "{\"messageid\":5,\"status\":10,\"statustext\":\"ok\"}]}";
    conn_kavenegar_parse_status(q, 200, body, strlen(body));
    ch_stq_release(q);
    assert_int_equal(got[0], 0);
    assert_int_equal(got[1], 1);
    assert_int_equal(got[2], CONN_ST_DELIVERED);

    q = calloc(1, sizeof *q);
    q->c = &c;
    q->cb = st_cb;
    q->ud = got;
    q->pending = 1;
    body = "{\"isSuccess\":false,\"statusCode\":401}";
    conn_ghasedak_parse_status(q, 401, body, strlen(body));
    ch_stq_release(q);
    assert_int_equal(got[0], SMSYS_EACCOUNT);
    assert_int_equal(got[1], 0);
}

/* ---- JSON pointer ------------------------------------------------------------ */

static void test_json_pointer(void **state)
{
    /* RFC 6901 section 5 examples */
    cJSON *d = cJSON_Parse("{\"foo\":[\"bar\",\"baz\"],\"\":0,\"a/b\":1,\"c%d\":2,\"e^f\":3,"
                           "\"g|h\":4,\"i\\\\j\":5,\"k\\\"l\":6,\" \":7,\"m~n\":8}");
    assert_non_null(d);
    assert_ptr_equal(ch_json_pointer(d, ""), d);
    assert_true(cJSON_IsArray(ch_json_pointer(d, "/foo")));
    assert_string_equal(ch_json_pointer(d, "/foo/0")->valuestring, "bar");
    assert_int_equal(ch_json_pointer(d, "/")->valueint, 0);
    assert_int_equal(ch_json_pointer(d, "/a~1b")->valueint, 1);
    assert_int_equal(ch_json_pointer(d, "/c%d")->valueint, 2);
    assert_int_equal(ch_json_pointer(d, "/e^f")->valueint, 3);
    assert_int_equal(ch_json_pointer(d, "/g|h")->valueint, 4);
    assert_int_equal(ch_json_pointer(d, "/i\\j")->valueint, 5);
    assert_int_equal(ch_json_pointer(d, "/k\"l")->valueint, 6);
    assert_int_equal(ch_json_pointer(d, "/ ")->valueint, 7);
    assert_int_equal(ch_json_pointer(d, "/m~0n")->valueint, 8);
    assert_null(ch_json_pointer(d, "/foo/2"));
    assert_null(ch_json_pointer(d, "/foo/01")); /* leading zero */
    assert_null(ch_json_pointer(d, "/foo/-"));
    assert_null(ch_json_pointer(d, "/foo/0/x"));
    assert_null(ch_json_pointer(d, "/m~2n")); /* bad escape */
    assert_null(ch_json_pointer(d, "foo"));   /* must start with / */
    cJSON_Delete(d);

    cJSON *v = cJSON_Parse("{\"a\":\"12\",\"b\":3.5,\"c\":1e20,\"d\":true}");
    double x;
    long l;
    char buf[32];
    assert_int_equal(ch_json_num(ch_json_get(v, "A"), &x), 0); /* key case ignored */
    assert_true(x == 12);
    assert_int_equal(ch_json_long(ch_json_get(v, "b"), &l), -EINVAL);
    assert_int_equal(ch_json_text(ch_json_get(v, "b"), buf, sizeof buf), 0);
    assert_string_equal(buf, "3.5");
    assert_int_equal(ch_json_text(ch_json_get(v, "d"), buf, sizeof buf), 0);
    assert_string_equal(buf, "true");
    assert_int_equal(ch_json_text(NULL, buf, sizeof buf), -EINVAL);
    cJSON_Delete(v);
}

/* ---- generic templates -------------------------------------------------------- */

static void test_generic_render(void **state)
{
    struct conn_generic_vars v = {.base_url = "https://p.example/api",
                                  .apikey = "k&y",
                                  .to = "09121234567",
                                  .from = "3000",
                                  .text = "a \"q\" & b=c\nسلام",
                                  .id = "m1"};
    struct buf b = BUF_INIT;
    struct smsys_err err;
    /* URL: values percent-encoded, base_url raw */
    assert_int_equal(conn_generic_render(&b, "{base_url}/send?key={apikey}&to={to}", 1, &v, &err),
                     0);
    assert_string_equal(b.data, "https://p.example/api/send?key=k%26y&to=09121234567");
    buf_reset(&b);
    /* JSON body: escaped inside quotes, _json adds the quotes; JSON braces
     * are literal */
    assert_int_equal(
        conn_generic_render(&b, "{\"t\":\"{text}\",\"u\":{text_json},\"x\":{}}", 2, &v, &err), 0);
    assert_string_equal(b.data, "{\"t\":\"a \\\"q\\\" & b=c\\nسلام\",\"u\":\"a \\\"q\\\" & "
                                "b=c\\nسلام\",\"x\":{}}");
    cJSON *j = cJSON_Parse(b.data);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "t")->valuestring, v.text);
    cJSON_Delete(j);
    buf_reset(&b);
    /* form */
    assert_int_equal(conn_generic_render(&b, "to={to}&text={text}", 3, &v, &err), 0);
    assert_null(strchr(b.data + strlen("to=09121234567&text="), '&'));
    buf_reset(&b);
    assert_int_equal(conn_generic_render(&b, "{nope}", 0, &v, &err), SMSYS_ECONFIG);
    assert_non_null(strstr(err.detail, "{nope}"));
    assert_int_equal(conn_generic_render(&b, "{provider_id}", 0, &v, &err), SMSYS_ECONFIG);
    assert_non_null(strstr(err.detail, "not available"));
    buf_free(&b);
}

/* ---- forms, times -------------------------------------------------------------- */

static void test_form_and_time(void **state)
{
    struct ch_form f;
    const char *s = "a=1&b=x+y%26z&&c&d=%D8%B3";
    assert_int_equal(ch_form_parse(s, strlen(s), &f), 0);
    assert_int_equal(f.n, 4);
    assert_string_equal(ch_form_get(&f, "b"), "x y&z");
    assert_string_equal(ch_form_get(&f, "c"), "");
    assert_string_equal(ch_form_get(&f, "d"), "\xD8\xB3");
    assert_null(ch_form_get(&f, "e"));
    ch_form_free(&f);
    assert_int_equal(ch_form_parse("a=%G1", 5, &f), -EINVAL);
    assert_int_equal(ch_form_parse("a=%", 3, &f), -EINVAL);

    assert_int_equal(ch_parse_time("1795854503"), 1795854503);
    assert_int_equal(ch_parse_time("2026-11-28T08:00:00Z"), 1795852800);
    assert_int_equal(ch_parse_time("2026-11-28 11:30:00+03:30"), 1795852800);
    assert_int_equal(ch_parse_time("2026-11-28T08:00:00.123"), 1795852800);
    assert_int_equal(ch_parse_time("yesterday"), 0);
    assert_int_equal(ch_parse_time(NULL), 0);
}

/* ---- webhooks ------------------------------------------------------------------- */

static void test_twilio_signature_vector(void **state)
{
    /* computed with: base64(hmac.new(b"secret-token", url + sorted k+v,
     * hashlib.sha1).digest()) in Python */
    const char *body = "MessageSid=SM0123&MessageStatus=delivered&To=%2B989121234567&From=%"
                       "2B15005550006&Body=a%2Bb+%26c%3Dd";
    struct ch_form f;
    assert_int_equal(ch_form_parse(body, strlen(body), &f), 0);
    char sig[64];
    assert_int_equal(conn_twilio_signature("secret-token",
                                           "https://example.test/hook/twilio?acct=1", &f, sig,
                                           sizeof sig),
                     0);
    assert_string_equal(sig, "LYS0UCD501n7KfdNkeNS9d9Q9so=");
    ch_form_free(&f);

    struct http_header h = {"X-Twilio-Signature", "LYS0UCD501n7KfdNkeNS9d9Q9so="};
    struct http_req req = {.method = "POST",
                           .target = "/hook/twilio?acct=1",
                           .path = "/hook/twilio",
                           .query = "acct=1",
                           .headers = &h,
                           .nheaders = 1,
                           .body = body,
                           .body_len = strlen(body)};
    struct conn_event *ev;
    size_t n;
    assert_int_equal(
        conn_twilio_webhook_parse("secret-token", "https://example.test", &req, &ev, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].kind, CONN_EV_STATE);
    assert_string_equal(ev[0].u.state.provider_id, "SM0123");
    assert_int_equal(ev[0].u.state.status, CONN_ST_DELIVERED);
    conn_events_free(ev, n);
    /* wrong token, other URL, tampered body, missing header: all EAUTH */
    assert_int_equal(conn_twilio_webhook_parse("other", "https://example.test", &req, &ev, &n),
                     SMSYS_EAUTH);
    assert_int_equal(
        conn_twilio_webhook_parse("secret-token", "http://example.test", &req, &ev, &n),
        SMSYS_EAUTH);
    req.body_len -= 1;
    assert_int_equal(
        conn_twilio_webhook_parse("secret-token", "https://example.test", &req, &ev, &n),
        SMSYS_EAUTH);
    req.body_len += 1;
    req.nheaders = 0;
    assert_int_equal(
        conn_twilio_webhook_parse("secret-token", "https://example.test", &req, &ev, &n),
        SMSYS_EAUTH);
}

static void test_kavenegar_webhook(void **state)
{
    const char *tok = "0123456789abcdef0123";
    struct http_req req = {.method = "POST",
                           .target = "/hook/kn?token=0123456789abcdef0123",
                           .query = "token=0123456789abcdef0123",
                           .body = "messageid=77&status=10&statustext=delivered",
                           .body_len = 43};
    struct conn_event *ev;
    size_t n;
    assert_int_equal(conn_kavenegar_webhook_parse(tok, &req, &ev, &n), 0);
    assert_int_equal(ev[0].kind, CONN_EV_STATE);
    assert_string_equal(ev[0].u.state.provider_id, "77");
    assert_int_equal(ev[0].u.state.status, CONN_ST_DELIVERED);
    conn_events_free(ev, n);

    req.body = "messageid=9&message=%D8%B3%D9%84%D8%A7%D9%85&sender=09121234567&receptor="
               "10004346&date=1795854503";
    req.body_len = strlen(req.body);
    assert_int_equal(conn_kavenegar_webhook_parse(tok, &req, &ev, &n), 0);
    assert_int_equal(ev[0].kind, CONN_EV_MO);
    assert_string_equal(ev[0].u.mo.text, "سلام");
    assert_string_equal(ev[0].u.mo.from, "09121234567");
    assert_int_equal(ev[0].u.mo.received_at, 1795854503);
    conn_events_free(ev, n);

    req.query = "token=0123456789abcdef0124"; /* one character off */
    assert_int_equal(conn_kavenegar_webhook_parse(tok, &req, &ev, &n), SMSYS_EAUTH);
    req.query = "token=0123456789abcdef012"; /* a prefix */
    assert_int_equal(conn_kavenegar_webhook_parse(tok, &req, &ev, &n), SMSYS_EAUTH);
    req.query = "";
    assert_int_equal(conn_kavenegar_webhook_parse(tok, &req, &ev, &n), SMSYS_EAUTH);
    req.query = "token=0123456789abcdef0123";
    assert_int_equal(conn_kavenegar_webhook_parse(NULL, &req, &ev, &n), SMSYS_EAUTH);
    req.body = "nothing=here";
    req.body_len = strlen(req.body);
    assert_int_equal(conn_kavenegar_webhook_parse(tok, &req, &ev, &n), -EINVAL);
}

static void test_registry(void **state)
{
    static const char *const names[] = {"kavenegar", "smsir",  "ghasedak", "melipayamak",
                                        "asanak",    "twilio", "generic"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const struct conn_ops *o = connector_find(names[i]);
        assert_non_null(o);
        assert_string_equal(o->name, names[i]);
        assert_non_null(o->open);
        assert_non_null(o->send);
        assert_non_null(o->close);
        assert_true(o->max_batch >= 1);
    }
    assert_int_equal(connector_find("kavenegar")->supports_idempotency, 1);
    assert_int_equal(connector_find("ghasedak")->supports_idempotency, 1);
    assert_int_equal(connector_find("smsir")->supports_idempotency, 0);
    assert_null(connector_find("nope"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_maps),
        cmocka_unit_test(test_error_classes),
        cmocka_unit_test(test_parse_kavenegar_send),
        cmocka_unit_test(test_parse_other_sends),
        cmocka_unit_test(test_parse_status),
        cmocka_unit_test(test_json_pointer),
        cmocka_unit_test(test_generic_render),
        cmocka_unit_test(test_form_and_time),
        cmocka_unit_test(test_twilio_signature_vector),
        cmocka_unit_test(test_kavenegar_webhook),
        cmocka_unit_test(test_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
