/* conn_http_send.c - results per message for send(), status queries over
 * several requests, and one-request operations: the bookkeeping every
 * HTTP connector shares on top of conn_http.c's dispatch. */
#include "smsys/conn_http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/log.h"
#include "smsys/text.h"
#include "smsys/util.h"

/* ---- sending ----------------------------------------------------------------- */

int ch_segments(const char *text, int force_ucs2)
{
    struct text_opts o = {.force_ucs2 = force_ucs2};
    struct text_info ti;
    if (text_analyze_opts(text, strlen(text), &o, &ti) != 0)
        return 0;
    return (int)ti.segments;
}

static void send_free(struct ch_send *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->m[i].id);
        free(s->m[i].text);
        free(s->m[i].provider_id);
        free(s->m[i].detail);
    }
    free(s->m);
    free(s);
}

int ch_send_new(struct conn *c, const struct sms_out *msgs, size_t n, enum phone_fmt fmt,
                conn_sent_cb cb, void *ud, struct ch_send **out)
{
    *out = NULL;
    if (c->closing)
        return SMSYS_ECLOSED;
    if (n == 0 || msgs == NULL || cb == NULL)
        return -EINVAL;
    struct ch_send *s = calloc(1, sizeof *s);
    if (s == NULL || (s->m = calloc(n, sizeof *s->m)) == NULL) {
        free(s);
        return -ENOMEM;
    }
    s->c = c;
    s->cb = cb;
    s->ud = ud;
    s->n = n;
    for (size_t i = 0; i < n; i++) {
        struct ch_msg *m = &s->m[i];
        const struct sms_out *o = &msgs[i];
        m->id = strdup(o->id ? o->id : "");
        m->text = strdup(o->text ? o->text : "");
        if (m->id == NULL || m->text == NULL) {
            s->n = i + 1;
            send_free(s);
            return -ENOMEM;
        }
        m->not_before = o->not_before;
        m->segments = ch_segments(m->text, o->force_ucs2);
        if (o->to == NULL || phone_format(o->to, fmt, m->to, sizeof m->to) != 0) {
            ch_send_result(s, i, SMSYS_EPERM, NULL, CONN_ST_FAILED, 0,
                           "invalid recipient number for this provider");
            continue;
        }
        const char *line = o->from && *o->from ? o->from : c->set.sender;
        if (line && phone_format(line, fmt, m->from, sizeof m->from) != 0) {
            ch_send_result(s, i, SMSYS_EPERM, NULL, CONN_ST_FAILED, 0,
                           "invalid sender line for this provider");
            continue;
        }
        if (m->text[0] == '\0') {
            ch_send_result(s, i, SMSYS_EPERM, NULL, CONN_ST_FAILED, 0, "empty text");
            continue;
        }
        if (m->segments == 0) {
            ch_send_result(s, i, SMSYS_EPERM, NULL, CONN_ST_FAILED, 0, "text is not UTF-8");
            continue;
        }
    }
    *out = s;
    return 0;
}

void ch_send_result(struct ch_send *s, size_t i, int rc, const char *provider_id,
                    enum conn_status st, int billed, const char *detail)
{
    if (i >= s->n)
        return;
    struct ch_msg *m = &s->m[i];
    free(m->provider_id);
    free(m->detail);
    m->done = 1;
    m->rc = rc;
    m->provider_id = util_strdup0(provider_id);
    m->status = st;
    m->billed = billed;
    m->detail = util_strdup0(detail);
}

static void send_finish(struct ch_send *s)
{
    struct conn_sent *res = calloc(s->n, sizeof *res);
    if (res == NULL) {
        /* cannot report: better a loud log than a silent loss */
        log_error("conn_send_oom", "provider=%s n=%zu", s->c->ops->name, s->n);
        send_free(s);
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        struct ch_msg *m = &s->m[i];
        res[i].id = m->id;
        res[i].rc = m->done ? m->rc : SMSYS_EUNKNOWN;
        res[i].provider_id = m->provider_id;
        res[i].status = m->status;
        res[i].segments = m->billed ? m->billed : (res[i].rc == 0 ? m->segments : 0);
        res[i].detail = m->detail;
    }
    s->cb(s->ud, res, s->n);
    free(res);
    send_free(s);
}

static void send_release(struct ch_send *s)
{
    if (--s->pending == 0)
        send_finish(s);
}

static void guard_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    send_release(ud);
}

