/* http_server.c - HTTP/1.1 server on libuv, parsing by http-parser.
 *
 * One request at a time per connection. When http-parser completes a
 * message we pause it, hand the request to its handler and parse the next
 * (pipelined) request only once the response has been handed to the
 * kernel. Responses therefore leave in request order without any response
 * queue, and the request, the response and every buffer can live inside the
 * connection and be reused: a keep-alive request costs no malloc once the
 * buffers have grown. Bytes that arrive while a handler runs are kept in
 * c->pending (bounded; reading stops when it is full).
 *
 * Connection states:
 *   CS_READ     parsing or waiting for a request (timer: idle, or read
 *               timeout from the first byte of a request -> 408)
 *   CS_HANDLER  a handler owns req/resp until http_resp_send (no timer)
 *   CS_WRITE    a response is in flight in uv_write (timer: idle, so a
 *               client that never reads is dropped)
 *   CS_LINGER   last response written, FIN sent; input is drained until
 *               EOF so the client sees our response rather than a reset
 *   CS_CLOSED   handles closing or closed; the struct lives on while a
 *               handler still owns its resp (http_resp_send then frees it)
 */
#include "smsys/http_server.h"

#include "http_server_internal.h"
#include "http_server_p.h"
#include "smsys/buf.h"
#include "smsys/log.h"
#include "smsys/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void srv_unref(struct http_server *s);

static void trim_buf(struct buf *b, size_t keep)
{
    if (b->cap > KEEP_BUF_MAX && b->cap > keep)
        buf_free(b);
    else
        buf_reset(b);
}

/* ---- timers and handles ---------------------------------------------- */

static void conn_timer_cb(uv_timer_t *t);

/* Every (re)arm or stop cancels a scheduled resume (see conn_written): the
 * timer has one meaning at a time. */
void http_conn_timer(struct conn *c, uint64_t ms)
{
    c->resume = 0;
    if (!c->fake)
        uv_timer_start(&c->timer, conn_timer_cb, ms, 0);
}

void http_conn_timer_stop(struct conn *c)
{
    c->resume = 0;
    if (!c->fake)
        uv_timer_stop(&c->timer);
}

void http_conn_free(struct conn *c)
{
    buf_free(&c->rb);
    buf_free(&c->body);
    buf_free(&c->pending);
    buf_free(&c->out);
    buf_free(&c->resp.hdrs);
    free(c->hoff);
    free(c->hdrs);
    free(c);
}

static void conn_close_cb(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->nhandles > 0)
        return;
    struct http_server *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    c->s = NULL;
    if (!c->resp.live)
        http_conn_free(c);
    /* else the handler still owns resp: http_resp_send frees c */
    srv_unref(s);
}

void http_conn_close(struct conn *c)
{
    if (c->state == CS_CLOSED)
        return;
    c->state = CS_CLOSED;
    if (c->fake)
        return;
    uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
    uv_close((uv_handle_t *)&c->timer, conn_close_cb);
}

static void conn_shutdown_cb(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0 && c->state != CS_CLOSED)
        http_conn_close(c);
}

static void conn_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);
static void conn_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b);

static void conn_read_start(struct conn *c)
{
    if (c->reading || c->fake || c->eof)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb) == 0)
        c->reading = 1;
}

static void conn_read_stop(struct conn *c)
{
    if (!c->reading || c->fake)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
}

/* The last response is out: send FIN and drain input until the client
 * closes (or LINGER_MS), so it reads our answer instead of a reset. */
void http_conn_finish(struct conn *c)
{
    if (c->fake || c->eof) {
        http_conn_close(c);
        return;
    }
    c->state = CS_LINGER;
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, conn_shutdown_cb) != 0) {
        http_conn_close(c);
        return;
    }
    conn_read_start(c);
    http_conn_timer(c, LINGER_MS);
}

/* ---- requests --------------------------------------------------------- */

