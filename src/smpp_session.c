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
#include "smsys/smpp_session.h"

#include "smsys/buf.h"
#include "smsys/error.h"
#include "smsys/log.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENTRY_INLINE 448 /* a submit_sm with 254 octets and SAR TLVs fits */
#define ENTRY_CHUNK  256
#define RBUF_MIN     (64 * 1024)

struct entry {
    struct entry *next, *prev;
    uint64_t order; /* submit order: requeued entries keep their place */
    uint64_t deadline;
    uint32_t seq;
    smpp_submit_cb cb;
    void *ud;
    int err; /* for completions fired from the defer timer */
    uint8_t *pdu;
    size_t len;
    uint8_t inl[ENTRY_INLINE];
};

struct elist {
    struct entry *head, *tail;
    size_t n;
};

struct chunk {
    struct chunk *next;
    struct entry e[ENTRY_CHUNK];
};

enum link_state { L_DOWN = 0, L_CONNECTING, L_BINDING, L_BOUND, L_UNBINDING };

struct pending_dlv {
    uint32_t seq, cmd;
};

struct link {
    struct smpp_session *s;
    int idx;
    enum link_state state;
    uint32_t bind_cmd;
    uv_tcp_t tcp;
    int tcp_open; /* initialised and not yet through its close callback */
    uv_connect_t creq;
    uv_write_t wreq;
    int writing;
    struct buf out, wbuf; /* accumulating / being written */
    size_t unflushed;     /* inflight entries (at the tail) still in `out` */
    uint8_t *rbuf;
    size_t rlen, rcap;
    uint32_t bind_seq, enq_seq, unbind_seq;
    uint64_t enq_deadline;
    struct pending_dlv *dlv;
    size_t ndlv, capdlv;
};

struct smpp_session {
    uv_loop_t *loop;
    struct smpp_session_opts o;
    char *host, *system_id, *password, *system_type, *address_range;
    struct smpp_session_cbs cbs;
    void *ud;
    struct link links[2];
    int nlinks;
    enum smpp_state state;
    uint32_t gen; /* bumped per connection attempt: stale callbacks and tokens */
    uv_getaddrinfo_t gai;
    int resolving;
    unsigned addr_rot;
    uv_timer_t t_reconnect, t_conn, t_resp, t_enquire, t_send, t_defer;
    uv_prepare_t prep;
    int handles; /* timers + prepare not yet closed */
    struct elist queue, inflight, done;
    struct entry *freel;
    struct chunk *chunks;
    uint32_t next_seq;
    uint64_t order;
    unsigned attempt;
    uint64_t pause_until;
    unsigned pause_cur;
    double tokens;
    uint64_t tok_ms;
    unsigned seed;
    int closing, close_started, finished;
    void (*close_cb)(void *ud);
    void *close_ud;
    struct smpp_session_stats st;
};

static void session_down(struct smpp_session *s, int err);
static void session_connect(struct smpp_session *s);
static void pump(struct smpp_session *s);
static void close_step(struct smpp_session *s);
static void maybe_finish(struct smpp_session *s);

/* ---- lists and pool --------------------------------------------------- */

static void el_push(struct elist *l, struct entry *e)
{
    e->next = NULL;
    e->prev = l->tail;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
    l->n++;
}

static void el_remove(struct elist *l, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->next = e->prev = NULL;
    l->n--;
}

/* Inserts e before the first entry submitted after it (FIFO by order). */
static void el_insert_ordered(struct elist *l, struct entry *e)
{
    struct entry *at = l->head;
    while (at && at->order < e->order)
        at = at->next;
    if (at == NULL) {
        el_push(l, e);
        return;
    }
    e->next = at;
    e->prev = at->prev;
    if (at->prev)
        at->prev->next = e;
    else
        l->head = e;
    at->prev = e;
    l->n++;
}

static struct entry *entry_get(struct smpp_session *s)
{
    if (s->freel == NULL) {
        struct chunk *c = malloc(sizeof(*c));
        if (c == NULL)
            return NULL;
        c->next = s->chunks;
        s->chunks = c;
        for (int i = ENTRY_CHUNK - 1; i >= 0; i--) {
            c->e[i].next = s->freel;
            s->freel = &c->e[i];
        }
    }
    struct entry *e = s->freel;
    s->freel = e->next;
    memset(e, 0, offsetof(struct entry, inl));
    return e;
}

static void entry_put(struct smpp_session *s, struct entry *e)
{
    if (e->pdu && e->pdu != e->inl)
        free(e->pdu);
    e->pdu = NULL;
    e->next = s->freel;
    s->freel = e;
}

