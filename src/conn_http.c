/* conn_http.c - the transport half every HTTP connector shares: settings,
 * rate limiting, dispatch, close. Per-message send results, status queries
 * and one-request operations are in conn_http_send.c; JSON, form and
 * classification helpers in conn_http_util.c. */
#include "smsys/conn_http.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/util.h"

/* One queued or in-flight request. */
struct ch_call {
    struct conn *c;
    struct ch_call *next, *prev;
    struct ch_req r;
    int has_req; /* 0: a deferred completion, no HTTP */
    ch_done_fn done;
    void *ud;
    struct http_call *hc;
};

/* A burst of one second's worth of segments goes out at once; after that
 * calls are spaced at cost / rate. */
#define CH_BURST_MS 1000.0

static const char *const common_keys[] = {
    "base_url",     "proxy",         "timeout_ms",       "sender",
    "rate_per_sec", "webhook_token", "webhook_base_url", NULL};

static int key_known(const char *k, const char *const *list)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(k, list[i]) == 0)
            return 1;
    return 0;
}

int ch_set_str(const cJSON *settings, const char *key, const char *dflt, char **out,
               struct smsys_err *err)
{
    const cJSON *v = settings ? cJSON_GetObjectItemCaseSensitive(settings, key) : NULL;
    *out = NULL;
    if (v == NULL || cJSON_IsNull(v)) {
        if (dflt && (*out = strdup(dflt)) == NULL)
            return smsys_err_set(err, -ENOMEM, "out of memory");
        return 0;
    }
    if (!cJSON_IsString(v))
        return smsys_err_set(err, SMSYS_ECONFIG, "setting %s: must be a string", key);
    if ((*out = strdup(v->valuestring)) == NULL)
        return smsys_err_set(err, -ENOMEM, "out of memory");
    return 0;
}

int ch_set_int(const cJSON *settings, const char *key, long long dflt, long long min, long long max,
               long long *out, struct smsys_err *err)
{
    const cJSON *v = settings ? cJSON_GetObjectItemCaseSensitive(settings, key) : NULL;
    *out = dflt;
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    long long x;
    if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 9e15)
        x = (long long)v->valuedouble;
    else if (!cJSON_IsString(v) || util_parse_int(v->valuestring, min, max, &x) != 0)
        return smsys_err_set(err, SMSYS_ECONFIG, "setting %s: must be an integer in %lld..%lld",
                             key, min, max);
    if (x < min || x > max)
        return smsys_err_set(err, SMSYS_ECONFIG, "setting %s: must be an integer in %lld..%lld",
                             key, min, max);
    *out = x;
    return 0;
}

int ch_set_phone_fmt(const cJSON *settings, const char *key, enum phone_fmt dflt,
                     enum phone_fmt *out, struct smsys_err *err)
{
    const cJSON *v = settings ? cJSON_GetObjectItemCaseSensitive(settings, key) : NULL;
    *out = dflt;
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsString(v)) {
        if (strcmp(v->valuestring, "e164") == 0)
            *out = PHONE_E164;
        else if (strcmp(v->valuestring, "intl") == 0)
            *out = PHONE_INTL_NOPLUS;
        else if (strcmp(v->valuestring, "national") == 0)
            *out = PHONE_NATIONAL;
        else
            goto bad;
        return 0;
    }
bad:
    return smsys_err_set(err, SMSYS_ECONFIG,
                         "setting %s: must be \"e164\" (+98...), \"intl\" (98...) or "
                         "\"national\" (09...)",
                         key);
}

static int url_ok(const char *u)
{
    return strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
}

static void settings_free(struct ch_settings *s)
{
    free(s->base_url);
    free(s->proxy);
    free(s->sender);
    free(s->webhook_token);
    free(s->webhook_base_url);
}

