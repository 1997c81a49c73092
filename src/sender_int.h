/* sender_int.h - private to sender*.c: the sender struct and the functions
 * the two files share. Not a public header.
 *
 *   sender.c         the claim -> mark -> hand-over pipeline of batches,
 *                    the timer, lifecycle
 *   sender_record.c  the outcomes: results queued and recorded in
 *                    batches, and the receipt lane (sender_apply_states) */
#ifndef SMSYS_SENDER_INT_H
#define SMSYS_SENDER_INT_H

#include "smsys/sender.h"

#include <stdint.h>

struct sbatch;

/* FIFO of batches. */
struct bq {
    struct sbatch *head, *tail;
    size_t n;
};

/* A result waiting to be recorded; strings owned. */
struct pres {
    int64_t id;
    int rc;
    int segments;
    int not_handed; /* never given to the connector */
    int marked;     /* its batch was marked: counts in sender.exposed */
    char *provider_id;
    char *detail;
};

struct sender {
    uv_loop_t *loop;
    struct queue *q;
    const struct conn_ops *ops;
    struct conn *c;
    char *account_id, *account_name, *owner;
    unsigned batch, pipeline, handover, lease_ms, idle_ms, record_retry_ms;
    struct sender_metrics m;

    uv_timer_t timer; /* idle claim, record retry, mark retry */
    int claiming;     /* a queue_claim is out */
    int more;         /* the last claim was full: more may be ready */
    uint64_t claim_t0;
    struct bq waitq;        /* claimed, not marked */
    struct bq markq;        /* marked, not yet in the connector */
    struct sbatch *marking; /* its queue_handing is out */
    unsigned inconn;        /* in the connector, not all answered */
    int mark_hold;          /* a mark failed: no new mark before the timer */
    size_t exposed;         /* messages marked and not yet recorded */

    struct pres *pend; /* results not yet handed to the queue */
    size_t npend, cappend;
    struct pres *rec; /* results of the record call in progress (or to retry) */
    size_t nrec;
    int recording;
    int record_wait; /* a failed record waits for the timer */

    /* A receipt batch waiting for, or using, the database lane. */
    const struct conn_state *ap_st;
    size_t ap_n;
    queue_receipts_cb ap_cb;
    void *ap_ud;
    int ap_waiting, applying;

    int draining, closing;
    void (*drain_cb)(void *);
    void *drain_ud;
    void (*close_cb)(void *);
    void *close_ud;
    struct sender_stats st;
};

/* snd_push_result flags. */
#define RES_NOT_HANDED 1u /* never given to the connector */
#define RES_MARKED     2u /* from a marked batch */

/* sender_record.c */
/* Queues one result for recording (strings copied). */
void snd_push_result(struct sender *s, int64_t id, int rc, const char *provider_id, int segments,
                     const char *detail, unsigned flags);
/* Starts the next database call of the lane when it is free: a waiting
 * receipt batch first, else the next results to record. */
void snd_flush(struct sender *s);
/* Frees the strings of n results (not the array). */
void snd_free_pres(struct pres *p, size_t n);

/* sender.c */
/* (Re)arms the timer to fire within ms (an earlier deadline is kept). */
void snd_arm_timer(struct sender *s, unsigned ms);
/* Moves batches along: marked ones into the connector, the next one marked. */
void snd_pump(struct sender *s);
/* Claims the next batch when the pipeline has room. */
void snd_maybe_claim(struct sender *s);
/* Runs the drain or close callback once nothing is out any more. */
void snd_check_done(struct sender *s);

#endif
