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

#define READ_CHUNK        (64 * 1024)
#define PENDING_MAX       (64 * 1024) /* input kept while a handler runs */
#define LINGER_MS         2000
#define KEEP_BUF_MAX      (64 * 1024) /* larger per-connection buffers are freed after use */
#define BODY_PREALLOC_MAX (256 * 1024)
#define HDR_OVERHEAD      4 /* ": " and CRLF of each header line */
#define CONTINUE_TEXT     "HTTP/1.1 100 Continue\r\n\r\n"
#define DEFAULT_HDR_MAX   (16 * 1024)
#define DEFAULT_BODY      (1024 * 1024)

enum conn_state { CS_READ, CS_HANDLER, CS_WRITE, CS_LINGER, CS_CLOSED };
enum hdr_state { HS_NONE, HS_FIELD, HS_VALUE };

struct route {
    char *method; /* NULL: any */
    char *prefix;
    size_t plen;
    http_handler_cb cb;
    void *ud;
};

struct conn;

struct http_resp {
    struct conn *c;
    struct buf hdrs; /* "Name: value\r\n" lines added by the handler */
    int live;        /* between dispatch and http_resp_send */
};

struct conn {
    struct http_server *s; /* NULL once the handles are closed */
    struct conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq; /* the response */
    uv_write_t creq; /* "100 Continue" */
    uv_shutdown_t sreq;
    http_parser parser;
    enum conn_state state;
    int nhandles; /* handles not yet through their close callback */
    unsigned keepalive : 1, in_dispatch : 1, reading : 1, eof : 1, started : 1, head : 1,
        resume : 1, url_done : 1, fake : 1, rearm : 1;
    enum hdr_state hstate;
    int err_status; /* set by a parser callback that refuses the request */
    size_t hdr_bytes;
    struct buf rb;   /* target, header names and values, path, query: NUL-separated */
    struct buf body; /* request body */
    size_t *hoff;    /* name/value offsets into rb, two per header */
    size_t hoff_cap, nhdr;
    struct http_header *hdrs;
    size_t hdrs_cap;
    struct buf pending; /* unparsed input, from poff */
    size_t poff;
    struct buf out;       /* response head (and the unwritten rest of a response) */
    struct buf *fake_out; /* fake connections write here */
    struct http_req req;
    struct http_resp resp;
    char peer[64];
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct http_server_opts o;
    struct route *routes;
    size_t nroutes, routes_cap;
    struct conn *conns;
    unsigned nconns;
    unsigned nhandles; /* listener + rejected sockets + connections not yet closed */
    int closing, fake, port;
    void (*close_cb)(void *ud);
    void *close_ud;
    time_t date_sec;
    char date[48];
    char rdbuf[READ_CHUNK]; /* shared: libuv reads into it and calls read_cb at once */
};

static void conn_close(struct conn *c);
static void conn_fail(struct conn *c, int status);
static void conn_next(struct conn *c);
static void srv_unref(struct http_server *s);

/* ---- small helpers ---------------------------------------------------- */

static int put_uint(struct buf *b, unsigned long long v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return buf_append(b, tmp + i, sizeof(tmp) - i);
}

static const char *srv_date(struct http_server *s)
{
    time_t now = time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        s->date_sec = now;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof(s->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    }
    return s->date;
}

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
static void conn_timer(struct conn *c, uint64_t ms)
{
    c->resume = 0;
    if (!c->fake)
        uv_timer_start(&c->timer, conn_timer_cb, ms, 0);
}

static void conn_timer_stop(struct conn *c)
{
    c->resume = 0;
    if (!c->fake)
        uv_timer_stop(&c->timer);
}

static void conn_free(struct conn *c)
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
        conn_free(c);
    /* else the handler still owns resp: http_resp_send frees c */
    srv_unref(s);
}

