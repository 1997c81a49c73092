/* Integration tests for the Dataverse client (dataverse.c, oauth.c) over
 * real loopback TCP against a scriptable peer (dv_peer.h): throttling,
 * retries, token handling, paging, bulk writes and the $batch fallback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/dataverse.h"
#include "smsys/error.h"
#include "smsys/http_client.h"
#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/oauth.h"
#include "smsys/util.h"
#include "../lib/testutil.h"
#include "dv_peer.h"

#include <errno.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET "good-secret-7f3a9"

struct fx {
    uv_loop_t loop;
    struct dvp peer;
    struct http_client *http;
    struct dv_client *dv;
    int dv_closed, http_closed;
    char url[64], token_url[128];
    struct metrics *reg; /* a private registry, freed after the client */
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    dvp_start(&fx->peer, &fx->loop);
    assert_int_equal(http_client_new(&fx->loop, NULL, &fx->http), 0);
    snprintf(fx->url, sizeof fx->url, "http://127.0.0.1:%d", fx->peer.port);
    snprintf(fx->token_url, sizeof fx->token_url, "http://127.0.0.1:%d/tenant/oauth2/v2.0/token",
             fx->peer.port);
    *state = fx;
    return 0;
}

static struct dv_opts base_opts(struct fx *fx)
{
    struct dv_opts o = {.url = fx->url,
                        .token_url = fx->token_url,
                        .client_id = "smsys-test",
                        .client_secret = SECRET,
                        .scope = "http://127.0.0.1/.default",
                        .backoff_base_ms = 100,
                        .backoff_max_ms = 400,
                        .timeout_ms = 5000};
    return o;
}

static void open_dv(struct fx *fx, const struct dv_opts *o)
{
    assert_int_equal(dv_new(&fx->loop, fx->http, o, &fx->dv), 0);
}

static void flag_cb(void *ud)
{
    (*(int *)ud)++;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    if (fx->dv) {
        dv_close(fx->dv, flag_cb, &fx->dv_closed);
        assert_int_equal(tu_run_until(&fx->loop, &fx->dv_closed, 5000), 0);
    }
    http_client_close(fx->http, flag_cb, &fx->http_closed);
    assert_int_equal(tu_run_until(&fx->loop, &fx->http_closed, 5000), 0);
    if (fx->reg)
        metrics_free(fx->reg);
    dvp_stop(&fx->peer);
    assert_int_equal(tu_run_until(&fx->loop, &fx->peer.closed, 5000), 0);
    while (fx->peer.pending > 0)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(tu_loop_handles(&fx->loop), 0);
    assert_int_equal(tu_loop_close(&fx->loop), 0);
    free(fx);
    return 0;
}

/* ---- request outcomes ---- */

struct out {
    int fired;
    int rc;
    int status;
    unsigned attempts;
    char detail[512];
    uint64_t at;
};

static void out_cb(int rc, struct dv_result *res, void *ud)
{
    struct out *o = ud;
    o->fired++;
    o->rc = rc;
    o->status = res->status;
    o->attempts = res->attempts;
    o->at = util_now_ms();
    snprintf(o->detail, sizeof o->detail, "%s", res->err.detail);
    if (rc == 0)
        assert_int_equal(res->err.code, 0);
    else
        assert_int_equal(res->err.code, rc);
}

static int all_fired(struct out *o, int n)
{
    for (int i = 0; i < n; i++)
        if (!o[i].fired)
            return 0;
    return 1;
}

