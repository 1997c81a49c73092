/* smpp_session.c - ESME session: connect, bind, window, throttle, close.
 *
 * Data flow: submit() encodes the PDU once into a pooled entry and puts it
 * on `queue` (FIFO). pump() moves entries from the queue head to the
 * transmit link's output buffer while the window, the token bucket and
 * any throttle pause allow, numbering each as it goes. A prepare handle
 * flushes every link's output buffer once per loop iteration, so a burst
 * of answers read in one callback leaves in one uv_write. Answers are
 * matched on `inflight`, which is in send order, so the usual in-order
 * answer is found at its head. */
#include "smpp_session_int.h"

#include "smsys/error.h"
#include "smsys/log.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- lists and pool --------------------------------------------------- */

/* Inserts e before the first entry submitted after it (FIFO by order). */
static void el_insert_ordered(struct list *l, struct entry *e)
{
    struct list_node *at = list_first(l);
    while (at && list_entry(at, struct entry, node)->order < e->order)
        at = list_next(at);
    list_insert_before(l, at, &e->node);
}

static struct entry *entry_get(struct smpp_session *s)
{
    if (list_empty(&s->freel)) {
        struct chunk *c = malloc(sizeof(*c));
        if (c == NULL)
            return NULL;
        c->next = s->chunks;
        s->chunks = c;
        for (int i = 0; i < ENTRY_CHUNK; i++)
            list_push_back(&s->freel, &c->e[i].node);
    }
    struct entry *e = ss_el_pop(&s->freel);
    memset(e, 0, offsetof(struct entry, inl));
    return e;
}

static void entry_put(struct smpp_session *s, struct entry *e)
{
    if (e->pdu && e->pdu != e->inl)
        free(e->pdu);
    e->pdu = NULL;
    list_push_front(&s->freel, &e->node);
}

/* Completes e now: cb exactly once, then back to the pool. */
void ss_entry_complete(struct smpp_session *s, struct entry *e, int err, uint32_t status,
                       const char *msgid)
{
    switch (err) {
    case 0:
        s->st.accepted++;
        break;
    case SMSYS_EUNKNOWN:
        s->st.unknown++;
        break;
    case SMSYS_ECLOSED:
        s->st.closed++;
        break;
    case SMSYS_ETHROTTLED:
        s->st.throttled++;
        break;
    default:
        s->st.refused++;
        break;
    }
    smpp_submit_cb cb = e->cb;
    void *ud = e->ud;
    entry_put(s, e);
    if (cb)
        cb(ud, err, status, msgid ? msgid : "");
}

/* ---- output ----------------------------------------------------------- */

uint32_t ss_seq_next(struct smpp_session *s)
{
    uint32_t q = s->next_seq++;
    if (s->next_seq > 0x7FFFFFFFu)
        s->next_seq = 1;
    return q;
}

/* Queues a small PDU of ours on link l. Returns 0 or a negative code. */
int ss_link_send(struct link *l, uint32_t cmd, uint32_t status, uint32_t seq,
                 const struct smpp_pdu *body)
{
    struct smpp_pdu p;
    if (body)
        p = *body;
    else
        memset(&p, 0, sizeof(p));
    p.command_id = cmd;
    p.command_status = status;
    p.sequence = seq;
    uint8_t tmp[512];
    int n = smpp_pdu_encode(&p, tmp, sizeof(tmp));
    if (n < 0)
        return n;
    return buf_append(&l->out, tmp, (size_t)n);
}

static void write_cb(uv_write_t *req, int status);

static void link_flush(struct link *l)
{
    if (l->writing || l->out.len == 0 || !l->tcp_open || l->state == L_DOWN ||
        l->state == L_CONNECTING)
        return;
    struct buf t = l->wbuf;
    l->wbuf = l->out;
    l->out = t;
    buf_reset(&l->out);
    uv_buf_t b = uv_buf_init(l->wbuf.data, (unsigned)l->wbuf.len);
    int rc = uv_write(&l->wreq, (uv_stream_t *)&l->tcp, &b, 1, write_cb);
    l->unflushed = 0; /* handed to the kernel (or failed): outcome now unknown */
    if (rc) {
        buf_reset(&l->wbuf);
        ss_session_down(l->s, rc);
        return;
    }
    l->writing = 1;
}