void http_conn_reset_request(struct conn *c)
{
    trim_buf(&c->rb, 0);
    trim_buf(&c->body, 0);
    trim_buf(&c->out, 0);
    c->nhdr = 0;
    c->hstate = HS_NONE;
    c->url_done = 0;
    c->hdr_bytes = 0;
    c->err_status = 0;
    c->started = 0;
    c->head = 0;
}

/* ---- routing and dispatch ---------------------------------------------- */

static void conn_dispatch(struct conn *c)
{
    struct http_server *s = c->s;
    struct http_req *r = &c->req;
    size_t poff, qoff;

    http_conn_timer_stop(c);
    c->state = CS_HANDLER;
    if (http_target_split(c, &poff, &qoff) != 0) {
        http_conn_fail(c, 400);
        return;
    }
    if (c->nhdr > c->hdrs_cap) {
        size_t cap = c->hdrs_cap ? c->hdrs_cap : 16;
        while (cap < c->nhdr)
            cap *= 2;
        struct http_header *h = realloc(c->hdrs, cap * sizeof(*h));
        if (h == NULL) {
            http_conn_fail(c, 500);
            return;
        }
        c->hdrs = h;
        c->hdrs_cap = cap;
    }
    for (size_t i = 0; i < c->nhdr; i++) {
        c->hdrs[i].name = c->rb.data + c->hoff[2 * i];
        c->hdrs[i].value = c->rb.data + c->hoff[2 * i + 1];
    }
    r->method = http_method_str((enum http_method)c->parser.method);
    r->target = c->rb.data;
    r->path = c->rb.data + poff;
    r->query = c->rb.data + qoff;
    r->headers = c->hdrs;
    r->nheaders = c->nhdr;
    r->body = c->body.data ? c->body.data : "";
    r->body_len = c->body.len;
    r->peer = c->peer;

    http_handler_cb cb = http_route_pick(s, r->method, r->path, &r->route_ud);
    c->resp.c = c;
    c->resp.live = 1;
    buf_reset(&c->resp.hdrs);
    c->in_dispatch = 1;
    cb(r, &c->resp, r->route_ud);
    c->in_dispatch = 0;
}

static int parse_error_status(enum http_errno e)
{
    return e == HPE_HEADER_OVERFLOW ? 431 : 400;
}

/* Runs the parser over data while the connection is reading requests and
 * dispatches every complete one. Returns the bytes consumed; the rest
 * belongs to a later request and must be kept by the caller (unless the
 * connection is no longer in CS_READ and will not read requests again). */
static size_t conn_parse(struct conn *c, const char *data, size_t len)
{
    size_t done = 0;
    while (done < len && c->state == CS_READ) {
        size_t n = http_parser_execute(&c->parser, &http_parser_cbs, data + done, len - done);
        done += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            conn_dispatch(c);
            continue;
        }
        if (e != HPE_OK) {
            http_conn_fail(c, c->err_status ? c->err_status : parse_error_status(e));
            return len;
        }
        if (n == 0)
            break;
    }
    return done;
}

static void conn_parse_pending(struct conn *c)
{
    size_t n = conn_parse(c, c->pending.data + c->poff, c->pending.len - c->poff);
    if (c->state == CS_CLOSED || c->state == CS_LINGER) {
        c->poff = c->pending.len;
    } else {
        c->poff += n;
    }
    if (c->poff >= c->pending.len) {
        trim_buf(&c->pending, 0);
        c->poff = 0;
    }
}

/* The connection is in CS_READ with no handler running: parse what is
 * buffered, then wait for more (idle timer, or read timer if a request has
 * started). */
void http_conn_next(struct conn *c)
{
    if (c->poff < c->pending.len)
        conn_parse_pending(c);
    if (c->state != CS_READ)
        return;
    if (c->eof) {
        http_conn_close(c); /* a partial request can never complete */
        return;
    }
    conn_read_start(c);
    if (!c->started)
        http_conn_timer(c, c->s->o.idle_timeout_ms);
    c->rearm = 0; /* done here */
}

