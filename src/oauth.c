/* oauth.c - client-credentials token source (see include/smsys/oauth.h). */
#include "smsys/oauth.h"
#include "oauth_int.h"

#include <ctype.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cjson/cJSON.h>

#include "smsys/buf.h"
#include "smsys/http_client.h"
#include "smsys/log.h"
#include "smsys/util.h"

/* After a failed background renewal, wait this long before the next try
 * (the current token is still usable meanwhile). */
#define RENEW_RETRY_MS 5000

struct waiter {
    oauth_token_cb cb;
    void *ud;
    struct waiter *next;
};

struct oauth {
    uv_loop_t *loop;
    struct http_client *http;
    uv_timer_t timer; /* delivers callbacks "later" */
    char *url;
    struct buf form; /* holds the secret: wiped before it is freed */
    char *secret;    /* only to scrub it out of server-provided text; NULL with a cert */
    char *client_id;
    struct oauth_cert *cert; /* certificate credentials, or NULL */
    unsigned timeout_ms;
    int insecure;

    char *token;
    uint64_t fresh_until;  /* monotonic ms: renew after this */
    uint64_t usable_until; /* monotonic ms: hand out until this */
    uint64_t next_renew_try;

    struct http_call *call; /* fetch in flight, or NULL */
    int fetching;
    struct waiter *head, *tail;

    int closing;
    void (*close_cb)(void *ud);
    void *close_ud;
    struct oauth_stats stats;
};

static void wipe_free(char *s)
{
    if (s) {
        volatile char *v = s;
        while (*v)
            *v++ = '\0';
        free(s);
    }
}

