/* comp_writeback.c - the write-back writer as a component: on the leader,
 * rounds of up to [pickup] writeback_batch rows run back to back while the
 * outbox has due rows, then every writeback_idle_ms (a queue NOTIFY wakes
 * it earlier). Drain keeps writing until the outbox has nothing due, within
 * the grace period; rows left over are written by the next leader. */
#include "smsysd.h"

#include "smsys/ljob.h"
#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/pg.h"
#include "smsys/queue.h"
#include "smsys/util.h"
#include "smsys/writeback.h"

#include <errno.h>
#include <stdlib.h>

#define DEPTH_EVERY_MS 5000

struct comp_wb {
    struct smsysd *d;
    struct writeback *wb;
    struct ljob_task *task;
    struct ljob_task *run; /* the task of the run in progress (task may be NULL by then) */
    struct metric *m_depth;
    uint64_t depth_at;
    int depth_inflight;
    int draining;
    service_done_cb drain_done;
    void *drain_arg;
};

static void stop_task(struct comp_wb *c);

static void depth_cb(int rc, PGresult *res, const struct smsys_err *err, void *ud)
{
    struct comp_wb *c = ud;
    (void)err;
    c->depth_inflight = 0;
    if (rc == 0 && PQntuples(res) == 1 && c->m_depth)
        metrics_set(c->m_depth, strtod(PQgetvalue(res, 0, 0), NULL));
}

static void round_cb(int rc, size_t taken, void *ud)
{
    struct comp_wb *c = ud;
    uint64_t now = util_now_ms();
    if (c->m_depth && !c->depth_inflight && c->d->pg && now - c->depth_at >= DEPTH_EVERY_MS) {
        c->depth_at = now;
        if (pg_query(c->d->pg, "SELECT count(*) FROM smsys_writeback", 0, NULL, depth_cb, c) == 0)
            c->depth_inflight = 1;
    }
    if (c->draining && (taken == 0 || rc != 0)) {
        ljob_task_done(c->run, 0);
        stop_task(c);
        return;
    }
    ljob_task_done(c->run, rc == 0 && taken > 0);
}

static void run_cb(struct ljob_task *t, void *ud)
{
    struct comp_wb *c = ud;
    c->run = t;
    if (writeback_run(c->wb, round_cb, c) != 0)
        ljob_task_done(t, 0);
}

static void notify_cb(const char *channel, const char *payload, void *ud)
{
    struct comp_wb *c = ud;
    (void)channel;
    (void)payload;
    if (c->task)
        ljob_task_kick(c->task);
}

static int wb_start(struct service *svc, void *ud, struct smsys_err *err)
{
    struct comp_wb *c = ud;
    const struct smsys_config *cfg = service_config(svc);
    if (c->d->dvjob == NULL)
        return 0;
    struct writeback_opts o = {.batch = (unsigned)cfg->pickup.writeback_batch, .metrics = 1};
    int rc = writeback_new(service_loop(svc), c->d->dvq, c->d->dv, &o, &c->wb);
    if (rc == 0)
        rc = ljob_task_add(c->d->dvjob, "writeback", (unsigned)cfg->pickup.writeback_idle_ms,
                           run_cb, c, &c->task);
    if (rc != 0) {
        writeback_free(c->wb);
        c->wb = NULL;
        return smsys_err_set(err, rc, "cannot start the write-back: %s", smsys_strerror(rc));
    }
    c->m_depth = metrics_gauge(NULL, "smsys_writeback_outbox_depth",
                               "Rows in the write-back outbox (refreshed every 5 s).", NULL);
    /* Not fatal: the idle timer still finds the rows. */
    if (queue_listen(c->d->dvq, notify_cb, c) != 0)
        log_warn("writeback_listen_failed", "fallback=timer interval_ms=%lld",
                 cfg->pickup.writeback_idle_ms);
    return 0;
}

static void stopped_cb(void *ud)
{
    struct comp_wb *c = ud;
    writeback_free(c->wb);
    c->wb = NULL;
    if (c->drain_done) {
        service_done_cb done = c->drain_done;
        c->drain_done = NULL;
        done(c->drain_arg);
    }
}

static void stop_task(struct comp_wb *c)
{
    if (c->task == NULL)
        return;
    struct ljob_task *t = c->task;
    c->task = NULL;
    ljob_task_stop(t, stopped_cb, c);
}

static void wb_drain(void *ud, service_done_cb done, void *arg)
{
    struct comp_wb *c = ud;
    if (c->task == NULL) {
        done(arg);
        return;
    }
    c->drain_done = done;
    c->drain_arg = arg;
    if (!ljob_is_leader(c->d->dvjob)) {
        stop_task(c);
        return;
    }
    c->draining = 1;
    ljob_task_kick(c->task);
}

static void wb_close(void *ud, service_done_cb done, void *arg)
{
    struct comp_wb *c = ud;
    c->drain_done = NULL;
    stop_task(c);
    done(arg);
}

static int wb_health(void *ud, struct buf *detail)
{
    struct comp_wb *c = ud;
    if (c->d->dvjob == NULL) {
        buf_puts(detail, "disabled");
        return 0;
    }
    if (c->wb == NULL) {
        buf_puts(detail, "stopped");
        return 0;
    }
    const struct writeback_stats *s = writeback_stats(c->wb);
    buf_printf(detail, "%s; written %llu, dropped %llu, retried %llu, requests %llu",
               ljob_is_leader(c->d->dvjob) ? "writing" : "standby",
               (unsigned long long)s->rows_written, (unsigned long long)s->rows_dropped,
               (unsigned long long)s->rows_failed, (unsigned long long)s->requests);
    return 0;
}

static const struct service_component wb_component = {
    .name = "writeback",
    .start = wb_start,
    .drain = wb_drain,
    .close = wb_close,
    .health = wb_health,
};

int smsysd_add_writeback(struct smsysd *d)
{
    static struct comp_wb c;
    c.d = d;
    return service_add(d->svc, &wb_component, &c);
}
