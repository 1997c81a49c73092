/* main.c - dvemu, a Dataverse Web API emulator for tests, demos and
 * benchmarks. Command line, the HTTP front door (token endpoint, /_emu/
 * control API, /api/data/v9.x/), authentication, service protection
 * limits, fault and latency injection, statistics. See docs/dvemu.md. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "dvemu.h"
#include "smsys/http_server.h"
#include "smsys/log.h"
#include "smsys/util.h"

#define EXEC_BUCKETS 60

struct window {
    char who[128];
    uint64_t *stamps; /* ring of the last limit_requests request times (ms) */
    size_t head, n;
    /* execution time: the window cut in EXEC_BUCKETS slices of summed ms */
    uint64_t exec_ms[EXEC_BUCKETS];
    uint64_t exec_epoch[EXEC_BUCKETS];
};

struct app {
    struct emu emu;
    uv_loop_t *loop;
    struct http_server *srv;
    uv_signal_t sigint, sigterm;
    struct window *wins;
    size_t nwins;
    char *data_dir;
    uint64_t rng;
};

/* A request held back by --latency-ms. */
struct delayed {
    uv_timer_t timer;
    char who[128];
    uint64_t t0;
    struct app *app;
    struct http_req *req;
    struct http_resp *resp;
};

static double rnd01(struct app *a)
{
    a->rng ^= a->rng << 13;
    a->rng ^= a->rng >> 7;
    a->rng ^= a->rng << 17;
    return (double)(a->rng >> 11) / 9007199254740992.0;
}

static void count(cJSON *obj, const char *key)
{
    cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (n)
        cJSON_SetNumberValue(n, n->valuedouble + 1);
    else
        cJSON_AddNumberToObject(obj, key, 1);
}

static void send_res(struct http_resp *resp, struct api_res *r)
{
    if (r->headers.len) {
        /* split "Name: value\r\n" lines back into calls */
        char *p = r->headers.data;
        while (*p) {
            char *eol = strstr(p, "\r\n");
            if (eol == NULL)
                break;
            *eol = '\0';
            char *colon = strchr(p, ':');
            if (colon) {
                *colon = '\0';
                http_resp_header(resp, p, colon + 2);
            }
            p = eol + 2;
        }
    }
    http_resp_send(resp, r->status ? r->status : 500, r->status == 204 ? NULL : r->ctype,
                   r->body.data, r->body.len);
}

static const char *req_header_cb(void *ud, const char *name)
{
    return http_req_header(ud, name);
}

static struct window *window_for(struct app *a, const char *who)
{
    for (size_t i = 0; i < a->nwins; i++)
        if (strcmp(a->wins[i].who, who) == 0)
            return &a->wins[i];
    struct window *n = realloc(a->wins, (a->nwins + 1) * sizeof(*n));
    if (n == NULL)
        return NULL;
    a->wins = n;
    struct window *w = &n[a->nwins++];
    memset(w, 0, sizeof(*w));
    snprintf(w->who, sizeof(w->who), "%s", who);
    w->stamps = calloc((size_t)a->emu.limit_requests, sizeof(uint64_t));
    return w;
}

/* Sliding window: the request is allowed when fewer than limit_requests
 * were admitted during the last window; else *retry_s says when. */
static int window_admit(struct app *a, const char *who, long long *retry_s)
{
    struct emu *e = &a->emu;
    if (e->limit_requests <= 0)
        return 1;
    struct window *w = window_for(a, who);
    if (w == NULL || w->stamps == NULL)
        return 1;
    uint64_t now = util_now_ms(), win = (uint64_t)e->limit_window_s * 1000;
    size_t cap = (size_t)e->limit_requests;
    if (w->n == cap) {
        uint64_t oldest = w->stamps[w->head];
        if (now - oldest < win) {
            *retry_s = (long long)((oldest + win - now + 999) / 1000);
            if (*retry_s < 1)
                *retry_s = 1;
            return 0;
        }
        w->head = (w->head + 1) % cap;
        w->n--;
    }
    w->stamps[(w->head + w->n) % cap] = now;
    w->n++;
    return 1;
}

