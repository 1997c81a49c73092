/* conn.c - smscsim connections: binds, submit_sm answers, deliver_sm out.
 *
 * Answers produced while handling one read callback are appended to the
 * connection's output buffer and leave in a single uv_write at its end,
 * so a window of 50 submits costs one write, not 50. */
#include "sim.h"

#include "smsys/error.h"
#include "smsys/util.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RBUF_MIN (64 * 1024)
#define OUT_MAX  (64u * 1024 * 1024) /* a peer that never reads is cut */

/* ---- delivery pool and lists ------------------------------------------ */

/* Inserts by due time, from the tail: receipts share one delay, so this
 * is nearly always an append. Equal due times keep their arrival order. */
static void dlist_insert_due(struct list *l, struct dlv *d)
{
    struct list_node *at = list_last(l);
    while (at && sim_dlv_of(at)->due > d->due)
        at = list_prev(at);
    list_insert_after(l, at, &d->node);
}

struct dlv *sim_dlv_get(struct sim *sim)
{
    struct dlv *d = sim_dlv_of(list_pop_front(&sim->freel));
    if (d == NULL) {
        d = malloc(sizeof(*d));
        if (d == NULL)
            return NULL;
    }
    memset(d, 0, offsetof(struct dlv, pdu));
    return d;
}

void sim_dlv_put(struct sim *sim, struct dlv *d)
{
    list_push_front(&sim->freel, &d->node);
}

/* ---- output ----------------------------------------------------------- */

static void conn_write_cb(uv_write_t *req, int status);

static void conn_flush(struct sim_conn *c)
{
    if (c->writing || c->out.len == 0 || c->closing)
        return;
    struct buf t = c->wbuf;
    c->wbuf = c->out;
    c->out = t;
    buf_reset(&c->out);
    uv_buf_t b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, conn_write_cb)) {
        sim_conn_drop(c);
        return;
    }
    c->writing = 1;
}

static void conn_write_cb(uv_write_t *req, int status)
{
    struct sim_conn *c = container_of(req, struct sim_conn, wreq);
    c->writing = 0;
    buf_reset(&c->wbuf);
    if (status < 0) {
        sim_conn_drop(c);
        return;
    }
    conn_flush(c);
}

static void conn_send(struct sim_conn *c, uint32_t cmd, uint32_t status, uint32_t seq,
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
    uint8_t tmp[600];
    int n = smpp_pdu_encode(&p, tmp, sizeof(tmp));
    if (n > 0 && buf_append(&c->out, tmp, (size_t)n) == 0 && c->out.len < OUT_MAX)
        return;
    sim_conn_drop(c);
}

/* ---- closing ---------------------------------------------------------- */

static void conn_free_cb(uv_handle_t *h)
{
    struct sim_conn *c = container_of((uv_tcp_t *)h, struct sim_conn, tcp);
    buf_free(&c->out);
    buf_free(&c->wbuf);
    free(c->rbuf);
    free(c);
}

void sim_conn_drop(struct sim_conn *c)
{
    if (c->closing)
        return;
    struct sim *sim = c->sim;
    c->closing = 1;
    /* Unanswered deliver_sm go back to the queue: a real SMSC redelivers. */
    struct dlv *d;
    /* head first: redelivered in their original order */
    while ((d = sim_dlv_of(list_pop_front(&c->unacked))) != NULL) {
        d->conn = NULL;
        d->due = 0;
        dlist_insert_due(&sim->queue, d);
        sim->st.deliver_redelivered++;
    }
    list_remove(&sim->conns, &c->node);
    char kv[64];
    snprintf(kv, sizeof(kv), "\"conn\":%u", c->id);
    simlog_event(sim, "disconnect", kv);
    uv_close((uv_handle_t *)&c->tcp, conn_free_cb);
    if (!list_empty(&sim->queue) && !sim->stopping)
        uv_timer_start(&sim->t_dlv, sim_dlv_timer_cb, 0, 0);
}

void sim_drop_all(struct sim *sim)
{
    while (!list_empty(&sim->conns)) {
        sim->st.drops++;
        sim_conn_drop(sim_conn_of(list_first(&sim->conns)));
    }
}

/* ---- message ids ------------------------------------------------------ */

static void format_id(int form, uint64_t n, const char *uuid, char *out, size_t cap)
{
    switch (form) {
    case ID_HEX:
        snprintf(out, cap, "%llx", (unsigned long long)n);
        break;
    case ID_HEXU:
        snprintf(out, cap, "%llX", (unsigned long long)n);
        break;
    case ID_DEC0:
        snprintf(out, cap, "%020llu", (unsigned long long)n);
        break;
    case ID_HEX0:
        snprintf(out, cap, "%016llx", (unsigned long long)n);
        break;
    case ID_HEXU0:
        snprintf(out, cap, "%016llX", (unsigned long long)n);
        break;
    case ID_UUID:
        snprintf(out, cap, "%s", uuid);
        break;
    default:
        snprintf(out, cap, "%llu", (unsigned long long)n);
        break;
    }
}

