/* http_server_parse.c - http-parser callbacks: collect one request into its
 * connection and enforce the header and body limits as bytes arrive (see
 * http_server_p.h for the file split).
 *
 * Strings are appended to c->rb NUL-separated and addressed by offset
 * (rb may move as it grows); pointers are made at dispatch. A callback
 * that refuses the request sets c->err_status and returns -1, which stops
 * the parser; the connection then answers err_status and closes. */
#include "http_server_p.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    http_conn_reset_request(c);
    c->started = 1;
    http_conn_timer(c, c->s->o.read_timeout_ms);
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

/* Debian builds http-parser non-strict, which lets spaces into names and
 * control bytes into values; a name is an RFC 9110 token, a value has no
 * control byte but HTAB (obs-text, 0x80-0xff, is allowed). */
static int name_ok(const char *at, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)at[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL)))
            return 0;
    }
    return 1;
}

static int value_ok(const char *at, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)at[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 0;
    }
    return 1;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (hdr_budget(c, len))
        return -1;
    if (!name_ok(at, len)) {
        c->err_status = 400;
        return -1;
    }
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
    if (!value_ok(at, len)) {
        c->err_status = 400;
        return -1;
    }
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

static int on_headers_complete(http_parser *p)
{
    struct conn *c = p->data;
    if (end_string(c)) {
        c->err_status = 500;
        return -1;
    }
    c->hstate = HS_NONE;
    if (p->http_major != 1) {
        c->err_status = 505; /* HTTP/2+ is not spoken over this framing */
        return -1;
    }
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
            http_conn_send_continue(c);
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

/* A chunk announcing more than the body may still hold is refused before
 * its data arrives (p->content_length is the chunk size here). */
static int on_chunk_header(http_parser *p)
{
    struct conn *c = p->data;
    if (p->content_length > c->s->o.max_body_bytes - c->body.len) {
        c->err_status = 413;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    /* trailer fields of a chunked body arrive after on_headers_complete:
     * they join the headers, and the last one still needs its NUL */
    if (end_string(c)) {
        c->err_status = 500;
        return -1;
    }
    c->hstate = HS_NONE;
    c->keepalive = http_should_keep_alive(p) && !p->upgrade;
    c->started = 0;
    http_parser_pause(p, 1);
    return 0;
}

const http_parser_settings http_parser_cbs = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};
