/* comp_sender.c - the send side of the service: drains the senders on
 * stop (no new claims; in-flight batches answered and recorded within the
 * grace period) and keeps the queue depth gauges fresh. The senders
 * themselves belong to the connector manager (one per open account). */
#include "smsysd.h"

#include "smsys/connmgr.h"
#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/queue.h"

#include <stdio.h>

#define STATS_MS 15000 /* queue_stats scans smsys_message: not on every scrape */

struct comp_sender {
    struct smsysd *d;
    uv_timer_t timer;
    int timer_up, stats_busy, closing;
    struct metric *depth, *inflight, *retrying, *oldest;
    service_done_cb done;
    void *done_arg;
};

static void stats_cb(int rc, const struct queue_stat *rows, size_t n, const struct smsys_err *err,
                     void *ud)
{
    struct comp_sender *c = ud;
    c->stats_busy = 0;
    if (rc < 0) {
        log_warn("queue stats failed", "error=\"%s\"",
                 log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
    } else {
        double depth = 0, inflight = 0, retrying = 0, oldest = 0;
        for (size_t i = 0; i < n; i++) {
            if (rows[i].state == QUEUE_QUEUED || rows[i].state == QUEUE_RETRYING) {
                depth += (double)rows[i].count;
                if (rows[i].oldest_s > oldest)
                    oldest = rows[i].oldest_s;
            }
            if (rows[i].state == QUEUE_RETRYING)
                retrying += (double)rows[i].count;
            if (rows[i].state == QUEUE_INFLIGHT)
                inflight += (double)rows[i].count;
        }
        metrics_set(c->depth, depth);
        metrics_set(c->inflight, inflight);
        metrics_set(c->retrying, retrying);
        metrics_set(c->oldest, oldest);
    }
    if (c->closing && c->done) {
        service_done_cb done = c->done;
        c->done = NULL;
        uv_close((uv_handle_t *)&c->timer, NULL);
        done(c->done_arg);
    }
}

static void timer_cb(uv_timer_t *t)
{
    struct comp_sender *c = t->data;
    if (c->stats_busy || c->d->queue == NULL)
        return;
    if (queue_stats(c->d->queue, stats_cb, c) == 0)
        c->stats_busy = 1;
}

static int snd_start(struct service *svc, void *ud, struct smsys_err *err)
{
    struct comp_sender *c = ud;
    (void)err;
    c->depth =
        metrics_gauge(NULL, "smsys_queue_depth", "Messages waiting (Queued + Retrying)", NULL);
    c->retrying = metrics_gauge(NULL, "smsys_queue_retrying", "Messages waiting for a retry", NULL);
    c->inflight =
        metrics_gauge(NULL, "smsys_queue_inflight", "Messages claimed, being handed over", NULL);
    c->oldest = metrics_gauge(NULL, "smsys_queue_oldest_seconds",
                              "Age of the oldest waiting message", NULL);
    uv_timer_init(service_loop(svc), &c->timer);
    c->timer.data = c;
    c->timer_up = 1;
    uv_timer_start(&c->timer, timer_cb, 1000, STATS_MS);
    return 0;
}

static void snd_drain(void *ud, service_done_cb done, void *arg)
{
    struct comp_sender *c = ud;
    if (c->d->connmgr)
        connmgr_drain(c->d->connmgr, done, arg);
    else
        done(arg);
}

static void timer_closed_cb(uv_handle_t *h)
{
    struct comp_sender *c = h->data;
    c->timer_up = 0;
    c->done(c->done_arg);
}

static void snd_close(void *ud, service_done_cb done, void *arg)
{
    struct comp_sender *c = ud;
    c->done = done;
    c->done_arg = arg;
    c->closing = 1;
    if (!c->timer_up) {
        done(arg);
        return;
    }
    uv_timer_stop(&c->timer);
    if (c->stats_busy)
        return; /* stats_cb finishes the close (the queue must stay valid) */
    uv_close((uv_handle_t *)&c->timer, timer_closed_cb);
}

static int snd_health(void *ud, struct buf *detail)
{
    struct comp_sender *c = ud;
    buf_printf(detail, "ok, queue depth %.0f", c->depth ? metrics_value(c->depth) : 0.0);
    return 0;
}

static const struct service_component sender_component = {
    .name = "sender",
    .start = snd_start,
    .drain = snd_drain,
    .close = snd_close,
    .health = snd_health,
};

int smsysd_add_sender(struct smsysd *d)
{
    static struct comp_sender c;
    c.d = d;
    return service_add(d->svc, &sender_component, &c);
}