static void run_all(struct fx *fx, struct out *o, int n, unsigned ms)
{
    uint64_t end = util_now_ms() + ms;
    while (!all_fired(o, n) && util_now_ms() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(all_fired(o, n));
    for (int i = 0; i < n; i++)
        assert_int_equal(o[i].fired, 1);
}

/* ---- throttling ---- */

static void test_429_global_pause(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    o.max_concurrency = 2;
    assert_int_equal(metrics_new(&fx->reg), 0);
    o.export_metrics = 1;
    o.metrics_registry = fx->reg;
    open_dv(fx, &o);
    fx->peer.script[0] = 429;
    fx->peer.n_script = 1;
    fx->peer.retry_after = 2;
    fx->peer.hold_ms = 50; /* so the first two really overlap */
    struct out r[6];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 6; i++)
        assert_int_equal(dv_request(fx->dv, "GET", "smsys_smses?$top=1", NULL, NULL, out_cb, &r[i]),
                         0);
    run_all(fx, r, 6, 10000);
    for (int i = 0; i < 6; i++)
        assert_int_equal(r[i].rc, 0);
    /* the 429 went out with request 0 or 1; everything after it waited */
    struct dvp *p = &fx->peer;
    assert_int_equal(p->api_requests, 7);
    int k429 = p->statuses[0] == 429 ? 0 : 1;
    assert_int_equal(p->statuses[k429], 429);
    uint64_t t429 = p->t429; /* when the 429 was written */
    for (int i = 2; i < p->api_requests; i++)
        if (p->arrivals[i] < t429 + 2000)
            fail_msg("request %d reached the peer %lld ms after the 429 (Retry-After 2 s)", i,
                     (long long)(p->arrivals[i] - t429));
    const struct dv_metrics *m = dv_metrics(fx->dv);
    assert_int_equal(m->status_429, 1);
    assert_int_equal(m->throttle_pauses, 1);
    assert_true(m->throttle_wait_ms >= 1900);
    assert_int_equal(m->requests[DV_GET], 7);
    assert_int_equal(m->retries, 1);
    assert_true(p->max_inflight <= 2);
    /* the same numbers as Prometheus series */
    struct buf txt = BUF_INIT;
    assert_int_equal(metrics_render(fx->reg, &txt), 0);
    assert_non_null(strstr(txt.data, "smsys_dataverse_requests_total{method=\"GET\"} 7\n"));
    assert_non_null(strstr(txt.data, "smsys_dataverse_throttled_total 1\n"));
    assert_non_null(strstr(txt.data, "smsys_dataverse_responses_total{class=\"2xx\"} 6\n"));
    assert_non_null(strstr(txt.data, "smsys_dataverse_inflight 0\n"));
    assert_non_null(strstr(txt.data, "smsys_dataverse_throttle_wait_seconds_total 2"));
    buf_free(&txt);
}

static void test_429_budget(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    o.throttle_retries = 2;
    open_dv(fx, &o);
    for (int i = 0; i < 5; i++)
        fx->peer.script[i] = 429;
    fx->peer.n_script = 5;
    fx->peer.retry_after = 0; /* "now": the budget, not the clock, ends it */
    struct out r = {0};
    assert_int_equal(dv_request(fx->dv, "GET", "WhoAmI", NULL, NULL, out_cb, &r), 0);
    run_all(fx, &r, 1, 5000);
    assert_int_equal(r.rc, SMSYS_ETHROTTLED);
    assert_int_equal(r.attempts, 3);
    assert_non_null(strstr(r.detail, "0x80072322"));
    assert_non_null(strstr(r.detail, "Number of requests exceeded"));
}

static void test_5xx_backoff(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    open_dv(fx, &o);
    fx->peer.script[0] = 503;
    fx->peer.script[1] = 500;
    fx->peer.n_script = 2;
    struct out r = {0};
    assert_int_equal(dv_request(fx->dv, "GET", "WhoAmI", NULL, NULL, out_cb, &r), 0);
    run_all(fx, &r, 1, 5000);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.attempts, 3);
    struct dvp *p = &fx->peer;
    assert_int_equal(p->api_requests, 3);
    /* backoff with jitter in [d/2, d]: d = 100 ms, then 200 ms */
    assert_true(p->arrivals[1] - p->arrivals[0] >= 50);
    assert_true(p->arrivals[2] - p->arrivals[1] >= 100);
    assert_int_equal(dv_metrics(fx->dv)->responses[5], 2);

    /* exhausted: ETEMP with Dataverse's message */
    for (int i = 0; i < 10; i++)
        p->script[i] = 500;
    p->n_script = 10;
    p->script_at = 0;
    struct out r2 = {0};
    assert_int_equal(dv_request(fx->dv, "DELETE", "contacts(00000000-0000-0000-0000-000000000001)",
                                NULL, NULL, out_cb, &r2),
                     0);
    run_all(fx, &r2, 1, 10000);
    assert_int_equal(r2.rc, SMSYS_ETEMP);
    assert_int_equal(r2.attempts, 5); /* 1 + max_retries (4) */
    assert_non_null(strstr(r2.detail, "An unexpected error occurred."));
}

