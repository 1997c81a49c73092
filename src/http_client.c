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
 * Callbacks that run before the loop's poll phase (from the timer, when
 * curl finishes a transfer inside curl_multi_socket_action(TIMEOUT), or
 * from `defer`) keep `defer` active through the poll that follows, so the
 * poll does not block (see kick()). Without that, a caller that waits with
 * `while (!done) uv_run(loop, UV_RUN_ONCE)` (the tests, smsysctl) gets
 * control back only when some unrelated event ends the poll: the reply
 * was handled within a millisecond, yet the caller saw it seconds later.
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

#include "http_client_int.h"
#include "smsys/log.h"
#include "smsys/util.h"

static unsigned process(struct http_client *c);
static void defer_cb(uv_idle_t *h);

/* ---- small helpers ---- */

static void schedule(struct http_client *c)
{
    if (!c->defer_closed && !uv_is_active((uv_handle_t *)&c->defer))
        uv_idle_start(&c->defer, defer_cb);
}

/* User callbacks have just run in a phase before the poll: keep `defer`
 * active until that poll is over (an active idle handle makes libuv poll
 * with a zero timeout), so a UV_RUN_ONCE caller regains control and sees
 * what they changed. defer_cb stops it again once a turn has gone by. */
static void kick(struct http_client *c)
{
    c->kick = 1;
    schedule(c);
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
    list_remove(&c->active, &call->link);
    call->state = CALL_DONE;
    call->rc = rc;
    call->end_ms = util_now_ms();
    list_push_back(&c->done, &call->link);
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
    list_remove(&s->c->socks, &s->link);
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
        for (struct list_node *l = list_first(&c->socks); l; l = list_next(l)) {
            struct http_sock *old = list_entry(l, struct http_sock, link);
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
        list_push_back(&c->socks, &s->link);
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
    /* curl finishes transfers here too: when the reply was already in
     * the socket as it sent the request, or when a timeout struck. This
     * runs before the poll phase of the loop's turn. */
    if (process(c))
        kick(c);
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
        call_finish(call, http_client_req_result(call, res));
    }
}

static void run_aborts(struct http_client *c)
{
    struct list_node *l = list_first(&c->active);
    while (c->n_aborts && l) {
        struct http_call *call = list_entry(l, struct http_call, link);
        l = list_next(l);
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

/* Runs the callbacks of the done queue in order and returns how many ran.
 * Callbacks may add to the queue (cancel, close); the loop picks those up
 * too. Only defer_cb stops `defer` (see kick). */
static unsigned fire_done(struct http_client *c)
{
    if (c->firing)
        return 0;
    unsigned n = 0;
    c->firing = 1;
    struct http_call *call;
    while ((call = list_entry(list_pop_front(&c->done), struct http_call, link)) != NULL) {
        fire_one(call);
        n++;
    }
    c->firing = 0;
    if (c->closing && !c->defer_closed) {
        c->defer_closed = 1;
        uv_close((uv_handle_t *)&c->defer, defer_closed_cb);
    }
    return n;
}

static unsigned process(struct http_client *c)
{
    drain(c);
    if (c->n_aborts)
        run_aborts(c);
    return fire_done(c);
}

/* The idle phase also comes before the poll: after firing callbacks, or
 * when kicked from the timer earlier in this turn, stay active through
 * this turn's poll; stop on a turn with nothing to do. */
static void defer_cb(uv_idle_t *h)
{
    struct http_client *c = container_of(h, struct http_client, defer);
    int kicked = c->kick;
    c->kick = 0;
    unsigned n = process(c);
    if (!c->defer_closed && !kicked && n == 0 && c->n_aborts == 0)
        uv_idle_stop(&c->defer);
}

static void timer_closed_cb(uv_handle_t *h)
{
    handle_gone(container_of((uv_timer_t *)h, struct http_client, timer));
}

/* ---- per-transfer curl callbacks ---- */

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
    list_init(&c->socks);
    list_init(&c->active);
    list_init(&c->done);
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

int http_client_request(struct http_client *c, const struct http_request *req,
                        http_client_done_cb done_cb, void *ud, struct http_call **call_out)
{
    if (c == NULL || req == NULL || done_cb == NULL)
        return -EINVAL;
    if (c->closing)
        return SMSYS_ECLOSED;
    int rc = http_client_req_check(req);
    if (rc)
        return rc;
    struct http_call *call = calloc(1, sizeof *call);
    if (call == NULL)
        return -ENOMEM;
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
    rc = http_client_req_setup(c, call, req);
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
    list_push_back(&c->active, &call->link);
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
    while (!list_empty(&c->active)) {
        struct http_call *call = list_entry(list_first(&c->active), struct http_call, link);
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
    while (!list_empty(&c->socks))
        sock_close(list_entry(list_first(&c->socks), struct http_sock, link));
    /* 4. defer fires the queued callbacks, then closes itself; the last
     * close callback frees c and calls cb (handle_gone). */
    if (!c->firing)
        uv_idle_start(&c->defer, defer_cb);
}