static void write_cb(uv_write_t *req, int status)
{
    struct link *l = container_of(req, struct link, wreq);
    l->writing = 0;
    buf_reset(&l->wbuf);
    if (status == UV_ECANCELED)
        return; /* the link is closing */
    if (status < 0) {
        ss_session_down(l->s, status);
        return;
    }
    link_flush(l);
}

void ss_prep_cb(uv_prepare_t *h)
{
    struct smpp_session *s = h->data;
    for (int i = 0; i < s->nlinks; i++)
        link_flush(&s->links[i]);
}

/* ---- timers ----------------------------------------------------------- */

static void resp_timer_cb(uv_timer_t *t);

static void arm_resp(struct smpp_session *s)
{
    uint64_t next = UINT64_MAX;
    if (!list_empty(&s->inflight))
        next = ss_el_first(&s->inflight)->deadline;
    for (int i = 0; i < s->nlinks; i++)
        if (s->links[i].enq_seq && s->links[i].enq_deadline < next)
            next = s->links[i].enq_deadline;
    if (next == UINT64_MAX) {
        uv_timer_stop(&s->t_resp);
        return;
    }
    uint64_t now = uv_now(s->loop);
    uv_timer_start(&s->t_resp, resp_timer_cb, next > now ? next - now : 0, 0);
}

static void resp_timer_cb(uv_timer_t *t)
{
    struct smpp_session *s = t->data;
    uint64_t now = uv_now(s->loop);
    for (int i = 0; i < s->nlinks; i++) {
        struct link *l = &s->links[i];
        if (l->enq_seq && l->enq_deadline <= now) {
            log_warn("smpp enquire_link timed out", "host=%s link=%d", s->host, i);
            ss_session_down(s, -ETIMEDOUT);
            return;
        }
    }
    /* Expired submits are taken off first, then completed, so that a
     * callback that submits again cannot disturb the walk. */
    struct list exp;
    list_init(&exp);
    struct entry *e;
    while ((e = ss_el_first(&s->inflight)) != NULL && e->deadline <= now) {
        list_remove(&s->inflight, &e->node);
        list_push_back(&exp, &e->node);
    }
    if (exp.n)
        log_warn("smpp submit_sm response timeout", "host=%s count=%zu", s->host, exp.n);
    while ((e = ss_el_pop(&exp)) != NULL)
        ss_entry_complete(s, e, SMSYS_EUNKNOWN, 0, "");
    arm_resp(s);
    ss_pump(s);
}

static void send_timer_cb(uv_timer_t *t)
{
    ss_pump(t->data);
}

static void enquire_timer_cb(uv_timer_t *t)
{
    struct smpp_session *s = t->data;
    uint64_t now = uv_now(s->loop);
    uint64_t to = s->o.resp_timeout_ms;
    if (to > (uint64_t)s->o.enquire_link_s * 1000)
        to = (uint64_t)s->o.enquire_link_s * 1000;
    for (int i = 0; i < s->nlinks; i++) {
        struct link *l = &s->links[i];
        if (l->state != L_BOUND || l->enq_seq)
            continue;
        l->enq_seq = ss_seq_next(s);
        l->enq_deadline = now + to;
        if (ss_link_send(l, SMPP_ENQUIRE_LINK, 0, l->enq_seq, NULL)) {
            ss_session_down(s, -ENOMEM);
            return;
        }
    }
    arm_resp(s);
}

static void reconnect_timer_cb(uv_timer_t *t)
{
    struct smpp_session *s = t->data;
    for (int i = 0; i < s->nlinks; i++)
        if (s->links[i].tcp_open || s->resolving) { /* previous attempt still closing */
            uv_timer_start(&s->t_reconnect, reconnect_timer_cb, 10, 0);
            return;
        }
    ss_session_connect(s);
}

void ss_conn_timer_cb(uv_timer_t *t)
{
    struct smpp_session *s = t->data;
    if (s->closing) { /* unbind took too long */
        s->closing = 2;
        ss_close_step(s);
        return;
    }
    log_warn("smpp connect timed out", "host=%s port=%d", s->host, s->o.port);
    ss_session_down(s, -ETIMEDOUT);
}

void ss_defer_timer_cb(uv_timer_t *t)
{
    struct smpp_session *s = t->data;
    struct entry *e;
    while ((e = ss_el_pop(&s->done)) != NULL)
        ss_entry_complete(s, e, e->err, 0, "");
    if (s->closing)
        ss_close_step(s);
}

