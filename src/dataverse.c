/* dataverse.c - the Dataverse request engine: one global throttle
 * (concurrency cap, Retry-After pause, backoff), auth (bearer token with a
 * single refetch on 401, or NTLM/Negotiate) and error translation. The
 * single-row helpers are in dataverse_ops.c, paging and bulk writes in
 * dataverse_bulk.c, the Prometheus mirrors in dataverse_metrics.c.
 *
 * Every request is a struct dv_req that lives on exactly one list: queue
 * (ready, FIFO), delayed (backoff) or inflight. One uv_timer drives
 * dispatch; nothing is sent from inside dv_request_ex(), so callbacks
 * never run inside it. */
#include "dataverse_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "smsys/buf.h"
#include "smsys/http_client.h"
#include "smsys/log.h"
#include "smsys/oauth.h"
#include "smsys/odata.h"
#include "smsys/util.h"

/* ---- lists ---- */

static struct dv_req *req_of(struct list_node *n)
{
    return list_entry(n, struct dv_req, node);
}

static void gauges(struct dv_client *c)
{
    c->m.in_flight = c->inflight.n;
    c->m.queued = c->queue.n + c->delayed.n;
    if (c->prom.on)
        dv_prom_sync(c);
}

/* ---- setup ---- */

static char *dup_or_null(const char *s, int *fail)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *fail = 1;
    return d;
}

static void secret_free(char *s)
{
    if (s) {
        volatile char *v = s;
        while (*v)
            *v++ = '\0';
        free(s);
    }
}

