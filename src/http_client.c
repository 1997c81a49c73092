/* http_client.c - libcurl multi interface on a libuv loop.
 *
 * curl tells us which sockets to watch (sock_func) and when to wake it
 * (timer_func); we watch them with one uv_poll_t per socket and one
 * uv_timer_t, and hand readiness back with curl_multi_socket_action().
 * After every socket action we drain curl_multi_info_read() and move the
 * finished transfers to a done queue; user callbacks run only from that
 * queue, never from inside a curl callback, so they may freely start,
 * cancel or close.
 *
 * Call states: ACTIVE (easy handle in the multi, on c->active) ->
 * DONE (removed from the multi, rc fixed, on c->done) -> freed right after
 * its callback. Cancel and close move ACTIVE calls to DONE themselves and
 * let the idle handle `defer` fire them on the next loop iteration, which
 * keeps the "never inside the call" rule.
 *
 * Handle lifetime: every uv handle counts in c->handles until its close
 * callback has run; the client is freed when it is closing and that count
 * reaches zero. `defer` is closed last, once the done queue is empty, so
 * every request callback fires before the close callback. */
#include "smsys/http_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smsys/log.h"
#include "smsys/util.h"

#define DEF_MAX_TOTAL    64
#define DEF_MAX_HOST     16
#define DEF_TIMEOUT_MS   30000
#define DEF_CONNECT_MS   10000
#define DEF_MAX_RESPONSE (16u * 1024 * 1024)
#define MAX_HEADER_BYTES (64 * 1024) /* all response headers together */
#define MAX_METHOD_LEN   32

struct link {
    struct link *prev, *next;
};

static void link_init(struct link *l)
{
    l->prev = l->next = l;
}

static int link_empty(const struct link *l)
{
    return l->next == l;
}

