/* Unit tests for the shared layer of the HTTP connectors (conn_http_ops.c):
 * envelopes described by struct ch_api, and the reply skeletons as the
 * connectors use them, on canned replies. No I/O. */
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
#include "conn_parsers.h"

static const struct ch_code t_codes[] = {
    {7, SMSYS_EACCOUNT, "no credit"},
    {9, SMSYS_EPERM, "bad number"},
    {0, 0, NULL},
};

static int t_classify(long code, int http, const char **text)
{
    int d = ch_http_class(http);
    return ch_code_class(t_codes, code, d ? d : SMSYS_ETEMP, text);
}

static const struct ch_api t_api = {
    .name = "prov",
    .code = "meta.status",
    .ok = 1,
    .ok_flag = "meta.ok",
    .code_more = "meta.detail",
    .message = "meta.message",
    .data = "data",
    .classify = t_classify,
};

static int read_reply(const struct ch_api *api, int http, const char *body, struct ch_reply *r)
{
    return ch_reply_read(r, api, http, body, body ? strlen(body) : 0);
}

static void test_json_path(void **state)
{
    cJSON *d = cJSON_Parse("{\"Meta\":{\"Status\":3,\"x\":{\"y\":\"z\"}},\"a\":[1]}");
    assert_non_null(d);
    assert_int_equal(ch_json_path(d, "meta.status")->valueint, 3); /* any key case */
    assert_string_equal(ch_json_path(d, "meta.x.y")->valuestring, "z");
    assert_ptr_equal(ch_json_path(d, ""), d);
    assert_null(ch_json_path(d, "meta.nope"));
    assert_null(ch_json_path(d, "a.0")); /* members only, not array indexes */
    assert_null(ch_json_path(NULL, "a"));
    char longkey[100];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    assert_null(ch_json_path(d, longkey));
    cJSON_Delete(d);
}

static void test_envelope(void **state)
{
    struct ch_reply r;
    /* accepted: data is the payload */
    assert_int_equal(read_reply(&t_api, 200, "{\"meta\":{\"status\":1},\"data\":[5]}", &r), 0);
    assert_true(cJSON_IsArray(r.data));
    ch_reply_free(&r);

    /* refused: the class of the code, the table's text and the provider's */
    assert_int_equal(read_reply(&t_api, 200, "{\"meta\":{\"status\":7,\"message\":\"pay\"}}", &r),
                     SMSYS_EACCOUNT);
    assert_int_equal(r.code, 7);
    assert_string_equal(r.detail, "prov 7: no credit - pay");
    ch_reply_free(&r);

    /* the success code with the flag false is a refusal too */
    assert_int_equal(read_reply(&t_api, 200, "{\"meta\":{\"status\":1,\"ok\":false}}", &r),
                     SMSYS_ETEMP);
    assert_string_equal(r.detail, "prov 1: error");
    ch_reply_free(&r);

    /* the more precise code wins */
    assert_int_equal(read_reply(&t_api, 400, "{\"meta\":{\"status\":0,\"detail\":\"9\"}}", &r),
                     SMSYS_EPERM);
    assert_int_equal(r.code, 9);
    ch_reply_free(&r);

    /* no envelope: the HTTP class, else a protocol error */
    assert_int_equal(read_reply(&t_api, 503, "{\"x\":1}", &r), SMSYS_ETEMP);
    assert_string_equal(r.detail, "prov: reply without meta.status (HTTP 503)");
    ch_reply_free(&r);
    assert_int_equal(read_reply(&t_api, 200, "{\"x\":1}", &r), SMSYS_EPROTO);
    ch_reply_free(&r);
    struct ch_api strict = t_api;
    strict.flags = CH_API_STRICT;
    assert_int_equal(read_reply(&strict, 503, "{\"x\":1}", &r), SMSYS_EPROTO);
    ch_reply_free(&r);

    /* not JSON at all */
    assert_int_equal(read_reply(&t_api, 502, "<html>", &r), SMSYS_EPROTO);
    assert_string_equal(r.detail, "prov: unreadable reply (HTTP 502)");
    assert_null(r.root);
    ch_reply_free(&r);
    assert_int_equal(read_reply(&t_api, 200, NULL, &r), SMSYS_EPROTO);
    ch_reply_free(&r);
}

