/* httpd_shim.c - a stand-in for src/http_server.c while that module is
 * being written on another branch. It implements the same contract
 * (include/smsys/http_server.h) with http-parser and libuv, just enough for
 * dvemu: keep-alive, pipelining (one request in flight per connection),
 * body and header limits, longest-prefix routing. Delete this file once
 * src/http_server.c is on main: the symbols are identical. */
#include "smsys/http_server.h"

#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/buf.h"
#include "smsys/util.h"

struct route {
    char *method;
    char *prefix;
    size_t plen;
    http_handler_cb cb;
    void *ud;
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    struct http_server_opts opts;
    struct route *routes;
    size_t nroutes;
    int port;
    unsigned nconns;
    struct hconn *conns; /* list for close */
    int closing;
    void (*close_cb)(void *ud);
    void *close_ud;
};

struct hconn {
    uv_tcp_t tcp;
    struct http_server *srv;
    struct hconn *next, *prev;
    http_parser parser;
    struct buf in; /* unparsed bytes */
    size_t in_off;
    /* request being assembled */
    struct buf url;
    struct buf hdrbuf; /* name\0value\0 pairs */
    size_t nhdr;
    int last_was_value;
    struct buf body;
    int complete;
    int busy;       /* a request is with the handler */
    int in_process; /* conn_process on the stack: no re-entry */
    int closing;    /* uv_close called */
    int want_close;
    int refs; /* 1 for the socket, 1 per pending resp */
    char peer[64];
    size_t hdr_bytes;
};

struct http_resp {
    struct hconn *c;
    struct buf hdrs;
    struct http_req req;
    struct http_header *headers;
    char *method, *path, *query, *target;
    int keep_alive;
};

struct wreq {
    uv_write_t w;
    char *data;
};

static void conn_process(struct hconn *c);

static void conn_unref(struct hconn *c)
{
    if (--c->refs > 0)
        return;
    buf_free(&c->in);
    buf_free(&c->url);
    buf_free(&c->hdrbuf);
    buf_free(&c->body);
    free(c);
}

static void srv_maybe_done(struct http_server *s);

static void conn_closed_cb(uv_handle_t *h)
{
    struct hconn *c = container_of((uv_tcp_t *)h, struct hconn, tcp);
    struct http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    c->srv = NULL;
    conn_unref(c);
    srv_maybe_done(s);
}

static void conn_close(struct hconn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

static void write_cb(uv_write_t *w, int status)
{
    struct wreq *wr = container_of(w, struct wreq, w);
    free(wr->data);
    free(wr);
}

static void conn_write(struct hconn *c, char *data, size_t len)
{
    struct wreq *wr = malloc(sizeof(*wr));
    if (wr == NULL) {
        free(data);
        conn_close(c);
        return;
    }
    wr->data = data;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
        free(data);
        free(wr);
        conn_close(c);
    }
}

static void simple_reply(struct hconn *c, int status, const char *reason)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status,
               reason);
    char *d = buf_steal(&b);
    if (d)
        conn_write(c, d, strlen(d));
    c->want_close = 1;
}

static int on_message_begin(http_parser *p)
{
    struct hconn *c = p->data;
    buf_reset(&c->url);
    buf_reset(&c->hdrbuf);
    buf_reset(&c->body);
    c->nhdr = 0;
    c->last_was_value = 1;
    c->complete = 0;
    c->hdr_bytes = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct hconn *c = p->data;
    return buf_append(&c->url, at, len) ? -1 : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct hconn *c = p->data;
    c->hdr_bytes += len;
    if (c->hdr_bytes > c->srv->opts.max_header_bytes)
        return -1;
    if (c->last_was_value) {
        if (c->nhdr > 0 && buf_putc(&c->hdrbuf, '\0'))
            return -1;
        c->nhdr++;
        c->last_was_value = 0;
    }
    return buf_append(&c->hdrbuf, at, len) ? -1 : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct hconn *c = p->data;
    c->hdr_bytes += len;
    if (c->hdr_bytes > c->srv->opts.max_header_bytes)
        return -1;
    if (!c->last_was_value) {
        if (buf_putc(&c->hdrbuf, '\0'))
            return -1;
        c->last_was_value = 1;
    }
    return buf_append(&c->hdrbuf, at, len) ? -1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct hconn *c = p->data;
    if (c->body.len + len > c->srv->opts.max_body_bytes)
        return -1;
    return buf_append(&c->body, at, len) ? -1 : 0;
}

static int on_message_complete(http_parser *p)
{
    struct hconn *c = p->data;
    c->complete = 1;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static const struct route *find_route(struct http_server *s, const char *method, const char *path)
{
    const struct route *best = NULL;
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct route *r = &s->routes[i];
        if (r->method && strcmp(r->method, method) != 0)
            continue;
        if (strncmp(path, r->prefix, r->plen) != 0)
            continue;
        if (best == NULL || r->plen > best->plen)
            best = r;
    }
    return best;
}

