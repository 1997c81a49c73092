/* session.c - smpp-bench --through session: submit_sm straight into one
 * smpp_session, 10,000 outstanding at most, receipts parsed and acked. */
#include "bench.h"

#include "smsys/smpp_receipt.h"
#include "smsys/smpp_session.h"

#include <stdio.h>

static void submit_more(struct bench *b);

static void submit_cb(void *ud, int err, uint32_t status, const char *msgid)
{
    struct bench *b = ud;
    b->done++;
    if (err) {
        b->failed++;
    } else {
        b->ok++;
        b->segments++;
    }
    if (b->submitted < b->n && b->submitted - b->done < 5000)
        submit_more(b);
}

static void submit_more(struct bench *b)
{
    while (b->submitted < b->n && b->submitted - b->done < 10000) {
        struct smpp_sm sm = {0};
        sm.source_addr = "3000";
        sm.dest_ton = 1;
        sm.dest_npi = 1;
        snprintf(b->dst, sizeof(b->dst), "98912%07ld", b->submitted % 10000000);
        sm.dest_addr = b->dst;
        sm.registered_delivery = b->want_receipts ? 1 : 0;
        int n = snprintf(b->textbuf, sizeof(b->textbuf), "%s %ld", b->text, b->submitted);
        sm.short_message = (const uint8_t *)b->textbuf;
        sm.sm_length = (size_t)n < sizeof(b->textbuf) ? (size_t)n : sizeof(b->textbuf) - 1;
        if (smpp_session_submit(b->s, &sm, submit_cb, b))
            break;
        b->submitted++;
    }
}

static void deliver_cb(struct smpp_session *s, const struct smpp_pdu *p, uint64_t token, void *ud)
{
    struct bench *b = ud;
    struct smpp_receipt r;
    if (smpp_receipt_parse(p, &r) == 0)
        b->receipts++;
    smpp_session_deliver_ack(s, token, 0);
}

static void state_cb(struct smpp_session *s, enum smpp_state st, int err, void *ud)
{
    if (st == SMPP_BOUND)
        ((struct bench *)ud)->bound = 1;
}

static int session_open(struct bench *b)
{
    struct smpp_session_opts o = {.host = "127.0.0.1",
                                  .port = b->port,
                                  .system_id = "bench",
                                  .password = "bench",
                                  .window = b->window,
                                  .max_queue = 20000};
    struct smpp_session_cbs cbs = {.deliver_cb = deliver_cb, .state_cb = state_cb};
    int rc = smpp_session_new(b->loop, &o, &cbs, b, &b->s);
    if (rc)
        fprintf(stderr, "smpp-bench: smpp_session_new: %d\n", rc);
    return rc;
}

static void session_close_cb(void *ud)
{
    ((struct bench *)ud)->closed = 1;
}

static void session_close(struct bench *b)
{
    smpp_session_close(b->s, session_close_cb, b);
}

const struct driver bench_session = {
    .name = "session",
    .open = session_open,
    .start = submit_more,
    .close = session_close,
};
