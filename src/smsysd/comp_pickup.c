/* comp_pickup.c - the pickup as a component: every [dataverse]
 * poll_interval_ms (at once again while pages come back full), on the
 * leader only, Pending SMS records go into the queue (pickup.h). Drain
 * stops polling; a poll in flight finishes (or fails when the client
 * closes, harmlessly: the next start reads the same records again). */
#include "smsysd.h"

#include "smsys/ljob.h"
#include "smsys/log.h"
#include "smsys/pickup.h"

#include <errno.h>

struct comp_pk {
    struct smsysd *d;
    struct pickup *pk;
    struct ljob_task *task;
    struct ljob_task *run; /* the task of the run in progress (task may be NULL by then) */
    int failures;
};

static void poll_cb(int rc, const struct pickup_result *res, const struct smsys_err *err, void *ud)
{
    struct comp_pk *c = ud;
    (void)err; /* pickup logs its failures */
    c->failures = rc == 0 ? 0 : c->failures + 1;
    if (rc == 0 && res && res->backlog)
        /* The write-back clears 1 000 records per request: the next page
         * of new records is usually reachable well before the interval. */
        ljob_task_done_in(c->run, 250);
    else
        ljob_task_done(c->run, rc == 0 && res && res->more);
}

static void run_cb(struct ljob_task *t, void *ud)
{
    struct comp_pk *c = ud;
    c->run = t;
    if (!c->d->accounts_synced || pickup_poll(c->pk, poll_cb, c) != 0)
        ljob_task_done(t, 0);
}

static int pk_start(struct service *svc, void *ud, struct smsys_err *err)
{
    struct comp_pk *c = ud;
    const struct smsys_config *cfg = service_config(svc);
    if (c->d->dvjob == NULL)
        return 0;
    struct pickup_opts o = {
        .phone_columns = cfg->pickup.phone_columns,
        .optout_tables = cfg->pickup.optout_tables,
        .optout_column = cfg->pickup.optout_column,
        .default_country = cfg->pickup.default_country,
        .max_segments = (unsigned)cfg->pickup.max_segments,
        .max_rows = (unsigned)cfg->pickup.page_size,
        .metrics = 1,
    };
    int rc = pickup_new(service_loop(svc), c->d->dvq, c->d->pg, c->d->dv, &o, &c->pk, err);
    if (rc != 0)
        return rc == -ENOMEM ? smsys_err_set(err, rc, "cannot start the pickup: out of memory")
                             : rc;
    rc = ljob_task_add(c->d->dvjob, "pickup", (unsigned)cfg->dataverse.poll_interval_ms, run_cb, c,
                       &c->task);
    if (rc != 0) {
        pickup_free(c->pk);
        c->pk = NULL;
        return smsys_err_set(err, rc, "cannot start the pickup: %s", smsys_strerror(rc));
    }
    return 0;
}

static void stopped_cb(void *ud)
{
    struct comp_pk *c = ud;
    pickup_free(c->pk);
    c->pk = NULL;
}

static void pk_drain(void *ud, service_done_cb done, void *arg)
{
    struct comp_pk *c = ud;
    /* Reads in flight are safe to abandon (the next start reads the same
     * records again; enqueue is idempotent), so the stop does not wait for
     * a slow or unreachable Dynamics: no new run starts, the current one
     * ends on its own or when the client closes. */
    if (c->task) {
        struct ljob_task *t = c->task;
        c->task = NULL;
        ljob_task_stop(t, stopped_cb, c);
    }
    done(arg);
}

static void pk_close(void *ud, service_done_cb done, void *arg)
{
    struct comp_pk *c = ud;
    if (c->task) {
        struct ljob_task *t = c->task;
        c->task = NULL;
        ljob_task_stop(t, stopped_cb, c);
    }
    done(arg);
}

static int pk_health(void *ud, struct buf *detail)
{
    struct comp_pk *c = ud;
    if (c->d->dvjob == NULL) {
        buf_puts(detail, "disabled");
        return 0;
    }
    if (c->pk == NULL) {
        buf_puts(detail, "stopped");
        return 0;
    }
    const struct pickup_stats *s = pickup_stats(c->pk);
    buf_printf(detail, "%s; polls %llu, records %llu, queued %llu, requests %llu%s",
               ljob_is_leader(c->d->dvjob) ? "polling" : "standby", (unsigned long long)s->polls,
               (unsigned long long)s->records, (unsigned long long)s->inserted,
               (unsigned long long)s->requests, c->failures ? "; last poll failed" : "");
    return c->failures > 3 ? -1 : 0;
}

static const struct service_component pk_component = {
    .name = "pickup",
    .start = pk_start,
    .drain = pk_drain,
    .close = pk_close,
    .health = pk_health,
};

int smsysd_add_pickup(struct smsysd *d)
{
    static struct comp_pk c;
    c.d = d;
    return service_add(d->svc, &pk_component, &c);
}