static uint64_t bucket_len(const struct emu *e)
{
    uint64_t l = (uint64_t)e->limit_window_s * 1000 / EXEC_BUCKETS;
    return l ? l : 1;
}

/* Adds the execution time of a finished request to its client's window. */
static void exec_add(struct app *a, const char *who, uint64_t ms)
{
    if (a->emu.limit_exec_ms <= 0)
        return;
    struct window *w = window_for(a, who);
    if (w == NULL)
        return;
    uint64_t epoch = util_now_ms() / bucket_len(&a->emu);
    size_t i = epoch % EXEC_BUCKETS;
    if (w->exec_epoch[i] != epoch) {
        w->exec_epoch[i] = epoch;
        w->exec_ms[i] = 0;
    }
    w->exec_ms[i] += ms;
}

/* 1 when the client's combined execution time over the window is below
 * the limit; else *retry_s is when the oldest slice leaves the window. */
static int exec_admit(struct app *a, const char *who, long long *retry_s)
{
    struct emu *e = &a->emu;
    if (e->limit_exec_ms <= 0)
        return 1;
    struct window *w = window_for(a, who);
    if (w == NULL)
        return 1;
    uint64_t bl = bucket_len(e), now = util_now_ms(), epoch = now / bl, sum = 0, oldest = epoch;
    for (size_t i = 0; i < EXEC_BUCKETS; i++) {
        if (w->exec_epoch[i] + EXEC_BUCKETS <= epoch || w->exec_ms[i] == 0)
            continue;
        sum += w->exec_ms[i];
        if (w->exec_epoch[i] < oldest)
            oldest = w->exec_epoch[i];
    }
    if (sum < (uint64_t)e->limit_exec_ms)
        return 1;
    uint64_t frees = (oldest + EXEC_BUCKETS) * bl;
    *retry_s = (long long)((frees - now + 999) / 1000);
    if (*retry_s < 1)
        *retry_s = 1;
    return 0;
}

static void throttled(struct app *a, struct http_resp *resp, const char *code, long long retry,
                      const char *msg)
{
    struct api_res r;
    api_res_init(&r);
    api_error(&r, 429, code, "%s", msg);
    api_hdr(&r, "Retry-After", "%lld", retry);
    a->emu.stats.throttled++;
    send_res(resp, &r);
    api_res_free(&r);
}

static int is_api_path(const char *p)
{
    return strncmp(p, "/api/data/v9.2/", 15) == 0 || strncmp(p, "/api/data/v9.1/", 15) == 0;
}

/* On-premises URLs carry the organisation first: /<org>/api/data/v9.1/. */
static const char *api_path(const char *path)
{
    if (is_api_path(path))
        return path;
    const char *slash = path[0] == '/' ? strchr(path + 1, '/') : NULL;
    return slash && is_api_path(slash) ? slash : NULL;
}

/* A reply waiting for its journal records to reach the disk. */
struct held {
    struct app *app;
    struct http_resp *resp;
    struct api_res res;
    uint64_t t0;
    char who[128];
};

static void held_cb(void *item, int err)
{
    struct held *h = item;
    struct emu *e = &h->app->emu;
    if (err != 0) {
        /* applied in memory but not durable: say so rather than acknowledge */
        api_error(&h->res, 500, "0x80040216", "dvemu could not write its journal: %s",
                  uv_strerror(err));
    }
    send_res(h->resp, &h->res);
    api_res_free(&h->res);
    e->inflight--;
    exec_add(h->app, h->who, util_now_ms() - h->t0);
    free(h);
}