/* Completes e now: cb exactly once, then back to the pool. */
static void entry_complete(struct smpp_session *s, struct entry *e, int err, uint32_t status,
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

static uint32_t seq_next(struct smpp_session *s)
{
    uint32_t q = s->next_seq++;
    if (s->next_seq > 0x7FFFFFFFu)
        s->next_seq = 1;
    return q;
}

/* Queues a small PDU of ours on link l. Returns 0 or a negative code. */
static int link_send(struct link *l, uint32_t cmd, uint32_t status, uint32_t seq,
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
        session_down(l->s, rc);
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
        session_down(l->s, status);
        return;
    }
    link_flush(l);
}

static void prep_cb(uv_prepare_t *h)
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
    if (s->inflight.head)
        next = s->inflight.head->deadline;
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
            session_down(s, -ETIMEDOUT);
            return;
        }
    }
    /* Expired submits are taken off first, then completed, so that a
     * callback that submits again cannot disturb the walk. */
    struct elist exp = {0};
    while (s->inflight.head && s->inflight.head->deadline <= now) {
        struct entry *e = s->inflight.head;
        el_remove(&s->inflight, e);
        el_push(&exp, e);
    }
    if (exp.n)
        log_warn("smpp submit_sm response timeout", "host=%s count=%zu", s->host, exp.n);
    while (exp.head) {
        struct entry *e = exp.head;
        el_remove(&exp, e);
        entry_complete(s, e, SMSYS_EUNKNOWN, 0, "");
    }
    arm_resp(s);
    pump(s);
}

