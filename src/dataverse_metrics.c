/* dataverse_metrics.c - mirrors struct dv_metrics into Prometheus series
 * (metrics.h) when dv_opts.export_metrics is set. The plain counters stay
 * the source of truth; this pushes their increase since the last sync, so
 * the hot path in dataverse.c keeps plain additions only. */
#include "dataverse_int.h"

#include "smsys/metrics.h"

static const char *const method_names[DV_NMETHODS] = {"GET", "POST", "PATCH", "DELETE", "OTHER"};
static const char *const class_names[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};

void dv_prom_init(struct dv_client *c, struct metrics *reg)
{
    struct dv_prom *p = &c->prom;
    p->on = 1;
    for (int i = 0; i < DV_NMETHODS; i++)
        p->req[i] = metrics_counter(reg, "smsys_dataverse_requests_total",
                                    "Requests sent to Dataverse (attempts, retries included).",
                                    (const char *[]){"method", method_names[i], NULL});
    for (int i = 0; i < 6; i++)
        p->resp[i] = metrics_counter(reg, "smsys_dataverse_responses_total",
                                     "Dataverse answers by status class (none: no response).",
                                     (const char *[]){"class", class_names[i], NULL});
    p->s429 = metrics_counter(reg, "smsys_dataverse_throttled_total",
                              "429 answers (service protection limits).", NULL);
    p->retries = metrics_counter(reg, "smsys_dataverse_retries_total",
                                 "Attempts after the first, for any reason.", NULL);
    p->wait = metrics_counter(reg, "smsys_dataverse_throttle_wait_seconds_total",
                              "Time all requests were held back by Retry-After.", NULL);
    p->refetch = metrics_counter(reg, "smsys_dataverse_token_refetches_total",
                                 "New tokens fetched because of a 401.", NULL);
    p->unknown = metrics_counter(reg, "smsys_dataverse_unknown_outcomes_total",
                                 "Writes whose outcome is unknown (sent, then timed out).", NULL);
    p->failures = metrics_counter(reg, "smsys_dataverse_failures_total",
                                  "Requests that ended in an error.", NULL);
    p->fallbacks = metrics_counter(reg, "smsys_dataverse_batch_fallbacks_total",
                                   "Bulk writes that fell back to $batch.", NULL);
    p->inflight =
        metrics_gauge(reg, "smsys_dataverse_inflight", "Requests in flight to Dataverse.", NULL);
    p->queued = metrics_gauge(reg, "smsys_dataverse_queued",
                              "Requests waiting (concurrency cap, Retry-After, backoff).", NULL);
}

#define PUSH(series, field)                                                                        \
    do {                                                                                           \
        if (m->field > l->field)                                                                   \
            metrics_add(series, (double)(m->field - l->field));                                    \
    } while (0)

void dv_prom_sync(struct dv_client *c)
{
    struct dv_prom *p = &c->prom;
    const struct dv_metrics *m = &c->m;
    struct dv_metrics *l = &p->last;
    for (int i = 0; i < DV_NMETHODS; i++)
        PUSH(p->req[i], requests[i]);
    for (int i = 0; i < 6; i++)
        PUSH(p->resp[i], responses[i]);
    PUSH(p->s429, status_429);
    PUSH(p->retries, retries);
    if (m->throttle_wait_ms > l->throttle_wait_ms)
        metrics_add(p->wait, (double)(m->throttle_wait_ms - l->throttle_wait_ms) / 1000.0);
    PUSH(p->refetch, token_refetches);
    PUSH(p->unknown, unknown_outcomes);
    PUSH(p->failures, failures);
    PUSH(p->fallbacks, batch_fallbacks);
    metrics_set(p->inflight, m->in_flight);
    metrics_set(p->queued, m->queued);
    *l = *m;
}
