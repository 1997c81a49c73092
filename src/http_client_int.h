/* http_client_int.h - private to src/http_client*.c: the structs shared
 * by the loop side (http_client.c) and the request side (http_client_req.c:
 * validation, curl options, per-transfer callbacks, error mapping). */
#ifndef SMSYS_HTTP_CLIENT_INT_H
#define SMSYS_HTTP_CLIENT_INT_H

#include <curl/curl.h>

#include "smsys/http_client.h"
#include "smsys/list.h"

#define DEF_MAX_TOTAL    64
#define DEF_MAX_HOST     16
#define DEF_TIMEOUT_MS   30000
#define DEF_CONNECT_MS   10000
#define DEF_MAX_RESPONSE (16u * 1024 * 1024)
#define MAX_HEADER_BYTES (64 * 1024) /* all response headers together */
#define MAX_METHOD_LEN   32

struct http_client {
    uv_loop_t *loop;
    CURLM *multi; /* NULL once closing has cleaned it up */
    uv_timer_t timer;
    uv_idle_t defer;    /* fires the done queue and deferred aborts */
    struct list socks;  /* struct http_sock not yet closing */
    struct list active; /* struct http_call in the multi */
    struct list done;   /* struct http_call waiting for their callback */
    unsigned handles;   /* uv handles whose close callback is pending */
    unsigned n_aborts;  /* active calls with abort_rc set */
    int closing;
    int firing; /* fire_done() is on the stack */
    int kick;   /* callbacks ran before the poll: keep defer through it */
    int defer_closed;
    http_client_closed_cb closed_cb;
    void *closed_ud;
    /* defaults, owned copies */
    unsigned timeout_ms;
    unsigned connect_timeout_ms;
    size_t max_response;
    char *proxy;
    char *no_proxy;
    char *ca_file;
    char *user_agent;
};

struct http_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    int events; /* what curl last asked for, as UV_READABLE|UV_WRITABLE */
    struct http_client *c;
    struct list_node link; /* on c->socks until uv_close() */
};

enum call_state { CALL_ACTIVE, CALL_DONE };

struct http_call {
    struct list_node link; /* on c->active or c->done */
    struct http_client *c;
    CURL *easy;
    struct curl_slist *hdrs;
    http_client_done_cb cb;
    void *ud;
    enum call_state state;
    int rc;
    int abort_rc; /* failure found inside a curl callback; applied by defer */
    int too_big;
    int oom;
    int header_out; /* some request header bytes reached the socket */
    size_t body_len;
    curl_off_t data_out; /* request body bytes written to the socket */
    uint64_t start_ms, end_ms;
    size_t n_hdr;
    struct buf body;
    struct buf hdr_raw; /* name\0value\0 pairs of the last response */
    char detail[sizeof(((struct smsys_err *)0)->detail)];
    char method[MAX_METHOD_LEN + 1];
    char errbuf[CURL_ERROR_SIZE];
};

/* Validates a request before anything is allocated. Returns 0, -EINVAL or
 * -ENOTSUP (auth mode missing from this libcurl). */
int http_client_req_check(const struct http_request *req);

/* Sets every option of call->easy from req and c's defaults (curl copies
 * strings and the body; call keeps the header list). Returns 0, -ENOMEM
 * or -EINVAL. */
int http_client_req_setup(struct http_client *c, struct http_call *call,
                          const struct http_request *req);

/* Maps a transfer's CURLcode (plus what the callbacks saw) to our code and
 * fills call->detail. Table in docs/http-client.md; keep both in step. */
int http_client_req_result(struct http_call *call, CURLcode res);

#endif
