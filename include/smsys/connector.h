/* connector.h - what every SMS provider module implements.
 *
 * One file per provider in connectors/, exporting one `const struct
 * conn_ops conn_<name>_ops`; the registry (src/connector.c) lists them.
 * The core (queue, delivery tracking, inbound) talks to providers only
 * through this interface.
 *
 * Rules, in the manner of Kannel's smscconn_p.h:
 *  1. Async calls MUST return 0 and call their callback exactly once,
 *     later (never inside the call), or return <0 and never call it.
 *  2. Arguments are borrowed for the duration of the call; a connector
 *     copies what it keeps. Results handed to callbacks are borrowed for
 *     the duration of the callback.
 *  3. A connector MUST NOT block the loop: all I/O through the shared HTTP
 *     client (env->http) or its own libuv handles.
 *  4. send() MAY take several messages; a connector that can batch SHOULD
 *     (respecting the provider's per-call limit by splitting). Results come
 *     back per message, in any order, identified by sms_out.id.
 *  5. Every failure is classified into the error classes of providers.md:
 *     SMSYS_ETEMP / SMSYS_ETHROTTLED (retry later), SMSYS_EPERM (this
 *     message can never be sent), SMSYS_EACCOUNT (stop the account),
 *     SMSYS_EUNKNOWN (may or may not have reached the provider). The
 *     provider's own code and text go into the result's detail.
 *  6. A connector MUST NOT retry a send on its own after the request may
 *     have reached the provider, unless the provider deduplicates on
 *     sms_out.id (idempotency key); the core owns retries.
 *  7. Push events (SMPP receipts and MO, webhooks) are handed to
 *     env->event(); the connector acknowledges them to the provider only
 *     after the core calls the given ack (i.e. after they are durable).
 *  8. close() MUST complete every pending callback (with SMSYS_ECLOSED)
 *     before its own callback fires. */
#ifndef SMSYS_CONNECTOR_H
#define SMSYS_CONNECTOR_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <cjson/cJSON.h>

#include "smsys/error.h"

struct conn;
struct http_client;
struct http_req;

/* Delivery state in provider-neutral terms (providers.md). */
enum conn_status {
    CONN_ST_UNKNOWN = 0,
    CONN_ST_QUEUED,      /* provider has it */
    CONN_ST_SENT,        /* reached the operator */
    CONN_ST_DELIVERED,   /* handset */
    CONN_ST_UNDELIVERED, /* final negative from the operator */
    CONN_ST_FAILED,      /* provider refused */
    CONN_ST_BLACKLISTED, /* operator/provider block list */
    CONN_ST_CANCELED,
};

const char *conn_status_name(enum conn_status st);

/* One outgoing message (one recipient). */
struct sms_out {
    const char *id;     /* our message id: stable, unique; idempotency key */
    const char *to;     /* E.164, "+989121234567" */
    const char *from;   /* our line; NULL = account default */
    const char *text;   /* UTF-8, already rendered */
    int force_ucs2;     /* send as UCS-2 even when GSM-7 would do */
    int64_t not_before; /* provider-side schedule, unix seconds; 0 = now */
};

/* Outcome of sending one message. */
struct conn_sent {
    const char *id;          /* sms_out.id */
    int rc;                  /* 0 accepted, else an error class (rule 5) */
    const char *provider_id; /* provider's message id when accepted */
    enum conn_status status; /* usually QUEUED or SENT when accepted */
    int segments;            /* as billed, 0 when the provider does not say */
    const char *detail;      /* provider code and text on failure */
};

/* Status of one message, from a status query or a push receipt. */
struct conn_state {
    const char *provider_id;
    const char *our_id; /* when the provider echoes it, else NULL */
    enum conn_status status;
    int64_t done_at;    /* unix seconds of the final state, 0 unknown */
    const char *detail; /* provider code/text, for smsys_lasterror */
};

/* One inbound (MO) message. */
struct conn_mo {
    const char *provider_id; /* provider's id; NULL when it has none */
    const char *from;        /* sender as given by the provider */
    const char *to;          /* our line */
    const char *text;        /* UTF-8, reassembled */
    int64_t received_at;     /* unix seconds, 0 unknown */