/* ---- state ------------------------------------------------------------ */

void ss_set_state(struct smpp_session *s, enum smpp_state st, int err)
{
    if (s->state == st)
        return;
    s->state = st;
    if (s->cbs.state_cb)
        s->cbs.state_cb(s, st, err, s->ud);
}

void ss_tcp_close_cb(uv_handle_t *h)
{
    struct link *l = container_of((uv_tcp_t *)h, struct link, tcp);
    l->tcp_open = 0;
    ss_maybe_finish(l->s);
}

void ss_link_reset(struct link *l)
{
    if (l->tcp_open && !uv_is_closing((uv_handle_t *)&l->tcp))
        uv_close((uv_handle_t *)&l->tcp, ss_tcp_close_cb);
    l->state = L_DOWN;
    buf_reset(&l->out);
    l->unflushed = 0;
    l->rlen = 0;
    l->bind_seq = l->enq_seq = l->unbind_seq = 0;
    l->ndlv = 0; /* unanswered deliver_sm: the SMSC redelivers them */
}

/* Takes every link down. In-flight submits whose bytes were handed to the
 * socket complete with SMSYS_EUNKNOWN; those still in our output buffer
 * never left and go back to the queue in their order. Then either
 * reconnects after a backoff or, when closing, finishes the close. */
void ss_session_down(struct smpp_session *s, int err)
{
    if (s->state == SMPP_CLOSED && !s->resolving && !s->closing)
        return;
    struct link *tx = &s->links[0];
    size_t back = tx->unflushed;
    for (int i = 0; i < s->nlinks; i++)
        ss_link_reset(&s->links[i]);
    if (s->resolving)
        uv_cancel((uv_req_t *)&s->gai);
    s->gen++;
    uv_timer_stop(&s->t_conn);
    uv_timer_stop(&s->t_resp);
    uv_timer_stop(&s->t_enquire);
    uv_timer_stop(&s->t_send);
    while (back-- > 0 && !list_empty(&s->inflight)) {
        struct entry *e = list_entry(list_last(&s->inflight), struct entry, node);
        list_remove(&s->inflight, &e->node);
        el_insert_ordered(&s->queue, e);
        s->st.submitted--;
    }
    struct list lost = s->inflight; /* moved: list.h lists may be assigned */
    list_init(&s->inflight);
    if (s->state != SMPP_CLOSED)
        log_write(s->closing ? LOG_INFO : LOG_WARN, s->closing ? "smpp closed" : "smpp link down",
                  "host=%s error=\"%s\" unknown_outcome=%zu requeued=%zu", s->host,
                  smsys_strerror(err), lost.n, s->queue.n);
    if (!s->closing) {
        unsigned base = s->o.reconnect_min_ms;
        unsigned shift = s->attempt < 16 ? s->attempt : 16;
        uint64_t d = (uint64_t)base << shift;
        if (d > s->o.reconnect_max_ms)
            d = s->o.reconnect_max_ms;
        d = d / 2 + (uint64_t)rand_r(&s->seed) % (d / 2 + 1); /* jitter: [d/2, d] */
        s->attempt++;
        s->st.reconnects++;
        uv_timer_start(&s->t_reconnect, reconnect_timer_cb, d, 0);
    }
    ss_set_state(s, SMPP_CLOSED, err);
    struct entry *e;
    while ((e = ss_el_pop(&lost)) != NULL)
        ss_entry_complete(s, e, SMSYS_EUNKNOWN, 0, "");
    if (s->closing)
        ss_close_step(s);
}

/* ---- reading ---------------------------------------------------------- */

static struct entry *find_inflight(struct smpp_session *s, uint32_t seq)
{
    for (struct list_node *n = list_first(&s->inflight); n; n = list_next(n)) {
        struct entry *e = list_entry(n, struct entry, node);
        if (e->seq == seq)
            return e;
    }
    return NULL;
}

