/* http_server_write.c - the response side of a connection: the status
 * line and headers built into c->out, a direct write first and uv_write for
 * the rest, "100 Continue", the error answers the handlers never see, and
 * http_resp_send. Once a response is out, the connection reads the next
 * request (keep-alive) or finishes (http_server.c). */
#include "http_server_p.h"
#include "smsys/buf.h"
#include "smsys/log.h"

#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* The response has been handed to the kernel entirely. */
static void conn_written(struct conn *c, int from_write_cb)
{
    if (!c->keepalive || (c->s && c->s->closing)) {
        http_conn_finish(c);
        return;
    }
    c->state = CS_READ;
    http_conn_reset_request(c);
    if (c->in_dispatch) {
        c->rearm = 1; /* the reader arms the idle timer when its parse ends */
        return;       /* conn_parse's loop goes on with the next request */
    }
    if (!from_write_cb && !c->fake && c->poff < c->pending.len) {
        /* http_resp_send was called by user code outside our dispatch: run
         * the next pipelined handler from the loop, not nested in that call. */
        http_conn_timer(c, 0);
        c->resume = 1;
        return;
    }
    http_conn_next(c);
}

static void conn_write_cb(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (c->state == CS_CLOSED)
        return;
    if (status < 0) {
        http_conn_close(c);
        return;
    }
    conn_written(c, 1);
}

static void conn_continue_cb(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0 && c->state != CS_CLOSED)
        http_conn_close(c);
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
            http_conn_close(c);
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
        http_conn_close(c);
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
        http_conn_close(c);
        return rc;
    }
    c->state = CS_WRITE;
    http_conn_timer(c, c->s->o.idle_timeout_ms);
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
    if (ctype && strpbrk(ctype, "\r\n")) {
        log_warn("http content type refused", "reason=\"CR or LF\" peer=%s", c->peer);
        ctype = NULL; /* no header injection through the handler's type */
    }
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
        http_conn_close(c);
        return -ENOMEM;
    }
    if (c->head || !has_body)
        len = 0;
    return conn_write(c, body, len);
}

/* Answers a request the handlers never see, then closes. */
void http_conn_fail(struct conn *c, int status)
{
    char body[64];
    int n =
        snprintf(body, sizeof(body), "%d %s\n", status, http_status_str((enum http_status)status));
    log_debug("http request refused", "peer=%s status=%d", c->peer, status);
    http_conn_timer_stop(c);
    c->keepalive = 0;
    c->head = 0;
    c->state = CS_WRITE;
    conn_respond(c, status, "text/plain", body, (size_t)n, NULL, 0);
}

void http_conn_send_continue(struct conn *c)
{
    static const char text[] = CONTINUE_TEXT;
    size_t len = sizeof(text) - 1;
    if (c->fake) {
        if (buf_append(c->fake_out, text, len))
            http_conn_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)text, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n < 0) {
        http_conn_close(c);
        return;
    }
    if ((size_t)n == len)
        return;
    b = uv_buf_init((char *)text + n, (unsigned)(len - (size_t)n));
    c->creq.data = c;
    if (uv_write(&c->creq, (uv_stream_t *)&c->tcp, &b, 1, conn_continue_cb) != 0)
        http_conn_close(c);
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
            http_conn_free(c);
        return -EPIPE;
    }
    if (status < 200 || status > 999)
        status = 500;
    return conn_respond(c, status, content_type, body, len, resp->hdrs.data, resp->hdrs.len);
}