/* ---- receipts ----------------------------------------------------------- */

static const struct outcome *pick_outcome(struct sim *sim)
{
    unsigned total = 0;
    for (int i = 0; i < sim->cfg.n_outcomes; i++)
        total += sim->cfg.outcomes[i].weight;
    if (total == 0)
        return NULL;
    unsigned r = (unsigned)rand_r(&sim->seed) % total;
    for (int i = 0; i < sim->cfg.n_outcomes; i++) {
        if (r < sim->cfg.outcomes[i].weight)
            return &sim->cfg.outcomes[i];
        r -= sim->cfg.outcomes[i].weight;
    }
    return &sim->cfg.outcomes[0];
}

static void yymmddhhmm(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, cap, "%02u%02u%02u%02u%02u", (unsigned)tm.tm_year % 100u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
             (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u);
}

static void queue_receipt(struct sim *sim, const struct smpp_sm *sm, const char *rid)
{
    const struct outcome *oc = pick_outcome(sim);
    if (oc == NULL)
        return;
    int failed = oc->state != SMPP_STATE_DELIVERED;
    if ((sm->registered_delivery & 3) == 0 || ((sm->registered_delivery & 3) == 2 && !failed))
        return;
    struct dlv *d = sim_dlv_get(sim);
    if (d == NULL)
        return;
    char date[64], text[320];
    yymmddhhmm(time(NULL), date, sizeof(date));
    /* The first 20 characters of the original text, as SMSCs quote it
     * (only when it is printable single-byte text). */
    char orig[21] = "";
    if (sm->data_coding != 8) {
        size_t k = 0;
        for (size_t i = 0; i < sm->sm_length && k < 20; i++) {
            uint8_t ch = sm->short_message[i];
            if ((sm->esm_class & SMPP_ESM_UDHI) && i == 0) {
                i += sm->short_message[0];
                continue;
            }
            if (ch >= 0x20 && ch < 0x7F)
                orig[k++] = (char)ch;
        }
        orig[k] = '\0';
    }
    snprintf(text, sizeof(text),
             "id:%s sub:001 dlvrd:%s submit date:%s done date:%s stat:%s err:%s text:%s", rid,
             failed ? "000" : "001", date, date, oc->stat, failed ? "001" : "000", orig);
    struct smpp_pdu p;
    memset(&p, 0, sizeof(p));
    p.command_id = SMPP_DELIVER_SM;
    p.sm.source_ton = sm->dest_ton;
    p.sm.source_npi = sm->dest_npi;
    p.sm.source_addr = sm->dest_addr;
    p.sm.dest_ton = sm->source_ton;
    p.sm.dest_npi = sm->source_npi;
    p.sm.dest_addr = sm->source_addr;
    p.sm.esm_class = SMPP_ESM_TYPE_RECEIPT;
    if (sim->cfg.receipt_text) {
        p.sm.short_message = (const uint8_t *)text;
        p.sm.sm_length = strlen(text);
    }
    if (sim->cfg.receipt_tlv) {
        p.sm.has |= SMPP_HAS_RECEIPTED_ID | SMPP_HAS_MSG_STATE;
        p.sm.receipted_message_id = rid;
        p.sm.message_state = (uint8_t)oc->state;
    }
    int n = smpp_pdu_encode(&p, d->pdu, sizeof(d->pdu));
    if (n <= 0) {
        sim_dlv_put(sim, d);
        return;
    }
    d->len = (size_t)n;
    d->due = uv_now(sim->loop) + sim->cfg.receipt_delay_ms;
    dlist_insert_due(&sim->queue, d);
    if (!uv_is_active((uv_handle_t *)&sim->t_dlv))
        uv_timer_start(&sim->t_dlv, sim_dlv_timer_cb, sim->cfg.receipt_delay_ms, 0);
}