static void on_bound(struct link *l)
{
    struct smpp_session *s = l->s;
    l->state = L_BOUND;
    for (int i = 0; i < s->nlinks; i++)
        if (s->links[i].state != L_BOUND)
            return;
    uv_timer_stop(&s->t_conn);
    s->attempt = 0;
    s->st.binds++;
    log_info("smpp bound", "host=%s port=%d system_id=%s links=%d", s->host, s->o.port,
             s->system_id, s->nlinks);
    if (s->o.enquire_link_s)
        uv_timer_start(&s->t_enquire, enquire_timer_cb, (uint64_t)s->o.enquire_link_s * 1000,
                       (uint64_t)s->o.enquire_link_s * 1000);
    ss_set_state(s, SMPP_BOUND, 0);
    ss_pump(s);
}

static void on_submit_resp(struct smpp_session *s, const struct smpp_pdu *p)
{
    struct entry *e = find_inflight(s, p->sequence);
    if (e == NULL) {
        log_debug("smpp unmatched response", "seq=%u", p->sequence);
        return;
    }
    list_remove(&s->inflight, &e->node);
    uint64_t now = uv_now(s->loop);
    uint32_t st = p->command_id == SMPP_GENERIC_NACK && p->command_status == 0 ? SMPP_ESME_RSYSERR
                                                                               : p->command_status;
    int cls = smpp_status_class(st);
    if (cls == SMSYS_ETHROTTLED) {
        /* Escalate only when the previous pause is over: the rest of a
         * window answered "throttled" together is one event, not many. */
        if (now >= s->pause_until) {
            unsigned next = s->pause_cur ? s->pause_cur * 2 : s->o.throttle_pause_ms;
            s->pause_cur = next > s->o.throttle_max_ms ? s->o.throttle_max_ms : next;
            s->pause_until = now + s->pause_cur;
            log_warn("smpp throttled: pausing", "host=%s status=%s pause_ms=%u", s->host,
                     smpp_status_name(st), s->pause_cur);
        }
        if (s->o.requeue_throttled) {
            s->st.throttled++;
            s->st.submitted--;
            el_insert_ordered(&s->queue, e);
            return;
        }
    } else if (st == 0 && now >= s->pause_until) {
        s->pause_cur = 0;
    }
    ss_entry_complete(s, e, cls, st, st == 0 ? p->message_id : "");
}

static void on_deliver(struct link *l, const struct smpp_pdu *p)
{
    struct smpp_session *s = l->s;
    uint32_t resp = p->command_id | SMPP_RESP;
    if (s->cbs.deliver_cb == NULL) {
        struct smpp_pdu b = {.message_id = ""};
        ss_link_send(l, resp, SMPP_ESME_RX_T_APPN, p->sequence, &b);
        return;
    }
    if (l->ndlv == l->capdlv) {
        size_t cap = l->capdlv ? l->capdlv * 2 : 64;
        struct pending_dlv *d = realloc(l->dlv, cap * sizeof(*d));
        if (d == NULL) {
            struct smpp_pdu b = {.message_id = ""};
            ss_link_send(l, resp, SMPP_ESME_RX_T_APPN, p->sequence, &b);
            return;
        }
        l->dlv = d;
        l->capdlv = cap;
    }
    l->dlv[l->ndlv].seq = p->sequence;
    l->dlv[l->ndlv].cmd = resp;
    l->ndlv++;
    s->st.delivers++;
    uint64_t token = (uint64_t)(s->gen & 0x7FFFFFFFu) << 33 | (uint64_t)l->idx << 32 | p->sequence;
    s->cbs.deliver_cb(s, p, token, s->ud);
}