static void dispatch(struct hconn *c)
{
    struct http_resp *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        conn_close(c);
        return;
    }
    r->c = c;
    c->refs++;
    c->busy = 1;
    r->keep_alive = http_should_keep_alive(&c->parser);
    r->method = strdup(http_method_str(c->parser.method));
    const char *url = c->url.data ? c->url.data : "/";
    r->target = strdup(url);
    const char *q = strchr(url, '?');
    r->path = q ? strndup(url, (size_t)(q - url)) : strdup(url);
    r->query = strdup(q ? q + 1 : "");
    if (c->hdrbuf.len > 0 && c->last_was_value == 0)
        buf_putc(&c->hdrbuf, '\0'); /* header without value */
    r->headers = calloc(c->nhdr + 1, sizeof(*r->headers));
    if (!r->method || !r->target || !r->path || !r->query || !r->headers) {
        http_resp_send(r, 500, NULL, NULL, 0);
        return;
    }
    const char *h = c->hdrbuf.data;
    for (size_t i = 0; i < c->nhdr; i++) {
        r->headers[i].name = h;
        h += strlen(h) + 1;
        r->headers[i].value = h;
        h += strlen(h) + 1;
    }
    r->req.method = r->method;
    r->req.target = r->target;
    r->req.path = r->path;
    r->req.query = r->query;
    r->req.headers = r->headers;
    r->req.nheaders = c->nhdr;
    buf_putc(&c->body, '\0');
    c->body.len--;
    r->req.body = c->body.data;
    r->req.body_len = c->body.len;
    r->req.peer = c->peer;
    const struct route *rt = find_route(c->srv, r->method, r->path);
    if (rt == NULL) {
        http_resp_send(r, 404, NULL, NULL, 0);
        return;
    }
    r->req.route_ud = rt->ud;
    rt->cb(&r->req, r, rt->ud);
}

static void conn_process(struct hconn *c)
{
    if (c->in_process)
        return;
    c->in_process = 1;
    while (!c->busy && !c->closing && !c->want_close && c->in_off < c->in.len) {
        size_t avail = c->in.len - c->in_off;
        size_t n = http_parser_execute(&c->parser, &settings, c->in.data + c->in_off, avail);
        c->in_off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (c->complete) {
            http_parser_pause(&c->parser, 0);
            c->complete = 0;
            dispatch(c);
            continue;
        }
        if (e != HPE_OK && e != HPE_PAUSED) {
            int big = c->body.len > 0 || c->hdr_bytes > c->srv->opts.max_header_bytes;
            simple_reply(c, big ? 413 : 400, big ? "Payload Too Large" : "Bad Request");
            break;
        }
        if (n == avail)
            break;
    }
    if (c->in_off == c->in.len) {
        buf_reset(&c->in);
        c->in_off = 0;
    }
    c->in_process = 0;
    if (c->want_close && !c->busy)
        conn_close(c);
}

static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    b->base = malloc(65536);
    b->len = b->base ? 65536 : 0;
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct hconn *c = container_of((uv_tcp_t *)st, struct hconn, tcp);
    if (n < 0) {
        free(b->base);
        conn_close(c);
        return;
    }
    if (n > 0 && buf_append(&c->in, b->base, (size_t)n) != 0) {
        free(b->base);
        conn_close(c);
        return;
    }
    free(b->base);
    conn_process(c);
}