/* Sends due deliveries to bound receivers with room in their window. */
void sim_pump_deliveries(struct sim *sim)
{
    uint64_t now = uv_now(sim->loop);
    struct sim_conn *c;
    struct dlv *d;
    /* Redeliver what waited too long for its deliver_sm_resp. */
    if (sim->cfg.redeliver_ms) {
        for (struct list_node *n = list_first(&sim->conns); n; n = list_next(n)) {
            struct sim_conn *k = sim_conn_of(n);
            while ((d = sim_dlv_of(list_first(&k->unacked))) != NULL &&
                   d->due + sim->cfg.redeliver_ms <= now) {
                list_remove(&k->unacked, &d->node);
                d->conn = NULL;
                d->due = 0;
                dlist_insert_due(&sim->queue, d);
                sim->st.deliver_redelivered++;
            }
        }
    }
    while ((d = sim_dlv_of(list_first(&sim->queue))) != NULL && d->due <= now) {
        /* Round robin would be fairer; the first receiver with room will do. */
        struct list_node *n;
        for (n = list_first(&sim->conns); n; n = list_next(n)) {
            c = sim_conn_of(n);
            if (c->can_rx && !c->closing && c->unacked.n < sim->cfg.deliver_window)
                break;
        }
        if (n == NULL)
            break;
        list_remove(&sim->queue, &d->node);
        d->seq = c->next_seq++;
        smpp_pdu_set_sequence(d->pdu, d->seq);
        if (buf_append(&c->out, d->pdu, d->len)) {
            dlist_insert_due(&sim->queue, d);
            sim_conn_drop(c);
            continue;
        }
        d->conn = c;
        d->due = now; /* now: when it was sent, for redelivery */
        list_push_back(&c->unacked, &d->node);
        sim->st.deliver_sent++;
        conn_flush(c);
    }
    uint64_t next = UINT64_MAX;
    if ((d = sim_dlv_of(list_first(&sim->queue))) != NULL && d->due > now)
        next = d->due - now;
    if (sim->cfg.redeliver_ms)
        for (struct list_node *n = list_first(&sim->conns); n; n = list_next(n))
            if ((d = sim_dlv_of(list_first(&sim_conn_of(n)->unacked))) != NULL) {
                uint64_t due = d->due + sim->cfg.redeliver_ms;
                uint64_t in = due > now ? due - now : 0;
                if (in < next)
                    next = in;
            }
    if (next != UINT64_MAX)
        uv_timer_start(&sim->t_dlv, sim_dlv_timer_cb, next, 0);
}

void sim_dlv_timer_cb(uv_timer_t *t)
{
    sim_pump_deliveries(t->data);
}

/* ---- MO injection ----------------------------------------------------- */

int sim_inject_mo(struct sim *sim, const char *from, const char *to, const char *text,
                  unsigned parts, const unsigned *order, size_t norder)
{
    struct buf enc = BUF_INIT;
    size_t bounds[1024], nb = 0;
    int dcs = sim_text_encode(text, &enc, bounds, ARRAY_LEN(bounds), &nb);
    if (dcs < 0) {
        buf_free(&enc);
        return dcs;
    }
    if (parts == 0)
        parts = 1;
    if (parts > 255 || parts > nb) {
        buf_free(&enc);
        return -EINVAL;
    }
    uint8_t ref = (uint8_t)++sim->mo_ref;
    for (unsigned k = 0; k < parts; k++) {
        unsigned part = norder ? order[k < norder ? k : norder - 1] : k + 1;
        if (part < 1 || part > parts) {
            buf_free(&enc);
            return -EINVAL;
        }
        /* Part i covers characters [i*nb/parts, (i+1)*nb/parts). */
        size_t c0 = (size_t)(part - 1) * nb / parts, c1 = (size_t)part * nb / parts;
        size_t b0 = bounds[c0], b1 = c1 < nb ? bounds[c1] : enc.len;
        uint8_t sm[300];
        size_t n = 0;
        if (parts > 1) {
            const uint8_t udh[6] = {5, 0, 3, ref, (uint8_t)parts, (uint8_t)part};
            memcpy(sm, udh, 6);
            n = 6;
        }
        if (b1 - b0 + n > 254) {
            buf_free(&enc);
            return SMSYS_ETOOBIG;
        }
        memcpy(sm + n, enc.data + b0, b1 - b0);
        n += b1 - b0;
        struct dlv *d = sim_dlv_get(sim);
        if (d == NULL) {
            buf_free(&enc);
            return -ENOMEM;
        }
        struct smpp_pdu p;
        memset(&p, 0, sizeof(p));
        p.command_id = SMPP_DELIVER_SM;
        p.sm.source_ton = 1;
        p.sm.source_npi = 1;
        p.sm.source_addr = from;
        p.sm.dest_addr = to;
        p.sm.esm_class = parts > 1 ? SMPP_ESM_UDHI : 0;
        p.sm.data_coding = (uint8_t)dcs;
        p.sm.short_message = sm;
        p.sm.sm_length = n;
        int len = smpp_pdu_encode(&p, d->pdu, sizeof(d->pdu));
        if (len <= 0) {
            sim_dlv_put(sim, d);
            buf_free(&enc);
            return len < 0 ? len : -EINVAL;
        }
        d->len = (size_t)len;
        d->due = 0;
        list_push_back(&sim->queue, &d->node); /* due 0: sorts first, keeps this order */
    }
    buf_free(&enc);
    sim->st.mo_injected++;
    sim_pump_deliveries(sim);
    return 0;
}