static int parse_common(struct conn *c, const cJSON *settings, const char *default_base_url,
                        const char *const *extra_keys, struct smsys_err *err)
{
    if (settings && !cJSON_IsObject(settings))
        return smsys_err_set(err, SMSYS_ECONFIG, "settings: must be a JSON object");
    for (const cJSON *it = settings ? settings->child : NULL; it; it = it->next)
        if (!key_known(it->string, common_keys) && !key_known(it->string, extra_keys))
            return smsys_err_set(err, SMSYS_ECONFIG, "setting %s: unknown key for %s", it->string,
                                 c->ops->name);
    struct ch_settings *s = &c->set;
    int rc = ch_set_str(settings, "base_url", default_base_url, &s->base_url, err);
    if (!rc && (s->base_url == NULL || !url_ok(s->base_url)))
        rc = smsys_err_set(err, SMSYS_ECONFIG, "setting base_url: must be an http(s):// URL");
    if (!rc) {
        size_t l = strlen(s->base_url);
        while (l > 0 && s->base_url[l - 1] == '/')
            s->base_url[--l] = '\0';
        rc = ch_set_str(settings, "proxy", NULL, &s->proxy, err);
    }
    long long t = 0;
    if (!rc)
        rc = ch_set_int(settings, "timeout_ms", 0, 0, 600000, &t, err);
    s->timeout_ms = (unsigned)t;
    if (!rc)
        rc = ch_set_str(settings, "sender", NULL, &s->sender, err);
    if (!rc && s->sender) {
        /* A line is used exactly as the provider issued it: Iranian service
         * lines ("9821000000", "3000...") look like mobile numbers to a
         * phone parser. Only an international form is normalised. */
        char line[PHONE_E164_MAX];
        struct smsys_err e2;
        if (s->sender[0] == '+') {
            if (phone_normalize(s->sender, NULL, line, sizeof line, &e2) != 0)
                return smsys_err_set(err, SMSYS_ECONFIG, "setting sender: %s", e2.detail);
            free(s->sender);
            if ((s->sender = strdup(line)) == NULL)
                return smsys_err_set(err, -ENOMEM, "out of memory");
        } else {
            size_t l = strspn(s->sender, "0123456789");
            if (l < 3 || l > 15 || s->sender[l] != '\0')
                return smsys_err_set(err, SMSYS_ECONFIG,
                                     "setting sender: a line is 3-15 digits, or +E.164");
        }
    }
    const cJSON *r = settings ? cJSON_GetObjectItemCaseSensitive(settings, "rate_per_sec") : NULL;
    if (!rc && r && !cJSON_IsNull(r)) {
        if (!cJSON_IsNumber(r) || r->valuedouble < 0 || r->valuedouble > 1e6)
            return smsys_err_set(err, SMSYS_ECONFIG,
                                 "setting rate_per_sec: must be a number >= 0 (segments per "
                                 "second, 0 = unlimited)");
        s->rate_per_sec = r->valuedouble;
    }
    if (!rc)
        rc = ch_set_str(settings, "webhook_token", NULL, &s->webhook_token, err);
    if (!rc && s->webhook_token && strlen(s->webhook_token) < 16)
        rc = smsys_err_set(err, SMSYS_ECONFIG,
                           "setting webhook_token: too short (16 characters at least)");
    if (!rc)
        rc = ch_set_str(settings, "webhook_base_url", NULL, &s->webhook_base_url, err);
    if (!rc && s->webhook_base_url && !url_ok(s->webhook_base_url))
        rc = smsys_err_set(err, SMSYS_ECONFIG,
                           "setting webhook_base_url: must be an http(s):// URL");
    if (!rc && s->webhook_base_url) {
        size_t l = strlen(s->webhook_base_url);
        while (l > 0 && s->webhook_base_url[l - 1] == '/')
            s->webhook_base_url[--l] = '\0';
    }
    return rc;
}

static void conn_free(struct conn *c)
{
    if (c->priv_free)
        c->priv_free(c->priv);
    settings_free(&c->set);
    free(c);
}

