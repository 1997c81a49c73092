/* smpp_session_life.c - SMPP session lifecycle: resolve and connect,
 * create, close (unbind, then release every handle). */
#include "smpp_session_int.h"

#include "smsys/error.h"
#include "smsys/log.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- connecting ------------------------------------------------------- */

static void connect_cb(uv_connect_t *req, int status)
{
    struct link *l = container_of(req, struct link, creq);
    struct smpp_session *s = l->s;
    if (status == UV_ECANCELED || l->state != L_CONNECTING)
        return;
    if (status < 0) {
        log_warn("smpp connect failed", "host=%s port=%d error=\"%s\"", s->host, s->o.port,
                 uv_strerror(status));
        ss_session_down(s, status);
        return;
    }
    uv_tcp_nodelay(&l->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&l->tcp, ss_alloc_cb, ss_read_cb);
    struct smpp_pdu b = {0};
    b.system_id = s->system_id;
    b.password = s->password;
    b.system_type = s->system_type;
    b.interface_version = 0x34;
    b.addr_ton = s->o.addr_ton;
    b.addr_npi = s->o.addr_npi;
    b.address_range = s->address_range;
    l->bind_seq = ss_seq_next(s);
    if (rc == 0)
        rc = ss_link_send(l, l->bind_cmd, 0, l->bind_seq, &b);
    if (rc) {
        ss_session_down(s, rc);
        return;
    }
    l->state = L_BINDING;
    ss_set_state(s, SMPP_BINDING, 0);
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    struct smpp_session *s = container_of(req, struct smpp_session, gai);
    s->resolving = 0;
    if (status == UV_ECANCELED || s->closing || s->state != SMPP_CONNECTING) {
        uv_freeaddrinfo(ai);
        if (s->closing)
            ss_maybe_finish(s);
        return;
    }
    if (status < 0 || ai == NULL) {
        log_warn("smpp resolve failed", "host=%s error=\"%s\"", s->host, uv_strerror(status));
        uv_freeaddrinfo(ai);
        ss_session_down(s, status < 0 ? status : -EHOSTUNREACH);
        return;
    }
    /* Each attempt takes the next address, so a dead first address (an
     * AAAA record with no IPv6 route) costs one backoff, not forever. */
    unsigned naddr = 0;
    for (struct addrinfo *a = ai; a; a = a->ai_next)
        naddr++;
    struct addrinfo *pick = ai;
    for (unsigned k = s->addr_rot++ % naddr; k > 0; k--)
        pick = pick->ai_next;
    for (int i = 0; i < s->nlinks; i++) {
        struct link *l = &s->links[i];
        int rc = uv_tcp_init(s->loop, &l->tcp);
        if (rc == 0) {
            l->tcp_open = 1;
            l->state = L_CONNECTING;
            rc = uv_tcp_connect(&l->creq, &l->tcp, pick->ai_addr, connect_cb);
        }
        if (rc) {
            uv_freeaddrinfo(ai);
            ss_session_down(s, rc);
            return;
        }
    }
    uv_freeaddrinfo(ai);
}

