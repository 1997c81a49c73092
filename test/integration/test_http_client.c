/* Integration tests for http_client against a loopback peer (http_peer.h,
 * raw libuv TCP in the same loop) and, for TLS, openssl s_server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/buf.h"
#include "smsys/error.h"
#include "smsys/http_client.h"
#include "smsys/util.h"
#include "../lib/testutil.h"
#include "http_peer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- fixture ---- */

struct fx {
    uv_loop_t loop;
    struct peer peer;
    struct http_client *c;
    int closed;
    pid_t spawned; /* a server process to stop in teardown */
    char url[128];
};

struct res {
    int fired;
    int rc;
    int status;
    int sent;
    int unknown;
    long nconn;
    char *body;
    size_t body_len;
    char detail[512];
    char h[6][64];   /* header values picked by the repeat test */
    int closed_seen; /* fx->closed when the callback ran */
    struct fx *fx;
    int submit_rc;    /* http_client_request() from inside the callback */
    int close_client; /* callback closes the client */
};

static void closed_cb(void *ud)
{
    (*(int *)ud)++;
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    peer_start(&fx->peer, &fx->loop);
    assert_int_equal(http_client_new(&fx->loop, NULL, &fx->c), 0);
    *state = fx;
    return 0;
}

static void fx_close_client(struct fx *fx)
{
    if (fx->c) {
        http_client_close(fx->c, closed_cb, &fx->closed);
        fx->c = NULL;
    }
    assert_int_equal(tu_run_until(&fx->loop, &fx->closed, 5000), 0);
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    if (fx->spawned > 0)
        tu_stop(fx->spawned);
    fx_close_client(fx);
    assert_int_equal(fx->closed, 1);
    peer_stop(&fx->peer);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->peer.open, 0);
    assert_int_equal(tu_loop_handles(&fx->loop), 0);
    assert_int_equal(tu_loop_close(&fx->loop), 0);
    free(fx);
    return 0;
}

static const char *url(struct fx *fx, const char *path)
{
    snprintf(fx->url, sizeof fx->url, "http://127.0.0.1:%d%s", fx->peer.port, path);
    return fx->url;
}

static void done_cb(int rc, struct http_response *resp, void *ud)
{
    struct res *r = ud;
    r->fired++;
    r->rc = rc;
    r->status = resp->status;
    r->sent = resp->request_sent;
    r->unknown = http_client_outcome_unknown(rc, resp);
    r->nconn = resp->num_connects;
    r->body_len = resp->body.len;
    free(r->body);
    r->body = buf_steal(&resp->body); /* the callback may keep the body */
    snprintf(r->detail, sizeof r->detail, "%s", resp->err.detail);
    static const char *const names[][2] = {{"retry-after", "0"},    {"Retry-After", "1"},
                                           {"ODATA-ENTITYID", "0"}, {"OData-EntityId", "1"},
                                           {"X-Fold", "0"},         {"Retry-After", "2"}};
    for (size_t i = 0; i < 6; i++) {
        const char *v = http_client_header_nth(resp, names[i][0], (size_t)(names[i][1][0] - '0'));
        snprintf(r->h[i], sizeof r->h[i], "%s", v ? v : "(null)");
    }
    if (r->fx) {
        r->closed_seen = r->fx->closed;
        struct http_request req = {.url = "http://127.0.0.1:1/x"};
        if (r->close_client && r->fx->c) {
            http_client_close(r->fx->c, closed_cb, &r->fx->closed);
            r->submit_rc = http_client_request(r->fx->c, &req, done_cb, r, NULL);
            r->fx->c = NULL;
        }
    }
}

static void res_free(struct res *r)
{
    free(r->body);
    r->body = NULL;
}

/* Starts req, checks the callback did not run inside the call, and runs
 * the loop until it fires. */
static void run(struct fx *fx, const struct http_request *req, struct res *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(http_client_request(fx->c, req, done_cb, r, NULL), 0);
    assert_int_equal(r->fired, 0);
    assert_int_equal(tu_run_until(&fx->loop, &r->fired, 10000), 0);
    assert_int_equal(r->fired, 1);
}

/* ---- tests ---- */

