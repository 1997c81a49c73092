/* comp_connectors.c - the queue, the shared HTTP client and the connector
 * manager (one connector + sender per enabled account) as a component.
 * Stop: the sender component drains the senders first; close here closes
 * every connector (their pending callbacks complete first), then the HTTP
 * client. */
#include "smsysd.h"

#include "smsys/accounts.h"
#include "smsys/connmgr.h"
#include "smsys/http_client.h"
#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/queue.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

struct comp_conn {
    struct smsysd *d;
    struct sender_metrics sm;
    struct metric *receipts;
    char owner[200];
    int own_queue;
    service_done_cb done;
    void *done_arg;
};

static const double latency_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

static void make_metrics(struct comp_conn *c)
{
    c->sm.sent =
        metrics_counter(NULL, "smsys_messages_sent_total", "Messages accepted by a provider", NULL);
    c->sm.failed =
        metrics_counter(NULL, "smsys_messages_failed_total",
                        "Messages failed at hand-over (permanent or retries used up)", NULL);
    c->sm.retries = metrics_counter(NULL, "smsys_messages_retries_total",
                                    "Temporary send errors scheduled for a retry", NULL);
    c->sm.unknown = metrics_counter(NULL, "smsys_messages_unknown_total",
                                    "Hand-overs with an unknown outcome (not resent)", NULL);
    c->sm.requeued = metrics_counter(NULL, "smsys_messages_requeued_total",
                                     "Messages given back after an account-wide error", NULL);
    c->sm.send_latency =
        metrics_histogram(NULL, "smsys_send_latency_seconds", "From claim to the provider's answer",
                          NULL, latency_bounds, sizeof(latency_bounds) / sizeof(latency_bounds[0]));
    c->receipts = metrics_counter(NULL, "smsys_receipts_total",
                                  "Delivery receipts stored (pushed by providers)", NULL);
}

static void balance_written_cb(int rc, const struct smsys_err *err, void *ud)
{
    (void)ud;
    if (rc < 0)
        log_warn("cannot write the balance to Dynamics", "error=\"%s\"",
                 log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
}

/* Each balance read goes to the account record in Dynamics (F13); without
 * a Dynamics client (not configured, not started) it stays in the log,
 * the metrics and /healthz. A failed write waits for the next read. */
static void balance_read_cb(void *ud, const char *account_id, const char *account_name,
                            const struct conn_balance *b, int low)
{
    struct comp_conn *c = ud;
    (void)account_name;
    (void)low;
    if (c->d->dv == NULL)
        return;
    int rc =
        accounts_write_balance(c->d->dv, account_id, b->amount, b->unit, 0, balance_written_cb, c);
    if (rc < 0)
        log_warn("cannot write the balance to Dynamics", "account=%s error=\"%s\"", account_name,
                 smsys_strerror(rc));
}

static int conn_start(struct service *svc, void *ud, struct smsys_err *err)
{
    struct comp_conn *c = ud;
    struct smsysd *d = c->d;
    const struct smsys_config *cfg = service_config(svc);
    if (d->pg == NULL)
        return smsys_err_set(err, -EINVAL, "the PostgreSQL pool is not running");
    snprintf(c->owner, sizeof(c->owner), "%s:%d", cfg->service.instance_name, (int)getpid());
    int rc = http_client_new(service_loop(svc), NULL, &d->http);
    if (rc)
        return smsys_err_set(err, rc, "cannot create the HTTP client: %s", smsys_strerror(rc));
    if (d->queue == NULL) {
        struct queue_opts qo = {
            .backoff_base_ms = (unsigned)cfg->queue.backoff_base_ms,
            .backoff_cap_ms = (unsigned)cfg->queue.backoff_cap_ms,
            .pause_ms = (unsigned)cfg->queue.account_pause_ms,
            .receipt_deadline_s = (unsigned)cfg->queue.receipt_deadline_s,
        };
        rc = queue_new(service_loop(svc), d->pg, &qo, &d->queue);
        if (rc)
            return smsys_err_set(err, rc, "cannot create the queue: %s", smsys_strerror(rc));
        c->own_queue = 1;
    }
    make_metrics(c);
    struct connmgr_opts o = {
        .owner = c->owner,
        .batch = (unsigned)cfg->queue.batch_size,
        .pipeline = (unsigned)cfg->queue.pipeline,
        .lease_ms = (unsigned)cfg->queue.lease_ms,
        .idle_ms = (unsigned)cfg->queue.idle_claim_ms,
        .poll_ms = (unsigned)cfg->queue.accounts_poll_ms,
        .metrics = &c->sm,
        .receipts = c->receipts,
        .balance_ms = (unsigned)cfg->queue.balance_interval_ms,
        .on_balance = balance_read_cb,
        .balance_ud = c,
    };
    rc = connmgr_new(service_loop(svc), d->pg, d->queue, d->http, &o, &d->connmgr);
    if (rc)
        return smsys_err_set(err, rc, "cannot start the connector manager: %s", smsys_strerror(rc));
    return 0;
}

static void http_closed_cb(void *ud)
{
    struct comp_conn *c = ud;
    c->d->http = NULL;
    if (c->own_queue) {
        /* Every user of the queue has finished: the senders, the tracker
         * and the manager's own statements completed before this point. */
        queue_free(c->d->queue);
        c->d->queue = NULL;
        c->own_queue = 0;
    }
    c->done(c->done_arg);
}

static void mgr_closed_cb(void *ud)
{
    struct comp_conn *c = ud;
    c->d->connmgr = NULL;
    if (c->d->http)
        http_client_close(c->d->http, http_closed_cb, c);
    else
        http_closed_cb(c);
}

static void conn_close(void *ud, service_done_cb done, void *arg)
{
    struct comp_conn *c = ud;
    c->done = done;
    c->done_arg = arg;
    if (c->d->connmgr)
        connmgr_close(c->d->connmgr, mgr_closed_cb, c);
    else
        mgr_closed_cb(c);
}

static int conn_reload(void *ud, const struct smsys_config *old, const struct smsys_config *cfg,
                       struct smsys_err *err)
{
    struct comp_conn *c = ud;
    (void)old;
    (void)cfg;
    (void)err;
    /* SIGHUP also means "re-read the accounts and balances now". Queue tunables apply
     * at the next start. */
    if (c->d->connmgr) {
        connmgr_refresh(c->d->connmgr);
        connmgr_balance_refresh(c->d->connmgr, NULL);
    }
    return 0;
}

static int conn_health(void *ud, struct buf *detail)
{
    struct comp_conn *c = ud;
    if (c->d->connmgr == NULL) {
        buf_puts(detail, "closed");
        return -1;
    }
    return connmgr_health(c->d->connmgr, detail);
}

static const struct service_component conn_component = {
    .name = "connectors",
    .start = conn_start,
    .close = conn_close,
    .reload = conn_reload,
    .health = conn_health,
};

int smsysd_add_connectors(struct smsysd *d)
{
    static struct comp_conn c;
    c.d = d;
    return service_add(d->svc, &conn_component, &c);
}