static void link_add_tail(struct link *head, struct link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static void link_del(struct link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    link_init(l);
}

struct http_client {
    uv_loop_t *loop;
    CURLM *multi; /* NULL once closing has cleaned it up */
    uv_timer_t timer;
    uv_idle_t defer;    /* fires the done queue and deferred aborts */
    struct link socks;  /* struct http_sock not yet closing */
    struct link active; /* struct http_call in the multi */
    struct link done;   /* struct http_call waiting for their callback */
    unsigned handles;   /* uv handles whose close callback is pending */
    unsigned n_aborts;  /* active calls with abort_rc set */
    int closing;
    int firing; /* fire_done() is on the stack */
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
    struct link link; /* on c->socks until uv_close() */
};

enum call_state { CALL_ACTIVE, CALL_DONE };

struct http_call {
    struct link link; /* on c->active or c->done */
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

static void process(struct http_client *c);
static void defer_cb(uv_idle_t *h);

/* ---- small helpers ---- */

static void schedule(struct http_client *c)
{
    if (!c->defer_closed && !uv_is_active((uv_handle_t *)&c->defer))
        uv_idle_start(&c->defer, defer_cb);
}

static void handle_gone(struct http_client *c)
{
    if (--c->handles > 0 || !c->closing)
        return;
    http_client_closed_cb cb = c->closed_cb;
    void *ud = c->closed_ud;
    free(c->proxy);
    free(c->no_proxy);
    free(c->ca_file);
    free(c->user_agent);
    free(c);
    if (cb)
        cb(ud);
}

/* Moves an ACTIVE call out of the multi into the done queue with rc. Must
 * not be called from inside a curl callback. */
static void call_finish(struct http_call *call, int rc)
{
    struct http_client *c = call->c;
    if (call->abort_rc) {
        c->n_aborts--;
        rc = call->abort_rc;
    }
    if (c->multi)
        curl_multi_remove_handle(c->multi, call->easy);
    link_del(&call->link);
    call->state = CALL_DONE;
    call->rc = rc;
    call->end_ms = util_now_ms();
    link_add_tail(&c->done, &call->link);
}

/* Maps a CURLcode to our code and fills call->detail. Table in
 * docs/http-client.md; keep both in step. */
static int translate(struct http_call *call, CURLcode res)
{
    if (call->abort_rc)
        return call->abort_rc; /* detail set by abort_easy */
    if (res == CURLE_OK && !call->too_big && !call->oom)
        return 0;
    const char *what = curl_easy_strerror(res);
    const char *more = call->errbuf[0] ? call->errbuf : "";
    const char *sep = call->errbuf[0] ? ": " : "";
    int rc;
    if (call->too_big || res == CURLE_FILESIZE_EXCEEDED) {
        snprintf(call->detail, sizeof call->detail, "response over the size limit");
        return SMSYS_ETOOBIG;
    }
    if (call->oom || res == CURLE_OUT_OF_MEMORY) {
        snprintf(call->detail, sizeof call->detail, "out of memory reading the response");
        return -ENOMEM;
    }
    switch (res) {
    case CURLE_OPERATION_TIMEDOUT:
        rc = -ETIMEDOUT;
        break;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR:
    case CURLE_PROXY:
    case CURLE_AGAIN:
        rc = SMSYS_ETEMP;
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_LOGIN_DENIED:
    case CURLE_AUTH_ERROR:
        rc = SMSYS_EAUTH;
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        rc = -EINVAL;
        break;
    default: /* TLS handshake, bad framing, redirect loops, ... */
        rc = SMSYS_EPROTO;
        break;
    }
    snprintf(call->detail, sizeof call->detail, "%.200s%s%.300s", what, sep, more);
    return rc;
}

/* ---- curl -> libuv ---- */

static void sock_closed_cb(uv_handle_t *h)
{
    struct http_sock *s = container_of((uv_poll_t *)h, struct http_sock, poll);
    struct http_client *c = s->c;
    free(s);
    handle_gone(c);
}

static void sock_close(struct http_sock *s)
{
    link_del(&s->link);
    uv_close((uv_handle_t *)&s->poll, sock_closed_cb);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct http_sock *s = container_of(h, struct http_sock, poll);
    struct http_client *c = s->c;
    int flags = 0, running = 0;
    if (status < 0) {
        /* libuv has stopped this handle; curl must learn of the error or
         * the transfer would sit idle until its timeout. */
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    /* sock_func may have closed s during that call (its memory lives until
     * the close callback, so looking is safe). If curl still wants the
     * socket, it believes it is watched: resume what libuv stopped, or the
     * transfer would only end at its timeout. */
    if (status < 0 && !uv_is_closing((uv_handle_t *)h) && !uv_is_active((uv_handle_t *)h) &&
        s->events)
        uv_poll_start(h, s->events, poll_cb);
    process(c);
}

/* Fails the transfer `easy` from inside a curl callback, where removing
 * the handle is not allowed: the defer handler finishes it. */
static void abort_easy(struct http_client *c, CURL *easy, int rc)
{
    struct http_call *call = NULL;
    if (easy)
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&call);
    if (call == NULL || call->state != CALL_ACTIVE || call->abort_rc)
        return;
    call->abort_rc = rc;
    snprintf(call->detail, sizeof call->detail, "cannot watch socket: %s", uv_strerror(rc));
    c->n_aborts++;
    schedule(c);
}

static int sock_func(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct http_client *c = userp;
    struct http_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            /* curl may close fd and reuse the number for its next socket
             * before our close callback runs; forgetting the association
             * now makes that new socket get a fresh uv_poll_t. */
            curl_multi_assign(c->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL) {
        /* A poll handle still registered for this number means curl closed
         * a socket without telling us; that handle watches a dead socket
         * and would make uv_poll_init_socket fail with EEXIST. */
        for (struct link *l = c->socks.next; l != &c->socks; l = l->next) {
            struct http_sock *old = container_of(l, struct http_sock, link);
            if (old->fd == fd) {
                log_warn("http stale poll handle", "fd=%d", (int)fd);
                sock_close(old);
                break;
            }
        }
        s = calloc(1, sizeof *s);
        if (s == NULL) {
            abort_easy(c, easy, UV_ENOMEM);
            return 0;
        }
        int rc = uv_poll_init_socket(c->loop, &s->poll, fd);
        if (rc) {
            free(s);
            log_warn("http poll init failed", "fd=%d error=\"%s\"", (int)fd, uv_strerror(rc));
            abort_easy(c, easy, rc);
            return 0;
        }
        s->fd = fd;
        s->c = c;
        c->handles++;
        link_add_tail(&c->socks, &s->link);
        curl_multi_assign(c->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    s->events = ev;
    int rc = uv_poll_start(&s->poll, ev, poll_cb);
    if (rc) {
        log_warn("http poll start failed", "fd=%d error=\"%s\"", (int)fd, uv_strerror(rc));
        abort_easy(c, easy, rc);
    }
    return 0;
}

static void timer_cb(uv_timer_t *t)
{
    struct http_client *c = container_of(t, struct http_client, timer);
    int running = 0;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    process(c);
}

/* curl asks to be woken after timeout_ms (-1: never). A 0 timeout is
 * honoured by the loop, never by calling curl back from here. */
static int timer_func(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_client *c = userp;
    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, timer_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- completion ---- */

static void drain(struct http_client *c)
{
    CURLMsg *m;
    int left;
    while (c->multi && (m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        /* m is invalid after remove_handle: copy what we need first. */
        CURL *easy = m->easy_handle;
        CURLcode res = m->data.result;
        struct http_call *call = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&call);
        if (call == NULL || call->state != CALL_ACTIVE) {
            curl_multi_remove_handle(c->multi, easy);
            continue;
        }
        call_finish(call, translate(call, res));
    }
}

static void run_aborts(struct http_client *c)
{
    struct link *l = c->active.next;
    while (c->n_aborts && l != &c->active) {
        struct http_call *call = container_of(l, struct http_call, link);
        l = l->next;
        if (call->abort_rc)
            call_finish(call, call->abort_rc);
    }
}

static struct http_header *build_headers(struct http_call *call)
{
    if (call->n_hdr == 0)
        return NULL;
    struct http_header *h = calloc(call->n_hdr, sizeof *h);
    if (h == NULL)
        return NULL;
    const char *p = call->hdr_raw.data;
    for (size_t i = 0; i < call->n_hdr; i++) {
        h[i].name = p;
        p += strlen(p) + 1;
        h[i].value = p;
        p += strlen(p) + 1;
    }
    return h;
}

static void call_free(struct http_call *call)
{
    if (call->easy)
        curl_easy_cleanup(call->easy);
    curl_slist_free_all(call->hdrs);
    buf_free(&call->body);
    buf_free(&call->hdr_raw);
    free(call);
}

static void fire_one(struct http_call *call)
{
    struct http_response resp;
    memset(&resp, 0, sizeof resp);
    int rc = call->rc;
    long status = 0, nconn = 0;
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(call->easy, CURLINFO_NUM_CONNECTS, &nconn);
    struct http_header *hdrs = build_headers(call);
    if (call->n_hdr && hdrs == NULL && rc == 0)
        rc = -ENOMEM;
    resp.status = (int)status;
    resp.headers = hdrs;
    resp.n_headers = hdrs ? call->n_hdr : 0;
    resp.body = call->body;
    call->body = (struct buf)BUF_INIT;
    if (resp.body.data == NULL && buf_append(&resp.body, "", 0) && rc == 0)
        rc = -ENOMEM;
    resp.total_ms = call->end_ms - call->start_ms;
    resp.num_connects = nconn;
    resp.request_sent = call->header_out && call->data_out >= (curl_off_t)call->body_len;
    resp.err.code = rc;
    if (rc == -ENOMEM && call->detail[0] == '\0')
        snprintf(call->detail, sizeof call->detail, "out of memory");
    if (rc)
        snprintf(resp.err.detail, sizeof resp.err.detail, "%s", call->detail);
    /* No URL here: provider URLs can carry API keys. */
    log_debug("http request done", "method=%s status=%d rc=%d sent=%d ms=%llu", call->method,
              resp.status, rc, resp.request_sent, (unsigned long long)resp.total_ms);
    call->cb(rc, &resp, call->ud);
    buf_free(&resp.body);
    free(hdrs);
    call_free(call);
}

static void defer_closed_cb(uv_handle_t *h)
{
    handle_gone(container_of((uv_idle_t *)h, struct http_client, defer));
}

/* Runs the callbacks of the done queue in order. Callbacks may add to the
 * queue (cancel, close); the loop picks those up too. */
static void fire_done(struct http_client *c)
{
    if (c->firing)
        return;
    c->firing = 1;
    while (!link_empty(&c->done)) {
        struct http_call *call = container_of(c->done.next, struct http_call, link);
        link_del(&call->link);
        fire_one(call);
    }
    c->firing = 0;
    if (c->closing) {
        if (!c->defer_closed) {
            c->defer_closed = 1;
            uv_close((uv_handle_t *)&c->defer, defer_closed_cb);
        }
    } else if (c->n_aborts == 0) {
        uv_idle_stop(&c->defer);
    }
}

static void process(struct http_client *c)
{
    drain(c);
    if (c->n_aborts)
        run_aborts(c);
    fire_done(c);
}

static void defer_cb(uv_idle_t *h)
{
    struct http_client *c = container_of(h, struct http_client, defer);
    process(c);
}

static void timer_closed_cb(uv_handle_t *h)
{
    handle_gone(container_of((uv_timer_t *)h, struct http_client, timer));
}

/* ---- per-transfer curl callbacks ---- */

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
    struct http_call *call = ud;
    size_t len = size * n;
    int rc = buf_append(&call->body, p, len);
    if (rc == -E2BIG)
        call->too_big = 1;
    else if (rc)
        call->oom = 1;
    return rc ? 0 : len; /* 0 aborts the transfer with CURLE_WRITE_ERROR */
}

static int is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Keeps the header lines of the last response as name\0value\0 pairs. A
 * status line starts a new response (100-continue, auth round, redirect,
 * proxy CONNECT), so it drops what came before. */
static size_t header_cb(char *p, size_t size, size_t n, void *ud)
{
    struct http_call *call = ud;
    size_t total = size * n, len = total;
    struct buf *b = &call->hdr_raw;
    while (len && (p[len - 1] == '\r' || p[len - 1] == '\n'))
        len--;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        buf_reset(b);
        call->n_hdr = 0;
        return total;
    }
    if (len == 0)
        return total;
    size_t old = b->len;
    int rc = 0;
    if (is_ws(p[0])) {
        /* obs-fold: continues the previous value */
        if (call->n_hdr == 0)
            return total;
        size_t i = 0;
        while (i < len && is_ws(p[i]))
            i++;
        b->len--; /* reopen the value's NUL */
        rc = buf_putc(b, ' ');
        if (!rc)
            rc = buf_append(b, p + i, len - i);
        if (!rc)
            rc = buf_append(b, "", 1);
    } else {
        const char *colon = memchr(p, ':', len);
        if (colon == NULL || colon == p)
            return total; /* not a header line; ignore rather than fail */
        size_t nlen = (size_t)(colon - p);
        while (nlen && is_ws(p[nlen - 1]))
            nlen--;
        const char *v = colon + 1, *end = p + len;
        while (v < end && is_ws(*v))
            v++;
        while (end > v && is_ws(end[-1]))
            end--;
        rc = buf_append(b, p, nlen);
        if (!rc)
            rc = buf_append(b, "", 1);
        if (!rc)
            rc = buf_append(b, v, (size_t)(end - v));
        if (!rc)
            rc = buf_append(b, "", 1);
        if (!rc)
            call->n_hdr++;
    }
    if (rc) {
        b->len = old;
        if (b->data)
            b->data[old] = '\0';
        if (rc == -E2BIG)
            call->too_big = 1;
        else
            call->oom = 1;
        return 0;
    }
    return total;
}

/* curl reports here what it has written to the socket; that is how we
 * know whether the whole request left us (the unknown-outcome flag). */
static int debug_cb(CURL *easy, curl_infotype type, char *data, size_t size, void *ud)
{
    struct http_call *call = ud;
    (void)easy;
    (void)data;
    if (type == CURLINFO_HEADER_OUT)
        call->header_out = 1;
    else if (type == CURLINFO_DATA_OUT)
        call->data_out += (curl_off_t)size;
    return 0;
}

/* ---- public API ---- */

int http_client_new(uv_loop_t *loop, const struct http_client_opts *opts, struct http_client **out)
{
    static const struct http_client_opts none;
    if (loop == NULL || out == NULL)
        return -EINVAL;
    if (opts == NULL)
        opts = &none;
    /* Thread-safe since curl 7.84; the service never calls cleanup. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -ENOMEM;
    struct http_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->loop = loop;
    link_init(&c->socks);
    link_init(&c->active);
    link_init(&c->done);
    c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : DEF_TIMEOUT_MS;
    c->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : DEF_CONNECT_MS;
    c->max_response = opts->max_response_bytes ? opts->max_response_bytes : DEF_MAX_RESPONSE;
    c->proxy = util_strdup0(opts->proxy);
    c->no_proxy = util_strdup0(opts->no_proxy);
    c->ca_file = util_strdup0(opts->ca_file);
    c->user_agent = util_strdup0(opts->user_agent ? opts->user_agent : "smsys");
    c->multi = curl_multi_init();
    if (c->multi == NULL || c->user_agent == NULL || (opts->proxy && !c->proxy) ||
        (opts->no_proxy && !c->no_proxy) || (opts->ca_file && !c->ca_file)) {
        if (c->multi)
            curl_multi_cleanup(c->multi);
        free(c->proxy);
        free(c->no_proxy);
        free(c->ca_file);
        free(c->user_agent);
        free(c);
        return -ENOMEM;
    }
    long total = opts->max_total_conns ? (long)opts->max_total_conns : DEF_MAX_TOTAL;
    long host = opts->max_host_conns ? (long)opts->max_host_conns : DEF_MAX_HOST;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_func);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_func);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, host);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, total);
    uv_timer_init(loop, &c->timer);
    uv_idle_init(loop, &c->defer);
    c->handles = 2;
    *out = c;
    return 0;
}

static int method_ok(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > MAX_METHOD_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("!#$%&'*+-.^_`|~", m[i]) && !(m[i] >= '0' && m[i] <= '9') &&
            !(m[i] >= 'A' && m[i] <= 'Z') && !(m[i] >= 'a' && m[i] <= 'z'))
            return 0;
    return 1;
}

static int url_ok(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    if (u == NULL)
        return -ENOMEM;
    int rc = -EINVAL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0))
        rc = 0;
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

static int auth_ok(enum http_auth a)
{
    curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    switch (a) {
    case HTTP_AUTH_NONE:
    case HTTP_AUTH_BASIC:
        return 0;
    case HTTP_AUTH_NTLM:
        return (v->features & CURL_VERSION_NTLM) ? 0 : -ENOTSUP;
    case HTTP_AUTH_NEGOTIATE:
        return (v->features & CURL_VERSION_SPNEGO) ? 0 : -ENOTSUP;
    }
    return -EINVAL;
}

static int check_request(const struct http_request *req)
{
    if (req->url == NULL || (req->body == NULL && req->body_len))
        return -EINVAL;
    if (req->method && !method_ok(req->method))
        return -EINVAL;
    if (req->n_headers && req->headers == NULL)
        return -EINVAL;
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *h = req->headers[i];
        /* CR/LF would let a value smuggle in extra headers. */
        if (h == NULL || strpbrk(h, "\r\n") || !strpbrk(h, ":;") || is_ws(h[0]) || h[0] == ':')
            return -EINVAL;
    }
    if (req->auth != HTTP_AUTH_NONE && req->username == NULL)
        return -EINVAL;
    int rc = auth_ok(req->auth);
    if (rc)
        return rc;
    return url_ok(req->url);
}

static int has_header(const struct http_request *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->n_headers; i++)
        if (strncasecmp(req->headers[i], name, n) == 0 &&
            (req->headers[i][n] == ':' || req->headers[i][n] == ';'))
            return 1;
    return 0;
}

/* Sets every option of the transfer. Returns 0, -ENOMEM or -EINVAL. */
static int setup_easy(struct http_client *c, struct http_call *call, const struct http_request *req)
{
    CURL *e = call->easy;
    CURLcode r = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (r == CURLE_OK)                                                                         \
            r = curl_easy_setopt(e, opt, val);                                                     \
    } while (0)
    SET(CURLOPT_PRIVATE, (void *)call);
    SET(CURLOPT_ERRORBUFFER, call->errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_USERAGENT, c->user_agent);
    SET(CURLOPT_ACCEPT_ENCODING, ""); /* whatever this libcurl decodes */
    SET(CURLOPT_TCP_KEEPALIVE, 1L);

    const char *m = call->method;
    int bodyless = req->body_len == 0 && (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 ||
                                          strcmp(m, "DELETE") == 0 || strcmp(m, "OPTIONS") == 0);
    if (strcmp(m, "HEAD") == 0 && bodyless) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (bodyless) {
        SET(CURLOPT_HTTPGET, 1L);
        if (strcmp(m, "GET") != 0)
            SET(CURLOPT_CUSTOMREQUEST, m);
    } else {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_COPYPOSTFIELDS, req->body_len ? (const char *)req->body : "");
        if (strcmp(m, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, m);
    }

    for (size_t i = 0; i < req->n_headers && r == CURLE_OK; i++) {
        struct curl_slist *l = curl_slist_append(call->hdrs, req->headers[i]);
        if (l == NULL)
            r = CURLE_OUT_OF_MEMORY;
        else
            call->hdrs = l;
    }
    /* curl would otherwise wait up to a second for "100 Continue" on big
     * bodies; the APIs we call do not need it. */
    if (r == CURLE_OK && !has_header(req, "Expect")) {
        struct curl_slist *l = curl_slist_append(call->hdrs, "Expect:");
        if (l == NULL)
            r = CURLE_OUT_OF_MEMORY;
        else
            call->hdrs = l;
    }
    SET(CURLOPT_HTTPHEADER, call->hdrs);

    SET(CURLOPT_TIMEOUT_MS, (long)(req->timeout_ms ? req->timeout_ms : c->timeout_ms));
    SET(CURLOPT_CONNECTTIMEOUT_MS,
        (long)(req->connect_timeout_ms ? req->connect_timeout_ms : c->connect_timeout_ms));
    size_t cap = req->max_response_bytes ? req->max_response_bytes : c->max_response;
    call->body.max = cap;
    call->hdr_raw.max = MAX_HEADER_BYTES;
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cap);

    SET(CURLOPT_WRITEFUNCTION, write_cb);
    SET(CURLOPT_WRITEDATA, (void *)call);
    SET(CURLOPT_HEADERFUNCTION, header_cb);
    SET(CURLOPT_HEADERDATA, (void *)call);
    SET(CURLOPT_DEBUGFUNCTION, debug_cb);
    SET(CURLOPT_DEBUGDATA, (void *)call);
    SET(CURLOPT_VERBOSE, 1L); /* feeds debug_cb only; nothing is printed */

    /* Only configured proxies: "" also stops curl reading http_proxy &c.
     * from the environment, so a stray variable cannot reroute traffic. */
    const char *proxy = req->proxy ? req->proxy : c->proxy;
    if (proxy && *proxy) {
        SET(CURLOPT_PROXY, proxy);
        SET(CURLOPT_PROXYAUTH, (long)CURLAUTH_ANY);
        SET(CURLOPT_NOPROXY, c->no_proxy ? c->no_proxy : "");
    } else {
        SET(CURLOPT_PROXY, "");
    }

    if (c->ca_file)
        SET(CURLOPT_CAINFO, c->ca_file);
    SET(CURLOPT_SSL_VERIFYPEER, req->insecure ? 0L : 1L);
    SET(CURLOPT_SSL_VERIFYHOST, req->insecure ? 0L : 2L);

    if (req->max_redirects) {
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, (long)req->max_redirects);
    } else {
        SET(CURLOPT_FOLLOWLOCATION, 0L);
    }

    if (req->auth != HTTP_AUTH_NONE) {
        static const unsigned long modes[] = {
            [HTTP_AUTH_BASIC] = CURLAUTH_BASIC,
            [HTTP_AUTH_NTLM] = CURLAUTH_NTLM,
            [HTTP_AUTH_NEGOTIATE] = CURLAUTH_NEGOTIATE,
        };
        SET(CURLOPT_HTTPAUTH, modes[req->auth]);
        if (req->auth == HTTP_AUTH_NEGOTIATE && req->username[0] == '\0') {
            SET(CURLOPT_USERPWD, ":"); /* use the Kerberos ticket cache */
        } else {
            SET(CURLOPT_USERNAME, req->username);
            SET(CURLOPT_PASSWORD, req->password ? req->password : "");
        }
    }
