/* comp_accounts.c - the accounts sync as a component: every
 * [dataverse] poll_interval_ms, on the leader only, smsys_smssettings and
 * smsys_smsnumbers are mirrored into PostgreSQL (accounts.h). The pickup
 * waits for the first successful sync (d->accounts_synced) so that it never
 * judges an SMS against an empty account table. */
#include "smsysd.h"

#include "smsys/accounts.h"
#include "smsys/ljob.h"
#include "smsys/log.h"

#include <errno.h>

struct comp_acc {
    struct smsysd *d;
    struct accounts *acc;
    struct ljob_task *task;
    struct ljob_task *run; /* the task of the run in progress (task may be NULL by then) */
    int failures;          /* consecutive, for the log */
};

static void sync_cb(int rc, const struct accounts_result *res, const struct smsys_err *err,
                    void *ud)
{
    struct comp_acc *c = ud;
    (void)res;
    if (rc == 0) {
        c->d->accounts_synced = 1;
        c->failures = 0;
    } else if (rc != SMSYS_ECLOSED && c->failures++ == 0) {
        /* The previous snapshot stays in use; logged once per outage. */
        log_warn("accounts_sync_failed", "error=\"%s\"",
                 log_q(err ? err->detail : smsys_strerror(rc)));
    }
    ljob_task_done(c->run, 0);
}

static void run_cb(struct ljob_task *t, void *ud)
{
    struct comp_acc *c = ud;
    c->run = t;
    if (accounts_sync(c->acc, sync_cb, c) != 0)
        ljob_task_done(t, 0);
}

static int acc_start(struct service *svc, void *ud, struct smsys_err *err)
{
    struct comp_acc *c = ud;
    const struct smsys_config *cfg = service_config(svc);
    if (c->d->dvjob == NULL)
        return 0; /* [pickup] enabled = false */
    int rc = accounts_new(service_loop(svc), c->d->pg, c->d->dv, &c->acc);
    if (rc == 0)
        rc = ljob_task_add(c->d->dvjob, "accounts", (unsigned)cfg->dataverse.poll_interval_ms,
                           run_cb, c, &c->task);
    if (rc != 0) {
        accounts_free(c->acc);
        c->acc = NULL;
        return smsys_err_set(err, rc, "cannot start the accounts sync: %s", smsys_strerror(rc));
    }
    return 0;
}

static void stopped_cb(void *ud)
{
    struct comp_acc *c = ud;
    accounts_free(c->acc);
    c->acc = NULL;
}

static void acc_drain(void *ud, service_done_cb done, void *arg)
{
    struct comp_acc *c = ud;
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

static void acc_close(void *ud, service_done_cb done, void *arg)
{
    struct comp_acc *c = ud;
    /* A run still in flight ends when the client closes; stopped_cb frees
     * the object then. */
    if (c->task) {
        struct ljob_task *t = c->task;
        c->task = NULL;
        ljob_task_stop(t, stopped_cb, c);
    }
    done(arg);
}

static int acc_health(void *ud, struct buf *detail)
{
    struct comp_acc *c = ud;
    if (c->d->dvjob == NULL) {
        buf_puts(detail, "disabled");
        return 0;
    }
    buf_printf(detail, "%s%s", c->d->accounts_synced ? "synced" : "not synced yet",
               c->failures ? " (last sync failed)" : "");
    return 0;
}

static const struct service_component acc_component = {
    .name = "accounts",
    .start = acc_start,
    .drain = acc_drain,
    .close = acc_close,
    .health = acc_health,
};

int smsysd_add_accounts(struct smsysd *d)
{
    static struct comp_acc c;
    c.d = d;
    return service_add(d->svc, &acc_component, &c);
}