static void accept_cb(uv_stream_t *ls, int status)
{
    struct http_server *s = container_of((uv_tcp_t *)ls, struct http_server, tcp);
    if (status < 0)
        return;
    struct hconn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->srv = s;
    c->refs = 1;
    uv_tcp_init(s->loop, &c->tcp);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0 || s->nconns > s->opts.max_connections) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    snprintf(c->peer, sizeof(c->peer), "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[48] = "";
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
            snprintf(c->peer, sizeof(c->peer), "%s:%d", ip,
                     ntohs(((struct sockaddr_in *)&ss)->sin_port));
        } else {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            snprintf(c->peer, sizeof(c->peer), "[%s]:%d", ip,
                     ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
        }
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

int http_server_new(uv_loop_t *loop, const struct http_server_opts *opts, struct http_server **out)
{
    struct http_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->loop = loop;
    s->opts = *opts;
    if (!s->opts.max_header_bytes)
        s->opts.max_header_bytes = 16384;
    if (!s->opts.max_body_bytes)
        s->opts.max_body_bytes = 1 << 20;
    if (!s->opts.max_connections)
        s->opts.max_connections = 1024;
    char host[64];
    const char *l = opts->listen ? opts->listen : "127.0.0.1:0";
    const char *colon = strrchr(l, ':');
    if (colon == NULL) {
        free(s);
        return -EINVAL;
    }
    long long port;
    if (util_parse_int(colon + 1, 0, 65535, &port) != 0) {
        free(s);
        return -EINVAL;
    }
    size_t hl = (size_t)(colon - l);
    if (hl >= sizeof(host)) {
        free(s);
        return -EINVAL;
    }
    memcpy(host, l, hl);
    host[hl] = '\0';
    struct sockaddr_storage ss;
    int rc;
    if (host[0] == '[') {
        host[hl - 1] = '\0';
        rc = uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)&ss);
    } else {
        rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss);
    }
    if (rc == 0)
        rc = uv_tcp_init(loop, &s->tcp);
    if (rc != 0) {
        free(s);
        return rc;
    }
    rc = uv_tcp_bind(&s->tcp, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->tcp, 511, accept_cb);
    if (rc != 0) {
        uv_close((uv_handle_t *)&s->tcp, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        free(s);
        return rc;
    }
    int sl = sizeof(ss);
    uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    *out = s;
    return 0;
}

int http_server_route(struct http_server *s, const char *method, const char *prefix,
                      http_handler_cb cb, void *ud)
{
    struct route *n = realloc(s->routes, (s->nroutes + 1) * sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    s->routes = n;
    struct route *r = &n[s->nroutes];
    r->method = method ? strdup(method) : NULL;
    r->prefix = strdup(prefix);
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

static void srv_free(struct http_server *s)
{
    for (size_t i = 0; i < s->nroutes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].prefix);
    }
    free(s->routes);
    void (*cb)(void *) = s->close_cb;
    void *ud = s->close_ud;
    free(s);
    if (cb)
        cb(ud);
}

static void listener_closed_cb(uv_handle_t *h)
{
    struct http_server *s = container_of((uv_tcp_t *)h, struct http_server, tcp);
    s->closing = 2;
    srv_maybe_done(s);
}

static void srv_maybe_done(struct http_server *s)
{
    if (s->closing == 2 && s->nconns == 0)
        srv_free(s);
}

void http_server_close(struct http_server *s, void (*cb)(void *ud), void *ud)
{
    s->close_cb = cb;
    s->close_ud = ud;
    s->closing = 1;
    for (struct hconn *c = s->conns; c; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&s->tcp, listener_closed_cb);
}

const char *http_req_header(const struct http_req *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

int http_resp_header(struct http_resp *resp, const char *name, const char *value)
{
    return buf_printf(&resp->hdrs, "%s: %s\r\n", name, value);
}

static const char *reason(int st)
{
    switch (st) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

int http_resp_send(struct http_resp *resp, int status, const char *content_type, const void *body,
                   size_t len)
{
    struct hconn *c = resp->c;
    int rc = 0;
    if (c->closing || c->srv == NULL) {
        rc = -ENOTCONN;
    } else {
        struct buf out = BUF_INIT;
        int keep = resp->keep_alive && !c->srv->closing;
        buf_printf(&out, "HTTP/1.1 %d %s\r\n", status, reason(status));
        if (content_type)
            buf_printf(&out, "Content-Type: %s\r\n", content_type);
        if (resp->hdrs.len)
            buf_append(&out, resp->hdrs.data, resp->hdrs.len);
        buf_printf(&out, "Content-Length: %zu\r\nConnection: %s\r\n\r\n", len,
                   keep ? "keep-alive" : "close");
        if (len)
            buf_append(&out, body, len);
        size_t olen = out.len;
        char *d = buf_steal(&out);
        if (d)
            conn_write(c, d, olen);
        if (!keep)
            c->want_close = 1;
        c->busy = 0;
        if (c->want_close) {
            conn_close(c);
        } else {
            conn_process(c);
        }
    }
    buf_free(&resp->hdrs);
    free(resp->headers);
    free(resp->method);
    free(resp->path);
    free(resp->query);
    free(resp->target);
    free(resp);
    conn_unref(c);
    return rc;
}

int http_urldecode(char *s, int plus_is_space)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '%') {
            int v = 0;
            for (int i = 1; i <= 2; i++) {
                char ch = p[i];
                v <<= 4;
                if (ch >= '0' && ch <= '9')
                    v |= ch - '0';
                else if (ch >= 'a' && ch <= 'f')
                    v |= ch - 'a' + 10;
                else if (ch >= 'A' && ch <= 'F')
                    v |= ch - 'A' + 10;
                else
                    return -EINVAL;
            }
            *o++ = (char)v;
            p += 2;
        } else if (*p == '+' && plus_is_space) {
            *o++ = ' ';
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return (int)(o - s);
}
