/* connmgr.c - one connector and one sender per enabled account (connmgr.h):
 * the manager's lifecycle, reaping, balance reads and NOTIFY wake-ups.
 * Accounts are opened in connmgr_accounts.c, pushed events stored in
 * connmgr_events.c. */
#include "connmgr_int.h"

#include "smsys/accounts.h"
#include "smsys/log.h"
#include "smsys/metrics.h"
#include "smsys/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LISTEN has no unsubscribe (pg.h): the notification callback's ud must
 * live as long as the pool, so it is a static relay slot that a closed
 * manager merely empties. A stale slot reused by a later manager can at
 * worst cause a spurious wake-up, which costs one claim. */
struct relay {
    struct connmgr *m;
    struct pg_pool *pool;
};
static struct relay relays[32];

static void poll_timer_cb(uv_timer_t *t)
{
    connmgr_refresh(container_of(t, struct connmgr, poll_timer));
}

/* --- reaping and balance ------------------------------------------------- */

static void reap_cb(int rc, int64_t n, const struct smsys_err *err, void *ud)
{
    struct connmgr *m = ud;
    m->busy--;
    if (rc < 0)
        log_warn("reaping expired leases failed", "error=\"%s\"",
                 log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
    else if (n > 0)
        log_warn("expired leases reaped (outcome unknown or requeued)", "n=%lld", (long long)n);
    cm_maybe_finish(m);
}

static void reap_timer_cb(uv_timer_t *t)
{
    struct connmgr *m = container_of(t, struct connmgr, reap_timer);
    if (m->closing)
        return;
    if (queue_reap(m->q, 5000, reap_cb, m) == 0)
        m->busy++;
}

static void balance_cb(void *ud, int rc, const struct conn_balance *b, const struct smsys_err *err)
{
    struct acct *a = ud;
    a->balance_busy = 0;
    if (rc < 0 || b == NULL) {
        if (rc != SMSYS_ECLOSED)
            log_warn("balance read failed", "account=%s error=\"%s\"", a->name,
                     log_q(err && err->detail[0] ? err->detail : smsys_strerror(rc)));
        return;
    }
    a->has_balance = 1;
    a->balance = b->amount;
    snprintf(a->balance_unit, sizeof(a->balance_unit), "%s", b->unit ? b->unit : "");
    int low = a->low_balance >= 0 && b->amount < a->low_balance;
    if (low)
        log_warn("provider balance low", "account=%s amount=%.2f unit=%s threshold=%.2f", a->name,
                 b->amount, a->balance_unit, a->low_balance);
    else
        log_info("account balance", "account=%s amount=%.2f unit=%s", a->name, b->amount,
                 a->balance_unit);
    const char *labels[] = {"account", a->name, NULL};
    metrics_set(metrics_gauge(NULL, "smsys_provider_balance",
                              "Last credit read from the provider, in its unit.", labels),
                b->amount);
    metrics_set(metrics_gauge(NULL, "smsys_provider_balance_low",
                              "1 when the last credit read is below the account's low_balance.",
                              labels),
                low);
    if (a->m->o.on_balance)
        a->m->o.on_balance(a->m->o.balance_ud, a->id, a->name, b, low);
}

int connmgr_balance_refresh(struct connmgr *m, const char *account_id)
{
    int n = 0;
    if (m->closing || m->draining)
        return 0;
    for (struct acct *a = m->accts; a; a = a->next) {
        if (a->closing || !a->conn || !a->ops->balance || a->balance_busy)
            continue;
        if (account_id && strcmp(a->id, account_id) != 0)
            continue;
        if (a->ops->balance(a->conn, balance_cb, a) == 0) {
            a->balance_busy = 1;
            n++;
        }
    }
    return n;
}

static void balance_timer_cb(uv_timer_t *t)
{
    connmgr_balance_refresh(container_of(t, struct connmgr, balance_timer), NULL);
}

/* --- NOTIFY -------------------------------------------------------------- */

static void notify_cb(const char *channel, const char *payload, void *ud)
{
    struct relay *r = ud;
    struct connmgr *m = r->m;
    (void)channel;
    if (m == NULL || m->closing || m->draining)
        return;
    for (struct acct *a = m->accts; a; a = a->next)
        if (a->sender && !a->closing && (payload == NULL || strcmp(payload, a->id) == 0))
            sender_kick(a->sender);
}

/* An accounts sync changed smsys_account: reload now rather than at the
 * next poll. payload NULL (LISTEN back after a reconnect) reloads too, as
 * a notification may have been missed meanwhile. */
static void accounts_notify_cb(const char *channel, const char *payload, void *ud)
{
    struct relay *r = ud;
    (void)channel;
    (void)payload;
    if (r->m)
        connmgr_refresh(r->m);
}

/* --- lifecycle ----------------------------------------------------------- */

int connmgr_new(uv_loop_t *loop, struct pg_pool *pg, struct queue *q, struct http_client *http,
                const struct connmgr_opts *opts, struct connmgr **out)
{
    if (!loop || !pg || !q || !out)
        return -EINVAL;
    struct connmgr *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    if (opts)
        m->o = *opts;
    m->owner = strdup(m->o.owner ? m->o.owner : "smsysd");
    if (m->owner == NULL) {
        free(m);
        return -ENOMEM;
    }
    m->o.owner = m->owner;
    if (!m->o.lease_ms)
        m->o.lease_ms = 60000;
    if (!m->o.poll_ms)
        m->o.poll_ms = 5000;
    if (!m->o.event_batch)
        m->o.event_batch = 500;
    if (!m->o.event_delay_ms)
        m->o.event_delay_ms = 5;
    if (!m->o.balance_ms)
        m->o.balance_ms = 600000;
    m->loop = loop;
    m->pg = pg;
    m->q = q;
    m->http = http;
    for (size_t i = 0; i < sizeof(relays) / sizeof(relays[0]); i++)
        if (relays[i].m == NULL && (relays[i].pool == NULL || relays[i].pool == pg)) {
            m->relay = &relays[i];
            break;
        }
    if (m->relay == NULL) /* all slots in use: take any empty one */
        for (size_t i = 0; i < sizeof(relays) / sizeof(relays[0]); i++)
            if (relays[i].m == NULL) {
                m->relay = &relays[i];
                break;
            }
    if (m->relay) {
        m->relay->m = m;
        if (m->relay->pool != pg) {
            m->relay->pool = pg;
            if (queue_listen(q, notify_cb, m->relay) != 0)
                log_warn("cannot LISTEN for new messages: claiming on the timer only", "channel=%s",
                         QUEUE_CHANNEL);
            if (pg_listen(pg, ACCOUNTS_CHANNEL, accounts_notify_cb, m->relay) != 0)
                log_warn("cannot LISTEN for account changes: reading them on the timer only",
                         "channel=%s", ACCOUNTS_CHANNEL);
        }
    }
    uv_timer_init(loop, &m->poll_timer);
    uv_timer_init(loop, &m->reap_timer);
    uv_timer_init(loop, &m->balance_timer);
    m->nhandles = 3;
    unsigned reap_ms = m->o.lease_ms / 2 < 1000 ? 1000 : m->o.lease_ms / 2;
    uv_timer_start(&m->poll_timer, poll_timer_cb, m->o.poll_ms, m->o.poll_ms);
    uv_timer_start(&m->reap_timer, reap_timer_cb, 0, reap_ms);
    uv_timer_start(&m->balance_timer, balance_timer_cb, 2000, m->o.balance_ms);
    connmgr_refresh(m);
    *out = m;
    return 0;
}

void connmgr_each(struct connmgr *m, void (*fn)(void *ud, const struct connmgr_account *a),
                  void *ud)
{
    for (struct acct *a = m->accts; a; a = a->next) {
        if (a->closing || !a->conn)
            continue;
        struct connmgr_account ca = {a->id, a->name, a->ops, a->conn, a->inbound_s};
        fn(ud, &ca);
    }
}

int connmgr_lookup(struct connmgr *m, const char *account_id, struct connmgr_account *out)
{
    for (struct acct *a = m->accts; a; a = a->next)
        if (!a->closing && a->conn && strcmp(a->id, account_id) == 0) {
            *out = (struct connmgr_account){a->id, a->name, a->ops, a->conn, a->inbound_s};
            return 0;
        }
    return -ENOENT;
}

int connmgr_known(const struct connmgr *m, const char *account_id)
{
    for (const struct acct *a = m->accts; a; a = a->next)
        if (strcmp(a->id, account_id) == 0)
            return 1;
    return 0;
}

int connmgr_push(struct connmgr *m, const char *account_id, const struct conn_event *ev,
                 conn_ack_fn ack, void *token)
{
    for (struct acct *a = m->accts; a; a = a->next)
        if (!a->closing && a->conn && strcmp(a->id, account_id) == 0) {
            cm_event_cb(a, ev, ack, token);
            return 0;
        }
    return -ENOENT;
}

static void drained_one(struct connmgr *m)
{
    if (m->ndrain > 0 && --m->ndrain == 0 && m->drain_cb) {
        void (*cb)(void *) = m->drain_cb;
        m->drain_cb = NULL;
        cb(m->drain_ud);
    }
}

static void acct_drained_cb(void *ud)
{
    struct acct *a = ud;
    drained_one(a->m);
}

void connmgr_drain(struct connmgr *m, void (*cb)(void *ud), void *ud)
{
    m->draining = 1;
    uv_timer_stop(&m->poll_timer);
    uv_timer_stop(&m->balance_timer);
    m->drain_cb = cb;
    m->drain_ud = ud;
    m->ndrain = 1; /* held until every sender is asked */
    for (struct acct *a = m->accts; a; a = a->next)
        if (a->sender && !a->closing) {
            m->ndrain++;
            sender_drain(a->sender, acct_drained_cb, a);
        }
    drained_one(m);
}

static void mgr_handle_closed_cb(uv_handle_t *h)
{
    struct connmgr *m = h->data;
    m->nhandles--;
    cm_maybe_finish(m);
}

void cm_maybe_finish(struct connmgr *m)
{
    if (m->closing != 1 || m->accts || m->nhandles || m->busy)
        return;
    m->closing = 2;
    void (*cb)(void *) = m->close_cb;
    void *ud = m->close_ud;
    free(m->owner);
    free(m);
    if (cb)
        cb(ud);
}

void connmgr_close(struct connmgr *m, void (*cb)(void *ud), void *ud)
{
    if (m->closing)
        return;
    m->closing = 1;
    m->draining = 1;
    m->drain_cb = NULL;
    m->close_cb = cb;
    m->close_ud = ud;
    if (m->relay)
        m->relay->m = NULL;
    uv_timer_t *timers[3] = {&m->poll_timer, &m->reap_timer, &m->balance_timer};
    for (int i = 0; i < 3; i++) {
        timers[i]->data = m;
        uv_close((uv_handle_t *)timers[i], mgr_handle_closed_cb);
    }
    for (struct acct *a = m->accts; a; a = a->next)
        cm_acct_close(a);
    cm_maybe_finish(m);
}

int connmgr_health(struct connmgr *m, struct buf *detail)
{
    size_t open = 0, bad = 0;
    for (struct acct *a = m->accts; a; a = a->next) {
        if (a->closing)
            continue;
        if (a->conn)
            open++;
        else
            bad++;
    }
    buf_printf(detail, "%zu account%s open", open, open == 1 ? "" : "s");
    for (struct acct *a = m->accts; a; a = a->next) {
        if (a->closing)
            continue;
        if (!a->conn)
            buf_printf(detail, "; %s: %s", a->name, a->error);
        else if (a->has_balance)
            buf_printf(detail, "; %s balance %.2f %s", a->name, a->balance, a->balance_unit);
    }
    return bad ? -1 : 0;
}

size_t connmgr_count(const struct connmgr *m)
{
    size_t n = 0;
    for (const struct acct *a = m->accts; a; a = a->next)
        if (!a->closing && a->conn)
            n++;
    return n;
}
