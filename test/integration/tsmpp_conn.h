/* tsmpp_conn.h - a test-only SMPP connector over src/smpp_session.c, so
 * the sender, connector manager and tracker can be proven against the real
 * smscsim over TCP before the production SMPP connector (connectors/smpp.c)
 * lands. Settings: {"host":..., "port":N, "window":N}. Text goes out as
 * GSM-7 one octet per septet (tests use ASCII only); receipts become
 * CONN_EV_STATE events acknowledged only when the core says so. Header-only
 * (static) because each test_*.c is its own binary. */
#ifndef TSMPP_CONN_H
#define TSMPP_CONN_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsys/connector.h"
#include "smsys/smpp_receipt.h"
#include "smsys/smpp_session.h"

struct conn {
    const struct conn_env *env;
    struct smpp_session *s;
    int nstatus_calls;
    conn_closed_cb closed_cb;
    void *closed_ud;
};

struct tsmpp_batch {
    struct conn *c;
    conn_sent_cb cb;
    void *ud;
    size_t n, left;
    struct conn_sent *res;
    char **ids, **pids, **details;
};

struct tsmpp_one {
    struct tsmpp_batch *b;
    size_t i;
};

static void tsmpp_batch_free(struct tsmpp_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->ids[i]);
        free(b->pids[i]);
        free(b->details[i]);
    }
    free(b->ids);
    free(b->pids);
    free(b->details);
    free(b->res);
    free(b);
}

static void tsmpp_submit_cb(void *ud, int err, uint32_t st, const char *message_id)
{
    struct tsmpp_one *one = ud;
    struct tsmpp_batch *b = one->b;
    size_t i = one->i;
    free(one);
    b->res[i].id = b->ids[i];
    b->res[i].rc = err;
    if (err == 0) {
        b->pids[i] = strdup(message_id);
        b->res[i].provider_id = b->pids[i];
        b->res[i].status = CONN_ST_QUEUED;
    } else {
        char d[64];
        snprintf(d, sizeof(d), "SMPP command_status 0x%08x", (unsigned)st);
        b->details[i] = strdup(d);
        b->res[i].detail = b->details[i];
    }
    if (--b->left == 0) {
        b->cb(b->ud, b->res, b->n);
        tsmpp_batch_free(b);
    }
}

static int tsmpp_send(struct conn *c, const struct sms_out *m, size_t n, conn_sent_cb cb, void *ud)
{
    struct tsmpp_batch *b = calloc(1, sizeof(*b));
    b->c = c;
    b->cb = cb;
    b->ud = ud;
    b->n = b->left = n;
    b->res = calloc(n, sizeof(*b->res));
    b->ids = calloc(n, sizeof(char *));
    b->pids = calloc(n, sizeof(char *));
    b->details = calloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        b->ids[i] = strdup(m[i].id);
    for (size_t i = 0; i < n; i++) {
        struct smpp_sm sm = {0};
        sm.source_addr = m[i].from ? m[i].from : "1000";
        sm.dest_addr = m[i].to[0] == '+' ? m[i].to + 1 : m[i].to;
        sm.dest_ton = 1;
        sm.dest_npi = 1;
        sm.registered_delivery = 1;
        sm.short_message = (const uint8_t *)m[i].text;
        sm.sm_length = strlen(m[i].text);
        struct tsmpp_one *one = malloc(sizeof(*one));
        one->b = b;
        one->i = i;
        int rc = smpp_session_submit(c->s, &sm, tsmpp_submit_cb, one);
        if (rc < 0) {
            free(one);
            /* Never left the process: a temporary failure, reported like a
             * completed submit so the batch still answers once. */
            b->res[i].id = b->ids[i];
            b->res[i].rc = rc == SMSYS_ECLOSED ? SMSYS_ECLOSED : SMSYS_ETEMP;
            b->details[i] = strdup("not queued in the SMPP session");
            b->res[i].detail = b->details[i];
            if (--b->left == 0) {
                /* Only when every submit was refused at once: answer later
                 * is required (rule 1), so fail the call instead. */
                tsmpp_batch_free(b);
                return rc;
            }
        }
    }
    return 0;
}

struct tsmpp_tok {
    struct conn *c;
    uint64_t token;
};

static void tsmpp_ack(void *token, int rc)
{
    struct tsmpp_tok *t = token;
    smpp_session_deliver_ack(t->c->s, t->token, rc == 0 ? 0 : SMPP_ESME_RSYSERR);
    free(t);
}