/* ---- socket callbacks -------------------------------------------------- */

static void conn_timer_cb(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->resume) {
        c->resume = 0;
        if (c->state == CS_READ)
            http_conn_next(c);
        return;
    }
    switch (c->state) {
    case CS_READ:
        if (c->started)
            http_conn_fail(c, 408);
        else
            http_conn_close(c);
        break;
    case CS_WRITE:
    case CS_LINGER:
        http_conn_close(c);
        break;
    case CS_HANDLER:
    case CS_CLOSED:
        break;
    }
}

static void conn_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct conn *c = h->data;
    b->base = c->s->rdbuf;
    b->len = sizeof(c->s->rdbuf);
}

static void conn_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = st->data;
    if (nread == 0 || c->state == CS_CLOSED)
        return;
    if (nread < 0) {
        conn_read_stop(c);
        if (nread == UV_EOF && (c->state == CS_HANDLER || c->state == CS_WRITE)) {
            /* maybe a half-close after pipelined requests: answer them first */
            c->eof = 1;
            return;
        }
        http_conn_close(c);
        return;
    }
    if (c->state == CS_LINGER || !c->keepalive)
        return; /* no further request will be read: discard */
    if (c->state == CS_READ && c->poff == c->pending.len) {
        size_t n = conn_parse(c, b->base, (size_t)nread);
        if (n < (size_t)nread && (c->state == CS_HANDLER || c->state == CS_WRITE) && c->keepalive &&
            buf_append(&c->pending, b->base + n, (size_t)nread - n))
            http_conn_close(c);
        /* only a completed request restarts the idle clock: bytes that
         * start nothing (stray CRLFs) must not keep a connection alive */
        if (c->rearm && c->state == CS_READ && !c->started)
            http_conn_timer(c, c->s->o.idle_timeout_ms);
        c->rearm = 0;
        return;
    }
    if (buf_append(&c->pending, b->base, (size_t)nread)) {
        http_conn_close(c);
        return;
    }
    if (c->state == CS_READ) {
        http_conn_next(c);
        return;
    }
    if (c->pending.len - c->poff > PENDING_MAX)
        conn_read_stop(c); /* backpressure until the handler has replied */
}

/* ---- accepting ---------------------------------------------------------- */

static void srv_unref(struct http_server *s)
{
    if (--s->nhandles > 0 || !s->closing)
        return;
    void (*cb)(void *) = s->close_cb;
    void *ud = s->close_ud;
    http_srv_free(s);
    if (cb)
        cb(ud);
}

static void srv_handle_closed_cb(uv_handle_t *h)
{
    struct http_server *s = h->data;
    if (h != (uv_handle_t *)&s->listener)
        free(h);
    srv_unref(s);
}

static void conn_init(struct http_server *s, struct conn *c)
{
    c->s = s;
    c->state = CS_READ;
    c->keepalive = 1;
    c->resp.c = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
}

static void peer_name(uv_tcp_t *t, char *out, size_t len)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof(ip));
            port = ntohs(a->sin6_port);
            snprintf(out, len, "[%s]:%d", ip, port);
            return;
        }
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof(ip));
        port = ntohs(a->sin_port);
    }
    snprintf(out, len, "%s:%d", ip, port);
}

static void srv_reject(struct http_server *s)
{
    uv_tcp_t *t = malloc(sizeof(*t));
    if (t == NULL || uv_tcp_init(s->loop, t) != 0) {
        free(t);
        log_error("http accept failed", "error=%s", "out of memory");
        return;
    }
    t->data = s;
    s->nhandles++;
    uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, srv_handle_closed_cb);
}