static void conn_close(struct conn *c)
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
        conn_close(c);
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
static void conn_finish(struct conn *c)
{
    if (c->fake || c->eof) {
        conn_close(c);
        return;
    }
    c->state = CS_LINGER;
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, conn_shutdown_cb) != 0) {
        conn_close(c);
        return;
    }
    conn_read_start(c);
    conn_timer(c, LINGER_MS);
}

/* ---- writing ----------------------------------------------------------- */

static void conn_reset_request(struct conn *c)
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

/* The response has been handed to the kernel entirely. */
static void conn_written(struct conn *c, int from_write_cb)
{
    if (!c->keepalive || (c->s && c->s->closing)) {
        conn_finish(c);
        return;
    }
    c->state = CS_READ;
    conn_reset_request(c);
    if (c->in_dispatch) {
        c->rearm = 1; /* the reader arms the idle timer when its parse ends */
        return;       /* conn_parse's loop goes on with the next request */
    }
    if (!from_write_cb && !c->fake && c->poff < c->pending.len) {
        /* http_resp_send was called by user code outside our dispatch: run
         * the next pipelined handler from the loop, not nested in that call. */
        conn_timer(c, 0);
        c->resume = 1;
        return;
    }
    conn_next(c);
}

static void conn_write_cb(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (c->state == CS_CLOSED)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    conn_written(c, 1);
}

static void conn_continue_cb(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0 && c->state != CS_CLOSED)
        conn_close(c);
}

/* Writes head (which is c->out) and body. Tries a direct write first; what
 * the kernel does not take at once is copied into c->out and written by one
 * uv_write. Returns 0 (written or in flight) or a negative error after
 * which the connection is closing. */
static int conn_write(struct conn *c, const char *body, size_t blen)
{
    struct buf *o = &c->out;
    size_t hlen = o->len;
    if (c->fake) {
        int rc = buf_append(c->fake_out, o->data, hlen);
        if (rc == 0 && blen)
            rc = buf_append(c->fake_out, body, blen);
        if (rc) {
            conn_close(c);
            return rc;
        }
        conn_written(c, 0);
        return 0;
    }
    uv_buf_t b[2] = {uv_buf_init(o->data, (unsigned)hlen),
                     uv_buf_init((char *)body, (unsigned)blen)};
    int n = uv_try_write((uv_stream_t *)&c->tcp, b, blen ? 2 : 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n < 0) {
        conn_close(c);
        return n;
    }
    if ((size_t)n == hlen + blen) {
        conn_written(c, 0);
        return 0;
    }
    int rc;
    if ((size_t)n < hlen) {
        memmove(o->data, o->data + n, hlen - (size_t)n);
        o->len = hlen - (size_t)n;
        rc = buf_append(o, body, blen);
    } else {
        o->len = 0;
        rc = buf_append(o, body + ((size_t)n - hlen), blen - ((size_t)n - hlen));
    }
    uv_buf_t rest = uv_buf_init(o->data, (unsigned)o->len);
    c->wreq.data = c;
    if (rc == 0)
        rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &rest, 1, conn_write_cb);
    if (rc) {
        conn_close(c);
        return rc;
    }
    c->state = CS_WRITE;
    conn_timer(c, c->s->o.idle_timeout_ms);
    return 0;
}

static int status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

