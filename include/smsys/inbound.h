/* inbound.h - inbound SMS: durable intake with dedupe, then matching,
 * the incoming smsys_sms record in Dynamics and the keyword actions
 * (F2, F4, F14, F15, F20). Design: docs/inbound.md.
 *
 * Intake: every connector path (SMPP deliver_sm, inbox polling, webhooks)
 * ends in inbound_accept(), whose callback fires after the row is
 * committed; only then does the connector manager acknowledge the
 * provider. A redelivery is recognised (provider id, else a fingerprint)
 * and reported as not inserted: acknowledge it again, nothing else.
 *
 * Processing: struct inbound takes stored rows and, per row: matches the
 * sender in the phone index, evaluates the keyword rules, creates the
 * incoming SMS record (activityid fixed at intake, so a retry is never a
 * duplicate), puts it in the line's queue, runs the actions and
 * marks the row recorded; up to `parallel` rows at once, one sender's
 * rows one after the other in arrival order. A row that fails is retried with backoff and
 * after 5 attempts marked failed with the error (smsysctl inbound show).
 * Run processing in one process only (inbound_start takes the "inbound"
 * leader lock).
 *
 * Async calls follow pg.h: 0 and the callback exactly once later, or < 0
 * and no callback. Arguments are borrowed for the call. */
#ifndef SMSYS_INBOUND_H
#define SMSYS_INBOUND_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smsys/connector.h"
#include "smsys/dataverse.h"
#include "smsys/error.h"
#include "smsys/pg.h"
#include "smsys/phone_index.h"
#include "smsys/queue.h"

/* The notification channel inbound_accept signals (payload: row id). */
#define INBOUND_CHANNEL "smsys_inbound"

/* Attempts before a row is marked failed. */
#define INBOUND_MAX_ATTEMPTS 5

typedef void (*inbound_accept_cb)(void *ud, int rc, int64_t id, int inserted,
                                  const struct smsys_err *err);

/* Stores mo (a whole message: text set, part_total 0) for account_id.
 * The sender is normalised to E.164 with default_country (NULL: "IR");
 * when it does not normalise it is kept as given (an alphanumeric sender)
 * and the message stays unmatched. Returns 0, -EINVAL (no text, from or
 * to), SMSYS_EUTF8, or a pg_query error. */
int inbound_accept(struct pg_pool *pool, const char *account_id, const struct conn_mo *mo,
                   const char *default_country, inbound_accept_cb cb, void *ud);

/* The connector manager's whole CONN_EV_MO handling (src/inbound_mo.c):
 * a whole message is stored with inbound_accept and then acknowledged; a
 * part goes to mo_parts (acknowledged once committed) and, when it
 * completes its group, the message is stored with provider id
 * "mo-part-group:<group id>" and the group marked done. ack(token, rc) is
 * called exactly once (rc < 0: refuse, the provider redelivers). Returns
 * 0, or < 0 without calling ack. */
int inbound_on_mo(struct pg_pool *pool, const char *account_id, const struct conn_mo *mo,
                  const char *default_country, conn_ack_fn ack, void *token);

struct mo_parts_msg;

/* Stores a multipart message mo_parts_add reported complete (provider id
 * "mo-part-group:<group id>") and marks its group done; fire and forget:
 * a failure is logged and inbound_sweep_parts() stores it later. */
void inbound_accept_group(struct pg_pool *pool, const struct mo_parts_msg *msg,
                          const char *default_country);

/* stored = messages handed to inbound_accept. */
typedef void (*inbound_sweep_cb)(void *ud, int rc, unsigned stored, const struct smsys_err *err);

/* Stores completed multipart groups left behind by a crash
 * (mo_parts_sweep) and incomplete groups older than older_than_s with
 * their "[…]" markers (mo_parts_expire), marking each done. Call at start
 * and then every minute or so. */