/* ---- requests --------------------------------------------------------- */

static uint32_t submit_status(struct sim *sim, const struct smpp_sm *sm)
{
    struct sim_cfg *cfg = &sim->cfg;
    for (int i = 0; i < cfg->n_dest_err; i++)
        if (fnmatch(cfg->dest_err[i].pattern, sm->dest_addr, 0) == 0)
            return cfg->dest_err[i].status;
    if (cfg->throttle_every && sim->st.submit_sm % cfg->throttle_every == 0)
        return SMPP_ESME_RTHROTTLED;
    if (cfg->throttle_rate) {
        uint64_t now = uv_now(sim->loop);
        if (now - sim->rate_window_ms >= 1000) {
            sim->rate_window_ms = now;
            sim->rate_count = 0;
        }
        if (++sim->rate_count > cfg->throttle_rate)
            return SMPP_ESME_RTHROTTLED;
    }
    return 0;
}

static int on_submit(struct sim_conn *c, const struct smpp_pdu *p)
{
    struct sim *sim = c->sim;
    sim->st.submit_sm++;
    if (sim->cfg.drop_after && sim->st.submit_sm >= sim->cfg.drop_after) {
        sim->cfg.drop_after = 0;
        simlog_pdu(sim, c, p, 0xFFFFFFFFu, NULL);
        sim->st.drops++;
        conn_flush(c); /* answers to earlier PDUs of this read still go out */
        sim_conn_drop(c);
        return 1;
    }
    if (c->bound != SMPP_BIND_TRANSMITTER && c->bound != SMPP_BIND_TRANSCEIVER) {
        conn_send(c, SMPP_SUBMIT_SM_RESP, SMPP_ESME_RINVBNDSTS, p->sequence, NULL);
        return 0;
    }
    uint32_t st = submit_status(sim, &p->sm);
    struct smpp_pdu r;
    memset(&r, 0, sizeof(r));
    char id[80] = "";
    if (st == 0) {
        uint64_t n = ++sim->next_msg_id;
        char uuid[37] = "";
        if (sim->cfg.id_form == ID_UUID)
            util_uuid4(uuid);
        format_id(sim->cfg.id_form, n, uuid, id, sizeof(id));
        char rid[80];
        int rf = sim->cfg.receipt_id_form < 0 ? sim->cfg.id_form : sim->cfg.receipt_id_form;
        format_id(rf, n, uuid, rid, sizeof(rid));
        sim->st.accepted++;
        queue_receipt(sim, &p->sm, rid);
    } else if (st == SMPP_ESME_RTHROTTLED) {
        sim->st.throttled++;
    } else {
        sim->st.errors++;
    }
    r.message_id = id;
    simlog_pdu(sim, c, p, st, id);
    conn_send(c, SMPP_SUBMIT_SM_RESP, st, p->sequence, &r);
    return 0;
}

static void on_bind(struct sim_conn *c, const struct smpp_pdu *p)
{
    struct sim *sim = c->sim;
    uint32_t st = 0;
    if (c->bound)
        st = SMPP_ESME_RALYBND;
    else if (sim->cfg.system_id && strcmp(sim->cfg.system_id, p->system_id) != 0)
        st = SMPP_ESME_RINVSYSID;
    else if (sim->cfg.password && strcmp(sim->cfg.password, p->password) != 0)
        st = SMPP_ESME_RINVPASWD;
    struct smpp_pdu r;
    memset(&r, 0, sizeof(r));
    r.system_id = "smscsim";
    simlog_pdu(sim, c, p, st, NULL);
    conn_send(c, p->command_id | SMPP_RESP, st, p->sequence, &r);
    if (st) {
        sim->st.bind_refused++;
        return;
    }
    sim->st.binds++;
    c->bound = (int)p->command_id;
    c->can_rx = p->command_id != SMPP_BIND_TRANSMITTER;
    if (c->can_rx)
        sim_pump_deliveries(sim);
}

