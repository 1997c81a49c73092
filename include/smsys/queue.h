/* queue.h - the durable outbound queue of smsysd, its state machine,
 * delivery receipts and the write-back outbox, all in PostgreSQL
 * (sql/002_queue.sql; design in docs/queue.md).
 *
 * Every call works on a batch and costs one round trip: one prepared
 * statement calling a set-based SQL function, so that a batch of hundreds
 * of messages changes state in one short transaction. Every state change
 * upserts the record's write-back row in the same transaction.
 *
 * Rules (the libuv contract, as in pg.h):
 *  1. A call that takes a callback returns 0 and calls it exactly once,
 *     later, from the loop; or returns a negative code and never calls it.
 *  2. Input arrays and strings are borrowed for the duration of the call.
 *     Results handed to a callback are borrowed for the duration of the
 *     callback (they point into the PostgreSQL result).
 *  3. Errors in callbacks: SMSYS_EPG (err->detail has the SQLSTATE),
 *     SMSYS_ETEMP (connection lost: the statement may or may not have
 *     committed), SMSYS_ECLOSED. Every call is one transaction and safe
 *     to repeat, so SMSYS_ETEMP and serialisation failures (SQLSTATE 40P01
 *     deadlock, 40001; rows are locked in id order to make them rare)
 *     should simply be retried; results of a batch that is never recorded
 *     end as unknown outcomes when their leases expire (never resent
 *     blindly) -- unless the batch was never marked as handed over
 *     (queue_handing): then it goes back to Queued.
 *
 * Lifetime: the queue does not own the pool. Free the queue only after
 * every callback has fired (e.g. after pg_pool_close()'s callback), and
 * release every leader handle before closing the pool. */
#ifndef SMSYS_QUEUE_H
#define SMSYS_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smsys/connector.h"
#include "smsys/error.h"
#include "smsys/pg.h"

/* Message states: the smsys_status values of schema.md plus two internal
 * ones (never written to Dynamics as such; see docs/queue.md). */
enum queue_state {
    QUEUE_QUEUED = 3,
    QUEUE_SENT = 4,
    QUEUE_DELIVERED = 5,
    QUEUE_FAILED = 6,
    QUEUE_RETRYING = 7,
    QUEUE_CANCELED = 9,
    QUEUE_BLOCKED = 10,
    QUEUE_INFLIGHT = 20, /* claimed under a lease, being handed over */
    QUEUE_UNKNOWN = 21,  /* hand-over outcome unknown, not resent */
};

/* The channel enqueue and every return to Queued notify; payload is the
 * account id. */
#define QUEUE_CHANNEL "smsys_queue"

/* Longest smsys_lasterror Dynamics takes, in characters. */
#define QUEUE_LASTERROR_MAX 2000

struct queue; /* opaque */
struct queue_leader;

/* Tunables; zero fields take the default in brackets. */
struct queue_opts {
    unsigned backoff_base_ms;     /* first retry delay [30000] */
    unsigned backoff_cap_ms;      /* retry delay cap [3600000] */
    unsigned jitter_pct;          /* delay is cut by up to this percentage [20]; 100 = full */
    unsigned pause_ms;            /* account pause after an account-wide error [300000] */
    unsigned receipt_deadline_s;  /* no final receipt by then: "no delivery report" [172800] */
    unsigned leader_heartbeat_ms; /* how often a leader checks its connection [2000] */
};

/* A new message. Strings borrowed; NULL where optional. */
struct queue_new {
    const char *idem_key;    /* required: stable key from record + recipient */
    const char *activity_id; /* smsys_sms activityid (GUID) or NULL: no write-back */
    const char *bulk_id;     /* GUID or NULL */
    const char *account_id;  /* GUID; NULL only for rows born final */
    const char *sender;      /* line, NULL = account default */
    const char *recipient;   /* E.164 ("" allowed for rows born final) */
    const char *body;        /* valid UTF-8 */
    int segments;
    int encoding;           /* as text.h reports it; stored, not interpreted */
    int priority;           /* lower first; 0 = default 100 */
    enum queue_state state; /* QUEUE_QUEUED, or born final: QUEUE_BLOCKED / QUEUE_FAILED */
    const char *last_error; /* reason for rows born final, else NULL */
    int64_t not_before_us;  /* wall-clock µs; 0 = now */
};

struct queue_enq_res {
    int64_t id;   /* message id */
    int inserted; /* 1: new; 0: the key was already queued (or repeated in this batch) */
};

/* A claimed message (strings borrowed from the result). */
struct queue_msg {
    int64_t id;
    const char *idem_key;
    const char *activity_id; /* NULL when none */
    const char *account_id;
    const char *sender; /* NULL = account default */
    const char *recipient;
    const char *body;
    int segments;
    int encoding;
    int attempts; /* including this one */
};