    /* Multipart (concatenated) inbound, from connectors that receive parts
     * (SMPP UDH or SAR). The core stores each part durably, acknowledges
     * it, and reassembles in any order (src/mo_parts.c). For a part, text
     * is NULL and raw/raw_len/data_coding carry the payload without its
     * UDH, so a part boundary inside a character still joins byte-exact.
     * part_total == 0: a whole message in text. */
    unsigned part_ref;   /* concatenation reference (8- or 16-bit) */
    unsigned part_total; /* number of parts, 0 = not a part */
    unsigned part_seq;   /* 1-based */
    const void *raw;
    size_t raw_len;
    int data_coding; /* SMPP data_coding of raw: 0 GSM-7 (unpacked), 8 UCS-2, ... */
};

enum conn_event_kind { CONN_EV_STATE = 1, CONN_EV_MO = 2 };

struct conn_event {
    enum conn_event_kind kind;
    union {
        struct conn_state state;
        struct conn_mo mo;
    } u;
};

struct conn_balance {
    double amount;
    const char *unit; /* "IRR", "IRT", "USD", "SMS", ... */
};

struct conn_line {
    const char *number;
    const char *label; /* may be NULL */
};

/* The core acknowledges a pushed event once it is durable (rc 0), or
 * refuses it (rc < 0: the connector answers the provider with a temporary
 * error so it is redelivered). Called exactly once per event. */
typedef void (*conn_ack_fn)(void *token, int rc);

/* What the core gives a connector. Borrowed: outlives the connector. */
struct conn_env {
    uv_loop_t *loop;
    struct http_client *http; /* shared async HTTP client */
    const char *account_id;   /* smsys_smssetting id (GUID) */
    const char *account_name; /* for logs */
    const char *apikey;       /* secret, resolved (env:/file: done); never log */
    /* Push path: receipts and MO from SMPP or a webhook. */
    void (*event)(void *ud, const struct conn_event *ev, conn_ack_fn ack, void *token);
    /* Connection-level news: up/down, throttled, account-wide error. */
    void (*health)(void *ud, int rc, const char *detail);
    void *ud;
};

typedef void (*conn_sent_cb)(void *ud, const struct conn_sent *res, size_t n);
typedef void (*conn_status_cb)(void *ud, int rc, const struct conn_state *st, size_t n,
                               const struct smsys_err *err);
typedef void (*conn_inbox_cb)(void *ud, int rc, const struct conn_mo *mo, size_t n,
                              const struct smsys_err *err);
typedef void (*conn_balance_cb)(void *ud, int rc, const struct conn_balance *b,
                                const struct smsys_err *err);
typedef void (*conn_lines_cb)(void *ud, int rc, const struct conn_line *l, size_t n,
                              const struct smsys_err *err);
typedef void (*conn_closed_cb)(void *ud);

struct conn_ops {
    const char *name;         /* smsys_provider value: "smpp", "kavenegar", ... */
    size_t max_batch;         /* most messages one send() call should carry */
    int supports_idempotency; /* provider deduplicates on sms_out.id */

    /* Validates settings (smsys_config JSON) and creates the connector.
     * On error, err->detail names the bad key. */
    int (*open)(const struct conn_env *env, const cJSON *settings, struct conn **out,
                struct smsys_err *err);
    int (*send)(struct conn *c, const struct sms_out *msgs, size_t n, conn_sent_cb cb, void *ud);
    /* Status by provider ids. NULL: push only. */
    int (*status)(struct conn *c, const char *const *provider_ids, size_t n, conn_status_cb cb,
                  void *ud);
    /* Fetch unread inbound. NULL: push only or no inbound. */
    int (*inbox)(struct conn *c, conn_inbox_cb cb, void *ud);
    int (*balance)(struct conn *c, conn_balance_cb cb, void *ud); /* NULL: unknown */
    int (*lines)(struct conn *c, conn_lines_cb cb, void *ud);     /* NULL: unknown */
    /* Verifies and parses a webhook request (no I/O). On success *out is
     * an array of *n events the caller frees with conn_events_free().
     * Returns SMSYS_EAUTH for a bad signature/token. NULL: no webhooks. */
    int (*webhook)(struct conn *c, const struct http_req *req, struct conn_event **out, size_t *n);
    void (*close)(struct conn *c, conn_closed_cb cb, void *ud);
};

/* Registry: the connector named `name`, or NULL. */
const struct conn_ops *connector_find(const char *name);
/* All registered connectors, NULL-terminated. */
const struct conn_ops *const *connector_all(void);

/* Frees an event array made by a webhook() implementation (strings are
 * owned by the array: each event's strings were allocated with malloc). */
void conn_events_free(struct conn_event *ev, size_t n);

#endif
