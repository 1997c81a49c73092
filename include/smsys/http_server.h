/* http_server.h - a small HTTP/1.1 server on libuv.
 *
 * Used for /healthz, /metrics and provider webhooks in smsysd, and as the
 * HTTP layer of the simulators (dvemu, provsim). Parsing is done by
 * Debian's http-parser; this module only frames connections, enforces
 * limits (header bytes, body bytes, read/idle timeouts, connections) and
 * routes requests.
 *
 * Contract (libuv style):
 *  - A handler is called once per complete request, on the loop thread.
 *  - The handler MUST call http_resp_send() exactly once, now or later
 *    (asynchronously). req and resp stay valid until then, even if the
 *    client has gone away (the reply is then discarded).
 *  - Keep-alive is supported; pipelined requests are answered in order.
 *  - Malformed requests get 400, oversized ones 413/431, slow ones 408, and
 *    the connection is closed; handlers never see them. */
#ifndef SMSYS_HTTP_SERVER_H
#define SMSYS_HTTP_SERVER_H

#include <stddef.h>
#include <uv.h>

#include "smsys/http_header.h"

struct http_server;
struct http_resp;

struct http_req {
    const char *method; /* "GET", "POST", ... */
    const char *target; /* request-target as received: "/a/b?x=1" */
    const char *path;   /* target up to '?', still percent-encoded */
    const char *query;  /* after '?', percent-encoded; "" when none */
    const struct http_header *headers;
    size_t nheaders;
    const char *body; /* NUL-terminated for convenience; body_len bytes */
    size_t body_len;
    const char *peer; /* "127.0.0.1:53412" */
    void *route_ud;   /* ud given to http_server_route for the matching route */
};

typedef void (*http_handler_cb)(struct http_req *req, struct http_resp *resp, void *ud);

struct http_server_opts {
    const char *listen;       /* "127.0.0.1:8480", "[::1]:0"; port 0 = any */
    size_t max_header_bytes;  /* default 16 KiB */
    size_t max_body_bytes;    /* default 1 MiB */
    unsigned read_timeout_ms; /* whole request must arrive within; default 10 s */
    unsigned idle_timeout_ms; /* keep-alive idle; default 60 s */
    unsigned max_connections; /* default 1024; further accepts are closed at once */
};

/* Starts listening. On success *out is the server and 0 is returned; the
 * caller owns it and must release it with http_server_close(). */
int http_server_new(uv_loop_t *loop, const struct http_server_opts *opts, struct http_server **out);

/* Adds a route: requests whose path starts with prefix (and, when method
 * is not NULL, whose method matches; a "GET" route also takes HEAD) go to
 * cb. The longest matching prefix wins; a prefix ending in '/' also
 * matches the path without that slash ("/api/" takes "/api"). Unrouted
 * requests get 404; a path routed only for other methods gets 405 with
 * Allow. prefix is copied. Returns 0 or -ENOMEM. */
int http_server_route(struct http_server *s, const char *method, const char *prefix,
                      http_handler_cb cb, void *ud);

/* The port actually bound (useful with port 0 in tests). */
int http_server_port(const struct http_server *s);

/* Stops accepting, closes every connection (pending replies are discarded
 * when sent), frees s and then calls cb(ud) (cb may be NULL) once all
 * handles are closed - never inside this call. */
void http_server_close(struct http_server *s, void (*cb)(void *ud), void *ud);

/* Header lookup, case-insensitive; NULL when absent. */
const char *http_req_header(const struct http_req *req, const char *name);

/* Adds a response header (copied). Content-Length, Connection and
 * Transfer-Encoding are set by the server (ignored here, returns 0).
 * Returns 0, -EINVAL (name not a token, CR/LF in value) or -ENOMEM. */
int http_resp_header(struct http_resp *resp, const char *name, const char *value);

/* Sends the response (body copied) and releases resp. Exactly once per
 * request. content_type may be NULL (no body type). Returns 0, -EPIPE if
 * the connection is gone, or a libuv error if writing failed (resp is
 * released either way). */
int http_resp_send(struct http_resp *resp, int status, const char *content_type, const void *body,
                   size_t len);

/* Decodes %XX and (when plus_is_space) '+' in place; returns the new
 * length, or -EINVAL on a malformed escape. */
int http_urldecode(char *s, int plus_is_space);

#endif