/* Handles one PDU. Returns 0, or 1 when the link went down meanwhile. */
static int handle_pdu(struct link *l, const uint8_t *raw, size_t n)
{
    struct smpp_session *s = l->s;
    uint32_t gen = s->gen;
    struct smpp_pdu p;
    int rc = smpp_pdu_decode(raw, n, &p);
    if (rc) {
        log_warn("smpp bad pdu", "host=%s cmd=0x%08x seq=%u error=\"%s\"", s->host, p.command_id,
                 p.sequence, smsys_strerror(rc));
        if (!(p.command_id & SMPP_RESP))
            ss_link_send(l, SMPP_GENERIC_NACK,
                         rc == -ENOTSUP ? SMPP_ESME_RINVCMDID : SMPP_ESME_RINVCMDLEN, p.sequence,
                         NULL);
        return 0;
    }
    switch (p.command_id) {
    case SMPP_BIND_TRANSCEIVER_RESP:
    case SMPP_BIND_TRANSMITTER_RESP:
    case SMPP_BIND_RECEIVER_RESP:
        if (l->state != L_BINDING || p.sequence != l->bind_seq)
            break;
        if (p.command_status) {
            log_error("smpp bind refused", "host=%s system_id=%s status=%s", s->host, s->system_id,
                      smpp_status_name(p.command_status));
            int cls = smpp_status_class(p.command_status);
            ss_session_down(s, cls == SMSYS_EAUTH ? SMSYS_EAUTH : cls);
        } else {
            on_bound(l);
        }
        break;
    case SMPP_SUBMIT_SM_RESP:
        on_submit_resp(s, &p);
        ss_pump(s);
        break;
    case SMPP_GENERIC_NACK:
        if (p.sequence == l->bind_seq && l->state == L_BINDING) {
            ss_session_down(s, SMSYS_EPROTO);
        } else if (find_inflight(s, p.sequence)) {
            on_submit_resp(s, &p);
            ss_pump(s);
        }
        break;
    case SMPP_DELIVER_SM:
    case SMPP_DATA_SM:
        if (l->state != L_BOUND && l->state != L_UNBINDING) {
            ss_link_send(l, p.command_id | SMPP_RESP, SMPP_ESME_RINVBNDSTS, p.sequence, NULL);
            break;
        }
        on_deliver(l, &p);
        break;
    case SMPP_ENQUIRE_LINK:
        ss_link_send(l, SMPP_ENQUIRE_LINK_RESP, 0, p.sequence, NULL);
        break;
    case SMPP_ENQUIRE_LINK_RESP:
        if (p.sequence == l->enq_seq) {
            l->enq_seq = 0;
            arm_resp(s);
        }
        break;
    case SMPP_UNBIND:
        ss_link_send(l, SMPP_UNBIND_RESP, 0, p.sequence, NULL);
        link_flush(l);
        ss_session_down(s, SMSYS_ECLOSED);
        break;
    case SMPP_UNBIND_RESP:
        if (p.sequence == l->unbind_seq) {
            l->unbind_seq = 0;
            if (l->tcp_open && !uv_is_closing((uv_handle_t *)&l->tcp))
                uv_close((uv_handle_t *)&l->tcp, ss_tcp_close_cb);
            l->state = L_DOWN;
            ss_close_step(s);
        }
        break;
    default:
        if (!(p.command_id & SMPP_RESP))
            ss_link_send(l, SMPP_GENERIC_NACK, SMPP_ESME_RINVCMDID, p.sequence, NULL);
        break;
    }
    return (s->gen != gen || l->state == L_DOWN) ? 1 : 0;
}

void ss_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct link *l = container_of((uv_tcp_t *)h, struct link, tcp);
    if (l->rcap - l->rlen < RBUF_MIN / 2) {
        size_t cap = l->rcap ? l->rcap * 2 : RBUF_MIN;
        while (cap - l->rlen < RBUF_MIN / 2)
            cap *= 2;
        uint8_t *p = realloc(l->rbuf, cap);
        if (p == NULL) {
            *b = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
            return;
        }
        l->rbuf = p;
        l->rcap = cap;
    }
    *b = uv_buf_init((char *)l->rbuf + l->rlen, (unsigned)(l->rcap - l->rlen));
}

void ss_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct link *l = container_of((uv_tcp_t *)st, struct link, tcp);
    struct smpp_session *s = l->s;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF)
            log_warn("smpp peer closed the connection", "host=%s link=%d", s->host, l->idx);
        ss_session_down(s, nread == UV_EOF ? -ECONNRESET : (int)nread);
        return;
    }
    l->rlen += (size_t)nread;
    size_t off = 0;
    for (;;) {
        size_t n = 0;
        int rc = smpp_frame_next(l->rbuf + off, l->rlen - off, &n);
        if (rc < 0) {
            log_error("smpp stream out of sync", "host=%s", s->host);
            ss_session_down(s, SMSYS_EPROTO);
            return;
        }
        if (rc == 0)
            break;
        if (handle_pdu(l, l->rbuf + off, n))
            return; /* link reset: rlen already 0 */
        off += n;
    }
    if (off) {
        memmove(l->rbuf, l->rbuf + off, l->rlen - off);
        l->rlen -= off;
    }
}