int oauth_new(uv_loop_t *loop, struct http_client *http, const struct oauth_opts *o,
              struct oauth **out)
{
    if (loop == NULL || http == NULL || o == NULL || out == NULL || o->token_url == NULL ||
        o->client_id == NULL || !*o->client_id || (o->scope == NULL) == (o->resource == NULL))
        return -EINVAL;
    int use_cert = o->cert_file != NULL || o->key_file != NULL;
    if (use_cert ? o->cert_file == NULL || o->key_file == NULL || o->client_secret != NULL
                 : o->client_secret == NULL || !*o->client_secret)
        return -EINVAL; /* exactly one kind of credential */
    struct oauth *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->loop = loop;
    t->http = http;
    t->timeout_ms = o->timeout_ms ? o->timeout_ms : 20000;
    t->insecure = o->insecure;
    t->url = strdup(o->token_url);
    t->client_id = strdup(o->client_id);
    int rc = t->url && t->client_id ? 0 : -ENOMEM;
    if (rc == 0 && use_cert) {
        struct smsys_err e;
        rc = oauth_cert_load(o->cert_file, o->key_file, &t->cert, &e);
        if (rc < 0)
            log_error("oauth certificate not loaded", "error=\"%s\"", log_q(e.detail));
    } else if (rc == 0 && (t->secret = strdup(o->client_secret)) == NULL) {
        rc = -ENOMEM;
    }
    if (rc == 0)
        rc = http_client_form_add(&t->form, "client_id", o->client_id);
    if (rc == 0 && !use_cert)
        rc = http_client_form_add(&t->form, "client_secret", o->client_secret);
    if (rc == 0 && use_cert)
        rc = http_client_form_add(&t->form, "client_assertion_type",
                                  "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    if (rc == 0)
        rc = http_client_form_add(&t->form, "grant_type", "client_credentials");
    if (rc == 0)
        rc = o->scope ? http_client_form_add(&t->form, "scope", o->scope)
                      : http_client_form_add(&t->form, "resource", o->resource);
    if (rc == 0)
        rc = uv_timer_init(loop, &t->timer);
    if (rc < 0) {
        free(t->url);
        free(t->client_id);
        wipe_free(t->secret);
        oauth_cert_free(t->cert);
        if (t->form.data)
            wipe_free(buf_steal(&t->form));
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

const struct oauth_stats *oauth_stats(const struct oauth *t)
{
    return &t->stats;
}

static int usable(const struct oauth *t, uint64_t now)
{
    return t->token && now < t->usable_until;
}

/* Replaces every occurrence of the secret in s by "***". */
static void scrub(const struct oauth *t, char *s)
{
    if (t->secret == NULL)
        return;
    size_t sl = strlen(t->secret);
    char *p;
    while (sl >= 3 && (p = strstr(s, t->secret)) != NULL) {
        memcpy(p, "***", 3);
        memmove(p + 3, p + sl, strlen(p + sl) + 1);
    }
}

int oauth_parse_response(int status, const char *body, size_t len, char **token,
                         int64_t *expires_in_s, struct smsys_err *err)
{
    *token = NULL;
    *expires_in_s = 0;
    cJSON *j = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    int rc;
    if (status == 200) {
        const cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "access_token");
        const cJSON *tt = cJSON_GetObjectItemCaseSensitive(j, "token_type");
        const cJSON *ei = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
        long long secs = 3600; /* absent: the usual lifetime */
        if (!cJSON_IsString(at) || at->valuestring[0] == '\0') {
            rc = smsys_err_set(err, SMSYS_EPROTO, "token endpoint: no access_token in answer");
        } else if (tt && (!cJSON_IsString(tt) || strcasecmp(tt->valuestring, "Bearer") != 0)) {
            rc = smsys_err_set(err, SMSYS_EPROTO, "token endpoint: token_type is not Bearer");
        } else if (ei &&
                   !(cJSON_IsNumber(ei) && ei->valuedouble >= 1 && ei->valuedouble <= 31536000 &&
                     (secs = (long long)ei->valuedouble)) &&
                   !(cJSON_IsString(ei) &&
                     util_parse_int(ei->valuestring, 1, 31536000, &secs) == 0)) {
            rc = smsys_err_set(err, SMSYS_EPROTO, "token endpoint: bad expires_in");
        } else if ((*token = strdup(at->valuestring)) == NULL) {
            rc = smsys_err_set(err, -ENOMEM, "token endpoint: out of memory");
        } else {
            *expires_in_s = secs;
            rc = 0;
        }
    } else {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "error_description");
        const char *es = cJSON_IsString(e) ? e->valuestring : "";
        const char *ds = cJSON_IsString(d) ? d->valuestring : "";
        int code = status == 429 || status >= 500  ? SMSYS_ETEMP
                   : status >= 400 && status < 500 ? SMSYS_EAUTH
                                                   : SMSYS_EPROTO;
        /* "invalid_request" can also be a bad scope/resource: still an
         * operator problem with the same remedy (fix the settings). */
        rc = smsys_err_set(err, code, "token endpoint: HTTP %d%s%s%s%s", status, *es ? " " : "", es,
                           *ds ? ": " : "", ds);
    }
    cJSON_Delete(j);
    return rc;
}

/* Calls every waiter with the current outcome. Detaches the list first:
 * callbacks may call oauth_get() again. */
static void deliver(struct oauth *t, int rc, const struct smsys_err *err)
{
    struct waiter *w = t->head;
    t->head = t->tail = NULL;
    /* the token may be replaced by a callback (invalidate + get): copy */
    char *tok = rc == 0 ? util_strdup0(t->token) : NULL;
    struct smsys_err e;
    if (rc == 0 && tok == NULL)
        rc = smsys_err_set(&e, -ENOMEM, "out of memory");
    else if (err)
        e = *err;
    else
        smsys_err_set(&e, rc, "%s", smsys_strerror(rc));
    while (w) {
        struct waiter *n = w->next;
        w->cb(rc, rc == 0 ? tok : NULL, rc == 0 ? NULL : &e, w->ud);
        free(w);
        w = n;
    }
    free(tok);
}

static void timer_closed_cb(uv_handle_t *h)
{
    struct oauth *t = container_of((uv_timer_t *)h, struct oauth, timer);
    void (*cb)(void *) = t->close_cb;
    void *ud = t->close_ud;
    free(t->url);
    free(t->client_id);
    wipe_free(t->secret);
    oauth_cert_free(t->cert);
    if (t->form.data)
        wipe_free(buf_steal(&t->form));
    wipe_free(t->token);
    free(t);
    if (cb)
        cb(ud);
}

static void finish_close(struct oauth *t)
{
    struct smsys_err e;
    smsys_err_set(&e, SMSYS_ECLOSED, "token source closed");
    deliver(t, SMSYS_ECLOSED, &e);
    uv_close((uv_handle_t *)&t->timer, timer_closed_cb);
}

static void fetch_done_cb(int rc, struct http_response *resp, void *ud)
{
    struct oauth *t = ud;
    t->call = NULL;
    t->fetching = 0;
    if (t->closing) {
        finish_close(t);
        return;
    }
    struct smsys_err e;
    smsys_err_clear(&e);
    char *tok = NULL;
    int64_t ttl = 0;
    if (rc < 0) {
        smsys_err_set(&e, rc == -ETIMEDOUT ? -ETIMEDOUT : SMSYS_ETEMP, "token endpoint: %s",
                      resp->err.detail);
        rc = e.code;
    } else {
        rc = oauth_parse_response(resp->status, resp->body.data, resp->body.len, &tok, &ttl, &e);
    }
    uint64_t now = util_now_ms();
    if (rc == 0) {
        wipe_free(t->token);
        t->token = tok;
        uint64_t life = (uint64_t)ttl * 1000;
        uint64_t half = life / 2, fifth = life / 5;
        uint64_t margin =
            fifth > (half < 300000 ? half : 300000) ? fifth : (half < 300000 ? half : 300000);
        /* a request must still reach the server before expiry, even on a
         * loaded machine: a quarter of a short token's life, 60 s of a
         * normal one */
        uint64_t skew = life / 4 < 60000 ? life / 4 : 60000;
        t->fresh_until = now + life - margin;
        t->usable_until = now + life - skew;
        t->next_renew_try = 0;
        log_info("oauth token fetched", "expires_in=%lld", (long long)ttl);
        deliver(t, 0, NULL);
        return;
    }
    scrub(t, e.detail);
    t->stats.failures++;
    t->next_renew_try = now + RENEW_RETRY_MS;
    log_warn("oauth token fetch failed", "code=%d error=\"%s\"", e.code, log_q(e.detail));
    if (usable(t, now) && t->head) /* a renewal failed: the old token still works */
        deliver(t, 0, NULL);
    else
        deliver(t, rc, &e);
}

static int fetch_start(struct oauth *t)
{
    const char *hdrs[] = {"Content-Type: application/x-www-form-urlencoded",
                          "Accept: application/json"};
    struct buf form = BUF_INIT, jwt = BUF_INIT;
    int rc = 0;
    if (t->cert) {
        /* a fresh assertion per fetch: its jti is single-use */
        rc = buf_append(&form, t->form.data, t->form.len);
        if (rc == 0)
            rc = oauth_cert_assertion(t->cert, t->url, t->client_id, &jwt);
        if (rc == 0)
            rc = http_client_form_add(&form, "client_assertion", jwt.data);
    }
    struct http_request req = {.method = "POST",
                               .url = t->url,
                               .headers = hdrs,
                               .n_headers = ARRAY_LEN(hdrs),
                               .body = t->cert ? form.data : t->form.data,
                               .body_len = t->cert ? form.len : t->form.len,
                               .timeout_ms = t->timeout_ms,
                               .insecure = t->insecure};
    if (rc == 0)
        rc = http_client_request(t->http, &req, fetch_done_cb, t, &t->call);
    buf_free(&form);
    buf_free(&jwt);
    if (rc < 0)
        return rc;
    t->fetching = 1;
    t->stats.fetches++;
    return 0;
}

const char *oauth_peek(struct oauth *t)
{
    if (t->closing)
        return NULL;
    uint64_t now = util_now_ms();
    if (!usable(t, now))
        return NULL;
    if (now >= t->fresh_until && !t->fetching && now >= t->next_renew_try) {
        if (fetch_start(t) == 0)
            t->stats.renewals++;
        else
            t->next_renew_try = now + RENEW_RETRY_MS;
    }
    return t->token;
}

static void timer_cb(uv_timer_t *h)
{
    struct oauth *t = container_of(h, struct oauth, timer);
    if (t->closing) {
        if (t->call == NULL)
            finish_close(t);
        return;
    }
    if (t->head == NULL)
        return;
    if (oauth_peek(t)) {
        deliver(t, 0, NULL);
        return;
    }
    if (!t->fetching) {
        int rc = fetch_start(t);
        if (rc < 0) {
            struct smsys_err e;
            smsys_err_set(&e, rc, "token endpoint: request not started: %s", smsys_strerror(rc));
            deliver(t, rc, &e);
        }
    }
}

int oauth_get(struct oauth *t, oauth_token_cb cb, void *ud)
{
    if (t->closing)
        return SMSYS_ECLOSED;
    struct waiter *w = calloc(1, sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    w->cb = cb;
    w->ud = ud;
    if (t->tail)
        t->tail->next = w;
    else
        t->head = w;
    t->tail = w;
    /* no fetch started here: the timer decides on the next loop turn, so
     * the callback never runs inside this call and a failure to start a
     * request is reported through it like any other failure */
    if (!t->fetching || usable(t, util_now_ms()))
        uv_timer_start(&t->timer, timer_cb, 0, 0);
    return 0;
}

void oauth_invalidate(struct oauth *t, const char *token)
{
    if (t->token && token && strcmp(t->token, token) == 0) {
        wipe_free(t->token);
        t->token = NULL;
        t->stats.invalidations++;
    }
}

void oauth_close(struct oauth *t, void (*cb)(void *ud), void *ud)
{
    if (t->closing)
        return;
    t->closing = 1;
    t->close_cb = cb;
    t->close_ud = ud;
    if (t->call)
        http_call_cancel(t->call); /* fetch_done_cb finishes the close */
    else if (t->fetching == 0)
        uv_timer_start(&t->timer, timer_cb, 0, 0);
}