static void test_envelope_by_http(void **state)
{
    struct ch_api api = {.name = "tw",
                         .code = "code",
                         .message = "message",
                         .classify = t_classify,
                         .flags = CH_API_BY_HTTP | CH_API_HTTP_DETAIL};
    struct ch_reply r;
    assert_int_equal(read_reply(&api, 201, "{\"sid\":\"x\"}", &r), 0);
    assert_ptr_equal(r.data, r.root);
    ch_reply_free(&r);
    assert_int_equal(read_reply(&api, 200, "", &r), 0); /* the caller finds nothing in it */
    ch_reply_free(&r);
    assert_int_equal(read_reply(&api, 400, "{\"code\":9,\"message\":\"no\"}", &r), SMSYS_EPERM);
    assert_string_equal(r.detail, "tw 9 (HTTP 400): bad number - no");
    ch_reply_free(&r);
    assert_int_equal(read_reply(&api, 429, "busy", &r), SMSYS_ETHROTTLED);
    assert_string_equal(r.detail, "tw 0 (HTTP 429): error");
    ch_reply_free(&r);
}

/* ---- the skeletons through the connectors ------------------------------------- */

struct op_got {
    int fired, rc;
    double amount;
    char unit[8], detail[600];
    size_t n;
    char a[4][64], b[4][64], c[4][64];
};

static void bal_cb(void *ud, int rc, const struct conn_balance *b, const struct smsys_err *err)
{
    struct op_got *g = ud;
    g->fired++;
    g->rc = rc;
    if (b) {
        g->amount = b->amount;
        snprintf(g->unit, sizeof g->unit, "%s", b->unit);
    }
    snprintf(g->detail, sizeof g->detail, "%s", err ? err->detail : "");
}

static void mo_cb(void *ud, int rc, const struct conn_mo *mo, size_t n, const struct smsys_err *err)
{
    struct op_got *g = ud;
    g->fired++;
    g->rc = rc;
    g->n = n;
    for (size_t i = 0; i < n && i < 4; i++) {
        snprintf(g->a[i], 64, "%s", mo[i].provider_id ? mo[i].provider_id : "-");
        snprintf(g->b[i], 64, "%s>%s", mo[i].from, mo[i].to);
        snprintf(g->c[i], 64, "%s@%lld", mo[i].text, (long long)mo[i].received_at);
    }
    snprintf(g->detail, sizeof g->detail, "%s", err ? err->detail : "");
}

static void lines_cb(void *ud, int rc, const struct conn_line *l, size_t n,
                     const struct smsys_err *err)
{
    struct op_got *g = ud;
    g->fired++;
    g->rc = rc;
    g->n = n;
    for (size_t i = 0; i < n && i < 4; i++) {
        snprintf(g->a[i], 64, "%s", l[i].number);
        snprintf(g->b[i], 64, "%s", l[i].label ? l[i].label : "-");
    }
    snprintf(g->detail, sizeof g->detail, "%s", err ? err->detail : "");
}

typedef void (*parse_ops_fn)(struct conn *, int, const char *, size_t, const struct ch_op *);

static void run_op(const struct conn_ops *ops, parse_ops_fn fn, struct ch_op op, int http,
                   const char *body, struct op_got *g)
{
    struct conn c;
    memset(&c, 0, sizeof c);
    c.ops = ops;
    memset(g, 0, sizeof *g);
    op.ud = g;
    fn(&c, http, body, strlen(body), &op);
    assert_int_equal(g->fired, 1);
}