/* Builds the head into c->out and writes the response. */
static int conn_respond(struct conn *c, int status, const char *ctype, const char *body, size_t len,
                        const char *extra, size_t extra_len)
{
    struct buf *o = &c->out;
    const char *reason = http_status_str((enum http_status)status);
    int has_body = status_has_body(status);
    int rc = 0;
    buf_reset(o);
    rc |= buf_append(o, "HTTP/1.1 ", 9);
    rc |= put_uint(o, (unsigned)status);
    rc |= buf_putc(o, ' ');
    rc |= buf_puts(o, strcmp(reason, "<unknown>") ? reason : "Status");
    rc |= buf_append(o, "\r\nDate: ", 8);
    rc |= buf_puts(o, srv_date(c->s));
    rc |= buf_append(o, "\r\n", 2);
    if (ctype && has_body) {
        rc |= buf_append(o, "Content-Type: ", 14);
        rc |= buf_puts(o, ctype);
        rc |= buf_append(o, "\r\n", 2);
    }
    if (has_body) {
        rc |= buf_append(o, "Content-Length: ", 16);
        rc |= put_uint(o, len);
        rc |= buf_append(o, "\r\n", 2);
    }
    if (c->s->closing)
        c->keepalive = 0;
    if (!c->keepalive)
        rc |= buf_append(o, "Connection: close\r\n", 19);
    else if (c->parser.http_major == 1 && c->parser.http_minor == 0)
        rc |= buf_append(o, "Connection: keep-alive\r\n", 24);
    if (extra_len)
        rc |= buf_append(o, extra, extra_len);
    rc |= buf_append(o, "\r\n", 2);
    if (rc) {
        conn_close(c);
        return -ENOMEM;
    }
    if (c->head || !has_body)
        len = 0;
    return conn_write(c, body, len);
}

/* Answers a request the handlers never see, then closes. */
static void conn_fail(struct conn *c, int status)
{
    char body[64];
    int n =
        snprintf(body, sizeof(body), "%d %s\n", status, http_status_str((enum http_status)status));
    log_debug("http request refused", "peer=%s status=%d", c->peer, status);
    conn_timer_stop(c);
    c->keepalive = 0;
    c->head = 0;
    c->state = CS_WRITE;
    conn_respond(c, status, "text/plain", body, (size_t)n, NULL, 0);
}

/* ---- parser callbacks -------------------------------------------------- */

