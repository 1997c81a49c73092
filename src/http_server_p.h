/* http_server_p.h - private to http_server*.c: the connection and server
 * structs and the functions the four files share.
 *
 *   http_server.c        connections: state machine, timers, reads,
 *                        dispatch, accept, public lifecycle
 *   http_server_write.c  responses: head, direct write then uv_write,
 *                        100 Continue, refusals, http_resp_send
 *   http_server_parse.c  http-parser callbacks: collect the request into
 *                        the connection, enforce header/body limits
 *   http_server_route.c  routing, listen addresses, request/response
 *                        helpers of the public API
 */
#ifndef SMSYS_HTTP_SERVER_P_H
#define SMSYS_HTTP_SERVER_P_H

#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <uv.h>

#include "smsys/buf.h"
#include "smsys/http_server.h"

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

/* http_server.c */
void http_conn_timer(struct conn *c, uint64_t ms); /* (re)arms the timer, cancels a resume */
void http_conn_timer_stop(struct conn *c);         /* stops it, cancels a resume */
void http_conn_reset_request(struct conn *c);      /* forget the previous request */
void http_conn_close(struct conn *c);              /* closes the handles (no-op when closed) */
void http_conn_free(struct conn *c);               /* frees c and its buffers (no handles) */
/* The last response is out: FIN, then drain input (CS_LINGER). */
void http_conn_finish(struct conn *c);
/* Back in CS_READ with no handler running: parse what is buffered, then
 * wait for more. */
void http_conn_next(struct conn *c);

/* http_server_write.c */
void http_conn_send_continue(struct conn *c); /* "100 Continue" now */
/* Answers a request the handlers never see (400, 408, 431, ...), then
 * closes. */
void http_conn_fail(struct conn *c, int status);

/* http_server_parse.c */
extern const http_parser_settings http_parser_cbs;

/* http_server_route.c */
/* The handler for a request: the longest matching route whose method
 * fits, else the built-in 405 (path routed, method not) or 404. *ud is set
 * to the route's ud (NULL for the built-ins). */
http_handler_cb http_route_pick(const struct http_server *s, const char *method, const char *path,
                                void **ud);
/* Splits the target (first string in c->rb) into NUL-terminated path and
 * query copies appended to c->rb; offsets out. 0, -EINVAL or -ENOMEM. */
int http_target_split(struct conn *c, size_t *path_off, size_t *query_off);
/* "1.2.3.4:80" / "[::1]:0" -> address. 0 or -EINVAL. */
int http_listen_parse(const char *s, struct sockaddr_storage *ss);
/* Copies opts, filling defaults for zero fields (listen is not kept). */
void http_opts_defaults(struct http_server_opts *o, const struct http_server_opts *in);
/* Frees routes and the server struct (no handles). */
void http_srv_free(struct http_server *s);

#endif
