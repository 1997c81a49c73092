/* comp_bulk.c - the bulk SMS engine (bulk.h) as a component: a leader-only
 * task "bulk" running bulk_run every [bulk] poll_interval_ms, at once again
 * while there is work, and on NOTIFY smsys_bulk (smsysctl commands). The
 * task joins the "dynamics" leader group (the lock of pickup, accounts and
 * write-back): one lock, one pinned connection, and two smsysd never
 * expand the same bulk. With [pickup] enabled = false there is no such
 * group and the task gets its own lock, "bulk".
 * Drain and close stop the job; a run in flight ends on its own (every
 * step is durable in PostgreSQL, so abandoning it loses nothing). */
#include "comp_bulk.h"

#include "smsys/bulk.h"
#include "smsys/config.h"
#include "smsys/ljob.h"
#include "smsys/log.h"
#include "smsys/pg.h"
#include "smsys/queue.h"

#include <errno.h>
#include <stdlib.h>

struct comp_bulk {
    struct smsysd *d;
    struct queue *q;  /* our handle for the leader lock */
    struct ljob *job; /* d->dvjob, or our own */
    int own_job;
    struct ljob_task *task;
    struct ljob_task *run;
    struct bulk_engine *eng;
    int listening;
    int failures;
    int stopping;
};

static void run_done_cb(int rc, int more, void *ud)
{
    struct comp_bulk *c = ud;
    c->failures = rc == 0 ? 0 : c->failures + 1;
    struct ljob_task *t = c->run;
    c->run = NULL;
    if (rc != 0 && !more)
        ljob_task_done_in(t, 1000); /* something failed: not faster than 1/s */
    else
        ljob_task_done(t, more && !c->stopping);
}

static void run_cb(struct ljob_task *t, void *ud)
{
    struct comp_bulk *c = ud;
    c->run = t;
    if (c->stopping || c->eng == NULL || bulk_run(c->eng, run_done_cb, c) != 0) {
        c->run = NULL;
        ljob_task_done(t, 0);
    }
}

static void notify_cb(const char *channel, const char *payload, void *ud)
{
    struct comp_bulk *c = ud;
    (void)channel;
    (void)payload; /* NULL after a reconnect: catch up all the same */
    if (c->eng == NULL || c->stopping)
        return;
    bulk_kick(c->eng);
    if (c->task)
        ljob_task_kick(c->task);
}

static int bk_start(struct service *svc, void *ud, struct smsys_err *err)
{
    struct comp_bulk *c = ud;
    const struct smsys_config *cfg = service_config(svc);
    if (!cfg->bulk.enabled || c->d->dv == NULL || c->d->pg == NULL)
        return 0;
    struct bulk_opts o = {
        .phone_columns = cfg->pickup.phone_columns,
        .optout_tables = cfg->pickup.optout_tables,
        .optout_column = cfg->pickup.optout_column,
        .default_country = cfg->pickup.default_country,
        .max_segments = (unsigned)cfg->pickup.max_segments,
        .page_size = (unsigned)cfg->bulk.page_size,
        .chunk = (unsigned)cfg->bulk.chunk,
        .rate_per_s = (double)cfg->bulk.rate_per_s,
        .refuse_over_balance = cfg->bulk.refuse_over_balance,
        .quiet_set = cfg->sending.quiet_hours.set,
        .quiet_start = cfg->sending.quiet_hours.start_min,
        .quiet_end = cfg->sending.quiet_hours.end_min,
        .timezone = cfg->sending.timezone,
        .poll_ms = (unsigned)cfg->bulk.poll_interval_ms,
        .counters_ms = (unsigned)cfg->bulk.counters_interval_ms,
    };
    uv_loop_t *loop = service_loop(svc);
    int rc = bulk_new(loop, c->d->pg, c->d->dv, &o, &c->eng, err);
    if (rc != 0)
        return rc;
    c->own_job = c->d->dvjob == NULL;
    c->job = c->d->dvjob;
    if (c->own_job) {
        rc = queue_new(loop, c->d->pg, NULL, &c->q);
        if (rc == 0)
            rc = ljob_new(loop, c->q, "bulk", 1000, &c->job);
    }
    if (rc == 0)
        rc = ljob_task_add(c->job, "bulk", (unsigned)cfg->bulk.poll_interval_ms, run_cb, c,
                           &c->task);
    if (rc == 0 && !c->listening) {
        /* subscriptions live as long as the pool: once per process */
        rc = pg_listen(c->d->pg, BULK_CHANNEL, notify_cb, c);
        c->listening = rc == 0;
    }
    if (rc != 0) {
        if (c->job && c->own_job)
            ljob_close(c->job, NULL, NULL);
        c->job = NULL;
        c->task = NULL;
        return smsys_err_set(err, rc, "cannot start the bulk engine: %s", smsys_strerror(rc));
    }
    c->stopping = 0;
    log_info("bulk engine started", "poll_ms=%lld chunk=%lld quiet_hours=%s",
             cfg->bulk.poll_interval_ms, cfg->bulk.chunk,
             cfg->sending.quiet_hours.set ? "on" : "off");
    return 0;
}

static void job_closed_cb(void *ud)
{
    struct comp_bulk *c = ud;
    if (c->q)
        queue_free(c->q);
    c->q = NULL;
    bulk_free(c->eng);
    c->eng = NULL;
}

static void task_stopped_cb(void *ud)
{
    struct comp_bulk *c = ud;
    struct ljob *j = c->job;
    c->job = NULL;
    if (j && c->own_job)
        ljob_close(j, job_closed_cb, c);
    else
        job_closed_cb(c); /* the group is comp_dataverse's to close */
}

static void bk_stop(struct comp_bulk *c)
{
    c->stopping = 1;
    if (c->eng)
        bulk_stop(c->eng);
    if (c->task) {
        struct ljob_task *t = c->task;
        c->task = NULL;
        ljob_task_stop(t, task_stopped_cb, c);
    }
}

static void bk_drain(void *ud, service_done_cb done, void *arg)
{
    bk_stop(ud);
    done(arg);
}

static void bk_close(void *ud, service_done_cb done, void *arg)
{
    bk_stop(ud);
    done(arg);
}

static int bk_health(void *ud, struct buf *detail)
{
    struct comp_bulk *c = ud;
    if (c->eng == NULL) {
        buf_puts(detail, "disabled");
        return 0;
    }
    const struct bulk_stats *s = bulk_stats(c->eng);
    buf_printf(detail,
               "%s; started %llu, pages %llu, records %llu, released %llu, Dynamics requests "
               "%llu%s",
               c->job && ljob_is_leader(c->job) ? "leader" : "standby",
               (unsigned long long)s->started, (unsigned long long)s->pages,
               (unsigned long long)s->records, (unsigned long long)s->released,
               (unsigned long long)s->dv_requests, c->failures ? "; last run failed" : "");
    return c->failures > 10 ? -1 : 0;
}

static const struct service_component bk_component = {
    .name = "bulk",
    .start = bk_start,
    .drain = bk_drain,
    .close = bk_close,
    .health = bk_health,
};

int smsysd_add_bulk(struct smsysd *d)
{
    static struct comp_bulk c;
    c.d = d;
    return service_add(d->svc, &bk_component, &c);
}
