/* connector.c - smpp-bench --through connector: the SMPP connector's
 * send() in batches of 100 (text encoding and splitting, part
 * bookkeeping), up to 10,000 messages outstanding, receipts taken as
 * events and acked at once. */
#include "bench.h"

#include "smsys/connector.h"

#include <stdio.h>

#define BATCH       100
#define MAX_BATCHES 100 /* 10,000 messages outstanding at most */

static void send_more(struct bench *b);

static void sent_cb(void *ud, const struct conn_sent *res, size_t n)
{
    struct bench *b = ud;
    b->batches--;
    for (size_t i = 0; i < n; i++) {
        b->done++;
        if (res[i].rc == 0) {
            b->ok++;
            b->segments += res[i].segments;
        } else {
            b->failed++;
        }
    }
    send_more(b);
}

static void send_more(struct bench *b)
{
    static char ids[BATCH][24], dsts[BATCH][24];
    while (b->sent < b->n && b->batches < MAX_BATCHES) {
        struct sms_out m[BATCH];
        size_t k = 0;
        for (; k < BATCH && b->sent < b->n; k++, b->sent++) {
            snprintf(ids[k], sizeof(ids[k]), "%ld", b->sent);
            snprintf(dsts[k], sizeof(dsts[k]), "+98912%07ld", b->sent % 10000000);
            m[k] = (struct sms_out){.id = ids[k], .to = dsts[k], .text = b->text};
        }
        if (b->ops->send(b->c, m, k, sent_cb, b) != 0) {
            fprintf(stderr, "smpp-bench: send failed\n");
            b->failed += (long)k;
            b->done += (long)k;
            continue;
        }
        b->batches++;
    }
}

static void event_cb(void *ud, const struct conn_event *ev, conn_ack_fn ack, void *token)
{
    struct bench *b = ud;
    if (ev->kind == CONN_EV_STATE)
        b->receipts++;
    ack(token, 0);
}

static void health_cb(void *ud, int rc, const char *detail)
{
    (void)detail;
    if (rc == 0)
        ((struct bench *)ud)->bound = 1;
}

static int bc_open(struct bench *b)
{
    b->ops = connector_find("smpp");
    if (b->ops == NULL) {
        fprintf(stderr, "smpp-bench: no smpp connector\n");
        return 1;
    }
    char js[256];
    snprintf(js, sizeof(js),
             "{\"host\":\"127.0.0.1\",\"port\":%d,\"system_id\":\"bench\",\"password\":\"b\","
             "\"sender\":\"3000\",\"window\":%u,\"receipts\":%s}",
             b->port, b->window, b->want_receipts ? "true" : "false");
    cJSON *settings = cJSON_Parse(js);
    struct conn_env env = {.loop = b->loop,
                           .account_id = "bench",
                           .account_name = "bench",
                           .event = event_cb,
                           .health = health_cb,
                           .ud = b};
    struct smsys_err err;
    int rc = b->ops->open(&env, settings, &b->c, &err);
    cJSON_Delete(settings);
    if (rc != 0)
        fprintf(stderr, "smpp-bench: open: %s\n", err.detail);
    return rc;
}

static void bc_closed_cb(void *ud)
{
    ((struct bench *)ud)->closed = 1;
}

static void bc_close(struct bench *b)
{
    b->ops->close(b->c, bc_closed_cb, b);
}

const struct driver bench_conn = {
    .name = "connector",
    .open = bc_open,
    .start = send_more,
    .close = bc_close,
};