static void finish_api(struct app *a, struct http_req *req, struct http_resp *resp, const char *who,
                       uint64_t t0)
{
    struct emu *e = &a->emu;
    /* [/<org>]/api/data/v9.2/<rest> */
    const char *ap = api_path(req->path);
    const char *p = ap + strlen("/api/data/v9.x/");
    char base[400];
    const char *host = http_req_header(req, "Host");
    snprintf(base, sizeof(base), "http://%s%.*s/api/data/v%.3s/", host ? host : "127.0.0.1",
             (int)(ap - req->path), req->path, ap + 11);
    struct api_req q = {
        .method = req->method,
        .base = base,
        .header = req_header_cb,
        .header_ud = req,
        .body = req->body,
        .body_len = req->body_len,
    };
    q.path = strdup(p);
    q.query = strdup(req->query);
    struct api_res r;
    api_res_init(&r);
    size_t ulen = strlen(req->path) + (req->query[0] ? 1 + strlen(req->query) : 0);
    if (q.path == NULL || q.query == NULL || http_urldecode(q.path, 0) < 0) {
        api_error(&r, 400, "0x0", "Malformed URL.");
    } else if (ulen > DVEMU_URL_MAX) {
        /* send it inside a $batch (64 KiB there), or shorten the query */
        api_error(&r, 414, "0x80060891",
                  "The URL is %zu characters long; the limit is %d (%d inside a $batch).", ulen,
                  DVEMU_URL_MAX, DVEMU_URL_MAX_BATCH);
    } else {
        char set[64];
        snprintf(set, sizeof(set), "%.*s", (int)strcspn(q.path, "(/"), q.path);
        count(e->stats.by_set, set[0] ? set : "/");
        uint64_t h0 = uv_hrtime();
        api_exec(e, &q, &r);
        /* the emulator's own work, without injected latency or fsync */
        const char *k = set[0] ? set : "/";
        double ms = (double)(uv_hrtime() - h0) / 1e6;
        cJSON *n = cJSON_GetObjectItemCaseSensitive(e->stats.busy_ms_by_set, k);
        if (n)
            cJSON_SetNumberValue(n, n->valuedouble + ms);
        else
            cJSON_AddNumberToObject(e->stats.busy_ms_by_set, k, ms);
    }
    e->stats.rows_written += (uint64_t)r.rows_written;
    free(q.path);
    free(q.query);
    if (r.rows_written && e->journal) {
        /* the reply leaves once the write is on disk */
        struct held *h = malloc(sizeof(*h));
        if (h) {
            h->app = a;
            h->resp = resp;
            h->res = r;
            h->t0 = t0;
            snprintf(h->who, sizeof(h->who), "%s", who);
            journal_commit_async(e->journal, h, held_cb);
            return;
        }
        log_error("dvemu_journal_oom", "path=%s", req->path);
    }
    send_res(resp, &r);
    api_res_free(&r);
    e->inflight--;
    exec_add(a, who, util_now_ms() - t0);
}

static void delayed_closed_cb(uv_handle_t *h)
{
    free(container_of((uv_timer_t *)h, struct delayed, timer));
}

static void delayed_cb(uv_timer_t *t)
{
    struct delayed *d = container_of(t, struct delayed, timer);
    finish_api(d->app, d->req, d->resp, d->who, d->t0);
    uv_close((uv_handle_t *)&d->timer, delayed_closed_cb);
}

static int g_access_log;