static void send_timer_cb(uv_timer_t *t)
{
    pump(t->data);
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
        l->enq_seq = seq_next(s);
        l->enq_deadline = now + to;
        if (link_send(l, SMPP_ENQUIRE_LINK, 0, l->enq_seq, NULL)) {
            session_down(s, -ENOMEM);
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
    session_connect(s);
}

static void conn_timer_cb(uv_timer_t *t)
{
    struct smpp_session *s = t->data;
    if (s->closing) { /* unbind took too long */
        s->closing = 2;
        close_step(s);
        return;
    }
    log_warn("smpp connect timed out", "host=%s port=%d", s->host, s->o.port);
    session_down(s, -ETIMEDOUT);
}

static void defer_timer_cb(uv_timer_t *t)
{
    struct smpp_session *s = t->data;
    while (s->done.head) {
        struct entry *e = s->done.head;
        el_remove(&s->done, e);
        entry_complete(s, e, e->err, 0, "");
    }
    if (s->closing)
        close_step(s);
}

/* ---- state ------------------------------------------------------------ */

static void set_state(struct smpp_session *s, enum smpp_state st, int err)
{
    if (s->state == st)
        return;
    s->state = st;
    if (s->cbs.state_cb)
        s->cbs.state_cb(s, st, err, s->ud);
}

static void tcp_close_cb(uv_handle_t *h)
{
    struct link *l = container_of((uv_tcp_t *)h, struct link, tcp);
    l->tcp_open = 0;
    maybe_finish(l->s);
}

static void link_reset(struct link *l)
{
    if (l->tcp_open && !uv_is_closing((uv_handle_t *)&l->tcp))
        uv_close((uv_handle_t *)&l->tcp, tcp_close_cb);
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
static void session_down(struct smpp_session *s, int err)
{
    if (s->state == SMPP_CLOSED && !s->resolving && !s->closing)
        return;
    struct link *tx = &s->links[0];
    size_t back = tx->unflushed;
    for (int i = 0; i < s->nlinks; i++)
        link_reset(&s->links[i]);
    if (s->resolving)
        uv_cancel((uv_req_t *)&s->gai);
    s->gen++;
    uv_timer_stop(&s->t_conn);
    uv_timer_stop(&s->t_resp);
    uv_timer_stop(&s->t_enquire);
    uv_timer_stop(&s->t_send);
    while (back-- > 0 && s->inflight.tail) {
        struct entry *e = s->inflight.tail;
        el_remove(&s->inflight, e);
        el_insert_ordered(&s->queue, e);
        s->st.submitted--;
    }
    struct elist lost = s->inflight;
    memset(&s->inflight, 0, sizeof(s->inflight));
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
    set_state(s, SMPP_CLOSED, err);
    while (lost.head) {
        struct entry *e = lost.head;
        el_remove(&lost, e);
        entry_complete(s, e, SMSYS_EUNKNOWN, 0, "");
    }
    if (s->closing)
        close_step(s);
}

/* ---- reading ---------------------------------------------------------- */

static struct entry *find_inflight(struct smpp_session *s, uint32_t seq)
{
    for (struct entry *e = s->inflight.head; e; e = e->next)
        if (e->seq == seq)
            return e;
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
    set_state(s, SMPP_BOUND, 0);
    pump(s);
}

static void on_submit_resp(struct smpp_session *s, const struct smpp_pdu *p)
{
    struct entry *e = find_inflight(s, p->sequence);
    if (e == NULL) {
        log_debug("smpp unmatched response", "seq=%u", p->sequence);
        return;
    }
    el_remove(&s->inflight, e);
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
    entry_complete(s, e, cls, st, st == 0 ? p->message_id : "");
}

static void on_deliver(struct link *l, const struct smpp_pdu *p)
{
    struct smpp_session *s = l->s;
    uint32_t resp = p->command_id | SMPP_RESP;
    if (s->cbs.deliver_cb == NULL) {
        struct smpp_pdu b = {.message_id = ""};
        link_send(l, resp, SMPP_ESME_RX_T_APPN, p->sequence, &b);
        return;
    }
    if (l->ndlv == l->capdlv) {
        size_t cap = l->capdlv ? l->capdlv * 2 : 64;
        struct pending_dlv *d = realloc(l->dlv, cap * sizeof(*d));
        if (d == NULL) {
            struct smpp_pdu b = {.message_id = ""};
            link_send(l, resp, SMPP_ESME_RX_T_APPN, p->sequence, &b);
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
            link_send(l, SMPP_GENERIC_NACK,
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
            session_down(s, cls == SMSYS_EAUTH ? SMSYS_EAUTH : cls);
        } else {
            on_bound(l);
        }
        break;
    case SMPP_SUBMIT_SM_RESP:
        on_submit_resp(s, &p);
        pump(s);
        break;
    case SMPP_GENERIC_NACK:
        if (p.sequence == l->bind_seq && l->state == L_BINDING) {
            session_down(s, SMSYS_EPROTO);
        } else if (find_inflight(s, p.sequence)) {
            on_submit_resp(s, &p);
            pump(s);
        }
        break;
    case SMPP_DELIVER_SM:
    case SMPP_DATA_SM:
        if (l->state != L_BOUND && l->state != L_UNBINDING) {
            link_send(l, p.command_id | SMPP_RESP, SMPP_ESME_RINVBNDSTS, p.sequence, NULL);
            break;
        }
        on_deliver(l, &p);
        break;
    case SMPP_ENQUIRE_LINK:
        link_send(l, SMPP_ENQUIRE_LINK_RESP, 0, p.sequence, NULL);
        break;
    case SMPP_ENQUIRE_LINK_RESP:
        if (p.sequence == l->enq_seq) {
            l->enq_seq = 0;
            arm_resp(s);
        }
        break;
    case SMPP_UNBIND:
        link_send(l, SMPP_UNBIND_RESP, 0, p.sequence, NULL);
        link_flush(l);
        session_down(s, SMSYS_ECLOSED);
        break;
    case SMPP_UNBIND_RESP:
        if (p.sequence == l->unbind_seq) {
            l->unbind_seq = 0;
            if (l->tcp_open && !uv_is_closing((uv_handle_t *)&l->tcp))
                uv_close((uv_handle_t *)&l->tcp, tcp_close_cb);
            l->state = L_DOWN;
            close_step(s);
        }
        break;
    default:
        if (!(p.command_id & SMPP_RESP))
            link_send(l, SMPP_GENERIC_NACK, SMPP_ESME_RINVCMDID, p.sequence, NULL);
        break;
    }
    return (s->gen != gen || l->state == L_DOWN) ? 1 : 0;
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
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

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct link *l = container_of((uv_tcp_t *)st, struct link, tcp);
    struct smpp_session *s = l->s;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF)
            log_warn("smpp peer closed the connection", "host=%s link=%d", s->host, l->idx);
        session_down(s, nread == UV_EOF ? -ECONNRESET : (int)nread);
        return;
    }
    l->rlen += (size_t)nread;
    size_t off = 0;
    for (;;) {
        size_t n = 0;
        int rc = smpp_frame_next(l->rbuf + off, l->rlen - off, &n);
        if (rc < 0) {
            log_error("smpp stream out of sync", "host=%s", s->host);
            session_down(s, SMSYS_EPROTO);
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
        session_down(s, status);
        return;
    }
    uv_tcp_nodelay(&l->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&l->tcp, alloc_cb, read_cb);
    struct smpp_pdu b = {0};
    b.system_id = s->system_id;
    b.password = s->password;
    b.system_type = s->system_type;
    b.interface_version = 0x34;
    b.addr_ton = s->o.addr_ton;
    b.addr_npi = s->o.addr_npi;
    b.address_range = s->address_range;
    l->bind_seq = seq_next(s);
    if (rc == 0)
        rc = link_send(l, l->bind_cmd, 0, l->bind_seq, &b);
    if (rc) {
        session_down(s, rc);
        return;
    }
    l->state = L_BINDING;
    set_state(s, SMPP_BINDING, 0);
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    struct smpp_session *s = container_of(req, struct smpp_session, gai);
    s->resolving = 0;
    if (status == UV_ECANCELED || s->closing || s->state != SMPP_CONNECTING) {
        uv_freeaddrinfo(ai);
        if (s->closing)
            maybe_finish(s);
        return;
    }
    if (status < 0 || ai == NULL) {
        log_warn("smpp resolve failed", "host=%s error=\"%s\"", s->host, uv_strerror(status));
        uv_freeaddrinfo(ai);
        session_down(s, status < 0 ? status : -EHOSTUNREACH);
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
            session_down(s, rc);
            return;
        }
    }
    uv_freeaddrinfo(ai);
}

static void session_connect(struct smpp_session *s)
{
    if (s->closing)
        return;
    set_state(s, SMPP_CONNECTING, 0);
    uv_timer_start(&s->t_conn, conn_timer_cb, s->o.connect_timeout_ms, 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", s->o.port);
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    int rc = uv_getaddrinfo(s->loop, &s->gai, gai_cb, s->host, port, &hints);
    if (rc) {
        session_down(s, rc);
        return;
    }
    s->resolving = 1;
}

/* ---- sending ---------------------------------------------------------- */

static void pump(struct smpp_session *s)
{
    if (s->closing) {
        /* A graceful close unbinds once the last answer is in. */
        if (s->closing == 1 && s->state == SMPP_UNBINDING && s->inflight.n == 0)
            close_step(s);
        return;
    }
    if (s->state != SMPP_BOUND)
        return;
    struct link *tx = &s->links[0];
    uint64_t now = uv_now(s->loop);
    int added = 0;
    while (s->queue.head && s->inflight.n < s->o.window) {
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
        struct entry *e = s->queue.head;
        e->seq = seq_next(s);
        smpp_pdu_set_sequence(e->pdu, e->seq);
        if (buf_append(&tx->out, e->pdu, e->len)) {
            uv_timer_start(&s->t_send, send_timer_cb, 10, 0); /* -ENOMEM: try again soon */
            break;
        }
        el_remove(&s->queue, e);
        e->deadline = now + s->o.resp_timeout_ms;
        el_push(&s->inflight, e);
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
    el_push(&s->queue, e);
    pump(s);
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
        int rc = link_send(l, l->dlv[i].cmd, status, seq, &b);
        if (rc)
            return rc;
        l->dlv[i] = l->dlv[--l->ndlv];
        s->st.acks++;
        return 0;
    }
    return -ENOENT;
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
    uv_prepare_start(&s->prep, prep_cb);
    uv_unref((uv_handle_t *)&s->prep);
    session_connect(s);
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
    maybe_finish(s);
}

static void maybe_finish(struct smpp_session *s)
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
static void close_step(struct smpp_session *s)
{
    if (s->close_started)
        return;
    if (s->closing == 1 && s->state == SMPP_UNBINDING) {
        int waiting = 0;
        for (int i = 0; i < s->nlinks; i++) {
            struct link *l = &s->links[i];
            if (l->state == L_BOUND && s->inflight.n == 0) {
                l->unbind_seq = seq_next(s);
                l->state = L_UNBINDING;
                if (link_send(l, SMPP_UNBIND, 0, l->unbind_seq, NULL))
                    l->unbind_seq = 0;
            }
            if (l->state == L_BOUND || (l->state == L_UNBINDING && l->unbind_seq))
                waiting = 1;
        }
        if (waiting)
            return; /* an answer or conn_timer_cb calls again */
    }
    /* What is still in flight may have left (EUNKNOWN) unless it never
     * left our buffer (requeued, then ECLOSED below). session_down sorts
     * that out, does not reconnect while closing, and calls us again in
     * state CLOSED. */
    if (s->state != SMPP_CLOSED) {
        s->closing = 2;
        session_down(s, SMSYS_ECLOSED);
        return;
    }
    s->close_started = 1;
    for (int i = 0; i < s->nlinks; i++)
        link_reset(&s->links[i]);
    while (s->queue.head) {
        struct entry *e = s->queue.head;
        el_remove(&s->queue, e);
        entry_complete(s, e, SMSYS_ECLOSED, 0, "");
    }
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
    while (s->queue.head) {
        struct entry *e = s->queue.head;
        el_remove(&s->queue, e);
        e->err = SMSYS_ECLOSED;
        el_push(&s->done, e);
    }
    if (s->state == SMPP_BOUND) {
        set_state(s, SMPP_UNBINDING, 0);
        uv_timer_start(&s->t_conn, conn_timer_cb, s->o.unbind_timeout_ms, 0);
    } else {
        s->closing = 2;
    }
    uv_timer_start(&s->t_defer, defer_timer_cb, 0, 0);
}