void ss_session_connect(struct smpp_session *s)
{
    if (s->closing)
        return;
    ss_set_state(s, SMPP_CONNECTING, 0);
    uv_timer_start(&s->t_conn, ss_conn_timer_cb, s->o.connect_timeout_ms, 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", s->o.port);
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    int rc = uv_getaddrinfo(s->loop, &s->gai, gai_cb, s->host, port, &hints);
    if (rc) {
        ss_session_down(s, rc);
        return;
    }
    s->resolving = 1;
}

/* ---- lifecycle -------------------------------------------------------- */

static char *dup_or_empty(const char *v)
{
    return strdup(v ? v : "");
}

static void session_free(struct smpp_session *s)
{
    for (int i = 0; i < 2; i++) {
        buf_free(&s->links[i].out);
        buf_free(&s->links[i].wbuf);
        free(s->links[i].rbuf);
        free(s->links[i].dlv);
    }
    while (s->chunks) {
        struct chunk *c = s->chunks;
        s->chunks = c->next;
        free(c);
    }
    free(s->host);
    free(s->system_id);
    free(s->password);
    free(s->system_type);
    free(s->address_range);
    free(s);
}

int smpp_session_new(uv_loop_t *loop, const struct smpp_session_opts *opts,
                     const struct smpp_session_cbs *cbs, void *ud, struct smpp_session **out)
{
    if (loop == NULL || opts == NULL || opts->host == NULL || opts->port <= 0 || opts->port > 65535)
        return -EINVAL;
    struct smpp_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->loop = loop;
    s->o = *opts;
    s->host = strdup(opts->host);
    s->system_id = dup_or_empty(opts->system_id);
    s->password = dup_or_empty(opts->password);
    s->system_type = dup_or_empty(opts->system_type);
    s->address_range = dup_or_empty(opts->address_range);
    s->o.host = s->host;
    s->o.system_id = s->o.password = s->o.system_type = s->o.address_range = NULL;
    if (!s->host || !s->system_id || !s->password || !s->system_type || !s->address_range) {
        session_free(s);
        return -ENOMEM;
    }
#define DEF(f, v)                                                                                  \
    if (s->o.f == 0)                                                                               \
    s->o.f = (v)
    DEF(window, 10);
    DEF(resp_timeout_ms, 30000);
    DEF(enquire_link_s, 30);
    DEF(connect_timeout_ms, 10000);
    DEF(reconnect_min_ms, 500);
    DEF(reconnect_max_ms, 30000);
    DEF(throttle_pause_ms, 1000);
    DEF(throttle_max_ms, 30000);
    DEF(unbind_timeout_ms, 2000);
    DEF(max_queue, 100000);
#undef DEF
    if (s->o.rate_burst == 0) {
        double b = s->o.rate_per_sec / 20.0;
        s->o.rate_burst = b < 1.0 ? 1u : (unsigned)b;
    }
    s->tokens = s->o.rate_burst;
    s->tok_ms = uv_now(loop);
    if (cbs)
        s->cbs = *cbs;
    s->ud = ud;
    s->next_seq = 1;
    s->seed = (unsigned)uv_hrtime();
    s->nlinks = opts->bind == SMPP_BIND_TX_RX ? 2 : 1;
    for (int i = 0; i < 2; i++) {
        s->links[i].s = s;
        s->links[i].idx = i;
    }
    s->links[0].bind_cmd = s->nlinks == 2 ? SMPP_BIND_TRANSMITTER : SMPP_BIND_TRANSCEIVER;
    s->links[1].bind_cmd = SMPP_BIND_RECEIVER;
    uv_timer_t *timers[] = {&s->t_reconnect, &s->t_conn, &s->t_resp,
                            &s->t_enquire,   &s->t_send, &s->t_defer};
    for (size_t i = 0; i < ARRAY_LEN(timers); i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = s;
        s->handles++;
    }
    uv_prepare_init(loop, &s->prep);
    s->prep.data = s;
    s->handles++;
    uv_prepare_start(&s->prep, ss_prep_cb);
    uv_unref((uv_handle_t *)&s->prep);
    ss_session_connect(s);
    *out = s;
    return 0;
}

enum smpp_state smpp_session_state(const struct smpp_session *s)
{
    return s->state;
}

void smpp_session_stats(const struct smpp_session *s, struct smpp_session_stats *out)
{
    *out = s->st;
    out->queued = s->queue.n;
    out->inflight = s->inflight.n;
    out->paused = s->pause_until > uv_now(s->loop) && s->queue.n > 0;
}

static void handle_close_cb(uv_handle_t *h)
{
    struct smpp_session *s = h->data;
    s->handles--;
    ss_maybe_finish(s);
}

void ss_maybe_finish(struct smpp_session *s)
{
    if (!s->close_started || s->finished || s->handles || s->resolving)
        return;
    for (int i = 0; i < s->nlinks; i++)
        if (s->links[i].tcp_open)
            return;
    s->finished = 1;
    void (*cb)(void *) = s->close_cb;
    void *ud = s->close_ud;
    session_free(s);
    if (cb)
        cb(ud);
}

/* Drives the close: closing == 1 unbinds gracefully once nothing is in
 * flight; closing == 2 (unbind done or timed out) tears everything down. */
void ss_close_step(struct smpp_session *s)
{
    if (s->close_started)
        return;
    if (s->closing == 1 && s->state == SMPP_UNBINDING) {
        int waiting = 0;
        for (int i = 0; i < s->nlinks; i++) {
            struct link *l = &s->links[i];
            if (l->state == L_BOUND && s->inflight.n == 0) {
                l->unbind_seq = ss_seq_next(s);
                l->state = L_UNBINDING;
                if (ss_link_send(l, SMPP_UNBIND, 0, l->unbind_seq, NULL))
                    l->unbind_seq = 0;
            }
            if (l->state == L_BOUND || (l->state == L_UNBINDING && l->unbind_seq))
                waiting = 1;
        }
        if (waiting)
            return; /* an answer or ss_conn_timer_cb calls again */
    }
    /* What is still in flight may have left (EUNKNOWN) unless it never
     * left our buffer (requeued, then ECLOSED below). ss_session_down sorts
     * that out, does not reconnect while closing, and calls us again in
     * state CLOSED. */
    if (s->state != SMPP_CLOSED) {
        s->closing = 2;
        ss_session_down(s, SMSYS_ECLOSED);
        return;
    }
    s->close_started = 1;
    for (int i = 0; i < s->nlinks; i++)
        ss_link_reset(&s->links[i]);
    /* The defer timer is closed below: what it was to complete goes now. */
    struct entry *e;
    while ((e = ss_el_pop(&s->done)) != NULL)
        ss_entry_complete(s, e, e->err, 0, "");
    while ((e = ss_el_pop(&s->queue)) != NULL)
        ss_entry_complete(s, e, SMSYS_ECLOSED, 0, "");
    uv_timer_t *timers[] = {&s->t_reconnect, &s->t_conn, &s->t_resp,
                            &s->t_enquire,   &s->t_send, &s->t_defer};
    for (size_t i = 0; i < ARRAY_LEN(timers); i++)
        uv_close((uv_handle_t *)timers[i], handle_close_cb);
    uv_close((uv_handle_t *)&s->prep, handle_close_cb);
}

void smpp_session_close(struct smpp_session *s, void (*cb)(void *ud), void *ud)
{
    if (s == NULL || s->closing)
        return;
    s->closing = 1;
    s->close_cb = cb;
    s->close_ud = ud;
    uv_timer_stop(&s->t_reconnect);
    uv_timer_stop(&s->t_send);
    /* Queued submits never left: they fail now (from the defer timer, so
     * that no callback runs inside this call). */
    struct entry *e;
    while ((e = ss_el_pop(&s->queue)) != NULL) {
        e->err = SMSYS_ECLOSED;
        list_push_back(&s->done, &e->node);
    }
    if (s->state == SMPP_BOUND) {
        ss_set_state(s, SMPP_UNBINDING, 0);
        uv_timer_start(&s->t_conn, ss_conn_timer_cb, s->o.unbind_timeout_ms, 0);
    } else {
        s->closing = 2;
    }
    uv_timer_start(&s->t_defer, ss_defer_timer_cb, 0, 0);
}