/* Bug fixed: SMS.ir's credit reply without a number said SMSYS_EPROTO with
 * an uninitialised detail (garbage, or a crash under a sanitizer). */
static void test_smsir_balance(void **state)
{
    struct op_got g;
    struct ch_op op = {.balance = bal_cb};
    run_op(&conn_smsir_ops, conn_smsir_parse_ops, op, 200, "{\"status\":1,\"data\":{}}", &g);
    assert_int_equal(g.rc, SMSYS_EPROTO);
    assert_string_equal(g.detail, "smsir: no credit in the reply");
    run_op(&conn_smsir_ops, conn_smsir_parse_ops, op, 200, "{\"status\":1,\"data\":1250.5}", &g);
    assert_int_equal(g.rc, 0);
    assert_true(g.amount == 1250.5);
    assert_string_equal(g.unit, "IRR");
    run_op(&conn_smsir_ops, conn_smsir_parse_ops, op, 200,
           "{\"status\":1,\"data\":{\"credit\":\"99\"}}", &g);
    assert_int_equal(g.rc, 0);
    assert_true(g.amount == 99);
    run_op(&conn_smsir_ops, conn_smsir_parse_ops, op, 401,
           "{\"status\":10,\"message\":\"key?\",\"data\":null}", &g);
    assert_int_equal(g.rc, SMSYS_EACCOUNT);
    assert_string_equal(g.detail, "smsir 10 (HTTP 401): invalid API key - key?");
}

static void test_inbox_and_lines(void **state)
{
    struct op_got g;
    struct ch_op in = {.inbox = mo_cb}, ln = {.lines = lines_cb};
    run_op(&conn_ghasedak_ops, conn_ghasedak_parse_ops, in, 200,
           "{\"isSuccess\":true,\"statusCode\":200,\"data\":{\"items\":["
           "{\"id\":77,\"sender\":\"09121111111\",\"lineNumber\":\"3000\",\"message\":\"hi\","
           "\"receiveDate\":\"1795852800\"},"
           "{\"id\":78,\"sender\":\"0912\",\"message\":5},"
           "{\"sender\":\"09122222222\",\"lineNumber\":3000,\"message\":\"yo\"}]}}",
           &g);
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.n, 2); /* the item without a text is skipped */
    assert_string_equal(g.a[0], "77");
    assert_string_equal(g.b[0], "09121111111>3000");
    assert_string_equal(g.c[0], "hi@1795852800");
    assert_string_equal(g.a[1], "-");
    assert_string_equal(g.b[1], "09122222222>3000");

    /* an unreadable inbox reply is temporary */
    run_op(&conn_ghasedak_ops, conn_ghasedak_parse_ops, in, 200, "<html>", &g);
    assert_int_equal(g.rc, SMSYS_ETEMP);
    assert_string_equal(g.detail, "ghasedak: unreadable reply (HTTP 200)");

    run_op(&conn_melipayamak_ops, conn_melipayamak_parse_ops, ln, 200,
           "{\"RetStatus\":1,\"Value\":\"\",\"Data\":[{\"Number\":\"3000123\"},{\"x\":1},"
           "{\"Number\":98912}]}",
           &g);
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.a[0], "3000123");
    assert_string_equal(g.a[1], "98912");

    run_op(&conn_twilio_ops, conn_twilio_parse_ops, ln, 200,
           "{\"incoming_phone_numbers\":[{\"phone_number\":\"+15005550006\","
           "\"friendly_name\":\"main\"}]}",
           &g);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.a[0], "+15005550006");
    assert_string_equal(g.b[0], "main");
    run_op(&conn_twilio_ops, conn_twilio_parse_ops, ln, 200, "{}", &g);
    assert_int_equal(g.rc, SMSYS_EPROTO);
    assert_string_equal(g.detail, "twilio: no incoming_phone_numbers in the reply");
}

/* ---- send replies ----------------------------------------------------------------- */

