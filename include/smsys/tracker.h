/* tracker.h - delivery tracking by polling, and receipt deadlines.
 *
 * For connectors that offer a status query (conn_ops.status) and no push,
 * the tracker asks for the state of every Sent message of the account that
 * has no final state yet, every smsys_account.inbound_interval_s, in
 * batches of provider ids (the connector splits further), and feeds the
 * answers to queue_apply_states, exactly like pushed receipts. Every
 * expire_ms it flags Sent messages past their receipt deadline
 * (queue_expire_receipts). Every sweep_ms it re-applies receipts that
 * stayed unmatched because they raced their own submit result in another
 * process (READ COMMITTED: neither transaction saw the other's row). Both jobs run in one process
 * only: the tracker takes the "tracker" leader lock (queue_leader_try) and retries every tick while
 * another process holds it. */
#ifndef SMSYS_TRACKER_H
#define SMSYS_TRACKER_H

#include <uv.h>

#include "smsys/connmgr.h"
#include "smsys/pg.h"
#include "smsys/queue.h"

struct tracker;

struct tracker_opts {
    unsigned tick_ms;      /* scheduling granularity and leader retry [1000] */
    unsigned expire_ms;    /* queue_expire_receipts period [60000] */
    unsigned batch;        /* provider ids per status call [500] */
    unsigned sweep_ms;     /* re-match receipts that raced their results [10000] */
    struct metric *polled; /* counter of states obtained by polling; may be NULL */
};

/* Starts the tracker over the manager's open accounts (all borrowed; they
 * must outlive the tracker). Returns 0 and *out, -EINVAL or -ENOMEM. */
int tracker_new(uv_loop_t *loop, struct queue *q, struct pg_pool *pg, struct connmgr *m,
                const struct tracker_opts *opts, struct tracker **out);

/* Stops: waits for the status calls and statements in flight, releases
 * the leader lock, frees the tracker, then cb(ud). */
void tracker_close(struct tracker *t, void (*cb)(void *ud), void *ud);

/* 1 while this process holds the tracker job. */
int tracker_is_leader(const struct tracker *t);

#endif