static void test_post_not_retried(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    o.timeout_ms = 300;
    open_dv(fx, &o);
    /* a create that times out after it was sent: unknown outcome, no retry */
    fx->peer.script[0] = 0; /* hang */
    fx->peer.script[1] = 500;
    fx->peer.n_script = 2;
    struct out r = {0};
    assert_int_equal(
        dv_request(fx->dv, "POST", "smsys_smses", NULL, "{\"subject\":\"x\"}", out_cb, &r), 0);
    run_all(fx, &r, 1, 5000);
    assert_int_equal(r.rc, SMSYS_EUNKNOWN);
    assert_int_equal(fx->peer.api_requests, 1);
    assert_int_equal(dv_metrics(fx->dv)->unknown_outcomes, 1);
    /* a 500 on a create: not retried either, reported as temporary */
    struct out r2 = {0};
    assert_int_equal(
        dv_request(fx->dv, "POST", "smsys_smses", NULL, "{\"subject\":\"x\"}", out_cb, &r2), 0);
    run_all(fx, &r2, 1, 5000);
    assert_int_equal(r2.rc, SMSYS_ETEMP);
    assert_int_equal(fx->peer.api_requests, 2);
}

static void test_max_concurrency(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    o.max_concurrency = 3;
    open_dv(fx, &o);
    fx->peer.hold_ms = 100;
    struct out r[12];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 12; i++)
        assert_int_equal(dv_request(fx->dv, "GET", "WhoAmI", NULL, NULL, out_cb, &r[i]), 0);
    assert_int_equal(dv_metrics(fx->dv)->queued, 12);
    run_all(fx, r, 12, 10000);
    for (int i = 0; i < 12; i++)
        assert_int_equal(r[i].rc, 0);
    assert_int_equal(fx->peer.max_inflight, 3);
    assert_int_equal(fx->peer.api_requests, 12);
    /* FIFO: completion order follows submission order in waves of 3 */
    assert_true(r[11].at >= r[0].at + 300);
    assert_int_equal(dv_metrics(fx->dv)->in_flight, 0);
    assert_int_equal(dv_metrics(fx->dv)->queued, 0);
}

/* ---- tokens ---- */

static void test_401_once_refetch(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    open_dv(fx, &o);
    fx->peer.reject_tokens = 1; /* tok-1 is "expired" at the API */
    struct out r = {0};
    assert_int_equal(dv_request(fx->dv, "GET", "WhoAmI", NULL, NULL, out_cb, &r), 0);
    run_all(fx, &r, 1, 5000);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(fx->peer.token_requests, 2);
    assert_int_equal(fx->peer.api_requests, 2);
    assert_int_equal(fx->peer.api_401, 1);
    assert_int_equal(dv_metrics(fx->dv)->token_refetches, 1);
    assert_non_null(strstr(fx->peer.last_form, "grant_type=client_credentials"));
    assert_non_null(strstr(fx->peer.last_form, "scope=http%3A%2F%2F127.0.0.1%2F.default"));
}

static void test_401_twice_eauth(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    open_dv(fx, &o);
    fx->peer.reject_tokens = 10;
    struct out r = {0};
    assert_int_equal(dv_request(fx->dv, "GET", "WhoAmI", NULL, NULL, out_cb, &r), 0);
    run_all(fx, &r, 1, 5000);
    assert_int_equal(r.rc, SMSYS_EAUTH);
    assert_int_equal(fx->peer.token_requests, 2);
    assert_int_equal(fx->peer.api_requests, 2);
}

static void test_concurrent_401_single_fetch(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    open_dv(fx, &o);
    fx->peer.reject_tokens = 1;
    fx->peer.hold_ms = 30;
    struct out r[5];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 5; i++)
        assert_int_equal(dv_request(fx->dv, "GET", "WhoAmI", NULL, NULL, out_cb, &r[i]), 0);
    run_all(fx, r, 5, 5000);
    for (int i = 0; i < 5; i++)
        assert_int_equal(r[i].rc, 0);
    /* five requests got 401 with the same token: one new token for all */
    assert_int_equal(fx->peer.token_requests, 2);
    assert_int_equal(fx->peer.api_401, 5);
}

struct chain {
    struct fx *fx;
    uv_timer_t t;
    int left, ok, failed, done, closed;
};

static void chain_fire_cb(uv_timer_t *t);

static void chain_done_cb(int rc, struct dv_result *res, void *ud)
{
    struct chain *c = ud;
    (void)res;
    if (rc == 0)
        c->ok++;
    else
        c->failed++;
    if (--c->left > 0)
        uv_timer_start(&c->t, chain_fire_cb, 150, 0);
    else
        c->done = 1;
}