static void on_deliver_resp(struct sim_conn *c, const struct smpp_pdu *p)
{
    struct sim *sim = c->sim;
    simlog_pdu(sim, c, p, p->command_status, NULL);
    for (struct list_node *n = list_first(&c->unacked); n; n = list_next(n)) {
        struct dlv *d = sim_dlv_of(n);
        if (d->seq != p->sequence)
            continue;
        list_remove(&c->unacked, &d->node);
        if (p->command_status == 0) {
            sim->st.deliver_acked++;
            sim_dlv_put(sim, d);
        } else { /* refused for now: retry after the receipt delay */
            d->conn = NULL;
            d->due =
                uv_now(sim->loop) + (sim->cfg.receipt_delay_ms ? sim->cfg.receipt_delay_ms : 1000);
            dlist_insert_due(&sim->queue, d);
            sim->st.deliver_redelivered++;
        }
        sim_pump_deliveries(sim);
        return;
    }
}

/* Returns 1 when the connection was dropped. */
static int handle_pdu(struct sim_conn *c, const uint8_t *raw, size_t n)
{
    struct sim *sim = c->sim;
    struct smpp_pdu p;
    int rc = smpp_pdu_decode(raw, n, &p);
    if (rc) {
        sim->st.bad_pdus++;
        if (!(p.command_id & SMPP_RESP))
            conn_send(c, SMPP_GENERIC_NACK,
                      rc == -ENOTSUP ? SMPP_ESME_RINVCMDID : SMPP_ESME_RINVCMDLEN, p.sequence,
                      NULL);
        return c->closing;
    }
    switch (p.command_id) {
    case SMPP_BIND_TRANSCEIVER:
    case SMPP_BIND_TRANSMITTER:
    case SMPP_BIND_RECEIVER:
        on_bind(c, &p);
        break;
    case SMPP_SUBMIT_SM:
        return on_submit(c, &p);
    case SMPP_DELIVER_SM_RESP:
    case SMPP_DATA_SM_RESP:
        on_deliver_resp(c, &p);
        break;
    case SMPP_ENQUIRE_LINK:
        sim->st.enquire_link++;
        simlog_pdu(sim, c, &p, 0, NULL);
        if (!sim->cfg.ignore_enquire)
            conn_send(c, SMPP_ENQUIRE_LINK_RESP, 0, p.sequence, NULL);
        break;
    case SMPP_UNBIND:
        simlog_pdu(sim, c, &p, 0, NULL);
        conn_send(c, SMPP_UNBIND_RESP, 0, p.sequence, NULL);
        c->bound = 0;
        c->can_rx = 0;
        break;
    case SMPP_ENQUIRE_LINK_RESP:
    case SMPP_UNBIND_RESP:
    case SMPP_GENERIC_NACK:
        simlog_pdu(sim, c, &p, p.command_status, NULL);
        break;
    default:
        simlog_pdu(sim, c, &p, SMPP_ESME_RINVCMDID, NULL);
        if (!(p.command_id & SMPP_RESP))
            conn_send(c, SMPP_GENERIC_NACK, SMPP_ESME_RINVCMDID, p.sequence, NULL);
        break;
    }
    return c->closing;
}

static void conn_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct sim_conn *c = container_of((uv_tcp_t *)h, struct sim_conn, tcp);
    if (c->rcap - c->rlen < RBUF_MIN / 2) {
        size_t cap = c->rcap ? c->rcap * 2 : RBUF_MIN;
        uint8_t *p = realloc(c->rbuf, cap);
        if (p == NULL) {
            *b = uv_buf_init(NULL, 0);
            return;
        }
        c->rbuf = p;
        c->rcap = cap;
    }
    *b = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void conn_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct sim_conn *c = container_of((uv_tcp_t *)st, struct sim_conn, tcp);
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        sim_conn_drop(c);
        return;
    }
    c->rlen += (size_t)nread;
    size_t off = 0;
    for (;;) {
        size_t n = 0;
        int rc = smpp_frame_next(c->rbuf + off, c->rlen - off, &n);
        if (rc < 0) {
            c->sim->st.bad_pdus++;
            sim_conn_drop(c);
            return;
        }
        if (rc == 0)
            break;
        if (handle_pdu(c, c->rbuf + off, n))
            return;
        off += n;
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    conn_flush(c);
}

void sim_on_connection(uv_stream_t *server, int status)
{
    struct sim *sim = server->data;
    if (status < 0)
        return;
    struct sim_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->sim = sim;
    c->next_seq = 1;
    uv_tcp_init(sim->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, conn_free_cb);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->id = ++sim->next_conn_id;
    list_push_front(&sim->conns, &c->node);
    sim->st.connections++;
    char kv[64];
    snprintf(kv, sizeof(kv), "\"conn\":%u", c->id);
    simlog_event(sim, "connect", kv);
    uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb);
}
