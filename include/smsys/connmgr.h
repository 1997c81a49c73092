/* connmgr.h - the connector manager: one connector and one sender per
 * enabled smsys_account row.
 *
 * It reads smsys_account on NOTIFY ACCOUNTS_CHANNEL (accounts.h: a sync
 * changed it), every poll_ms as fallback and on connmgr_refresh (SIGHUP),
 * opens a connector for each enabled row (connector_find(provider), the
 * row's config jsonb as settings, the resolved API key), reopens it when
 * the row's provider, config or key changed and closes it when the row is
 * gone or disabled. Each open account gets a sender (sender.h), woken by
 * NOTIFY smsys_queue. Push events of the connectors are made durable
 * before they are acknowledged:
 *  - CONN_EV_STATE (receipts): batched (up to event_batch, or event_delay_ms)
 *    into one queue_apply_states per account; each event is acked after
 *    that transaction committed, refused (the provider redelivers) if not.
 *  - CONN_EV_MO: a whole message is stored in smsys_inbound
 *    (inbound_accept, deduplicated) and then acked; a part goes to
 *    mo_parts and is acked once committed, and a completed group is stored
 *    as one inbound message (inbound_accept_group). Refused (redelivered)
 *    when it could not be stored.
 * It also runs queue_reap (expired leases) at start and every lease_ms / 2,
 * and reads each account's balance every balance_ms and on demand
 * (connmgr_balance_refresh): kept for health, exported as the gauges
 * smsys_provider_balance{account} and smsys_provider_balance_low{account},
 * warned about below the account's threshold (config key "low_balance",
 * a number in the balance's unit; the key is the service's, stripped
 * before the connector sees the settings) and handed to opts.on_balance
 * (smsysd writes it to Dynamics, accounts_write_balance).
 *
 * API keys: the row's `apikey` column when the schema has one, else the
 * config's "apikey" key; "env:NAME" reads the environment, "file:PATH" the
 * file's first line (blocking read of a small local file, done when the
 * connector is opened). Keys are never logged.
 *
 * Service-level keys of the row's config, removed before the connector
 * sees it: "apikey", "low_balance" (see above) and "failover_order"
 * (copied into smsys_account.failover_order at open; absent = the column
 * is left alone, null = cleared). Webhooks reach the same durable path
 * through connmgr_push (webhook.h). */
#ifndef SMSYS_CONNMGR_H
#define SMSYS_CONNMGR_H

#include <uv.h>

#include "smsys/buf.h"
#include "smsys/connector.h"
#include "smsys/pg.h"
#include "smsys/queue.h"
#include "smsys/sender.h"

struct connmgr;
struct http_client;

struct connmgr_opts {
    const char *owner;       /* lease owner [ "smsysd" ] (copied) */
    unsigned batch;          /* per claim [connector max_batch, at most 200] */
    unsigned pipeline;       /* claimed batches out per account [4] */
    unsigned lease_ms;       /* [60000] */
    unsigned idle_ms;        /* sender timer fallback [1000] */
    unsigned poll_ms;        /* re-read smsys_account [5000] */
    unsigned event_batch;    /* receipts per apply [500] */
    unsigned event_delay_ms; /* longest wait to fill a receipt batch [5] */
    unsigned balance_ms;     /* balance reads; 0 = [600000] */
    /* Connector lookup; NULL = connector_find. Tests register their own. */
    const struct conn_ops *(*find)(const char *provider);
    const struct sender_metrics *metrics; /* may be NULL; borrowed */
    struct metric *receipts;              /* counter of receipts stored; may be NULL */
    /* Each successful balance read; may be NULL. low: below low_balance.
     * Arguments borrowed for the call. */
    void (*on_balance)(void *ud, const char *account_id, const char *account_name,
                       const struct conn_balance *b, int low);
    void *balance_ud;
};

/* An open account, for the tracker (connmgr_each). Borrowed: valid during
 * the callback only. */
struct connmgr_account {
    const char *id, *name;
    const struct conn_ops *ops;
    struct conn *conn;
    unsigned inbound_interval_s;
};

/* Creates the manager (pool, queue and http borrowed: they must outlive
 * it) and starts: first account load, LISTEN, reaping. Returns 0 and
 * *out, or -ENOMEM / -EINVAL. */
int connmgr_new(uv_loop_t *loop, struct pg_pool *pg, struct queue *q, struct http_client *http,
                const struct connmgr_opts *opts, struct connmgr **out);

/* Resolves an account's API key as written in smsys_apikey: "env:NAME",
 * "file:PATH" (its first line) or the key itself. Returns a new string the
 * caller frees (and should wipe), or NULL with why filled. Never logs the
 * key. The service and smsysctl both use it, so they agree on the rules. */
char *connmgr_resolve_key(const char *src, char *why, size_t why_len);

/* Re-reads smsys_account now. */
void connmgr_refresh(struct connmgr *m);

/* Calls fn for every open account. */
void connmgr_each(struct connmgr *m, void (*fn)(void *ud, const struct connmgr_account *a),
                  void *ud);

/* Fills *out with the open account account_id (valid until the loop runs
 * again). Returns 0 or -ENOENT (unknown, closing or not opened). */
int connmgr_lookup(struct connmgr *m, const char *account_id, struct connmgr_account *out);

/* 1 when account_id is an enabled account the manager knows, open or
 * not (its connector failed to open, is being reopened or closed); 0
 * when it is unknown or disabled. */
int connmgr_known(const struct connmgr *m, const char *account_id);

/* Hands a pushed event of account_id (a webhook) to the durable path,
 * exactly like the connector's own env->event: ack(token, rc) is called
 * once, maybe inside this call, after the event is stored (rc 0) or
 * refused (rc < 0). ev is borrowed. Returns 0, or -ENOENT (account not
 * open; ack is not called). */
int connmgr_push(struct connmgr *m, const char *account_id, const struct conn_event *ev,
                 conn_ack_fn ack, void *token);

/* Reads the balance of every open account whose connector can (or only
 * account_id when not NULL) now, as the balance timer does. Returns the
 * number of reads started (a read already running is not doubled). */
int connmgr_balance_refresh(struct connmgr *m, const char *account_id);

/* Stops every sender from claiming and calls cb(ud) once their batches are
 * all answered and recorded (bound it with the grace period). */
void connmgr_drain(struct connmgr *m, void (*cb)(void *ud), void *ud);

/* Closes everything (senders, connectors, timers) and frees m; cb(ud) at
 * the end. Connectors complete their pending callbacks first (rule 8). */
void connmgr_close(struct connmgr *m, void (*cb)(void *ud), void *ud);

/* "N accounts open" plus problems; returns 0 or -1 when an enabled
 * account could not be opened. */
int connmgr_health(struct connmgr *m, struct buf *detail);

/* Number of open accounts. */
size_t connmgr_count(const struct connmgr *m);

#endif
