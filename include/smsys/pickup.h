/* pickup.h - takes Pending outgoing SMS records from Dynamics into the
 * PostgreSQL queue (docs/outbound.md: query and cost, recipients, account
 * and line choice, reasons, multi-recipient split, crash safety).
 *
 * One poll (pickup_poll):
 *   1. GET smsys_smses?$filter=smsys_status eq 2 and smsys_direction eq 1
 *      with $expand of the activity parties (one page, up to max_rows);
 *   2. one PostgreSQL query drops records already queued (the write-back
 *      of Queued may still be on its way) and reads accounts and lines;
 *   3. one GET per table per up to 100 'to' parties reads phone columns
 *      and the opt-out flag (Microsoft.Dynamics.CRM.In on the key);
 *   4. further recipients of a multi-recipient SMS get their own SMS record
 *      (deterministic id: UUIDv5 of the original id and the party id,
 *      created with status Queued, so re-creating it is a conflict, never a
 *      duplicate, and the Pending filter never sees it);
 *   5. queue_enqueue with idempotency key activityid (one recipient) or
 *      activityid:partyid, which also queues the Queued write-back in the
 *      same transaction.
 * A crash anywhere leaves the record Pending in Dynamics and the next poll
 * does the same work again; the keys make the second enqueue a no-op.
 *
 * Rules: one poll at a time; the callback fires exactly once, later. The
 * queue, pool and client are borrowed and must outlive the object; free it
 * only when no poll is in flight (pickup_busy). */
#ifndef SMSYS_PICKUP_H
#define SMSYS_PICKUP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smsys/error.h"

struct queue;
struct pg_pool;
struct dv_client;
struct metrics;
struct pickup;

struct pickup_opts {
    /* Phone columns per table, in order of preference:
     * "contact:mobilephone,telephone1;account:telephone1;lead:mobilephone"
     * A table may name its entity set and key when they are not the
     * defaults (<table>s, <table>id): "new_client@new_clients/new_clientid:new_mobile".
     * NULL: PICKUP_DEFAULT_PHONE_COLUMNS. */
    const char *phone_columns;
    /* Tables that have the opt-out column; NULL: "contact,account,lead". */
    const char *optout_tables;
    const char *optout_column;   /* NULL: "smsys_donotsms" */
    const char *default_country; /* for numbers without a country code; NULL: "IR" */
    unsigned max_rows;           /* SMS records per poll [5000], at most 5000 */
    unsigned max_segments;       /* longer texts fail [20] */
    int metrics;                 /* nonzero: register and update metrics */
    struct metrics *registry;    /* with metrics: NULL = the process's default registry */
};

#define PICKUP_DEFAULT_PHONE_COLUMNS                                                               \
    "contact:mobilephone,telephone1;account:mobilephone,telephone1;"                               \
    "lead:mobilephone,telephone1;systemuser:mobilephone"

struct pickup_result {
    unsigned records;  /* Pending records read */
    unsigned skipped;  /* already queued (write-back pending) */
    unsigned messages; /* queue rows submitted (inserted or already there) */
    unsigned inserted; /* new queue rows */
    unsigned blocked;  /* born Blocked */
    unsigned failed;   /* born Failed */
    unsigned children; /* child SMS records created (or found) */
    unsigned requests; /* Dynamics requests this poll took */
    int more;          /* the page was full: poll again at once */
    int backlog;       /* a full page of records queued already, waiting for
                          their Queued write-back: poll again soon */
};

struct pickup_stats {
    uint64_t polls, records, messages, inserted, blocked, failed, children, requests;
};

typedef void (*pickup_done_cb)(int rc, const struct pickup_result *res, const struct smsys_err *err,
                               void *ud);

/* Returns 0 and *out, -EINVAL (bad phone_columns: err says why), -ENOMEM. */
int pickup_new(uv_loop_t *loop, struct queue *q, struct pg_pool *pool, struct dv_client *dv,
               const struct pickup_opts *opts, struct pickup **out, struct smsys_err *err);
void pickup_free(struct pickup *p);
int pickup_busy(const struct pickup *p);
const struct pickup_stats *pickup_stats(const struct pickup *p);

/* One poll. Returns 0 (cb later), -EBUSY, or a request error. On failure
 * nothing is half done: what was not enqueued is read again next time. */
int pickup_poll(struct pickup *p, pickup_done_cb cb, void *ud);

/* The id of the child record for party_id of SMS parent_id: UUIDv5 in the
 * URL namespace over "smsys:sms:<parent>:<party>" (lower case). */
void pickup_child_id(const char *parent_id, const char *party_id, char out[37]);

#endif