static void chain_fire_cb(uv_timer_t *t)
{
    struct chain *c = container_of(t, struct chain, t);
    assert_int_equal(dv_request(c->fx->dv, "GET", "WhoAmI", NULL, NULL, chain_done_cb, c), 0);
}

static void chain_closed_cb(uv_handle_t *h)
{
    struct chain *c = container_of((uv_timer_t *)h, struct chain, t);
    c->closed = 1;
}

static void test_token_renewed_before_expiry(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    open_dv(fx, &o);
    /* 2 s tokens, hard-expired at the peer: the client must renew early
     * (fresh for 1 s, used at most 1.8 s) so no request ever sees a 401 */
    fx->peer.token_ttl = 2;
    struct chain c = {.fx = fx, .left = 30};
    uv_timer_init(&fx->loop, &c.t);
    uv_timer_start(&c.t, chain_fire_cb, 0, 0);
    assert_int_equal(tu_run_until(&fx->loop, &c.done, 15000), 0);
    uv_close((uv_handle_t *)&c.t, chain_closed_cb);
    assert_int_equal(tu_run_until(&fx->loop, &c.closed, 1000), 0);
    assert_int_equal(c.ok, 30);
    assert_int_equal(c.failed, 0);
    assert_int_equal(fx->peer.api_401, 0);
    assert_int_equal(fx->peer.api_requests, 30);
    assert_true(fx->peer.token_requests >= 3); /* ~4.5 s of traffic */
    assert_int_equal(dv_metrics(fx->dv)->status_401, 0);
}

static void test_v1_token_shape(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    char v1url[128];
    snprintf(v1url, sizeof v1url, "http://127.0.0.1:%d/tenant/oauth2/token", fx->peer.port);
    o.token_url = v1url;
    o.scope = NULL;
    o.resource = "http://127.0.0.1/";
    open_dv(fx, &o);
    struct out r = {0};
    assert_int_equal(dv_request(fx->dv, "GET", "WhoAmI", NULL, NULL, out_cb, &r), 0);
    run_all(fx, &r, 1, 5000);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(fx->peer.last_form, "resource=http%3A%2F%2F127.0.0.1%2F"));
    assert_null(strstr(fx->peer.last_form, "scope="));
    assert_int_equal(fx->peer.token_requests, 1);
}

struct who {
    int fired, rc;
    struct dv_whoami w;
    char detail[512];
};

static void who_cb(int rc, const struct dv_whoami *w, const struct smsys_err *err, void *ud)
{
    struct who *x = ud;
    x->fired++;
    x->rc = rc;
    if (w)
        x->w = *w;
    if (err)
        snprintf(x->detail, sizeof x->detail, "%s", err->detail);
}

static void test_bad_secret(void **state)
{
    struct fx *fx = *state;
    char logpath[] = "/tmp/test_dataverse_log_XXXXXX";
    int fd = mkstemp(logpath);
    assert_true(fd >= 0);
    FILE *lf = fdopen(fd, "w+");
    assert_non_null(lf);
    log_setup(LOG_DEBUG, LOG_TEXT, lf);
    struct dv_opts o = base_opts(fx);
    o.client_secret = "wrong-" SECRET;
    open_dv(fx, &o);
    struct who w[3];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 3; i++)
        assert_int_equal(dv_whoami(fx->dv, who_cb, &w[i]), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tu_run_until(&fx->loop, &w[i].fired, 5000), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w[i].rc, SMSYS_EAUTH);
        assert_non_null(strstr(w[i].detail, "AADSTS7000215"));
        assert_null(strstr(w[i].detail, SECRET));
    }
    assert_int_equal(fx->peer.api_requests, 0); /* never sent without a token */
    fflush(lf);
    log_setup(LOG_INFO, LOG_TEXT, stderr);
    rewind(lf);
    char line[2048];
    int lines = 0;
    while (fgets(line, sizeof line, lf)) {
        lines++;
        assert_null(strstr(line, SECRET));
        assert_null(strstr(line, "tok-"));
    }
    assert_true(lines > 0);
    fclose(lf);
    unlink(logpath);
}

/* ---- helpers ---- */