static void test_get(void **state)
{
    struct fx *fx = *state;
    struct http_request req = {.url = url(fx, "/hello")};
    struct res r;
    run(fx, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    assert_int_equal(r.sent, 1);
    assert_int_equal(r.unknown, 0);
    res_free(&r);
}

static void test_post_echo(void **state)
{
    struct fx *fx = *state;
    const char *hdrs[] = {"Content-Type: application/json", "X-Test: 1"};
    struct http_request req = {.url = url(fx, "/echo"),
                               .body = "{\"a\":1}",
                               .body_len = 7,
                               .headers = hdrs,
                               .n_headers = 2};
    struct res r;
    run(fx, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body, "POST {\"a\":1}");

    /* a large PATCH body goes out in several writes; all of it must arrive */
    size_t n = 300000;
    char *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    struct http_request req2 = {
        .url = url(fx, "/echo"), .method = "PATCH", .body = big, .body_len = n};
    struct res r2;
    run(fx, &req2, &r2);
    assert_int_equal(r2.rc, 0);
    assert_int_equal(r2.body_len, n + 6);
    assert_memory_equal(r2.body, "PATCH ", 6);
    assert_memory_equal(r2.body + 6, big, n);
    assert_int_equal(r2.sent, 1);
    free(big);
    res_free(&r);
    res_free(&r2);
}

static void test_concurrent(void **state)
{
    struct fx *fx = *state;
    enum { N = 200 };
    struct res *r = calloc(N, sizeof *r);
    char(*bodies)[16] = calloc(N, 16);
    assert_non_null(r);
    assert_non_null(bodies);
    int fired = 0;
    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], 16, "req-%d", i);
        struct http_request req = {
            .url = url(fx, "/echo"), .body = bodies[i], .body_len = strlen(bodies[i])};
        assert_int_equal(http_client_request(fx->c, &req, done_cb, &r[i], NULL), 0);
    }
    uint64_t t0 = util_now_ms();
    while (fired < N && util_now_ms() - t0 < 20000) {
        uv_run(&fx->loop, UV_RUN_ONCE);
        fired = 0;
        for (int i = 0; i < N; i++)
            fired += r[i].fired;
    }
    assert_int_equal(fired, N);
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof want, "POST %s", bodies[i]);
        assert_int_equal(r[i].fired, 1);
        assert_int_equal(r[i].rc, 0);
        assert_string_equal(r[i].body, want);
        res_free(&r[i]);
    }
    /* the default connection cap (64) holds */
    assert_true(fx->peer.accepted <= 64);
    assert_int_equal(fx->peer.requests, N);
    free(r);
    free(bodies);
}

static void test_keepalive(void **state)
{
    struct fx *fx = *state;
    struct http_request req = {.url = url(fx, "/hello")};
    struct res r;
    for (int i = 0; i < 3; i++) {
        run(fx, &req, &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.nconn, i == 0 ? 1 : 0);
        res_free(&r);
    }
    assert_int_equal(fx->peer.accepted, 1);
    assert_int_equal(fx->peer.requests, 3);
}

static void test_timeout(void **state)
{
    struct fx *fx = *state;
    struct http_request req = {
        .url = url(fx, "/hang"), .body = "x", .body_len = 1, .timeout_ms = 300};
    struct res r;
    uint64_t t0 = util_now_ms();
    run(fx, &req, &r);
    assert_int_equal(r.rc, -ETIMEDOUT);
    assert_true(util_now_ms() - t0 >= 250);
    assert_int_equal(r.sent, 1);
    assert_int_equal(r.unknown, 1);
    assert_int_equal(r.status, 0);
    assert_true(strlen(r.detail) > 0);
    res_free(&r);
}

static void test_refused(void **state)
{
    struct fx *fx = *state;
    char u[64];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/x", tu_free_port());
    struct http_request req = {.url = u, .body = "x", .body_len = 1};
    struct res r;
    run(fx, &req, &r);
    assert_int_equal(r.rc, SMSYS_ETEMP);
    assert_int_equal(r.sent, 0);
    assert_int_equal(r.unknown, 0);
    assert_non_null(strstr(r.detail, "onnect"));
    res_free(&r);
}

static void test_dropped(void **state)
{
    struct fx *fx = *state;
    struct http_request req = {.url = url(fx, "/drop"), .body = "{}", .body_len = 2};
    struct res r;
    run(fx, &req, &r);
    assert_int_equal(r.rc, SMSYS_ETEMP);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.sent, 1);
    assert_int_equal(r.unknown, 1); /* the peer had it all: do not resend blindly */
    res_free(&r);
}