int ch_send_run(struct ch_send *s, size_t max_batch, int same_text,
                int (*start)(struct ch_batch *b, void *ud), void *ud)
{
    if (max_batch == 0)
        max_batch = 1;
    /* The guard keeps the callback from firing inside send(). */
    int rc = ch_defer(s->c, guard_done, s);
    if (rc) {
        send_free(s);
        return rc;
    }
    s->pending = 1;
    s->start = start;
    s->start_ud = ud;
    for (size_t i = 0; i < s->n;) {
        if (s->m[i].done) {
            i++;
            continue;
        }
        struct ch_batch *b = calloc(1, sizeof *b + max_batch * sizeof b->idx[0]);
        if (b == NULL) {
            for (; i < s->n; i++)
                if (!s->m[i].done)
                    ch_send_result(s, i, SMSYS_ETEMP, NULL, CONN_ST_UNKNOWN, 0, "out of memory");
            break;
        }
        b->s = s;
        const struct ch_msg *first = &s->m[i];
        size_t j = i;
        for (; j < s->n && b->n < max_batch; j++) {
            const struct ch_msg *m = &s->m[j];
            if (m->done)
                continue;
            if (m->not_before != first->not_before)
                break;
            if (same_text &&
                (strcmp(m->text, first->text) != 0 || strcmp(m->from, first->from) != 0))
                break;
            b->idx[b->n++] = j;
        }
        i = j;
        s->pending++;
        int src = start(b, ud);
        if (src < 0) {
            ch_batch_fail(b, src == SMSYS_ECLOSED ? SMSYS_ECLOSED : SMSYS_ETEMP,
                          smsys_strerror(src));
            ch_batch_done(b);
        }
    }
    return 0;
}

void ch_batch_split(struct ch_batch *b)
{
    struct ch_send *s = b->s;
    for (size_t k = 0; k < b->n; k++) {
        size_t i = b->idx[k];
        if (s->m[i].done)
            continue;
        struct ch_batch *one = calloc(1, sizeof *one + sizeof one->idx[0]);
        if (one == NULL) {
            ch_send_result(s, i, SMSYS_ETEMP, NULL, CONN_ST_UNKNOWN, 0, "out of memory");
            continue;
        }
        one->s = s;
        one->n = 1;
        one->idx[0] = i;
        s->pending++;
        int rc = s->start(one, s->start_ud);
        if (rc < 0) {
            ch_batch_fail(one, rc == SMSYS_ECLOSED ? SMSYS_ECLOSED : SMSYS_ETEMP,
                          smsys_strerror(rc));
            ch_batch_done(one);
        }
    }
    free(b);
    send_release(s);
}

void ch_batch_fail(struct ch_batch *b, int rc, const char *detail)
{
    /* the core pauses or fails over the account on these (connector.h) */
    const struct conn_env *env = &b->s->c->env;
    if ((rc == SMSYS_EACCOUNT || rc == SMSYS_ETHROTTLED) && env->health)
        env->health(env->ud, rc, detail);
    for (size_t k = 0; k < b->n; k++)
        if (!b->s->m[b->idx[k]].done)
            ch_send_result(b->s, b->idx[k], rc, NULL,
                           rc == SMSYS_EPERM ? CONN_ST_FAILED : CONN_ST_UNKNOWN, 0, detail);
}

/* A send the provider did not answer (no connection, timeout, 5xx to the
 * whole request). While that is all the provider has done for
 * CH_OUTAGE_STREAK requests in a row (any request: sends, status, credit),
 * it is down as a whole: the batch fails as account-wide (SMSYS_EACCOUNT),
 * so the core pauses the account for [queue] account_pause_ms, moves its
 * waiting messages to a failover account if one is configured, and gives
 * the attempt back. Without this every message of a long outage would use
 * up its retries and fail. Only a retryable rc is turned into the pause: an
 * unknown outcome (non-idempotent provider) must stay unknown, never be
 * resent. */
void ch_batch_outage(struct ch_batch *b, int rc, const char *detail)
{
    struct conn *c = b->s->c;
    if (rc == SMSYS_ETEMP && c->down_streak >= CH_OUTAGE_STREAK) {
        char d[700];
        snprintf(d, sizeof d, "provider unreachable (%u requests in a row): %s", c->down_streak,
                 detail);
        ch_batch_fail(b, SMSYS_EACCOUNT, d);
        return;
    }
    ch_batch_fail(b, rc, detail);
}

void ch_batch_transport(struct ch_batch *b, int rc, const struct http_response *resp)
{
    const char *why = resp && resp->err.detail[0] ? resp->err.detail : smsys_strerror(rc);
    char d[600];
    if (http_client_outcome_unknown(rc == SMSYS_ECLOSED ? -ECANCELED : rc, resp)) {
        snprintf(d, sizeof d, "%s: no reply after the request was sent (%s)", b->s->c->ops->name,
                 why);
        ch_batch_outage(b, b->s->idempotent ? SMSYS_ETEMP : SMSYS_EUNKNOWN, d);
        return;
    }
    if (rc == SMSYS_ECLOSED) {
        ch_batch_fail(b, SMSYS_ECLOSED, "connector closed before the request was sent");
        return;
    }
    snprintf(d, sizeof d, "%s: request failed (%s)", b->s->c->ops->name, why);
    ch_batch_outage(b, ch_transport_class(rc), d);
}

