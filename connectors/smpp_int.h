/* smpp_int.h - internals shared by connectors/smpp.c (settings, receipts,
 * MO, close) and connectors/smpp_send.c (encoding, splitting, submits).
 * Not a public header: nothing outside connectors/smpp*.c includes it. */
#ifndef SMSYS_CONN_SMPP_INT_H
#define SMSYS_CONN_SMPP_INT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "smsys/connector.h"
#include "smsys/list.h"
#include "smsys/smpp_pdu.h"
#include "smsys/smpp_session.h"

enum smpp_long_mode { SMPP_LONG_UDH = 0, SMPP_LONG_SAR, SMPP_LONG_PAYLOAD };

/* Remembered ids of the later parts of multi-part messages, so that a
 * receipt for part 2..n can be reported under the first part's id. Keyed
 * by the canonical forms of smpp_msgid_canon; bounded (oldest evicted). */
struct smpp_partmap;

struct smpp_batch; /* one send() call (smpp_send.c) */

struct conn {
    struct conn_env env; /* copied; its strings are borrowed (outlive us) */
    struct smpp_session *sess;
    uv_timer_t defer;         /* completes batches that failed before any submit */
    struct smpp_batch *ready; /* batches whose callback is due (defer timer) */
    size_t batches;           /* send() calls not yet answered */
    /* Settings applied per submit_sm. */
    enum smpp_long_mode long_mode;
    int dc_default;       /* 0, 1 or 3: the 7-bit path's data_coding */
    int udh16;            /* 16-bit concatenation reference */
    int src_ton, src_npi; /* -1: chosen from the sender's form */
    int dst_ton, dst_npi;
    int receipts; /* registered_delivery 1 */
    char sender[21];
    unsigned next_ref; /* concatenation reference, per connector */
    struct smpp_partmap *pm;
    /* Deliver tokens handed to the core and not yet acked. */
    struct list toks;        /* of struct smpp_tok */
    uint64_t last_throttled; /* session throttle counter last reported */
    int closing;
    conn_closed_cb closed_cb;
    void *closed_ud;
};

/* Remembers that a later part's id belongs to the message whose first
 * part got first_id (the map is allocated on first use). */
void smpp_partmap_put(struct conn *c, const char *part_id, const char *first_id);

/* Called by smpp_send.c after each submit completes: raises the health
 * callback when the session was throttled since the last call. */
void smpp_conn_check_throttle(struct conn *c);

/* Arms the zero timer that answers c->ready from the loop. */
void smpp_conn_defer(struct conn *c);

int conn_smpp_send(struct conn *c, const struct sms_out *msgs, size_t n, conn_sent_cb cb, void *ud);
/* Answers the batches on c->ready (deferred timer / close). */
void smpp_send_flush_ready(struct conn *c);

#endif