static void test_reset(void **state)
{
    struct fx *fx = *state;
    struct http_request req = {.url = url(fx, "/reset")};
    struct res r;
    run(fx, &req, &r);
    assert_int_equal(r.rc, SMSYS_ETEMP);
    assert_int_equal(r.sent, 1);
    assert_true(strlen(r.detail) > 0);
    res_free(&r);
}

/* Connections that the server drops after each reply: curl must notice
 * the dead pooled connection, and fd numbers get reused all the time. */
static void test_churn(void **state)
{
    struct fx *fx = *state;
    struct http_client *c2 = NULL;
    struct http_client_opts o = {.max_total_conns = 4};
    assert_int_equal(http_client_new(&fx->loop, &o, &c2), 0);
    enum { N = 100 };
    struct res *r = calloc(N, sizeof *r);
    assert_non_null(r);
    for (int i = 0; i < N; i++) {
        struct http_request req = {.url = url(fx, i % 2 ? "/hello-close" : "/hello")};
        assert_int_equal(http_client_request(c2, &req, done_cb, &r[i], NULL), 0);
    }
    int fired = 0;
    uint64_t t0 = util_now_ms();
    while (fired < N && util_now_ms() - t0 < 20000) {
        uv_run(&fx->loop, UV_RUN_ONCE);
        fired = 0;
        for (int i = 0; i < N; i++)
            fired += r[i].fired;
    }
    assert_int_equal(fired, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].fired, 1);
        assert_int_equal(r[i].rc, 0);
        assert_string_equal(r[i].body, "hello");
        res_free(&r[i]);
    }
    assert_true(fx->peer.accepted > 4);
    free(r);
    /* a sequential request after the server closed the idle connection */
    struct res one;
    struct http_client *keep = fx->c;
    fx->c = c2;
    struct http_request rq = {.url = url(fx, "/hello-close")};
    run(fx, &rq, &one);
    assert_int_equal(one.rc, 0);
    res_free(&one);
    run(fx, &rq, &one);
    assert_int_equal(one.rc, 0);
    assert_int_equal(one.nconn, 1);
    res_free(&one);
    fx->c = keep;
    int closed2 = 0;
    http_client_close(c2, closed_cb, &closed2);
    assert_int_equal(tu_run_until(&fx->loop, &closed2, 5000), 0);
}

static void test_partial(void **state)
{
    struct fx *fx = *state;
    struct http_request req = {.url = url(fx, "/partial")};
    struct res r;
    run(fx, &req, &r);
    assert_int_equal(r.rc, SMSYS_ETEMP);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.sent, 1);
    res_free(&r);
}

static void test_too_big(void **state)
{
    struct fx *fx = *state;
    struct http_request req = {.url = url(fx, "/big"), .max_response_bytes = 1000};
    struct res r;
    run(fx, &req, &r); /* Content-Length known: refused up front */
    assert_int_equal(r.rc, SMSYS_ETOOBIG);
    res_free(&r);
    req.url = url(fx, "/bigchunked"); /* no length: cut while reading */
    run(fx, &req, &r);
    assert_int_equal(r.rc, SMSYS_ETOOBIG);
    assert_true(r.body_len <= 1000);
    res_free(&r);
    req.max_response_bytes = 10000; /* exactly at the cap is fine */
    run(fx, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.body_len, 10000);
    res_free(&r);
}

static void test_chunked(void **state)
{
    struct fx *fx = *state;
    struct http_request req = {.url = url(fx, "/chunked")};
    struct res r;
    run(fx, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body, "hello world");
    res_free(&r);
}

static void test_repeated_headers(void **state)
{
    struct fx *fx = *state;
    struct http_request req = {.url = url(fx, "/repeat")};
    struct res r;
    run(fx, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 429);
    assert_string_equal(r.h[0], "7");
    assert_string_equal(r.h[1], "9");
    assert_string_equal(r.h[2], "a");
    assert_string_equal(r.h[3], "b");
    assert_string_equal(r.h[4], "one two");
    assert_string_equal(r.h[5], "(null)");
    assert_int_equal(r.body_len, 0);
    assert_non_null(r.body);
    res_free(&r);
}

static void test_http_errors_are_statuses(void **state)
{
    struct fx *fx = *state;
    struct http_request req = {.url = url(fx, "/status/404")};
    struct res r;
    run(fx, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 404);
    res_free(&r);
    req.url = url(fx, "/status/503");
    run(fx, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "status");
    res_free(&r);
}