static void api_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct app *a = ud;
    struct emu *e = &a->emu;
    if (g_access_log)
        log_info("dvemu_request", "method=%s target=%s peer=%s", req->method, log_q(req->target),
                 req->peer);
    e->stats.requests++;
    count(e->stats.by_method, req->method);
    if (api_path(req->path) == NULL) {
        struct api_res r;
        api_res_init(&r);
        api_error(&r, 404, "0x80060888", "Resource not found for the segment '%s'.", req->path);
        send_res(resp, &r);
        api_res_free(&r);
        return;
    }
    char who[128];
    if (auth_check(e, http_req_header(req, "Authorization"), who, sizeof(who)) != 0) {
        e->stats.unauthorized++;
        http_resp_header(resp, "WWW-Authenticate",
                         "Bearer authorization_uri=http://127.0.0.1/common/oauth2/authorize, "
                         "resource_id=http://127.0.0.1/");
        http_resp_send(resp, 401, NULL, NULL, 0);
        return;
    }
    long long retry = 0;
    if (!window_admit(a, who, &retry)) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "Number of requests exceeded the limit of %lld over time window of %lld seconds.",
                 e->limit_requests, e->limit_window_s);
        throttled(a, resp, "0x80072322", retry, msg);
        return;
    }
    if (!exec_admit(a, who, &retry)) {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "Combined execution time of incoming requests exceeded limit of %lld "
                 "milliseconds over time window of %lld seconds. Decrease number of concurrent "
                 "requests or reduce the duration of requests and try again later.",
                 e->limit_exec_ms, e->limit_window_s);
        throttled(a, resp, "0x80072321", retry, msg);
        return;
    }
    if (e->limit_concurrency > 0 && e->inflight >= (unsigned)e->limit_concurrency) {
        char msg[200];
        snprintf(msg, sizeof(msg), "Number of concurrent requests exceeded the limit of %lld.",
                 e->limit_concurrency);
        throttled(a, resp, "0x80072326", 1, msg);
        return;
    }
    if (e->fail_rate > 0 && rnd01(a) < e->fail_rate) {
        e->stats.failures_injected++;
        struct api_res r;
        api_res_init(&r);
        api_error(&r, 503, "0x80040216", "An unexpected error occurred (injected by dvemu).");
        send_res(resp, &r);
        api_res_free(&r);
        return;
    }
    e->inflight++;
    uint64_t t0 = util_now_ms();
    if (e->latency_ms > 0) {
        struct delayed *d = calloc(1, sizeof(*d));
        if (d) {
            snprintf(d->who, sizeof(d->who), "%s", who);
            d->t0 = t0;
            d->app = a;
            d->req = req;
            d->resp = resp;
            uv_timer_init(a->loop, &d->timer);
            uv_timer_start(&d->timer, delayed_cb, (uint64_t)e->latency_ms, 0);
            return;
        }
    }
    finish_api(a, req, resp, who, t0);
}

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

static void token_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct app *a = ud;
    struct api_res r;
    api_res_init(&r);
    if (api_path(req->path)) {
        api_cb(req, resp, ud);
        return;
    }
    int v2 = ends_with(req->path, "/oauth2/v2.0/token");
    int v1 = !v2 && ends_with(req->path, "/oauth2/token");
    a->emu.stats.requests++;
    count(a->emu.stats.by_method, req->method);
    if ((!v1 && !v2) || strcmp(req->method, "POST") != 0) {
        http_resp_send(resp, 404, NULL, NULL, 0);
        api_res_free(&r);
        return;
    }
    count(a->emu.stats.by_set, "oauth2/token");
    auth_token(&a->emu, req->body ? req->body : "", http_req_header(req, "Authorization"), v1, &r);
    send_res(resp, &r);
    api_res_free(&r);
}

static void reply_json(struct http_resp *resp, int status, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    http_resp_send(resp, status, "application/json", s, s ? strlen(s) : 0);
    free(s);
}