void ch_batch_unreadable(struct ch_batch *b, int http_status)
{
    char d[200];
    int hc = ch_http_class(http_status);
    if (hc == SMSYS_ETHROTTLED || hc == SMSYS_ETEMP) {
        /* providers.md: 5xx and 429 are temporary; the request was refused */
        snprintf(d, sizeof d, "%s: HTTP %d", b->s->c->ops->name, http_status);
        ch_batch_outage(b, hc, d);
        return;
    }
    snprintf(d, sizeof d, "%s: unreadable reply (HTTP %d); the provider may have accepted it",
             b->s->c->ops->name, http_status);
    ch_batch_fail(b, b->s->idempotent ? SMSYS_ETEMP : SMSYS_EUNKNOWN, d);
}

void ch_batch_done(struct ch_batch *b)
{
    struct ch_send *s = b->s;
    for (size_t k = 0; k < b->n; k++)
        if (!s->m[b->idx[k]].done) {
            ch_batch_unreadable(b, 0);
            break;
        }
    free(b);
    send_release(s);
}

int ch_transport_class(int rc)
{
    if (rc == SMSYS_ECLOSED)
        return SMSYS_ECLOSED;
    if (rc == SMSYS_EAUTH) /* TLS: the provider could not prove who it is */
        return SMSYS_EACCOUNT;
    return SMSYS_ETEMP;
}

/* ---- status queries ------------------------------------------------------------ */

static void stq_guard_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    ch_stq_release(ud);
}

int ch_stq_new(struct conn *c, conn_status_cb cb, void *ud, struct ch_stq **out)
{
    *out = NULL;
    if (c->closing)
        return SMSYS_ECLOSED;
    struct ch_stq *q = calloc(1, sizeof *q);
    if (q == NULL)
        return -ENOMEM;
    q->c = c;
    q->cb = cb;
    q->ud = ud;
    q->pending = 1;
    int rc = ch_defer(c, stq_guard_done, q);
    if (rc) {
        free(q);
        return rc;
    }
    *out = q;
    return 0;
}

void ch_stq_hold(struct ch_stq *q)
{
    q->pending++;
}

int ch_stq_add(struct ch_stq *q, const char *provider_id, const char *our_id, enum conn_status st,
               int64_t done_at, const char *detail)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct conn_state *p = realloc(q->st, cap * sizeof *p);
        if (p == NULL)
            return -ENOMEM;
        q->st = p;
        q->cap = cap;
    }
    struct conn_state *s = &q->st[q->n];
    s->provider_id = util_strdup0(provider_id ? provider_id : "");
    s->our_id = util_strdup0(our_id);
    s->status = st;
    s->done_at = done_at;
    s->detail = util_strdup0(detail);
    q->n++;
    return 0;
}

void ch_stq_result(struct ch_stq *q, int rc, const char *detail)
{
    if (rc == 0)
        q->ok = 1;
    else if (q->err.code == 0)
        smsys_err_set(&q->err, rc, "%s", detail ? detail : smsys_strerror(rc));
}

void ch_stq_release(struct ch_stq *q)
{
    if (--q->pending)
        return;
    int rc = q->ok || q->err.code == 0 ? 0 : q->err.code;
    q->cb(q->ud, rc, rc ? NULL : q->st, rc ? 0 : q->n, &q->err);
    for (size_t i = 0; i < q->n; i++) {
        free((char *)q->st[i].provider_id);
        free((char *)q->st[i].our_id);
        free((char *)q->st[i].detail);
    }
    free(q->st);
    free(q);
}

/* ---- one-request operations ------------------------------------------------------ */

void ch_op_fail(const struct ch_op *op, int rc, const char *fmt, ...)
{
    struct smsys_err err = {.code = rc};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.detail, sizeof err.detail, fmt, ap);
    va_end(ap);
    if (op->inbox)
        op->inbox(op->ud, rc, NULL, 0, &err);
    else if (op->balance)
        op->balance(op->ud, rc, NULL, &err);
    else if (op->lines)
        op->lines(op->ud, rc, NULL, 0, &err);
}

static void op_done(struct conn *c, int rc, struct http_response *resp, void *ud)
{
    struct ch_op *op = ud;
    if (rc < 0 || resp == NULL)
        ch_op_fail(op, ch_transport_class(rc), "%s: %s", c->ops->name,
                   resp && resp->err.detail[0] ? resp->err.detail : smsys_strerror(rc));
    else
        op->parse(c, op, resp->status, resp->body.data, resp->body.len);
    free(op);
}

int ch_op_submit(struct conn *c, struct ch_req *r, const struct ch_op *op)
{
    struct ch_op *k = malloc(sizeof *k);
    if (k == NULL) {
        ch_req_free(r);
        return -ENOMEM;
    }
    *k = *op;
    int rc = ch_submit(c, r, op_done, k);
    if (rc)
        free(k);
    return rc;
}