static void test_cancel(void **state)
{
    struct fx *fx = *state;
    struct http_request req = {.url = url(fx, "/hang")};
    struct res r;
    memset(&r, 0, sizeof r);
    struct http_call *call = NULL;
    assert_int_equal(http_client_request(fx->c, &req, done_cb, &r, &call), 0);
    assert_non_null(call);
    while (fx->peer.requests < 1)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(http_call_cancel(call), 0);
    assert_int_equal(r.fired, 0); /* never inside the call */
    assert_int_equal(http_call_cancel(call), -EALREADY);
    assert_int_equal(tu_run_until(&fx->loop, &r.fired, 5000), 0);
    assert_int_equal(r.rc, -ECANCELED);
    assert_int_equal(r.sent, 1);
    /* the client still works, and the callback did not fire again */
    struct http_request req2 = {.url = url(fx, "/hello")};
    struct res r2;
    run(fx, &req2, &r2);
    assert_int_equal(r2.rc, 0);
    assert_int_equal(r.fired, 1);
    res_free(&r);
    res_free(&r2);
}

static void test_close_in_flight(void **state)
{
    struct fx *fx = *state;
    enum { N = 10 };
    struct res r[N];
    memset(r, 0, sizeof r);
    struct http_request req = {.url = url(fx, "/hang")};
    for (int i = 0; i < N; i++) {
        r[i].fx = fx;
        assert_int_equal(http_client_request(fx->c, &req, done_cb, &r[i], NULL), 0);
    }
    while (fx->peer.requests < N)
        uv_run(&fx->loop, UV_RUN_ONCE);
    http_client_close(fx->c, closed_cb, &fx->closed);
    fx->c = NULL;
    for (int i = 0; i < N; i++)
        assert_int_equal(r[i].fired, 0);
    assert_int_equal(tu_run_until(&fx->loop, &fx->closed, 5000), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].fired, 1);
        assert_int_equal(r[i].rc, -ECANCELED);
        assert_int_equal(r[i].closed_seen, 0); /* request callbacks before close cb */
        res_free(&r[i]);
    }
    /* the connections were really closed: the peer sees EOF on each */
    while (fx->peer.open > 0)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(fx->closed, 1);
}

static void test_close_from_callback(void **state)
{
    struct fx *fx = *state;
    struct res hang[3], first;
    memset(hang, 0, sizeof hang);
    memset(&first, 0, sizeof first);
    struct http_request rq = {.url = url(fx, "/hang")};
    for (int i = 0; i < 3; i++)
        assert_int_equal(http_client_request(fx->c, &rq, done_cb, &hang[i], NULL), 0);
    struct http_request rh = {.url = url(fx, "/hello")};
    first.fx = fx;
    first.close_client = 1;
    assert_int_equal(http_client_request(fx->c, &rh, done_cb, &first, NULL), 0);
    assert_int_equal(tu_run_until(&fx->loop, &fx->closed, 5000), 0);
    assert_int_equal(first.fired, 1);
    assert_int_equal(first.rc, 0);
    assert_int_equal(first.submit_rc, SMSYS_ECLOSED);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hang[i].fired, 1);
        assert_int_equal(hang[i].rc, -ECANCELED);
        res_free(&hang[i]);
    }
    res_free(&first);
}

static void test_basic_auth(void **state)
{
    struct fx *fx = *state;
    struct http_request req = {
        .url = url(fx, "/auth"), .auth = HTTP_AUTH_BASIC, .username = "user", .password = "pass"};
    struct res r;
    run(fx, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body, "Basic dXNlcjpwYXNz");
    res_free(&r);
    struct http_request plain = {.url = url(fx, "/auth")};
    run(fx, &plain, &r);
    assert_string_equal(r.body, "");
    res_free(&r);
}