#undef SET
    if (r == CURLE_OUT_OF_MEMORY)
        return -ENOMEM;
    return r == CURLE_OK ? 0 : -EINVAL;
}

int http_client_request(struct http_client *c, const struct http_request *req,
                        http_client_done_cb done_cb, void *ud, struct http_call **call_out)
{
    if (c == NULL || req == NULL || done_cb == NULL)
        return -EINVAL;
    if (c->closing)
        return SMSYS_ECLOSED;
    int rc = check_request(req);
    if (rc)
        return rc;
    struct http_call *call = calloc(1, sizeof *call);
    if (call == NULL)
        return -ENOMEM;
    link_init(&call->link);
    call->c = c;
    call->cb = done_cb;
    call->ud = ud;
    call->body_len = req->body_len;
    snprintf(call->method, sizeof call->method, "%s",
             req->method ? req->method : (req->body_len ? "POST" : "GET"));
    call->easy = curl_easy_init();
    if (call->easy == NULL) {
        call_free(call);
        return -ENOMEM;
    }
    rc = setup_easy(c, call, req);
    if (rc) {
        call_free(call);
        return rc;
    }
    call->start_ms = util_now_ms();
    /* Calls timer_func (never sock_func); the transfer starts from the
     * loop, so done_cb cannot run inside this call. */
    CURLMcode mr = curl_multi_add_handle(c->multi, call->easy);
    if (mr != CURLM_OK) {
        call_free(call);
        return mr == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
    }
    call->state = CALL_ACTIVE;
    link_add_tail(&c->active, &call->link);
    if (call_out)
        *call_out = call;
    return 0;
}

