/* comp_dataverse.c - the Dynamics client of smsysd as a component: the
 * HTTP client and Dataverse client from [dataverse], the queue handle and
 * the "dynamics" leader lock that the accounts, pickup and write-back
 * components share (one pinned PostgreSQL connection for all three), and
 * the Dynamics request metrics. Registered before those components, so it
 * closes after them: it waits for their runs to end (dv_close completes
 * pending requests with SMSYS_ECLOSED) before freeing what they use.
 * The client's counters reach /metrics through a scrape hook. */
#include "smsysd.h"

#include "smsys/dataverse.h"
#include "smsys/http_client.h"
#include "smsys/ljob.h"
#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/queue.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdlib.h>

struct comp_dv {
    struct smsysd *d;
    struct dv_metrics last;
    struct metric *m_req, *m_429, *m_fail, *m_wait, *m_inflight, *m_queued;
    int dv_closed, job_closed, http_closing;
    service_done_cb done;
    void *done_arg;
};

/* Before each scrape: counters move by their delta since the last one. */
static void scrape_cb(struct smsysd *d, void *ud)
{
    struct comp_dv *c = ud;
    if (d->dv == NULL)
        return;
    const struct dv_metrics *m = dv_metrics(c->d->dv);
    uint64_t req = 0, last = 0;
    for (int i = 0; i < DV_NMETHODS; i++) {
        req += m->requests[i];
        last += c->last.requests[i];
    }
    metrics_add(c->m_req, (double)(req - last));
    metrics_add(c->m_429, (double)(m->status_429 - c->last.status_429));
    metrics_add(c->m_fail, (double)(m->failures - c->last.failures));
    metrics_add(c->m_wait, (double)(m->throttle_wait_ms - c->last.throttle_wait_ms) / 1000.0);
    metrics_set(c->m_inflight, m->in_flight);
    metrics_set(c->m_queued, m->queued);
    c->last = *m;
}

static int dv_start(struct service *svc, void *ud, struct smsys_err *err)
{
    struct comp_dv *c = ud;
    struct smsysd *d = c->d;
    const struct smsys_config *cfg = service_config(svc);
    uv_loop_t *loop = service_loop(svc);
    struct http_client_opts ho = {
        .timeout_ms = (unsigned)cfg->dataverse.request_timeout_ms,
        .proxy = cfg->dataverse.proxy,
        .ca_file = cfg->dataverse.ca_file,
    };
    int rc = http_client_new(loop, &ho, &d->dv_http);
    if (rc)
        return smsys_err_set(err, rc, "cannot create the HTTP client: %s", smsys_strerror(rc));
    struct dv_opts o = {
        .url = cfg->dataverse.url,
        .api_version = cfg->dataverse.api_version,
        .auth = (enum dv_auth)cfg->dataverse.auth,
        .token_url = cfg->dataverse.token_url,
        .client_id = cfg->dataverse.client_id,
        .client_secret = cfg->dataverse.client_secret,
        .scope = cfg->dataverse.scope,
        .resource = cfg->dataverse.resource,
        .username = cfg->dataverse.username,
        .password = cfg->dataverse.password,
        .max_concurrency = (unsigned)cfg->dataverse.max_concurrency,
        .timeout_ms = (unsigned)cfg->dataverse.request_timeout_ms,
        .insecure = cfg->dataverse.insecure_skip_verify,
    };
    rc = dv_new(loop, d->dv_http, &o, &d->dv);
    if (rc == 0)
        rc = queue_new(loop, d->pg, NULL, &d->dvq);
    if (rc == 0 && cfg->pickup.enabled)
        rc = ljob_new(loop, d->dvq, "dynamics", 1000, &d->dvjob);
    if (rc == 0)
        rc = smsysd_on_scrape(d, scrape_cb, c);
    if (rc != 0) {
        /* A failed start is not closed by the service: the loop runs the
         * closes that were started. */
        if (d->dvjob)
            ljob_close(d->dvjob, NULL, NULL);
        if (d->dv)
            dv_close(d->dv, NULL, NULL);
        http_client_close(d->dv_http, NULL, NULL);
        d->dv = NULL;
        d->dv_http = NULL;
        d->dvjob = NULL;
        return smsys_err_set(err, rc, "cannot set up the Dynamics client: %s%s", smsys_strerror(rc),
                             rc == -EINVAL ? " (check [dataverse] url and credentials)" : "");
    }
    c->m_req = metrics_counter(NULL, "smsys_dynamics_requests_total",
                               "HTTP requests sent to Dynamics (retries included).", NULL);
    c->m_429 = metrics_counter(NULL, "smsys_dynamics_throttled_total",
                               "429 answers from Dynamics (service protection).", NULL);
    c->m_fail = metrics_counter(NULL, "smsys_dynamics_failures_total",
                                "Dynamics requests that failed after their retries.", NULL);
    c->m_wait = metrics_counter(NULL, "smsys_dynamics_throttle_wait_seconds_total",
                                "Time requests were held back by Retry-After.", NULL);
    c->m_inflight =
        metrics_gauge(NULL, "smsys_dynamics_in_flight", "Dynamics requests in flight.", NULL);
    c->m_queued = metrics_gauge(NULL, "smsys_dynamics_waiting",
                                "Dynamics requests waiting for a slot or a throttle pause.", NULL);
    return 0;
}