/* The outcome of handing one message to its provider. */
struct queue_result {
    int64_t id;
    int rc;                  /* 0 accepted; SMSYS_ETEMP/ETHROTTLED, SMSYS_EPERM, SMSYS_EACCOUNT,
                                SMSYS_EUNKNOWN; any other code counts as temporary */
    const char *provider_id; /* when accepted */
    int segments;            /* as billed; 0 keeps the stored count */
    const char *detail;      /* provider code and text; NULL when none */
    /* 1: the sender never gave this message to its connector (stopping,
     * the hand-over mark failed). A row still InFlight goes back to
     * Queued at once with the attempt given back; rc is then ignored and
     * detail becomes last_error. Only the process that holds the lease
     * can know this: never set it for a message that may have left. */
    int not_handed_over;
};

struct queue_outcome {
    int64_t id;
    int state; /* enum queue_state after the call */
    int attempts;
    int64_t next_attempt_us; /* wall-clock µs */
};

struct queue_wb {
    const char *activity_id;
    const char *fields; /* JSON object of Dynamics columns */
    int64_t version;
};

/* Identifies an outbox row as taken (for outbox_done / outbox_failed). */
struct queue_wb_ack {
    const char *activity_id;
    int64_t version;
    const char *error; /* outbox_failed: this row's error, NULL = the call's */
};

struct queue_stat {
    const char *account_id; /* NULL for rows without an account */
    int state;
    int64_t count;
    double oldest_s; /* age of the oldest message in this state (seconds) */
};

typedef void (*queue_enqueue_cb)(int rc, const struct queue_enq_res *res, size_t n,
                                 const struct smsys_err *err, void *ud);
typedef void (*queue_claim_cb)(int rc, const struct queue_msg *msgs, size_t n,
                               const struct smsys_err *err, void *ud);
typedef void (*queue_record_cb)(int rc, const struct queue_outcome *o, size_t n,
                                const struct smsys_err *err, void *ud);
/* For calls that change a number of rows: n is that number. */
typedef void (*queue_count_cb)(int rc, int64_t n, const struct smsys_err *err, void *ud);
typedef void (*queue_outbox_cb)(int rc, const struct queue_wb *rows, size_t n,
                                const struct smsys_err *err, void *ud);
typedef void (*queue_stats_cb)(int rc, const struct queue_stat *rows, size_t n,
                               const struct smsys_err *err, void *ud);
/* Receipts: matched = receipts that found their message, changed =
 * messages whose state moved. */
typedef void (*queue_receipts_cb)(int rc, int matched, int changed, const struct smsys_err *err,
                                  void *ud);
/* Leader election: ld is non-NULL when this process now holds the job;
 * NULL with rc 0 when another process holds it. */
typedef void (*queue_leader_cb)(int rc, struct queue_leader *ld, const struct smsys_err *err,
                                void *ud);
/* Leadership is gone (connection lost or pool closing): stop the job at
 * once and call queue_leader_release(). Called at most once. */
typedef void (*queue_leader_lost_cb)(struct queue_leader *ld, void *ud);

/* Creates a queue over pool (borrowed; must outlive the queue). opts may
 * be NULL. Returns 0 and *out (free with queue_free), or -ENOMEM. */
int queue_new(uv_loop_t *loop, struct pg_pool *pool, const struct queue_opts *opts,
              struct queue **out);
void queue_free(struct queue *q);

/* Inserts n messages (idempotent on idem_key) with their write-back rows
 * and notifies QUEUE_CHANNEL, in one transaction. res[i] answers msgs[i].
 * Returns -EINVAL (bad GUID, missing key, state not allowed) or
 * SMSYS_EUTF8 (invalid body) before anything is sent. */
int queue_enqueue(struct queue *q, const struct queue_new *msgs, size_t n, queue_enqueue_cb cb,
                  void *ud);

/* Claims up to limit ready messages (Queued, or Retrying whose time has
 * come) of the given accounts (naccounts 0 = all), skipping paused or
 * disabled accounts and rows other claimers hold; moves them to InFlight
 * under a lease of lease_ms owned by owner, counting the attempt. */
int queue_claim(struct queue *q, const char *owner, const char *const *account_ids,
                size_t naccounts, unsigned limit, unsigned lease_ms, queue_claim_cb cb, void *ud);

/* Applies send outcomes (see docs/queue.md for the transitions). o[i]
 * answers res[i]. */
int queue_record_results(struct queue *q, const struct queue_result *res, size_t n,
                         queue_record_cb cb, void *ud);

/* Answer of queue_handing: the ids marked (a subset of the ids asked, in
 * any order; borrowed for the callback). */
typedef void (*queue_ids_cb)(int rc, const int64_t *ids, size_t n, const struct smsys_err *err,
                             void *ud);

/* The hand-over mark (docs/queue.md): call it right before the connector
 * gets claimed messages, and hand over only the ids cb returns. It marks,
 * durably, the rows that are still InFlight under owner's lease and whose
 * lease has not run out; a row missing from the answer is no longer ours
 * (its lease ran out and it was reaped, maybe claimed again) and must not
 * be sent. Repeating the call for a marked row answers it again. After a
 * failed call the rows may or may not be marked: do not send them (record
 * them not_handed_over, or leave them to their leases). Returns -EINVAL
 * for n == 0, n > 100000 or a bad owner. */