static void emu_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct app *a = ud;
    struct emu *e = &a->emu;
    if (strcmp(req->path, "/_emu/stats") == 0 && strcmp(req->method, "GET") == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "requests", (double)e->stats.requests);
        cJSON_AddItemToObject(o, "by_method", cJSON_Duplicate(e->stats.by_method, 1));
        cJSON_AddItemToObject(o, "by_entity_set", cJSON_Duplicate(e->stats.by_set, 1));
        cJSON_AddItemToObject(o, "busy_ms_by_entity_set",
                              cJSON_Duplicate(e->stats.busy_ms_by_set, 1));
        cJSON_AddNumberToObject(o, "throttled_429", (double)e->stats.throttled);
        cJSON_AddNumberToObject(o, "unauthorized_401", (double)e->stats.unauthorized);
        cJSON_AddNumberToObject(o, "injected_failures", (double)e->stats.failures_injected);
        cJSON_AddNumberToObject(o, "batches", (double)e->stats.batches);
        cJSON_AddNumberToObject(o, "rows_written", (double)e->stats.rows_written);
        cJSON *rows = cJSON_AddObjectToObject(o, "rows");
        for (size_t i = 0; i < e->store.ntables; i++)
            cJSON_AddNumberToObject(rows, e->store.tables[i]->set,
                                    (double)e->store.tables[i]->live);
        reply_json(resp, 200, o);
        cJSON_Delete(o);
        return;
    }
    if (strcmp(req->path, "/_emu/actions") == 0) {
        if (strcmp(req->method, "GET") == 0) {
            reply_json(resp, 200, e->actions);
            return;
        }
        if (strcmp(req->method, "POST") == 0) {
            cJSON *b = cJSON_ParseWithLength(req->body ? req->body : "", req->body_len);
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(b, "name");
            if (!cJSON_IsString(nm) || nm->valuestring[0] == '\0') {
                cJSON_Delete(b);
                http_resp_send(resp, 400, "text/plain", "need {\"name\":\"...\"}\n", 21);
                return;
            }
            if (!cJSON_GetObjectItemCaseSensitive(e->actions, nm->valuestring))
                cJSON_AddArrayToObject(e->actions, nm->valuestring);
            cJSON_Delete(b);
            http_resp_send(resp, 204, NULL, NULL, 0);
            return;
        }
    }
    if (strcmp(req->path, "/_emu/faults") == 0) {
        if (strcmp(req->method, "GET") == 0) {
            reply_json(resp, 200, e->faults);
            return;
        }
        if (strcmp(req->method, "DELETE") == 0) {
            faults_clear(e);
            http_resp_send(resp, 204, NULL, NULL, 0);
            return;
        }
        if (strcmp(req->method, "POST") == 0) {
            char why[200];
            if (faults_add(e, req->body, req->body_len, why, sizeof(why)) != 0) {
                http_resp_send(resp, 400, "text/plain", why, strlen(why));
                return;
            }
            http_resp_send(resp, 204, NULL, NULL, 0);
            return;
        }
    }
    if (strcmp(req->path, "/_emu/metadata") == 0 && strcmp(req->method, "GET") == 0) {
        reply_json(resp, 200, e->metadata_log);
        return;
    }
    http_resp_send(resp, 404, NULL, NULL, 0);
}

static void closed_cb(void *ud)
{
    (void)ud;
}

static void signal_cb(uv_signal_t *s, int signum)
{
    struct app *a = s->data;
    log_info("dvemu_stopping", "signal=%d", signum);
    http_server_close(a->srv, closed_cb, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: dvemu [--listen HOST:PORT] [--data DIR] [--seed demo|FILE.json]\n"
            "             [--client ID:SECRET]... [--client-cert ID:CERT.pem]...\n"
            "             [--token-ttl SECONDS]\n"
            "             [--limit-requests N --limit-window SECONDS] [--limit-concurrency N]\n"
            "             [--limit-exec-ms N] [--dataverse-limits] [--delta-ttl SECONDS]\n"
            "             [--fail-rate 0.0-1.0] [--latency-ms N]\n"
            "             [--action NAME]... [--no-smsys-schema] [--access-log]\n");
}