static void http_closed_cb(void *ud)
{
    struct comp_dv *c = ud;
    struct smsysd *d = c->d;
    d->dv_http = NULL;
    queue_free(d->dvq);
    d->dvq = NULL;
    c->done(c->done_arg);
}

static void maybe_closed(struct comp_dv *c)
{
    if (!c->dv_closed || !c->job_closed || c->http_closing)
        return;
    c->http_closing = 1;
    http_client_close(c->d->dv_http, http_closed_cb, c);
}

static void comp_dv_closed_cb(void *ud)
{
    struct comp_dv *c = ud;
    c->d->dv = NULL;
    c->dv_closed = 1;
    maybe_closed(c);
}

static void job_closed_cb(void *ud)
{
    struct comp_dv *c = ud;
    c->d->dvjob = NULL;
    c->job_closed = 1;
    maybe_closed(c);
}

static void dv_comp_close(void *ud, service_done_cb done, void *arg)
{
    struct comp_dv *c = ud;
    struct smsysd *d = c->d;
    if (d->dv_http == NULL) {
        done(arg);
        return;
    }
    c->done = done;
    c->done_arg = arg;
    c->job_closed = d->dvjob == NULL;
    if (d->dvjob)
        ljob_close(d->dvjob, job_closed_cb, c);
    dv_close(d->dv, comp_dv_closed_cb, c);
}

static int dv_health(void *ud, struct buf *detail)
{
    struct comp_dv *c = ud;
    if (c->d->dv == NULL) {
        buf_puts(detail, "closed");
        return -1;
    }
    const struct dv_metrics *m = dv_metrics(c->d->dv);
    buf_printf(detail,
               "%s; in flight %u, waiting %u, 429s %llu (paused %llu ms in all), 401s %llu, token "
               "refetches %llu, failures %llu",
               ljob_is_leader(c->d->dvjob) ? "leader" : "standby", m->in_flight, m->queued,
               (unsigned long long)m->status_429, (unsigned long long)m->throttle_wait_ms,
               (unsigned long long)m->status_401, (unsigned long long)m->token_refetches,
               (unsigned long long)m->failures);
    return 0;
}

static const struct service_component dv_component = {
    .name = "dataverse",
    .start = dv_start,
    .close = dv_comp_close,
    .health = dv_health,
};

int smsysd_add_dataverse(struct smsysd *d)
{
    static struct comp_dv c;
    c.d = d;
    return service_add(d->svc, &dv_component, &c);
}
