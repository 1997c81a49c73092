/* inbound_loop.c - the inbound leader loop (inbound_start/stop): rounds,
 * phone index refreshes, inbox polling of the connector manager's
 * accounts and the multipart sweep (inbound.h). */
#include "inbound_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/connmgr.h"
#include "smsys/log.h"
#include "smsys/util.h"

/* ---- inbox polling ---- */

void inbound_attach_connmgr(struct inbound *in, struct connmgr *m)
{
    in->cm = m;
}

static void maybe_stopped(struct inbound *in);

static void inbox_polled_cb(void *ud, int rc, unsigned fetched, unsigned inserted,
                            const struct smsys_err *err)
{
    struct inbound *in = ud;
    in->polls_busy--;
    if (rc < 0 && rc != -ENOTSUP)
        log_warn("inbox poll failed", "error=%s", log_q(err ? err->detail : smsys_strerror(rc)));
    else if (fetched)
        log_info("inbox polled", "fetched=%u new=%u", fetched, inserted);
    if (in->stopping)
        maybe_stopped(in);
}

static void swept_cb(void *ud, int rc, unsigned stored, const struct smsys_err *err)
{
    struct inbound *in = ud;
    in->sweep_busy = 0;
    in->sweep_at_ms = util_now_ms();
    if (rc < 0)
        log_warn("multipart sweep failed", "error=%s", log_q(err ? err->detail : ""));
    else if (stored)
        log_info("multipart messages stored by the sweep", "count=%u", stored);
    if (in->stopping)
        maybe_stopped(in);
}

/* One account of the connector manager: poll when its interval is due. */
static void inbox_each(void *ud, const struct connmgr_account *a)
{
    struct inbound *in = ud;
    if (a->ops == NULL || a->ops->inbox == NULL || a->conn == NULL)
        return;
    struct inbox_due *d = NULL;
    for (size_t i = 0; i < in->ndue && d == NULL; i++)
        if (strcmp(in->due[i].id, a->id) == 0)
            d = &in->due[i];
    if (d == NULL) {
        if (in->ndue == in->capdue) {
            size_t cap = in->capdue ? in->capdue * 2 : 8;
            struct inbox_due *nd = realloc(in->due, cap * sizeof(*nd));
            if (nd == NULL)
                return;
            in->due = nd;
            in->capdue = cap;
        }
        d = &in->due[in->ndue++];
        snprintf(d->id, sizeof(d->id), "%s", a->id);
        d->next_ms = 0;
    }
    uint64_t now = util_now_ms();
    if (now < d->next_ms)
        return;
    d->next_ms = now + (uint64_t)(a->inbound_interval_s ? a->inbound_interval_s : 60) * 1000;
    if (inbound_poll_inbox(in->pool, a->id, a->ops, a->conn, in->country, inbox_polled_cb, in) == 0)
        in->polls_busy++;
}

/* ---- leader loop ---- */

static void arm(struct inbound *in, uint64_t ms);

static void round_cb(void *ud, int rc, unsigned processed, const struct smsys_err *err)
{
    struct inbound *in = ud;
    if (rc < 0)
        log_warn("inbound round failed", "detail=%s", log_q(err ? err->detail : ""));
    if (in->stopping)
        return;
    /* a full batch: more are probably waiting */
    arm(in, processed >= in->o.batch ? 0 : in->o.interval_ms);
}

static void run_round(struct inbound *in)
{
    if (inbound_run_once(in, round_cb, in) < 0)
        arm(in, in->o.interval_ms);
}

static void index_cb(void *ud, int rc, unsigned long rows, const struct smsys_err *err)
{
    struct inbound *in = ud;
    in->index_busy = 0;
    in->index_at_ms = util_now_ms();
    if (rc < 0)
        log_warn("phone index refresh failed", "detail=%s", log_q(err ? err->detail : ""));
    else
        log_debug("phone index refreshed", "rows=%lu", rows);
    if (!in->stopping)
        run_round(in);
}