static int need_int(const char *opt, const char *v, long long min, long long max, long long *out)
{
    if (v == NULL || util_parse_int(v, min, max, out) != 0) {
        fprintf(stderr, "dvemu: %s needs an integer in [%lld, %lld]\n", opt, min, max);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct app a;
    struct emu *e = &a.emu;
    const char *listen = "127.0.0.1:8401", *seed = NULL;
    int smsys_schema = 1;
    e->clients = cJSON_CreateObject();
    e->client_certs = cJSON_CreateObject();
    e->actions = cJSON_CreateObject();
    e->faults = cJSON_CreateArray();
    e->metadata_log = cJSON_CreateArray();
    e->stats.by_method = cJSON_CreateObject();
    e->stats.by_set = cJSON_CreateObject();
    e->stats.busy_ms_by_set = cJSON_CreateObject();
    e->token_ttl = 3599;
    e->limit_window_s = 300;
    e->delta_ttl_s = 7 * 86400;
    a.rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)time(NULL);
    int custom_client = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--listen") == 0 && v) {
            listen = v;
            i++;
        } else if (strcmp(o, "--data") == 0 && v) {
            a.data_dir = strdup(v);
            i++;
        } else if (strcmp(o, "--seed") == 0 && v) {
            seed = v;
            i++;
        } else if (strcmp(o, "--client") == 0 && v) {
            const char *c = strchr(v, ':');
            if (c == NULL || c == v) {
                fprintf(stderr, "dvemu: --client needs ID:SECRET\n");
                return 2;
            }
            char *id = strndup(v, (size_t)(c - v));
            cJSON_DeleteItemFromObjectCaseSensitive(e->clients, id);
            cJSON_AddStringToObject(e->clients, id, c + 1);
            free(id);
            custom_client = 1;
            i++;
        } else if (strcmp(o, "--client-cert") == 0 && v) {
            const char *c = strchr(v, ':');
            char *id = c && c != v ? strndup(v, (size_t)(c - v)) : NULL;
            int rc = id ? auth_add_cert(e, id, c + 1) : -EINVAL;
            free(id);
            if (rc != 0) {
                fprintf(stderr, "dvemu: --client-cert needs ID:FILE.pem with a certificate\n");
                return 2;
            }
            i++;
        } else if (strcmp(o, "--token-ttl") == 0) {
            if (need_int(o, v, 1, 86400 * 365, &e->token_ttl))
                return 2;
            i++;
        } else if (strcmp(o, "--limit-requests") == 0) {
            if (need_int(o, v, 0, 10000000, &e->limit_requests))
                return 2;
            i++;
        } else if (strcmp(o, "--limit-window") == 0) {
            if (need_int(o, v, 1, 86400, &e->limit_window_s))
                return 2;
            i++;
        } else if (strcmp(o, "--limit-concurrency") == 0) {
            if (need_int(o, v, 0, 100000, &e->limit_concurrency))
                return 2;
            i++;
        } else if (strcmp(o, "--limit-exec-ms") == 0) {
            if (need_int(o, v, 0, 1000000000, &e->limit_exec_ms))
                return 2;
            i++;
        } else if (strcmp(o, "--delta-ttl") == 0) {
            if (need_int(o, v, 1, 100000000, &e->delta_ttl_s))
                return 2;
            i++;
        } else if (strcmp(o, "--latency-ms") == 0) {
            if (need_int(o, v, 0, 600000, &e->latency_ms))
                return 2;
            i++;
        } else if (strcmp(o, "--dataverse-limits") == 0) {
            e->limit_requests = 6000;
            e->limit_window_s = 300;
            e->limit_concurrency = 52;
            e->limit_exec_ms = 1200000;
        } else if (strcmp(o, "--fail-rate") == 0 && v) {
            char *end;
            e->fail_rate = strtod(v, &end);
            if (*end || e->fail_rate < 0 || e->fail_rate > 1) {
                fprintf(stderr, "dvemu: --fail-rate needs a number in [0, 1]\n");
                return 2;
            }
            i++;
        } else if (strcmp(o, "--action") == 0 && v) {
            if (!cJSON_GetObjectItemCaseSensitive(e->actions, v))
                cJSON_AddArrayToObject(e->actions, v);
            i++;
        } else if (strcmp(o, "--access-log") == 0) {
            g_access_log = 1;
        } else if (strcmp(o, "--no-smsys-schema") == 0) {
            smsys_schema = 0;
        } else {
            usage();
            return strcmp(o, "--help") == 0 ? 0 : 2;
        }
    }
    if (!custom_client)
        cJSON_AddStringToObject(e->clients, "smsys-demo", "smsys-demo-secret");
    store_init(&e->store);
    e->with_smsys_schema = smsys_schema;
    /* fixed ids so a restarted emulator answers WhoAmI the same way */
    snprintf(e->user_id, sizeof(e->user_id), "%s", "5d6c1c1e-0000-4000-8000-00000000a001");
    snprintf(e->bu_id, sizeof(e->bu_id), "%s", "5d6c1c1e-0000-4000-8000-00000000b001");
    snprintf(e->org_id, sizeof(e->org_id), "%s", "5d6c1c1e-0000-4000-8000-00000000c001");
    if (schema_install_standard(&e->store, smsys_schema) != 0) {
        fprintf(stderr, "dvemu: out of memory\n");
        return 1;
    }
    {
        /* the application user and its business unit exist from the start */
        struct table *bu = store_by_logical(&e->store, "businessunit");
        cJSON *o = cJSON_CreateObject();
        write_defaults(e, bu, o, e->bu_id);
        cJSON_AddStringToObject(o, "name", "Organisation");
        store_put(&e->store, bu, e->bu_id, o);
        struct table *su = store_by_logical(&e->store, "systemuser");
        o = cJSON_CreateObject();
        write_defaults(e, su, o, e->user_id);
        cJSON_AddStringToObject(o, "fullname", "# smsys application user");
        cJSON_AddStringToObject(o, "applicationid", "smsys-demo");
        cJSON_AddStringToObject(o, "_businessunitid_value", e->bu_id);
        cJSON_AddStringToObject(o, "_businessunitid_value" LLN_SUFFIX, "businessunit");
        store_put(&e->store, su, e->user_id, o);
    }
    if (auth_init(e, a.data_dir) != 0) {
        fprintf(stderr, "dvemu: cannot set up the token key\n");
        return 1;
    }
    if (a.data_dir) {
        int rc = journal_open(e, a.data_dir, &e->journal);
        if (rc != 0) {
            fprintf(stderr, "dvemu: cannot open the journal in %s: %s\n", a.data_dir,
                    strerror(-rc));
            return 1;
        }
    }
    if (seed) {
        int rc = strcmp(seed, "demo") == 0 ? seed_demo(e) : seed_file(e, seed);
        if (rc != 0) {
            fprintf(stderr, "dvemu: seeding from %s failed (%d)\n", seed, rc);
            return 1;
        }
        if (e->journal)
            journal_flush(e->journal);
    }
    a.loop = uv_default_loop();
    if (e->journal)
        journal_attach_loop(e->journal, a.loop);
    struct http_server_opts so = {
        .listen = listen,
        .max_body_bytes = 64u << 20,
        .max_header_bytes = 64u << 10,
        .max_connections = 4096,
    };
    int rc = http_server_new(a.loop, &so, &a.srv);
    if (rc != 0) {
        fprintf(stderr, "dvemu: cannot listen on %s: %s\n", listen, uv_strerror(rc));
        return 1;
    }
    http_server_route(a.srv, NULL, "/", token_cb, &a);
    http_server_route(a.srv, NULL, "/api/", api_cb, &a);
    http_server_route(a.srv, NULL, "/_emu/", emu_cb, &a);
    uv_signal_init(a.loop, &a.sigint);
    uv_signal_init(a.loop, &a.sigterm);
    a.sigint.data = a.sigterm.data = &a;
    uv_signal_start(&a.sigint, signal_cb, SIGINT);
    uv_signal_start(&a.sigterm, signal_cb, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    log_info("dvemu_listening", "listen=%s port=%d limits=%lld/%llds concurrency=%lld", listen,
             http_server_port(a.srv), e->limit_requests, e->limit_window_s, e->limit_concurrency);
    uv_run(a.loop, UV_RUN_DEFAULT);
    if (e->journal)
        journal_close(e->journal, 1);
    uv_loop_close(a.loop);
    for (size_t i = 0; i < a.nwins; i++)
        free(a.wins[i].stamps);
    free(a.wins);
    store_table_free(e->pointer);
    store_free(&e->store);
    cJSON_Delete(e->clients);
    cJSON_Delete(e->client_certs);
    cJSON_Delete(e->actions);
    cJSON_Delete(e->faults);
    cJSON_Delete(e->metadata_log);
    cJSON_Delete(e->stats.by_method);
    cJSON_Delete(e->stats.by_set);
    cJSON_Delete(e->stats.busy_ms_by_set);
    free(a.data_dir);
    return 0;
}
