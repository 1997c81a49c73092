/* comp_http.c - the HTTP endpoint of smsysd as a service component:
 * GET /healthz (the health module, one check per component that reports
 * health, plus "service", which fails while starting or stopping so a load
 * balancer drains us first) and GET /metrics (the default metrics
 * registry), and the provider webhooks under /webhooks/ (webhook.h), which
 * answer 503 until the connectors component has started. */
#include "smsysd.h"

#include "smsys/health.h"
#include "smsys/http_server.h"
#include "smsys/metrics.h"
#include "smsys/version.h"
#include "smsys/webhook.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* ud of one component's health check. */
struct hcheck {
    struct service *svc;
    size_t idx;
};

struct comp_http {
    struct smsysd *d;
    struct service *svc;
    struct http_server *srv;
    struct health *health;
    struct hcheck *checks;
    service_done_cb done;
    void *done_arg;
};

static int service_check_cb(void *ud, char *detail, size_t len)
{
    struct comp_http *h = ud;
    if (service_stopping(h->svc)) {
        snprintf(detail, len, "stopping");
        return -1;
    }
    return 0;
}

static int component_check_cb(void *ud, char *detail, size_t len)
{
    struct hcheck *c = ud;
    struct buf b = BUF_INIT;
    const char *name;
    int rc = service_component_health(c->svc, c->idx, &name, &b);
    snprintf(detail, len, "%s", b.data ? b.data : "");
    buf_free(&b);
    return rc;
}

static void metrics_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct comp_http *h = ud;
    smsysd_scrape(h->d);
    metrics_http_handler(req, resp, NULL);
}

static void webhook_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct comp_http *h = ud;
    webhook_handle(h->d->connmgr, req, resp);
}

static int add_checks(struct comp_http *h)
{
    int rc = health_new(&h->health);
    if (rc)
        return rc;
    if ((rc = health_add(h->health, "service", service_check_cb, h)) != 0)
        return rc;
    size_t n = service_ncomponents(h->svc);
    h->checks = calloc(n ? n : 1, sizeof(*h->checks));
    if (h->checks == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int has = 0;
        const char *name = service_component_name(h->svc, i, &has);
        if (!has)
            continue;
        h->checks[i] = (struct hcheck){h->svc, i};
        if ((rc = health_add(h->health, name, component_check_cb, &h->checks[i])) != 0)
            return rc;
    }
    return 0;
}

static void release(struct comp_http *h)
{
    health_free(h->health);
    h->health = NULL;
    free(h->checks);
    h->checks = NULL;
}

static void discard_closed_cb(void *ud)
{
    (void)ud;
}

static int http_start(struct service *svc, void *ud, struct smsys_err *err)
{
    struct comp_http *h = ud;
    const struct smsys_config *cfg = service_config(svc);
    struct http_server_opts opts = {
        .listen = cfg->http.listen,
        .max_body_bytes = (size_t)cfg->http.max_body_bytes,
    };
    h->svc = svc;
    int rc = add_checks(h);
    if (rc) {
        release(h);
        return smsys_err_set(err, rc, "cannot set up health checks: %s", smsys_strerror(rc));
    }
    /* Constant 1 with the version as a label, the Prometheus convention
     * for telling which build is running. */
    metrics_set(metrics_gauge(NULL, "smsys_build_info", "Build of the running smsysd.",
                              (const char *[]){"version", SMSYS_VERSION, NULL}),
                1);
    rc = http_server_new(service_loop(svc), &opts, &h->srv);
    if (rc) {
        release(h);
        return smsys_err_set(err, rc, "cannot listen on %s: %s", cfg->http.listen,
                             smsys_strerror(rc));
    }
    if ((rc = http_server_route(h->srv, "GET", "/healthz", health_http_handler, h->health)) != 0 ||
        (rc = http_server_route(h->srv, "GET", "/metrics", metrics_cb, h)) != 0 ||
        (rc = http_server_route(h->srv, NULL, WEBHOOK_PREFIX, webhook_cb, h)) != 0) {
        /* A failed start is never closed by the service: do it here. */
        http_server_close(h->srv, discard_closed_cb, NULL);
        h->srv = NULL;
        return smsys_err_set(err, rc, "cannot add routes: %s", smsys_strerror(rc));
    }
    return 0;
}

static void http_closed_cb(void *ud)
{
    struct comp_http *h = ud;
    h->srv = NULL;
    release(h);
    h->done(h->done_arg);
}

static void http_close(void *ud, service_done_cb done, void *arg)
{
    struct comp_http *h = ud;
    if (h->srv == NULL) {
        release(h);
        done(arg);
        return;
    }
    h->done = done;
    h->done_arg = arg;
    http_server_close(h->srv, http_closed_cb, h);
}

static int http_health(void *ud, struct buf *detail)
{
    struct comp_http *h = ud;
    buf_printf(detail, "listening on port %d", h->srv ? http_server_port(h->srv) : 0);
    return h->srv ? 0 : -1;
}

static const struct service_component http_component = {
    .name = "http",
    .start = http_start,
    /* No drain: /healthz keeps answering (503) while the rest drains. */
    .close = http_close,
    .health = http_health,
};

int smsysd_add_http(struct smsysd *d)
{
    static struct comp_http h;
    h.d = d;
    return service_add(d->svc, &http_component, &h);
}