static void test_whoami_create_patch(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    open_dv(fx, &o);
    struct who w = {0};
    assert_int_equal(dv_whoami(fx->dv, who_cb, &w), 0);
    assert_int_equal(tu_run_until(&fx->loop, &w.fired, 5000), 0);
    assert_int_equal(w.rc, 0);
    assert_string_equal(w.w.user_id, "22222222-2222-2222-2222-222222222222");
    assert_string_equal(w.w.organization_id, "33333333-3333-3333-3333-333333333333");
    /* the remaining helpers go through the same engine */
    struct out r = {0};
    assert_int_equal(dv_request(fx->dv, "PATCH",
                                "smsys_smses(00000000-0000-0000-0000-000000000001)", NULL,
                                "{\"smsys_status\":3}", out_cb, &r),
                     0);
    run_all(fx, &r, 1, 5000);
    assert_int_equal(r.rc, 0);
    assert_string_equal(fx->peer.last_method, "PATCH");
}

struct idres {
    int fired, rc;
    char id[37];
    char detail[512];
};

static void id_cb(int rc, const char *id, const struct smsys_err *err, void *ud)
{
    struct idres *x = ud;
    x->fired++;
    x->rc = rc;
    snprintf(x->id, sizeof x->id, "%s", id);
    if (err)
        snprintf(x->detail, sizeof x->detail, "%s", err->detail);
}

static void st_cb(int rc, const struct smsys_err *err, void *ud)
{
    struct idres *x = ud;
    x->fired++;
    x->rc = rc;
    if (err)
        snprintf(x->detail, sizeof x->detail, "%s", err->detail);
}

static void test_create_patch_delete_errors(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    open_dv(fx, &o);
    struct idres c = {0};
    assert_int_equal(dv_create(fx->dv, "smsys_smses", "{\"subject\":\"hi\"}", 0, id_cb, &c), 0);
    assert_int_equal(tu_run_until(&fx->loop, &c.fired, 5000), 0);
    assert_int_equal(c.rc, 0);
    assert_string_equal(c.id, "aaaaaaaa-0000-0000-0000-000000000001");

    fx->peer.script[0] = 412;
    fx->peer.script[1] = 404;
    fx->peer.script[2] = 403;
    fx->peer.n_script = 3;
    struct idres p = {0}, d = {0}, q = {0};
    assert_int_equal(
        dv_patch(fx->dv, "smsys_smses", c.id, "{\"smsys_status\":4}", "W/\"12345\"", st_cb, &p), 0);
    assert_int_equal(tu_run_until(&fx->loop, &p.fired, 5000), 0);
    assert_int_equal(p.rc, SMSYS_ECONFLICT);
    assert_string_equal(fx->peer.last_if_match, "W/\"12345\"");
    assert_non_null(strstr(p.detail, "0x80060882"));
    assert_int_equal(dv_delete(fx->dv, "smsys_smses", c.id, st_cb, &d), 0);
    assert_int_equal(tu_run_until(&fx->loop, &d.fired, 5000), 0);
    assert_int_equal(d.rc, SMSYS_ENOTFOUND);
    assert_non_null(strstr(d.detail, "Does Not Exist"));
    assert_int_equal(dv_delete(fx->dv, "smsys_smses", c.id, st_cb, &q), 0);
    assert_int_equal(tu_run_until(&fx->loop, &q.fired, 5000), 0);
    assert_int_equal(q.rc, SMSYS_EPERM);
    /* bad ids never reach the wire */
    assert_int_equal(dv_patch(fx->dv, "smsys_smses", "x') or (1", "{}", NULL, st_cb, &q), -EINVAL);
    assert_int_equal(
        dv_request(fx->dv, "GET", "http://evil.example/api/data/v9.2/x", NULL, NULL, out_cb, NULL),
        -EINVAL);
    assert_int_equal(q.fired, 1);
}

struct pg {
    int pages, rows, fired, rc, stop_after;
    unsigned npages;
    char delta[64];
};

static int page_cb(const cJSON *rows, const cJSON *page, void *ud)
{
    struct pg *x = ud;
    (void)page;
    x->pages++;
    x->rows += cJSON_GetArraySize(rows);
    return x->stop_after && x->pages >= x->stop_after ? DV_PAGE_STOP : DV_PAGE_CONTINUE;
}

static void pages_done_cb(int rc, const char *delta, unsigned pages, const struct smsys_err *err,
                          void *ud)
{
    struct pg *x = ud;
    x->fired++;
    x->rc = rc;
    x->npages = pages;
    snprintf(x->delta, sizeof x->delta, "%s", delta ? delta : "");
}