static void test_proxy(void **state)
{
    struct fx *fx = *state;
    /* The target port is closed: only the proxy can answer. */
    int dead = tu_free_port();
    char target[64], proxy[64], want[128];
    snprintf(target, sizeof target, "http://127.0.0.1:%d/reqline", dead);
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", fx->peer.port);
    snprintf(want, sizeof want, "GET http://127.0.0.1:%d/reqline HTTP/1.1", dead);
    struct http_request req = {.url = target, .proxy = proxy};
    struct res r;
    run(fx, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body, want);
    res_free(&r);

    /* the same through the client-wide default */
    struct http_client *c2 = NULL;
    struct http_client_opts o = {.proxy = proxy};
    assert_int_equal(http_client_new(&fx->loop, &o, &c2), 0);
    struct http_client *keep = fx->c;
    fx->c = c2;
    struct http_request req2 = {.url = target};
    run(fx, &req2, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body, want);
    res_free(&r);
    /* "" overrides the default: direct, so the dead port refuses */
    struct http_request req3 = {.url = target, .proxy = ""};
    run(fx, &req3, &r);
    assert_int_equal(r.rc, SMSYS_ETEMP);
    res_free(&r);
    int closed2 = 0;
    http_client_close(c2, closed_cb, &closed2);
    assert_int_equal(tu_run_until(&fx->loop, &closed2, 5000), 0);
    fx->c = keep;

    /* proxy variables in the environment are ignored */
    setenv("http_proxy", proxy, 1);
    setenv("ALL_PROXY", proxy, 1);
    struct http_request req4 = {.url = target};
    run(fx, &req4, &r);
    unsetenv("http_proxy");
    unsetenv("ALL_PROXY");
    assert_int_equal(r.rc, SMSYS_ETEMP);
    res_free(&r);
}

