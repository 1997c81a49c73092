/* webhook.c - provider webhooks: route, authenticate through the
 * connector, store, then answer (webhook.h). */
#include "smsys/webhook.h"

#include "smsys/connmgr.h"
#include "smsys/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One request waiting for its events to be durable. Freed when answered. */
struct wh_req {
    struct http_resp *resp;
    char account[64];
    size_t pending; /* acks still due, plus one held while pushing */
    int rc;         /* first refusal, 0 when all stored */
    int mo;         /* an inbound message was among the events */
};

static void answer(struct http_resp *resp, int status, const char *text)
{
    http_resp_send(resp, status, "text/plain; charset=utf-8", text, strlen(text));
}

static void wh_release(struct wh_req *w)
{
    if (--w->pending > 0)
        return;
    if (w->rc == 0) {
        answer(w->resp, 200, "ok\n");
    } else {
        /* Not stored: a 5xx makes the provider deliver it again later. */
        log_warn("webhook not stored, provider asked to retry", "account=%s error=\"%s\"",
                 w->account, smsys_strerror(w->rc));
        answer(w->resp, 503,
               w->mo ? "inbound not accepted yet, retry later\n" : "not stored, retry later\n");
    }
    free(w);
}

static void wh_ack_cb(void *token, int rc)
{
    struct wh_req *w = token;
    if (rc < 0 && w->rc == 0)
        w->rc = rc;
    wh_release(w);
}

/* Splits "<account-id>/<kind>" out of path (after the prefix). Returns 0
 * or -EINVAL. The id is a GUID: hex digits and dashes only, so it can be
 * logged and compared as is. */
static int split_path(const char *path, char *acc, size_t acclen, char *kind, size_t kindlen)
{
    const char *p = path + strlen(WEBHOOK_PREFIX);
    size_t n = strcspn(p, "/");
    if (n == 0 || n >= acclen)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
              c == '-'))
            return -EINVAL;
    }
    memcpy(acc, p, n);
    acc[n] = '\0';
    for (size_t i = 0; acc[i]; i++)
        if (acc[i] >= 'A' && acc[i] <= 'F')
            acc[i] = (char)(acc[i] - 'A' + 'a');
    const char *k = p[n] == '/' ? p + n + 1 : "";
    size_t kl = strcspn(k, "/");
    /* The kind is a label; anything odd is logged as "other". */
    int ok = kl > 0 && kl < kindlen;
    for (size_t i = 0; ok && i < kl; i++)
        ok = (k[i] >= 'a' && k[i] <= 'z') || k[i] == '-' || k[i] == '_';
    snprintf(kind, kindlen, "%.*s", ok ? (int)kl : 5, ok ? k : "other");
    return 0;
}

void webhook_handle(struct connmgr *m, struct http_req *req, struct http_resp *resp)
{
    char acc[64], kind[24];
    if (strcmp(req->method, "POST") != 0 && strcmp(req->method, "GET") != 0) {
        http_resp_header(resp, "Allow", "GET, POST");
        answer(resp, 405, "method not allowed\n");
        return;
    }
    if (split_path(req->path, acc, sizeof acc, kind, sizeof kind) != 0) {
        answer(resp, 404, "no such webhook\n");
        return;
    }
    if (m == NULL) {
        answer(resp, 503, "starting, retry later\n");
        return;
    }
    struct connmgr_account a;
    if (connmgr_lookup(m, acc, &a) != 0) {
        /* Known but not open (reopening after a settings change, failed
         * to open, closing): the provider should try again later. */
        int known = connmgr_known(m, acc);
        log_warn("webhook for an account that is not open", "account=%s kind=%s peer=%s known=%d",
                 acc, kind, req->peer ? req->peer : "", known);
        if (known)
            answer(resp, 503, "account not ready, retry later\n");
        else
            answer(resp, 404, "no such account\n");
        return;
    }
    if (a.ops->webhook == NULL) {
        log_warn("webhook for a provider without webhooks", "account=%s provider=%s peer=%s",
                 a.name, a.ops->name, req->peer ? req->peer : "");
        answer(resp, 404, "this account takes no webhooks\n");
        return;
    }
    struct conn_event *ev = NULL;
    size_t n = 0;
    int rc = a.ops->webhook(a.conn, req, &ev, &n);
    if (rc == SMSYS_EAUTH) {
        /* The target can carry the token: log the account and peer only. */
        log_warn("webhook rejected: bad signature or token", "account=%s kind=%s peer=%s", a.name,
                 kind, req->peer ? req->peer : "");
        answer(resp, 403, "forbidden\n");
        return;
    }
    if (rc < 0) {
        log_warn("webhook not understood", "account=%s kind=%s error=\"%s\"", a.name, kind,
                 smsys_strerror(rc));
        answer(resp, rc == -ENOMEM ? 503 : 400,
               rc == -ENOMEM ? "out of memory, retry later\n" : "bad request\n");
        return;
    }
    struct wh_req *w = calloc(1, sizeof *w);
    if (w == NULL) {
        conn_events_free(ev, n);
        answer(resp, 503, "out of memory, retry later\n");
        return;
    }
    w->resp = resp;
    snprintf(w->account, sizeof w->account, "%s", a.name);
    w->pending = n + 1;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].kind == CONN_EV_MO)
            w->mo = 1;
        log_debug("webhook event", "account=%s kind=%s event=%s", a.name, kind,
                  ev[i].kind == CONN_EV_MO ? "inbound" : "receipt");
        /* The account was found above on this loop turn: -ENOENT cannot
         * happen here, but refuse rather than leak the answer if it did. */
        if (connmgr_push(m, acc, &ev[i], wh_ack_cb, w) != 0)
            wh_ack_cb(w, -ENOENT);
    }
    conn_events_free(ev, n);
    wh_release(w);
}