static int hdr_budget(struct conn *c, size_t n)
{
    c->hdr_bytes += n;
    if (c->hdr_bytes > c->s->o.max_header_bytes) {
        c->err_status = 431;
        return -1;
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct conn *c = p->data;
    conn_reset_request(c);
    c->started = 1;
    conn_timer(c, c->s->o.read_timeout_ms);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (hdr_budget(c, len))
        return -1;
    if (buf_append(&c->rb, at, len)) {
        c->err_status = 500;
        return -1;
    }
    return 0;
}

/* Ends the string being collected (target, header name or value). */
static int end_string(struct conn *c)
{
    if (!c->url_done) {
        c->url_done = 1;
        return buf_putc(&c->rb, '\0');
    }
    if (c->hstate == HS_VALUE) {
        /* http-parser strips leading blanks of a value but not trailing ones */
        size_t start = c->hoff[2 * (c->nhdr - 1) + 1];
        while (c->rb.len > start &&
               (c->rb.data[c->rb.len - 1] == ' ' || c->rb.data[c->rb.len - 1] == '\t'))
            c->rb.len--;
        return buf_putc(&c->rb, '\0');
    }
    if (c->hstate == HS_FIELD) {
        /* a name without value: give it "" */
        int rc = buf_putc(&c->rb, '\0');
        c->hoff[2 * (c->nhdr - 1) + 1] = c->rb.len;
        return rc ? rc : buf_putc(&c->rb, '\0');
    }
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (hdr_budget(c, len))
        return -1;
    if (c->hstate != HS_FIELD) {
        if (end_string(c))
            goto nomem;
        if (hdr_budget(c, HDR_OVERHEAD))
            return -1;
        if (c->nhdr * 2 + 2 > c->hoff_cap) {
            size_t cap = c->hoff_cap ? c->hoff_cap * 2 : 32;
            size_t *n = realloc(c->hoff, cap * sizeof(*n));
            if (n == NULL)
                goto nomem;
            c->hoff = n;
            c->hoff_cap = cap;
        }
        c->hoff[2 * c->nhdr] = c->rb.len;
        c->hoff[2 * c->nhdr + 1] = c->rb.len;
        c->nhdr++;
        c->hstate = HS_FIELD;
    }
    if (buf_append(&c->rb, at, len))
        goto nomem;
    return 0;
nomem:
    c->err_status = 500;
    return -1;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (hdr_budget(c, len))
        return -1;
    if (c->hstate != HS_VALUE) {
        if (buf_putc(&c->rb, '\0'))
            goto nomem;
        c->hoff[2 * (c->nhdr - 1) + 1] = c->rb.len;
        c->hstate = HS_VALUE;
    }
    if (buf_append(&c->rb, at, len))
        goto nomem;
    return 0;
nomem:
    c->err_status = 500;
    return -1;
}

static const char *conn_hdr(const struct conn *c, const char *name)
{
    for (size_t i = 0; i < c->nhdr; i++)
        if (strcasecmp(c->rb.data + c->hoff[2 * i], name) == 0)
            return c->rb.data + c->hoff[2 * i + 1];
    return NULL;
}

static void conn_send_continue(struct conn *c)
{
    static const char text[] = CONTINUE_TEXT;
    size_t len = sizeof(text) - 1;
    if (c->fake) {
        if (buf_append(c->fake_out, text, len))
            conn_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)text, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if ((size_t)n == len)
        return;
    b = uv_buf_init((char *)text + n, (unsigned)(len - (size_t)n));
    c->creq.data = c;
    if (uv_write(&c->creq, (uv_stream_t *)&c->tcp, &b, 1, conn_continue_cb) != 0)
        conn_close(c);
}

static int on_headers_complete(http_parser *p)
{
    struct conn *c = p->data;
    if (end_string(c)) {
        c->err_status = 500;
        return -1;
    }
    c->hstate = HS_NONE;
    int has_body = (p->flags & F_CHUNKED) || p->content_length > 0;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->s->o.max_body_bytes) {
        c->err_status = 413;
        return -1;
    }
    const char *expect = conn_hdr(c, "Expect");
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0) {
            c->err_status = 417;
            return -1;
        }
        if (has_body && p->http_major == 1 && p->http_minor >= 1)
            conn_send_continue(c);
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > 0 &&
        buf_append(&c->body, NULL, 0) == 0 && c->body.cap < p->content_length + 1) {
        /* one allocation instead of doubling; capped, so that a mere
         * declaration cannot make every connection reserve max_body_bytes */
        size_t want = (size_t)p->content_length + 1;
        if (want > BODY_PREALLOC_MAX)
            want = BODY_PREALLOC_MAX;
        char *nb = want > c->body.cap ? realloc(c->body.data, want) : NULL;
        if (nb) {
            c->body.data = nb;
            c->body.cap = want;
        }
    }
    c->head = p->method == HTTP_HEAD;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->body.len + len > c->s->o.max_body_bytes) {
        c->err_status = 413;
        return -1;
    }
    if (buf_append(&c->body, at, len)) {
        c->err_status = 500;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    c->keepalive = http_should_keep_alive(p) && !p->upgrade;
    c->started = 0;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- routing and dispatch ---------------------------------------------- */

static int method_ok(const struct route *r, const char *method)
{
    return r->method == NULL || strcmp(r->method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
}

static int prefix_ok(const struct route *r, const char *path)
{
    if (strncmp(path, r->prefix, r->plen) == 0)
        return 1;
    /* "/api/" also takes "/api" */
    return r->plen > 1 && r->prefix[r->plen - 1] == '/' && strlen(path) == r->plen - 1 &&
           strncmp(path, r->prefix, r->plen - 1) == 0;
}

static void builtin_404_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    static const char msg[] = "{\"error\":\"not found\"}";
    http_resp_send(resp, 404, "application/json", msg, sizeof(msg) - 1);
}

static void builtin_405_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    static const char msg[] = "{\"error\":\"method not allowed\"}";
    struct http_server *s = resp->c->s;
    char allow[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct route *r = &s->routes[i];
        if (r->method == NULL || !prefix_ok(r, req->path) || strstr(allow, r->method))
            continue;
        int n = snprintf(allow + used, sizeof(allow) - used, "%s%s", used ? ", " : "", r->method);
        if (n < 0 || (size_t)n >= sizeof(allow) - used)
            break;
        used += (size_t)n;
    }
    if (used)
        http_resp_header(resp, "Allow", allow);
    http_resp_send(resp, 405, "application/json", msg, sizeof(msg) - 1);
}