int http_call_cancel(struct http_call *call)
{
    if (call == NULL)
        return -EINVAL;
    if (call->state != CALL_ACTIVE)
        return -EALREADY;
    struct http_client *c = call->c;
    if (call->abort_rc) {
        c->n_aborts--;
        call->abort_rc = 0;
    }
    snprintf(call->detail, sizeof call->detail, "request cancelled");
    call_finish(call, -ECANCELED);
    schedule(c);
    return 0;
}

void http_client_close(struct http_client *c, http_client_closed_cb cb, void *ud)
{
    if (c == NULL || c->closing)
        return;
    c->closing = 1;
    c->closed_cb = cb;
    c->closed_ud = ud;
    /* 1. every easy handle out of the multi, callbacks queued */
    while (!link_empty(&c->active)) {
        struct http_call *call = container_of(c->active.next, struct http_call, link);
        if (call->abort_rc) {
            c->n_aborts--;
            call->abort_rc = 0;
        }
        snprintf(call->detail, sizeof call->detail, "client closed");
        call_finish(call, -ECANCELED);
    }
    /* 2. the multi: closes pooled connections (sock_func may run) */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    /* 3. the handles curl no longer needs */
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, timer_closed_cb);
    while (!link_empty(&c->socks))
        sock_close(container_of(c->socks.next, struct http_sock, link));
    /* 4. defer fires the queued callbacks, then closes itself; the last
     * close callback frees c and calls cb (handle_gone). */
    if (!c->firing)
        uv_idle_start(&c->defer, defer_cb);
}

const char *http_client_header_nth(const struct http_response *resp, const char *name, size_t n)
{
    if (resp == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < resp->n_headers; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0 && n-- == 0)
            return resp->headers[i].value;
    return NULL;
}

const char *http_client_header_get(const struct http_response *resp, const char *name)
{
    return http_client_header_nth(resp, name, 0);
}

int http_client_outcome_unknown(int rc, const struct http_response *resp)
{
    return rc < 0 && resp != NULL && resp->request_sent;
}

int http_client_form_add(struct buf *b, const char *name, const char *value)
{
    if (b == NULL || name == NULL || value == NULL)
        return -EINVAL;
    size_t old = b->len;
    int rc = b->len ? buf_putc(b, '&') : 0;
    if (!rc)
        rc = buf_put_urlenc(b, name);
    if (!rc)
        rc = buf_putc(b, '=');
    if (!rc)
        rc = buf_put_urlenc(b, value);
    if (rc && b->data) {
        b->len = old;
        b->data[old] = '\0';
    }
    return rc;
}
