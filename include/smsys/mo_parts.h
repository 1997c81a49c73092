/* mo_parts.h - durable reassembly of multipart inbound (MO) SMS in
 * PostgreSQL (tables of sql/003_mo_parts.sql), on the async pool of pg.h.
 *
 * Flow (docs/smpp.md, "Inbound"): the SMPP connector hands every part to
 * the core as a CONN_EV_MO event with part_total > 0. The core calls
 * mo_parts_add(); once its callback reports success the part is committed
 * and the core acks the deliver_sm. When the part completed its group, the
 * callback also carries the whole message (joined raw bytes, decoded to
 * UTF-8 after joining). The core stores that message and then calls
 * mo_parts_done(). A crash between the two leaves a complete group that
 * mo_parts_sweep() (at startup) hands out again: the consumer MUST dedupe
 * on group_id (e.g. a unique provider id "mo-part-group:<id>").
 *
 * Groups that stay incomplete are handed out by mo_parts_expire() with a
 * marker ("[…]", U+2026 in brackets) where parts are missing; the consumer
 * stores them like a complete message and calls mo_parts_done().
 *
 * Every call follows pg.h's contract: returns 0 and calls cb exactly once
 * later, or returns < 0 and never calls it. Arguments are copied. Results
 * handed to callbacks are borrowed for the duration of the callback. */
#ifndef SMSYS_MO_PARTS_H
#define SMSYS_MO_PARTS_H

#include <stddef.h>
#include <stdint.h>

#include "smsys/buf.h"
#include "smsys/connector.h"
#include "smsys/error.h"

struct pg_pool;

/* What mo_parts_add did with a part. */
enum mo_parts_outcome {
    MO_PARTS_STORED = 0,    /* new part stored; the group is still incomplete */
    MO_PARTS_COMPLETE = 1,  /* new part stored and it completed the group: msg is set */
    MO_PARTS_DUPLICATE = 2, /* the same part was already stored (a redelivery): nothing
                               changed; ack it and do nothing else */
};

/* One reassembled (or expired) message. */
struct mo_parts_msg {
    int64_t group_id;       /* pass to mo_parts_done(); dedupe key for the consumer */
    const char *account_id; /* as given to mo_parts_add */
    const char *from, *to;
    const char *text; /* UTF-8 */
    unsigned total;   /* parts the message announced */
    unsigned present; /* parts received (== total unless expired) */
    int64_t first_at; /* unix seconds the first stored part arrived */
};

typedef void (*mo_parts_add_cb)(void *ud, int rc, enum mo_parts_outcome outcome,
                                const struct mo_parts_msg *msg, const struct smsys_err *err);
typedef void (*mo_parts_list_cb)(void *ud, int rc, const struct mo_parts_msg *msgs, size_t n,
                                 const struct smsys_err *err);
typedef void (*mo_parts_done_cb)(void *ud, int rc, const struct smsys_err *err);

/* Stores one part (part->part_total >= 1, 1 <= part_seq <= part_total,
 * part->raw/raw_len/data_coding, from, to) in one transaction keyed by
 * (account_id, from, to, part_ref, part_total, part_seq): a redelivered
 * part is reported MO_PARTS_DUPLICATE, also when its group was already
 * completed and marked done (same seq, same bytes, within an hour).
 * Returns 0, -EINVAL for a malformed part, or a pg_query error. */
int mo_parts_add(struct pg_pool *pool, const char *account_id, const struct conn_mo *part,
                 mo_parts_add_cb cb, void *ud);

/* Marks a group handled. Its rows stay for one hour so that redeliveries
 * of its parts are recognised, then mo_parts_expire() deletes them. */
int mo_parts_done(struct pg_pool *pool, int64_t group_id, mo_parts_done_cb cb, void *ud);

/* Complete groups not yet marked done (after a crash between the
 * COMPLETE callback and mo_parts_done). At most 1000 per call. */
int mo_parts_sweep(struct pg_pool *pool, mo_parts_list_cb cb, void *ud);

/* Incomplete groups whose first part is older than older_than_s seconds,
 * as messages with "[…]" for each run of missing parts; the caller stores
 * them and calls mo_parts_done(). Also deletes done groups older than an
 * hour. At most 1000 per call. */
int mo_parts_expire(struct pg_pool *pool, unsigned older_than_s, mo_parts_list_cb cb, void *ud);

/* Appends the UTF-8 form of an SMS payload to out: data_coding 8 UCS-2BE
 * (surrogate pairs joined), 0 and 0xF0-0xF3 unpacked GSM-7 septets, 1 and
 * 3 (and anything else) Latin-1. Undecodable units become U+FFFD. Returns
 * 0 or a buffer error; the caller frees out. */
int mo_parts_decode(int data_coding, const void *raw, size_t len, struct buf *out);

#endif