static const struct route *route_find(const struct http_server *s, const char *method,
                                      const char *path, int *path_matched)
{
    const struct route *best = NULL;
    *path_matched = 0;
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct route *r = &s->routes[i];
        if (!prefix_ok(r, path))
            continue;
        *path_matched = 1;
        if (method_ok(r, method) && (best == NULL || r->plen > best->plen))
            best = r;
    }
    return best;
}

/* Splits the target into path and query, appending NUL-terminated copies
 * to rb (the target itself stays first in rb). */
static int conn_split_target(struct conn *c, size_t *path_off, size_t *query_off)
{
    static const char zeros[64];
    const char *t = c->rb.data;
    size_t ps = 0, pl, qs = 0, ql = 0;
    int root = 0;
    if (t[0] == '/' || t[0] == '*') {
        pl = strcspn(t, "?#");
        if (t[pl] == '?') {
            qs = pl + 1;
            ql = strcspn(t + qs, "#");
        }
    } else {
        /* absolute-form (http://host/path?query) or CONNECT's authority */
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(t, strlen(t), c->parser.method == HTTP_CONNECT, &u) != 0)
            return -EINVAL;
        if (u.field_set & (1 << UF_PATH)) {
            ps = u.field_data[UF_PATH].off;
            pl = u.field_data[UF_PATH].len;
        } else {
            root = 1;
            pl = 1;
        }
        if (u.field_set & (1 << UF_QUERY)) {
            qs = u.field_data[UF_QUERY].off;
            ql = u.field_data[UF_QUERY].len;
        }
    }
    /* grow first, then copy within the (possibly moved) buffer */
    size_t base = c->rb.len;
    for (size_t need = pl + ql + 2; need;) {
        size_t k = need < sizeof(zeros) ? need : sizeof(zeros);
        if (buf_append(&c->rb, zeros, k))
            return -ENOMEM;
        need -= k;
    }
    char *d = c->rb.data;
    if (root)
        d[base] = '/';
    else
        memcpy(d + base, d + ps, pl);
    d[base + pl] = '\0';
    memcpy(d + base + pl + 1, d + qs, ql);
    d[base + pl + 1 + ql] = '\0';
    *path_off = base;
    *query_off = base + pl + 1;
    return 0;
}

