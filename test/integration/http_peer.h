/* http_peer.h - the loopback HTTP peer of test_http_client.c (a test
 * double, not an HTTP implementation of ours): raw libuv TCP in the test's
 * loop; reads a request head up to "\r\n\r\n" plus Content-Length bytes
 * of body and writes a canned reply chosen by the path:
 *
 *   /hello /echo /status/NNN /hang /partial /big /bigchunked /chunked
 *   /repeat /auth /reqline /redirect /hugeheaders /drop /reset
 *   /hello-close; a TLS ClientHello gets a plain-text 400.
 *
 * Static functions: include it once, after cmocka.h. */
#ifndef SMSYS_TEST_HTTP_PEER_H
#define SMSYS_TEST_HTTP_PEER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "smsys/buf.h"
#include "smsys/util.h"

struct pconn;

struct peer {
    uv_loop_t *loop;
    uv_tcp_t server;
    int port;
    int accepted; /* connections accepted */
    int requests; /* complete requests read */
    int open;     /* conns not yet through their close callback */
    struct pconn *conns;
};

struct pconn {
    uv_tcp_t tcp;
    struct peer *p;
    struct buf in;
    int closing;
    struct pconn *prev, *next;
};

struct pwrite {
    uv_write_t req;
    struct pconn *pc;
    int close_after;
    size_t len;
    char data[];
};

static void pconn_closed_cb(uv_handle_t *h)
{
    struct pconn *pc = container_of((uv_tcp_t *)h, struct pconn, tcp);
    struct peer *p = pc->p;
    if (pc->prev)
        pc->prev->next = pc->next;
    else
        p->conns = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    buf_free(&pc->in);
    free(pc);
    p->open--;
}

static void pconn_close(struct pconn *pc)
{
    if (pc->closing)
        return;
    pc->closing = 1;
    uv_close((uv_handle_t *)&pc->tcp, pconn_closed_cb);
}

static void pwrite_cb(uv_write_t *w, int status)
{
    struct pwrite *x = container_of(w, struct pwrite, req);
    (void)status;
    if (x->close_after)
        pconn_close(x->pc);
    free(x);
}

static void peer_send(struct pconn *pc, const char *data, size_t len, int close_after)
{
    if (pc->closing)
        return;
    struct pwrite *x = malloc(sizeof *x + len);
    assert_non_null(x);
    memcpy(x->data, data, len);
    x->pc = pc;
    x->len = len;
    x->close_after = close_after;
    uv_buf_t b = uv_buf_init(x->data, (unsigned)len);
    assert_int_equal(uv_write(&x->req, (uv_stream_t *)&pc->tcp, &b, 1, pwrite_cb), 0);
}

static void reply(struct pconn *pc, int status, const char *extra, const char *body, size_t blen)
{
    struct buf b = BUF_INIT;
    assert_int_equal(buf_printf(&b, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", status, blen,
                                extra ? extra : ""),
                     0);
    assert_int_equal(buf_append(&b, body, blen), 0);
    peer_send(pc, b.data, b.len, 0);
    buf_free(&b);
}

/* Value of header name in the head (NUL-terminated), copied to out. */
static int head_get(const char *head, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
        if (strncasecmp(l + 2, name, n) == 0 && l[2 + n] == ':') {
            const char *v = l + 3 + n;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t vl = e ? (size_t)(e - v) : strlen(v);
            snprintf(out, outlen, "%.*s", (int)vl, v);
            return 1;
        }
    }
    return 0;
}

static int num(const char *s)
{
    long long v = 0;
    assert_int_equal(util_parse_int(s, 100, 599, &v), 0);
    return (int)v;
}

