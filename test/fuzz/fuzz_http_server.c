/* fuzz_http_server.c - arbitrary bytes through http_server's connection
 * state machine (parser callbacks, limits, routing, pipelining, responses)
 * on a fake connection: no sockets, no loop.
 *
 * The first input byte picks how the rest is cut into reads, so chunk
 * boundaries inside tokens, CRLFs and chunked framing get exercised too.
 * One route replies later (on the next input), covering the path where a
 * reply arrives after its connection has gone. */
#include "http_server_internal.h"
#include "smsys/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct http_server *srv;
static struct http_resp *held;

static void echo_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    /* touch everything the handler contract promises */
    size_t sum = strlen(req->method) + strlen(req->target) + strlen(req->path) +
                 strlen(req->query) + strlen(req->peer);
    for (size_t i = 0; i < req->nheaders; i++)
        sum += strlen(req->headers[i].name) + strlen(req->headers[i].value);
    if (req->body[req->body_len] != '\0')
        abort();
    const char *h = http_req_header(req, "x-reply");
    if (h)
        http_resp_header(resp, "X-Reply", h); /* may be refused (-EINVAL): fine */
    char copy[256];
    size_t n = strlen(req->path) < sizeof(copy) - 1 ? strlen(req->path) : sizeof(copy) - 1;
    memcpy(copy, req->path, n);
    copy[n] = '\0';
    http_urldecode(copy, 1);
    http_resp_send(resp, 200 + (int)(sum % 300), "text/plain", req->body, req->body_len);
}

static void hold_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    if (held)
        http_resp_send(held, 200, NULL, "", 0);
    held = resp;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (srv == NULL) {
        struct http_server_opts o = {.max_header_bytes = 1024, .max_body_bytes = 4096};
        if (http_server_new_fake(&o, &srv) != 0)
            abort();
        http_server_route(srv, NULL, "/", echo_cb, NULL);
        http_server_route(srv, "POST", "/p/", echo_cb, NULL);
        http_server_route(srv, NULL, "/hold", hold_cb, NULL);
    }
    if (held) { /* its connection is gone: discarded and freed */
        http_resp_send(held, 200, "text/plain", "x", 1);
        held = NULL;
    }
    if (size == 0)
        return 0;
    size_t step = (size_t)(data[0] % 17) + 1;
    const char *chunks[64];
    size_t lens[64], n = 0, off = 1;
    while (off < size && n < 64) {
        size_t len = n == 63 || step > size - off ? size - off : step;
        chunks[n] = (const char *)data + off;
        lens[n++] = len;
        off += len;
        step = step * 3 % 23 + 1;
    }
    struct buf out = BUF_INIT;
    http_server_fake_feed(srv, chunks, lens, n, &out);
    if (out.len && memcmp(out.data, "HTTP/1.1 ", 9) != 0)
        abort(); /* whatever we write starts as a response */
    buf_free(&out);
    return 0;
}