int dv_new(uv_loop_t *loop, struct http_client *http, const struct dv_opts *o,
           struct dv_client **out)
{
    if (loop == NULL || http == NULL || o == NULL || out == NULL || o->url == NULL ||
        (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0))
        return -EINVAL;
    if (o->auth == DV_AUTH_CLIENT_CREDENTIALS &&
        (o->token_url == NULL || o->client_id == NULL ||
         (o->client_secret == NULL && o->cert_file == NULL)))
        return -EINVAL;
    if (o->auth == DV_AUTH_NTLM && (o->username == NULL || o->password == NULL))
        return -EINVAL;
    struct dv_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->loop = loop;
    c->http = http;
    c->auth = o->auth;
    c->o = *o;
    c->o.url = c->o.api_version = c->o.token_url = c->o.client_id = c->o.client_secret = NULL;
    c->o.scope = c->o.resource = c->o.username = c->o.password = NULL;
    c->o.cert_file = c->o.key_file = NULL;
    c->o.metrics_registry = NULL;
#define DEF(f, v)                                                                                  \
    if (c->o.f == 0)                                                                               \
    c->o.f = (v)
    DEF(max_concurrency, 8);
    DEF(timeout_ms, 60000);
    DEF(throttle_retries, 20);
    DEF(max_retries, 4);
    DEF(backoff_base_ms, 500);
    DEF(backoff_max_ms, 30000);
    DEF(default_retry_after_ms, 5000);
    DEF(max_retry_after_s, 300);
#undef DEF
    c->rng = uv_hrtime() | 1;
    if (o->export_metrics)
        dv_prom_init(c, o->metrics_registry);
    int fail = 0;
    c->username = dup_or_null(o->username, &fail);
    c->password = dup_or_null(o->password, &fail);
    struct buf b = BUF_INIT;
    size_t ul = strlen(o->url);
    while (ul > 0 && o->url[ul - 1] == '/')
        ul--;
    if (buf_printf(&b, "%.*s/api/data/v%s/", (int)ul, o->url,
                   o->api_version ? o->api_version : "9.2") < 0)
        fail = 1;
    c->base = b.data;
    int rc = fail ? -ENOMEM : 0;
    if (rc == 0 && o->auth == DV_AUTH_CLIENT_CREDENTIALS) {
        struct oauth_opts oo = {.token_url = o->token_url,
                                .client_id = o->client_id,
                                .client_secret = o->client_secret,
                                .cert_file = o->cert_file,
                                .key_file = o->key_file,
                                .scope = o->scope,
                                .resource = o->resource,
                                .insecure = o->insecure};
        rc = oauth_new(loop, http, &oo, &c->oauth);
    }
    if (rc == 0) {
        rc = uv_timer_init(loop, &c->timer);
        if (rc < 0 && c->oauth)
            oauth_close(c->oauth, NULL, NULL);
    }
    if (rc < 0) {
        free(c->base);
        free(c->username);
        secret_free(c->password);
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

const struct dv_metrics *dv_metrics(const struct dv_client *c)
{
    return &c->m;
}

const char *dv_base_url(const struct dv_client *c)
{
    return c->base;
}

/* ---- error translation ---- */

int dv_translate(int status, const char *body, size_t len, struct smsys_err *err)
{
    if (status >= 200 && status < 300) {
        smsys_err_clear(err);
        return 0;
    }
    int code;
    switch (status) {
    case 400:
        code = SMSYS_EPROTO;
        break;
    case 401:
        code = SMSYS_EAUTH;
        break;
    case 403:
        code = SMSYS_EPERM;
        break;
    case 404:
        code = SMSYS_ENOTFOUND;
        break;
    case 409:
    case 412:
        code = SMSYS_ECONFLICT;
        break;
    case 413:
        code = SMSYS_ETOOBIG;
        break;
    case 429:
        code = SMSYS_ETHROTTLED;
        break;
    default:
        code = status >= 500 ? SMSYS_ETEMP : SMSYS_EHTTP;
    }
    char ec[64], msg[400];
    if (odata_error_parse(body, len, ec, sizeof ec, msg, sizeof msg))
        return smsys_err_set(err, code, "HTTP %d%s%s: %s", status, *ec ? " " : "", ec, msg);
    return smsys_err_set(err, code, "HTTP %d: %s", status, smsys_strerror(code));
}

/* ---- completion ---- */

static void req_free(struct dv_req *r)
{
    free(r->method);
    free(r->url);
    free(r->prefer);
    free(r->body);
    free(r->content_type);
    free(r->if_match);
    free(r->token_used);
    free(r);
}

/* Calls the user's callback with the final outcome and frees r. resp is
 * the last HTTP response or NULL; err is set for rc < 0. r is on no list. */
static void req_complete(struct dv_req *r, int rc, struct http_response *resp,
                         const struct smsys_err *err)
{
    struct dv_client *c = r->c;
    struct dv_result res = {.body = "", .attempts = r->attempts};
    if (resp) {
        res.status = resp->status;
        res.headers = resp->headers;
        res.n_headers = resp->n_headers;
        if (resp->body.data) {
            res.body = resp->body.data;
            res.body_len = resp->body.len;
        }
    }
    if (res.body_len > 0) {
        const char *ct = resp ? http_client_header_get(resp, "Content-Type") : NULL;
        res.json = cJSON_ParseWithLength(res.body, res.body_len);
        if (rc == 0 && res.json == NULL && ct && strstr(ct, "json"))
            rc = smsys_err_set(&res.err, SMSYS_EPROTO, "HTTP %d: unparsable JSON body", res.status);
    }
    if (rc < 0 && err)
        res.err = *err;
    else if (rc == 0)
        smsys_err_clear(&res.err);
    res.err.code = rc;
    if (rc < 0) {
        c->m.failures++;
        if (rc == SMSYS_EUNKNOWN)
            c->m.unknown_outcomes++;
    }
    gauges(c);
    r->cb(rc, &res, r->ud);
    cJSON_Delete(res.json);
    req_free(r);
}

static void try_finish_close(struct dv_client *c);

/* ---- dispatch ---- */

static uint64_t rnd(struct dv_client *c)
{
    /* xorshift64: jitter only, not security */
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return c->rng = x;
}

/* Exponential backoff with jitter in [d/2, d], d = base * 2^n capped. */
static uint64_t backoff_ms(struct dv_client *c, unsigned n)
{
    uint64_t d = c->o.backoff_base_ms;
    for (unsigned i = 0; i < n && d < c->o.backoff_max_ms; i++)
        d *= 2;
    if (d > c->o.backoff_max_ms)
        d = c->o.backoff_max_ms;
    return d / 2 + rnd(c) % (d / 2 + 1);
}

static void timer_cb(uv_timer_t *h);

/* Arms the timer for the next moment something may become sendable. */
static void arm(struct dv_client *c, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    if (c->queue.n) {
        uint64_t gate = c->paused_until > c->hold_until ? c->paused_until : c->hold_until;
        if (gate > now)
            next = gate;
    }
    for (struct list_node *n = list_first(&c->delayed); n; n = list_next(n))
        if (req_of(n)->due < next)
            next = req_of(n)->due;
    if (next == UINT64_MAX)
        return;
    uint64_t in = next > now ? next - now : 0;
    uv_timer_start(&c->timer, timer_cb, in ? in : 1, 0);
}

static void http_done_cb(int rc, struct http_response *resp, void *ud);
static void token_cb(int rc, const char *token, const struct smsys_err *err, void *ud);

static enum dv_method method_of(const char *m)
{
    if (strcmp(m, "GET") == 0)
        return DV_GET;
    if (strcmp(m, "POST") == 0)
        return DV_POST;
    if (strcmp(m, "PATCH") == 0)
        return DV_PATCH;
    if (strcmp(m, "DELETE") == 0)
        return DV_DELETE;
    return DV_OTHER;
}

/* Sends one attempt of r (taken off the queue). */
static void send_one(struct dv_client *c, struct dv_req *r, const char *token)
{
    struct buf authz = BUF_INIT, pref = BUF_INIT, im = BUF_INIT, ct = BUF_INIT;
    const char *h[8];
    size_t n = 0;
    int rc = 0;
    h[n++] = "Accept: application/json";
    h[n++] = "OData-MaxVersion: 4.0";
    h[n++] = "OData-Version: 4.0";
    if (token) {
        rc = buf_printf(&authz, "Authorization: Bearer %s", token);
        h[n++] = authz.data;
        free(r->token_used);
        r->token_used = strdup(token);
        if (r->token_used == NULL)
            rc = -ENOMEM;
    }
    if (rc == 0 && r->prefer) {
        rc = buf_printf(&pref, "Prefer: %s", r->prefer);
        h[n++] = pref.data;
    }
    if (rc == 0 && r->if_match) {
        rc = buf_printf(&im, "If-Match: %s", r->if_match);
        h[n++] = im.data;
    }
    if (rc == 0 && r->body) {
        rc = buf_printf(&ct, "Content-Type: %s",
                        r->content_type ? r->content_type : "application/json; charset=utf-8");
        h[n++] = ct.data;
    }
    struct http_request hr = {.method = r->method,
                              .url = r->url,
                              .headers = h,
                              .n_headers = n,
                              .body = r->body,
                              .body_len = r->body_len,
                              .timeout_ms = c->o.timeout_ms,
                              .insecure = c->o.insecure};
    if (c->auth == DV_AUTH_NTLM || c->auth == DV_AUTH_NEGOTIATE) {
        hr.auth = c->auth == DV_AUTH_NTLM ? HTTP_AUTH_NTLM : HTTP_AUTH_NEGOTIATE;
        hr.username = c->username ? c->username : "";
        hr.password = c->password ? c->password : "";
    }
    if (rc == 0)
        rc = http_client_request(c->http, &hr, http_done_cb, r, &r->call);
    if (authz.data) { /* the bearer token: wipe our copy of the header */
        memset(authz.data, 0, authz.len);
    }
    buf_free(&authz);
    buf_free(&pref);
    buf_free(&im);
    buf_free(&ct);
    if (rc < 0) {
        struct smsys_err e;
        smsys_err_set(&e, rc, "request not started: %s", smsys_strerror(rc));
        req_complete(r, rc, NULL, &e);
        return;
    }
    r->state = DV_RS_INFLIGHT;
    r->attempts++;
    if (r->attempts > 1)
        c->m.retries++;
    c->m.requests[r->m]++;
    list_push_back(&c->inflight, &r->node);
    gauges(c);
}

/* Fails every queued and delayed request with rc (token refused, close). */
static void fail_waiting(struct dv_client *c, int rc, const struct smsys_err *err)
{
    struct dv_req *r;
    while ((r = req_of(list_first(&c->queue))) || (r = req_of(list_first(&c->delayed)))) {
        list_remove(r->state == DV_RS_QUEUED ? &c->queue : &c->delayed, &r->node);
        req_complete(r, rc, NULL, err);
    }
}

static void dispatch(struct dv_client *c)
{
    if (c->closing)
        return;
    uint64_t now = util_now_ms();
    /* promote delayed requests whose backoff has passed, ahead of new work
     * (they are older) */
    for (struct list_node *n = list_last(&c->delayed), *p; n; n = p) {
        struct dv_req *r = req_of(n);
        p = list_prev(n);
        if (r->due <= now) {
            list_remove(&c->delayed, &r->node);
            r->state = DV_RS_QUEUED;
            list_push_front(&c->queue, &r->node);
        }
    }
    if (now < c->paused_until || now < c->hold_until) {
        arm(c, now);
        return;
    }
    if (c->pause_started) {
        c->m.throttle_wait_ms += now - c->pause_started;
        c->pause_started = 0;
    }
    /* after a pause, one probe first: if the server still throttles, only
     * that one request draws a 429 instead of a full window of them */
    unsigned cap = c->probing ? 1 : c->o.max_concurrency;
    while (!list_empty(&c->queue) && c->inflight.n < cap) {
        const char *tok = NULL;
        if (c->oauth) {
            tok = oauth_peek(c->oauth);
            if (tok == NULL) {
                if (!c->token_waiting) {
                    int rc = oauth_get(c->oauth, token_cb, c);
                    if (rc < 0) {
                        struct smsys_err e;
                        smsys_err_set(&e, rc, "token: %s", smsys_strerror(rc));
                        fail_waiting(c, rc, &e);
                        break;
                    }
                    c->token_waiting = 1;
                }
                break;
            }
        }
        struct dv_req *r = req_of(list_pop_front(&c->queue));
        send_one(c, r, tok);
        if (c->closing) /* a callback of a failed start closed the client */
            return;
    }
    arm(c, now);
    gauges(c);
}

static void token_cb(int rc, const char *token, const struct smsys_err *err, void *ud)
{
    struct dv_client *c = ud;
    c->token_waiting = 0;
    if (c->closing) {
        try_finish_close(c);
        return;
    }
    uint64_t now = util_now_ms();
    if (rc == 0) {
        c->token_failures = 0;
        dispatch(c);
        return;
    }
    /* credentials refused or an unusable answer: nothing waiting can
     * succeed. Temporary trouble at the token endpoint: back off. */
    if (rc != SMSYS_EAUTH && rc != SMSYS_EPROTO && rc != -ENOMEM &&
        ++c->token_failures <= c->o.max_retries) {
        c->hold_until = now + backoff_ms(c, c->token_failures - 1);
        arm(c, now);
        return;
    }
    c->token_failures = 0;
    fail_waiting(c, rc, err);
}

static void timer_cb(uv_timer_t *h)
{
    struct dv_client *c = container_of(h, struct dv_client, timer);
    if (c->closing) {
        struct smsys_err e;
        smsys_err_set(&e, SMSYS_ECLOSED, "dataverse client closed");
        fail_waiting(c, SMSYS_ECLOSED, &e);
        try_finish_close(c);
        return;
    }
    dispatch(c);
}

/* Retry-After: delta-seconds or an HTTP-date; ms to wait, or -1. */
static int64_t retry_after_ms(const char *v)
{
    long long s;
    if (v == NULL)
        return -1;
    if (util_parse_int(v, 0, 86400 * 7, &s) == 0)
        return s * 1000;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *e = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (e == NULL || *e != '\0')
        return -1;
    time_t when = timegm(&tm);
    time_t now = time(NULL);
    return when > now ? (int64_t)(when - now) * 1000 : 0;
}

/* Is a 5xx / network failure of r retryable, and how does it end if not? */
static int idempotent(const struct dv_req *r)
{
    if (r->retry == DV_RETRY_SAFE)
        return 1;
    if (r->retry == DV_RETRY_NEVER)
        return 0;
    return r->m != DV_POST && r->m != DV_OTHER;
}

static void delay(struct dv_client *c, struct dv_req *r, uint64_t now)
{
    r->due = now + backoff_ms(c, r->retries);
    r->retries++;
    r->state = DV_RS_DELAYED;
    list_push_back(&c->delayed, &r->node);
}

static void http_done_cb(int rc, struct http_response *resp, void *ud)
{
    struct dv_req *r = ud;
    struct dv_client *c = r->c;
    r->call = NULL;
    list_remove(&c->inflight, &r->node);
    gauges(c);
    struct smsys_err e;
    if (c->closing) {
        smsys_err_set(&e, SMSYS_ECLOSED, "dataverse client closed");
        req_complete(r, SMSYS_ECLOSED, NULL, &e);
        try_finish_close(c);
        return;
    }
    uint64_t now = util_now_ms();
    int st = rc == 0 ? resp->status : 0;
    c->m.responses[st >= 200 && st < 600 ? st / 100 : 0]++;
    if (st != 429)
        c->probing = 0;
    log_debug("dataverse response", "method=%s status=%d rc=%d attempt=%u ms=%llu", r->method, st,
              rc, r->attempts, (unsigned long long)resp->total_ms);

    if (rc == 0 && st == 401) {
        c->m.status_401++;
        if (c->oauth && r->auth_retries == 0) {
            /* expired or revoked: one new token, one more try */
            r->auth_retries++;
            c->m.token_refetches++;
            oauth_invalidate(c->oauth, r->token_used);
            r->state = DV_RS_QUEUED;
            list_push_front(&c->queue, &r->node);
            dispatch(c);
            return;
        }
    } else if (rc == 0 && st == 429) {
        c->m.status_429++;
        if (++r->throttles <= c->o.throttle_retries) {
            int64_t ms = retry_after_ms(http_client_header_get(resp, "Retry-After"));
            if (ms < 0)
                ms = c->o.default_retry_after_ms;
            if (ms > (int64_t)c->o.max_retry_after_s * 1000)
                ms = (int64_t)c->o.max_retry_after_s * 1000;
            /* global: every request waits, none is sent before it passes */
            c->probing = 1;
            if (now + (uint64_t)ms > c->paused_until) {
                c->paused_until = now + (uint64_t)ms;
                c->m.throttle_pauses++;
                if (!c->pause_started)
                    c->pause_started = now;
                log_warn("dataverse throttled", "retry_after_ms=%lld queued=%zu", (long long)ms,
                         c->queue.n + 1);
            }
            r->state = DV_RS_QUEUED;
            list_push_front(&c->queue, &r->node);
            dispatch(c);
            return;
        }
    } else if (rc == 0 && st >= 500) {
        int may = idempotent(r) || (st == 503 && r->retry != DV_RETRY_NEVER);
        if (may && r->retries < c->o.max_retries) {
            delay(c, r, now);
            dispatch(c);
            return;
        }
        if (!idempotent(r) && (st == 502 || st == 504)) {
            /* a gateway gave up waiting: the server may have done it */
            dv_translate(st, resp->body.data, resp->body.len, &e);
            smsys_err_set(&e, SMSYS_EUNKNOWN, "outcome unknown: %s", e.detail);
            req_complete(r, SMSYS_EUNKNOWN, resp, &e);
            dispatch(c);
            return;
        }
    } else if (rc < 0) {
        int sent = resp->request_sent;
        if (rc == -ECANCELED) {
            smsys_err_set(&e, rc, "request cancelled");
            req_complete(r, rc, NULL, &e);
            dispatch(c);
            return;
        }
        int fatal = rc == SMSYS_EAUTH || rc == SMSYS_ETOOBIG || rc == -EINVAL || rc == -ENOMEM;
        if (!fatal && (idempotent(r) || (!sent && r->retry != DV_RETRY_NEVER)) &&
            r->retries < c->o.max_retries) {
            delay(c, r, now);
            dispatch(c);
            return;
        }
        if (!fatal && sent && !idempotent(r)) {
            smsys_err_set(&e, SMSYS_EUNKNOWN, "outcome unknown: %s after the request was sent",
                          resp->err.detail);
            req_complete(r, SMSYS_EUNKNOWN, NULL, &e);
        } else {
            int code = fatal || rc == -ETIMEDOUT ? rc : SMSYS_ETEMP;
            smsys_err_set(&e, code, "%s", resp->err.detail);
            req_complete(r, code, NULL, &e);
        }
        dispatch(c);
        return;
    }
    rc = dv_translate(st, resp->body.data, resp->body.len, &e);
    if (st == 404)
        c->m.status_404++;
    else if (st == 412)
        c->m.status_412++;
    req_complete(r, rc, resp, &e);
    dispatch(c);
}

/* ---- public request entry ---- */

int dv_request_ex(struct dv_client *c, const struct dv_call *call, dv_done_cb cb, void *ud)
{
    if (c->closing)
        return SMSYS_ECLOSED;
    if (call == NULL || call->path == NULL || cb == NULL)
        return -EINVAL;
    const char *method = call->method ? call->method : call->body ? "POST" : "GET";
    struct buf url = BUF_INIT;
    int rc;
    if (strncmp(call->path, "http://", 7) == 0 || strncmp(call->path, "https://", 8) == 0) {
        /* a nextLink: only under our service root, or the bearer token
         * would go to whoever the link names */
        if (strncasecmp(call->path, c->base, strlen(c->base)) != 0)
            return -EINVAL;
        rc = buf_puts(&url, call->path);
    } else {
        rc = buf_printf(&url, "%s%s", c->base, call->path[0] == '/' ? call->path + 1 : call->path);
    }
    if (rc < 0)
        return rc;
    if (strpbrk(url.data, " \r\n\t") || (call->prefer && strpbrk(call->prefer, "\r\n")) ||
        (call->if_match && strpbrk(call->if_match, "\r\n")) ||
        (call->content_type && strpbrk(call->content_type, "\r\n"))) {
        buf_free(&url);
        return -EINVAL;
    }
    struct dv_req *r = calloc(1, sizeof *r);
    if (r == NULL) {
        buf_free(&url);
        return -ENOMEM;
    }
    int fail = 0;
    r->c = c;
    r->url = url.data;
    r->method = dup_or_null(method, &fail);
    r->prefer = dup_or_null(call->prefer, &fail);
    r->if_match = dup_or_null(call->if_match, &fail);
    r->content_type = dup_or_null(call->content_type, &fail);
    if (call->body) {
        r->body_len = call->body_len ? call->body_len : strlen(call->body);
        r->body = malloc(r->body_len + 1);
        if (r->body) {
            memcpy(r->body, call->body, r->body_len);
            r->body[r->body_len] = '\0';
        } else {
            fail = 1;
        }
    }
    if (fail) {
        req_free(r);
        return -ENOMEM;
    }
    r->m = method_of(r->method);
    r->retry = call->retry;
    r->cb = cb;
    r->ud = ud;
    r->state = DV_RS_QUEUED;
    list_push_back(&c->queue, &r->node);
    gauges(c);
    /* dispatch on the next loop turn, never inside this call */
    uv_timer_start(&c->timer, timer_cb, 0, 0);
    return 0;
}

int dv_request(struct dv_client *c, const char *method, const char *path_and_query,
               const char *prefer, const char *body, dv_done_cb cb, void *ud)
{
    struct dv_call call = {
        .method = method, .path = path_and_query, .prefer = prefer, .body = body};
    return dv_request_ex(c, &call, cb, ud);
}

/* ---- close ---- */

static void timer_closed_cb(uv_handle_t *h)
{
    struct dv_client *c = container_of((uv_timer_t *)h, struct dv_client, timer);
    dv_closed_cb cb = c->close_cb;
    void *ud = c->close_ud;
    dv_ms_free(c);
    free(c->base);
    free(c->username);
    secret_free(c->password);
    free(c);
    if (cb)
        cb(ud);
}

static void oauth_closed_cb(void *ud)
{
    struct dv_client *c = ud;
    uv_close((uv_handle_t *)&c->timer, timer_closed_cb);
}

static void try_finish_close(struct dv_client *c)
{
    if (!c->closing || c->finishing || c->inflight.n || c->queue.n || c->delayed.n)
        return;
    c->finishing = 1;
    if (c->oauth)
        oauth_close(c->oauth, oauth_closed_cb, c);
    else
        oauth_closed_cb(c);
}

void dv_close(struct dv_client *c, dv_closed_cb cb, void *ud)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->close_cb = cb;
    c->close_ud = ud;
    for (struct list_node *n = list_first(&c->inflight); n; n = list_next(n))
        if (req_of(n)->call)
            http_call_cancel(req_of(n)->call);
    /* the timer fails the waiting requests and finishes (later) */
    uv_timer_start(&c->timer, timer_cb, 0, 0);
}