int ch_open(const struct conn_env *env, const cJSON *settings, const struct conn_ops *ops,
            const char *default_base_url, const char *const *extra_keys,
            int (*parse)(struct conn *c, const cJSON *settings, struct smsys_err *err),
            struct conn **out, struct smsys_err *err)
{
    *out = NULL;
    if (env == NULL || env->loop == NULL || env->http == NULL)
        return smsys_err_set(err, -EINVAL, "%s: env needs a loop and an HTTP client", ops->name);
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return smsys_err_set(err, -ENOMEM, "out of memory");
    c->env = *env;
    c->ops = ops;
    int rc = parse_common(c, settings, default_base_url, extra_keys, err);
    if (!rc && parse)
        rc = parse(c, settings, err);
    if (!rc)
        rc = uv_timer_init(env->loop, &c->timer);
    if (rc) {
        conn_free(c);
        if (err && err->code == 0)
            smsys_err_set(err, rc, "%s: %s", ops->name, smsys_strerror(rc));
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- dispatch ------------------------------------------------------------ */

static void call_free(struct ch_call *k)
{
    if (k->has_req)
        ch_req_free(&k->r);
    free(k);
}

static void http_done_cb(int rc, struct http_response *resp, void *ud);
static void maybe_finish(struct conn *c);

static void call_start(struct conn *c, struct ch_call *k)
{
    if (!k->has_req) {
        k->done(c, 0, NULL, k->ud);
        call_free(k);
        return;
    }
    const char *hdrs[6];
    size_t nh = 0;
    char ct[128];
    if (k->r.content_type) {
        snprintf(ct, sizeof ct, "Content-Type: %s", k->r.content_type);
        hdrs[nh++] = ct;
    }
    hdrs[nh++] = "Accept: application/json";
    for (size_t i = 0; i < 4 && k->r.headers[i]; i++)
        hdrs[nh++] = k->r.headers[i];
    struct http_request req = {
        .method = k->r.method,
        .url = k->r.url.data,
        .headers = hdrs,
        .n_headers = nh,
        .body = k->r.body.data,
        .body_len = k->r.body.len,
        .timeout_ms = c->set.timeout_ms,
        .proxy = c->set.proxy,
        .auth = k->r.auth,
        .username = k->r.username,
        .password = k->r.password,
    };
    int rc = http_client_request(c->env.http, &req, http_done_cb, k, &k->hc);
    if (rc < 0) {
        k->done(c, rc, NULL, k->ud);
        call_free(k);
        return;
    }
    /* the URL may carry an API key (Kavenegar): keep only the op name */
    ch_req_free(&k->r);
    k->has_req = 0;
    k->prev = NULL;
    k->next = c->inflight;
    if (c->inflight)
        c->inflight->prev = k;
    c->inflight = k;
}

static void timer_cb(uv_timer_t *t)
{
    struct conn *c = container_of(t, struct conn, timer);
    while (c->q_head && !c->closing) {
        struct ch_call *k = c->q_head;
        uint64_t now = util_now_ms();
        if (now < c->pause_until_ms) {
            uv_timer_start(&c->timer, timer_cb, c->pause_until_ms - now, 0);
            return;
        }
        if (c->set.rate_per_sec > 0 && k->has_req) {
            double cost = k->r.cost > 0 ? k->r.cost : 1;
            if (c->tat_ms - CH_BURST_MS > (double)now) {
                uv_timer_start(&c->timer, timer_cb,
                               (uint64_t)ceil(c->tat_ms - CH_BURST_MS - (double)now), 0);
                return;
            }
            double base = c->tat_ms > (double)now ? c->tat_ms : (double)now;
            c->tat_ms = base + cost * 1000.0 / c->set.rate_per_sec;
        }
        c->q_head = k->next;
        if (c->q_head == NULL)
            c->q_tail = NULL;
        k->next = NULL;
        call_start(c, k);
    }
}

static void kick(struct conn *c)
{
    if (!c->closing && !uv_is_active((uv_handle_t *)&c->timer))
        uv_timer_start(&c->timer, timer_cb, 0, 0);
}

static int enqueue(struct conn *c, struct ch_call *k)
{
    k->c = c;
    k->next = NULL;
    if (c->q_tail)
        c->q_tail->next = k;
    else
        c->q_head = k;
    c->q_tail = k;
    kick(c);
    return 0;
}

int ch_submit(struct conn *c, struct ch_req *r, ch_done_fn done, void *ud)
{
    if (c->closing) {
        ch_req_free(r);
        return SMSYS_ECLOSED;
    }
    struct ch_call *k = calloc(1, sizeof *k);
    if (k == NULL) {
        ch_req_free(r);
        return -ENOMEM;
    }
    k->r = *r;
    memset(r, 0, sizeof *r);
    k->has_req = 1;
    k->done = done;
    k->ud = ud;
    return enqueue(c, k);
}

int ch_defer(struct conn *c, ch_done_fn done, void *ud)
{
    if (c->closing)
        return SMSYS_ECLOSED;
    struct ch_call *k = calloc(1, sizeof *k);
    if (k == NULL)
        return -ENOMEM;
    k->done = done;
    k->ud = ud;
    return enqueue(c, k);
}

static void http_done_cb(int rc, struct http_response *resp, void *ud)
{
    struct ch_call *k = ud;
    struct conn *c = k->c;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->inflight = k->next;
    if (k->next)
        k->next->prev = k->prev;
    if (c->closing && rc == -ECANCELED)
        rc = SMSYS_ECLOSED;
    /* Any answer below 500 means the provider is there (ch_batch_outage). */
    if (rc == SMSYS_ECLOSED)
        ;
    else if (rc < 0 || resp == NULL || resp->status >= 500)
        c->down_streak++;
    else
        c->down_streak = 0;
    k->done(c, rc, resp, k->ud);
    call_free(k);
    if (c->closing)
        maybe_finish(c);
}

void ch_throttle(struct conn *c, unsigned ms)
{
    uint64_t until = util_now_ms() + ms;
    if (until > c->pause_until_ms)
        c->pause_until_ms = until;
}

int ch_req_init(struct conn *c, struct ch_req *r, const char *method, const char *path)
{
    memset(r, 0, sizeof *r);
    r->method = method;
    r->cost = 1;
    int rc = buf_puts(&r->url, c->set.base_url);
    if (!rc)
        rc = buf_puts(&r->url, path);
    if (rc)
        ch_req_free(r);
    return rc;
}

int ch_req_header(struct ch_req *r, const char *name, const char *value)
{
    for (size_t i = 0; i < 4; i++) {
        if (r->headers[i] == NULL) {
            r->headers[i] = ch_strdupf("%s: %s", name, value);
            return r->headers[i] ? 0 : -ENOMEM;
        }
    }
    return -E2BIG;
}

void ch_req_free(struct ch_req *r)
{
    buf_free(&r->url);
    buf_free(&r->body);
    for (size_t i = 0; i < 4; i++) {
        free(r->headers[i]);
        r->headers[i] = NULL;
    }
}

/* ---- close ----------------------------------------------------------------- */

static void maybe_finish(struct conn *c)
{
    if (!c->timer_closed || c->inflight || c->q_head)
        return;
    conn_closed_cb cb = c->close_cb;
    void *ud = c->close_ud;
    conn_free(c);
    if (cb)
        cb(ud);
}

static void timer_closed_cb(uv_handle_t *h)
{
    struct conn *c = container_of((uv_timer_t *)h, struct conn, timer);
    /* done functions may queue more: ch_submit refuses once closing */
    while (c->q_head) {
        struct ch_call *k = c->q_head;
        c->q_head = k->next;
        if (c->q_head == NULL)
            c->q_tail = NULL;
        k->done(c, SMSYS_ECLOSED, NULL, k->ud);
        call_free(k);
    }
    c->timer_closed = 1;
    maybe_finish(c);
}

void ch_close(struct conn *c, conn_closed_cb cb, void *ud)
{
    if (c == NULL || c->closing)
        return;
    c->closing = 1;
    c->close_cb = cb;
    c->close_ud = ud;
    for (struct ch_call *k = c->inflight; k; k = k->next)
        http_call_cancel(k->hc); /* -EALREADY: its real result is on its way */
    uv_close((uv_handle_t *)&c->timer, timer_closed_cb);
}
