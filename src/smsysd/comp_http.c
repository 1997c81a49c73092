/* comp_http.c - the HTTP endpoint of smsysd as a service component:
 * /healthz (service_health) and /metrics (the process-wide registry).
 * Provider webhooks will add their routes to the same server. */
#include "smsysd.h"

#include "smsys/http_server.h"
#include "smsys/metrics.h"
#include "smsys/version.h"
#include "smsys/log.h"

#include <stdlib.h>

struct comp_http {
    struct service *svc;
    struct http_server *srv;
    service_done_cb done;
    void *done_arg;
};

static void healthz_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct comp_http *h = ud;
    struct buf b = BUF_INIT;
    /* 503 while starting or stopping too, so a load balancer stops
     * sending before the process goes away. */
    int rc = service_health(h->svc, &b);
    http_resp_header(resp, "Cache-Control", "no-store");
    http_resp_send(resp, rc == 0 ? 200 : 503, "application/json", b.data ? b.data : "{}", b.len);
    buf_free(&b);
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
    int rc = http_server_new(service_loop(svc), &opts, &h->srv);
    if (rc)
        return smsys_err_set(err, rc, "cannot listen on %s: %s", cfg->http.listen,
                             smsys_strerror(rc));
    /* Always present, so a scrape shows which build answers. */
    metrics_set(metrics_gauge(NULL, "smsys_build_info", "smsysd build; the value is always 1",
                              (const char *[]){"version", SMSYS_VERSION, NULL}),
                1);
    if ((rc = http_server_route(h->srv, "GET", "/healthz", healthz_cb, h)) != 0 ||
        (rc = http_server_route(h->srv, "GET", "/metrics", metrics_http_handler, NULL)) != 0) {
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
    h->done(h->done_arg);
}

static void http_close(void *ud, service_done_cb done, void *arg)
{
    struct comp_http *h = ud;
    if (h->srv == NULL) {
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
    return service_add(d->svc, &http_component, &h);
}
