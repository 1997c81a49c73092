/* sender.h - the send loop of one account: claims batches of messages from
 * the durable queue (queue_claim), marks each batch durably right before
 * the account's connector gets it (queue_handing), hands it over
 * (conn_ops.send) and records the outcomes (queue_record_results).
 *
 * The sender decides nothing about retries, backoff, pauses, failover or
 * unknown outcomes: queue_record_results does (docs/queue.md). Its job is
 * to keep the connector busy while few messages are exposed to a crash:
 * up to `pipeline` batches are claimed ahead, `handover` of them are in
 * the connector and one more is marked (its mark overlaps the current
 * send); results are recorded in batches as they come back, and an idle
 * sender sleeps until sender_kick() (NOTIFY smsys_queue) or its timer.
 *
 * Rules: everything runs on the loop thread; nothing blocks. A result that
 * cannot be recorded (database down) is kept in memory and retried; if the
 * process dies first, the lease expires and queue_reap turns a marked
 * message into an unknown outcome (never a blind resend) and an unmarked
 * one (claimed ahead, never handed over) back into Queued. At most
 * (handover + 1) x batch messages per account are marked and not yet
 * recorded at any time: that is all a crash can leave Unknown. */
#ifndef SMSYS_SENDER_H
#define SMSYS_SENDER_H

#include <stdint.h>
#include <uv.h>

#include "smsys/connector.h"
#include "smsys/queue.h"

struct sender;
struct metric;

/* Optional metric series (NULL: not counted); borrowed. */
struct sender_metrics {
    struct metric *sent, *failed, *retries, *unknown, *requeued;
    struct metric *send_latency; /* histogram, seconds: claim -> provider answer */
};

/* Tunables; zero fields take the default in brackets. Strings copied. */
struct sender_opts {
    const char *account_id;   /* required: GUID of smsys_account */
    const char *account_name; /* for logs; NULL: the id */
    const char *owner;        /* lease owner, e.g. "host:pid" [ "smsysd" ] */
    unsigned batch;           /* messages per claim [min(200, ops->max_batch or 200)] */
    unsigned pipeline;        /* claimed batches out at once, in every stage [4] */
    unsigned handover;        /* of those, in the connector at once [1]; one more is marked */
    unsigned lease_ms;        /* must exceed the connector's answer time [60000] */
    unsigned idle_ms;         /* claim again after this long without a kick [1000] */
    unsigned record_retry_ms; /* after a failed record call [1000] */
    const struct sender_metrics *metrics;
};

struct sender_stats {
    uint64_t claimed, results, recorded;
    uint64_t sent, failed, retries, unknown, requeued;
    unsigned batches_out; /* claimed, not all results back */
    size_t pending;       /* results waiting to be recorded */
};

/* Creates the sender and starts claiming. ops and c are borrowed and must
 * outlive the sender (close the connector before sender_close so that its
 * pending send callbacks fire first). Returns 0 and *out, -EINVAL or
 * -ENOMEM. */
int sender_new(uv_loop_t *loop, struct queue *q, const struct conn_ops *ops, struct conn *c,
               const struct sender_opts *opts, struct sender **out);

/* New work may be there (a NOTIFY): claim now if idle. */
void sender_kick(struct sender *s);

/* Stops claiming at once; batches not yet marked go back to Queued (not
 * handed over); cb(ud) once every marked batch has its results back and
 * recorded (or could not be recorded: then it is left to the lease). May never fire if the
 * connector never answers: bound it with a grace period. A second drain replaces the callback. */
void sender_drain(struct sender *s, void (*cb)(void *ud), void *ud);

/* Stops for good: batches the connector never got go back to Queued;
 * waits only for the database calls already issued (the connector must
 * have been closed, so no send callback is pending), then frees the sender
 * and calls cb(ud). Results not recorded are dropped (their leases turn
 * them into unknown outcomes). */
void sender_close(struct sender *s, void (*cb)(void *ud), void *ud);

/* Stores receipts of this account through the sender's database lane, so
 * a receipt batch and a results batch of the same account never run
 * concurrently: under READ COMMITTED two such transactions cannot see each
 * other's rows, and a receipt that raced its own submit result would stay
 * unmatched. st must stay valid until cb. One call at a time (the
 * manager keeps at most one receipt batch in flight per account). Returns
 * 0 (cb later) or -EBUSY. */
int sender_apply_states(struct sender *s, const struct conn_state *st, size_t n,
                        queue_receipts_cb cb, void *ud);

void sender_stats(const struct sender *s, struct sender_stats *out);

#endif