int inbound_sweep_parts(struct pg_pool *pool, unsigned older_than_s, const char *default_country,
                        inbound_sweep_cb cb, void *ud);

/* fetched = messages the provider returned, inserted = new ones (the rest
 * were already stored). */
typedef void (*inbound_poll_cb)(void *ud, int rc, unsigned fetched, unsigned inserted,
                                const struct smsys_err *err);

/* Inbox polling (F20), for connectors with ops->inbox: fetches the
 * provider's unread messages and stores each with inbound_accept. Call it
 * every smsys_inboundinterval seconds per account. Providers mark messages
 * read when they hand them out, so a message fetched and then not stored
 * (PostgreSQL down, crash in between) cannot be fetched again: cb's rc
 * says so and the error is logged with the count. Returns 0, -ENOTSUP
 * (no inbox API), or the connector's error. */
int inbound_poll_inbox(struct pg_pool *pool, const char *account_id, const struct conn_ops *ops,
                       struct conn *conn, const char *default_country, inbound_poll_cb cb,
                       void *ud);

/* What to do with a message whose sender matches no record. */
enum inbound_unmatched {
    INBOUND_UNMATCHED_LEAVE = 0, /* record unlinked (regarding empty, from = the number) */
    INBOUND_UNMATCHED_LEAD = 1,  /* create a lead for the number and link to it */
};

struct inbound_opts {
    enum inbound_unmatched unmatched;
    const char *default_country; /* NULL: "IR" */
    unsigned batch;              /* rows per round [50] */
    unsigned parallel;           /* rows processed at once (one per sender) [8] */
    unsigned interval_ms;        /* inbound_start: poll when no NOTIFY comes [5000] */
    unsigned index_interval_ms;  /* inbound_start: phone index refresh [60000] */
};

struct inbound; /* opaque */

/* Creates a processor. pool, dv, q, pi are borrowed and must outlive it;
 * q is used for auto-replies and confirmations. Returns 0, -ENOMEM. */
int inbound_new(uv_loop_t *loop, struct pg_pool *pool, struct dv_client *dv, struct queue *q,
                struct phone_index *pi, const struct inbound_opts *opts, struct inbound **out);

/* processed = rows handled (recorded or failed); errors of single rows
 * are stored on the row, rc < 0 only when the round itself failed. */
typedef void (*inbound_done_cb)(void *ud, int rc, unsigned processed, const struct smsys_err *err);

/* One round: reloads the keyword rules and account separators from
 * Dynamics, then processes up to batch due rows (parallel at once, a
 * sender's rows in order).
 * -EBUSY while a round runs. */
int inbound_run_once(struct inbound *in, inbound_done_cb cb, void *ud);

/* Runs rounds as leader of the job "inbound": after each NOTIFY on
 * INBOUND_CHANNEL and every interval_ms, and refreshes the phone index
 * every index_interval_ms. Returns 0 or < 0. */
int inbound_start(struct inbound *in);

struct connmgr;

/* Makes the leader loop poll the inbox (inbound_poll_inbox) of every open
 * account of m whose connector has one, every smsys_inboundinterval
 * seconds of that account (F20). m is borrowed; call before
 * inbound_start, and stop inbound before closing m. */
void inbound_attach_connmgr(struct inbound *in, struct connmgr *m);

/* Stops rounds and leadership; cb(ud) fires once nothing is pending, after
 * which in may be freed with inbound_free. */
void inbound_stop(struct inbound *in, void (*cb)(void *ud), void *ud);
void inbound_free(struct inbound *in);

/* The deterministic id of a Dynamics row derived from an inbound row:
 * UUIDv5 over "<kind>:<uid>[:<extra>]" in smsys's namespace, uid being
 * the row's smsys_inbound.uid (also the SMS record's activityid). Used for
 * the case ("case", rule id) and the lead ("lead"). */
void inbound_uuid(const char *uid, const char *kind, const char *extra, char out[37]);

#endif
