/* http_client.h - asynchronous HTTP(S) client: libcurl's multi interface
 * driven by a libuv loop.
 *
 * One struct http_client per loop; the Dataverse client, OAuth and every
 * HTTP provider connector share it, so connections are pooled and limited
 * in one place. Contract (libuv's):
 *
 *   1. http_client_request() returns 0 and later calls done_cb exactly
 *      once, never inside the call; or returns < 0 and never calls it.
 *   2. Everything the caller passes in is borrowed for the duration of the
 *      call; the client copies what it keeps.
 *   3. The response handed to done_cb lives until done_cb returns. The
 *      callback MAY take resp->body (buf_steal(&resp->body), or copy the
 *      struct and zero the original); everything else is freed after it.
 *   4. An HTTP status is not an error here: rc is 0 for a 404 or a 503.
 *      rc < 0 means no complete response arrived (see docs/http-client.md
 *      for the table of codes), with a human-readable resp->err.detail.
 *   5. Callbacks run on the loop thread and MAY call any function of this
 *      module, including http_client_close().
 *
 * See docs/http-client.md for the error table, the unknown-outcome flag
 * and the shutdown order. */
#ifndef SMSYS_HTTP_CLIENT_H
#define SMSYS_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smsys/buf.h"
#include "smsys/error.h"
#include "smsys/http_header.h"

struct http_client; /* opaque; one per loop */
struct http_call;   /* opaque; one in-flight request */

/* Client-wide settings. Zero / NULL fields take the default given. All
 * strings are copied by http_client_new(). */
struct http_client_opts {
    unsigned max_total_conns;    /* open connections, all hosts; 0: 64 */
    unsigned max_host_conns;     /* per host; 0: 16. Further requests queue */
    unsigned timeout_ms;         /* whole request, queueing included; 0: 30000 */
    unsigned connect_timeout_ms; /* 0: 10000 */
    size_t max_response_bytes;   /* body cap; 0: 16 MiB */
    const char *proxy;           /* "http://[user:pass@]host:port"; NULL: none */
    const char *no_proxy;        /* hosts that bypass the proxy, curl syntax */
    const char *ca_file;         /* PEM bundle; NULL: the system store */
    const char *user_agent;      /* NULL: "smsys" */
};

enum http_auth {
    HTTP_AUTH_NONE = 0,
    HTTP_AUTH_BASIC,     /* Authorization: Basic, sent on the first request */
    HTTP_AUTH_NTLM,      /* Windows authentication (on-premises Dynamics) */
    HTTP_AUTH_NEGOTIATE, /* SPNEGO/Kerberos; empty username: the ticket cache */
};

/* One request, filled by the caller and borrowed for the call only. */
struct http_request {
    const char *method;         /* NULL: "GET", or "POST" when body is set */
    const char *url;            /* http:// or https:// only */
    const char *const *headers; /* "Name: value" strings, no CR/LF */
    size_t n_headers;
    const void *body; /* may be NULL with body_len 0 */
    size_t body_len;
    unsigned timeout_ms;         /* 0: the client default */
    unsigned connect_timeout_ms; /* 0: the client default */
    size_t max_response_bytes;   /* 0: the client default; over it: SMSYS_ETOOBIG */
    const char *proxy;           /* NULL: the client default; "": no proxy */
    enum http_auth auth;
    const char *username; /* with auth != NONE */
    const char *password;
    unsigned max_redirects; /* 0: redirects are returned, not followed */
    int insecure;           /* 1: skip TLS verification. Tests only. */
};

/* What done_cb gets. status/headers/body belong to the last response
 * received (after 100-continue, auth rounds or followed redirects). */
struct http_response {
    int status;                        /* 0 when no status line arrived */
    const struct http_header *headers; /* in arrival order, repeats kept */
    size_t n_headers;
    struct buf body;      /* body.data is "" when empty; NULL only if rc < 0 */
    uint64_t total_ms;    /* from http_client_request() to completion */
    long num_connects;    /* new connections this request opened (0: reused) */
    int request_sent;     /* 1: the whole request reached the socket */
    struct smsys_err err; /* err.code == rc; detail when rc < 0 */
};

/* rc: 0 (a response; check resp->status) or < 0 (see the error table).
 * resp is never NULL. */
typedef void (*http_client_done_cb)(int rc, struct http_response *resp, void *ud);
typedef void (*http_client_closed_cb)(void *ud);

/* Creates a client on loop. opts may be NULL for all defaults. Returns 0
 * and *out (release with http_client_close), or -ENOMEM / -EINVAL. */
int http_client_new(uv_loop_t *loop, const struct http_client_opts *opts, struct http_client **out);

/* Starts a request. Returns 0 and calls done_cb exactly once later, or
 * returns < 0 (-EINVAL bad request, -ENOTSUP auth not built into libcurl,
 * -ENOMEM, SMSYS_ECLOSED after http_client_close) and never calls it.
 * *call_out (optional) identifies the request for http_call_cancel and is
 * valid until done_cb starts running. */
int http_client_request(struct http_client *c, const struct http_request *req,
                        http_client_done_cb done_cb, void *ud, struct http_call **call_out);

/* Aborts a request: its done_cb fires later, once, with -ECANCELED (check
 * resp->request_sent: the peer may have got it). Returns 0, or -EALREADY
 * when the request had already finished and its callback is pending with
 * the real result. Must not be called once done_cb has started. */
int http_call_cancel(struct http_call *call);

/* Shuts the client down: every request still in flight completes with
 * -ECANCELED (callbacks fire once, later), connections are closed, libuv
 * handles closed, the client freed, then cb(ud) (cb may be NULL). c must
 * not be used after this call, except from done callbacks still firing,
 * where http_client_request() returns SMSYS_ECLOSED. */
void http_client_close(struct http_client *c, http_client_closed_cb cb, void *ud);

/* First value of header name (case-insensitive), or NULL. */
const char *http_client_header_get(const struct http_response *resp, const char *name);

/* The n-th (0-based) value of a repeated header, or NULL past the last. */
const char *http_client_header_nth(const struct http_response *resp, const char *name, size_t n);

/* 1 when the request failed after it was completely sent: the peer may
 * have acted on it (unknown outcome; do not resend blindly), else 0. */
int http_client_outcome_unknown(int rc, const struct http_response *resp);

/* Appends name=value to an application/x-www-form-urlencoded body, with
 * '&' before it when b is not empty. Returns 0 or what buf.h returns. */
int http_client_form_add(struct buf *b, const char *name, const char *value);

#endif
