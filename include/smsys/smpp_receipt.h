/* smpp_receipt.h - SMPP delivery receipts and tolerant message-id matching.
 *
 * A receipt is a deliver_sm (or data_sm) with esm_class & 0x3C == 0x04.
 * Its facts come from the TLVs receipted_message_id (0x001E) and
 * message_state (0x0427) when present, else from the text the SMSC puts
 * in short_message / message_payload:
 *   id:IIII sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm
 *   stat:DELIVRD err:000 text:....
 * Real SMSCs vary: keys in any case (`Text:`), `_` instead of a space in
 * the date keys, 10- or 12-digit dates, fields missing or reordered,
 * several spaces. All of that is accepted. Nothing here allocates. */
#ifndef SMSYS_SMPP_RECEIPT_H
#define SMSYS_SMPP_RECEIPT_H

#include <stddef.h>
#include <stdint.h>

#include "smsys/smpp_pdu.h"

struct smpp_receipt {
    char id[SMPP_MAX_ID_LEN + 1]; /* "" when the SMSC gave none */
    int state;                    /* enum smpp_msg_state; SMPP_STATE_NONE if unknown */
    char stat[16];                /* the text's stat: value as sent, "" when absent */
    char err[16];                 /* the text's err: value, "" when absent */
    int sub, dlvrd;               /* -1 when absent */
    char submit_date[13];         /* digits as sent (10 or 12), "" when absent */
    char done_date[13];
    int64_t done_unix; /* done date as Unix seconds, read as UTC; 0 if absent */
    int has_network_error;
    uint8_t network_error[3];
    char text[64]; /* the text: field (first chars of the message), truncated */
};

/* True when the deliver_sm/data_sm is a delivery receipt. */
int smpp_is_receipt(const struct smpp_pdu *p);

/* Fills r from a receipt PDU: TLVs first, then the text for whatever the
 * TLVs did not say. Returns 0, or SMSYS_EPROTO when neither gives an id. */
int smpp_receipt_parse(const struct smpp_pdu *p, struct smpp_receipt *r);

/* Parses receipt text alone (len bytes, need not be NUL-terminated).
 * Returns 0, or SMSYS_EPROTO when there is no id: field. */
int smpp_receipt_parse_text(const char *text, size_t len, struct smpp_receipt *r);

/* Maps a stat: word (DELIVRD, UNDELIV, EXPIRED, "delivered", ...) to an
 * enum smpp_msg_state; SMPP_STATE_NONE when unrecognised. */
int smpp_stat_state(const char *stat);

/* Canonical forms of a message id for tolerant matching (docs/smpp.md):
 *  - trimmed; a "0x" prefix marks hex;
 *  - all decimal digits: primary = "n:" + the decimal value (no leading
 *    zeros), alt = "n:" + the value read as hex (the SMSC may have given
 *    hex that happens to have no letter);
 *  - hex digits with at least one letter (any case), or 0x-prefixed:
 *    primary = "n:" + the value in decimal, alt = "";
 *  - anything else (UUIDs, alphanumeric ids): primary = "s:" + the id in
 *    lower case, alt = "".
 * Two ids match when a form of one equals a form of the other. Store both
 * forms of the submit_sm_resp id; look a receipt up by both of its forms.
 * queue_msgid_canon (queue.h) applies the same rule (docs/smpp.md). */
#define SMPP_MSGID_CANON_LEN 96
struct smpp_msgid_canon {
    char primary[SMPP_MSGID_CANON_LEN];
    char alt[SMPP_MSGID_CANON_LEN];
};

/* Returns 0, or -EINVAL for an empty or over-long (> 65 chars) id. */
int smpp_msgid_canon(const char *id, struct smpp_msgid_canon *out);

/* 2 when the primary forms are equal (same number or same string),
 * 1 when they match only through an alternative reading, 0 otherwise. */
int smpp_msgid_match(const char *a, const char *b);

#endif
