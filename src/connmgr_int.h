/* connmgr_int.h - private to connmgr*.c: the manager and account structs
 * and the functions the three files share. Not a public header.
 *
 *   connmgr.c           the manager: lifecycle, drain, reaping, balance,
 *                       NOTIFY, lookups of the public API
 *   connmgr_accounts.c  smsys_account rows -> open, reopen and close each
 *                       account's connector and sender; API keys
 *   connmgr_events.c    what connectors push: receipts stored in batches,
 *                       inbound SMS (and their parts) stored before ack */
#ifndef SMSYS_CONNMGR_INT_H
#define SMSYS_CONNMGR_INT_H

#include "smsys/connmgr.h"

/* A pushed receipt waiting to be stored; strings owned. */
struct pev {
    struct conn_state st;
    conn_ack_fn ack;
    void *token;
};

struct acct {
    struct connmgr *m;
    struct acct *next;
    char *id, *name, *provider, *config, *keysrc, *apikey;
    unsigned inbound_s;
    const struct conn_ops *ops;
    struct conn *conn;
    struct sender *sender;
    struct conn_env env;
    char error[600]; /* why it could not be opened; "" when open */
    int seen, closing, conn_closing;

    uv_timer_t evtimer;
    struct pev *ev, *applying;
    struct conn_state *apply_st; /* the applying batch as the queue wants it */
    size_t nev, capev, napplying;
    int applying_busy;
    int mo_busy; /* MO parts being stored (acked after commit) */

    int balance_busy, has_balance;
    double balance, low_balance; /* low_balance < 0: no threshold */
    char balance_unit[16];
    int health_rc;
};

struct relay;

struct connmgr {
    uv_loop_t *loop;
    struct pg_pool *pg;
    struct queue *q;
    struct http_client *http;
    struct connmgr_opts o;
    char *owner;
    struct relay *relay;
    struct acct *accts;
    uv_timer_t poll_timer, reap_timer, balance_timer;
    int nhandles;
    int busy; /* pg calls out */
    int loading, reload_wanted;
    int draining, closing;
    unsigned ndrain;
    void (*drain_cb)(void *);
    void *drain_ud;
    void (*close_cb)(void *);
    void *close_ud;
};

/* connmgr.c: frees the manager once it is closing and nothing is left
 * (accounts, handles, pg calls); runs the close callback. */
void cm_maybe_finish(struct connmgr *m);

/* connmgr_accounts.c: closes the account's connector and sender (pending
 * receipts first); the account frees itself when all is closed. */
void cm_acct_close(struct acct *a);
/* Goes on with a close once no receipt or inbound store is out. */
void cm_acct_continue_close(struct acct *a);

/* connmgr_events.c: the connectors' event callback (conn_env.event). */
void cm_event_cb(void *ud, const struct conn_event *ev, conn_ack_fn ack, void *token);
/* Stores the receipts collected so far (one batch at a time). */
void cm_flush_events(struct acct *a);

#endif