/* ---- sending ---------------------------------------------------------- */

void ss_pump(struct smpp_session *s)
{
    if (s->closing) {
        /* A graceful close unbinds once the last answer is in. */
        if (s->closing == 1 && s->state == SMPP_UNBINDING && s->inflight.n == 0)
            ss_close_step(s);
        return;
    }
    if (s->state != SMPP_BOUND)
        return;
    struct link *tx = &s->links[0];
    uint64_t now = uv_now(s->loop);
    int added = 0;
    while (!list_empty(&s->queue) && s->inflight.n < s->o.window) {
        if (s->pause_until > now) {
            s->st.paused = 1;
            uv_timer_start(&s->t_send, send_timer_cb, s->pause_until - now, 0);
            break;
        }
        s->st.paused = 0;
        if (s->o.rate_per_sec > 0) {
            if (now > s->tok_ms) {
                s->tokens += (double)(now - s->tok_ms) * s->o.rate_per_sec / 1000.0;
                if (s->tokens > s->o.rate_burst)
                    s->tokens = s->o.rate_burst;
                s->tok_ms = now;
            }
            if (s->tokens < 1.0) {
                double ms = (1.0 - s->tokens) * 1000.0 / s->o.rate_per_sec;
                uv_timer_start(&s->t_send, send_timer_cb, (uint64_t)ms + 1, 0);
                break;
            }
            s->tokens -= 1.0;
        }
        struct entry *e = ss_el_first(&s->queue);
        e->seq = ss_seq_next(s);
        smpp_pdu_set_sequence(e->pdu, e->seq);
        if (buf_append(&tx->out, e->pdu, e->len)) {
            uv_timer_start(&s->t_send, send_timer_cb, 10, 0); /* -ENOMEM: try again soon */
            break;
        }
        list_remove(&s->queue, &e->node);
        e->deadline = now + s->o.resp_timeout_ms;
        list_push_back(&s->inflight, &e->node);
        tx->unflushed++;
        s->st.submitted++;
        added = 1;
    }
    if (added && !uv_is_active((uv_handle_t *)&s->t_resp))
        arm_resp(s);
}

int smpp_session_submit(struct smpp_session *s, const struct smpp_sm *sm, smpp_submit_cb cb,
                        void *ud)
{
    if (s->closing)
        return SMSYS_ECLOSED;
    if (s->queue.n >= s->o.max_queue)
        return -ENOBUFS;
    struct smpp_pdu p;
    memset(&p, 0, sizeof(p));
    p.command_id = SMPP_SUBMIT_SM;
    p.sm = *sm;
    size_t n = smpp_pdu_size(&p);
    if (n == 0)
        return SMSYS_ETOOBIG;
    struct entry *e = entry_get(s);
    if (e == NULL)
        return -ENOMEM;
    e->pdu = n <= sizeof(e->inl) ? e->inl : malloc(n);
    if (e->pdu == NULL) {
        entry_put(s, e);
        return -ENOMEM;
    }
    int rc = smpp_pdu_encode(&p, e->pdu, n);
    if (rc < 0) {
        entry_put(s, e);
        return rc;
    }
    e->len = n;
    e->cb = cb;
    e->ud = ud;
    e->order = ++s->order;
    list_push_back(&s->queue, &e->node);
    ss_pump(s);
    return 0;
}

int smpp_session_deliver_ack(struct smpp_session *s, uint64_t token, uint32_t status)
{
    uint32_t gen = (uint32_t)(token >> 33);
    int idx = (int)((token >> 32) & 1);
    uint32_t seq = (uint32_t)token;
    if (idx >= s->nlinks)
        return -ENOENT;
    struct link *l = &s->links[idx];
    if (gen != (s->gen & 0x7FFFFFFFu) || (l->state != L_BOUND && l->state != L_UNBINDING))
        return SMSYS_ECLOSED;
    for (size_t i = 0; i < l->ndlv; i++) {
        if (l->dlv[i].seq != seq)
            continue;
        struct smpp_pdu b = {.message_id = ""};
        int rc = ss_link_send(l, l->dlv[i].cmd, status, seq, &b);
        if (rc)
            return rc;
        l->dlv[i] = l->dlv[--l->ndlv];
        s->st.acks++;
        return 0;
    }
    return -ENOENT;
}