static void handle(struct pconn *pc, const char *head, const char *body, size_t blen)
{
    char method[16] = "", target[256] = "", line[512] = "", val[256] = "";
    const char *eol = strstr(head, "\r\n");
    snprintf(line, sizeof line, "%.*s", (int)(eol - head), head);
    sscanf(head, "%15s %255s", method, target);
    /* absolute-form (through a proxy): keep only the path */
    const char *path = target;
    if (strncmp(path, "http://", 7) == 0) {
        path = strchr(path + 7, '/');
        if (path == NULL)
            path = "/";
    }
    if (strcmp(path, "/hello") == 0) {
        reply(pc, 200, NULL, "hello", 5);
    } else if (strcmp(path, "/echo") == 0) {
        struct buf b = BUF_INIT;
        assert_int_equal(buf_printf(&b, "%s ", method), 0);
        assert_int_equal(buf_append(&b, body, blen), 0);
        reply(pc, 200, "Content-Type: text/plain\r\n", b.data, b.len);
        buf_free(&b);
    } else if (strncmp(path, "/status/", 8) == 0) {
        reply(pc, num(path + 8), NULL, "status", 6);
    } else if (strcmp(path, "/hang") == 0) {
        /* never answers */
    } else if (strcmp(path, "/partial") == 0) {
        const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";
        peer_send(pc, r, strlen(r), 1);
    } else if (strcmp(path, "/big") == 0) {
        char *big = malloc(10000);
        assert_non_null(big);
        memset(big, 'x', 10000);
        reply(pc, 200, NULL, big, 10000);
        free(big);
    } else if (strcmp(path, "/bigchunked") == 0 || strcmp(path, "/chunked") == 0) {
        int big = strcmp(path, "/bigchunked") == 0;
        struct buf b = BUF_INIT;
        assert_int_equal(buf_puts(&b, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
        if (big) {
            for (int i = 0; i < 10; i++) {
                assert_int_equal(buf_printf(&b, "%x\r\n", 1000), 0);
                for (int j = 0; j < 1000; j++)
                    assert_int_equal(buf_putc(&b, 'y'), 0);
                assert_int_equal(buf_puts(&b, "\r\n"), 0);
            }
        } else {
            assert_int_equal(buf_puts(&b, "3\r\nhel\r\n3\r\nlo \r\n5\r\nworld\r\n"), 0);
        }
        assert_int_equal(buf_puts(&b, "0\r\n\r\n"), 0);
        peer_send(pc, b.data, b.len, 0);
        buf_free(&b);
    } else if (strcmp(path, "/repeat") == 0) {
        reply(pc, 429,
              "Retry-After: 7\r\nOData-EntityId: a\r\nRetry-After:   9  \r\n"
              "odata-entityid: b\r\nX-Fold: one\r\n two\r\n",
              "", 0);
    } else if (strcmp(path, "/auth") == 0) {
        if (!head_get(head, "Authorization", val, sizeof val))
            val[0] = '\0';
        reply(pc, 200, NULL, val, strlen(val));
    } else if (strcmp(path, "/hello-close") == 0) {
        /* replies, then closes without saying so (an idle-timeout server) */
        const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        peer_send(pc, r, strlen(r), 1);
    } else if (strcmp(path, "/reset") == 0) {
        /* half a reply, then an RST instead of a FIN */
        const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123";
        uv_os_fd_t fd;
        assert_int_equal(uv_fileno((uv_handle_t *)&pc->tcp, &fd), 0);
        assert_int_equal(write(fd, r, strlen(r)), (ssize_t)strlen(r));
        struct linger lg = {1, 0};
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        pconn_close(pc);
    } else if (strcmp(path, "/drop") == 0) {
        pconn_close(pc); /* request read, connection cut, no reply */
    } else if (strcmp(path, "/redirect") == 0) {
        reply(pc, 302, "Location: /hello\r\n", "moved", 5);
    } else if (strcmp(path, "/hugeheaders") == 0) {
        struct buf b = BUF_INIT;
        for (int i = 0; i < 80; i++) {
            assert_int_equal(buf_printf(&b, "X-Filler-%d: ", i), 0);
            for (int j = 0; j < 1000; j++)
                assert_int_equal(buf_putc(&b, 'h'), 0);
            assert_int_equal(buf_puts(&b, "\r\n"), 0);
        }
        reply(pc, 200, b.data, "ok", 2);
        buf_free(&b);
    } else if (strcmp(path, "/reqline") == 0) {
        reply(pc, 200, NULL, line, strlen(line));
    } else {
        reply(pc, 404, NULL, "nope", 4);
    }
}

static void palloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(hint);
    b->len = b->base ? hint : 0;
}

static void pread_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct pconn *pc = container_of((uv_tcp_t *)s, struct pconn, tcp);
    if (n < 0) {
        free(b->base);
        pconn_close(pc);
        return;
    }
    assert_int_equal(buf_append(&pc->in, b->base, (size_t)n), 0);
    free(b->base);
    if (pc->in.len && pc->in.data[0] == 0x16) {
        /* a TLS ClientHello on this plain port: answer in plain text */
        const char *r = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        buf_reset(&pc->in);
        peer_send(pc, r, strlen(r), 1);
        return;
    }
    for (;;) {
        if (pc->in.len == 0)
            return;
        char *end = strstr(pc->in.data, "\r\n\r\n");
        if (end == NULL)
            return;
        size_t hlen = (size_t)(end - pc->in.data) + 4;
        char cl[32] = "0";
        end[2] = '\0'; /* head ends after its last CRLF for head_get */
        head_get(pc->in.data, "Content-Length", cl, sizeof cl);
        end[2] = '\r';
        long long blen = 0;
        assert_int_equal(util_parse_int(cl, 0, 100000000, &blen), 0);
        if (pc->in.len < hlen + (size_t)blen)
            return;
        char *head = malloc(hlen + 1);
        assert_non_null(head);
        memcpy(head, pc->in.data, hlen);
        head[hlen] = '\0';
        pc->p->requests++;
        handle(pc, head, pc->in.data + hlen, (size_t)blen);
        free(head);
        size_t used = hlen + (size_t)blen;
        memmove(pc->in.data, pc->in.data + used, pc->in.len - used);
        pc->in.len -= used;
        pc->in.data[pc->in.len] = '\0';
    }
}

static void pconnect_cb(uv_stream_t *server, int status)
{
    struct peer *p = container_of((uv_tcp_t *)server, struct peer, server);
    assert_int_equal(status, 0);
    struct pconn *pc = calloc(1, sizeof *pc);
    assert_non_null(pc);
    pc->p = p;
    uv_tcp_init(p->loop, &pc->tcp);
    p->open++;
    pc->next = p->conns;
    if (p->conns)
        p->conns->prev = pc;
    p->conns = pc;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&pc->tcp), 0);
    p->accepted++;
    assert_int_equal(uv_read_start((uv_stream_t *)&pc->tcp, palloc_cb, pread_cb), 0);
}

static void peer_start(struct peer *p, uv_loop_t *loop)
{
    memset(p, 0, sizeof *p);
    p->loop = loop;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_init(loop, &p->server), 0);
    assert_int_equal(uv_tcp_bind(&p->server, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&p->server, 511, pconnect_cb), 0);
    struct sockaddr_in got;
    int len = sizeof got;
    assert_int_equal(uv_tcp_getsockname(&p->server, (struct sockaddr *)&got, &len), 0);
    p->port = ntohs(got.sin_port);
}

static void peer_stop(struct peer *p)
{
    uv_close((uv_handle_t *)&p->server, NULL);
    for (struct pconn *pc = p->conns; pc; pc = pc->next)
        pconn_close(pc);
}

#endif