static void test_bad_requests(void **state)
{
    struct fx *fx = *state;
    struct res r;
    memset(&r, 0, sizeof r);
    const char *bad_hdr[] = {"X-A: 1\r\nX-Injected: 2"};
    const char *no_colon[] = {"NoColon"};
    struct http_request reqs[] = {
        {.url = NULL},
        {.url = "ftp://127.0.0.1/x"},
        {.url = "not a url"},
        {.url = url(fx, "/hello"), .method = "GE T"},
        {.url = url(fx, "/hello"), .method = ""},
        {.url = url(fx, "/hello"), .headers = bad_hdr, .n_headers = 1},
        {.url = url(fx, "/hello"), .headers = no_colon, .n_headers = 1},
        {.url = url(fx, "/hello"), .body_len = 3},
        {.url = url(fx, "/hello"), .auth = HTTP_AUTH_BASIC},
    };
    for (size_t i = 0; i < ARRAY_LEN(reqs); i++)
        assert_int_equal(http_client_request(fx->c, &reqs[i], done_cb, &r, NULL), -EINVAL);
    assert_int_equal(http_client_request(fx->c, &reqs[0], NULL, &r, NULL), -EINVAL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(r.fired, 0);
}

static void test_methods(void **state)
{
    struct fx *fx = *state;
    struct http_request req = {.url = url(fx, "/echo"), .method = "DELETE"};
    struct res r;
    run(fx, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body, "DELETE ");
    res_free(&r);
    struct http_request put = {.url = url(fx, "/echo"), .method = "PUT"};
    run(fx, &put, &r); /* PUT without a body still sends Content-Length: 0 */
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body, "PUT ");
    res_free(&r);
    struct http_request head = {.url = url(fx, "/hello"), .method = "HEAD"};
    run(fx, &head, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    res_free(&r);
}

static void test_redirect(void **state)
{
    struct fx *fx = *state;
    struct http_request req = {.url = url(fx, "/redirect")};
    struct res r;
    run(fx, &req, &r); /* not followed by default */
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 302);
    assert_string_equal(r.body, "moved");
    res_free(&r);
    req.max_redirects = 1;
    run(fx, &req, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    res_free(&r);
}

static void test_huge_headers(void **state)
{
    struct fx *fx = *state;
    struct http_request req = {.url = url(fx, "/hugeheaders")};
    struct res r;
    run(fx, &req, &r);
    assert_int_equal(r.rc, SMSYS_ETOOBIG);
    res_free(&r);
}

static void test_tls_to_plain_port(void **state)
{
    struct fx *fx = *state;
    char u[64];
    snprintf(u, sizeof u, "https://127.0.0.1:%d/hello", fx->peer.port);
    struct http_request req = {.url = u, .timeout_ms = 5000};
    struct res r;
    run(fx, &req, &r);
    assert_int_equal(r.rc, SMSYS_EPROTO);
    assert_true(strlen(r.detail) > 0);
    res_free(&r);
}

/* Runs argv to completion; returns its exit status. */
static int run_cmd(char *const argv[], const char *log)
{
    pid_t pid = tu_spawn(argv, log, 0, 0);
    assert_true(pid > 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A real TLS server (openssl s_server) with a self-signed certificate
 * for 127.0.0.1: verification on by default, insecure, private CA file. */
static void test_tls(void **state)
{
    struct fx *fx = *state;
    char dir[] = "/tmp/smsys-httpc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cert[64], key[64], log[64], accept[32], u[64];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    char *gen[] = {"/usr/bin/openssl",
                   "req",
                   "-x509",
                   "-newkey",
                   "ec",
                   "-pkeyopt",
                   "ec_paramgen_curve:prime256v1",
                   "-nodes",
                   "-subj",
                   "/CN=localhost",
                   "-addext",
                   "subjectAltName=DNS:localhost,IP:127.0.0.1",
                   "-days",
                   "2",
                   "-keyout",
                   key,
                   "-out",
                   cert,
                   NULL};
    assert_int_equal(run_cmd(gen, log), 0);
    int port = tu_free_port();
    snprintf(accept, sizeof accept, "127.0.0.1:%d", port);
    char *srv[] = {
        "/usr/bin/openssl", "s_server", "-accept", accept, "-cert", cert, "-key", key, "-www",
        "-quiet",           NULL};
    pid_t pid = tu_spawn(srv, log, port, 5000);
    assert_true(pid > 0);
    fx->spawned = pid;
    snprintf(u, sizeof u, "https://127.0.0.1:%d/", port);

    struct http_request req = {.url = u};
    struct res r;
    run(fx, &req, &r); /* self-signed: refused by default */
    int rc_default = r.rc;
    res_free(&r);
    req.insecure = 1;
    run(fx, &req, &r);
    int rc_insecure = r.rc, st_insecure = r.status;
    res_free(&r);

    struct http_client_opts o = {.ca_file = cert};
    struct http_client *c2 = NULL;
    assert_int_equal(http_client_new(&fx->loop, &o, &c2), 0);
    struct http_client *keep = fx->c;
    fx->c = c2;
    req.insecure = 0;
    run(fx, &req, &r);
    int rc_ca = r.rc, st_ca = r.status;
    res_free(&r);
    fx->c = keep;
    int closed2 = 0;
    http_client_close(c2, closed_cb, &closed2);
    assert_int_equal(tu_run_until(&fx->loop, &closed2, 5000), 0);

    tu_stop(pid);
    fx->spawned = 0;
    unlink(cert);
    unlink(key);
    unlink(log);
    rmdir(dir);
    assert_int_equal(rc_default, SMSYS_EAUTH);
    assert_int_equal(rc_insecure, 0);
    assert_int_equal(st_insecure, 200);
    assert_int_equal(rc_ca, 0);
    assert_int_equal(st_ca, 200);
}

static void test_form(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    assert_int_equal(http_client_form_add(&b, "client_id", "abc"), 0);
    assert_int_equal(http_client_form_add(&b, "scope", "https://org.crm.dynamics.com/.default"), 0);
    assert_int_equal(http_client_form_add(&b, "x y", "a&b=c"), 0);
    assert_string_equal(b.data, "client_id=abc&scope=https%3A%2F%2Forg.crm.dynamics.com%2F.default"
                                "&x%20y=a%26b%3Dc");
    b.max = b.len + 3; /* a failed add leaves the buffer as it was */
    size_t len = b.len;
    assert_int_equal(http_client_form_add(&b, "long", "value"), -E2BIG);
    assert_int_equal(b.len, len);
    assert_int_equal(b.data[len], '\0');
    buf_free(&b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_get),
        T(test_post_echo),
        T(test_concurrent),
        T(test_keepalive),
        T(test_timeout),
        T(test_refused),
        T(test_dropped),
        T(test_partial),
        T(test_reset),
        T(test_churn),
        T(test_too_big),
        T(test_chunked),
        T(test_repeated_headers),
        T(test_http_errors_are_statuses),
        T(test_cancel),
        T(test_close_in_flight),
        T(test_close_from_callback),
        T(test_basic_auth),
        T(test_proxy),
        T(test_bad_requests),
        T(test_methods),
        T(test_redirect),
        T(test_huge_headers),
        T(test_tls_to_plain_port),
        T(test_tls),
        cmocka_unit_test(test_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