static void srv_connection_cb(uv_stream_t *l, int status)
{
    struct http_server *s = l->data;
    if (status < 0) {
        log_warn("http accept failed", "error=%s", uv_strerror(status));
        return;
    }
    if (s->closing)
        return;
    if (s->nconns >= s->o.max_connections) {
        log_warn("http connection refused", "reason=max_connections max=%u", s->o.max_connections);
        srv_reject(s);
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        srv_reject(s);
        return;
    }
    conn_init(s, c);
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->nhandles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    s->nhandles++;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        http_conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(&c->tcp, c->peer, sizeof(c->peer));
    conn_read_start(c);
    http_conn_timer(c, s->o.idle_timeout_ms);
}

/* ---- public API ----------------------------------------------------------- */

int http_server_new(uv_loop_t *loop, const struct http_server_opts *opts, struct http_server **out)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rc = http_listen_parse(opts->listen, &ss);
    if (rc) {
        log_error("http listen address invalid", "listen=\"%s\"",
                  log_q(opts->listen ? opts->listen : ""));
        return rc;
    }
    struct http_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->loop = loop;
    http_opts_defaults(&s->o, opts);
    rc = uv_tcp_init(loop, &s->listener);
    if (rc) {
        free(s);
        return rc;
    }
    s->listener.data = s;
    s->nhandles = 1;
    unsigned flags = ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, flags);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 511, srv_connection_cb);
    if (rc == 0) {
        struct sockaddr_storage bound;
        int len = sizeof(bound);
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
        if (rc == 0)
            s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                        : ((struct sockaddr_in *)&bound)->sin_port);
    }
    if (rc) {
        log_error("http listen failed", "listen=%s error=%s", opts->listen, uv_strerror(rc));
        s->closing = 1;
        uv_close((uv_handle_t *)&s->listener, srv_handle_closed_cb);
        return rc;
    }
    log_info("http listening", "listen=%s port=%d", opts->listen, s->port);
    *out = s;
    return 0;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_close(struct http_server *s, void (*cb)(void *ud), void *ud)
{
    if (s->closing)
        return; /* already closing: the first caller's cb will run */
    s->closing = 1;
    s->close_cb = cb;
    s->close_ud = ud;
    for (struct conn *c = s->conns; c; c = c->next)
        http_conn_close(c);
    uv_close((uv_handle_t *)&s->listener, srv_handle_closed_cb);
}

/* ---- fake connections (tests, fuzzing) ----------------------------------- */

int http_server_new_fake(const struct http_server_opts *opts, struct http_server **out)
{
    struct http_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    http_opts_defaults(&s->o, opts);
    s->fake = 1;
    *out = s;
    return 0;
}

int http_server_fake_feed(struct http_server *s, const char *const *chunks, const size_t *lens,
                          size_t n, struct buf *out)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    conn_init(s, c);
    c->fake = 1;
    c->fake_out = out;
    snprintf(c->peer, sizeof(c->peer), "fake:0");
    int closed_early = 0;
    for (size_t i = 0; i < n && c->state != CS_CLOSED; i++) {
        if (lens[i] == 0)
            continue;
        if (c->state == CS_READ && c->poff == c->pending.len) {
            size_t used = conn_parse(c, chunks[i], lens[i]);
            if (used < lens[i] && (c->state == CS_HANDLER || c->state == CS_WRITE) &&
                c->keepalive && buf_append(&c->pending, chunks[i] + used, lens[i] - used))
                http_conn_close(c);
        } else if (c->state != CS_LINGER && c->keepalive) {
            if (buf_append(&c->pending, chunks[i], lens[i]))
                http_conn_close(c);
            else if (c->state == CS_READ)
                http_conn_next(c);
        }
    }
    closed_early = c->state == CS_CLOSED;
    c->eof = 1;
    http_conn_close(c);
    c->s = NULL;
    if (!c->resp.live)
        http_conn_free(c);
    return closed_early;
}

void http_server_free_fake(struct http_server *s)
{
    http_srv_free(s);
}
