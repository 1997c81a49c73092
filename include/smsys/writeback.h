/* writeback.h - writes the write-back outbox (queue.h outbox_*) to the SMS
 * records in Dynamics: batched (up to 1000 records per UpdateMultiple or
 * $batch request) and coalesced (the outbox holds only the latest columns
 * of each record). Design and failure behaviour: docs/outbound.md.
 *
 * One round (writeback_run): outbox_take -> dv_update_multiple_each ->
 * outbox_done for written rows (version-checked: a change that landed
 * meanwhile stays queued) and for rows whose record is gone in Dynamics
 * (404, logged and dropped) -> outbox_failed (backoff in PostgreSQL) for
 * the rest. A Dynamics outage (429, 5xx, timeouts, refused connections)
 * only delays rows; nothing is lost because nothing lives in memory.
 *
 * When UpdateMultiple rejects a whole chunk for a reason that is not
 * temporary (Dataverse answers 404 for the chunk when one record was
 * deleted), the client (dv_update_multiple_each) halves it until the bad
 * rows stand alone (about 2 log2(n) requests for one bad record), so each
 * record's own outcome is known and the good rows are written.
 *
 * Rules: one run at a time; the callback fires exactly once, later. The
 * queue, the client and the metrics registry are borrowed and must outlive
 * the writer; free it only when no run is in flight (writeback_busy). */
#ifndef SMSYS_WRITEBACK_H
#define SMSYS_WRITEBACK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct queue;
struct dv_client;
struct metrics;
struct writeback;

struct writeback_opts {
    unsigned batch;           /* rows per round [1000] */
    const char *entity_set;   /* [smsys_smses] */
    const char *logical;      /* [smsys_sms] */
    int metrics;              /* nonzero: register and update metrics */
    struct metrics *registry; /* with metrics: NULL = the process's default registry */
};

struct writeback_stats {
    uint64_t rounds;
    uint64_t rows_taken;
    uint64_t rows_written;
    uint64_t rows_dropped; /* record deleted in Dynamics */
    uint64_t rows_failed;  /* rescheduled with backoff */
    uint64_t requests;     /* Dynamics requests the writes took */
};

/* rc: 0, or why the round stopped early (rows then stay in the outbox).
 * taken = rows the round took from the outbox. */
typedef void (*writeback_done_cb)(int rc, size_t taken, void *ud);

int writeback_new(uv_loop_t *loop, struct queue *q, struct dv_client *dv,
                  const struct writeback_opts *opts, struct writeback **out);
void writeback_free(struct writeback *w);

/* One round. Returns 0 (cb later), -EBUSY (a round is running) or the
 * outbox_take error. */
int writeback_run(struct writeback *w, writeback_done_cb cb, void *ud);

int writeback_busy(const struct writeback *w);
const struct writeback_stats *writeback_stats(const struct writeback *w);

#endif