static void test_paging(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    open_dv(fx, &o);
    fx->peer.page_rows = 12000;
    struct pg x = {0};
    assert_int_equal(dv_get_all(fx->dv, "contacts?$select=contactid",
                                "odata.include-annotations=\"*\"", 5000, page_cb, pages_done_cb,
                                &x),
                     0);
    assert_int_equal(tu_run_until(&fx->loop, &x.fired, 10000), 0);
    assert_int_equal(x.rc, 0);
    assert_int_equal(x.pages, 3);
    assert_int_equal(x.npages, 3);
    assert_int_equal(x.rows, 12000);
    assert_string_equal(x.delta, "http://d/delta");
    /* the same Prefer on every page */
    for (int i = 0; i < 3; i++)
        assert_string_equal(fx->peer.prefer_seen[i],
                            "odata.maxpagesize=5000,odata.include-annotations=\"*\"");
    /* stop early */
    struct pg y = {.stop_after = 1};
    assert_int_equal(dv_get_all(fx->dv, "contacts", NULL, 5000, page_cb, pages_done_cb, &y), 0);
    assert_int_equal(tu_run_until(&fx->loop, &y.fired, 10000), 0);
    assert_int_equal(y.rc, 0);
    assert_int_equal(y.pages, 1);
    assert_int_equal(fx->peer.pages_served, 4);
}

/* ---- bulk ---- */

struct bres {
    int fired, rc, used_batch;
    unsigned requests;
    size_t n, ok;
    int row_rc[3000];
    char id0[37];
    char detail[3000][80];
};

static void bulk_cb(int rc, const struct dv_bulk_result *res, void *ud)
{
    struct bres *x = ud;
    x->fired++;
    x->rc = rc;
    x->n = res->n;
    x->requests = res->requests;
    x->used_batch = res->used_batch;
    for (size_t i = 0; i < res->n && i < 3000; i++) {
        x->row_rc[i] = res->rows[i].rc;
        snprintf(x->detail[i], sizeof x->detail[i], "%.79s", res->rows[i].err.detail);
        if (res->rows[i].rc == 0)
            x->ok++;
    }
    snprintf(x->id0, sizeof x->id0, "%s", res->rows[0].id);
}

static cJSON *rows(int n, int with_id)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *r = cJSON_CreateObject();
        char id[40];
        snprintf(id, sizeof id, "%08d-0000-0000-0000-000000000000", i);
        if (with_id)
            cJSON_AddStringToObject(r, "contactid", id);
        cJSON_AddStringToObject(r, "lastname", "رضایی");
        cJSON_AddItemToArray(a, r);
    }
    return a;
}

static void test_update_multiple(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    open_dv(fx, &o);
    fx->peer.multiple_supported = 1;
    cJSON *t = rows(2500, 1);
    struct bres *x = calloc(1, sizeof *x);
    assert_int_equal(dv_update_multiple(fx->dv, "contacts", "contact", t, bulk_cb, x), 0);
    cJSON_Delete(t); /* borrowed for the call only */
    assert_int_equal(tu_run_until(&fx->loop, &x->fired, 10000), 0);
    assert_int_equal(x->rc, 0);
    assert_int_equal(x->n, 2500);
    assert_int_equal(x->ok, 2500);
    assert_int_equal(x->requests, 3);
    assert_int_equal(x->used_batch, 0);
    assert_int_equal(fx->peer.multiple_requests, 3);
    assert_int_equal(fx->peer.multiple_rows[0], 1000);
    assert_int_equal(fx->peer.multiple_rows[1], 1000);
    assert_int_equal(fx->peer.multiple_rows[2], 500);
    /* CreateMultiple returns the new ids */
    memset(x, 0, sizeof *x);
    t = rows(3, 0);
    assert_int_equal(dv_create_multiple(fx->dv, "contacts", "contact", t, bulk_cb, x), 0);
    cJSON_Delete(t);
    assert_int_equal(tu_run_until(&fx->loop, &x->fired, 10000), 0);
    assert_int_equal(x->rc, 0);
    assert_string_equal(x->id0, "00000000-0000-0000-0000-00000000000c");
    /* updates need every row's key */
    t = rows(2, 0);
    assert_int_equal(dv_update_multiple(fx->dv, "contacts", "contact", t, bulk_cb, x), -EINVAL);
    cJSON_Delete(t);
    free(x);
}

