/* Unit tests of http_server's connection state machine without sockets
 * (src/http_server_internal.h): however the bytes are cut into reads, the
 * answers must be the same, byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "http_server_internal.h"
#include "smsys/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void echo_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct buf b = BUF_INIT;
    const char *h = http_req_header(req, "X-H");
    const char *t = http_req_header(req, "X-T");
    buf_printf(&b, "%s|%s|%s|%s|%zu|%s%s", req->method, req->path, req->query, h ? h : "-",
               req->nheaders, req->body, t ? t : "");
    http_resp_send(resp, 200, "text/plain", b.data, b.len);
    buf_free(&b);
}

/* Drops "Date: ..." lines, the only part that may differ between runs. */
static void strip_date(struct buf *b)
{
    char *p;
    while (b->data && (p = strstr(b->data, "\r\nDate: ")) != NULL) {
        char *e = strstr(p + 2, "\r\n");
        memmove(p, e, strlen(e) + 1);
        b->len -= (size_t)(e - p);
    }
}

static void expect(struct buf *b, const char *body, int head, int close)
{
    buf_printf(b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n%s",
               strlen(body), close ? "Connection: close\r\n" : "", head ? "" : body);
}

static const char input[] =
    "GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-H:  spaced value \t\r\n\r\n"
    "POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    "\r\n" /* a stray CRLF between requests is tolerated */
    "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-H: z\r\n\r\n"
    "3;ext=1\r\nabc\r\n1\r\nd\r\n0\r\nX-T: t \r\n\r\n"
    "POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok"
    "HEAD /f HTTP/1.1\r\n\r\n"
    "GET /g HTTP/1.0\r\n\r\n"
    "GET /never HTTP/1.1\r\n\r\n";

static int feed(struct http_server *s, size_t step, struct buf *out)
{
    const char *chunks[sizeof(input)];
    size_t lens[sizeof(input)], n = 0, len = sizeof(input) - 1;
    for (size_t off = 0; off < len; off += step) {
        chunks[n] = input + off;
        lens[n++] = off + step <= len ? step : len - off;
    }
    buf_reset(out);
    int rc = http_server_fake_feed(s, chunks, lens, n, out);
    strip_date(out);
    return rc;
}

static void test_any_split(void **state)
{
    struct http_server *s;
    struct http_server_opts o = {0};
    struct buf whole = BUF_INIT, part = BUF_INIT;
    assert_int_equal(http_server_new_fake(&o, &s), 0);
    assert_int_equal(http_server_route(s, NULL, "/", echo_cb, NULL), 0);
    assert_int_equal(feed(s, sizeof(input), &whole), 1); /* HTTP/1.0: closed by us */
    struct buf want = BUF_INIT;
    expect(&want, "GET|/a|x=1|spaced value|2|", 0, 0);
    expect(&want, "POST|/b||-|1|hello", 0, 0);
    expect(&want, "PUT|/c||z|3|abcdt", 0, 0); /* the trailer joins the headers */
    buf_puts(&want, "HTTP/1.1 100 Continue\r\n\r\n");
    expect(&want, "POST|/e||-|2|ok", 0, 0);
    expect(&want, "HEAD|/f||-|0|", 1, 0);
    expect(&want, "GET|/g||-|0|", 0, 1);
    assert_string_equal(whole.data, want.data);
    buf_free(&want);
    for (size_t step = 1; step < 40; step++) {
        assert_int_equal(feed(s, step, &part), 1);
        assert_string_equal(part.data, whole.data);
    }
    buf_free(&whole);
    buf_free(&part);
    http_server_free_fake(s);
}

static void test_refusals(void **state)
{
    static const struct {
        const char *in;
        const char *status;
    } cases[] = {
        {"GET / HTTP/1.1\r\nX Y: z\r\n\r\n", "HTTP/1.1 400 "},
        {"GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n", "HTTP/1.1 400 "},
        {"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", "HTTP/1.1 400 "},
        {"BREW / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},
        {"GET / HTTP/9.9\r\n\r\n", "HTTP/1.1 505 "},
        {"POST / HTTP/1.1\r\nContent-Length: 99\r\nContent-Length: 1\r\n\r\n", "HTTP/1.1 400 "},
        {"POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n", "HTTP/1.1 413 "},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n", "HTTP/1.1 413 "},
        {"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
         "HTTP/1.1\r\n\r\n",
         "HTTP/1.1 431 "},
        {"GET / HTTP/1.1\r\nExpect: later\r\n\r\n", "HTTP/1.1 417 "},
        {"GET /x HTTP/1.1\r\n\r\n", "HTTP/1.1 404 "},
        {"DELETE /p HTTP/1.1\r\n\r\n", "HTTP/1.1 405 "},
    };
    struct http_server *s;
    struct http_server_opts o = {.max_header_bytes = 128, .max_body_bytes = 64};
    struct buf out = BUF_INIT;
    assert_int_equal(http_server_new_fake(&o, &s), 0);
    /* refusals happen before routing; only 404/405 depend on the routes */
    assert_int_equal(http_server_route(s, "POST", "/p", echo_cb, NULL), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *chunks[] = {cases[i].in};
        size_t lens[] = {strlen(cases[i].in)};
        buf_reset(&out);
        int closed = http_server_fake_feed(s, chunks, lens, 1, &out);
        assert_non_null(out.data);
        if (strncmp(out.data, cases[i].status, strlen(cases[i].status)) != 0)
            fail_msg("case %zu: got %.40s", i, out.data);
        /* refused requests close the connection; 404/405 keep it */
        int keep = strstr(cases[i].status, " 404 ") || strstr(cases[i].status, " 405 ");
        assert_int_equal(closed, !keep);
    }
    buf_free(&out);
    http_server_free_fake(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_any_split),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
