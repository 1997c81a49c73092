/* comp_templates.c - validation on save as a component: every
 * [dataverse] poll_interval_ms, on the leader only, templates created or
 * changed in Dynamics are checked against the server and an invalid one
 * gets a note naming the placeholder and position (template_check.h).
 * One change-tracking GET per interval when nothing changed. */
#include "smsysd.h"

#include "smsys/ljob.h"
#include "smsys/log.h"
#include "smsys/template_check.h"

#include <errno.h>

struct comp_tc {
    struct smsysd *d;
    struct template_check *tc;
    struct ljob_task *task;
    struct ljob_task *run; /* the task of the run in progress (task may be NULL by then) */
    int failures;          /* consecutive */
};

static void check_cb(int rc, const struct template_check_result *res, const struct smsys_err *err,
                     void *ud)
{
    struct comp_tc *c = ud;
    (void)res;
    if (rc == 0)
        c->failures = 0;
    else if (rc != SMSYS_ECLOSED && c->failures++ == 0)
        /* The same changes are read again next time; logged once per outage. */
        log_warn("template_check_failed", "error=\"%s\"",
                 log_q(err ? err->detail : smsys_strerror(rc)));
    ljob_task_done(c->run, 0);
}

static void run_cb(struct ljob_task *t, void *ud)
{
    struct comp_tc *c = ud;
    c->run = t;
    if (template_check_run(c->tc, check_cb, c) != 0)
        ljob_task_done(t, 0);
}

static int tc_start(struct service *svc, void *ud, struct smsys_err *err)
{
    struct comp_tc *c = ud;
    const struct smsys_config *cfg = service_config(svc);
    if (c->d->dvjob == NULL)
        return 0; /* no Dynamics jobs in this process */
    struct template_check_opts o = {.metrics = 1};
    int rc = template_check_new(service_loop(svc), c->d->dv, &o, &c->tc);
    if (rc == 0)
        rc = ljob_task_add(c->d->dvjob, "templates", (unsigned)cfg->dataverse.poll_interval_ms,
                           run_cb, c, &c->task);
    if (rc != 0) {
        template_check_free(c->tc);
        c->tc = NULL;
        return smsys_err_set(err, rc, "cannot start the template check: %s", smsys_strerror(rc));
    }
    return 0;
}

static void stopped_cb(void *ud)
{
    struct comp_tc *c = ud;
    template_check_free(c->tc);
    c->tc = NULL;
}

/* A run in flight is safe to abandon: its changes are read again after a
 * restart, and notes are never repeated. */
static void tc_stop(void *ud, service_done_cb done, void *arg)
{
    struct comp_tc *c = ud;
    if (c->task) {
        struct ljob_task *t = c->task;
        c->task = NULL;
        ljob_task_stop(t, stopped_cb, c);
    }
    done(arg);
}

static int tc_health(void *ud, struct buf *detail)
{
    struct comp_tc *c = ud;
    if (c->d->dvjob == NULL || c->tc == NULL) {
        buf_puts(detail, c->d->dvjob == NULL ? "disabled" : "stopped");
        return 0;
    }
    const struct template_check_stats *s = template_check_stats(c->tc);
    buf_printf(detail, "runs %llu, checked %llu, invalid %llu, notes %llu%s",
               (unsigned long long)s->runs, (unsigned long long)s->changed,
               (unsigned long long)s->invalid, (unsigned long long)s->notes,
               c->failures ? "; last run failed" : "");
    return 0; /* a failing check never makes smsysd unhealthy: sending goes on */
}

static const struct service_component tc_component = {
    .name = "templates",
    .start = tc_start,
    .drain = tc_stop,
    .close = tc_stop,
    .health = tc_health,
};

int smsysd_add_templates(struct smsysd *d)
{
    static struct comp_tc c;
    c.d = d;
    return service_add(d->svc, &tc_component, &c);
}