static void test_batch_fallback(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    open_dv(fx, &o);
    fx->peer.multiple_supported = 0; /* an old on-premises server */
    cJSON *t = rows(1500, 1);
    struct bres *x = calloc(1, sizeof *x);
    assert_int_equal(dv_update_multiple(fx->dv, "contacts", "contact", t, bulk_cb, x), 0);
    assert_int_equal(tu_run_until(&fx->loop, &x->fired, 10000), 0);
    assert_int_equal(x->rc, 0);
    assert_int_equal(x->ok, 1500);
    assert_int_equal(x->used_batch, 1);
    /* one probe of UpdateMultiple (404), then $batch for both chunks */
    assert_int_equal(x->requests, 3);
    assert_int_equal(fx->peer.batch_requests, 2);
    assert_int_equal(dv_metrics(fx->dv)->batch_fallbacks, 1);
    /* the answer is cached: the next write goes straight to $batch, and a
     * failed changeset names the failing row */
    memset(x, 0, sizeof *x);
    fx->peer.batch_fail_cid = 3;
    assert_int_equal(dv_update_multiple(fx->dv, "contacts", "contact", t, bulk_cb, x), 0);
    assert_int_equal(tu_run_until(&fx->loop, &x->fired, 10000), 0);
    assert_int_equal(x->requests, 2);
    assert_int_equal(fx->peer.batch_requests, 4);
    assert_int_equal(x->rc, SMSYS_ETEMP); /* row 0 was rolled back */
    assert_int_equal(x->row_rc[2], SMSYS_ENOTFOUND);
    assert_int_equal(x->row_rc[0], SMSYS_ETEMP);
    assert_non_null(strstr(x->detail[0], "rolled back"));
    assert_int_equal(x->row_rc[999], SMSYS_ETEMP);
    assert_int_equal(x->row_rc[1000], 0); /* the second chunk went through */
    assert_int_equal(x->ok, 500);
    cJSON_Delete(t);
    free(x);
}

static void test_force_batch_create(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    o.force_batch = 1;
    open_dv(fx, &o);
    fx->peer.multiple_supported = 1;
    cJSON *t = rows(4, 0);
    struct bres *x = calloc(1, sizeof *x);
    assert_int_equal(dv_create_multiple(fx->dv, "contacts", "contact", t, bulk_cb, x), 0);
    assert_int_equal(tu_run_until(&fx->loop, &x->fired, 10000), 0);
    assert_int_equal(x->rc, 0);
    assert_int_equal(x->used_batch, 1);
    assert_int_equal(fx->peer.multiple_requests, 0);
    assert_string_equal(x->id0, "00000001-0000-0000-0000-00000000000b");
    cJSON_Delete(t);
    free(x);
}

static void test_close_with_pending(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    o.max_concurrency = 2;
    open_dv(fx, &o);
    fx->peer.hold_ms = 2000;
    struct out r[5];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 5; i++)
        assert_int_equal(dv_request(fx->dv, "GET", "WhoAmI", NULL, NULL, out_cb, &r[i]), 0);
    /* let two reach the peer, then close */
    uint64_t end = util_now_ms() + 3000;
    while (fx->peer.api_requests < 2 && util_now_ms() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(fx->peer.api_requests, 2);
    dv_close(fx->dv, flag_cb, &fx->dv_closed);
    fx->dv = NULL;
    for (int i = 0; i < 5; i++)
        assert_int_equal(r[i].fired, 0); /* never inside dv_close */
    assert_int_equal(tu_run_until(&fx->loop, &fx->dv_closed, 5000), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(r[i].fired, 1);
        assert_int_equal(r[i].rc, SMSYS_ECLOSED);
    }
}

static void test_token_endpoint_down(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    char dead[128];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d/tenant/oauth2/v2.0/token", tu_free_port());
    o.token_url = dead;
    o.max_retries = 2;
    open_dv(fx, &o);
    struct out r[2];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 2; i++)
        assert_int_equal(dv_request(fx->dv, "GET", "WhoAmI", NULL, NULL, out_cb, &r[i]), 0);
    run_all(fx, r, 2, 10000);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r[i].rc, SMSYS_ETEMP);
        assert_non_null(strstr(r[i].detail, "token endpoint"));
    }
    assert_int_equal(fx->peer.api_requests, 0);
    assert_int_equal(dv_metrics(fx->dv)->failures, 2);
}