struct sent_got {
    int fired;
    size_t n;
    int rc[2];
    char detail[2][300];
};

static void sent_cb(void *ud, const struct conn_sent *res, size_t n)
{
    struct sent_got *g = ud;
    g->fired++;
    g->n = n;
    for (size_t i = 0; i < n && i < 2; i++) {
        g->rc[i] = res[i].rc;
        snprintf(g->detail[i], 300, "%s", res[i].detail ? res[i].detail : "");
    }
}

static int started;

static int count_start(struct ch_batch *b, void *ud)
{
    started++;
    return -ENOMEM; /* the split message then fails with SMSYS_ETEMP */
}

/* A 2-message batch of a connector-less send through parse; returns what
 * parse returned. */
static int run_send(const struct conn_ops *ops,
                    int (*parse)(struct ch_batch *, int, const char *, size_t), int http,
                    const char *body, struct sent_got *g)
{
    struct conn c;
    memset(&c, 0, sizeof c);
    c.ops = ops;
    struct sms_out m[2] = {{.id = "a", .to = "+989121111111", .text = "hi"},
                           {.id = "b", .to = "+989122222222", .text = "hi"}};
    struct ch_send *s;
    memset(g, 0, sizeof *g);
    assert_int_equal(ch_send_new(&c, m, 2, PHONE_NATIONAL, sent_cb, g, &s), 0);
    s->pending = 1;
    s->start = count_start;
    struct ch_batch *b = calloc(1, sizeof *b + 2 * sizeof b->idx[0]);
    b->s = s;
    b->n = 2;
    b->idx[0] = 0;
    b->idx[1] = 1;
    started = 0;
    int split = parse(b, http, body, strlen(body));
    if (split == 0)
        ch_batch_done(b);
    assert_int_equal(g->fired, 1);
    assert_int_equal(g->n, 2);
    return split;
}

/* The split on "one bad recipient" is on that exact code: before, a code
 * that merely began with its digits (SMS.ir 1041, Ghasedak 4220) split the
 * batch too. */
static void test_split_exact_code(void **state)
{
    struct sent_got g;
    assert_int_equal(run_send(&conn_smsir_ops, conn_smsir_parse_send, 400,
                              "{\"status\":104,\"message\":\"bad\"}", &g),
                     1);
    assert_int_equal(started, 2);
    assert_int_equal(run_send(&conn_smsir_ops, conn_smsir_parse_send, 400,
                              "{\"status\":1041,\"message\":\"other\"}", &g),
                     0);
    assert_int_equal(started, 0);
    assert_int_equal(g.rc[0], SMSYS_EPERM);
    assert_int_equal(g.rc[1], SMSYS_EPERM);
    assert_string_equal(g.detail[0], "smsir 1041 (HTTP 400): error - other");
    assert_int_equal(run_send(&conn_melipayamak_ops, conn_melipayamak_parse_send, 200,
                              "{\"RetStatus\":0,\"Value\":\"160\",\"StrRetStatus\":\"x\"}", &g),
                     0);
    assert_int_equal(started, 0);
    assert_int_equal(g.rc[0], SMSYS_EPERM);
}

/* Throttled: both messages fail as throttled, with the provider's code. */
static void test_send_refused(void **state)
{
    struct sent_got g;
    assert_int_equal(run_send(&conn_asanak_ops, conn_asanak_parse_send, 200,
                              "{\"meta\":{\"status\":1009,\"message\":\"limit\"}}", &g),
                     0);
    assert_int_equal(g.rc[0], SMSYS_ETHROTTLED);
    assert_int_equal(g.rc[1], SMSYS_ETHROTTLED);
    assert_string_equal(g.detail[1], "asanak 1009: daily limit reached - limit");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_path),        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_envelope_by_http), cmocka_unit_test(test_smsir_balance),
        cmocka_unit_test(test_inbox_and_lines),  cmocka_unit_test(test_split_exact_code),
        cmocka_unit_test(test_send_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