static void conn_dispatch(struct conn *c)
{
    struct http_server *s = c->s;
    struct http_req *r = &c->req;
    size_t poff, qoff;

    conn_timer_stop(c);
    c->state = CS_HANDLER;
    if (conn_split_target(c, &poff, &qoff) != 0) {
        conn_fail(c, 400);
        return;
    }
    if (c->nhdr > c->hdrs_cap) {
        size_t cap = c->hdrs_cap ? c->hdrs_cap : 16;
        while (cap < c->nhdr)
            cap *= 2;
        struct http_header *h = realloc(c->hdrs, cap * sizeof(*h));
        if (h == NULL) {
            conn_fail(c, 500);
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

    int path_matched;
    const struct route *rt = route_find(s, r->method, r->path, &path_matched);
    http_handler_cb cb = rt ? rt->cb : path_matched ? builtin_405_cb : builtin_404_cb;
    r->route_ud = rt ? rt->ud : NULL;
    c->resp.c = c;
    c->resp.live = 1;
    buf_reset(&c->resp.hdrs);
    c->in_dispatch = 1;
    cb(r, &c->resp, rt ? rt->ud : NULL);
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
        size_t n = http_parser_execute(&c->parser, &parser_settings, data + done, len - done);
        done += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            conn_dispatch(c);
            continue;
        }
        if (e != HPE_OK) {
            conn_fail(c, c->err_status ? c->err_status : parse_error_status(e));
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
static void conn_next(struct conn *c)
{
    if (c->poff < c->pending.len)
        conn_parse_pending(c);
    if (c->state != CS_READ)
        return;
    if (c->eof) {
        conn_close(c); /* a partial request can never complete */
        return;
    }
    conn_read_start(c);
    if (!c->started)
        conn_timer(c, c->s->o.idle_timeout_ms);
}

/* ---- socket callbacks -------------------------------------------------- */

static void conn_timer_cb(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->resume) {
        c->resume = 0;
        if (c->state == CS_READ)
            conn_next(c);
        return;
    }
    switch (c->state) {
    case CS_READ:
        if (c->started)
            conn_fail(c, 408);
        else
            conn_close(c);
        break;
    case CS_WRITE:
    case CS_LINGER:
        conn_close(c);
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
        conn_close(c);
        return;
    }
    if (c->state == CS_LINGER || !c->keepalive)
        return; /* no further request will be read: discard */
    if (c->state == CS_READ && c->poff == c->pending.len) {
        size_t n = conn_parse(c, b->base, (size_t)nread);
        if (n < (size_t)nread && (c->state == CS_HANDLER || c->state == CS_WRITE) && c->keepalive &&
            buf_append(&c->pending, b->base + n, (size_t)nread - n))
            conn_close(c);
        /* only a completed request restarts the idle clock: bytes that
         * start nothing (stray CRLFs) must not keep a connection alive */
        if (c->rearm && c->state == CS_READ && !c->started)
            conn_timer(c, c->s->o.idle_timeout_ms);
        c->rearm = 0;
        return;
    }
    if (buf_append(&c->pending, b->base, (size_t)nread)) {
        conn_close(c);
        return;
    }
    if (c->state == CS_READ) {
        conn_next(c);
        return;
    }
    if (c->pending.len - c->poff > PENDING_MAX)
        conn_read_stop(c); /* backpressure until the handler has replied */
}

/* ---- accepting ---------------------------------------------------------- */

static void srv_free(struct http_server *s)
{
    for (size_t i = 0; i < s->nroutes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].prefix);
    }
    free(s->routes);
    free(s);
}

static void srv_unref(struct http_server *s)
{
    if (--s->nhandles > 0 || !s->closing)
        return;
    void (*cb)(void *) = s->close_cb;
    void *ud = s->close_ud;
    srv_free(s);
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
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(&c->tcp, c->peer, sizeof(c->peer));
    conn_read_start(c);
    conn_timer(c, s->o.idle_timeout_ms);
}

/* ---- public API ----------------------------------------------------------- */

static void opts_defaults(struct http_server_opts *o, const struct http_server_opts *in)
{
    *o = *in;
    o->listen = NULL;
    if (!o->max_header_bytes)
        o->max_header_bytes = DEFAULT_HDR_MAX;
    if (!o->max_body_bytes)
        o->max_body_bytes = DEFAULT_BODY;
    if (!o->read_timeout_ms)
        o->read_timeout_ms = 10000;
    if (!o->idle_timeout_ms)
        o->idle_timeout_ms = 60000;
    if (!o->max_connections)
        o->max_connections = 1024;
}

static int parse_listen(const char *s, struct sockaddr_storage *ss)
{
    char host[64];
    const char *port;
    if (s == NULL)
        return -EINVAL;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port = colon + 1;
    }
    long long p;
    if (util_parse_int(port, 0, 65535, &p) != 0)
        return -EINVAL;
    if (uv_ip4_addr(host, (int)p, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)p, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return -EINVAL;
}

int http_server_new(uv_loop_t *loop, const struct http_server_opts *opts, struct http_server **out)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rc = parse_listen(opts->listen, &ss);
    if (rc) {
        log_error("http listen address invalid", "listen=\"%s\"",
                  log_q(opts->listen ? opts->listen : ""));
        return rc;
    }
    struct http_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->loop = loop;
    opts_defaults(&s->o, opts);
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