static void test_close_during_token_fetch(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = base_opts(fx);
    open_dv(fx, &o);
    fx->peer.token_hang = 1;
    struct out r = {0};
    assert_int_equal(dv_request(fx->dv, "GET", "WhoAmI", NULL, NULL, out_cb, &r), 0);
    uint64_t end = util_now_ms() + 3000;
    while (fx->peer.token_held == NULL && util_now_ms() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_non_null(fx->peer.token_held);
    dv_close(fx->dv, flag_cb, &fx->dv_closed);
    fx->dv = NULL;
    assert_int_equal(r.fired, 0);
    assert_int_equal(tu_run_until(&fx->loop, &fx->dv_closed, 5000), 0);
    assert_int_equal(r.fired, 1);
    assert_int_equal(r.rc, SMSYS_ECLOSED);
}

static void test_ntlm_wiring(void **state)
{
    struct fx *fx = *state;
    struct dv_opts o = {.url = fx->url,
                        .auth = DV_AUTH_NTLM,
                        .username = "CORP\\svc-smsys",
                        .password = "pw",
                        .api_version = "9.2"};
    open_dv(fx, &o);
    fx->peer.ntlm = 1;
    struct out r = {0};
    assert_int_equal(dv_request(fx->dv, "GET", "WhoAmI", NULL, NULL, out_cb, &r), 0);
    run_all(fx, &r, 1, 5000);
    /* curl opened the NTLM handshake (type-1 message); the peer never
     * completes it, so the final answer is 401 -> EAUTH, without a retry
     * loop and without any token request */
    assert_int_equal(r.rc, SMSYS_EAUTH);
    assert_int_equal(strncmp(fx->peer.ntlm_seen, "NTLM TlRMTVNTUAAB", 17), 0);
    assert_int_equal(fx->peer.token_requests, 0);
    assert_int_equal(r.attempts, 1);
}

/* A fresh RSA key and a self-signed certificate in PEM files. */
static void make_cert(const char *certpath, const char *keypath, EVP_PKEY **pub, char x5t[64])
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    assert_non_null(k);
    X509 *x = X509_new();
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"smsys-test", -1, -1,
                               0);
    X509_set_issuer_name(x, nm);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    FILE *f = fopen(certpath, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    f = fopen(keypath, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    assert_int_equal(X509_digest(x, EVP_sha1(), md, &mdlen), 1);
    /* expected x5t: base64url of the thumbprint, computed the long way */
    unsigned char b64[64];
    int n = EVP_EncodeBlock(b64, md, (int)mdlen);
    int o = 0;
    for (int i = 0; i < n && b64[i] != '='; i++)
        x5t[o++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    x5t[o] = '\0';
    X509_free(x);
    *pub = k;
}

static void test_certificate_credentials(void **state)
{
    struct fx *fx = *state;
    char cp[] = "/tmp/test_dv_cert_XXXXXX", kp[] = "/tmp/test_dv_key_XXXXXX";
    int cfd = mkstemp(cp), kfd = mkstemp(kp);
    assert_true(cfd >= 0 && kfd >= 0);
    close(cfd);
    close(kfd);
    make_cert(cp, kp, &fx->peer.cert_pub, fx->peer.x5t);
    snprintf(fx->peer.expect_aud, sizeof fx->peer.expect_aud, "%s", fx->token_url);
    struct dv_opts o = base_opts(fx);
    o.client_secret = NULL;
    o.cert_file = cp;
    o.key_file = kp;
    open_dv(fx, &o);
    fx->peer.reject_tokens = 1; /* forces a second fetch: a second, fresh assertion */
    struct out r = {0};
    assert_int_equal(dv_request(fx->dv, "GET", "WhoAmI", NULL, NULL, out_cb, &r), 0);
    run_all(fx, &r, 1, 5000);
    assert_int_equal(r.rc, 0);
    assert_int_equal(fx->peer.assertions_ok, 2);
    assert_int_equal(fx->peer.token_requests, 2);
    assert_null(strstr(fx->peer.last_form, "client_secret"));
    /* a key that is not there: a configuration error, not a crash */
    struct dv_client *bad;
    o.key_file = "/nonexistent/key.pem";
    assert_int_equal(dv_new(&fx->loop, fx->http, &o, &bad), SMSYS_ECONFIG);
    /* both kinds of credential at once: refused */
    o.key_file = kp;
    o.client_secret = SECRET;
    assert_int_equal(dv_new(&fx->loop, fx->http, &o, &bad), -EINVAL);
    EVP_PKEY_free(fx->peer.cert_pub);
    fx->peer.cert_pub = NULL;
    unlink(cp);
    unlink(kp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_429_global_pause, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_5xx_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_401_once_refetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_401_twice_eauth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_401_single_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_renewed_before_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_token_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whoami_create_patch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_patch_delete_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_multiple, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_force_batch_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_endpoint_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_during_token_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ntlm_wiring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certificate_credentials, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