int queue_handing(struct queue *q, const char *owner, const int64_t *ids, size_t n, queue_ids_cb cb,
                  void *ud);

/* Expired leases, up to limit: a message never handed over (no mark) goes
 * back to Queued with its attempt given back; a marked one becomes an
 * unknown outcome (or Queued again for providers that deduplicate on our
 * id). */
int queue_reap(struct queue *q, unsigned limit, queue_count_cb cb, void *ud);

/* Stores n receipts of account_id and applies them forward-only. */
int queue_apply_states(struct queue *q, const char *account_id, const struct conn_state *st,
                       size_t n, queue_receipts_cb cb, void *ud);

/* Flags up to limit Sent messages past their receipt deadline as "no
 * delivery report" (state stays Sent; never shown as delivered). */
int queue_expire_receipts(struct queue *q, unsigned limit, queue_count_cb cb, void *ud);

/* Failed (and with include_unknown, Unknown) messages that ended at or
 * after since_us (wall-clock µs; 0 = all) go back to Queued with a fresh
 * attempt budget. */
int queue_retry_failed(struct queue *q, int64_t since_us, int include_unknown, queue_count_cb cb,
                       void *ud);

/* Unknown outcomes that a status lookup by our own id proved were never
 * received go back to Queued (the only safe resend for a provider without
 * idempotency keys). Other states are left alone; n = rows moved. */
int queue_resolve_unknown(struct queue *q, const int64_t *ids, size_t n, queue_count_cb cb,
                          void *ud);

/* The user canceled these SMS records (activity ids) in Dynamics: their
 * messages not yet handed over (Queued, Retrying) become Canceled; ones
 * in flight or sent cannot be called back and stay. n = rows canceled. */
int queue_cancel(struct queue *q, const char *const *activity_ids, size_t n, queue_count_cb cb,
                 void *ud);

/* Retention: deletes up to limit final messages that ended before
 * before_us (wall-clock µs) and have no pending write-back, with their
 * receipts, and unmatched receipts older than that. n = messages deleted. */
int queue_purge(struct queue *q, int64_t before_us, unsigned limit, queue_count_cb cb, void *ud);

/* Counts by account and state (a scan of smsys_message: for the CLI and a
 * slow-interval metrics refresh, not for every scrape). */
int queue_stats(struct queue *q, queue_stats_cb cb, void *ud);

/* Write-back outbox. take: up to limit due rows, oldest first (one writer:
 * the leader of the write-back job). done: deletes rows whose version is
 * unchanged (a newer change stays queued). failed: schedules a retry with
 * backoff and keeps the error. */
int outbox_take(struct queue *q, unsigned limit, queue_outbox_cb cb, void *ud);
int outbox_done(struct queue *q, const struct queue_wb_ack *rows, size_t n, queue_count_cb cb,
                void *ud);
int outbox_failed(struct queue *q, const struct queue_wb_ack *rows, size_t n, const char *error,
                  queue_count_cb cb, void *ud);

/* Tries to become the one process running job_name: a session advisory
 * lock on a pinned connection, held until queue_leader_release() or until
 * that connection is lost (lost_cb). Both callbacks get ud. */
int queue_leader_try(struct queue *q, const char *job_name, queue_leader_cb cb,
                     queue_leader_lost_cb lost_cb, void *ud);
/* Unlocks (when still connected), hands the connection back and frees ld
 * (asynchronously: its timer closes on the loop). */
void queue_leader_release(struct queue_leader *ld);

/* Subscribes cb to QUEUE_CHANNEL (see pg_listen for the NULL payload). */
int queue_listen(struct queue *q, pg_notify_cb cb, void *ud);

/* Canonical form of a provider message id, for tolerant receipt matching:
 * the rule of docs/smpp.md "Message-id matching" (the same code as
 * smpp_msgid_canon, written without its "n:"/"s:" tags): decimal and
 * hexadecimal readings become the same decimal number, case and leading
 * zeros are ignored. canon gets the main reading; alt (may be left "") the
 * other reading of an id that is valid in both bases (e.g. "10" = ten or
 * sixteen). Both buffers >= 128 bytes. Returns 0 or -EINVAL (empty or
 * longer than 100 characters). */
int queue_msgid_canon(const char *id, char *canon, size_t canon_len, char *alt, size_t alt_len);

/* Copies s into out as valid UTF-8 (invalid bytes become U+FFFD) of at
 * most max_chars characters, cut at a character boundary. Returns the
 * bytes written (out is NUL-terminated; out_len >= 4 * max_chars + 1 always
 * suffices). */
size_t queue_text_clean(const char *s, size_t max_chars, char *out, size_t out_len);

#endif
