/* comp_tracker.c - delivery tracking by polling and receipt deadlines
 * (tracker.h) as a component; one process of a cluster runs it (leader). */
#include "smsysd.h"

#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/tracker.h"

#include <errno.h>

struct comp_tracker {
    struct smsysd *d;
    struct tracker *t;
    service_done_cb done;
    void *done_arg;
};

static int trk_start(struct service *svc, void *ud, struct smsys_err *err)
{
    struct comp_tracker *c = ud;
    const struct smsys_config *cfg = service_config(svc);
    if (c->d->queue == NULL || c->d->connmgr == NULL)
        return smsys_err_set(err, -EINVAL, "the connectors component is not running");
    struct tracker_opts o = {
        .expire_ms = (unsigned)cfg->queue.expire_interval_ms,
        .polled = metrics_counter(NULL, "smsys_receipts_polled_total",
                                  "Delivery states obtained by status queries", NULL),
    };
    int rc = tracker_new(service_loop(svc), c->d->queue, c->d->pg, c->d->connmgr, &o, &c->t);
    if (rc)
        return smsys_err_set(err, rc, "cannot start the tracker: %s", smsys_strerror(rc));
    return 0;
}

static void trk_closed_cb(void *ud)
{
    struct comp_tracker *c = ud;
    c->t = NULL;
    c->done(c->done_arg);
}

static void trk_close(void *ud, service_done_cb done, void *arg)
{
    struct comp_tracker *c = ud;
    if (c->t == NULL) {
        done(arg);
        return;
    }
    c->done = done;
    c->done_arg = arg;
    tracker_close(c->t, trk_closed_cb, c);
}

static int trk_health(void *ud, struct buf *detail)
{
    struct comp_tracker *c = ud;
    if (c->t == NULL) {
        buf_puts(detail, "closed");
        return -1;
    }
    buf_puts(detail, tracker_is_leader(c->t) ? "ok, leader" : "ok, standby");
    return 0;
}

static const struct service_component tracker_component = {
    .name = "tracker",
    .start = trk_start,
    .close = trk_close,
    .health = trk_health,
};

int smsysd_add_tracker(struct smsysd *d)
{
    static struct comp_tracker c;
    c.d = d;
    return service_add(d->svc, &tracker_component, &c);
}