static void leader_lost_cb(struct queue_leader *ld, void *ud)
{
    struct inbound *in = ud;
    if (in->leader == ld)
        in->leader = NULL;
    queue_leader_release(ld);
}

static void leader_cb(int rc, struct queue_leader *ld, const struct smsys_err *err, void *ud)
{
    (void)err;
    struct inbound *in = ud;
    in->leader_pending = 0;
    if (in->stopping) {
        if (ld)
            queue_leader_release(ld);
        maybe_stopped(in);
        return;
    }
    if (rc == 0 && ld)
        in->leader = ld;
    arm(in, in->leader ? 0 : in->o.interval_ms);
}

static void tick_cb(uv_timer_t *t)
{
    struct inbound *in = container_of(t, struct inbound, timer);
    if (in->stopping)
        return;
    if (in->leader == NULL) {
        if (!in->leader_pending &&
            queue_leader_try(in->q, "inbound", leader_cb, leader_lost_cb, in) == 0)
            in->leader_pending = 1;
        else
            arm(in, in->o.interval_ms);
        return;
    }
    if (in->cm)
        connmgr_each(in->cm, inbox_each, in);
    /* Multipart groups a crash left complete, or that stayed incomplete
     * for 5 minutes, every minute. */
    if (!in->sweep_busy && (in->sweep_at_ms == 0 || util_now_ms() - in->sweep_at_ms >= 60000) &&
        inbound_sweep_parts(in->pool, 300, in->country, swept_cb, in) == 0)
        in->sweep_busy = 1;
    /* The index is refreshed before the round, so the first round after
     * start sees the loaded index and later rounds see recent changes. */
    if (in->pi && !in->index_busy &&
        (in->index_at_ms == 0 || util_now_ms() - in->index_at_ms >= in->o.index_interval_ms) &&
        phone_index_refresh(in->pi, index_cb, in) == 0) {
        in->index_busy = 1;
        return;
    }
    run_round(in);
}

static void arm(struct inbound *in, uint64_t ms)
{
    uv_timer_start(&in->timer, tick_cb, ms, 0);
}

int inbound_start(struct inbound *in)
{
    if (in->started)
        return -EINVAL;
    int rc = uv_timer_init(in->loop, &in->timer);
    if (rc < 0)
        return rc;
    in->started = in->timer_open = 1;
    arm(in, 0);
    return 0;
}

static void timer_closed_cb(uv_handle_t *h)
{
    struct inbound *in = container_of((uv_timer_t *)h, struct inbound, timer);
    in->timer_open = 0;
    maybe_stopped(in);
}

static void stop_wait_cb(void *ud, int rc, unsigned processed, const struct smsys_err *err)
{
    (void)rc;
    (void)processed;
    (void)err;
    maybe_stopped(ud);
}

static void index_stop_cb(void *ud, int rc, unsigned long rows, const struct smsys_err *err)
{
    (void)rc;
    (void)rows;
    (void)err;
    struct inbound *in = ud;
    in->index_busy = 0;
    maybe_stopped(in);
}

static void maybe_stopped(struct inbound *in)
{
    if (in->timer_open || in->busy || in->index_busy || in->leader_pending || in->polls_busy ||
        in->sweep_busy || !in->stop_cb)
        return;
    if (in->leader) {
        queue_leader_release(in->leader);
        in->leader = NULL;
    }
    void (*cb)(void *) = in->stop_cb;
    in->stop_cb = NULL;
    cb(in->stop_ud);
}

void inbound_stop(struct inbound *in, void (*cb)(void *ud), void *ud)
{
    in->stopping = 1;
    in->stop_cb = cb;
    in->stop_ud = ud;
    /* A running round or refresh finishes on its own; route its callback
     * to the stop path. */
    if (in->busy)
        in->cb = stop_wait_cb, in->ud = in;
    if (in->index_busy)
        phone_index_rebind(in->pi, index_stop_cb, in);
    if (in->timer_open) {
        uv_timer_stop(&in->timer);
        uv_close((uv_handle_t *)&in->timer, timer_closed_cb);
        return;
    }
    maybe_stopped(in);
}