int http_server_route(struct http_server *s, const char *method, const char *prefix,
                      http_handler_cb cb, void *ud)
{
    if (s->nroutes == s->routes_cap) {
        size_t cap = s->routes_cap ? s->routes_cap * 2 : 8;
        struct route *r = realloc(s->routes, cap * sizeof(*r));
        if (r == NULL)
            return -ENOMEM;
        s->routes = r;
        s->routes_cap = cap;
    }
    struct route *r = &s->routes[s->nroutes];
    r->method = util_strdup0(method);
    r->prefix = util_strdup0(prefix);
    if ((method && r->method == NULL) || r->prefix == NULL) {
        free(r->method);
        free(r->prefix);
        return -ENOMEM;
    }
    r->plen = strlen(prefix);
    r->cb = cb;
    r->ud = ud;
    s->nroutes++;
    return 0;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_close(struct http_server *s, void (*cb)(void *ud), void *ud)
{
    s->closing = 1;
    s->close_cb = cb;
    s->close_ud = ud;
    for (struct conn *c = s->conns; c; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&s->listener, srv_handle_closed_cb);
}

const char *http_req_header(const struct http_req *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

static int token_ok(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s == ':' || *s == 0x7f)
            return 0;
    return 1;
}

int http_resp_header(struct http_resp *resp, const char *name, const char *value)
{
    if (!token_ok(name) || strpbrk(value, "\r\n"))
        return -EINVAL; /* no header injection */
    if (strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Connection") == 0 ||
        strcasecmp(name, "Transfer-Encoding") == 0)
        return 0; /* the server owns the framing */
    struct buf *b = &resp->hdrs;
    size_t keep = b->len;
    int rc = buf_puts(b, name);
    rc |= buf_append(b, ": ", 2);
    rc |= buf_puts(b, value);
    rc |= buf_append(b, "\r\n", 2);
    if (rc) {
        b->len = keep;
        if (b->data)
            b->data[keep] = '\0';
        return -ENOMEM;
    }
    return 0;
}

int http_resp_send(struct http_resp *resp, int status, const char *content_type, const void *body,
                   size_t len)
{
    struct conn *c = resp->c;
    if (!resp->live)
        return -EINVAL;
    resp->live = 0;
    if (c->state != CS_HANDLER) {
        /* the connection died while the handler worked: discard */
        buf_reset(&resp->hdrs);
        if (c->s == NULL && (c->nhandles == 0 || c->fake))
            conn_free(c);
        return -EPIPE;
    }
    if (status < 200 || status > 999)
        status = 500;
    return conn_respond(c, status, content_type, body, len, resp->hdrs.data, resp->hdrs.len);
}

int http_urldecode(char *s, int plus_is_space)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '%') {
            int v = 0;
            for (int i = 1; i <= 2; i++) {
                char h = r[i];
                int d = h >= '0' && h <= '9'   ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                               : -1;
                if (d < 0)
                    return -EINVAL;
                v = v * 16 + d;
            }
            *w++ = (char)v;
            r += 2;
        } else if (*r == '+' && plus_is_space) {
            *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return (int)(w - s);
}

/* ---- fake connections (tests, fuzzing) ----------------------------------- */

int http_server_new_fake(const struct http_server_opts *opts, struct http_server **out)
{
    struct http_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    opts_defaults(&s->o, opts);
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
                conn_close(c);
        } else if (c->state != CS_LINGER && c->keepalive) {
            if (buf_append(&c->pending, chunks[i], lens[i]))
                conn_close(c);
            else if (c->state == CS_READ)
                conn_next(c);
        }
    }
    closed_early = c->state == CS_CLOSED;
    c->eof = 1;
    conn_close(c);
    c->s = NULL;
    if (!c->resp.live)
        conn_free(c);
    return closed_early;
}

void http_server_free_fake(struct http_server *s)
{
    srv_free(s);
}
