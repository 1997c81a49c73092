/* connmgr_events.c - what connectors push (connmgr.h): receipts are
 * collected per account and stored in batches; inbound SMS and their parts
 * are stored one by one. Either way the connector's ack goes out only
 * after the commit: durable before acknowledged. */
#include "connmgr_int.h"

#include "smsys/inbound.h"
#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/mo_parts.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void pev_free(struct pev *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)e[i].st.provider_id);
        free((char *)e[i].st.our_id);
        free((char *)e[i].st.detail);
    }
}

/* Acks every receipt of the applying batch with rc, then frees the batch;
 * the account can take the next one. */
static void applying_done(struct acct *a, int rc)
{
    for (size_t i = 0; i < a->napplying; i++)
        a->applying[i].ack(a->applying[i].token, rc);
    pev_free(a->applying, a->napplying);
    free(a->applying);
    free(a->apply_st);
    a->apply_st = NULL;
    a->applying = NULL;
    a->napplying = 0;
    a->applying_busy = 0;
}

static void applied_cb(int rc, int matched, int changed, const struct smsys_err *err, void *ud)
{
    struct acct *a = ud;
    struct connmgr *m = a->m;
    m->busy--;
    if (rc < 0)
        log_warn("receipts not stored, refused for redelivery", "account=%s n=%zu error=\"%s\"",
                 a->name, a->napplying,
                 log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
    else if (m->o.receipts)
        metrics_add(m->o.receipts, (double)a->napplying);
    log_debug("receipts applied", "account=%s n=%zu matched=%d changed=%d", a->name, a->napplying,
              matched, changed);
    /* Durable before acknowledged: acks go out only after the commit. */
    applying_done(a, rc < 0 ? rc : 0);
    cm_flush_events(a);
    if (a->closing)
        cm_acct_continue_close(a);
    cm_maybe_finish(m);
}

void cm_flush_events(struct acct *a)
{
    if (a->applying_busy || a->nev == 0)
        return;
    uv_timer_stop(&a->evtimer);
    a->applying = a->ev;
    a->napplying = a->nev;
    a->ev = NULL;
    a->nev = a->capev = 0;
    a->apply_st = malloc(a->napplying * sizeof(*a->apply_st));
    int rc = -ENOMEM;
    if (a->apply_st) {
        for (size_t i = 0; i < a->napplying; i++)
            a->apply_st[i] = a->applying[i].st;
        /* Through the sender's lane when there is one (see sender.h). */
        rc = a->sender
                 ? sender_apply_states(a->sender, a->apply_st, a->napplying, applied_cb, a)
                 : queue_apply_states(a->m->q, a->id, a->apply_st, a->napplying, applied_cb, a);
    }
    if (rc == 0) {
        a->applying_busy = 1;
        a->m->busy++;
        return;
    }
    log_warn("receipts not stored, refused for redelivery", "account=%s n=%zu error=\"%s\"",
             a->name, a->napplying, smsys_strerror(rc));
    applying_done(a, rc);
}

static void evtimer_cb(uv_timer_t *t)
{
    cm_flush_events(container_of(t, struct acct, evtimer));
}

static char *dupn(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct moctx {
    struct acct *a;
    conn_ack_fn ack;
    void *token;
};

/* An inbound store has answered (and the connector its ack): frees c and
 * lets a waiting close go on. */
static void mo_done(struct moctx *c)
{
    struct acct *a = c->a;
    free(c);
    a->mo_busy--;
    a->m->busy--;
    if (a->closing)
        cm_acct_continue_close(a);
    cm_maybe_finish(a->m);
}

static void mo_added_cb(void *ud, int rc, enum mo_parts_outcome outcome,
                        const struct mo_parts_msg *msg, const struct smsys_err *err)
{
    struct moctx *c = ud;
    struct acct *a = c->a;
    /* Durable before acknowledged. A completed group stays in the parts
     * store (not marked done) until the inbound consumer takes it with
     * mo_parts_sweep(). */
    c->ack(c->token, rc < 0 ? rc : 0);
    if (rc < 0)
        log_warn("inbound part not stored, refused for redelivery", "account=%s error=\"%s\"",
                 a->name, log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
    else if (outcome == MO_PARTS_COMPLETE && msg)
        inbound_accept_group(a->m->pg, msg, NULL); /* the sweep retries a failure */
    mo_done(c);
}

static void mo_stored_cb(void *ud, int rc, int64_t id, int inserted, const struct smsys_err *err)
{
    struct moctx *c = ud;
    struct acct *a = c->a;
    /* Durable before acknowledged. */
    c->ack(c->token, rc < 0 ? rc : 0);
    if (rc < 0)
        log_warn("inbound message not stored, refused for redelivery", "account=%s error=\"%s\"",
                 a->name, log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
    else
        log_debug("inbound message stored", "account=%s id=%lld new=%d", a->name, (long long)id,
                  inserted);
    mo_done(c);
}

void cm_event_cb(void *ud, const struct conn_event *ev, conn_ack_fn ack, void *token)
{
    struct acct *a = ud;
    if (ev->kind == CONN_EV_MO && !a->closing) {
        /* A whole message: stored (deduplicated) in smsys_inbound, then
         * acknowledged; refused when it could not be stored. A part of a
         * long message goes to the parts store the same way. */
        struct moctx *c = malloc(sizeof(*c));
        if (c)
            *c = (struct moctx){a, ack, token};
        int rc = -ENOMEM;
        if (c && ev->u.mo.part_total > 0)
            rc = mo_parts_add(a->m->pg, a->id, &ev->u.mo, mo_added_cb, c);
        else if (c)
            rc = inbound_accept(a->m->pg, a->id, &ev->u.mo, NULL, mo_stored_cb, c);
        if (rc < 0) {
            free(c);
            ack(token, rc);
            return;
        }
        a->mo_busy++;
        a->m->busy++;
        return;
    }
    if (ev->kind != CONN_EV_STATE || a->closing) {
        ack(token, a->closing ? SMSYS_ECLOSED : -EINVAL);
        return;
    }
    if (a->nev == a->capev) {
        size_t cap = a->capev ? a->capev * 2 : 64;
        struct pev *p = realloc(a->ev, cap * sizeof(*p));
        if (p == NULL) {
            ack(token, -ENOMEM);
            return;
        }
        a->ev = p;
        a->capev = cap;
    }
    struct pev *p = &a->ev[a->nev++];
    p->st = ev->u.state;
    p->st.provider_id = dupn(ev->u.state.provider_id);
    p->st.our_id = dupn(ev->u.state.our_id);
    p->st.detail = dupn(ev->u.state.detail);
    p->ack = ack;
    p->token = token;
    if (a->nev >= a->m->o.event_batch)
        cm_flush_events(a);
    else if (!uv_is_active((uv_handle_t *)&a->evtimer))
        uv_timer_start(&a->evtimer, evtimer_cb, a->m->o.event_delay_ms, 0);
}