static enum conn_status tsmpp_status(int st)
{
    switch (st) {
    case SMPP_STATE_DELIVERED:
        return CONN_ST_DELIVERED;
    case SMPP_STATE_EXPIRED:
    case SMPP_STATE_UNDELIVERABLE:
    case SMPP_STATE_DELETED:
        return CONN_ST_UNDELIVERED;
    case SMPP_STATE_REJECTED:
        return CONN_ST_FAILED;
    case SMPP_STATE_ENROUTE:
    case SMPP_STATE_ACCEPTED:
        return CONN_ST_SENT;
    default:
        return CONN_ST_UNKNOWN;
    }
}

static void tsmpp_deliver_cb(struct smpp_session *s, const struct smpp_pdu *pdu, uint64_t token,
                             void *ud)
{
    struct conn *c = ud;
    struct smpp_receipt r;
    if (!smpp_is_receipt(pdu) || smpp_receipt_parse(pdu, &r) != 0) {
        smpp_session_deliver_ack(s, token, 0); /* MO: not part of these tests */
        return;
    }
    struct conn_event ev = {.kind = CONN_EV_STATE};
    ev.u.state.provider_id = r.id;
    ev.u.state.status = tsmpp_status(r.state);
    ev.u.state.done_at = r.done_unix;
    char d[64];
    snprintf(d, sizeof(d), "stat:%s err:%s", r.stat, r.err);
    ev.u.state.detail = d;
    struct tsmpp_tok *t = malloc(sizeof(*t));
    t->c = c;
    t->token = token;
    c->env->event(c->env->ud, &ev, tsmpp_ack, t);
}

static void tsmpp_state_cb(struct smpp_session *s, enum smpp_state st, int err, void *ud)
{
    struct conn *c = ud;
    (void)s;
    if (c->env->health && (st == SMPP_BOUND || st == SMPP_CLOSED))
        c->env->health(c->env->ud, st == SMPP_BOUND ? 0 : (err ? err : SMSYS_ETEMP),
                       st == SMPP_BOUND ? "bound" : "link down");
}

static int tsmpp_open(const struct conn_env *env, const cJSON *settings, struct conn **out,
                      struct smsys_err *err)
{
    const cJSON *host = cJSON_GetObjectItemCaseSensitive(settings, "host");
    const cJSON *port = cJSON_GetObjectItemCaseSensitive(settings, "port");
    const cJSON *win = cJSON_GetObjectItemCaseSensitive(settings, "window");
    if (!cJSON_IsString(host) || !cJSON_IsNumber(port))
        return smsys_err_set(err, -EINVAL, "host and port are required");
    struct conn *c = calloc(1, sizeof(*c));
    c->env = env;
    struct smpp_session_opts o = {
        .host = host->valuestring,
        .port = port->valueint,
        .system_id = "smsys",
        .password = env->apikey,
        .window = cJSON_IsNumber(win) ? (unsigned)win->valueint : 50,
        .resp_timeout_ms = 2000,
        .reconnect_min_ms = 50,
        .reconnect_max_ms = 200,
        .throttle_pause_ms = 20,
        .throttle_max_ms = 100,
    };
    struct smpp_session_cbs cbs = {.state_cb = tsmpp_state_cb, .deliver_cb = tsmpp_deliver_cb};
    int rc = smpp_session_new(env->loop, &o, &cbs, c, &c->s);
    if (rc < 0) {
        free(c);
        return smsys_err_set(err, rc, "smpp_session_new failed");
    }
    *out = c;
    return 0;
}

static void tsmpp_closed(void *ud)
{
    struct conn *c = ud;
    conn_closed_cb cb = c->closed_cb;
    void *cud = c->closed_ud;
    free(c);
    cb(cud);
}

static void tsmpp_close(struct conn *c, conn_closed_cb cb, void *ud)
{
    c->closed_cb = cb;
    c->closed_ud = ud;
    smpp_session_close(c->s, tsmpp_closed, c);
}

static const struct conn_ops tsmpp_ops = {
    .name = "tsmpp",
    .max_batch = 100,
    .open = tsmpp_open,
    .send = tsmpp_send,
    .close = tsmpp_close,
};

static const struct conn_ops *tsmpp_find(const char *name)
{
    return strcmp(name, "tsmpp") == 0 ? &tsmpp_ops : NULL;
}

#endif
